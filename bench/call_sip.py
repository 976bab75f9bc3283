"""The SIP side of the bridged-calls bench: the ATA's calls into the gateway, with G.711 RTP.

Not an RFC module, and deliberately not the gateway's SIP code: a minimal
asyncio UAC (RFC 3261 over UDP: INVITE with retransmission, 2xx and non-2xx
ACK, BYE both ways) and an RTP end (RFC 3550, PCMA, 20 ms packets).  Call *k*
comes from its own address ``127.0.0.(51+k)``, which the bench's gateway
configures as the only source of line ``line<k>`` (an ATA line whose incoming
calls ring that line's member), so N concurrent calls reach N different members.

One ticker sends a packet for every call that is up every 20 ms on an absolute
schedule (``tg_wire.Pacer``): a continuous 440 Hz tone, or a program (the
latency bursts and the speech sample) from a scheduled start time, with the
time each packet was handed to the kernel.  What arrives is counted (packets,
voiced packets, the last 0.5 s for a tone check) and, when asked, recorded with
its arrival times.  Times are ``time.monotonic()``, the clock every process of
the machine shares; the INVITE's wall time is kept too, to compare with the
simulated cloud's call table.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import re
import secrets
import struct
import time
from collections import deque
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, cast

import numpy as np
from call_audio import ALAW_DECODE, ALAW_SILENCE, alaw_encode, save_recording
from tg_wire import GATEWAY_HZ, VOICED_PEAK, Handler, Pacer, serve, tone_loop, worker_args
from tg_wire import worker_logging as setup_worker_logging

from simcloud.audio import analyse

log = logging.getLogger("bench.sip")

SOURCE_BASE = 51  # call k comes from 127.0.0.(51+k)
SIP_PORT = 5060
RTP_PORT = 40000
PACKET_S = 0.020
PAYLOAD = 160  # bytes of PCMA per packet
PT_PCMA = 8
T1 = 0.5  # RFC 3261 timer T1
TAIL_PACKETS = 25  # 0.5 s kept for the tone check
USER = "100"  # the number the ATA "dials"; an ATA line takes any

_RTP = struct.Struct("!BBHII")


def read_pcm(path: str) -> np.ndarray:
    return np.frombuffer(Path(path).read_bytes(), dtype="<i2").astype(np.int16)


def source_ip(index: int) -> str:
    return f"127.0.0.{SOURCE_BASE + index}"


@dataclass
class Message:
    first: str
    headers: list[tuple[str, str]]
    body: str

    COMPACT = {
        "v": "via",
        "f": "from",
        "t": "to",
        "i": "call-id",
        "m": "contact",
        "l": "content-length",
    }

    @classmethod
    def parse(cls, data: bytes) -> Message:
        head, _, body = data.decode("utf-8", "replace").partition("\r\n\r\n")
        lines = head.split("\r\n")
        headers = []
        for line in lines[1:]:
            name, sep, value = line.partition(":")
            if sep:
                key = name.strip().lower()
                headers.append((cls.COMPACT.get(key, key), value.strip()))
        return cls(lines[0], headers, body)

    def get(self, name: str) -> str:
        return next((v for k, v in self.headers if k == name), "")

    def all(self, name: str) -> list[str]:
        return [v for k, v in self.headers if k == name]

    @property
    def status(self) -> int:
        m = re.match(r"SIP/2\.0 (\d{3})", self.first)
        return int(m.group(1)) if m else 0

    @property
    def method(self) -> str:
        return self.first.split(" ", 1)[0] if not self.status else ""

    @property
    def cseq(self) -> tuple[int, str]:
        number, _, method = self.get("cseq").partition(" ")
        return int(number or 0), method.strip()


def _tag(value: str) -> str:
    m = re.search(r";\s*tag=([^;>\s]+)", value)
    return m.group(1) if m else ""


def _uri(value: str) -> str:
    m = re.search(r"<([^>]+)>", value)
    return m.group(1) if m else value.split(";", 1)[0].strip()


def _sdp_address(body: str) -> tuple[str, int] | None:
    c = re.search(r"^c=IN IP4 (\S+)", body, re.M)
    m = re.search(r"^m=audio (\d+) ", body, re.M)
    return (c.group(1), int(m.group(1))) if c and m else None


class _Udp(asyncio.DatagramProtocol):
    def __init__(self, on_datagram: Any) -> None:
        self.on_datagram = on_datagram
        self.transport: asyncio.DatagramTransport | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast(asyncio.DatagramTransport, transport)

    def datagram_received(self, data: bytes, addr: tuple[str, int]) -> None:
        self.on_datagram(data, addr)


@dataclass
class Call:
    """One ATA call: its SIP dialog, its RTP stream and what it received."""

    index: int
    ip: str
    sip: asyncio.DatagramTransport
    rtp: asyncio.DatagramTransport
    gateway: tuple[str, int]
    state: str = "idle"  # idle | inviting | up | ended
    call_id: str = ""
    tag: str = ""
    to_tag: str = ""
    contact: str = ""
    ack: bytes = b""
    remote_rtp: tuple[str, int] | None = None
    responses: asyncio.Queue[Message] = field(default_factory=asyncio.Queue)
    times: dict[str, float] = field(default_factory=dict)
    seq: int = 0
    ts: int = 0
    ssrc: int = field(default_factory=lambda: secrets.randbits(32))
    tone_index: int = 0
    program: list[bytes] | None = None
    program_start: float = 0.0
    program_times: list[float] = field(default_factory=list)
    program_done: asyncio.Event = field(default_factory=asyncio.Event)
    sent: int = 0
    received: int = 0
    voiced: int = 0
    tail: deque[bytes] = field(default_factory=lambda: deque(maxlen=TAIL_PACKETS))
    recording: list[tuple[float, bytes]] | None = None
    ended_by: str = ""

    @property
    def local(self) -> str:
        return f"{self.ip}:{SIP_PORT}"

    def request_uri(self) -> str:
        return f"sip:{USER}@{self.gateway[0]}:{self.gateway[1]}"

    def headers(self, method: str, cseq: int, branch: str, *, to_tag: str = "") -> list[str]:
        to = f"<{self.request_uri()}>" + (f";tag={to_tag}" if to_tag else "")
        return [
            f"Via: SIP/2.0/UDP {self.local};rport;branch={branch}",
            f"From: <sip:0163296{self.index:04d}@{self.ip}>;tag={self.tag}",
            f"To: {to}",
            f"Call-ID: {self.call_id}",
            f"CSeq: {cseq} {method}",
            "Max-Forwards: 70",
        ]


def _branch() -> str:
    return "z9hG4bK" + secrets.token_hex(8)


def _build(first: str, headers: list[str], body: str = "", content_type: str = "") -> bytes:
    lines = [first, *headers]
    if body:
        lines.append(f"Content-Type: {content_type}")
    lines.append(f"Content-Length: {len(body.encode())}")
    return ("\r\n".join(lines) + "\r\n\r\n" + body).encode()


class Driver:
    """Every call of the bench's ATA side; the worker's commands are its methods."""

    def __init__(self) -> None:
        self.gateway: tuple[str, int] = ("", 0)
        self.calls: dict[int, Call] = {}
        self.pacer = Pacer(PACKET_S)
        self._ticker: asyncio.Task[None] | None = None
        tone = tone_loop(GATEWAY_HZ)  # 1 s: 100 frames of 10 ms
        pcm = np.frombuffer(b"".join(tone), dtype="<i2").astype(np.int16)
        codes = alaw_encode(pcm)
        self._tone = [codes[i : i + PAYLOAD] for i in range(0, len(codes), PAYLOAD)]
        self._silence = bytes([ALAW_SILENCE]) * PAYLOAD

    # -- commands --------------------------------------------------------------------

    async def configure(self, host: str, port: int) -> dict[str, Any]:
        self.gateway = (host, port)
        return {}

    async def _call(self, index: int) -> Call:
        call = self.calls.get(index)
        if call is not None:
            return call
        loop = asyncio.get_running_loop()
        ip = source_ip(index)
        holder: dict[str, Call] = {}
        sip, _ = await loop.create_datagram_endpoint(
            lambda: _Udp(lambda d, a: self._on_sip(holder["call"], d, a)), local_addr=(ip, SIP_PORT)
        )
        rtp, _ = await loop.create_datagram_endpoint(
            lambda: _Udp(lambda d, a: self._on_rtp(holder["call"], d)), local_addr=(ip, RTP_PORT)
        )
        call = holder["call"] = Call(index, ip, sip, rtp, self.gateway)  # type: ignore[arg-type]
        self.calls[index] = call
        return call

    async def invite(self, call: int, timeout: float) -> dict[str, Any]:
        """Place call *call*; returns when it is answered (200 OK) with its times."""
        c = await self._call(call)
        if c.state in ("inviting", "up"):
            raise RuntimeError(f"call {call} is {c.state}")
        c.state, c.call_id, c.tag = (
            "inviting",
            f"{secrets.token_hex(8)}@{c.ip}",
            secrets.token_hex(4),
        )
        c.to_tag = c.contact = ""
        c.remote_rtp, c.program, c.ended_by = None, None, ""
        c.times = {}
        while not c.responses.empty():
            c.responses.get_nowait()
        branch = _branch()
        sdp = "\r\n".join(
            [
                "v=0",
                f"o=bench 1 1 IN IP4 {c.ip}",
                "s=-",
                f"c=IN IP4 {c.ip}",
                "t=0 0",
                f"m=audio {RTP_PORT} RTP/AVP 8 101",
                "a=rtpmap:8 PCMA/8000",
                "a=rtpmap:101 telephone-event/8000",
                "a=fmtp:101 0-15",
                "a=ptime:20",
                "a=sendrecv",
                "",
            ]
        )
        headers = c.headers("INVITE", 1, branch) + [
            f"Contact: <sip:ata@{c.local}>",
            "User-Agent: linegram-bench",
        ]
        invite = _build(f"INVITE {c.request_uri()} SIP/2.0", headers, sdp, "application/sdp")
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        c.times["invite"] = time.monotonic()
        c.times["invite_wall"] = time.time()
        c.sip.sendto(invite, self.gateway)
        interval, resend_at, provisional = T1, loop.time() + T1, False
        try:
            while True:
                now = loop.time()
                if now >= deadline:
                    raise TimeoutError(f"call {call}: no answer within {timeout:g} s")
                wait = deadline - now if provisional else min(deadline, resend_at) - now
                try:
                    msg = await asyncio.wait_for(c.responses.get(), max(wait, 0.0))
                except TimeoutError:
                    if not provisional and loop.time() >= resend_at:
                        c.sip.sendto(invite, self.gateway)  # timer A
                        interval = min(interval * 2, 4.0)
                        resend_at = loop.time() + interval
                    continue
                if msg.cseq != (1, "INVITE"):
                    continue
                status = msg.status
                if status < 200:
                    provisional = True
                    if status in (180, 183):
                        c.times.setdefault("ringing", msg_time(msg))
                    continue
                c.to_tag = _tag(msg.get("to"))
                if status >= 300:
                    ack_headers = c.headers("ACK", 1, branch, to_tag=c.to_tag)
                    c.sip.sendto(
                        _build(f"ACK {c.request_uri()} SIP/2.0", ack_headers), self.gateway
                    )
                    raise RuntimeError(f"call {call}: {msg.first}")
                c.times["answered"] = msg_time(msg)
                c.contact = _uri(msg.get("contact")) or c.request_uri()
                c.remote_rtp = _sdp_address(msg.body)
                c.ack = _build(
                    f"ACK {c.contact} SIP/2.0", c.headers("ACK", 1, _branch(), to_tag=c.to_tag)
                )
                c.sip.sendto(c.ack, self.gateway)
                break
        except BaseException:
            c.state = "ended"
            raise
        if c.remote_rtp is None:
            raise RuntimeError(f"call {call}: no SDP address in the 200 OK")
        c.state = "up"
        c.sent = c.received = c.voiced = 0
        c.tail.clear()
        self._start_ticker()
        return {
            "invite": c.times["invite"],
            "invite_wall": c.times["invite_wall"],
            "ringing": c.times.get("ringing"),
            "answered": c.times["answered"],
        }

    async def bye(self, call: int, timeout: float = 5.0) -> dict[str, Any]:
        c = self.calls.get(call)
        if c is None or c.state != "up":
            return {"ended_by": c.ended_by if c else ""}
        c.state, c.ended_by = "ended", "bench"
        bye = _build(f"BYE {c.contact} SIP/2.0", c.headers("BYE", 2, _branch(), to_tag=c.to_tag))
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        c.sip.sendto(bye, self.gateway)
        interval = T1
        while loop.time() < deadline:
            try:
                msg = await asyncio.wait_for(
                    c.responses.get(), min(interval, deadline - loop.time())
                )
            except TimeoutError:
                c.sip.sendto(bye, self.gateway)  # timer E
                interval = min(interval * 2, 4.0)
                continue
            if msg.cseq == (2, "BYE") and msg.status >= 200:
                return {"status": msg.status, "ended_by": "bench"}
        raise TimeoutError(f"call {call}: BYE not answered within {timeout:g} s")

    async def bye_all(self) -> dict[str, Any]:
        out = {}
        for index in list(self.calls):
            try:
                out[str(index)] = await self.bye(index)
            except TimeoutError as exc:
                out[str(index)] = {"error": str(exc)}
        return out

    async def play(self, call: int, path: str, start_at: float) -> dict[str, Any]:
        """Send the s16le program in *path* from monotonic time *start_at* on, then silence."""
        c = self.calls[call]
        codes = alaw_encode(read_pcm(path))
        c.program = [codes[i : i + PAYLOAD] for i in range(0, len(codes), PAYLOAD)]
        c.program_start, c.program_times = start_at, []
        c.program_done.clear()
        return {"packets": len(c.program)}

    async def played(self, call: int, timeout: float) -> dict[str, Any]:
        """The send time of every packet of the program, once it has all been sent."""
        c = self.calls[call]
        await asyncio.wait_for(c.program_done.wait(), timeout)
        return {"times": c.program_times, "chunk": PAYLOAD}

    async def record(self, call: int) -> dict[str, Any]:
        self.calls[call].recording = []
        return {}

    async def save(self, call: int, stem: str) -> dict[str, Any]:
        c = self.calls[call]
        chunks, c.recording = c.recording or [], None
        save_recording(Path(stem), chunks)
        return {"chunks": len(chunks)}

    async def counts(self) -> dict[str, Any]:
        return {
            "at": time.monotonic(),
            "cpu_s": time.process_time(),
            "calls": {
                str(i): {"state": c.state, "sent": c.sent, "heard": [c.received, c.voiced]}
                for i, c in self.calls.items()
            },
            "pacer": self.pacer.as_dict(),
        }

    async def analyse(self) -> dict[str, Any]:
        out = {}
        for i, c in self.calls.items():
            result = analyse(b"".join(c.tail), 8000, settle_ms=0)
            out[str(i)] = {"hz": result.frequency_hz, "dbfs": result.level_dbfs}
        return out

    async def close(self) -> None:
        with contextlib.suppress(Exception):
            await asyncio.wait_for(self.bye_all(), 10)
        if self._ticker is not None:
            self._ticker.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._ticker
        for c in self.calls.values():
            c.sip.close()
            c.rtp.close()

    # -- SIP in ------------------------------------------------------------------------

    def _on_sip(self, call: Call, data: bytes, addr: tuple[str, int]) -> None:
        at = time.monotonic()
        try:
            msg = Message.parse(data)
        except (ValueError, UnicodeError):
            return
        msg.headers.append(("x-received-at", repr(at)))
        if msg.status:
            if msg.cseq == (1, "INVITE") and 200 <= msg.status < 300 and call.state != "inviting":
                if call.ack:
                    call.sip.sendto(call.ack, addr)  # a retransmitted 200 OK: ACK again
                return
            call.responses.put_nowait(msg)
            return
        if msg.method == "ACK":
            return
        status = (
            "200 OK"
            if msg.method in ("BYE", "OPTIONS", "INFO", "NOTIFY")
            else "501 Not Implemented"
        )
        headers = [f"{name.title()}: {value}" for name, value in msg.headers if name == "via"]
        to = msg.get("to")
        headers += [
            f"From: {msg.get('from')}",
            f"To: {to}" + ("" if _tag(to) else f";tag={call.tag}"),
            f"Call-ID: {msg.get('call-id')}",
            f"CSeq: {msg.get('cseq')}",
        ]
        call.sip.sendto(_build(f"SIP/2.0 {status}", headers), addr)
        if msg.method == "BYE" and msg.get("call-id") == call.call_id and call.state == "up":
            call.state, call.ended_by = "ended", "gateway"
            log.info("call %d: the gateway hung up", call.index)

    # -- RTP -----------------------------------------------------------------------------

    def _on_rtp(self, call: Call, data: bytes) -> None:
        at = time.monotonic()
        if len(data) < 12 or data[0] >> 6 != 2 or data[1] & 0x7F != PT_PCMA:
            return
        offset = 12 + 4 * (data[0] & 0x0F)
        if data[0] & 0x10 and len(data) >= offset + 4:  # header extension
            offset += 4 + 4 * int.from_bytes(data[offset + 2 : offset + 4], "big")
        payload = data[offset:]
        pcm = ALAW_DECODE[np.frombuffer(payload, dtype=np.uint8)]
        call.received += 1
        if len(pcm) and int(np.abs(pcm.astype(np.int32)).max()) > VOICED_PEAK:
            call.voiced += 1
        raw = pcm.astype("<i2").tobytes()
        call.tail.append(raw)
        if call.recording is not None:
            call.recording.append((at, raw))

    def _start_ticker(self) -> None:
        if self._ticker is None or self._ticker.done():
            self._ticker = asyncio.create_task(self._tick())

    async def _tick(self) -> None:
        """One packet per call that is up, every 20 ms on an absolute schedule."""
        self.pacer.begin()
        while any(c.state == "up" for c in self.calls.values()):
            for c in list(self.calls.values()):
                if c.state == "up" and c.remote_rtp is not None:
                    self._send(c)
            await self.pacer.wait()

    def _send(self, c: Call) -> None:
        program = c.program
        logged = False
        if program is None:
            payload = self._tone[c.tone_index % len(self._tone)]
            c.tone_index += 1
        elif time.monotonic() < c.program_start - 0.001 or len(c.program_times) >= len(program):
            payload = self._silence
        else:
            payload = program[len(c.program_times)]
            logged = True
        marker = 0x80 if c.sent == 0 else 0
        packet = _RTP.pack(0x80, marker | PT_PCMA, c.seq & 0xFFFF, c.ts & 0xFFFFFFFF, c.ssrc)
        c.seq += 1
        c.ts += PAYLOAD
        c.sent += 1
        at = time.monotonic()
        assert c.remote_rtp is not None
        c.rtp.sendto(packet + payload, c.remote_rtp)
        if logged and program is not None:
            c.program_times.append(at)
            if len(c.program_times) == len(program):
                c.program_done.set()


def msg_time(msg: Message) -> float:
    """When the datagram carrying *msg* arrived (set by the receiving protocol)."""
    return float(msg.get("x-received-at"))


async def main() -> None:
    args = worker_args(__doc__.split("\n", 1)[0])
    setup_worker_logging(logging.INFO)
    driver = Driver()
    handlers: dict[str, Handler] = {
        "configure": driver.configure,
        "invite": driver.invite,
        "bye": driver.bye,
        "bye_all": driver.bye_all,
        "play": driver.play,
        "played": driver.played,
        "record": driver.record,
        "save": driver.save,
        "counts": driver.counts,
        "analyse": driver.analyse,
    }
    try:
        await serve(args.control, handlers)
    finally:
        await driver.close()


if __name__ == "__main__":
    asyncio.run(main())

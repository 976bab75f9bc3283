"""Plain RTP echo UAS: the floor the bench compares the gateway with (RFC 3261 §13.3, RFC 3550 §5).

Not gateway code, and stdlib only, so it costs what Python's asyncio costs and
nothing more (performance-baselines.md §4, ``rtp_echo.py``):

* INVITE -> 200 OK at once, with an SDP answer (PCMA/8000, ptime 20) naming a
  new UDP socket for that call; a retransmitted INVITE gets the same answer.
* every datagram on a call's socket goes straight back to its source
  (symmetric RTP) with ``transport.sendto``: no parsing, no codec, no clock.
* BYE -> 200 OK and the socket is closed; OPTIONS -> 200 OK (readiness probe);
  ACK is absorbed; anything else -> 501.

Run: ``python bench/rtp_echo.py --ip 127.0.0.42 --port 5060``; SIGTERM stops it.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import secrets
import signal
from typing import cast

Address = tuple[str, int]
CRLF = "\r\n"


class RtpEcho(asyncio.DatagramProtocol):
    """One call's media socket: echo each datagram to where it came from."""

    def __init__(self) -> None:
        self.transport: asyncio.DatagramTransport | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast(asyncio.DatagramTransport, transport)

    def datagram_received(self, data: bytes, addr: Address) -> None:
        assert self.transport is not None
        self.transport.sendto(data, addr)

    def error_received(self, exc: Exception) -> None:
        pass  # an ICMP error from an earlier echo; the bench counts those itself


def _parse(data: bytes) -> tuple[str, list[tuple[str, str]]] | None:
    """Request line and headers of a SIP request; None for responses and garbage."""
    head = data.split(b"\r\n\r\n", 1)[0].decode("utf-8", "replace")
    lines = head.split("\r\n")
    if not lines or lines[0].startswith("SIP/2.0"):
        return None
    headers = []
    for line in lines[1:]:
        name, sep, value = line.partition(":")
        if sep:
            headers.append((name.strip().lower(), value.strip()))
    return lines[0], headers


class EchoUas(asyncio.DatagramProtocol):
    """The SIP socket: answers every INVITE with a fresh echo socket."""

    def __init__(self, ip: str) -> None:
        self.ip = ip
        self.transport: asyncio.DatagramTransport | None = None
        self.calls: dict[str, asyncio.DatagramTransport] = {}
        self.answers: dict[str, bytes] = {}  # Call-ID -> our 200 to its INVITE
        self.pending: set[str] = set()  # Call-IDs whose media socket is being opened

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast(asyncio.DatagramTransport, transport)

    def datagram_received(self, data: bytes, addr: Address) -> None:
        parsed = _parse(data)
        if parsed is None:
            return
        request_line, headers = parsed
        method = request_line.split(" ", 1)[0]
        call_id = next((v for k, v in headers if k in ("call-id", "i")), "")
        if method == "INVITE":
            if call_id in self.answers:
                self._send(self.answers[call_id], addr)
            elif call_id not in self.pending:
                self.pending.add(call_id)
                asyncio.get_running_loop().create_task(self._answer(headers, call_id, addr))
        elif method == "ACK":
            pass
        elif method == "BYE":
            transport = self.calls.pop(call_id, None)
            if transport is not None:
                transport.close()
            self.answers.pop(call_id, None)
            self._send(self._response(headers, "200 OK"), addr)
        elif method == "OPTIONS":
            self._send(self._response(headers, "200 OK"), addr)
        else:
            self._send(self._response(headers, "501 Not Implemented"), addr)

    async def _answer(self, headers: list[tuple[str, str]], call_id: str, addr: Address) -> None:
        loop = asyncio.get_running_loop()
        transport, _ = await loop.create_datagram_endpoint(RtpEcho, local_addr=(self.ip, 0))
        port = transport.get_extra_info("sockname")[1]
        sdp = CRLF.join(
            [
                "v=0",
                f"o=echo {port} 1 IN IP4 {self.ip}",
                "s=-",
                f"c=IN IP4 {self.ip}",
                "t=0 0",
                f"m=audio {port} RTP/AVP 8",
                "a=rtpmap:8 PCMA/8000",
                "a=ptime:20",
                "a=sendrecv",
                "",
            ]
        )
        contact = f"Contact: <sip:echo@{self.ip}:{self._port()}>"
        answer = self._response(
            headers,
            "200 OK",
            to_tag=secrets.token_hex(4),
            extra=[contact, "Content-Type: application/sdp"],
            body=sdp,
        )
        self.pending.discard(call_id)
        self.calls[call_id] = transport
        self.answers[call_id] = answer
        self._send(answer, addr)

    def _port(self) -> int:
        assert self.transport is not None
        port: int = self.transport.get_extra_info("sockname")[1]
        return port

    def _response(
        self,
        headers: list[tuple[str, str]],
        status: str,
        *,
        to_tag: str | None = None,
        extra: list[str] | None = None,
        body: str = "",
    ) -> bytes:
        out = [f"SIP/2.0 {status}"]
        names = {"via": "Via", "v": "Via", "from": "From", "f": "From", "to": "To", "t": "To"}
        names |= {"call-id": "Call-ID", "i": "Call-ID", "cseq": "CSeq"}
        for key, value in headers:
            name = names.get(key)
            if name is None:
                continue
            if name == "To" and to_tag is not None and ";tag=" not in value:
                value = f"{value};tag={to_tag}"
            out.append(f"{name}: {value}")
        out += extra or []
        out += [f"Content-Length: {len(body.encode())}", "", body]
        return CRLF.join(out).encode()

    def _send(self, data: bytes, addr: Address) -> None:
        assert self.transport is not None
        self.transport.sendto(data, addr)


async def serve(ip: str, port: int) -> None:
    loop = asyncio.get_running_loop()
    stop = asyncio.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    transport, uas = await loop.create_datagram_endpoint(lambda: EchoUas(ip), local_addr=(ip, port))
    try:
        await stop.wait()
    finally:
        for call in uas.calls.values():
            call.close()
        transport.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--ip", default="127.0.0.42")
    parser.add_argument("--port", type=int, default=5060)
    args = parser.parse_args()
    with contextlib.suppress(KeyboardInterrupt):
        asyncio.run(serve(args.ip, args.port))


if __name__ == "__main__":
    main()

"""Record the RTP a peer receives, and judge it: bit-exact echo, tones, RFC 4733 digits.

Not an RFC module.  sipp plays pcaps from a raw socket and never reads its media
ports, so a test binds the port sipp advertises (``[media_port+10]``, which is
also the source port of sipp's pcap packets) with an :class:`RtpCapture`.  The
gateway latches to that source (symmetric RTP) and its packets land here.

The echo check works on the payload *stream* (payloads in sequence order): the
gateway's jitter buffer and 10 ms PCM framing may shift packet boundaries and
put silence first, but a transparent G.711 path must return every byte sent,
contiguous and in order.
"""

from __future__ import annotations

import asyncio
import math
import struct
from dataclasses import dataclass, field
from typing import cast

from tests.interop.peers.pcap import PT_EVENT, RtpPacket, TelephoneEvent


@dataclass(frozen=True)
class Datagram:
    at: float  # loop time of arrival
    source: tuple[str, int]
    data: bytes


class RtpCapture(asyncio.DatagramProtocol):
    """A UDP socket that records everything it receives and never answers."""

    def __init__(self) -> None:
        self.datagrams: list[Datagram] = []
        self.transport: asyncio.DatagramTransport | None = None
        self.address: tuple[str, int] = ("", 0)
        self._loop = asyncio.get_running_loop()

    @classmethod
    async def open(cls, ip: str, port: int = 0) -> RtpCapture:
        loop = asyncio.get_running_loop()
        transport, protocol = await loop.create_datagram_endpoint(cls, local_addr=(ip, port))
        protocol.address = transport.get_extra_info("sockname")[:2]
        return protocol

    @property
    def port(self) -> int:
        return self.address[1]

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        # Python 3.11's selector transport does not subclass DatagramTransport.
        self.transport = cast(asyncio.DatagramTransport, transport)

    def datagram_received(self, data: bytes, addr: tuple[str | object, int]) -> None:
        self.datagrams.append(Datagram(self._loop.time(), (str(addr[0]), addr[1]), data))

    def close(self) -> None:
        if self.transport is not None:
            self.transport.close()

    def packets(self) -> list[RtpPacket]:
        """Every datagram that parses as RTP, in arrival order."""
        out = []
        for d in self.datagrams:
            try:
                out.append(RtpPacket.parse(d.data))
            except ValueError:
                pass
        return out

    def sources(self) -> set[tuple[str, int]]:
        return {d.source for d in self.datagrams}

    def summary(self) -> str:
        """One line per (source, payload type): packet count, for failure messages."""
        counts: dict[tuple[tuple[str, int], int], int] = {}
        for d in self.datagrams:
            try:
                pt = RtpPacket.parse(d.data).payload_type
            except ValueError:
                pt = -1
            counts[d.source, pt] = counts.get((d.source, pt), 0) + 1
        if not counts:
            return f"capture {self.address}: nothing received"
        rows = [f"  from {s[0]}:{s[1]} pt={pt}: {n} packets" for (s, pt), n in counts.items()]
        return f"capture {self.address}:\n" + "\n".join(rows)


def _unwrapped(packets: list[RtpPacket]) -> list[tuple[int, RtpPacket]]:
    """Packets keyed by sequence number extended past 16-bit wrap-around."""
    out, last, cycles = [], None, 0
    for p in packets:
        if last is not None and p.sequence < last and last - p.sequence > 0x8000:
            cycles += 1
        elif last is not None and p.sequence > last and p.sequence - last > 0x8000:
            out.append((cycles * 0x10000 + p.sequence - 0x10000, p))  # late, from before a wrap
            continue
        last = p.sequence
        out.append((cycles * 0x10000 + p.sequence, p))
    return out


def payload_stream(packets: list[RtpPacket], payload_type: int) -> bytes:
    """Payloads of *payload_type* in sequence order, duplicates dropped."""
    seen: dict[int, bytes] = {}
    for key, p in _unwrapped([p for p in packets if p.payload_type == payload_type]):
        seen.setdefault(key, p.payload)
    return b"".join(seen[k] for k in sorted(seen))


@dataclass(frozen=True)
class EchoMatch:
    """Where a sent stream was found in a received one, or how close it came."""

    found: bool
    offset: int  # in the received stream, -1 when no anchor matched at all
    matched: int  # bytes of *sent* equal at that alignment (contiguous from the start)
    total: int  # len(sent)
    received: int  # len(received)

    def __str__(self) -> str:
        if self.found:
            return f"all {self.total} bytes echoed bit-exact at offset {self.offset}"
        if self.offset < 0:
            return f"no part of the {self.total} sent bytes found in {self.received} received"
        return (
            f"only {self.matched} of {self.total} bytes match at offset {self.offset} "
            f"(received {self.received} bytes)"
        )


def find_echo(
    sent: bytes, received: bytes, align: int = 1, silence: int | None = None
) -> EchoMatch:
    """Find *sent* inside *received* at an offset that is a multiple of *align*.

    *align* is 2 for s16le PCM.  When the whole stream is not there, the best
    partial alignment is reported: anchored on the first frame of *sent* that is
    not all *silence* bytes, extended forwards and backwards.
    """
    start = received.find(sent)
    while start >= 0 and start % align:
        start = received.find(sent, start + 1)
    if start >= 0:
        return EchoMatch(True, start, len(sent), len(sent), len(received))
    frame = 160 * align
    anchor = 0
    if silence is not None:
        while anchor + frame <= len(sent) and sent[anchor : anchor + frame].count(silence) == frame:
            anchor += frame
    chunk = sent[anchor : anchor + frame]
    best = EchoMatch(False, -1, 0, len(sent), len(received))
    pos = received.find(chunk) if chunk else -1
    while pos >= 0:
        if (pos - anchor) % align == 0:
            offset = pos - anchor
            matched = 0
            for i in range(len(sent)):
                j = offset + i
                if j < 0:
                    continue
                if j >= len(received) or received[j] != sent[i]:
                    break
                matched += 1
            if matched > best.matched:
                best = EchoMatch(False, offset, matched, len(sent), len(received))
        pos = received.find(chunk, pos + 1)
    return best


def alignment(sent: bytes, received: bytes, frame: int = 160, align: int = 1) -> str:
    """Where each *frame*-byte chunk of *sent* turns up in *received*, as runs of equal delay.

    For failure messages: ``0:7360@+4480`` means sent bytes 0..7360 were found
    4480 bytes later in the received stream; a jump in the delay is audio the
    peer inserted (delay grows) or dropped (delay shrinks); ``missing`` chunks
    were not found at all.
    """
    runs: list[tuple[int, int, int | None]] = []  # (start, end, delay or None)
    cursor = 0
    for start in range(0, len(sent) - frame + 1, frame):
        chunk = sent[start : start + frame]
        pos = received.find(chunk, cursor)
        while pos >= 0 and pos % align != start % align:
            pos = received.find(chunk, pos + 1)
        delay = None if pos < 0 else pos - start
        if pos >= 0:
            cursor = pos + frame
        if runs and runs[-1][2] == delay and runs[-1][1] == start:
            runs[-1] = (runs[-1][0], start + frame, delay)
        else:
            runs.append((start, start + frame, delay))
    parts = [f"{a}:{b}@{'missing' if d is None else f'{d:+d}'}" for a, b, d in runs[:12]]
    more = f" ... ({len(runs) - 12} more runs)" if len(runs) > 12 else ""
    return " ".join(parts) + more


@dataclass(frozen=True)
class Digit:
    digit: str
    duration_ms: int
    timestamp: int
    packets: int
    end_packets: int


def telephone_events(packets: list[RtpPacket], payload_type: int = PT_EVENT) -> list[Digit]:
    """RFC 4733 events grouped by RTP timestamp (one event per timestamp, §2.5.2.1)."""
    groups: dict[int, list[TelephoneEvent]] = {}
    for p in packets:
        if p.payload_type == payload_type:
            try:
                groups.setdefault(p.timestamp, []).append(TelephoneEvent.parse(p.payload))
            except ValueError:
                pass
    out = []
    for ts, events in groups.items():
        ends = [e for e in events if e.end]
        duration = max(e.duration for e in (ends or events))
        out.append(Digit(events[0].digit, duration // 8, ts, len(events), len(ends)))
    return out


# --------------------------------------------------------------------------------------------
# PCM helpers (s16le mono 8 kHz)


def samples(pcm: bytes) -> list[int]:
    return [s for (s,) in struct.iter_unpack("<h", pcm[: len(pcm) & ~1])]


def tone(freq: float, seconds: float, amplitude: int = 8000, rate: int = 8000) -> bytes:
    n = round(seconds * rate)
    return struct.pack(
        f"<{n}h", *(round(amplitude * math.sin(2 * math.pi * freq * i / rate)) for i in range(n))
    )


def rms(pcm: bytes) -> float:
    s = samples(pcm)
    return math.sqrt(sum(x * x for x in s) / len(s)) if s else 0.0


def envelope(pcm: bytes, block: int = 80) -> list[float]:
    """RMS per *block* samples (10 ms at 8 kHz)."""
    s = samples(pcm)
    return [
        math.sqrt(sum(x * x for x in s[i : i + block]) / block)
        for i in range(0, len(s) - block + 1, block)
    ]


@dataclass(frozen=True)
class Correlation:
    lag_blocks: int
    score: float  # Pearson correlation of the envelopes at that lag, -1..1


def best_envelope_lag(reference: list[float], signal: list[float], max_lag: int) -> Correlation:
    """The lag (in blocks, signal behind reference) where the two envelopes correlate best.

    A coarse but codec- and jitter-proof "is this my audio?" test.
    """
    best = Correlation(0, -1.0)
    n = len(reference)
    for lag in range(0, max_lag + 1):
        pairs = [(reference[i], signal[i + lag]) for i in range(n) if i + lag < len(signal)]
        if len(pairs) < 20:
            break
        xs, ys = [a for a, _ in pairs], [b for _, b in pairs]
        mx, my = sum(xs) / len(xs), sum(ys) / len(ys)
        cov = sum((a - mx) * (b - my) for a, b in pairs)
        vx = math.sqrt(sum((a - mx) ** 2 for a in xs))
        vy = math.sqrt(sum((b - my) ** 2 for b in ys))
        score = cov / (vx * vy) if vx and vy else 0.0
        if score > best.score:
            best = Correlation(lag, score)
    return best


@dataclass
class EchoReport:
    """Everything a sipp echo test checks, computed once from a capture."""

    payload_type: int
    match: EchoMatch
    alignment: str = ""
    sources: set[tuple[str, int]] = field(default_factory=set)
    events: list[Digit] = field(default_factory=list)
    payload_types: set[int] = field(default_factory=set)

    def __str__(self) -> str:
        events = ", ".join(f"{d.digit}/{d.duration_ms}ms" for d in self.events) or "none"
        return (
            f"echo pt={self.payload_type}: {self.match}; alignment {self.alignment}; "
            f"payload types seen {sorted(self.payload_types)}; telephone-events back: {events}; "
            f"sources {sorted(self.sources)}"
        )


def echo_report(capture: RtpCapture, payload_type: int, sent: bytes, silence: int) -> EchoReport:
    packets = capture.packets()
    received = payload_stream(packets, payload_type)
    match = find_echo(sent, received, silence=silence)
    return EchoReport(
        payload_type,
        match,
        "" if match.found else alignment(sent, received),
        capture.sources(),
        telephone_events(packets),
        {p.payload_type for p in packets},
    )


def assert_contains(
    sent: bytes, received: bytes, what: str, align: int = 1, silence: int | None = None
) -> None:
    """Fail with the alignment runs unless *received* holds all of *sent* contiguously."""
    match = find_echo(sent, received, align=align, silence=silence)
    if not match.found:
        runs = alignment(sent, received, frame=160 * align, align=align)
        raise AssertionError(f"{what}: {match}; alignment {runs}")

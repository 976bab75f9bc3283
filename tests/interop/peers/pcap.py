"""RTP packets (RFC 3550 §5.1), telephone-events (RFC 4733 §2.3) and pcap files for sipp.

Not gateway code: the suite builds its media with the stdlib so a bug in the
gateway's RTP module cannot hide in both ends of a test.

sipp's ``play_pcap_audio`` (3.6.1, ``send_packets.c``) sends the UDP part of each
captured packet from a raw socket: it rewrites the source to ``-mi`` and the port
named by the ``[media_port+N]`` keyword of the SDP line, the destination to the
peer's SDP address, shifts both ports by ``dport - min(dport)``, keeps the RTP
header as captured and paces by the capture timestamps.  So every packet here
goes to one destination port, and the sequence numbers, timestamps and SSRC of
the speech and DTMF files continue each other as one stream would.
"""

from __future__ import annotations

import struct
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path

from tests.interop.peers import g711

SIPP_PCAP_DIR = Path("/usr/share/sip-tester")  # Debian's sip-tester
PCAP_MAGIC = 0xA1B2C3D4  # microsecond timestamps
# Capture times start here, not at 0: sipp's pacer (send_packets.c do_sleep)
# takes a zero timestamp for "no previous packet" and would send the second
# packet of the file at once, 20 ms early.
PCAP_EPOCH = 1_700_000_000
LINKTYPE_ETHERNET = 1
LINKTYPE_LINUX_SLL = 113

PT_PCMU = 0
PT_PCMA = 8
PT_EVENT = 101  # telephone-event, as every scenario offers it
DTMF_EVENTS = "0123456789*#ABCD"  # RFC 4733 §3.2 event codes 0-15


@dataclass(frozen=True)
class RtpPacket:
    """An RTP packet (RFC 3550 §5.1); CSRCs and header extensions are skipped on parse."""

    payload_type: int
    sequence: int
    timestamp: int
    ssrc: int
    payload: bytes
    marker: bool = False

    def __bytes__(self) -> bytes:
        return (
            struct.pack(
                "!BBHII",
                0x80,
                (0x80 if self.marker else 0) | self.payload_type,
                self.sequence & 0xFFFF,
                self.timestamp & 0xFFFFFFFF,
                self.ssrc,
            )
            + self.payload
        )

    @classmethod
    def parse(cls, data: bytes) -> RtpPacket:
        """Raises ``ValueError`` for anything that is not RTP version 2."""
        if len(data) < 12 or data[0] >> 6 != 2:
            raise ValueError(f"not RTP v2 ({len(data)} bytes)")
        b0, b1, seq, ts, ssrc = struct.unpack_from("!BBHII", data)
        offset = 12 + 4 * (b0 & 0x0F)
        if b0 & 0x10:  # header extension: 16-bit profile, 16-bit length in words
            if len(data) < offset + 4:
                raise ValueError("truncated RTP header extension")
            offset += 4 + 4 * struct.unpack_from("!H", data, offset + 2)[0]
        end = len(data)
        if b0 & 0x20:
            end -= data[-1]
        if offset > end:
            raise ValueError("RTP header longer than the packet")
        return cls(b1 & 0x7F, seq, ts, ssrc, data[offset:end], bool(b1 & 0x80))


@dataclass(frozen=True)
class TelephoneEvent:
    """An RFC 4733 §2.3 event payload: event code, end bit, volume, duration in samples."""

    event: int
    end: bool
    volume: int
    duration: int

    def __bytes__(self) -> bytes:
        return struct.pack(
            "!BBH", self.event, (0x80 if self.end else 0) | self.volume, self.duration
        )

    @classmethod
    def parse(cls, payload: bytes) -> TelephoneEvent:
        if len(payload) < 4:
            raise ValueError(f"telephone-event payload of {len(payload)} bytes")
        event, flags, duration = struct.unpack_from("!BBH", payload)
        return cls(event, bool(flags & 0x80), flags & 0x3F, duration)

    @property
    def digit(self) -> str:
        return DTMF_EVENTS[self.event] if self.event < len(DTMF_EVENTS) else f"?{self.event}"


# --------------------------------------------------------------------------------------------
# pcap files


def _ip_checksum(header: bytes) -> int:
    total: int = sum(struct.unpack(f"!{len(header) // 2}H", header))
    while total >> 16:
        total = (total & 0xFFFF) + (total >> 16)
    return ~total & 0xFFFF


def _frame(udp_payload: bytes, src: tuple[str, int], dst: tuple[str, int]) -> bytes:
    """Ethernet + IPv4 + UDP around *udp_payload* (UDP checksum 0: sipp recomputes it)."""
    udp = struct.pack("!HHHH", src[1], dst[1], 8 + len(udp_payload), 0) + udp_payload
    addrs = bytes(int(x) for x in src[0].split(".")) + bytes(int(x) for x in dst[0].split("."))
    ip = struct.pack("!BBHHHBBH", 0x45, 0, 20 + len(udp), 0, 0x4000, 64, 17, 0) + addrs
    ip = ip[:10] + struct.pack("!H", _ip_checksum(ip)) + ip[12:]
    ether = b"\x02\x00\x00\x00\x00\x02" + b"\x02\x00\x00\x00\x00\x01" + b"\x08\x00"
    return ether + ip + udp


def write_pcap(
    path: Path,
    datagrams: Iterable[tuple[float, bytes]],
    src: tuple[str, int] = ("192.0.2.1", 5000),
    dst: tuple[str, int] = ("192.0.2.2", 6000),
) -> None:
    """Write ``(seconds, udp_payload)`` pairs as an Ethernet pcap, all from *src* to *dst*.

    *seconds* count from the start of the file (:data:`PCAP_EPOCH` is added).
    """
    out = bytearray(struct.pack("<IHHiIII", PCAP_MAGIC, 2, 4, 0, 0, 65535, LINKTYPE_ETHERNET))
    for at, payload in datagrams:
        frame = _frame(payload, src, dst)
        usec = round((PCAP_EPOCH + at) * 1_000_000)
        out += struct.pack("<IIII", usec // 1_000_000, usec % 1_000_000, len(frame), len(frame))
        out += frame
    path.write_bytes(bytes(out))


def read_pcap(path: Path) -> Iterator[tuple[float, bytes]]:
    """``(capture time, udp_payload)`` of every IPv4/UDP packet of a classic pcap file."""
    data = path.read_bytes()
    magic = struct.unpack_from("<I", data)[0]
    if magic != PCAP_MAGIC:
        raise ValueError(f"{path}: not a little-endian microsecond pcap (magic {magic:#x})")
    linktype = struct.unpack_from("<I", data, 20)[0]
    link_len = {LINKTYPE_ETHERNET: 14, LINKTYPE_LINUX_SLL: 16}.get(linktype)
    if link_len is None:
        raise ValueError(f"{path}: unsupported link type {linktype}")
    offset = 24
    while offset + 16 <= len(data):
        sec, usec, incl, _orig = struct.unpack_from("<IIII", data, offset)
        frame = data[offset + 16 : offset + 16 + incl]
        offset += 16 + incl
        ip = frame[link_len:]
        if len(ip) < 20 or ip[0] >> 4 != 4 or ip[9] != 17:
            continue
        udp = ip[(ip[0] & 0x0F) * 4 :]
        length: int = struct.unpack_from("!H", udp, 4)[0]
        yield sec + usec / 1_000_000, udp[8:length]


# --------------------------------------------------------------------------------------------
# The suite's media


@dataclass(frozen=True)
class TestMedia:
    """The pcaps every sipp scenario plays, and what they contain.

    ``speech_alaw``/``speech_ulaw`` are the exact payload streams of ``pcma.pcap``
    and ``pcmu.pcap``; ``dtmf.pcap`` continues either stream (same SSRC, next
    sequence numbers) with the digits of ``dtmf_digits``.
    """

    __test__ = False  # not a pytest class, despite the name

    directory: Path
    pcma: Path
    pcmu: Path
    dtmf: Path
    speech_alaw: bytes
    speech_ulaw: bytes
    dtmf_digits: str
    dtmf_duration_ms: int
    ssrc: int

    def speech(self, payload_type: int) -> bytes:
        return {PT_PCMA: self.speech_alaw, PT_PCMU: self.speech_ulaw}[payload_type]


SSRC = 0x4C470001
FIRST_SEQ = 1000
FIRST_TS = 80000
PTIME = 0.020
SAMPLES = 160  # per 20 ms packet
# Seconds from the start of the speech pcap to the start of the DTMF pcap in the
# scenarios (uac_*_echo.xml: play speech, pause, play DTMF): the DTMF timestamps
# continue the RTP clock across that pause as a real sender's would.
DTMF_START = 3.5


def sipp_speech_alaw(seconds: float, skip: float = 0.6) -> bytes:
    """*seconds* of A-law speech from sipp's ``g711a.pcap`` (7 s in 30 ms packets).

    The first 0.6 s of that file is digital silence; starting after it gives the
    echo analysis an unambiguous first frame.
    """
    stream = b"".join(p[12:] for _t, p in read_pcap(SIPP_PCAP_DIR / "g711a.pcap"))
    start = round(skip * 8000)
    speech = stream[start : start + round(seconds * 8000)]
    if len(speech) != round(seconds * 8000):
        raise ValueError(f"g711a.pcap holds only {len(stream) / 8000:.2f} s of audio")
    return speech


def speech_packets(payload_type: int, payload: bytes) -> list[tuple[float, bytes]]:
    """20 ms RTP packets of *payload*, marker on the first (RFC 3551 §4.1)."""
    out = []
    for i in range(len(payload) // SAMPLES):
        rtp = RtpPacket(
            payload_type,
            FIRST_SEQ + i,
            FIRST_TS + i * SAMPLES,
            SSRC,
            payload[i * SAMPLES : (i + 1) * SAMPLES],
            marker=i == 0,
        )
        out.append((i * PTIME, bytes(rtp)))
    return out


def dtmf_packets(
    digits: str,
    first_seq: int,
    first_ts: int,
    duration_ms: int = 200,
    spacing_ms: int = 400,
    volume: int = 10,
) -> list[tuple[float, bytes]]:
    """RFC 4733 §2.5 events: updates every 20 ms, then the end packet sent three times.

    Each event keeps the timestamp of its start; the duration grows by 160 per
    packet; the first packet has the marker bit; the final duration goes out in
    three packets with the E bit (§2.5.1.4), each with its own sequence number.
    """
    out: list[tuple[float, bytes]] = []
    seq = first_seq
    final = duration_ms * 8
    for n, digit in enumerate(digits):
        start_s = n * spacing_ms / 1000
        ts = first_ts + n * spacing_ms * 8
        updates = final // SAMPLES - 1
        durations = [(k + 1) * SAMPLES for k in range(updates)] + [final] * 3
        for k, duration in enumerate(durations):
            event = TelephoneEvent(DTMF_EVENTS.index(digit), k >= updates, volume, duration)
            rtp = RtpPacket(PT_EVENT, seq, ts, SSRC, bytes(event), marker=k == 0)
            out.append((start_s + k * PTIME, bytes(rtp)))
            seq += 1
    return out


def build_media(directory: Path, seconds: float = 3.0, digits: str = "159") -> TestMedia:
    """Write ``pcma.pcap``, ``pcmu.pcap`` and ``dtmf.pcap`` into *directory*."""
    directory.mkdir(parents=True, exist_ok=True)
    alaw = sipp_speech_alaw(seconds)
    # µ-law through linear with a standard encoder: never the non-canonical 0x7F.
    ulaw = g711.ulaw_encode(g711.alaw_decode(alaw))
    pcma, pcmu, dtmf = directory / "pcma.pcap", directory / "pcmu.pcap", directory / "dtmf.pcap"
    write_pcap(pcma, speech_packets(PT_PCMA, alaw))
    write_pcap(pcmu, speech_packets(PT_PCMU, ulaw))
    n = len(alaw) // SAMPLES
    write_pcap(dtmf, dtmf_packets(digits, FIRST_SEQ + n, FIRST_TS + round(DTMF_START * 8000)))
    return TestMedia(directory, pcma, pcmu, dtmf, alaw, ulaw, digits, 200, SSRC)

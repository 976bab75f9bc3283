"""RTP fixed header and sequence arithmetic (RFC 3550 §5.1, §5.3.1; RFC 5761 §4).

:class:`RtpPacket` round-trips through :meth:`RtpPacket.parse` and
``bytes(packet)``.  The header extension is not interpreted but is kept so a
packet re-serialises unchanged.  Sequence numbers wrap at 2**16 and
timestamps at 2**32; compare them only through the helpers here.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass, field

from gateway.errors import RtpError

__all__ = [
    "RTP_HEADER_SIZE",
    "RTP_VERSION",
    "RtpError",
    "RtpExtension",
    "RtpPacket",
    "is_rtcp",
    "seq_add",
    "seq_diff",
    "seq_newer",
    "ts_add",
    "ts_diff",
]

RTP_VERSION = 2
RTP_HEADER_SIZE = 12
_HEADER = struct.Struct("!BBHII")


@dataclass(frozen=True, slots=True)
class RtpExtension:
    """A header extension (RFC 3550 §5.3.1): 16-bit profile word and 32-bit-aligned data."""

    profile: int
    data: bytes


@dataclass(slots=True)
class RtpPacket:
    """One RTP packet.

    ``padding`` is the number of padding octets at the end, the count octet
    included (0 = the P bit is clear); padding octets are written as zeros.
    """

    payload_type: int
    sequence: int
    timestamp: int
    ssrc: int
    payload: bytes = b""
    marker: bool = False
    csrcs: list[int] = field(default_factory=list)
    extension: RtpExtension | None = None
    padding: int = 0

    version = RTP_VERSION

    @classmethod
    def parse(cls, data: bytes) -> RtpPacket:
        """Parse one datagram.

        Raises:
            RtpError: the datagram is not a well-formed RTP version 2 packet.
        """
        size = len(data)
        if size < RTP_HEADER_SIZE:
            raise RtpError(f"RTP packet too short: {size} bytes, the fixed header needs 12")
        b0, b1, sequence, timestamp, ssrc = _HEADER.unpack_from(data)
        if b0 >> 6 != RTP_VERSION:
            raise RtpError(f"RTP version {b0 >> 6} is not 2")
        offset = RTP_HEADER_SIZE
        csrcs: list[int] = []
        cc = b0 & 0x0F
        if cc:
            end = offset + 4 * cc
            if end > size:
                raise RtpError(
                    f"RTP packet truncated in CSRC list: {cc} CSRCs need {end} bytes, got {size}"
                )
            csrcs = list(struct.unpack_from(f"!{cc}I", data, offset))
            offset = end
        extension = None
        if b0 & 0x10:
            if offset + 4 > size:
                raise RtpError(
                    f"RTP header extension truncated: no room for its header in {size} bytes"
                )
            profile, words = struct.unpack_from("!HH", data, offset)
            end = offset + 4 + 4 * words
            if end > size:
                raise RtpError(
                    f"RTP header extension truncated: {words} words need {end} bytes, got {size}"
                )
            extension = RtpExtension(profile, bytes(data[offset + 4 : end]))
            offset = end
        padding = 0
        if b0 & 0x20:
            padding = data[-1]
            if padding == 0:
                raise RtpError("RTP padding count is 0")
            if offset + padding > size:
                raise RtpError(
                    f"RTP padding count {padding} exceeds the {size - offset} payload bytes"
                )
        return cls(
            payload_type=b1 & 0x7F,
            sequence=sequence,
            timestamp=timestamp,
            ssrc=ssrc,
            payload=bytes(data[offset : size - padding]),
            marker=bool(b1 & 0x80),
            csrcs=csrcs,
            extension=extension,
            padding=padding,
        )

    def __bytes__(self) -> bytes:
        if len(self.csrcs) > 15:
            raise RtpError(f"RTP packet has {len(self.csrcs)} CSRCs, at most 15 fit")
        if not 0 <= self.payload_type <= 127:
            raise RtpError(f"RTP payload type {self.payload_type} is outside 0..127")
        if not 0 <= self.padding <= 255:
            raise RtpError(f"RTP padding {self.padding} is outside 0..255")
        b0 = RTP_VERSION << 6 | len(self.csrcs)
        if self.padding:
            b0 |= 0x20
        if self.extension is not None:
            b0 |= 0x10
        b1 = self.payload_type | (0x80 if self.marker else 0)
        parts = [_HEADER.pack(b0, b1, self.sequence, self.timestamp, self.ssrc)]
        if self.csrcs:
            parts.append(struct.pack(f"!{len(self.csrcs)}I", *self.csrcs))
        if self.extension is not None:
            ext = self.extension
            if len(ext.data) % 4:
                raise RtpError(
                    f"RTP header extension of {len(ext.data)} bytes is not 32-bit aligned"
                )
            parts.append(struct.pack("!HH", ext.profile, len(ext.data) // 4))
            parts.append(ext.data)
        parts.append(self.payload)
        if self.padding:
            parts.append(bytes(self.padding - 1) + bytes([self.padding]))
        return b"".join(parts)


def is_rtcp(data: bytes) -> bool:
    """Whether a datagram on a muxed RTP/RTCP port is RTCP (RFC 5761 §4).

    The second octet of RTCP is its packet type: SR 200, RR 201, SDES 202,
    BYE 203, APP 204, and the later feedback/XR types up to 207.  RFC 5761
    reserves the whole 192..223 range, which RTP payload types must avoid.
    """
    return len(data) >= 2 and data[0] >> 6 == RTP_VERSION and 192 <= data[1] <= 223


def seq_diff(a: int, b: int) -> int:
    """Signed distance ``a - b`` between two 16-bit sequence numbers, in -32768..32767."""
    return ((a - b + 0x8000) & 0xFFFF) - 0x8000


def seq_newer(a: int, b: int) -> bool:
    """Whether sequence ``a`` comes after ``b`` (modulo 2**16)."""
    return seq_diff(a, b) > 0


def seq_add(a: int, n: int) -> int:
    """Sequence number ``n`` steps after ``a``."""
    return (a + n) & 0xFFFF


def ts_diff(a: int, b: int) -> int:
    """Signed distance ``a - b`` between two 32-bit RTP timestamps."""
    return ((a - b + 0x80000000) & 0xFFFFFFFF) - 0x80000000


def ts_add(a: int, n: int) -> int:
    """RTP timestamp ``n`` units after ``a``."""
    return (a + n) & 0xFFFFFFFF

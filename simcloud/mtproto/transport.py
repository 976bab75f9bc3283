"""MTProto TCP transports, server side, sans-IO (https://core.telegram.org/mtproto/mtproto-transports).

A connection announces its framing with its first bytes: 0xef abridged,
0xeeeeeeee intermediate, 0xdddddddd padded intermediate; anything else is
the full transport (Telethon's default `ConnectionTcpFull`: length, sequence
number, payload, CRC32).  `ServerTransport.feed(bytes)` returns the complete
payloads received so far and `encode(payload)` frames one for the client.
Malformed input raises `FramingError`; the server then closes the connection.
"""

from __future__ import annotations

import os
import struct
import zlib
from abc import ABC, abstractmethod

# Larger than any message Telethon sends (a container is capped near 1 MiB);
# anything beyond is garbage or abuse and closes the connection.
MAX_PACKET = 4 * 1024 * 1024

ABRIDGED_TAG = b"\xef"
INTERMEDIATE_TAG = b"\xee\xee\xee\xee"
PADDED_TAG = b"\xdd\xdd\xdd\xdd"


class FramingError(ValueError):
    """The byte stream does not follow the connection's transport framing."""


def transport_error(code: int) -> bytes:
    """The 4-byte payload Telegram sends instead of a message, e.g. -404 (unknown auth key)."""
    return struct.pack("<i", -abs(code))


class Codec(ABC):
    """One transport's framing: a buffer of received bytes and a frame writer."""

    name: str

    def __init__(self) -> None:
        self._buf = bytearray()

    def feed(self, data: bytes) -> list[bytes]:
        """Add received bytes; return every payload now complete."""
        self._buf += data
        packets = []
        while (packet := self._next_packet()) is not None:
            packets.append(packet)
        return packets

    @abstractmethod
    def _next_packet(self) -> bytes | None:
        """Take one complete payload off the buffer, or None if more bytes are needed."""

    @abstractmethod
    def encode(self, payload: bytes) -> bytes:
        """Frame one payload for sending."""

    def _take(self, n: int) -> bytes:
        chunk = bytes(self._buf[:n])
        del self._buf[:n]
        return chunk


def _check_length(length: int) -> None:
    if length <= 0 or length > MAX_PACKET:
        raise FramingError(f"packet length {length} out of range")


class FullCodec(Codec):
    """len:int32 seq:int32 payload crc32:uint32, each direction counting its own seq from 0."""

    name = "full"

    def __init__(self) -> None:
        super().__init__()
        self._recv_seq = 0
        self._send_seq = 0

    def _next_packet(self) -> bytes | None:
        if len(self._buf) < 8:
            return None
        length, seq = struct.unpack_from("<ii", self._buf)
        if length < 12 or length > MAX_PACKET + 12:
            raise FramingError(f"full transport length {length} out of range")
        if len(self._buf) < length:
            return None
        frame = self._take(length)
        (crc,) = struct.unpack_from("<I", frame, length - 4)
        if zlib.crc32(frame[:-4]) != crc:
            raise FramingError("full transport CRC32 mismatch")
        if seq != self._recv_seq:
            raise FramingError(f"full transport seq {seq}, expected {self._recv_seq}")
        self._recv_seq += 1
        payload = frame[8:-4]
        _check_length(len(payload))
        return payload

    def encode(self, payload: bytes) -> bytes:
        head = struct.pack("<ii", len(payload) + 12, self._send_seq)
        self._send_seq += 1
        return head + payload + struct.pack("<I", zlib.crc32(head + payload))


class IntermediateCodec(Codec):
    """len:int32 payload; the padded variant adds 0-3 random bytes the reader drops."""

    def __init__(self, *, padded: bool) -> None:
        super().__init__()
        self.padded = padded
        self.name = "padded-intermediate" if padded else "intermediate"

    def _next_packet(self) -> bytes | None:
        if len(self._buf) < 4:
            return None
        (length,) = struct.unpack_from("<I", self._buf)
        length &= 0x7FFFFFFF  # the top bit asks for a quick ack, which we do not send
        _check_length(length)
        if len(self._buf) < 4 + length:
            return None
        payload = self._take(4 + length)[4:]
        if self.padded:
            # MTProto payloads are 4-byte aligned, so the remainder is the padding.
            payload = payload[: len(payload) - len(payload) % 4]
            _check_length(len(payload))
        return payload

    def encode(self, payload: bytes) -> bytes:
        if self.padded:
            payload += os.urandom(os.urandom(1)[0] % 4)
        return struct.pack("<i", len(payload)) + payload


class AbridgedCodec(Codec):
    """len/4 in one byte (or 0x7f + 3 bytes little-endian) then the payload."""

    name = "abridged"

    def _next_packet(self) -> bytes | None:
        if not self._buf:
            return None
        words = self._buf[0] & 0x7F  # the top bit asks for a quick ack
        head = 1
        if words == 0x7F:
            if len(self._buf) < 4:
                return None
            words = int.from_bytes(self._buf[1:4], "little")
            head = 4
        length = words * 4
        _check_length(length)
        if len(self._buf) < head + length:
            return None
        return self._take(head + length)[head:]

    def encode(self, payload: bytes) -> bytes:
        if len(payload) % 4:
            raise ValueError("abridged payloads are 4-byte aligned")
        words = len(payload) // 4
        if words < 0x7F:
            return bytes([words]) + payload
        return b"\x7f" + words.to_bytes(3, "little") + payload


class ServerTransport:
    """Detects the client's transport from its first bytes, then frames with it."""

    def __init__(self) -> None:
        self.codec: Codec | None = None
        self._head = b""

    def feed(self, data: bytes) -> list[bytes]:
        if self.codec is None:
            self._head += data
            codec, consumed = _detect(self._head)
            if codec is None:
                return []
            self.codec, data = codec, self._head[consumed:]
            self._head = b""
        return self.codec.feed(data)

    def encode(self, payload: bytes) -> bytes:
        if self.codec is None:
            raise RuntimeError("no transport detected yet")
        return self.codec.encode(payload)


def _detect(head: bytes) -> tuple[Codec | None, int]:
    if head[:1] == ABRIDGED_TAG:
        return AbridgedCodec(), 1
    if len(head) < 4:
        return None, 0
    tag = head[:4]
    if tag == INTERMEDIATE_TAG:
        return IntermediateCodec(padded=False), 4
    if tag == PADDED_TAG:
        return IntermediateCodec(padded=True), 4
    if head[:4] in (b"GET ", b"POST", b"HEAD", b"OPTI", b"PUT "):
        raise FramingError("HTTP transport is not supported")
    # Obfuscated transports start with 64 random bytes and are not supported;
    # they fail the full transport's length or CRC check.
    return FullCodec(), 0

"""MTProto TCP transports (simcloud.mtproto.transport) against Telethon's own codecs."""

from __future__ import annotations

import asyncio
import os
import struct
import zlib

import pytest
from telethon.errors import InvalidBufferError
from telethon.network.connection.connection import PacketCodec
from telethon.network.connection.tcpabridged import AbridgedPacketCodec
from telethon.network.connection.tcpfull import FullPacketCodec
from telethon.network.connection.tcpintermediate import (
    IntermediatePacketCodec,
    RandomizedIntermediatePacketCodec,
)

from simcloud.mtproto.transport import (
    MAX_PACKET,
    FramingError,
    FullCodec,
    ServerTransport,
    transport_error,
)

# Telethon's codec class, the bytes it sends before its first packet, our codec's name.
CODECS = [
    (FullPacketCodec, b"", "full"),
    (IntermediatePacketCodec, b"\xee\xee\xee\xee", "intermediate"),
    (RandomizedIntermediatePacketCodec, b"\xdd\xdd\xdd\xdd", "padded-intermediate"),
    (AbridgedPacketCodec, b"\xef", "abridged"),
]
# MTProto payloads are 4-byte aligned; the sizes cross abridged's 1-byte/4-byte length switch.
PAYLOADS = [bytes(range(4)) * 5, os.urandom(508), os.urandom(512), os.urandom(70_000)]


async def telethon_reads(codec: PacketCodec, wire: bytes) -> list[bytes]:
    reader = asyncio.StreamReader()
    reader.feed_data(wire)
    reader.feed_eof()
    out = []
    while not reader.at_eof():
        out.append(await codec.read_packet(reader))
    return out


@pytest.mark.parametrize(("client_codec", "tag", "name"), CODECS)
async def test_client_packets_decode_and_ours_read_back(
    client_codec: type[PacketCodec], tag: bytes, name: str
) -> None:
    client = client_codec(None)
    wire = tag + b"".join(client.encode_packet(p) for p in PAYLOADS)
    server = ServerTransport()
    received: list[bytes] = []
    # Byte-sized and odd-sized chunks: framing must not depend on read boundaries.
    for step in (1, 3, 1000):
        server = ServerTransport()
        received = []
        for i in range(0, len(wire), step):
            received += server.feed(wire[i : i + step])
        assert received == PAYLOADS
    assert server.codec is not None and server.codec.name == name
    answers = [server.encode(p) for p in PAYLOADS]
    assert await telethon_reads(client_codec(None), b"".join(answers)) == PAYLOADS


@pytest.mark.parametrize(("client_codec", "tag", "name"), CODECS)
async def test_transport_error_reaches_telethon_as_its_code(
    client_codec: type[PacketCodec], tag: bytes, name: str
) -> None:
    server = ServerTransport()
    server.feed(tag + client_codec(None).encode_packet(b"\0" * 8))
    (body,) = await telethon_reads(client_codec(None), server.encode(transport_error(404)))
    assert InvalidBufferError(body).code == 404


def full_frame(payload: bytes, seq: int = 0) -> bytes:
    head = struct.pack("<ii", len(payload) + 12, seq)
    return head + payload + struct.pack("<I", zlib.crc32(head + payload))


def test_full_bad_crc_is_refused() -> None:
    frame = bytearray(full_frame(b"\1" * 16))
    frame[-1] ^= 0xFF
    with pytest.raises(FramingError, match="CRC32"):
        FullCodec().feed(bytes(frame))


def test_full_seq_must_count_from_zero() -> None:
    codec = FullCodec()
    assert codec.feed(full_frame(b"a" * 8, 0)) == [b"a" * 8]
    with pytest.raises(FramingError, match="seq 5, expected 1"):
        codec.feed(full_frame(b"b" * 8, 5))


def test_server_seq_counts_its_own_packets() -> None:
    codec = FullCodec()
    codec.feed(full_frame(b"x" * 8, 0))
    first, second = codec.encode(b"y" * 8), codec.encode(b"z" * 8)
    assert struct.unpack_from("<i", first, 4)[0] == 0
    assert struct.unpack_from("<i", second, 4)[0] == 1


@pytest.mark.parametrize(
    "wire",
    [
        struct.pack("<ii", MAX_PACKET + 100, 0),  # full, absurd length
        struct.pack("<ii", 5, 0),  # full, shorter than its own header
        struct.pack("<ii", -429, -429),  # full, negative
        b"\xee\xee\xee\xee" + struct.pack("<I", MAX_PACKET + 1),
        b"\xee\xee\xee\xee" + struct.pack("<I", 0),
        b"\xdd\xdd\xdd\xdd" + struct.pack("<I", 3) + b"abc",  # only padding
        b"\xef\x7f" + (MAX_PACKET // 4 + 1).to_bytes(3, "little"),
        b"\xef\x00",
        b"GET / HTTP/1.1\r\n\r\n",
    ],
)
def test_absurd_frames_are_refused(wire: bytes) -> None:
    with pytest.raises(FramingError):
        ServerTransport().feed(wire)


def test_short_head_waits_for_more_bytes() -> None:
    server = ServerTransport()
    assert server.feed(b"\xee\xee") == []
    assert server.codec is None
    assert server.feed(b"\xee\xee" + struct.pack("<i", 4) + b"abcd") == [b"abcd"]
    assert server.codec is not None and server.codec.name == "intermediate"


def test_quick_ack_bit_is_ignored() -> None:
    server = ServerTransport()
    wire = b"\xee\xee\xee\xee" + struct.pack("<I", 0x80000008) + b"12345678"
    assert server.feed(wire) == [b"12345678"]
    abridged = ServerTransport()
    assert abridged.feed(b"\xef" + bytes([0x80 | 2]) + b"12345678") == [b"12345678"]

"""RTP fixed header (RFC 3550 §5.1) and sequence arithmetic."""

import pytest

from gateway.errors import RtpError
from gateway.media.rtp import (
    RtpExtension,
    RtpPacket,
    is_rtcp,
    seq_add,
    seq_diff,
    seq_newer,
    ts_add,
    ts_diff,
)

# PCMA, marker, seq 0x1234, ts 0xdeadbeef, ssrc 0x01020304, 4 payload bytes.
SIMPLE = bytes.fromhex("80 88 1234 deadbeef 01020304 d5d5d5d5")


def test_parse_simple() -> None:
    packet = RtpPacket.parse(SIMPLE)
    assert packet == RtpPacket(
        payload_type=8,
        sequence=0x1234,
        timestamp=0xDEADBEEF,
        ssrc=0x01020304,
        payload=b"\xd5" * 4,
        marker=True,
    )
    assert packet.version == 2
    assert bytes(packet) == SIMPLE


def test_parse_csrc_extension_padding() -> None:
    data = bytes.fromhex(
        "b2 00 0001 00000010 0a0b0c0d"  # V=2 P=1 X=1 CC=2, PT 0
        "00000001 00000002"  # CSRCs
        "bede 0001 11223344"  # one-word extension
        "ff7f"  # payload
        "000003"  # 3 padding octets, count last
    )
    packet = RtpPacket.parse(data)
    assert packet.csrcs == [1, 2]
    assert packet.extension == RtpExtension(0xBEDE, bytes.fromhex("11223344"))
    assert packet.padding == 3
    assert packet.payload == b"\xff\x7f"
    assert (packet.payload_type, packet.marker, packet.sequence) == (0, False, 1)
    assert bytes(packet) == data


@pytest.mark.parametrize(
    ("data", "message"),
    [
        (b"\x80\x00\x00", "RTP packet too short: 3 bytes, the fixed header needs 12"),
        (bytes.fromhex("40 00 0000 00000000 00000000"), "RTP version 1 is not 2"),
        (
            bytes.fromhex("82 00 0000 00000000 00000000 00000001"),
            "RTP packet truncated in CSRC list: 2 CSRCs need 20 bytes, got 16",
        ),
        (
            bytes.fromhex("90 00 0000 00000000 00000000 bede"),
            "RTP header extension truncated: no room for its header in 14 bytes",
        ),
        (
            bytes.fromhex("90 00 0000 00000000 00000000 bede 0002 00000000"),
            "RTP header extension truncated: 2 words need 24 bytes, got 20",
        ),
        (bytes.fromhex("a0 00 0000 00000000 00000000 aa00"), "RTP padding count is 0"),
        (
            bytes.fromhex("a0 00 0000 00000000 00000000 aa05"),
            "RTP padding count 5 exceeds the 2 payload bytes",
        ),
    ],
)
def test_parse_errors(data: bytes, message: str) -> None:
    with pytest.raises(RtpError) as info:
        RtpPacket.parse(data)
    assert str(info.value) == message


def test_serialise_errors() -> None:
    with pytest.raises(RtpError, match="RTP packet has 16 CSRCs, at most 15 fit"):
        bytes(RtpPacket(0, 0, 0, 0, csrcs=list(range(16))))
    with pytest.raises(RtpError, match="RTP payload type 128 is outside 0..127"):
        bytes(RtpPacket(128, 0, 0, 0))
    with pytest.raises(RtpError, match="RTP header extension of 3 bytes is not 32-bit aligned"):
        bytes(RtpPacket(0, 0, 0, 0, extension=RtpExtension(1, b"abc")))


def test_round_trip_built_packet() -> None:
    packet = RtpPacket(101, 65535, 0xFFFFFFFF, 0xCAFEBABE, b"\x01\x8a\x03\x20", marker=True)
    data = bytes(packet)
    assert data[:2] == b"\x80\xe5"
    assert RtpPacket.parse(data) == packet


def test_is_rtcp() -> None:
    assert is_rtcp(bytes.fromhex("80c8 0006"))  # SR
    assert is_rtcp(bytes.fromhex("81c9 0007"))  # RR
    assert is_rtcp(bytes.fromhex("81cb 0001"))  # BYE
    assert not is_rtcp(SIMPLE)
    assert not is_rtcp(bytes.fromhex("8000"))
    assert not is_rtcp(bytes.fromhex("00c8"))  # version 0 (e.g. STUN)
    assert not is_rtcp(b"\x80")


def test_sequence_helpers() -> None:
    assert seq_diff(5, 3) == 2
    assert seq_diff(3, 5) == -2
    assert seq_diff(0, 65535) == 1
    assert seq_diff(65535, 0) == -1
    assert seq_diff(0x8000, 0) == -32768
    assert seq_newer(2, 65530)
    assert not seq_newer(65530, 2)
    assert not seq_newer(7, 7)
    assert seq_add(65535, 2) == 1
    assert ts_diff(10, 0xFFFFFFF0) == 26
    assert ts_diff(0xFFFFFFF0, 10) == -26
    assert ts_add(0xFFFFFF00, 0x200) == 0x100

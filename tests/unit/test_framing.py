"""Stream framing for SIP over TCP."""

from __future__ import annotations

import pytest

from gateway.errors import SipParseError
from gateway.sip.framing import Ping, StreamFramer

MESSAGE = (
    b"OPTIONS sip:600@127.0.0.1 SIP/2.0\r\nVia: SIP/2.0/TCP 127.0.0.2;branch=z9hG4bK1\r\n"
    b"From: <sip:a@b>;tag=1\r\nTo: <sip:600@127.0.0.1>\r\nCall-ID: f1\r\nCSeq: 1 OPTIONS\r\n"
    b"Content-Type: text/plain\r\nContent-Length: 5\r\n\r\nhello"
)


def test_messages_split_anywhere_come_out_whole() -> None:
    stream = MESSAGE * 3
    for cut in (1, 7, 50, len(MESSAGE) - 1, len(MESSAGE) + 3):
        framer = StreamFramer()
        out = framer.feed(stream[:cut]) + framer.feed(stream[cut:])
        assert out == [MESSAGE] * 3


def test_one_byte_at_a_time() -> None:
    framer = StreamFramer()
    out: list[bytes | Ping] = []
    for i in range(len(MESSAGE)):
        out += framer.feed(MESSAGE[i : i + 1])
    assert out == [MESSAGE]


def test_double_crlf_is_a_ping_single_is_ignored() -> None:
    framer = StreamFramer()
    assert framer.feed(b"\r\n\r\n") == [Ping()]
    assert framer.feed(b"\r\n" + MESSAGE) == [MESSAGE]


@pytest.mark.parametrize(
    ("data", "error"),
    [
        (MESSAGE.replace(b"Content-Length: 5\r\n", b""), "Content-Length is required"),
        (MESSAGE.replace(b"Content-Length: 5", b"Content-Length: -5"), "bad Content-Length"),
        (MESSAGE.replace(b"Content-Length: 5", b"l: 99999999"), "bad Content-Length"),
        (MESSAGE.replace(b"Content-Length: 5", b"Content-Length: 70000"), "message too large"),
    ],
)
def test_framing_errors(data: bytes, error: str) -> None:
    with pytest.raises(SipParseError, match=error):
        StreamFramer().feed(data)


def test_endless_header_is_refused() -> None:
    framer = StreamFramer()
    with pytest.raises(SipParseError, match="header section too long"):
        for _ in range(200):
            framer.feed(b"X-Junk: " + b"a" * 1000 + b"\r\n")


def test_compact_content_length() -> None:
    data = MESSAGE.replace(b"Content-Length: 5", b"l:5")
    assert StreamFramer().feed(data) == [data]


def test_over_stream_reads_the_top_via() -> None:
    from gateway.sip.transport import over_stream

    assert over_stream(MESSAGE)
    assert not over_stream(MESSAGE.replace(b"SIP/2.0/TCP", b"SIP/2.0/UDP"))
    # Only the top Via counts, in either header form, and never the body.
    two = MESSAGE.replace(
        b"Via: SIP/2.0/TCP", b"v: SIP/2.0/UDP 127.0.0.9;branch=z9hG4bK2\r\nVia: SIP/2.0/TCP"
    )
    assert not over_stream(two)
    assert not over_stream(b"SIP/2.0 200 OK\r\nContent-Length: 20\r\n\r\nVia: SIP/2.0/TCP x")

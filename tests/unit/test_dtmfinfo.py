"""DTMF in SIP INFO bodies."""

from __future__ import annotations

import pytest

from gateway.sip.dtmfinfo import make_info_dtmf, parse_info_dtmf


@pytest.mark.parametrize(
    ("content_type", "body", "expected"),
    [
        ("application/dtmf-relay", b"Signal=5\r\nDuration=160\r\n", ("5", 160)),
        ("application/dtmf-relay", b"Signal= *\nDuration= 250", ("*", 250)),
        ("application/dtmf-relay", b"Signal=10\r\n", ("*", 250)),
        ("application/dtmf-relay", b"Signal=11\r\n", ("#", 250)),
        ("application/dtmf-relay", b"signal=d\r\n", ("D", 250)),
        ("application/dtmf", b"7", ("7", 250)),
        ("application/dtmf", b"#\r\n", ("#", 250)),
    ],
)
def test_parses_both_formats(content_type: str, body: bytes, expected: tuple[str, int]) -> None:
    assert parse_info_dtmf(content_type, body) == expected


@pytest.mark.parametrize(
    ("content_type", "body"),
    [
        ("application/dtmf-relay", b"Signal=16\r\n"),  # flash is not a key
        ("application/dtmf-relay", b"Duration=100\r\n"),
        ("application/dtmf", b"55"),
        ("application/dtmf", b"\xff"),
        ("application/media_control+xml", b"<media_control/>"),
        (None, b"Signal=5"),
    ],
)
def test_ignores_what_is_not_a_digit(content_type: str | None, body: bytes) -> None:
    assert parse_info_dtmf(content_type, body) is None


def test_make_info_round_trips() -> None:
    content_type, body = make_info_dtmf("9", 120)
    assert (content_type, body) == ("application/dtmf-relay", b"Signal=9\r\nDuration=120\r\n")
    assert parse_info_dtmf(content_type, body) == ("9", 120)
    with pytest.raises(ValueError):
        make_info_dtmf("x")

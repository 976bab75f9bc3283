"""DTMF carried in SIP INFO bodies.

Two body formats are common in the field (neither is an RFC): Cisco's
``application/dtmf-relay`` (``Signal=5\\r\\nDuration=160``) and the bare
``application/dtmf`` (``5``).  Both are parsed and produced here.
"""

from __future__ import annotations

DTMF_DIGITS = frozenset("0123456789*#ABCD")
DTMF_RELAY = "application/dtmf-relay"
DTMF_PLAIN = "application/dtmf"


def parse_info_dtmf(content_type: str | None, body: bytes) -> tuple[str, int] | None:
    """(digit, duration ms) from an INFO body, or None if it carries no DTMF.

    ``Signal=16`` is RFC 4733's event code for flash, which is not a key and
    is ignored.
    """
    if content_type not in (DTMF_RELAY, DTMF_PLAIN):
        return None
    try:
        text = body.decode("ascii")
    except UnicodeDecodeError:
        return None
    digit = ""
    duration = 250  # the common default when a peer omits Duration
    if content_type == DTMF_PLAIN:
        digit = text.strip()
    else:
        for line in text.splitlines():
            name, _, value = line.partition("=")
            name, value = name.strip().lower(), value.strip()
            if name == "signal":
                digit = value
            elif name == "duration" and value.isascii() and value.isdigit():
                duration = int(value)
    digit = digit.upper()
    if digit == "10":
        digit = "*"
    elif digit == "11":
        digit = "#"
    if len(digit) != 1 or digit not in DTMF_DIGITS:
        return None
    return digit, min(duration, 10_000)


def make_info_dtmf(digit: str, duration_ms: int = 160) -> tuple[str, bytes]:
    """(content type, body) for an INFO carrying ``digit`` as dtmf-relay."""
    if digit not in DTMF_DIGITS:
        raise ValueError(f"not a DTMF digit: {digit!r}")
    return DTMF_RELAY, f"Signal={digit}\r\nDuration={duration_ms}\r\n".encode("ascii")

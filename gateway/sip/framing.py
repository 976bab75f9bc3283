"""Finding SIP messages in a byte stream (RFC 3261 §18.3, RFC 5626 §3.5.1).

Over TCP, messages follow one another with nothing between them but what
Content-Length says, so the header section is read up to the empty line and
exactly Content-Length bytes of body after it; Content-Length is mandatory
on streams.  A double CRLF between messages is a keep-alive ping, answered
by a single CRLF pong.  Sans-IO: the connection feeds bytes in and sends
what comes out.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

from gateway.errors import SipParseError
from gateway.sip.message import MAX_DATAGRAM, MAX_HEADER_LENGTH, MAX_HEADERS

__all__ = ["StreamFramer", "Ping"]

MAX_HEAD = MAX_HEADERS * MAX_HEADER_LENGTH // 8  # 128 KiB: generous, and bounded
_CONTENT_LENGTH = re.compile(rb"^(?:content-length|l)[ \t]*:[ \t]*(\S*)[ \t]*$", re.I | re.M)


@dataclass(frozen=True)
class Ping:
    """A CRLFCRLF keep-alive arrived: answer with a single CRLF (RFC 5626 §3.5.1)."""


@dataclass
class StreamFramer:
    """Cuts one direction of a stream into whole messages.

    ``feed`` returns the complete messages (and :class:`Ping` markers) found
    so far.  A framing error (no or bad Content-Length, a head or body over
    the limits) raises :class:`SipParseError`: the stream cannot be resynced,
    so the caller closes the connection.
    """

    _buffer: bytearray = field(default_factory=bytearray)

    def feed(self, data: bytes) -> list[bytes | Ping]:
        self._buffer += data
        out: list[bytes | Ping] = []
        while True:
            item = self._next()
            if item is None:
                return out
            out.append(item)

    def _next(self) -> bytes | Ping | None:
        buffer = self._buffer
        # Leading CRLFs: a ping when doubled, otherwise tolerated (§7.5).
        stripped = 0
        while buffer[stripped : stripped + 2] == b"\r\n":
            stripped += 2
        if stripped:
            del buffer[:stripped]
            if stripped >= 4:
                return Ping()
        end = buffer.find(b"\r\n\r\n")
        if end < 0:
            if len(buffer) > MAX_HEAD:
                raise SipParseError("header section too long for a stream", status_hint=413)
            return None
        head = bytes(buffer[:end])
        match = _CONTENT_LENGTH.search(head)
        if match is None:
            raise SipParseError("Content-Length is required on a stream (RFC 3261 §18.3)")
        text = match.group(1)
        if not (text.isdigit() and len(text) <= 6):
            raise SipParseError(f"bad Content-Length {text!r}")
        length = int(text)
        if end + 4 + length > MAX_DATAGRAM:
            raise SipParseError("message too large", status_hint=413)
        total = end + 4 + length
        if len(buffer) < total:
            return None
        message = bytes(buffer[:total])
        del buffer[:total]
        return message

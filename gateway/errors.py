"""One exception tree for the gateway.

Each error also inherits the matching built-in, so callers may catch either
(``except ValueError`` still catches a :class:`SipParseError`).
"""


class LinegramError(Exception):
    """Root of every error the gateway raises on purpose."""


class ConfigError(LinegramError, ValueError):
    """The configuration is invalid; the message names the field."""


class SipParseError(LinegramError, ValueError):
    """A SIP message could not be parsed.

    ``status_hint`` is the response a server should send if the bad message
    was a request whose Via, Call-ID, CSeq, From and To are still usable
    (400 Bad Request, 413 Message Too Large, 505 Version Not Supported...).
    """

    def __init__(self, msg: str, status_hint: int = 400) -> None:
        super().__init__(msg)
        self.status_hint = status_hint


class SdpError(LinegramError, ValueError):
    """An SDP body could not be parsed or no media can be served (488)."""


class DigestError(LinegramError, ValueError):
    """A digest challenge or credentials header is malformed or unsupported."""


class TransactionTimeout(LinegramError, TimeoutError):
    """A client transaction got no final response (Timer B or F fired)."""


class RtpError(LinegramError, ValueError):
    """An RTP packet or RFC 4733 payload is malformed."""

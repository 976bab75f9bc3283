"""Echo test: what the caller says and keys comes straight back (RFC 3550, RFC 4733).

Used by the echo extension and by the interop tests: audio frames received
by an :class:`~gateway.media.session.RtpSession` are written back through its
PCM interface, so the echo exercises decode, jitter buffer, send queue and
encode.  G.711 decodes to values that re-encode to the same code (except
µ-law's negative zero, which no standard encoder emits), so the echoed
payloads are bit-exact after the jitter delay.  Key presses are logged,
recorded in :attr:`EchoTest.digits` and sent back as RFC 4733 events.
"""

from __future__ import annotations

import logging

from gateway.media.session import RtpSession

__all__ = ["EchoTest"]

log = logging.getLogger(__name__)


class EchoTest:
    """Attach an echo to ``session`` until :meth:`stop`.

    Example::

        session = await RtpSession.open(ip, ports, clock)
        session.configure(params)
        echo = EchoTest(session)
        ...
        echo.stop(); session.close()
    """

    def __init__(self, session: RtpSession) -> None:
        self.session = session
        self.digits: list[str] = []
        self._active = True
        session.on_audio = self._on_audio
        session.on_dtmf = self._on_dtmf

    def _on_audio(self, pcm: bytes) -> None:
        if self._active:
            self.session.write_audio(pcm)

    def _on_dtmf(self, digit: str, duration_ms: int) -> None:
        if not self._active:
            return
        log.info("echo: dtmf digit=%s duration=%d", digit, duration_ms)
        self.digits.append(digit)
        self.session.send_dtmf(digit, max(duration_ms, 40))

    def stop(self) -> None:
        """Detach from the session (idempotent); the session stays open."""
        if not self._active:
            return
        self._active = False
        if self.session.on_audio == self._on_audio:
            self.session.on_audio = None
        if self.session.on_dtmf == self._on_dtmf:
            self.session.on_dtmf = None

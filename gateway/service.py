"""systemd readiness and watchdog: the ``sd_notify`` protocol, written by hand.

Not an RFC module; the protocol is systemd's ``sd_notify(3)``: one
``AF_UNIX`` datagram of newline-separated ``KEY=VALUE`` fields sent to the
socket named by ``$NOTIFY_SOCKET`` (a path, or an abstract name written with a
leading ``@``).  The gateway says ``READY=1`` once its lines are starting and
the control socket is up, ``WATCHDOG=1`` every ``$WATCHDOG_USEC / 2`` from an
asyncio task (so an event loop that stops turning gets the process killed and
restarted), ``RELOADING=1`` before it re-executes itself for
``gateway.restart`` (same PID: systemd waits for the next ``READY=1``) and
``STOPPING=1`` when it stops.

Without ``$NOTIFY_SOCKET`` (a terminal, a test) every call is a no-op.  A send
never blocks and never raises: a lost notification must not take calls down,
so the first failure is logged and the rest are silent.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import socket
from collections.abc import Mapping

log = logging.getLogger(__name__)

__all__ = ["Notifier"]


class Notifier:
    """Talks to the service manager, or does nothing when there is none."""

    def __init__(self, address: str | None = None, watchdog_usec: int = 0) -> None:
        """``address`` as in ``$NOTIFY_SOCKET`` (``None``: not under systemd);
        ``watchdog_usec`` the watchdog timeout (0: no watchdog)."""
        self.address = address or None
        self.watchdog_usec = watchdog_usec if self.address else 0
        self._socket: socket.socket | None = None
        self._failed = False
        self._watchdog: asyncio.Task[None] | None = None

    @classmethod
    def from_environ(cls, environ: Mapping[str, str] | None = None) -> Notifier:
        """What systemd set for this process.  The variables stay in the
        environment on purpose: a re-exec (``gateway.restart``) needs them again."""
        env = os.environ if environ is None else environ
        address = env.get("NOTIFY_SOCKET") or None
        return cls(address, _watchdog_usec(env))

    @property
    def enabled(self) -> bool:
        return self.address is not None

    @property
    def watchdog_interval(self) -> float | None:
        """Seconds between ``WATCHDOG=1`` pings (half the timeout), or None."""
        return self.watchdog_usec / 2_000_000 if self.watchdog_usec > 0 else None

    def notify(self, *fields: str) -> bool:
        """Send ``fields`` (``"READY=1"``, ``"STATUS=..."``) as one datagram.

        **Returns** True when the datagram was handed to the kernel."""
        if self.address is None or not fields:
            return False
        data = "\n".join(fields).encode("utf-8", "replace")
        try:
            sock = self._open()
            sock.sendto(data, _sockaddr(self.address))
        except OSError as exc:  # BlockingIOError too: never wait for the manager
            if not self._failed:
                self._failed = True
                log.warning("cannot notify systemd at %s: %s", self.address, exc)
            return False
        return True

    def ready(self, status: str | None = None) -> bool:
        return self.notify("READY=1", *_status(status))

    def reloading(self, status: str | None = None) -> bool:
        return self.notify("RELOADING=1", *_status(status))

    def stopping(self, status: str | None = None) -> bool:
        return self.notify("STOPPING=1", *_status(status))

    def status(self, text: str) -> bool:
        return self.notify(*_status(text))

    def ping(self) -> bool:
        """One ``WATCHDOG=1`` (when a watchdog is configured)."""
        return self.notify("WATCHDOG=1") if self.watchdog_usec > 0 else False

    def start_watchdog(self) -> None:
        """Ping from a task on the running loop until :meth:`stop_watchdog`."""
        if self.watchdog_interval is None or self._watchdog is not None:
            return
        self._watchdog = asyncio.get_running_loop().create_task(
            self._feed(self.watchdog_interval), name="systemd-watchdog"
        )

    async def stop_watchdog(self) -> None:
        task, self._watchdog = self._watchdog, None
        if task is not None:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task

    async def _feed(self, interval: float) -> None:
        # Only a turning event loop runs this: a blocked loop misses the ping
        # and systemd kills (WatchdogSignal) and restarts the gateway.
        while True:
            self.ping()
            await asyncio.sleep(interval)

    def close(self) -> None:
        if self._socket is not None:
            self._socket.close()
            self._socket = None

    def _open(self) -> socket.socket:
        if self._socket is None:
            # Close-on-exec (Python's default): a re-exec opens its own.
            sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
            sock.setblocking(False)
            self._socket = sock
        return self._socket


def _sockaddr(address: str) -> str | bytes:
    if address.startswith("@"):  # abstract namespace: a leading NUL byte
        return b"\0" + address[1:].encode("utf-8")
    if not address.startswith("/"):
        # systemd ≥ 254 may also hand out vsock:... addresses; not a Pi appliance's case.
        raise OSError(f"unsupported NOTIFY_SOCKET address {address!r}")
    return address


def _watchdog_usec(env: Mapping[str, str]) -> int:
    """``$WATCHDOG_USEC`` when it is meant for this process (``$WATCHDOG_PID``)."""
    try:
        usec = int(env.get("WATCHDOG_USEC", "0"))
    except ValueError:
        return 0
    pid = env.get("WATCHDOG_PID")
    if pid is not None and pid != str(os.getpid()):
        return 0  # inherited from a parent that is being watched, not us
    return max(usec, 0)


def _status(text: str | None) -> tuple[str, ...]:
    # One field per line: a newline in the text would start a bogus field.
    return () if text is None else ("STATUS=" + " ".join(text.splitlines()),)

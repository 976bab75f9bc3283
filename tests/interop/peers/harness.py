"""One object per test that starts peers and remembers how to stop each of them.

Not an RFC module.  :meth:`Peers.close` runs at fixture teardown whatever
happened in the test: it stops every peer and closes every socket, newest
first, each bounded in time, and re-raises the first cleanup error only after
all cleanups ran.
"""

from __future__ import annotations

import asyncio
import itertools
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

from tests.interop.peers.baresip import Baresip
from tests.interop.peers.gateway import GatewayProcess, InProcessGateway
from tests.interop.peers.hostile import scanner
from tests.interop.peers.kamailio import Kamailio, KamailioVariant
from tests.interop.peers.net import SIPP_IP
from tests.interop.peers.procs import STOP_GRACE, LogBook, ManagedProcess
from tests.interop.peers.rtp_capture import RtpCapture
from tests.interop.peers.sipp import Sipp, open_media

CLEANUP_TIMEOUT = 2 * STOP_GRACE + 5


class Peers:
    """Factory and owner of a test's peers; every directory is under *tmp_path*."""

    def __init__(self, tmp_path: Path, logbook: LogBook) -> None:
        self.tmp_path = tmp_path
        self.logbook = logbook
        self._cleanups: list[tuple[str, Callable[[], Awaitable[Any]]]] = []
        self._numbers = itertools.count(1)

    def directory(self, name: str) -> Path:
        path = self.tmp_path / f"{next(self._numbers):02d}-{name.replace('/', '-')}"
        path.mkdir(parents=True)
        return path

    def _own(self, name: str, cleanup: Callable[[], Awaitable[Any]]) -> None:
        self._cleanups.append((name, cleanup))

    async def close(self) -> None:
        errors: list[BaseException] = []
        while self._cleanups:
            name, cleanup = self._cleanups.pop()
            try:
                await asyncio.wait_for(cleanup(), CLEANUP_TIMEOUT)
            except Exception as exc:  # keep stopping the others; report afterwards
                errors.append(RuntimeError(f"stopping {name} failed: {exc!r}"))
        if errors:
            raise errors[0]

    # -- media sockets -----------------------------------------------------------

    async def sipp_media(self, ip: str = SIPP_IP) -> tuple[RtpCapture, int]:
        """A capture on the port a sipp run will advertise, and the ``-mp`` for that run."""
        capture, media_port = await open_media(ip)
        self._own(f"capture {capture.address}", _closer(capture))
        return capture, media_port

    # -- peers -------------------------------------------------------------------

    def sipp(self, scenario: str, **kwargs: Any) -> Sipp:
        """A sipp run (not started: ``await sipp.run()`` or ``start()``/``finish()``)."""
        sipp = Sipp(scenario, self.directory(f"sipp-{scenario}"), self.logbook, **kwargs)
        self._own(f"sipp {scenario}", sipp.stop)
        return sipp

    async def kamailio(self, variant: KamailioVariant, **kwargs: Any) -> Kamailio:
        kamailio = Kamailio(self.directory("kamailio"), self.logbook, variant, **kwargs)
        self._own("kamailio", kamailio.stop)
        await kamailio.start()
        return kamailio

    async def baresip(
        self, source_pcm: bytes, register: tuple[str, str, str] | None = None
    ) -> Baresip:
        baresip = Baresip(self.directory("baresip"), self.logbook, source_pcm, register)
        self._own("baresip", baresip.stop)
        await baresip.start()
        return baresip

    async def gateway(self, config: dict[str, Any]) -> GatewayProcess:
        """``python -m gateway`` with *config*, returned once it answers OPTIONS."""
        gateway = GatewayProcess(self.directory("gateway"), self.logbook, config)
        self._own("gateway", gateway.stop)
        await gateway.start()
        return gateway

    def scanner(self, tool: str, args: list[str], source_ip: str) -> ManagedProcess:
        """A sipvicious run (not started), stopped at teardown if still running."""
        process = scanner(tool, args, source_ip, self.directory(f"sipvicious-{tool}"), self.logbook)
        self._own(f"sipvicious {tool}", process.stop)
        return process

    async def gateway_in_process(
        self, config: dict[str, Any], config_path: Path | None = None
    ) -> InProcessGateway:
        """``gateway.app.Gateway`` in this loop, started (its settings in *config_path* if set)."""
        gateway = InProcessGateway(self.directory("gateway"), self.logbook, config, config_path)
        self._own("gateway (in process)", gateway.stop)
        await gateway.start()
        return gateway


def _closer(capture: RtpCapture) -> Callable[[], Awaitable[None]]:
    async def close() -> None:
        capture.close()

    return close

"""The gateway under test, as a subprocess (``python -m gateway``) or in this process.

Not an RFC module.  The contract the suite relies on:

* ``python -m gateway --config PATH`` with a TOML file (schema: docs and
  :func:`gateway_config`); it logs text lines to stderr
  (``<ts> LEVEL logger: message key=value``) and is ready once it answers
  ``OPTIONS sip:<listen>:<port>`` with 200.  SIGTERM stops it.
* in process: ``parse_config(dict, base_dir=...)``, ``Store.open(path)``,
  ``Gateway(config, store)``, ``await start()``, ``line_status(name)``,
  ``await dial(line, target)``, ``active_calls()``, ``await stop()``.
* the echo test logs every digit as ``echo: dtmf digit=<d> duration=<ms>``.
"""

from __future__ import annotations

import asyncio
import logging
import re
import sys
from pathlib import Path
from typing import Any

import tomli_w

from tests.interop.peers.net import GATEWAY_IP, SIPP_IP, free_port, free_port_block
from tests.interop.peers.procs import LogBook, LogFile, ManagedProcess
from tests.interop.peers.sipmsg import wait_answering

PROVIDER_PASSWORD = "alice-secret-42"
# Passwords are masked in the gateway's logs wherever they appear, so they must
# not be substrings of anything else worth reading.
ATA_PASSWORD = "ht801-pass-7731"
RTP_PORTS = 40  # per gateway: 20 calls' worth of RTP/RTCP pairs
READY_TIMEOUT = 10.0
STOP_TIMEOUT = 5.0

ECHO_DTMF = re.compile(r"\becho: dtmf digit=(?P<digit>\S+) duration=(?P<ms>\d+)")
CALL_ENDED = re.compile(r"\bcall (?P<id>\S+) ended reason=(?P<reason>\S+)")


def ata_line(
    allow: list[str],
    *,
    name: str = "ata",
    username: str = "ht801",
    password: str = ATA_PASSWORD,
    incoming: str = "echo",
) -> dict[str, Any]:
    return {
        "name": name,
        "kind": "ata",
        "allow": allow,
        "username": username,
        "password": password,
        "incoming": incoming,
    }


def provider_line(
    registrar: str,
    *,
    name: str = "prov",
    username: str = "alice",
    password: str = PROVIDER_PASSWORD,
    expires: int = 60,
    incoming: str = "echo",
) -> dict[str, Any]:
    return {
        "name": name,
        "kind": "provider",
        "registrar": registrar,
        "username": username,
        "password": password,
        "expires": expires,
        "incoming": incoming,
    }


def gateway_config(
    data_dir: Path,
    lines: list[dict[str, Any]],
    *,
    rtp_timeout: float = 15.0,
    rate_limit: float = 50.0,
) -> dict[str, Any]:
    """A complete settings document on 127.0.0.10 with free SIP and RTP ports."""
    rtp_min = free_port_block(GATEWAY_IP, RTP_PORTS)
    return {
        "gateway": {"data_dir": str(data_dir), "log_level": "debug"},
        "sip": {"listen": GATEWAY_IP, "port": free_port(GATEWAY_IP), "rate_limit": rate_limit},
        "media": {
            "address": GATEWAY_IP,
            "rtp_port_min": rtp_min,
            "rtp_port_max": rtp_min + RTP_PORTS - 1,
            "rtp_timeout": rtp_timeout,
        },
        "echo": {"extension": "600", "allow": ["127.0.0.0/8"]},
        "lines": lines,
    }


def sip_address(config: dict[str, Any]) -> tuple[str, int]:
    return config["sip"]["listen"], config["sip"]["port"]


def echo_digits(log: LogFile) -> list[tuple[str, int]]:
    return [(m["digit"], int(m["ms"])) for m in log.matches(ECHO_DTMF)]


class GatewayProcess:
    """``python -m gateway --config gateway.toml`` in *run_dir*; stderr is ``gateway.log``."""

    def __init__(
        self,
        run_dir: Path,
        logbook: LogBook,
        config: dict[str, Any],
        config_path: Path | None = None,
    ) -> None:
        self.run_dir = run_dir
        self.config = config
        # With a path the settings are written there and the gateway may rewrite them
        # (login, web UI pages, config.reload), as a real installation's file.
        self.config_path = config_path
        run_dir.mkdir(parents=True, exist_ok=True)
        self.config_path = run_dir / "gateway.toml"
        self.config_path.write_bytes(tomli_w.dumps(config).encode())
        logbook.add("gateway.toml", self.config_path)
        self.process = ManagedProcess(
            "gateway stdout",
            [sys.executable, "-m", "gateway", "--config", str(self.config_path)],
            run_dir / "gateway.stdout.log",
            logbook,
            stderr_path=run_dir / "gateway.log",
            cwd=run_dir,
        )
        self.log = LogFile(run_dir / "gateway.log")

    @property
    def address(self) -> tuple[str, int]:
        return sip_address(self.config)

    @property
    def hostport(self) -> str:
        return "{}:{}".format(*self.address)

    @property
    def alive(self) -> bool:
        return self.process.alive

    async def start(self, within: float = READY_TIMEOUT) -> None:
        await self.process.start()
        await wait_answering(self.address, SIPP_IP, within, self.process, "gateway")

    async def options_ok(self, within: float = 3.0) -> bool:
        try:
            await wait_answering(self.address, SIPP_IP, within, self.process, "gateway")
        except (TimeoutError, RuntimeError):
            return False
        return True

    async def stop(self) -> None:
        await self.process.stop()


class InProcessGateway:
    """The gateway in the test's event loop, for the API only it offers (dial, line status).

    Its log records (logger ``gateway``, DEBUG) go to ``gateway.log`` in *run_dir*.
    """

    def __init__(
        self,
        run_dir: Path,
        logbook: LogBook,
        config: dict[str, Any],
        config_path: Path | None = None,
    ) -> None:
        self.run_dir = run_dir
        self.config = config
        # With a path the settings are written there and the gateway may rewrite them
        # (login, web UI pages, config.reload), as a real installation's file.
        self.config_path = config_path
        run_dir.mkdir(parents=True, exist_ok=True)
        self.log_path = logbook.add("gateway (in process)", run_dir / "gateway.log")
        self.log = LogFile(self.log_path)
        Path(config["gateway"]["data_dir"]).mkdir(parents=True, exist_ok=True)
        self.gw: Any = None
        self._store: Any = None
        self._handler: logging.Handler | None = None
        self._saved_level = logging.NOTSET

    @property
    def address(self) -> tuple[str, int]:
        return sip_address(self.config)

    def _attach_log(self) -> None:
        handler = logging.FileHandler(self.log_path)
        try:
            from gateway.logs import RedactFilter, TextFormatter

            handler.setFormatter(TextFormatter())
            handler.addFilter(RedactFilter())
        except ImportError:
            plain = "%(asctime)s %(levelname)s %(name)s: %(message)s"
            handler.setFormatter(logging.Formatter(plain))
        logger = logging.getLogger("gateway")
        self._saved_level = logger.level
        logger.setLevel(logging.DEBUG)
        logger.addHandler(handler)
        # The file is attached to failure reports; pytest's own capture of the
        # same DEBUG records would only repeat it.
        logger.propagate = False
        self._handler = handler

    async def start(self) -> Any:
        """Build and start ``gateway.app.Gateway``; returns it."""
        from gateway.app import Gateway
        from gateway.config import load_config, parse_config
        from gateway.store import Store

        self._attach_log()
        if self.config_path is not None:
            self.config_path.write_text(tomli_w.dumps(self.config))
            self.config_path.chmod(0o600)
            config = load_config(self.config_path)
        else:
            config = parse_config(self.config, base_dir=self.run_dir)
        self._store = Store.open(Path(config.data_dir) / "linegram.db")
        self.gw = Gateway(config, self._store, self.config_path)
        await asyncio.wait_for(self.gw.start(), READY_TIMEOUT)
        return self.gw

    async def stop(self) -> None:
        try:
            if self.gw is not None:
                await asyncio.wait_for(self.gw.stop(), STOP_TIMEOUT)
        finally:
            self.gw = None
            if self._store is not None:
                self._store.close()
                self._store = None
            if self._handler is not None:
                logger = logging.getLogger("gateway")
                logger.removeHandler(self._handler)
                logger.setLevel(self._saved_level)
                logger.propagate = True
                self._handler.close()
                self._handler = None


async def feed_audio(call: Any, pcm: bytes, frame_ms: int = 20, lead_ms: int = 60) -> None:
    """Write *pcm* to ``call.write_audio`` in real time, on an absolute schedule.

    The gateway's send queue holds 200 ms and drops older audio beyond that, so
    writing everything at once would lose most of it; a small lead keeps the
    queue from running dry between two event-loop wake-ups.
    """
    loop = asyncio.get_running_loop()
    step = 16 * frame_ms  # bytes of 8 kHz s16le per frame
    lead = 16 * lead_ms
    call.write_audio(pcm[:lead])
    start = loop.time()
    for n, offset in enumerate(range(lead, len(pcm), step)):
        await asyncio.sleep(max(0.0, start + n * frame_ms / 1000 - loop.time()))
        call.write_audio(pcm[offset : offset + step])

"""sipp 3.6.1 as a scripted SIP peer: one call (``-m 1``) per run, in its own directory.

Not an RFC module.  Facts this wrapper relies on (checked on sipp 3.6.1):

* pcap files named in a scenario are looked up next to the scenario first,
  then in the working directory; each run copies its scenario and pcaps into
  its own directory and runs there, so the traces land beside them.
* sipp binds ``-mi:-mp`` and ``-mi:-mp+2`` (its RTP echo sockets, never read
  unless ``-rtp_echo``) and exits if either is taken.  The scenarios put
  ``[media_port+10]`` in their SDP: sipp does not bind that port, and
  ``play_pcap_audio`` sends from it.  :func:`open_media` binds it for the test.
* the UDP control socket defaults to port 8888 (and cycles up to 60 ports);
  ``-ci``/``-cp`` pin it to the peer's address and a free port.
* exit code 0: the call succeeded; 1: it failed (the error file says why);
  97/99/255: sipp stopped early; -timeout with -timeout_error: non-zero.
"""

from __future__ import annotations

import shutil
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path

from tests.interop.peers.net import SIPP_IP, SIPP_MEDIA_OFFSET, free_port, port_is_free
from tests.interop.peers.procs import LogBook, ManagedProcess
from tests.interop.peers.rtp_capture import RtpCapture

SCENARIO_DIR = Path(__file__).resolve().parent.parent / "scenarios"
SIPP = "sipp"
DEFAULT_TIMEOUT = 30.0


async def open_media(ip: str = SIPP_IP) -> tuple[RtpCapture, int]:
    """A capture socket on the port a sipp run will advertise, and the ``-mp`` to pass.

    The capture owns ``-mp + 10``; ``-mp`` and ``-mp + 2`` must be free for sipp.
    """
    for _ in range(50):
        capture = await RtpCapture.open(ip)
        media_port = capture.port - SIPP_MEDIA_OFFSET
        if media_port > 1024 and port_is_free(ip, media_port) and port_is_free(ip, media_port + 2):
            return capture, media_port
        capture.close()
    raise RuntimeError(f"no free media ports for sipp on {ip}")


def free_media_port(ip: str = SIPP_IP) -> int:
    """A ``-mp`` for a sipp that uses ``[media_port]`` itself (``-rtp_echo``): M and M+2 free."""
    for _ in range(50):
        port = free_port(ip) & ~1
        if port > 1024 and port_is_free(ip, port) and port_is_free(ip, port + 2):
            return port
    raise RuntimeError(f"no free media ports for sipp on {ip}")


@dataclass(frozen=True)
class SippResult:
    """What one sipp run left behind."""

    scenario: str
    returncode: int
    run_dir: Path

    def _read(self, name: str) -> str:
        path = self.run_dir / name
        return path.read_text(errors="replace") if path.exists() else ""

    @property
    def ok(self) -> bool:
        return self.returncode == 0

    def messages(self) -> str:
        """Every SIP message sent and received (``-trace_msg``)."""
        return self._read("messages.log")

    def errors(self) -> str:
        return self._read("errors.log")

    def log_values(self, key: str) -> list[str]:
        """Values of ``key=value`` lines the scenario wrote with ``<log message=...>``."""
        prefix = f"{key}="
        return [
            line[len(prefix) :].strip()
            for line in self._read("actions.log").splitlines()
            if line.startswith(prefix)
        ]

    def describe(self) -> str:
        """For assertion messages: exit code, sipp's errors, the end of the message trace."""
        trace = self.messages()
        return (
            f"sipp {self.scenario} exited {self.returncode} (run dir {self.run_dir})\n"
            f"--- errors.log ---\n{self.errors()[-3000:]}\n"
            f"--- messages.log (end) ---\n{trace[-6000:]}"
        )


class Sipp:
    """One sipp run of ``scenarios/<scenario>.xml``.

    **Arguments**: *remote* is ``host:port`` for a UAC, ``None`` for a UAS; *service*
    is the ``-s`` user (``[service]``); *media_port* the ``-mp`` (see
    :func:`open_media`); *pcaps* are copied beside the scenario; *keys* become
    ``-key name value`` (``[name]`` in the scenario); *extra_args* go before *remote*.
    """

    def __init__(
        self,
        scenario: str,
        run_dir: Path,
        logbook: LogBook,
        *,
        remote: str | None = None,
        service: str = "600",
        ip: str = SIPP_IP,
        port: int | None = None,
        media_port: int | None = None,
        pcaps: Iterable[Path] = (),
        keys: Mapping[str, str] | None = None,
        timeout: float = DEFAULT_TIMEOUT,
        extra_args: Iterable[str] = (),
    ) -> None:
        self.scenario = scenario
        self.run_dir = run_dir
        self.ip = ip
        self.port = port or free_port(ip)
        self.timeout = timeout
        run_dir.mkdir(parents=True, exist_ok=True)
        source = SCENARIO_DIR / f"{scenario}.xml"
        shutil.copy(source, run_dir / source.name)
        for pcap in pcaps:
            shutil.copy(pcap, run_dir / pcap.name)
        argv = [
            SIPP,
            "-sf", str(run_dir / source.name),
            "-i", ip,
            "-p", str(self.port),
            "-ci", ip,
            "-cp", str(free_port(ip)),
            "-s", service,
            "-m", "1",
            "-l", "1",
            "-nostdin",
            "-timeout", f"{round(timeout)}s",
            "-timeout_error",
            "-trace_msg", "-message_file", str(run_dir / "messages.log"),
            "-trace_err", "-error_file", str(run_dir / "errors.log"),
            "-trace_logs", "-log_file", str(run_dir / "actions.log"),
        ]  # fmt: skip
        if media_port is not None:
            argv += ["-mi", ip, "-mp", str(media_port)]
        for name, value in (keys or {}).items():
            argv += ["-key", name, value]
        argv += extra_args
        if remote is not None:
            argv.append(remote)
        self.process = ManagedProcess(
            f"sipp {scenario}", argv, run_dir / "sipp.log", logbook, cwd=run_dir
        )
        logbook.add(f"sipp {scenario} messages", run_dir / "messages.log")
        logbook.add(f"sipp {scenario} errors", run_dir / "errors.log")

    @property
    def address(self) -> str:
        return f"{self.ip}:{self.port}"

    async def start(self) -> None:
        await self.process.start()

    async def finish(self, within: float | None = None) -> SippResult:
        """Wait for the run to end (bounded by *within*, default the run's own + 10 s)."""
        try:
            code = await self.process.wait(within if within is not None else self.timeout + 10)
        finally:
            await self.process.stop()
        return SippResult(self.scenario, code, self.run_dir)

    async def stop(self) -> None:
        await self.process.stop()

    async def run(self) -> SippResult:
        await self.start()
        return await self.finish()

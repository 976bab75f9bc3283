"""Subprocesses that are always stopped, logs that are always kept, waits that always end.

Not an RFC module.  A :class:`ManagedProcess` runs in its own session (process
group), so :meth:`ManagedProcess.stop` reaches the children a peer forks
(Kamailio forks one process per worker) and nothing else.  Its stdout and
stderr go to files registered in a :class:`LogBook`; the suite's conftest
attaches the tail of every registered file to a failing test's report.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import re
import signal
import subprocess
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

STOP_GRACE = 5.0  # seconds between SIGTERM and SIGKILL
TAIL_CHARS = 12000  # how much of each log a failure report shows

# Every started process until it is stopped: the safety net for a test whose
# event loop died (pytest-timeout) before its fixtures could stop their peers.
_RUNNING: dict[int, ManagedProcess] = {}


def kill_leftovers() -> list[str]:
    """SIGKILL the process group of every peer still registered; their names."""
    names = []
    for pid, process in list(_RUNNING.items()):
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(pid, signal.SIGKILL)
        names.append(process.name)
        del _RUNNING[pid]
    return names


@dataclass
class LogBook:
    """The log files of one test, in the order the peers were started."""

    entries: list[tuple[str, Path]] = field(default_factory=list)

    def add(self, name: str, path: Path) -> Path:
        self.entries.append((name, path))
        return path

    def tails(self, limit: int = TAIL_CHARS) -> list[tuple[str, str]]:
        """``(name, last *limit* characters)`` of each file that exists."""
        out = []
        for name, path in self.entries:
            if path.exists():
                text = path.read_text(errors="replace")
                if len(text) > limit:
                    text = f"[... {len(text) - limit} characters cut ...]\n" + text[-limit:]
                out.append((f"{name} ({path})", text))
        return out


async def wait_until(
    predicate: Callable[[], bool], within: float, what: str, interval: float = 0.05
) -> None:
    """Poll *predicate* until it is true; ``TimeoutError`` naming *what* after *within* s."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + within
    while not predicate():
        if loop.time() >= deadline:
            raise TimeoutError(f"timed out after {within:g} s waiting for {what}")
        await asyncio.sleep(interval)


async def bounded(awaitable: Awaitable[object], within: float, what: str) -> object:
    """``await`` with a deadline whose error says what was awaited."""
    try:
        return await asyncio.wait_for(awaitable, within)
    except TimeoutError:
        raise TimeoutError(f"timed out after {within:g} s waiting for {what}") from None


class LogFile:
    """A log file being written by someone else, read and searched by line."""

    def __init__(self, path: Path) -> None:
        self.path = path

    def text(self) -> str:
        return self.path.read_text(errors="replace") if self.path.exists() else ""

    def matches(self, pattern: str | re.Pattern[str]) -> list[re.Match[str]]:
        """Every match of *pattern* (searched per line) so far, in order."""
        regex = re.compile(pattern) if isinstance(pattern, str) else pattern
        return [m for line in self.text().splitlines() if (m := regex.search(line))]

    async def wait_for(
        self, pattern: str | re.Pattern[str], within: float, count: int = 1
    ) -> list[re.Match[str]]:
        """Wait until *pattern* matched on at least *count* lines; return all matches."""
        found: list[re.Match[str]] = []

        def enough() -> bool:
            found[:] = self.matches(pattern)
            return len(found) >= count

        pat = pattern if isinstance(pattern, str) else pattern.pattern
        await wait_until(enough, within, f"{count} line(s) matching {pat!r} in {self.path}")
        return found


class ManagedProcess:
    """One peer process: started in its own session, stopped SIGTERM -> SIGKILL.

    **Arguments**: *argv* is the command; *log_path* receives stdout and, unless
    *stderr_path* is given, stderr too.  Both files are registered in *logbook*.
    """

    def __init__(
        self,
        name: str,
        argv: Sequence[str],
        log_path: Path,
        logbook: LogBook,
        *,
        stderr_path: Path | None = None,
        cwd: Path | None = None,
        env: dict[str, str] | None = None,
    ) -> None:
        self.name = name
        self.argv = [str(a) for a in argv]
        self.log_path = logbook.add(name, log_path)
        self.stderr_path = logbook.add(f"{name} stderr", stderr_path) if stderr_path else None
        self.cwd = cwd
        self.env = env
        self.proc: asyncio.subprocess.Process | None = None

    @property
    def pid(self) -> int:
        assert self.proc is not None, f"{self.name} was not started"
        return self.proc.pid

    @property
    def alive(self) -> bool:
        return self.proc is not None and self.proc.returncode is None

    @property
    def returncode(self) -> int | None:
        return None if self.proc is None else self.proc.returncode

    async def start(self) -> None:
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        # The cwd/env/argv header helps reproduce a failure by hand.
        with self.log_path.open("w") as out:
            out.write(f"# cwd={self.cwd or os.getcwd()}\n# argv={' '.join(self.argv)}\n")
        with contextlib.ExitStack() as files:
            out = files.enter_context(self.log_path.open("a"))
            err = files.enter_context(self.stderr_path.open("w")) if self.stderr_path else None
            self.proc = await asyncio.create_subprocess_exec(
                *self.argv,
                stdin=subprocess.DEVNULL,
                stdout=out,
                stderr=err if err is not None else subprocess.STDOUT,
                cwd=self.cwd,
                env=self.env,
                start_new_session=True,
            )
        _RUNNING[self.proc.pid] = self

    async def wait(self, within: float) -> int:
        """The exit code; ``TimeoutError`` if it is still running after *within* s."""
        assert self.proc is not None, f"{self.name} was not started"
        await bounded(self.proc.wait(), within, f"{self.name} to exit")
        assert self.proc.returncode is not None
        return self.proc.returncode

    def _signal_group(self, sig: int) -> None:
        assert self.proc is not None
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(self.proc.pid, sig)

    async def stop(self, grace: float = STOP_GRACE) -> int | None:
        """SIGTERM the process group, SIGKILL it after *grace* s; return the exit code."""
        if self.proc is None:
            return None
        if self.proc.returncode is None:
            self._signal_group(signal.SIGTERM)
            try:
                await asyncio.wait_for(self.proc.wait(), grace)
            except TimeoutError:
                self._signal_group(signal.SIGKILL)
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self.proc.wait(), grace)
        # Children of a peer that outlived their parent (same group) go too.
        self._signal_group(signal.SIGKILL)
        _RUNNING.pop(self.proc.pid, None)
        return self.proc.returncode

    def output(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""

"""JSON lines between ``bench/telegram.py`` and its worker processes.

Not an RFC module.  Each worker (``tg_peer.py``, ``tg_gateway.py``,
``tg_raw.py``) inherits one end of a socketpair and is told its number with
``--control FD``.  The bench sends ``{"id": n, "cmd": name, "args": {...}}``
lines; the worker answers ``{"id": n, "ok": true, "result": {...}}`` or
``{"id": n, "ok": false, "error": "..."}``.  Requests run as tasks, so a long
one (placing calls) never holds up a quick one (a counter snapshot).  A worker
whose control socket closes (the bench died) stops by itself, and every
request the bench makes has a deadline.

Also here: the pieces of tone handling every worker shares (voiced-frame test,
a looped tone, the tail of what a call heard) and the process CPU clock.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import logging
import os
import signal
import socket
import subprocess
import sys
import time
from collections import deque
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from simcloud.audio import ToneAnalysis, ToneGenerator, analyse

ROOT = Path(__file__).resolve().parent.parent  # workers run from the project's root

log = logging.getLogger("bench.wire")

Handler = Callable[..., Awaitable[dict[str, Any]]]
LINE_LIMIT = 1 << 22  # one JSON line (the set-up series is the longest)
STOP_GRACE = 10.0  # s between "quit" and SIGTERM, and between SIGTERM and SIGKILL

RATE = 8000
FRAME_BYTES = RATE * 2 // 100  # 10 ms s16le mono
# A 10 ms frame is voiced when a sample reaches -30 dBFS (the tones peak at -10.5 dBFS;
# NetEq's comfort noise and fade-outs stay far below).  Peak, not RMS: two C-level
# passes over 80 samples, so counting costs the measured process next to nothing.
VOICED_PEAK = 1000
TAIL_FRAMES = 50  # the last 0.5 s a call heard, kept for the tone check after a window
GATEWAY_HZ = 440.0  # what the gateway (and the baseline's measured end) sends
MEMBER_HZ = 880.0  # what the members (and the baseline's other end) send
AMPLITUDE = 0.3  # -10.5 dBFS peak, as in performance-baselines §1


# ---------------------------------------------------------------------------------------
# tone helpers


def tone_loop(frequency: float) -> list[bytes]:
    """One second of a tone as 100 frames: an integer frequency loops without a seam."""
    return list(ToneGenerator(frequency, RATE, AMPLITUDE).frames(1.0))


def voiced(frame: bytes) -> bool:
    samples = memoryview(frame).cast("h")
    return max(samples) > VOICED_PEAK or min(samples) < -VOICED_PEAK


@dataclass
class Heard:
    """What one call end received: frames, voiced frames, the first voiced one, a tail."""

    frames: int = 0
    voiced: int = 0
    first_voiced_at: float | None = None
    tail: deque[bytes] = field(default_factory=lambda: deque(maxlen=TAIL_FRAMES))

    def add(self, frame: bytes) -> None:
        self.frames += 1
        if voiced(frame):
            self.voiced += 1
            if self.first_voiced_at is None:
                self.first_voiced_at = time.monotonic()
        self.tail.append(frame)

    def counts(self) -> list[int]:
        return [self.frames, self.voiced]

    def analysis(self) -> dict[str, Any]:
        result: ToneAnalysis = analyse(b"".join(self.tail), RATE, settle_ms=0)
        return {"hz": result.frequency_hz, "dbfs": result.level_dbfs}


@dataclass
class Pacer:
    """A periodic sender's absolute schedule, and its lateness against it."""

    period_s: float
    ticks: int = 0
    late_max_s: float = 0.0
    late_over_10ms: int = 0
    resyncs: int = 0
    _start: float = 0.0
    _slot: int = 0

    def begin(self) -> None:
        """Start the schedule now."""
        self._start, self._slot = asyncio.get_running_loop().time(), 0

    async def wait(self) -> None:
        """Sleep until the next slot; more than a second behind restarts the schedule (no burst)."""
        loop = asyncio.get_running_loop()
        self._slot += 1
        due = self._start + self._slot * self.period_s
        delay = due - loop.time()
        if delay > 0:
            await asyncio.sleep(delay)
            self.note(loop.time() - due)
        elif delay < -1.0:
            self.resyncs += 1
            self.begin()
        else:
            self.note(-delay)

    def restart(self) -> None:
        """Forget the lateness so far: what follows is one window's."""
        self.ticks = self.late_over_10ms = self.resyncs = 0
        self.late_max_s = 0.0

    def note(self, late: float) -> None:
        self.ticks += 1
        self.late_max_s = max(self.late_max_s, late)
        if late > 0.010:
            self.late_over_10ms += 1

    def as_dict(self) -> dict[str, Any]:
        return {
            "ticks": self.ticks,
            "late_max_ms": round(self.late_max_s * 1000, 2),
            "late_over_10ms": self.late_over_10ms,
            "resyncs": self.resyncs,
        }


def cpu_clock(pid: int) -> float:
    """User+sys seconds of all threads of *pid* (Linux MAKE_PROCESS_CPUCLOCK(pid, SCHED))."""
    return time.clock_gettime(((~pid) << 3) | 2)


# ---------------------------------------------------------------------------------------
# the worker side


def worker_args(description: str) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=description)
    parser.add_argument("--control", type=int, required=True, help="inherited socket fd")
    parser.add_argument("--signal", type=int, default=-1, help="tg_raw.py: fd to the other end")
    parser.add_argument("--role", default="", help="tg_raw.py: pair, caller or callee")
    return parser.parse_args()


def worker_logging(level: int = logging.INFO) -> None:
    logging.basicConfig(
        level=level, stream=sys.stderr, format="%(asctime)s %(name)s %(levelname)s %(message)s"
    )


def _reply(rid: Any, ok: bool, payload: Any) -> bytes:
    body = {"id": rid, "ok": ok, ("result" if ok else "error"): payload}
    return (json.dumps(body) + "\n").encode()


async def serve(fd: int, handlers: Mapping[str, Handler]) -> None:
    """Answer requests on socket *fd* until ``quit`` or the socket closes."""
    sock = socket.socket(fileno=fd)
    reader, writer = await asyncio.open_connection(sock=sock, limit=LINE_LIMIT)
    tasks: set[asyncio.Task[None]] = set()

    async def run(rid: Any, cmd: str, args: dict[str, Any]) -> None:
        try:
            handler = handlers[cmd]
        except KeyError:
            writer.write(_reply(rid, False, f"unknown command {cmd!r}"))
            return
        try:
            result = await handler(**args)
        except Exception as exc:
            log.exception("%s failed", cmd)
            writer.write(_reply(rid, False, f"{type(exc).__name__}: {exc}"))
        else:
            writer.write(_reply(rid, True, result))

    try:
        while line := await reader.readline():
            request = json.loads(line)
            if request["cmd"] == "quit":
                writer.write(_reply(request["id"], True, {}))
                break
            task = asyncio.create_task(run(request["id"], request["cmd"], request["args"]))
            tasks.add(task)
            task.add_done_callback(tasks.discard)
    finally:
        for task in list(tasks):
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        with contextlib.suppress(OSError):
            await asyncio.wait_for(writer.drain(), 5)
        writer.close()


# ---------------------------------------------------------------------------------------
# the bench side


class WorkerError(RuntimeError):
    """A worker refused a request, died, or did not answer in time."""


class Worker:
    """One worker process, its log file and its control socket."""

    def __init__(
        self,
        name: str,
        script: Path,
        log_path: Path,
        *,
        args: tuple[str, ...] = (),
        pass_fds: tuple[int, ...] = (),
    ) -> None:
        self.name = name
        self.script = script
        self.log_path = log_path
        self.args = args
        self.pass_fds = pass_fds
        self.proc: asyncio.subprocess.Process | None = None
        self._writer: asyncio.StreamWriter | None = None
        self._reader_task: asyncio.Task[None] | None = None
        self._pending: dict[int, asyncio.Future[Any]] = {}
        self._next_id = 0

    @property
    def pid(self) -> int:
        assert self.proc is not None, f"{self.name} was not started"
        return self.proc.pid

    @property
    def alive(self) -> bool:
        return self.proc is not None and self.proc.returncode is None

    async def start(self) -> None:
        parent, child = socket.socketpair()
        argv = [sys.executable, str(self.script), "--control", str(child.fileno()), *self.args]
        try:
            with self.log_path.open("w") as out:
                out.write(f"# argv={' '.join(argv)}\n")
                out.flush()
                self.proc = await asyncio.create_subprocess_exec(
                    *argv,
                    stdin=subprocess.DEVNULL,
                    stdout=out,
                    stderr=subprocess.STDOUT,
                    cwd=ROOT,
                    start_new_session=True,  # stop() signals its group and nothing else
                    pass_fds=(child.fileno(), *self.pass_fds),
                )
        finally:
            child.close()
        reader, self._writer = await asyncio.open_connection(sock=parent, limit=LINE_LIMIT)
        self._reader_task = asyncio.create_task(self._read(reader))

    async def _read(self, reader: asyncio.StreamReader) -> None:
        try:
            while line := await reader.readline():
                reply = json.loads(line)
                future = self._pending.pop(reply["id"], None)
                if future is not None and not future.done():
                    future.set_result(reply)
        except (OSError, ValueError) as exc:
            log.warning("%s: control socket: %s", self.name, exc)
        finally:
            for future in self._pending.values():
                if not future.done():
                    future.set_exception(WorkerError(f"{self.name} exited"))
            self._pending.clear()

    async def call(self, cmd: str, within: float, **args: Any) -> Any:
        """Send *cmd*; its result within *within* s, else ``WorkerError`` (also on refusal)."""
        if self._writer is None or self._reader_task is None or self._reader_task.done():
            raise WorkerError(f"{self.name} is not running")
        self._next_id += 1
        rid = self._next_id
        future: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
        self._pending[rid] = future
        self._writer.write((json.dumps({"id": rid, "cmd": cmd, "args": args}) + "\n").encode())
        try:
            await self._writer.drain()
            reply = await asyncio.wait_for(future, within)
        except TimeoutError:
            raise WorkerError(f"{self.name}: no answer to {cmd} within {within:g} s") from None
        except OSError as exc:
            raise WorkerError(f"{self.name}: {cmd}: {exc}") from None
        finally:
            self._pending.pop(rid, None)
        if not reply["ok"]:
            raise WorkerError(f"{self.name}: {cmd}: {reply['error']}")
        return reply["result"]

    def _signal_group(self, sig: int) -> None:
        if self.proc is not None:
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(self.proc.pid, sig)

    async def stop(self) -> int | None:
        """Ask the worker to quit, then SIGTERM, then SIGKILL its process group."""
        if self.proc is None:
            return None
        if self.proc.returncode is None:
            with contextlib.suppress(WorkerError):
                await self.call("quit", 5.0)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self.proc.wait(), STOP_GRACE)
        if self.proc.returncode is None:
            self._signal_group(signal.SIGTERM)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self.proc.wait(), STOP_GRACE)
        self._signal_group(signal.SIGKILL)  # and whatever it left behind in its group
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self.proc.wait(), STOP_GRACE)
        if self._writer is not None:
            self._writer.close()
        if self._reader_task is not None:
            self._reader_task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._reader_task
        return self.proc.returncode

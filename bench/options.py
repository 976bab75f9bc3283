"""Command-line pieces shared by the benches."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import math
import os
import shutil
import signal
import subprocess
import sys
import tempfile
from collections.abc import Callable, Coroutine
from pathlib import Path
from typing import Any

from simcloud.netns import private_netns_ready

IN_NETNS = Path(__file__).resolve().parent.parent / "tools" / "in-netns.sh"


def calls_list(maximum: int) -> Callable[[str], list[int]]:
    """An argparse type for `--calls 1,4,16`: a comma-separated list of 1..maximum."""

    def parse(text: str) -> list[int]:
        values = [int(v) for v in text.split(",") if v.strip()]
        if not values or min(values) < 1 or max(values) > maximum:
            raise argparse.ArgumentTypeError(f"a comma-separated list of 1..{maximum}")
        return values

    return parse


def _terminate(signum: int, frame: object) -> None:
    raise KeyboardInterrupt(f"signal {signum}")


def stop_on_sigterm() -> None:
    """SIGTERM raises KeyboardInterrupt, so the benches' finally blocks stop their workers."""
    signal.signal(signal.SIGTERM, _terminate)


def run_bounded(command: list[str], limit: float, env: dict[str, str] | None = None) -> int:
    """Run *command* (the bench again, inside a namespace) in its own session for at most
    *limit* seconds; on timeout or Ctrl-C its whole process group is stopped."""
    proc = subprocess.Popen(command, env=env, start_new_session=True)
    try:
        return proc.wait(timeout=limit)
    except (subprocess.TimeoutExpired, KeyboardInterrupt) as exc:
        why = "interrupted" if isinstance(exc, KeyboardInterrupt) else f"over {limit:.0f} s"
        print(f"bench {why}: stopping it", file=sys.stderr)
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(timeout=15)
        return 1


def rerun_in_netns(script: str, argv: list[str], limit: float) -> int:
    """Run *script* again with *argv* inside a private network namespace with a veth pair."""
    command = [str(IN_NETNS), sys.executable, str(Path(script).resolve()), *argv]
    return run_bounded(command, limit)


def outside_netns(script: str, argv: list[str], limit: float) -> int | None:
    """Outside a private namespace: run *script* again inside one and return its exit code.

    Inside one (the second time round): None, and the bench goes on here.
    """
    if private_netns_ready() is None:
        return None
    if os.geteuid() != 0:
        print(f"{Path(script).name} needs root for its private network namespace", file=sys.stderr)
        return 2
    return rerun_in_netns(script, argv, limit)


def finite(value: Any) -> Any:
    """*value* with NaN and infinities as None: strict JSON has neither."""
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {k: finite(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [finite(v) for v in value]
    return value


def run_netns_bench(
    script: str,
    argv: list[str],
    args: argparse.Namespace,
    *,
    limit: float,
    banner: str,
    prefix: str,
    bench: Callable[[Path], Coroutine[Any, Any, dict[str, Any]]],
    report: Callable[[dict[str, Any]], bool],
) -> int:
    """The life of a bench that needs a private network namespace.

    Outside one, run *script* again inside one (at most *limit* seconds). Inside:
    *bench* in a fresh work directory, its result as JSON in ``args.out``, then
    *report* prints the tables and says whether everything worked; the work
    directory (the workers' logs) is kept when it did not, or with ``args.keep``.
    """
    stop_on_sigterm()
    rerun = outside_netns(script, argv, limit)
    if rerun is not None:
        return rerun
    print(banner, file=sys.stderr, flush=True)
    work = Path(tempfile.mkdtemp(prefix=prefix))
    keep, passed = True, False
    try:
        try:
            result = asyncio.run(bench(work))
        except KeyboardInterrupt:
            print("bench interrupted; every worker stopped", file=sys.stderr)
            return 130
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(json.dumps(finite(result), indent=2) + "\n")
        passed = report(result)
        keep = args.keep or not passed
    finally:
        if keep:
            print(f"logs kept in {work}", file=sys.stderr)
        else:
            shutil.rmtree(work, ignore_errors=True)
    return 0 if passed else 1

"""Command-line pieces shared by the benches."""

from __future__ import annotations

import argparse
import contextlib
import os
import signal
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

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

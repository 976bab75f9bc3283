"""The Telegram leg: call set-up time and ntgcalls CPU per call, against raw ntgcalls.

Not an RFC module.  Two measurements, each against a baseline taken in the same
run on the same machine (methods of performance-baselines.md §1 and §2):

* **Set-up time.**  The product path through the simulated cloud: the gateway's
  ``TelegramCalls.call(member)`` until ``wait_active()`` (and a member calling the
  gateway, answered with ``TelegramCall.answer()``), with the member a
  ``simcloud.member.SimMember`` that answers at once.  Split into the time to
  the member's app ringing and from the answer to ACTIVE, plus the time until
  the member hears the first voiced frame of the tone the gateway writes from
  ACTIVE on.  Baseline: two raw ``NTgCalls`` in one process, signalling relayed
  in process, real DH: ``create_p2p_call`` until both ends are CONNECTED.
* **CPU per call.**  The gateway's process (``bench/tg_gateway.py``: the
  account, ``TelegramCalls``, a 20 ms ticker writing two 10 ms frames of tone
  per call, ``on_audio`` counting what arrives) carries N concurrent calls; the
  cloud and the members run in another process (``bench/tg_peer.py``).  Its
  process CPU clock over a window, per call-second.  Baseline: one raw
  ``NTgCalls`` end with N calls (``bench/tg_raw.py``, notes §1 "cpu2").

Run: ``.venv/bin/python bench/telegram.py [--calls 1,4,8] [--seconds 15] [--setup-calls 20]``.
WebRTC ignores loopback, so everything runs in a private network namespace with
a veth pair (``tools/in-netns.sh``; the script re-runs itself there, which needs root).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import importlib.metadata
import os
import platform
import re
import socket
import statistics
import sys
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from options import calls_list, run_netns_bench
from tg_wire import GATEWAY_HZ, MEMBER_HZ, Worker, WorkerError, cpu_clock

from simcloud.netns import private_netns_ready

# The script's own directory is on sys.path; gateway and simcloud are installed (pip -e).
BENCH = Path(__file__).resolve().parent
ROOT = BENCH.parent

DEFAULT_OUT = BENCH / "results" / "telegram-latest.json"
PEER = BENCH / "tg_peer.py"
GATEWAY = BENCH / "tg_gateway.py"
RAW = BENCH / "tg_raw.py"

FRAMES_PER_S = 100  # 10 ms frames
WARMUP_S = 3.0  # after every call is up and streaming, before the window (notes §1.1)
GAP_S = 0.3  # between two set-up measurements (notes §2.1)
CALL_TIMEOUT = 20.0  # one call to ACTIVE / CONNECTED
FIRST_AUDIO_TIMEOUT = 5.0
MIN_PCT = 98.0  # of the expected frames, heard / voiced / sent, per call in a window
TONE_TOLERANCE_HZ = 1.0


# ---------------------------------------------------------------------------------------
# procfs


def cpu_ticks(pid: int) -> float:
    """procfs ``stat`` utime+stime of *pid*, in clock-tick resolution (a cross-check)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def thread_ticks(pid: int) -> dict[int, tuple[str, int]]:
    """Per thread of *pid*: (name, utime+stime ticks) from procfs ``task/*/stat``."""
    out = {}
    for task in Path(f"/proc/{pid}/task").iterdir():
        with contextlib.suppress(OSError, IndexError, ValueError):
            head, tail = (task / "stat").read_text().rsplit(")", 1)
            fields = tail.split()
            out[int(task.name)] = (head.split("(", 1)[1], int(fields[11]) + int(fields[12]))
    return out


def thread_split(
    pid: int, before: dict[int, tuple[str, int]], after: dict[int, tuple[str, int]]
) -> tuple[float, dict[str, int]]:
    """The main thread's share (%) of the ticks between two samples, and ticks per name.

    Native threads without a name of their own carry the process's name; they are
    filed as "other native" so that "main" is the interpreter's thread alone.
    """
    names: dict[str, int] = {}
    main = total = 0
    process_name = after[pid][0] if pid in after else ""
    for tid, (name, ticks) in after.items():
        delta = ticks - before.get(tid, (name, 0))[1]
        total += delta
        if tid == pid:
            main, label = delta, "main"
        else:
            label = "other native" if name == process_name else name
        names[label] = names.get(label, 0) + delta
    return (100.0 * main / total if total else 0.0), names


def proc_status(pid: int, key: str) -> int:
    match = re.search(rf"^{key}:\s+(\d+)", Path(f"/proc/{pid}/status").read_text(), re.M)
    return int(match.group(1)) if match else 0


def machine_times() -> tuple[int, int, int]:
    """(total, busy, steal) jiffies of all CPUs from procfs ``stat``."""
    values = [int(v) for v in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]]
    total = sum(values[:8])  # guest time is already inside user
    return total, total - values[3] - values[4], values[7]


LEVEL = re.compile(r"^\S+(?: \S+)? (WARNING|ERROR|CRITICAL) ")


def log_problems(path: Path) -> tuple[int, int, list[str]]:
    """(warnings, errors and tracebacks, the first such lines) of a worker's log."""
    warnings = errors = 0
    lines: list[str] = []
    if not path.exists():
        return 0, 0, lines
    for line in path.read_text(errors="replace").splitlines():
        match = LEVEL.match(line)
        level = match.group(1) if match else ("TRACEBACK" if line.startswith("Traceback") else "")
        if level == "WARNING":
            warnings += 1
        elif level:
            errors += 1
        if level and len(lines) < 10:
            lines.append(line[:300])
    return warnings, errors, lines


# ---------------------------------------------------------------------------------------
# statistics


def median(values: list[float]) -> float:
    return statistics.median(values) if values else float("nan")


def p95(values: list[float]) -> float:
    """The linearly interpolated 95th percentile (numpy's default), as in the notes."""
    if len(values) < 2:
        return values[0] if values else float("nan")
    return statistics.quantiles(values, n=20, method="inclusive")[18]


def ms(value: float) -> str:
    return "-" if value != value else f"{value * 1000:.1f}"


def fmt(value: float, spec: str) -> str:
    return "-" if value != value else format(value, spec)


# ---------------------------------------------------------------------------------------
# the world: the far side, gateway processes


@dataclass
class Plan:
    args: argparse.Namespace
    work: Path
    key_file: Path
    peer: Worker
    world: dict[str, Any]  # what tg_peer.py's start returned

    def member_id(self, index: int) -> int:
        return int(self.world["members"][index][0])


def write_key(path: Path, pem: str) -> Path:
    path.write_text(pem)
    return path


async def start_gateway(plan: Plan, gw: Worker, label: str, members: int) -> None:
    """Start *gw*, a fresh gateway process: signed in, knowing the first *members* members."""
    await gw.start()
    phone = plan.world["gateway_phone"]
    await gw.call(
        "login_phone",
        60,
        host=plan.world["host"],
        port=plan.world["port"],
        key_file=str(plan.key_file),
        data_dir=str(plan.work / f"gateway-{label}"),
        phone=phone,
    )
    code = (await plan.peer.call("code", 10, phone=phone))["code"]
    await gw.call("login_code", 60, code=code)
    await gw.call("know", 60, members=plan.world["members"][:members])


# ---------------------------------------------------------------------------------------
# measurement 1: set-up time


@dataclass
class SetupSample:
    """One call: set-up time, its split, and the time until the far end heard audio."""

    path: str  # "outgoing", "incoming" or "raw"
    run: int
    index: int
    warmup: bool = False  # the first call of a process: left out of the statistics
    setup_s: float | None = None
    ring_s: float | None = None  # out: call() -> the member's app rings; in: dial -> offered
    answer_s: float | None = None  # out: the member answers -> ACTIVE; in: answer() -> ACTIVE
    first_audio_s: float | None = None  # ACTIVE -> the far end's first voiced frame
    detail: dict[str, Any] = field(default_factory=dict)
    error: str | None = None

    @property
    def ok(self) -> bool:
        return self.error is None


def _delta(later: float | None, earlier: float | None) -> float | None:
    return None if later is None or earlier is None else later - earlier


async def outgoing_call(plan: Plan, gw: Worker, s: SetupSample) -> None:
    member = plan.member_id(0)
    await plan.peer.call("arm", 10, member=0)
    try:
        t = await gw.call("call", CALL_TIMEOUT + 10, member=member, timeout=CALL_TIMEOUT)
        r = await plan.peer.call(
            "report", FIRST_AUDIO_TIMEOUT + 10, member=0, outgoing=True, timeout=FIRST_AUDIO_TIMEOUT
        )
        s.setup_s = t["active_at"] - t["created_at"]
        s.ring_s = _delta(r["incoming_at"], t["created_at"])
        s.answer_s = _delta(t["active_at"], r["answering_at"])
        s.first_audio_s = r["first_voiced_at"] - t["active_at"]
        s.detail = {
            "gateway_sees_ringing_s": _delta(t["ringing_at"], t["created_at"]),
            "gateway_sees_accepted_s": _delta(t["states"].get("connecting"), t["created_at"]),
            "member_incoming_to_answering_s": _delta(r["answering_at"], r["incoming_at"]),
            "redials": t["redials"],
        }
    finally:
        await hang_up(plan, gw, member)


async def incoming_call(plan: Plan, gw: Worker, s: SetupSample) -> None:
    member = plan.member_id(0)
    dial_at = (await plan.peer.call("dial", 10, member=0))["dial_at"]
    try:
        t = await gw.call("wait_incoming", CALL_TIMEOUT + 10, member=member, timeout=CALL_TIMEOUT)
        r = await plan.peer.call(
            "report",
            FIRST_AUDIO_TIMEOUT + 30,
            member=0,
            outgoing=False,
            timeout=FIRST_AUDIO_TIMEOUT,
        )
        s.setup_s = t["active_at"] - dial_at
        s.ring_s = t["created_at"] - dial_at
        s.answer_s = t["active_at"] - t["answer_at"]
        s.first_audio_s = r["first_voiced_at"] - t["active_at"]
        s.detail = {
            "member_sees_ringing_s": _delta(r["ringing_at"], dial_at),
            "member_dial_to_connected_s": r["dial_seconds"],
        }
    finally:
        await hang_up(plan, gw, member)


async def hang_up(plan: Plan, gw: Worker, member: int) -> None:
    """The gateway hangs up; wait until the member is out of the call too."""
    with contextlib.suppress(WorkerError):
        await gw.call("hangup", 30, member=member)
    with contextlib.suppress(WorkerError):
        await plan.peer.call("hangup", 30, member=0)  # a no-op when the call already ended
    await plan.peer.call("wait_idle", 20, members=[0], timeout=10)
    await asyncio.sleep(GAP_S)


async def product_setup(plan: Plan, run: int) -> list[SetupSample]:
    """A fresh gateway process: one cold call, then outgoing and incoming calls in turn."""
    samples: list[SetupSample] = []
    gw = Worker("gateway", GATEWAY, plan.work / f"gateway-setup-r{run}.log")
    try:
        await start_gateway(plan, gw, f"setup-r{run}", 1)
        order = [("outgoing", True)] + [
            (path, False) for _ in range(plan.args.setup_calls) for path in ("outgoing", "incoming")
        ]
        for index, (path, warmup) in enumerate(order):
            s = SetupSample(path, run, index, warmup)
            try:
                await (outgoing_call if path == "outgoing" else incoming_call)(plan, gw, s)
            except (WorkerError, TimeoutError) as exc:
                s.error = str(exc)
            samples.append(s)
            status = "ok" if s.ok else f"FAILED: {s.error}"
            print(
                f"set-up {path:<8} {index:>2}: {ms(s.setup_s or float('nan'))} ms, {status}",
                file=sys.stderr,
                flush=True,
            )
    finally:
        await gw.stop()
    return samples


async def raw_setup(plan: Plan, run: int) -> list[SetupSample]:
    raw = Worker("raw-pair", RAW, plan.work / f"raw-pair-r{run}.log", args=("--role", "pair"))
    await raw.start()
    try:
        count = plan.args.setup_calls
        budget = (count + 1) * (CALL_TIMEOUT + 5) + 30
        result = await raw.call("series", budget, count=count, warmup=1, timeout=CALL_TIMEOUT)
    finally:
        await raw.stop()
    samples = [
        SetupSample(
            "raw",
            run,
            i,
            r["warmup"],
            setup_s=r["setup_s"],
            first_audio_s=r["first_audio_s"],
            detail={"dh_s": r["dh_s"], "connect_s": r["connect_s"]},
        )
        for i, r in enumerate(result["samples"])
    ]
    samples += [SetupSample("raw", run, -1, error=e) for e in result["errors"]]
    return samples


SETUP_PATHS = {
    "outgoing": "gateway → member: call() → ACTIVE",
    "incoming": "member → gateway: dial → ACTIVE",
    "raw": "raw ntgcalls pair: create_p2p_call → CONNECTED",
}


def setup_summary(samples: list[SetupSample]) -> list[dict[str, Any]]:
    def values(path: str, name: str) -> list[float]:
        return [
            v
            for s in samples
            if s.path == path and s.ok and not s.warmup and (v := getattr(s, name)) is not None
        ]

    raw_setup_median = median(values("raw", "setup_s"))
    raw_audio_median = median(values("raw", "first_audio_s"))
    rows = []
    for path in SETUP_PATHS:
        setup = values(path, "setup_s")
        audio = values(path, "first_audio_s")
        rows.append(
            {
                "path": path,
                "calls_ok": len(setup),
                "calls_failed": sum(1 for s in samples if s.path == path and not s.ok),
                "setup_median_s": median(setup),
                "setup_p95_s": p95(setup),
                "setup_min_s": min(setup, default=float("nan")),
                "setup_max_s": max(setup, default=float("nan")),
                "ratio_setup_to_raw": median(setup) / raw_setup_median,
                "ring_median_s": median(values(path, "ring_s")),
                "answer_median_s": median(values(path, "answer_s")),
                "first_audio_median_s": median(audio),
                "first_audio_p95_s": p95(audio),
                "ratio_first_audio_to_raw": median(audio) / raw_audio_median,
            }
        )
    return rows


def setup_table(rows: list[dict[str, Any]]) -> str:
    head = (
        "| path | calls ok | set-up median ms | p95 ms | ratio to raw | to ringing ms "
        "| answer → up ms | first audio median ms | p95 ms | ratio to raw |"
    )
    out = [head, "|" + "---|" * 10]
    for r in rows:
        raw = r["path"] == "raw"
        out.append(
            f"| {SETUP_PATHS[r['path']]} | {r['calls_ok']} "
            f"| {ms(r['setup_median_s'])} | {ms(r['setup_p95_s'])} "
            f"| {fmt(r['ratio_setup_to_raw'], '.1f')} "
            f"| {'-' if raw else ms(r['ring_median_s'])} "
            f"| {'-' if raw else ms(r['answer_median_s'])} "
            f"| {ms(r['first_audio_median_s'])} | {ms(r['first_audio_p95_s'])} "
            f"| {fmt(r['ratio_first_audio_to_raw'], '.1f')} |"
        )
    return "\n".join(out)


# ---------------------------------------------------------------------------------------
# measurement 2: CPU per call


@dataclass
class CpuMeasurement:
    """One target at one N: the window's CPU and the checks that the calls carried audio."""

    target: str  # "gateway" or "raw"
    calls: int
    run: int
    connect_s: float = 0.0  # placing all N calls until the last one is up
    window_s: float = 0.0
    cpu_s: float = 0.0  # the measured process, from its CPU clock
    cpu_ticks_s: float = 0.0  # the same from procfs stat
    self_cpu_s: float = 0.0  # time.process_time() inside it
    core_s_per_call_s: float = 0.0
    far_cores: float = 0.0  # the other process (members and cloud / the raw other end)
    heard_pct_min: float = 0.0  # per call, frames received / expected
    heard_pct_max: float = 0.0
    voiced_pct_min: float = 0.0
    far_heard_pct_min: float = 0.0  # what the far ends received from the measured one
    far_voiced_pct_min: float = 0.0
    sent_pct_min: float | None = None  # gateway only: frames the product handed to ntgcalls
    heard_hz: list[float | None] = field(default_factory=list)
    far_heard_hz: list[float | None] = field(default_factory=list)
    pacer: dict[str, Any] = field(default_factory=dict)
    far_pacer: dict[str, Any] = field(default_factory=dict)
    vm_hwm_kib: int = 0
    threads: int = 0
    main_thread_pct: float = 0.0  # the interpreter's thread, of the process CPU (ticks)
    thread_ticks: dict[str, int] = field(default_factory=dict)  # per thread name, in the window
    machine_busy_pct: float = 0.0
    machine_steal_pct: float = 0.0
    bench_cpu_s: float = 0.0
    others_cores: float = 0.0  # machine busy minus the two processes and the bench
    log_warnings: int = 0
    log_errors: int = 0
    log_lines: list[str] = field(default_factory=list)
    elapsed_s: float = 0.0  # the whole measurement, process start to stop
    error: str | None = None

    @property
    def ok(self) -> bool:
        return self.error is None


def pct_range(before: dict[str, list[int]], after: dict[str, list[int]], expected: float) -> Any:
    """(min heard %, max heard %, min voiced %) over the calls, between two snapshots."""
    heard, voiced = [], []
    for key, (frames, loud) in after.items():
        f0, v0 = before.get(key, [0, 0])
        heard.append(100.0 * (frames - f0) / expected)
        voiced.append(100.0 * (loud - v0) / expected)
    return min(heard, default=0.0), max(heard, default=0.0), min(voiced, default=0.0)


async def window(
    m: CpuMeasurement, seconds: float, near: Worker, far: Worker
) -> tuple[dict[str, Any], dict[str, Any], dict[str, Any], dict[str, Any]]:
    """Meter *seconds* of *near* (and note *far*); the counter snapshots at both ends."""
    mach0 = machine_times()
    own0 = time.process_time()
    n0 = await near.call("counts", 10, restart=True)
    c0, k0 = cpu_clock(near.pid), cpu_ticks(near.pid)
    t0 = time.monotonic()
    th0 = thread_ticks(near.pid)
    f0 = await far.call("counts", 10, restart=True)
    fc0 = cpu_clock(far.pid)
    await asyncio.sleep(seconds)
    for worker in (near, far):
        if not worker.alive:
            raise WorkerError(f"{worker.name} exited during the window")
    f1 = await far.call("counts", 10)
    fc1 = cpu_clock(far.pid)
    th1 = thread_ticks(near.pid)
    n1 = await near.call("counts", 10)
    c1, k1 = cpu_clock(near.pid), cpu_ticks(near.pid)
    t1 = time.monotonic()
    m.main_thread_pct, m.thread_ticks = thread_split(near.pid, th0, th1)
    m.bench_cpu_s = time.process_time() - own0
    mach1 = machine_times()
    m.window_s = t1 - t0
    m.cpu_s = c1 - c0
    m.cpu_ticks_s = round(k1 - k0, 2)
    m.self_cpu_s = n1["cpu_s"] - n0["cpu_s"]
    m.core_s_per_call_s = m.cpu_s / m.window_s / m.calls
    far_cpu = fc1 - fc0
    m.far_cores = far_cpu / m.window_s
    m.vm_hwm_kib = proc_status(near.pid, "VmHWM")
    m.threads = proc_status(near.pid, "Threads")
    total, busy, steal = (b - a for a, b in zip(mach0, mach1, strict=True))
    if total:
        m.machine_busy_pct = 100.0 * busy / total
        m.machine_steal_pct = 100.0 * steal / total
    busy_s = busy / os.sysconf("SC_CLK_TCK")
    m.others_cores = (busy_s - m.cpu_s - far_cpu - m.bench_cpu_s) / m.window_s
    m.pacer, m.far_pacer = n1["pacer"], f1["pacer"]
    return n0, n1, f0, f1


def tone_ok(found: list[float | None], want: float) -> bool:
    return all(hz is not None and abs(hz - want) <= TONE_TOLERANCE_HZ for hz in found)


def check(m: CpuMeasurement) -> str | None:
    """Why the window does not count, or None: every call carried the tone both ways."""
    problems = []
    if m.heard_pct_min < MIN_PCT or m.heard_pct_max > 200 - MIN_PCT:
        problems.append(f"heard {m.heard_pct_min:.1f}-{m.heard_pct_max:.1f} % of the frames")
    if m.voiced_pct_min < MIN_PCT:
        problems.append(f"only {m.voiced_pct_min:.1f} % voiced")
    if m.far_heard_pct_min < MIN_PCT or m.far_voiced_pct_min < MIN_PCT:
        problems.append(
            f"far ends heard {m.far_heard_pct_min:.1f} % ({m.far_voiced_pct_min:.1f} % voiced)"
        )
    if m.sent_pct_min is not None and m.sent_pct_min < MIN_PCT:
        problems.append(f"only {m.sent_pct_min:.1f} % of the frames sent")
    if not tone_ok(m.heard_hz, MEMBER_HZ):
        problems.append(f"heard {m.heard_hz} Hz, not {MEMBER_HZ:g}")
    if not tone_ok(m.far_heard_hz, GATEWAY_HZ):
        problems.append(f"far ends heard {m.far_heard_hz} Hz, not {GATEWAY_HZ:g}")
    if m.pacer.get("resyncs") or m.far_pacer.get("resyncs"):
        problems.append("a tone pump fell more than 1 s behind")
    return "; ".join(problems) or None


async def measure_gateway(plan: Plan, calls: int, run: int) -> CpuMeasurement:
    m = CpuMeasurement("gateway", calls, run)
    members = list(range(calls))
    gw = Worker("gateway", GATEWAY, plan.work / f"gateway-n{calls}-r{run}.log")
    try:
        await start_gateway(plan, gw, f"n{calls}-r{run}", calls)
        started = time.monotonic()
        for index in members:
            member = plan.member_id(index)
            await gw.call("call", CALL_TIMEOUT + 10, member=member, timeout=CALL_TIMEOUT)
        m.connect_s = time.monotonic() - started
        await plan.peer.call("stream", 60, members=members, on=True)
        await asyncio.sleep(WARMUP_S)
        n0, n1, f0, f1 = await window(m, plan.args.seconds, gw, plan.peer)
        expected = FRAMES_PER_S * (n1["at"] - n0["at"])
        heard0 = {k: v["heard"] for k, v in n0["calls"].items()}
        heard1 = {k: v["heard"] for k, v in n1["calls"].items()}
        m.heard_pct_min, m.heard_pct_max, m.voiced_pct_min = pct_range(heard0, heard1, expected)
        m.sent_pct_min = min(
            100.0 * (v["frames_out"] - n0["calls"][k]["frames_out"]) / expected
            for k, v in n1["calls"].items()
        )
        far_expected = FRAMES_PER_S * (f1["at"] - f0["at"])
        wanted = {str(i): f1["heard"][str(i)] for i in members}
        m.far_heard_pct_min, _, m.far_voiced_pct_min = pct_range(f0["heard"], wanted, far_expected)
        ended = [k for k, v in n1["calls"].items() if v["state"] != "active"]
        m.heard_hz = [a["hz"] for a in (await gw.call("analyse", 30)).values()]
        far = await plan.peer.call("analyse", 30, members=members)
        m.far_heard_hz = [a["hz"] for a in far.values()]
        m.error = check(m)
        if len(n1["calls"]) != calls or ended:
            m.error = f"{len(n1['calls'])} calls, not active: {ended}; " + (m.error or "")
    except (WorkerError, TimeoutError, OSError) as exc:
        m.error = f"{type(exc).__name__}: {exc}"
    finally:
        with contextlib.suppress(WorkerError):
            await plan.peer.call("stream", 10, members=members, on=False)
        with contextlib.suppress(WorkerError):
            await gw.call("hangup_all", 60)
        await gw.stop()
        try:
            await plan.peer.call("wait_idle", 40, members=members, timeout=30)
        except WorkerError as exc:
            m.error = m.error or f"members still in calls: {exc}"
    m.log_warnings, m.log_errors, m.log_lines = log_problems(gw.log_path)
    return m


async def measure_raw(plan: Plan, calls: int, run: int) -> CpuMeasurement:
    m = CpuMeasurement("raw", calls, run)
    a_sock, b_sock = socket.socketpair()
    ends = {
        role: Worker(
            f"raw-{role}",
            RAW,
            plan.work / f"raw-{role}-n{calls}-r{run}.log",
            args=("--role", role, "--signal", str(sock.fileno())),
            pass_fds=(sock.fileno(),),
        )
        for role, sock in (("caller", a_sock), ("callee", b_sock))
    }
    caller, callee = ends["caller"], ends["callee"]
    try:
        try:
            for worker in (caller, callee):
                await worker.start()
        finally:
            a_sock.close()
            b_sock.close()
        keys = [os.urandom(256).hex() for _ in range(calls)]
        for worker in (caller, callee):
            await worker.call("setup", 30, keys=keys)
        started = time.monotonic()
        await asyncio.gather(
            *(w.call("connect", CALL_TIMEOUT + 10, timeout=CALL_TIMEOUT) for w in (caller, callee))
        )
        m.connect_s = time.monotonic() - started
        await asyncio.sleep(WARMUP_S)
        n0, n1, f0, f1 = await window(m, plan.args.seconds, caller, callee)
        expected = FRAMES_PER_S * (n1["at"] - n0["at"])
        m.heard_pct_min, m.heard_pct_max, m.voiced_pct_min = pct_range(
            n0["heard"], n1["heard"], expected
        )
        far_expected = FRAMES_PER_S * (f1["at"] - f0["at"])
        m.far_heard_pct_min, _, m.far_voiced_pct_min = pct_range(
            f0["heard"], f1["heard"], far_expected
        )
        m.heard_hz = [a["hz"] for a in (await caller.call("analyse", 30)).values()]
        m.far_heard_hz = [a["hz"] for a in (await callee.call("analyse", 30)).values()]
        m.error = check(m)
        errors = n1["send_errors"] - n0["send_errors"], f1["send_errors"] - f0["send_errors"]
        if any(errors) or n1["failed"] or f1["failed"]:
            m.error = f"send errors {errors}, failed {n1['failed']} {f1['failed']}; " + (
                m.error or ""
            )
    except (WorkerError, TimeoutError, OSError) as exc:
        m.error = f"{type(exc).__name__}: {exc}"
    finally:
        for worker in (caller, callee):
            await worker.stop()
    m.log_warnings, m.log_errors, m.log_lines = log_problems(caller.log_path)
    return m


def rotated(values: list[int], by: int) -> list[int]:
    """The N order of run *by*: rotated so slow drift favours no N (notes §0.1)."""
    by %= len(values)
    return values[by:] + values[:by]


def cost_against_raw(gateway: Sequence[Any], raw: Sequence[Any]) -> dict[str, float]:
    """Median CPU cost and peak memory of the gateway's and raw ntgcalls' measurements, and
    their ratio (NaN when either side has no good run)."""
    gw_cost = median([m.core_s_per_call_s for m in gateway])
    raw_cost = median([m.core_s_per_call_s for m in raw])
    return {
        "gateway_core_s_per_call_s": gw_cost,
        "raw_core_s_per_call_s": raw_cost,
        "ratio_gateway_raw": gw_cost / raw_cost if gateway and raw else float("nan"),
        "gateway_vm_hwm_mib": median([m.vm_hwm_kib / 1024 for m in gateway]),
        "raw_vm_hwm_mib": median([m.vm_hwm_kib / 1024 for m in raw]),
    }


def cpu_summary(results: list[CpuMeasurement], calls: list[int]) -> list[dict[str, Any]]:
    rows = []
    for n in calls:

        def good(kind: str, n: int = n) -> list[CpuMeasurement]:
            return [m for m in results if m.calls == n and m.target == kind and m.ok]

        gw, raw = good("gateway"), good("raw")
        rows.append(
            {
                "calls": n,
                "runs_ok": {"gateway": len(gw), "raw": len(raw)},
                **cost_against_raw(gw, raw),
                "gateway_heard_pct_min": median([m.heard_pct_min for m in gw]),
                "gateway_sent_pct_min": median([m.sent_pct_min or 0.0 for m in gw]),
                "members_heard_pct_min": median([m.far_heard_pct_min for m in gw]),
                "members_cores": median([m.far_cores for m in gw]),
                "raw_other_end_cores": median([m.far_cores for m in raw]),
            }
        )
    return rows


def cpu_table(rows: list[dict[str, Any]]) -> str:
    head = (
        "| N | gateway core-s/call-s | raw ntgcalls end core-s/call-s | ratio gw/raw "
        "| gateway VmHWM MiB | raw end VmHWM MiB | gateway heard / sent / members heard % (min) |"
    )
    out = [head, "|" + "---|" * 7]
    for r in rows:
        out.append(
            f"| {r['calls']} | {fmt(r['gateway_core_s_per_call_s'], '.4f')} "
            f"| {fmt(r['raw_core_s_per_call_s'], '.4f')} "
            f"| {fmt(r['ratio_gateway_raw'], '.2f')} "
            f"| {fmt(r['gateway_vm_hwm_mib'], '.1f')} | {fmt(r['raw_vm_hwm_mib'], '.1f')} "
            f"| {fmt(r['gateway_heard_pct_min'], '.1f')} / {fmt(r['gateway_sent_pct_min'], '.1f')}"
            f" / {fmt(r['members_heard_pct_min'], '.1f')} |"
        )
    return "\n".join(out)


def hz_text(values: list[float | None]) -> str:
    found = [v for v in values if v is not None]
    if len(found) != len(values) or not found:
        return "none" if not found else f"{len(values) - len(found)} silent"
    lo, hi = min(found), max(found)
    return f"{lo:.1f}" if hi - lo < 0.05 else f"{lo:.1f}-{hi:.1f}"


def checks_table(results: list[CpuMeasurement]) -> str:
    head = (
        "| target | N | run | core-s/call-s | main thread % | cpu ticks / self % "
        "| heard % min-max | voiced % min "
        "| far heard % min | tone Hz heard / far | pump late max ms (>10 ms) | far end cores "
        "| others (cores) | steal % | log W/E | ok |"
    )
    out = [head, "|" + "---|" * 16]
    for m in sorted(results, key=lambda m: (m.calls, m.target, m.run)):
        ticks = 100.0 * m.cpu_ticks_s / m.cpu_s if m.cpu_s else 0.0
        own = 100.0 * m.self_cpu_s / m.cpu_s if m.cpu_s else 0.0
        out.append(
            f"| {m.target} | {m.calls} | {m.run} | {m.core_s_per_call_s:.4f} "
            f"| {m.main_thread_pct:.0f} | {ticks:.0f} / {own:.0f} "
            f"| {m.heard_pct_min:.1f}-{m.heard_pct_max:.1f} | {m.voiced_pct_min:.1f} "
            f"| {m.far_heard_pct_min:.1f} | {hz_text(m.heard_hz)} / {hz_text(m.far_heard_hz)} "
            f"| {m.pacer.get('late_max_ms', 0):.1f} ({m.pacer.get('late_over_10ms', 0)}) "
            f"| {m.far_cores:.2f} | {m.others_cores:.2f} | {m.machine_steal_pct:.1f} "
            f"| {m.log_warnings}/{m.log_errors} | {'yes' if m.ok else 'NO'} |"
        )
    return "\n".join(out)


# ---------------------------------------------------------------------------------------
# the whole bench


def versions() -> dict[str, str]:
    out = {}
    for name in ("ntgcalls", "py-tgcalls", "telethon"):
        try:
            out[name] = importlib.metadata.version(name)
        except importlib.metadata.PackageNotFoundError:
            out[name] = "missing"
    return out


async def bench(args: argparse.Namespace, work: Path) -> dict[str, Any]:
    began = time.monotonic()
    timing: dict[str, float] = {}
    members = max(args.calls)
    peer = Worker("peer", PEER, work / "peer.log")
    setup: list[SetupSample] = []
    cpu: list[CpuMeasurement] = []
    try:
        await peer.start()
        world = await peer.call("start", 60 + 10 * members, members=members)
        timing["peer_start_s"] = round(time.monotonic() - began, 1)
        key_file = write_key(work / "sim.pem", world["public_pem"])
        plan = Plan(args, work, key_file, peer, world)
        for run in range(1, args.runs + 1):
            order = (product_setup, raw_setup) if run % 2 else (raw_setup, product_setup)
            for phase in order:
                started = time.monotonic()
                budget = (2 * args.setup_calls + 2) * (2 * CALL_TIMEOUT + 30) + 120
                try:
                    setup += await asyncio.wait_for(phase(plan, run), budget)
                except (WorkerError, TimeoutError, OSError) as exc:
                    path = "raw" if phase is raw_setup else "outgoing"
                    setup.append(SetupSample(path, run, -1, error=f"{type(exc).__name__}: {exc}"))
                    print(f"set-up {path} run {run} FAILED: {exc}", file=sys.stderr, flush=True)
                key = f"{phase.__name__}_s"
                timing[key] = round(timing.get(key, 0.0) + time.monotonic() - started, 1)
        for run in range(1, args.runs + 1):
            for calls in rotated(args.calls, run - 1):
                targets = (measure_gateway, measure_raw)
                for measure in targets if (run + calls) % 2 else targets[::-1]:
                    kind = "gateway" if measure is measure_gateway else "raw"
                    budget = args.seconds + WARMUP_S + calls * 2 * CALL_TIMEOUT + 240
                    started = time.monotonic()
                    try:
                        m = await asyncio.wait_for(measure(plan, calls, run), budget)
                    except TimeoutError:
                        m = CpuMeasurement(kind, calls, run, error=f"over {budget:.0f} s")
                    m.elapsed_s = round(time.monotonic() - started, 1)
                    cpu.append(m)
                    print(
                        f"run {run} N={calls:<2} {kind:<7} {m.core_s_per_call_s:.4f} core-s/call-s"
                        f", heard {m.heard_pct_min:.1f} %, far heard {m.far_heard_pct_min:.1f} %, "
                        + ("ok" if m.ok else f"FAILED: {m.error}"),
                        file=sys.stderr,
                        flush=True,
                    )
    finally:
        await peer.stop()
    return {
        "meta": {
            "date": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
            "host": platform.node(),
            "machine": platform.machine(),
            "kernel": platform.release(),
            "cpus": os.cpu_count(),
            "python": platform.python_version(),
            **versions(),
            "netns": private_netns_ready() is None,
            "calls": args.calls,
            "seconds": args.seconds,
            "runs": args.runs,
            "setup_calls": args.setup_calls,
            "warmup_s": WARMUP_S,
            "cpu_source": "clock_gettime(CPUCLOCK_SCHED of pid); ticks: procfs stat",
            "elapsed_s": round(time.monotonic() - began, 1),
            "timing": timing,
        },
        "setup": {
            "summary": setup_summary(setup),
            "samples": [asdict(s) for s in setup],
        },
        "cpu": {
            "summary": cpu_summary(cpu, args.calls),
            "measurements": [asdict(m) for m in cpu],
        },
    }


def parse_args(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--calls", type=calls_list(32), default=[1, 4, 8], help="N values: 1,4,8")
    parser.add_argument("--seconds", type=float, default=30.0, help="metered window (s)")
    parser.add_argument("--runs", type=int, default=1, help="repetitions of everything")
    parser.add_argument("--setup-calls", type=int, default=20, help="set-up calls per path and run")
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT, help="JSON results")
    parser.add_argument("--keep", action="store_true", help="keep the logs' directory")
    args = parser.parse_args(argv)
    if args.seconds < 1 or args.runs < 1 or not 1 <= args.setup_calls <= 500:
        parser.error("--seconds >= 1, --runs >= 1 and --setup-calls 1..500")
    return args


def estimate_seconds(args: argparse.Namespace) -> float:
    """Calibrated on the 2-vCPU development VM (a call set-up and tear-down is ~0.5 s)."""
    peer = 2 + 0.5 * max(args.calls)
    setup = 3 + (2 * args.setup_calls + 1) * 0.5 + 2 + (args.setup_calls + 1) * 0.5
    cpu = sum(2 * (args.seconds + WARMUP_S) + 3 + 0.3 * n for n in args.calls)
    return float(peer + args.runs * (setup + cpu))


def main(argv: list[str]) -> int:
    args = parse_args(argv)

    def report(result: dict[str, Any]) -> bool:
        setup = [SetupSample(**s) for s in result["setup"]["samples"]]
        cpu = [CpuMeasurement(**m) for m in result["cpu"]["measurements"]]
        print()
        print(setup_table(result["setup"]["summary"]))
        print()
        print(cpu_table(result["cpu"]["summary"]))
        print()
        print(checks_table(cpu))
        for s in setup:
            if s.error:
                print(f"set-up {s.path} run {s.run} call {s.index}: {s.error}")
        for m in cpu:
            for line in ([m.error] if m.error else []) + m.log_lines[:5]:
                print(f"{m.target} N={m.calls} run {m.run}: {line}")
        print(f"\nresults: {args.out} (the bench took {result['meta']['elapsed_s'] / 60:.1f} min)")
        failed = any(not s.ok for s in setup) or any(not m.ok for m in cpu)
        return not (failed or any(r["calls_ok"] == 0 for r in result["setup"]["summary"]))

    return run_netns_bench(
        __file__,
        argv,
        args,
        limit=estimate_seconds(args) * 2 + 180,
        banner=(
            f"bench: set-up {args.setup_calls} calls per path, N={','.join(map(str, args.calls))}, "
            f"{args.seconds:g} s windows, {args.runs} run(s), "
            f"about {estimate_seconds(args) / 60:.1f} min (private network namespace)"
        ),
        prefix="linegram-bench-tg-",
        bench=lambda work: bench(args, work),
        report=report,
    )


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))

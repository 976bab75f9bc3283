"""Bridged calls end to end: latency, CPU per call, set-up time and speech quality.

Not an RFC module.  A SIP caller (``bench/call_sip.py``: the ATA's side, a
small asyncio UAC with G.711 RTP) calls the gateway (``bench/call_gateway.py``:
``gateway.app.Gateway`` alone in its process, ATA lines with ``incoming =
"members"``), which rings a linked household member in the simulated
Telegram cloud (``bench/call_peer.py``: cloud, companion bot, members with real
ntgcalls media).  Each measurement is set against a baseline taken in the same
run on the same machine:

1. **Latency**, RTP in -> the member's PCM out and back: chirp bursts in low
   noise (performance-baselines.md §3), found by cross-correlation.
   Baseline: the same programs through one raw ntgcalls call (``bench/call_raw.py``).
2. **CPU per bridged call** at N concurrent calls, of the gateway's process.
   Baseline: one raw ntgcalls end with N calls (``telegram.measure_raw``).
3. **Set-up time**: INVITE -> ``phone.requestCall`` in the cloud, and INVITE ->
   200 OK less the member's answer delay.  Baseline: a raw ntgcalls pair's
   ``create_p2p_call`` -> CONNECTED (``telegram.raw_setup``).
4. **Speech quality**: PESQ (P.862 narrowband) of an artificial voice sent as
   G.711 RTP and received by the member, and back.  Baseline: G.711 encode and
   decode alone; the raw ntgcalls call is shown too.

Run: ``.venv/bin/python bench/calls.py [--quick] [--runs 1] [--calls 1,4,8]``.
Needs the bench extra (``pip install -e '.[bench]'``: numpy, pesq).  WebRTC
ignores loopback, so everything runs in a private network namespace with a
veth pair (``tools/in-netns.sh``; the script re-runs itself there, which needs root).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import platform
import sys
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

try:
    import numpy as np
    import pesq  # noqa: F401  (call_audio imports it where it scores)
except ImportError as missing:
    sys.exit(
        f"bench/calls.py needs the bench extra ({missing.name} is missing): .venv/bin/pip install"
        " -c tools/constraints.txt --build-constraint tools/constraints.txt -e '.[bench]'"
    )
import call_audio as ca
from call_sip import source_ip
from options import calls_list, run_netns_bench
from telegram import (
    CpuMeasurement,
    Plan,
    SetupSample,
    checks_table,
    cost_against_raw,
    cpu_ticks,
    fmt,
    log_problems,
    machine_times,
    measure_raw,
    median,
    ms,
    p95,
    proc_status,
    raw_setup,
    rotated,
    thread_split,
    thread_ticks,
    versions,
    write_key,
)
from tg_wire import GATEWAY_HZ, MEMBER_HZ, Worker, WorkerError, cpu_clock

from simcloud.client import SIM_API_HASH, SIM_API_ID
from simcloud.netns import private_netns_ready

BENCH = Path(__file__).resolve().parent
ROOT = BENCH.parent
DEFAULT_OUT = BENCH / "results" / "calls-latest.json"
PEER = BENCH / "call_peer.py"
SIP = BENCH / "call_sip.py"
GATEWAY = BENCH / "call_gateway.py"
RAW = BENCH / "call_raw.py"

GATEWAY_IP = "127.0.0.50"
SIP_PORT = 5060
CALL_TIMEOUT = 20.0  # INVITE -> 200 OK
CONNECT_TIMEOUT = 15.0  # the member's media up after the 200 OK
ANSWER_DELAY = 0.3  # the set-up calls' member "picks up" this long after the phone rings
GAP_S = 0.3  # between two set-up calls (as telegram.py)
WARMUP_S = 3.0  # every call up and streaming, before the CPU window
LEAD_S = 0.5  # from "play" to the programs' start
SPEECH_S = 8.0
RTP_PER_S = 50
FRAMES_PER_S = 100
MIN_PCT = 98.0
TONE_TOLERANCE_HZ = 1.0
QUICK = {"runs": 1, "calls": [1, 4], "seconds": 8.0, "setup_calls": 8, "bursts": 10}


# ---------------------------------------------------------------------------------------
# the world


@dataclass
class Bench:
    args: argparse.Namespace
    work: Path
    key_file: Path
    peer: Worker
    sip: Worker
    world: dict[str, Any]
    plan: Plan  # what telegram.py's baselines take
    forward: ca.Program
    reverse: ca.Program
    speech: ca.Samples
    paths: dict[str, Path] = field(default_factory=dict)
    layout: dict[str, float] = field(default_factory=dict)


def gateway_config(b: Bench, label: str, lines: int) -> dict[str, Any]:
    """The gateway's settings: N ATA lines, line k called from source_ip(k), ringing member k."""
    world = b.world
    return {
        "gateway": {"data_dir": str(b.work / f"gateway-{label}"), "log_level": "info"},
        "sip": {"listen": GATEWAY_IP, "port": SIP_PORT, "rate_limit": 1000.0},
        "media": {
            "address": GATEWAY_IP,
            "rtp_port_min": 20000,
            "rtp_port_max": 20999,
            "rtp_timeout": 15.0,
        },
        "lines": [
            {
                "name": f"line{k}",
                "kind": "ata",
                "allow": [source_ip(k)],
                "incoming": "members",
                "country_code": "44",
            }
            for k in range(lines)
        ],
        "telegram": {
            "api_id": SIM_API_ID,
            "api_hash": SIM_API_HASH,
            "bot_token": world["bot_token"],
            "ring_timeout": 20,
            "server": {
                "address": f"{world['host']}:{world['port']}",
                "public_key": str(b.key_file),
            },
        },
    }


async def start_gateway(b: Bench, label: str, lines: int) -> Worker:
    """A fresh gateway process, signed in, members 0..lines-1 linked to line0..line<lines-1>."""
    gw = Worker("gateway", GATEWAY, b.work / f"gateway-{label}.log")
    await gw.start()
    started = await gw.call(
        "start", 60, config=gateway_config(b, label, lines), run_dir=str(b.work)
    )
    phone = b.world["gateway_phone"]
    await gw.call("login_phone", 60, phone=phone)
    code = (await b.peer.call("code", 10, phone=phone))["code"]
    await gw.call("login_code", 90, code=code, timeout=60)
    members = [[*m, [f"line{k}"]] for k, m in enumerate(b.world["members"][:lines])]
    await gw.call("link", 30, members=members)
    host, port = started["sip"]
    await b.sip.call("configure", 10, host=host, port=port)
    for k in range(lines):
        await b.peer.call("behave", 10, member=k, answer_delay=0.0)
    return gw


async def end_calls(b: Bench, members: list[int]) -> str | None:
    """The SIP side hangs up everything; wait until the members are out of their calls."""
    problem = None
    try:
        await b.sip.call("bye_all", 60)
    except WorkerError as exc:
        problem = f"hang-up: {exc}"
    try:
        await b.peer.call("wait_idle", 40, members=members, timeout=30)
    except WorkerError as exc:
        problem = problem or f"members still in calls: {exc}"
    return problem


# ---------------------------------------------------------------------------------------
# measurement 3: set-up time


@dataclass
class SetupCall:
    """One bridged call's set-up, from the SIP side's INVITE on."""

    run: int
    index: int
    warmup: bool = False  # the first call of a gateway process: left out of the statistics
    invite_to_request_s: float | None = None  # the cloud saw phone.requestCall
    invite_to_ringing_s: float | None = None  # 180 Ringing
    invite_to_member_rings_s: float | None = None  # the member's app saw the call
    invite_to_ok_s: float | None = None  # 200 OK, answer delay included
    answer_delay_s: float | None = None  # the member's app rang -> it picked up
    setup_s: float | None = None  # invite_to_ok_s less answer_delay_s
    answer_to_ok_s: float | None = None  # the member picked up -> 200 OK
    connected_to_ok_s: float | None = None  # the member's media CONNECTED -> 200 OK
    error: str | None = None

    @property
    def ok(self) -> bool:
        return self.error is None


def _minus(a: float | None, b: float | None) -> float | None:
    return None if a is None or b is None else a - b


async def bridged_setup(b: Bench, run: int) -> list[SetupCall]:
    samples = []
    await b.peer.call("behave", 10, member=0, answer_delay=ANSWER_DELAY)
    for index in range(b.args.setup_calls + 1):
        s = SetupCall(run, index, warmup=index == 0)
        try:
            await b.peer.call("arm", 10, member=0)
            t = await b.sip.call("invite", CALL_TIMEOUT + 10, call=0, timeout=CALL_TIMEOUT)
            r = await b.peer.call(
                "setup_report",
                CONNECT_TIMEOUT + 10,
                member=0,
                since_wall=t["invite_wall"],
                timeout=CONNECT_TIMEOUT,
            )
            s.invite_to_request_s = r["requested_wall"] - t["invite_wall"]
            s.invite_to_ringing_s = _minus(t["ringing"], t["invite"])
            s.invite_to_member_rings_s = _minus(r["incoming_at"], t["invite"])
            s.invite_to_ok_s = t["answered"] - t["invite"]
            s.answer_delay_s = _minus(r["answering_at"], r["incoming_at"])
            s.setup_s = _minus(s.invite_to_ok_s, s.answer_delay_s)
            s.answer_to_ok_s = _minus(t["answered"], r["answering_at"])
            s.connected_to_ok_s = _minus(t["answered"], r["connected_at"])
            if s.setup_s is None:
                s.error = f"incomplete member report: {r}"
        except (WorkerError, TimeoutError) as exc:
            s.error = f"{type(exc).__name__}: {exc}"
        finally:
            problem = await end_calls(b, [0])
            s.error = s.error or problem
        samples.append(s)
        status = "ok" if s.ok else f"FAILED: {s.error}"
        print(
            f"set-up {index:>2}: INVITE -> 200 OK {ms(s.invite_to_ok_s or float('nan'))} ms, "
            f"less answer delay {ms(s.setup_s or float('nan'))} ms, {status}",
            file=sys.stderr,
            flush=True,
        )
        await asyncio.sleep(GAP_S)
    await b.peer.call("behave", 10, member=0, answer_delay=0.0)
    return samples


def setup_summary(calls: list[SetupCall], raw: list[SetupSample]) -> list[dict[str, Any]]:
    def values(name: str) -> list[float]:
        return [v for s in calls if s.ok and not s.warmup and (v := getattr(s, name)) is not None]

    raw_values = [s.setup_s for s in raw if s.ok and not s.warmup and s.setup_s is not None]
    raw_median = median(raw_values)
    rows = []
    for name, label, compared in SETUP_ROWS:
        v = values(name)
        rows.append(
            {
                "measure": name,
                "label": label,
                "calls_ok": len(v),
                "median_s": median(v),
                "p95_s": p95(v),
                "min_s": min(v, default=float("nan")),
                "max_s": max(v, default=float("nan")),
                "ratio_to_raw": median(v) / raw_median if compared else float("nan"),
            }
        )
    rows.append(
        {
            "measure": "raw",
            "label": "raw ntgcalls pair: create_p2p_call → CONNECTED (baseline)",
            "calls_ok": len(raw_values),
            "median_s": raw_median,
            "p95_s": p95(raw_values),
            "min_s": min(raw_values, default=float("nan")),
            "max_s": max(raw_values, default=float("nan")),
            "ratio_to_raw": 1.0 if raw_values else float("nan"),
        }
    )
    return rows


SETUP_ROWS = (
    ("invite_to_request_s", "INVITE → phone.requestCall seen by the cloud", False),
    ("invite_to_ringing_s", "INVITE → 180 Ringing", False),
    ("invite_to_member_rings_s", "INVITE → the member's app rings", False),
    ("setup_s", "INVITE → 200 OK, less the member's answer delay", True),
    ("answer_to_ok_s", "the member picks up → 200 OK", True),
    ("answer_delay_s", "(the member's answer delay, subtracted)", False),
    ("connected_to_ok_s", "the member's media CONNECTED → 200 OK", False),
)


def setup_table(rows: list[dict[str, Any]]) -> str:
    out = [
        "| measure | calls ok | median ms | p95 ms | min-max ms | ratio to raw |",
        "|---|---|---|---|---|---|",
    ]
    for r in rows:
        out.append(
            f"| {r['label']} | {r['calls_ok']} | {ms(r['median_s'])} | {ms(r['p95_s'])} "
            f"| {ms(r['min_s'])}-{ms(r['max_s'])} | {fmt(r['ratio_to_raw'], '.2f')} |"
        )
    return "\n".join(out)


# ---------------------------------------------------------------------------------------
# measurements 1 and 4: latency and speech quality, in one call per path and run


@dataclass
class Direction:
    """One direction of one quality call: every burst's latency and the speech sample's PESQ."""

    path: str  # "bridged" or "raw"
    direction: str  # "forward" (SIP -> member, A -> B) or "reverse"
    run: int
    latencies_s: list[float | None] = field(default_factory=list)
    peaks: list[float] = field(default_factory=list)
    pesq: float | None = None
    speech_delay_s: float | None = None
    speech_xcorr: float | None = None
    error: str | None = None

    @property
    def found(self) -> list[float]:
        return [v for v in self.latencies_s if v is not None]


def analyse_direction(
    b: Bench, d: Direction, program: ca.Program, times: list[float], chunk: int, stem: Path
) -> Direction:
    try:
        recording = ca.Recording.load(stem)
        bursts = ca.burst_latencies(times, chunk, program.bursts, recording)
        d.latencies_s = [x.latency_s for x in bursts]
        d.peaks = [round(x.peak, 3) for x in bursts]
        assert program.speech is not None
        start = program.speech[0]
        if start // chunk >= len(times):
            raise ValueError("the speech sample was not sent")
        q = ca.speech_quality(b.speech, recording, times[start // chunk])
        d.pesq, d.speech_delay_s, d.speech_xcorr = q["pesq"], q.get("delay_s"), q.get("xcorr")
        d.error = q["error"]
        if d.error is None and len(d.found) < len(program.bursts):
            d.error = (
                f"{len(program.bursts) - len(d.found)} of {len(program.bursts)} bursts not found"
            )
    except (OSError, ValueError, IndexError) as exc:
        d.error = f"{type(exc).__name__}: {exc}"
    return d


def quality_budget(b: Bench) -> float:
    return b.layout["total_s"] + 2 * CALL_TIMEOUT + 60


async def bridged_quality(b: Bench, run: int) -> list[Direction]:
    stems = (b.work / f"bridged-fwd-r{run}", b.work / f"bridged-rev-r{run}")
    dirs = [Direction("bridged", "forward", run), Direction("bridged", "reverse", run)]
    try:
        await b.peer.call("arm", 10, member=0)
        await b.sip.call("invite", CALL_TIMEOUT + 10, call=0, timeout=CALL_TIMEOUT)
        await b.peer.call("wait_connected", CONNECT_TIMEOUT + 5, member=0, timeout=CONNECT_TIMEOUT)
        await b.sip.call("record", 10, call=0)
        await b.peer.call("record", 10, member=0)
        start_at = time.monotonic() + LEAD_S
        await b.sip.call("play", 10, call=0, path=str(b.paths["forward"]), start_at=start_at)
        await b.peer.call("play", 10, member=0, path=str(b.paths["reverse"]), start_at=start_at)
        wait = b.layout["total_s"] + 10
        sent_fwd = await b.sip.call("played", wait + 5, call=0, timeout=wait)
        sent_rev = await b.peer.call("played", wait + 5, member=0, timeout=wait)
        await asyncio.sleep(1.0)  # the last of it in flight
        await b.peer.call("save", 30, member=0, stem=str(stems[0]))
        await b.sip.call("save", 30, call=0, stem=str(stems[1]))
    except (WorkerError, TimeoutError) as exc:
        for d in dirs:
            d.error = f"{type(exc).__name__}: {exc}"
        return dirs
    finally:
        problem = await end_calls(b, [0])
    analyse_direction(b, dirs[0], b.forward, sent_fwd["times"], sent_fwd["chunk"], stems[0])
    analyse_direction(b, dirs[1], b.reverse, sent_rev["times"], sent_rev["chunk"], stems[1])
    if problem:
        dirs[0].error = dirs[0].error or problem
    return dirs


async def raw_quality(b: Bench, run: int) -> list[Direction]:
    stems = (b.work / f"raw-fwd-r{run}", b.work / f"raw-rev-r{run}")
    dirs = [Direction("raw", "forward", run), Direction("raw", "reverse", run)]
    raw = Worker("raw-quality", RAW, b.work / f"raw-quality-r{run}.log")
    try:
        await raw.start()
        result = await raw.call(
            "quality",
            quality_budget(b),
            forward=str(b.paths["forward"]),
            reverse=str(b.paths["reverse"]),
            stems=[str(s) for s in stems],
            lead_s=LEAD_S,
            timeout=CONNECT_TIMEOUT,
        )
    except (WorkerError, TimeoutError) as exc:
        for d in dirs:
            d.error = f"{type(exc).__name__}: {exc}"
        return dirs
    finally:
        await raw.stop()
    chunk = result["chunk"]
    analyse_direction(b, dirs[0], b.forward, result["forward_times"], chunk, stems[0])
    analyse_direction(b, dirs[1], b.reverse, result["reverse_times"], chunk, stems[1])
    return dirs


DIRECTIONS = {
    "forward": "SIP → member: RTP in → member's PCM",
    "reverse": "member → SIP: member's PCM → RTP out",
}
PATHS = {"bridged": "bridged call", "raw": "raw ntgcalls call (baseline)"}


def quality_summary(dirs: list[Direction], g711_pesq: float) -> list[dict[str, Any]]:
    rows = []
    for direction in DIRECTIONS:
        pooled = {
            path: [v for d in dirs if d.path == path and d.direction == direction for v in d.found]
            for path in PATHS
        }
        raw_median = median(pooled["raw"])
        for path in PATHS:
            mine = [d for d in dirs if d.path == path and d.direction == direction]
            values = pooled[path]
            scores = [d.pesq for d in mine if d.pesq is not None]
            rows.append(
                {
                    "direction": direction,
                    "path": path,
                    "bursts_found": len(values),
                    "bursts_sent": sum(len(d.latencies_s) for d in mine),
                    "latency_median_s": median(values),
                    "latency_p95_s": p95(values),
                    "latency_min_s": min(values, default=float("nan")),
                    "latency_ratio_to_raw": median(values) / raw_median,
                    "peak_median": median([p for d in mine for p in d.peaks]),
                    "pesq": median(scores),
                    "pesq_g711": g711_pesq,
                    "pesq_ratio_to_g711": median(scores) / g711_pesq,
                    "speech_delay_s": median(
                        [d.speech_delay_s for d in mine if d.speech_delay_s is not None]
                    ),
                }
            )
    return rows


def latency_table(rows: list[dict[str, Any]]) -> str:
    out = [
        "| direction | path | bursts found | median ms | p95 ms | min ms | ratio to raw |",
        "|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        out.append(
            f"| {DIRECTIONS[r['direction']]} | {PATHS[r['path']]} "
            f"| {r['bursts_found']}/{r['bursts_sent']} | {ms(r['latency_median_s'])} "
            f"| {ms(r['latency_p95_s'])} | {ms(r['latency_min_s'])} "
            f"| {fmt(r['latency_ratio_to_raw'], '.2f')} |"
        )
    return "\n".join(out)


def pesq_table(rows: list[dict[str, Any]]) -> str:
    head = (
        "| direction | bridged PESQ | G.711 alone PESQ (baseline) | ratio bridged/G.711 "
        "| raw ntgcalls PESQ | speech delay bridged ms |"
    )
    out = [head, "|---|---|---|---|---|---|"]
    for direction in DIRECTIONS:
        by = {r["path"]: r for r in rows if r["direction"] == direction}
        bridged, raw = by["bridged"], by["raw"]
        out.append(
            f"| {DIRECTIONS[direction]} | {fmt(bridged['pesq'], '.2f')} "
            f"| {fmt(bridged['pesq_g711'], '.2f')} | {fmt(bridged['pesq_ratio_to_g711'], '.2f')} "
            f"| {fmt(raw['pesq'], '.2f')} | {ms(bridged['speech_delay_s'])} |"
        )
    return "\n".join(out)


# ---------------------------------------------------------------------------------------
# measurement 2: CPU per bridged call


@dataclass
class BridgedCpu:
    """The gateway's process at N bridged calls: its CPU and the checks that audio flowed."""

    calls: int
    run: int
    target: str = "bridged"
    connect_s: float = 0.0  # placing all N SIP calls one after the other, to the last 200 OK
    window_s: float = 0.0
    cpu_s: float = 0.0
    cpu_ticks_s: float = 0.0
    core_s_per_call_s: float = 0.0
    main_thread_pct: float = 0.0
    thread_ticks: dict[str, int] = field(default_factory=dict)
    vm_hwm_kib: int = 0
    threads: int = 0
    rtp_heard_pct_min: float = 0.0  # per call: RTP packets the SIP side got, of 50/s
    rtp_voiced_pct_min: float = 0.0
    members_heard_pct_min: float = 0.0  # per member: 10 ms frames heard, of 100/s
    members_voiced_pct_min: float = 0.0
    to_telegram_pct_min: float = 0.0  # per conversation: frames handed to ntgcalls, of 100/s
    rtp_hz: list[float | None] = field(default_factory=list)  # what the SIP side heard (880)
    members_hz: list[float | None] = field(default_factory=list)  # what members heard (440)
    clock_resyncs: int = 0
    sip_pacer: dict[str, Any] = field(default_factory=dict)
    members_pacer: dict[str, Any] = field(default_factory=dict)
    peer_cores: float = 0.0
    sip_cores: float = 0.0
    others_cores: float = 0.0
    machine_busy_pct: float = 0.0
    machine_steal_pct: float = 0.0
    busiest_others: list[str] = field(default_factory=list)  # "name pid: cores" in the window
    log_warnings: int = 0
    log_errors: int = 0
    log_lines: list[str] = field(default_factory=list)
    elapsed_s: float = 0.0
    error: str | None = None

    @property
    def ok(self) -> bool:
        return self.error is None


def process_ticks() -> dict[int, tuple[str, int]]:
    """(name, utime+stime ticks) of every process procfs shows: who else used the machine."""
    out = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            with contextlib.suppress(OSError, IndexError, ValueError):
                head, tail = (entry / "stat").read_text().rsplit(")", 1)
                fields = tail.split()
                out[int(entry.name)] = (head.split("(", 1)[1], int(fields[11]) + int(fields[12]))
    return out


def busiest(
    before: dict[int, tuple[str, int]], after: dict[int, tuple[str, int]], skip: set[int], s: float
) -> list[str]:
    tick = os.sysconf("SC_CLK_TCK")
    deltas = [
        (ticks - before.get(pid, (name, 0))[1], pid, name)
        for pid, (name, ticks) in after.items()
        if pid not in skip
    ]
    top = sorted(deltas, reverse=True)[:3]
    return [f"{name} {pid}: {d / tick / s:.2f}" for d, pid, name in top if d / tick / s >= 0.01]


def _hz_ok(found: list[float | None], want: float) -> bool:
    return bool(found) and all(h is not None and abs(h - want) <= TONE_TOLERANCE_HZ for h in found)


async def bridged_window(b: Bench, gw: Worker, m: BridgedCpu, members: list[int]) -> None:
    seconds = b.args.seconds
    mach0 = machine_times()
    own0 = time.process_time()
    d0 = await b.sip.call("counts", 10)
    p0 = await b.peer.call("counts", 10, restart=True)
    g0 = await gw.call("counts", 10)
    c0, k0, th0 = cpu_clock(gw.pid), cpu_ticks(gw.pid), thread_ticks(gw.pid)
    pc0, sc0 = cpu_clock(b.peer.pid), cpu_clock(b.sip.pid)
    everyone0 = process_ticks()
    t0 = time.monotonic()
    await asyncio.sleep(seconds)
    for worker in (gw, b.peer, b.sip):
        if not worker.alive:
            raise WorkerError(f"{worker.name} exited during the window")
    c1, k1, th1 = cpu_clock(gw.pid), cpu_ticks(gw.pid), thread_ticks(gw.pid)
    t1 = time.monotonic()
    pc1, sc1 = cpu_clock(b.peer.pid), cpu_clock(b.sip.pid)
    skip = {gw.pid, b.peer.pid, b.sip.pid, os.getpid()}
    m.busiest_others = busiest(everyone0, process_ticks(), skip, t1 - t0)
    g1 = await gw.call("counts", 10)
    p1 = await b.peer.call("counts", 10)
    d1 = await b.sip.call("counts", 10)
    bench_cpu = time.process_time() - own0
    mach1 = machine_times()
    m.window_s = t1 - t0
    m.cpu_s = c1 - c0
    m.cpu_ticks_s = round(k1 - k0, 2)
    m.core_s_per_call_s = m.cpu_s / m.window_s / m.calls
    m.main_thread_pct, m.thread_ticks = thread_split(gw.pid, th0, th1)
    m.vm_hwm_kib = proc_status(gw.pid, "VmHWM")
    m.threads = proc_status(gw.pid, "Threads")
    m.peer_cores = (pc1 - pc0) / m.window_s
    m.sip_cores = (sc1 - sc0) / m.window_s
    total, busy, steal = (y - x for x, y in zip(mach0, mach1, strict=True))
    if total:
        m.machine_busy_pct = 100.0 * busy / total
        m.machine_steal_pct = 100.0 * steal / total
    busy_s = busy / os.sysconf("SC_CLK_TCK")
    m.others_cores = (busy_s - m.cpu_s - (pc1 - pc0) - (sc1 - sc0) - bench_cpu) / m.window_s
    # the SIP side: one call per member
    rtp_expected = RTP_PER_S * (d1["at"] - d0["at"])
    calls = {k: v for k, v in d1["calls"].items() if int(k) < m.calls}
    heard = [
        (
            v["heard"][0] - d0["calls"].get(k, {"heard": [0, 0]})["heard"][0],
            v["heard"][1] - d0["calls"].get(k, {"heard": [0, 0]})["heard"][1],
        )
        for k, v in calls.items()
    ]
    m.rtp_heard_pct_min = min((100.0 * h / rtp_expected for h, _ in heard), default=0.0)
    m.rtp_voiced_pct_min = min((100.0 * v / rtp_expected for _, v in heard), default=0.0)
    frames_expected = FRAMES_PER_S * (p1["at"] - p0["at"])
    members_heard = []
    for index in members:
        f0, v0 = p0["heard"][str(index)]
        f1, v1 = p1["heard"][str(index)]
        members_heard.append(
            (100.0 * (f1 - f0) / frames_expected, 100.0 * (v1 - v0) / frames_expected)
        )
    m.members_heard_pct_min = min((h for h, _ in members_heard), default=0.0)
    m.members_voiced_pct_min = min((v for _, v in members_heard), default=0.0)
    tg_expected = FRAMES_PER_S * (g1["at"] - g0["at"])
    m.to_telegram_pct_min = min(
        (
            100.0
            * (v["frames_out"] - g0["conversations"].get(k, {"frames_out": 0})["frames_out"])
            / tg_expected
            for k, v in g1["conversations"].items()
        ),
        default=0.0,
    )
    m.clock_resyncs = g1["clock"]["resyncs"] - g0["clock"]["resyncs"]
    m.sip_pacer, m.members_pacer = d1["pacer"], p1["pacer"]
    problems = []
    if len(calls) != m.calls or any(v["state"] != "up" for v in calls.values()):
        problems.append(f"SIP calls: {[v['state'] for v in calls.values()]}")
    if len(g1["conversations"]) != m.calls or g1["talking"] != m.calls:
        problems.append(
            f"{len(g1['conversations'])} conversations, {g1['talking']} talking, not {m.calls}"
        )
    if m.rtp_heard_pct_min < MIN_PCT or m.rtp_voiced_pct_min < MIN_PCT:
        problems.append(
            f"RTP heard {m.rtp_heard_pct_min:.1f} % ({m.rtp_voiced_pct_min:.1f} % voiced)"
        )
    if m.members_heard_pct_min < MIN_PCT or m.members_voiced_pct_min < MIN_PCT:
        heard, voiced = m.members_heard_pct_min, m.members_voiced_pct_min
        problems.append(f"members heard {heard:.1f} % ({voiced:.1f} % voiced)")
    if m.to_telegram_pct_min < MIN_PCT:
        problems.append(f"only {m.to_telegram_pct_min:.1f} % of the frames went to Telegram")
    m.error = "; ".join(problems) or None


async def measure_bridged(b: Bench, calls: int, run: int) -> BridgedCpu:
    m = BridgedCpu(calls, run)
    members = list(range(calls))
    gw: Worker | None = None
    try:
        gw = await start_gateway(b, f"n{calls}-r{run}", calls)
        started = time.monotonic()
        for k in members:
            await b.peer.call("arm", 10, member=k)
            await b.sip.call("invite", CALL_TIMEOUT + 10, call=k, timeout=CALL_TIMEOUT)
        m.connect_s = time.monotonic() - started
        await b.peer.call("stream", 60, members=members, on=True)
        await asyncio.sleep(WARMUP_S)
        await bridged_window(b, gw, m, members)
        errors = []
        m.rtp_hz = [a["hz"] for k, a in (await b.sip.call("analyse", 30)).items() if int(k) < calls]
        m.members_hz = [
            a["hz"] for a in (await b.peer.call("analyse", 30, members=members)).values()
        ]
        if not _hz_ok(m.rtp_hz, MEMBER_HZ):
            errors.append(f"the SIP side heard {m.rtp_hz} Hz, not {MEMBER_HZ:g}")
        if not _hz_ok(m.members_hz, GATEWAY_HZ):
            errors.append(f"members heard {m.members_hz} Hz, not {GATEWAY_HZ:g}")
        if errors:
            m.error = "; ".join([m.error, *errors] if m.error else errors)
    except (WorkerError, TimeoutError, OSError) as exc:
        m.error = f"{type(exc).__name__}: {exc}"
    finally:
        with contextlib.suppress(WorkerError):
            await b.peer.call("stream", 10, members=members, on=False)
        problem = await end_calls(b, members)
        if gw is not None:
            await gw.stop()
            m.log_warnings, m.log_errors, m.log_lines = log_problems(gw.log_path)
        m.error = m.error or problem
    return m


def cpu_summary(
    bridged: list[BridgedCpu], raw: list[CpuMeasurement], calls: list[int]
) -> list[dict[str, Any]]:
    rows = []
    for n in calls:
        gw = [m for m in bridged if m.calls == n and m.ok]
        rw = [m for m in raw if m.calls == n and m.ok]
        rows.append(
            {
                "calls": n,
                "runs_ok": {"bridged": len(gw), "raw": len(rw)},
                **cost_against_raw(gw, rw),
                "rtp_heard_pct_min": median([m.rtp_heard_pct_min for m in gw]),
                "members_heard_pct_min": median([m.members_heard_pct_min for m in gw]),
                "to_telegram_pct_min": median([m.to_telegram_pct_min for m in gw]),
                "members_cores": median([m.peer_cores for m in gw]),
                "sip_side_cores": median([m.sip_cores for m in gw]),
            }
        )
    return rows


def cpu_table(rows: list[dict[str, Any]]) -> str:
    head = (
        "| N | gateway core-s/call-s (bridged) | raw ntgcalls end core-s/call-s | ratio gw/raw "
        "| gateway VmHWM MiB | raw end VmHWM MiB "
        "| RTP heard / members heard / to Telegram % (min) |"
    )
    out = [head, "|---|---|---|---|---|---|---|"]
    for r in rows:
        out.append(
            f"| {r['calls']} | {fmt(r['gateway_core_s_per_call_s'], '.4f')} "
            f"| {fmt(r['raw_core_s_per_call_s'], '.4f')} | {fmt(r['ratio_gateway_raw'], '.2f')} "
            f"| {fmt(r['gateway_vm_hwm_mib'], '.1f')} | {fmt(r['raw_vm_hwm_mib'], '.1f')} "
            f"| {fmt(r['rtp_heard_pct_min'], '.1f')} / {fmt(r['members_heard_pct_min'], '.1f')}"
            f" / {fmt(r['to_telegram_pct_min'], '.1f')} |"
        )
    return "\n".join(out)


def bridged_checks(results: list[BridgedCpu]) -> str:
    head = (
        "| N | run | core-s/call-s | main thread % | cpu ticks % | RTP heard/voiced % min "
        "| members heard/voiced % min | tone Hz SIP / members | clock resyncs "
        "| members / SIP side cores | others (cores) | steal % | log W/E | ok |"
    )
    out = [head, "|" + "---|" * 14]
    for m in sorted(results, key=lambda m: (m.calls, m.run)):
        ticks = 100.0 * m.cpu_ticks_s / m.cpu_s if m.cpu_s else 0.0
        out.append(
            f"| {m.calls} | {m.run} | {m.core_s_per_call_s:.4f} | {m.main_thread_pct:.0f} "
            f"| {ticks:.0f} | {m.rtp_heard_pct_min:.1f}/{m.rtp_voiced_pct_min:.1f} "
            f"| {m.members_heard_pct_min:.1f}/{m.members_voiced_pct_min:.1f} "
            f"| {_hz_text(m.rtp_hz)} / {_hz_text(m.members_hz)} | {m.clock_resyncs} "
            f"| {m.peer_cores:.2f} / {m.sip_cores:.2f} | {m.others_cores:.2f} "
            f"| {m.machine_steal_pct:.1f} | {m.log_warnings}/{m.log_errors} "
            f"| {'yes' if m.ok else 'NO'} |"
        )
    return "\n".join(out)


def _hz_text(values: list[float | None]) -> str:
    found = [v for v in values if v is not None]
    if not found:
        return "none"
    lo, hi = min(found), max(found)
    text = f"{lo:.1f}" if hi - lo < 0.05 else f"{lo:.1f}-{hi:.1f}"
    return text if len(found) == len(values) else f"{text} ({len(values) - len(found)} silent)"


# ---------------------------------------------------------------------------------------
# the whole bench


async def quality_phase(b: Bench, run: int, out: dict[str, Any]) -> None:
    """One gateway process: the set-up series, then the latency and speech call."""
    started = time.monotonic()
    gw: Worker | None = None
    try:
        gw = await start_gateway(b, f"quality-r{run}", 1)
        out["setup"] += await bridged_setup(b, run)
        out["quality"] += await bridged_quality(b, run)
    except (WorkerError, TimeoutError, OSError) as exc:
        out["setup"].append(SetupCall(run, -1, error=f"{type(exc).__name__}: {exc}"))
        print(f"bridged quality run {run} FAILED: {exc}", file=sys.stderr, flush=True)
    finally:
        if gw is not None:
            await gw.stop()
            warnings, errors, lines = log_problems(gw.log_path)
            out["logs"].append(
                {
                    "gateway": f"quality-r{run}",
                    "warnings": warnings,
                    "errors": errors,
                    "lines": lines,
                }
            )
    out["timing"][f"bridged_quality_r{run}_s"] = round(time.monotonic() - started, 1)


async def baseline_phase(b: Bench, run: int, out: dict[str, Any]) -> None:
    started = time.monotonic()
    try:
        out["raw_setup"] += await asyncio.wait_for(raw_setup(b.plan, run), 600)
    except (WorkerError, TimeoutError, OSError) as exc:
        out["raw_setup"].append(SetupSample("raw", run, -1, error=f"{type(exc).__name__}: {exc}"))
    out["quality"] += await raw_quality(b, run)
    out["timing"][f"raw_quality_r{run}_s"] = round(time.monotonic() - started, 1)


async def bench(args: argparse.Namespace, work: Path) -> dict[str, Any]:
    began = time.monotonic()
    speech = ca.artificial_voice(SPEECH_S)
    forward, reverse, layout = ca.quality_programs(args.bursts, speech)
    g711_pesq = ca.pesq_nb(speech, ca.g711_roundtrip(speech))
    paths = {
        "forward": forward.save(work / "program-forward.s16"),
        "reverse": reverse.save(work / "program-reverse.s16"),
        "speech": work / "speech.s16",
    }
    paths["speech"].write_bytes(speech.astype("<i2").tobytes())
    out: dict[str, Any] = {"setup": [], "raw_setup": [], "quality": [], "logs": [], "timing": {}}
    bridged: list[BridgedCpu] = []
    raw: list[CpuMeasurement] = []
    peer = Worker("peer", PEER, work / "peer.log")
    sip = Worker("sip", SIP, work / "sip.log")
    try:
        await peer.start()
        await sip.start()
        members = max(args.calls)
        world = await peer.call("start", 60 + 10 * members, members=members)
        key_file = write_key(work / "sim.pem", world["public_pem"])
        plan = Plan(args, work, key_file, peer, world)
        b = Bench(
            args, work, key_file, peer, sip, world, plan, forward, reverse, speech, paths, layout
        )
        out["timing"]["start_s"] = round(time.monotonic() - began, 1)
        for run in range(1, args.runs + 1):
            phases = (quality_phase, baseline_phase)
            for phase in phases if run % 2 else phases[::-1]:
                await phase(b, run, out)
        for run in range(1, args.runs + 1):
            for calls in rotated(args.calls, run - 1):
                kinds = ("bridged", "raw") if (run + calls) % 2 else ("raw", "bridged")
                for kind in kinds:
                    started = time.monotonic()
                    budget = args.seconds + WARMUP_S + calls * 2 * CALL_TIMEOUT + 240
                    try:
                        if kind == "bridged":
                            m: Any = await asyncio.wait_for(measure_bridged(b, calls, run), budget)
                        else:
                            m = await asyncio.wait_for(measure_raw(plan, calls, run), budget)
                    except TimeoutError:
                        m = (
                            BridgedCpu(calls, run)
                            if kind == "bridged"
                            else CpuMeasurement("raw", calls, run)
                        )
                        m.error = f"over {budget:.0f} s"
                    m.elapsed_s = round(time.monotonic() - started, 1)
                    (bridged if kind == "bridged" else raw).append(m)
                    status = "ok" if m.ok else f"FAILED: {m.error}"
                    print(
                        f"run {run} N={calls:<2} {kind:<7} {m.core_s_per_call_s:.4f} "
                        f"core-s/call-s, {status}",
                        file=sys.stderr,
                        flush=True,
                    )
    finally:
        await sip.stop()
        await peer.stop()
    quality: list[Direction] = out["quality"]
    return {
        "meta": {
            "date": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
            "host": platform.node(),
            "machine": platform.machine(),
            "kernel": platform.release(),
            "cpus": os.cpu_count(),
            "python": platform.python_version(),
            **versions(),
            "numpy": np.__version__,
            "netns": private_netns_ready() is None,
            "calls": args.calls,
            "seconds": args.seconds,
            "runs": args.runs,
            "setup_calls": args.setup_calls,
            "bursts": args.bursts,
            "quick": args.quick,
            "answer_delay_s": ANSWER_DELAY,
            "speech_s": SPEECH_S,
            "program_layout": layout,
            "warmup_s": WARMUP_S,
            "cpu_source": "clock_gettime(CPUCLOCK_SCHED of pid); ticks: procfs stat",
            "elapsed_s": round(time.monotonic() - began, 1),
            "timing": out["timing"],
        },
        "setup": {
            "summary": setup_summary(out["setup"], out["raw_setup"]),
            "samples": [asdict(s) for s in out["setup"]],
            "raw_samples": [asdict(s) for s in out["raw_setup"]],
        },
        "quality": {
            "summary": quality_summary(quality, g711_pesq),
            "directions": [asdict(d) for d in quality],
            "gateway_logs": out["logs"],
        },
        "cpu": {
            "summary": cpu_summary(bridged, raw, args.calls),
            "bridged": [asdict(m) for m in bridged],
            "raw": [asdict(m) for m in raw],
        },
    }


def parse_args(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--calls", type=calls_list(16), default=[1, 4, 8], help="N values: 1,4,8")
    parser.add_argument("--seconds", type=float, default=20.0, help="CPU window (s)")
    parser.add_argument("--runs", type=int, default=1, help="repetitions of everything")
    parser.add_argument("--setup-calls", type=int, default=20, help="set-up calls per run")
    parser.add_argument(
        "--bursts", type=int, default=20, help="latency bursts per direction and run"
    )
    parser.add_argument(
        "--quick", action="store_true", help="1 run, N=1,4, 8 s windows, 8 set-up calls, 10 bursts"
    )
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT, help="JSON results")
    parser.add_argument("--keep", action="store_true", help="keep the logs' directory")
    args = parser.parse_args(argv)
    if args.quick:
        for name, value in QUICK.items():
            setattr(args, name, value)
    if args.seconds < 1 or args.runs < 1 or not 1 <= args.setup_calls <= 500:
        parser.error("--seconds >= 1, --runs >= 1 and --setup-calls 1..500")
    if not 1 <= args.bursts <= 100:
        parser.error("--bursts 1..100")
    return args


def estimate_seconds(args: argparse.Namespace) -> float:
    """Calibrated on the 2-vCPU development VM (a bridged set-up call and its hang-up: ~0.7 s)."""
    program = LEAD_S + 3 + args.bursts + 2 * (SPEECH_S + 2)
    quality = 5 + 0.7 * (args.setup_calls + 1) + program + 2
    baseline = 4 + 0.3 * (args.setup_calls + 1) + program + 3
    cpu = sum(2 * (args.seconds + WARMUP_S) + 3 + 0.2 * n for n in args.calls)
    return float(3 + 0.2 * max(args.calls) + args.runs * (quality + baseline + cpu))


def report(result: dict[str, Any], out: Path) -> bool:
    """Print the tables and the problems; True when everything passed."""
    setup = [SetupCall(**s) for s in result["setup"]["samples"]]
    raw_setup_samples = [SetupSample(**s) for s in result["setup"]["raw_samples"]]
    directions = [Direction(**d) for d in result["quality"]["directions"]]
    bridged = [BridgedCpu(**m) for m in result["cpu"]["bridged"]]
    raw = [CpuMeasurement(**m) for m in result["cpu"]["raw"]]
    print("\nLatency (one call, bursts pooled over the runs)\n")
    print(latency_table(result["quality"]["summary"]))
    print("\nSpeech quality (PESQ P.862 narrowband, MOS-LQO, on an artificial voice)\n")
    print(pesq_table(result["quality"]["summary"]))
    print("\nCall set-up (one call at a time, the first of each gateway process left out)\n")
    print(setup_table(result["setup"]["summary"]))
    print("\nCPU per call\n")
    print(cpu_table(result["cpu"]["summary"]))
    print()
    print(bridged_checks(bridged))
    print()
    print(checks_table(raw))
    failed = False
    for s in setup:
        if s.error:
            failed = True
            print(f"set-up run {s.run} call {s.index}: {s.error}")
    for r in raw_setup_samples:
        if r.error:
            failed = True
            print(f"raw set-up run {r.run} call {r.index}: {r.error}")
    for d in directions:
        if d.error:
            failed = True
            print(f"{d.path} {d.direction} run {d.run}: {d.error}")
    for m in [*bridged, *raw]:
        failed = failed or not m.ok
        for line in ([m.error] if m.error else []) + m.log_lines[:5]:
            print(f"{m.target} N={m.calls} run {m.run}: {line}")
    for entry in result["quality"]["gateway_logs"]:
        for line in entry["lines"][:5]:
            print(f"gateway {entry['gateway']}: {line}")
    rows = result["setup"]["summary"]
    failed = failed or any(r["calls_ok"] == 0 for r in rows if r["measure"] in ("setup_s", "raw"))
    print(f"\nresults: {out} (the bench took {result['meta']['elapsed_s'] / 60:.1f} min)")
    return not failed


def main(argv: list[str]) -> int:
    args = parse_args(argv)
    return run_netns_bench(
        __file__,
        argv,
        args,
        limit=estimate_seconds(args) * 2 + 180,
        banner=(
            f"bench: {args.setup_calls} set-up calls, {args.bursts} bursts each way, "
            f"N={','.join(map(str, args.calls))} with {args.seconds:g} s windows, "
            f"{args.runs} run(s), about {estimate_seconds(args) / 60:.1f} min"
            " (private network namespace)"
        ),
        prefix="linegram-bench-calls-",
        bench=lambda work: bench(args, work),
        report=lambda result: report(result, args.out),
    )


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))

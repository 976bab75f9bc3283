"""CPU cost of the gateway's SIP/RTP core per call, against a plain asyncio RTP echo (RFC 3550).

Not an RFC module.  The method is that of performance-baselines.md §4, aimed at
the gateway's echo test instead of a bare echo:

* sipp (``scenarios/uac_pcma_load.xml``) places N concurrent calls from
  127.0.0.41 and plays a looped A-law pcap on each (172-byte RTP packets every
  20 ms, sipp's own ``g711a.pcap`` re-packetised to 20 ms, digital silence left
  out so that an echoed payload can be told from the gateway's idle silence);
* the target answers and echoes: either the gateway (``python -m gateway``, the
  echo extension: decode, jitter buffer, media clock, encode, symmetric RTP) or
  ``bench/rtp_echo.py`` (a socket per call, ``sendto`` back, nothing else);
* sipp plays from a raw socket and never reads the port its SDP names, so a
  sink in this process binds that port: the echo is counted (per call, and
  whether its payload is one sipp sent) instead of drawing ICMP port-unreachables;
* once every call echoes audio and a settle time has passed, a window of
  ``--seconds`` is metered: CPU of the target and of sipp from their process
  CPU clocks (``clock_gettime`` on the pid's CPUCLOCK_SCHED clock: user+sys of
  all threads in ns, the same quantity as ``time.process_time`` in the notes),
  cross-checked with procfs ``stat`` utime+stime.

Run: ``.venv/bin/python bench/run.py [--calls 1,4,16] [--seconds 15] [--runs 1]``.
As root it re-runs itself in a private network namespace (``unshare -n``, only
``lo`` up) so no other traffic touches the counters; ``--no-netns`` turns that off.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import platform
import re
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from options import calls_list, finite, run_bounded, stop_on_sigterm  # noqa: E402  (bench/)

from tests.interop.peers.gateway import GatewayProcess  # noqa: E402
from tests.interop.peers.net import free_port, port_is_free  # noqa: E402
from tests.interop.peers.pcap import (  # noqa: E402
    PT_PCMA,
    SIPP_PCAP_DIR,
    read_pcap,
    speech_packets,
    write_pcap,
)
from tests.interop.peers.procs import LogBook, ManagedProcess  # noqa: E402
from tests.interop.peers.sipmsg import wait_answering  # noqa: E402

BENCH_DIR = Path(__file__).resolve().parent
SCENARIO = BENCH_DIR / "scenarios" / "uac_pcma_load.xml"
ECHO_SCRIPT = BENCH_DIR / "rtp_echo.py"
DEFAULT_OUT = BENCH_DIR / "results" / "latest.json"

GATEWAY_IP = "127.0.0.40"
SIPP_IP = "127.0.0.41"
ECHO_IP = "127.0.0.42"
SIP_PORT = 5060
GATEWAY_RTP_MIN = 20000  # 20000-20999: 500 calls
MEDIA_OFFSET = 10  # the scenario's SDP names [media_port+10]
PACKETS_PER_CALL_S = 50  # 20 ms packets
PAYLOAD = 160
SILENCE_ALAW = bytes([0xD5]) * PAYLOAD
NETNS_ENV = "LINEGRAM_BENCH_IN_NETNS"

SETTLE = 2.0  # s between "every call echoes audio" and the window
MARGIN = 4.0  # s of pcap left after the window, for late answers
READY_TIMEOUT = 15.0
SINK_PERIOD = 0.05  # s between drains of the sink socket
TARGETS = ("gateway", "echo")


# ---------------------------------------------------------------------------------------
# media


def speech_frames() -> list[bytes]:
    """The 20 ms A-law frames of sipp's ``g711a.pcap``, without its all-silence frames."""
    stream = b"".join(p[12:] for _t, p in read_pcap(SIPP_PCAP_DIR / "g711a.pcap"))
    frames = [stream[i : i + PAYLOAD] for i in range(0, len(stream) - PAYLOAD + 1, PAYLOAD)]
    return [f for f in frames if f != SILENCE_ALAW]


def echo_payloads(frames: list[bytes]) -> frozenset[bytes]:
    """Every payload an exact echo of the looped frames can carry.

    The gateway buffers audio in 10 ms sub-frames and may drop one to shrink its
    jitter buffer, after which each echoed packet straddles two sent ones; so
    every 20 ms window of the loop starting on a 10 ms boundary counts.
    """
    loop = b"".join(frames)
    ring = loop + loop[:PAYLOAD]
    half = PAYLOAD // 2
    return frozenset(ring[i : i + PAYLOAD] for i in range(0, len(loop), half)) - {SILENCE_ALAW}


def write_load_pcap(path: Path, seconds: float, frames: list[bytes]) -> None:
    """*seconds* of the looped frames as 20 ms PCMA packets, one continuous RTP stream."""
    count = int(seconds * PACKETS_PER_CALL_S) + 1
    payload = b"".join(frames[i % len(frames)] for i in range(count))
    write_pcap(path, speech_packets(PT_PCMA, payload))


# ---------------------------------------------------------------------------------------
# procfs and process CPU clocks


def cpu_clock(pid: int) -> float:
    """User+sys seconds of all threads of *pid*, ever (Linux MAKE_PROCESS_CPUCLOCK(pid, SCHED))."""
    return time.clock_gettime(((~pid) << 3) | 2)


def cpu_ticks(pid: int) -> float:
    """The same from procfs ``stat`` utime+stime, in clock-tick resolution."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def vm_hwm_kib(pid: int) -> int:
    match = re.search(r"^VmHWM:\s+(\d+) kB", Path(f"/proc/{pid}/status").read_text(), re.M)
    return int(match.group(1)) if match else 0


def machine_times() -> tuple[int, int, int, int]:
    """(total, busy, softirq, steal) jiffies of all CPUs from procfs ``stat``."""
    values = [int(v) for v in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]]
    total = sum(values[:8])  # guest time is already inside user
    idle = values[3] + values[4]
    return total, total - idle, values[6], values[7]


def snmp() -> dict[str, int]:
    """``Proto.Field`` counters of procfs ``net/snmp`` (this network namespace)."""
    out: dict[str, int] = {}
    lines = Path("/proc/net/snmp").read_text().splitlines()
    for head, values in zip(lines[::2], lines[1::2], strict=False):
        proto, names = head.split(":", 1)
        for name, value in zip(names.split(), values.split(":", 1)[1].split(), strict=False):
            out[f"{proto}.{name}"] = int(value)
    return out


def udp_drops(ip: str) -> int:
    """Datagrams dropped (receive buffer full) on the UDP sockets bound to *ip*, now open."""
    addr = f"{int.from_bytes(socket.inet_aton(ip), sys.byteorder):08X}"
    total = 0
    for line in Path("/proc/net/udp").read_text().splitlines()[1:]:
        fields = line.split()
        if fields[1].split(":")[0] == addr:
            total += int(fields[-1])
    return total


# ---------------------------------------------------------------------------------------
# the sink


class Sink:
    """Binds the port sipp names in its SDP and counts what the target echoes there.

    Drained every :data:`SINK_PERIOD` from a large receive buffer, so it costs
    20 wake-ups a second whatever the load.  Per source address (one per call,
    the target's RTP port): datagrams, and datagrams whose payload is one of the
    frames sipp plays (the echo proper; the gateway's idle silence is not one).
    """

    def __init__(
        self, ip: str, port: int, audio: frozenset[bytes], aligned: frozenset[bytes]
    ) -> None:
        self.audio = audio
        self.aligned = aligned
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        for option in (getattr(socket, "SO_RCVBUFFORCE", 33), socket.SO_RCVBUF):
            with contextlib.suppress(OSError):
                self.sock.setsockopt(socket.SOL_SOCKET, option, 8 << 20)
                break
        self.sock.bind((ip, port))
        self.sock.setblocking(False)
        self.counts: dict[tuple[str, int], list[int]] = {}
        self._task: asyncio.Task[None] | None = None

    def drain(self) -> None:
        recv = self.sock.recvfrom
        counts, audio, aligned = self.counts, self.audio, self.aligned
        while True:
            try:
                data, addr = recv(2048)
            except BlockingIOError:
                return
            entry = counts.get(addr)
            if entry is None:
                entry = counts[addr] = [0, 0, 0]
            entry[0] += 1
            payload = data[12:]
            if payload in audio:
                entry[1] += 1
                if payload in aligned:
                    entry[2] += 1

    async def _run(self) -> None:
        while True:
            self.drain()
            await asyncio.sleep(SINK_PERIOD)

    def start(self) -> None:
        self._task = asyncio.get_running_loop().create_task(self._run())

    def snapshot(self) -> dict[tuple[str, int], tuple[int, int, int]]:
        """Per source: (datagrams, echoed frames, echoed frames on sipp's 20 ms grid)."""
        self.drain()
        return {addr: (c[0], c[1], c[2]) for addr, c in self.counts.items()}

    def calls_echoing(self, min_audio: int = 5) -> int:
        return sum(1 for c in self.counts.values() if c[1] >= min_audio)

    async def close(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        self.sock.close()


# ---------------------------------------------------------------------------------------
# one measurement


@dataclass
class Measurement:
    """One target at one N: what was metered in the window, and the health checks."""

    target: str
    calls: int
    run: int
    window_s: float = 0.0
    target_cpu_s: float = 0.0
    target_cpu_ticks_s: float = 0.0
    sipp_cpu_s: float = 0.0
    sipp_cpu_ticks_s: float = 0.0
    core_s_per_call_s: float = 0.0
    sipp_core_s_per_call_s: float = 0.0
    us_per_packet: float = 0.0  # target CPU per packet received and echoed
    echoed_pps: float = 0.0  # every datagram at the sink
    echoed_audio_pps: float = 0.0  # those carrying a frame sipp sent
    aligned_pct: float = 0.0  # % of those on sipp's 20 ms grid (not shifted by 10 ms)
    per_call_audio_pps_min: float = 0.0
    per_call_audio_pps_max: float = 0.0
    calls_seen: int = 0
    target_vm_hwm_kib: int = 0
    sipp_vm_hwm_kib: int = 0
    target_udp_drops: int = 0
    sink_udp_drops: int = 0
    icmp_unreachables: int = 0  # sent in the namespace, sipp start to sipp end
    udp_no_ports: int = 0
    udp_rcvbuf_errors: int = 0
    machine_busy_pct: float = 0.0
    machine_softirq_pct: float = 0.0
    machine_steal_pct: float = 0.0
    bench_cpu_s: float = 0.0  # this process (the sink) in the window
    unaccounted_core_s: float = 0.0  # machine busy minus target, sipp and this process
    sipp_returncode: int | None = None
    sipp_successful: int | None = None
    sipp_failed: int | None = None
    log_levels: dict[str, int] = field(default_factory=dict)
    log_problems: list[str] = field(default_factory=list)
    end_reasons: dict[str, int] = field(default_factory=dict)
    error: str | None = None

    @property
    def ok(self) -> bool:
        return self.error is None


@dataclass(frozen=True)
class Plan:
    seconds: float
    rate: float
    work: Path
    frames: list[bytes]
    audio: frozenset[bytes]


def pcap_seconds(plan: Plan, calls: int) -> float:
    """Long enough that every call still plays when the window closes."""
    ramp = (calls - 1) / plan.rate + 0.5  # the echo test answers after 0.5 s
    return max(plan.seconds + 5.0, ramp + SETTLE + plan.seconds + MARGIN)


def sip_port(ip: str) -> int:
    if port_is_free(ip, SIP_PORT) and port_is_free(ip, SIP_PORT, socket.SOCK_STREAM):
        return SIP_PORT
    return free_port(ip)


def gateway_config(data_dir: Path, sip: int, rtp_min: int) -> dict[str, Any]:
    return {
        "gateway": {"data_dir": str(data_dir), "log_level": "info"},
        "sip": {"listen": GATEWAY_IP, "port": sip, "rate_limit": 1000.0},
        "media": {
            "address": GATEWAY_IP,
            "rtp_port_min": rtp_min,
            "rtp_port_max": rtp_min + 999,
            "rtp_timeout": 30.0,
        },
        "echo": {"extension": "600", "allow": ["127.0.0.0/8"]},
    }


def sipp_media_port() -> int:
    """An even ``-mp`` with mp and mp+2 free for sipp and mp+10 free for the sink."""
    for base in range(30000, 31000, 20):
        if all(port_is_free(SIPP_IP, base + d) for d in (0, 2, MEDIA_OFFSET)):
            return base
    raise RuntimeError(f"no free media ports for sipp on {SIPP_IP}")


def read_sipp_stats(path: Path) -> dict[str, str]:
    """The last row of sipp's ``-trace_stat`` CSV, by column name."""
    if not path.exists():
        return {}
    rows = [r for r in path.read_text(errors="replace").splitlines() if r.strip()]
    if len(rows) < 2:
        return {}
    return dict(zip(rows[0].split(";"), rows[-1].split(";"), strict=False))


LEVEL = re.compile(r"^\S+ (DEBUG|INFO|WARNING|ERROR|CRITICAL) ")
ENDED = re.compile(r"\bcall \S+ ended reason=(\S+)")


def scan_log(text: str, m: Measurement) -> None:
    """Levels, problems (warnings, errors, tracebacks) and call end reasons."""
    for line in text.splitlines():
        level = LEVEL.match(line)
        name = level.group(1) if level else ("TRACEBACK" if line.startswith("Traceback") else "")
        if name:
            m.log_levels[name] = m.log_levels.get(name, 0) + 1
        if name in ("WARNING", "ERROR", "CRITICAL", "TRACEBACK") and len(m.log_problems) < 20:
            m.log_problems.append(line[:300])
        if ended := ENDED.search(line):
            m.end_reasons[ended.group(1)] = m.end_reasons.get(ended.group(1), 0) + 1


class Target:
    """The process under test: the gateway, or the plain echo."""

    def __init__(self, kind: str, run_dir: Path, logbook: LogBook) -> None:
        self.kind = kind
        self.gateway: GatewayProcess | None = None
        self.process: ManagedProcess
        if kind == "gateway":
            self.address = (GATEWAY_IP, sip_port(GATEWAY_IP))
            config = gateway_config(run_dir / "data", self.address[1], GATEWAY_RTP_MIN)
            self.gateway = GatewayProcess(run_dir, logbook, config)
            self.process = self.gateway.process
            self.log_path = run_dir / "gateway.log"
        else:
            self.address = (ECHO_IP, sip_port(ECHO_IP))
            self.log_path = run_dir / "echo.log"
            port = str(self.address[1])
            argv = [sys.executable, str(ECHO_SCRIPT), "--ip", ECHO_IP, "--port", port]
            self.process = ManagedProcess("rtp_echo", argv, self.log_path, logbook, cwd=run_dir)

    @property
    def ip(self) -> str:
        return self.address[0]

    async def start(self) -> None:
        if self.gateway is not None:
            await self.gateway.start(READY_TIMEOUT)
        else:
            await self.process.start()
            await wait_answering(self.address, SIPP_IP, READY_TIMEOUT, self.process, "rtp_echo")

    async def stop(self) -> None:
        await self.process.stop()


async def measure(kind: str, calls: int, run: int, plan: Plan) -> Measurement:
    m = Measurement(kind, calls, run)
    run_dir = plan.work / f"r{run}-n{calls}-{kind}"
    run_dir.mkdir(parents=True)
    logbook = LogBook()
    pcap_s = pcap_seconds(plan, calls)
    write_load_pcap(run_dir / "load.pcap", pcap_s, plan.frames)
    shutil.copy(SCENARIO, run_dir / SCENARIO.name)

    target = Target(kind, run_dir, logbook)
    sink: Sink | None = None
    sipp: ManagedProcess | None = None
    try:
        await target.start()
        media_port = sipp_media_port()
        sink = Sink(SIPP_IP, media_port + MEDIA_OFFSET, plan.audio, frozenset(plan.frames))
        sink.start()
        argv = [
            "sipp", "-sf", str(run_dir / SCENARIO.name),
            "-i", SIPP_IP, "-p", str(free_port(SIPP_IP)),
            "-ci", SIPP_IP, "-cp", str(free_port(SIPP_IP)),
            "-mi", SIPP_IP, "-mp", str(media_port),
            "-s", "600",
            "-m", str(calls), "-l", str(calls), "-r", f"{plan.rate:g}",
            "-d", str(round(pcap_s * 1000) + 200),
            "-nostdin",
            "-timeout", f"{round(pcap_s + 30)}s", "-timeout_error",
            "-trace_err", "-error_file", str(run_dir / "sipp-errors.log"),
            "-trace_stat", "-stf", str(run_dir / "sipp-stats.csv"), "-fd", "1",
            "{}:{}".format(*target.address),
        ]  # fmt: skip
        net0 = snmp()
        sipp = ManagedProcess("sipp", argv, run_dir / "sipp.log", logbook, cwd=run_dir)
        await sipp.start()

        # every call echoes audio
        loop = asyncio.get_running_loop()
        within = (calls - 1) / plan.rate + 10.0
        deadline = loop.time() + within
        while sink.calls_echoing() < calls:
            if not sipp.alive or not target.process.alive:
                who = "sipp" if not sipp.alive else kind
                raise RuntimeError(f"{who} exited before all calls were up")
            if loop.time() > deadline:
                hint = "" if os.geteuid() == 0 else " (sipp needs CAP_NET_RAW to play pcap)"
                raise TimeoutError(
                    f"only {sink.calls_echoing()} of {calls} calls echoed audio "
                    f"within {within:g} s{hint}"
                )
            await asyncio.sleep(0.1)
        await asyncio.sleep(SETTLE)

        # the window
        mach0 = machine_times()
        t0 = time.monotonic()
        c0 = (cpu_clock(target.process.pid), cpu_clock(sipp.pid))
        k0 = (cpu_ticks(target.process.pid), cpu_ticks(sipp.pid))
        own0 = time.process_time()
        s0 = sink.snapshot()
        await asyncio.sleep(plan.seconds)
        s1 = sink.snapshot()
        m.bench_cpu_s = time.process_time() - own0
        c1 = (cpu_clock(target.process.pid), cpu_clock(sipp.pid))
        k1 = (cpu_ticks(target.process.pid), cpu_ticks(sipp.pid))
        t1 = time.monotonic()
        mach1 = machine_times()
        if not sipp.alive or not target.process.alive:
            raise RuntimeError("sipp or the target exited during the window")

        m.window_s = t1 - t0
        m.target_cpu_s, m.sipp_cpu_s = c1[0] - c0[0], c1[1] - c0[1]
        m.target_cpu_ticks_s = round(k1[0] - k0[0], 2)
        m.sipp_cpu_ticks_s = round(k1[1] - k0[1], 2)
        m.core_s_per_call_s = m.target_cpu_s / m.window_s / calls
        m.sipp_core_s_per_call_s = m.sipp_cpu_s / m.window_s / calls
        zero = (0, 0, 0)
        deltas = [
            tuple(b - a for a, b in zip(s0.get(k, zero), v, strict=True)) for k, v in s1.items()
        ]
        active = [d for d in deltas if d[0] > 0]
        m.calls_seen = len(active)
        m.echoed_pps = sum(d[0] for d in active) / m.window_s
        m.echoed_audio_pps = sum(d[1] for d in active) / m.window_s
        per_call = sorted(d[1] / m.window_s for d in active) or [0.0]
        m.per_call_audio_pps_min, m.per_call_audio_pps_max = per_call[0], per_call[-1]
        echoed = sum(d[1] for d in active)
        m.aligned_pct = 100.0 * sum(d[2] for d in active) / echoed if echoed else 0.0
        packets = sum(d[0] for d in active)
        m.us_per_packet = m.target_cpu_s / packets * 1e6 if packets else 0.0
        m.target_vm_hwm_kib = vm_hwm_kib(target.process.pid)
        m.sipp_vm_hwm_kib = vm_hwm_kib(sipp.pid)
        m.target_udp_drops = udp_drops(target.ip)
        m.sink_udp_drops = udp_drops(SIPP_IP)
        # every call echoed sipp's audio all window long (a packet of slack at each end)
        expected = PACKETS_PER_CALL_S * m.window_s - 2
        if m.calls_seen != calls or m.per_call_audio_pps_min * m.window_s < expected:
            m.error = (
                f"short echo: {m.calls_seen} of {calls} calls seen, slowest "
                f"{m.per_call_audio_pps_min:.1f} audio pkt/s (want {PACKETS_PER_CALL_S})"
            )
        total, busy, softirq, steal = (b - a for a, b in zip(mach0, mach1, strict=True))
        if total:
            m.machine_busy_pct = 100.0 * busy / total
            m.machine_softirq_pct = 100.0 * softirq / total
            m.machine_steal_pct = 100.0 * steal / total
        busy_core_s = busy / os.sysconf("SC_CLK_TCK")
        m.unaccounted_core_s = busy_core_s - m.target_cpu_s - m.sipp_cpu_s - m.bench_cpu_s

        # the rest of the calls, up to sipp's BYEs and its exit
        remaining = pcap_s + 15.0
        try:
            m.sipp_returncode = await sipp.wait(remaining)
        except TimeoutError:
            m.error = m.error or f"sipp still running {remaining:.0f} s after the window"
        await asyncio.sleep(0.3)  # a last echo in flight
        net1 = snmp()
        m.icmp_unreachables = net1["Icmp.OutDestUnreachs"] - net0["Icmp.OutDestUnreachs"]
        m.udp_no_ports = net1["Udp.NoPorts"] - net0["Udp.NoPorts"]
        m.udp_rcvbuf_errors = net1["Udp.RcvbufErrors"] - net0["Udp.RcvbufErrors"]
        if m.icmp_unreachables and os.environ.get(NETNS_ENV) == "1" and m.error is None:
            m.error = f"{m.icmp_unreachables} ICMP port-unreachable(s) in the namespace"
    except (RuntimeError, TimeoutError, OSError) as exc:
        m.error = f"{type(exc).__name__}: {exc}"
    finally:
        if sipp is not None:
            await sipp.stop()
        await target.stop()
        if sink is not None:
            await sink.close()
    stats = read_sipp_stats(run_dir / "sipp-stats.csv")
    with contextlib.suppress(KeyError, ValueError):
        m.sipp_successful = int(stats["SuccessfulCall(C)"])
        m.sipp_failed = int(stats["FailedCall(C)"])
    if target.log_path.exists():
        scan_log(target.log_path.read_text(errors="replace"), m)
    if m.error is None and m.sipp_successful is not None and m.sipp_successful != calls:
        m.error = f"sipp: {m.sipp_successful} of {calls} calls succeeded"
    return m


# ---------------------------------------------------------------------------------------
# the whole bench


def rotated(values: list[int], by: int) -> list[int]:
    """The N order of run *by*: rotated so slow drift favours no N (notes §0.1)."""
    by %= len(values)
    return values[by:] + values[:by]


def median(values: list[float]) -> float:
    return statistics.median(values) if values else float("nan")


def summarise(results: list[Measurement], calls: list[int]) -> list[dict[str, Any]]:
    rows = []
    for n in calls:

        def good(kind: str, n: int = n) -> list[Measurement]:
            return [m for m in results if m.calls == n and m.target == kind and m.ok]

        gw, echo = good("gateway"), good("echo")
        gw_cost = median([m.core_s_per_call_s for m in gw])
        echo_cost = median([m.core_s_per_call_s for m in echo])
        rows.append(
            {
                "calls": n,
                "runs_ok": {"gateway": len(gw), "echo": len(echo)},
                "gateway_core_s_per_call_s": gw_cost,
                "echo_core_s_per_call_s": echo_cost,
                "ratio_gateway_echo": gw_cost / echo_cost if gw and echo else float("nan"),
                "sipp_core_s_per_call_s": median([m.sipp_core_s_per_call_s for m in gw]),
                "sipp_core_s_per_call_s_echo_runs": median(
                    [m.sipp_core_s_per_call_s for m in echo]
                ),
                "gateway_us_per_packet": median([m.us_per_packet for m in gw]),
                "echo_us_per_packet": median([m.us_per_packet for m in echo]),
                "gateway_echoed_audio_pps": median([m.echoed_audio_pps for m in gw]),
                "expected_pps": PACKETS_PER_CALL_S * n,
                "gateway_vm_hwm_mib": median([m.target_vm_hwm_kib / 1024 for m in gw]),
            }
        )
    return rows


def fmt(value: float, spec: str) -> str:
    return "-" if value != value else format(value, spec)  # NaN: no good run


def table(rows: list[dict[str, Any]]) -> str:
    head = (
        "| N | gateway core-s/call-s | plain echo core-s/call-s | ratio gw/echo "
        "| sipp core-s/call-s | gateway echoed pkt/s (expected) | gateway VmHWM MiB |"
    )
    out = [head, "|" + "---|" * 7]
    for r in rows:
        out.append(
            f"| {r['calls']} | {fmt(r['gateway_core_s_per_call_s'], '.4f')} "
            f"| {fmt(r['echo_core_s_per_call_s'], '.4f')} "
            f"| {fmt(r['ratio_gateway_echo'], '.2f')} "
            f"| {fmt(r['sipp_core_s_per_call_s'], '.4f')} "
            f"| {fmt(r['gateway_echoed_audio_pps'], '.1f')} ({r['expected_pps']}) "
            f"| {fmt(r['gateway_vm_hwm_mib'], '.1f')} |"
        )
    return "\n".join(out)


def checks(results: list[Measurement]) -> str:
    head = (
        "| target | N | run | core-s/call-s | µs/pkt | pkt/s all / audio | per call min-max "
        "| on grid % | drops tgt/sink | ICMP unreach | sipp ok/failed | log W/E | others (cores) |"
    )
    out = [head, "|" + "---|" * 13]
    for m in sorted(results, key=lambda m: (m.calls, m.target, m.run)):
        warn = m.log_levels.get("WARNING", 0)
        err = sum(m.log_levels.get(k, 0) for k in ("ERROR", "CRITICAL", "TRACEBACK"))
        others = m.unaccounted_core_s / m.window_s if m.window_s else 0.0
        out.append(
            f"| {m.target} | {m.calls} | {m.run} | {m.core_s_per_call_s:.4f} "
            f"| {m.us_per_packet:.0f} | {m.echoed_pps:.1f} / {m.echoed_audio_pps:.1f} "
            f"| {m.per_call_audio_pps_min:.1f}-{m.per_call_audio_pps_max:.1f} "
            f"| {m.aligned_pct:.0f} "
            f"| {m.target_udp_drops}/{m.sink_udp_drops} | {m.icmp_unreachables} "
            f"| {m.sipp_successful}/{m.sipp_failed} | {warn}/{err} | {others:.2f} |"
        )
    return "\n".join(out)


def sipp_version() -> str:
    try:
        out = subprocess.run(["sipp", "-v"], capture_output=True, text=True, timeout=10).stdout
    except (OSError, subprocess.TimeoutExpired):
        return "unknown"
    return next((line.strip() for line in out.splitlines() if "SIPp" in line), "unknown")


async def bench(args: argparse.Namespace, work: Path) -> dict[str, Any]:
    frames = speech_frames()
    plan = Plan(args.seconds, args.rate, work, frames, echo_payloads(frames))
    results: list[Measurement] = []
    for run in range(1, args.runs + 1):
        for calls in rotated(args.calls, run - 1):
            order = TARGETS if (run + calls) % 2 else TARGETS[::-1]
            for kind in order:
                budget = pcap_seconds(plan, calls) + 2 * READY_TIMEOUT + 60
                try:
                    m = await asyncio.wait_for(measure(kind, calls, run, plan), budget)
                except TimeoutError:
                    m = Measurement(kind, calls, run, error=f"no result within {budget:.0f} s")
                results.append(m)
                status = "ok" if m.ok else f"FAILED: {m.error}"
                print(
                    f"run {run} N={calls:<3} {kind:<7} {m.core_s_per_call_s:.4f} core-s/call-s, "
                    f"sipp {m.sipp_core_s_per_call_s:.4f}, "
                    f"echo {m.echoed_audio_pps:.1f}/{PACKETS_PER_CALL_S * calls} pkt/s, {status}",
                    file=sys.stderr,
                    flush=True,
                )
    return {
        "meta": {
            "date": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
            "host": platform.node(),
            "machine": platform.machine(),
            "kernel": platform.release(),
            "cpus": os.cpu_count(),
            "python": platform.python_version(),
            "sipp": sipp_version(),
            "netns": os.environ.get(NETNS_ENV) == "1",
            "calls": args.calls,
            "seconds": args.seconds,
            "runs": args.runs,
            "rate": args.rate,
            "settle_s": SETTLE,
            "cpu_source": "clock_gettime(CPUCLOCK_SCHED of pid); ticks: procfs stat",
        },
        "summary": summarise(results, args.calls),
        "measurements": [asdict(m) for m in results],
    }


def parse_args(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument(
        "--calls", type=calls_list(400), default=[1, 4, 16], help="N values: 1,4,16"
    )
    parser.add_argument("--seconds", type=float, default=15.0, help="metered window (s)")
    parser.add_argument("--runs", type=int, default=1, help="repetitions of every N")
    parser.add_argument("--rate", type=float, default=10.0, help="sipp's calls per second")
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT, help="JSON results")
    parser.add_argument("--keep", action="store_true", help="keep the logs' directory")
    parser.add_argument(
        "--no-netns", dest="netns", action="store_false", help="stay in this network namespace"
    )
    args = parser.parse_args(argv)
    if args.seconds < 1 or args.runs < 1 or args.rate <= 0:
        parser.error("--seconds >= 1, --runs >= 1 and --rate > 0")
    return args


def netns_argv(argv: list[str]) -> list[str] | None:
    """The command that runs this script again in a new network namespace, or None."""
    if os.environ.get(NETNS_ENV) or os.geteuid() != 0:
        return None
    if not (shutil.which("unshare") and shutil.which("ip")):
        return None
    try:
        probe = subprocess.run(["unshare", "-n", "true"], capture_output=True, timeout=10)
    except (OSError, subprocess.TimeoutExpired):
        return None
    if probe.returncode != 0:
        return None
    script = 'ip link set lo up && exec "$@"'
    return ["unshare", "-n", "--", "sh", "-c", script, "sh", sys.executable, *argv]


def estimate_seconds(args: argparse.Namespace) -> float:
    per = [args.seconds + SETTLE + MARGIN + 8 + (n - 1) / args.rate for n in args.calls]
    return float(args.runs * len(TARGETS) * sum(per))


def main(argv: list[str]) -> int:
    args = parse_args(argv)
    stop_on_sigterm()
    if shutil.which("sipp") is None:
        print("sipp not found (Debian package sip-tester)", file=sys.stderr)
        return 2
    if args.netns and (command := netns_argv([str(Path(__file__).resolve()), *argv])):
        limit = estimate_seconds(args) * 2 + 120
        env = {**os.environ, NETNS_ENV: "1"}
        return run_bounded(command, limit, env)
    print(
        f"bench: N={','.join(map(str, args.calls))}, {args.seconds:g} s windows, "
        f"{args.runs} run(s), about {estimate_seconds(args) / 60:.1f} min"
        + (" (private network namespace)" if os.environ.get(NETNS_ENV) else ""),
        file=sys.stderr,
    )
    work = Path(tempfile.mkdtemp(prefix="linegram-bench-"))
    keep = True  # unless everything worked
    try:
        try:
            report = asyncio.run(bench(args, work))
        except KeyboardInterrupt:
            print("bench interrupted; every peer stopped", file=sys.stderr)
            return 130
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(json.dumps(finite(report), indent=2) + "\n")
        results = [Measurement(**m) for m in report["measurements"]]
        print(table(report["summary"]))
        print()
        print(checks(results))
        for m in results:
            for line in ([m.error] if m.error else []) + m.log_problems[:5]:
                print(f"{m.target} N={m.calls} run {m.run}: {line}")
        print(f"\nresults: {args.out}")
        failed = any(not m.ok for m in results)
        keep = args.keep or failed
    finally:
        if keep:
            print(f"logs kept in {work}", file=sys.stderr)
        else:
            shutil.rmtree(work, ignore_errors=True)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))

"""`make demo`: the gateway on a simulated Telegram; a SIP call rings a scripted member.

    .venv/bin/python tools/demo.py            # what `make demo` runs
    .venv/bin/python tools/demo.py --call     # place the SIP call with sipp and report
    .venv/bin/python tools/demo.py --netns    # the same, inside tools/in-netns.sh

Writes var/demo/linegram.toml: one ATA-style line "demo" on 127.0.0.1:5080 whose
calls ring the members, and [simulation] with two scripted members.  Alice answers
after 2 s, sends a 440 Hz tone and records what she hears to var/demo/alice.wav;
Bob lets it ring.

WebRTC (ntgcalls) ignores the loopback interface, so the Telegram media needs
another interface up.  With one (any laptop) the gateway runs here and waits for
you to call it from a softphone or sipp.  Without one (containers, CI) this script
re-runs itself in a private network namespace (tools/in-netns.sh), starts the
gateway there, calls it with sipp (which echoes the audio back), then says what
happened: the SIP result, the call log and what Alice heard.
"""

from __future__ import annotations

import argparse
import os
import shutil
import signal
import subprocess
import sys
import time
import wave
from pathlib import Path

import tomli_w

from gateway.config import load_config, write_atomic
from gateway.store import Store
from simcloud.audio import analyse
from simcloud.netns import interfaces_up, private_netns_ready

ROOT = Path(__file__).resolve().parent.parent
DIR = ROOT / "var" / "demo"
CONFIG = DIR / "linegram.toml"
LOG = DIR / "gateway.log"
SIP = ("127.0.0.1", 5080)
TONE_HZ = 440
CALL_SECONDS = 8
READY_TIMEOUT = 90.0


def demo_settings() -> dict[str, object]:
    return {
        "gateway": {"data_dir": "data", "log_level": "info"},
        "sip": {"listen": SIP[0], "port": SIP[1]},
        "media": {"rtp_port_min": 16000, "rtp_port_max": 16099},
        "lines": [
            {
                "name": "demo",
                "kind": "ata",
                "incoming": "members",
                "allow": ["127.0.0.1"],
            }
        ],
        "simulation": {
            "enabled": True,
            "members": [
                {
                    "name": "Alice",
                    "username": "alice_home",
                    "lines": ["demo"],
                    "answer_after": 2.0,
                    "tone_hz": TONE_HZ,
                    "record": "alice.wav",
                },
                {"name": "Bob", "username": "bob_home", "lines": ["demo"], "incoming": "ignore"},
            ],
        },
    }


def write_demo_config() -> None:
    DIR.mkdir(parents=True, exist_ok=True)
    text = "# Written by `make demo` (tools/demo.py) on every run; see docs/simulation.md.\n"
    write_atomic(CONFIG, (text + tomli_w.dumps(demo_settings())).encode())
    load_config(CONFIG)  # the demo's own settings must be valid


def has_network() -> bool:
    return any(name != "lo" for name in interfaces_up())


def gateway_command() -> list[str]:
    return [sys.executable, "-m", "gateway", "--config", str(CONFIG)]


def interactive() -> int:
    host, port = SIP
    print(
        f"""
Linegram demo: the gateway runs against a simulated Telegram (settings: {CONFIG}).

  Call sip:demo@{host}:{port} from a softphone on this machine, or with sipp:
      sipp -sn uac -s demo -m 1 -d {CALL_SECONDS * 1000} -rtp_echo {host}:{port}
  The call rings Alice and Bob (simulated Telegram members).  Alice answers after 2 s and
  sends a {TONE_HZ} Hz tone; what she hears is written to {DIR / "alice.wav"}
  when the call ends.  Ctrl-C stops the gateway.
""",
        flush=True,
    )
    os.chdir(ROOT)
    os.execv(sys.executable, gateway_command())


def wait_ready(gateway: subprocess.Popen[bytes]) -> None:
    deadline = time.monotonic() + READY_TIMEOUT
    wanted = ("simulation: ready", "telegram calls ready")
    while time.monotonic() < deadline:
        text = LOG.read_text(errors="replace") if LOG.exists() else ""
        if all(w in text for w in wanted):
            return
        if gateway.poll() is not None:
            raise RuntimeError(f"the gateway exited with code {gateway.returncode}")
        time.sleep(0.2)
    raise RuntimeError(f"the gateway was not ready within {READY_TIMEOUT:.0f} s")


def place_call() -> subprocess.CompletedProcess[bytes]:
    host, port = SIP
    errors = DIR / "sipp-errors.log"
    errors.unlink(missing_ok=True)
    command = [
        shutil.which("sipp") or "sipp",
        "-sn", "uac", "-s", "demo", "-m", "1", "-d", str(CALL_SECONDS * 1000),
        "-i", "127.0.0.1", "-p", "5070", "-mp", "16200", "-rtp_echo",
        "-timeout", str(CALL_SECONDS + 60), "-timeout_error",
        "-trace_err", "-error_file", str(errors), "-nostdin",
        f"{host}:{port}",
    ]  # fmt: skip
    print(f"demo: sipp calls sip:demo@{host}:{port} for {CALL_SECONDS} s (it echoes the audio)")
    return subprocess.run(command, cwd=DIR, capture_output=True, timeout=CALL_SECONDS + 90)


def report(sipp: subprocess.CompletedProcess[bytes]) -> int:
    ok = True
    print()
    if sipp.returncode == 0:
        print("SIP:       sipp's call was answered and ended normally")
    else:
        ok = False
        print(
            f"SIP:       sipp failed (exit code {sipp.returncode}); see {DIR / 'sipp-errors.log'}"
        )
    for line in LOG.read_text(errors="replace").splitlines():
        _, found, message = line.partition("gateway.simulation: ")
        if found and "listening" not in message:
            print("           " + message.removeprefix("simulation: "))
    with Store.open(DIR / "data" / "linegram.db") as store:
        calls = store.calls(limit=1)
    if calls:
        call = calls[0]
        who = f", {call.member_name}" if call.member_name else ""
        print(
            f"Call log:  {call.direction} on line {call.line}: {call.outcome}"
            f" ({call.end_reason}{who}), {call.duration or 0:.1f} s talk time"
        )
    recording = DIR / "alice.wav"
    if recording.exists():
        with wave.open(str(recording), "rb") as wav:
            pcm = wav.readframes(wav.getnframes())
        result = analyse(pcm)
        if result.frequency_hz is None:
            ok = False
            print(f"Alice:     heard only silence ({recording})")
        else:
            print(
                f"Alice:     heard {result.frequency_hz:.0f} Hz at {result.level_dbfs:.1f} dBFS"
                f" for {result.voiced_frames / 100:.1f} s: her own tone, through the gateway,"
                f" sipp's echo and back ({recording})"
            )
            ok = ok and abs(result.frequency_hz - TONE_HZ) < 5
    else:
        ok = False
        print("Alice:     no recording: she was never in the call")
    print(f"Gateway log: {LOG}")
    print("demo: " + ("OK" if ok else "FAILED"))
    return 0 if ok else 1


def call_and_report() -> int:
    if shutil.which("sipp") is None:
        print("demo: sipp is not installed (make deps installs it)", file=sys.stderr)
        return 1
    (DIR / "alice.wav").unlink(missing_ok=True)
    with LOG.open("wb") as log:
        gateway = subprocess.Popen(gateway_command(), cwd=ROOT, stdout=log, stderr=log)
    try:
        print(f"demo: starting the gateway and the simulated Telegram (log: {LOG})")
        wait_ready(gateway)
        sipp = place_call()
        # Alice's recording is written when her Telegram call has ended.
        deadline = time.monotonic() + 10
        while not (DIR / "alice.wav").exists() and time.monotonic() < deadline:
            time.sleep(0.2)
    except (RuntimeError, subprocess.TimeoutExpired) as exc:
        print(f"demo: {exc}", file=sys.stderr)
        print(LOG.read_text(errors="replace")[-3000:], file=sys.stderr)
        return 1
    finally:
        if gateway.poll() is None:
            gateway.send_signal(signal.SIGTERM)
            try:
                gateway.wait(30)
            except subprocess.TimeoutExpired:
                gateway.kill()
    return report(sipp)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--call", action="store_true", help="place the call with sipp, report")
    parser.add_argument("--netns", action="store_true", help="run in a private namespace")
    args = parser.parse_args()
    inside = private_netns_ready() is None
    if not inside and (args.netns or not has_network()):
        if not args.netns:
            print("demo: no network interface besides loopback; running in a private namespace")
        script = str(ROOT / "tools" / "in-netns.sh")
        os.execv(script, [script, sys.executable, str(Path(__file__).resolve()), "--call"])
    write_demo_config()
    if inside or args.call:
        return call_and_report()
    return interactive()


if __name__ == "__main__":
    sys.exit(main())

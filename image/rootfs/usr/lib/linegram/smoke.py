"""make image-test's probe inside the booted image (stdlib only; never runs on a household's box).

Waits until the web UI answers /health with the gateway up (bounded), then prints one line
``LINEGRAM-SMOKE {json}`` on the console with what the host-side test checks: the services'
states and restart counts, failed units, the file systems of / and the data partition, the
markers of the previous boot, the data partition's size and the database's integrity.  Then it
leaves a marker on the data partition and one on the root (the second must not survive a
reboot) and, when the kernel command line says ``linegram.smoke=poweroff``, powers off.
"""

from __future__ import annotations

import json
import os
import sqlite3
import subprocess
import time
import urllib.error
import urllib.request
from pathlib import Path

DATA = Path("/var/lib/linegram")
DATA_MARKER = DATA / "smoke-marker"
ROOT_MARKER = Path("/var/smoke-root-marker")
HEALTH_URL = "http://127.0.0.1:80/health"
HEALTH_WAIT = 240.0  # seconds: the gateway imports Telethon and ntgcalls under TCG emulation


def run(*argv: str) -> str:
    done = subprocess.run(argv, capture_output=True, text=True, timeout=30, check=False)
    return done.stdout.strip()


def health() -> dict[str, object]:
    deadline = time.monotonic() + HEALTH_WAIT
    last: dict[str, object] = {"error": "no answer"}
    while time.monotonic() < deadline:
        try:
            with urllib.request.urlopen(HEALTH_URL, timeout=5) as answer:
                last = json.loads(answer.read())
            if last.get("gateway") == "ok" and last.get("webui") == "ok":
                return last
        except (OSError, ValueError, urllib.error.URLError) as exc:
            last = {"error": str(exc)}
        time.sleep(1)
    return last


def service(name: str) -> dict[str, str]:
    out = run("systemctl", "show", name, "--property=ActiveState,SubState,NRestarts,Result")
    return dict(line.split("=", 1) for line in out.splitlines() if "=" in line)


def _monotonic_s(unit: str, prop: str) -> float | None:
    value = run("systemctl", "show", unit, f"--property={prop}", "--value")
    return round(int(value) / 1e6, 1) if value.isdigit() and int(value) > 0 else None


def fstype(path: str) -> str:
    return run("findmnt", "--noheadings", "--output", "FSTYPE", "--target", path)


def integrity() -> str:
    db = DATA / "linegram.db"
    if not db.exists():
        return "absent"
    with sqlite3.connect(f"file:{db}?mode=ro", uri=True) as conn:
        return str(conn.execute("PRAGMA integrity_check").fetchone()[0])


def write_durably(path: Path, text: str) -> None:
    tmp = path.with_name(path.name + ".tmp")
    with open(tmp, "w") as f:
        f.write(text)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)
    dir_fd = os.open(path.parent, os.O_RDONLY)
    try:
        os.fsync(dir_fd)
    finally:
        os.close(dir_fd)


def main() -> None:
    cmdline = Path("/proc/cmdline").read_text().split()
    report: dict[str, object] = {
        "health": health(),
        "hostname": run("hostname"),
        "multi_user": run("systemctl", "is-active", "multi-user.target"),
        "gateway": service("linegram-gateway.service"),
        "webui": service("linegram-webui.service"),
        "firstboot": service("linegram-firstboot.service"),
        "ssh": run("systemctl", "is-active", "ssh.service"),
        "failed": run("systemctl", "list-units", "--failed", "--plain", "--no-legend").splitlines(),
        "root_fs": fstype("/"),
        "data_fs": fstype(str(DATA)),
        "data_size_mb": os.statvfs(DATA).f_blocks * os.statvfs(DATA).f_frsize // 2**20,
        "data_marker": DATA_MARKER.read_text().strip() if DATA_MARKER.exists() else "absent",
        "root_marker": ROOT_MARKER.read_text().strip() if ROOT_MARKER.exists() else "absent",
        "database": integrity(),
        "settings": (DATA / "linegram.toml").exists(),
        "mdns": run("resolvectl", "mdns"),
        "uptime_s": float(Path("/proc/uptime").read_text().split()[0]),
        # Seconds since the kernel started (the boot is not finished while this unit runs,
        # so systemd-analyze time would refuse).
        "multi_user_at_s": _monotonic_s("multi-user.target", "ActiveEnterTimestampMonotonic"),
        "gateway_ready_at_s": _monotonic_s(
            "linegram-gateway.service", "ActiveEnterTimestampMonotonic"
        ),
    }
    boot = str(time.time())
    write_durably(DATA_MARKER, boot)
    report["wrote_marker"] = boot
    try:
        write_durably(ROOT_MARKER, boot)
        report["root_write"] = "ok"
    except OSError as exc:
        report["root_write"] = str(exc)
    # One line on the console: the host test reads it from the serial log.
    with open("/dev/console", "w") as console:
        console.write("\nLINEGRAM-SMOKE " + json.dumps(report, sort_keys=True) + "\n")
    if "linegram.smoke=poweroff" in cmdline:
        subprocess.run(["systemctl", "poweroff", "--no-block"], check=False)


if __name__ == "__main__":
    main()

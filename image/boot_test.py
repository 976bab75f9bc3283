"""make image-test: boot the built image twice in qemu-system-aarch64 and check the appliance.

The image is the artefact households flash, so the test starts from the ``.img.xz`` itself:
decompressed, made 1 GiB larger (a bigger SD card: the data partition must grow), and booted
with the kernel, initrd and ``cmdline.txt`` read from its own firmware partition (QEMU's
``virt`` machine cannot run the Pi's GPU firmware).  Networking is QEMU's user mode with
``restrict=on``: the guest reaches nothing; only the web UI's port is forwarded to
127.0.0.1 on this machine.

Boot 1 (first boot): multi-user reached; the gateway and web UI active, never restarted,
and answering ``/health`` through the forwarded port; no failed unit; root is the RAM
overlay and the data partition ext4, grown to the card.  The probe inside
(``/usr/lib/linegram/smoke.py``) leaves a marker on each; then the power is pulled (QEMU
killed, no shutdown).

Boot 2: the data marker is there, the root marker is not, the database passes SQLite's
integrity check, and everything above holds again; the probe powers the machine off.

Prints a table (boot-to-ready times) and exits 1 with the reasons when a check fails.
"""

from __future__ import annotations

import argparse
import json
import lzma
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import urllib.error
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path

BOOT_LIMIT = 600.0  # seconds per boot until the probe reports (TCG emulation, 2 cores)
POWEROFF_LIMIT = 120.0  # seconds for the second boot to power off after its report
GROW_BY = 1 << 30  # the "SD card" is this much larger than the image
SMOKE = "LINEGRAM-SMOKE "


@dataclass
class Boot:
    name: str
    serial: list[str] = field(default_factory=list)
    report: dict[str, object] | None = None
    ready_after: float | None = None  # seconds from QEMU's start until /health said ok
    report_after: float | None = None
    exited: bool = False


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def decompress(xz: Path, disk: Path) -> None:
    """The .img.xz into a sparse file (the image is mostly empty)."""
    block = 1 << 20
    zero = bytes(block)
    with lzma.open(xz) as src, open(disk, "wb") as dst:
        while chunk := src.read(block):
            if chunk == zero[: len(chunk)]:
                dst.seek(len(chunk), os.SEEK_CUR)
            else:
                dst.write(chunk)
        dst.truncate()


def firmware_offset(disk: Path) -> int:
    table = json.loads(subprocess.check_output(["sfdisk", "--json", str(disk)]))
    first = table["partitiontable"]["partitions"][0]
    return int(first["start"]) * int(table["partitiontable"].get("sectorsize", 512))


def extract_boot_files(disk: Path, into: Path) -> tuple[Path, Path, str]:
    """Kernel, initrd and cmdline.txt from the image's FAT partition (mtools, no mount)."""
    part = f"{disk}@@{firmware_offset(disk)}"
    names = subprocess.check_output(["mdir", "-b", "-i", part, "::/"], text=True).split()
    names = [n.lstrip(":/") for n in names]
    kernel = sorted(n for n in names if n.startswith("vmlinuz-"))[-1]
    initrd = sorted(n for n in names if n.startswith("initrd.img-"))[-1]
    for name in (kernel, initrd, "cmdline.txt"):
        subprocess.check_call(["mcopy", "-n", "-i", part, f"::/{name}", str(into / name)])
    return into / kernel, into / initrd, (into / "cmdline.txt").read_text().strip()


def qemu_cmdline(pi_cmdline: str, smoke_then: str) -> str:
    """The image's own kernel command line, with QEMU virt's console instead of the Pi's."""
    kept = [a for a in pi_cmdline.split() if not a.startswith(("console=", "cma="))]
    return " ".join(
        [
            *kept,
            "console=ttyAMA0",
            "panic=-1",
            "systemd.wants=linegram-smoke.service",
            f"linegram.smoke={smoke_then}",
        ]
    )


def health_ok(port: int) -> bool:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/health", timeout=3) as answer:
            body = json.loads(answer.read())
    except (OSError, ValueError, urllib.error.URLError):
        return False
    return _healthy(body)


def boot(
    boot_: Boot, disk: Path, kernel: Path, initrd: Path, append: str, port: int, log: Path
) -> None:
    argv = [
        "qemu-system-aarch64",
        "-M", "virt", "-cpu", "cortex-a53", "-smp", "2", "-m", "1024",
        "-display", "none", "-monitor", "none", "-serial", "stdio", "-no-reboot",
        "-kernel", str(kernel), "-initrd", str(initrd), "-append", append,
        "-drive", f"file={disk},if=none,format=raw,id=hd0,cache=writeback",
        "-device", "virtio-blk-pci,drive=hd0",
        "-netdev", f"user,id=n0,restrict=on,hostfwd=tcp:127.0.0.1:{port}-:80",
        "-device", "virtio-net-pci,netdev=n0,romfile=",
    ]  # fmt: skip
    started = time.monotonic()
    qemu = subprocess.Popen(
        argv, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.STDOUT
    )
    assert qemu.stdout is not None
    reported = threading.Event()

    def read_serial() -> None:
        assert qemu.stdout is not None
        with open(log, "wb") as out:
            for raw in qemu.stdout:
                out.write(raw)
                line = raw.decode("utf-8", "replace").rstrip("\r\n")
                boot_.serial.append(line)
                at = line.find(SMOKE)
                if at >= 0 and boot_.report is None:
                    boot_.report = json.loads(line[at + len(SMOKE) :])
                    boot_.report_after = time.monotonic() - started
                    reported.set()

    reader = threading.Thread(target=read_serial, daemon=True)
    reader.start()
    try:
        while not reported.is_set() and qemu.poll() is None:
            if time.monotonic() - started > BOOT_LIMIT:
                break
            if boot_.ready_after is None and health_ok(port):
                boot_.ready_after = time.monotonic() - started
            reported.wait(1.0)
        if boot_.ready_after is None and reported.is_set() and health_ok(port):
            boot_.ready_after = time.monotonic() - started
        if "linegram.smoke=poweroff" in append and reported.is_set():
            try:
                qemu.wait(POWEROFF_LIMIT)
                boot_.exited = True
            except subprocess.TimeoutExpired:
                pass
    finally:
        if qemu.poll() is None:
            qemu.send_signal(signal.SIGKILL)  # the power cord
        qemu.wait()
        reader.join(10)


def check(boot_: Boot, first: bool, previous_marker: str | None) -> list[str]:
    problems: list[str] = []
    r = boot_.report
    if r is None:
        tail = "\n    ".join(boot_.serial[-15:])
        return [
            f"{boot_.name}: the probe never reported; the serial console ended with:\n    {tail}"
        ]

    def expect(what: str, ok: bool, got: object) -> None:
        if not ok:
            problems.append(f"{boot_.name}: {what} (got {got!r})")

    expect("multi-user.target reached", r.get("multi_user") == "active", r.get("multi_user"))
    for unit in ("gateway", "webui"):
        svc = r.get(unit)
        state = svc if isinstance(svc, dict) else {}
        expect(f"{unit} service active", state.get("ActiveState") == "active", svc)
        expect(f"{unit} service never restarted", state.get("NRestarts") == "0", svc)
    expect(
        "the web UI answered /health, gateway ok (inside)",
        _healthy(r.get("health")),
        r.get("health"),
    )
    expect(
        "the web UI answered /health through the forwarded port",
        boot_.ready_after is not None,
        None,
    )
    expect("no failed units", r.get("failed") == [], r.get("failed"))
    expect("first boot service succeeded", _result_ok(r.get("firstboot")), r.get("firstboot"))
    expect("root is the RAM overlay", r.get("root_fs") == "overlay", r.get("root_fs"))
    expect("data partition is ext4", r.get("data_fs") == "ext4", r.get("data_fs"))
    expect("hostname linegram", r.get("hostname") == "linegram", r.get("hostname"))
    expect("settings installed on the data partition", r.get("settings") is True, r.get("settings"))
    expect("SSH off without a key", r.get("ssh") != "active", r.get("ssh"))
    expect("database intact", r.get("database") == "ok", r.get("database"))
    size = r.get("data_size_mb")
    expect(
        "data partition grown to the card (> 512 MiB)", isinstance(size, int) and size > 512, size
    )
    expect("writing to the root works (into RAM)", r.get("root_write") == "ok", r.get("root_write"))
    if first:
        expect("a fresh data partition", r.get("data_marker") == "absent", r.get("data_marker"))
    else:
        expect(
            "the data partition kept the last boot's file",
            r.get("data_marker") == previous_marker,
            (r.get("data_marker"), previous_marker),
        )
        expect(
            "the root forgot the last boot's file",
            r.get("root_marker") == "absent",
            r.get("root_marker"),
        )
        expect("powered off by itself", boot_.exited, boot_.exited)
    return problems


def _healthy(h: object) -> bool:
    return isinstance(h, dict) and h.get("gateway") == "ok" and h.get("webui") == "ok"


def _result_ok(svc: object) -> bool:
    return isinstance(svc, dict) and svc.get("Result") == "success"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="image/boot_test.py", description=__doc__)
    parser.add_argument("image", type=Path, help="linegram-<version>-arm64.img.xz (or .img)")
    parser.add_argument("--logs", type=Path, help="directory for the serial logs")
    args = parser.parse_args(argv)
    for tool in ("qemu-system-aarch64", "sfdisk", "mdir", "mcopy"):
        if shutil.which(tool) is None:
            print(f"image-test: {tool} is missing (make deps installs the image group)")
            return 1
    logs: Path = args.logs or args.image.parent / "test"
    logs.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="linegram-image-test-") as tmp:
        work = Path(tmp)
        disk = work / "disk.img"
        t0 = time.monotonic()
        if args.image.suffix == ".xz":
            decompress(args.image, disk)
        else:  # a raw .img (KEEP_RAW=1) while iterating on the image
            subprocess.check_call(["cp", "--sparse=always", str(args.image), str(disk)])
        with open(disk, "r+b") as f:
            f.truncate(disk.stat().st_size + GROW_BY)
        kernel, initrd, pi_cmdline = extract_boot_files(disk, work)
        prepared = time.monotonic() - t0
        port = free_port()
        boots = [Boot("boot 1 (first boot, then the power is pulled)"), Boot("boot 2")]
        boot(
            boots[0],
            disk,
            kernel,
            initrd,
            qemu_cmdline(pi_cmdline, "hold"),
            port,
            logs / "boot1.log",
        )
        boot(
            boots[1],
            disk,
            kernel,
            initrd,
            qemu_cmdline(pi_cmdline, "poweroff"),
            port,
            logs / "boot2.log",
        )
    marker = None
    if boots[0].report is not None:
        marker = str(boots[0].report.get("wrote_marker"))
    problems = check(boots[0], True, None) + check(boots[1], False, marker)

    print(
        f"\nimage: {args.image.name} ({args.image.stat().st_size / 2**20:.0f} MiB), "
        f"decompressed and prepared in {prepared:.0f} s; cmdline: {pi_cmdline}"
    )
    print(
        f"{'boot':<46} {'multi-user':>10} {'gateway up':>10} {'/health ok':>10} {'probe':>6}"
        f" {'data MiB':>8}"
    )
    print(f"{'':<46} {'(guest s)':>10} {'(guest s)':>10} {'(host s)':>10} {'(s)':>6}")
    for b in boots:
        r = b.report or {}
        ready = f"{b.ready_after:.0f}" if b.ready_after is not None else "-"
        probe = f"{b.report_after:.0f}" if b.report_after is not None else "-"
        print(
            f"{b.name:<46} {r.get('multi_user_at_s', '-')!s:>10}"
            f" {r.get('gateway_ready_at_s', '-')!s:>10}"
            f" {ready:>10} {probe:>6} {r.get('data_size_mb', '-')!s:>8}"
        )
    print(f"serial logs: {logs}")
    if problems:
        print("\nFAILED:")
        for p in problems:
            print(f"  - {p}")
        return 1
    print("\nimage-test: PASSED")
    return 0


if __name__ == "__main__":
    sys.exit(main())

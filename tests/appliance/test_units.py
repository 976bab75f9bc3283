"""systemd/*.service: `systemd-analyze verify` on a tree like the image's, and the hardening."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
UNITS = ROOT / "systemd"
NAMES = ("linegram-gateway.service", "linegram-webui.service", "linegram-firstboot.service")
ANALYZE = shutil.which("systemd-analyze") or "/usr/bin/systemd-analyze"
# The executables the units start, as the image has them.
EXECUTABLES = ("/opt/linegram/venv/bin/python", "/usr/bin/python3")


def host_units() -> Path:
    for candidate in (Path("/usr/lib/systemd/system"), Path("/lib/systemd/system")):
        if (candidate / "sysinit.target").exists():
            return candidate
    raise AssertionError("systemd's own units are missing (Debian package: systemd)")


@pytest.fixture(scope="module")
def image_tree(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """systemd's standard units, ours, and stand-ins for the executables they start."""
    root = tmp_path_factory.mktemp("root")
    shutil.copytree(host_units(), root / "usr/lib/systemd/system", symlinks=True)
    for program in EXECUTABLES:
        path = root / program.lstrip("/")
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text("#!/bin/sh\nexit 0\n")
        path.chmod(0o755)
    return root


def verify(root: Path, unit: str, text: str) -> tuple[int, list[str]]:
    """Install ``text`` as ``unit`` in ``root`` and verify it; (exit code, lines about ours)."""
    (root / "etc/systemd/system").mkdir(parents=True, exist_ok=True)
    (root / "etc/systemd/system" / unit).write_text(text)
    done = subprocess.run(
        [ANALYZE, "verify", "--man=no", "--generators=no", f"--root={root}", unit],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    # systemd only warns (exit 0) about unknown keys and bad values: every line naming
    # one of our units is a failure too.
    output = (done.stdout + done.stderr).splitlines()
    return done.returncode, [line for line in output if "linegram" in line]


def sections(text: str) -> dict[str, list[tuple[str, str]]]:
    """The unit's sections as (key, value) lists: keys may repeat."""
    result: dict[str, list[tuple[str, str]]] = {}
    current: list[tuple[str, str]] = []
    for line in text.splitlines():
        line = line.strip()
        if not line or line.startswith(("#", ";")):
            continue
        if line.startswith("["):
            current = result.setdefault(line.strip("[]"), [])
        else:
            key, _, value = line.partition("=")
            current.append((key.strip(), value.strip()))
    return result


def values(text: str, section: str, key: str) -> list[str]:
    return [v for k, v in sections(text).get(section, []) if k == key]


def unit_text(name: str) -> str:
    return (UNITS / name).read_text()


def test_systemd_analyze_is_installed() -> None:
    # Not a skip: tools/debian-packages.txt lists systemd for the test group.
    assert Path(ANALYZE).exists(), "systemd-analyze missing: install the Debian package systemd"


@pytest.mark.parametrize("name", NAMES)
def test_unit_verifies(image_tree: Path, name: str) -> None:
    assert verify(image_tree, name, unit_text(name)) == (0, [])


@pytest.mark.parametrize(
    ("change", "expected"),
    [
        (("WatchdogSec=30", "WatchdogSecs=30"), "Unknown key"),
        (("DeviceAllow=char-alsa rw", "DeviceAllow=char-alsa rwx"), "Invalid device rights"),
        (("Type=notify", "Type=notifi"), "Failed to parse"),
        (
            ("ExecStart=/opt/linegram/venv/bin/python", "ExecStart=/opt/linegram/venv/bin/pyton"),
            "is not executable",
        ),
    ],
)
def test_a_broken_unit_fails_verification(
    tmp_path: Path, image_tree: Path, change: tuple[str, str], expected: str
) -> None:
    text = unit_text("linegram-gateway.service")
    assert change[0] in text
    broken = text.replace(change[0], change[1])
    # A tree of its own, so the good unit in the shared one is not replaced.
    root = tmp_path / "root"
    shutil.copytree(image_tree, root, symlinks=True)
    code, lines = verify(root, "linegram-broken.service", broken)
    assert code != 0 or lines
    assert any(expected in line for line in lines), lines


def test_gateway_is_a_watched_notify_service_that_always_restarts() -> None:
    text = unit_text("linegram-gateway.service")
    service = dict(sections(text)["Service"])
    assert service["Type"] == "notify"
    assert service["NotifyAccess"] == "main"
    assert service["WatchdogSec"] == "30"
    assert service["Restart"] == "always"
    assert service["User"] == "linegram"
    assert set(service["SupplementaryGroups"].split()) == {"gpio", "audio"}
    assert service["ExecStart"] == (
        "/opt/linegram/venv/bin/python -m gateway --config /var/lib/linegram/linegram.toml"
    )
    assert values(text, "Unit", "RequiresMountsFor") == ["/var/lib/linegram"]


HARDENING = {
    "ProtectSystem": "strict",
    "ReadWritePaths": "/var/lib/linegram",
    "ProtectHome": "yes",
    "PrivateTmp": "yes",
    "NoNewPrivileges": "yes",
    "ProtectKernelTunables": "yes",
    "ProtectKernelModules": "yes",
    "ProtectControlGroups": "yes",
    "RestrictNamespaces": "yes",
    "LockPersonality": "yes",
    "SystemCallArchitectures": "native",
    "UMask": "0077",
}


@pytest.mark.parametrize("name", ["linegram-gateway.service", "linegram-webui.service"])
def test_services_are_hardened(name: str) -> None:
    service = dict(sections(unit_text(name))["Service"])
    for key, value in HARDENING.items():
        assert service.get(key) == value, f"{name}: {key}"
    families = set(service["RestrictAddressFamilies"].split())
    assert families <= {"AF_UNIX", "AF_INET", "AF_INET6", "AF_NETLINK"}


def test_gateway_reaches_only_gpio_and_sound_devices() -> None:
    text = unit_text("linegram-gateway.service")
    assert values(text, "Service", "DevicePolicy") == ["closed"]
    assert sorted(values(text, "Service", "DeviceAllow")) == ["char-alsa rw", "char-gpiochip rw"]
    assert values(text, "Service", "CapabilityBoundingSet") == [""]
    # WebRTC lists interfaces over netlink.
    assert "AF_NETLINK" in values(text, "Service", "RestrictAddressFamilies")[0].split()


def test_webui_binds_port_80_with_that_capability_only() -> None:
    text = unit_text("linegram-webui.service")
    assert values(text, "Service", "AmbientCapabilities") == ["CAP_NET_BIND_SERVICE"]
    assert values(text, "Service", "CapabilityBoundingSet") == ["CAP_NET_BIND_SERVICE"]
    assert values(text, "Service", "ExecStart") == [
        "/opt/linegram/venv/bin/python -m webui --config /var/lib/linegram/linegram.toml"
    ]


def test_web_ui_and_gateway_never_take_each_other_down() -> None:
    for name in ("linegram-gateway.service", "linegram-webui.service"):
        unit = dict(sections(unit_text(name))["Unit"])
        for strong in ("Requires", "BindsTo", "PartOf", "Requisite"):
            assert "linegram" not in unit.get(strong, ""), f"{name}: {strong}"
    assert "linegram-gateway.service" in values(
        unit_text("linegram-webui.service"), "Unit", "Wants"
    )


def test_firstboot_runs_before_network_wifi_ssh_and_our_services() -> None:
    text = unit_text("linegram-firstboot.service")
    before = " ".join(values(text, "Unit", "Before")).split()
    for unit in (
        "network-pre.target",
        "systemd-networkd.service",
        "wpa_supplicant@wlan0.service",
        "ssh.service",
        "linegram-gateway.service",
        "linegram-webui.service",
    ):
        assert unit in before
    assert values(text, "Unit", "DefaultDependencies") == ["no"]
    assert values(text, "Unit", "RequiresMountsFor") == ["/var/lib/linegram /boot/firmware"]
    assert values(text, "Service", "Type") == ["oneshot"]
    script = values(text, "Service", "ExecStart")[0].split()[-1]
    assert (ROOT / "image/rootfs" / script.lstrip("/")).is_file()
    for name in ("linegram-gateway.service", "linegram-webui.service"):
        assert "linegram-firstboot.service" in " ".join(values(unit_text(name), "Unit", "After"))

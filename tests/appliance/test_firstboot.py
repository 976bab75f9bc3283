"""image/rootfs/usr/lib/linegram/firstboot.py on a directory tree, with recorded commands."""

from __future__ import annotations

import base64
import hashlib
import importlib.util
import json
import shutil
import stat
import sys
from collections.abc import Sequence
from pathlib import Path
from types import ModuleType

import pytest

from gateway.config import load_config

ROOT = Path(__file__).resolve().parents[2]
SCRIPT = ROOT / "image/rootfs/usr/lib/linegram/firstboot.py"
DEFAULT_SETTINGS = ROOT / "image/rootfs/usr/share/linegram/linegram.toml"
SAMPLE = ROOT / "image/rootfs/boot/firmware/linegram.txt"


def load_script() -> ModuleType:
    spec = importlib.util.spec_from_file_location("linegram_firstboot", SCRIPT)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up
    # No __pycache__ in image/rootfs: the build copies that tree into the image as is.
    dont_write, sys.dont_write_bytecode = sys.dont_write_bytecode, True
    try:
        spec.loader.exec_module(module)
    finally:
        sys.dont_write_bytecode = dont_write
    return module


fb = load_script()


def ssh_key(kind: str = "ssh-ed25519", comment: str = "me@pc") -> str:
    name = kind.encode()
    blob = len(name).to_bytes(4, "big") + name + len(b"k" * 32).to_bytes(4, "big") + b"k" * 32
    return f"{kind} {base64.b64encode(blob).decode()} {comment}"


class Machine:
    """A tree like the appliance's, and a command runner that records instead of running."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.commands: list[tuple[str, ...]] = []
        self.chowns: list[tuple[Path, int, int]] = []
        for directory in ("boot/firmware", "etc/ssh", "var/lib/linegram", "usr/share/linegram"):
            (root / directory).mkdir(parents=True, exist_ok=True)
        (root / "var/lib/linegram").chmod(0o755)
        (root / "etc/passwd").write_text(
            "root:x:0:0:root:/root:/bin/bash\n"
            "linegram:x:998:997:Linegram gateway:/var/lib/linegram:/usr/sbin/nologin\n"
        )
        (root / "etc/hostname").write_text("linegram\n")
        (root / "etc/hosts").write_text("127.0.0.1\tlocalhost\n127.0.1.1\tlinegram\n")
        (root / "usr/share/linegram/linegram.toml").write_bytes(DEFAULT_SETTINGS.read_bytes())
        sysfs = root / "sys/class/block/mmcblk0p3"
        sysfs.mkdir(parents=True)
        (sysfs / "partition").write_text("3\n")

    def run(self, argv: Sequence[str]) -> object:
        argv = tuple(argv)
        self.commands.append(argv)
        if argv[0] == "findmnt":
            return fb.Result(0, "/dev/mmcblk0p3\n")
        if argv[0] == "lsblk":
            return fb.Result(0, "mmcblk0\n")
        if argv[0] == "growpart":
            return fb.Result(0, "CHANGED: partition=3\n")
        if argv[0] == "ssh-keygen":  # what ssh-keygen -f KEY leaves behind
            key = Path(argv[-1])
            key.write_text(f"PRIVATE {key.name}\n")
            key.with_name(key.name + ".pub").write_text(f"PUBLIC {key.name}\n")
        return fb.Result(0)

    def boot(self, linegram_txt: str | None = None) -> int:
        self.commands.clear()
        if linegram_txt is not None:
            (self.root / "boot/firmware/linegram.txt").write_text(linegram_txt)
        box = fb.Box(self.root, self.run, lambda p, u, g: self.chowns.append((p, u, g)))
        failures: int = box.boot_sequence()
        return failures

    def reboot(self) -> None:
        """What the RAM overlay forgets: everything under /etc, /root and /sys is fresh."""
        for path in ("etc/wpa_supplicant", "root"):
            target = self.root / path
            if target.exists():
                shutil.rmtree(target)
        for key in (self.root / "etc/ssh").glob("ssh_host_*"):
            key.unlink()
        (self.root / "etc/hostname").write_text("linegram\n")
        (self.root / "etc/hosts").write_text("127.0.0.1\tlocalhost\n127.0.1.1\tlinegram\n")

    def read(self, path: str) -> str:
        return (self.root / path.lstrip("/")).read_text()

    def exists(self, path: str) -> bool:
        return (self.root / path.lstrip("/")).exists()

    def mode(self, path: str) -> int:
        return stat.S_IMODE((self.root / path.lstrip("/")).stat().st_mode)

    def settings(self) -> dict[str, object]:
        data: dict[str, object] = json.loads(self.read("/var/lib/linegram/system/settings.json"))
        return data

    def ran(self, *prefix: str) -> list[tuple[str, ...]]:
        return [c for c in self.commands if c[: len(prefix)] == prefix]


@pytest.fixture
def box(tmp_path: Path) -> Machine:
    return Machine(tmp_path)


WIFI_WANTS = (
    "systemctl",
    "--runtime",
    "add-wants",
    "sys-subsystem-net-devices-wlan0.device",
    "wpa_supplicant@wlan0.service",
)
SSH_START = ("systemctl", "--no-block", "start", "ssh.service")


def test_plain_first_boot_keeps_the_defaults(box: Machine) -> None:
    assert box.boot() == 0
    assert box.read("/etc/hostname") == "linegram\n"
    assert box.ran("hostname") == [("hostname", "linegram")]
    assert box.ran("systemctl") == []  # no Wi-Fi, no SSH
    assert not box.exists("/etc/wpa_supplicant")
    assert not box.exists("/root/.ssh/authorized_keys")


def test_hostname_is_applied(box: Machine) -> None:
    assert box.boot("hostname=Kitchen-Phone\n") == 0
    assert box.read("/etc/hostname") == "kitchen-phone\n"
    assert box.read("/etc/hosts") == "127.0.0.1\tlocalhost\n127.0.1.1\tkitchen-phone\n"
    assert box.ran("hostname") == [("hostname", "kitchen-phone")]


def test_hosts_gets_a_line_when_it_had_none(box: Machine) -> None:
    (box.root / "etc/hosts").write_text("127.0.0.1\tlocalhost\n::1\tlocalhost\n")
    box.boot("hostname=box\n")
    assert box.read("/etc/hosts") == "127.0.0.1\tlocalhost\n127.0.1.1\tbox\n::1\tlocalhost\n"


def test_wpa_key_is_derived_like_wpa_passphrase() -> None:
    # IEEE 802.11i-2004, annex H.4 test vectors (what wpa_passphrase prints).
    assert fb.wpa_psk("password", "IEEE") == (
        "f42c6fc52df0ebef9ebb4b90b38a5f902e83fe1b135a70e23aed762e9710a12e"
    )
    assert fb.wpa_psk("ThisIsAPassword", "ThisIsASSID") == (
        "0dc0d6eb90555ed6419756b9a15ec3e3209b63df707dd508d14581f8982721af"
    )
    assert fb.wpa_psk("A" * 64, "any") == "a" * 64  # 64 hex digits are the key itself


def test_wifi_conf_has_country_and_the_hashed_key(box: Machine) -> None:
    assert box.boot("wifi_ssid=Home Net\nwifi_password=secret123\nwifi_country=de\n") == 0
    conf = box.read("/etc/wpa_supplicant/wpa_supplicant-wlan0.conf")
    expected_psk = hashlib.pbkdf2_hmac("sha1", b"secret123", b"Home Net", 4096, 32).hex()
    assert "country=DE\n" in conf
    assert f"\tssid={b'Home Net'.hex()}\n" in conf
    assert f"\tpsk={expected_psk}\n" in conf
    assert "secret123" not in conf
    assert box.mode("/etc/wpa_supplicant/wpa_supplicant-wlan0.conf") == 0o600
    assert box.ran("systemctl") == [WIFI_WANTS]  # no wlan0 yet: the device pulls it in


def test_wifi_is_started_when_wlan0_is_already_there(box: Machine) -> None:
    (box.root / "sys/class/net/wlan0").mkdir(parents=True)
    box.boot("wifi_ssid=Home\nwifi_psk=secret123\n")
    assert box.ran("systemctl") == [
        WIFI_WANTS,
        ("systemctl", "--no-block", "start", "wpa_supplicant@wlan0.service"),
    ]


def test_ssid_without_password_is_an_open_network(box: Machine) -> None:
    box.boot("wifi_ssid=Cafe\n")
    conf = box.read("/etc/wpa_supplicant/wpa_supplicant-wlan0.conf")
    assert "key_mgmt=NONE" in conf and "psk=" not in conf


def test_ssh_stays_off_without_a_key(box: Machine) -> None:
    assert box.boot("ssh=on\nhostname=box\n") == 0
    assert box.ran("systemctl") == []
    assert box.ran("ssh-keygen") == []
    assert not box.exists("/root/.ssh/authorized_keys")
    errors = box.read("/var/lib/linegram/system/linegram.txt.errors")
    assert "ssh: on needs an ssh_authorized_key" in errors


def test_ssh_with_a_key(box: Machine) -> None:
    keys = [ssh_key(), ssh_key("ssh-rsa", "laptop")]
    box.boot(f"ssh_authorized_key={keys[0]}\nssh_authorized_key={keys[1]}\n")
    assert box.read("/root/.ssh/authorized_keys") == f"{keys[0]}\n{keys[1]}\n"
    assert box.mode("/root/.ssh/authorized_keys") == 0o600
    assert box.mode("/root/.ssh") == 0o700
    assert box.ran("systemctl") == [SSH_START]
    made = [c[c.index("-t") + 1] for c in box.ran("ssh-keygen")]
    assert made == ["ed25519", "ecdsa", "rsa"]
    kept = "/var/lib/linegram/system/ssh/ssh_host_ed25519_key"
    assert box.read("/etc/ssh/ssh_host_ed25519_key") == box.read(kept)
    assert box.mode("/etc/ssh/ssh_host_ed25519_key") == 0o600
    assert box.mode("/etc/ssh/ssh_host_ed25519_key.pub") == 0o644
    # The next boot: same host keys from the data partition, none generated.
    box.reboot()
    box.boot()
    assert box.ran("ssh-keygen") == []
    assert box.read("/etc/ssh/ssh_host_ed25519_key") == box.read(kept)
    assert box.ran("systemctl") == [SSH_START]


def test_ssh_off_keeps_it_off_even_with_keys(box: Machine) -> None:
    box.boot(f"ssh_authorized_key={ssh_key()}\nssh=off\n")
    assert box.ran("systemctl") == []


def test_bad_values_are_skipped_and_named_by_key_and_line(
    box: Machine, capsys: pytest.CaptureFixture[str]
) -> None:
    text = (
        "# my box\n"
        "hostname=-bad-\n"
        "wifi_country=Germany\n"
        "wifi_ssid=Home\n"
        "wifi_password=short\n"
        "ssh_authorized_key=ssh-ed25519 AAAAnot-a-key me\n"
        "colour=blue\n"
        "just words\n"
        "hostname=good\n"
    )
    assert box.boot(text) == 0
    errors = box.read("/var/lib/linegram/system/linegram.txt.errors")
    journal = capsys.readouterr().err
    for expected in (
        "linegram.txt line 2: hostname: '-bad-' is not a host name",
        "linegram.txt line 3: wifi_country: 'Germany' is not a two-letter country code",
        "linegram.txt line 5: wifi_password: must be 8 to 63 characters",
        "linegram.txt line 6: ssh_authorized_key: ",
        "linegram.txt line 7: colour: unknown key",
        "linegram.txt line 8: 'just words' is not KEY=VALUE",
    ):
        assert expected in errors
        assert expected in journal
    assert "short" not in errors + journal  # a password is never repeated
    settings = box.settings()
    assert settings == {"hostname": "good", "wifi_ssid": "Home"}
    assert box.read("/etc/hostname") == "good\n"


def test_linegram_txt_is_replaced_by_a_redacted_copy(box: Machine) -> None:
    text = "# set up\nhostname=box\nwifi_ssid=Home\nwifi_password=secret123\n"
    box.boot(text)
    assert not box.exists("/boot/firmware/linegram.txt")
    applied = box.read("/boot/firmware/linegram.txt.applied")
    assert applied == "# set up\nhostname=box\nwifi_ssid=Home\nwifi_password=(saved)\n"
    assert box.ran("mount") == [
        ("mount", "-o", "remount,rw", "/boot/firmware"),
        ("mount", "-o", "remount,ro", "/boot/firmware"),
    ]
    settings_file = "/var/lib/linegram/system/settings.json"
    assert "secret123" not in box.read(settings_file)  # only the derived key is kept
    assert box.mode(settings_file) == 0o600


def test_settings_persist_and_are_applied_again_on_the_next_boot(box: Machine) -> None:
    box.boot("hostname=box\nwifi_ssid=Home\nwifi_password=secret123\nwifi_country=FR\n")
    first = box.read("/etc/wpa_supplicant/wpa_supplicant-wlan0.conf")
    box.reboot()
    assert not box.exists("/boot/firmware/linegram.txt")
    assert box.boot() == 0
    assert box.read("/etc/hostname") == "box\n"
    assert box.read("/etc/wpa_supplicant/wpa_supplicant-wlan0.conf") == first
    assert box.ran("systemctl") == [WIFI_WANTS]
    assert box.ran("mount") == []  # nothing new on the boot partition


def test_a_later_file_overrides_per_key_and_empty_clears(box: Machine) -> None:
    box.boot("hostname=box\nwifi_ssid=Home\nwifi_password=secret123\nwifi_country=FR\n")
    box.reboot()
    box.boot("wifi_country=IT\n")
    settings = box.settings()
    assert (settings["hostname"], settings["wifi_country"], settings["wifi_ssid"]) == (
        "box",
        "IT",
        "Home",
    )
    assert settings["wifi_psk"] == fb.wpa_psk("secret123", "Home")
    box.reboot()
    box.boot("wifi_password=another-one\n")  # a new password for the saved network
    assert box.settings()["wifi_psk"] == fb.wpa_psk("another-one", "Home")
    box.reboot()
    box.boot("wifi_ssid=\nhostname=\n")
    assert box.settings() == {"wifi_country": "IT"}
    assert box.read("/etc/hostname") == "linegram\n"
    assert not box.exists("/etc/wpa_supplicant/wpa_supplicant-wlan0.conf")


def test_data_partition_grows_on_first_boot_only(box: Machine) -> None:
    box.boot()
    assert box.ran("growpart") == [("growpart", "/dev/mmcblk0", "3")]
    assert box.ran("resize2fs") == [("resize2fs", "/dev/mmcblk0p3")]
    box.reboot()
    box.boot()
    assert box.ran("growpart") == [] and box.ran("resize2fs") == []


def test_a_failing_step_is_logged_and_the_rest_still_runs(
    box: Machine, capsys: pytest.CaptureFixture[str]
) -> None:
    def broken(argv: Sequence[str]) -> object:
        box.commands.append(tuple(argv))
        if argv[0] == "growpart":
            return fb.Result(2, "", "FAILED: no tools\n")
        return box.run(argv) if argv[0] != "hostname" else fb.Result(1, "", "nope\n")

    failures = fb.Box(box.root, broken, lambda p, u, g: None).boot_sequence()
    assert failures == 2
    err = capsys.readouterr().err
    assert "hostname: failed: hostname linegram exited 1: nope" in err
    assert "data partition size: failed: growpart /dev/mmcblk0 3 exited 2" in err
    assert box.exists("/var/lib/linegram/linegram.toml")  # later steps ran
    assert not box.exists("/var/lib/linegram/system/grown")  # tried again next boot
    assert fb.main(["--root", str(box.root)], run=broken) == 0


def test_default_settings_are_installed_only_when_missing(box: Machine) -> None:
    box.boot()
    target = box.root / "var/lib/linegram/linegram.toml"
    assert target.read_bytes() == DEFAULT_SETTINGS.read_bytes()
    assert box.mode("/var/lib/linegram/linegram.toml") == 0o600
    assert (target, 998, 997) in box.chowns
    target.write_text("# the household's own\n")
    box.boot()
    assert target.read_text() == "# the household's own\n"


def test_data_directory_is_made_the_service_users_and_private(box: Machine) -> None:
    box.boot()
    assert (box.root / "var/lib/linegram", 998, 997) in box.chowns
    assert box.mode("/var/lib/linegram") == 0o700


def test_default_settings_validate_and_serve_the_lan(tmp_path: Path) -> None:
    target = tmp_path / "linegram.toml"
    target.write_bytes(DEFAULT_SETTINGS.read_bytes())
    config = load_config(target)
    assert config.data_dir == tmp_path
    assert (config.webui.listen, config.webui.port) == ("0.0.0.0", 80)
    assert config.sip.listen == "0.0.0.0"


def test_default_settings_follow_the_init_template() -> None:
    from tests.appliance.appliance_settings import appliance_settings

    assert DEFAULT_SETTINGS.read_text() == appliance_settings(), (
        "regenerate: .venv/bin/python -m tests.appliance.appliance_settings > "
        "image/rootfs/usr/share/linegram/linegram.toml"
    )


def test_the_shipped_sample_applies_nothing() -> None:
    parsed = fb.parse(SAMPLE.read_text())
    assert (parsed.values, parsed.problems) == ({}, [])
    # Uncommented, its examples are all valid.
    lines = [
        line[2:]
        for line in SAMPLE.read_text().splitlines()
        if line.startswith("# ") and "=" in line[2:] and " " not in line[2:].split("=")[0]
    ]
    example = fb.parse("\n".join(lines))
    assert example.problems == []
    assert set(example.values) >= {"hostname", "wifi_ssid", "wifi_password", "wifi_country"}


def test_windows_line_ends_bom_and_quotes(box: Machine) -> None:
    data = '\ufeffhostname = "kitchen"\r\nwifi_ssid=\'My "Net"\'\r\nwifi_password=pass word!\r\n'
    (box.root / "boot/firmware/linegram.txt").write_bytes(data.encode("utf-8"))
    assert box.boot() == 0
    settings = box.settings()
    assert settings["hostname"] == "kitchen"
    assert settings["wifi_ssid"] == 'My "Net"'
    assert settings["wifi_psk"] == fb.wpa_psk("pass word!", 'My "Net"')

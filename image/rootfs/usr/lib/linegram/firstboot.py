#!/usr/bin/python3
"""Linegram's boot-time settings: ``linegram.txt`` on the boot partition, applied at every boot.

Runs as root from ``linegram-firstboot.service`` at **every** boot, before the
network: the root file system is read-only under a RAM overlay, so whatever
it writes to ``/etc`` is gone at the next boot and has to be written again
from what the data partition remembers.  Standard library only (Debian's
python3.11), idempotent, and it always exits 0: a step that fails is logged
(to stderr, i.e. the journal) and the gateway and web UI start anyway.

What it does:

1. ``/boot/firmware/linegram.txt`` (written on a PC after flashing), when
   present: ``KEY=VALUE`` lines, never run as shell.  Good values are merged
   into ``/var/lib/linegram/system/settings.json`` (root only; the Wi-Fi
   password is kept only as the derived WPA key); bad ones are skipped, named
   by key and line in the journal and in ``system/linegram.txt.errors``.  The
   file is then replaced by ``linegram.txt.applied`` with the password
   redacted.
2. The saved settings, every boot: hostname (``/etc/hostname``, ``/etc/hosts``,
   the running hostname), Wi-Fi (``wpa_supplicant-wlan0.conf``, started only
   where a wlan0 exists), SSH (only with an authorized key; host keys kept on
   the data partition so the fingerprint survives reboots).
3. First boot only: the data partition grows to fill the card.
4. The default gateway settings file when there is none, and the data
   directory's owner and mode.

``--root DIR`` runs it on a directory tree instead of ``/`` (the tests do).
"""

from __future__ import annotations

import argparse
import base64
import binascii
import contextlib
import hashlib
import json
import os
import re
import subprocess
import sys
import tempfile
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

BOOT_FILE = "linegram.txt"
DEFAULT_HOSTNAME = "linegram"
SERVICE_USER = "linegram"
WLAN = "wlan0"
HOST_KEY_TYPES = ("ed25519", "ecdsa", "rsa")
REDACTED = "(saved)"

# Key aliases accepted in linegram.txt -> the canonical name.
KEYS = {
    "hostname": "hostname",
    "wifi_ssid": "wifi_ssid",
    "wifi_password": "wifi_password",
    "wifi_psk": "wifi_password",
    "wifi_country": "wifi_country",
    "ssh_authorized_key": "ssh_authorized_keys",
    "ssh_authorized_keys": "ssh_authorized_keys",
    "ssh": "ssh",
}
SECRET_KEYS = ("wifi_password", "wifi_psk")

_HOSTNAME = re.compile(r"^[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?$")  # RFC 1123 label
_COUNTRY = re.compile(r"^[A-Z]{2}$")
_HEX64 = re.compile(r"^[0-9a-fA-F]{64}$")
_KEY_TYPES = (
    "ssh-ed25519",
    "ssh-rsa",
    "ecdsa-sha2-nistp256",
    "ecdsa-sha2-nistp384",
    "ecdsa-sha2-nistp521",
    "sk-ssh-ed25519@openssh.com",
    "sk-ecdsa-sha2-nistp256@openssh.com",
)
_ON = {"on": True, "yes": True, "true": True, "1": True}
_OFF = {"off": False, "no": False, "false": False, "0": False}


def log(message: str) -> None:
    print(f"linegram-firstboot: {message}", file=sys.stderr, flush=True)


# -- commands: real ones on the box, recorded ones in tests -------------------------------------


@dataclass(frozen=True)
class Result:
    returncode: int
    stdout: str = ""
    stderr: str = ""


Runner = Callable[[Sequence[str]], Result]
Chown = Callable[[Path, int, int], None]


def run_command(argv: Sequence[str]) -> Result:
    try:
        done = subprocess.run(list(argv), capture_output=True, text=True, timeout=300, check=False)
    except FileNotFoundError:
        return Result(127, "", f"{argv[0]}: not found")
    except subprocess.TimeoutExpired:
        return Result(124, "", f"{argv[0]}: timed out")
    return Result(done.returncode, done.stdout, done.stderr)


# -- linegram.txt: parse, validate, merge, redact (no I/O) -------------------------------------


@dataclass(frozen=True)
class Problem:
    line: int
    key: str
    message: str

    def __str__(self) -> str:
        where = f"{BOOT_FILE} line {self.line}" if self.line else BOOT_FILE
        what = f"{self.key}: {self.message}" if self.key else self.message
        return f"{where}: {what}; skipped"


@dataclass
class BootFile:
    """What one ``linegram.txt`` says: canonical key -> value (validated)."""

    values: dict[str, Any]
    problems: list[Problem]


def decode(data: bytes) -> str:
    try:
        return data.decode("utf-8-sig")  # Notepad may write a byte-order mark
    except UnicodeDecodeError:
        return data.decode("latin-1")


def parse(text: str) -> BootFile:
    """``KEY=VALUE`` lines; ``#`` starts a comment line; one layer of quotes is removed."""
    values: dict[str, Any] = {}
    problems: list[Problem] = []
    keys: list[str] = []
    for number, raw in enumerate(text.splitlines(), start=1):
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        if "=" not in line:
            problems.append(Problem(number, "", f"{_shown(line)} is not KEY=VALUE"))
            continue
        name, value = (part.strip() for part in line.split("=", 1))
        name = name.lower()
        if len(value) >= 2 and value[0] == value[-1] and value[0] in "\"'":
            value = value[1:-1]
        key = KEYS.get(name)
        if key is None:
            problems.append(Problem(number, name, "unknown key"))
            continue
        problem = _validate(key, value)
        if problem is not None:
            problems.append(Problem(number, name, problem))
            continue
        if key == "ssh_authorized_keys":
            if value:
                keys.append(value)
            values.setdefault(key, keys)  # present (even empty): replaces the saved keys
        else:
            values[key] = _normalise(key, value)
    return BootFile(values, problems)


def _shown(line: str) -> str:
    return repr(line if len(line) <= 40 else line[:37] + "...")


def _validate(key: str, value: str) -> str | None:
    """The problem with ``value`` for ``key`` (never quoting a password), or None."""
    if not value:
        return None  # an empty value clears the saved setting
    if key == "hostname":
        if not _HOSTNAME.match(value.lower()):
            return (
                f"{value!r} is not a host name (letters, digits and '-', 1 to 63 characters, "
                "not starting or ending with '-')"
            )
    elif key == "wifi_ssid":
        if len(value.encode("utf-8")) > 32:
            return "longer than 32 bytes"
    elif key == "wifi_password":
        if _HEX64.match(value):
            return None
        if not 8 <= len(value) <= 63:
            return f"must be 8 to 63 characters (or 64 hex digits), not {len(value)}"
        if not all(32 <= ord(c) <= 126 for c in value):
            return "only printable ASCII characters are allowed in a WPA password"
    elif key == "wifi_country":
        if not _COUNTRY.match(value.upper()):
            return f"{value!r} is not a two-letter country code (ISO 3166, e.g. DE, GB, US)"
    elif key == "ssh_authorized_keys":
        return _key_problem(value)
    elif key == "ssh":
        if value.lower() not in _ON and value.lower() not in _OFF:
            return f"{value!r} is not on or off"
    return None


def _key_problem(value: str) -> str | None:
    parts = value.split()
    if len(parts) < 2 or parts[0] not in _KEY_TYPES:
        return "not an SSH public key (a line like 'ssh-ed25519 AAAA... you@pc' from a .pub file)"
    try:
        blob = base64.b64decode(parts[1], validate=True)
    except (binascii.Error, ValueError):
        return "the key's base64 part is damaged (copied incompletely?)"
    # The blob starts with its own type name: catches truncated or mixed-up pastes.
    size = int.from_bytes(blob[:4], "big") if len(blob) >= 4 else -1
    if blob[4 : 4 + size] != parts[0].encode("ascii"):
        return "the key's base64 part does not match its type (copied incompletely?)"
    return None


def _normalise(key: str, value: str) -> Any:
    if key == "hostname":
        return value.lower()
    if key == "wifi_country":
        return value.upper()
    if key == "ssh":
        return None if not value else _ON.get(value.lower(), False)
    return value


def wpa_psk(passphrase: str, ssid: str) -> str:
    """The 256-bit WPA key as ``wpa_passphrase`` derives it (IEEE 802.11i PBKDF2)."""
    if _HEX64.match(passphrase):
        return passphrase.lower()
    key = hashlib.pbkdf2_hmac("sha1", passphrase.encode("ascii"), ssid.encode("utf-8"), 4096, 32)
    return key.hex()


def merge(saved: dict[str, Any], new: BootFile) -> tuple[dict[str, Any], list[Problem]]:
    """The saved settings with ``new`` on top, key by key.  An empty value clears."""
    settings = dict(saved)
    problems: list[Problem] = []
    values = new.values
    for key in ("hostname", "wifi_country", "ssh"):
        if key in values:
            if values[key] in ("", None):
                settings.pop(key, None)
            else:
                settings[key] = values[key]
    if "ssh_authorized_keys" in values:
        settings["ssh_authorized_keys"] = list(values["ssh_authorized_keys"])
        if not settings["ssh_authorized_keys"]:
            del settings["ssh_authorized_keys"]
    # Wi-Fi: the key derives from SSID and password, so they travel together.
    password = values.get("wifi_password")
    if "wifi_ssid" in values:
        settings.pop("wifi_psk", None)
        if values["wifi_ssid"]:
            settings["wifi_ssid"] = values["wifi_ssid"]
            if password:
                settings["wifi_psk"] = wpa_psk(password, values["wifi_ssid"])
        else:
            settings.pop("wifi_ssid", None)  # Wi-Fi off
    elif "wifi_password" in values:  # a new password for the saved network
        if settings.get("wifi_ssid") and password:
            settings["wifi_psk"] = wpa_psk(password, settings["wifi_ssid"])
        elif settings.get("wifi_ssid"):
            settings.pop("wifi_psk", None)
        else:
            problems.append(Problem(0, "wifi_password", "no wifi_ssid to go with it"))
    if settings.get("ssh") is True and not settings.get("ssh_authorized_keys"):
        problems.append(
            Problem(0, "ssh", "on needs an ssh_authorized_key (there are no password logins)")
        )
        settings.pop("ssh")
    return settings, problems


def redact(text: str) -> str:
    """``text`` with the Wi-Fi password's value replaced by ``(saved)``."""
    out = []
    for line in text.splitlines():
        name = line.split("=", 1)[0].strip().lower() if "=" in line else ""
        if name in SECRET_KEYS and not line.lstrip().startswith("#"):
            indent = line[: len(line) - len(line.lstrip())]
            line = f"{indent}{line.split('=', 1)[0].strip()}={REDACTED}"
        out.append(line)
    return "\n".join(out) + "\n"


def wpa_config(settings: dict[str, Any]) -> str:
    ssid: str = settings["wifi_ssid"]
    lines = [
        "# Written at every boot by linegram-firstboot from the data partition's settings.",
        "ctrl_interface=DIR=/run/wpa_supplicant GROUP=netdev",
        "update_config=0",
    ]
    if settings.get("wifi_country"):
        lines.append(f"country={settings['wifi_country']}")
    lines += [
        "network={",
        # Hex, not quoted: any byte of an SSID (quotes, '#') stays what it is.
        f"\tssid={ssid.encode('utf-8').hex()}",
        "\tscan_ssid=1",  # hidden networks too
    ]
    if settings.get("wifi_psk"):
        lines += ["\tkey_mgmt=WPA-PSK", f"\tpsk={settings['wifi_psk']}"]
    else:
        lines.append("\tkey_mgmt=NONE")  # an open network
    lines.append("}")
    return "\n".join(lines) + "\n"


# -- the box ------------------------------------------------------------------------------------


def write_atomic(path: Path, data: bytes, mode: int = 0o600) -> None:
    """Write ``path`` so a power cut leaves the old or the new file, never half of one."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as out:
            os.fchmod(out.fileno(), mode)
            out.write(data)
            out.flush()
            os.fsync(out.fileno())
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise
    _fsync_dir(path.parent)


def _fsync_dir(path: Path) -> None:
    try:
        fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass  # FAT and some overlays refuse a directory fsync
    finally:
        os.close(fd)


class Box:
    """The machine seen from ``root`` (``/`` on the box, a directory tree in tests)."""

    def __init__(self, root: Path, run: Runner = run_command, chown: Chown | None = None) -> None:
        self.root = root
        self.run = run
        self.chown: Chown = chown or (lambda path, uid, gid: os.chown(path, uid, gid))
        self.failures = 0

    # Paths.
    def path(self, absolute: str) -> Path:
        return self.root / absolute.lstrip("/")

    @property
    def boot(self) -> Path:
        return self.path("/boot/firmware")

    @property
    def data(self) -> Path:
        return self.path("/var/lib/linegram")

    @property
    def system(self) -> Path:
        return self.data / "system"

    @property
    def settings_file(self) -> Path:
        return self.system / "settings.json"

    # Steps.
    def boot_sequence(self) -> int:
        """Every step, each on its own: one failing does not stop the others."""
        self.step("data directory", self.own_data_dir)
        self.step("linegram.txt", self.take_boot_file)
        settings = self.load_settings()
        self.step("hostname", lambda: self.apply_hostname(settings))
        self.step("Wi-Fi", lambda: self.apply_wifi(settings))
        self.step("SSH", lambda: self.apply_ssh(settings))
        self.step("data partition size", self.grow_data_partition)
        self.step("gateway settings", self.install_default_settings)
        return self.failures

    def step(self, name: str, action: Callable[[], object]) -> None:
        try:
            action()
        except Exception as exc:  # log and go on: the services must start regardless
            self.failures += 1
            log(f"{name}: failed: {exc}")

    def command(self, *argv: str, ok: Sequence[int] = (0,)) -> Result:
        result = self.run(argv)
        if result.returncode not in ok:
            detail = (result.stderr or result.stdout).strip().splitlines()
            raise RuntimeError(
                f"{' '.join(argv[:3])} exited {result.returncode}"
                + (f": {detail[-1]}" if detail else "")
            )
        return result

    # 1. linegram.txt -> settings.json, redacted copy on the boot partition.
    def take_boot_file(self) -> None:
        source = self.boot / BOOT_FILE
        if not source.is_file():
            return
        text = decode(source.read_bytes())
        parsed = parse(text)
        settings, more = merge(self.load_settings(), parsed)
        problems = parsed.problems + more
        for problem in problems:
            log(str(problem))
        self.make_system_dir()
        self.save_settings(settings)
        errors = self.system / f"{BOOT_FILE}.errors"
        if problems:
            write_atomic(errors, "".join(f"{p}\n" for p in problems).encode(), 0o644)
        elif errors.exists():
            errors.unlink()
        log(f"applied {BOOT_FILE}: {', '.join(sorted(parsed.values)) or 'nothing'}")
        self.replace_boot_file(source, redact(text))

    def replace_boot_file(self, source: Path, applied: str) -> None:
        # The settings are safe on the data partition first: a power cut here means the
        # file is read again next boot, which gives the same result.
        self.command("mount", "-o", "remount,rw", "/boot/firmware")
        try:
            write_atomic(source.with_name(f"{BOOT_FILE}.applied"), applied.encode("utf-8"), 0o600)
            source.unlink()
            _fsync_dir(source.parent)
        finally:
            self.command("mount", "-o", "remount,ro", "/boot/firmware")

    def make_system_dir(self) -> None:
        # Root's; others may look in (the web UI's System page shows linegram.txt.errors), but
        # settings.json (the Wi-Fi key) and ssh/ are root-only inside.
        self.system.mkdir(parents=True, exist_ok=True)
        os.chmod(self.system, 0o755)

    def load_settings(self) -> dict[str, Any]:
        try:
            data = json.loads(self.settings_file.read_text("utf-8"))
        except FileNotFoundError:
            return {}
        except (OSError, ValueError) as exc:
            log(f"{self.settings_file} unreadable ({exc}); using defaults")
            return {}
        return data if isinstance(data, dict) else {}

    def save_settings(self, settings: dict[str, Any]) -> None:
        text = json.dumps(settings, indent=2, sort_keys=True) + "\n"
        write_atomic(self.settings_file, text.encode("utf-8"), 0o600)

    # 2. Saved settings -> /etc (RAM overlay), every boot.
    def apply_hostname(self, settings: dict[str, Any]) -> None:
        name = settings.get("hostname") or DEFAULT_HOSTNAME
        etc_hostname = self.path("/etc/hostname")
        if not etc_hostname.exists() or etc_hostname.read_text().strip() != name:
            write_atomic(etc_hostname, f"{name}\n".encode(), 0o644)
        hosts = self.path("/etc/hosts")
        lines = hosts.read_text().splitlines() if hosts.exists() else ["127.0.0.1\tlocalhost"]
        entry = f"127.0.1.1\t{name}"
        kept = [line for line in lines if not line.startswith("127.0.1.1")]
        wanted = [*kept[:1], entry, *kept[1:]]
        if lines != wanted:
            write_atomic(hosts, ("\n".join(wanted) + "\n").encode(), 0o644)
        self.command("hostname", name)

    def apply_wifi(self, settings: dict[str, Any]) -> None:
        if not settings.get("wifi_ssid"):
            return
        conf = self.path(f"/etc/wpa_supplicant/wpa_supplicant-{WLAN}.conf")
        write_atomic(conf, wpa_config(settings).encode("utf-8"), 0o600)
        # Wanted by the wlan0 device, not by a target: a Pi without Wi-Fi (or QEMU) never
        # waits for a wlan0 that will not come.  --runtime: nothing is written to /etc.
        device = f"sys-subsystem-net-devices-{WLAN}.device"
        self.command(
            "systemctl", "--runtime", "add-wants", device, f"wpa_supplicant@{WLAN}.service"
        )
        if self.path(f"/sys/class/net/{WLAN}").exists():
            # The device came up before the dependency existed: start it ourselves.
            self.command("systemctl", "--no-block", "start", f"wpa_supplicant@{WLAN}.service")
        log(f"Wi-Fi: {settings['wifi_ssid']!r} on {WLAN} when it appears")

    def apply_ssh(self, settings: dict[str, Any]) -> None:
        keys: list[str] = settings.get("ssh_authorized_keys") or []
        if not keys or settings.get("ssh") is False:
            log("SSH: off (no ssh_authorized_key given)" if not keys else "SSH: off (ssh=off)")
            return
        ssh_dir = self.path("/root/.ssh")
        ssh_dir.mkdir(mode=0o700, parents=True, exist_ok=True)
        os.chmod(ssh_dir, 0o700)
        write_atomic(ssh_dir / "authorized_keys", ("\n".join(keys) + "\n").encode(), 0o600)
        self.install_host_keys()
        self.command("systemctl", "--no-block", "start", "ssh.service")
        log(f"SSH: on for {len(keys)} key(s), root only, no passwords")

    def install_host_keys(self) -> None:
        """Host keys live on the data partition: the fingerprint survives reboots."""
        self.make_system_dir()
        kept = self.system / "ssh"
        kept.mkdir(mode=0o700, exist_ok=True)
        os.chmod(kept, 0o700)
        etc_ssh = self.path("/etc/ssh")
        for kind in HOST_KEY_TYPES:
            key = kept / f"ssh_host_{kind}_key"
            if not key.exists():
                self.command("ssh-keygen", "-q", "-t", kind, "-N", "", "-C", "", "-f", str(key))
            for suffix, mode in (("", 0o600), (".pub", 0o644)):
                source = key.with_name(key.name + suffix)
                if source.exists():
                    write_atomic(etc_ssh / source.name, source.read_bytes(), mode)

    # 3. First boot: the data partition fills the card.
    def grow_data_partition(self) -> None:
        marker = self.system / "grown"
        if marker.exists():
            return
        device = self.command("findmnt", "-no", "SOURCE", "/var/lib/linegram").stdout.strip()
        if not device.startswith("/dev/"):
            raise RuntimeError(f"the data partition is {device!r}, not a block device")
        disk = self.command("lsblk", "-no", "PKNAME", device).stdout.split()
        number_file = self.path(f"/sys/class/block/{Path(device).name}/partition")
        number = number_file.read_text().strip() if number_file.exists() else ""
        if not disk or not number.isdigit():
            raise RuntimeError(f"cannot tell the disk and partition number of {device}")
        # growpart: 0 grown, 1 NOCHANGE (already fills the card).
        grown = self.command("growpart", f"/dev/{disk[0]}", number, ok=(0, 1))
        self.command("resize2fs", device)  # online: ext4 grows while mounted
        self.make_system_dir()
        write_atomic(marker, b"", 0o600)
        log(f"data partition {device}: {'grown' if grown.returncode == 0 else 'already full size'}")

    # 4. The gateway's settings file and its directory.
    def install_default_settings(self) -> None:
        target = self.data / "linegram.toml"
        if target.exists():
            return
        default = self.path("/usr/share/linegram/linegram.toml")
        write_atomic(target, default.read_bytes(), 0o600)
        uid, gid = self.service_ids()
        self.chown(target, uid, gid)
        log(f"installed the default settings as {target}")

    def own_data_dir(self) -> None:
        uid, gid = self.service_ids()
        info = self.data.stat()
        if (info.st_uid, info.st_gid) != (uid, gid):
            self.chown(self.data, uid, gid)
        if info.st_mode & 0o777 != 0o700:
            os.chmod(self.data, 0o700)

    def service_ids(self) -> tuple[int, int]:
        """The service user's uid and gid from the tree's own /etc/passwd."""
        for line in self.path("/etc/passwd").read_text().splitlines():
            fields = line.split(":")
            if len(fields) >= 4 and fields[0] == SERVICE_USER:
                return int(fields[2]), int(fields[3])
        raise RuntimeError(f"no user {SERVICE_USER!r} in /etc/passwd")


def main(argv: Sequence[str] | None = None, run: Runner = run_command) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--root", type=Path, default=Path("/"), help="apply to this tree")
    args = parser.parse_args(argv)
    failures = Box(args.root, run).boot_sequence()
    if failures:
        log(f"{failures} step(s) failed; the gateway starts anyway")
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""System page: gateway state, recent log, restart, backup (with and without secrets) and
restore (round trips; bad archives refused with nothing changed)."""

from __future__ import annotations

import gzip
import io
import json
import sqlite3
import tarfile
import time
import tomllib
from pathlib import Path
from typing import Any

import pytest

from gateway.config import load_config
from gateway.control import ControlError
from gateway.store import Store
from tests.unit.webui import site_support
from tests.unit.webui.gateway_support import FakeGateway
from tests.unit.webui.site_support import Site, make_site

API_HASH = "0123456789abcdef0123456789abcdef"
BOT_TOKEN = "123456789:AAbbCCddEEffGGhhIIjjKKllMMnnOOppQQ"
SESSION_MARK = "SESSION-AUTH-KEY-0xDEADBEEF"
# The page tests' settings, plus a Telegram app and bot whose secrets a backup must drop.
SETTINGS = site_support.SETTINGS.replace(
    "\n[[lines]]",
    f'\n[telegram]\napi_id = 12345\napi_hash = "{API_HASH}"\nbot_token = "{BOT_TOKEN}"\n'
    "\n[[lines]]",
    1,
)
SECRETS = (API_HASH, BOT_TOKEN, "provider-secret-1", "ata-secret-2", SESSION_MARK, "argon2")


@pytest.fixture
def site(tmp_path: Path) -> Site:
    site = make_site(tmp_path, SETTINGS)
    config = load_config(site.settings_file)
    for path in (config.telegram_session, config.telegram_bot_session):
        path.parent.mkdir(parents=True, exist_ok=True)
        with sqlite3.connect(path) as conn:  # Telethon's session files are SQLite
            conn.execute("CREATE TABLE sessions (auth_key TEXT)")
            conn.execute("INSERT INTO sessions VALUES (?)", (f"{SESSION_MARK} {path.name}",))
        conn.close()
    return site


def data_dir(site: Site) -> Path:
    return site.settings_file.parent / "data"


def backup(site: Site, secrets: bool) -> bytes:
    form = {"include_secrets": "y"} if secrets else {}
    response = site.post("/system/backup", form)
    assert response.status_code == 200
    assert response.mimetype == "application/gzip"
    disposition = response.headers["Content-Disposition"]
    assert "attachment" in disposition and ".tar.gz" in disposition
    data: bytes = response.data
    return data


def members_of(blob: bytes) -> dict[str, bytes]:
    with tarfile.open(fileobj=io.BytesIO(blob), mode="r:gz") as tar:
        out = {}
        for member in tar.getmembers():
            extracted = tar.extractfile(member)
            assert extracted is not None
            out[member.name] = extracted.read()
        return out


def make_archive(files: list[tuple[str, bytes]], links: tuple[str, ...] = ()) -> bytes:
    out = io.BytesIO()
    with tarfile.open(fileobj=out, mode="w:gz") as tar:
        for name, data in files:
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
        for name in links:
            info = tarfile.TarInfo(name)
            info.type = tarfile.SYMTYPE
            info.linkname = "/etc/passwd"
            tar.addfile(info)
    return out.getvalue()


def restore(site: Site, blob: bytes, name: str = "backup.tar.gz") -> Any:
    return site.post("/system/restore", {"archive": (io.BytesIO(blob), name)})


def sessions(site: Site) -> list[str]:
    config = load_config(site.settings_file)
    found = []
    for path in (config.telegram_session, config.telegram_bot_session):
        if path.exists():
            with sqlite3.connect(path) as conn:
                found.append(conn.execute("SELECT auth_key FROM sessions").fetchone()[0])
            conn.close()
    return found


# --------------------------------------------------------------------------------------------
# State, log, restart


def test_gateway_down(site: Site) -> None:
    html = site.html("/system")
    assert "not running" in html
    assert "Linegram 0." in html or "Linegram unknown" in html
    assert 'class="log"' not in html
    assert 'enctype="multipart/form-data"' in html
    response = site.post("/system/restart", {}, follow=True)
    assert "not running, so it cannot be restarted" in response.get_data(as_text=True)


def test_recent_log_escaped_with_a_level_filter(site: Site, gateway: FakeGateway) -> None:
    gateway.logs = [
        {"time": time.time(), "level": "info", "logger": "gateway.sip", "message": "line up"},
        {
            "time": time.time(),
            "level": "warning",
            "logger": "gateway.calls",
            "message": "caller sent <script>alert(1)</script> as name",
        },
    ]
    html = site.html("/system")
    assert "running" in html
    assert '<pre class="log"' in html
    assert "gateway.sip: line up" in html
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in html
    assert "<script>alert" not in html
    assert gateway.called("logs.recent")[-1] == {"limit": 200, "level": "info"}

    site.html("/system?level=warning")
    assert gateway.called("logs.recent")[-1] == {"limit": 200, "level": "warning"}
    html = site.html("/system?level=loud")
    assert "is not a log level" in html
    assert gateway.called("logs.recent")[-1] == {"limit": 200, "level": "info"}


def test_skipped_lines_of_linegram_txt_are_shown(site: Site) -> None:
    assert 'id="boot-file"' not in site.html("/system")
    problems = site.settings_file.parent / "data" / "system" / "linegram.txt.errors"
    problems.parent.mkdir(parents=True)
    problems.write_text("line 4: wifi_country: <b>XX</b> is not a country code\n", "utf-8")
    html = site.html("/system")
    assert 'id="boot-file"' in html
    assert "line 4: wifi_country: &lt;b&gt;XX&lt;/b&gt; is not a country code" in html


def test_restart(site: Site, gateway: FakeGateway) -> None:
    html = site.html("/system")
    assert "calls in progress will be cut off" in html.lower()
    response = site.post("/system/restart", {})
    assert response.status_code == 302 and response.location.endswith("/")
    assert gateway.called("gateway.restart") == [{}]
    assert "restarting" in site.html("/")

    gateway.restart_error = ControlError("unsupported", "only python -m gateway can restart")
    response = site.post("/system/restart", {}, follow=True)
    assert "cannot restart itself: only python -m gateway" in response.get_data(as_text=True)


# --------------------------------------------------------------------------------------------
# Backup


def test_backup_without_secrets_holds_none(site: Site, db: Store) -> None:
    db.call_started("in", "home", "sip:+4930111@x", "+4930111", "Alice", "", 1_764_000_000.0)
    blob = backup(site, secrets=False)
    raw = gzip.decompress(blob)
    for secret in SECRETS:
        assert secret.encode() not in raw, secret
    files = members_of(blob)
    assert set(files) == {"manifest.json", "linegram.toml", "linegram.db"}
    manifest = json.loads(files["manifest.json"])
    assert manifest["contains_secrets"] is False
    assert manifest["format"] == 1 and manifest["version"]
    assert abs(manifest["created_at"] - time.time()) < 60
    settings = tomllib.loads(files["linegram.toml"].decode())
    assert settings["telegram"]["api_hash"] == "" and settings["telegram"]["bot_token"] == ""
    assert settings["telegram"]["api_id"] == 12345
    assert [line["password"] for line in settings["lines"]] == ["", ""]
    assert [line["name"] for line in settings["lines"]] == ["home", "landline"]
    copy = data_dir(site) / "copy.db"
    copy.write_bytes(files["linegram.db"])
    with Store.open(copy) as restored:
        assert [c.remote_number for c in restored.recent_calls()] == ["+4930111"]


def test_backup_with_secrets_holds_the_files(site: Site, db: Store) -> None:
    blob = backup(site, secrets=True)
    files = members_of(blob)
    assert set(files) == {
        "manifest.json",
        "linegram.toml",
        "linegram.db",
        "secrets/telegram.session",
        "secrets/telegram-bot.session",
        "secrets/webui-admin.json",
    }
    assert json.loads(files["manifest.json"])["contains_secrets"] is True
    assert files["linegram.toml"] == site.settings_file.read_bytes()
    assert SESSION_MARK.encode() in files["secrets/telegram.session"]
    assert b"argon2" in files["secrets/webui-admin.json"]


def test_backup_page_warns_about_secrets(site: Site) -> None:
    html = site.html("/system")
    assert 'name="include_secrets"' in html
    assert "SIP passwords" in html and "bot" in html and "Telegram sign-in" in html
    for secret in SECRETS:
        assert secret not in html


# --------------------------------------------------------------------------------------------
# Restore


def test_round_trip_without_secrets_keeps_the_current_passwords(
    site: Site, db: Store, gateway: FakeGateway
) -> None:
    alice = db.add_member(111, 5, "Alice", "alice", ["home"], time.time())
    db.call_started("in", "home", "sip:+4930111@x", "+4930111", "", "", 1_764_000_000.0)
    blob = backup(site, secrets=False)

    # Afterwards: another member and call, another registrar and provider password.
    db.add_member(222, 6, "Bob", "", ["home"], time.time())
    db.call_started("out", "home", "sip:+4930222@x", "+4930222", "", "", 1_764_000_100.0)
    changed = (
        site.text()
        .replace("sip.example.net", "sip.other.example")
        .replace("provider-secret-1", "provider-secret-NEW")
    )
    site.settings_file.write_text(changed)

    response = restore(site, blob)
    assert response.status_code == 302, response.get_data(as_text=True)
    assert gateway.called("gateway.restart") == [{}]
    assert "Restored" in site.html("/")

    config = load_config(site.settings_file)
    home, landline = config.lines
    assert str(getattr(home, "registrar", "")) == "sip.example.net"  # the backup's settings
    assert home.password.reveal() == "provider-secret-NEW"  # this box's passwords stay
    assert landline.password.reveal() == "ata-secret-2"
    assert config.telegram.api_hash.reveal() == API_HASH
    assert config.telegram.bot_token.reveal() == BOT_TOKEN
    # The database is the backup's, also as the running gateway's connection sees it.
    assert [m.name for m in db.members()] == ["Alice"] and db.members()[0].id == alice.id
    assert [c.remote_number for c in db.recent_calls()] == ["+4930111"]
    assert [m["name"] for m in site_members(site)] == ["Alice"]
    assert not list(data_dir(site).glob(".restore-*"))  # the staging copy is gone
    assert len(sessions(site)) == 2  # untouched


def site_members(site: Site) -> list[dict[str, Any]]:
    from gateway.control import call_sync

    settings = site.app.extensions["linegram"].settings
    members: list[dict[str, Any]] = call_sync(settings.control_socket, "members.list")
    return members


def test_round_trip_with_secrets_restores_them(site: Site, db: Store) -> None:
    blob = backup(site, secrets=True)
    config = load_config(site.settings_file)
    config.telegram_session.unlink()
    config.telegram_bot_session.unlink()
    site.settings_file.write_text(site.text().replace("ata-secret-2", "ata-secret-NEW"))

    response = restore(site, blob)  # the gateway is down: no restart
    assert response.status_code == 302
    html = site.html("/system")
    assert "Restored" in html and "uses the restored files when it starts" in html
    assert site.settings_file.read_bytes() == members_of(blob)["linegram.toml"]
    assert load_config(site.settings_file).lines[1].password.reveal() == "ata-secret-2"
    assert sessions(site) == [
        f"{SESSION_MARK} gateway.session",
        f"{SESSION_MARK} gateway-bot.session",
    ]
    assert (site.settings_file.stat().st_mode & 0o777) == 0o600
    assert (config.telegram_session.stat().st_mode & 0o777) == 0o600


def test_restore_without_secrets_on_a_fresh_box_asks_to_sign_in_again(
    site: Site, db: Store
) -> None:
    blob = backup(site, secrets=False)
    # A new box: the same lines with their passwords, Telegram not signed in yet.
    text = site.text()
    text = text.replace(f'api_hash = "{API_HASH}"', "").replace(f'bot_token = "{BOT_TOKEN}"', "")
    text = text.replace("api_id = 12345", "")
    site.settings_file.write_text(text)
    response = restore(site, blob)
    assert response.status_code == 302, response.get_data(as_text=True)
    assert "sign the gateway" in site.html("/system")
    config = load_config(site.settings_file)
    assert config.telegram.api_id == 0 and not config.telegram.api_hash


def good_files(site: Site) -> list[tuple[str, bytes]]:
    return list(members_of(backup(site, secrets=False)).items())


def bad_settings(site: Site) -> list[tuple[str, bytes]]:
    files = dict(good_files(site))
    text = files["linegram.toml"].decode()
    assert "port = 5060" in text
    files["linegram.toml"] = text.replace("port = 5060", 'port = "abc"').encode()
    return list(files.items())


BAD_ARCHIVES = {
    "traversal": lambda site: [*good_files(site), ("../../evil.toml", b"x = 1")],
    "absolute": lambda site: [("/tmp/linegram-evil", b"x"), *good_files(site)],
    "traversal-lookalike": lambda site: [*good_files(site), ("secrets/../../../evil", b"x")],
    "invalid-settings": bad_settings,
    "no-manifest": lambda site: [f for f in good_files(site) if f[0] != "manifest.json"],
    "not-a-database": lambda site: [
        *[f for f in good_files(site) if f[0] != "linegram.db"],
        ("linegram.db", b"SQLite format 3\x00 but not really"),
    ],
    "twice": lambda site: [*good_files(site), ("linegram.toml", b"")],
}


@pytest.mark.parametrize("case", sorted(BAD_ARCHIVES))
def test_bad_archives_are_refused_and_nothing_changes(
    site: Site, db: Store, gateway: FakeGateway, case: str
) -> None:
    files = BAD_ARCHIVES[case](site)
    db.add_member(333, 7, "Carol", "", ["home"], time.time())  # after the backup
    before = site.settings_file.read_bytes()
    before_sessions = sessions(site)
    response = restore(site, make_archive(files))
    html = response.get_data(as_text=True)
    assert response.status_code == 400, html
    assert "restore-problem" in html
    assert site.settings_file.read_bytes() == before
    assert [m.name for m in db.members()] == ["Carol"]
    assert sessions(site) == before_sessions
    assert gateway.called("gateway.restart") == []
    assert not list(data_dir(site).glob(".restore-*"))
    assert not Path("/tmp/linegram-evil").exists()
    assert not (site.settings_file.parent.parent / "evil.toml").exists()
    assert EXPECTED[case] in html


EXPECTED = {
    "traversal": "a file a Linegram backup does not have (&#39;../../evil.toml&#39;)",
    "absolute": "a file a Linegram backup does not have (&#39;/tmp/linegram-evil&#39;)",
    "traversal-lookalike": "does not have (&#39;secrets/../../../evil&#39;)",
    "invalid-settings": "sip.port: must be an integer between 1 and 65535",
    "no-manifest": "has no manifest.json",
    "not-a-database": "The database in the backup cannot be read",
    "twice": "holds linegram.toml twice",
}


def test_symlinks_and_non_archives_are_refused(site: Site, db: Store) -> None:
    before = site.settings_file.read_bytes()
    link = make_archive(
        [f for f in good_files(site) if f[0] != "linegram.db"], links=("linegram.db",)
    )
    html = restore(site, link).get_data(as_text=True)
    assert "not a plain file" in html
    html = restore(site, b"this is not a backup").get_data(as_text=True)
    assert "not a Linegram backup" in html
    html = restore(site, gzip.compress(b"\x00" * 1024)).get_data(as_text=True)
    assert "restore-problem" in html
    response = site.post("/system/restore", {})
    assert response.status_code == 400
    assert "Choose the backup file" in response.get_data(as_text=True)
    assert site.settings_file.read_bytes() == before


def test_an_upload_too_large_is_explained(site: Site) -> None:
    site.app.config["MAX_CONTENT_LENGTH"] = 4096
    before = site.settings_file.read_bytes()
    response = restore(site, b"\x1f\x8b" + b"\x00" * 10_000)
    assert response.status_code == 413
    assert "larger than any backup" in response.get_data(as_text=True)
    assert site.settings_file.read_bytes() == before


def test_restore_without_secrets_refused_when_a_needed_password_is_nowhere(
    site: Site, db: Store
) -> None:
    blob = backup(site, secrets=False)
    # This box has no "landline" line: the backup's ATA line would have no password.
    text = site.text().split('name = "landline"')[0].rsplit("[[lines]]", 1)[0]
    site.settings_file.write_text(text)
    before = site.settings_file.read_bytes()
    response = restore(site, blob)
    html = response.get_data(as_text=True)
    assert response.status_code == 400
    assert "lines[1].password: required when username is set" in html
    assert "Use a backup made with “include secrets”" in html
    assert site.settings_file.read_bytes() == before


def test_an_archive_inflating_beyond_the_cap_is_refused(
    site: Site, db: Store, monkeypatch: pytest.MonkeyPatch
) -> None:
    from webui import backup as backup_module

    blob = backup(site, secrets=False)
    monkeypatch.setattr(backup_module, "INFLATED_MAX", 8192)  # the real cap is ~600 MiB
    before = site.settings_file.read_bytes()
    response = restore(site, blob)
    assert response.status_code == 400
    assert "unpacks to more than a backup can hold" in response.get_data(as_text=True)
    assert site.settings_file.read_bytes() == before
    assert not list(data_dir(site).glob(".restore-*"))

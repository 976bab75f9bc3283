"""Backup and restore of the household's installation: settings file, database, optional secrets.

A backup is a ``.tar.gz`` made in memory, with fixed member names:

- ``manifest.json``: format, Linegram version, creation time, ``contains_secrets``;
- ``linegram.toml``: the settings file.  Without secrets every password is blank
  (line passwords, ``telegram.api_hash``, ``telegram.bot_token``);
- ``linegram.db``: a consistent copy of the live database (SQLite's backup
  API, never a raw copy of a WAL database the gateway is writing);
- with secrets only: ``secrets/telegram.session``, ``secrets/telegram-bot.session``
  (whoever holds them *is* the gateway's Telegram account and bot) and
  ``secrets/webui-admin.json`` (the admin password's hash).

A restore reads the archive without extracting it anywhere: only the known
names are accepted (no path from the archive is ever used), sizes are capped
(also what the gzip stream may inflate to), and everything is validated, the
settings file by the gateway's own parser, the database by SQLite's integrity
check and the store's migrations, before anything is written.

The database is restored *into* the live file with SQLite's backup API rather
than by renaming a file over it: the gateway holds it open in WAL mode, and a
file renamed under an open WAL database gets the old database's ``-wal``
pages applied to it (https://www.sqlite.org/howtocorrupt.html, §2.4).  The
backup API writes through SQLite's own locking, as one transaction.
"""

from __future__ import annotations

import gzip
import io
import json
import os
import sqlite3
import tarfile
import tempfile
import time
import tomllib
import zlib
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from importlib import metadata
from pathlib import Path
from typing import IO, Any

import tomli_w

from gateway.config import (
    Config,
    ConfigError,
    ConfigInvalid,
    Secret,
    config_to_dict,
    load_config,
    parse_config,
    write_atomic,
)
from gateway.store import MIGRATIONS, Store, StoreError
from webui.settings import WebSettings

FORMAT = 1
MANIFEST = "manifest.json"
SETTINGS = "linegram.toml"
DATABASE = "linegram.db"
SESSION = "secrets/telegram.session"
BOT_SESSION = "secrets/telegram-bot.session"
WEBUI_STATE = "secrets/webui-admin.json"
SECRET_FILES = (SESSION, BOT_SESSION, WEBUI_STATE)

MiB = 1024 * 1024
# The only names a restore accepts, and how big each may be once inflated.
LIMITS = {
    MANIFEST: 64 * 1024,
    SETTINGS: 1 * MiB,
    DATABASE: 512 * MiB,
    SESSION: 32 * MiB,
    BOT_SESSION: 32 * MiB,
    WEBUI_STATE: 64 * 1024,
}
# What the gzip stream may inflate to in all (members, headers, padding): a
# small upload must not unpack into gigabytes.
INFLATED_MAX = sum(LIMITS.values()) + 1 * MiB


class BackupError(Exception):
    """The backup cannot be made, or the archive cannot be restored; nothing was changed."""

    def __init__(self, message: str, details: list[str] | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.details = details or []


def linegram_version() -> str:
    try:
        return metadata.version("linegram")
    except metadata.PackageNotFoundError:
        return "unknown"


# --------------------------------------------------------------------------------------------
# Making a backup


def blank_secrets(config: Config) -> Config:
    """*config* with every secret empty: line passwords, api_hash and bot_token."""
    lines = tuple(replace(line, password=Secret()) for line in config.lines)
    telegram = replace(config.telegram, api_hash=Secret(), bot_token=Secret())
    return replace(config, lines=lines, telegram=telegram)


def sqlite_snapshot(path: Path) -> bytes:
    """A consistent copy of the SQLite database at *path* (which may be in use)."""
    with tempfile.TemporaryDirectory(prefix="linegram-backup-") as tmp:
        copy = Path(tmp) / "copy.db"
        src = sqlite3.connect(path)
        try:
            src.execute("PRAGMA busy_timeout = 10000")
            dst = sqlite3.connect(copy)
            try:
                src.backup(dst)
            finally:
                dst.close()
        finally:
            src.close()
        return copy.read_bytes()


def _session_file(path: Path) -> bytes | None:
    """A Telegram session file (SQLite, maybe open in the gateway) as it is now."""
    if not path.is_file():
        return None
    try:
        return sqlite_snapshot(path)
    except sqlite3.DatabaseError:
        return path.read_bytes()  # not SQLite: the file as it is


def create_backup(
    settings: WebSettings,
    webui_state: Path,
    *,
    include_secrets: bool,
    now: Callable[[], float] = time.time,
) -> bytes:
    """The backup archive (bytes of a .tar.gz).  **Raises** BackupError."""
    try:
        config = load_config(settings.config_path)
    except ConfigError as exc:
        raise BackupError(f"The settings file has a problem; fix it first: {exc}") from None
    files: list[tuple[str, bytes]] = []
    if include_secrets:
        files.append((SETTINGS, settings.config_path.read_bytes()))
    else:
        text = tomli_w.dumps(config_to_dict(blank_secrets(config)))
        files.append((SETTINGS, text.encode("utf-8")))
    if settings.database.is_file():
        try:
            files.append((DATABASE, sqlite_snapshot(settings.database)))
        except sqlite3.Error as exc:
            raise BackupError(f"The database cannot be copied: {exc}") from None
    if include_secrets:
        for name, path in (
            (SESSION, config.telegram_session),
            (BOT_SESSION, config.telegram_bot_session),
        ):
            data = _session_file(path)
            if data is not None:
                files.append((name, data))
        if webui_state.is_file():
            files.append((WEBUI_STATE, webui_state.read_bytes()))
    created = now()
    manifest = {
        "format": FORMAT,
        "version": linegram_version(),
        "created_at": created,
        "contains_secrets": include_secrets,
        "files": [name for name, _ in files],
    }
    files.insert(0, (MANIFEST, json.dumps(manifest, indent=1).encode("utf-8")))
    out = io.BytesIO()
    with tarfile.open(fileobj=out, mode="w:gz") as tar:
        for name, data in files:
            info = tarfile.TarInfo(name)
            info.size = len(data)
            info.mtime = int(created)
            info.mode = 0o600
            tar.addfile(info, io.BytesIO(data))
    return out.getvalue()


# --------------------------------------------------------------------------------------------
# Reading an archive to restore


class _Capped(io.RawIOBase):
    """A gzip stream that refuses to inflate beyond *limit* bytes."""

    def __init__(self, source: IO[bytes], limit: int) -> None:
        self._gz = gzip.GzipFile(fileobj=source, mode="rb")
        self._left = limit

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: Any) -> int:
        view = memoryview(buffer).cast("B")
        data = self._gz.read(min(len(view), self._left + 1))
        if len(data) > self._left:
            raise BackupError("The archive unpacks to more than a backup can hold.")
        self._left -= len(data)
        view[: len(data)] = data
        return len(data)


@dataclass
class RestorePlan:
    """A validated archive, ready to be written by :func:`apply_restore`."""

    manifest: dict[str, Any]
    config: Config
    settings_text: bytes
    database: Path | None = None  # a validated copy, staged in the data directory
    secrets: dict[str, bytes] = field(default_factory=dict)  # SECRET_FILES present
    notes: list[str] = field(default_factory=list)  # what the household should know

    @property
    def contains_secrets(self) -> bool:
        return bool(self.manifest.get("contains_secrets"))

    def discard(self) -> None:
        """Remove the staged database copy."""
        if self.database is not None:
            _discard(self.database)
            self.database = None


def _discard(staged: Path) -> None:
    for suffix in ("", "-wal", "-shm", "-journal"):  # and SQLite's files beside it
        Path(f"{staged}{suffix}").unlink(missing_ok=True)


def read_backup(source: IO[bytes], settings: WebSettings) -> RestorePlan:
    """Check the uploaded archive *source* completely.  **Raises** BackupError.

    Nothing outside a staging file in the data directory is written; on
    failure that is removed too.
    """
    files: dict[str, bytes] = {}
    staged: Path | None = None
    try:
        try:
            with tarfile.open(fileobj=_Capped(source, INFLATED_MAX), mode="r|") as tar:
                for member in tar:
                    name = member.name
                    if name not in LIMITS:
                        shown = name if len(name) <= 80 else name[:80] + "…"
                        raise BackupError(
                            f"The archive holds a file a Linegram backup does not have ({shown!r}):"
                            " it was not made by this page or was changed. Nothing was restored."
                        )
                    if name in files or (name == DATABASE and staged is not None):
                        raise BackupError(f"The archive holds {name} twice. Nothing was restored.")
                    if not member.isreg():
                        raise BackupError(f"{name} in the archive is not a plain file.")
                    if member.size > LIMITS[name]:
                        raise BackupError(f"{name} in the archive is too large.")
                    extracted = tar.extractfile(member)
                    assert extracted is not None  # a regular file
                    if name == DATABASE:
                        staged = _stage(extracted, settings.data_dir)
                    else:
                        files[name] = extracted.read()
        except BackupError:
            raise
        except (tarfile.TarError, EOFError, OSError, zlib.error) as exc:
            raise BackupError(
                "This file is not a Linegram backup (not a readable .tar.gz archive)."
                " Nothing was restored.",
                [str(exc)] if str(exc) else [],
            ) from None
        plan = _plan(files, staged, settings)
    except BaseException:
        if staged is not None:
            _discard(staged)
        raise
    return plan


def _stage(extracted: IO[bytes], data_dir: Path) -> Path:
    data_dir.mkdir(parents=True, exist_ok=True)
    fd, name = tempfile.mkstemp(dir=data_dir, prefix=".restore-", suffix=".db")
    with os.fdopen(fd, "wb") as out:
        while chunk := extracted.read(1024 * 1024):
            out.write(chunk)
    return Path(name)


def _plan(files: dict[str, bytes], staged: Path | None, settings: WebSettings) -> RestorePlan:
    manifest = _manifest(files.get(MANIFEST))
    if SETTINGS not in files:
        raise BackupError("The archive has no settings file (linegram.toml). Nothing was restored.")
    notes: list[str] = []
    data = _settings_document(files[SETTINGS])
    current: Config | None
    try:
        current = load_config(settings.config_path)
    except ConfigError:
        current = None  # a broken file is what a restore may be for
    changed = False
    if not manifest["contains_secrets"]:
        changed |= _keep_current_secrets(data, current, notes)
    changed |= _keep_data_dir(data, current, settings, notes)
    try:
        config = parse_config(data, base_dir=settings.config_path.parent)
    except ConfigInvalid as exc:
        details = list(exc.problems)
        secret_keys = ("password", "api_hash", "api_id", "bot_token")
        if not manifest["contains_secrets"] and any(k in p for p in details for k in secret_keys):
            details.append(
                "This backup has no passwords: a line whose password is needed and not in"
                " the current settings cannot be restored from it. Use a backup made with"
                " “include secrets”."
            )
        raise BackupError(
            "The settings file in the backup is not valid. Nothing was restored.", details
        ) from None
    text = tomli_w.dumps(data).encode("utf-8") if changed else files[SETTINGS]
    secrets = {name: files[name] for name in SECRET_FILES if name in files}
    if WEBUI_STATE in secrets:
        _check_webui_state(secrets[WEBUI_STATE])
        notes.append("The admin password is now the one in use when the backup was made.")
    for name, path in (
        (SESSION, config.telegram_session),
        (BOT_SESSION, config.telegram_bot_session),
    ):
        if name in secrets and not path.is_relative_to(config.data_dir):
            raise BackupError(
                f"The backup's telegram.session puts the session outside the data directory"
                f" ({path}); not restored."
            )
    plan = RestorePlan(manifest, config, text, None, secrets, notes)
    if staged is not None:
        plan.database = staged
        _check_database(staged)
    else:
        notes.append("The backup has no database: the current call history and members stay.")
    return plan


def _manifest(raw: bytes | None) -> dict[str, Any]:
    if raw is None:
        raise BackupError("The archive has no manifest.json: it is not a Linegram backup.")
    try:
        manifest = json.loads(raw.decode("utf-8"))
    except (UnicodeDecodeError, ValueError):
        raise BackupError("The archive's manifest.json cannot be read.") from None
    if not isinstance(manifest, dict) or not isinstance(manifest.get("format"), int):
        raise BackupError("The archive's manifest.json is not a Linegram backup's.")
    if manifest["format"] > FORMAT:
        raise BackupError(
            f"This backup was made by a newer Linegram ({manifest.get('version', '?')});"
            " update this one first."
        )
    if not isinstance(manifest.get("contains_secrets"), bool):
        raise BackupError("The archive's manifest.json does not say whether it holds secrets.")
    return manifest


def _settings_document(raw: bytes) -> dict[str, Any]:
    try:
        return tomllib.loads(raw.decode("utf-8"))
    except UnicodeDecodeError:
        raise BackupError("The settings file in the backup is not UTF-8 text.") from None
    except tomllib.TOMLDecodeError as exc:
        raise BackupError(
            "The settings file in the backup is not valid TOML. Nothing was restored.", [str(exc)]
        ) from None


def _keep_current_secrets(data: dict[str, Any], current: Config | None, notes: list[str]) -> bool:
    """Fill the backup's blank secrets from the current settings; True if *data* changed."""
    changed = False
    telegram = data.get("telegram")
    if isinstance(telegram, dict) and not telegram.get("api_hash"):
        api_id = telegram.get("api_id", 0)
        have = current.telegram if current is not None else None
        if have is not None and have.api_hash and api_id in (0, have.api_id):
            # api_id and api_hash are one pair from my.telegram.org: keep the current pair.
            telegram["api_id"] = have.api_id
            telegram["api_hash"] = have.api_hash.reveal()
            changed = True
        elif api_id:
            telegram["api_id"] = 0
            changed = True
            notes.append(
                "The backup has no Telegram api_hash: sign the gateway's Telegram account in"
                " again (setup wizard)."
            )
    if isinstance(telegram, dict) and not telegram.get("bot_token"):
        if current is not None and current.telegram.bot_token:
            telegram["bot_token"] = current.telegram.bot_token.reveal()
            changed = True
    lines = data.get("lines")
    for raw in lines if isinstance(lines, list) else []:
        if not isinstance(raw, dict) or raw.get("password"):
            continue
        name = raw.get("name")
        line = current.line(name) if current is not None and isinstance(name, str) else None
        if line is not None and line.kind == raw.get("kind") and line.password:
            raw["password"] = line.password.reveal()
            changed = True
    return changed


def _keep_data_dir(
    data: dict[str, Any], current: Config | None, settings: WebSettings, notes: list[str]
) -> bool:
    """The data directory belongs to this installation, not to the backup: keep it."""
    gateway = data.setdefault("gateway", {})
    if not isinstance(gateway, dict):
        return False  # the validator names the problem
    base = settings.config_path.parent
    here = current.gateway.data_dir if current is not None else str(settings.data_dir)
    theirs = gateway.get("data_dir", ".")
    if not isinstance(theirs, str) or os.path.abspath(base / theirs) == str(settings.data_dir):
        return False  # (not a string: the validator names the problem)
    gateway["data_dir"] = here
    notes.append(f"The data directory stays {here!r} (the backup had {theirs!r}).")
    return True


def _check_webui_state(raw: bytes) -> None:
    try:
        state = json.loads(raw.decode("utf-8"))
    except (UnicodeDecodeError, ValueError):
        raise BackupError("The web UI's state in the backup cannot be read.") from None
    if not isinstance(state, dict) or not isinstance(state.get("password_hash", ""), str):
        raise BackupError("The web UI's state in the backup is not valid.")


def _check_database(path: Path) -> None:
    """A database the gateway can open: intact, not newer than this code, migrated."""
    try:
        conn = sqlite3.connect(path)
        try:
            verdict = conn.execute("PRAGMA integrity_check").fetchone()[0]
            version = int(conn.execute("PRAGMA user_version").fetchone()[0])
        finally:
            conn.close()
    except sqlite3.DatabaseError as exc:
        raise BackupError(f"The database in the backup cannot be read: {exc}.") from None
    if verdict != "ok":
        raise BackupError("The database in the backup is damaged.", [str(verdict)])
    if version > len(MIGRATIONS):
        raise BackupError("The database in the backup was made by a newer Linegram.")
    try:
        Store.open(path).close()  # brings an older backup's schema up to date
    except StoreError as exc:
        raise BackupError(f"The database in the backup cannot be used: {exc}") from None


# --------------------------------------------------------------------------------------------
# Writing a restore


def restore_database(staged: Path, live: Path) -> None:
    """Copy *staged* into the live database *live* in one SQLite transaction."""
    src = sqlite3.connect(staged)
    try:
        dst = sqlite3.connect(live)
        try:
            dst.execute("PRAGMA busy_timeout = 10000")
            src.backup(dst)
        finally:
            dst.close()
    finally:
        src.close()


def apply_restore(plan: RestorePlan, settings: WebSettings, webui_state: Path) -> list[str]:
    """Write what *plan* holds; returns what was restored.  **Raises** BackupError.

    The database goes first (the step most likely to fail: the gateway may
    hold a lock), so a failure there leaves everything as it was.
    """
    restored: list[str] = []
    try:
        if plan.database is not None:
            try:
                restore_database(plan.database, settings.database)
            except sqlite3.Error as exc:
                raise BackupError(
                    f"The database could not be written: {exc}. Nothing was restored."
                ) from None
            restored.append("database (members, invitations, call history)")
        write_atomic(settings.config_path, plan.settings_text, 0o600)
        restored.append("settings")
        targets = {
            SESSION: plan.config.telegram_session,
            BOT_SESSION: plan.config.telegram_bot_session,
            WEBUI_STATE: webui_state,
        }
        for name, data in plan.secrets.items():
            path = targets[name]
            path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
            write_atomic(path, data, 0o600)
        if SESSION in plan.secrets or BOT_SESSION in plan.secrets:
            restored.append("Telegram sign-in")
        if WEBUI_STATE in plan.secrets:
            restored.append("web UI admin password")
    finally:
        plan.discard()
    return restored

"""The household's admin password and the session key: two small files, mode 0600.

The password is hashed with Argon2id (argon2-cffi's defaults: 64 MiB, 3
passes), which makes guessing it from a stolen SD card slow.  The state file
also remembers whether the first-run wizard was finished.  Every write is
atomic (a power cut leaves the old or the new file).
"""

from __future__ import annotations

import json
import os
import secrets
import threading
import time
from dataclasses import asdict, dataclass
from pathlib import Path

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError

from gateway.config import write_atomic

MIN_PASSWORD = 10
_COMMON = {
    "password",
    "passw0rd",
    "1234567890",
    "0123456789",
    "qwertyuiop",
    "linegram123",
    "letmein123",
    "iloveyou12",
    "administrator",
}


def password_problem(password: str) -> str | None:
    """Why *password* is too weak to guard the house's phone line, or None."""
    if len(password) < MIN_PASSWORD:
        return f"Use at least {MIN_PASSWORD} characters (a few unrelated words work well)."
    if password.lower() in _COMMON or len(set(password)) < 4:
        return "This password is too easy to guess; a few unrelated words work well."
    return None


@dataclass
class AdminState:
    password_hash: str = ""
    password_changed_at: float = 0.0  # sessions older than this are logged out
    wizard_done: bool = False


class AdminAccount:
    """The admin state file (`<data>/webui/admin.json`) and the session key file."""

    def __init__(self, directory: Path) -> None:
        self.directory = directory
        self.path = directory / "admin.json"
        self._hasher = PasswordHasher()
        self._lock = threading.Lock()  # waitress serves requests from several threads

    def _ensure_dir(self) -> None:
        self.directory.mkdir(parents=True, exist_ok=True)
        os.chmod(self.directory, 0o700)

    def load(self) -> AdminState:
        try:
            data = json.loads(self.path.read_text("utf-8"))
        except FileNotFoundError:
            return AdminState()
        return AdminState(
            password_hash=str(data.get("password_hash", "")),
            password_changed_at=float(data.get("password_changed_at", 0.0)),
            wizard_done=bool(data.get("wizard_done", False)),
        )

    def _save(self, state: AdminState) -> None:
        self._ensure_dir()
        write_atomic(self.path, json.dumps(asdict(state), indent=1).encode("utf-8"), 0o600)

    @property
    def has_password(self) -> bool:
        return bool(self.load().password_hash)

    def set_password(self, password: str) -> AdminState:
        problem = password_problem(password)
        if problem:
            raise ValueError(problem)
        with self._lock:
            state = self.load()
            state.password_hash = self._hasher.hash(password)
            state.password_changed_at = time.time()
            self._save(state)
            return state

    def verify(self, password: str) -> bool:
        state = self.load()
        if not state.password_hash:
            return False
        try:
            self._hasher.verify(state.password_hash, password)
        except (VerificationError, InvalidHashError):
            return False
        if self._hasher.check_needs_rehash(state.password_hash):
            with self._lock:
                state.password_hash = self._hasher.hash(password)
                self._save(state)
        return True

    def set_wizard_done(self, done: bool = True) -> None:
        with self._lock:
            state = self.load()
            state.wizard_done = done
            self._save(state)

    def secret_key(self) -> bytes:
        """The key that signs session cookies; made once, kept across restarts."""
        path = self.directory / "secret_key"
        with self._lock:
            try:
                key = path.read_bytes()
                if len(key) >= 32:
                    return key
            except FileNotFoundError:
                pass
            self._ensure_dir()
            key = secrets.token_bytes(32)
            write_atomic(path, key, 0o600)
            return key

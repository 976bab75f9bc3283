"""Setup mode: the button on the box was held, so the web UI may set a new admin password.

Not an RFC module.  The gateway (which has the button) writes
``<data_dir>/webui/setup-mode`` holding the Unix time it expires; the web UI
(another process) reads it, offers "set a new admin password" on its login
page while it is valid, and deletes it once used.  Holding the button proves
someone is at the box, which is the same trust as the SD card.
"""

from __future__ import annotations

import os
import time
from pathlib import Path

from gateway.config import write_atomic

SETUP_MODE_FILE = "webui/setup-mode"  # under the data directory
SETUP_MODE_SECONDS = 600.0


def setup_mode_path(data_dir: Path) -> Path:
    return Path(data_dir) / SETUP_MODE_FILE


def enter_setup_mode(
    data_dir: Path, now: float | None = None, seconds: float = SETUP_MODE_SECONDS
) -> float:
    """Write the setup-mode file (0600, its directory 0700); returns when it expires."""
    path = setup_mode_path(data_dir)
    if not path.parent.exists():
        path.parent.mkdir(mode=0o700, parents=True)
    until = (time.time() if now is None else now) + seconds
    write_atomic(path, f"{until:.0f}\n".encode("ascii"), 0o600)
    return until


def setup_mode_until(data_dir: Path, now: float | None = None) -> float | None:
    """When setup mode ends, or None when it is off (no file, expired, or unreadable)."""
    try:
        text = setup_mode_path(data_dir).read_text("ascii").strip()
        until = float(text)
    except (OSError, ValueError, UnicodeDecodeError):
        return None
    return until if until > (time.time() if now is None else now) else None


def leave_setup_mode(data_dir: Path) -> None:
    """Delete the file (used, or expired); no file is fine."""
    try:
        os.unlink(setup_mode_path(data_dir))
    except FileNotFoundError:
        pass

"""Template filters and globals shared by every page."""

from __future__ import annotations

import time
from typing import Any

from flask import Flask

from webui.views.auth import logged_in

NAV = [
    ("dashboard.index", "Dashboard"),
    ("lines.index", "Lines"),
    ("members.index", "Members"),
    ("history.index", "Calls"),
    ("settings.index", "Settings"),
    ("forwarding.index", "Forwarding"),
    ("system.index", "System"),
]


def when(value: float | None) -> str:
    """A Unix time as the household reads it: local, to the minute (seconds today)."""
    if not value:
        return "—"
    local = time.localtime(value)
    if time.strftime("%Y-%m-%d", local) == time.strftime("%Y-%m-%d"):
        return time.strftime("today %H:%M:%S", local)
    return time.strftime("%Y-%m-%d %H:%M", local)


def duration(seconds: float | None) -> str:
    if seconds is None:
        return "—"
    total = int(round(seconds))
    hours, rest = divmod(total, 3600)
    minutes, secs = divmod(rest, 60)
    return f"{hours}:{minutes:02d}:{secs:02d}" if hours else f"{minutes}:{secs:02d}"


def register_template_helpers(app: Flask) -> None:
    app.add_template_filter(when)
    app.add_template_filter(duration)

    @app.context_processor
    def common() -> dict[str, Any]:
        return {"nav": NAV, "logged_in": logged_in()}

"""System: gateway state and version, recent log lines, backup and restore, restart.

Backup and restore work on the files (webui/backup.py), so they also work
while the gateway is down; a restore then asks the gateway to restart so it
reads what was restored.  A restart ends calls in progress: the page asks first.
"""

from __future__ import annotations

import io
import time
from pathlib import Path
from typing import Any

from flask import Blueprint, flash, redirect, render_template, request, send_file, url_for
from werkzeug.exceptions import RequestEntityTooLarge
from werkzeug.wrappers import Response as BaseResponse

from webui import backup, config_edit
from webui.context import web
from webui.forms.system import BackupForm, RestoreForm
from webui.gateway import ControlError, GatewayDown

bp = Blueprint("system", __name__)

LOG_LIMIT = 200
LOG_LEVELS = [
    ("debug", "Everything (debug)"),
    ("info", "Information and above"),
    ("warning", "Warnings and errors"),
    ("error", "Errors only"),
]
LEVEL_TONES = {"debug": "muted", "info": "", "warning": "warn", "error": "bad", "critical": "bad"}


def _log_time(value: Any) -> str:
    try:
        stamp = float(value)
    except (TypeError, ValueError):
        return "--:--:--"
    local = time.localtime(stamp)
    if time.strftime("%Y-%m-%d", local) == time.strftime("%Y-%m-%d"):
        return time.strftime("%H:%M:%S", local)
    return time.strftime("%m-%d %H:%M:%S", local)


def _logs(level: str) -> tuple[list[dict[str, str]] | None, str | None]:
    """The gateway's recent log lines (oldest first), or None and why not."""
    try:
        entries = web().gateway.call("logs.recent", limit=LOG_LIMIT, level=level)
    except GatewayDown:
        return None, "The gateway is not running: its recent log lines are shown while it runs."
    except ControlError as exc:
        return None, f"The gateway did not give its log: {exc.message}"
    lines = []
    for entry in entries or []:
        entry_level = str(entry.get("level", ""))
        lines.append(
            {
                "time": _log_time(entry.get("time")),
                "level": entry_level.upper(),
                "tone": LEVEL_TONES.get(entry_level, ""),
                "logger": str(entry.get("logger", "")),
                "message": str(entry.get("message", "")),
            }
        )
    return lines, None


# Written by the box's first-boot script (image/rootfs/usr/lib/linegram/firstboot.py): the
# lines of linegram.txt it skipped, each naming its key and line.
BOOT_FILE_PROBLEMS = Path("system") / "linegram.txt.errors"


def _boot_file_problems() -> list[str]:
    try:
        text = (web().settings.data_dir / BOOT_FILE_PROBLEMS).read_text("utf-8", "replace")
    except OSError:
        return []
    return [line for line in text.splitlines() if line.strip()]


def _page(
    *,
    backup_form: BackupForm | None = None,
    restore_form: RestoreForm | None = None,
    restore_problem: backup.BackupError | None = None,
    status_code: int = 200,
) -> tuple[str, int]:
    status = web().gateway.status()
    level = request.args.get("level", "info")
    level_problem = None
    if level not in dict(LOG_LEVELS):
        level_problem = f"“{level}” is not a log level; showing information and above."
        level = "info"
    logs, logs_problem = _logs(level) if status is not None else (None, None)
    html = render_template(
        "system/index.html",
        up=status is not None,
        version=backup.linegram_version(),
        status=status or {},
        logs=logs,
        logs_problem=logs_problem,
        level=level,
        level_problem=level_problem,
        levels=LOG_LEVELS,
        backup_form=backup_form or BackupForm(formdata=None),
        restore_form=restore_form or RestoreForm(formdata=None),
        restore_problem=restore_problem,
        boot_file_problems=_boot_file_problems(),
    )
    return html, status_code


@bp.route("/system")
def index() -> tuple[str, int]:
    return _page()


@bp.route("/system/backup", methods=["POST"])
def make_backup() -> BaseResponse | tuple[str, int]:
    form = BackupForm()
    if not form.validate():
        return _page(backup_form=form, status_code=400)
    secrets = bool(form.include_secrets.data)
    settings = web().settings
    try:
        data = backup.create_backup(settings, web().admin.path, include_secrets=secrets)
    except backup.BackupError as exc:
        flash(exc.message, "error")
        return _page(backup_form=form, status_code=500)
    stamp = time.strftime("%Y%m%d-%H%M")
    name = f"linegram-backup-{stamp}{'-with-secrets' if secrets else ''}.tar.gz"
    return send_file(
        io.BytesIO(data),
        mimetype="application/gzip",
        as_attachment=True,
        download_name=name,
        max_age=0,
    )


@bp.route("/system/restore", methods=["POST"])
def restore() -> BaseResponse | tuple[str, int]:
    form = RestoreForm()
    if not form.validate():
        return _page(restore_form=form, status_code=400)
    settings = web().settings
    upload = form.archive.data
    try:
        # No settings page writes the file meanwhile.  Not config_edit.editing(): that loads
        # the current file first, and a broken one is what a restore may be for.
        with config_edit.WRITING:
            plan = backup.read_backup(upload.stream, settings)
            try:
                restored = backup.apply_restore(plan, settings, web().admin.path)
            finally:
                plan.discard()
    except backup.BackupError as exc:
        return _page(restore_form=form, restore_problem=exc, status_code=400)
    for note in plan.notes:
        flash(note, "warn")
    done = "Restored: " + ", ".join(restored) + "."
    try:
        web().gateway.call("gateway.restart")
    except GatewayDown:
        flash(
            f"{done} The gateway is not running; it uses the restored files when it starts.", "ok"
        )
        return redirect(url_for("system.index"))
    except ControlError as exc:
        flash(
            f"{done} The gateway could not restart by itself ({exc.message}): restart it.", "warn"
        )
        return redirect(url_for("system.index"))
    flash(f"{done} The gateway is restarting with them; it is back in a few seconds.", "ok")
    return redirect(url_for("dashboard.index"))


@bp.errorhandler(RequestEntityTooLarge)
def too_large(_error: RequestEntityTooLarge) -> tuple[str, int]:
    problem = backup.BackupError(
        "This file is larger than any backup this page makes. Nothing was restored."
    )
    return _page(restore_problem=problem, status_code=413)


@bp.route("/system/restart", methods=["POST"])
def restart() -> BaseResponse:
    try:
        web().gateway.call("gateway.restart")
    except GatewayDown:
        flash(
            "The gateway is not running, so it cannot be restarted from here. It starts when"
            " the box starts; check its log on the box if it does not.",
            "error",
        )
        return redirect(url_for("system.index"))
    except ControlError as exc:
        flash(f"The gateway cannot restart itself: {exc.message}", "error")
        return redirect(url_for("system.index"))
    flash(
        "The gateway is restarting: calls in progress were cut off. It is back in a few seconds.",
        "ok",
    )
    return redirect(url_for("dashboard.index"))

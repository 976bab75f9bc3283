"""The dashboard: lines, Telegram, bot and calls in progress, live (polls /api/status)."""

from __future__ import annotations

import time
from typing import Any

from flask import Blueprint, flash, redirect, render_template, url_for
from werkzeug.wrappers import Response as BaseResponse

from webui.context import web
from webui.gateway import ControlError

bp = Blueprint("dashboard", __name__)

LINE_STATES = {
    "registered": ("ok", "registered"),
    "ready": ("ok", "ready"),
    "registering": ("warn", "registering…"),
    "unregistered": ("muted", "not registered"),
    "failed": ("bad", "failed"),
}
TELEGRAM_STATES = {
    "connected": ("ok", "connected"),
    "connecting": ("warn", "connecting…"),
    "needs_login": ("warn", "not signed in"),
    "logged_out": ("bad", "logged out"),
    "disconnected": ("bad", "disconnected"),
}


def summary(status: dict[str, Any] | None) -> dict[str, Any]:
    """What the dashboard shows, from the gateway's `status` (None = gateway down).

    The page renders it once and the script re-renders it every 2 s from /api/status,
    so both use this one shape.
    """
    if status is None:
        return {
            "gateway": "down",
            "lines": [],
            "telegram": None,
            "bot": None,
            "calls": [],
            "missed": 0,
        }
    now = time.time()
    lines = []
    for line in status.get("lines", []):
        tone, label = LINE_STATES.get(line.get("state", ""), ("muted", line.get("state", "?")))
        lines.append(
            {
                "name": line.get("name"),
                "kind": "provider" if line.get("kind") == "provider" else "ATA",
                "state": line.get("state"),
                "tone": tone,
                "label": label,
                "error": line.get("last_error") or "",
            }
        )
    tg = status.get("telegram") or {}
    tone, label = TELEGRAM_STATES.get(tg.get("account", ""), ("muted", tg.get("account", "?")))
    telegram = {
        "tone": tone,
        "label": label,
        "name": tg.get("account_name") or "",
        "error": tg.get("account_error") or "",
        "calls_ready": bool(tg.get("calls_ready")),
    }
    bot_state = tg.get("bot")
    if bot_state is None:
        bot = {"tone": "muted", "label": "not set up", "name": "", "error": ""}
    else:
        bot_tone, bot_label = TELEGRAM_STATES.get(bot_state, ("muted", bot_state))
        bot = {
            "tone": bot_tone,
            "label": bot_label,
            "name": "@" + tg["bot_username"] if tg.get("bot_username") else "",
            "error": tg.get("bot_error") or "",
        }
    calls = []
    for call in status.get("calls", []):
        since = call.get("answered_at") or call.get("started_at") or now
        calls.append(
            {
                "line": call.get("line", ""),
                "direction": call.get("direction", ""),
                "number": call.get("number", ""),
                "name": call.get("name", ""),
                "member": call.get("member") or "",
                "state": call.get("state", ""),
                "seconds": max(0.0, now - float(since)),
            }
        )
    return {
        "gateway": "up",
        "lines": lines,
        "telegram": telegram,
        "bot": bot,
        "calls": calls,
        "missed": int(status.get("missed") or 0),  # missed calls not yet seen (the LED)
    }


@bp.route("/")
def index() -> str:
    status = web().gateway.status()
    return render_template(
        "dashboard/index.html",
        view=summary(status),
        wizard_done=web().admin.load().wizard_done,
    )


@bp.route("/api/status")
def api_status() -> dict[str, Any]:
    return summary(web().gateway.status())


@bp.route("/missed/clear", methods=["POST"])
def clear_missed() -> BaseResponse:
    """Mark the missed calls as seen: the missed-call LED on the box goes off."""
    try:
        web().gateway.call("missed.clear")
    except ControlError as exc:
        flash(f"Could not mark the missed calls as seen: {exc.message}", "error")
    else:
        flash("Missed calls marked as seen.", "ok")
    return redirect(url_for("dashboard.index"))

"""Call history: the store's call log, filtered by line, member, direction and outcome, paged.

Read from the database directly, so it works while the gateway is down.  The
filters are a GET form: a filtered page is a link that can be bookmarked.
A filter value that makes no sense (an unknown outcome, ``page=abc``) is
named in a message and ignored, never a server error.
"""

from __future__ import annotations

from typing import Any
from urllib.parse import urlencode

from flask import Blueprint, render_template, request, url_for

from gateway.config import ConfigError
from gateway.store import DIRECTIONS, OUTCOMES, CallRecord, StoreError
from webui import config_edit
from webui.context import store

bp = Blueprint("history", __name__)

PAGE_SIZE = 25
DIRECTION_LABELS = {"in": "Incoming", "out": "Outgoing"}
# Outcome → (badge tone, words).
OUTCOME_VIEW = {
    "answered": ("ok", "answered"),
    "missed": ("warn", "missed"),
    "busy": ("muted", "busy"),
    "rejected": ("muted", "declined"),
    "cancelled": ("muted", "cancelled"),
    "failed": ("bad", "failed"),
    "interrupted": ("bad", "cut off (gateway stopped)"),
}
assert set(OUTCOME_VIEW) == set(OUTCOMES)


def _filters(args: Any, problems: list[str]) -> dict[str, Any]:
    """The store's filters from the query string; bad values are named in *problems*."""
    filters: dict[str, Any] = {}
    line = (args.get("line") or "").strip()
    if line:
        filters["line"] = line
    member = (args.get("member") or "").strip()
    if member:
        if member.isdigit() and 0 < int(member) < 2**63:
            filters["member_id"] = int(member)
        else:
            problems.append(f"“{member}” is not a member; showing every member.")
    direction = (args.get("direction") or "").strip()
    if direction:
        if direction in DIRECTIONS:
            filters["direction"] = direction
        else:
            problems.append(f"“{direction}” is not a direction (in or out); showing both.")
    outcome = (args.get("outcome") or "").strip()
    if outcome:
        if outcome in OUTCOMES:
            filters["outcome"] = outcome
        else:
            problems.append(f"“{outcome}” is not an outcome; showing every outcome.")
    return filters


def _page(args: Any, problems: list[str]) -> int:
    raw = (args.get("page") or "1").strip()
    if raw.isdigit() and int(raw) >= 1:
        return int(raw)
    problems.append(f"“{raw}” is not a page number; showing the newest calls.")
    return 1


def _row(call: CallRecord) -> dict[str, Any]:
    if call.outcome is None:
        tone, label = "warn", "in progress"
    else:
        tone, label = OUTCOME_VIEW.get(call.outcome, ("muted", call.outcome))
    return {
        "id": call.id,
        "started_at": call.started_at,
        "direction": call.direction,
        "arrow": "↘" if call.direction == "in" else "↗",
        "direction_label": DIRECTION_LABELS.get(call.direction, call.direction),
        "number": call.remote_number or call.remote_uri or "unknown number",
        "name": call.remote_name,
        "line": call.line,
        "member": call.member_name,
        "tone": tone,
        "outcome": label,
        "reason": call.end_reason or "",
        # Talk time; a call nobody answered has none.
        "duration": call.duration if call.answered_at is not None else None,
    }


def _line_names() -> list[str]:
    try:
        return [line.name for line in config_edit.load().lines]
    except ConfigError:
        return []


@bp.route("/calls")
def index() -> tuple[str, int]:
    problems: list[str] = []
    filters = _filters(request.args, problems)
    page = _page(request.args, problems)
    error = None
    rows: list[dict[str, Any]] = []
    total = 0
    pages = 1
    members: list[tuple[int, str]] = []
    try:
        db = store()
        members = [(m.id, m.name or f"Telegram user {m.telegram_id}") for m in db.members()]
        total = db.count_calls(**filters)
        pages = max(1, -(-total // PAGE_SIZE))
        page = min(page, pages)  # beyond the last page: the last page
        calls = db.calls(**filters, limit=PAGE_SIZE, offset=(page - 1) * PAGE_SIZE)
        rows = [_row(call) for call in calls]
    except StoreError as exc:
        error = f"The call history cannot be read: {exc}"
    lines = _line_names()
    if filters.get("line") and filters["line"] not in lines:
        lines.append(filters["line"])  # a removed line's calls are still in the log
    selected = {
        "line": filters.get("line", ""),
        "member": str(filters.get("member_id", "")),
        "direction": filters.get("direction", ""),
        "outcome": filters.get("outcome", ""),
    }
    kept = {key: value for key, value in selected.items() if value}  # only the valid filters

    def page_url(number: int) -> str:
        query = urlencode({**kept, "page": number}) if number > 1 else urlencode(kept)
        return url_for("history.index") + ("?" + query if query else "")

    html = render_template(
        "history/index.html",
        rows=rows,
        total=total,
        page=page,
        pages=pages,
        newer=page_url(page - 1) if page > 1 else None,
        older=page_url(page + 1) if page < pages else None,
        problems=problems,
        error=error,
        lines=lines,
        members=members,
        directions=[(d, DIRECTION_LABELS[d]) for d in DIRECTIONS],
        outcomes=[(o, OUTCOME_VIEW[o][1]) for o in OUTCOMES],
        selected=selected,
        filtered=bool(filters),
    )
    return html, 200

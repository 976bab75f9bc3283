"""Members and invitations: invite (link, /start command, QR code), revoke, edit, remove, check.

An invitation's token exists only in the gateway's answer to
``invitations.create`` (the database keeps its hash), so the creation page is
the only place it is ever shown: it is rendered straight from the POST, never
stored in the session or a URL.  Lists show invitations without it.

Members are read from the gateway (``members.list``) and, when it is down,
from the store; changing them needs the gateway, which owns the database.
"""

from __future__ import annotations

import time
from typing import Any

import segno
from flask import Blueprint, abort, flash, redirect, render_template, request, url_for
from markupsafe import Markup
from werkzeug.wrappers import Response as BaseResponse

from gateway.config import Config, ConfigError
from gateway.control import to_json
from gateway.store import StoreError
from webui import config_edit
from webui.context import store, web
from webui.forms.members import OUTGOING_NOTES, InviteForm, MemberForm, choice
from webui.gateway import ControlError, GatewayDown

bp = Blueprint("members", __name__)

OUTGOING_LABELS = {
    "invite": "invite: they call the gateway",
    "callback": "callback: the gateway calls them",
}

# The reasons of gateway.telegram.privacy.PrivacyVerdict in household words: (badge tone,
# verdict, what to fix).  The gateway builds the same guidance in check_call_privacy (for a
# fresh check its own message is flashed); "{gateway}" is the gateway account's name.
PRIVACY: dict[str, tuple[str, str, str]] = {
    "ok": ("ok", "can be called", ""),
    "restricted": (
        "bad",
        "their privacy settings refuse calls",
        (
            "On their phone, in Telegram: Settings → Privacy and Security → Calls → Who can call"
            " me: add {gateway} under Always allow (or choose Everybody / My Contacts and add the"
            " gateway account to their contacts); Peer-to-peer: My Contacts or Everybody."
            " If they blocked the gateway account, they should unblock it too."
        ),
    ),
    "blocked": (
        "bad",
        "blocked by the gateway account",
        "Unblock them in the gateway account: Settings → Privacy and Security → Blocked Users.",
    ),
    "unavailable": (
        "bad",
        "cannot take calls",
        (
            "Telegram says they cannot take calls (a bot, a deleted account, or an app without"
            " calls): use an up-to-date Telegram app on the phone."
        ),
    ),
    "unknown_member": (
        "warn",
        "the gateway account does not know them yet",
        "They should send any message to {gateway} in Telegram once.",
    ),
    "": ("muted", "not checked yet", "Press “Check again” to ask Telegram."),
}


def privacy_view(reason: str, gateway_name: str) -> dict[str, str]:
    """The privacy verdict of a member as the page shows it."""
    tone, label, fix = PRIVACY.get(
        reason, ("muted", reason, "Press “Check again” to ask Telegram.")
    )
    return {"tone": tone, "label": label, "fix": fix.replace("{gateway}", gateway_name)}


def qr_svg(text: str) -> Markup:
    """An inline SVG QR code of *text* (segno escapes what it writes; the SVG scales by CSS)."""
    return Markup(segno.make(text, error="m").svg_inline(scale=5, omitsize=True))


# --------------------------------------------------------------------------------------------
# Reading


def _config() -> tuple[Config | None, str | None]:
    try:
        return config_edit.load(), None
    except ConfigError as exc:
        return None, str(exc)


def _line_names(config: Config | None, extra: tuple[str, ...] = ()) -> dict[str, str]:
    """The configured lines (and *extra* names a member still has): name → label."""
    names: dict[str, str] = {}
    for line in config.lines if config else ():
        names[line.name] = line.name if line.enabled else f"{line.name} (not in use)"
    for name in extra:
        names.setdefault(name, f"{name} (no longer configured)")
    return names


def _line_choices(config: Config | None, extra: tuple[str, ...] = ()) -> list[Any]:
    return [choice(name, label) for name, label in _line_names(config, extra).items()]


def _gateway_name(status: dict[str, Any] | None) -> str:
    telegram = (status or {}).get("telegram") or {}
    name = telegram.get("account_name")
    return str(name) if name else "the gateway account"


def _members(up: bool) -> tuple[list[dict[str, Any]], str | None]:
    """Every member as the control API gives it; from the store when the gateway is down."""
    if up:
        try:
            return list(web().gateway.call("members.list")), None
        except GatewayDown:
            pass
        except ControlError as exc:
            return [], exc.message
    try:
        return [to_json(m) for m in store().members()], None
    except StoreError as exc:
        return [], f"The database cannot be read: {exc}"


def _row(member: dict[str, Any], gateway_name: str) -> dict[str, Any]:
    default_line = str(member.get("default_line") or "")
    return {
        "id": member["id"],
        "name": member.get("name") or f"Telegram user {member.get('telegram_id')}",
        "username": member.get("username") or "",
        "owner": bool(member.get("owner")),
        "lines": list(member.get("lines") or []),
        "outgoing": OUTGOING_LABELS.get(str(member.get("outgoing_method")), "?"),
        "default_line": default_line or "ask each time",
        "privacy": privacy_view(str(member.get("privacy") or ""), gateway_name),
        "checked_at": member.get("privacy_checked_at"),
    }


def _invitation_row(invitation: dict[str, Any]) -> dict[str, Any]:
    return {
        "id": invitation["id"],
        "lines": list(invitation.get("lines") or []),
        "note": invitation.get("note") or "",
        "created_at": invitation.get("created_at"),
        "expires_at": invitation.get("expires_at"),
        "seconds_left": max(0, int(float(invitation.get("expires_at") or 0) - time.time())),
    }


def _index(form: InviteForm | None = None, status_code: int = 200) -> tuple[str, int]:
    status = web().gateway.status()
    up = status is not None
    config, problem = _config()
    if form is None:
        form = InviteForm()
        form.lines.choices = _line_choices(config)
        form.lines.data = [line.name for line in config.lines if line.enabled] if config else []
    invitations: list[dict[str, Any]] | None = None
    invitations_error = None
    if up:
        try:
            invitations = [_invitation_row(i) for i in web().gateway.call("invitations.list")]
        except GatewayDown:
            up = False
        except ControlError as exc:
            invitations_error = exc.message
    members, members_error = _members(up)
    gateway_name = _gateway_name(status)
    html = render_template(
        "members/index.html",
        up=up,
        problem=problem,
        form=form,
        invitations=invitations,
        invitations_error=invitations_error,
        members=[_row(m, gateway_name) for m in members],
        members_error=members_error,
    )
    return html, status_code


@bp.route("/members")
def index() -> tuple[str, int]:
    return _index()


# --------------------------------------------------------------------------------------------
# Invitations


@bp.route("/members/invite", methods=["POST"])
def invite() -> tuple[str, int] | BaseResponse:
    config, _problem = _config()
    form = InviteForm()
    form.lines.choices = _line_choices(config)
    if not form.validate():
        return _index(form, 400)
    lines = list(form.lines.data or [])
    note = (form.note.data or "").strip()
    try:
        created = web().gateway.call("invitations.create", lines=lines, note=note)
    except GatewayDown:
        flash("The gateway is not running: invitations need it. Nothing was created.", "error")
        return _index(form, 503)
    except ControlError as exc:
        message = exc.message.removeprefix("lines: ")
        if exc.message.startswith("lines:"):
            form.lines.errors = [*form.lines.errors, message[:1].upper() + message[1:] + "."]
        else:
            flash(f"The gateway refused the invitation: {exc.message}", "error")
        return _index(form, 400)
    link = str(created.get("link") or "")
    expires_at = float(created.get("expires_at") or 0)
    html = render_template(
        "members/invitation.html",
        invitation_id=created.get("id"),
        link=link,
        command=str(created.get("command") or ""),
        qr=qr_svg(link) if link else None,
        lines=list(created.get("lines") or lines),
        note=note,
        expires_at=expires_at,
        seconds_left=max(0, int(expires_at - time.time())),
        gateway_name=_gateway_name(web().gateway.status()),
    )
    return html, 200


@bp.route("/members/invitations/<int:invitation_id>/revoke", methods=["POST"])
def revoke(invitation_id: int) -> BaseResponse:
    try:
        result = web().gateway.call("invitations.revoke", id=invitation_id)
    except GatewayDown:
        flash("The gateway is not running: invitations need it.", "error")
    except ControlError as exc:
        if exc.code == "not_found":
            flash("That invitation does not exist.", "error")
        else:
            flash(f"The invitation could not be revoked: {exc.message}", "error")
    else:
        if (result or {}).get("revoked"):
            flash("Invitation revoked: its link no longer works.", "ok")
        else:
            flash("That invitation was already used or revoked.", "warn")
    return redirect(url_for("members.index"))


# --------------------------------------------------------------------------------------------
# Members


def _member(member_id: int) -> tuple[dict[str, Any], bool]:
    """The member (404 if there is none) and whether the gateway is up."""
    up = True
    try:
        return dict(web().gateway.call("members.get", id=member_id)), True
    except GatewayDown:
        up = False
    except ControlError as exc:
        if exc.code == "not_found":
            abort(404)
        # Another refusal: show the stored member; saving will report the gateway's answer.
    try:
        record = store().member(member_id)
    except StoreError:
        record = None
    if record is None:
        abort(404)
    member: dict[str, Any] = to_json(record)
    return member, up


def _member_form(member: dict[str, Any], config: Config | None) -> MemberForm:
    form = MemberForm()
    names = _line_names(config, tuple(member.get("lines") or ()))
    form.lines.choices = [choice(name, label) for name, label in names.items()]
    form.default_line.choices = [choice("", "Ask each time")] + [choice(n, n) for n in names]
    return form


@bp.route("/members/<int:member_id>/edit", methods=["GET", "POST"])
def edit(member_id: int) -> tuple[str, int] | BaseResponse:
    member, up = _member(member_id)
    config, problem = _config()
    form = _member_form(member, config)
    if request.method == "GET":
        form.lines.data = list(member.get("lines") or [])
        form.outgoing_method.data = str(member.get("outgoing_method") or "invite")
        form.default_line.data = str(member.get("default_line") or "")
    elif form.validate():
        if not up:
            flash("The gateway is not running: members can be changed only while it runs.", "error")
        else:
            try:
                web().gateway.call(
                    "members.update",
                    id=member_id,
                    lines=list(form.lines.data or []),
                    outgoing_method=form.outgoing_method.data,
                    default_line=form.default_line.data or "",
                )
            except GatewayDown:
                flash("The gateway stopped answering: nothing was changed.", "error")
            except ControlError as exc:
                if exc.code == "not_found":
                    abort(404)
                flash(f"The gateway refused the change: {exc.message}", "error")
            else:
                flash(f"{member.get('name') or 'Member'}: saved.", "ok")
                return redirect(url_for("members.index"))
    status = 200 if request.method == "GET" or not form.errors else 400
    html = render_template(
        "members/edit.html",
        member=member,
        form=form,
        up=up,
        problem=problem,
        outgoing_notes=OUTGOING_NOTES,
    )
    return html, status


@bp.route("/members/<int:member_id>/check", methods=["POST"])
def check(member_id: int) -> BaseResponse:
    try:
        verdict = web().gateway.call("members.check_privacy", id=member_id)
    except GatewayDown:
        flash("The gateway is not running: the check needs it.", "error")
    except ControlError as exc:
        if exc.code == "not_found":
            abort(404)
        flash(f"Could not check: {exc.message}", "error")
    else:
        message = str(verdict.get("message") or "")
        guidance = [str(step) for step in verdict.get("guidance") or []]
        if verdict.get("callable"):
            flash(f"Can be called. {message}", "ok")
        else:
            steps = " To fix it: " + "; and ".join(guidance) + "." if guidance else ""
            flash(f"{message}{steps}", "error")
    return redirect(url_for("members.index"))


@bp.route("/members/<int:member_id>/remove", methods=["POST"])
def remove(member_id: int) -> BaseResponse:
    try:
        record = store().member(member_id)
    except StoreError:
        record = None
    who = record.name if record is not None and record.name else "The member"
    try:
        web().gateway.call("members.remove", id=member_id)
    except GatewayDown:
        flash("The gateway is not running: members can be removed only while it runs.", "error")
    except ControlError as exc:
        if exc.code == "not_found":
            flash("That member does not exist (already removed?).", "warn")
        else:
            flash(f"The member could not be removed: {exc.message}", "error")
    else:
        flash(f"{who} removed: their Telegram no longer rings for the house's calls.", "ok")
    return redirect(url_for("members.index"))

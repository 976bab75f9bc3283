"""Lines: list, add, edit and remove provider and ATA lines; re-try a registration.

Lines live in the gateway's settings file.  Every change goes through the
gateway's validator before anything is written (webui.config_edit), is saved
atomically and then applied with ``config.reload``.  Passwords are write-only:
the pages never contain them; a blank password field on edit keeps the stored one.
A line's name is fixed once created: members' line lists and the call history
refer to lines by name.
"""

from __future__ import annotations

import ipaddress
from typing import Any

from flask import Blueprint, abort, flash, redirect, render_template, request, url_for
from werkzeug.wrappers import Response as BaseResponse

from gateway.config import (
    AtaLineConfig,
    Config,
    ConfigError,
    ConfigInvalid,
    LineConfig,
    ProviderLineConfig,
    config_to_dict,
)
from gateway.store import StoreError
from webui import config_edit
from webui.context import store, web
from webui.forms.lines import (
    INCOMING_NOTES,
    AtaLineForm,
    LineForm,
    ProviderLineForm,
    split_list,
)
from webui.gateway import ControlError, GatewayDown
from webui.views.dashboard import LINE_STATES

bp = Blueprint("lines", __name__)

KINDS = {"provider": ProviderLineForm, "ata": AtaLineForm}
INCOMING_LABELS = {"members": "rings the members", "echo": "echo test", "reject": "refused"}
# Form fields named differently from their key in the file.
FIELD_OF = {"dial_allow": "", "dial_deny": ""}
FORM_KEYS = {
    "common": (
        "enabled",
        "incoming",
        "no_answer",
        "country_code",
        "dtmf",
        "codecs",
        "allow",
    ),
    "provider": (
        "registrar",
        "username",
        "auth_username",
        "domain",
        "outbound_proxy",
        "transport",
        "register",
        "expires",
        "keepalive",
    ),
    "ata": ("username", "auth_algorithms"),
}


# --------------------------------------------------------------------------------------------
# The list


def _members_by_line() -> dict[str, int] | None:
    try:
        members = store().members()
    except StoreError:
        return None
    counts: dict[str, int] = {}
    for member in members:
        for line in member.lines:
            counts[line] = counts.get(line, 0) + 1
    return counts


def _summary(line: LineConfig) -> str:
    if isinstance(line, ProviderLineConfig):
        where = f"{line.username}@{line.registrar}"
        return where if line.register else f"{line.registrar} (no registration)"
    if line.username:
        return f"the ATA registers as {line.username}"
    sources = ", ".join(_network(n) for n in line.allow) or "nobody yet"
    return f"calls by IP from {sources}"


def _network(net: ipaddress.IPv4Network | ipaddress.IPv6Network) -> str:
    return str(net.network_address) if net.prefixlen == net.max_prefixlen else str(net)


def _row(line: LineConfig, state: dict[str, Any] | None, up: bool, members: int | None) -> Any:
    if not line.enabled:
        tone, label = "muted", "not in use"
    elif not up:
        tone, label = "muted", "gateway not running"
    elif state is None:
        tone, label = "muted", "not started yet"
    else:
        raw = str(state.get("state", ""))
        tone, label = LINE_STATES.get(raw, ("muted", raw or "?"))
    return {
        "name": line.name,
        "kind": line.kind,
        "kind_label": "Provider" if line.kind == "provider" else "ATA",
        "enabled": line.enabled,
        "incoming": INCOMING_LABELS.get(line.incoming, line.incoming),
        "summary": _summary(line),
        "tone": tone,
        "label": label,
        "error": (state or {}).get("last_error") or "",
        "members": members,
        "can_retry": isinstance(line, ProviderLineConfig) and line.register and line.enabled,
        "has_password": bool(line.password),
    }


def _status() -> dict[str, Any] | None:
    """The gateway's status; None when it is down or does not answer it."""
    try:
        status: dict[str, Any] = web().gateway.call("status")
    except ControlError:  # GatewayDown too
        return None
    return status


@bp.route("/lines")
def index() -> str:
    try:
        config = config_edit.load()
    except ConfigError as exc:
        return render_template("lines/index.html", problem=str(exc), rows=[], status_up=False)
    status = _status()
    states = {str(s.get("name")): s for s in (status or {}).get("lines", [])}
    counts = _members_by_line()
    rows = [
        _row(
            line,
            states.get(line.name),
            status is not None,
            None if counts is None else counts.get(line.name, 0),
        )
        for line in config.lines
    ]
    return render_template(
        "lines/index.html",
        problem=None,
        rows=rows,
        status_up=status is not None,
    )


# --------------------------------------------------------------------------------------------
# Add and edit


def _sip_address(config: Config) -> dict[str, Any]:
    """Where an ATA on the home network reaches the gateway (for its setup page)."""
    listen = config.sip.listen
    local_only = ipaddress.ip_address(listen).is_loopback
    if config.sip.public_address is not None:
        host = str(config.sip.public_address.host)
    elif ipaddress.ip_address(listen).is_unspecified or local_only:
        # The web UI runs on the same box: the address the browser used is the box's.
        host = (request.host or "").rsplit(":", 1)[0].strip("[]") or "this box's address"
    else:
        host = listen
    return {"host": host, "port": config.sip.port, "local_only": local_only}


def _stored(config: Config, line: LineConfig) -> dict[str, Any]:
    """The line's table as the file has it (config_to_dict), password included."""
    stored: dict[str, Any] = config_to_dict(config)["lines"][config.lines.index(line)]
    return stored


def _initial(config: Config, line: LineConfig) -> dict[str, Any]:
    """What the form shows for a stored line: never the password."""
    raw = _stored(config, line)
    data: dict[str, Any] = {"name": line.name}
    for key in (*FORM_KEYS["common"], *FORM_KEYS[line.kind]):
        data[key] = raw.get(key, "")
    data["codecs"] = ",".join(line.codecs)
    data["allow"] = "\n".join(raw["allow"])
    if isinstance(line, AtaLineConfig):
        data["auth_algorithms"] = ",".join(line.auth_algorithms)
    return data


def _line_data(form: LineForm, kind: str, old: dict[str, Any] | None) -> dict[str, Any]:
    """The line's table for the file: the stored one (keys the form lacks stay) + the form."""
    data: dict[str, Any] = dict(old) if old else {"name": form.name.data, "kind": kind}
    data.update(
        enabled=bool(form.enabled.data),
        incoming=form.incoming.data,
        no_answer=form.no_answer.data,
        country_code=form.country_code.data or "",
        dtmf=form.dtmf.data,
        codecs=(form.codecs.data or "").split(","),
        allow=split_list(form.allow.data),
    )
    if form.password.data:
        data["password"] = form.password.data
    elif form.clear_password.data or old is None:
        data["password"] = ""
    if isinstance(form, ProviderLineForm):
        data.update(
            registrar=form.registrar.data,
            username=form.username.data,
            outbound_proxy=form.outbound_proxy.data or "",
            transport=form.transport.data,
            register=bool(form.register.data),
            expires=form.expires.data,
            keepalive=form.keepalive.data,
        )
        # Blank = follow the registrar's host / the user name (not written to the file).
        for key in ("domain", "auth_username"):
            value = getattr(form, key).data
            if value:
                data[key] = value
            else:
                data.pop(key, None)
    elif isinstance(form, AtaLineForm):
        data.update(
            username=form.username.data or "",
            auth_algorithms=(form.auth_algorithms.data or "MD5").split(","),
        )
    return data


def _render_form(
    form: LineForm,
    kind: str,
    config: Config | None,
    *,
    line: LineConfig | None,
    form_errors: list[str],
    status: int = 200,
) -> tuple[str, int]:
    html = render_template(
        "lines/form.html",
        form=form,
        kind=kind,
        line=line,
        editing=line is not None,
        has_password=bool(line and line.password),
        form_errors=form_errors,
        notes=INCOMING_NOTES,
        sip=_sip_address(config) if config is not None else None,
    )
    return html, status


def _save(
    form: LineForm, kind: str, config: Config, index: int, old: dict[str, Any] | None
) -> tuple[Config | None, list[str]]:
    """Validate the whole file with the line at *index* from *form*; None + messages if bad."""
    data = config_to_dict(config)
    new_line = _line_data(form, kind, old)
    lines: list[dict[str, Any]] = list(data["lines"])
    if index < len(lines):
        lines[index] = new_line
    else:
        lines.append(new_line)
    data["lines"] = lines
    try:
        return config_edit.validate(data, config), []
    except ConfigInvalid as exc:
        problems = config_edit.problems_by_key(exc.problems, f"lines[{index}]", FIELD_OF)
        return None, config_edit.attach(form, problems)


@bp.route("/lines/new/<kind>", methods=["GET", "POST"])
def add(kind: str) -> BaseResponse | tuple[str, int]:
    form_class = KINDS.get(kind)
    if form_class is None:
        abort(404)
    form: LineForm = form_class()
    if not form.is_submitted():
        try:
            config: Config | None = config_edit.load()
        except ConfigError:
            config = None
        if config is not None and config.lines:
            # A new line is most likely in the same country as the others.
            form.country_code.data = config.lines[0].dialing.country_code
        return _render_form(form, kind, config, line=None, form_errors=[])
    if not form.validate_on_submit():
        return _render_form(form, kind, _load_or_none(), line=None, form_errors=[], status=400)
    with config_edit.editing() as config:
        if config.line(form.name.data or "") is not None:
            form.name.errors = [f"There is already a line called {form.name.data}."]
            return _render_form(form, kind, config, line=None, form_errors=[], status=400)
        new, errors = _save(form, kind, config, len(config.lines), None)
        if new is None:
            return _render_form(form, kind, config, line=None, form_errors=errors, status=400)
        config_edit.save_and_apply(new, f"Line {form.name.data}")
    return redirect(url_for("lines.index"))


def _load_or_none() -> Config | None:
    try:
        return config_edit.load()
    except ConfigError:
        return None


@bp.route("/lines/<name>/edit", methods=["GET", "POST"])
def edit(name: str) -> BaseResponse | tuple[str, int]:
    try:
        current = config_edit.load()
    except ConfigError as exc:
        flash(f"The settings file cannot be read: {exc}", "error")
        return redirect(url_for("lines.index"))
    line = current.line(name)
    if line is None:
        abort(404)
    form_class = KINDS[line.kind]
    if request.method == "GET":
        form: LineForm = form_class(data=_initial(current, line))
        return _render_form(form, line.kind, current, line=line, form_errors=[])
    form = form_class()
    form.name.data = name  # fixed after creation; not in the posted form
    if not form.validate_on_submit():
        return _render_form(form, line.kind, current, line=line, form_errors=[], status=400)
    with config_edit.editing() as config:
        line = config.line(name)
        if line is None:
            abort(404)
        new, errors = _save(
            form, line.kind, config, config.lines.index(line), _stored(config, line)
        )
        if new is None:
            return _render_form(form, line.kind, config, line=line, form_errors=errors, status=400)
        config_edit.save_and_apply(new, f"Line {name}")
    return redirect(url_for("lines.index"))


# --------------------------------------------------------------------------------------------
# Remove, retry


@bp.route("/lines/<name>/remove", methods=["POST"])
def remove(name: str) -> BaseResponse:
    try:
        with config_edit.editing() as config:
            line = config.line(name)
            if line is None:
                flash(f"There is no line called {name}.", "error")
                return redirect(url_for("lines.index"))
            data = config_to_dict(config)
            data["lines"] = [d for d in data["lines"] if d["name"] != name]
            try:
                new = config_edit.validate(data, config)
            except ConfigInvalid as exc:
                flash(f"Line {name} cannot be removed: " + "; ".join(exc.problems), "error")
                return redirect(url_for("lines.index"))
            config_edit.save_and_apply(new, f"Line {name} removed")
    except ConfigError as exc:
        flash(f"The settings file cannot be read: {exc}", "error")
    return redirect(url_for("lines.index"))


@bp.route("/lines/<name>/retry", methods=["POST"])
def retry(name: str) -> BaseResponse:
    config = _load_or_none()
    found = config.line(name) if config is not None else None
    if found is None:
        flash(f"There is no line called {name}.", "error")
        return redirect(url_for("lines.index"))
    if isinstance(found, AtaLineConfig):
        flash(
            f"Line {name} is an ATA: the ATA registers itself. Restart the ATA or check"
            " its SIP server, user name and password.",
            "warn",
        )
        return redirect(url_for("lines.index"))
    try:
        web().gateway.call("lines.retry", name=name)
    except GatewayDown:
        flash("The gateway is not running, so nothing registers. See System.", "error")
    except ControlError as exc:
        flash(f"Could not re-try line {name}: {exc.message}", "error")
    else:
        flash(f"Line {name} is registering again; its state updates in a few seconds.", "ok")
    return redirect(url_for("lines.index"))

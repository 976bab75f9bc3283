"""The first-run wizard: Telegram account, companion bot, first line, test call.

After the admin password (auth.first_run) the owner walks through the steps
in order; each can be skipped and revisited.  Which steps are done is read
from the gateway each time (its login state, its bot, the lines in the
settings file, the members, the last test call), so the wizard shows where
the household is even after a restart.  Skipped steps live in the session.

Every gateway call tolerates a stopped gateway: the page says so instead of
failing.  Secrets typed here go to the gateway or the settings file and never
come back into a page; the single exception is an ATA password the wizard
generates, shown once right after saving because the owner must type it into
the ATA.
"""

from __future__ import annotations

import ipaddress
import secrets
import socket
import time
from dataclasses import dataclass, field
from typing import Any

import segno
from flask import Blueprint, flash, redirect, render_template, request, session, url_for
from markupsafe import Markup
from werkzeug.wrappers import Response as BaseResponse

from gateway.config import (
    AtaLineConfig,
    Config,
    ConfigError,
    ConfigInvalid,
    LineConfig,
    config_to_dict,
    load_config,
)
from webui import config_edit
from webui.context import web
from webui.forms.wizard import (
    PROVIDER_PRESETS,
    AppForm,
    BotForm,
    CodeForm,
    LineForm,
    PhoneForm,
    TwoStepForm,
)
from webui.gateway import ControlError, GatewayDown

bp = Blueprint("wizard", __name__)

STEPS = [
    ("password", "Admin password"),
    ("telegram", "Telegram account"),
    ("bot", "Companion bot"),
    ("line", "First line"),
    ("test", "Test call"),
]
STEP_NAMES = [name for name, _ in STEPS]
SKIPPABLE = set(STEP_NAMES) - {"password"}
GATEWAY_DOWN = "The gateway is not running; start it and reload."
# Letters and digits that cannot be mistaken for each other when typed into an ATA.
_PASSWORD_ALPHABET = "abcdefghjkmnpqrstuvwxyzABCDEFGHJKLMNPQRSTUVWXYZ23456789"
_PASSWORD_LENGTH = 16

Form = AppForm | PhoneForm | CodeForm | TwoStepForm | BotForm | LineForm


# -- what the gateway says --------------------------------------------------------------------


@dataclass
class Progress:
    """The household's state as far as the wizard cares; None = unknown (gateway down)."""

    config: Config | None
    config_error: str | None = None
    gateway_up: bool = True
    login: dict[str, Any] | None = None
    bot: dict[str, Any] | None = None
    members: list[dict[str, Any]] | None = None
    test: dict[str, Any] | None = None
    problems: list[str] = field(default_factory=list)

    @property
    def lines(self) -> tuple[LineConfig, ...]:
        return self.config.lines if self.config else ()

    def done(self, step: str) -> bool:
        if step == "password":
            return True
        if step == "telegram":
            return bool(self.login and self.login.get("step") == "logged_in")
        if step == "bot":
            return bool(self.bot and self.bot.get("configured"))
        if step == "line":
            return bool(self.lines)
        if step == "test":
            return bool(self.members) and test_verdict(self.test) == "ok"
        return False


def _ask(progress: Progress, method: str, **params: Any) -> Any:
    """The gateway's answer, or None (noting a stopped gateway or a missing method)."""
    if not progress.gateway_up:
        return None
    try:
        return web().gateway.call(method, **params)
    except GatewayDown:
        progress.gateway_up = False
    except ControlError as exc:
        progress.problems.append(f"{method}: {exc.message}")
    return None


def read_progress(
    parts: tuple[str, ...] = ("config", "login", "bot", "members", "test"),
) -> Progress:
    config: Config | None = None
    config_error = None
    if "config" in parts:
        try:
            config = load_config(web().settings.config_path)
        except ConfigError as exc:
            config_error = str(exc)
    progress = Progress(config, config_error)
    if "login" in parts:
        progress.login = _ask(progress, "telegram.login.view")
    if "bot" in parts:
        progress.bot = _ask(progress, "telegram.bot.view")
    if "members" in parts:
        progress.members = _ask(progress, "members.list")
    if "test" in parts:
        progress.test = _ask(progress, "test_call.status")
    return progress


def test_verdict(status: dict[str, Any] | None) -> str:
    """``ok`` (audio came back), ``bad`` (failed or silent), ``running`` or ``idle``."""
    if not status:
        return "idle"
    state = status.get("state", "idle")
    heard = float(status.get("heard_seconds") or 0.0)
    if state == "failed":
        return "bad"
    if state == "ended":
        return "ok" if heard > 0 else "bad"
    if state == "up":
        return "ok" if heard > 0 else "running"
    if state == "ringing":
        return "running"
    return "idle"


_TEST_BADGES = {
    "idle": ("muted", "not started"),
    "running": ("warn", "listening…"),
    "ok": ("ok", "audio flows"),
    "bad": ("bad", "no audio"),
}


def test_summary(status: dict[str, Any] | None, gateway_up: bool = True) -> dict[str, Any]:
    """What the test-call box shows; the page renders it and wizard.js re-renders it each second."""
    if not gateway_up:
        return {
            "gateway": "down",
            "state": "unknown",
            "verdict": "bad",
            "tone": "bad",
            "label": "gateway not running",
            "message": GATEWAY_DOWN,
            "heard_seconds": 0.0,
            "peak_dbfs": None,
        }
    status = status or {}
    verdict = test_verdict(status)
    tone, label = _TEST_BADGES[verdict]
    state = str(status.get("state") or "idle")
    if state == "ringing":
        label = "ringing…"
    elif state == "failed":
        label = "failed"
    message = status.get("message") or (
        "Press “Call me”: the gateway calls you in Telegram; say something and you hear"
        " yourself back."
        if state == "idle"
        else ""
    )
    return {
        "gateway": "up",
        "state": state,
        "verdict": verdict,
        "tone": tone,
        "label": label,
        "message": str(message),
        "member": status.get("member") or "",
        "heard_seconds": float(status.get("heard_seconds") or 0.0),
        "peak_dbfs": status.get("peak_dbfs"),
        "frames_in": int(status.get("frames_in") or 0),
        "frames_out": int(status.get("frames_out") or 0),
    }


# -- where the ATA finds the gateway ------------------------------------------------------------


def default_route_address(family: int = socket.AF_INET) -> str | None:
    """This machine's address on the interface of the default route.

    Connecting a UDP socket only picks a route and a source address; nothing is sent.
    """
    target = ("192.0.2.1", 9) if family == socket.AF_INET else ("2001:db8::1", 9)
    try:
        with socket.socket(family, socket.SOCK_DGRAM) as probe:
            probe.connect(target)
            address: str = probe.getsockname()[0]
    except OSError:
        return None
    return address


@dataclass(frozen=True)
class SipServer:
    host: str  # "" = unknown
    port: int
    warning: str | None = None

    def __str__(self) -> str:
        host = self.host or "THIS-BOX"
        if ":" in host:
            host = f"[{host}]"
        return f"{host}:{self.port}"


def sip_server(config: Config) -> SipServer:
    """The address:port an ATA on the home network registers to."""
    listen, port = config.sip.listen, config.sip.port
    try:
        address = ipaddress.ip_address(listen)
    except ValueError:
        return SipServer(listen, port)
    if address.is_unspecified:
        family = socket.AF_INET6 if address.version == 6 else socket.AF_INET
        found = default_route_address(family)
        if found is None:
            return SipServer(
                "",
                port,
                "Linegram could not tell this box's network address; use the address your"
                " router shows for it.",
            )
        return SipServer(found, port)
    if address.is_loopback:
        return SipServer(
            listen,
            port,
            f"The gateway only listens on this machine ([sip] listen = {listen}), so an ATA"
            ' cannot reach it: set listen = "0.0.0.0" in the settings and restart the gateway.',
        )
    return SipServer(listen, port)


# -- helpers ----------------------------------------------------------------------------------


def _skipped() -> list[str]:
    value = session.get("wizard_skipped", [])
    return [s for s in value if s in SKIPPABLE] if isinstance(value, list) else []


def current_step(progress: Progress) -> str:
    """The step asked for in ?step=, else the first one neither done nor skipped, else finish."""
    asked = request.args.get("step", "")
    if asked in STEP_NAMES or asked == "finish":
        return asked
    skipped = _skipped()
    for name in STEP_NAMES:
        if not progress.done(name) and name not in skipped:
            return name
    return "finish"


def _next_url() -> str:
    """The wizard without ?step=: the first step neither done nor skipped (or the finish)."""
    return url_for("wizard.index")


def generate_password() -> str:
    return "".join(secrets.choice(_PASSWORD_ALPHABET) for _ in range(_PASSWORD_LENGTH))


def qr_svg(text: str) -> Markup:
    """An inline SVG QR code; the text only shapes the path, so the markup is safe to embed."""
    return Markup(segno.make(text, error="m").svg_inline(scale=4))


def _wizard_line(progress: Progress) -> LineConfig | None:
    """The line this wizard set up (else the first line)."""
    name = session.get("wizard_line")
    for line in progress.lines:
        if line.name == name:
            return line
    return progress.lines[0] if progress.lines else None


def _invitation() -> dict[str, Any] | None:
    invite = session.get("wizard_invite")
    if not isinstance(invite, dict) or float(invite.get("expires_at") or 0) <= time.time():
        return None
    return invite


def render_step(
    step: str | None = None,
    *,
    progress: Progress | None = None,
    forms: dict[str, Form] | None = None,
    status: int = 200,
    **extra: Any,
) -> tuple[str, int]:
    progress = progress or read_progress()
    step = step or current_step(progress)
    forms = dict(forms or {})
    context: dict[str, Any] = {
        "progress": progress,
        "step": step,
        "steps": STEPS,
        "skipped": _skipped(),
        "skippable": step in SKIPPABLE,
        "gateway_down": GATEWAY_DOWN,
        "next_url": _next_url(),
    }
    if step == "telegram":
        context.update(_telegram_context(progress, forms))
    elif step == "bot":
        forms.setdefault("bot", BotForm(formdata=None))
    elif step == "line":
        context.update(_line_context(progress, forms))
    elif step == "test":
        context.update(_test_context(progress))
    context.update(forms=forms)
    context.update(extra)
    return render_template("wizard/index.html", **context), status


def _telegram_context(progress: Progress, forms: dict[str, Form]) -> dict[str, Any]:
    view = progress.login or {}
    login_step = view.get("step", "")
    message = view.get("message")
    # The gateway's last problem goes next to the field it is about (unless the form
    # already has its own error from this request).
    if login_step == "need_app":
        form: Form = forms.setdefault("app", AppForm(formdata=None))
        assert isinstance(form, AppForm)
        target = form.api_hash if _about_hash(message) else form.api_id
    elif login_step == "need_phone":
        form = forms.setdefault("phone", PhoneForm(formdata=None))
        assert isinstance(form, PhoneForm)
        if not form.phone.data and view.get("phone"):
            form.phone.data = "+" + str(view["phone"]).lstrip("+")
        target = form.phone
    elif login_step == "need_code":
        form = forms.setdefault("code", CodeForm(formdata=None))
        assert isinstance(form, CodeForm)
        target = form.code
    elif login_step == "need_password":
        form = forms.setdefault("password", TwoStepForm(formdata=None))
        assert isinstance(form, TwoStepForm)
        target = form.password
    else:
        return {"login": view}
    if message and not any(f.errors for f in form):
        target.errors = [str(message)]
    return {"login": view}


def _about_hash(message: str | None) -> bool:
    """A sign-in problem about the api_hash alone (else it goes next to the api_id)."""
    return bool(message) and "api_hash" in str(message) and "api_id" not in str(message)


def _line_context(progress: Progress, forms: dict[str, Form]) -> dict[str, Any]:
    form = forms.setdefault("line", LineForm(formdata=None))
    line = _wizard_line(progress)
    return {
        "line": line,
        "line_form": form,
        "presets": PROVIDER_PRESETS,
        "sip_server": sip_server(progress.config) if progress.config else None,
    }


def _test_context(progress: Progress) -> dict[str, Any]:
    line = _wizard_line(progress)
    invite = None if progress.members else _invitation()
    echo = progress.config.echo.extension if progress.config else ""
    return {
        "line": line,
        "invite": invite,
        "invite_qr": qr_svg(invite["link"]) if invite and invite.get("link") else None,
        "test": test_summary(progress.test, progress.gateway_up),
        "echo_extension": echo,
        "is_ata": isinstance(line, AtaLineConfig),
    }


def _gateway_call(method: str, **params: Any) -> tuple[Any, str | None]:
    """(result, None), or (None, why) when the gateway refused; GatewayDown propagates."""
    try:
        return web().gateway.call(method, **params), None
    except GatewayDown:
        raise
    except ControlError as exc:
        return None, exc.message


# -- pages ------------------------------------------------------------------------------------


@bp.route("/wizard")
def index() -> tuple[str, int]:
    return render_step()


@bp.post("/wizard/skip/<step>")
def skip(step: str) -> BaseResponse:
    if step in SKIPPABLE:
        skipped = _skipped()
        if step not in skipped:
            session["wizard_skipped"] = [*skipped, step]
    return redirect(_next_url())


@bp.post("/wizard/finish")
def finish() -> BaseResponse:
    web().admin.set_wizard_done()
    session.pop("wizard_invite", None)
    flash("Setup finished. You can change everything later from the menu.", "ok")
    return redirect(url_for("dashboard.index"))


# -- step: Telegram account ---------------------------------------------------------------------

_LOGIN_FORMS: dict[str, tuple[type[AppForm | PhoneForm | CodeForm | TwoStepForm], str]] = {
    "app": (AppForm, "telegram.login.app"),
    "phone": (PhoneForm, "telegram.login.phone"),
    "code": (CodeForm, "telegram.login.code"),
    "password": (TwoStepForm, "telegram.login.password"),
}
_LOGIN_ACTIONS = {
    "resend": "telegram.login.resend",
    "restart": "telegram.login.restart",
    "log_out": "telegram.login.log_out",
}


@bp.post("/wizard/telegram/<action>")
def telegram(action: str) -> BaseResponse | tuple[str, int]:
    here = url_for("wizard.index", step="telegram")
    try:
        if action in _LOGIN_ACTIONS:
            _result, problem = _gateway_call(_LOGIN_ACTIONS[action])
            if problem:
                flash(problem, "error")
            return redirect(here)
        if action not in _LOGIN_FORMS:
            return redirect(here)
        form_class, method = _LOGIN_FORMS[action]
        form = form_class()
        if not form.validate_on_submit():
            return render_step("telegram", forms={action: form}, status=400)
        fields = [f for f in form if f.name != "csrf_token"]
        params: dict[str, Any] = {f.name: f.data for f in fields}
        if isinstance(form, AppForm):
            params["api_id"] = int(form.api_id.data or 0)
        view, problem = _gateway_call(method, **params)
        if problem:
            target = fields[-1] if _about_hash(problem) else fields[0]
            target.errors = [problem]
            return render_step("telegram", forms={action: form}, status=400)
    except GatewayDown:
        flash(GATEWAY_DOWN, "error")
        return redirect(here)
    if isinstance(view, dict) and view.get("step") == "logged_in":
        return redirect(_next_url())
    # The new view (with the gateway's message on a failure) is read again on the GET.
    return redirect(here)


# -- step: companion bot ------------------------------------------------------------------------


@bp.post("/wizard/bot")
def bot() -> BaseResponse | tuple[str, int]:
    form = BotForm()
    if not form.validate_on_submit():
        return render_step("bot", forms={"bot": form}, status=400)
    try:
        result, problem = _gateway_call("telegram.bot.set_token", token=form.token.data)
    except GatewayDown:
        flash(GATEWAY_DOWN, "error")
        return redirect(url_for("wizard.index", step="bot"))
    if problem:
        form.token.errors = [problem]
        return render_step("bot", forms={"bot": form}, status=400)
    username = (result or {}).get("username") or ""
    shown = f" @{username}" if username else ""
    flash(f"The companion bot{shown} is connected.", "ok")
    if not (result or {}).get("inline"):
        # Stay: the step shows how to switch inline mode on.
        return redirect(url_for("wizard.index", step="bot"))
    return redirect(_next_url())


# -- step: first line ---------------------------------------------------------------------------


def _line_table(form: LineForm, password: str) -> dict[str, Any]:
    """The new [[lines]] table, as the settings file has it."""
    table: dict[str, Any] = {
        "name": form.name.data,
        "kind": form.kind.data,
        "incoming": "members",
        "country_code": form.country_code.data or "",
    }
    if form.kind.data == "provider":
        table.update(
            registrar=form.registrar.data,
            transport=form.transport.data,
            username=form.username.data,
            password=password,
        )
        if form.auth_username.data:
            table["auth_username"] = form.auth_username.data
    else:
        table.update(username=form.ata_username.data, password=password)
    return table


# The validator's keys that the form calls differently (the rest have the form's names).
_DIALLING_KEYS = {"national_prefix": "country_code", "international_prefix": "country_code"}
_ATA_KEYS = {"username": "ata_username", "password": "ata_password", **_DIALLING_KEYS}


@bp.post("/wizard/line")
def line() -> BaseResponse | tuple[str, int]:
    form = LineForm()
    if not form.validate_on_submit():
        return render_step("line", forms={"line": form}, status=400)
    generated = ""
    if form.kind.data == "provider":
        password = form.password.data or ""
    else:
        password = form.ata_password.data or ""
        if not password:
            password = generated = generate_password()
    try:
        with config_edit.editing() as config:
            index = len(config.lines)
            document = config_to_dict(config)
            document["lines"] = [*document.get("lines", []), _line_table(form, password)]
            try:
                new = config_edit.validate(document, config)
            except ConfigInvalid as exc:
                keys = _DIALLING_KEYS if form.kind.data == "provider" else _ATA_KEYS
                problems = config_edit.problems_by_key(exc.problems, f"lines[{index}]", keys)
                form.form_errors.extend(config_edit.attach(form, problems))
                return render_step("line", forms={"line": form}, status=400)
            config_edit.save_and_apply(new, f"Line {form.name.data}")
    except ConfigError as exc:
        flash(f"The settings file cannot be read, so nothing was saved: {exc}", "error")
        return render_step("line", forms={"line": form}, status=400)
    session["wizard_line"] = form.name.data
    if isinstance(new.lines[index], AtaLineConfig):
        if generated:
            # The one time this password is in a page: the owner types it into the ATA now.
            return render_step("line", generated_password=generated)
        return redirect(url_for("wizard.index", step="line"))
    return redirect(_next_url())


# -- step: test call ----------------------------------------------------------------------------


@bp.post("/wizard/invite")
def invite() -> BaseResponse:
    progress = read_progress(parts=("config",))
    line = _wizard_line(progress)
    params: dict[str, Any] = {"note": "owner (setup wizard)"}
    if line is not None:
        params["lines"] = [line.name]
    try:
        result, problem = _gateway_call("invitations.create", **params)
    except GatewayDown:
        flash(GATEWAY_DOWN, "error")
        return redirect(url_for("wizard.index", step="test"))
    if problem:
        flash(problem, "error")
    elif isinstance(result, dict):
        session["wizard_invite"] = {
            "link": result.get("link") or "",
            "command": result.get("command") or "",
            "expires_at": float(result.get("expires_at") or 0),
        }
    return redirect(url_for("wizard.index", step="test"))


@bp.post("/wizard/test-call")
def test_call() -> BaseResponse:
    member = request.form.get("member_id", "")
    params: dict[str, Any] = {}
    if member.isdigit():
        params["member_id"] = int(member)
    try:
        _result, problem = _gateway_call("test_call.start", **params)
    except GatewayDown:
        flash(GATEWAY_DOWN, "error")
    else:
        if problem:
            flash(problem, "error")
    return redirect(url_for("wizard.index", step="test"))


@bp.post("/wizard/test-call/stop")
def test_call_stop() -> BaseResponse:
    try:
        _result, problem = _gateway_call("test_call.stop")
    except GatewayDown:
        flash(GATEWAY_DOWN, "error")
    else:
        if problem:
            flash(problem, "error")
    return redirect(url_for("wizard.index", step="test"))


@bp.route("/wizard/api/test-call")
def api_test_call() -> dict[str, Any]:
    progress = read_progress(parts=("test",))
    return test_summary(progress.test, progress.gateway_up)


@bp.route("/wizard/api/members")
def api_members() -> dict[str, Any]:
    progress = read_progress(parts=("members",))
    if not progress.gateway_up:
        return {"gateway": "down", "members": 0}
    return {"gateway": "up", "members": len(progress.members or [])}

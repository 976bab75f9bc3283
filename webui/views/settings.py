"""Settings: how new members call out, each line's dial rules, LED pins, the admin password.

Each part is its own form and POST; like the Lines page, a change goes through
the gateway's validator before it is saved and applied (webui.config_edit).
"""

from __future__ import annotations

import re
from typing import Any

from flask import Blueprint, abort, flash, redirect, render_template, request, session, url_for
from werkzeug.wrappers import Response as BaseResponse

from gateway.calls.dialplan import DialPlan, NumberRefused
from gateway.calls.numbering import (
    WORDS,
    default_international_prefix,
    default_national_prefix,
)
from gateway.config import LED_NAMES, Config, ConfigError, ConfigInvalid, config_to_dict
from webui import config_edit
from webui.context import web
from webui.forms.auth import ChangePasswordForm
from webui.forms.settings import (
    ALLOW_NOTES,
    ALLOW_WORDS,
    DENY_NOTES,
    DENY_WORDS,
    DIAL_FORMAT_NOTES,
    LED_LABELS,
    LED_NOTES,
    OUTGOING_NOTES,
    CallsForm,
    DialingForm,
    LedsForm,
    split_patterns,
)
from webui.security import LOGIN_LIMIT, failed_login, limiter

bp = Blueprint("settings", __name__)

LED_FIELD_OF = {"rgb": "rgb_red", "rgb[0]": "rgb_red", "rgb[1]": "rgb_green", "rgb[2]": "rgb_blue"}
DIAL_FIELD_OF = {"dial_allow": "allow_more", "dial_deny": "deny_more"}


# --------------------------------------------------------------------------------------------
# The page


def _calls_form(config: Config) -> CallsForm:
    return CallsForm(
        prefix="calls",
        formdata=None,
        data={"default_outgoing_method": config.calls.default_outgoing_method},
    )


def _leds_form(config: Config) -> LedsForm:
    leds = config.leds
    data: dict[str, Any] = {name: getattr(leds, name) for name in LED_NAMES}
    red, green, blue = leds.rgb or (None, None, None)
    data.update(rgb_red=red, rgb_green=green, rgb_blue=blue, active_high=leds.active_high)
    return LedsForm(prefix="leds", formdata=None, data=data)


def _dial_summary(config: Config) -> list[dict[str, Any]]:
    rows = []
    for line in config.lines:
        d = line.dialing
        rows.append(
            {
                "name": line.name,
                "country": f"+{d.country_code}" if d.country_code else "not set",
                "allow": ", ".join(d.allow) or "nothing",
                "deny": ", ".join(d.deny) or "nothing",
                "extras": [
                    label
                    for on, label in (
                        (d.extensions, "short numbers"),
                        (d.service_codes, "service codes"),
                        (d.letters, "letters"),
                        (d.allow_uri, "SIP addresses"),
                    )
                    if on
                ],
            }
        )
    return rows


def _page(
    *,
    calls: CallsForm | None = None,
    leds: LedsForm | None = None,
    password: ChangePasswordForm | None = None,
    errors: dict[str, list[str]] | None = None,
    status: int = 200,
) -> tuple[str, int]:
    try:
        config = config_edit.load()
    except ConfigError as exc:
        html = render_template("settings/index.html", problem=str(exc))
        return html, status
    html = render_template(
        "settings/index.html",
        problem=None,
        calls=calls or _calls_form(config),
        leds=leds or _leds_form(config),
        password=password or ChangePasswordForm(prefix="pw", formdata=None),
        lines=_dial_summary(config),
        outgoing_notes=OUTGOING_NOTES,
        led_notes=LED_NOTES,
        errors=errors or {},
    )
    return html, status


@bp.route("/settings")
def index() -> tuple[str, int]:
    return _page()


# --------------------------------------------------------------------------------------------
# Outgoing method and LEDs


def _save_part(
    form: Any, section: str, build: Any, what: str, field_of: dict[str, str] | None = None
) -> list[str] | None:
    """Validate the file with *build(data)* applied; save and apply it. Messages if bad."""
    with config_edit.editing() as config:
        data = config_to_dict(config)
        build(data)
        try:
            new = config_edit.validate(data, config)
        except ConfigInvalid as exc:
            problems = config_edit.problems_by_key(exc.problems, section, field_of)
            return config_edit.attach(form, problems)
        config_edit.save_and_apply(new, what)
    return None


@bp.route("/settings/calls", methods=["POST"])
def calls() -> BaseResponse | tuple[str, int]:
    form = CallsForm(prefix="calls")
    if not form.validate_on_submit():
        return _page(calls=form, status=400)

    def build(data: dict[str, Any]) -> None:
        data["calls"]["default_outgoing_method"] = form.default_outgoing_method.data

    left = _save_part(form, "calls", build, "Outgoing method for new members")
    if left is not None:
        return _page(calls=form, errors={"calls": left}, status=400)
    return redirect(url_for("settings.index") + "#outgoing")


@bp.route("/settings/leds", methods=["POST"])
def leds() -> BaseResponse | tuple[str, int]:
    form = LedsForm(prefix="leds")
    if not form.validate_on_submit():
        return _page(leds=form, status=400)

    def build(data: dict[str, Any]) -> None:
        table: dict[str, Any] = {
            name: getattr(form, name).data
            for name in LED_NAMES
            if getattr(form, name).data is not None
        }
        if form.rgb_red.data is not None:
            table["rgb"] = [form.rgb_red.data, form.rgb_green.data, form.rgb_blue.data]
        table["active_high"] = bool(form.active_high.data)
        data["leds"] = table

    left = _save_part(form, "leds", build, "LED pins", LED_FIELD_OF)
    if left is not None:
        _name_leds(form)
        return _page(leds=form, errors={"leds": left}, status=400)
    return redirect(url_for("settings.index") + "#leds")


def _name_leds(form: LedsForm) -> None:
    """ "GPIO 17 is already used by leds.line" → "... by the Line LED"."""
    colours = ("red", "green", "blue")

    def label(match: re.Match[str]) -> str:
        key = match.group(1)
        if key.startswith("rgb["):
            return f"the RGB LED's {colours[int(key[4])]} pin"
        return "the " + LED_LABELS.get(key, key)

    for item in form:
        item.errors = [_LED_KEY.sub(label, error) for error in item.errors]


_LED_KEY = re.compile(r"leds\.(rgb\[[0-2]\]|[a-z_]+)")


# --------------------------------------------------------------------------------------------
# The admin password


@bp.route("/settings/password", methods=["POST"])
@limiter.limit(LOGIN_LIMIT, methods=["POST"], deduct_when=failed_login)
def password() -> BaseResponse | tuple[str, int]:
    form = ChangePasswordForm(prefix="pw")
    if not form.validate_on_submit():
        return _page(password=form, status=400)
    admin = web().admin
    if not admin.verify(form.current.data or ""):
        form.current.errors = ["That is not the current password."]
        return _page(password=form, status=401)  # 401: counts towards the lock-out
    admin.set_password(form.password.data or "")
    # The change logs every session out, this one too: start again from the login page.
    session.clear()
    flash("The admin password was changed. Log in with the new password.", "ok")
    return redirect(url_for("auth.login"))


# --------------------------------------------------------------------------------------------
# A line's dial rules


def _dial_initial(config: Config, name: str) -> dict[str, Any]:
    line = config.line(name)
    assert line is not None
    d = line.dialing
    allow_words = [p for p in d.allow if p in dict(ALLOW_WORDS)]
    deny_words = [p for p in d.deny if p in dict(DENY_WORDS)]
    return {
        "country_code": d.country_code,
        "national_prefix": d.national_prefix or "",
        "no_national_prefix": d.national_prefix == "",
        "international_prefix": d.international_prefix or "",
        "dial_format": d.dial_format,
        "allow_words": allow_words,
        "allow_more": ", ".join(p for p in d.allow if p not in allow_words),
        "deny_words": deny_words,
        "deny_more": ", ".join(p for p in d.deny if p not in deny_words),
        "min_length": d.min_length,
        "extensions": d.extensions,
        "service_codes": d.service_codes,
        "letters": d.letters,
        "allow_uri": d.allow_uri,
    }


def _patterns(words: list[str] | None, more: str | None) -> list[str]:
    """Checked words (in the vocabulary's order) then typed prefixes; each once."""
    chosen = [w for w in WORDS if w in (words or [])]
    for pattern in split_patterns(more):
        if pattern not in chosen:
            chosen.append(pattern)
    return chosen


def _dial_data(form: DialingForm, table: dict[str, Any]) -> None:
    table["country_code"] = form.country_code.data or ""
    if form.no_national_prefix.data:
        table["national_prefix"] = ""
    elif form.national_prefix.data:
        table["national_prefix"] = form.national_prefix.data
    else:
        table.pop("national_prefix", None)  # the country's usual
    if form.international_prefix.data:
        table["international_prefix"] = form.international_prefix.data
    else:
        table.pop("international_prefix", None)
    table.update(
        dial_format=form.dial_format.data,
        dial_allow=_patterns(form.allow_words.data, form.allow_more.data),
        dial_deny=_patterns(form.deny_words.data, form.deny_more.data),
        min_length=form.min_length.data,
        extensions=bool(form.extensions.data),
        service_codes=bool(form.service_codes.data),
        letters=bool(form.letters.data),
        allow_uri=bool(form.allow_uri.data),
    )


def _try_number(config: Config, name: str, text: str) -> dict[str, str] | None:
    """What the line would dial for *text*, with the saved rules (the page's "try a number")."""
    line = config.line(name)
    if not text or line is None:
        return None
    try:
        dialled = DialPlan.from_line(line).normalise(text)
    except NumberRefused as exc:
        return {"typed": text, "refused": exc.reason}
    return {"typed": text, "display": dialled.display, "target": dialled.target}


def _dial_page(
    config: Config, name: str, form: DialingForm, errors: list[str], status: int = 200
) -> tuple[str, int]:
    line = config.line(name)
    assert line is not None
    code = line.dialing.country_code
    html = render_template(
        "settings/dialing.html",
        name=name,
        form=form,
        form_errors=errors,
        format_notes=DIAL_FORMAT_NOTES,
        allow_notes=ALLOW_NOTES,
        deny_notes=DENY_NOTES,
        usual_national=default_national_prefix(code) if code else "0",
        usual_international=default_international_prefix(code),
        tried=_try_number(config, name, request.args.get("try", "").strip()[:80]),
    )
    return html, status


@bp.route("/settings/dialing/<name>", methods=["GET", "POST"])
def dialing(name: str) -> BaseResponse | tuple[str, int]:
    try:
        current = config_edit.load()
    except ConfigError as exc:
        flash(f"The settings file cannot be read: {exc}", "error")
        return redirect(url_for("settings.index"))
    if current.line(name) is None:
        abort(404)
    if request.method == "GET":
        form = DialingForm(formdata=None, data=_dial_initial(current, name))
        return _dial_page(current, name, form, [])
    form = DialingForm()
    if not form.validate_on_submit():
        return _dial_page(current, name, form, [], 400)
    with config_edit.editing() as config:
        line = config.line(name)
        if line is None:
            abort(404)
        index = config.lines.index(line)
        data = config_to_dict(config)
        _dial_data(form, data["lines"][index])
        try:
            new = config_edit.validate(data, config)
        except ConfigInvalid as exc:
            problems = config_edit.problems_by_key(exc.problems, f"lines[{index}]", DIAL_FIELD_OF)
            return _dial_page(config, name, form, config_edit.attach(form, problems), 400)
        config_edit.save_and_apply(new, f"Dial rules of line {name}")
    return redirect(url_for("settings.dialing", name=name))

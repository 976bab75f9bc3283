"""The first-run wizard's forms: Telegram sign-in, companion bot, first line.

Secrets typed here (api_hash, login code, two-step password, bot token, SIP
passwords) never come back into the page: their inputs always render with an
empty value, whatever was posted.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

from flask_wtf import FlaskForm
from markupsafe import Markup
from wtforms import Field, PasswordField, RadioField, SelectField, StringField, ValidationError
from wtforms.fields.choices import SelectChoice  # type: ignore[attr-defined]  # not in the stubs
from wtforms.validators import InputRequired, Optional
from wtforms.widgets import TextInput

from gateway.config import HostPort

LINE_NAME = re.compile(r"[a-z0-9][a-z0-9_-]{0,31}")


class BlankTextInput(TextInput):
    """A visible text input that never renders a value (a pasted secret is checked, not echoed)."""

    def __call__(self, field: Field, **kwargs: Any) -> Markup:
        kwargs["value"] = ""
        return super().__call__(field, **kwargs)


def _strip(value: Any) -> Any:
    return value.strip() if isinstance(value, str) else value


# -- Telegram -------------------------------------------------------------------------------------


def _api_id(_form: FlaskForm, field: Field) -> None:
    text = field.data or ""
    if not (text.isascii() and text.isdigit() and 0 < int(text) < 2**31):
        raise ValidationError("The api_id is the number shown on my.telegram.org.")


class AppForm(FlaskForm):
    api_id = StringField(
        "api_id",
        filters=[_strip],
        validators=[InputRequired("Copy the api_id (a number) from my.telegram.org."), _api_id],
        render_kw={"inputmode": "numeric", "autocomplete": "off"},
    )
    api_hash = StringField(
        "api_hash",
        filters=[_strip],
        validators=[
            InputRequired("Copy the api_hash (32 letters and digits) from my.telegram.org.")
        ],
        widget=BlankTextInput(),
        render_kw={"autocomplete": "off", "spellcheck": "false"},
    )


class PhoneForm(FlaskForm):
    phone = StringField(
        "Phone number of the gateway account",
        filters=[_strip],
        validators=[InputRequired("Type the phone number, like +49 170 1234567.")],
        render_kw={"inputmode": "tel", "autocomplete": "off"},
    )


class CodeForm(FlaskForm):
    code = StringField(
        "Login code",
        filters=[_strip],
        validators=[InputRequired("Type the code Telegram sent.")],
        widget=BlankTextInput(),
        render_kw={"inputmode": "numeric", "autocomplete": "one-time-code"},
    )


class TwoStepForm(FlaskForm):
    password = PasswordField(
        "Two-step verification password",
        validators=[InputRequired("Type the account's two-step verification password.")],
        render_kw={"autocomplete": "off"},
    )


# -- Companion bot --------------------------------------------------------------------------------

# As gateway.admin_telegram.BOT_TOKEN checks it (the gateway has the last word).
_TOKEN = re.compile(r"[0-9]{5,15}:[A-Za-z0-9_-]{30,50}")


def _token(_form: FlaskForm, field: Field) -> None:
    if not _TOKEN.fullmatch(field.data or ""):
        raise ValidationError(
            "That does not look like a bot token: BotFather's token is a number, a colon and"
            " a long code (123456789:AAE…). Copy the whole line."
        )


class BotForm(FlaskForm):
    token = StringField(
        "Bot token",
        filters=[_strip],
        validators=[InputRequired("Paste the token BotFather sent."), _token],
        widget=BlankTextInput(),
        render_kw={"autocomplete": "off", "spellcheck": "false"},
    )


# -- First line -----------------------------------------------------------------------------------


def _line_name(_form: FlaskForm, field: Field) -> None:
    if not LINE_NAME.fullmatch(field.data or ""):
        raise ValidationError(
            "Use 1-32 small letters, digits, - or _, starting with a letter or digit"
            " (like home or landline)."
        )


def _server(_form: FlaskForm, field: Field) -> None:
    text = field.data or ""
    if not text:
        return
    try:
        HostPort.parse(text)
    except ValueError:
        raise ValidationError(
            "Not a server address: type a name like sip.example.net or an IP address,"
            " optionally with a port after a colon (sip.example.net:5070)."
        ) from None


def _country_code(_form: FlaskForm, field: Field) -> None:
    text = (field.data or "").lstrip("+")
    field.data = text
    if text and not (text.isascii() and text.isdigit() and 1 <= len(text) <= 3):
        raise ValidationError("The country code is 1 to 3 digits, like 44 or 49 (no + needed).")


def _sip_user(_form: FlaskForm, field: Field) -> None:
    text = field.data or ""
    if text and not re.fullmatch(r"[A-Za-z0-9\-_.!~*'()&=+$,;?/]{1,64}", text):
        raise ValidationError("Use letters, digits and - _ . only (no spaces, @ or :).")


@dataclass(frozen=True)
class Preset:
    key: str
    label: str
    registrar: str
    transport: str
    country_code: str
    hint: str


# Only presets whose registrar is the provider's documented one; "other" leaves every
# field to the household.
PROVIDER_PRESETS = [
    Preset(
        "sipgate",
        "sipgate (Germany)",
        "sipgate.de",
        "udp",
        "49",
        "The SIP ID and SIP password of the device, from your sipgate account.",
    ),
    Preset(
        "zadarma",
        "Zadarma",
        "sip.zadarma.com",
        "udp",
        "",
        "The SIP login (a number) and its password, from your Zadarma account.",
    ),
    Preset(
        "telnyx",
        "Telnyx (credentials connection)",
        "sip.telnyx.com",
        "udp",
        "1",
        "The user name and password of a SIP connection with credentials authentication.",
    ),
    Preset(
        "other",
        "Other provider or PBX",
        "",
        "udp",
        "",
        "The provider's setup page names the SIP server (registrar or proxy), the user name"
        " and the password.",
    ),
]
PRESETS = {preset.key: preset for preset in PROVIDER_PRESETS}


class LineForm(FlaskForm):
    kind = RadioField(
        "How is your phone line connected?",
        choices=[
            SelectChoice("provider", "A VoIP provider (a SIP account)"),
            SelectChoice("ata", "An ATA (Grandstream HT801/HT813) on the landline"),
        ],
        default="provider",
        validators=[InputRequired("Choose the kind of line.")],
    )
    name = StringField(
        "Line name",
        default="home",
        filters=[_strip],
        validators=[InputRequired("Give the line a name."), _line_name],
    )
    country_code = StringField(
        "Country code of the line",
        filters=[_strip],
        validators=[Optional(), _country_code],
        render_kw={"inputmode": "numeric", "placeholder": "44"},
    )
    # Provider
    preset = SelectField(
        "Provider",
        choices=[SelectChoice(preset.key, preset.label) for preset in PROVIDER_PRESETS],
        default="other",
    )
    registrar = StringField(
        "SIP server (registrar)",
        filters=[_strip],
        validators=[_server],
        render_kw={"placeholder": "sip.example.net", "autocomplete": "off"},
    )
    transport = SelectField(
        "Transport",
        choices=[SelectChoice("udp", "UDP (usual)"), SelectChoice("tcp", "TCP")],
        default="udp",
    )
    username = StringField(
        "User name", filters=[_strip], validators=[_sip_user], render_kw={"autocomplete": "off"}
    )
    password = PasswordField("Password", render_kw={"autocomplete": "new-password"})
    auth_username = StringField(
        "Authentication user name (optional)",
        filters=[_strip],
        validators=[_sip_user],
        render_kw={"autocomplete": "off"},
    )
    # ATA
    ata_username = StringField(
        "User name the ATA registers with",
        default="ht801",
        filters=[_strip],
        validators=[_sip_user],
        render_kw={"autocomplete": "off"},
    )
    ata_password = PasswordField(
        "Password the ATA registers with", render_kw={"autocomplete": "new-password"}
    )

    def validate(self, extra_validators: Any = None) -> bool:
        ok = bool(super().validate(extra_validators))
        if self.kind.data == "provider":
            preset = PRESETS.get(self.preset.data or "")
            if preset and not self.registrar.data:
                self.registrar.data = preset.registrar
            if not self.registrar.data:
                self.registrar.errors = [*self.registrar.errors, "Type the provider's SIP server."]
                ok = False
            if not self.username.data:
                self.username.errors = [*self.username.errors, "Type the account's user name."]
                ok = False
        elif self.kind.data == "ata" and not self.ata_username.data:
            self.ata_username.errors = [
                *self.ata_username.errors,
                "Choose a user name for the ATA (like ht801).",
            ]
            ok = False
        return ok

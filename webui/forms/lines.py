"""The line forms: provider and ATA lines (the [[lines]] tables of the settings file).

These checks give the household a plain message next to the field; the
gateway's own validator (gateway.config.parse_config) runs afterwards on the
whole file and has the last word.
"""

from __future__ import annotations

import ipaddress
import re
from typing import Any

from flask_wtf import FlaskForm
from wtforms import (
    BooleanField,
    Field,
    IntegerField,
    PasswordField,
    RadioField,
    SelectField,
    StringField,
    TextAreaField,
    ValidationError,
)
from wtforms.fields.choices import SelectChoice  # type: ignore[attr-defined]  # stubs lag
from wtforms.validators import InputRequired, NumberRange, Optional

from gateway.config import HostPort

NAME_PATTERN = re.compile(r"[a-z0-9][a-z0-9_-]{0,31}")

INCOMING = [
    ("members", "Ring the members"),
    ("echo", "Echo test"),
    ("reject", "Refuse calls"),
]
INCOMING_NOTES = {
    "members": "A call to this line rings the Telegram of every member of the line;"
    " the first to answer takes it.",
    "echo": "The gateway answers and plays back what the caller says: to check that"
    " sound flows both ways. Nobody is rung.",
    "reject": "Calls are refused (the caller hears that the call was declined).",
}
NO_ANSWER = [
    ("busy", "Busy tone (486 Busy Here)"),
    ("reject", "“Temporarily unavailable” (480)"),
]
DTMF = [
    ("rfc4733", "In the audio stream (RFC 4733; almost every provider)"),
    ("info", "As SIP INFO messages (some older PBXs)"),
]
CODECS = [
    ("PCMA,PCMU", "A-law first, then µ-law (Europe and most of the world)"),
    ("PCMU,PCMA", "µ-law first, then A-law (North America, Japan)"),
    ("PCMA", "A-law only"),
    ("PCMU", "µ-law only"),
]
TRANSPORTS = [("udp", "UDP (usual)"), ("tcp", "TCP")]
AUTH_ALGORITHMS = [
    ("MD5", "MD5 (every ATA)"),
    ("MD5,SHA-256", "MD5 and SHA-256"),
    ("SHA-256,MD5", "SHA-256, then MD5"),
    ("SHA-256", "SHA-256 only"),
]


def choices(pairs: list[tuple[str, str]]) -> Any:
    """(value, label) pairs as WTForms 3.3 wants them (tuples are deprecated there)."""
    return [SelectChoice(value, label) for value, label in pairs]


def split_list(text: str | None) -> list[str]:
    """One value per line or separated by commas or spaces."""
    return [part for part in re.split(r"[\s,;]+", text or "") if part]


def hostport_problem(text: str) -> str | None:
    """Why *text* is not a server address (host[:port]) in household words, or None."""
    try:
        HostPort.parse(text)
    except ValueError:
        pass
    else:
        return None
    port: str | None = None
    if text.startswith("[") and "]:" in text:
        port = text.rsplit("]:", 1)[1]
    elif text.count(":") == 1:
        port = text.split(":", 1)[1]
    if port is not None and not (port.isascii() and port.isdigit() and 1 <= int(port) <= 65535):
        shown = port or "nothing"
        return f"The port (after the colon) must be a number from 1 to 65535, not {shown}."
    return (
        "Not a server address: type a name like sip.example.net or an IP address,"
        " optionally with a port (sip.example.net:5070; IPv6 as [2001:db8::1]:5060)."
    )


class ServerAddress:
    """host[:port], required or optional."""

    def __init__(self, required: bool) -> None:
        self.required = required

    def __call__(self, _form: FlaskForm, field: Field) -> None:
        text = (field.data or "").strip()
        field.data = text
        if not text:
            if self.required:
                raise ValidationError("Type the provider's SIP server (from its setup page).")
            return
        problem = hostport_problem(text)
        if problem:
            raise ValidationError(problem)


def _line_name(_form: FlaskForm, field: Field) -> None:
    name = (field.data or "").strip()
    field.data = name
    if not NAME_PATTERN.fullmatch(name):
        raise ValidationError(
            "Use 1-32 small letters, digits, - or _, starting with a letter or digit"
            " (like home or landline)."
        )


def _sources(_form: FlaskForm, field: Field) -> None:
    for item in split_list(field.data):
        try:
            ipaddress.ip_network(item, strict=False)
        except ValueError:
            raise ValidationError(
                f"{item} is not an IP address or network (like 192.168.1.20 or 192.168.1.0/24)."
            ) from None


def _strip(value: Any) -> Any:
    return value.strip() if isinstance(value, str) else value


def country_digits(value: Any) -> Any:
    """A country code as typed ("+44 ") without the + and spaces."""
    return value.strip().lstrip("+").strip() if isinstance(value, str) else value


class LineForm(FlaskForm):
    """What every line has."""

    name = StringField("Name", validators=[InputRequired("Give the line a name."), _line_name])
    enabled = BooleanField("Line is in use", default=True)
    incoming = RadioField("Incoming calls", choices=choices(INCOMING), default="members")
    no_answer = SelectField("When no member answers, the caller hears", choices=choices(NO_ANSWER))
    country_code = StringField(
        "Country code",
        filters=[country_digits],
        validators=[Optional()],
        render_kw={"inputmode": "numeric"},
    )
    dtmf = SelectField("Key presses (DTMF) are sent", choices=choices(DTMF))
    codecs = SelectField("Audio codecs", choices=choices(CODECS))
    allow = TextAreaField("Also accept calls from", validators=[_sources])
    password = PasswordField("Password")
    clear_password = BooleanField("Remove the stored password")


class ProviderLineForm(LineForm):
    registrar = StringField("SIP server (registrar)", validators=[ServerAddress(required=True)])
    username = StringField(
        "User name", filters=[_strip], validators=[InputRequired("Type the account's user name.")]
    )
    auth_username = StringField("Authentication user name", filters=[_strip])
    domain = StringField("SIP domain", filters=[_strip])
    outbound_proxy = StringField("Outbound proxy", validators=[ServerAddress(required=False)])
    transport = SelectField("Transport", choices=choices(TRANSPORTS))
    register = BooleanField("Register with the provider", default=True)
    expires = IntegerField(
        "Registration lifetime (seconds)",
        default=600,
        validators=[
            InputRequired("Type a number of seconds (600 is usual)."),
            NumberRange(60, 86400, "Between 60 and 86400 seconds."),
        ],
        render_kw={"inputmode": "numeric"},
    )
    keepalive = IntegerField(
        "Keep-alive every (seconds)",
        default=25,
        validators=[InputRequired("Type a number of seconds (25 is usual; 0 = off).")],
        render_kw={"inputmode": "numeric"},
    )

    def validate_keepalive(self, field: IntegerField) -> None:
        if field.data is not None and not (field.data == 0 or 10 <= field.data <= 300):
            raise ValidationError("0 (off) or between 10 and 300 seconds.")


class AtaLineForm(LineForm):
    username = StringField("User name the ATA registers with", filters=[_strip])
    auth_algorithms = SelectField(
        "Password check (digest algorithm)", choices=choices(AUTH_ALGORITHMS)
    )

"""The settings forms: outgoing method, a line's dial rules, LED pins.

(The admin password is changed with webui.forms.auth.ChangePasswordForm.)
Plain messages here; the gateway's validator checks the whole file afterwards.
"""

from __future__ import annotations

import re

from flask_wtf import FlaskForm
from wtforms import (
    BooleanField,
    Field,
    IntegerField,
    RadioField,
    SelectMultipleField,
    StringField,
    ValidationError,
    widgets,
)
from wtforms.validators import InputRequired, NumberRange, Optional

from gateway.config import GPIO_MAX, LED_NAMES
from webui.forms.lines import choices, country_digits

OUTGOING = [
    ("invite", "Invite (the member calls the gateway)"),
    ("callback", "Callback (the gateway calls the member)"),
]
OUTGOING_NOTES = {
    "invite": "The member sends a number to the gateway's Telegram account. The gateway"
    " answers “call me now”; the member calls the gateway in Telegram and the number is"
    " dialled as soon as that call is up. Works whatever the member's privacy settings.",
    "callback": "The member sends a number and the gateway calls them back in Telegram;"
    " when they answer, the number is dialled. One tap less, but the member's Telegram"
    " must let the gateway account call them (their privacy settings).",
}

DIAL_FORMATS = [
    ("national", "Like a phone on this line dials"),
    ("e164", "International form with +"),
    ("international", "International form with the access prefix"),
    ("as-typed", "As the member typed it"),
]
DIAL_FORMAT_NOTES = {
    "national": "020 7946 0018 at home, 0049 30 1234567 abroad (+1: 1 212 555 0100)."
    " Every provider and an ATA's landline port understand it. The usual choice.",
    "e164": "+44 20 7946 0018 for every number. Some VoIP providers want this.",
    "international": "00 44 20 7946 0018, even for numbers in the same country.",
    "as-typed": "Only the separators are removed; a leading + is kept.",
}

# The words of dial_allow / dial_deny (gateway.calls.numbering.WORDS) the page offers as boxes.
ALLOW_WORDS = [
    ("national", "National numbers"),
    ("international", "Numbers abroad"),
    ("premium", "Premium and special-rate numbers"),
    ("emergency", "Emergency numbers"),
]
ALLOW_NOTES = {
    "national": "Landlines and mobiles in the line's own country. Premium numbers stay"
    " blocked while “premium” is blocked below.",
    "international": "Calls abroad cost more and are what fraudsters who break into"
    " phone lines make: allow them only if the household calls abroad.",
    "premium": "Expensive per-minute numbers: premium rate (09…, 0900…), shared cost,"
    " personal numbers, directory enquiries (118…). The classic way a hacked line costs money.",
    "emergency": "112, 999, 911… Better left off: the emergency service cannot see where"
    " the member really is, and a dropped Telegram call cannot be called back."
    " Emergency calls belong on the member's own phone.",
}
DENY_WORDS = [
    ("premium", "Premium and special-rate numbers"),
    ("international", "Numbers abroad"),
    ("national", "National numbers"),
]
DENY_NOTES = {
    "premium": "Recommended: blocks them even where an allowed pattern would cover them.",
    "international": "Blocks every number abroad, except more specific allowed prefixes.",
    "national": "Blocks every national number, except more specific allowed prefixes.",
}

_PATTERN = re.compile(r"\+?[0-9X*#]{1,16}")


def split_patterns(text: str | None) -> list[str]:
    """Patterns separated by commas; spaces and dashes inside one are ignored (+44 20 = +4420)."""
    parts = (re.sub(r"[\s().-]", "", part) for part in re.split(r"[,;\n]", text or ""))
    return [part for part in parts if part]


class _Boxes(SelectMultipleField):
    """Several checkboxes (a multiple choice without a list box)."""

    widget = widgets.ListWidget(prefix_label=False)
    option_widget = widgets.CheckboxInput()


def _patterns(_form: FlaskForm, field: Field) -> None:
    for item in split_patterns(field.data):
        if not _PATTERN.fullmatch(item):
            raise ValidationError(
                f"{item} is not a pattern: use a prefix with + like +447 or +4930"
                " (X = any digit), or a short number like 118."
            )


class CallsForm(FlaskForm):
    default_outgoing_method = RadioField(
        "New members call out by", choices=choices(OUTGOING), default="invite"
    )


class DialingForm(FlaskForm):
    country_code = StringField(
        "Country code",
        filters=[country_digits],
        validators=[Optional()],
        render_kw={"inputmode": "numeric"},
    )
    national_prefix = StringField("Trunk prefix", render_kw={"inputmode": "numeric"})
    no_national_prefix = BooleanField("National numbers are dialled without a trunk prefix")
    international_prefix = StringField(
        "International access prefix", render_kw={"inputmode": "numeric"}
    )
    dial_format = RadioField("Numbers are sent to the line", choices=choices(DIAL_FORMATS))
    allow_words = _Boxes("Allowed", choices=choices(ALLOW_WORDS))
    allow_more = StringField("More allowed prefixes", validators=[_patterns])
    deny_words = _Boxes("Blocked", choices=choices(DENY_WORDS))
    deny_more = StringField("More blocked prefixes", validators=[_patterns])
    min_length = IntegerField(
        "Shortest full number (digits)",
        default=7,
        validators=[
            InputRequired("Type a number of digits (7 is usual)."),
            NumberRange(1, 15, "Between 1 and 15 digits."),
        ],
        render_kw={"inputmode": "numeric"},
    )
    extensions = BooleanField("Short numbers and extensions")
    service_codes = BooleanField("Service codes with * and #")
    letters = BooleanField("Letters (1-800-FLOWERS)")
    allow_uri = BooleanField("SIP addresses (sip:someone@example.net)")

    def validate_national_prefix(self, field: StringField) -> None:
        field.data = (field.data or "").strip()
        if field.data and not re.fullmatch(r"[0-9]{1,4}", field.data):
            raise ValidationError("1 to 4 digits (empty = the country's usual).")

    def validate_international_prefix(self, field: StringField) -> None:
        field.data = (field.data or "").strip()
        if field.data and not re.fullmatch(r"[0-9]{1,5}", field.data):
            raise ValidationError("1 to 5 digits (empty = the country's usual).")


def _pin(label: str) -> IntegerField:
    return IntegerField(
        label,
        validators=[
            Optional(),
            NumberRange(0, GPIO_MAX, f"A GPIO number (BCM) from 0 to {GPIO_MAX}, or empty."),
        ],
        render_kw={"inputmode": "numeric"},
    )


LED_LABELS = {
    "line": "Line LED",
    "telegram": "Telegram LED",
    "ringing": "Ringing LED",
    "call": "Call LED",
    "missed": "Missed-call LED",
    "error": "Error LED",
}
LED_NOTES = {
    "line": "On: the lines are registered; blinking: registering or failed.",
    "telegram": "On: the gateway's Telegram account is connected.",
    "ringing": "On while a call rings.",
    "call": "On while a call is in progress.",
    "missed": "On while a missed call waits to be seen.",
    "error": "On when something needs attention.",
}
assert set(LED_LABELS) == set(LED_NAMES)


class LedsForm(FlaskForm):
    line = _pin(LED_LABELS["line"])
    telegram = _pin(LED_LABELS["telegram"])
    ringing = _pin(LED_LABELS["ringing"])
    call = _pin(LED_LABELS["call"])
    missed = _pin(LED_LABELS["missed"])
    error = _pin(LED_LABELS["error"])
    rgb_red = _pin("RGB LED: red")
    rgb_green = _pin("RGB LED: green")
    rgb_blue = _pin("RGB LED: blue")
    active_high = BooleanField("The LEDs light when the pin is high (LED to ground)")

    def validate_rgb_red(self, field: IntegerField) -> None:
        pins = [self.rgb_red.data, self.rgb_green.data, self.rgb_blue.data]
        if any(p is not None for p in pins) and any(p is None for p in pins):
            raise ValidationError("An RGB LED needs all three pins (red, green, blue), or none.")

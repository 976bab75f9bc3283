"""Members page forms: a new invitation, and a member's lines and ways of calling.

The line choices are filled from the settings file by the view (the lines
configured now); the gateway checks the names again.
"""

from __future__ import annotations

from typing import Any

from flask_wtf import FlaskForm
from wtforms import (
    RadioField,
    SelectField,
    SelectMultipleField,
    StringField,
    ValidationError,
    widgets,
)
from wtforms.fields.choices import SelectChoice  # type: ignore[attr-defined]  # not in the stubs
from wtforms.validators import Length

from gateway.store import NOTE_MAX

OUTGOING = [
    SelectChoice("invite", "Invite (they call the gateway)"),
    SelectChoice("callback", "Callback (the gateway calls them)"),
]
OUTGOING_NOTES = {
    "invite": "After the member sends a number, the gateway answers “call me now”; they call"
    " the gateway account in Telegram within a minute and the number is dialled. Works even"
    " where Telegram hides calls from accounts the member has not called.",
    "callback": "After the member sends a number, the gateway rings their Telegram; when they"
    " answer, the number is dialled and they get a keypad.",
}


def choice(value: str, label: str) -> Any:
    """One choice of a select, radio or checkbox field (WTForms 3.3 deprecates tuples)."""
    return SelectChoice(value, label)


class LineBoxes(SelectMultipleField):
    """One checkbox per configured line."""

    widget = widgets.ListWidget(prefix_label=False)
    option_widget = widgets.CheckboxInput()


class InviteForm(FlaskForm):
    lines = LineBoxes("Lines they may use")
    note = StringField(
        "Who it is for (optional)",
        validators=[Length(max=NOTE_MAX, message=f"At most {NOTE_MAX} characters.")],
    )

    def validate_lines(self, field: LineBoxes) -> None:
        if not field.data:
            raise ValidationError("Choose at least one line.")


class MemberForm(FlaskForm):
    lines = LineBoxes("Lines")
    outgoing_method = RadioField("Calling out", choices=OUTGOING)
    default_line = SelectField("Line for calling out", choices=[SelectChoice("", "Ask each time")])

    def validate_lines(self, field: LineBoxes) -> None:
        if not field.data:
            raise ValidationError("Choose at least one line (or remove the member).")

    def validate_default_line(self, field: SelectField) -> None:
        if field.data and field.data not in (self.lines.data or []):
            raise ValidationError("The line for calling out must be one of the member's lines.")

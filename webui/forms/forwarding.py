"""The forwarding helper's form: a number and a ring time (GET; nothing is saved)."""

from __future__ import annotations

from flask_wtf import FlaskForm
from wtforms import SelectField, StringField

from webui.forms.lines import choices

RING_TIMES = [(str(s), f"{s} seconds") for s in range(5, 35, 5)]  # GSM allows 5..30 in 5s


class ForwardingForm(FlaskForm):
    class Meta:
        csrf = False  # a GET form that changes nothing

    number = StringField("Forward calls to")
    country_code = StringField("Country code of that number")
    ring_time = SelectField(
        "Ring time before forwarding", choices=choices(RING_TIMES), default="20"
    )

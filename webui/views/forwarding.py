"""The forwarding helper: the GSM codes that forward a mobile's calls to the house line.

The household types the number calls should go to (the line's own number, as
the provider gave it) and a ring time; the page builds the standard GSM
supplementary-service codes (3GPP TS 22.030 / 22.082) to activate, check and
cancel each kind of forwarding, as tel: links to tap on the phone.  Nothing is
saved and nothing is sent anywhere: the codes are dialled on the mobile itself.
"""

from __future__ import annotations

import re
import unicodedata
from dataclasses import dataclass
from urllib.parse import quote

from flask import Blueprint, render_template, request

from gateway.calls.numbering import (
    country_code_problem,
    default_national_prefix,
    split_country_code,
)
from gateway.config import ConfigError
from webui import config_edit
from webui.forms.forwarding import RING_TIMES, ForwardingForm

bp = Blueprint("forwarding", __name__)

# Separators people type inside numbers; (0) after a country code is a trunk 0 not dialled.
_SEPARATORS = re.compile(r"[\s\-./()\u2010-\u2015\u00a0]")
_RING_TIMES = {value for value, _ in RING_TIMES}


class NumberProblem(ValueError):
    """A typed number that cannot be forwarded to; the message is for the page."""


def international(text: str, country_code: str = "") -> str:
    """*text* as ``+<country code><number>``: ``"030 123 4567"`` + ``"49"`` → ``"+49301234567"``.

    **Raises** :class:`NumberProblem` with a sentence for the household.
    """
    s = unicodedata.normalize("NFKC", text).strip()
    if not s:
        raise NumberProblem("Type the number calls should be forwarded to.")
    if any(c.isalpha() for c in s):
        raise NumberProblem(
            "A phone number has no letters: type it with digits, like +49 30 1234567."
        )
    if s.startswith("00"):
        s = "+" + s[2:]
    if s.startswith("+"):
        s = s.replace("(0)", "")
    s = _SEPARATORS.sub("", s)
    if not re.fullmatch(r"\+?[0-9]+", s):
        raise NumberProblem(
            "Only digits please, with spaces, dashes or brackets if you like, and + in front."
        )
    if not s.startswith("+"):
        if not country_code:
            raise NumberProblem(
                "Type the number with + and its country code (like +49 30 1234567),"
                " or fill in the country code below."
            )
        prefix = default_national_prefix(country_code)
        national = s[len(prefix) :] if prefix and s.startswith(prefix) else s
        s = "+" + country_code + national
    digits = s[1:]
    if split_country_code(digits) is None:
        raise NumberProblem("After the + comes a country code, which never starts with 0.")
    if len(digits) < 7:
        raise NumberProblem("That is too short for a whole phone number with its country code.")
    if len(digits) > 15:
        raise NumberProblem("That is too long: phone numbers have at most 15 digits.")
    return s


@dataclass(frozen=True)
class Code:
    code: str

    @property
    def tel(self) -> str:
        """A tel: link: # must be escaped (%23) or the phone drops everything after it."""
        return "tel:" + quote(self.code, safe="*+")


@dataclass(frozen=True)
class Forwarding:
    key: str
    title: str
    explanation: str
    activate: Code
    check: Code | None
    cancel: Code
    plain: Code | None = None  # the same without a ring time (the operator's default)


def codes(number: str, ring_time: int) -> list[Forwarding]:
    """The GSM codes for forwarding to *number* (``+49...``); *ring_time* in seconds, 5..30."""
    n, t = number, ring_time
    return [
        Forwarding(
            "unconditional",
            "Always (unconditional)",
            "Your mobile never rings: every call goes straight to the line.",
            Code(f"**21*{n}#"),
            Code("*#21#"),
            Code("##21#"),
        ),
        Forwarding(
            "no-answer",
            f"When you don't answer within {t} seconds",
            "Your mobile rings first; calls you don't take go to the line.",
            Code(f"**61*{n}**{t}#"),
            Code("*#61#"),
            Code("##61#"),
        ),
        Forwarding(
            "unreachable",
            "When your mobile is off or has no signal",
            "Calls go to the line while the mobile cannot be reached.",
            Code(f"**62*{n}#"),
            Code("*#62#"),
            Code("##62#"),
        ),
        Forwarding(
            "busy",
            "When you are on another call",
            "Calls that arrive while you are on the phone go to the line.",
            Code(f"**67*{n}#"),
            Code("*#67#"),
            Code("##67#"),
        ),
        Forwarding(
            "conditional",
            f"All three above at once (no answer within {t} s, unreachable, busy)",
            "The usual choice: your mobile rings as before, and whatever you miss goes to the"
            " line. Check each one with the codes above.",
            Code(f"**004*{n}**{t}#"),
            None,
            Code("##004#"),
            plain=Code(f"**004*{n}#"),
        ),
    ]


CANCEL_ALL = Code("##002#")


def _default_country() -> str:
    try:
        config = config_edit.load()
    except ConfigError:
        return ""
    return next(
        (line.dialing.country_code for line in config.lines if line.dialing.country_code), ""
    )


@bp.route("/forwarding")
def index() -> tuple[str, int]:
    form = ForwardingForm(request.args)
    submitted = "number" in request.args
    if not submitted:
        form.country_code.data = _default_country()
    number: str | None = None
    table: list[Forwarding] = []
    ring = form.ring_time.data if form.ring_time.data in _RING_TIMES else "20"
    form.ring_time.data = ring
    status = 200
    if submitted:
        country = (form.country_code.data or "").strip().lstrip("+")
        problem = country_code_problem(country) if country else None
        if problem:
            form.country_code.errors = [
                "Not a country code: type the digits after the + (44 UK, 49 Germany, 1 US)."
            ]
            status = 400
        else:
            try:
                number = international(form.number.data or "", country)
            except NumberProblem as exc:
                form.number.errors = [str(exc)]
                status = 400
            else:
                table = codes(number, int(ring))
    return (
        render_template(
            "forwarding/index.html",
            form=form,
            number=number,
            table=table,
            cancel_all=CANCEL_ALL,
        ),
        status,
    )

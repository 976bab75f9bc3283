"""What a member's typed number becomes on a line, and whether the line may dial it.

``DialPlan.from_line(line).normalise("020 7946 0018")`` gives a :class:`Dialled`
(``target`` for the SIP Request-URI, ``display`` for the member, ``e164``) or
raises :class:`NumberRefused` whose ``reason`` is a sentence for the member.

The steps, in order (docs/telephony.md, "Number normalisation"):

1. ``sip:``/``sips:`` addresses (only with ``allow_uri``); ``tel:`` is dropped.
2. Cleaning: spaces, dashes, dots, slashes and brackets separate digit groups;
   ``(0)`` after a country code is dropped; letters become keypad digits with
   ``letters`` (ITU E.161), otherwise they are refused.  ``*`` and ``#`` make a
   service code (only with ``service_codes``).
3. Emergency numbers (112, 999, 911... per country) are refused unless
   ``dial_allow`` names ``"emergency"``: a gateway cannot give the caller's
   location, and the provider may route the call to the wrong place.
4. ``+`` or the international prefix: an international number.  Fewer than
   ``min_length`` digits: a short number (extension, service number; only with
   ``extensions``).  Otherwise national: trunk prefix + national number (NANP:
   also 10 digits without the 1).
5. Permission: the longest matching ``dial_allow`` / ``dial_deny`` pattern
   decides, allow winning a tie; nothing matching means refused.
6. The target in the line's ``dial_format``.

Numbering data lives in :mod:`gateway.calls.numbering`.
"""

from __future__ import annotations

import re
import unicodedata
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from gateway.calls import numbering
from gateway.config import DialFormat, HostPort
from gateway.errors import LinegramError

if TYPE_CHECKING:
    from gateway.config import LineConfig

__all__ = ["DialFormat", "DialPlan", "Dialled", "NumberRefused", "looks_like_number"]


# Separators between digit groups (besides any white space): ASCII and the
# Unicode dashes phones put into copied numbers.  Input is NFKC-normalised
# first, so full-width digits, "＋" and no-break spaces need no entries.
_SEPARATORS = frozenset("-./()[]\u2010\u2011\u2012\u2013\u2014\u2015\u2212")
_TRUNK_IN_BRACKETS = re.compile(r"\(\s*0\s*\)")
# ITU-T E.161 keypad letters.
_KEYPAD = {
    letter: digit
    for digit, letters in zip(
        "23456789", ("ABC", "DEF", "GHI", "JKL", "MNO", "PQRS", "TUV", "WXYZ"), strict=True
    )
    for letter in letters
}
# RFC 3261 §25.1 user part, without escapes, parameters or headers.
_URI_USER = re.compile(r"[A-Za-z0-9\-_.!~*'()&=+$,/]{1,64}")
_URI = re.compile(r"(sips?):([^@\s]+)@(\S+)", re.IGNORECASE)
_MAX_INPUT = 80
# Refusals that mean "not a valid number" rather than "not permitted".
_FORMAT_PROBLEMS = frozenset({"invalid", "no-country", "no-area-code", "length", "short"})


class NumberRefused(LinegramError, ValueError):
    """A number the line cannot or may not dial.

    ``reason`` is a sentence for the member; ``code`` says which rule refused it
    (``"empty"``, ``"invalid"``, ``"letters"``, ``"uri"``, ``"service"``,
    ``"short"``, ``"emergency"``, ``"no-country"``, ``"no-area-code"``,
    ``"length"``, ``"premium"``, ``"international"``, ``"national"``,
    ``"denied"``, ``"not-allowed"``).
    """

    def __init__(self, reason: str, code: str = "") -> None:
        super().__init__(reason)
        self.reason = reason
        self.code = code


@dataclass(frozen=True)
class Dialled:
    target: str  # the Request-URI user part, or a whole sip:/sips: URI
    display: str  # for the member: "+44 20 7946 0018", "*21#", "sip:alice@example.net"
    e164: str  # "+442079460018" when known, else ""


def looks_like_number(text: str) -> bool:
    """Is *text* (a chat message) meant as a number to dial?

    True for digits with the usual separators, ``+``, ``*`` and ``#``
    (``"020 7946 0018"``, ``"*21#"``), for ``sip:user@host`` and ``tel:``, and
    for vanity numbers that start like a number (``"1-800-FLOWERS"``); false
    for ordinary text (``"hello"``, ``"Room 101"``, ``"100 apples"``).
    """
    s = unicodedata.normalize("NFKC", text).strip()
    if not s or len(s) > _MAX_INPUT:
        return False
    low = s.lower()
    if low.startswith(("sip:", "sips:")):
        return "@" in s and not any(c.isspace() for c in s)
    if low.startswith("tel:"):
        s = s[4:]
    body = s[1:] if s.startswith("+") else s
    digits = letters = 0
    for c in body:
        if unicodedata.decimal(c, None) is not None:
            digits += 1
        elif c.isascii() and c.isalpha():
            letters += 1
        elif not _is_separator(c) and c not in "*#":
            return False
    if not letters:
        return digits >= 1
    if not s[0].isdigit() and s[0] != "+":
        return False
    # Vanity numbers are written in capitals (1-800-FLOWERS) or as one word.
    lettered = "".join(c for c in body if c.isalpha())
    return digits >= 3 and (lettered.isupper() or not any(c.isspace() for c in body))


def _is_separator(c: str) -> bool:
    return c in _SEPARATORS or c.isspace()


@dataclass
class _Typed:
    plus: bool = False
    groups: list[str] = field(default_factory=list)  # digit (and * #) groups as typed
    letters: bool = False
    original: str = ""  # the text as typed (for showing a vanity number)

    @property
    def compact(self) -> str:
        return "".join(self.groups)


def _drop(groups: list[str], count: int) -> list[str]:
    """*groups* without their first *count* characters (emptied groups removed)."""
    out: list[str] = []
    for group in groups:
        if count >= len(group):
            count -= len(group)
            continue
        out.append(group[count:])
        count = 0
    return out


def _shown(text: str) -> str:
    text = " ".join(text.split())
    return text if len(text) <= 40 else text[:39] + "…"


def _quoted(text: str) -> str:
    return f"“{_shown(text)}”"


@dataclass(frozen=True)
class DialPlan:
    """A line's dialling rules; the fields are the line's ``[[lines]]`` dialling keys.

    *national_prefix* and *international_prefix* left at ``None`` follow
    *country_code* (``"0"``/``"00"`` for most countries, ``"1"``/``"011"`` for +1).
    """

    line: str = ""  # the line's name, for messages
    country_code: str = ""  # "" = unknown: only + / international numbers, all international
    national_prefix: str | None = None
    international_prefix: str | None = None
    dial_format: DialFormat = "national"
    allow: tuple[str, ...] = ("national",)
    deny: tuple[str, ...] = ("premium",)
    min_length: int = 7
    extensions: bool = False
    service_codes: bool = False
    letters: bool = False
    allow_uri: bool = False

    def __post_init__(self) -> None:
        if self.national_prefix is None:
            national = numbering.default_national_prefix(self.country_code)
            object.__setattr__(self, "national_prefix", national)
        if self.international_prefix is None:
            international = numbering.default_international_prefix(self.country_code)
            object.__setattr__(self, "international_prefix", international)

    @classmethod
    def from_line(cls, line_config: LineConfig) -> DialPlan:
        """The plan of a configured line (its ``dialing`` settings)."""
        d = line_config.dialing
        return cls(
            line=line_config.name,
            country_code=d.country_code,
            national_prefix=d.national_prefix,
            international_prefix=d.international_prefix,
            dial_format=d.dial_format,
            allow=d.allow,
            deny=d.deny,
            min_length=d.min_length,
            extensions=d.extensions,
            service_codes=d.service_codes,
            letters=d.letters,
            allow_uri=d.allow_uri,
        )

    # -- the steps --------------------------------------------------------------------------

    def normalise(self, text: str) -> Dialled:
        """The number typed as *text*, ready to dial.  **Raises** :class:`NumberRefused`."""
        s = unicodedata.normalize("NFKC", text).strip()
        if not s:
            raise NumberRefused(
                "Send a phone number to call, like 020 7946 0018 or +44 20 7946 0018.", "empty"
            )
        if len(s) > _MAX_INPUT:
            raise NumberRefused(
                f"That is too long for a phone number ({len(s)} characters).", "invalid"
            )
        low = s.lower()
        if low.startswith(("sip:", "sips:")):
            return self._uri(s)
        if low.startswith("tel:"):
            s = s[4:].strip()
        typed = self._scan(s)
        if any(c in "*#" for c in typed.compact):
            return self._service(typed)
        return self._number(typed, short_ok=self.extensions)

    def _scan(self, s: str) -> _Typed:
        typed = _Typed(original=_shown(s))
        if s.startswith("+"):
            typed.plus = True
            s = _TRUNK_IN_BRACKETS.sub(" ", s[1:], count=1)
        group = ""
        for c in s:
            digit = unicodedata.decimal(c, None)
            if digit is not None:
                group += str(digit)
            elif c in "*#":
                group += c
            elif _is_separator(c):
                if group:
                    typed.groups.append(group)
                group = ""
            elif c.isascii() and c.isalpha():
                if not self.letters:
                    raise NumberRefused(
                        f"{_quoted(s)} has letters; letters are off for {self._name}"
                        " (send the number in digits).",
                        "letters",
                    )
                group += _KEYPAD[c.upper()]
                typed.letters = True
            elif c == "+":
                raise NumberRefused(
                    f"{_quoted(s)}: a + can only stand at the start of a number.", "invalid"
                )
            else:
                raise NumberRefused(
                    f"{_quoted(s)} cannot be dialled: {_quoted(c)} is not a digit. Send digits,"
                    " with + and the country code for numbers abroad.",
                    "invalid",
                )
        if group:
            typed.groups.append(group)
        if not any(c.isdigit() for c in typed.compact):
            raise NumberRefused(
                f"{_quoted(s)} has no digits to dial. Send a phone number, like"
                " 020 7946 0018 or +44 20 7946 0018.",
                "empty",
            )
        return typed

    def _number(self, typed: _Typed, *, short_ok: bool) -> Dialled:
        digits = typed.compact
        if typed.plus:
            return self._e164(typed, digits, consumed=0)
        if digits in self._emergency:
            return self._emergency_call(digits)
        intl = self.international_prefix or ""
        if intl and digits.startswith(intl) and len(digits) > len(intl):
            return self._e164(typed, digits[len(intl) :], consumed=len(intl))
        if len(digits) < self.min_length:
            return self._short(digits, short_ok=short_ok)
        cc = self.country_code
        if not cc:
            raise NumberRefused(
                f"{self._name.capitalize()} does not know its country, so send {digits} with"
                " + and the country code (like +44 20 7946 0018); the owner can set the"
                " line's country_code.",
                "no-country",
            )
        trunk = self.national_prefix or ""
        shown = _shown(" ".join(typed.groups))
        abroad = "numbers abroad start with + and the country code"
        if cc == "1":
            # NANP: 1 + area code + number, or the 10 digits alone, whatever the trunk prefix.
            skip = 1 if len(digits) >= 11 and digits[0] == "1" else 0
            if typed.letters:
                digits = digits[: skip + 10]  # 1-800-MATTRESS: extra letters are not dialled
            if len(digits) - skip != 10:
                raise NumberRefused(
                    f"{shown} is not a US or Canadian number: those have 10 digits, the area"
                    f" code and the number (like 212 555 0100); {abroad}.",
                    "no-area-code",
                )
        elif trunk and digits.startswith(trunk):
            skip = len(trunk)
        elif not trunk:
            skip = 0
        else:
            raise NumberRefused(
                f"{shown} has no area code: on {self._name}, national numbers start with"
                f" {trunk} and the area code; {abroad}.",
                "no-area-code",
            )
        return self._e164(typed, cc + digits[skip:], consumed=skip, national=True)

    def _e164(self, typed: _Typed, full: str, *, consumed: int, national: bool = False) -> Dialled:
        """Check and format the international number *full* (digits after the +).

        *consumed* digits of *typed* precede the number proper (a prefix); for a
        *national* entry the country code was not typed.
        """
        split = numbering.split_country_code(full)
        if split is None or not split[1]:
            raise NumberRefused(
                f"+{full} is not a phone number: after + (or {self.international_prefix})"
                " comes the country code, like +44 for the UK or +1 for the US.",
                "invalid",
            )
        cc, nsn = split
        country = numbering.COUNTRIES.get(cc)
        if not national:
            consumed += len(cc)
            # "+44 020 ..." - the trunk 0 is often typed after the country code by mistake.
            trunk = numbering.default_national_prefix(cc)
            if trunk and (trunk[0] == "0" or cc == "1") and nsn.startswith(trunk):
                nsn = nsn[len(trunk) :]
                consumed += len(trunk)
        if typed.letters and cc == "1" and len(nsn) > 10:
            nsn = nsn[:10]  # 1-800-MATTRESS: extra letters are not dialled
        low, high = country.nsn_lengths if country else (4, 15 - len(cc))
        if not low <= len(nsn) <= high:
            if country is None:
                expected = "an international number has at most 15 digits with the country code"
                if len(nsn) < low:
                    expected = "that is too short for a phone number"
            else:
                span = str(low) if low == high else f"{low} to {high}"
                expected = f"{country.name} numbers have {span}"
            raise NumberRefused(
                f"+{cc} {nsn} has {len(nsn)} digits after +{cc}; {expected}.", "length"
            )
        e164 = f"+{cc}{nsn}"
        foreign = bool(country and country.foreign and nsn[:3] in country.foreign)
        is_national = cc == self.country_code and not foreign
        display = self._display(cc, nsn, _drop(typed.groups, consumed))
        if typed.letters:
            display += f" ({typed.original})"
        self._permit(e164, cc, nsn, display, is_national=is_national, foreign=foreign)
        return Dialled(self._target(typed, cc, nsn, e164), display, e164)

    @staticmethod
    def _display(cc: str, nsn: str, groups: list[str]) -> str:
        if cc == "1" and len(nsn) == 10:
            return f"+1 {nsn[:3]} {nsn[3:6]} {nsn[6:]}"
        if "".join(groups) != nsn:
            groups = [nsn]
        return f"+{cc} " + " ".join(groups)

    def _target(self, typed: _Typed, cc: str, nsn: str, e164: str) -> str:
        fmt = self.dial_format
        intl = self.international_prefix or ""
        if fmt == "e164":
            return e164
        if fmt == "international":
            return intl + cc + nsn
        if fmt == "national":
            if cc == self.country_code:
                return (self.national_prefix or "") + nsn
            return intl + cc + nsn
        return ("+" if typed.plus else "") + typed.compact

    # -- short numbers, emergency, service codes, URIs ------------------------------------------

    @property
    def _emergency(self) -> frozenset[str]:
        return numbering.emergency_numbers(self.country_code)

    def _emergency_call(self, digits: str) -> Dialled:
        if "emergency" in self.allow:
            return Dialled(digits, digits, "")
        raise NumberRefused(
            f"{digits} is an emergency number. Linegram does not place emergency calls: the"
            " line cannot tell where you are and may reach the wrong emergency centre."
            " Call from a mobile phone or a landline.",
            "emergency",
        )

    def _short(self, digits: str, *, short_ok: bool) -> Dialled:
        if not short_ok:
            raise NumberRefused(
                f"{digits} is too short for a phone number: {self._name} dials numbers of at"
                f" least {self.min_length} digits with the area code (short numbers and"
                " extensions are off).",
                "short",
            )
        self._permit_short(digits)
        return Dialled(digits, digits, "")

    def _service(self, typed: _Typed) -> Dialled:
        code = typed.compact
        if typed.plus:
            raise NumberRefused(f"+{code}: a number with + cannot contain * or #.", "invalid")
        if not self.service_codes:
            raise NumberRefused(
                f"Service codes like {code} are off for {self._name}"
                " (they can change the line's settings at the provider).",
                "service",
            )
        for run in re.split(r"[*#]", " ".join(typed.groups)):
            self._check_code_argument(run.split())
        self._permit_short(code)
        return Dialled(code, code, "")

    def _check_code_argument(self, parts: list[str]) -> None:
        """A code may carry a number (``**21*number#``, ``*72 number``): it must pass too.

        The digits between ``*``/``#`` are read as one number and, when a code of
        at most 3 digits is separated by a space (``*72 020 7946 0018``), also
        without it.  Every reading that is a valid number must be permitted,
        and at least one reading must be valid.
        """
        readings = ["".join(parts)]
        if len(parts) > 1 and len(parts[0]) <= 3:
            readings.append("".join(parts[1:]))
        invalid: NumberRefused | None = None
        valid = False
        for digits in readings:
            if len(digits) < self.min_length:
                continue
            try:
                self._number(_Typed(groups=[digits]), short_ok=False)
                valid = True
            except NumberRefused as exc:
                if exc.code not in _FORMAT_PROBLEMS:
                    raise
                invalid = invalid or exc
        if invalid is not None and not valid:
            raise invalid

    def _uri(self, text: str) -> Dialled:
        if not self.allow_uri:
            raise NumberRefused(
                f"SIP addresses are off for {self._name}; send a phone number instead.", "uri"
            )
        m = _URI.fullmatch(text)
        if m is None or not _URI_USER.fullmatch(m[2]):
            raise NumberRefused(
                f"{_quoted(text)} is not a SIP address like sip:alice@example.net"
                " (parameters and headers are not supported).",
                "invalid",
            )
        scheme, user, host = m[1].lower(), m[2], m[3]
        try:
            hostport = HostPort.parse(host)
        except ValueError as exc:
            raise NumberRefused(f"{_quoted(text)}: {exc}.", "invalid") from None
        e164 = ""
        if re.fullmatch(r"\+?\d+", user):
            # A number at some host still goes to the phone network: same rules.
            typed = _Typed(plus=user.startswith("+"), groups=[user.lstrip("+")])
            e164 = self._number(typed, short_ok=True).e164
        uri = f"{scheme}:{user}@{hostport}"
        return Dialled(uri, uri, e164)

    # -- permission ----------------------------------------------------------------------------

    def _permit(
        self, e164: str, cc: str, nsn: str, display: str, *, is_national: bool, foreign: bool
    ) -> None:
        allow = self._best(self.allow, e164, cc, is_national)
        deny = self._best(self.deny, e164, cc, is_national)
        if allow[0] >= 0 and allow[0] >= deny[0]:
            return
        where = self._name
        settings = "allow them in the line's settings"
        pattern, kind = deny[1], deny[2]
        if deny[0] >= 0 and pattern == "premium":
            phrase = numbering.KIND_PHRASES.get(kind, "a premium-rate number")
            raise NumberRefused(
                f"{display} is {phrase}; premium numbers are off for {where} ({settings}).",
                "premium",
            )
        if deny[0] >= 0 and pattern == "national":
            raise NumberRefused(
                f"{display} is a national number; national calls are off for {where}.",
                "national",
            )
        if deny[0] >= 0 and pattern != "international":
            raise NumberRefused(
                f'{display} is blocked for {where} (dial_deny has "{pattern}").', "denied"
            )
        if not is_national:
            if not self.country_code:
                why = f"{where} has no country set, so every number counts as international"
                settings = "set the line's country_code, or allow international calls"
            elif foreign:
                why = f"area code {nsn[:3]} is outside the US and Canada"
            else:
                why = f"+{cc} is another country"
            raise NumberRefused(
                f"{display} is an international number ({why}); international calls are off"
                f" for {where} ({settings}).",
                "international",
            )
        raise NumberRefused(
            f"{display} is not among the numbers {where} may call (its dial_allow list).",
            "not-allowed",
        )

    def _best(
        self, patterns: tuple[str, ...], e164: str, cc: str, is_national: bool
    ) -> tuple[int, str, str]:
        """(specificity, pattern, premium kind) of the most specific match; -1 = none."""
        best = (-1, "", "")
        for pattern in patterns:
            kind = ""
            if pattern == "national":
                score = 1 + len(cc) if is_national else -1
            elif pattern == "international":
                score = 1 if not is_national else -1
            elif pattern == "premium":
                found = numbering.premium_kind(e164)
                score, kind = (len(found[0]), found[1]) if found else (-1, "")
            elif pattern.startswith("+"):
                score = len(pattern) if numbering.prefix_matches(pattern, e164) else -1
            else:
                score = -1  # short-number patterns and "emergency"
            if score > best[0]:
                best = (score, pattern, kind)
        return best

    def _permit_short(self, text: str) -> None:
        """Short numbers and service codes: allowed unless a more specific deny matches."""
        allow = self._best_short(self.allow, text)
        deny = self._best_short(self.deny, text)
        if deny[0] < 0 or allow[0] >= deny[0]:
            return
        if deny[1] == "premium":
            phrase = numbering.KIND_PHRASES.get(deny[2], "a premium-rate number")
            raise NumberRefused(
                f"{text} is {phrase}; premium numbers are off for {self._name}"
                " (allow them in the line's settings).",
                "premium",
            )
        raise NumberRefused(
            f'{text} is blocked for {self._name} (dial_deny has "{deny[1]}").', "denied"
        )

    def _best_short(self, patterns: tuple[str, ...], text: str) -> tuple[int, str, str]:
        best = (-1, "", "")
        for pattern in patterns:
            kind = ""
            if pattern == "premium":
                found = numbering.short_premium_kind(self.country_code, text)
                score, kind = (len(found[0]), found[1]) if found else (-1, "")
            elif pattern in numbering.WORDS or pattern.startswith("+"):
                score = -1
            else:
                score = len(pattern) if numbering.prefix_matches(pattern, text) else -1
            if score > best[0]:
                best = (score, pattern, kind)
        return best

    @property
    def _name(self) -> str:
        return f"line {self.line}" if self.line else "this line"

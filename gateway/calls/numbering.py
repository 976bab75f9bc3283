"""Numbering facts for judging a dialled number: country codes, trunk and
international prefixes, premium-rate and emergency numbers.  Data and pure
functions only; :mod:`gateway.config` validates with it, :mod:`.dialplan`
dials with it.

Sources (checked November 2026; docs/telephony.md has the summary):

* country codes, trunk and international prefixes: ITU-T E.164 and the
  region metadata of Google's libphonenumber (python-phonenumbers, Oct 2024);
* GB: Ofcom National Telephone Numbering Plan (09 premium rate, 084/087
  service charge, 070 personal numbering, 076 pagers except 07624 Isle of Man
  mobiles, 118 directory enquiries);
* DE: Bundesnetzagentur Nummernplan ((0)900 Premium-Dienste, (0)137
  Massenverkehr, (0)180 Service-Dienste, (0)181-189 Nutzergruppen, (0)700
  persönliche Rufnummern, 118xy Auskunft, 010xy Betreiberauswahl, (0)190 and
  019x former premium and online-service ranges, 0164/0168/0169 paging);
* FR: ARCEP plan de numérotation (08 services à valeur ajoutée except the
  080 free and normal-rate block, 089 premium, 118xyz directory);
* NANP: NANPA (900 premium; NXX 976, the historic local premium exchanges;
  the Caribbean area codes, which are foreign countries inside +1; 411);
* NL (ACM: 0900/0906/0909 premium, 084/087 personal, 066 paging, 18xy),
  IT (AGCOM: 89x premium, 144/163/164/166, 84x shared cost, 178/199 personal,
  12xy directory), ES (CNMC: 803/806/807 premium, 901/902 shared cost, 905
  mass calling, 70 personal, 118xy), PL (UKE: 70x premium, 801 shared cost,
  118xyz);
* everywhere: the international premium-rate (+979), shared-cost (+808),
  personal (+878) and satellite/network codes (+870, +881, +882, +883, +888),
  the usual targets of international revenue-share fraud.

Emergency numbers per country follow libphonenumber's short-number data and
the regulators' lists.  Nothing here claims completeness: the lists are what
Linegram refuses by default, and a line's ``dial_allow`` / ``dial_deny`` refine them.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass

# --------------------------------------------------------------------------------------------
# Country calling codes (ITU-T E.164)

# Country codes form a prefix code: the one-digit codes are 1 and 7, these are
# the two-digit ones, and every other code has three digits.
_TWO_DIGIT_CODES = frozenset(
    "20 27 30 31 32 33 34 36 39 40 41 43 44 45 46 47 48 49 51 52 53 54 55 56 57 58"
    " 60 61 62 63 64 65 66 81 82 84 86 90 91 92 93 94 95 98".split()
)


def split_country_code(digits: str) -> tuple[str, str] | None:
    """``"442079460018"`` -> ``("44", "2079460018")``; ``None`` if it cannot start a number."""
    if not digits or not digits.isascii() or not digits.isdigit() or digits[0] == "0":
        return None
    size = _code_size(digits)
    if len(digits) < size:
        return None
    return digits[:size], digits[size:]


def country_code_problem(code: str) -> str | None:
    """Why *code* is not a country calling code, quoting it (``None`` when it is one)."""
    if not (code.isascii() and code.isdigit() and 1 <= len(code) <= 3):
        return f'must be 1-3 digits (the country calling code without +, e.g. "44"), got {_q(code)}'
    if code[0] == "0":
        return f"must be a country calling code (none starts with 0), got {_q(code)}"
    size = _code_size(code)
    if len(code) > size:
        return f"must be a country calling code, got {_q(code)} (did you mean {_q(code[:size])}?)"
    if len(code) < size:
        return f"must be a country calling code, got {_q(code)} (too short)"
    return None


def _code_size(digits: str) -> int:
    if digits[0] in "17":
        return 1
    return 2 if digits[:2] in _TWO_DIGIT_CODES else 3


def _q(text: str) -> str:
    return json.dumps(text, ensure_ascii=False)


# Trunk ("national") prefixes that are not "0" (libphonenumber region metadata).
_NATIONAL_PREFIX = {"1": "1", "7": "8", "36": "06", "375": "8", "692": "1", "993": "8"}
# Countries that dial national numbers without any trunk prefix.
_NO_NATIONAL_PREFIX = frozenset(
    "30 34 39 45 47 48 52 56 65 216 220 221 222 223 224 225 226 227 228 229 230 235 236"
    " 237 238 239 240 241 242 244 245 246 247 248 253 257 258 266 267 268 269 290 297"
    " 298 299 350 351 352 354 356 357 371 372 376 378 420 500 501 502 503 504 505 506"
    " 507 509 592 597 599 670 672 673 674 675 676 677 678 679 680 681 682 683 685 687"
    " 688 689 690 691 852 853 960 965 968 973 974 975 992 998".split()
)
# International access prefixes that are not "00" (the preferred one where a
# country has several).
_INTERNATIONAL_PREFIX = {
    "1": "011",
    "7": "810",
    "53": "119",
    "61": "0011",
    "81": "010",
    "234": "009",
    "238": "0",
    "254": "000",
    "375": "810",
    "592": "001",
    "685": "0",
    "692": "011",
    "976": "001",
    "992": "810",
    "993": "810",
}


def default_national_prefix(country_code: str) -> str:
    """The trunk prefix dialled before national numbers: ``"0"``, ``"1"`` (NANP), ``""``..."""
    if not country_code:
        return "0"
    if country_code in _NO_NATIONAL_PREFIX:
        return ""
    return _NATIONAL_PREFIX.get(country_code, "0")


def default_international_prefix(country_code: str) -> str:
    """The international access prefix: ``"00"``, ``"011"`` (NANP), ``"810"``..."""
    return _INTERNATIONAL_PREFIX.get(country_code, "00")


# --------------------------------------------------------------------------------------------
# Countries Linegram knows in detail


@dataclass(frozen=True)
class Country:
    code: str
    name: str  # as in "a {name} number"
    nsn_lengths: tuple[int, int]  # national significant number: shortest, longest
    emergency: frozenset[str]
    # Short numbers that cost (directory enquiries...), as bare digit prefixes.
    short_premium: tuple[tuple[str, str], ...] = ()
    # Area codes inside this country code that are other countries (NANP).
    foreign: frozenset[str] = frozenset()


# Dialled as typed; 112 and 911 reach emergency services on most networks.
_ALWAYS_EMERGENCY = frozenset({"112", "911"})
# For a line whose country is not set: the common ones around the world.
UNKNOWN_COUNTRY_EMERGENCY = frozenset({"000", "110", "112", "119", "911", "999"})

COUNTRIES: dict[str, Country] = {
    c.code: c
    for c in (
        Country(
            "1",
            "US/Canada",
            (10, 10),
            frozenset({"911"}),
            short_premium=(("411", "directory"),),
            # Other countries with +1 numbers (NANPA): calls there cost international rates.
            foreign=frozenset(
                "242 246 264 268 284 345 441 473 649 658 664 721 758 767 784 809 829 849"
                " 868 869 876".split()
            ),
        ),
        Country(
            "44",
            "UK",
            (7, 10),
            frozenset({"999"}),
            short_premium=(("118", "directory"),),
        ),
        Country(
            "49",
            "German",
            (4, 13),
            frozenset({"110"}),
            short_premium=(("118", "directory"),),
        ),
        Country(
            "33",
            "French",
            (9, 9),
            frozenset({"15", "17", "18", "114", "115", "119", "191", "196", "197"}),
            short_premium=(("118", "directory"),),
        ),
        Country(
            "31",
            "Dutch",
            (5, 11),
            frozenset(),
            short_premium=(("18", "directory"),),
        ),
        Country(
            "39",
            "Italian",
            (6, 12),
            frozenset({"113", "115", "118", "1515", "1530"}),
            short_premium=(("12", "directory"),),
        ),
        Country(
            "34",
            "Spanish",
            (9, 9),
            frozenset({"061", "062", "080", "085", "088", "091", "092"}),
            short_premium=(("118", "directory"),),
        ),
        Country(
            "48",
            "Polish",
            (6, 10),
            frozenset({"997", "998", "999"}),
            short_premium=(("118", "directory"),),
        ),
    )
}


def emergency_numbers(country_code: str) -> frozenset[str]:
    """Short numbers that reach emergency services on a line in *country_code*."""
    country = COUNTRIES.get(country_code)
    if country is None:
        return UNKNOWN_COUNTRY_EMERGENCY
    return country.emergency | _ALWAYS_EMERGENCY


# --------------------------------------------------------------------------------------------
# Premium and special-rate numbers (the "premium" pattern word)

# (E.164 prefix, kind); "X" is any digit.  The longest matching entry decides,
# and kind None marks an exception inside a wider entry.
PREMIUM: tuple[tuple[str, str | None], ...] = (
    # GB (Ofcom)
    ("+449", "premium-rate"),
    ("+4484", "service-charge"),
    ("+4487", "service-charge"),
    ("+4470", "personal"),
    ("+4476", "pager"),
    ("+447624", None),  # Isle of Man mobiles inside the 076 pager block
    # DE (Bundesnetzagentur)
    ("+49900", "premium-rate"),
    ("+49137", "mass-calling"),
    ("+49138", "mass-calling"),
    ("+49180", "shared-cost"),
    ("+4918", "user-group"),
    ("+4919", "premium-rate"),
    ("+49700", "personal"),
    ("+49118", "directory"),
    ("+4910", "carrier-selection"),
    ("+49164", "pager"),
    ("+49168", "pager"),
    ("+49169", "pager"),
    # FR (ARCEP): 081-089 are value-added services; 080 is free or normal rate.
    ("+338", "value-added"),
    ("+3380", None),
    ("+3389", "premium-rate"),
    # NANP (NANPA)
    ("+1900", "premium-rate"),
    ("+1XXX976", "premium-rate"),
    # NL (ACM)
    ("+31900", "premium-rate"),
    ("+31906", "premium-rate"),
    ("+31909", "premium-rate"),
    ("+3184", "personal"),
    ("+3187", "personal"),
    ("+3166", "pager"),
    # IT (AGCOM)
    ("+3989", "premium-rate"),
    ("+39144", "premium-rate"),
    ("+39163", "premium-rate"),
    ("+39164", "premium-rate"),
    ("+39166", "premium-rate"),
    ("+390878", "premium-rate"),
    ("+3984", "shared-cost"),
    ("+39178", "personal"),
    ("+39199", "personal"),
    # ES (CNMC)
    ("+34803", "premium-rate"),
    ("+34806", "premium-rate"),
    ("+34807", "premium-rate"),
    ("+34905", "mass-calling"),
    ("+34901", "shared-cost"),
    ("+34902", "shared-cost"),
    ("+3470", "personal"),
    # PL (UKE)
    ("+4870", "premium-rate"),
    ("+48801", "shared-cost"),
    # International (ITU): the classic revenue-share fraud destinations.
    ("+979", "premium-rate"),
    ("+808", "shared-cost"),
    ("+878", "personal"),
    ("+870", "satellite"),
    ("+881", "satellite"),
    ("+882", "international-network"),
    ("+883", "international-network"),
    ("+888", "international-network"),
)

KIND_PHRASES = {
    "premium-rate": "a premium-rate number",
    "service-charge": "a service-charge number (charged above the normal rate)",
    "shared-cost": "a shared-cost number (charged above the normal rate)",
    "value-added": "a value-added service number (charged above the normal rate)",
    "personal": "a personal number (charged like a premium number)",
    "pager": "a pager number",
    "mass-calling": "a mass-calling (televoting) number",
    "user-group": "a closed user-group number",
    "directory": "a directory-enquiry number",
    "carrier-selection": "a carrier-selection prefix (call-by-call)",
    "satellite": "a satellite number",
    "international-network": "an international network number",
}


def prefix_matches(pattern: str, text: str) -> bool:
    """Does *text* start with *pattern* (where ``X`` in the pattern is any digit)?"""
    if len(text) < len(pattern):
        return False
    return all(p == c or (p == "X" and c.isdigit()) for p, c in zip(pattern, text, strict=False))


def premium_kind(e164: str) -> tuple[str, str] | None:
    """``(matching prefix, kind)`` when *e164* (``"+4490..."``) is premium or special-rate."""
    best: tuple[str, str | None] | None = None
    for prefix, kind in PREMIUM:
        if prefix_matches(prefix, e164) and (best is None or len(prefix) > len(best[0])):
            best = (prefix, kind)
    if best is None or best[1] is None:
        return None
    return best[0], best[1]


def short_premium_kind(country_code: str, digits: str) -> tuple[str, str] | None:
    """``(prefix, kind)`` when the short number *digits* costs extra in *country_code*."""
    country = COUNTRIES.get(country_code)
    for prefix, kind in country.short_premium if country else ():
        if prefix_matches(prefix, digits):
            return prefix, kind
    return None


# --------------------------------------------------------------------------------------------
# Patterns of dial_allow / dial_deny

WORDS = ("national", "international", "premium", "emergency")
_E164_PATTERN = re.compile(r"\+[1-9X][0-9X]{0,14}")
_SHORT_PATTERN = re.compile(r"[0-9X*#]{1,15}")


def pattern_problem(pattern: str) -> str | None:
    """Why *pattern* is not a valid ``dial_allow`` / ``dial_deny`` entry (``None`` if valid)."""
    if pattern in WORDS or _E164_PATTERN.fullmatch(pattern) or _SHORT_PATTERN.fullmatch(pattern):
        return None
    if pattern.startswith("+") and re.fullmatch(r"\+[0-9X\s().-]+", pattern):
        return f"must be written without spaces or dashes, got {_q(pattern)}"
    words = ", ".join(_q(w) for w in WORDS)
    return (
        f'must be {words}, a number prefix like "+4420" (X = any digit) or a short'
        f' number like "118", got {_q(pattern)}'
    )

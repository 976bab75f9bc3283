"""Tests for gateway/calls/dialplan.py and gateway/calls/numbering.py."""

from __future__ import annotations

from pathlib import Path

import pytest

from gateway.calls import numbering
from gateway.calls.dialplan import Dialled, DialPlan, NumberRefused, looks_like_number
from gateway.config import parse_config
from gateway.errors import LinegramError

GB = DialPlan(line="home", country_code="44")
GB_OPEN = DialPlan(line="home", country_code="44", allow=("national", "international"))
DE = DialPlan(line="berlin", country_code="49")
FR = DialPlan(line="paris", country_code="33")
US = DialPlan(line="us", country_code="1", letters=True)
IT = DialPlan(line="roma", country_code="39")
NL = DialPlan(line="nl", country_code="31")
ES = DialPlan(line="es", country_code="34")
PL = DialPlan(line="pl", country_code="48")
NOWHERE = DialPlan(line="x")
ATA = DialPlan(line="ata", country_code="44", extensions=True)
SERVICE = DialPlan(line="home", country_code="44", service_codes=True)
URI = DialPlan(line="home", country_code="44", allow_uri=True)

LONDON = ("02079460018", "+44 20 7946 0018", "+442079460018")


def refusal(plan: DialPlan, text: str) -> NumberRefused:
    with pytest.raises(NumberRefused) as info:
        plan.normalise(text)
    return info.value


# ------------------------------------------------------------------ accepted numbers


@pytest.mark.parametrize(
    ("plan", "text", "expected"),
    [
        # UK, in every common way of writing one London number
        (GB, "020 7946 0018", LONDON),
        (GB, "(020) 7946-0018", LONDON),
        (GB, "020.7946.0018", LONDON),
        (GB, "020\u20137946\u20130018", LONDON),  # en dashes
        (GB, "\u00a0020 7946 0018 ", LONDON),  # no-break space
        (GB, "+44 20 7946 0018", LONDON),
        (GB, "+44 (0)20 7946 0018", LONDON),
        (GB, "+44 020 7946 0018", LONDON),  # the trunk 0 typed after +44
        (GB, "0044 20 7946 0018", LONDON),
        (GB, "tel:+44-20-7946-0018", LONDON),
        (GB, "\uff10\uff12\uff10 \uff17\uff19\uff14\uff16 \uff10\uff10\uff11\uff18", LONDON),
        (GB, "\uff0b44 20 7946 0018", LONDON),  # full-width plus
        (GB, "020\n7946\t0018", LONDON),
        (GB, "\u0660\u0662\u0660 \u0667\u0669\u0664\u0666 \u0660\u0660\u0661\u0668", LONDON),
        (GB, "02079460018", ("02079460018", "+44 2079460018", "+442079460018")),
        (GB, "+442079460018", ("02079460018", "+44 2079460018", "+442079460018")),
        (GB, "07700 900123", ("07700900123", "+44 7700 900123", "+447700900123")),
        (GB, "07624 123456", ("07624123456", "+44 7624 123456", "+447624123456")),  # IoM
        (GB, "0800 1111", ("08001111", "+44 800 1111", "+448001111")),
        # Germany
        (DE, "030 1234567", ("0301234567", "+49 30 1234567", "+49301234567")),
        (DE, "030/1234567", ("0301234567", "+49 30 1234567", "+49301234567")),
        (DE, "+49 (0)30 1234567", ("0301234567", "+49 30 1234567", "+49301234567")),
        (DE, "0049 30 1234567", ("0301234567", "+49 30 1234567", "+49301234567")),
        (DE, "0151 12345678", ("015112345678", "+49 151 12345678", "+4915112345678")),
        # France
        (FR, "01 23 45 67 89", ("0123456789", "+33 1 23 45 67 89", "+33123456789")),
        (FR, "+33 6 12 34 56 78", ("0612345678", "+33 6 12 34 56 78", "+33612345678")),
        (FR, "0033 6 12 34 56 78", ("0612345678", "+33 6 12 34 56 78", "+33612345678")),
        (FR, "0800 12 34 56", ("0800123456", "+33 800 12 34 56", "+33800123456")),  # free
        # US: 10 digits, 1 + 10 digits, +1; always shown 3-3-4
        (US, "(212) 555-0100", ("12125550100", "+1 212 555 0100", "+12125550100")),
        (US, "212.555.0100", ("12125550100", "+1 212 555 0100", "+12125550100")),
        (US, "1 212 555 0100", ("12125550100", "+1 212 555 0100", "+12125550100")),
        (US, "+1 212 555 0100", ("12125550100", "+1 212 555 0100", "+12125550100")),
        (US, "2125550100", ("12125550100", "+1 212 555 0100", "+12125550100")),
        (US, "+1 787 555 0100", ("17875550100", "+1 787 555 0100", "+17875550100")),  # PR
        # Italy keeps the leading 0 (no trunk prefix)
        (IT, "06 1234 5678", ("0612345678", "+39 06 1234 5678", "+390612345678")),
        (IT, "+39 06 1234 5678", ("0612345678", "+39 06 1234 5678", "+390612345678")),
        (IT, "333 123 4567", ("3331234567", "+39 333 123 4567", "+393331234567")),
        (ES, "912 345 678", ("912345678", "+34 912 345 678", "+34912345678")),
        (PL, "22 123 45 67", ("221234567", "+48 22 123 45 67", "+48221234567")),
        (NL, "020 123 4567", ("0201234567", "+31 20 123 4567", "+31201234567")),
    ],
)
def test_numbers_are_normalised(plan: DialPlan, text: str, expected: tuple[str, str, str]) -> None:
    assert plan.normalise(text) == Dialled(*expected)


@pytest.mark.parametrize(
    ("dial_format", "london", "berlin"),
    [
        ("e164", "+442079460018", "+49301234567"),
        ("international", "00442079460018", "0049301234567"),
        ("national", "02079460018", "0049301234567"),
        ("as-typed", "02079460018", "+49301234567"),
    ],
)
def test_dial_format(dial_format: str, london: str, berlin: str) -> None:
    plan = DialPlan(
        line="home",
        country_code="44",
        allow=("national", "international"),
        dial_format=dial_format,  # type: ignore[arg-type]
    )
    assert plan.normalise("020 7946 0018").target == london
    assert plan.normalise("+49 30 1234567").target == berlin
    assert plan.normalise("+49 30 1234567").e164 == "+49301234567"


def test_as_typed_keeps_the_typed_prefix() -> None:
    plan = DialPlan(country_code="44", allow=("international",), dial_format="as-typed")
    assert plan.normalise("00 49 30 1234567").target == "0049301234567"
    assert plan.normalise("+49 (0)30 1234567").target == "+49301234567"


def test_nanp_national_format_and_prefixes() -> None:
    us = DialPlan(country_code="1", allow=("national", "international"))
    assert us.national_prefix == "1" and us.international_prefix == "011"
    assert us.normalise("+44 20 7946 0018").target == "011442079460018"
    ten = DialPlan(country_code="1", national_prefix="")
    assert ten.normalise("1 212 555 0100").target == "2125550100"
    assert ten.normalise("212 555 0100").target == "2125550100"


@pytest.mark.parametrize(
    ("country", "national", "international"),
    [("44", "0", "00"), ("1", "1", "011"), ("39", "", "00"), ("7", "8", "810"), ("", "0", "00")],
)
def test_prefixes_follow_the_country(country: str, national: str, international: str) -> None:
    plan = DialPlan(country_code=country)
    assert (plan.national_prefix, plan.international_prefix) == (national, international)


def test_configured_prefixes_win() -> None:
    plan = DialPlan(
        country_code="44",
        national_prefix="9",
        international_prefix="900",
        allow=("national", "international"),
    )
    assert plan.normalise("920 7946 0018") == Dialled(
        "92079460018", "+44 20 7946 0018", "+442079460018"
    )
    assert plan.normalise("900 49 30 1234567").target == "90049301234567"
    assert refusal(plan, "020 7946 0018").code == "no-area-code"


# ------------------------------------------------------------------ refusals


@pytest.mark.parametrize(
    ("plan", "text", "code", "words"),
    [
        (GB, "", "empty", "Send a phone number"),
        (GB, "   ", "empty", "Send a phone number"),
        (GB, "-- ()", "empty", "has no digits"),
        (GB, "1" * 81, "invalid", "too long"),
        (GB, "hello", "letters", "letters are off for line home"),
        (GB, "0800 FLOWERS", "letters", "letters are off"),
        (GB, "020,7946", "invalid", "“,” is not a digit"),
        (GB, "020+7946", "invalid", "a + can only stand at the start"),
        (GB, "+0 123 4567", "invalid", "comes the country code"),
        (GB, "09012345678", "premium", "+44 9012345678 is a premium-rate number;"),
        (GB, "0909 123 4567", "premium", "premium numbers are off for line home"),
        (GB, "0871 123 4567", "premium", "service-charge number"),
        (GB, "0845 123 4567", "premium", "service-charge number"),
        (GB, "070 1234 5678", "premium", "personal number"),
        (GB, "07600 123456", "premium", "pager number"),
        (GB, "+49 30 1234567", "international", "(+49 is another country)"),
        (GB, "00 33 1 23 45 67 89", "international", "international calls are off"),
        (GB, "+881 6 12345678", "premium", "satellite number"),
        (GB_OPEN, "+49 900 1234567", "premium", "premium-rate number"),
        (GB_OPEN, "+882 1234 5678", "premium", "international network number"),
        (GB_OPEN, "+979 1234 5678", "premium", "premium-rate"),
        (GB, "999", "emergency", "999 is an emergency number"),
        (GB, "112", "emergency", "Call from a mobile phone or a landline"),
        (GB, "118118", "short", "too short for a phone number"),
        (GB, "101", "short", "extensions are off"),
        (GB, "7946 0018", "no-area-code", "national numbers start with 0"),
        (GB, "+44 20 79", "length", "UK numbers have 7 to 10"),
        (GB, "+44 20 7946 0018 999", "length", "has 13 digits after +44"),
        (GB, "+999 1", "length", "too short"),
        (GB, "+99 1234567890123456", "length", "at most 15 digits"),
        (GB, "*21#", "service", "Service codes like *21# are off"),
        (GB, "sip:alice@example.net", "uri", "SIP addresses are off"),
        (DE, "0900 1 234567", "premium", "premium-rate"),
        (DE, "0180 5 123456", "premium", "shared-cost"),
        (DE, "0137 1234567", "premium", "mass-calling"),
        (DE, "0700 12345678", "premium", "personal"),
        (DE, "01033 30 123456", "premium", "carrier-selection"),
        (DE, "110", "emergency", "emergency number"),
        (DE, "30 1234567", "no-area-code", "start with 0"),
        (FR, "0899 123 456", "premium", "premium-rate"),
        (FR, "0810 12 34 56", "premium", "value-added"),
        (FR, "15", "emergency", "emergency"),
        (FR, "01 23 45 67", "length", "French numbers have 9"),
        (US, "1 900 555 1234", "premium", "premium-rate"),
        (US, "212 976 1234", "premium", "premium-rate"),
        (US, "+1 876 555 0100", "international", "area code 876 is outside the US"),
        (US, "1 809 555 0100", "international", "outside the US and Canada"),
        (US, "011 44 20 7946 0018", "international", "+44 is another country"),
        (US, "911", "emergency", "911 is an emergency number"),
        (US, "555 0100", "no-area-code", "those have 10 digits"),
        (IT, "899 123 456", "premium", "premium-rate"),
        (IT, "113", "emergency", "emergency"),
        (NL, "0900 1234567", "premium", "premium-rate"),
        (NL, "0906 1234567", "premium", "premium-rate"),
        (ES, "803 123 456", "premium", "premium-rate"),
        (ES, "902 123 456", "premium", "shared-cost"),
        (PL, "700 123 456", "premium", "premium-rate"),
        (NOWHERE, "020 7946 0018", "no-country", "Line x does not know its country"),
        (NOWHERE, "+44 20 7946 0018", "international", "line x has no country set"),
        (NOWHERE, "000", "emergency", "emergency"),
    ],
)
def test_refusals(plan: DialPlan, text: str, code: str, words: str) -> None:
    refused = refusal(plan, text)
    assert refused.code == code, refused.reason
    assert words in refused.reason
    assert str(refused) == refused.reason
    assert refused.reason.endswith(".")


def test_refusal_is_a_linegram_and_value_error() -> None:
    refused = refusal(GB, "09012345678")
    assert isinstance(refused, LinegramError) and isinstance(refused, ValueError)
    assert refused.reason == (
        "+44 9012345678 is a premium-rate number; premium numbers are off for line home"
        " (allow them in the line's settings)."
    )


def test_plan_without_a_name_says_this_line() -> None:
    assert "off for this line" in refusal(DialPlan(country_code="44"), "*21#").reason


# ------------------------------------------------------------------ permissions


def plan(allow: tuple[str, ...], deny: tuple[str, ...] = ("premium",), **kw: object) -> DialPlan:
    return DialPlan(line="home", country_code="44", allow=allow, deny=deny, **kw)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("dial_plan", "text", "allowed", "code"),
    [
        # premium allowed by name; a tie between allow and deny goes to allow
        (plan(("national", "premium")), "09012345678", True, ""),
        (plan(("national",), ()), "09012345678", True, ""),
        # one premium number allowed: more specific than the premium table
        (plan(("national", "+449012345678")), "0901 234 5678", True, ""),
        (plan(("national", "+449012345678")), "0901 234 5679", False, "premium"),
        # a prefix denied inside an allowed range
        (plan(("national",), ("premium", "+447")), "07700 900123", False, "denied"),
        (plan(("national",), ("premium", "+447")), "020 7946 0018", True, ""),
        # only some national numbers
        (plan(("+4420",), ()), "020 7946 0018", True, ""),
        (plan(("+4420",), ()), "0161 496 0000", False, "not-allowed"),
        (plan(("+4420",), ("national",)), "020 7946 0018", True, ""),
        (plan(("+4420",), ("national",)), "0161 496 0000", False, "national"),
        # international only, one country denied; premium still denied abroad
        (plan(("international",)), "020 7946 0018", False, "not-allowed"),
        (
            plan(("national", "international"), ("premium", "+49")),
            "+49 30 1234567",
            False,
            "denied",
        ),
        (plan(("national", "international"), ("premium", "+49")), "+33 1 23 45 67 89", True, ""),
        (plan(("national", "international")), "+49 900 1234567", False, "premium"),
        (plan(("national", "+33")), "+33 1 23 45 67 89", True, ""),
        (plan(("national", "+33")), "+32 2 123 45 67", False, "international"),
        # X is any digit
        (plan(("national", "+3X")), "+32 2 123 45 67", True, ""),
        (plan(("national",), ("+44X0",)), "020 7946 0018", False, "denied"),
        (plan(("national",), ("+44X0",)), "0161 496 0000", True, ""),
        # emergency numbers only when allowed by name
        (plan(("national", "emergency")), "999", True, ""),
        (plan(("national", "emergency")), "112", True, ""),
    ],
)
def test_permissions(dial_plan: DialPlan, text: str, allowed: bool, code: str) -> None:
    if allowed:
        dial_plan.normalise(text)
    else:
        assert refusal(dial_plan, text).code == code


def test_denied_prefix_is_named() -> None:
    refused = refusal(plan(("national",), ("premium", "+447")), "07700 900123")
    assert refused.reason == ('+44 7700 900123 is blocked for line home (dial_deny has "+447").')


def test_emergency_call_when_allowed_is_dialled_as_typed() -> None:
    assert plan(("national", "emergency")).normalise("9 9 9") == Dialled("999", "999", "")


def test_nanp_foreign_area_code_allowed_by_prefix() -> None:
    us = DialPlan(country_code="1", allow=("national", "+1876"))
    assert us.normalise("1 876 555 0100").e164 == "+18765550100"
    assert refusal(us, "1 809 555 0100").code == "international"


def test_unknown_country_with_international_allowed() -> None:
    anywhere = DialPlan(line="x", allow=("international",))
    assert anywhere.normalise("+44 20 7946 0018") == Dialled(
        "00442079460018", "+44 20 7946 0018", "+442079460018"
    )
    assert anywhere.normalise("00 44 20 7946 0018").e164 == "+442079460018"
    assert refusal(anywhere, "+44 909 123 4567").code == "premium"
    assert refusal(anywhere, "020 7946 0018").code == "no-country"


# ------------------------------------------------------------------ short numbers


def test_extensions() -> None:
    assert ATA.normalise("101") == Dialled("101", "101", "")
    assert ATA.normalise("12 34") == Dialled("1234", "1234", "")
    assert ATA.normalise("020 7946 0018") == Dialled(*LONDON)
    refused = refusal(ATA, "118 118")
    assert refused.code == "premium" and "directory-enquiry number" in refused.reason
    assert refusal(ATA, "999").code == "emergency"
    assert refusal(ATA, "79460018").code == "no-area-code"  # not short: 8 digits


def test_short_number_patterns() -> None:
    ata = DialPlan(line="ata", country_code="44", extensions=True, allow=("national", "118118"))
    assert ata.normalise("118118").target == "118118"
    assert refusal(ata, "118500").code == "premium"
    ata = DialPlan(line="ata", country_code="44", extensions=True, deny=("premium", "2"))
    refused = refusal(ata, "201")
    assert (refused.code, refused.reason) == (
        "denied",
        '201 is blocked for line ata (dial_deny has "2").',
    )
    assert ata.normalise("301").target == "301"


def test_min_length() -> None:
    ata = DialPlan(country_code="44", extensions=True, min_length=4)
    assert ata.normalise("123").target == "123"
    assert refusal(ata, "1234").code == "no-area-code"


# ------------------------------------------------------------------ service codes


@pytest.mark.parametrize(
    ("text", "target"),
    [
        ("*21#", "*21#"),
        ("#31#", "#31#"),
        ("#31#020 7946 0018", "#31#02079460018"),
        ("**21*02079460018#", "**21*02079460018#"),
        ("*72 020 7946 0018", "*7202079460018"),
        ("* 6 9", "*69"),
    ],
)
def test_service_codes(text: str, target: str) -> None:
    assert SERVICE.normalise(text) == Dialled(target, target, "")


@pytest.mark.parametrize(
    ("text", "code"),
    [
        ("*72 0909 123 4567", "premium"),  # forwarding to a premium number
        ("**21*0909 123 4567#", "premium"),
        ("**21*0049 30 1234567#", "international"),
        ("*72 7946 0018", "no-area-code"),  # no valid number in it at all
        ("+*21", "invalid"),
    ],
)
def test_service_codes_check_the_number_they_carry(text: str, code: str) -> None:
    assert refusal(SERVICE, text).code == code


def test_service_code_pattern_in_deny() -> None:
    svc = DialPlan(line="home", country_code="44", service_codes=True, deny=("premium", "*72"))
    assert refusal(svc, "*72 020 7946 0018").code == "denied"
    assert svc.normalise("*21#").target == "*21#"


# ------------------------------------------------------------------ letters


def test_vanity_numbers() -> None:
    assert US.normalise("1-800-FLOWERS") == Dialled(
        "18003569377", "+1 800 356 9377 (1-800-FLOWERS)", "+18003569377"
    )
    assert US.normalise("1-800-flowers").e164 == "+18003569377"
    # extra letters beyond the ten digits are not dialled
    assert US.normalise("1-800-MATTRESS").e164 == "+18006288737"
    gb = DialPlan(country_code="44", letters=True)
    assert gb.normalise("0800 FLOWERS").e164 == "+448003569377"


# ------------------------------------------------------------------ SIP URIs


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("sip:alice@example.net", ("sip:alice@example.net", "sip:alice@example.net", "")),
        (
            "SIP:alice@Example.NET:5070",
            ("sip:alice@example.net:5070", "sip:alice@example.net:5070", ""),
        ),
        (
            "sips:bob@[2001:db8::1]:5061",
            ("sips:bob@[2001:db8::1]:5061", "sips:bob@[2001:db8::1]:5061", ""),
        ),
        (
            "sip:+442079460018@sip.example.net",
            (
                "sip:+442079460018@sip.example.net",
                "sip:+442079460018@sip.example.net",
                "+442079460018",
            ),
        ),
        ("sip:600@127.0.0.1", ("sip:600@127.0.0.1", "sip:600@127.0.0.1", "")),
    ],
)
def test_sip_uris(text: str, expected: tuple[str, str, str]) -> None:
    assert URI.normalise(text) == Dialled(*expected)


@pytest.mark.parametrize(
    ("text", "code"),
    [
        ("sip:09012345678@provider.example", "premium"),  # a number at a host: same rules
        ("sip:112@provider.example", "emergency"),
        ("sip:alice@", "invalid"),
        ("sip:alice", "invalid"),
        ("sip:alice@example.net;transport=tcp", "invalid"),
        ("sip:al<ice@example.net", "invalid"),
        ("sip:alice@999.999.1.1", "invalid"),
        ("sip:alice@example.net:99999", "invalid"),
    ],
)
def test_sip_uri_refusals(text: str, code: str) -> None:
    assert refusal(URI, text).code == code


# ------------------------------------------------------------------ looks_like_number


@pytest.mark.parametrize(
    "text",
    [
        "020 7946 0018",
        "+44 20 7946 0018",
        "(020) 7946-0018",
        "*21#",
        "#31#",
        "112",
        "1-800-FLOWERS",
        "1800flowers",
        "sip:alice@example.net",
        "tel:+442079460018",
        "\uff10\uff12\uff10 \uff17\uff19\uff14\uff16",
        "  0161 496 0000\n",
    ],
)
def test_looks_like_number(text: str) -> None:
    assert looks_like_number(text)


@pytest.mark.parametrize(
    "text",
    [
        "",
        "   ",
        "+",
        "hello",
        "Room 101",
        "100 apples",
        "2 cats",
        "call me at 020 7946 0018",
        "020 7946 0018!",
        "sip:alice",
        "sip: alice@example.net",
        "1" * 81,
        "🙂",
        "/start abc",
    ],
)
def test_does_not_look_like_number(text: str) -> None:
    assert not looks_like_number(text)


# ------------------------------------------------------------------ from the config


def test_from_line_uses_the_line_settings() -> None:
    line = {
        "name": "home",
        "kind": "provider",
        "registrar": "sip.example.net",
        "username": "u",
        "country_code": "49",
        "dial_format": "e164",
        "dial_allow": ["national", "international"],
        "dial_deny": ["premium", "+4915"],
        "min_length": 5,
        "extensions": True,
        "service_codes": True,
        "letters": True,
        "allow_uri": True,
    }
    config = parse_config({"lines": [line]}, base_dir=Path("/srv"))
    dial_plan = DialPlan.from_line(config.lines[0])
    assert dial_plan == DialPlan(
        line="home",
        country_code="49",
        dial_format="e164",
        allow=("national", "international"),
        deny=("premium", "+4915"),
        min_length=5,
        extensions=True,
        service_codes=True,
        letters=True,
        allow_uri=True,
    )
    assert (dial_plan.national_prefix, dial_plan.international_prefix) == ("0", "00")
    assert dial_plan.normalise("030 1234567").target == "+49301234567"
    assert refusal(dial_plan, "0151 12345678").code == "denied"


def test_from_default_line() -> None:
    config = parse_config({"lines": [{"name": "ata", "kind": "ata"}]}, base_dir=Path("/srv"))
    assert DialPlan.from_line(config.lines[0]) == DialPlan(line="ata")


# ------------------------------------------------------------------ numbering


@pytest.mark.parametrize(
    ("digits", "split"),
    [
        ("442079460018", ("44", "2079460018")),
        ("12125550100", ("1", "2125550100")),
        ("74951234567", ("7", "4951234567")),
        ("353123456", ("353", "123456")),
        ("8816", ("881", "6")),
        ("44", ("44", "")),
        ("35", None),
        ("0441", None),
        ("", None),
        ("4a", None),
    ],
)
def test_split_country_code(digits: str, split: tuple[str, str] | None) -> None:
    assert numbering.split_country_code(digits) == split


@pytest.mark.parametrize(
    ("code", "problem"),
    [
        ("44", None),
        ("1", None),
        ("353", None),
        ("4x", 'must be 1-3 digits (the country calling code without +, e.g. "44"), got "4x"'),
        ("+44", 'must be 1-3 digits (the country calling code without +, e.g. "44"), got "+44"'),
        ("4412", 'must be 1-3 digits (the country calling code without +, e.g. "44"), got "4412"'),
        ("0", 'must be a country calling code (none starts with 0), got "0"'),
        ("440", 'must be a country calling code, got "440" (did you mean "44"?)'),
        ("35", 'must be a country calling code, got "35" (too short)'),
    ],
)
def test_country_code_problem(code: str, problem: str | None) -> None:
    assert numbering.country_code_problem(code) == problem


@pytest.mark.parametrize(
    ("e164", "kind"),
    [
        ("+449012345678", ("+449", "premium-rate")),
        ("+447600123456", ("+4476", "pager")),
        ("+447624123456", None),  # Isle of Man mobile, an exception inside the pager block
        ("+33899123456", ("+3389", "premium-rate")),
        ("+33810123456", ("+338", "value-added")),
        ("+33800123456", None),
        ("+12129761234", ("+1XXX976", "premium-rate")),
        ("+12125550100", None),
        ("+442079460018", None),
        ("+441189460018", None),  # 0118 is Reading, not directory enquiries
        ("+33118123456", None),  # 01 18 is Paris
    ],
)
def test_premium_table(e164: str, kind: tuple[str, str] | None) -> None:
    assert numbering.premium_kind(e164) == kind


def test_premium_kinds_have_phrases() -> None:
    kinds = {kind for _, kind in numbering.PREMIUM if kind}
    kinds |= {kind for c in numbering.COUNTRIES.values() for _, kind in c.short_premium}
    assert kinds <= set(numbering.KIND_PHRASES)


@pytest.mark.parametrize(
    ("pattern", "valid"),
    [
        ("national", True),
        ("international", True),
        ("premium", True),
        ("emergency", True),
        ("+44", True),
        ("+4420X", True),
        ("+1XXX976", True),
        ("118", True),
        ("*72", True),
        ("mobile", False),
        ("+", False),
        ("+0", False),
        ("+44 20", False),
        ("+44-20", False),
        ("", False),
        ("+1234567890123456", False),
    ],
)
def test_pattern_problem(pattern: str, valid: bool) -> None:
    assert (numbering.pattern_problem(pattern) is None) is valid


def test_every_emergency_set_has_112_and_911() -> None:
    for code in [*numbering.COUNTRIES, "", "41"]:
        assert {"112", "911"} <= numbering.emergency_numbers(code)

"""The Settings page: outgoing method, dial rules, LED pins, admin password."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest

from gateway.config import load_config
from tests.unit.webui.site_support import ADMIN_PASSWORD, Site, make_site, stub_gateway

DIAL = {
    "country_code": "44",
    "national_prefix": "",
    "international_prefix": "",
    "dial_format": "national",
    "allow_words": ["national"],
    "allow_more": "",
    "deny_words": ["premium"],
    "deny_more": "",
    "min_length": "7",
}


@pytest.fixture
def site(tmp_path: Path) -> Site:
    return make_site(tmp_path)


def errors(html: str) -> dict[str, list[str]]:
    found: dict[str, list[str]] = {}
    for field_id, message in re.findall(r'<p class="error" id="([^"]+)-error">([^<]*)</p>', html):
        found.setdefault(field_id, []).append(message.replace("&#34;", '"'))
    return found


def flashes(html: str) -> list[str]:
    return re.findall(r'<p class="flash (?:ok|warn|error)" role="status">([^<]*)</p>', html)


def test_the_page_shows_every_part_and_says_leds_are_driven(site: Site) -> None:
    html = site.html("/settings")
    assert re.search(
        r'<input checked id="calls-default_outgoing_method-0"[^>]*value="invite"', html
    )
    assert "/settings/dialing/home" in html and "/settings/dialing/landline" in html
    assert "The gateway drives these LEDs" in html
    assert 'id="pw-current"' in html and 'type="password"' in html


def test_the_outgoing_method_for_new_members_is_saved(site: Site) -> None:
    response = site.post("/settings/calls", {"calls-default_outgoing_method": "callback"})
    assert response.status_code == 302
    assert load_config(site.settings_file).calls.default_outgoing_method == "callback"
    before = site.settings_file.read_bytes()
    response = site.post("/settings/calls", {"calls-default_outgoing_method": "carrier-pigeon"})
    assert response.status_code == 400
    assert "calls-default_outgoing_method" in errors(response.get_data(as_text=True))
    assert site.settings_file.read_bytes() == before


def test_dial_rules_are_saved_with_words_and_prefixes(site: Site) -> None:
    form = {
        **DIAL,
        "country_code": "+44 ",  # as people type it
        "dial_format": "e164",
        "allow_words": ["national", "international"],
        "allow_more": "+49 30, +447",
        "deny_words": ["premium"],
        "deny_more": "+336",
        "no_national_prefix": "y",
        "international_prefix": "011",
        "extensions": "y",
        "service_codes": "y",
    }
    assert site.post("/settings/dialing/home", form).status_code == 302
    line = load_config(site.settings_file).line("home")
    assert line is not None
    d = line.dialing
    assert d.country_code == "44" and d.dial_format == "e164"
    assert d.allow == ("national", "international", "+4930", "+447")
    assert d.deny == ("premium", "+336")
    assert (d.national_prefix, d.international_prefix) == ("", "011")
    assert (d.extensions, d.service_codes, d.letters, d.allow_uri) == (True, True, False, False)
    # The other keys of the line stay as they were; its password too.
    assert line.password.reveal() == "provider-secret-1"
    # The page shows the saved rules back: boxes ticked, prefixes in their field.
    html = site.html("/settings/dialing/home")
    assert 'value="+4930, +447"' in html and 'value="+336"' in html
    assert "provider-secret-1" not in html
    # Empty prefixes follow the country again (not written to the file).
    site.post("/settings/dialing/home", DIAL)
    line = load_config(site.settings_file).line("home")
    assert line is not None
    assert (line.dialing.national_prefix, line.dialing.international_prefix) == (None, None)
    assert "national_prefix" not in site.text()


@pytest.mark.parametrize(
    ("changes", "field", "message"),
    [
        # The gateway's validator decides; its problem is shown next to the field.
        ({"country_code": "440"}, "country_code", 'Must be a country calling code, got "440"'),
        (
            {"international_prefix": "0", "national_prefix": "0"},
            "international_prefix",
            "Must differ from the national prefix",
        ),
        ({"allow_more": "+44 20, 0800 x"}, "allow_more", "0800x is not a pattern"),
        ({"min_length": "0"}, "min_length", "Between 1 and 15 digits."),
        ({"national_prefix": "zero"}, "national_prefix", "1 to 4 digits"),
        ({"allow_more": "+0800"}, "allow_more", "Must be"),
    ],
)
def test_bad_dial_rules_are_explained_and_nothing_is_saved(
    site: Site, changes: dict[str, Any], field: str, message: str
) -> None:
    before = site.settings_file.read_bytes()
    response = site.post("/settings/dialing/home", {**DIAL, **changes})
    assert response.status_code == 400
    shown = errors(response.get_data(as_text=True))
    assert list(shown) == [field], shown
    assert shown[field][0].startswith(message), shown
    assert site.settings_file.read_bytes() == before


def test_try_a_number_uses_the_saved_rules(site: Site) -> None:
    html = site.html("/settings/dialing/home?try=030+1234567")
    assert 'data-result="dialled">Dialled as <code>0301234567</code>' in html
    html = site.html("/settings/dialing/home?try=0900+123456")
    assert 'data-result="refused"' in html and "premium-rate" in html
    site.html("/settings/dialing/nope", 404)


def test_led_pins_are_saved_and_checked(site: Site) -> None:
    form = {
        "leds-line": "17",
        "leds-call": "23",
        "leds-rgb_red": "5",
        "leds-rgb_green": "6",
        "leds-rgb_blue": "13",
    }
    assert site.post("/settings/leds", form).status_code == 302
    leds = load_config(site.settings_file).leds
    assert (leds.line, leds.call, leds.telegram, leds.rgb) == (17, 23, None, (5, 6, 13))
    assert leds.active_high is False  # the box was not ticked
    before = site.settings_file.read_bytes()
    cases = [
        ({"leds-line": "17", "leds-call": "17"}, "leds-call", "GPIO 17 is already used by the"),
        ({"leds-error": "28"}, "leds-error", "A GPIO number (BCM) from 0 to 27, or empty."),
        ({"leds-rgb_red": "5"}, "leds-rgb_red", "An RGB LED needs all three pins"),
        ({"leds-ringing": "x"}, "leds-ringing", "Not a valid integer value."),
    ]  # fmt: skip
    for data, field, message in cases:
        response = site.post("/settings/leds", data)
        assert response.status_code == 400
        shown = errors(response.get_data(as_text=True))
        assert list(shown) == [field] and shown[field][0].startswith(message), shown
        assert site.settings_file.read_bytes() == before


def test_a_restart_is_asked_for_what_reload_cannot_apply(site: Site) -> None:
    async def reload(_params: dict[str, Any]) -> Any:
        return {"applied": [], "restart_needed": ["leds.line"], "lines": []}

    with stub_gateway(site, config_reload=reload):
        response = site.post("/settings/leds", {"leds-line": "4"}, follow=True)
    expected = (
        "LED pins: saved. Part of it takes effect after a restart of the gateway"
        " (System → Restart): leds.line."
    )
    assert flashes(response.get_data(as_text=True)) == [expected]


def test_the_admin_password_is_changed_and_the_session_ends(site: Site) -> None:
    admin = site.app.extensions["linegram"].admin
    new = {"pw-password": "new horse battery", "pw-confirm": "new horse battery"}
    response = site.post("/settings/password", {"pw-current": "wrong password here", **new})
    assert response.status_code == 401
    assert errors(response.get_data(as_text=True)) == {
        "pw-current": ["That is not the current password."]
    }
    response = site.post(
        "/settings/password",
        {"pw-current": ADMIN_PASSWORD, "pw-password": "short", "pw-confirm": "short"},
    )
    assert response.status_code == 400
    assert admin.verify(ADMIN_PASSWORD)
    response = site.post("/settings/password", {"pw-current": ADMIN_PASSWORD, **new})
    assert response.status_code == 302 and response.headers["Location"].endswith("/login")
    assert admin.verify("new horse battery") and not admin.verify(ADMIN_PASSWORD)
    # This browser is logged out too.
    assert site.client.get("/settings").status_code == 302

"""The Lines page: add, edit, remove, retry; bad input explained and nothing saved."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest

from gateway.config import AtaLineConfig, ProviderLineConfig, load_config
from gateway.control import ControlError
from tests.unit.webui.site_support import Site, make_site, stub_gateway

PROVIDER = {
    "name": "office",
    "enabled": "y",
    "registrar": "sip.example.com",
    "username": "4940123456",
    "password": "office-secret-3",
    "incoming": "members",
    "no_answer": "busy",
    "country_code": "49",
    "dtmf": "rfc4733",
    "codecs": "PCMA,PCMU",
    "allow": "",
    "transport": "udp",
    "register": "y",
    "expires": "600",
    "keepalive": "25",
}
ATA = {
    "name": "kitchen",
    "enabled": "y",
    "username": "ht813",
    "password": "ata-secret-4",
    "auth_algorithms": "MD5",
    "incoming": "members",
    "no_answer": "reject",
    "country_code": "44",
    "dtmf": "rfc4733",
    "codecs": "PCMA,PCMU",
    "allow": "192.168.1.30",
}
SECRETS = ("provider-secret-1", "ata-secret-2", "office-secret-3", "ata-secret-4")


@pytest.fixture
def site(tmp_path: Path) -> Site:
    return make_site(tmp_path)


def errors(html: str) -> dict[str, list[str]]:
    """The messages shown next to fields, by field id."""
    found: dict[str, list[str]] = {}
    for field_id, message in re.findall(r'<p class="error" id="([^"]+)-error">([^<]*)</p>', html):
        found.setdefault(field_id, []).append(message)
    return found


def flashes(html: str) -> list[str]:
    return re.findall(r'<p class="flash (?:ok|warn|error)" role="status">([^<]*)</p>', html)


def assert_no_secret(site: Site, *paths: str) -> None:
    for path in paths:
        html = site.html(path)
        for secret in SECRETS:
            assert secret not in html, (path, secret)


def test_the_list_shows_each_line_and_that_the_gateway_is_down(site: Site) -> None:
    html = site.html("/lines")
    assert 'data-line="home"' in html and 'data-line="landline"' in html
    assert "4930123456@sip.example.net" in html
    assert "The gateway is not running" in html
    # Retry is offered for the provider line only; the ATA registers itself.
    assert "/lines/home/retry" in html and "/lines/landline/retry" not in html
    assert "The ATA registers itself" in html
    assert_no_secret(site, "/lines", "/lines/home/edit", "/lines/landline/edit")


def test_a_provider_line_is_added_and_its_password_never_shown(site: Site) -> None:
    response = site.post("/lines/new/provider", PROVIDER, follow=True)
    assert response.status_code == 200
    html = response.get_data(as_text=True)
    assert flashes(html) == [
        "Line office: saved. The gateway is not running; the change takes effect when it starts."
    ]
    assert 'data-line="office"' in html
    line = load_config(site.settings_file).line("office")
    assert isinstance(line, ProviderLineConfig)
    assert line.password.reveal() == "office-secret-3"
    assert str(line.registrar) == "sip.example.com"
    assert line.incoming == "members" and line.dialing.country_code == "49"
    assert site.settings_file.stat().st_mode & 0o777 == 0o600
    edit = site.html("/lines/office/edit")
    assert "A password is set" in edit
    assert_no_secret(site, "/lines", "/lines/office/edit")


def test_an_ata_line_is_added(site: Site) -> None:
    site.post("/lines/new/ata", ATA)
    line = load_config(site.settings_file).line("kitchen")
    assert isinstance(line, AtaLineConfig)
    assert (line.username, line.password.reveal()) == ("ht813", "ata-secret-4")
    assert line.no_answer == "reject"
    assert [str(n) for n in line.allow] == ["192.168.1.30/32"]
    html = site.html("/lines")
    assert 'data-line="kitchen"' in html and "registers as ht813" in html
    assert_no_secret(site, "/lines", "/lines/kitchen/edit")


@pytest.mark.parametrize(
    ("changes", "field", "message"),
    [
        (
            {"registrar": "sip.example.com:99999"},
            "registrar",
            "The port (after the colon) must be a number from 1 to 65535, not 99999.",
        ),
        (
            {"registrar": "sip.example.com:"},
            "registrar",
            "The port (after the colon) must be a number from 1 to 65535, not nothing.",
        ),
        (
            {"outbound_proxy": "proxy.example.com:0"},
            "outbound_proxy",
            "The port (after the colon) must be a number from 1 to 65535, not 0.",
        ),
        ({"expires": "30"}, "expires", "Between 60 and 86400 seconds."),
        ({"keepalive": "5"}, "keepalive", "0 (off) or between 10 and 300 seconds."),
        ({"name": "Office!"}, "name", None),
        ({"name": "home"}, "name", "There is already a line called home."),
        ({"allow": "192.168.1.300"}, "allow", None),
        # Only the gateway's own validator knows country codes: its problem lands here too.
        ({"country_code": "440"}, "country_code", 'Must be a country calling code, got "440"'),
    ],
)
def test_bad_input_is_explained_next_to_the_field_and_nothing_is_saved(
    site: Site, changes: dict[str, str], field: str, message: str | None
) -> None:
    before = site.settings_file.read_bytes()
    response = site.post("/lines/new/provider", {**PROVIDER, **changes})
    assert response.status_code == 400
    html = response.get_data(as_text=True)
    shown = errors(html)
    assert list(shown) == [field], shown
    if message is not None:
        assert shown[field][0].replace("&#34;", '"').startswith(message)
    assert site.settings_file.read_bytes() == before
    # The typed password is not sent back either.
    assert "office-secret-3" not in html


def test_editing_with_a_blank_password_keeps_the_stored_one(site: Site) -> None:
    form = {**PROVIDER, "name": "ignored", "password": "", "registrar": "sip2.example.net:5070"}
    response = site.post("/lines/home/edit", form)
    assert response.status_code == 302
    config = load_config(site.settings_file)
    line = config.line("home")
    assert isinstance(line, ProviderLineConfig)
    assert line.password.reveal() == "provider-secret-1"
    assert str(line.registrar) == "sip2.example.net:5070"
    # The name is fixed once created; the posted one is ignored.
    assert config.line("ignored") is None
    # Dialling keys the form does not show are kept.
    assert line.dialing.dial_format == "national"


def test_a_new_password_replaces_the_old_and_can_be_removed(site: Site) -> None:
    ata = {**ATA, "name": "x", "password": "new-ata-secret"}
    site.post("/lines/landline/edit", ata)
    line = load_config(site.settings_file).line("landline")
    assert line is not None and line.password.reveal() == "new-ata-secret"
    # An ATA without a user name and password calls by IP (allow) only.
    site.post(
        "/lines/landline/edit", {**ata, "username": "", "password": "", "clear_password": "y"}
    )
    line = load_config(site.settings_file).line("landline")
    assert isinstance(line, AtaLineConfig)
    assert (line.username, line.password.reveal()) == ("", "")


def test_the_validator_problem_of_a_kept_password_lands_next_to_it(site: Site) -> None:
    """Removing the ATA's password while keeping its user name is refused by the validator."""
    before = site.settings_file.read_bytes()
    response = site.post(
        "/lines/landline/edit", {**ATA, "username": "ata", "password": "", "clear_password": "y"}
    )
    assert response.status_code == 400
    shown = errors(response.get_data(as_text=True))
    assert shown == {
        "password": ["Required when username is set (the ATA registers with digest auth)."]
    }
    assert site.settings_file.read_bytes() == before


def test_a_line_is_removed(site: Site) -> None:
    response = site.post("/lines/landline/remove", {}, follow=True)
    assert "Line landline removed: saved." in flashes(response.get_data(as_text=True))[0]
    config = load_config(site.settings_file)
    assert [line.name for line in config.lines] == ["home"]
    # Its secrets are gone from the file too.
    assert "ata-secret-2" not in site.text()


def test_an_unknown_line_is_404(site: Site) -> None:
    site.html("/lines/nope/edit", 404)
    site.html("/lines/new/modem", 404)


def test_retry_without_gateway_and_for_an_ata_explains(site: Site) -> None:
    html = site.post("/lines/home/retry", {}, follow=True).get_data(as_text=True)
    assert flashes(html) == ["The gateway is not running, so nothing registers. See System."]
    html = site.post("/lines/landline/retry", {}, follow=True).get_data(as_text=True)
    assert "the ATA registers itself" in flashes(html)[0]


def test_with_the_gateway_up_states_retry_and_reload_round_trip(site: Site) -> None:
    async def status(_params: dict[str, Any]) -> Any:
        return {
            "lines": [
                {"name": "home", "kind": "provider", "state": "failed",
                 "last_error": "403 Forbidden from sip.example.net"},
                {"name": "landline", "kind": "ata", "state": "registered", "last_error": None},
            ],
            "telegram": {}, "calls": [], "members": 0,
        }  # fmt: skip

    async def retry(params: dict[str, Any]) -> Any:
        return {"name": params["name"], "state": "registering"}

    async def reload(_params: dict[str, Any]) -> Any:
        names = [line.name for line in load_config(site.settings_file).lines]
        return {"applied": ["lines.office: added"], "restart_needed": ["sip.port"], "lines": names}

    with stub_gateway(site, status=status, lines_retry=retry, config_reload=reload) as gateway:
        html = site.html("/lines")
        assert "403 Forbidden from sip.example.net" in html
        assert "failed" in html and "registered" in html
        html = site.post("/lines/home/retry", {}, follow=True).get_data(as_text=True)
        assert gateway.called("lines.retry") == [{"name": "home"}]
        assert "Line home is registering again" in flashes(html)[0]
        html = site.post("/lines/new/provider", PROVIDER, follow=True).get_data(as_text=True)
        # The gateway re-read the file after it was saved.
        assert len(gateway.called("config.reload")) == 1
        expected = (
            "Line office: saved. Part of it takes effect after a restart of the gateway"
            " (System → Restart): sip.port."
        )
        assert flashes(html) == [expected]


def test_a_gateway_that_refuses_the_reload_is_reported(site: Site) -> None:
    async def reload(_params: dict[str, Any]) -> Any:
        raise ControlError("invalid", "something is off")

    with stub_gateway(site, config_reload=reload):
        html = site.post("/lines/new/ata", ATA, follow=True).get_data(as_text=True)
    assert flashes(html) == [
        "Line kitchen: saved, but the gateway could not apply it: something is off"
    ]


def test_forms_without_csrf_token_are_refused(site: Site) -> None:
    before = site.settings_file.read_bytes()
    response = site.client.post("/lines/new/ata", data=ATA)
    assert response.status_code == 400
    assert site.client.post("/lines/home/remove").status_code == 400
    assert site.settings_file.read_bytes() == before

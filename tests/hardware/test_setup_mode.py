"""The web UI's side of the button: setup mode's new password, and missed calls on the dashboard."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import pytest

from gateway.hardware.setupmode import enter_setup_mode, setup_mode_path
from tests.unit.webui.site_support import ADMIN_PASSWORD, Site, make_site, stub_gateway

NEW_PASSWORD = "purple elephant carries tea"
OFFER = "Setup mode (the button on the box was held): set a new admin password."


@pytest.fixture
def site(tmp_path: Path) -> Site:
    return make_site(tmp_path)


def data_dir(site: Site) -> Path:
    path: Path = site.app.extensions["linegram"].settings.data_dir
    return path


def login_csrf(site: Site) -> str:
    html = site.client.get("/login").get_data(as_text=True)
    marker = 'name="csrf-token" content="'
    return html.split(marker, 1)[1].split('"', 1)[0]


def set_new(site: Site, password: str, confirm: str | None = None) -> Any:
    return site.client.post(
        "/login/setup-mode",
        data={
            "csrf_token": login_csrf(site),
            "setup-password": password,
            "setup-confirm": password if confirm is None else confirm,
        },
    )


def test_without_setup_mode_the_login_page_offers_only_login(site: Site) -> None:
    assert OFFER not in site.client.get("/login").get_data(as_text=True)
    response = set_new(site, NEW_PASSWORD)
    assert response.status_code == 302 and response.location.endswith("/login")
    assert site.app.extensions["linegram"].admin.verify(ADMIN_PASSWORD)


def test_setup_mode_sets_a_new_password_once_and_logs_everyone_out(site: Site) -> None:
    enter_setup_mode(data_dir(site))
    other = site.app.test_client()  # another browser, logged in before
    with other.session_transaction() as session:
        session["since"] = time.time() + 0.5
    assert other.get("/").status_code == 200
    html = site.client.get("/login").get_data(as_text=True)
    assert OFFER in html and 'id="setup-password"' in html and 'id="setup-confirm"' in html
    time.sleep(1.0)  # password_changed_at after that session began
    response = set_new(site, NEW_PASSWORD)
    assert response.status_code == 302 and response.location.endswith("/login")
    page = site.client.get("/login").get_data(as_text=True)
    assert "every other session was logged out" in page
    assert OFFER not in page  # one use
    assert not setup_mode_path(data_dir(site)).exists()
    admin = site.app.extensions["linegram"].admin
    assert admin.verify(NEW_PASSWORD) and not admin.verify(ADMIN_PASSWORD)
    assert other.get("/").status_code == 302  # logged out


@pytest.mark.parametrize(
    ("password", "confirm", "problem"),
    [
        ("short", None, "Use at least 10 characters"),
        ("password", None, "Use at least 10 characters"),
        ("1234567890", None, "too easy to guess"),
        (NEW_PASSWORD, "something else entirely", "Not the same."),
    ],
)
def test_weak_or_mistyped_passwords_are_refused(
    site: Site, password: str, confirm: str | None, problem: str
) -> None:
    enter_setup_mode(data_dir(site))
    response = set_new(site, password, confirm)
    assert response.status_code == 400
    assert problem in response.get_data(as_text=True)
    assert setup_mode_path(data_dir(site)).exists()  # still there for the next try
    assert site.app.extensions["linegram"].admin.verify(ADMIN_PASSWORD)


def test_expired_setup_mode_is_normal_login(site: Site) -> None:
    enter_setup_mode(data_dir(site), now=time.time() - 601)
    assert OFFER not in site.client.get("/login").get_data(as_text=True)
    response = set_new(site, NEW_PASSWORD)
    assert response.status_code == 302
    assert "Setup mode has ended" in site.client.get("/login").get_data(as_text=True)
    assert site.app.extensions["linegram"].admin.verify(ADMIN_PASSWORD)


# ------------------------------------------------------------------ missed calls on the dashboard


def test_dashboard_shows_missed_calls_and_marks_them_seen(site: Site) -> None:
    waiting = {"missed": 2}

    async def status(_params: dict[str, Any]) -> Any:
        return {"lines": [], "telegram": {}, "calls": [], "members": 0, **waiting}

    async def missed_clear(_params: dict[str, Any]) -> Any:
        waiting["missed"] = 0
        return {"missed": 0}

    with stub_gateway(site, status=status, missed_clear=missed_clear) as gw:
        html = site.html("/")
        assert '<strong data-part="missed-count">2</strong> missed call(s) waiting' in html
        assert site.client.get("/api/status").get_json()["missed"] == 2
        response = site.post("/missed/clear", {}, follow=True)
        assert response.status_code == 200
        assert gw.called("missed.clear") == [{}]
        page = response.get_data(as_text=True)
        assert "Missed calls marked as seen." in page
        assert 'data-part="missed" hidden' in page


def test_mark_as_seen_needs_the_csrf_token(site: Site) -> None:
    site.app.config["WTF_CSRF_ENABLED"] = True
    response = site.client.post("/missed/clear", data={})
    assert response.status_code == 400


def test_mark_as_seen_with_the_gateway_down_says_so(site: Site) -> None:
    response = site.post("/missed/clear", {}, follow=True)
    assert "Could not mark the missed calls as seen" in response.get_data(as_text=True)

"""The first-run wizard against a real control socket.

The web UI talks to a real :class:`gateway.control.ControlServer` on a
temporary Unix socket; small handlers stand in for the gateway's methods
(the control-API contract: telegram.login.*, telegram.bot.*, members.list,
invitations.create, test_call.*, config.reload).  The settings file is real
and read back after each save.
"""

from __future__ import annotations

import asyncio
import re
import shutil
import socket
import tempfile
import threading
from collections.abc import Awaitable, Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from flask import Flask
from flask.testing import FlaskClient

from gateway.config import AtaLineConfig, ProviderLineConfig, load_config
from gateway.control import ControlError, ControlServer
from webui import create_app
from webui.views import wizard

ADMIN_PASSWORD = "correct horse battery staple"
API_HASH = "0123456789abcdef0123456789abcdef"
LOGIN_CODE = "24680"
TWO_STEP = "tulip-umbrella-42"
BOT_TOKEN = "123456789:AAHdqTcvCH1vGWJxfSeofSAs0K5PALDsaw1"
_CSRF = re.compile(r'name="csrf-token" content="([^"]+)"')


# -- a stand-in gateway behind a real control socket ----------------------------------------------


@dataclass
class FakeGateway:
    """The gateway's side of the contract, with just enough state for the wizard."""

    step: str = "need_app"
    message: str | None = None
    phone: str = ""
    two_step: bool = False
    user: dict[str, Any] | None = None
    bot: dict[str, Any] = field(
        default_factory=lambda: {
            "configured": False,
            "state": None,
            "error": None,
            "username": "",
            "inline": False,
        }
    )
    bot_inline: bool = True
    members: list[dict[str, Any]] = field(default_factory=list)
    test: dict[str, Any] = field(default_factory=lambda: {"state": "idle"})
    calls: list[tuple[str, dict[str, Any]]] = field(default_factory=list)

    def view(self) -> dict[str, Any]:
        return {
            "step": self.step,
            "instructions": f"Instructions for {self.step}.",
            "message": self.message,
            "phone": self.phone,
            "code_via": "app" if self.step == "need_code" else None,
            "code_length": 5 if self.step == "need_code" else None,
            "next_via": "sms" if self.step == "need_code" else None,
            "resend_after": 60 if self.step == "need_code" else None,
            "password_hint": "flower" if self.step == "need_password" else "",
            "can_resend": bool(self.phone) and self.step in ("need_code", "need_phone"),
            "user": self.user,
        }

    def _go(self, step: str, message: str | None = None) -> dict[str, Any]:
        self.step, self.message = step, message
        return self.view()

    def methods(self) -> dict[str, Callable[[dict[str, Any]], Awaitable[Any]]]:
        def record(name: str, handler: Callable[[dict[str, Any]], Any]) -> Any:
            async def handle(params: dict[str, Any]) -> Any:
                self.calls.append((name, dict(params)))
                return handler(params)

            return handle

        return {
            "telegram.login.view": record("telegram.login.view", lambda p: self.view()),
            "telegram.login.app": record("telegram.login.app", self._app),
            "telegram.login.phone": record("telegram.login.phone", self._phone),
            "telegram.login.code": record("telegram.login.code", self._code),
            "telegram.login.password": record("telegram.login.password", self._password),
            "telegram.login.resend": record("telegram.login.resend", lambda p: self.view()),
            "telegram.login.restart": record(
                "telegram.login.restart", lambda p: self._go("need_phone")
            ),
            "telegram.login.log_out": record(
                "telegram.login.log_out", lambda p: self._go("need_phone")
            ),
            "telegram.bot.view": record("telegram.bot.view", lambda p: self.bot),
            "telegram.bot.set_token": record("telegram.bot.set_token", self._set_token),
            "members.list": record("members.list", lambda p: self.members),
            "invitations.create": record("invitations.create", self._invite),
            "test_call.start": record("test_call.start", self._start_test),
            "test_call.status": record("test_call.status", lambda p: self.test),
            "test_call.stop": record("test_call.stop", self._stop_test),
            "config.reload": record(
                "config.reload", lambda p: {"applied": ["lines"], "restart_needed": [], "lines": []}
            ),
        }

    def _app(self, params: dict[str, Any]) -> dict[str, Any]:
        if not isinstance(params.get("api_id"), int):
            raise ValueError("api_id must be an integer")
        if params.get("api_hash") != API_HASH:
            return self._go("need_app", "Telegram does not know this api_id and api_hash.")
        return self._go("need_phone")

    def _phone(self, params: dict[str, Any]) -> dict[str, Any]:
        self.phone = re.sub(r"\D", "", params["phone"])
        return self._go("need_code")

    def _code(self, params: dict[str, Any]) -> dict[str, Any]:
        if params["code"] != LOGIN_CODE:
            return self._go("need_code", "That code is wrong; check it and type it again.")
        if self.two_step:
            return self._go("need_password")
        return self._logged_in()

    def _password(self, params: dict[str, Any]) -> dict[str, Any]:
        if params["password"] != TWO_STEP:
            return self._go("need_password", "That password is wrong (hint: flower).")
        return self._logged_in()

    def _logged_in(self) -> dict[str, Any]:
        self.user = {"id": 777, "name": "Home Gateway", "username": "home_gw", "phone": self.phone}
        return self._go("logged_in")

    def _set_token(self, params: dict[str, Any]) -> dict[str, Any]:
        if params["token"] != BOT_TOKEN:
            raise ControlError("invalid", "Telegram does not accept this bot token.")
        self.bot = {
            "configured": True,
            "state": "connected",
            "error": None,
            "username": "smith_home_bot",
            "inline": self.bot_inline,
        }
        return {"username": "smith_home_bot", "inline": self.bot_inline}

    def _invite(self, params: dict[str, Any]) -> dict[str, Any]:
        token = "Ue1tokenABC"
        return {
            "id": 1,
            "token": token,
            "link": f"https://t.me/smith_home_bot?start={token}",
            "command": f"/start {token}",
            "expires_at": 4102444800.0,
            "lines": params.get("lines", []),
        }

    def _stop_test(self, params: dict[str, Any]) -> dict[str, Any]:
        self.test = {**self.test, "state": "ended", "message": "The test call was stopped."}
        return self.test

    def _start_test(self, params: dict[str, Any]) -> dict[str, Any]:
        self.test = {"state": "ringing", "member": "Olivia", "message": "Calling Olivia…"}
        return self.test


class LoopThread:
    """An event loop in a thread: the control server answers while Flask's client blocks."""

    def __init__(self) -> None:
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, daemon=True)
        self.thread.start()

    def run(self, coro: Awaitable[Any]) -> Any:
        return asyncio.run_coroutine_threadsafe(coro, self.loop).result(10)  # type: ignore[arg-type]

    def close(self) -> None:
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(5)
        self.loop.close()


@dataclass
class Site:
    app: Flask
    client: FlaskClient
    settings_file: Path
    gateway: FakeGateway
    server: ControlServer | None = None
    loop: LoopThread | None = None

    def csrf(self, path: str = "/wizard") -> str:
        match = _CSRF.search(self.client.get(path).get_data(as_text=True))
        assert match is not None
        return match.group(1)

    def get(self, path: str, status: int = 200) -> str:
        response = self.client.get(path)
        assert response.status_code == status, (path, response.status_code)
        return response.get_data(as_text=True)

    def post(self, path: str, data: dict[str, Any] | None = None, **kw: Any) -> Any:
        return self.client.post(path, data={"csrf_token": self.csrf(), **(data or {})}, **kw)

    def start_gateway(self) -> None:
        self.loop = LoopThread()
        socket_path = self.app.extensions["linegram"].settings.control_socket
        self.server = ControlServer(socket_path, self.gateway.methods())
        self.loop.run(self.server.start())

    def stop_gateway(self) -> None:
        if self.server is not None and self.loop is not None:
            self.loop.run(self.server.stop())
            self.loop.close()
        self.server = self.loop = None

    def called(self, method: str) -> list[dict[str, Any]]:
        return [params for name, params in self.gateway.calls if name == method]


SETTINGS = """\
[gateway]
data_dir = "{data}"

[sip]
listen = "192.168.7.20"
port = 5070
"""


def _make_site(root: Path) -> Site:
    data = root / "data"
    data.mkdir()
    settings_file = root / "linegram.toml"
    settings_file.write_text(SETTINGS.format(data=data), "utf-8")
    settings_file.chmod(0o600)
    app = create_app(settings_file)
    app.config["TESTING"] = True
    client = app.test_client()
    site = Site(app, client, settings_file, FakeGateway())
    # First run, as the owner does it: the password page leads into the wizard.
    page = client.get("/setup").get_data(as_text=True)
    token = _CSRF.search(page)
    assert token is not None
    response = client.post(
        "/setup",
        data={"csrf_token": token.group(1), "password": ADMIN_PASSWORD, "confirm": ADMIN_PASSWORD},
    )
    assert response.status_code == 302 and response.headers["Location"].endswith("/wizard")
    return site


@pytest.fixture
def root() -> Iterator[Path]:
    # Short: the control socket's path must fit in sun_path (107 bytes).
    path = Path(tempfile.mkdtemp(prefix="lgwiz"))
    try:
        yield path
    finally:
        shutil.rmtree(path, ignore_errors=True)


@pytest.fixture
def site(root: Path) -> Iterator[Site]:
    made = _make_site(root)
    made.start_gateway()
    try:
        yield made
    finally:
        made.stop_gateway()


@pytest.fixture
def down_site(root: Path) -> Site:
    """No gateway listening on the control socket."""
    return _make_site(root)


def _current(html: str) -> str:
    match = re.search(r'<li class="current" aria-current="step">\s*(?:<a [^>]*>)?([^<]+)', html)
    assert match is not None, html
    return match.group(1).strip()


def _steps(html: str) -> dict[str, str]:
    """Each step of the progress list: its label and its mark (done, skipped or nothing)."""
    listing = html.split('<ol class="steps">', 1)[1].split("</ol>", 1)[0]
    steps = {}
    for item in re.findall(r"<li[^>]*>(.*?)</li>", listing, re.S):
        text = re.sub(r"<[^>]+>", "", item).strip()
        label, _, mark = text.partition(" ")
        label, mark = (text.rstrip(" ✓"), "done") if text.endswith("✓") else (text, "")
        if label.endswith("(skipped)"):
            label, mark = label.removesuffix("(skipped)").strip(), "skipped"
        steps[label] = mark
    return steps


def _field_error(html: str, field_id: str) -> str:
    match = re.search(rf'<p class="error" id="{field_id}-error">([^<]*)</p>', html)
    assert match is not None, f"no error next to {field_id}"
    return match.group(1)


def _value_of(html: str, field_id: str) -> str | None:
    match = re.search(rf'<input [^>]*id="{field_id}"[^>]*>', html)
    assert match is not None, f"no input {field_id}"
    value = re.search(r'value="([^"]*)"', match.group(0))
    return value.group(1) if value else None


# -- Telegram account ----------------------------------------------------------------------------


def test_first_run_leads_into_the_wizard_at_the_telegram_step(site: Site) -> None:
    html = site.get("/wizard")
    assert '<ol class="steps">' in html
    assert _current(html) == "Telegram account"
    assert _steps(html) == {
        "Admin password": "done",
        "Telegram account": "",
        "Companion bot": "",
        "First line": "",
        "Test call": "",
    }
    assert "my.telegram.org" in html and "API development tools" in html
    assert "Instructions for need_app." in html
    assert 'id="api_id"' in html and 'id="api_hash"' in html


def test_telegram_sign_in_walks_app_phone_code_and_never_echoes_secrets(site: Site) -> None:
    pages: list[str] = []
    # A wrong app: the gateway's message stands next to the field; the hash is not echoed.
    response = site.post("/wizard/telegram/app", {"api_id": "12345", "api_hash": "f" * 32})
    assert response.status_code == 302
    html = site.get("/wizard?step=telegram")
    pages.append(html)
    assert _field_error(html, "api_id") == "Telegram does not know this api_id and api_hash."
    assert "f" * 32 not in html
    # A malformed api_id never reaches the gateway.
    calls = len(site.called("telegram.login.app"))
    response = site.post("/wizard/telegram/app", {"api_id": "12a45", "api_hash": API_HASH})
    assert response.status_code == 400
    html = response.get_data(as_text=True)
    pages.append(html)
    assert "number shown on my.telegram.org" in _field_error(html, "api_id")
    assert len(site.called("telegram.login.app")) == calls
    assert _value_of(html, "api_hash") == ""

    site.post("/wizard/telegram/app", {"api_id": "12345", "api_hash": API_HASH})
    assert site.called("telegram.login.app")[-1] == {"api_id": 12345, "api_hash": API_HASH}
    html = site.get("/wizard?step=telegram")
    pages.append(html)
    assert 'id="phone"' in html and "Instructions for need_phone." in html

    site.post("/wizard/telegram/phone", {"phone": "+49 170 1234567"})
    html = site.get("/wizard?step=telegram")
    pages.append(html)
    assert 'id="code"' in html and "5 digits." in html
    assert "Send the code again" in html and "by SMS" in html

    # A wrong code: message next to the code field, the typed code not in the page.
    response = site.post("/wizard/telegram/code", {"code": "99999"})
    html = site.get("/wizard?step=telegram")
    pages.append(html)
    assert _field_error(html, "code") == "That code is wrong; check it and type it again."
    assert "99999" not in html and _value_of(html, "code") == ""
    # An empty code is the form's own error (400), nothing sent.
    response = site.post("/wizard/telegram/code", {"code": ""})
    assert response.status_code == 400
    assert _field_error(response.get_data(as_text=True), "code") == "Type the code Telegram sent."

    response = site.post("/wizard/telegram/code", {"code": LOGIN_CODE})
    assert response.status_code == 302 and response.headers["Location"] == "/wizard"
    html = site.get("/wizard")
    pages.append(html)
    assert _current(html) == "Companion bot"
    assert _steps(html)["Telegram account"] == "done"
    html = site.get("/wizard?step=telegram")
    pages.append(html)
    assert "signed in" in html and "Home Gateway (@home_gw), +491701234567" in html
    for page in pages:
        assert API_HASH not in page and LOGIN_CODE not in page


def test_two_step_password_shows_the_hint_and_the_problem(site: Site) -> None:
    site.gateway.two_step = True
    site.gateway.step, site.gateway.phone = "need_code", "491701234567"
    site.post("/wizard/telegram/code", {"code": LOGIN_CODE})
    html = site.get("/wizard")
    assert 'type="password"' in html and "Hint: flower" in html
    site.post("/wizard/telegram/password", {"password": "wrong-one-1"})
    html = site.get("/wizard")
    assert _field_error(html, "password") == "That password is wrong (hint: flower)."
    assert "wrong-one-1" not in html
    site.post("/wizard/telegram/password", {"password": TWO_STEP})
    html = site.get("/wizard")
    assert _current(html) == "Companion bot"
    assert TWO_STEP not in html


def test_resend_restart_and_log_out_reach_the_gateway(site: Site) -> None:
    site.gateway.step, site.gateway.phone = "need_code", "491701234567"
    site.post("/wizard/telegram/resend")
    site.post("/wizard/telegram/restart")
    assert [name for name, _ in site.gateway.calls if name.endswith(("resend", "restart"))] == [
        "telegram.login.resend",
        "telegram.login.restart",
    ]
    assert 'id="phone"' in site.get("/wizard?step=telegram")
    site.gateway._logged_in()
    assert "Sign out and use another account" in site.get("/wizard?step=telegram")
    site.post("/wizard/telegram/log_out")
    assert site.called("telegram.login.log_out") == [{}]


# -- companion bot --------------------------------------------------------------------------------


def test_bot_token_refused_is_explained_and_inline_off_warns(site: Site) -> None:
    site.gateway._logged_in()
    html = site.get("/wizard")
    assert _current(html) == "Companion bot"
    assert "/newbot" in html and "/setinline" in html and "/setprivacy" in html
    assert "end in “bot”" in html

    response = site.post("/wizard/bot", {"token": "not a token"})
    assert response.status_code == 400
    assert "does not look like a bot token" in _field_error(
        response.get_data(as_text=True), "token"
    )
    assert not site.called("telegram.bot.set_token")

    wrong = BOT_TOKEN[:-1] + "x"
    response = site.post("/wizard/bot", {"token": wrong})
    assert response.status_code == 400
    html = response.get_data(as_text=True)
    assert _field_error(html, "token") == "Telegram does not accept this bot token."
    assert wrong not in html and _value_of(html, "token") == ""

    site.gateway.bot_inline = False
    response = site.post("/wizard/bot", {"token": BOT_TOKEN})
    assert response.headers["Location"] == "/wizard?step=bot"
    html = site.get("/wizard?step=bot")
    assert "The companion bot @smith_home_bot is connected." in html
    assert 'id="inline-warning"' in html and "/setinline" in html
    assert BOT_TOKEN not in html
    # The bot is set up: the step is done even without inline mode; the wizard moves on.
    assert _current(site.get("/wizard")) == "First line"


def test_bot_with_inline_mode_goes_straight_on(site: Site) -> None:
    response = site.post("/wizard/bot", {"token": BOT_TOKEN})
    assert response.headers["Location"] == "/wizard"
    assert 'id="inline-warning"' not in site.get("/wizard?step=bot")


# -- first line -----------------------------------------------------------------------------------


def test_ata_line_saved_with_a_password_shown_once_and_the_grandstream_settings(
    site: Site,
) -> None:
    response = site.post(
        "/wizard/line",
        {"kind": "ata", "name": "landline", "country_code": "+44", "ata_username": "ht801"},
    )
    assert response.status_code == 200
    html = response.get_data(as_text=True)
    line = load_config(site.settings_file).line("landline")
    assert isinstance(line, AtaLineConfig)
    assert line.incoming == "members" and line.username == "ht801"
    assert line.dialing.country_code == "44"
    password = line.password.reveal()
    assert len(password) == 16
    # Shown this once, with what to type into the ATA.
    match = re.search(r'<code class="secret-once" id="generated-password">([^<]+)</code>', html)
    assert match is not None and match.group(1) == password
    for setting, value in [
        ("Primary SIP Server", "192.168.7.20:5070"),
        ("SIP User ID", "ht801"),
        ("Authenticate ID", "ht801"),
        ("SIP Registration", "Yes"),
        ("Outgoing Call Without Registration", "No"),
        ("Preferred DTMF method", "Priority 1: RFC2833"),
        ("Unconditional Call Forward to VOIP: Sip Destination Port", "5070"),
        ("PSTN Ring Thru FXS", "No"),
        ("Stage Method (1/2)", "1"),
    ]:
        assert re.search(
            rf"<td data-label=\"Setting\">{re.escape(setting)}</td><td data-label=\"Value\">"
            rf"(?:<code>)?{re.escape(value)}",
            html,
        ), setting
    assert "Line landline: saved and applied." in html
    assert site.called("config.reload") == [{}]
    # Never again.
    later = site.get("/wizard?step=line")
    assert password not in later
    assert "not shown again" in later and "192.168.7.20:5070" in later
    assert _current(site.get("/wizard")) == "Telegram account"  # the steps before are not done


def test_ata_line_with_own_password_never_shows_it(site: Site) -> None:
    response = site.post(
        "/wizard/line",
        {"kind": "ata", "name": "home", "ata_username": "ht813", "ata_password": "own-secret-77"},
    )
    assert response.status_code == 302 and response.headers["Location"] == "/wizard?step=line"
    html = site.get("/wizard?step=line")
    assert "own-secret-77" not in html and "generated-password" not in html
    assert load_config(site.settings_file).line("home").password.reveal() == "own-secret-77"


def test_provider_line_from_a_preset(site: Site) -> None:
    response = site.post(
        "/wizard/line",
        {
            "kind": "provider",
            "name": "home",
            "preset": "sipgate",
            "registrar": "",
            "transport": "udp",
            "username": "2345678e0",
            "password": "provider-pass-9",
            "country_code": "49",
        },
    )
    assert response.status_code == 302
    line = load_config(site.settings_file).line("home")
    assert isinstance(line, ProviderLineConfig)
    assert str(line.registrar) == "sipgate.de" and line.username == "2345678e0"
    assert line.password.reveal() == "provider-pass-9" and line.incoming == "members"
    html = site.get("/wizard?step=line")
    assert "provider-pass-9" not in html
    assert "2345678e0 at sipgate.de" in html
    # Presets carry what the script fills in.
    assert 'data-registrar="sip.zadarma.com"' in html


def test_bad_line_input_is_explained_next_to_the_field_and_nothing_saved(site: Site) -> None:
    before = site.settings_file.read_bytes()
    response = site.post(
        "/wizard/line",
        {
            "kind": "provider",
            "name": "home",
            "preset": "other",
            "registrar": "sip.example.net:99999",
            "username": "alice",
            "password": "never-shown-3",
        },
    )
    assert response.status_code == 400
    html = response.get_data(as_text=True)
    assert "Not a server address" in _field_error(html, "registrar")
    assert "never-shown-3" not in html
    assert site.settings_file.read_bytes() == before
    assert not site.called("config.reload")

    # What only the gateway's validator knows (a name already used) lands next to the field too.
    site.post("/wizard/line", {"kind": "ata", "name": "home", "ata_password": "first-pass-1"})
    before = site.settings_file.read_bytes()
    response = site.post("/wizard/line", {"kind": "ata", "name": "home", "ata_username": "x"})
    assert response.status_code == 400
    assert "already used by lines[0]" in _field_error(response.get_data(as_text=True), "name")
    assert site.settings_file.read_bytes() == before


# -- test call ------------------------------------------------------------------------------------


def _ready_for_the_test(site: Site) -> None:
    site.gateway._logged_in()
    site.post("/wizard/bot", {"token": BOT_TOKEN})
    site.post("/wizard/line", {"kind": "ata", "name": "home", "ata_password": "some-pass-12"})


def test_invite_yourself_shows_link_and_qr_and_notices_the_member(site: Site) -> None:
    _ready_for_the_test(site)
    html = site.get("/wizard")
    assert _current(html) == "Test call"
    assert "Invite yourself" in html
    assert "dial <strong>600</strong> (the echo test)" in html

    response = site.post("/wizard/invite")
    assert response.headers["Location"] == "/wizard?step=test"
    assert site.called("invitations.create") == [
        {"lines": ["home"], "note": "owner (setup wizard)"}
    ]
    html = site.get("/wizard?step=test")
    assert '<div class="qr"><svg' in html
    assert 'href="https://t.me/smith_home_bot?start=Ue1tokenABC"' in html
    assert site.client.get("/wizard/api/members").get_json() == {"gateway": "up", "members": 0}

    site.gateway.members = [{"id": 1, "name": "Olivia", "owner": True}]
    assert site.client.get("/wizard/api/members").get_json() == {"gateway": "up", "members": 1}
    html = site.get("/wizard?step=test")
    assert "Call me" in html and 'class="qr"' not in html


def test_call_me_and_the_live_status(site: Site) -> None:
    _ready_for_the_test(site)
    site.gateway.members = [{"id": 1, "name": "Olivia", "owner": True}]
    assert site.client.get("/wizard/api/test-call").get_json()["verdict"] == "idle"
    response = site.post("/wizard/test-call")
    assert response.headers["Location"] == "/wizard?step=test"
    assert site.called("test_call.start") == [{}]
    status = site.client.get("/wizard/api/test-call").get_json()
    assert status["state"] == "ringing" and status["tone"] == "warn"
    assert status["message"] == "Calling Olivia…"

    site.gateway.test = {
        "state": "up",
        "member": "Olivia",
        "message": "Audio flows: Olivia is heard and hears herself.",
        "heard_seconds": 2.5,
        "peak_dbfs": -11.2,
        "frames_in": 250,
        "frames_out": 250,
    }
    status = site.client.get("/wizard/api/test-call").get_json()
    assert (status["verdict"], status["tone"], status["label"]) == ("ok", "ok", "audio flows")
    html = site.get("/wizard?step=test")
    assert "Audio flows: Olivia is heard" in html and "Heard 2.5 s" in html
    assert _steps(html)["Test call"] == "done"

    assert "Hang up" in html and 'data-part="stop" hidden' not in html
    site.post("/wizard/test-call/stop")
    assert site.called("test_call.stop") == [{}]
    assert 'data-part="stop" hidden' in site.get("/wizard?step=test")

    site.gateway.test = {"state": "failed", "member": "Olivia", "message": "Olivia declined."}
    status = site.client.get("/wizard/api/test-call").get_json()
    assert (status["verdict"], status["tone"], status["message"]) == (
        "bad",
        "bad",
        "Olivia declined.",
    )


def test_skip_revisit_and_finish(site: Site) -> None:
    site.post("/wizard/skip/telegram")
    assert _current(site.get("/wizard")) == "Companion bot"
    site.post("/wizard/skip/bot")
    site.post("/wizard/skip/line")
    site.post("/wizard/skip/test")
    html = site.get("/wizard")
    assert "All set" in html
    assert set(_steps(html).values()) == {"done", "skipped"}
    assert list(_steps(html).values()).count("skipped") == 4
    # A skipped step can be opened again from the progress list.
    assert _current(site.get("/wizard?step=bot")) == "Companion bot"
    # The password cannot be skipped.
    site.post("/wizard/skip/password")
    assert _steps(site.get("/wizard"))["Admin password"] == "done"

    assert not site.app.extensions["linegram"].admin.load().wizard_done
    response = site.post("/wizard/finish")
    assert response.headers["Location"] == "/"
    assert site.app.extensions["linegram"].admin.load().wizard_done


# -- the gateway is not running -------------------------------------------------------------------


def test_a_stopped_gateway_is_a_message_not_an_error(down_site: Site) -> None:
    site = down_site
    html = site.get("/wizard")
    assert "The gateway is not running; start it and reload." in html
    response = site.post("/wizard/telegram/app", {"api_id": "12345", "api_hash": API_HASH})
    assert response.status_code == 302
    assert "The gateway is not running" in site.get("/wizard?step=telegram")
    response = site.post("/wizard/bot", {"token": BOT_TOKEN})
    assert response.status_code == 302
    # The line is saved anyway; the gateway reads it when it starts.
    response = site.post(
        "/wizard/line",
        {"kind": "ata", "name": "home", "ata_password": "typed-pass-4"},
        follow_redirects=True,
    )
    assert response.status_code == 200
    assert (
        "Line home: saved. The gateway is not running; the change takes effect when it starts."
        in response.get_data(as_text=True)
    )
    assert load_config(site.settings_file).line("home").username == "ht801"
    assert site.client.get("/wizard/api/test-call").get_json()["gateway"] == "down"
    assert site.client.get("/wizard/api/members").get_json()["gateway"] == "down"
    assert site.post("/wizard/invite").status_code == 302
    assert site.post("/wizard/test-call").status_code == 302


def test_a_gateway_without_a_method_yet_still_renders(site: Site) -> None:
    site.stop_gateway()
    methods = site.gateway.methods()
    del methods["test_call.status"], methods["config.reload"]
    site.loop = LoopThread()
    site.server = ControlServer(site.app.extensions["linegram"].settings.control_socket, methods)
    site.loop.run(site.server.start())
    html = site.get("/wizard?step=test")
    assert "test_call.status" in html  # named in a warning, no 500
    response = site.post(
        "/wizard/line",
        {"kind": "ata", "name": "home", "ata_password": "typed-pass-5"},
        follow_redirects=True,
    )
    assert "Line home: saved, but the gateway could not apply it" in response.get_data(as_text=True)


# -- pieces ---------------------------------------------------------------------------------------


def test_sip_server_address_for_the_ata(root: Path) -> None:
    config = load_config(_make_site(root).settings_file)
    assert str(wizard.sip_server(config)) == "192.168.7.20:5070"
    loopback = wizard.sip_server(
        config.__class__(**{**config.__dict__, "sip": config.sip.__class__(listen="127.0.0.1")})
    )
    assert loopback.warning and "0.0.0.0" in loopback.warning
    anywhere = wizard.sip_server(
        config.__class__(**{**config.__dict__, "sip": config.sip.__class__(listen="0.0.0.0")})
    )
    expected = wizard.default_route_address()
    assert anywhere.host == (expected or "")
    if expected is not None:
        # The address a UDP socket would use for the default route: an address of this host.
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as probe:
            probe.bind((expected, 0))


def test_verdicts() -> None:
    assert wizard.test_verdict(None) == "idle"
    assert wizard.test_verdict({"state": "ringing"}) == "running"
    assert wizard.test_verdict({"state": "up", "heard_seconds": 0}) == "running"
    assert wizard.test_verdict({"state": "up", "heard_seconds": 1.0}) == "ok"
    assert wizard.test_verdict({"state": "ended", "heard_seconds": 3.0}) == "ok"
    assert wizard.test_verdict({"state": "ended", "heard_seconds": 0}) == "bad"
    assert wizard.test_verdict({"state": "failed"}) == "bad"
    password = wizard.generate_password()
    assert len(password) == 16 and not set(password) & set("0O1lI")

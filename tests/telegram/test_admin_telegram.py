"""The wizard's Telegram control methods on a real gateway against the simulated cloud.

The gateway runs in this event loop with ``[telegram.server]`` pointing at a
simulated Telegram on 127.0.0.1 (not simulation mode), and is driven only
through its control socket (``ControlClient``), as the web UI drives it: the
sign-in (code, 2FA), the companion bot's token, and the echo test call with a
simulated member on real ntgcalls media (hence the private network namespace).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import socket
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
import tomli_w

from gateway.app import Gateway
from gateway.config import load_config
from gateway.control import ControlClient, ControlError
from gateway.store import MemberRecord, Store
from gateway.telegram.account import ConnectionState
from gateway.telegram.messages import Button, Member, OutgoingMessage
from simcloud.audio import analyse
from simcloud.client import SIM_API_HASH, SIM_API_ID
from simcloud.cloud import Cloud
from simcloud.member import Incoming, SimMember
from simcloud.server import CloudServer
from simcloud.state import SimUser
from simcloud.world import build_cloud
from tests.telegram.simworld import eventually, eventually_async

pytestmark = [pytest.mark.media, pytest.mark.timeout(150)]

GATEWAY_PHONE = "+99966 0000"
PASSWORD = "correct horse battery"
STEP = 20.0


@dataclass
class Setup:
    cloud: Cloud
    server: CloudServer
    gateway_user: SimUser
    path: Path  # the settings file
    gw: Gateway
    client: ControlClient
    members: list[SimMember] = field(default_factory=list)

    @property
    def state(self) -> Any:
        return vars(self.cloud)["state"]

    async def call(self, method: str, **params: Any) -> Any:
        return await self.client.call(method, **params)

    async def error(self, method: str, **params: Any) -> ControlError:
        with pytest.raises(ControlError) as info:
            await self.client.call(method, **params)
        return info.value

    async def sign_in(self) -> None:
        view = await self.call("telegram.login.app", api_id=SIM_API_ID, api_hash=SIM_API_HASH)
        assert view["step"] == "need_phone", view
        view = await self.call("telegram.login.phone", phone=GATEWAY_PHONE)
        assert view["step"] == "need_code", view
        view = await self.call("telegram.login.code", code=self.state.last_code(GATEWAY_PHONE))
        assert view["step"] == "logged_in", view
        await eventually(lambda: self.gw.telegram.calls is not None, STEP)

    async def member(
        self, name: str, phone: str, **behaviour: Any
    ) -> tuple[SimMember, MemberRecord]:
        """A linked member's phone, a mutual contact of the gateway account."""
        sim = await SimMember.create(
            self.cloud, self.server, phone=phone, first_name=name, **behaviour
        )
        self.members.append(sim)
        # The simulator has no relays: peer-to-peer media needs mutual contacts.
        self.state.add_contact(self.gateway_user, sim.user)
        self.state.add_contact(sim.user, self.gateway_user)
        record = self.gw.store.add_member(
            sim.id,
            self.state.access_hash(self.gateway_user, sim.user),
            name,
            "",
            (),
            time.time(),
        )
        return sim, record

    async def test_status(self, *states: str, within: float = STEP) -> dict[str, Any]:
        async def reached() -> dict[str, Any] | None:
            status: dict[str, Any] = await self.call("test_call.status")
            return status if status["state"] in states else None

        return await eventually_async(reached, within)


def gateway_log(caplog: pytest.LogCaptureFixture) -> str:
    """What the gateway logged (the simulated cloud's own records are not the product's)."""
    return "\n".join(r.getMessage() for r in caplog.records if r.name.startswith("gateway"))


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
    return port


@pytest.fixture
async def setup(tmp_path: Path) -> AsyncIterator[Setup]:
    cloud = build_cloud()
    state = vars(cloud)["state"]
    state.add_app(SIM_API_ID, SIM_API_HASH)
    gateway_user = state.add_user(
        phone=GATEWAY_PHONE, first_name="Home", last_name="Gateway", username="home_gateway"
    )
    async with CloudServer(cloud, "127.0.0.1", 0) as server:
        key_file = tmp_path / "sim.pem"
        key_file.write_bytes(server.key.public_pem)
        # A fresh installation: no API app, no bot token; the wizard sets them.
        document = {
            "gateway": {"data_dir": str(tmp_path / "data"), "log_level": "debug"},
            "sip": {"listen": "127.0.0.1", "port": free_port()},
            "media": {"address": "127.0.0.1", "rtp_port_min": 41000, "rtp_port_max": 41099},
            "telegram": {
                "ring_timeout": 20,
                "server": {
                    "address": f"{server.host}:{server.port}",
                    "public_key": str(key_file),
                },
            },
            "lines": [{"name": "home", "kind": "ata", "allow": ["127.0.0.5"]}],
        }
        path = tmp_path / "linegram.toml"
        path.write_text(tomli_w.dumps(document))
        path.chmod(0o600)
        (tmp_path / "data").mkdir()
        config = load_config(path)
        store = Store.open(config.data_dir / "linegram.db")
        gw = Gateway(config, store, path)
        await gw.start()
        setup = Setup(cloud, server, gateway_user, path, gw, ControlClient(gw.control.path))
        try:
            yield setup
        finally:
            await setup.client.close()
            await asyncio.sleep(0.05)  # the server sees the close before it stops
            for member in setup.members:
                with contextlib.suppress(Exception):
                    await asyncio.wait_for(member.close(), 10)
            await asyncio.wait_for(gw.stop(), 30)
            store.close()


# -- signing in ----------------------------------------------------------------------------------


async def test_login_through_the_control_socket(
    setup: Setup, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    view = await setup.call("telegram.login.view")
    assert (view["step"], view["user"], view["can_resend"]) == ("need_app", None, False)
    view = await setup.call("telegram.login.app", api_id="4711", api_hash="not-a-hash")
    assert view["step"] == "need_app"
    assert view["message"] == (
        "The api_hash has 32 letters and digits; copy it from my.telegram.org."
    )
    # api_id as a string, as a form posts it.
    view = await setup.call("telegram.login.app", api_id=str(SIM_API_ID), api_hash=SIM_API_HASH)
    assert view["step"] == "need_phone" and view["message"] is None

    view = await setup.call("telegram.login.phone", phone=GATEWAY_PHONE)
    assert view["step"] == "need_code"
    assert (view["phone"], view["code_via"], view["code_length"]) == ("999660000", "sms", 5)
    assert view["can_resend"] is True
    # Telegram accepted the app with the first code: it is in the settings file now.
    saved = load_config(setup.path).telegram
    assert (saved.api_id, saved.api_hash.reveal()) == (SIM_API_ID, SIM_API_HASH)

    right = setup.state.last_code(GATEWAY_PHONE)
    wrong = "00000" if right != "00000" else "11111"
    view = await setup.call("telegram.login.code", code=wrong)
    assert view["step"] == "need_code"
    assert view["message"] == "That code is not right. Check the code Telegram sent you."
    view = await setup.call("telegram.login.resend")
    assert view["step"] == "need_code" and view["message"] is None
    right = setup.state.last_code(GATEWAY_PHONE)

    view = await setup.call("telegram.login.code", code=right)
    assert view["step"] == "logged_in"
    assert view["user"] == {
        "id": setup.gateway_user.id,
        "name": "Home Gateway",
        "username": "home_gateway",
        "phone": "999660000",
    }
    assert (await setup.call("telegram.login.view"))["step"] == "logged_in"
    status = await setup.call("status")
    assert status["telegram"]["account"] == "connected"

    view = await setup.call("telegram.login.restart")
    assert view["step"] == "logged_in"
    assert view["message"] == "The gateway account is logged in. Log out to start over."
    view = await setup.call("telegram.login.log_out")
    assert view["step"] == "need_phone" and view["user"] is None
    text = gateway_log(caplog)
    for secret in (SIM_API_HASH, right, wrong, "999660000"):
        assert secret not in text


async def test_login_with_two_step_verification(
    setup: Setup, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    setup.state.set_password(setup.gateway_user, PASSWORD, hint="the stable")
    await setup.call("telegram.login.app", api_id=SIM_API_ID, api_hash=SIM_API_HASH)
    await setup.call("telegram.login.phone", phone=GATEWAY_PHONE)
    view = await setup.call("telegram.login.code", code=setup.state.last_code(GATEWAY_PHONE))
    assert (view["step"], view["password_hint"]) == ("need_password", "the stable")
    view = await setup.call("telegram.login.password", password="wrong horse")
    assert view["step"] == "need_password"
    assert view["message"] == "That password is not right. Hint: the stable"
    view = await setup.call("telegram.login.password", password=PASSWORD)
    assert view["step"] == "logged_in" and view["user"]["name"] == "Home Gateway"
    text = gateway_log(caplog)
    assert PASSWORD not in text and "wrong horse" not in text


# -- the companion bot ---------------------------------------------------------------------------


async def test_bot_token_refused_then_accepted_and_replaced(setup: Setup) -> None:
    await setup.sign_in()
    assert (await setup.call("telegram.bot.view"))["configured"] is False

    error = await setup.error("telegram.bot.set_token", token="12345:short")
    assert error.code == "invalid" and error.message.startswith("A bot token looks like")
    unknown = "987654321:" + "A" * 35
    error = await setup.error("telegram.bot.set_token", token=unknown)
    assert (error.code, error.message) == (
        "invalid",
        (
            "Telegram refused this bot token: Telegram does not accept the bot token. Copy it"
            " again from @BotFather."
        ),
    )
    assert not load_config(setup.path).telegram.bot_token
    assert setup.gw.telegram.bot is None
    assert (await setup.call("telegram.bot.view"))["configured"] is False

    sim_bot, token = setup.state.add_bot(
        "linegram_home_bot", owner=setup.gateway_user, inline_feedback=True
    )
    result = await setup.call("telegram.bot.set_token", token=token)
    assert result == {"username": "linegram_home_bot", "inline": True}
    assert load_config(setup.path).telegram.bot_token.reveal() == token
    assert await setup.call("telegram.bot.view") == {
        "configured": True,
        "state": "connected",
        "error": None,
        "username": "linegram_home_bot",
        "inline": True,
    }
    first = setup.gw.telegram.bot
    assert first is not None and setup.gw.telegram.messenger.bot is first
    assert setup.gw.telegram.messenger.bot_ready
    status = await setup.call("status")
    assert status["telegram"]["bot_username"] == "linegram_home_bot"
    invitation = await setup.call("invitations.create")
    assert invitation["link"].startswith("https://t.me/linegram_home_bot?start=")

    # Buttons go out through the new bot.
    alice, _record = await setup.member("Alice", "+99966 1001")
    member = Member(alice.id, setup.state.access_hash(setup.gateway_user, alice.user), "Alice")
    ref = await setup.gw.telegram.messenger.send(
        member, OutgoingMessage("Test", keyboard=[[Button("OK", "ok")]])
    )
    assert ref.via_bot
    received = await alice.client.get_messages("home_gateway", limit=1)
    assert received[0].via_bot_id == sim_bot.id and received[0].buttons

    # The same token again changes nothing; another bot (inline mode off) replaces it.
    assert await setup.call("telegram.bot.set_token", token=token) == result
    assert setup.gw.telegram.bot is first
    _other, other_token = setup.state.add_bot("other_home_bot", inline=False)
    result = await setup.call("telegram.bot.set_token", token=other_token)
    assert result == {"username": "other_home_bot", "inline": False}
    assert first.state is ConnectionState.DISCONNECTED  # the old bot was stopped
    assert setup.gw.telegram.messenger.bot is setup.gw.telegram.bot is not first
    assert load_config(setup.path).telegram.bot_token.reveal() == other_token
    assert (await setup.call("telegram.bot.view"))["inline"] is False
    # The trial bot's session became the bot's own; no trial file is left behind.
    files = {p.name for p in (setup.path.parent / "data" / "telegram").iterdir()}
    assert {"gateway-bot.session", "gateway.session"} <= files
    assert not [name for name in files if "-new" in name], files


# -- the echo test call ----------------------------------------------------------------------------


async def test_test_call_echoes_a_tone_back(setup: Setup) -> None:
    await setup.sign_in()
    olivia, _record = await setup.member("Olivia", "+99966 1001")
    gateway_id = setup.gateway_user.id
    status = await setup.call("test_call.start")  # the owner: Olivia, the first member
    assert (status["state"], status["member"]) == ("ringing", "Olivia")
    status = await setup.test_status("up")
    error = await setup.error("test_call.start")
    assert (error.code, error.message) == (
        "busy",
        "A test call to Olivia is in progress; stop it first.",
    )
    await olivia.send_tone(gateway_id, 440, 2.0, amplitude=0.3)
    await asyncio.sleep(1.5)  # the echo's half second, and the way back
    status = await setup.call("test_call.status")
    assert status["state"] == "up" and status["heard_seconds"] > 1
    await olivia.hang_up(gateway_id)
    status = await setup.test_status("ended")
    assert status["heard_seconds"] > 1.0, status
    assert status["peak_dbfs"] == pytest.approx(-10.5, abs=3), status
    assert status["frames_in"] >= 250 and status["frames_out"] >= 200, status
    assert status["message"].startswith("Audio flows: the gateway heard you for"), status
    assert status["ended_at"] >= status["started_at"]
    # What Olivia heard back: her tone.
    echoed = analyse(olivia.received_pcm(gateway_id))
    assert echoed.voiced_frames > 100, echoed
    assert echoed.frequency_hz == pytest.approx(440, abs=5), echoed


async def test_test_call_declined_or_stopped(setup: Setup) -> None:
    await setup.sign_in()
    _nora, nora = await setup.member("Nora", "+99966 1001", incoming=Incoming.DECLINE)
    _sam, sam = await setup.member("Sam", "+99966 1002", incoming=Incoming.IGNORE)
    error = await setup.error("test_call.start", member_id=99)
    assert (error.code, error.message) == ("not_found", "no member with id 99")
    await setup.call("test_call.start", member_id=nora.id)
    status = await setup.test_status("failed")
    assert (status["member"], status["message"]) == ("Nora", "Nora declined the call.")
    assert status["heard_seconds"] == 0 and status["peak_dbfs"] is None

    status = await setup.call("test_call.start", member_id=sam.id)
    assert status["state"] == "ringing"
    status = await setup.call("test_call.stop")
    assert (status["state"], status["message"]) == (
        "ended",
        "The test call was stopped before Sam answered.",
    )
    assert setup.gw.telegram.calls is not None and not setup.gw.telegram.calls.calls

"""The login state machine against the simulated cloud: codes, 2FA, mistakes, floods."""

from __future__ import annotations

import asyncio
import logging
import stat
from pathlib import Path
from typing import Any

import pytest
from telethon import errors as tg
from telethon.tl import functions

from gateway.config import Secret, default_config, load_config, save_config
from gateway.telegram.account import ConnectionState
from gateway.telegram.errors import describe, format_wait
from gateway.telegram.login import (
    CodeDelivery,
    Login,
    LoginStep,
    mask_phone,
    save_app_to_config,
)
from simcloud import cloud as cloud_module
from simcloud.client import SIM_API_HASH, SIM_API_ID, make_client
from simcloud.cloud import FloodRule, RpcError
from tests.telegram.simworld import GATEWAY_PHONE, World

PASSWORD = "correct horse battery staple"


async def started(world: World, **changes: Any) -> Login:
    account = world.account(**changes)
    await account.start()
    return Login(account, connect_wait=5)


async def test_login_with_code(world: World) -> None:
    login = await started(world)
    assert login.step is LoginStep.NEED_PHONE
    assert "international format" in login.view.instructions

    view = await login.submit_phone("+999 66-0000")
    assert view.step is LoginStep.NEED_CODE
    assert view.message is None
    assert view.phone == "999660000"
    # No other signed-in device: the sim sends the code by SMS.
    assert view.code_via is CodeDelivery.SMS
    assert view.code_length == 5
    assert view.instructions.startswith("Telegram sent a 5-digit login code by SMS to +999660000")

    view = await login.submit_code(world.state.last_code(GATEWAY_PHONE))
    assert view.step is LoginStep.LOGGED_IN
    assert view.instructions == "Logged in as Home Gateway (+999660000)."
    account = login.account
    assert account.state is ConnectionState.CONNECTED
    assert account.user is not None and account.user.user_id == world.gateway_user.id
    assert world.gateway_user.id in world.state.authorizations.values()
    assert stat.S_IMODE(world.session_path.stat().st_mode) == 0o600
    assert stat.S_IMODE(world.session_path.parent.stat().st_mode) == 0o700


async def test_code_sent_in_app_when_another_device_is_signed_in(world: World) -> None:
    # A second device of the gateway account is signed in first.
    other = make_client(world.server)
    await other.connect()
    world.closers.append(other.disconnect)
    await other.send_code_request(GATEWAY_PHONE)
    await other.sign_in(GATEWAY_PHONE, world.state.last_code(GATEWAY_PHONE))

    login = await started(world)
    view = await login.submit_phone(GATEWAY_PHONE)
    assert view.code_via is CodeDelivery.APP
    assert view.next_via is CodeDelivery.SMS
    assert "as a message from “Telegram”" in view.instructions
    view = await login.submit_code(world.state.last_code(GATEWAY_PHONE))
    assert view.step is LoginStep.LOGGED_IN


async def test_login_with_two_step_password(world: World) -> None:
    world.state.set_password(world.gateway_user, PASSWORD, hint="the comic")
    login = await started(world)
    await login.submit_phone(GATEWAY_PHONE)
    view = await login.submit_code(world.state.last_code(GATEWAY_PHONE))
    assert view.step is LoginStep.NEED_PASSWORD
    assert view.password_hint == "the comic"
    assert view.instructions == (
        "This account has two-step verification. Enter its password (hint: the comic)."
    )

    view = await login.submit_password("wrong horse")
    assert view.step is LoginStep.NEED_PASSWORD
    assert view.message == "That password is not right. Hint: the comic"
    assert login.account.state is not ConnectionState.CONNECTED

    view = await login.submit_password(PASSWORD)
    assert view.step is LoginStep.LOGGED_IN
    assert login.account.state is ConnectionState.CONNECTED


async def test_wrong_code_stays_at_code(world: World) -> None:
    login = await started(world)
    await login.submit_phone(GATEWAY_PHONE)
    right = world.state.last_code(GATEWAY_PHONE)
    wrong = "00000" if right != "00000" else "11111"
    view = await login.submit_code(wrong)
    assert view.step is LoginStep.NEED_CODE
    assert view.message == "That code is not right. Check the code Telegram sent you."
    view = await login.submit_code(f" {right[:2]} {right[2:]} ")  # spaces are forgiven
    assert view.step is LoginStep.LOGGED_IN


async def test_expired_code_goes_back_to_phone_and_resends(world: World) -> None:
    login = await started(world)
    await login.submit_phone(GATEWAY_PHONE)
    first = world.state.last_code(GATEWAY_PHONE)
    world.state.code_lifetime = -1.0  # every code is already too old
    view = await login.submit_code(first)
    assert view.step is LoginStep.NEED_PHONE
    assert view.message == "That code has expired. Ask for a new code."
    assert view.phone == "999660000"
    assert view.can_resend

    world.state.code_lifetime = 300.0
    view = await login.resend_code()
    assert view.step is LoginStep.NEED_CODE
    view = await login.submit_code(world.state.last_code(GATEWAY_PHONE))
    assert view.step is LoginStep.LOGGED_IN


async def test_resend_while_waiting_for_the_code(world: World) -> None:
    login = await started(world)
    await login.submit_phone(GATEWAY_PHONE)
    first = world.state.last_code(GATEWAY_PHONE)
    view = await login.resend_code()
    assert view.step is LoginStep.NEED_CODE
    assert world.cloud.request_log.count("ResendCodeRequest") == 1
    second = world.state.last_code(GATEWAY_PHONE)
    view = await login.submit_code(second)
    assert view.step is LoginStep.LOGGED_IN, (first, second, view)


async def test_number_without_account_needs_sign_up_elsewhere(world: World) -> None:
    login = await started(world)
    view = await login.submit_phone("+999 77 1234")
    assert view.step is LoginStep.NEED_CODE
    view = await login.submit_code(world.state.last_code("+999 77 1234"))
    assert view.step is LoginStep.NEED_PHONE
    assert view.message is not None
    assert view.message.startswith("There is no Telegram account for this number.")


async def test_malformed_phone_is_refused_before_asking_telegram(world: World) -> None:
    login = await started(world)
    view = await login.submit_phone("call me maybe")
    assert view.step is LoginStep.NEED_PHONE
    assert view.message == "Enter the number in international format, e.g. +49 170 1234567."
    assert "SendCodeRequest" not in world.cloud.request_log


async def test_app_step_checks_format_and_saves_only_an_accepted_app(world: World) -> None:
    saved: list[tuple[int, Secret]] = []

    async def save(api_id: int, api_hash: Secret) -> None:
        saved.append((api_id, api_hash))

    account = world.account(api_id=0, api_hash=Secret(""))
    await account.start()
    assert account.state is ConnectionState.NEEDS_LOGIN
    login = Login(account, save_app=save, connect_wait=5)
    view = login.view
    assert view.step is LoginStep.NEED_APP
    assert "https://my.telegram.org" in view.instructions
    assert "API development tools" in view.instructions

    view = await login.submit_app("12x", SIM_API_HASH)
    assert (view.step, view.message) == (
        LoginStep.NEED_APP,
        "The api_id is the number shown on my.telegram.org.",
    )
    view = await login.submit_app(SIM_API_ID, "short")
    assert view.step is LoginStep.NEED_APP
    assert view.message == "The api_hash has 32 letters and digits; copy it from my.telegram.org."

    # Well-formed but unknown to Telegram: refused when the code is asked for.
    view = await login.submit_app(4242, "ab" * 16)
    assert view.step is LoginStep.NEED_PHONE
    view = await login.submit_phone(GATEWAY_PHONE)
    assert view.step is LoginStep.NEED_APP
    assert view.message is not None and "does not accept this api_id and api_hash" in view.message
    assert saved == []

    view = await login.submit_app(str(SIM_API_ID), SIM_API_HASH)
    assert view.step is LoginStep.NEED_PHONE
    view = await login.submit_phone(GATEWAY_PHONE)
    assert view.step is LoginStep.NEED_CODE
    assert saved == [(SIM_API_ID, Secret(SIM_API_HASH))]
    view = await login.submit_code(world.state.last_code(GATEWAY_PHONE))
    assert view.step is LoginStep.LOGGED_IN


async def test_short_flood_wait_is_slept_through(world: World) -> None:
    login = await started(world, options={"flood_sleep_threshold": 5})
    world.cloud.faults.flood.append(FloodRule("SendCodeRequest", seconds=1))
    view = await login.submit_phone(GATEWAY_PHONE)
    assert view.step is LoginStep.NEED_CODE
    assert view.message is None
    assert world.cloud.request_log.count("SendCodeRequest") == 2  # refused once, then sent


async def test_long_flood_wait_is_reported_with_its_length(world: World) -> None:
    login = await started(world, options={"flood_sleep_threshold": 5})
    world.cloud.faults.flood.append(FloodRule("SendCodeRequest", seconds=3725))
    view = await login.submit_phone(GATEWAY_PHONE)
    assert view.step is LoginStep.NEED_PHONE
    assert view.message == "Telegram asks to wait 1 h 2 min before trying again."
    # Telethon remembers the wait: asking again does not even reach the cloud.
    view = await login.submit_phone(GATEWAY_PHONE)
    assert view.message is not None and view.message.startswith("Telegram asks to wait 1 h")
    assert world.cloud.request_log.count("SendCodeRequest") == 1


async def test_flood_wait_on_the_code_keeps_the_code_step(world: World) -> None:
    login = await started(world, options={"flood_sleep_threshold": 5})
    await login.submit_phone(GATEWAY_PHONE)
    world.cloud.faults.flood.append(FloodRule("SignInRequest", seconds=90))
    view = await login.submit_code(world.state.last_code(GATEWAY_PHONE))
    assert view.step is LoginStep.NEED_CODE
    assert view.message == "Telegram asks to wait 1 min 30 s before trying again."


async def test_unreachable_telegram_is_explained(world: World) -> None:
    await world.server.close()
    login = await started(world)
    view = await login.submit_phone(GATEWAY_PHONE)
    assert view.step is LoginStep.NEED_PHONE
    assert view.message is not None and view.message.startswith("Cannot reach Telegram")
    assert login.account.state in (ConnectionState.DISCONNECTED, ConnectionState.CONNECTING)


async def test_app_refused_at_connect_goes_back_to_the_app_step(
    world: World, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Telegram may refuse a bad api_id already in initConnection (the sim checks it only
    # in sendCode): make the sim's help.getConfig answer API_ID_INVALID.
    async def refuse(cloud: Any, caller: Any, req: Any) -> Any:
        raise RpcError(400, "API_ID_INVALID")

    monkeypatch.setitem(cloud_module._HANDLERS, functions.help.GetConfigRequest, refuse)
    login = await started(world)
    status = await login.account.wait_until(lambda s: s.refused, timeout=10)
    assert status.error is not None and "does not accept this api_id" in status.error
    view = await login.submit_phone(GATEWAY_PHONE)
    assert view.step is LoginStep.NEED_APP
    assert view.message is not None and "does not accept this api_id" in view.message
    assert "SendCodeRequest" not in world.cloud.request_log

    monkeypatch.undo()  # Telegram accepts the app again: entering it retries
    view = await login.submit_app(SIM_API_ID, SIM_API_HASH)
    assert view.step is LoginStep.NEED_PHONE
    view = await login.submit_phone(GATEWAY_PHONE)
    assert view.step is LoginStep.NEED_CODE, view.message


async def test_restart_and_log_out(world: World) -> None:
    login = await started(world)
    await login.submit_phone(GATEWAY_PHONE)
    view = await login.restart()
    assert view.step is LoginStep.NEED_PHONE
    view = await login.submit_phone(GATEWAY_PHONE)
    view = await login.submit_code(world.state.last_code(GATEWAY_PHONE))
    assert view.step is LoginStep.LOGGED_IN
    assert (await login.restart()).message == (
        "The gateway account is logged in. Log out to start over."
    )

    view = await login.log_out()
    assert view.step is LoginStep.NEED_PHONE
    assert login.account.state is ConnectionState.LOGGED_OUT
    assert not world.session_path.exists()
    assert world.gateway_user.id not in world.state.authorizations.values()

    # Logging in again makes a fresh session.
    view = await login.submit_phone(GATEWAY_PHONE)
    assert view.step is LoginStep.NEED_CODE
    assert world.session_path.exists()
    view = await login.submit_code(world.state.last_code(GATEWAY_PHONE))
    assert view.step is LoginStep.LOGGED_IN


async def test_session_found_at_start_is_logged_in(world: World) -> None:
    account = await world.signed_in_account()
    await account.stop()
    again = world.account()
    await again.start()
    await again.wait_for(ConnectionState.CONNECTED, timeout=10)
    assert Login(again).step is LoginStep.LOGGED_IN


async def test_codes_passwords_and_hashes_never_reach_the_log(
    world: World, caplog: pytest.LogCaptureFixture
) -> None:
    world.state.set_password(world.gateway_user, PASSWORD, hint="the comic")
    caplog.set_level(logging.DEBUG)
    login = await started(world)
    await login.submit_phone(GATEWAY_PHONE)
    code = world.state.last_code(GATEWAY_PHONE)
    await login.submit_code("99999" if code != "99999" else "88888")
    await login.submit_code(code)
    await login.submit_password("not-the-password")
    view = await login.submit_password(PASSWORD)
    assert view.step is LoginStep.LOGGED_IN
    text = "\n".join(f"{r.getMessage()} {getattr(r, 'fields', '')}" for r in caplog.records)
    assert "telegram login: code sent" in text
    for secret in (code, PASSWORD, "not-the-password", SIM_API_HASH, "999660000"):
        assert secret not in text, secret
    assert mask_phone("+999 66 0000") in text


@pytest.mark.parametrize(
    ("error", "message"),
    [
        (tg.PhoneNumberInvalidError(None), "That phone number is not valid."),
        (tg.PhoneNumberBannedError(None), "Telegram has banned this phone number."),
        (tg.PhoneCodeExpiredError(None), "That code has expired."),
        (tg.ApiIdInvalidError(None), "Telegram does not accept this api_id and api_hash."),
        (tg.FloodWaitError(None, capture=45), "Telegram asks to wait 45 s before trying again."),
        (ConnectionError("Connection to Telegram failed 3 time(s)"), "Cannot reach Telegram"),
        (TimeoutError(), "Telegram did not answer in time."),
        (asyncio.IncompleteReadError(b"", 8), "Cannot reach Telegram (the connection was closed)"),
    ],
)
def test_errors_become_sentences(error: BaseException, message: str) -> None:
    assert describe(error).startswith(message)


def test_format_wait() -> None:
    assert [format_wait(s) for s in (0, 59, 60, 61, 3600, 3725, 86400)] == [
        "0 s",
        "59 s",
        "1 min",
        "1 min 1 s",
        "1 h",
        "1 h 2 min",
        "24 h",
    ]


def test_mask_phone() -> None:
    assert mask_phone("+49 170 1234567") == "+49********67"
    assert mask_phone("123") == "+***"


async def test_save_app_to_config(tmp_path: Path) -> None:
    path = tmp_path / "linegram.toml"
    save_config(default_config(tmp_path), path)
    await save_app_to_config(path)(SIM_API_ID, Secret(SIM_API_HASH))
    config = load_config(path)
    assert config.telegram.api_id == SIM_API_ID
    assert config.telegram.api_hash.reveal() == SIM_API_HASH
    assert stat.S_IMODE(path.stat().st_mode) == 0o600

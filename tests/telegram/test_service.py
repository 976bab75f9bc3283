"""TelegramSide: the calls layer follows the account's sign-in, and nobody is left ringing."""

from __future__ import annotations

import asyncio
import dataclasses

import pytest
from pytgcalls.exceptions import CallBusy

from gateway.config import default_config
from gateway.telegram.call import CallOutcome, TelegramCall
from gateway.telegram.login import LoginStep
from gateway.telegram.service import TelegramSide
from simcloud.member import SimMember
from tests.telegram.simworld import GATEWAY_PHONE, World, eventually

pytestmark = [pytest.mark.media, pytest.mark.timeout(90)]


def side_for(world: World) -> TelegramSide:
    config = dataclasses.replace(default_config(world.tmp), telegram=world.settings())
    side = TelegramSide(config)
    world.closers.append(side.stop)
    return side


async def sign_in(side: TelegramSide, world: World) -> None:
    view = await side.login.submit_phone(GATEWAY_PHONE)
    assert view.step is LoginStep.NEED_CODE, view
    view = await side.login.submit_code(world.state.last_code(GATEWAY_PHONE))
    assert view.step is LoginStep.LOGGED_IN, view


async def test_calls_exist_only_while_signed_in(world: World) -> None:
    side = side_for(world)
    await side.start()
    assert side.calls is None
    assert side.status().calls_ready is False
    await sign_in(side, world)
    await eventually(lambda: side.calls is not None, 10)
    status = side.status()
    assert status.account == "connected" and status.account_name == "Home Gateway"
    assert status.bot is None and status.calls_in_progress == 0
    await side.login.log_out()
    await eventually(lambda: side.calls is None, 10)
    # Signing in again builds calls on the new client.
    await sign_in(side, world)
    await eventually(lambda: side.calls is not None, 10)


async def test_member_call_without_a_router_is_refused_busy_and_routed_with_one(
    world: World,
) -> None:
    side = side_for(world)
    await side.start()
    await sign_in(side, world)
    await eventually(lambda: side.calls is not None, 10)
    member = await SimMember.create(
        world.cloud, world.server, phone="+999660077", first_name="Pat", username="pat_home"
    )
    world.closers.append(member.close)
    world.state.add_contact(member.user, world.gateway_user)
    world.state.add_contact(world.gateway_user, member.user)
    # Generous answer bounds: on a loaded 2-core CI machine the gateway's ntgcalls
    # set-up alone has taken several seconds; the test is about routing, not speed.
    with pytest.raises(CallBusy):
        await member.call(world.gateway_user.id, timeout=30)

    offered: list[TelegramCall] = []
    side.on_incoming_call = offered.append
    placing = asyncio.create_task(member.call(world.gateway_user.id, timeout=30))
    await eventually(lambda: offered, 20)
    assert side.status().calls_in_progress == 1
    await offered[0].answer()
    await asyncio.wait_for(placing, 40)
    await offered[0].hangup()
    assert offered[0].outcome is CallOutcome.ANSWERED


async def test_starting_calls_makes_no_version_check(
    world: World, monkeypatch: pytest.MonkeyPatch
) -> None:
    import pytgcalls.pytgcalls_session as session_module

    opened: list[object] = []

    class NoNetwork:
        def __init__(self, *args: object, **kwargs: object) -> None:
            opened.append(args)
            raise AssertionError("py-tgcalls tried to reach GitHub")

    monkeypatch.setattr(session_module, "ClientSession", NoNetwork)
    monkeypatch.setattr(session_module.PyTgCallsSession, "notice_displayed", False)
    side = side_for(world)
    await side.start()
    await sign_in(side, world)
    await eventually(lambda: side.calls is not None, 10)
    assert opened == []
    assert session_module.PyTgCallsSession.notice_displayed is True

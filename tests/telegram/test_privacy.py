"""Privacy verdicts: may the gateway call this member, and what they should change."""

from __future__ import annotations

import pytest
from telethon import TelegramClient
from telethon.tl import functions, types

from gateway.telegram.account import TelegramAccount
from gateway.telegram.errors import TelegramError
from gateway.telegram.messages import Member
from gateway.telegram.privacy import check_call_privacy, unblock
from simcloud.cloud import FloodRule
from simcloud.state import SimUser
from tests.telegram.simworld import World

STEPS = (
    "Settings → Privacy and Security → Calls → Who can call me: add Home Gateway"
    " (@home_gateway) under Always allow (or choose Everybody / My Contacts and add the"
    " gateway account to your contacts); and Peer-to-peer: My Contacts or Everybody"
)


async def alice(world: World) -> tuple[TelegramClient, SimUser, Member]:
    client, user = await world.member("+999 66 1001", "Alice", "alice_home")
    member = Member(user.id, world.state.access_hash(world.gateway_user, user), "Alice")
    return client, user, member


async def set_call_privacy(client: TelegramClient, *rules: object) -> None:
    await client(functions.account.SetPrivacyRequest(types.InputPrivacyKeyPhoneCall(), list(rules)))


async def test_allowed_member(world: World) -> None:
    _, _, member = await alice(world)
    account = await world.signed_in_account()
    verdict = await check_call_privacy(account, member)
    assert verdict.callable and verdict.reason == "ok"
    assert verdict.message == "Home Gateway (@home_gateway) can call Alice."
    assert verdict.guidance == (
        (
            "For the most reliable calls: Settings → Privacy and Security → Calls →"
            " Peer-to-peer: My Contacts or Everybody"
        ),
    )


async def test_restricted_member_gets_the_exact_steps(world: World) -> None:
    client, _, member = await alice(world)
    await set_call_privacy(client, types.InputPrivacyValueDisallowAll())
    account = await world.signed_in_account()
    verdict = await check_call_privacy(account, member)
    assert not verdict.callable and verdict.reason == "restricted"
    assert verdict.message == (
        "Alice's privacy settings do not let Home Gateway (@home_gateway) call them"
        " (if they blocked it, they should unblock it too)."
    )
    assert verdict.guidance_text == STEPS
    assert len(verdict.guidance) == 2

    # Following the advice: the gateway account under "Always allow".
    gateway = await client.get_input_entity("home_gateway")
    await set_call_privacy(
        client,
        types.InputPrivacyValueAllowUsers([types.InputUser(gateway.user_id, gateway.access_hash)]),
        types.InputPrivacyValueDisallowAll(),
    )
    verdict = await check_call_privacy(account, member)
    assert verdict.callable and verdict.reason == "ok"


async def test_contacts_only_member_is_fixed_by_a_contact(world: World) -> None:
    client, _, member = await alice(world)
    await set_call_privacy(
        client, types.InputPrivacyValueAllowContacts(), types.InputPrivacyValueDisallowAll()
    )
    account = await world.signed_in_account()
    assert (await check_call_privacy(account, member)).reason == "restricted"
    gateway = await client.get_input_entity("home_gateway")
    await client(
        functions.contacts.AddContactRequest(
            id=types.InputUser(gateway.user_id, gateway.access_hash),
            first_name="Home phone",
            last_name="",
            phone="",
        )
    )
    assert (await check_call_privacy(account, member)).callable


async def test_member_who_blocked_the_gateway(world: World) -> None:
    client, _, member = await alice(world)
    await client(functions.contacts.BlockRequest(await client.get_input_entity("home_gateway")))
    account = await world.signed_in_account()
    verdict = await check_call_privacy(account, member)
    assert (verdict.callable, verdict.reason) == (False, "restricted")


async def test_member_blocked_by_the_gateway_and_unblocked(world: World) -> None:
    _, _, member = await alice(world)
    account = await world.signed_in_account()
    await account.client(
        functions.contacts.BlockRequest(account.input_peer(member.user_id, member.access_hash))
    )
    verdict = await check_call_privacy(account, member)
    assert (verdict.callable, verdict.reason) == (False, "blocked")
    assert verdict.message == "The gateway account has blocked Alice."
    assert verdict.guidance == (
        "Unblock Alice in the gateway account: Settings → Privacy and Security → Blocked Users",
    )
    await unblock(account, member)
    assert (await check_call_privacy(account, member)).callable


async def test_a_bot_cannot_take_calls(world: World) -> None:
    account = await world.signed_in_account()
    sim_bot, _ = world.state.add_bot("some_other_bot")
    member = Member(sim_bot.id, world.state.access_hash(world.gateway_user, sim_bot), "Some bot")
    verdict = await check_call_privacy(account, member)
    assert (verdict.callable, verdict.reason) == (False, "unavailable")


async def test_unknown_member_and_wrong_hash(world: World) -> None:
    _, user, member = await alice(world)
    account = await world.signed_in_account()
    verdict = await check_call_privacy(account, Member(user.id, member.access_hash + 1, "Alice"))
    assert (verdict.callable, verdict.reason) == (False, "unknown_member")
    assert verdict.guidance == ("Send any message to Home Gateway (@home_gateway) in Telegram",)


async def test_telegram_trouble_raises_a_sentence(world: World) -> None:
    _, _, member = await alice(world)
    account: TelegramAccount = await world.signed_in_account(options={"flood_sleep_threshold": 1})
    world.cloud.faults.flood.append(FloodRule("GetFullUserRequest", seconds=600))
    with pytest.raises(TelegramError, match="^Telegram asks to wait 10 min before trying again.$"):
        await check_call_privacy(account, member)

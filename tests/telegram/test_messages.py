"""Messenger without a bot: plain text with commands, inbound events, edits and deletions."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
from telethon import TelegramClient

from gateway.telegram.errors import TelegramError
from gateway.telegram.messages import (
    Button,
    InboundEvent,
    Member,
    MessageDeleted,
    MessageEdited,
    OutgoingMessage,
    SoftphoneCommand,
    StartCommand,
    TextFromMember,
    render_plain,
)
from simcloud.client import make_client
from tests.telegram.simworld import (
    GATEWAY_PHONE,
    Household,
    World,
    eventually,
    eventually_async,
)

CALL = OutgoingMessage(
    "📞 Incoming call from +49 30 1234567",
    keyboard=[
        [Button("1", "dtmf:1"), Button("2", "dtmf:2")],
        [Button("Answer", "answer", command="/answer"), Button("Reject", "reject", "/reject")],
        [Button("Hang up", "hangup", command="/hangup"), Button("Reject", "reject2", "/reject")],
    ],
    plain_hint="Send digits (0-9 * #) to dial them.",
)


@pytest.fixture
async def setup(world: World) -> Household:
    return await world.household()  # no bot


async def newest(client: TelegramClient, peer: Any, after: int = 0) -> Any:
    async def check() -> Any:
        found = await client.get_messages(peer, limit=1)
        return found[0] if found and found[0].id > after else None

    return await eventually_async(check)


def of_type(events: list[InboundEvent], kind: type) -> list[Any]:
    return [e for e in events if isinstance(e, kind)]


def test_render_plain_lists_each_command_once() -> None:
    assert render_plain(CALL.text, CALL.rows, CALL.plain_hint) == (
        "📞 Incoming call from +49 30 1234567\n\n"
        "Send digits (0-9 * #) to dial them.\n\n"
        "Reply with:\n/answer\n/reject\n/hangup — Hang up"
    )
    assert render_plain("Ended", (), "Send digits") == "Ended"
    toggle = ((Button("Toggle", "t", "/toggle"),),)
    assert render_plain("Second line", toggle) == "Second line\n\nReply with:\n/toggle"


async def test_plain_message_with_commands_and_the_replies(world: World, setup: Household) -> None:
    s = setup
    ref = await s.messenger.send(s.member, CALL)
    assert not ref.via_bot and ref.key == ""
    message = await newest(s.alice, s.gateway_peer)
    assert message.text == render_plain(CALL.text, CALL.rows, CALL.plain_hint)
    assert message.sender_id == world.gateway_user.id and not message.buttons

    await s.alice.send_message(s.gateway_peer, "5")
    await s.alice.send_message(s.gateway_peer, "/transfer 0301234567")
    texts = await eventually(
        lambda: of_type(s.events, TextFromMember)[1:] and of_type(s.events, TextFromMember)
    )
    digits, transfer = texts
    assert (digits.text, digits.command) == ("5", None)
    assert transfer.command == ("transfer", "0301234567")
    assert digits.member == Member(s.sim_alice.id, s.member.access_hash, "Alice", "alice_home")
    assert digits.message_id != transfer.message_id


async def test_start_and_softphone_as_text_to_the_gateway(world: World, setup: Household) -> None:
    s = setup
    await s.alice.send_message(s.gateway_peer, "/start abc")
    await s.alice.send_message(s.gateway_peer, "/softphone")
    start = await eventually(lambda: of_type(s.events, StartCommand))
    soft = await eventually(lambda: of_type(s.events, SoftphoneCommand))
    assert (start[0].payload, start[0].via) == ("abc", "gateway")
    assert soft[0].via == "gateway" and soft[0].member.user_id == s.sim_alice.id
    assert of_type(s.events, TextFromMember) == []


async def test_edit_and_delete_the_gateways_message(world: World, setup: Household) -> None:
    s = setup
    ref = await s.messenger.send(s.member, CALL)
    message = await newest(s.alice, s.gateway_peer)

    ref = await s.messenger.edit(ref, text="Call ended, 0:42", keyboard=())
    edited = await newest(s.alice, s.gateway_peer)
    assert edited.id == message.id
    assert edited.text == "Call ended, 0:42"  # no hint or commands without buttons
    assert ref.text == "Call ended, 0:42" and ref.keyboard == ()

    ref = await s.messenger.edit(ref, keyboard=[[Button("Call back", "cb", command="/call")]])
    edited = await newest(s.alice, s.gateway_peer)
    assert edited.text == "Call ended, 0:42\n\nReply with:\n/call — Call back"

    await s.messenger.delete(ref)
    assert await s.alice.get_messages(s.gateway_peer, ids=message.id) is None


async def test_member_edits_and_deletes_arrive(world: World, setup: Household) -> None:
    s = setup
    sent = await s.alice.send_message(s.gateway_peer, "0301234567")
    text = await eventually(lambda: of_type(s.events, TextFromMember))
    await s.alice.edit_message(s.gateway_peer, sent.id, "0301234568")
    edited = await eventually(lambda: of_type(s.events, MessageEdited))
    assert (edited[0].text, edited[0].message_id) == ("0301234568", text[0].message_id)
    assert edited[0].member.user_id == s.sim_alice.id

    await s.alice.delete_messages(s.gateway_peer, [sent.id], revoke=True)
    deleted = await eventually(lambda: of_type(s.events, MessageDeleted))
    assert deleted[0].message_ids == (text[0].message_id,)
    assert deleted[0].member is not None and deleted[0].member.user_id == s.sim_alice.id


async def test_login_codes_from_telegram_are_not_member_messages(
    world: World, setup: Household
) -> None:
    s = setup
    # Someone starts logging in to the gateway account elsewhere: "Telegram" sends a code.
    other = make_client(world.server)
    await other.connect()
    world.closers.append(other.disconnect)
    await other.send_code_request(GATEWAY_PHONE)
    await s.alice.send_message(s.gateway_peer, "after the code")
    texts = await eventually(lambda: of_type(s.events, TextFromMember))
    await asyncio.sleep(0.2)
    assert [t.text for t in of_type(s.events, TextFromMember)] == ["after the code"]
    assert texts[0].member.user_id == s.sim_alice.id


async def test_queue_subscription(world: World, setup: Household) -> None:
    s = setup
    queue = s.messenger.queue()
    await s.alice.send_message(s.gateway_peer, "*21#")
    event = await asyncio.wait_for(queue.get(), 10)
    assert isinstance(event, TextFromMember) and event.text == "*21#"


async def test_unknown_member_cannot_be_messaged(world: World, setup: Household) -> None:
    s = setup
    stranger = world.state.add_user(phone="+999 66 2002", first_name="Bob")
    with pytest.raises(TelegramError, match="does not know Bob yet"):
        await s.messenger.send(Member(stranger.id, 0, "Bob"), OutgoingMessage("hi"))
    with pytest.raises(TelegramError):
        await s.messenger.send(Member(stranger.id, 12345, "Bob"), OutgoingMessage("hi"))

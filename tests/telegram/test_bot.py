"""The companion bot: buttons via inline mode, presses back to the gateway, /start, /softphone."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from typing import Any

import pytest
from telethon import TelegramClient, events

from gateway.config import Secret
from gateway.telegram.account import ConnectionState
from gateway.telegram.bot import CompanionBot, InlinePayloads, pack_data, unpack_data
from gateway.telegram.messages import (
    Button,
    ButtonPress,
    MessageRef,
    OutgoingMessage,
    SoftphoneCommand,
    StartCommand,
)
from simcloud.state import SimUser
from tests.telegram.simworld import Household, World, eventually, eventually_async

KEYPAD = OutgoingMessage(
    "📞 Incoming call from +49 30 1234567 on home",
    keyboard=[
        [Button("1", "dtmf:1"), Button("2", "dtmf:2"), Button("3", "dtmf:3")],
        [Button("Hang up", "hangup", command="/hangup")],
    ],
    plain_hint="Send digits (0-9 * #) to dial them.",
)


@dataclass
class Setup(Household):
    """Alice's phone, the gateway account's Messenger and its companion bot."""

    bot: CompanionBot
    sim_bot: SimUser


async def with_bot(world: World, inline_feedback: bool) -> Setup:
    bot, sim_bot = await world.bot(inline_feedback=inline_feedback)
    household = await world.household(bot)
    return Setup(**vars(household), bot=bot, sim_bot=sim_bot)


@pytest.fixture
async def setup(world: World) -> Setup:
    return await with_bot(world, inline_feedback=True)


@pytest.fixture
async def setup_without_feedback(world: World) -> Setup:
    return await with_bot(world, inline_feedback=False)


async def last_message_from(client: TelegramClient, user: SimUser, after: int = 0) -> Any:
    """The newest message in *client*'s chat with *user* once its id is above *after*."""
    peer = await client.get_input_entity(user.username or user.id)

    async def newest() -> Any:
        messages = await client.get_messages(peer, limit=1)
        return messages[0] if messages and messages[0].id > after else None

    return await eventually_async(newest)


async def test_bot_signs_in_with_its_token(world: World) -> None:
    bot, sim_bot = await world.bot()
    assert bot.state is ConnectionState.CONNECTED
    assert bot.username == "linegram_test_bot"
    assert bot.user is not None and bot.user.bot and bot.user.user_id == sim_bot.id
    assert bot.bot_id == sim_bot.id


async def test_revoked_token_is_reported_not_retried(world: World) -> None:
    sim_bot, token = world.state.add_bot("revoked_test_bot", owner=world.gateway_user)
    world.state.revoke_bot_token(sim_bot)
    bot = CompanionBot(
        world.settings(bot_token=Secret(token)),
        world.tmp / "bot.session",
        server_key=world.key_file,
        backoff=(0.05,),
        watch_interval=0.05,
    )
    world.closers.append(bot.stop)
    await bot.start()
    status = await bot.wait_for(ConnectionState.DISCONNECTED, timeout=10)
    assert status.error == "The bot token was revoked. Get a new one from @BotFather."
    assert status.retry_in is None
    await asyncio.sleep(0.3)
    assert world.cloud.request_log.count("ImportBotAuthorizationRequest") == 1


async def test_keypad_via_the_bot_and_the_press_comes_back(world: World, setup: Setup) -> None:
    s = setup
    assert s.messenger.bot_ready
    ref = await s.messenger.send(s.member, KEYPAD)
    assert ref.via_bot and ref.key and ref.chat == "gateway"

    message = await last_message_from(s.alice, world.gateway_user)
    assert message is not None
    assert message.text == KEYPAD.text
    assert message.via_bot_id == s.sim_bot.id
    assert message.sender_id == world.gateway_user.id
    labels = [[b.text for b in row] for row in message.buttons]
    assert labels == [["1", "2", "3"], ["Hang up"]]

    await message.click(data=pack_data(ref.key, "dtmf:2"))
    press = await eventually(
        lambda: next((e for e in s.events if isinstance(e, ButtonPress)), None)
    )
    assert press.data == "dtmf:2"
    assert press.member.user_id == s.sim_alice.id
    assert press.member.access_hash == s.member.access_hash  # the gateway's hash, not the bot's
    assert press.member.name == "Alice"
    assert press.ref is not None
    assert (press.ref.message_id, press.ref.key, press.ref.via_bot) == (
        ref.message_id,
        ref.key,
        True,
    )


async def test_pressed_message_is_edited_in_place(
    world: World, setup_without_feedback: Setup
) -> None:
    s = setup_without_feedback  # the press is what tells the bot the message's inline id
    ref = await s.messenger.send(s.member, KEYPAD)
    message = await last_message_from(s.alice, world.gateway_user)
    await message.click(data=pack_data(ref.key, "hangup"))
    await eventually(lambda: any(isinstance(e, ButtonPress) for e in s.events))

    edited = await s.messenger.edit(ref, text="Call ended, 3:21", keyboard=())
    assert edited.message_id == ref.message_id  # same message: the bot knew its inline id
    after = await last_message_from(s.alice, world.gateway_user)
    assert after.id == message.id
    assert after.text == "Call ended, 3:21"
    assert not after.buttons


class ChatWatch:
    """What Alice's app hears of edits and deletions in her chats."""

    def __init__(self, client: TelegramClient) -> None:
        self.edited: list[Any] = []
        self.deleted: list[int] = []
        client.add_event_handler(self._on_edited, events.MessageEdited())
        client.add_event_handler(self._on_deleted, events.MessageDeleted())

    async def _on_edited(self, event: Any) -> None:
        self.edited.append(event)

    async def _on_deleted(self, event: Any) -> None:
        self.deleted.extend(event.deleted_ids)

    async def saw_edit_in_place(self, message_id: int, text: str) -> None:
        """One edit of *message_id* to *text* arrives, and nothing was deleted."""
        edits = await eventually(lambda: self.edited)
        assert [(e.id, e.raw_text) for e in edits] == [(message_id, text)]
        assert self.deleted == []


async def feedback_arrived(bot: CompanionBot, ref: MessageRef) -> None:
    """Wait until updateBotInlineSend told the bot the inline id of *ref*'s message."""
    payload = bot.payloads.get(ref.key)
    assert payload is not None
    await eventually(lambda: payload.inline_id is not None)


async def test_unpressed_message_is_edited_in_place_with_inline_feedback(
    world: World, setup: Setup
) -> None:
    s = setup
    watch = ChatWatch(s.alice)
    ref = await s.messenger.send(s.member, KEYPAD)
    message = await last_message_from(s.alice, world.gateway_user)
    await feedback_arrived(s.bot, ref)  # no press needed
    assert s.bot.feedback_seen

    edited = await s.messenger.edit(ref, text="Call ended, 3:21", keyboard=())
    assert edited.message_id == ref.message_id and edited.via_bot
    await watch.saw_edit_in_place(message.id, "Call ended, 3:21")
    after = await last_message_from(s.alice, world.gateway_user)
    assert after.id == message.id and not after.buttons
    assert not any(isinstance(e, ButtonPress) for e in s.events)


async def test_edit_right_after_sending_waits_for_the_inline_feedback(
    world: World, setup: Setup
) -> None:
    s = setup
    await feedback_arrived(s.bot, await s.messenger.send(s.member, KEYPAD))
    watch = ChatWatch(s.alice)
    # The bot has seen feedback once, so an edit may wait a moment for the new id.
    ref = await s.messenger.send(s.member, KEYPAD)
    edited = await s.messenger.edit(ref, text="Call ended, 0:03", keyboard=())
    assert edited.message_id == ref.message_id
    message = await last_message_from(s.alice, world.gateway_user)  # Alice's copy
    await watch.saw_edit_in_place(message.id, "Call ended, 0:03")


async def test_unpressed_message_without_inline_feedback_is_replaced(
    world: World, setup_without_feedback: Setup
) -> None:
    s = setup_without_feedback
    watch = ChatWatch(s.alice)
    ref = await s.messenger.send(s.member, KEYPAD)
    first = await last_message_from(s.alice, world.gateway_user)
    missed = OutgoingMessage("Missed call from +49 30 1234567", [[Button("Call back", "cb:1")]])
    new_ref = await s.messenger.edit(ref, text=missed.text, keyboard=missed.keyboard)
    assert new_ref.message_id != ref.message_id and new_ref.via_bot
    latest = await last_message_from(s.alice, world.gateway_user, after=first.id)
    assert latest.id != first.id
    assert latest.text == missed.text
    assert [[b.text for b in row] for row in latest.buttons] == [["Call back"]]
    assert await s.alice.get_messages(s.gateway_peer, ids=first.id) is None
    assert await eventually(lambda: watch.deleted) == [first.id]
    assert watch.edited == [] and not s.bot.feedback_seen
    await latest.click(data=pack_data(new_ref.key, "cb:1"))
    press = await eventually(
        lambda: next((e for e in s.events if isinstance(e, ButtonPress)), None)
    )
    assert press.data == "cb:1" and press.ref is not None
    assert press.ref.message_id == new_ref.message_id


async def test_delete_a_message_sent_via_the_bot(world: World, setup: Setup) -> None:
    s = setup
    ref = await s.messenger.send(s.member, KEYPAD)
    message = await last_message_from(s.alice, world.gateway_user)
    await s.messenger.delete(ref)
    assert await s.alice.get_messages(s.gateway_peer, ids=message.id) is None
    assert s.bot.payloads.get(ref.key) is None


async def test_bot_answers_inline_queries_only_for_the_gateway(world: World, setup: Setup) -> None:
    s = setup
    ref = await s.messenger.send(s.member, KEYPAD)
    # Alice knows the key (it is in the buttons' data) but is not the gateway account.
    results = await s.alice.inline_query(s.sim_bot.username, ref.key)
    assert len(results) == 0
    own = await s.account.client.inline_query(s.sim_bot.username, ref.key)
    assert len(own) == 1 and own[0].message.message == KEYPAD.text


async def test_start_and_softphone_in_the_bot_chat(world: World, setup: Setup) -> None:
    s = setup
    bot_peer = await s.alice.get_input_entity(s.sim_bot.username)
    greeting: asyncio.Queue[Any] = asyncio.Queue()

    async def on_greeting(event: Any) -> None:  # Telethon awaits what a handler returns
        greeting.put_nowait(event.message)

    s.alice.add_event_handler(
        on_greeting, events.NewMessage(incoming=True, from_users=[s.sim_bot.id])
    )
    await s.alice.send_message(bot_peer, "/start inv-7f3a")
    start = await eventually(
        lambda: next((e for e in s.events if isinstance(e, StartCommand)), None)
    )
    assert (start.payload, start.via, start.member.user_id) == ("inv-7f3a", "bot", s.sim_alice.id)
    # Invitations start here: the gateway account has not met Alice yet.
    assert start.member.access_hash == 0 and start.member.name == "Alice"

    await s.alice.send_message(bot_peer, "/start")
    message = await asyncio.wait_for(greeting.get(), 10)
    assert "Home Gateway (@home_gateway)" in message.text and "/softphone" in message.text
    starts = await eventually(lambda: [e for e in s.events if isinstance(e, StartCommand)][1:])
    assert starts[0].payload == ""

    await s.alice.send_message(bot_peer, "/softphone")
    soft = await eventually(
        lambda: next((e for e in s.events if isinstance(e, SoftphoneCommand)), None)
    )
    assert (soft.member.user_id, soft.via) == (s.sim_alice.id, "bot")


async def test_message_with_buttons_in_the_bot_chat(world: World, setup: Setup) -> None:
    s = setup
    bot_peer = await s.alice.get_input_entity(s.sim_bot.username)
    await s.alice.send_message(bot_peer, "/softphone")
    await eventually(lambda: any(isinstance(e, SoftphoneCommand) for e in s.events))
    settings = OutgoingMessage(
        "Outgoing calls: invite", [[Button("Invite", "mode:invite"), Button("Callback", "mode:cb")]]
    )
    ref = await s.messenger.send_from_bot(s.member, settings)
    assert ref.chat == "bot"
    message = await last_message_from(s.alice, s.sim_bot)
    assert message.text == settings.text
    await message.click(data=pack_data(ref.key, "mode:cb"))
    press = await eventually(
        lambda: next((e for e in s.events if isinstance(e, ButtonPress)), None)
    )
    assert press.data == "mode:cb"
    assert (
        press.ref is not None and press.ref.chat == "bot" and press.ref.message_id == ref.message_id
    )
    await s.messenger.edit(press.ref, text="Outgoing calls: callback", keyboard=())
    after = await last_message_from(s.alice, s.sim_bot)
    assert after.text == "Outgoing calls: callback" and not after.buttons


async def test_without_a_ready_bot_the_keypad_goes_as_text(world: World, setup: Setup) -> None:
    s = setup
    await s.bot.stop()
    assert not s.messenger.bot_ready
    ref = await s.messenger.send(s.member, KEYPAD)
    assert not ref.via_bot
    message = await last_message_from(s.alice, world.gateway_user)
    assert message.via_bot_id is None and not message.buttons
    assert message.text == (
        "📞 Incoming call from +49 30 1234567 on home\n\n"
        "Send digits (0-9 * #) to dial them.\n\n"
        "Reply with:\n/hangup — Hang up"
    )


def test_callback_data_packing() -> None:
    assert pack_data("abcdefgh", "dtmf:1") == b"abcdefgh|dtmf:1"
    assert unpack_data(b"abcdefgh|dtmf:1") == ("abcdefgh", "dtmf:1")
    assert unpack_data(b"legacy") == ("", "legacy")
    with pytest.raises(ValueError, match="too long"):
        pack_data("abcdefgh", "x" * 60)
    payloads = InlinePayloads(limit=2)
    with pytest.raises(ValueError):
        payloads.put("t", [[("long", "y" * 60)]], 1)
    a = payloads.put("a", (), 1)
    b = payloads.put("b", (), 1)
    assert payloads.get(a.key) is a  # a used last, so b goes first
    payloads.put("c", (), 1)
    assert payloads.get(b.key) is None and payloads.get(a.key) is a
    assert len(payloads) == 2

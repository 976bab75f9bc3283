"""Inline bots and callback buttons in the simulated cloud, driven through `Cloud.invoke`.

The scene is the product's: a gateway account (Alice) asks its companion bot for
an inline result and sends it into the chat with the owner (Bob); Bob presses a
button; the bot answers the press and edits the via-bot message.
"""

from __future__ import annotations

import asyncio
import struct
from dataclasses import dataclass
from typing import Any

import pytest
from telethon.tl import functions, types

from simcloud.cloud import Cloud
from simcloud.state import SimUser
from tests.simcloud import world_support as ws
from tests.simcloud.world_support import Device, input_peer, input_user, rpc_error, signed_in

clock, cloud, alice, bob = ws.clock, ws.cloud, ws.alice, ws.bob


@pytest.fixture
def bot(cloud: Cloud, alice: SimUser) -> SimUser:
    bot, _ = cloud.state.add_bot("linegram_bot", owner=alice)
    cloud.state.bot_response_timeout = 2.0
    return bot


def article(result_id: str, text: str, *labels: str) -> types.InputBotInlineResult:
    markup = None
    if labels:
        markup = types.ReplyInlineMarkup(
            [
                types.KeyboardInlineButtonRow(
                    [
                        types.KeyboardInlineButton(
                            label, types.InlineButtonTypeCallback(f"{label}:42".encode())
                        )
                        for label in labels
                    ]
                )
            ]
        )
    return types.InputBotInlineResult(
        id=result_id,
        type="article",
        title=text,
        send_message=types.InputBotInlineMessageText(message=text, reply_markup=markup),
    )


async def answer_inline(bot_dev: Device, *results: Any, cache_time: int = 0) -> Any:
    query = await bot_dev.next_update(types.UpdateBotInlineQuery)
    await bot_dev(
        functions.messages.SetInlineBotResultsRequest(
            query_id=query.query_id, results=list(results), cache_time=cache_time
        )
    )
    return query


def inline_query(cloud: Cloud, user: SimUser, bot: SimUser, text: str, peer: Any = None) -> Any:
    return functions.messages.GetInlineBotResultsRequest(
        bot=input_user(cloud, user, bot),
        peer=peer or types.InputPeerEmpty(),
        query=text,
        offset="",
    )


async def test_inline_query_round_trip(
    cloud: Cloud, alice: SimUser, bob: SimUser, bot: SimUser
) -> None:
    a, bot_dev = signed_in(cloud, alice), signed_in(cloud, bot)
    asking = asyncio.create_task(
        a(inline_query(cloud, alice, bot, "call 42", input_peer(cloud, alice, bob)))
    )
    query = await answer_inline(bot_dev, article("r1", "Incoming call", "Answer", "Reject"))
    assert (query.user_id, query.query) == (alice.id, "call 42")
    assert isinstance(query.peer_type, types.InlineQueryPeerTypePM)
    results = await asking
    assert results.query_id == query.query_id
    [result] = results.results
    assert (result.id, result.send_message.message) == ("r1", "Incoming call")
    assert [u.id for u in results.users] == [bot.id]


async def test_bot_that_does_not_answer_times_out(
    cloud: Cloud, alice: SimUser, bot: SimUser
) -> None:
    cloud.state.bot_response_timeout = 0.2
    err = await rpc_error(signed_in(cloud, alice), inline_query(cloud, alice, bot, "x"))
    assert (err.code, err.message) == (400, "BOT_RESPONSE_TIMEOUT")


async def test_inline_refusals(cloud: Cloud, alice: SimUser, bob: SimUser) -> None:
    quiet, _ = cloud.state.add_bot("quiet_bot", inline=False)
    a = signed_in(cloud, alice)
    assert (await rpc_error(a, inline_query(cloud, alice, quiet, "x"))).message == (
        "BOT_INLINE_DISABLED"
    )
    assert (await rpc_error(a, inline_query(cloud, alice, bob, "x"))).message == "BOT_INVALID"
    bot_dev = signed_in(cloud, quiet)
    assert (await rpc_error(bot_dev, inline_query(cloud, quiet, quiet, "x"))).message == (
        "BOT_METHOD_INVALID"
    )
    stale = functions.messages.SetInlineBotResultsRequest(query_id=1, results=[], cache_time=0)
    assert (await rpc_error(bot_dev, stale)).message == "QUERY_ID_INVALID"


async def test_cached_answers_skip_the_bot(cloud: Cloud, alice: SimUser, bot: SimUser) -> None:
    a, bot_dev = signed_in(cloud, alice), signed_in(cloud, bot)
    asking = asyncio.create_task(a(inline_query(cloud, alice, bot, "menu")))
    await answer_inline(bot_dev, article("m", "Menu"), cache_time=300)
    first = await asking
    again = await a(inline_query(cloud, alice, bot, "menu"))
    assert again.query_id == first.query_id
    assert len(bot_dev.updates(types.UpdateBotInlineQuery)) == 1


async def test_duplicate_result_ids_are_refused(cloud: Cloud, alice: SimUser, bot: SimUser) -> None:
    a, bot_dev = signed_in(cloud, alice), signed_in(cloud, bot)
    asking = asyncio.create_task(a(inline_query(cloud, alice, bot, "x")))
    query = await bot_dev.next_update(types.UpdateBotInlineQuery)
    err = await rpc_error(
        bot_dev,
        functions.messages.SetInlineBotResultsRequest(
            query_id=query.query_id, results=[article("a", "A"), article("a", "B")], cache_time=0
        ),
    )
    assert err.message == "RESULT_ID_DUPLICATE"
    await bot_dev(
        functions.messages.SetInlineBotResultsRequest(
            query_id=query.query_id, results=[article("a", "A")], cache_time=0
        )
    )
    assert len((await asking).results) == 1


@dataclass
class CallCard:
    """Alice sent the bot's "Incoming call" card into her chat with Bob."""

    a: Device
    b: Device
    bot_dev: Device
    sent: Any  # Alice's sendInlineBotResult result
    card: Any  # Bob's copy of the message


async def send_call_card(
    cloud: Cloud, alice: SimUser, bob: SimUser, bot: SimUser, *labels: str
) -> CallCard:
    """Alice asks the bot for "call 42" and sends its result r1 (buttons `labels`) to Bob."""
    a, b, bot_dev = signed_in(cloud, alice), signed_in(cloud, bob), signed_in(cloud, bot)
    asking = asyncio.create_task(a(inline_query(cloud, alice, bot, "call 42")))
    await answer_inline(bot_dev, article("r1", "Incoming call", *labels))
    results = await asking
    sent = await a(
        functions.messages.SendInlineBotResultRequest(
            peer=input_peer(cloud, alice, bob), query_id=results.query_id, id="r1", random_id=77
        )
    )
    [card] = [u.message for u in b.updates(types.UpdateNewMessage)]
    return CallCard(a, b, bot_dev, sent, card)


async def test_inline_result_sent_into_a_private_chat(
    cloud: Cloud, alice: SimUser, bob: SimUser, bot: SimUser
) -> None:
    c = await send_call_card(cloud, alice, bob, bot, "Answer", "Reject")
    [msg_id] = [u for u in c.sent.updates if isinstance(u, types.UpdateMessageID)]
    [mine] = [u.message for u in c.sent.updates if isinstance(u, types.UpdateNewMessage)]
    assert msg_id.random_id == 77 and msg_id.id == mine.id
    assert mine.via_bot_id == bot.id and mine.out
    assert bot.id in {u.id for u in c.sent.users}
    assert (c.card.via_bot_id, c.card.message) == (bot.id, "Incoming call")
    labels = [btn.text for btn in c.card.reply_markup.rows[0].buttons]
    assert labels == ["Answer", "Reject"]
    # The bot is not part of the chat: it sees nothing of the message itself, and
    # nothing of the send either (inline feedback is off by default).
    assert c.bot_dev.updates(types.UpdateNewMessage) == []
    assert c.bot_dev.updates(types.UpdateBotInlineSend) == []
    err = await rpc_error(
        c.a,
        functions.messages.SendInlineBotResultRequest(
            peer=input_peer(cloud, alice, bob), query_id=msg_id.random_id, id="r1"
        ),
    )
    assert err.message == "QUERY_ID_INVALID"


def unpack_inline_id(msg_id: Any) -> tuple[int, int]:
    """(message id, peer id) of a legacy 64-bit inline message id, as Telethon unpacks it."""
    assert isinstance(msg_id, types.InputBotInlineMessageID) and msg_id.dc_id == 2
    mid, pid = struct.unpack("<ii", struct.pack("<q", msg_id.id))
    return mid, pid


async def test_inline_feedback_names_the_sent_message(
    cloud: Cloud, alice: SimUser, bob: SimUser
) -> None:
    bot, _ = cloud.state.add_bot("feedback_bot", owner=alice, inline_feedback=True)
    c = await send_call_card(cloud, alice, bob, bot, "Answer", "Reject")
    sent = await c.bot_dev.next_update(types.UpdateBotInlineSend)
    assert (sent.user_id, sent.query, sent.id, sent.geo) == (alice.id, "call 42", "r1", None)
    [mine] = [u.message for u in c.sent.updates if isinstance(u, types.UpdateNewMessage)]
    assert unpack_inline_id(sent.msg_id) == (mine.id, alice.id)
    assert {u.id for u in c.bot_dev.sink.pushed[-1].users} == {alice.id}
    # The id is good for editing at once, before anyone pressed a button.
    await c.bot_dev(
        functions.messages.EditInlineBotMessageRequest(id=sent.msg_id, message="Missed call")
    )
    [edit] = c.b.updates(types.UpdateEditMessage)
    assert (edit.message.id, edit.message.message) == (c.card.id, "Missed call")
    assert c.bot_dev.updates(types.UpdateInlineBotCallbackQuery) == []


async def test_inline_feedback_without_a_keyboard_has_no_message_id(
    cloud: Cloud, alice: SimUser, bob: SimUser
) -> None:
    bot, _ = cloud.state.add_bot("feedback_bot", owner=alice, inline_feedback=True)
    c = await send_call_card(cloud, alice, bob, bot)  # no buttons: nothing to edit later
    sent = await c.bot_dev.next_update(types.UpdateBotInlineSend)
    assert (sent.id, sent.msg_id) == ("r1", None)
    assert c.card.reply_markup is None


async def test_button_press_on_a_via_bot_message(
    cloud: Cloud, alice: SimUser, bob: SimUser, bot: SimUser
) -> None:
    c = await send_call_card(cloud, alice, bob, bot, "Answer", "Reject")
    a, b, bot_dev, card = c.a, c.b, c.bot_dev, c.card

    press = asyncio.create_task(
        b(
            functions.messages.GetBotCallbackAnswerRequest(
                peer=input_peer(cloud, bob, alice), msg_id=card.id, data=b"Answer:42"
            )
        )
    )
    query = await bot_dev.next_update(types.UpdateInlineBotCallbackQuery)
    assert (query.user_id, query.data) == (bob.id, b"Answer:42")
    mid, pid = unpack_inline_id(query.msg_id)
    assert pid == alice.id and cloud.history.find(alice, mid).text == "Incoming call"
    await bot_dev(
        functions.messages.SetBotCallbackAnswerRequest(
            query_id=query.query_id, cache_time=0, message="Answering…"
        )
    )
    answer = await press
    assert answer.message == "Answering…" and not answer.alert

    # The bot edits the card for both sides.
    await bot_dev(
        functions.messages.EditInlineBotMessageRequest(
            id=query.msg_id, message="Call in progress", reply_markup=None
        )
    )
    [bob_edit] = b.updates(types.UpdateEditMessage)
    [alice_edit] = a.updates(types.UpdateEditMessage)
    assert bob_edit.message.id == card.id and alice_edit.message.id == mid
    for edit in (bob_edit, alice_edit):
        assert edit.message.message == "Call in progress" and edit.message.reply_markup is None
    forged = types.InputBotInlineMessageID(2, query.msg_id.id, query.msg_id.access_hash + 1)
    err = await rpc_error(
        bot_dev, functions.messages.EditInlineBotMessageRequest(id=forged, message="x")
    )
    assert err.message == "MESSAGE_ID_INVALID"


async def test_button_press_refusals_and_timeout(
    cloud: Cloud, alice: SimUser, bob: SimUser, bot: SimUser
) -> None:
    c = await send_call_card(cloud, alice, bob, bot, "Answer", "Reject")
    b, card = c.b, c.card
    peer = input_peer(cloud, bob, alice)
    press = functions.messages.GetBotCallbackAnswerRequest
    assert (await rpc_error(b, press(peer, card.id, data=b"nope"))).message == "DATA_INVALID"
    assert (await rpc_error(b, press(peer, 999, data=b"Answer:42"))).message == (
        "MESSAGE_ID_INVALID"
    )
    cloud.state.bot_response_timeout = 0.2
    err = await rpc_error(b, press(peer, card.id, data=b"Reject:42"))
    assert err.message == "BOT_RESPONSE_TIMEOUT"


async def test_button_in_the_bots_own_chat(cloud: Cloud, alice: SimUser, bot: SimUser) -> None:
    a, bot_dev = signed_in(cloud, alice), signed_in(cloud, bot)
    cloud.history.start_bot(alice, bot, "")
    markup = types.ReplyInlineMarkup(
        [
            types.KeyboardInlineButtonRow(
                [types.KeyboardInlineButton("Mute", types.InlineButtonTypeCallback(b"mute"))]
            )
        ]
    )
    sent = await bot_dev(
        functions.messages.SendMessageRequest(
            input_peer(cloud, bot, alice), "Settings", reply_markup=markup
        )
    )
    card = a.updates(types.UpdateNewMessage)[-1].message  # after Alice's own "/start"
    assert card.message == "Settings" and not card.out
    press = asyncio.create_task(
        a(
            functions.messages.GetBotCallbackAnswerRequest(
                input_peer(cloud, alice, bot), card.id, data=b"mute"
            )
        )
    )
    query = await bot_dev.next_update(types.UpdateBotCallbackQuery)
    assert query.peer == types.PeerUser(alice.id) and query.msg_id == sent.id
    await bot_dev(
        functions.messages.SetBotCallbackAnswerRequest(
            query_id=query.query_id, cache_time=0, alert=True, message="Muted"
        )
    )
    answer = await press
    assert answer.alert and answer.message == "Muted"
    err = await rpc_error(
        bot_dev,
        functions.messages.SetBotCallbackAnswerRequest(query_id=query.query_id, cache_time=0),
    )
    assert err.message == "QUERY_ID_INVALID"


async def test_bot_commands(cloud: Cloud, alice: SimUser, bot: SimUser) -> None:
    bot_dev = signed_in(cloud, bot)
    scope, lang = types.BotCommandScopeDefault(), ""
    commands = [types.BotCommand("status", "Line status"), types.BotCommand("mute", "Mute")]
    assert await bot_dev(functions.bots.SetBotCommandsRequest(scope, lang, commands))
    assert await bot_dev(functions.bots.GetBotCommandsRequest(scope, lang)) == commands
    bad = [types.BotCommand("Bad Command", "x")]
    err = await rpc_error(bot_dev, functions.bots.SetBotCommandsRequest(scope, lang, bad))
    assert err.message == "BOT_COMMAND_INVALID"
    full = await signed_in(cloud, alice)(
        functions.users.GetFullUserRequest(input_user(cloud, alice, bot))
    )
    assert full.full_user.bot_info.commands == commands
    assert not full.full_user.phone_calls_available
    err = await rpc_error(
        signed_in(cloud, alice), functions.bots.SetBotCommandsRequest(scope, lang, commands)
    )
    assert err.message == "USER_BOT_REQUIRED"

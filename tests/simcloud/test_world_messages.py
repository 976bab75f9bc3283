"""Private messages in the simulated cloud: ids per box, pts per account, both sides' updates."""

from __future__ import annotations

from typing import Any

import pytest
from telethon.tl import functions, types

from simcloud.cloud import Cloud
from simcloud.state import SimUser
from tests.simcloud import world_support as ws
from tests.simcloud.world_support import input_peer, rpc_error, signed_in

clock, cloud, alice, bob = ws.clock, ws.cloud, ws.alice, ws.bob


def send(cloud: Cloud, viewer: SimUser, to: SimUser, text: str, **kw: Any) -> Any:
    return functions.messages.SendMessageRequest(input_peer(cloud, viewer, to), text, **kw)


def inline_markup(*labels: str) -> types.ReplyInlineMarkup:
    return types.ReplyInlineMarkup(
        [
            types.KeyboardInlineButtonRow(
                [
                    types.KeyboardInlineButton(
                        label, types.InlineButtonTypeCallback(label.encode())
                    )
                    for label in labels
                ]
            )
        ]
    )


def chain_ok(updates: list[Any], start: int) -> bool:
    """Each pts update continues the previous one: pts - pts_count == previous pts."""
    pts = start
    for u in updates:
        if u.pts - u.pts_count != pts:
            return False
        pts = u.pts
    return True


async def test_send_message_to_a_user(cloud: Cloud, alice: SimUser, bob: SimUser) -> None:
    a_phone, a_desktop, b = (
        signed_in(cloud, alice),
        signed_in(cloud, alice),
        signed_in(cloud, bob),
    )
    a_pts = (await a_phone(functions.updates.GetStateRequest())).pts
    b_pts = (await b(functions.updates.GetStateRequest())).pts

    result = await a_phone(send(cloud, alice, bob, "hello", random_id=1))
    assert isinstance(result, types.UpdateShortSentMessage) and result.out
    assert (result.id, result.pts, result.pts_count) == (1, a_pts + 1, 1)
    assert a_phone.updates() == []  # the sending device learns it from the result

    [mine] = a_desktop.updates(types.UpdateNewMessage)
    assert (mine.message.id, mine.pts, mine.message.out) == (1, a_pts + 1, True)
    assert mine.message.peer_id == types.PeerUser(bob.id)

    [theirs] = b.updates(types.UpdateNewMessage)
    assert (theirs.pts, theirs.message.out, theirs.message.message) == (b_pts + 1, False, "hello")
    assert theirs.message.peer_id == types.PeerUser(alice.id)
    users = {u.id: u for u in b.sink.pushed[0].users}
    assert users[alice.id].access_hash == cloud.state.access_hash(bob, alice)

    # Bob's reply takes Bob's next id, and Alice's box its own next one.
    await b(send(cloud, bob, alice, "hi there"))
    [reply] = a_phone.updates(types.UpdateNewMessage)
    assert (reply.message.id, reply.pts) == (2, a_pts + 2)


async def test_each_box_numbers_its_own_messages(
    cloud: Cloud, alice: SimUser, bob: SimUser
) -> None:
    carol = cloud.state.add_user(phone="+999661003", first_name="Carol")
    a, b, c = signed_in(cloud, alice), signed_in(cloud, bob), signed_in(cloud, carol)
    await c(send(cloud, carol, bob, "one"))
    await c(send(cloud, carol, bob, "two"))
    await a(send(cloud, alice, bob, "three"))
    assert [u.message.id for u in b.updates(types.UpdateNewMessage)] == [1, 2, 3]
    result = await a(send(cloud, alice, bob, "four"))
    assert result.id == 2


async def test_reply_markup_only_from_bots(cloud: Cloud, alice: SimUser) -> None:
    bot, _ = cloud.state.add_bot("house_bot", owner=alice)
    a, bot_dev = signed_in(cloud, alice), signed_in(cloud, bot)
    # A bot may not write first.
    err = await rpc_error(bot_dev, send(cloud, bot, alice, "hi"))
    assert err.message == "PEER_ID_INVALID"
    await a(send(cloud, alice, bot, "hey bot", reply_markup=inline_markup("X")))
    [to_bot] = bot_dev.updates(types.UpdateNewMessage)
    assert to_bot.message.reply_markup is None  # dropped: users cannot send keyboards
    await bot_dev(send(cloud, bot, alice, "choose", reply_markup=inline_markup("Yes", "No")))
    [to_alice] = a.updates(types.UpdateNewMessage)
    assert to_alice.message.reply_markup == inline_markup("Yes", "No")


async def test_messages_to_oneself(cloud: Cloud, alice: SimUser) -> None:
    a1, a2 = signed_in(cloud, alice), signed_in(cloud, alice)
    result = await a1(functions.messages.SendMessageRequest(types.InputPeerSelf(), "note"))
    [update] = a2.updates(types.UpdateNewMessage)
    assert update.message.id == result.id and update.message.peer_id == types.PeerUser(alice.id)
    assert len(cloud.history.mailbox(alice.id).messages) == 1


async def test_send_refusals(cloud: Cloud, alice: SimUser, bob: SimUser) -> None:
    a, b = signed_in(cloud, alice), signed_in(cloud, bob)
    assert (await rpc_error(a, send(cloud, alice, bob, "  "))).message == "MESSAGE_EMPTY"
    assert (await rpc_error(a, send(cloud, alice, bob, "x" * 4097))).message == "MESSAGE_TOO_LONG"
    bad_hash = functions.messages.SendMessageRequest(types.InputPeerUser(bob.id, 5), "hi")
    assert (await rpc_error(a, bad_hash)).message == "PEER_ID_INVALID"
    chat = functions.messages.SendMessageRequest(types.InputPeerChat(5), "hi")
    assert (await rpc_error(a, chat)).message == "PEER_ID_INVALID"
    await a(send(cloud, alice, bob, "once", random_id=99))
    err = await rpc_error(a, send(cloud, alice, bob, "twice", random_id=99))
    assert (err.code, err.message) == (500, "RANDOM_ID_DUPLICATE")
    cloud.state.block(alice, bob)
    assert (await rpc_error(a, send(cloud, alice, bob, "hi"))).message == "YOU_BLOCKED_USER"
    # Blocked by Bob: Alice's message looks sent but never arrives.
    cloud.state.unblock(alice, bob)
    cloud.state.block(bob, alice)
    b.clear()
    result = await a(send(cloud, alice, bob, "anyone?"))
    assert result.id > 0 and b.updates() == []


async def test_edit_message(cloud: Cloud, alice: SimUser, bob: SimUser) -> None:
    a1, a2, b = signed_in(cloud, alice), signed_in(cloud, alice), signed_in(cloud, bob)
    await b(send(cloud, bob, alice, "from bob"))
    sent = await a1(send(cloud, alice, bob, "draft"))
    [bob_copy] = [
        u.message for u in b.updates(types.UpdateNewMessage) if u.message.message == "draft"
    ]
    for d in (a1, a2, b):
        d.clear()

    peer = input_peer(cloud, alice, bob)
    result = await a1(functions.messages.EditMessageRequest(peer, sent.id, message="final"))
    [mine] = [u for u in result.updates if isinstance(u, types.UpdateEditMessage)]
    assert mine.message.message == "final" and mine.message.edit_date is not None
    assert mine.pts == sent.pts + 1
    assert a1.updates() == [] and a2.updates(types.UpdateEditMessage)[0].pts == mine.pts
    [theirs] = b.updates(types.UpdateEditMessage)
    assert (theirs.message.id, theirs.message.message) == (bob_copy.id, "final")

    edit = functions.messages.EditMessageRequest
    assert (await rpc_error(a1, edit(peer, sent.id, message="final"))).message == (
        "MESSAGE_NOT_MODIFIED"
    )
    assert (await rpc_error(a1, edit(peer, 999, message="x"))).message == "MESSAGE_ID_INVALID"
    assert (await rpc_error(a1, edit(peer, 1, message="x"))).message == "MESSAGE_AUTHOR_REQUIRED"


async def test_bot_edits_its_keyboard(cloud: Cloud, alice: SimUser) -> None:
    bot, _ = cloud.state.add_bot("house_bot", owner=alice)
    a, bot_dev = signed_in(cloud, alice), signed_in(cloud, bot)
    cloud.history.start_bot(alice, bot, "hello")
    sent = await bot_dev(send(cloud, bot, alice, "ring", reply_markup=inline_markup("Answer")))
    peer = input_peer(cloud, bot, alice)
    await bot_dev(
        functions.messages.EditMessageRequest(peer, sent.id, reply_markup=inline_markup("Hang up"))
    )
    [edit] = a.updates(types.UpdateEditMessage)
    assert edit.message.message == "ring" and edit.message.reply_markup == inline_markup("Hang up")
    # Editing the text without a keyboard removes it, as in the Bot API.
    await bot_dev(functions.messages.EditMessageRequest(peer, sent.id, message="ended"))
    assert a.updates(types.UpdateEditMessage)[-1].message.reply_markup is None


async def test_delete_for_both_sides(cloud: Cloud, alice: SimUser, bob: SimUser) -> None:
    a1, a2, b = signed_in(cloud, alice), signed_in(cloud, alice), signed_in(cloud, bob)
    await b(send(cloud, bob, alice, "b1"))
    await b(send(cloud, bob, alice, "b2"))
    sent = await a1(send(cloud, alice, bob, "oops"))
    bob_ids = [u.message.id for u in b.updates(types.UpdateNewMessage)]
    assert bob_ids == [3]  # Bob's own two came back as results, not pushes
    for d in (a1, a2, b):
        d.clear()
    affected = await a1(functions.messages.DeleteMessagesRequest([sent.id, 12345], revoke=True))
    assert (affected.pts, affected.pts_count) == (sent.pts + 1, 1)
    assert a2.updates(types.UpdateDeleteMessages)[0].messages == [sent.id]
    assert b.updates(types.UpdateDeleteMessages)[0].messages == [3]
    # Without revoke only one's own copy goes.
    affected = await a1(functions.messages.DeleteMessagesRequest([1], revoke=False))
    assert affected.pts_count == 1
    assert [u.messages for u in b.updates(types.UpdateDeleteMessages)] == [[3]]
    assert 1 in cloud.history.mailbox(bob.id).messages
    nothing = await a1(functions.messages.DeleteMessagesRequest([777]))
    assert (nothing.pts, nothing.pts_count) == (affected.pts, 0)
    # One pts per deleted message; Alice already dropped her copy of Bob's #1.
    both = await b(functions.messages.DeleteMessagesRequest([1, 2], revoke=True))
    assert both.pts_count == 2
    last = a2.updates(types.UpdateDeleteMessages)[-1]
    assert (last.messages, last.pts_count) == ([2], 1)


async def test_service_messages_for_other_subsystems(
    cloud: Cloud, alice: SimUser, bob: SimUser
) -> None:
    """The phone module can leave "call ended" service messages in both chats."""
    a, b = signed_in(cloud, alice), signed_in(cloud, bob)
    action = types.MessageActionPhoneCall(
        call_id=5, reason=types.PhoneCallDiscardReasonHangup(), duration=42
    )
    cloud.history.send(alice, bob, action=action)
    [mine] = a.updates(types.UpdateNewMessage)
    [theirs] = b.updates(types.UpdateNewMessage)
    for update in (mine, theirs):
        assert isinstance(update.message, types.MessageService)
        assert update.message.action.duration == 42
    assert mine.message.out and not theirs.message.out


async def test_read_history_tells_the_sender(cloud: Cloud, alice: SimUser, bob: SimUser) -> None:
    a, b1, b2 = signed_in(cloud, alice), signed_in(cloud, bob), signed_in(cloud, bob)
    await b1(send(cloud, bob, alice, "warm-up"))  # shifts Bob's ids away from Alice's
    first = await a(send(cloud, alice, bob, "one"))
    await a(send(cloud, alice, bob, "two"))
    a.clear()
    affected = await b1(functions.messages.ReadHistoryRequest(input_peer(cloud, bob, alice), 0))
    assert affected.pts_count == 1
    [inbox] = b2.updates(types.UpdateReadHistoryInbox)
    assert (inbox.max_id, inbox.still_unread_count, inbox.pts) == (3, 0, affected.pts)
    [outbox] = a.updates(types.UpdateReadHistoryOutbox)
    assert outbox.peer == types.PeerUser(bob.id) and outbox.max_id == first.id + 1
    again = await b1(functions.messages.ReadHistoryRequest(input_peer(cloud, bob, alice), 0))
    assert again.pts_count == 0


async def test_typing_is_pushed_without_pts(cloud: Cloud, alice: SimUser, bob: SimUser) -> None:
    a, b = signed_in(cloud, alice), signed_in(cloud, bob)
    assert await a(
        functions.messages.SetTypingRequest(
            input_peer(cloud, alice, bob), types.SendMessageTypingAction()
        )
    )
    [typing] = b.updates(types.UpdateUserTyping)
    assert typing.user_id == alice.id


async def test_get_messages_history_and_dialogs(cloud: Cloud, alice: SimUser, bob: SimUser) -> None:
    a, b = signed_in(cloud, alice), signed_in(cloud, bob)
    for i in range(5):
        await a(send(cloud, alice, bob, f"m{i}"))
    got = await b(
        functions.messages.GetMessagesRequest([types.InputMessageID(2), types.InputMessageID(50)])
    )
    assert got.messages[0].message == "m1" and isinstance(got.messages[1], types.MessageEmpty)
    hist = await b(
        functions.messages.GetHistoryRequest(
            input_peer(cloud, bob, alice),
            offset_id=5,
            offset_date=None,
            add_offset=0,
            limit=2,
            max_id=0,
            min_id=0,
            hash=0,
        )
    )
    assert [m.message for m in hist.messages] == ["m3", "m2"]
    dialogs = await b(
        functions.messages.GetDialogsRequest(
            offset_date=None, offset_id=0, offset_peer=types.InputPeerEmpty(), limit=10, hash=0
        )
    )
    [dialog] = dialogs.dialogs
    assert (dialog.peer, dialog.top_message, dialog.unread_count) == (
        types.PeerUser(alice.id),
        5,
        5,
    )


async def test_deep_link_start_lets_the_bot_write(cloud: Cloud, alice: SimUser) -> None:
    bot, _ = cloud.state.add_bot("house_bot", owner=alice)
    a, bot_dev = signed_in(cloud, alice), signed_in(cloud, bot)
    peer = input_peer(cloud, alice, bot)
    start = functions.messages.StartBotRequest
    assert (await rpc_error(a, start(peer, peer, "bad token!"))).message == "START_PARAM_INVALID"
    result = await a(start(peer, peer, "pair-123", random_id=5))
    [msg_id] = [u for u in result.updates if isinstance(u, types.UpdateMessageID)]
    [new] = [u for u in result.updates if isinstance(u, types.UpdateNewMessage)]
    assert (msg_id.random_id, msg_id.id) == (5, new.message.id)
    [received] = bot_dev.updates(types.UpdateNewMessage)
    assert received.message.message == "/start pair-123"
    assert received.message.entities == [types.MessageEntityBotCommand(0, 6)]
    # Now the bot may answer, with access_hash 0 as bots may for users they met.
    await bot_dev(functions.messages.SendMessageRequest(types.InputPeerUser(alice.id, 0), "paired"))
    assert a.updates(types.UpdateNewMessage)[-1].message.message == "paired"


@pytest.mark.parametrize("seed", range(5))
async def test_pts_chains_stay_contiguous(
    cloud: Cloud, alice: SimUser, bob: SimUser, seed: int
) -> None:
    """Whatever happens, each observer sees one unbroken pts chain ending at getState."""
    import random

    rnd = random.Random(seed)
    users = [alice, bob, cloud.state.add_user(phone="+999661003", first_name="Carol")]
    actors = {u.id: signed_in(cloud, u) for u in users}
    observers = {u.id: signed_in(cloud, u) for u in users}
    start = {u.id: (await observers[u.id](functions.updates.GetStateRequest())).pts for u in users}
    results: dict[int, list[Any]] = {u.id: [] for u in users}
    for _ in range(60):
        me, other = rnd.sample(users, 2)
        dev = actors[me.id]
        op = rnd.random()
        mine = list(cloud.history.mailbox(me.id).messages.values())
        if op < 0.5 or not mine:
            r = await dev(send(cloud, me, other, f"t{rnd.random()}"))
            results[me.id].append(r)
        elif op < 0.7:
            outgoing = [m for m in mine if m.out and m.action is None]
            if outgoing:
                m = rnd.choice(outgoing)
                peer = cloud.state.user(m.peer_id)
                r = await dev(
                    functions.messages.EditMessageRequest(
                        input_peer(cloud, me, peer), m.id, message=f"e{rnd.random()}"
                    )
                )
                results[me.id].extend(r.updates)
        elif op < 0.85:
            ids = [m.id for m in rnd.sample(mine, min(2, len(mine)))]
            r = await dev(functions.messages.DeleteMessagesRequest(ids, revoke=rnd.random() < 0.5))
            if r.pts_count:
                results[me.id].append(r)
        else:
            r = await dev(functions.messages.ReadHistoryRequest(input_peer(cloud, me, other), 0))
            if r.pts_count:
                results[me.id].append(r)
    for u in users:
        pushed = [x for x in observers[u.id].updates() if getattr(x, "pts", None)]
        assert chain_ok(pushed, start[u.id])
        final = (await observers[u.id](functions.updates.GetStateRequest())).pts
        assert (pushed[-1].pts if pushed else start[u.id]) == final
        # The acting device: its results plus the pushes it got make the same chain.
        acted = sorted(
            results[u.id] + [x for x in actors[u.id].updates() if getattr(x, "pts", None)],
            key=lambda x: x.pts,
        )
        assert chain_ok(acted, start[u.id])

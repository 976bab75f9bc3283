"""messages.*: private chats only (send, edit, delete, read, typing, fetch, dialogs, /start).

The sending device gets its pts in the result (UpdateShortSentMessage for
sendMessage, Updates for edits and deep links, AffectedMessages for deletes and
reads); the account's other devices and the other party get pushes.  Groups
and channels do not exist in the sim: their peers answer PEER_ID_INVALID.
"""

from __future__ import annotations

import re
from typing import Any

from telethon.tl import functions, types

from simcloud.cloud import Caller, Cloud, bad_request, handler
from simcloud.history import BoxMessage, history_of
from simcloud.state import SimUser, State, state_of
from simcloud.updates import tl_date, updates_of

EDIT_TIME_LIMIT = 172_800  # help.getConfig edit_time_limit; bots may edit forever
_START_PARAM = re.compile(r"[A-Za-z0-9_-]{1,64}")


def reply_to_id(reply_to: Any) -> int | None:
    if isinstance(reply_to, types.InputReplyToMessage):
        return int(reply_to.reply_to_msg_id)
    return None


@handler(functions.messages.SendMessageRequest)
async def send_message(
    cloud: Cloud, caller: Caller, req: functions.messages.SendMessageRequest
) -> types.UpdateShortSentMessage:
    state = state_of(cloud)
    me = state.require_user(caller)
    peer = state.resolve_peer(me, req.peer)
    sent = history_of(cloud).send(
        me,
        peer,
        req.message,
        entities=req.entities,
        reply_markup=req.reply_markup,
        reply_to=reply_to_id(req.reply_to),
        random_id=req.random_id,
        silent=bool(req.silent),
        exclude=caller,
    )
    return types.UpdateShortSentMessage(
        id=sent.message.id,
        pts=sent.update.pts,
        pts_count=sent.update.pts_count,
        date=tl_date(sent.message.date),
        out=True,
    )


def chat_message(cloud: Cloud, me: SimUser, peer: SimUser, msg_id: int) -> BoxMessage:
    """Message `msg_id` of `me`'s box, if it is in the chat with `peer` (MESSAGE_ID_INVALID)."""
    message = history_of(cloud).find(me, msg_id)
    if message is None or message.peer_id != peer.id:
        raise bad_request("MESSAGE_ID_INVALID")
    return message


@handler(functions.messages.EditMessageRequest)
async def edit_message(
    cloud: Cloud, caller: Caller, req: functions.messages.EditMessageRequest
) -> types.Updates:
    state = state_of(cloud)
    me = state.require_user(caller)
    peer = state.resolve_peer(me, req.peer)
    message = chat_message(cloud, me, peer, req.id)
    # Only the author edits; a message sent via an inline bot belongs to the bot.
    if not message.out or message.action is not None or message.via_bot_id is not None:
        raise bad_request("MESSAGE_AUTHOR_REQUIRED")
    if req.media is not None:
        raise bad_request("MEDIA_INVALID")  # the sim carries no media
    if not me.bot and state.now() - message.date > EDIT_TIME_LIMIT:
        raise bad_request("MESSAGE_EDIT_TIME_EXPIRED")
    update = history_of(cloud).edit(
        me,
        message,
        text=req.message,
        entities=req.entities,
        reply_markup=req.reply_markup,
        markup_from_bot=me.bot,
        exclude=caller,
    )
    return updates_of(cloud).envelope(me.id, [update], [peer, me])


@handler(functions.messages.DeleteMessagesRequest)
async def delete_messages(
    cloud: Cloud, caller: Caller, req: functions.messages.DeleteMessagesRequest
) -> types.messages.AffectedMessages:
    me = state_of(cloud).require_user(caller)
    if not req.id:
        raise bad_request("MESSAGE_IDS_EMPTY")
    return history_of(cloud).delete(me, list(req.id), bool(req.revoke), exclude=caller)


@handler(functions.messages.ReadHistoryRequest)
async def read_history(
    cloud: Cloud, caller: Caller, req: functions.messages.ReadHistoryRequest
) -> types.messages.AffectedMessages:
    state = state_of(cloud)
    me = state.require_person(caller)
    peer = state.resolve_peer(me, req.peer)
    max_id = req.max_id or 2**31 - 1  # 0 reads everything
    return history_of(cloud).read(me, peer, max_id, exclude=caller)


@handler(functions.messages.SetTypingRequest)
async def set_typing(
    cloud: Cloud, caller: Caller, req: functions.messages.SetTypingRequest
) -> bool:
    state = state_of(cloud)
    me = state.require_user(caller)
    peer = state.resolve_peer(me, req.peer)
    if peer is not me and not state.is_blocked(peer, me):
        updates_of(cloud).push(
            peer.id, types.UpdateUserTyping(user_id=me.id, action=req.action), users=[me]
        )
    return True


def _messages_result(
    state: State, me: SimUser, found: list[BoxMessage | None], ids: list[int]
) -> types.messages.Messages:
    tl: list[Any] = []
    peers: list[SimUser] = [me]
    for msg_id, message in zip(ids, found, strict=True):
        if message is None:
            tl.append(types.MessageEmpty(id=msg_id, peer_id=None))
            continue
        tl.append(message.to_tl(me.id))
        peers.append(state.user(message.peer_id))
        if message.via_bot_id:
            peers.append(state.user(message.via_bot_id))
    return types.messages.Messages(messages=tl, topics=[], chats=[], users=state.views(me, peers))


@handler(functions.messages.GetMessagesRequest)
async def get_messages(
    cloud: Cloud, caller: Caller, req: functions.messages.GetMessagesRequest
) -> types.messages.Messages:
    state = state_of(cloud)
    me = state.require_user(caller)
    history = history_of(cloud)
    ids: list[int] = []
    found: list[BoxMessage | None] = []
    for ref in req.id:
        message = None
        if isinstance(ref, (types.InputMessageID, types.InputMessageCallbackQuery)):
            message = history.find(me, ref.id)
        elif isinstance(ref, types.InputMessageReplyTo):
            replying = history.find(me, ref.id)
            if replying is not None and replying.reply_to_id is not None:
                message = history.find(me, replying.reply_to_id)
        ids.append(message.id if message is not None else int(getattr(ref, "id", 0)))
        found.append(message)
    return _messages_result(state, me, found, ids)


@handler(functions.messages.GetHistoryRequest)
async def get_history(
    cloud: Cloud, caller: Caller, req: functions.messages.GetHistoryRequest
) -> types.messages.Messages:
    state = state_of(cloud)
    me = state.require_user(caller)
    peer = state.resolve_peer(me, req.peer)
    chat = sorted(
        (m for m in history_of(cloud).mailbox(me.id).messages.values() if m.peer_id == peer.id),
        key=lambda m: m.id,
        reverse=True,
    )
    if req.offset_id:
        chat = [m for m in chat if m.id < req.offset_id]
    if req.max_id:
        chat = [m for m in chat if m.id < req.max_id]
    if req.min_id:
        chat = [m for m in chat if m.id > req.min_id]
    start = max(req.add_offset, 0)
    page = chat[start : start + max(min(req.limit, 100), 0)]
    return _messages_result(state, me, list(page), [m.id for m in page])


def _dialogs(cloud: Cloud, me: SimUser, only: set[int] | None = None) -> tuple[list[Any], ...]:
    state = state_of(cloud)
    box = history_of(cloud).mailbox(me.id)
    tops: dict[int, BoxMessage] = {}
    for m in box.messages.values():
        top = tops.get(m.peer_id)
        if (only is None or m.peer_id in only) and (top is None or m.id > top.id):
            tops[m.peer_id] = m
    ordered = sorted(tops.values(), key=lambda m: m.id, reverse=True)
    dialogs = [
        types.Dialog(
            peer=types.PeerUser(m.peer_id),
            top_message=m.id,
            read_inbox_max_id=box.read_inbox.get(m.peer_id, 0),
            read_outbox_max_id=box.read_outbox.get(m.peer_id, 0),
            unread_count=box.unread(m.peer_id),
            unread_mentions_count=0,
            unread_reactions_count=0,
            unread_poll_votes_count=0,
            notify_settings=types.PeerNotifySettings(),
        )
        for m in ordered
    ]
    peers = [state.user(m.peer_id) for m in ordered] + [me]
    return dialogs, [m.to_tl(me.id) for m in ordered], state.views(me, peers)


@handler(functions.messages.GetDialogsRequest)
async def get_dialogs(
    cloud: Cloud, caller: Caller, req: functions.messages.GetDialogsRequest
) -> types.messages.Dialogs:
    me = state_of(cloud).require_person(caller)
    dialogs, messages, users = _dialogs(cloud, me)
    return types.messages.Dialogs(dialogs=dialogs, messages=messages, chats=[], users=users)


@handler(functions.messages.GetPeerDialogsRequest)
async def get_peer_dialogs(
    cloud: Cloud, caller: Caller, req: functions.messages.GetPeerDialogsRequest
) -> types.messages.PeerDialogs:
    state = state_of(cloud)
    me = state.require_user(caller)
    wanted = {
        state.resolve_peer(me, p.peer).id for p in req.peers if isinstance(p, types.InputDialogPeer)
    }
    dialogs, messages, users = _dialogs(cloud, me, wanted)
    return types.messages.PeerDialogs(
        dialogs=dialogs,
        messages=messages,
        chats=[],
        users=users,
        state=updates_of(cloud).get_state(me.id),
    )


@handler(functions.messages.StartBotRequest)
async def start_bot(
    cloud: Cloud, caller: Caller, req: functions.messages.StartBotRequest
) -> types.Updates:
    state = state_of(cloud)
    me = state.require_person(caller)
    bot = state.resolve_bot(me, req.bot)
    if state.resolve_peer(me, req.peer) is not bot:
        raise bad_request("PEER_ID_INVALID")  # deep links into groups need groups
    if not req.start_param:
        raise bad_request("START_PARAM_EMPTY")
    if not _START_PARAM.fullmatch(req.start_param):
        raise bad_request("START_PARAM_INVALID")
    sent = history_of(cloud).start_bot(me, bot, req.start_param, req.random_id, exclude=caller)
    return updates_of(cloud).envelope(
        me.id,
        [types.UpdateMessageID(id=sent.message.id, random_id=req.random_id), sent.update],
        [bot, me],
    )

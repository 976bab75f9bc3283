"""Bots: inline queries, results sent "via @bot", callback buttons and bot commands.

Two round trips go through the bot and wait for it, as on Telegram:

    user: messages.getInlineBotResults  -> bot gets UpdateBotInlineQuery
    bot:  messages.setInlineBotResults  -> the user's call returns messages.BotResults
    user: messages.getBotCallbackAnswer -> bot gets UpdateBotCallbackQuery, or
                                           UpdateInlineBotCallbackQuery for via-bot messages
    bot:  messages.setBotCallbackAnswer -> the user's call returns messages.BotCallbackAnswer

A bot that does not answer within `State.bot_response_timeout` makes the
user's call fail with BOT_RESPONSE_TIMEOUT.  A result the user sends with
messages.sendInlineBotResult becomes a private message with `via_bot_id` and
the result's keyboard; the bot edits it later through its
InputBotInlineMessageID (messages.editInlineBotMessage).  The bot learns that
id from the first press (UpdateInlineBotCallbackQuery) or, with inline feedback
on (`State.add_bot(inline_feedback=True)`), at once from UpdateBotInlineSend.
"""

from __future__ import annotations

import asyncio
import secrets
from collections import OrderedDict
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, TypeVar, cast

from telethon.tl import functions, types

from simcloud.auth import check_password
from simcloud.cloud import Caller, Cloud, RpcError, bad_request, handler
from simcloud.help import DC_ID
from simcloud.history import InlineMessage, history_of
from simcloud.messages import chat_message, reply_to_id
from simcloud.state import SimUser, State, state_of
from simcloud.updates import updates_of

Answer = asyncio.Future[Any]

MAX_RESULTS = 50
_ANSWERED_MEMORY = 1000


@dataclass
class BotQuery:
    """A question from a user that waits for the bot's answer (inline or callback)."""

    query_id: int
    user_id: int
    bot_id: int
    answered: Answer


Query = TypeVar("Query", bound=BotQuery)


@dataclass
class InlineQuery(BotQuery):
    """An inline query from a user to a bot, pending or answered."""

    query: str
    offset: str
    results: OrderedDict[str, Any] = field(default_factory=OrderedDict)
    cache_time: int = 0
    private: bool = False
    gallery: bool = False
    next_offset: str | None = None
    switch_pm: Any = None
    answered_at: float = 0.0


@dataclass
class CallbackQuery(BotQuery):
    """A press on a callback button."""


class BotQueries:
    """Queries waiting for their bot, and answered inline results (`cloud.bot_queries`)."""

    def __init__(self) -> None:
        self.inline: OrderedDict[int, InlineQuery] = OrderedDict()
        self.callbacks: dict[int, CallbackQuery] = {}

    def new_id(self) -> int:
        return secrets.randbits(63)

    def remember(self, query: InlineQuery) -> None:
        self.inline[query.query_id] = query
        while len(self.inline) > _ANSWERED_MEMORY:
            self.inline.popitem(last=False)

    def cached(
        self, bot: SimUser, user: SimUser, query: str, offset: str, now: float
    ) -> InlineQuery | None:
        """An answer the bot allowed Telegram to reuse (cache_time, per user if private)."""
        for q in reversed(self.inline.values()):
            if (
                q.bot_id == bot.id
                and q.query == query
                and q.offset == offset
                and q.answered.done()
                and now < q.answered_at + q.cache_time
                and (not q.private or q.user_id == user.id)
            ):
                return q
        return None


def bot_queries_of(cloud: Cloud) -> BotQueries:
    return cast(BotQueries, vars(cloud)["bot_queries"])


def _awaiting_answer(queries: Mapping[int, Query], query_id: int, bot: SimUser) -> Query:
    """The bot's own query that still waits for its answer (else QUERY_ID_INVALID)."""
    query = queries.get(query_id)
    if query is None or query.bot_id != bot.id or query.answered.done():
        raise bad_request("QUERY_ID_INVALID")
    return query


async def _wait_for_bot(answered: Answer, timeout: float) -> Any:
    try:
        return await asyncio.wait_for(asyncio.shield(answered), timeout)
    except TimeoutError:
        raise bad_request("BOT_RESPONSE_TIMEOUT") from None


# -- inline queries ---------------------------------------------------------------


def _peer_type(state: State, me: SimUser, bot: SimUser, peer: Any) -> Any:
    if isinstance(peer, types.InputPeerEmpty):
        return None
    target = state.resolve_peer(me, peer)
    if target is bot:
        return types.InlineQueryPeerTypeSameBotPM()
    return types.InlineQueryPeerTypeBotPM() if target.bot else types.InlineQueryPeerTypePM()


def _bot_results(
    state: State, me: SimUser, bot: SimUser, q: InlineQuery
) -> types.messages.BotResults:
    results = []
    for r in q.results.values():
        message = r.send_message
        results.append(
            types.BotInlineResult(
                id=r.id,
                type=r.type,
                send_message=types.BotInlineMessageText(
                    message=message.message,
                    no_webpage=message.no_webpage,
                    invert_media=message.invert_media,
                    entities=message.entities,
                    reply_markup=message.reply_markup,
                ),
                title=r.title,
                description=r.description,
                url=r.url,
            )
        )
    return types.messages.BotResults(
        query_id=q.query_id,
        results=results,
        cache_time=q.cache_time,
        users=[state.user_view(bot, me)],
        gallery=q.gallery or None,
        next_offset=q.next_offset,
        switch_pm=q.switch_pm,
    )


@handler(functions.messages.GetInlineBotResultsRequest)
async def get_inline_bot_results(
    cloud: Cloud, caller: Caller, req: functions.messages.GetInlineBotResultsRequest
) -> types.messages.BotResults:
    state = state_of(cloud)
    me = state.require_person(caller)
    bot = state.resolve_bot(me, req.bot)
    if not bot.bot_inline:
        raise bad_request("BOT_INLINE_DISABLED")
    peer_type = _peer_type(state, me, bot, req.peer)
    desk = bot_queries_of(cloud)
    cached = desk.cached(bot, me, req.query, req.offset, state.clock())
    if cached is not None:
        return _bot_results(state, me, bot, cached)
    query = InlineQuery(
        query_id=desk.new_id(),
        user_id=me.id,
        bot_id=bot.id,
        query=req.query,
        offset=req.offset,
        answered=asyncio.get_running_loop().create_future(),
    )
    desk.remember(query)
    state.meet(me, bot)
    updates_of(cloud).push(
        bot.id,
        types.UpdateBotInlineQuery(
            query_id=query.query_id,
            user_id=me.id,
            query=req.query,
            offset=req.offset,
            peer_type=peer_type,
        ),
        users=[me],
    )
    try:
        await _wait_for_bot(query.answered, state.bot_response_timeout)
    except RpcError:
        desk.inline.pop(query.query_id, None)
        raise
    return _bot_results(state, me, bot, query)


def _check_result(result: Any) -> None:
    if not isinstance(result, types.InputBotInlineResult):
        raise bad_request("RESULT_TYPE_INVALID")  # photos, documents, games: no media here
    if not result.id:
        raise bad_request("RESULT_ID_EMPTY")
    message = result.send_message
    if not isinstance(message, types.InputBotInlineMessageText):
        raise bad_request("SEND_MESSAGE_TYPE_INVALID")
    markup = message.reply_markup
    if markup is not None and not isinstance(markup, types.ReplyInlineMarkup):
        raise bad_request("REPLY_MARKUP_INVALID")
    if not message.message.strip():
        raise bad_request("MESSAGE_EMPTY")


@handler(functions.messages.SetInlineBotResultsRequest)
async def set_inline_bot_results(
    cloud: Cloud, caller: Caller, req: functions.messages.SetInlineBotResultsRequest
) -> bool:
    state = state_of(cloud)
    me = state.require_bot(caller)
    query = _awaiting_answer(bot_queries_of(cloud).inline, req.query_id, me)
    if len(req.results) > MAX_RESULTS:
        raise bad_request("RESULTS_TOO_MUCH")
    results: OrderedDict[str, Any] = OrderedDict()
    for r in req.results:
        _check_result(r)
        if r.id in results:
            raise bad_request("RESULT_ID_DUPLICATE")
        results[r.id] = r
    query.results = results
    query.cache_time = req.cache_time
    query.private = bool(req.private)
    query.gallery = bool(req.gallery)
    query.next_offset = req.next_offset or None
    query.switch_pm = req.switch_pm
    query.answered_at = state.clock()
    query.answered.set_result(None)
    return True


@handler(functions.messages.SendInlineBotResultRequest)
async def send_inline_bot_result(
    cloud: Cloud, caller: Caller, req: functions.messages.SendInlineBotResultRequest
) -> types.Updates:
    state = state_of(cloud)
    me = state.require_person(caller)
    receiver = state.resolve_peer(me, req.peer)
    query = bot_queries_of(cloud).inline.get(req.query_id)
    if query is None or query.user_id != me.id or not query.answered.done():
        raise bad_request("QUERY_ID_INVALID")
    result = query.results.get(req.id)
    if result is None:
        raise bad_request("RESULT_ID_INVALID")
    bot = state.user(query.bot_id)
    message = result.send_message
    history = history_of(cloud)
    sent = history.send(
        me,
        receiver,
        message.message,
        entities=message.entities,
        reply_markup=message.reply_markup,
        via_bot=bot,
        reply_to=reply_to_id(req.reply_to),
        random_id=req.random_id,
        silent=bool(req.silent),
        exclude=caller,
    )
    inline = None
    if message.reply_markup is not None:
        inline = InlineMessage(bot.id, me.id, sent.message.id, secrets.randbits(63))
        history.inline_messages[inline.packed_id] = inline
        sent.message.inline_id = inline.packed_id
        if sent.delivered is not None:
            sent.delivered.inline_id = inline.packed_id
    hub = updates_of(cloud)
    if bot.bot_inline_feedback:
        # Only a message with a keyboard can be edited later, so only it gets an id.
        feedback = types.UpdateBotInlineSend(
            user_id=me.id,
            query=query.query,
            id=result.id,
            msg_id=inline.to_tl(DC_ID) if inline is not None else None,
        )
        hub.push(bot.id, feedback, users=[me])
    return hub.envelope(
        me.id,
        [types.UpdateMessageID(id=sent.message.id, random_id=req.random_id), sent.update],
        [receiver, me, bot],
    )


# -- callback buttons -------------------------------------------------------------


def _callback_button(markup: Any, data: bytes | None) -> Any:
    if isinstance(markup, types.ReplyInlineMarkup) and data is not None:
        for row in markup.rows:
            for button in row.buttons:
                kind = getattr(button, "type", None)
                if isinstance(kind, types.InlineButtonTypeCallback) and kind.data == data:
                    return kind
    raise bad_request("DATA_INVALID")


def _chat_instance(state: State, bot: SimUser, a: SimUser, b: SimUser) -> int:
    # Stable per (bot, chat), opaque to clients, as Telegram's chat_instance.
    low, high = sorted((a, b), key=lambda u: u.id)
    return state.access_hash(bot, low) ^ state.access_hash(high, bot)


@handler(functions.messages.GetBotCallbackAnswerRequest)
async def get_bot_callback_answer(
    cloud: Cloud, caller: Caller, req: functions.messages.GetBotCallbackAnswerRequest
) -> types.messages.BotCallbackAnswer:
    state = state_of(cloud)
    me = state.require_person(caller)
    chat = state.resolve_peer(me, req.peer)
    history = history_of(cloud)
    message = chat_message(cloud, me, chat, req.msg_id)
    if req.game:
        raise bad_request("DATA_INVALID")  # no games in the sim
    button = _callback_button(message.reply_markup, req.data)
    if button.requires_password:
        check_password(state, me, req.password)
    desk = bot_queries_of(cloud)
    query_id = desk.new_id()
    update: Any
    if message.via_bot_id is not None:
        inline = history.inline_messages.get(message.inline_id or -1)
        if inline is None:
            raise bad_request("MESSAGE_ID_INVALID")
        bot = state.user(message.via_bot_id)
        update = types.UpdateInlineBotCallbackQuery(
            query_id=query_id,
            user_id=me.id,
            msg_id=inline.to_tl(DC_ID),
            chat_instance=_chat_instance(state, bot, me, chat),
            data=req.data,
        )
    else:
        bot = chat
        if not bot.bot or message.out or message.twin is None:
            raise bad_request("MESSAGE_ID_INVALID")
        update = types.UpdateBotCallbackQuery(
            query_id=query_id,
            user_id=me.id,
            peer=types.PeerUser(me.id),
            msg_id=message.twin[1],
            chat_instance=_chat_instance(state, bot, me, bot),
            data=req.data,
        )
    query = CallbackQuery(query_id, me.id, bot.id, asyncio.get_running_loop().create_future())
    desk.callbacks[query_id] = query
    state.meet(me, bot)
    updates_of(cloud).push(bot.id, update, users=[me])
    try:
        answer = await _wait_for_bot(query.answered, state.bot_response_timeout)
    finally:
        desk.callbacks.pop(query_id, None)
    return types.messages.BotCallbackAnswer(
        cache_time=answer.cache_time,
        alert=answer.alert,
        has_url=bool(answer.url) or None,
        message=answer.message,
        url=answer.url,
    )


@handler(functions.messages.SetBotCallbackAnswerRequest)
async def set_bot_callback_answer(
    cloud: Cloud, caller: Caller, req: functions.messages.SetBotCallbackAnswerRequest
) -> bool:
    me = state_of(cloud).require_bot(caller)
    query = _awaiting_answer(bot_queries_of(cloud).callbacks, req.query_id, me)
    if req.message is not None and len(req.message) > 200:
        raise bad_request("MESSAGE_TOO_LONG")
    query.answered.set_result(req)
    return True


@handler(functions.messages.EditInlineBotMessageRequest)
async def edit_inline_bot_message(
    cloud: Cloud, caller: Caller, req: functions.messages.EditInlineBotMessageRequest
) -> bool:
    state = state_of(cloud)
    me = state.require_bot(caller)
    ref = req.id
    if isinstance(ref, types.InputBotInlineMessageID64):
        key = (ref.owner_id << 32) | ref.id
    elif isinstance(ref, types.InputBotInlineMessageID):
        key = ref.id
    else:
        raise bad_request("MESSAGE_ID_INVALID")
    history = history_of(cloud)
    inline = history.inline_messages.get(key)
    if inline is None or inline.access_hash != ref.access_hash or inline.bot_id != me.id:
        raise bad_request("MESSAGE_ID_INVALID")
    owner = state.user(inline.owner_id)
    message = history.find(owner, inline.msg_id)
    if message is None:
        raise bad_request("MESSAGE_ID_INVALID")
    if req.media is not None:
        raise bad_request("MEDIA_INVALID")
    history.edit(
        owner,
        message,
        text=req.message,
        entities=req.entities,
        reply_markup=req.reply_markup,
        markup_from_bot=True,
    )
    return True


# -- bot commands -----------------------------------------------------------------


@handler(functions.bots.SetBotCommandsRequest)
async def set_bot_commands(
    cloud: Cloud, caller: Caller, req: functions.bots.SetBotCommandsRequest
) -> bool:
    me = state_of(cloud).require_bot(caller)
    for command in req.commands:
        name = command.command
        if (
            not (1 <= len(name) <= 32)
            or not name.replace("_", "").isalnum()
            or name != name.lower()
        ):
            raise bad_request("BOT_COMMAND_INVALID")
        if not command.description or len(command.description) > 256:
            raise bad_request("BOT_COMMAND_DESCRIPTION_INVALID")
    me.bot_commands = list(req.commands)
    return True


@handler(functions.bots.GetBotCommandsRequest)
async def get_bot_commands(
    cloud: Cloud, caller: Caller, req: functions.bots.GetBotCommandsRequest
) -> list[types.BotCommand]:
    return list(state_of(cloud).require_bot(caller).bot_commands)


@handler(functions.bots.ResetBotCommandsRequest)
async def reset_bot_commands(
    cloud: Cloud, caller: Caller, req: functions.bots.ResetBotCommandsRequest
) -> bool:
    state_of(cloud).require_bot(caller).bot_commands = []
    return True

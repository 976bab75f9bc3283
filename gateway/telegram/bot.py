"""The companion bot: the buttons the gateway account cannot attach itself.

Telegram lets only bots attach inline keyboards, and only users make calls.
So the gateway account sends button messages *via* the bot's inline mode
(https://core.telegram.org/bots/inline): it asks the bot an inline query whose
text is a short key, the bot answers with one article built from what
:class:`InlinePayloads` holds under that key, and the account sends that
result into its chat with the member ("Gateway via @bot").  Presses on those
buttons reach the *bot* as ``updateInlineBotCallbackQuery``; the bot hands
them to the gateway (:class:`BotPress`).

The bot runs as a second Telethon client in the same process
(:class:`CompanionBot`, a :class:`~gateway.telegram.account.TelegramConnection`).
It answers inline queries only from the gateway account, so nobody else can
make it render the gateway's messages.  In its own chat it takes ``/start``
(with an optional deep-link payload, ``t.me/<bot>?start=<payload>``) and
``/softphone``, and reports them as :class:`BotCommand`.

Callback data is ``<key>|<data>`` (at most 64 bytes, Telegram's limit), so a
press names the message it came from even when Telegram gives the bot only
an opaque inline message id.  With inline feedback on (@BotFather →
/setinlinefeedback) the bot also learns each sent message's inline id at once
(``updateBotInlineSend``), which lets it edit buttons of messages nobody
pressed yet.  URL buttons (``(label, data, url)``) open a link
(``KeyboardButtonUrl``) and never come back as presses.
"""

from __future__ import annotations

import asyncio
import logging
import secrets
from collections import OrderedDict
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from telethon import Button as TgButton
from telethon import errors as tg
from telethon import events
from telethon.tl import custom, functions, types

from gateway.config import Config, ConfigError, TelegramSettings
from gateway.logs import register_secret
from gateway.telegram.account import AccountUser, ConnectionState, TelegramConnection
from gateway.telegram.errors import NotReady, describe
from gateway.telegram.listeners import Listener, Listeners

__all__ = [
    "BOT_SETUP",
    "CALLBACK_DATA_MAX",
    "BotCommand",
    "BotPress",
    "CompanionBot",
    "InlinePayloads",
    "KeyButton",
    "Payload",
    "pack_data",
    "unpack_data",
    "url_of",
]

log = logging.getLogger(__name__)

BOT_SETUP = (
    "Create a bot with @BotFather (/newbot) and paste its token here. Then, in @BotFather:"
    " /setinline (any placeholder) so the gateway can send buttons through it, and"
    " /setinlinefeedback → Enabled (100%) so it can update those buttons later."
)
CALLBACK_DATA_MAX = 64  # bytes, Telegram's limit for callback data
KEY_BYTES = 6  # 8 url-safe characters
PAYLOAD_LIMIT = 2000  # messages remembered for rendering, editing and presses
FEEDBACK_WAIT = 1.0  # seconds an edit waits for the inline message id to arrive

# One button: (label, data), or (label, data, url) for a button that opens *url*
# (its data is then unused and never comes back as a press).
KeyButton = tuple[str, str] | tuple[str, str, str]
Keyboard = Sequence[Sequence[KeyButton]]  # rows of buttons


def url_of(button: KeyButton) -> str:
    """The link a button opens ("" for a callback button)."""
    return button[2] if len(button) == 3 else ""


def pack_data(key: str, data: str) -> bytes:
    """Callback data ``key|data``.  **Raises** ``ValueError`` beyond 64 bytes."""
    packed = f"{key}|{data}".encode()
    if len(packed) > CALLBACK_DATA_MAX:
        raise ValueError(f"button data {data!r} is too long ({len(packed)} > 64 bytes with key)")
    return packed


def unpack_data(raw: bytes) -> tuple[str, str]:
    """``(key, data)`` from callback data; key ``""`` for data we did not pack."""
    text = raw.decode("utf-8", errors="replace")
    key, sep, data = text.partition("|")
    return (key, data) if sep else ("", text)


@dataclass
class Payload:
    """One message with buttons: what the bot renders and what edits and presses need."""

    key: str
    text: str
    keyboard: Keyboard
    member_id: int
    chat: Literal["gateway", "bot"] = "gateway"
    message_id: int | None = None  # in the gateway's (or the bot's) chat with the member
    inline_id: Any = None  # InputBotInlineMessageID(64), once Telegram told the bot
    _inline_known: asyncio.Event = field(default_factory=asyncio.Event, repr=False)

    def learn_inline_id(self, inline_id: Any) -> None:
        self.inline_id = inline_id
        self._inline_known.set()

    async def wait_inline_id(self, timeout: float) -> Any:
        """The inline message id, waiting up to *timeout* for inline feedback."""
        if self.inline_id is None and timeout > 0:
            try:
                async with asyncio.timeout(timeout):
                    await self._inline_known.wait()
            except TimeoutError:
                pass
        return self.inline_id


class InlinePayloads:
    """The messages the bot may render, by short random key (least recently used dropped)."""

    def __init__(self, limit: int = PAYLOAD_LIMIT) -> None:
        self._items: OrderedDict[str, Payload] = OrderedDict()
        self._limit = limit

    def put(
        self,
        text: str,
        keyboard: Keyboard,
        member_id: int,
        chat: Literal["gateway", "bot"] = "gateway",
    ) -> Payload:
        key = secrets.token_urlsafe(KEY_BYTES)
        while key in self._items or "|" in key:
            key = secrets.token_urlsafe(KEY_BYTES)
        for row in keyboard:
            for button in row:
                if not url_of(button):
                    pack_data(key, button[1])  # fail now, not when the bot renders it
        payload = Payload(key, text, keyboard, member_id, chat)
        self._items[key] = payload
        while len(self._items) > self._limit:
            self._items.popitem(last=False)
        return payload

    def get(self, key: str) -> Payload | None:
        payload = self._items.get(key)
        if payload is not None:
            self._items.move_to_end(key)
        return payload

    def forget(self, key: str) -> None:
        self._items.pop(key, None)

    def __len__(self) -> int:
        return len(self._items)


@dataclass(frozen=True)
class BotPress:
    """A button press the bot received."""

    user_id: int
    user: AccountUser | None  # the presser as the bot sees them (name, username)
    key: str  # the payload key ("" for data we did not pack)
    data: str
    payload: Payload | None  # None after a restart or for an unknown key
    inline: bool  # on a message sent via the bot (else in the bot's own chat)


@dataclass(frozen=True)
class BotCommand:
    """``/start [payload]`` or ``/softphone`` in the bot's own chat."""

    user_id: int
    user: AccountUser | None
    command: Literal["start", "softphone"]
    payload: str = ""


BotEvent = BotPress | BotCommand


def buttons_of(payload_key: str, keyboard: Keyboard) -> list[list[Any]] | None:
    """Telethon inline buttons for *keyboard* (``None`` for no keyboard)."""
    rows = [[_tg_button(payload_key, button) for button in row] for row in keyboard if row]
    return rows or None


def _tg_button(payload_key: str, button: KeyButton) -> Any:
    url = url_of(button)
    if url:
        return TgButton.url(button[0], url)
    return TgButton.inline(button[0], pack_data(payload_key, button[1]))


class CompanionBot(TelegramConnection):
    """The optional bot (``telegram.bot_token``), running beside the account."""

    kind = "telegram bot"

    def __init__(
        self,
        settings: TelegramSettings,
        session_path: Path,
        *,
        payloads: InlinePayloads | None = None,
        **options: Any,
    ) -> None:
        """*options* are :class:`TelegramConnection`'s (``server_key``, ``backoff``...)."""
        token = settings.bot_token.reveal()
        if not token:
            raise ConfigError("telegram.bot_token: required for the companion bot")
        register_secret(token)
        super().__init__(settings, session_path, **options)
        self._token = settings.bot_token
        self.bot_id = int(token.partition(":")[0])
        self.payloads = payloads if payloads is not None else InlinePayloads()
        # Who may use the bot's inline mode: the gateway account's user id.
        self.gateway_user_id: Callable[[], int | None] = lambda: None
        self._bot_listeners: Listeners[BotEvent] = Listeners("telegram bot")
        # Set once an updateBotInlineSend arrived: inline feedback is on, so an
        # edit may wait a moment for the id of a message just sent.
        self.feedback_seen = False
        # The bot's inline placeholder; None = inline mode off (/setinline at @BotFather).
        self.inline_placeholder: str | None = None
        self._handlers_on: Any = None
        self.on_client(self._add_handlers)

    @classmethod
    def from_config(cls, config: Config, **options: Any) -> CompanionBot | None:
        """The bot of *config*, or ``None`` when no ``telegram.bot_token`` is set."""
        if not config.telegram.bot_token:
            return None
        return cls(
            config.telegram,
            config.telegram_bot_session,
            server_key=config.telegram_server_key,
            **options,
        )

    @property
    def username(self) -> str:
        """The bot's @username (without @), once signed in; ``""`` before."""
        return self.user.username if self.user else ""

    @property
    def inline(self) -> bool:
        """True when the bot's inline mode is on (needed to send buttons), once signed in."""
        return self.inline_placeholder is not None

    def listen(self, listener: Listener[BotEvent]) -> Callable[[], None]:
        """Hear every :class:`BotPress` and :class:`BotCommand`; returns the unsubscribe."""
        return self._bot_listeners.add(listener)

    # -- sign-in ---------------------------------------------------------------------

    async def _authorize(self, client: Any) -> None:
        me = await client.get_me()
        if me is not None and me.id != self.bot_id:
            # The token changed to another bot: this session belongs to the old one.
            raise tg.AuthKeyNotFound()
        if me is None:
            me = await client.sign_in(bot_token=self._token.reveal())
        self.inline_placeholder = getattr(me, "bot_inline_placeholder", None)
        self._user = AccountUser.from_user(me)
        self._online_state = ConnectionState.CONNECTED

    # -- sending (used by the Messenger) --------------------------------------------

    async def edit_inline(self, payload: Payload, text: str, keyboard: Keyboard) -> bool:
        """Edit a message sent via the bot; ``False`` when its inline id is unknown."""
        inline_id = await payload.wait_inline_id(FEEDBACK_WAIT if self.feedback_seen else 0.0)
        if inline_id is None:
            return False
        try:
            await self.client.edit_message(
                inline_id, text, buttons=buttons_of(payload.key, keyboard), link_preview=False
            )
        except tg.MessageNotModifiedError:
            pass
        payload.text, payload.keyboard = text, keyboard
        return True

    async def send_own(self, user_id: int, payload: Payload) -> int:
        """Send *payload* in the bot's own chat with *user_id*; returns the message id."""
        peer = await self.client.get_input_entity(user_id)
        message = await self.client.send_message(
            peer,
            payload.text,
            buttons=buttons_of(payload.key, payload.keyboard),
            link_preview=False,
        )
        payload.message_id = int(message.id)
        return payload.message_id

    async def edit_own(
        self, user_id: int, message_id: int, text: str, key: str, kb: Keyboard
    ) -> None:
        peer = await self.client.get_input_entity(user_id)
        try:
            await self.client.edit_message(
                peer, message_id, text, buttons=buttons_of(key, kb), link_preview=False
            )
        except tg.MessageNotModifiedError:
            pass

    async def delete_own(self, user_id: int, message_id: int) -> None:
        peer = await self.client.get_input_entity(user_id)
        await self.client.delete_messages(peer, [message_id], revoke=True)

    # -- updates ---------------------------------------------------------------------

    def _add_handlers(self, client: Any) -> None:
        client.add_event_handler(self._on_inline_query, events.Raw(types.UpdateBotInlineQuery))
        client.add_event_handler(self._on_inline_sent, events.Raw(types.UpdateBotInlineSend))
        client.add_event_handler(
            self._on_callback,
            events.Raw((types.UpdateBotCallbackQuery, types.UpdateInlineBotCallbackQuery)),
        )
        client.add_event_handler(
            self._on_message, events.NewMessage(incoming=True, func=lambda e: e.is_private)
        )

    async def _on_inline_query(self, update: Any) -> None:
        client = self.client
        gateway = self.gateway_user_id()
        payload = self.payloads.get(update.query.strip())
        results: list[Any] = []
        if gateway is not None and update.user_id == gateway and payload is not None:
            builder = custom.InlineBuilder(client)
            results.append(
                await builder.article(
                    title=payload.text.splitlines()[0][:64] if payload.text else "Message",
                    id=payload.key,
                    text=payload.text,
                    buttons=buttons_of(payload.key, payload.keyboard),
                    link_preview=False,
                )
            )
        elif update.user_id != gateway:
            log.info("telegram bot: inline query from a stranger ignored")
        try:
            # private + no cache: each query is answered afresh, for this user only.
            await client(
                functions.messages.SetInlineBotResultsRequest(
                    query_id=update.query_id, results=results, cache_time=0, private=True
                )
            )
        except tg.RPCError as exc:
            log.warning("telegram bot: cannot answer an inline query: %s", describe(exc))

    async def _on_inline_sent(self, update: Any) -> None:
        self.feedback_seen = True
        payload = self.payloads.get(update.id)
        if payload is not None and update.msg_id is not None:
            payload.learn_inline_id(update.msg_id)

    async def _on_callback(self, update: Any) -> None:
        inline = isinstance(update, types.UpdateInlineBotCallbackQuery)
        key, data = unpack_data(update.data or b"")
        payload = self.payloads.get(key) if key else None
        if payload is not None and inline and payload.inline_id is None:
            payload.learn_inline_id(update.msg_id)
        try:
            # Stop the spinner on the member's button at once; the effect follows.
            await self.client(
                functions.messages.SetBotCallbackAnswerRequest(
                    query_id=update.query_id, cache_time=0
                )
            )
        except tg.RPCError as exc:
            log.info("telegram bot: callback answer failed: %s", describe(exc))
        press = BotPress(
            user_id=int(update.user_id),
            user=_user_of(update, int(update.user_id)),
            key=key,
            data=data,
            payload=payload,
            inline=inline,
        )
        await self._bot_listeners.emit(press)

    async def _on_message(self, event: Any) -> None:
        text = (event.raw_text or "").strip()
        if not text.startswith("/"):
            return
        word, _, rest = text.partition(" ")
        command = word[1:].split("@", 1)[0].lower()
        if command not in ("start", "softphone"):
            return
        sender = await event.get_sender()
        user = AccountUser.from_user(sender) if isinstance(sender, types.User) else None
        await self._bot_listeners.emit(
            BotCommand(
                user_id=int(event.sender_id),
                user=user,
                command="start" if command == "start" else "softphone",
                payload=rest.strip(),
            )
        )

    async def reply(self, user_id: int, text: str) -> None:
        """A plain message in the bot's chat with *user_id* (e.g. the /start greeting)."""
        if self._client is None:
            raise NotReady("The companion bot is not running.")
        peer = await self.client.get_input_entity(user_id)
        await self.client.send_message(peer, text, link_preview=False)


def _user_of(update: Any, user_id: int) -> AccountUser | None:
    entities = getattr(update, "_entities", None) or {}
    user = entities.get(user_id)
    return AccountUser.from_user(user) if isinstance(user, types.User) else None

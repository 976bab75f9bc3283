"""Messages between the gateway account and the household: the interface the call layer uses.

Nothing here exposes Telethon.  The call layer (``gateway/calls``) sees
:class:`Member`, :class:`Button`, :class:`OutgoingMessage`, the handles of
sent messages (:class:`MessageRef`) and inbound events (:data:`InboundEvent`):
:class:`TextFromMember`, :class:`ButtonPress`, :class:`MessageEdited`,
:class:`MessageDeleted`, :class:`StartCommand`, :class:`SoftphoneCommand`.

:class:`Messenger` sends with buttons through the companion bot's inline mode
when a bot is configured and connected (see :mod:`gateway.telegram.bot`), and
as plain text otherwise: the text then lists the command of each button
(``/answer — Answer``) plus the message's own hint ("Send digits to dial
them"), and the member's replies arrive as :class:`TextFromMember`.
``/start`` and ``/softphone`` work both in the bot's chat and as text to the
gateway account.
"""

from __future__ import annotations

import asyncio
import logging
from collections import OrderedDict
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from typing import Any, Literal

from telethon import errors as tg
from telethon import events
from telethon.tl import functions, types

from gateway.telegram.account import AccountUser, ConnectionState, TelegramAccount
from gateway.telegram.bot import (
    BotCommand,
    BotEvent,
    BotPress,
    CompanionBot,
    KeyButton,
    Payload,
    url_of,
)
from gateway.telegram.errors import TelegramError, describe, wrap
from gateway.telegram.listeners import Listener, Listeners

__all__ = [
    "Button",
    "ButtonPress",
    "InboundEvent",
    "Keyboard",
    "Member",
    "MessageDeleted",
    "MessageEdited",
    "MessageRef",
    "Messenger",
    "OutgoingMessage",
    "SoftphoneCommand",
    "StartCommand",
    "TextFromMember",
    "render_plain",
]

log = logging.getLogger(__name__)

SERVICE_USER_ID = 777000  # "Telegram": login codes and notices, never a member
SEND_TIMEOUT = 30.0
TRACKED_MESSAGES = 5000  # message id -> member, to tell whose chat a deletion was in
TRACKED_MEMBERS = 1000  # recent senders, for names and access hashes of bot events
QUEUE_SIZE = 1000


@dataclass(frozen=True)
class Member:
    """A household member as the gateway account knows them.

    *access_hash* is the gateway account's hash for this user (0 = the
    account has not met them yet: they must write to it once).
    """

    user_id: int
    access_hash: int = 0
    name: str = ""
    username: str = ""


@dataclass(frozen=True)
class Button:
    """One button.  *data* comes back in :class:`ButtonPress`; at most 55 bytes.

    *command* is the text equivalent without a bot (``"/hangup"``); buttons
    without one (a keypad's digits) are covered by the message's *plain_hint*.
    With *url* (``https://...``) the button opens that link instead (no press
    comes back; *data* is unused); without a bot the text lists the link.
    """

    label: str
    data: str
    command: str = ""
    url: str = ""


Keyboard = tuple[tuple[Button, ...], ...]


@dataclass(frozen=True)
class OutgoingMessage:
    """Text plus rows of buttons; *plain_hint* replaces the buttons when sent without a bot."""

    text: str
    keyboard: Sequence[Sequence[Button]] = ()
    plain_hint: str = ""
    silent: bool = False  # no notification sound

    @property
    def rows(self) -> Keyboard:
        return tuple(tuple(row) for row in self.keyboard if row)


@dataclass(frozen=True)
class MessageRef:
    """A sent message: pass it to :meth:`Messenger.edit` and :meth:`Messenger.delete`."""

    member: Member
    message_id: int
    chat: Literal["gateway", "bot"] = "gateway"  # the gateway account's chat or the bot's
    via_bot: bool = False  # sent with buttons through the bot's inline mode
    key: str = ""  # the bot's payload key ("" for plain text)
    text: str = ""
    keyboard: Keyboard = ()
    plain_hint: str = ""


@dataclass(frozen=True)
class TextFromMember:
    """A text message to the gateway account (a number, digits, a command)."""

    member: Member
    text: str
    message_id: int

    @property
    def command(self) -> tuple[str, str] | None:
        """``("transfer", "123")`` for ``/transfer 123``; ``None`` for other text."""
        text = self.text.strip()
        if not text.startswith("/") or len(text) == 1:
            return None
        word, _, rest = text.partition(" ")
        return word[1:].split("@", 1)[0].lower(), rest.strip()


@dataclass(frozen=True)
class ButtonPress:
    """A member pressed a button; *ref* is ``None`` when the message is no longer known."""

    member: Member
    data: str
    ref: MessageRef | None


@dataclass(frozen=True)
class MessageEdited:
    """A member edited a message they had sent to the gateway account."""

    member: Member
    message_id: int
    text: str


@dataclass(frozen=True)
class MessageDeleted:
    """Messages deleted in a chat of the gateway account (*member* when known)."""

    message_ids: tuple[int, ...]
    member: Member | None


@dataclass(frozen=True)
class StartCommand:
    """``/start [payload]`` (payload = the deep link's ``start=`` value, "" without one)."""

    member: Member
    payload: str = ""
    via: Literal["bot", "gateway"] = "bot"


@dataclass(frozen=True)
class SoftphoneCommand:
    """``/softphone``: the member wants their settings."""

    member: Member
    via: Literal["bot", "gateway"] = "bot"


InboundEvent = (
    TextFromMember | ButtonPress | MessageEdited | MessageDeleted | StartCommand | SoftphoneCommand
)
Subscriber = Listener[InboundEvent]


def render_plain(text: str, keyboard: Keyboard, hint: str = "") -> str:
    """The text a member gets without a bot: the message, the hint, the commands, the links.

    The hint stands in for buttons, so it is left out when there are none.
    """
    lines = [text]
    if hint and keyboard:
        lines += ["", hint]
    seen: set[str] = set()
    commands: list[str] = []
    for row in keyboard:
        for button in row:
            if button.command and button.command not in seen:
                seen.add(button.command)
                same = button.label.strip("/").lower() == button.command.strip("/").lower()
                commands.append(button.command if same else f"{button.command} — {button.label}")
    if commands:
        lines += ["", "Reply with:", *commands]
    links = [f"{b.label}: {b.url}" for row in keyboard for b in row if b.url]
    if links:
        lines += ["", *links]
    return "\n".join(lines)


def _pairs(keyboard: Keyboard) -> tuple[tuple[KeyButton, ...], ...]:
    """The bot's form of *keyboard*: (label, data), or (label, data, url) for links."""
    return tuple(
        tuple((b.label, b.data, b.url) if b.url else (b.label, b.data) for b in row)
        for row in keyboard
    )


@dataclass
class _Tracked:
    ids: OrderedDict[int, int] = field(default_factory=OrderedDict)  # message id -> user id

    def add(self, message_id: int, user_id: int) -> None:
        self.ids[message_id] = user_id
        while len(self.ids) > TRACKED_MESSAGES:
            self.ids.popitem(last=False)


class Messenger:
    """Send to members and hear from them, with or without the companion bot.

    Call :meth:`start` once (it registers the update handlers on the
    account's client, and again on every new client after a log-out).
    """

    def __init__(self, account: TelegramAccount, bot: CompanionBot | None = None) -> None:
        self.account = account
        self.bot = bot
        self._subscribers: Listeners[InboundEvent] = Listeners("telegram messages")
        self._tracked = _Tracked()
        self._bot_peer: tuple[str, Any] | None = None
        self._members: OrderedDict[int, Member] = OrderedDict()  # recent senders
        self._unhook: list[Callable[[], None]] = []
        self._unhook_bot: Callable[[], None] | None = None
        if bot is not None:
            self._trust(bot)

    # -- life ------------------------------------------------------------------------

    def start(self) -> None:
        """Listen for updates on the account (and the bot)."""
        if self._unhook:
            return
        self._unhook.append(self.account.on_client(self._add_handlers))
        if self.bot is not None:
            self._unhook_bot = self.bot.listen(self._on_bot_event)

    def stop(self) -> None:
        for undo in self._unhook:
            undo()
        self._unhook.clear()
        if self._unhook_bot is not None:
            self._unhook_bot()
            self._unhook_bot = None

    def use_bot(self, bot: CompanionBot | None) -> None:
        """Send buttons through *bot* and hear its presses from now on (a new bot token)."""
        started = bool(self._unhook)
        if self._unhook_bot is not None:
            self._unhook_bot()
            self._unhook_bot = None
        self.bot = bot
        self._bot_peer = None  # the old bot's peer is no use for the new one
        if bot is not None:
            self._trust(bot)
            if started:
                self._unhook_bot = bot.listen(self._on_bot_event)

    def _trust(self, bot: CompanionBot) -> None:
        # The bot answers inline queries from the gateway account only.
        bot.gateway_user_id = lambda: self.account.user.user_id if self.account.user else None

    @property
    def bot_ready(self) -> bool:
        """True when button messages go through the bot (configured, connected, known)."""
        bot = self.bot
        return bot is not None and bot.state is ConnectionState.CONNECTED and bool(bot.username)

    # -- subscribing -----------------------------------------------------------------

    def subscribe(self, subscriber: Subscriber) -> Callable[[], None]:
        """Call *subscriber(event)* for every inbound event (awaited if it returns one)."""
        return self._subscribers.add(subscriber)

    def queue(self, maxsize: int = QUEUE_SIZE) -> asyncio.Queue[InboundEvent]:
        """An ``asyncio.Queue`` that receives every inbound event (oldest dropped when full)."""
        q: asyncio.Queue[InboundEvent] = asyncio.Queue(maxsize)

        def put(event: InboundEvent) -> None:
            if q.full():
                log.warning("telegram messages: event queue full; dropping the oldest event")
                q.get_nowait()
            q.put_nowait(event)

        self.subscribe(put)
        return q

    # -- sending ---------------------------------------------------------------------

    async def send(self, member: Member, message: OutgoingMessage) -> MessageRef:
        """Send *message* to *member* in the gateway account's chat with them.

        With buttons and a ready bot, the message goes via the bot (buttons
        attached); otherwise as plain text listing the commands.
        **Raises** :class:`~gateway.telegram.errors.TelegramError`.
        """
        rows = message.rows
        if rows and self.bot_ready:
            try:
                return await self._send_via_bot(member, message, rows)
            except Exception as exc:  # the bot path is a nicety; the text path must still work
                log.warning(
                    "telegram messages: via-bot send failed, sending text: %s", describe(exc)
                )
        return await self._send_plain(member, message, rows)

    async def _send_plain(
        self, member: Member, message: OutgoingMessage, rows: Keyboard
    ) -> MessageRef:
        text = render_plain(message.text, rows, message.plain_hint)
        client = self.account.client
        try:
            async with asyncio.timeout(SEND_TIMEOUT):
                peer = await self._peer(member)
                sent = await client.send_message(
                    peer, text, parse_mode=None, link_preview=False, silent=message.silent
                )
        except Exception as exc:
            raise self._failed(exc) from exc
        self._tracked.add(int(sent.id), member.user_id)
        return MessageRef(
            member,
            int(sent.id),
            text=message.text,
            keyboard=rows,
            plain_hint=message.plain_hint,
        )

    async def _send_via_bot(
        self, member: Member, message: OutgoingMessage, rows: Keyboard
    ) -> MessageRef:
        assert self.bot is not None
        client = self.account.client
        payload = self.bot.payloads.put(message.text, _pairs(rows), member.user_id)
        try:
            async with asyncio.timeout(SEND_TIMEOUT):
                peer = await self._peer(member)
                results = await client.inline_query(
                    await self._bot_input(), payload.key, entity=peer
                )
                if not results:
                    raise TelegramError("The companion bot gave no result for the message.")
                sent = await results[0].click(peer, silent=message.silent)
        except BaseException:
            self.bot.payloads.forget(payload.key)
            raise
        if sent is None:
            raise TelegramError("Telegram did not confirm the message sent via the bot.")
        payload.message_id = int(sent.id)
        self._tracked.add(int(sent.id), member.user_id)
        return MessageRef(
            member,
            int(sent.id),
            via_bot=True,
            key=payload.key,
            text=message.text,
            keyboard=rows,
            plain_hint=message.plain_hint,
        )

    async def send_from_bot(self, member: Member, message: OutgoingMessage) -> MessageRef:
        """Send *message* in the **bot's** chat with *member* (settings, invitations).

        The member must have started the bot.  **Raises** :class:`TelegramError`.
        """
        bot = self.bot
        if bot is None or not self.bot_ready:
            raise TelegramError("The companion bot is not configured or not connected.")
        rows = message.rows
        payload = bot.payloads.put(message.text, _pairs(rows), member.user_id, chat="bot")
        try:
            async with asyncio.timeout(SEND_TIMEOUT):
                message_id = await bot.send_own(member.user_id, payload)
        except Exception as exc:
            bot.payloads.forget(payload.key)
            raise wrap(exc) from exc
        return MessageRef(
            member,
            message_id,
            chat="bot",
            key=payload.key,
            text=message.text,
            keyboard=rows,
            plain_hint=message.plain_hint,
        )

    async def edit(
        self,
        ref: MessageRef,
        *,
        text: str | None = None,
        keyboard: Sequence[Sequence[Button]] | None = None,
        plain_hint: str | None = None,
    ) -> MessageRef:
        """Change a sent message's text and/or buttons; returns the updated handle.

        *keyboard* ``None`` keeps the buttons, ``()`` removes them; new buttons
        drop the old *plain_hint* unless one is given.  A message
        sent via the bot whose inline id the bot never learnt (no inline
        feedback, nobody pressed) cannot have its buttons changed in place:
        it is then deleted and sent again (the returned ref is the new one).
        """
        new_text = ref.text if text is None else text
        rows = ref.keyboard if keyboard is None else tuple(tuple(r) for r in keyboard if r)
        if plain_hint is None:
            plain_hint = ref.plain_hint if keyboard is None else ""
        updated = replace(ref, text=new_text, keyboard=rows, plain_hint=plain_hint)
        try:
            async with asyncio.timeout(SEND_TIMEOUT):
                if ref.chat == "bot":
                    bot = self._require_bot()
                    await bot.edit_own(
                        ref.member.user_id, ref.message_id, new_text, ref.key, _pairs(rows)
                    )
                    self._keep_payload(ref, new_text, rows)
                    return updated
                if ref.via_bot and self.bot is not None:
                    payload = self.bot.payloads.get(ref.key)
                    if payload is not None and await self.bot.edit_inline(
                        payload, new_text, _pairs(rows)
                    ):
                        return updated
                    # Only the bot may edit a via-bot message, and it does not know
                    # this one's inline id: replace the message instead.
                    await self.delete(ref)
                    return await self.send(
                        ref.member, OutgoingMessage(new_text, rows, plain_hint, silent=True)
                    )
                await self._edit_own(ref, render_plain(new_text, rows, plain_hint))
                return updated
        except TelegramError:
            raise
        except Exception as exc:
            raise self._failed(exc) from exc

    async def _edit_own(self, ref: MessageRef, text: str) -> None:
        client = self.account.client
        try:
            await client.edit_message(
                await self._peer(ref.member),
                ref.message_id,
                text,
                parse_mode=None,
                link_preview=False,
            )
        except tg.MessageNotModifiedError:
            pass

    def _keep_payload(self, ref: MessageRef, text: str, rows: Keyboard) -> None:
        if self.bot is not None and (payload := self.bot.payloads.get(ref.key)) is not None:
            payload.text, payload.keyboard = text, _pairs(rows)

    async def delete(self, ref: MessageRef) -> None:
        """Delete a sent message for both sides.  **Raises** :class:`TelegramError`."""
        try:
            async with asyncio.timeout(SEND_TIMEOUT):
                if ref.chat == "bot":
                    await self._require_bot().delete_own(ref.member.user_id, ref.message_id)
                else:
                    client = self.account.client
                    await client.delete_messages(
                        await self._peer(ref.member), [ref.message_id], revoke=True
                    )
        except Exception as exc:
            raise self._failed(exc) from exc
        if self.bot is not None and ref.key:
            self.bot.payloads.forget(ref.key)

    def _require_bot(self) -> CompanionBot:
        if self.bot is None:
            raise TelegramError("No companion bot is configured.")
        return self.bot

    def _failed(self, exc: BaseException) -> TelegramError:
        self.account.note_error(exc)
        return wrap(exc)

    async def _peer(self, member: Member) -> Any:
        if member.access_hash:
            return self.account.input_peer(member.user_id, member.access_hash)
        try:
            return await self.account.client.get_input_entity(member.user_id)
        except ValueError:
            raise TelegramError(
                f"The gateway account does not know {member.name or member.user_id} yet:"
                " they need to send it a message first."
            ) from None

    async def introduce(self, member: Member) -> Member:
        """*member* with the gateway account's access hash, when one can be had.

        The account's session knows them if they wrote to it; otherwise their
        @username is resolved through the account (``contacts.resolveUsername``),
        after which it can write to and call them without a message from them
        first.  Best effort: *member* comes back unchanged (``access_hash`` 0)
        when neither works (no username, Telegram unreachable).
        """
        if member.access_hash:
            return member
        try:
            client = self.account.client
            async with asyncio.timeout(SEND_TIMEOUT):
                try:
                    peer = await client.get_input_entity(member.user_id)
                    access_hash = int(getattr(peer, "access_hash", 0) or 0)
                except (ValueError, TypeError):
                    access_hash = 0
                if not access_hash and member.username:
                    # Telethon files the resolved user in the session as well.
                    found = await client(functions.contacts.ResolveUsernameRequest(member.username))
                    access_hash = next(
                        (
                            int(u.access_hash or 0)
                            for u in found.users
                            if isinstance(u, types.User) and u.id == member.user_id
                        ),
                        0,  # the username now belongs to someone else
                    )
        except Exception as exc:
            self.account.note_error(exc)
            log.info(
                "telegram messages: cannot look up %s: %s",
                member.name or member.user_id,
                describe(exc),
            )
            return member
        return replace(member, access_hash=access_hash) if access_hash else member

    async def _bot_input(self) -> Any:
        assert self.bot is not None
        username = self.bot.username
        if self._bot_peer is None or self._bot_peer[0] != username:
            self._bot_peer = (username, await self.account.client.get_input_entity(username))
        return self._bot_peer[1]

    # -- receiving -------------------------------------------------------------------

    def _add_handlers(self, client: Any) -> None:
        self._bot_peer = None  # access hashes are per account: resolve the bot again
        client.add_event_handler(self._on_new_message, events.NewMessage(incoming=True))
        client.add_event_handler(self._on_edited, events.MessageEdited(incoming=True))
        client.add_event_handler(self._on_deleted, events.MessageDeleted())

    async def _member_of(self, event: Any) -> Member | None:
        """The sender of a private incoming message, if it can be a member."""
        if not event.is_private:
            return None
        sender = await event.get_sender()
        if not isinstance(sender, types.User) or sender.bot or sender.is_self:
            return None
        if sender.id == SERVICE_USER_ID:
            return None
        member = Member(
            user_id=int(sender.id),
            access_hash=int(sender.access_hash or 0),
            name=AccountUser.from_user(sender).name,
            username=sender.username or "",
        )
        self._members[member.user_id] = member
        self._members.move_to_end(member.user_id)
        while len(self._members) > TRACKED_MEMBERS:
            self._members.popitem(last=False)
        return member

    async def _on_new_message(self, event: Any) -> None:
        member = await self._member_of(event)
        if member is None:
            return
        self._tracked.add(int(event.id), member.user_id)
        text = event.raw_text or ""
        incoming = TextFromMember(member, text, int(event.id))
        command = incoming.command
        if command is not None and command[0] == "start":
            await self._subscribers.emit(StartCommand(member, command[1], via="gateway"))
        elif command is not None and command[0] == "softphone":
            await self._subscribers.emit(SoftphoneCommand(member, via="gateway"))
        else:
            await self._subscribers.emit(incoming)

    async def _on_edited(self, event: Any) -> None:
        member = await self._member_of(event)
        if member is not None:
            await self._subscribers.emit(MessageEdited(member, int(event.id), event.raw_text or ""))

    async def _on_deleted(self, event: Any) -> None:
        if getattr(event, "chat_id", None) is not None and not event.is_private:
            return  # a channel's deletion: not one of the gateway's chats with members
        ids = tuple(int(i) for i in event.deleted_ids)
        owners = {self._tracked.ids.get(i) for i in ids} - {None}
        member = None
        if len(owners) == 1:
            user_id = owners.pop()
            assert user_id is not None
            member = self._members.get(user_id) or Member(user_id)
        await self._subscribers.emit(MessageDeleted(ids, member))

    async def _on_bot_event(self, event: BotEvent) -> None:
        member = await self._member_for(event.user_id, event.user)
        if isinstance(event, BotPress):
            await self._subscribers.emit(
                ButtonPress(member, event.data, self._ref_of(event.payload, member))
            )
        elif isinstance(event, BotCommand) and event.command == "softphone":
            await self._subscribers.emit(SoftphoneCommand(member, via="bot"))
        elif isinstance(event, BotCommand):
            if not event.payload:
                await self._greet(event.user_id)
            await self._subscribers.emit(StartCommand(member, event.payload, via="bot"))

    async def _greet(self, user_id: int) -> None:
        bot = self.bot
        gateway = self.account.user
        if bot is None:
            return
        who = gateway.name if gateway else "the gateway account"
        handle = f" (@{gateway.username})" if gateway and gateway.username else ""
        try:
            await bot.reply(
                user_id,
                f"Hello! I carry the buttons of the Linegram gateway {who}{handle}. Calls and"
                f" phone numbers go to {who} directly. /softphone shows your settings.",
            )
        except Exception as exc:
            log.info("telegram bot: greeting failed: %s", describe(exc))

    async def _member_for(self, user_id: int, seen: AccountUser | None) -> Member:
        """A presser or bot user as the *gateway account* knows them (its access hash)."""
        known = self._members.get(user_id)
        name = seen.name if seen else (known.name if known else "")
        username = seen.username if seen else (known.username if known else "")
        access_hash = known.access_hash if known else 0
        if not access_hash:
            try:
                peer = await self.account.client.get_input_entity(user_id)
                access_hash = int(getattr(peer, "access_hash", 0) or 0)
            except (ValueError, TypeError, tg.RPCError, TelegramError):
                access_hash = 0
        return Member(user_id, access_hash, name, username)

    def _ref_of(self, payload: Payload | None, member: Member) -> MessageRef | None:
        if payload is None or payload.message_id is None:
            return None
        owner = self._members.get(payload.member_id)
        if owner is None:
            owner = member if member.user_id == payload.member_id else Member(payload.member_id)
        rows = tuple(
            tuple(Button(b[0], b[1], url=url_of(b)) for b in row) for row in payload.keyboard
        )
        return MessageRef(
            owner,
            payload.message_id,
            chat=payload.chat,
            via_bot=payload.chat == "gateway",
            key=payload.key,
            text=payload.text,
            keyboard=rows,
        )

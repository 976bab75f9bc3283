"""Private-chat message boxes: each account's own message ids, copies and read marks.

As in Telegram, a private message exists twice, once in each party's box with
that box's next id (so the same message is #7 for the sender and #3 for the
receiver), and every change is one pts update per side: UpdateNewMessage,
UpdateEditMessage, UpdateDeleteMessages, UpdateReadHistoryInbox/Outbox.  The
RPC handlers in `messages` and `bots` use these operations; tests can call them
directly to stage a conversation.  All of it is synchronous: a change and its
pushes happen in one step, so no other request can observe a half-done send.
"""

from __future__ import annotations

from collections import OrderedDict
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, cast

from telethon.tl import types

from simcloud.cloud import Caller, RpcError, SessionSink, bad_request
from simcloud.state import SimUser, State
from simcloud.updates import MakeUpdate, UpdateHub, tl_date

if TYPE_CHECKING:
    from simcloud.cloud import Cloud

MAX_MESSAGE_LENGTH = 4096
_RANDOM_ID_MEMORY = 1000
Exclude = SessionSink | Caller | None


@dataclass
class BoxMessage:
    """One message as it sits in one account's box."""

    id: int
    peer_id: int  # the other party (the owner itself for Saved Messages)
    out: bool
    date: int
    text: str = ""
    entities: list[Any] = field(default_factory=list)
    reply_markup: Any = None
    via_bot_id: int | None = None
    reply_to_id: int | None = None
    edit_date: int | None = None
    action: Any = None  # a MessageAction* makes it a service message
    silent: bool = False
    twin: tuple[int, int] | None = None  # (user id, message id) of the other copy
    inline_id: int | None = None  # key of the via-bot message (see InlineMessage)

    def to_tl(self, owner_id: int) -> Any:
        peer = types.PeerUser(self.peer_id)
        sender = types.PeerUser(owner_id if self.out else self.peer_id)
        reply = (
            types.MessageReplyHeader(reply_to_msg_id=self.reply_to_id) if self.reply_to_id else None
        )
        if self.action is not None:
            return types.MessageService(
                id=self.id,
                peer_id=peer,
                date=tl_date(self.date),
                action=self.action,
                out=self.out,
                from_id=sender,
                reply_to=reply,
            )
        return types.Message(
            id=self.id,
            peer_id=peer,
            date=tl_date(self.date),
            message=self.text,
            out=self.out,
            silent=self.silent or None,
            from_id=sender,
            via_bot_id=self.via_bot_id,
            reply_to=reply,
            reply_markup=self.reply_markup,
            entities=list(self.entities) or None,
            edit_date=tl_date(self.edit_date) if self.edit_date else None,
        )


@dataclass
class Mailbox:
    """An account's private-chat messages and read marks."""

    owner_id: int
    next_id: int = 1
    messages: dict[int, BoxMessage] = field(default_factory=dict)
    read_inbox: dict[int, int] = field(default_factory=dict)  # peer -> max id read
    read_outbox: dict[int, int] = field(default_factory=dict)  # peer -> max id they read
    random_ids: OrderedDict[int, int] = field(default_factory=OrderedDict)

    def take_id(self) -> int:
        self.next_id += 1
        return self.next_id - 1

    def unread(self, peer_id: int | None = None) -> int:
        return sum(
            1
            for m in self.messages.values()
            if not m.out
            and (peer_id is None or m.peer_id == peer_id)
            and m.id > self.read_inbox.get(m.peer_id, 0)
        )


@dataclass
class InlineMessage:
    """A message sent via an inline bot, addressable by InputBotInlineMessageID."""

    bot_id: int
    owner_id: int  # the account that sent it; its copy's id is packed in the id
    msg_id: int
    access_hash: int

    @property
    def packed_id(self) -> int:
        # Legacy 64-bit inline ids: low 32 bits message id, high 32 bits peer id
        # (Telethon unpacks it with struct '<ii' for CallbackQuery.Event).
        return (self.owner_id << 32) | self.msg_id

    def to_tl(self, dc_id: int = 2) -> types.InputBotInlineMessageID:
        return types.InputBotInlineMessageID(
            dc_id=dc_id, id=self.packed_id, access_hash=self.access_hash
        )


@dataclass
class Sent:
    """Result of a send: the sender's copy and update, and the receiver's copy if delivered."""

    message: BoxMessage
    update: types.UpdateNewMessage
    delivered: BoxMessage | None


class History:
    """All message boxes plus the operations on private chats."""

    def __init__(self, state: State, updates: UpdateHub) -> None:
        self.state = state
        self.updates = updates
        self.boxes: dict[int, Mailbox] = {}
        self.inline_messages: dict[int, InlineMessage] = {}  # by packed id
        updates.unread_count = lambda uid: self.mailbox(uid).unread()
        updates.current_message = self._current

    def mailbox(self, user_id: int) -> Mailbox:
        box = self.boxes.get(user_id)
        if box is None:
            box = self.boxes[user_id] = Mailbox(user_id)
        return box

    def find(self, user: SimUser, msg_id: int) -> BoxMessage | None:
        return self.mailbox(user.id).messages.get(msg_id)

    def twin_of(self, message: BoxMessage) -> tuple[SimUser, BoxMessage] | None:
        if message.twin is None:
            return None
        uid, mid = message.twin
        other = self.mailbox(uid).messages.get(mid)
        return (self.state.user(uid), other) if other is not None else None

    def _current(self, user_id: int, message: Any) -> Any | None:
        stored = self.mailbox(user_id).messages.get(message.id)
        return stored.to_tl(user_id) if stored is not None else None

    # -- sending -------------------------------------------------------------------

    def check_can_send(self, sender: SimUser, receiver: SimUser) -> None:
        """Telegram's refusals for a private message from `sender` to `receiver`."""
        if receiver is sender:
            return
        if sender.bot and receiver.bot:
            raise bad_request("USER_IS_BOT")
        if self.state.is_blocked(sender, receiver):
            raise bad_request("YOU_BLOCKED_USER")
        if sender.bot and (receiver.id, sender.id) not in self.state.bot_chats:
            # A bot cannot start a conversation (Bot API: "can't initiate conversation").
            raise bad_request("PEER_ID_INVALID")
        if sender.bot and self.state.is_blocked(receiver, sender):
            raise bad_request("USER_IS_BLOCKED")

    def send(
        self,
        sender: SimUser,
        receiver: SimUser,
        text: str = "",
        *,
        entities: list[Any] | None = None,
        reply_markup: Any = None,
        via_bot: SimUser | None = None,
        reply_to: int | None = None,
        random_id: int | None = None,
        action: Any = None,
        silent: bool = False,
        exclude: Exclude = None,
    ) -> Sent:
        """Put a message into both boxes and push UpdateNewMessage to both sides.

        `exclude` is the sending device, which learns its copy from the RPC result.
        Markup is kept only from bots (or from a bot's inline result), as Telegram
        silently drops a user's reply_markup.  A user who has blocked the sender
        never receives the message; the sender still sees it sent.
        """
        if action is None and not text.strip():
            raise bad_request("MESSAGE_EMPTY")
        if len(text) > MAX_MESSAGE_LENGTH:
            raise bad_request("MESSAGE_TOO_LONG")
        self.check_can_send(sender, receiver)
        out_box = self.mailbox(sender.id)
        if random_id is not None and random_id in out_box.random_ids:
            raise RpcError(500, "RANDOM_ID_DUPLICATE")
        if not (sender.bot or via_bot is not None):
            reply_markup = None
        now = self.state.now()
        common: dict[str, Any] = dict(
            date=now,
            text=text,
            entities=list(entities or []),
            reply_markup=reply_markup,
            via_bot_id=via_bot.id if via_bot else None,
            action=action,
            silent=silent,
        )
        mine = BoxMessage(id=out_box.take_id(), peer_id=receiver.id, out=True, **common)
        if reply_to is not None and reply_to in out_box.messages:
            mine.reply_to_id = reply_to
        out_box.messages[mine.id] = mine
        if random_id is not None:
            out_box.random_ids[random_id] = mine.id
            while len(out_box.random_ids) > _RANDOM_ID_MEMORY:
                out_box.random_ids.popitem(last=False)
        self.state.meet(sender, receiver)
        if receiver.bot and not sender.bot:
            self.state.bot_chats.add((sender.id, receiver.id))
        users = [u for u in (receiver, sender, via_bot) if u is not None]
        theirs = None
        if receiver is not sender and not self.state.is_blocked(receiver, sender):
            in_box = self.mailbox(receiver.id)
            theirs = BoxMessage(id=in_box.take_id(), peer_id=sender.id, out=False, **common)
            if mine.reply_to_id is not None:
                replied = out_box.messages[mine.reply_to_id].twin
                theirs.reply_to_id = replied[1] if replied else None
            in_box.messages[theirs.id] = theirs
            mine.twin, theirs.twin = (receiver.id, theirs.id), (sender.id, mine.id)
            self.updates.push_pts(receiver.id, _new(theirs, receiver.id), users=users)
        update = self.updates.push_pts(
            sender.id,
            _new(mine, sender.id),
            users=users,
            exclude_session=exclude,
        )
        return Sent(mine, update, theirs)

    def start_bot(
        self,
        user: SimUser,
        bot: SimUser,
        param: str = "",
        random_id: int | None = None,
        exclude: Exclude = None,
    ) -> Sent:
        """The user opens t.me/<bot>?start=<param>: "/start <param>" from user to bot."""
        if not bot.bot:
            raise bad_request("BOT_INVALID")
        self.state.bot_chats.add((user.id, bot.id))
        text = f"/start {param}" if param else "/start"
        return self.send(
            user,
            bot,
            text,
            entities=[types.MessageEntityBotCommand(offset=0, length=len("/start"))],
            random_id=random_id,
            exclude=exclude,
        )

    # -- editing and deleting ------------------------------------------------------

    def edit(
        self,
        owner: SimUser,
        message: BoxMessage,
        *,
        text: str | None = None,
        entities: list[Any] | None = None,
        reply_markup: Any = None,
        markup_from_bot: bool = False,
        exclude: Exclude = None,
    ) -> types.UpdateEditMessage:
        """Edit both copies of a message; returns the owner's UpdateEditMessage.

        `markup_from_bot`: the editor is a bot, whose edit replaces the keyboard
        (an edit without reply_markup removes it, as in the Bot API).
        """
        if text is not None and not text.strip() and message.action is None:
            raise bad_request("MESSAGE_EMPTY")
        if text is not None and len(text) > MAX_MESSAGE_LENGTH:
            raise bad_request("MESSAGE_TOO_LONG")
        new_text = message.text if text is None else text
        new_entities = message.entities if entities is None and text is None else entities or []
        new_markup = reply_markup if markup_from_bot else message.reply_markup
        if (
            new_text == message.text
            and new_entities == message.entities
            and _markup_bytes(new_markup) == _markup_bytes(message.reply_markup)
        ):
            raise bad_request("MESSAGE_NOT_MODIFIED")
        now = self.state.now()
        copies = [(owner, message)]
        twin = self.twin_of(message)
        if twin is not None:
            copies.append(twin)
        updates: list[types.UpdateEditMessage] = []
        for user, copy in copies:
            copy.text, copy.entities = new_text, list(new_entities)
            copy.reply_markup, copy.edit_date = new_markup, now
            peer = self.state.user(copy.peer_id)
            via = self.state.users.get(copy.via_bot_id) if copy.via_bot_id else None
            users = [u for u in (peer, user, via) if u is not None]
            updates.append(
                self.updates.push_pts(
                    user.id,
                    _edited(copy, user.id),
                    users=users,
                    exclude_session=exclude if user is owner else None,
                )
            )
        return updates[0]

    def delete(
        self, owner: SimUser, ids: list[int], revoke: bool, exclude: Exclude = None
    ) -> types.messages.AffectedMessages:
        """messages.deleteMessages: the owner's copies, and with `revoke` the other side's."""
        box = self.mailbox(owner.id)
        mine = [i for i in dict.fromkeys(ids) if i in box.messages]
        if not mine:
            return types.messages.AffectedMessages(pts=self.updates.box(owner.id).pts, pts_count=0)
        theirs: dict[int, list[int]] = {}
        for i in mine:
            message = box.messages.pop(i)
            if message.inline_id is not None:
                self.inline_messages.pop(message.inline_id, None)
            twin = self.twin_of(message)
            if revoke and twin is not None:
                user, copy = twin
                self.mailbox(user.id).messages.pop(copy.id)
                theirs.setdefault(user.id, []).append(copy.id)
            elif twin is not None:
                twin[1].twin = None
        for uid, their_ids in theirs.items():
            self.updates.push_pts(
                uid,
                _deleted(their_ids),
                pts_count=len(their_ids),
            )
        update = self.updates.push_pts(
            owner.id,
            _deleted(mine),
            pts_count=len(mine),
            exclude_session=exclude,
        )
        return types.messages.AffectedMessages(pts=update.pts, pts_count=update.pts_count)

    def read(
        self, reader: SimUser, peer: SimUser, max_id: int, exclude: Exclude = None
    ) -> types.messages.AffectedMessages:
        """messages.readHistory: mark incoming messages up to max_id read, tell the sender."""
        box = self.mailbox(reader.id)
        incoming = [
            m
            for m in box.messages.values()
            if m.peer_id == peer.id and not m.out and m.id <= max_id
        ]
        before = box.read_inbox.get(peer.id, 0)
        top = max((m.id for m in incoming), default=0)
        if top <= before:
            return types.messages.AffectedMessages(pts=self.updates.box(reader.id).pts, pts_count=0)
        box.read_inbox[peer.id] = top
        still_unread = box.unread(peer.id)
        update = self.updates.push_pts(
            reader.id,
            lambda pts, n: types.UpdateReadHistoryInbox(
                peer=types.PeerUser(peer.id),
                max_id=top,
                still_unread_count=still_unread,
                pts=pts,
                pts_count=n,
            ),
            users=[peer],
            exclude_session=exclude,
        )
        # The sender learns up to which of *its* ids the reader has read.
        read_twins = [m.twin[1] for m in incoming if m.twin and m.id > before]
        if read_twins and peer is not reader:
            their_box = self.mailbox(peer.id)
            their_top = max(read_twins)
            if their_top > their_box.read_outbox.get(reader.id, 0):
                their_box.read_outbox[reader.id] = their_top
                self.updates.push_pts(
                    peer.id,
                    lambda pts, n: types.UpdateReadHistoryOutbox(
                        peer=types.PeerUser(reader.id), max_id=their_top, pts=pts, pts_count=n
                    ),
                    users=[reader],
                )
        return types.messages.AffectedMessages(pts=update.pts, pts_count=update.pts_count)


def _new(message: BoxMessage, owner_id: int) -> MakeUpdate:
    return lambda pts, n: types.UpdateNewMessage(message.to_tl(owner_id), pts, n)


def _edited(message: BoxMessage, owner_id: int) -> MakeUpdate:
    return lambda pts, n: types.UpdateEditMessage(message.to_tl(owner_id), pts, n)


def _deleted(ids: list[int]) -> MakeUpdate:
    return lambda pts, n: types.UpdateDeleteMessages(list(ids), pts, n)


def _markup_bytes(markup: Any) -> bytes:
    return bytes(markup) if markup is not None else b""


def history_of(cloud: Cloud) -> History:
    """The cloud's History (attached by simcloud.world.build_cloud)."""
    return cast(History, vars(cloud)["history"])

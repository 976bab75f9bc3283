"""The switchboard: what every part of the call layer shares.

The registry of calls in progress (conversations by member, button keys,
ring groups, pending requests, bridges), messages to members (send, edit in
place or replace, reply), ringing a member in Telegram, dialling a party on a
line, and a conversation's life: its message, a party that ends, the member
who leaves.  :class:`~gateway.calls.manager.CallManager` builds on it with
:class:`~gateway.calls.outgoing.OutgoingCalls` and
:class:`~gateway.calls.secondline.SecondLineCalls`.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Coroutine
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from gateway.calls import texts
from gateway.calls.conversation import Conversation, Party, SipBridge
from gateway.calls.dialplan import Dialled, DialPlan
from gateway.calls.ringgroup import RingGroup
from gateway.sip.call import CallState, SipCall
from gateway.store import MemberRecord, Outcome
from gateway.telegram.call import CallState as TgState
from gateway.telegram.call import TelegramCall
from gateway.telegram.messages import Member, MessageRef, OutgoingMessage

if TYPE_CHECKING:
    from gateway.app import Gateway
    from gateway.calls.handsetcall import HandsetCall
    from gateway.calls.outgoing import Request
    from gateway.calls.secondline import Transfer
    from gateway.config import Config

log = logging.getLogger(__name__)

FAILED_DIAL_TONE_S = 2.0  # busy tone after a dial failed, before the call ends


@dataclass
class Registry:
    conversations: dict[int, Conversation] = field(default_factory=dict)  # by telegram id
    keys: dict[str, Any] = field(default_factory=dict)  # button key -> object
    groups: set[RingGroup] = field(default_factory=set)
    requests: dict[int, Request] = field(default_factory=dict)  # invite pending, by telegram id
    bridges: set[SipBridge] = field(default_factory=set)
    transfers: set[Transfer] = field(default_factory=set)
    handset_calls: set[HandsetCall] = field(default_factory=set)  # the local handset talking


class Switchboard:
    def __init__(self, gateway: Gateway) -> None:
        self.gateway = gateway
        self.store = gateway.store
        self.telegram = gateway.telegram
        self.clock = gateway.clock
        self.plans: dict[str, DialPlan] = {}
        self._no_answer: dict[str, str] = {}
        self.ring_timeout = 0.0
        self.configure(gateway.config)
        self.r = Registry()
        self._tasks: set[asyncio.Task[Any]] = set()

    def configure(self, config: Config) -> None:
        """Take the lines' dial plans, no-answer replies and the ring time from *config*.

        At start, and again when the settings are reloaded: calls already
        ringing keep their deadline, numbers dialled from now on follow the new plans.
        """
        self.plans = {line.name: DialPlan.from_line(line) for line in config.lines}
        self._no_answer = {line.name: line.no_answer for line in config.lines}
        self.ring_timeout = float(config.telegram.ring_timeout)

    def on_refer(self, conv: Conversation, party: Party, user: str) -> bool:
        """A party asks to transfer the member elsewhere (REFER); see SecondLineCalls."""
        return False

    def spawn(self, coro: Coroutine[Any, Any, Any]) -> asyncio.Task[Any]:
        task = asyncio.get_running_loop().create_task(coro)
        self._tasks.add(task)
        task.add_done_callback(self._done)
        return task

    def _done(self, task: asyncio.Task[Any]) -> None:
        self._tasks.discard(task)
        if not task.cancelled() and task.exception() is not None:
            log.error("call manager task failed", exc_info=task.exception())

    def conversation_of(self, telegram_id: int) -> Conversation | None:
        return self.r.conversations.get(telegram_id)

    def no_answer_status(self, line: str) -> tuple[int, str]:
        if self._no_answer.get(line, "busy") == "reject":
            return 480, "Temporarily Unavailable"
        return 486, "Busy Here"

    def call_row(self, sip: SipCall) -> int | None:
        return self.gateway.call_row(sip)

    def set_outcome(self, sip: SipCall, outcome: Outcome) -> None:
        self.gateway.set_outcome(sip, outcome)

    def _log_member(self, sip: SipCall, member: MemberRecord) -> None:
        row = self.call_row(sip)
        if row is None:
            return
        try:
            self.store.call_member(row, member.id, member.name)
        except Exception:
            log.exception("call log: cannot record the member of call %s", sip.id)

    @staticmethod
    def _tg_member(member: MemberRecord) -> Member:
        return Member(member.telegram_id, member.access_hash, member.name, member.username)

    async def send(self, member: MemberRecord, message: OutgoingMessage) -> MessageRef | None:
        if not member.access_hash:
            log.info("member %s has not written to the gateway yet: cannot message", member.id)
            return None
        try:
            return await self.telegram.messenger.send(self._tg_member(member), message)
        except Exception as exc:
            log.warning("message to member %s failed: %s", member.id, exc)
            return None

    async def replace(
        self, member: MemberRecord, ref: MessageRef | None, message: OutgoingMessage
    ) -> MessageRef | None:
        """Edit *ref* to *message* (buttons replaced), or send it when there is no ref."""
        if ref is None:
            return await self.send(member, message)
        messenger = self.telegram.messenger
        if message.rows and not ref.via_bot and ref.chat == "gateway" and messenger.bot_ready:
            # A plain message cannot gain buttons: a new one (with them) replaces it.
            with contextlib.suppress(Exception):
                await messenger.delete(ref)
            return await self.send(member, message)
        try:
            return await self.telegram.messenger.edit(
                ref, text=message.text, keyboard=message.rows, plain_hint=message.plain_hint
            )
        except Exception as exc:
            log.warning("editing a message to member %s failed: %s", member.id, exc)
            return ref

    async def reply(self, member: MemberRecord, text: str) -> None:
        await self.send(member, OutgoingMessage(text))

    async def ring_member(self, member: MemberRecord) -> TelegramCall | None:
        calls = self.telegram.calls
        if calls is None:
            log.info("telegram calls are not ready: member %s not rung", member.id)
            return None
        if not member.access_hash:
            return None
        try:
            self.telegram.account.remember(member.telegram_id, member.access_hash)
            return await calls.call(member.telegram_id)
        except Exception as exc:
            log.warning("ringing member %s failed: %s", member.id, exc)
            return None

    def _member(self, user_id: int) -> MemberRecord | None:
        try:
            return self.store.member_by_telegram(user_id)
        except Exception:
            log.exception("store: cannot look up member %s", user_id)
            return None

    def _lines_of(self, member: MemberRecord) -> list[str]:
        return [line for line in member.lines if line in self.gateway.lines]

    def _new_conversation(self, member: MemberRecord, tg: TelegramCall) -> Conversation:
        conv = Conversation(self, member, tg)
        self.r.conversations[member.telegram_id] = conv
        self.r.keys[conv.key] = conv
        return conv

    async def _dial_first(self, conv: Conversation, line: str, dialled: Dialled) -> None:
        party = await self._dial(conv, line, dialled)
        if party is None:
            conv.play_busy()
            await asyncio.sleep(FAILED_DIAL_TONE_S)
            await self._end_conversation(conv, "")
            return
        conv.add(party)
        await self._show_call(conv)

    async def _dial(self, conv: Conversation, line: str, dialled: Dialled) -> Party | None:
        try:
            sip = await self.gateway.dial(line, dialled.target)
        except Exception as exc:
            log.warning("dialling %s on %s failed: %s", dialled.display, line, exc)
            await self.reply(conv.member, f"Could not dial {dialled.display}: {exc}")
            return None
        self._log_member(sip, conv.member)
        return Party(sip, dialled.display, "", line)

    async def _show_call(self, conv: Conversation) -> None:
        party = conv.active
        if party is None or conv.closed:
            return
        held = conv.held_party()
        who = party.who
        if not party.up:
            who += " (ringing)" if party.sip.state is CallState.RINGING else " (calling)"
        message = texts.in_call(conv.key, who, party.line, held=held.who if held else "")
        conv.message = await self.replace(conv.member, conv.message, message)

    def party_changed(self, conv: Conversation, party: Party) -> None:
        if party is conv.active and party.up:
            self.spawn(self._show_call(conv))

    def party_ended(self, conv: Conversation, party: Party, was_active: bool) -> None:
        self.spawn(self._after_party(conv, party, was_active))

    async def _after_party(self, conv: Conversation, party: Party, was_active: bool) -> None:
        never_up = party.sip.answered_at is None
        if never_up:
            reason = party.sip.end_reason.value if party.sip.end_reason else "failed"
            await self.reply(conv.member, f"{party.who}: {reason.replace('-', ' ')}.")
        held = conv.held_party()
        if held is not None:
            if was_active:
                await conv.activate(held)
                await self._show_call(conv)
            return
        if never_up and conv.tg.state is TgState.ACTIVE:
            conv.play_busy()
            await asyncio.sleep(FAILED_DIAL_TONE_S)
        await self._end_conversation(conv, "")

    def member_left(self, conv: Conversation) -> None:
        self.spawn(self._end_conversation(conv, ""))

    async def _end_conversation(self, conv: Conversation, why: str) -> None:
        if conv.closed:
            return
        parties = list(conv.parties)
        conv.close()
        if self.r.conversations.get(conv.member.telegram_id) is conv:
            del self.r.conversations[conv.member.telegram_id]
        for key in [k for k, v in self.r.keys.items() if v is conv]:
            del self.r.keys[key]
        for transfer in [t for t in self.r.transfers if t.conversation is conv]:
            # The member left before the transfer target answered: it must not ring on.
            self.r.transfers.discard(transfer)
            with contextlib.suppress(Exception):
                await transfer.target.hang_up()
        for party in parties:
            if not party.ended:
                with contextlib.suppress(Exception):
                    await party.sip.hang_up()
        if not conv.tg.ended:
            with contextlib.suppress(Exception):
                await conv.tg.hangup()
        talk = conv.tg.duration
        who = parties[0].who if parties else ""
        text = f"☎️ Call{' with ' + who if who else ''} ended, {texts.duration(talk)}"
        if why:
            text += f" ({why})"
        await self.replace(conv.member, conv.message, OutgoingMessage(text))

"""The call manager: the only place that knows both the SIP line and the Telegram leg.

It takes incoming SIP calls on member lines (:class:`RingGroup`), member
calls to the gateway account, numbers and button presses from members, and
turns them into :class:`Conversation` objects: a member's Telegram call
bridged to one or two SIP parties.  Outgoing calls follow the member's
method: **invite** (the member is asked to call the gateway, which then
dials) or **callback** (the gateway calls the member and dials on answer).

Who may do what: only linked members (the store) reach any of this; a number
is dialled only through a line the member belongs to and only if the line's
dial plan permits it.  Everything else is logged and ignored.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import re
import time
from collections.abc import Coroutine
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from gateway.calls import texts
from gateway.calls.conversation import Conversation, Party, SipBridge, new_key
from gateway.calls.dialplan import Dialled, DialPlan, NumberRefused, looks_like_number
from gateway.calls.ringgroup import RingGroup
from gateway.sip.call import CallState, IncomingCall, SipCall
from gateway.store import MemberRecord, Outcome, OutgoingMethod
from gateway.telegram.call import CallState as TgState
from gateway.telegram.call import TelegramCall
from gateway.telegram.messages import (
    Button,
    ButtonPress,
    InboundEvent,
    Member,
    MessageRef,
    OutgoingMessage,
    SoftphoneCommand,
    StartCommand,
    TextFromMember,
)

if TYPE_CHECKING:
    from gateway.app import Gateway
    from gateway.calls.onboarding import Onboarding

log = logging.getLogger(__name__)

INVITE_WINDOW = 60.0  # seconds a member has to call the gateway after "call me now"
TONES = re.compile(r"[0-9]{1,3}|[0-9*#]*[*#][0-9*#]*")  # typed during a call = key presses


@dataclass(eq=False)
class Request:
    """A number a member wants to call, waiting for a line choice or for their call."""

    key: str
    member: MemberRecord
    text: str
    line: str = ""
    dialled: Dialled | None = None
    message: MessageRef | None = None
    expires_at: float = 0.0
    timer: asyncio.TimerHandle | None = None


@dataclass(eq=False)
class SecondLine:
    """A number typed during a call: Transfer, Toggle, Send as tones or Cancel."""

    key: str
    conversation: Conversation
    text: str
    message: MessageRef | None = None


@dataclass(eq=False)
class Transfer:
    """The member's caller handed to a new party once it answers."""

    conversation: Conversation
    party: Party  # who is being transferred
    target: SipCall
    display: str


@dataclass
class ActiveCall:
    """A call in progress, as the control API and the web UI show it."""

    state: str  # ringing | talking | on-hold | dialling | transferred
    direction: str
    line: str
    number: str
    name: str
    member: str
    started_at: float
    answered_at: float | None = None


@dataclass
class _Registry:
    conversations: dict[int, Conversation] = field(default_factory=dict)  # by telegram id
    keys: dict[str, Any] = field(default_factory=dict)  # button key -> object
    groups: set[RingGroup] = field(default_factory=set)
    requests: dict[int, Request] = field(default_factory=dict)  # invite pending, by telegram id
    bridges: set[SipBridge] = field(default_factory=set)
    transfers: set[Transfer] = field(default_factory=set)


class CallManager:
    def __init__(self, gateway: Gateway, onboarding: Onboarding | None = None) -> None:
        self.gateway = gateway
        self.store = gateway.store
        self.telegram = gateway.telegram
        self.clock = gateway.clock
        self.onboarding = onboarding
        self.plans: dict[str, DialPlan] = {
            line.name: DialPlan.from_line(line) for line in gateway.config.lines
        }
        self._no_answer = {
            line.name: getattr(line, "no_answer", "busy") for line in gateway.config.lines
        }
        self.ring_timeout = float(gateway.config.telegram.ring_timeout)
        self.r = _Registry()
        self._tasks: set[asyncio.Task[Any]] = set()
        self._unsubscribe: Any = None

    # -- life --------------------------------------------------------------------------------------

    def start(self) -> None:
        self.gateway.on_member_call = self.on_sip_call
        self.telegram.on_incoming_call = self.on_member_call
        self._unsubscribe = self.telegram.messenger.subscribe(self.on_event)

    async def stop(self) -> None:
        if self._unsubscribe is not None:
            self._unsubscribe()
        for conversation in list(self.r.conversations.values()):
            await self._end_conversation(conversation, "the gateway is stopping")
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)

    def spawn(self, coro: Coroutine[Any, Any, Any]) -> asyncio.Task[Any]:
        task = asyncio.get_running_loop().create_task(coro)
        self._tasks.add(task)
        task.add_done_callback(self._done)
        return task

    def _done(self, task: asyncio.Task[Any]) -> None:
        self._tasks.discard(task)
        if not task.cancelled() and task.exception() is not None:
            log.error("call manager task failed", exc_info=task.exception())

    # -- what other parts ask ----------------------------------------------------------------------

    def conversation_of(self, telegram_id: int) -> Conversation | None:
        return self.r.conversations.get(telegram_id)

    def active_calls(self) -> list[ActiveCall]:
        out: list[ActiveCall] = []
        for group in self.r.groups:
            if group.winner is None:
                out.append(
                    ActiveCall(
                        "ringing", "in", group.line, group.number, group.name, "", group.started_at
                    )
                )
        for conv in self.r.conversations.values():
            for party in conv.parties:
                if party.held:
                    state = "on-hold"
                elif party.up:
                    state = "talking"
                else:
                    state = "dialling"
                sip = party.sip
                out.append(
                    ActiveCall(
                        state,
                        sip.direction,
                        party.line,
                        party.number,
                        party.name,
                        conv.member.name,
                        sip.started_at,
                        sip.answered_at,
                    )
                )
        for bridge in self.r.bridges:
            for sip in (bridge.a, bridge.b):
                if sip.state is not CallState.ENDED:
                    out.append(
                        ActiveCall(
                            "transferred",
                            sip.direction,
                            sip.line.name,
                            sip.remote_number,
                            sip.remote_name,
                            "",
                            sip.started_at,
                            sip.answered_at,
                        )
                    )
        return out

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

    # -- Telegram helpers --------------------------------------------------------------------------

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

    # -- incoming SIP call on a member line --------------------------------------------------------

    def on_sip_call(self, sip: IncomingCall) -> None:
        try:
            members = self.store.members_of_line(sip.line.name)
        except Exception:
            log.exception("store: cannot read the members of line %s", sip.line.name)
            members = []
        callable_ = [m for m in members if m.access_hash]
        if not callable_ or self.telegram.calls is None:
            status, reason = self.no_answer_status(sip.line.name)
            why = "no member can be called" if members else "the line has no members"
            log.info("incoming call on %s from %s: %s", sip.line.name, sip.remote_number, why)
            self.set_outcome(sip, "missed")
            sip.reject(status, reason)
            return
        group = RingGroup(self, sip, callable_)
        self.r.groups.add(group)
        self.r.keys[group.key] = group

        async def run() -> None:
            try:
                await group.run()
            finally:
                self.r.groups.discard(group)
                if self.r.keys.get(group.key) is group:
                    del self.r.keys[group.key]

        self.spawn(run())

    def take_incoming(
        self, group: RingGroup, member: MemberRecord, tg: TelegramCall, ref: MessageRef | None
    ) -> None:
        """A member's Telegram call is up for *group*: answer the SIP call and talk."""
        sip = group.sip
        conv = self._new_conversation(member, tg)
        conv.message = ref
        self.r.keys[group.key] = conv
        sip.answer()
        conv.add(Party(sip, group.number, group.name, group.line))
        self._log_member(sip, member)
        self.spawn(self._show_call(conv))

    # -- calls from members to the gateway account -------------------------------------------------

    def on_member_call(self, tg: TelegramCall) -> None:
        member = self._member(tg.user_id)
        if member is None:
            log.info("call from non-member %s refused", tg.user_id)
            self.spawn(tg.reject())
            return
        if tg.user_id in self.r.conversations:
            self.spawn(tg.reject(busy=True))
            return
        self.spawn(self._answer_member(member, tg))

    async def _answer_member(self, member: MemberRecord, tg: TelegramCall) -> None:
        request = self.r.requests.pop(member.telegram_id, None)
        if request is not None and request.timer is not None:
            request.timer.cancel()
        await tg.answer()
        if tg.state is not TgState.ACTIVE:
            return
        conv = self._new_conversation(member, tg)
        if request is not None and request.dialled is not None:
            conv.message = await self.replace(
                member, request.message, OutgoingMessage(f"Dialling {request.dialled.display}…")
            )
            await self._dial_first(conv, request.line, request.dialled)
        else:
            conv.message = await self.send(member, texts.dial_pad(conv.key, ""))

    def _new_conversation(self, member: MemberRecord, tg: TelegramCall) -> Conversation:
        conv = Conversation(self, member, tg)
        self.r.conversations[member.telegram_id] = conv
        self.r.keys[conv.key] = conv
        return conv

    async def _dial_first(self, conv: Conversation, line: str, dialled: Dialled) -> None:
        party = await self._dial(conv, line, dialled)
        if party is None:
            conv.play_busy()
            await asyncio.sleep(2.0)
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

    # -- conversation life -------------------------------------------------------------------------

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
            await asyncio.sleep(2.0)
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

    # -- events from members -----------------------------------------------------------------------

    async def on_event(self, event: InboundEvent) -> None:
        try:
            await self._on_event(event)
        except Exception:
            log.exception("handling %s failed", type(event).__name__)

    async def _on_event(self, event: InboundEvent) -> None:
        own = self.telegram.account.user
        who = getattr(event, "member", None)
        if who is None or (own is not None and who.user_id == own.user_id):
            return  # the gateway's own presses come back too
        if self.onboarding is not None and await self.onboarding.handle(event):
            return
        member = self._member(who.user_id)
        if member is None:
            log.info("%s from non-member %s ignored", type(event).__name__, who.user_id)
            return
        if who.access_hash and member.access_hash != who.access_hash:
            member = self.store.update_member(member.id, access_hash=who.access_hash)
        if isinstance(event, TextFromMember):
            await self._on_text(member, event)
        elif isinstance(event, ButtonPress):
            await self._on_press(member, event)
        elif isinstance(event, SoftphoneCommand):
            await self._softphone(member, None, via_bot=event.via == "bot")
        elif isinstance(event, StartCommand) and not event.payload:
            await self.reply(
                member,
                "Send me a phone number to call it through your home line."
                " /softphone shows your settings.",
            )

    async def _on_text(self, member: MemberRecord, event: TextFromMember) -> None:
        command = event.command
        conv = self.r.conversations.get(member.telegram_id)
        text = event.text.strip()
        if command is not None:
            await self._on_command(member, conv, *command)
            return
        if conv is not None:
            await self._text_in_call(conv, text)
            return
        await self._new_request(member, text)

    async def _on_command(
        self, member: MemberRecord, conv: Conversation | None, word: str, arg: str
    ) -> None:
        if word == "softphone":
            await self._softphone(member, None, via_bot=False)
        elif word == "method" and arg in ("invite", "callback"):
            method: OutgoingMethod = "invite" if arg == "invite" else "callback"
            member = self.store.update_member(member.id, outgoing_method=method)
            await self.reply(member, f"Outgoing calls: {arg}.")
        elif word in ("call", "dial") and conv is None and arg:
            await self._new_request(member, arg)
        elif word == "cancel" and conv is None:
            request = self.r.requests.pop(member.telegram_id, None)
            if request is not None:
                await self._cancel_request(request, "Cancelled.")
        elif conv is None:
            await self.reply(member, f"/{word} works during a call.")
        elif word == "hangup":
            await self._end_conversation(conv, "")
        elif word == "toggle":
            offer = self._offer_of(conv)
            who = member.telegram_id
            await (self._toggle_offer(offer, who) if offer else self._toggle(conv))
        elif word == "complete":
            await self._complete(conv)
        elif word == "transfer":
            if arg:
                await self._text_in_call(conv, arg, transfer=True)
            else:
                offer = self._offer_of(conv)
                who = member.telegram_id
                await (self._transfer_offer(offer, who) if offer else self._transfer_held(conv))
        elif word == "reject":
            await self._reject_incoming(conv)
        elif word == "tones":
            offer = self._offer_of(conv)
            if isinstance(offer, SecondLine):
                await self._as_tones(offer)
        elif word == "dial":
            await self._dial_typed(conv)
        else:
            await self.reply(member, f"Unknown command /{word}.")

    def _offer_of(self, conv: Conversation) -> SecondLine | RingGroup | None:
        """The newest open second-line offer of this conversation."""
        found: SecondLine | RingGroup | None = None
        for value in self.r.keys.values():
            if isinstance(value, SecondLine) and value.conversation is conv:
                found = value
            elif isinstance(value, RingGroup) and value.offer_of(conv.member.telegram_id):
                found = value
        return found

    async def _text_in_call(self, conv: Conversation, text: str, *, transfer: bool = False) -> None:
        party = conv.active
        compact = re.sub(r"[\s\-.()]", "", text)
        if party is None:
            # The dial pad: the member called the gateway with nothing to dial yet.
            conv.typed = compact
            await self._dial_typed(conv)
            return
        if not transfer and TONES.fullmatch(compact):
            if party.up:
                await party.sip.send_dtmf(compact)
            return
        if not looks_like_number(text):
            await self.reply(
                conv.member, "Send digits to press them, or a number for a second line."
            )
            return
        offer = SecondLine(new_key(), conv, text)
        self.r.keys[offer.key] = offer
        if transfer:
            await self._transfer_offer(offer)
            return
        display = self._display(conv, text)
        offer.message = await self.send(
            conv.member, texts.second_line_offer(offer.key, display, compact.isdigit())
        )

    def _display(self, conv: Conversation, text: str) -> str:
        line = self._second_line(conv)
        plan = self.plans.get(line)
        if plan is None:
            return text
        try:
            return plan.normalise(text).display
        except NumberRefused:
            return text

    # -- button presses ----------------------------------------------------------------------------

    async def _on_press(self, member: MemberRecord, event: ButtonPress) -> None:
        press = texts.parse(event.data)
        if press is None:
            return
        if press.action == texts.METHOD:
            await self._set_method(member, press.key, event.ref)
            return
        if press.action == texts.DEFAULT_LINE:
            await self._set_default_line(member, press.key, event.ref)
            return
        if press.action == texts.CALL_BACK:
            await self._new_request(member, press.arg, line=press.key)
            return
        target = self.r.keys.get(press.key)
        if target is None:
            log.info("press %r for a call that is over", event.data)
            return
        if isinstance(target, Request):
            if target.member.telegram_id != member.telegram_id:
                return
            if press.action == texts.PICK_LINE:
                await self._request_on_line(target, press.arg)
            elif press.action == texts.CANCEL:
                self.r.requests.pop(member.telegram_id, None)
                await self._cancel_request(target, "Cancelled.")
            return
        if isinstance(target, RingGroup):
            await self._press_ringing(member, target, press)
            return
        conv = target.conversation if isinstance(target, SecondLine) else target
        if not isinstance(conv, Conversation) or conv.member.telegram_id != member.telegram_id:
            return
        if isinstance(target, SecondLine):
            if press.action == texts.TRANSFER:
                await self._transfer_offer(target)
            elif press.action == texts.TOGGLE:
                await self._toggle_offer(target)
            elif press.action == texts.AS_TONES:
                await self._as_tones(target)
            elif press.action == texts.CANCEL:
                await self._close_offer(target, "Cancelled.")
            return
        if press.action == texts.DTMF:
            await self._press_digit(conv, press.arg)
        elif press.action == texts.HANGUP:
            await self._end_conversation(conv, "")
        elif press.action == texts.TOGGLE:
            await self._toggle(conv)
        elif press.action == texts.COMPLETE:
            await self._complete(conv)
        elif press.action == texts.TRANSFER:
            await self._transfer_held(conv)
        elif press.action == texts.ERASE:
            conv.typed = conv.typed[:-1]
            conv.message = await self.replace(
                member, conv.message, texts.dial_pad(conv.key, conv.typed)
            )
        elif press.action == texts.DIAL:
            await self._dial_typed(conv)

    async def _press_digit(self, conv: Conversation, digit: str) -> None:
        if not digit or digit not in "0123456789*#":
            return
        party = conv.active
        if party is None:
            conv.typed += digit
            conv.message = await self.replace(
                conv.member, conv.message, texts.dial_pad(conv.key, conv.typed)
            )
        elif party.up:
            await party.sip.send_dtmf(digit)

    async def _press_ringing(self, member: MemberRecord, group: RingGroup, press: Any) -> None:
        ring = next((r for r in group.rings if r.member.telegram_id == member.telegram_id), None)
        if ring is None:
            return
        conv = self.r.conversations.get(member.telegram_id)
        if ring.offer and conv is not None:
            if press.action == texts.TOGGLE:
                await self._toggle_offer(group, member.telegram_id)
            elif press.action == texts.TRANSFER:
                await self._transfer_offer(group, member.telegram_id)
            elif press.action == texts.REJECT:
                await self._reject_incoming(conv)
        elif press.action == texts.HANGUP and ring.tg is not None and not ring.tg.ended:
            await ring.tg.hangup()  # this member declines from the message

    # -- outgoing: invite and callback -------------------------------------------------------------

    async def _new_request(self, member: MemberRecord, text: str, line: str = "") -> None:
        lines = self._lines_of(member)
        if not lines:
            await self.reply(member, "You are not allowed to call out on any line.")
            return
        if not looks_like_number(text):
            await self.reply(
                member,
                "Send me a phone number to call it (for example +44 20 7946 0018)."
                " /softphone shows your settings.",
            )
            return
        old = self.r.requests.pop(member.telegram_id, None)
        if old is not None:
            await self._cancel_request(old, "Replaced by a new number.")
        request = Request(new_key(), member, text)
        self.r.keys[request.key] = request
        if line and line in lines:
            await self._request_on_line(request, line)
        elif member.default_line in lines:
            await self._request_on_line(request, member.default_line)
        elif len(lines) == 1:
            await self._request_on_line(request, lines[0])
        else:
            request.message = await self.send(member, texts.pick_line(request.key, text, lines))

    async def _request_on_line(self, request: Request, line: str) -> None:
        member = request.member
        if line not in self._lines_of(member):
            return
        try:
            dialled = self.plans[line].normalise(request.text)
        except NumberRefused as exc:
            self.r.keys.pop(request.key, None)
            await self.replace(member, request.message, OutgoingMessage(f"🚫 {exc.reason}"))
            return
        request.line, request.dialled = line, dialled
        fresh = self.store.member(member.id) or member
        if fresh.outgoing_method == "callback":
            self.r.keys.pop(request.key, None)
            request.message = await self.replace(
                member, request.message, OutgoingMessage(f"Calling you to dial {dialled.display}…")
            )
            await self._callback(request)
            return
        request.expires_at = time.monotonic() + INVITE_WINDOW
        self.r.requests[member.telegram_id] = request
        request.timer = asyncio.get_running_loop().call_later(
            INVITE_WINDOW, lambda: self.spawn(self._expire(request))
        )
        request.message = await self.replace(
            member,
            request.message,
            OutgoingMessage(
                f"📞 Call me now to dial {dialled.display} on {line}"
                f" (within {int(INVITE_WINDOW)} seconds).",
                [[Button("Cancel", f"{texts.CANCEL}:{request.key}", "/cancel")]],
            ),
        )

    async def _expire(self, request: Request) -> None:
        if self.r.requests.get(request.member.telegram_id) is request:
            del self.r.requests[request.member.telegram_id]
            await self._cancel_request(request, "Expired: you did not call in time.")

    async def _cancel_request(self, request: Request, why: str) -> None:
        if request.timer is not None:
            request.timer.cancel()
        self.r.keys.pop(request.key, None)
        shown = request.dialled.display if request.dialled else request.text
        await self.replace(request.member, request.message, OutgoingMessage(f"{shown}: {why}"))

    async def _callback(self, request: Request) -> None:
        member = request.member
        assert request.dialled is not None
        if member.telegram_id in self.r.conversations:
            await self.reply(member, "You are already in a call.")
            return
        tg = await self.ring_member(member)
        if tg is None:
            await self.reply(
                member, "I cannot call you: check /softphone and your privacy settings."
            )
            return
        if not await tg.wait_active():
            outcome = tg.outcome.value if tg.outcome else "failed"
            await self.replace(
                member,
                request.message,
                OutgoingMessage(f"Call back for {request.dialled.display}: {outcome}."),
            )
            return
        conv = self._new_conversation(member, tg)
        conv.message = request.message
        await self._dial_first(conv, request.line, request.dialled)

    async def _dial_typed(self, conv: Conversation) -> None:
        member = conv.member
        lines = self._lines_of(member)
        if not conv.typed or conv.active is not None:
            return
        line = member.default_line if member.default_line in lines else (lines[0] if lines else "")
        if not line:
            await self.reply(member, "You are not allowed to call out on any line.")
            return
        try:
            dialled = self.plans[line].normalise(conv.typed)
        except NumberRefused as exc:
            conv.typed = ""
            await self.reply(member, f"🚫 {exc.reason}")
            return
        await self._dial_first(conv, line, dialled)

    # -- second line -------------------------------------------------------------------------------

    def _second_line(self, conv: Conversation) -> str:
        """Where a second-line number goes: the member's default line, else the current one."""
        lines = self._lines_of(conv.member)
        if conv.member.default_line in lines:
            return conv.member.default_line
        return conv.active.line if conv.active else ""

    def _second_dialled(self, offer: SecondLine) -> tuple[str, Dialled] | None:
        conv = offer.conversation
        line = self._second_line(conv)
        plan = self.plans.get(line)
        if plan is None or line not in self._lines_of(conv.member):
            return None
        try:
            return line, plan.normalise(offer.text)
        except NumberRefused as exc:
            self.spawn(self._close_offer(offer, f"🚫 {exc.reason}"))
            return None

    async def _close_offer(self, offer: SecondLine, text: str) -> None:
        self.r.keys.pop(offer.key, None)
        await self.replace(offer.conversation.member, offer.message, OutgoingMessage(text))

    async def _as_tones(self, offer: SecondLine) -> None:
        party = offer.conversation.active
        digits = re.sub(r"[^0-9*#]", "", offer.text)
        await self._close_offer(offer, f"Sent as tones: {digits}")
        if party is not None and party.up and digits:
            await party.sip.send_dtmf(digits)

    async def _toggle_offer(self, offer: SecondLine | RingGroup, who: int = 0) -> None:
        if isinstance(offer, RingGroup):
            await self._take_second_incoming(offer, who, transfer=False)
            return
        conv = offer.conversation
        chosen = self._second_dialled(offer)
        if chosen is None:
            if self._second_line(conv) not in self._lines_of(conv.member):
                await self._close_offer(offer, "You may not dial out on this line.")
            return
        line, dialled = chosen
        await self._close_offer(offer, f"Toggle: dialling {dialled.display}…")
        await conv.hold_active()
        party = await self._dial(conv, line, dialled)
        if party is None:
            held = conv.held_party()
            if held is not None:
                await conv.activate(held)
            return
        conv.add(party)
        await self._show_call(conv)

    async def _toggle(self, conv: Conversation) -> None:
        held = conv.held_party()
        if held is None:
            await self.reply(conv.member, "Nobody is on hold.")
            return
        await conv.hold_active()
        await conv.activate(held)
        await self._show_call(conv)

    async def _complete(self, conv: Conversation) -> None:
        held, active = conv.held_party(), conv.active
        if held is None or active is None:
            await self.reply(conv.member, "Complete works when someone is on hold.")
            return
        conv.drop(active)
        with contextlib.suppress(Exception):
            await active.sip.hang_up()
        await conv.activate(held)
        await self._show_call(conv)

    async def _transfer_offer(self, offer: SecondLine | RingGroup, who: int = 0) -> None:
        if isinstance(offer, RingGroup):
            await self._take_second_incoming(offer, who, transfer=True)
            return
        conv = offer.conversation
        party = conv.active
        chosen = self._second_dialled(offer)
        if party is None or chosen is None:
            return
        line, dialled = chosen
        await self._close_offer(offer, f"Transferring {party.who} to {dialled.display}…")
        target = await self._dial(conv, line, dialled)
        if target is None:
            return
        transfer = Transfer(conv, party, target.sip, dialled.display)
        self.r.transfers.add(transfer)
        target.sip.on_state.append(lambda _c: self._transfer_progress(transfer))

    def _transfer_progress(self, transfer: Transfer) -> None:
        if transfer not in self.r.transfers:
            return
        state = transfer.target.state
        if state is CallState.UP:
            self.r.transfers.discard(transfer)
            conv = transfer.conversation
            if transfer.party.ended or conv.closed:
                self.spawn(transfer.target.hang_up())
                return
            self._bridge(conv, transfer.party, transfer.target)
        elif state is CallState.ENDED:
            self.r.transfers.discard(transfer)
            reason = transfer.target.end_reason.value if transfer.target.end_reason else "failed"
            self.spawn(
                self.reply(
                    transfer.conversation.member,
                    f"Transfer to {transfer.display} failed: {reason.replace('-', ' ')}."
                    " You are still in the call.",
                )
            )

    def _bridge(self, conv: Conversation, party: Party, other: SipCall) -> None:
        """Connect *party* to *other* and let the member go."""
        conv.drop(party)
        for p in list(conv.parties):
            if p.sip is other:
                conv.drop(p)
        bridge = SipBridge(party.sip, other, lambda c: self.spawn(c))  # type: ignore[arg-type]
        self.r.bridges.add(bridge)
        bridge.start()

        def ended(_c: SipCall) -> None:
            if bridge.ended:
                self.r.bridges.discard(bridge)

        party.sip.on_state.append(ended)
        other.on_state.append(ended)
        self.spawn(self._end_conversation(conv, "transferred"))

    def on_refer(self, conv: Conversation, party: Party, user: str) -> bool:
        """The far end asks us (REFER, RFC 3515) to call *user* instead of it.

        Accepted only for the party the member talks to, and only where the
        line's dial plan permits the number: a caller must not be able to send
        the gateway to a premium number.  The new call replaces the party once
        it answers; the referrer hears how it went by NOTIFY.
        """
        plan = self.plans.get(party.line)
        if party is not conv.active or not party.up or plan is None or conv.closed:
            return False
        try:
            dialled = plan.normalise(user)
        except NumberRefused as exc:
            log.info("REFER from %s to %r declined: %s", party.who, user, exc.reason)
            return False
        self.spawn(self._follow_refer(conv, party, dialled))
        return True

    async def _follow_refer(self, conv: Conversation, party: Party, dialled: Dialled) -> None:
        target = await self._dial(conv, party.line, dialled)
        if target is None:
            party.sip.refer_progress(503, "Service Unavailable")
            return

        def progress(call: SipCall) -> None:
            if call.state is CallState.UP:
                party.sip.refer_progress(200, "OK")
            elif call.state is CallState.ENDED and call.answered_at is None:
                party.sip.refer_progress(call.end_status or 480, "Failed")
            else:
                return
            call.on_state.remove(progress)
            if not party.ended:
                self.spawn(party.sip.hang_up())

        target.sip.on_state.append(progress)
        # The transferor usually hangs up at once (blind transfer): from now on the
        # member is with the new party, hearing its ringback.
        conv.drop(party)
        conv.add(target)
        await self.reply(conv.member, f"{party.who} transferred you to {dialled.display}.")
        await self._show_call(conv)

    async def _transfer_held(self, conv: Conversation) -> None:
        held, active = conv.held_party(), conv.active
        if held is None or active is None or not active.up:
            await self.reply(conv.member, "Transfer needs a party on hold and one in the call.")
            return
        self._bridge(conv, held, active.sip)

    async def _take_second_incoming(self, group: RingGroup, who: int, *, transfer: bool) -> None:
        ring = group.offer_of(who)
        conv = self.r.conversations.get(who)
        if ring is None or conv is None or not group.claim(ring):
            return
        sip = group.sip
        self.r.keys.pop(group.key, None)
        sip.answer()
        self._log_member(sip, conv.member)
        party = Party(sip, group.number, group.name, group.line)
        if transfer and conv.active is not None and conv.active.up:
            await self.replace(
                conv.member,
                ring.message,
                OutgoingMessage(f"Transferred {party.who} to {conv.active.who}."),
            )
            current = conv.active
            conv.drop(current)
            self._bridge(conv, current, sip)
            return
        await self.replace(
            conv.member, ring.message, OutgoingMessage(f"Answered {party.who} (second line).")
        )
        await conv.hold_active()
        conv.add(party)
        await self._show_call(conv)

    async def _reject_incoming(self, conv: Conversation) -> None:
        for value in list(self.r.keys.values()):
            if isinstance(value, RingGroup):
                ring = value.offer_of(conv.member.telegram_id)
                if ring is not None:
                    value.withdraw(ring)
                    await self.replace(
                        conv.member,
                        ring.message,
                        OutgoingMessage(f"Rejected {texts.caller(value.number, value.name)}."),
                    )
                    return
        await self.reply(conv.member, "There is no second call to reject.")

    # -- /softphone --------------------------------------------------------------------------------

    async def _softphone(
        self, member: MemberRecord, ref: MessageRef | None, *, via_bot: bool
    ) -> None:
        message = texts.softphone(
            member.outgoing_method, member.default_line, self._lines_of(member)
        )
        if ref is not None:
            await self.replace(member, ref, message)
        elif via_bot:
            try:
                await self.telegram.messenger.send_from_bot(self._tg_member(member), message)
            except Exception as exc:
                log.warning("softphone settings to member %s failed: %s", member.id, exc)
        else:
            await self.send(member, message)

    async def _set_method(self, member: MemberRecord, method: str, ref: MessageRef | None) -> None:
        if method not in ("invite", "callback"):
            return
        chosen: OutgoingMethod = "invite" if method == "invite" else "callback"
        member = self.store.update_member(member.id, outgoing_method=chosen)
        await self._softphone(member, ref, via_bot=ref is None)

    async def _set_default_line(
        self, member: MemberRecord, line: str, ref: MessageRef | None
    ) -> None:
        line = "" if line == "*" else line
        if line and line not in self._lines_of(member):
            return
        member = self.store.update_member(member.id, default_line=line)
        await self._softphone(member, ref, via_bot=ref is None)

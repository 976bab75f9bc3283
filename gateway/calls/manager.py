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
import logging
import re
import time
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from gateway.calls import texts
from gateway.calls.conversation import Conversation, Party, new_key
from gateway.calls.dialplan import looks_like_number
from gateway.calls.handsetcall import HandsetCall
from gateway.calls.outgoing import OutgoingCalls, Request
from gateway.calls.ringgroup import RingGroup
from gateway.calls.secondline import SecondLine, SecondLineCalls
from gateway.sip.call import CallState, IncomingCall
from gateway.store import MemberRecord, OutgoingMethod
from gateway.telegram.call import TelegramCall
from gateway.telegram.messages import (
    ButtonPress,
    InboundEvent,
    MessageRef,
    SoftphoneCommand,
    StartCommand,
    TextFromMember,
)

if TYPE_CHECKING:
    from gateway.app import Gateway
    from gateway.calls.onboarding import Onboarding
    from gateway.hardware.handset import HandsetLeg

log = logging.getLogger(__name__)

TONES = re.compile(r"[0-9]{1,3}|[0-9*#]*[*#][0-9*#]*")  # typed during a call = key presses


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


class CallManager(OutgoingCalls, SecondLineCalls):
    def __init__(self, gateway: Gateway, onboarding: Onboarding | None = None) -> None:
        super().__init__(gateway)
        self.onboarding = onboarding
        self._unsubscribe: Any = None

    def start(self) -> None:
        self.gateway.on_member_call = self.on_sip_call
        self.telegram.on_incoming_call = self.on_member_call
        self._unsubscribe = self.telegram.messenger.subscribe(self.on_event)

    async def stop(self) -> None:
        if self._unsubscribe is not None:
            self._unsubscribe()
        for conversation in list(self.r.conversations.values()):
            await self._end_conversation(conversation, "the gateway is stopping")
        for handset_call in list(self.r.handset_calls):
            handset_call.hang_up()
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)

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
        for talk in self.r.handset_calls:
            sip = talk.sip
            out.append(
                ActiveCall(
                    "talking",
                    sip.direction,
                    sip.line.name,
                    sip.remote_number,
                    sip.remote_name,
                    talk.leg.name,
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

    def on_sip_call(self, sip: IncomingCall) -> None:
        try:
            members = self.store.members_of_line(sip.line.name)
        except Exception:
            log.exception("store: cannot read the members of line %s", sip.line.name)
            members = []
        callable_ = [m for m in members if m.access_hash]
        if self.telegram.calls is None:
            callable_ = []
        handset = self._ring_handset(sip)
        if not callable_ and handset is None:
            status, reason = self.no_answer_status(sip.line.name)
            why = "no member can be called" if members else "the line has no members"
            log.info("incoming call on %s from %s: %s", sip.line.name, sip.remote_number, why)
            self.set_outcome(sip, "missed")
            sip.reject(status, reason)
            return
        group = RingGroup(self, sip, callable_, handset=handset)
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

    def _ring_handset(self, sip: IncomingCall) -> HandsetLeg | None:
        """The local handset's leg when it rings for this call's line (None: not here)."""
        handset = self.gateway.handset
        if handset is None or not handset.rings_for(sip.line.name):
            return None
        return handset.ring(texts.caller(sip.remote_number, sip.remote_name))

    def take_at_handset(self, group: RingGroup, leg: HandsetLeg) -> None:
        """The local handset answered *group*: answer the SIP call and bridge it there."""
        sip = group.sip
        if self.r.keys.get(group.key) is group:
            del self.r.keys[group.key]  # no member's button reaches this call any more
        talk = HandsetCall(sip, leg, self.spawn, self.r.handset_calls.discard)
        if not talk.ended:
            self.r.handset_calls.add(talk)
            sip.answer()
        # The call log has no handset column: no member id, the handset's name.
        row = self.call_row(sip)
        if row is not None:
            try:
                self.store.call_member(row, None, leg.name)
            except Exception:
                log.exception("call log: cannot record the handset on call %s", sip.id)

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
        elif word == "seen":
            # Missed calls are seen: the missed-call LED on the box goes off.
            self.store.mark_missed_seen(time.time())
            await self.reply(member, "Missed calls marked as seen.")
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
        if conv.held_party() is not None:
            # One party on hold and one in the call is the most a member juggles.
            await self.reply(
                conv.member,
                "Someone is already on hold: Complete, Transfer or hang up before a third call.",
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

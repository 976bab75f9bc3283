"""The second line during a call: Toggle, Complete, Transfer, a second incoming call, REFER.

A number the member sends during a call becomes a :class:`SecondLine` offer
(Transfer, Toggle, Send as tones, Cancel).  Toggle holds the current party
(re-INVITE sendonly) and dials; Complete ends the active party and resumes
the held one; Transfer connects two SIP parties with a
:class:`~gateway.calls.conversation.SipBridge` and lets the member go.  A
second incoming call to a member in a call arrives through the ring group as
an offer with Toggle, Reject and Transfer.  A far end's REFER (blind transfer
of the member) is followed when the line's dial plan permits the target.
"""

from __future__ import annotations

import contextlib
import logging
import re
from dataclasses import dataclass

from gateway.calls import texts
from gateway.calls.conversation import Conversation, Party, SipBridge
from gateway.calls.dialplan import Dialled, NumberRefused
from gateway.calls.ringgroup import RingGroup
from gateway.calls.switchboard import Switchboard
from gateway.sip.call import CallState, SipCall
from gateway.telegram.messages import MessageRef, OutgoingMessage

log = logging.getLogger(__name__)


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


class SecondLineCalls(Switchboard):
    def _offer_of(self, conv: Conversation) -> SecondLine | RingGroup | None:
        """The newest open second-line offer of this conversation."""
        found: SecondLine | RingGroup | None = None
        for value in self.r.keys.values():
            if isinstance(value, SecondLine) and value.conversation is conv:
                found = value
            elif isinstance(value, RingGroup) and value.offer_of(conv.member.telegram_id):
                found = value
        return found

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
        if conv.held_party() is not None:
            await self._close_offer(offer, "Someone is already on hold.")
            return
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
        if ring is None or conv is None:
            return
        if not transfer and conv.held_party() is not None:
            await self.reply(conv.member, "Someone is already on hold: Reject or Transfer it.")
            return
        if not group.claim(ring):
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

    def _display(self, conv: Conversation, text: str) -> str:
        line = self._second_line(conv)
        plan = self.plans.get(line)
        if plan is None:
            return text
        try:
            return plan.normalise(text).display
        except NumberRefused:
            return text

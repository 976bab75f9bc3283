"""An incoming SIP call ringing every member of its line at once: first to answer wins.

Each free member gets a Telegram call and, at the same moment, a message with
the caller, the line and a DTMF keypad.  A member already in a conversation
gets a second-line message instead (Toggle / Reject / Transfer, handled by
the manager through :meth:`RingGroup.claim`).  The group ends when

* a member's Telegram call is up: the SIP call is answered and handed to a
  :class:`~gateway.calls.conversation.Conversation`; the others stop ringing
  and read who took it;
* the SIP caller gives up (CANCEL): everyone stops ringing, missed call;
* nobody is left ringing or deciding: the caller gets busy (486) or
  "temporarily unavailable" (480) per the line, members a missed call.

The local handset (``[handset]``, :mod:`gateway.hardware.handset`) rings in
the group like one more member when the line is attached to it: its
:class:`~gateway.hardware.handset.HandsetLeg` answers with the button, and
the SIP call is then bridged to it (:class:`~gateway.calls.handsetcall.HandsetCall`).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from gateway.calls import texts
from gateway.calls.conversation import new_key
from gateway.sip.call import CallState, IncomingCall
from gateway.telegram.call import CallOutcome, TelegramCall
from gateway.telegram.messages import MessageRef, OutgoingMessage

if TYPE_CHECKING:
    from gateway.calls.manager import CallManager
    from gateway.hardware.handset import HandsetLeg
    from gateway.store import MemberRecord

log = logging.getLogger(__name__)


@dataclass(eq=False)
class Ring:
    """One member's part in the group."""

    member: MemberRecord
    tg: TelegramCall | None = None
    message: MessageRef | None = None
    offer: bool = False  # second-line message to a member in a conversation
    done: bool = False  # declined, failed, withdrew


@dataclass(eq=False)
class RingGroup:
    manager: CallManager
    sip: IncomingCall
    members: list[MemberRecord]
    key: str = field(default_factory=new_key)
    rings: list[Ring] = field(default_factory=list)
    winner: MemberRecord | None = None
    handset: HandsetLeg | None = None  # the local handset ringing too (the manager rang it)
    started_at: float = field(default_factory=time.time)
    _changed: asyncio.Event = field(default_factory=asyncio.Event)
    _claimed: bool = False

    @property
    def number(self) -> str:
        return self.sip.remote_number

    @property
    def name(self) -> str:
        return self.sip.remote_name

    @property
    def line(self) -> str:
        return self.sip.line.name

    def poke(self, *_: object) -> None:
        self._changed.set()

    async def run(self) -> None:
        sip = self.sip
        sip.on_state.append(self.poke)
        sip.ring()
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self.manager.ring_timeout
        expired = False
        handset = self.handset
        if handset is not None:
            handset.on_state = self.poke
        await asyncio.gather(*(self._start(m) for m in self.members))
        while True:
            self._changed.clear()
            if self._claimed:
                return  # a second-line decision took it; the manager finishes it
            if sip.state is CallState.ENDED:
                await self._finish(None, caller_gave_up=True)
                return
            winner = next((r for r in self.rings if r.tg is not None and r.tg.active_at), None)
            if winner is not None:
                await self._finish(winner)
                return
            if handset is not None and handset.answered_at is not None and not handset.ended:
                await self._answer_at_handset(handset)
                return
            if all(r.done or (r.tg is not None and r.tg.ended) for r in self.rings) and (
                handset is None or handset.ended
            ):
                await self._finish(None)
                return
            remaining = deadline - loop.time()
            if remaining <= 0 and not expired:
                # Telegram calls time out by themselves; a second-line offer and the
                # handset do not.  From now on only a change wakes the loop.
                expired = True
                for ring in self.rings:
                    if ring.offer:
                        ring.done = True
                if handset is not None:
                    handset.hangup("no-answer")
                continue
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._changed.wait(), None if expired else remaining)

    async def _start(self, member: MemberRecord) -> None:
        ring = Ring(member)
        self.rings.append(ring)
        manager = self.manager
        if manager.conversation_of(member.telegram_id) is not None:
            ring.offer = True
            ring.message = await manager.send(
                member, texts.second_line_incoming(self.key, self.number, self.name, self.line)
            )
            if ring.message is None:
                ring.done = True
            self.poke()
            return
        message = asyncio.create_task(
            manager.send(member, texts.incoming(self.key, self.number, self.name, self.line))
        )
        ring.tg = await manager.ring_member(member)
        if ring.tg is None:
            ring.done = True
        else:
            ring.tg.on_state = self.poke
        ring.message = await message
        self.poke()

    # -- second-line decisions (members already in a call) ---------------------------------

    def offer_of(self, member_id: int) -> Ring | None:
        return next(
            (r for r in self.rings if r.offer and not r.done and r.member.telegram_id == member_id),
            None,
        )

    def claim(self, ring: Ring) -> bool:
        """A busy member takes the call (Toggle or Transfer): stop the others ringing."""
        if self._claimed or self.winner is not None or self.sip.state is CallState.ENDED:
            return False
        self._claimed = True
        self.winner = ring.member
        self.manager.spawn(self._stop_others(ring, answered_by=_name(ring.member)))
        self.poke()
        return True

    def withdraw(self, ring: Ring) -> None:
        """Reject: this member does not take it; the others may."""
        ring.done = True
        self.poke()

    # -- the end -----------------------------------------------------------------------------

    async def _finish(self, winner: Ring | None, *, caller_gave_up: bool = False) -> None:
        manager = self.manager
        if winner is not None and self.sip.state is not CallState.ENDED:
            assert winner.tg is not None
            self.winner = winner.member
            await self._stop_others(winner, answered_by=_name(winner.member))
            manager.take_incoming(self, winner.member, winner.tg, winner.message)
            return
        if winner is not None:
            caller_gave_up = True  # answered in Telegram just as the caller hung up
        await self._stop_others(None, answered_by=None)
        if not caller_gave_up:
            status, reason = manager.no_answer_status(self.sip.line.name)
            manager.set_outcome(self.sip, "missed")
            self.sip.reject(status, reason)
        why = self._why_missed()
        log.info("incoming call on %s from %s missed (%s)", self.line, self.number, why)
        for ring in self.rings:
            await manager.replace(
                ring.member,
                ring.message,
                texts.missed(self.number, self.name, self.line, self.started_at),
            )

    async def _answer_at_handset(self, handset: HandsetLeg) -> None:
        """The handset answered: the caller is connected at once, then the others stop."""
        self.manager.take_at_handset(self, handset)
        await self._stop_others(handset, answered_by=handset.name)

    def _why_missed(self) -> str:
        outcomes = sorted({missed_outcome(r.tg) for r in self.rings})
        if self.handset is not None:
            outcomes.append(f"{self.handset.name}: {self.handset.outcome or 'no-answer'}")
        return ", ".join(outcomes) or "no members on the line"

    async def _stop_others(
        self, winner: Ring | HandsetLeg | None, *, answered_by: str | None
    ) -> None:
        manager = self.manager
        handset = self.handset
        if handset is not None and handset is not winner and not handset.ended:
            handset.on_state = None
            handset.hangup("cancelled")
        for ring in self.rings:
            if ring is winner:
                continue
            if ring.tg is not None and not ring.tg.ended:
                ring.tg.on_state = None
                with contextlib.suppress(Exception):
                    await ring.tg.hangup()
            if answered_by is not None and ring.message is not None:
                await manager.replace(
                    ring.member,
                    ring.message,
                    OutgoingMessage(
                        f"📞 Call from {texts.caller(self.number, self.name)} on {self.line}"
                        f" was answered by {answered_by}."
                    ),
                )
            ring.done = True


def _name(member: MemberRecord) -> str:
    return member.name or "another member"


def missed_outcome(tg: TelegramCall | None) -> str:
    if tg is None or tg.outcome is None:
        return "not callable"
    if tg.outcome is CallOutcome.PRIVACY_RESTRICTED:
        return "calls not allowed by the member's privacy settings"
    return str(tg.outcome.value)

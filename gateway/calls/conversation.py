"""One member's Telegram call and the SIP parties it reaches.

A :class:`Conversation` owns a member's single :class:`TelegramCall` and up
to two SIP parties: the one the member hears (``active``) and one on hold
(re-INVITE sendonly; our RTP then carries silence).  Toggle swaps them,
Complete ends the active one and brings the held one back, Transfer joins
two SIP parties with a :class:`SipBridge` and lets the member go.

Audio: the SIP session delivers one ptime of PCM per media-clock tick; it is
cut into the 10 ms frames the Telegram leg takes.  The member's 10 ms frames
go straight into the active party's RTP queue.  While the active party is
dialling, the member hears ringback (after 180) or the far end's early media
(after 183); a failed dial plays busy for two seconds.
"""

from __future__ import annotations

import logging
import secrets
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from gateway.media.tones import BUSY, RINGBACK, ToneSource
from gateway.sip.call import CallState, SipCall
from gateway.telegram.call import CallState as TgState
from gateway.telegram.call import TelegramCall
from gateway.telegram.messages import MessageRef

if TYPE_CHECKING:
    from gateway.calls.switchboard import Switchboard
    from gateway.store import MemberRecord

log = logging.getLogger(__name__)

TG_FRAME = 160  # bytes: 10 ms at 8 kHz s16le
FAILED_TONE_S = 2.0  # busy tone after a failed dial before the member is told


def new_key() -> str:
    return secrets.token_urlsafe(4)


@dataclass(eq=False)
class Party:
    """A SIP call inside a conversation."""

    sip: SipCall
    number: str
    name: str
    line: str
    held: bool = False

    @property
    def who(self) -> str:
        if self.name and self.name != self.number:
            return f"{self.name} ({self.number})" if self.number else self.name
        return self.number or "unknown"

    @property
    def up(self) -> bool:
        return self.sip.state is CallState.UP

    @property
    def ended(self) -> bool:
        return self.sip.state is CallState.ENDED


class SipBridge:
    """Two SIP calls talking to each other (after a transfer); either end ends both."""

    def __init__(self, a: SipCall, b: SipCall, spawn: Callable[[object], None]) -> None:
        self.a, self.b = a, b
        self._spawn = spawn
        self.started_at = time.time()
        for one, other in ((a, b), (b, a)):
            one.on_audio = other.write_audio
            one.on_dtmf = None
            one.on_state.append(self._on_state)

    def start(self) -> None:
        for call in (self.a, self.b):
            if call.local_hold and call.state is CallState.UP:
                self._spawn(call.resume())

    @property
    def ended(self) -> bool:
        return self.a.state is CallState.ENDED and self.b.state is CallState.ENDED

    def _on_state(self, call: SipCall) -> None:
        if call.state is not CallState.ENDED:
            return
        other = self.b if call is self.a else self.a
        if other.state is not CallState.ENDED:
            self._spawn(other.hang_up())


@dataclass(eq=False)
class Conversation:
    manager: Switchboard
    member: MemberRecord
    tg: TelegramCall
    key: str = field(default_factory=new_key)
    parties: list[Party] = field(default_factory=list)
    active: Party | None = None
    message: MessageRef | None = None
    typed: str = ""  # the dial pad's number so far
    default_line: str = ""
    started_at: float = field(default_factory=time.time)
    _tone: ToneSource | None = None
    _tone_until: float = 0.0
    _closed: bool = False

    def __post_init__(self) -> None:
        self.tg.on_audio = self._from_member
        self.tg.on_state = self._on_tg_state
        self.manager.clock.subscribe(self._tick)

    # -- audio ---------------------------------------------------------------------------

    def _from_member(self, frame: bytes) -> None:
        party = self.active
        if party is not None and party.up and not party.held:
            party.sip.write_audio(frame)

    def _from_party(self, party: Party, pcm: bytes) -> None:
        if party is not self.active or party.held or self.tg.state is not TgState.ACTIVE:
            return
        if party.sip.state not in (CallState.UP, CallState.EARLY):
            return
        for i in range(0, len(pcm) - TG_FRAME + 1, TG_FRAME):
            self.tg.write_audio(pcm[i : i + TG_FRAME])

    def _tick(self, now: float) -> None:
        tone = self._tone
        if tone is None or self.tg.state is not TgState.ACTIVE:
            return
        if self._tone_until and now >= self._tone_until:
            self._tone = None
            return
        # The clock ticks every 20 ms; the Telegram leg takes 10 ms frames.
        self.tg.write_audio(tone.frame())
        self.tg.write_audio(tone.frame())

    def _update_tone(self) -> None:
        party = self.active
        if party is not None and party.sip.state is CallState.RINGING:
            if self._tone is None or self._tone.plan is not RINGBACK:
                self._tone, self._tone_until = ToneSource(RINGBACK), 0.0
        elif self._tone is not None and self._tone.plan is RINGBACK:
            self._tone = None

    def play_busy(self) -> None:
        self._tone = ToneSource(BUSY)
        self._tone_until = time.monotonic() + FAILED_TONE_S

    # -- parties -------------------------------------------------------------------------

    def add(self, party: Party) -> None:
        """Make *party* the active one (hold the current one first with :meth:`hold_active`)."""
        self.parties.append(party)
        self.active = party
        party.sip.on_audio = lambda pcm: self._from_party(party, pcm)
        party.sip.on_dtmf = None
        party.sip.on_refer = lambda target: self.manager.on_refer(self, party, target.user or "")
        party.sip.on_state.append(lambda _c: self._on_party_state(party))
        self._update_tone()

    async def hold_active(self) -> None:
        party = self.active
        if party is None or party.held:
            return
        party.held = True
        if party.up:
            await party.sip.hold()
        elif not party.ended:
            # Not answered yet: a second line replaces a call still ringing.
            self.drop(party)
            await party.sip.hang_up()

    async def activate(self, party: Party) -> None:
        self.active = party
        if party.held:
            party.held = False
            if party.up:
                await party.sip.resume()
        self._update_tone()

    def held_party(self) -> Party | None:
        return next((p for p in self.parties if p is not self.active and not p.ended), None)

    def drop(self, party: Party) -> None:
        """Forget a party (it ended or was transferred away)."""
        if party in self.parties:
            self.parties.remove(party)
        party.sip.on_audio = None
        party.sip.on_refer = None
        if self.active is party:
            self.active = None

    def _on_party_state(self, party: Party) -> None:
        if self._closed or party not in self.parties:
            return
        if party.ended:
            was_active = party is self.active
            self.drop(party)
            self.manager.party_ended(self, party, was_active)
            return
        if party is self.active:
            self._update_tone()
        self.manager.party_changed(self, party)

    def _on_tg_state(self, call: TelegramCall) -> None:
        if call.ended and not self._closed:
            self.manager.member_left(self)

    # -- the end ----------------------------------------------------------------------------

    def close(self) -> None:
        """Stop audio; parties still attached are the caller's to hang up."""
        if self._closed:
            return
        self._closed = True
        self.manager.clock.unsubscribe(self._tick)
        self.tg.on_audio = None
        self._tone = None
        for party in self.parties:
            party.sip.on_audio = None

    @property
    def closed(self) -> bool:
        return self._closed

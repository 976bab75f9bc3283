"""The local handset talking to a SIP call: audio both ways, either end hanging up ends both.

When the handset (:mod:`gateway.hardware.handset`) wins a ring group, there
is no member and no Telegram call, so instead of a
:class:`~gateway.calls.conversation.Conversation` the SIP call is bridged
straight to the handset's leg, as :class:`~gateway.calls.conversation.SipBridge`
bridges two SIP calls.  The SIP session hands one ptime of PCM per clock tick
to the speaker; the microphone gives 20 ms per tick to the SIP send queue.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Coroutine
from typing import Any

from gateway.hardware.handset import HandsetLeg
from gateway.sip.call import CallState, SipCall


class HandsetCall:
    def __init__(
        self,
        sip: SipCall,
        leg: HandsetLeg,
        spawn: Callable[[Coroutine[Any, Any, Any]], object],
        on_end: Callable[[HandsetCall], None],
    ) -> None:
        self.sip, self.leg = sip, leg
        self.started_at = time.time()
        self._spawn = spawn
        self._on_end = on_end
        self._over = False
        sip.on_audio = leg.write_audio
        sip.on_dtmf = None
        leg.on_audio = sip.write_audio
        leg.on_state = self._on_leg
        sip.on_state.append(self._on_sip)
        if sip.state is CallState.ENDED or leg.ended:
            self._end()

    @property
    def ended(self) -> bool:
        return self._over

    def _on_leg(self, leg: HandsetLeg) -> None:
        if leg.ended:
            self._end()

    def _on_sip(self, sip: SipCall) -> None:
        if sip.state is CallState.ENDED:
            self._end()

    def _end(self) -> None:
        if self._over:
            return
        self._over = True
        self.sip.on_audio = None
        self.leg.on_audio = None
        self.leg.on_state = None
        self.leg.hangup()
        if self.sip.state is not CallState.ENDED:
            self._spawn(self.sip.hang_up())
        self._on_end(self)

    def hang_up(self) -> None:
        """End both sides (the gateway is stopping)."""
        self._end()

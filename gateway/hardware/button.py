"""The button on the box: how long it was held decides what it does.

Not an RFC module.  :func:`classify` and :func:`decide` are pure (tested
without gpiozero).  :class:`HomeButton` wraps a gpiozero ``Button``: its
callbacks run in gpiozero's threads, so each one only takes the time and
hands over to the event loop with ``call_soon_threadsafe``.

=============  ==================================================  =========
held           what it does                                        when
=============  ==================================================  =========
< 1.5 s        answer the ringing handset, or hang it up           released
1.5 s .. 4 s   reject the call ringing on the handset              released
5 s            setup mode: the web UI offers a new admin password  at 5 s
=============  ==================================================  =========

Between 4 and 5 s nothing happens: a hold meant as a long press and let go
early must not reject a call.
"""

from __future__ import annotations

import asyncio
import enum
import logging
import time
from collections.abc import Callable
from typing import Any

log = logging.getLogger(__name__)

SHORT_MAX = 1.5  # seconds: shorter is a short press
MEDIUM_MAX = 4.0  # seconds: 1.5 .. 4 is a medium hold
LONG_HOLD = 5.0  # seconds held: setup mode (fires while still held)
BOUNCE = 0.05  # seconds of contact bounce gpiozero ignores


class Press(enum.Enum):
    SHORT = "short"
    MEDIUM = "medium"
    LONG = "long"
    NONE = "none"  # between medium and long: ignored


class Action(enum.Enum):
    ANSWER_OR_HANG_UP = "answer_or_hang_up"  # handset.short_press()
    REJECT = "reject"  # handset.reject()
    SETUP_MODE = "setup_mode"


def classify(held: float) -> Press:
    """The kind of press that lasted *held* seconds."""
    if held < SHORT_MAX:
        return Press.SHORT
    if held <= MEDIUM_MAX:
        return Press.MEDIUM
    if held >= LONG_HOLD:
        return Press.LONG
    return Press.NONE


def decide(press: Press, *, handset: bool, ringing: bool) -> Action | None:
    """What *press* does: the handset's actions need a handset (and a ringing call)."""
    if press is Press.LONG:
        return Action.SETUP_MODE
    if press is Press.SHORT and handset:
        return Action.ANSWER_OR_HANG_UP
    if press is Press.MEDIUM and handset and ringing:
        return Action.REJECT
    return None


class HomeButton:
    """A push button between a GPIO pin and ground (or 3.3 V with ``pull_up=False``).

    *on_press* gets the seconds a press lasted when it is released (not for a
    press that reached *long_hold*); *on_long* runs once the button has been
    held *long_hold* seconds.  Both run in the event loop.  **Raises** what
    gpiozero raises when the pin cannot be had.
    """

    def __init__(
        self,
        pin: int,
        *,
        pull_up: bool,
        on_press: Callable[[float], None],
        on_long: Callable[[], None],
        loop: asyncio.AbstractEventLoop | None = None,
        long_hold: float = LONG_HOLD,
        bounce: float | None = BOUNCE,
        clock: Callable[[], float] = time.monotonic,
        pin_factory: Any = None,
    ) -> None:
        from gpiozero import Button  # here: classify/decide never load gpiozero

        self.on_press = on_press
        self.on_long = on_long
        self._loop = loop or asyncio.get_running_loop()
        self._clock = clock
        self._pressed_at: float | None = None
        self._long_fired = False
        self.device = Button(
            pin,
            pull_up=pull_up,
            bounce_time=bounce,
            hold_time=long_hold,
            pin_factory=pin_factory,
        )
        # gpiozero's threads: take the time, then go to the loop.
        self.device.when_pressed = lambda: self._hand_over(self._pressed, self._clock())
        self.device.when_released = lambda: self._hand_over(self._released, self._clock())
        self.device.when_held = lambda: self._hand_over(self._held, self._clock())

    def _hand_over(self, handler: Callable[[float], None], at: float) -> None:
        if not self._loop.is_closed():
            self._loop.call_soon_threadsafe(handler, at)

    def _pressed(self, at: float) -> None:
        self._pressed_at = at
        self._long_fired = False

    def _held(self, _at: float) -> None:
        if self._pressed_at is None or self._long_fired:
            return
        self._long_fired = True
        self._run(self.on_long)

    def _released(self, at: float) -> None:
        started, self._pressed_at = self._pressed_at, None
        if started is None or self._long_fired:
            return  # a long press acted when it reached its time
        held = max(0.0, at - started)
        self._run(lambda: self.on_press(held))

    @staticmethod
    def _run(action: Callable[[], None]) -> None:
        try:
            action()
        except Exception:
            log.exception("button: the press failed")

    def close(self) -> None:
        self.device.close()

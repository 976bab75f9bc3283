"""What the status LEDs show: a pure function from a status snapshot to light patterns.

Not an RFC module, and no IO: :func:`led_patterns` (six single LEDs) and
:func:`rgb_light` (one RGB LED) take a :class:`Snapshot` and return what each
light should do; :mod:`gateway.hardware.leds` applies that to the pins.  The
meanings are the README's table ("LEDs and button").
"""

from __future__ import annotations

import enum
from dataclasses import dataclass

from gateway.config import LED_NAMES

# Line states (gateway.app.LineStatus.state) in which a line works.
LINE_UP = frozenset({"registered", "ready"})
# Telegram account states (gateway.telegram.account.ConnectionState values) that need
# the household: sign in (again).  "disconnected" counts only with an error.
TELEGRAM_NEEDS_ATTENTION = frozenset({"needs_login", "logged_out"})


class Pattern(enum.Enum):
    OFF = "off"
    ON = "on"
    SLOW = "slow"  # slow blink: waiting for something (missed calls, registering)
    FAST = "fast"  # fast blink: act now (ringing, setup mode)


# Seconds on and off of each blink.
BLINK_TIMES: dict[Pattern, tuple[float, float]] = {
    Pattern.SLOW: (1.0, 1.0),
    Pattern.FAST: (0.15, 0.15),
}

Color = tuple[float, float, float]  # red, green, blue, 0..1

RED: Color = (1.0, 0.0, 0.0)
GREEN: Color = (0.0, 1.0, 0.0)
DIM_GREEN: Color = (0.0, 0.08, 0.0)
BLUE: Color = (0.0, 0.0, 1.0)
AMBER: Color = (1.0, 0.5, 0.0)
WHITE: Color = (1.0, 1.0, 1.0)
BLACK: Color = (0.0, 0.0, 0.0)


@dataclass(frozen=True)
class Snapshot:
    """The gateway's state as far as the lights care (see leds.snapshot_of)."""

    lines: tuple[str, ...] = ()  # state of each enabled line
    telegram: str = "disconnected"  # the account's ConnectionState value
    telegram_error: bool = False  # the account reports an error (failed to connect)
    ringing: bool = False  # an incoming call rings (a ring group is active)
    in_call: bool = False  # a call is in progress (talking, on hold, dialling)
    missed: int = 0  # missed calls not yet seen
    setup_mode: bool = False  # the button was held: the web UI offers a new password

    @property
    def lines_up(self) -> bool:
        return bool(self.lines) and all(state in LINE_UP for state in self.lines)

    @property
    def needs_attention(self) -> bool:
        """A line failed, or the Telegram account is not signed in or cannot connect."""
        if any(state == "failed" for state in self.lines):
            return True
        if self.telegram in TELEGRAM_NEEDS_ATTENTION:
            return True
        return self.telegram == "disconnected" and self.telegram_error

    @property
    def starting(self) -> bool:
        """Something is on its way up: a line registering, Telegram connecting."""
        lines_coming = any(state not in LINE_UP and state != "failed" for state in self.lines)
        return lines_coming or self.telegram == "connecting"


def led_patterns(s: Snapshot) -> dict[str, Pattern]:
    """The pattern of each single LED, by its ``[leds]`` key."""
    if not s.lines:
        line = Pattern.OFF
    elif s.lines_up:
        line = Pattern.ON
    else:
        line = Pattern.SLOW  # registering, not registered, or failed
    if s.telegram == "connected":
        telegram = Pattern.ON
    elif s.telegram == "connecting":
        telegram = Pattern.SLOW
    else:
        telegram = Pattern.OFF
    if s.setup_mode:
        error = Pattern.FAST
    else:
        error = Pattern.ON if s.needs_attention else Pattern.OFF
    patterns = {
        "line": line,
        "telegram": telegram,
        "ringing": Pattern.FAST if s.ringing else Pattern.OFF,
        "call": Pattern.ON if s.in_call else Pattern.OFF,
        "missed": Pattern.SLOW if s.missed > 0 else Pattern.OFF,
        "error": error,
    }
    assert tuple(patterns) == LED_NAMES
    return patterns


@dataclass(frozen=True)
class Light:
    """What the one RGB LED does: *color* steady or blinking (with black)."""

    color: Color
    pattern: Pattern


def rgb_light(s: Snapshot) -> Light:
    """The most important thing first (the README's table)."""
    if s.setup_mode:
        return Light(WHITE, Pattern.FAST)
    if s.needs_attention:
        return Light(RED, Pattern.ON)
    if s.ringing:
        return Light(BLUE, Pattern.FAST)
    if s.in_call:
        return Light(GREEN, Pattern.ON)
    if s.missed > 0:
        return Light(AMBER, Pattern.SLOW)
    if s.starting:
        return Light(GREEN, Pattern.SLOW)
    if s.lines_up and s.telegram == "connected":
        return Light(DIM_GREEN, Pattern.ON)
    return Light(BLACK, Pattern.OFF)

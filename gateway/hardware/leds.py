"""The status LEDs on the pins of ``[leds]``, through gpiozero.

Not an RFC module.  :class:`LedBoard` owns the gpiozero devices and applies
patterns (:mod:`gateway.hardware.indicator`) only when they change, so a
blink keeps its rhythm between polls.  gpiozero blinks in a thread of its
own; nothing here blocks the event loop.  :func:`open_board` returns None,
with the reason, where there is no GPIO (a laptop, a container, CI).
"""

from __future__ import annotations

import asyncio
import warnings
from typing import Any

from gateway.config import LED_NAMES, LedSettings
from gateway.hardware.indicator import BLINK_TIMES, BLUE, GREEN, RED, Light, Pattern

SELF_TEST_STEP = 0.25  # seconds each LED (or colour) is lit at start-up


def fitted(settings: LedSettings) -> bool:
    """Whether ``[leds]`` names any pin."""
    return settings.rgb is not None or any(getattr(settings, n) is not None for n in LED_NAMES)


class LedBoard:
    """The fitted LEDs.  **Raises** what gpiozero raises when the pins cannot be had."""

    def __init__(self, settings: LedSettings, pin_factory: Any = None) -> None:
        from gpiozero import LED, RGBLED  # here: the sans-IO modules never load gpiozero

        self.leds: dict[str, Any] = {}
        self.rgb: Any = None
        self._shown: dict[str, Pattern] = {}
        self._shown_rgb: Light | None = None
        try:
            for name in LED_NAMES:
                pin = getattr(settings, name)
                if pin is not None:
                    self.leds[name] = LED(
                        pin, active_high=settings.active_high, pin_factory=pin_factory
                    )
            if settings.rgb is not None:
                red, green, blue = settings.rgb
                # PWM for the dim "all good" green; gpiozero's lgpio factory does it in software.
                self.rgb = RGBLED(
                    red,
                    green,
                    blue,
                    active_high=settings.active_high,
                    pwm=True,
                    pin_factory=pin_factory,
                )
        except BaseException:
            self.close()
            raise

    def show(self, patterns: dict[str, Pattern]) -> None:
        """Switch each single LED to its pattern (those that changed only)."""
        for name, led in self.leds.items():
            pattern = patterns.get(name, Pattern.OFF)
            if self._shown.get(name) is pattern:
                continue
            self._shown[name] = pattern
            if pattern is Pattern.ON:
                led.on()
            elif pattern is Pattern.OFF:
                led.off()
            else:
                on, off = BLINK_TIMES[pattern]
                led.blink(on_time=on, off_time=off, background=True)

    def show_rgb(self, light: Light) -> None:
        if self.rgb is None or light == self._shown_rgb:
            return
        self._shown_rgb = light
        if light.pattern is Pattern.OFF:
            self.rgb.off()
        elif light.pattern is Pattern.ON:
            self.rgb.color = light.color
        else:
            on, off = BLINK_TIMES[light.pattern]
            self.rgb.blink(on_time=on, off_time=off, on_color=light.color, background=True)

    def forget(self) -> None:
        """The next :meth:`show` sets every LED (after the self-test switched them)."""
        self._shown.clear()
        self._shown_rgb = None

    async def self_test(self, step: float = SELF_TEST_STEP) -> None:
        """Each fitted LED lit in turn, then the RGB LED red, green, blue; all off after."""
        for led in self.leds.values():
            led.on()
            await asyncio.sleep(step)
            led.off()
        if self.rgb is not None:
            for color in (RED, GREEN, BLUE):
                self.rgb.color = color
                await asyncio.sleep(step)
            self.rgb.off()
        self.forget()

    def close(self) -> None:
        for led in self.leds.values():
            led.close()
        if self.rgb is not None:
            self.rgb.close()
        self.leds.clear()
        self.rgb = None


def open_board(settings: LedSettings, pin_factory: Any = None) -> tuple[LedBoard | None, str]:
    """The board, or None and why not (no GPIO, pin busy)."""
    try:
        with warnings.catch_warnings():
            # gpiozero warns once per pin factory it tries; the one line we log says it all.
            warnings.simplefilter("ignore")
            return LedBoard(settings, pin_factory), ""
    except Exception as exc:  # gpiozero's BadPinFactory, GPIOPinInUse, OSError from /dev/gpio*
        return None, f"{type(exc).__name__}: {exc}"

"""The button: press lengths (pure), the gpiozero button on mock pins, what presses do."""

from __future__ import annotations

import asyncio
from pathlib import Path
from types import SimpleNamespace

import pytest
from gpiozero.pins.mock import MockFactory

from gateway.config import LedSettings
from gateway.hardware.button import Action, HomeButton, Press, classify, decide
from gateway.hardware.setupmode import setup_mode_until
from tests.hardware.test_leds import FakeGateway, panel_for

BUTTON = 16


@pytest.mark.parametrize(
    ("held", "press"),
    [
        (0.0, Press.SHORT),
        (0.3, Press.SHORT),
        (1.49, Press.SHORT),
        (1.5, Press.MEDIUM),
        (4.0, Press.MEDIUM),
        (4.01, Press.NONE),  # meant as a long press, let go early: nothing
        (4.99, Press.NONE),
        (5.0, Press.LONG),
        (30.0, Press.LONG),
    ],
)
def test_classify(held: float, press: Press) -> None:
    assert classify(held) is press


@pytest.mark.parametrize(
    ("press", "handset", "ringing", "action"),
    [
        (Press.SHORT, True, False, Action.ANSWER_OR_HANG_UP),
        (Press.SHORT, True, True, Action.ANSWER_OR_HANG_UP),
        (Press.SHORT, False, True, None),  # no handset: nothing to answer with
        (Press.MEDIUM, True, True, Action.REJECT),
        (Press.MEDIUM, True, False, None),  # nothing rings
        (Press.MEDIUM, False, True, None),
        (Press.NONE, True, True, None),
        (Press.LONG, False, False, Action.SETUP_MODE),
        (Press.LONG, True, True, Action.SETUP_MODE),
    ],
)
def test_decide(press: Press, handset: bool, ringing: bool, action: Action | None) -> None:
    assert decide(press, handset=handset, ringing=ringing) is action


# ------------------------------------------------------------------ on mock pins


async def settle() -> None:
    for _ in range(3):
        await asyncio.sleep(0)


async def test_press_length_is_measured_and_reaches_the_loop(mock_pins: MockFactory) -> None:
    now = [100.0]
    presses: list[float] = []
    longs: list[bool] = []
    button = HomeButton(
        BUTTON,
        pull_up=True,
        on_press=presses.append,
        on_long=lambda: longs.append(True),
        bounce=None,
        clock=lambda: now[0],
    )
    pin = mock_pins.pin(BUTTON)
    try:
        assert pin.state == 1  # pulled up: released
        pin.drive_low()
        now[0] += 0.4
        pin.drive_high()
        await settle()
        assert presses == [pytest.approx(0.4)] and not longs
        pin.drive_low()
        now[0] += 2.5
        pin.drive_high()
        await settle()
        assert presses[1:] == [pytest.approx(2.5)]
    finally:
        button.close()


async def test_long_hold_fires_while_held_and_the_release_does_nothing(
    mock_pins: MockFactory,
) -> None:
    presses: list[float] = []
    held = asyncio.Event()
    button = HomeButton(
        BUTTON, pull_up=True, on_press=presses.append, on_long=held.set, long_hold=0.1, bounce=None
    )
    pin = mock_pins.pin(BUTTON)
    try:
        pin.drive_low()
        await asyncio.wait_for(held.wait(), 5)  # gpiozero's hold thread, handed to the loop
        pin.drive_high()
        await settle()
        assert presses == []
    finally:
        button.close()


async def test_pull_down_button_is_pressed_when_high(mock_pins: MockFactory) -> None:
    presses: list[float] = []
    button = HomeButton(
        BUTTON, pull_up=False, on_press=presses.append, on_long=lambda: None, bounce=None
    )
    pin = mock_pins.pin(BUTTON)
    try:
        pin.drive_high()
        pin.drive_low()
        await settle()
        assert len(presses) == 1
    finally:
        button.close()


# ------------------------------------------------------------------ what a press does


class Handset:
    def __init__(self, ringing: bool | None = None) -> None:
        self.done: list[str] = []
        if ringing is not None:
            self.ringing = ringing

    def short_press(self) -> None:
        self.done.append("short_press")

    async def reject(self) -> None:  # an async handset method is awaited in a task
        self.done.append("reject")


async def test_presses_go_to_the_handset(mock_pins: MockFactory, tmp_path: Path) -> None:
    gw = FakeGateway(tmp_path, LedSettings(), button_pin=BUTTON)
    handset = Handset(ringing=True)
    gw.handset = handset  # type: ignore[attr-defined]
    panel = panel_for(gw)
    panel.start()
    try:
        assert panel.button is not None
        panel.on_press(0.5)
        panel.on_press(2.0)
        await settle()
        assert handset.done == ["short_press", "reject"]
        handset.ringing = False
        panel.on_press(2.0)  # nothing rings: a medium hold does nothing
        panel.on_press(4.5)
        await settle()
        assert handset.done == ["short_press", "reject"]
    finally:
        await panel.stop()


async def test_handset_without_a_ringing_flag_rings_with_the_ring_groups(
    mock_pins: MockFactory, tmp_path: Path
) -> None:
    gw = FakeGateway(tmp_path, LedSettings(), button_pin=BUTTON)
    handset = Handset()
    gw.handset = handset  # type: ignore[attr-defined]
    panel = panel_for(gw)
    panel.on_press(2.0)
    gw.groups.append(SimpleNamespace(winner=None))
    panel.on_press(2.0)
    await settle()
    assert handset.done == ["reject"]


async def test_without_a_handset_a_short_press_does_nothing(tmp_path: Path) -> None:
    panel = panel_for(FakeGateway(tmp_path, LedSettings()))
    panel.on_press(0.2)  # logged, nothing else
    panel.on_press(6.0)  # a long press reported on release still means setup mode
    assert setup_mode_until(tmp_path) is not None


async def test_holding_the_real_button_starts_setup_mode(
    mock_pins: MockFactory, tmp_path: Path
) -> None:
    gw = FakeGateway(tmp_path, LedSettings(error=25), button_pin=BUTTON)
    panel = panel_for(gw)
    panel.start()
    try:
        assert panel.button is not None
        panel.button.device.hold_time = 0.1  # 5 s in the box; the test does not wait that long
        mock_pins.pin(BUTTON).drive_low()
        loop = asyncio.get_running_loop()
        deadline = loop.time() + 5
        while setup_mode_until(tmp_path) is None:
            assert loop.time() < deadline, "no setup mode"
            await asyncio.sleep(0.02)
        mock_pins.pin(BUTTON).drive_high()
        assert panel.in_setup_mode()
    finally:
        await panel.stop()

"""Status LEDs: the patterns (pure), the board on mock pins, the front panel's polling."""

from __future__ import annotations

import asyncio
import logging
import os
import stat
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest
from gpiozero import Device
from gpiozero.exc import BadPinFactory
from gpiozero.pins.mock import MockFactory

from gateway.config import LedSettings
from gateway.hardware.indicator import (
    AMBER,
    BLACK,
    BLUE,
    DIM_GREEN,
    GREEN,
    RED,
    WHITE,
    Light,
    Pattern,
    Snapshot,
    led_patterns,
    rgb_light,
)
from gateway.hardware.leds import LedBoard, open_board
from gateway.hardware.panel import FrontPanel
from gateway.hardware.setupmode import setup_mode_path, setup_mode_until

ON, OFF, SLOW, FAST = Pattern.ON, Pattern.OFF, Pattern.SLOW, Pattern.FAST
IDLE = Snapshot(lines=("registered", "ready"), telegram="connected")
SIX = LedSettings(line=17, telegram=27, ringing=22, call=23, missed=24, error=25)


# ------------------------------------------------------------------ patterns (pure)


def test_idle_box_shows_line_and_telegram_only() -> None:
    assert led_patterns(IDLE) == {
        "line": ON,
        "telegram": ON,
        "ringing": OFF,
        "call": OFF,
        "missed": OFF,
        "error": OFF,
    }


@pytest.mark.parametrize(
    ("lines", "line", "error"),
    [
        ((), OFF, OFF),  # no line configured
        (("registered", "registering"), SLOW, OFF),
        (("unregistered",), SLOW, OFF),
        (("registered", "failed"), SLOW, ON),
        (("ready",), ON, OFF),
    ],
)
def test_line_led_and_a_failed_line(lines: tuple[str, ...], line: Pattern, error: Pattern) -> None:
    patterns = led_patterns(replace(IDLE, lines=lines))
    assert (patterns["line"], patterns["error"]) == (line, error)


@pytest.mark.parametrize(
    ("state", "failed", "telegram", "error"),
    [
        ("connected", False, ON, OFF),
        ("connecting", False, SLOW, OFF),
        ("needs_login", False, OFF, ON),  # not signed in: the household must act
        ("logged_out", False, OFF, ON),
        ("disconnected", False, OFF, OFF),  # stopped, or not started yet
        ("disconnected", True, OFF, ON),  # cannot connect
    ],
)
def test_telegram_led_and_when_telegram_is_an_error(
    state: str, failed: bool, telegram: Pattern, error: Pattern
) -> None:
    patterns = led_patterns(replace(IDLE, telegram=state, telegram_error=failed))
    assert (patterns["telegram"], patterns["error"]) == (telegram, error)


def test_calls_missed_calls_and_setup_mode() -> None:
    assert led_patterns(replace(IDLE, ringing=True))["ringing"] is FAST
    assert led_patterns(replace(IDLE, in_call=True))["call"] is ON
    assert led_patterns(replace(IDLE, missed=3))["missed"] is SLOW
    assert led_patterns(replace(IDLE, setup_mode=True))["error"] is FAST
    # Setup mode wins over an error: the person at the box is resetting the password.
    assert led_patterns(replace(IDLE, setup_mode=True, telegram="needs_login"))["error"] is FAST


@pytest.mark.parametrize(
    ("snapshot", "light"),
    [
        (replace(IDLE, setup_mode=True, telegram="needs_login"), Light(WHITE, FAST)),
        (replace(IDLE, lines=("failed",), ringing=True), Light(RED, ON)),
        (replace(IDLE, ringing=True, in_call=True, missed=1), Light(BLUE, FAST)),
        (replace(IDLE, in_call=True, missed=1), Light(GREEN, ON)),
        (replace(IDLE, missed=1, lines=("registering",)), Light(AMBER, SLOW)),
        (replace(IDLE, lines=("registering",)), Light(GREEN, SLOW)),
        (replace(IDLE, telegram="connecting"), Light(GREEN, SLOW)),
        (IDLE, Light(DIM_GREEN, ON)),
        (Snapshot(), Light(BLACK, OFF)),
    ],
)
def test_one_rgb_led_shows_the_most_important_thing(snapshot: Snapshot, light: Light) -> None:
    assert rgb_light(snapshot) == light


# ------------------------------------------------------------------ the board on mock pins


def state(factory: MockFactory, pin: int) -> Any:
    return factory.pin(pin).state


async def toggles(factory: MockFactory, pin: int, count: int = 3, within: float = 5.0) -> None:
    """Wait until *pin* changed *count* more times (a blink)."""
    pin_ = factory.pin(pin)
    start = len(pin_.states)
    loop = asyncio.get_running_loop()
    deadline = loop.time() + within
    while len(pin_.states) < start + count:
        assert loop.time() < deadline, f"GPIO {pin} did not blink: {pin_.states[start:]}"
        await asyncio.sleep(0.02)


async def test_board_switches_the_pins(mock_pins: MockFactory) -> None:
    board = LedBoard(SIX)
    try:
        board.show(led_patterns(IDLE))
        assert [state(mock_pins, p) for p in (17, 27, 22, 23, 24, 25)] == [1, 1, 0, 0, 0, 0]
        board.show(led_patterns(replace(IDLE, ringing=True)))
        await toggles(mock_pins, 22)
        # The same pattern again does not restart the blink (its rhythm stays even).
        thread = board.leds["ringing"]._blink_thread
        board.show(led_patterns(replace(IDLE, ringing=True)))
        assert board.leds["ringing"]._blink_thread is thread
        board.show(led_patterns(IDLE))
        assert state(mock_pins, 22) == 0
    finally:
        board.close()


async def test_active_low_leds_are_on_when_the_pin_is_low(mock_pins: MockFactory) -> None:
    board = LedBoard(LedSettings(line=17, error=25, active_high=False))
    try:
        board.show(led_patterns(IDLE))
        assert (state(mock_pins, 17), state(mock_pins, 25)) == (0, 1)
    finally:
        board.close()


async def test_rgb_led_colours_and_blinks(mock_pins: MockFactory) -> None:
    board = LedBoard(LedSettings(rgb=(5, 6, 13)))
    try:
        board.show_rgb(rgb_light(IDLE))
        assert [state(mock_pins, p) for p in (5, 6, 13)] == [0, pytest.approx(0.08), 0]
        board.show_rgb(rgb_light(replace(IDLE, lines=("failed",))))
        assert [state(mock_pins, p) for p in (5, 6, 13)] == [1, 0, 0]
        board.show_rgb(rgb_light(replace(IDLE, ringing=True)))
        await toggles(mock_pins, 13)
        assert state(mock_pins, 5) == 0
        board.show_rgb(Light(BLACK, OFF))
        assert [state(mock_pins, p) for p in (5, 6, 13)] == [0, 0, 0]
    finally:
        board.close()


async def test_self_test_lights_each_led_in_turn(mock_pins: MockFactory) -> None:
    board = LedBoard(replace(SIX, rgb=(5, 6, 13)))
    try:
        for pin in (17, 27, 22, 23, 24, 25, 5, 6, 13):
            mock_pins.pin(pin).clear_states()
        await board.self_test(step=0.01)
        lit_at: list[float] = []
        for pin in (17, 27, 22, 23, 24, 25, 5, 6, 13):
            states = mock_pins.pin(pin).states
            assert [bool(s.state) for s in states] == [False, True, False], (pin, states)
            # Relative times: the first change's time counts from clear_states().
            lit_at.append(states[1].timestamp)
        # Each lit after the one before (the steps are 10 ms; the clears microseconds apart).
        assert lit_at == sorted(lit_at), lit_at
        board.show(led_patterns(IDLE))  # after the self-test every LED is set again
        assert state(mock_pins, 17) == 1
    finally:
        board.close()


def test_no_gpio_is_a_reason_not_a_crash(monkeypatch: pytest.MonkeyPatch) -> None:
    def no_factory() -> Any:
        raise BadPinFactory("Unable to load any default pin factory!")

    monkeypatch.setattr(Device, "pin_factory", None)
    monkeypatch.setattr(Device, "_default_pin_factory", staticmethod(no_factory))
    board, why = open_board(SIX)
    assert board is None
    assert why == "BadPinFactory: Unable to load any default pin factory!"


def test_a_busy_pin_closes_what_was_opened(mock_pins: MockFactory) -> None:
    first = LedBoard(LedSettings(error=25))
    try:
        board, why = open_board(SIX)  # line (17) opens, then error (25) is taken
        assert board is None and "GPIOPinInUse" in why, why
        assert mock_pins.pin(17).function == "input"  # released again
    finally:
        first.close()


# ------------------------------------------------------------------ the front panel


class FakeGateway:
    """What FrontPanel reads from the gateway, settable by the test."""

    def __init__(self, data_dir: Path, leds: LedSettings, button_pin: int | None = None) -> None:
        self.config = SimpleNamespace(
            leds=leds,
            button=SimpleNamespace(pin=button_pin, pull_up=True),
            data_dir=data_dir,
        )
        self.line_states: dict[str, str] = {"home": "registered"}
        self.account = SimpleNamespace(
            status=SimpleNamespace(state=SimpleNamespace(value="connected"), error=None)
        )
        self.telegram = SimpleNamespace(account=self.account)
        self.groups: list[Any] = []
        self.calls: list[Any] = []
        self.manager = SimpleNamespace(r=SimpleNamespace(groups=self.groups))
        self.manager.active_calls = lambda: list(self.calls)
        self.missed = 0
        self.store = SimpleNamespace(missed_waiting=lambda: self.missed)

    @property
    def lines(self) -> dict[str, Any]:
        return dict.fromkeys(self.line_states)

    def line_status(self, name: str) -> Any:
        return SimpleNamespace(state=self.line_states[name])

    def active_calls(self) -> list[Any]:
        return []


def panel_for(gw: FakeGateway, **kwargs: Any) -> FrontPanel:
    return FrontPanel(gw, poll=0.02, self_test_step=0.01, **kwargs)  # type: ignore[arg-type]


async def eventually_pin(
    factory: MockFactory, pin: int, value: int, within: float = 5.0, quiet: float = 0.4
) -> None:
    """Wait until *pin* is *value* and has not changed for *quiet* seconds (not a blink).

    *quiet* is longer than the fast blink's half period; 1.2 for the slow one.
    """
    loop = asyncio.get_running_loop()
    deadline = loop.time() + within
    states = factory.pin(pin).states
    seen, since = len(states), loop.time()
    while True:
        now = loop.time()
        if len(states) != seen:
            seen, since = len(states), now
        if state(factory, pin) == value and now - since >= quiet:
            return
        assert now < deadline, f"GPIO {pin} is not steadily {value}: {states[-4:]}"
        await asyncio.sleep(0.02)


async def test_panel_follows_the_gateway(mock_pins: MockFactory, tmp_path: Path) -> None:
    gw = FakeGateway(tmp_path, SIX)
    panel = panel_for(gw)
    panel.start()
    try:
        await eventually_pin(mock_pins, 17, 1)
        await eventually_pin(mock_pins, 27, 1)
        gw.groups.append(SimpleNamespace(winner=None))
        await toggles(mock_pins, 22)
        gw.groups.clear()
        gw.calls.append(SimpleNamespace(state="talking"))
        await eventually_pin(mock_pins, 23, 1)
        await eventually_pin(mock_pins, 22, 0)
        gw.calls.clear()
        gw.missed = 1
        await eventually_pin(mock_pins, 23, 0)
        await toggles(mock_pins, 24, count=1)
        gw.missed = 0
        gw.line_states["home"] = "failed"
        await eventually_pin(mock_pins, 24, 0, quiet=1.2)
        await eventually_pin(mock_pins, 25, 1)
    finally:
        await panel.stop()
    assert [state(mock_pins, p) for p in (17, 27, 22, 23, 24, 25)] == [0] * 6


async def test_long_press_starts_setup_mode_until_it_is_used(
    mock_pins: MockFactory, tmp_path: Path
) -> None:
    now = [1_000_000.0]
    gw = FakeGateway(tmp_path / "data", SIX)
    panel = panel_for(gw, clock=lambda: now[0])
    panel.start()
    try:
        await eventually_pin(mock_pins, 17, 1)
        panel.on_long_press()
        path = setup_mode_path(tmp_path / "data")
        assert stat.S_IMODE(os.stat(path).st_mode) == 0o600
        assert stat.S_IMODE(os.stat(path.parent).st_mode) == 0o700
        assert setup_mode_until(tmp_path / "data", now[0]) == now[0] + 600
        await toggles(mock_pins, 25)
        path.unlink()  # what the web UI does once the new password is set
        await eventually_pin(mock_pins, 25, 0)
        assert panel.setup_until is None  # the blink stopped because setup mode ended
        # Again, and this time it expires: the file goes too.
        panel.on_long_press()
        await toggles(mock_pins, 25)
        now[0] += 601
        await eventually_pin(mock_pins, 25, 0)
        assert not path.exists()
    finally:
        await panel.stop()


def _default_factory(monkeypatch: pytest.MonkeyPatch, factory: Callable[[], Any]) -> None:
    """What gpiozero finds when no pin factory was chosen: *factory* instead of probing."""
    monkeypatch.setattr(Device, "pin_factory", None)
    monkeypatch.setattr(Device, "_default_pin_factory", staticmethod(factory))


async def test_without_gpio_the_panel_logs_one_line(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    def no_factory() -> Any:
        raise BadPinFactory("Unable to load any default pin factory!")

    _default_factory(monkeypatch, no_factory)
    caplog.set_level(logging.INFO, logger="gateway")
    panel = panel_for(FakeGateway(tmp_path, SIX, button_pin=16))
    panel.start()
    await panel.stop()
    records = [r for r in caplog.records if r.name.startswith("gateway.hardware")]
    assert [r.levelname for r in records] == ["WARNING"], records
    message = records[0].getMessage()
    assert message.startswith("status LEDs and button are off (no GPIO here")
    assert "status LEDs: BadPinFactory" in message and "button: BadPinFactory" in message


async def test_no_leds_configured_touches_no_gpio(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    def no_factory() -> Any:
        raise AssertionError("gpiozero was asked for a pin")

    _default_factory(monkeypatch, no_factory)
    caplog.set_level(logging.INFO, logger="gateway")
    panel = panel_for(FakeGateway(tmp_path, LedSettings()))
    panel.start()
    await panel.stop()
    assert panel.board is None and not caplog.records


async def test_gateway_without_gpio_logs_once_and_runs(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """A laptop or container: [leds] and [button] set, no GPIO; the gateway starts anyway."""
    from gateway.app import Gateway
    from gateway.config import parse_config
    from gateway.store import Store
    from tests.interop.peers.net import free_port

    def no_factory() -> Any:
        raise BadPinFactory("Unable to load any default pin factory!")

    monkeypatch.setattr(Device, "pin_factory", None)
    monkeypatch.setattr(Device, "_default_pin_factory", staticmethod(no_factory))
    (tmp_path / "data").mkdir()
    config = parse_config(
        {
            "gateway": {"data_dir": str(tmp_path / "data")},
            "sip": {"listen": "127.0.0.1", "port": free_port("127.0.0.1")},
            "media": {"rtp_port_min": 37600, "rtp_port_max": 37619},
            "lines": [{"name": "desk", "kind": "ata", "allow": ["127.0.0.1"]}],
            "leds": {"line": 17, "error": 25, "rgb": [5, 6, 13]},
            "button": {"pin": 16},
        },
        base_dir=tmp_path,
    )
    caplog.set_level(logging.INFO, logger="gateway")
    with Store.open(tmp_path / "data" / "linegram.db") as store:
        gateway = Gateway(config, store)
        await gateway.start()
        try:
            assert gateway.panel.board is None and gateway.panel.button is None
            assert gateway.line_status("desk").state == "ready"
        finally:
            await gateway.stop()
    hardware = [r.getMessage() for r in caplog.records if r.name.startswith("gateway.hardware")]
    assert len(hardware) == 1 and hardware[0].startswith("status LEDs and button are off"), hardware
    assert any(r.getMessage() == "gateway stopped" for r in caplog.records)

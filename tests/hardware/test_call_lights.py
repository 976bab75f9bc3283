"""The LEDs through a whole call's life, on the real gateway with mock pins.

The end-to-end scene (tests/e2e/scene.py): baresip is the ATA of line
``home`` and places the calls, Alice is a simulated Telegram member with
real media.  Every LED of ``[leds]`` and the button are configured; gpiozero's
mock pin factory stands in for the Raspberry Pi's header.
"""

from __future__ import annotations

from typing import Any

import pytest
from gpiozero.pins.mock import MockFactory

from gateway.control import ControlClient
from tests.e2e.scene import Scene, eventually
from tests.e2e.test_incoming import TONE_SIP, tone_pcm
from tests.hardware.test_leds import eventually_pin, toggles

pytestmark = [pytest.mark.media, pytest.mark.interop]

LINE, TELEGRAM, RINGING, CALL, MISSED, ERROR = 17, 27, 22, 23, 24, 25
BUTTON = 16
LEDS = {
    "line": LINE,
    "telegram": TELEGRAM,
    "ringing": RINGING,
    "call": CALL,
    "missed": MISSED,
    "error": ERROR,
}


def with_leds(scene: Scene) -> None:
    plain = scene.config

    def config(lines: list[dict[str, Any]] | None = None) -> dict[str, Any]:
        return {**plain(lines), "leds": LEDS, "button": {"pin": BUTTON}}

    scene.config = config  # type: ignore[method-assign]


def pins(factory: MockFactory) -> list[Any]:
    return [factory.pin(p).state for p in (LINE, TELEGRAM, RINGING, CALL, MISSED, ERROR)]


async def test_leds_through_a_call_and_a_missed_call(scene: Scene, mock_pins: MockFactory) -> None:
    with_leds(scene)
    gw = await scene.start()
    assert gw.panel.board is not None and gw.panel.button is not None
    alice = await scene.member("Alice", answer_delay=3.0)
    ata = await scene.ata(tone_pcm(TONE_SIP, 20.0))

    # Idle: line and Telegram on, the rest off.
    await eventually_pin(mock_pins, LINE, 1)
    await eventually_pin(mock_pins, TELEGRAM, 1)
    assert pins(mock_pins) == [1, 1, 0, 0, 0, 0]

    # Ringing: the ringing LED blinks until Alice answers (3 s).
    await ata.command("dial", scene.dial_uri())
    await scene.message_with(alice, "Incoming call from")
    await toggles(mock_pins, RINGING, count=3)
    assert mock_pins.pin(CALL).state == 0

    # In the call: the call LED on, ringing off.
    await ata.wait_event("CALL_ESTABLISHED", within=15)
    await eventually_pin(mock_pins, CALL, 1)
    await eventually_pin(mock_pins, RINGING, 0)

    # Ended: the call LED off; nothing was missed.
    await ata.command("hangup")
    await eventually_pin(mock_pins, CALL, 0)
    assert pins(mock_pins) == [1, 1, 0, 0, 0, 0]

    # A missed call: the caller gives up while Alice's phone rings.
    await ata.command("dial", scene.dial_uri())
    await eventually(lambda: gw.manager.r.groups, what="ringing again")
    await toggles(mock_pins, RINGING, count=2)
    await ata.command("hangup")
    await eventually(
        lambda: [c for c in gw.store.calls() if c.outcome == "missed"], what="a missed call"
    )
    # The missed LED blinks slowly (1 s on, 1 s off); ringing and call are off.
    missed_pin = mock_pins.pin(MISSED)
    start = len(missed_pin.states)
    await toggles(mock_pins, MISSED, count=2, within=6.0)
    assert all(s.timestamp >= 0.5 for s in missed_pin.states[start + 1 :])
    await eventually_pin(mock_pins, RINGING, 0)
    assert (mock_pins.pin(CALL).state, mock_pins.pin(ERROR).state) == (0, 0)

    # missed.clear (the dashboard's "Mark as seen"): the missed LED goes off.
    async with ControlClient(gw.control.path) as client:
        assert (await client.call("status"))["missed"] == 1
        assert await client.call("missed.clear") == {"missed": 0}
    await eventually_pin(mock_pins, MISSED, 0, quiet=1.2)
    assert pins(mock_pins) == [1, 1, 0, 0, 0, 0]

    # From Telegram, /seen does the same.
    await scene.say(alice, "/seen")
    await scene.message_with(alice, "Missed calls marked as seen.")

    # Alice's answer delay ran out after the caller gave up: nothing rings, nobody is called.
    await alice.wait_event("too_late", timeout=10, peer=scene.gateway_user.id)
    assert gw.telegram.calls is not None and not gw.telegram.calls.calls

"""Fixtures of the hardware tests: gpiozero's mock pins, and the end-to-end scene.

The LED and button tests run on :class:`gpiozero.pins.mock.MockFactory` (PWM
pins, for the RGB LED), set as gpiozero's default for the test and reset
after it, so no test sees another's pins.  The whole-call test uses the
end-to-end :class:`~tests.e2e.scene.Scene` (SIP peers, simulated Telegram,
real media): it needs ``tools/in-netns.sh``, as ``make hardware`` runs it.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest
from gpiozero import Device
from gpiozero.pins.mock import MockFactory, MockPWMPin

from tests.e2e.scene import Scene
from tests.interop.conftest import logbook, media, peers, pytest_runtest_makereport  # noqa: F401
from tests.interop.peers.harness import Peers


@pytest.fixture
def mock_pins() -> Iterator[MockFactory]:
    """gpiozero's default pin factory for this test: mock pins, all PWM-capable."""
    saved = Device.pin_factory
    factory = MockFactory(pin_class=MockPWMPin)
    Device.pin_factory = factory
    try:
        yield factory
    finally:
        factory.reset()
        Device.pin_factory = saved


@pytest.fixture
async def scene(tmp_path: Path, peers: Peers) -> AsyncIterator[Scene]:  # noqa: F811
    async with Scene.build(tmp_path, peers) as built:
        yield built

"""The local handset in the ring group: real gateway, baresip as the ATA, simulated members.

The handset is the test's ALSA device (tests/hardware/handset_fixtures.py:
ALSA's file plugin over null; ``out.raw`` is its speaker, ``in.raw`` its
microphone).  baresip places the SIP call on line ``home`` and plays 440 Hz;
the microphone plays 1 kHz.  Needs ``tools/in-netns.sh`` (real ntgcalls media).
"""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import pytest

from gateway.app import Gateway
from simcloud.audio import analyse
from simcloud.member import Incoming
from tests.e2e.scene import Scene, eventually
from tests.hardware.handset_fixtures import (
    MISSING_DEVICE,
    AlsaRig,
    alsa_rig,
    assert_ring_cadence,
    tone,
)

pytestmark = [pytest.mark.media, pytest.mark.interop]

TONE_SIP = 440.0
TONE_MIC = 1000.0
HANDSET = "Home phone"


async def start(scene: Scene, device: str, **config: Any) -> Gateway:
    """The gateway with ``[handset] device`` (and any [telegram] keys in *config*)."""
    plain = scene.config

    def with_handset(lines: list[dict[str, Any]] | None = None) -> dict[str, Any]:
        settings = plain(lines)
        settings["handset"] = {"device": device, "lines": ["home"]}
        settings["telegram"].update(config)
        return settings

    scene.config = with_handset  # type: ignore[method-assign]
    return await scene.start()


@pytest.fixture
def alsa(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> AlsaRig:
    return alsa_rig(tmp_path / "alsa", monkeypatch, tone(TONE_MIC, 60.0))


def handset_of(gw: Gateway) -> Any:
    assert gw.handset is not None
    return gw.handset


async def test_handset_rings_with_the_members_and_takes_the_call(
    scene: Scene, alsa: AlsaRig
) -> None:
    gw = await start(scene, alsa.device)
    handset = handset_of(gw)
    alice = await scene.member("Alice", incoming=Incoming.IGNORE)
    ata = await scene.ata(tone(TONE_SIP, 20.0))

    await ata.command("dial", scene.dial_uri())
    await eventually(lambda: handset.state == "ringing", what="the handset rings")
    await scene.message_with(alice, "Incoming call from")
    await alice.wait_event("incoming", 15, peer=scene.gateway_id())
    assert ata.control is not None and "CALL_ESTABLISHED" not in ata.control.event_types()
    await asyncio.sleep(3.5)  # a whole double ring and the start of the next

    handset.short_press()
    await ata.wait_event("CALL_ESTABLISHED", within=10)
    assert handset.state == "talking"
    taken = await scene.message_with(alice, f"was answered by {HANDSET}")
    assert not taken.buttons
    await alice.wait_event("discarded", 10, peer=scene.gateway_id())
    assert not alice.events_of("connected", scene.gateway_id())
    (call,) = gw.manager.active_calls()
    assert (call.state, call.member, call.line) == ("talking", HANDSET, "home"), call

    await asyncio.sleep(3.0)
    await ata.command("hangup")
    await eventually(lambda: handset.state == "idle", what="the handset hangs up")

    played = alsa.played()
    assert_ring_cadence(played)
    heard = analyse(played[-2 * 16000 :])  # the last 2 s: the caller talking
    assert heard.frequency_hz is not None and abs(heard.frequency_hz - TONE_SIP) < 1.0, heard
    pcm, rate = ata.recording("dec")
    caller_heard = analyse(pcm, rate)
    assert caller_heard.frequency_hz is not None, caller_heard
    assert abs(caller_heard.frequency_hz - TONE_MIC) < 1.0, caller_heard
    (logged,) = await eventually(lambda: [c for c in gw.store.calls() if c.ended_at])
    assert logged.outcome == "answered" and logged.member_name == HANDSET, logged
    assert logged.member_id is None
    assert not gw.manager.active_calls()


async def test_handset_hangs_up_first(scene: Scene, alsa: AlsaRig) -> None:
    gw = await start(scene, alsa.device)
    handset = handset_of(gw)
    ata = await scene.ata(tone(TONE_SIP, 10.0))  # no members: the handset rings alone

    await ata.command("dial", scene.dial_uri())
    await eventually(lambda: handset.state == "ringing", what="the handset rings")
    handset.short_press()
    await ata.wait_event("CALL_ESTABLISHED", within=10)
    await asyncio.sleep(1.0)
    handset.short_press()
    assert handset.state == "idle"
    await ata.wait_event("CALL_CLOSED", within=10)
    (logged,) = await eventually(lambda: [c for c in gw.store.calls() if c.ended_at])
    assert logged.outcome == "answered" and logged.member_name == HANDSET, logged


async def test_a_member_answers_and_the_handset_stops_ringing(scene: Scene, alsa: AlsaRig) -> None:
    gw = await start(scene, alsa.device)
    handset = handset_of(gw)
    alice = await scene.member("Alice", answer_delay=1.5)
    ata = await scene.ata(tone(TONE_SIP, 10.0))

    await ata.command("dial", scene.dial_uri())
    await eventually(lambda: handset.state == "ringing", what="the handset rings")
    await ata.wait_event("CALL_ESTABLISHED", within=15)
    await eventually(lambda: handset.state == "idle", what="the handset stops ringing")
    await alice.wait_connected(scene.gateway_id(), 15)
    handset.short_press()  # too late: nothing rings here any more
    assert handset.state == "idle"
    await ata.command("hangup")
    (logged,) = await eventually(lambda: [c for c in gw.store.calls() if c.ended_at])
    assert logged.member_name == "Alice", logged
    assert_ring_cadence(alsa.played())


async def test_reject_at_the_handset_leaves_the_members_ringing(
    scene: Scene, alsa: AlsaRig
) -> None:
    gw = await start(scene, alsa.device)
    handset = handset_of(gw)
    alice = await scene.member("Alice", answer_delay=4.0)
    ata = await scene.ata(tone(TONE_SIP, 15.0))

    await ata.command("dial", scene.dial_uri())
    await eventually(lambda: handset.state == "ringing", what="the handset rings")
    await asyncio.sleep(1.2)
    handset.reject()
    assert handset.state == "idle"
    await ata.wait_event("CALL_ESTABLISHED", within=15)  # Alice answers after 4 s
    await alice.wait_connected(scene.gateway_id(), 15)
    assert handset.state == "idle"
    await asyncio.sleep(1.0)
    heard = analyse(alice.received_pcm(scene.gateway_id()))
    assert heard.frequency_hz is not None and abs(heard.frequency_hz - TONE_SIP) < 1.0, heard
    await ata.command("hangup")
    (logged,) = await eventually(lambda: [c for c in gw.store.calls() if c.ended_at])
    assert logged.outcome == "answered" and logged.member_name == "Alice", logged
    assert_ring_cadence(alsa.played())  # it did ring, and stopped


async def test_nobody_answers_the_handset_alone_missed(scene: Scene, alsa: AlsaRig) -> None:
    gw = await start(scene, alsa.device, ring_timeout=10)
    handset = handset_of(gw)
    ata = await scene.ata(tone(TONE_SIP, 5.0))

    await ata.command("dial", scene.dial_uri())
    await eventually(lambda: handset.state == "ringing", what="the handset rings")
    closed = await ata.wait_event("CALL_CLOSED", within=20)
    assert "486" in str(closed.get("param", "")) or "Busy" in str(closed.get("param", "")), closed
    assert handset.state == "idle"
    (logged,) = await eventually(lambda: [c for c in gw.store.calls() if c.ended_at])
    assert logged.outcome == "missed", logged


async def test_missing_device_logs_one_error_and_the_members_still_ring(
    scene: Scene, alsa: AlsaRig
) -> None:
    gw = await start(scene, MISSING_DEVICE)
    handset = handset_of(gw)
    alice = await scene.member("Alice", answer_delay=0.5)
    ata = await scene.ata(tone(TONE_SIP, 8.0))

    await ata.command("dial", scene.dial_uri())
    await ata.wait_event("CALL_ESTABLISHED", within=15)
    await alice.wait_connected(scene.gateway_id(), 15)
    assert handset.state == "idle"
    await ata.command("hangup")
    assert scene.gateway is not None
    errors = [
        line
        for line in scene.gateway.log_path.read_text().splitlines()
        if " ERROR " in line and "gateway.hardware.handset" in line
    ]
    assert len(errors) == 1, errors
    assert MISSING_DEVICE in errors[0], errors

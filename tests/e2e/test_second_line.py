"""The second line during a call: Toggle, toggle back, Complete, Transfer, a second incoming call.

Two ATAs (baresip), each registered to its own line and authenticated by
digest: ``home`` plays 440 Hz, ``office`` 660 Hz, so what the member hears
tells which party the gateway has connected.  Alice belongs to both lines;
her default line ``office`` is where her second-line numbers go.
"""

from __future__ import annotations

import asyncio

from simcloud.audio import analyse
from simcloud.member import SimMember
from tests.e2e.scene import Scene, eventually, home_line, office_line
from tests.e2e.test_incoming import tone_pcm
from tests.interop.peers.baresip import Baresip
from tests.interop.peers.net import SIPP_IP

HOME_HZ = 440.0
OFFICE_HZ = 660.0


async def hears(scene: Scene, sim: SimMember, freq: float, seconds: float = 1.5) -> None:
    """What *sim* hears from the gateway over the next *seconds* is a *freq* tone."""
    sim.clear_received(scene.gateway_id())
    await asyncio.sleep(seconds)
    heard = analyse(sim.received_pcm(scene.gateway_id()))
    assert heard.frequency_hz is not None, f"silence, expected {freq} Hz ({heard})"
    assert abs(heard.frequency_hz - freq) < 2.0, f"heard {heard}, expected {freq} Hz"


async def household(scene: Scene) -> tuple[SimMember, Baresip, Baresip]:
    gw = await scene.start([home_line(allow=[SIPP_IP]), office_line(allow=[])])
    alice = await scene.member("Alice", lines=("home", "office"), answer_delay=0.5)
    gw.store.update_member(scene.records["Alice"].id, default_line="office")
    home = await scene.ata(tone_pcm(HOME_HZ, 60.0), "home")
    office = await scene.ata(tone_pcm(OFFICE_HZ, 60.0), "office")
    return alice, home, office


async def home_calls_alice(scene: Scene, home: Baresip, alice: SimMember) -> None:
    await home.command("dial", scene.dial_uri())
    await home.wait_event("CALL_ESTABLISHED", within=15)
    await alice.wait_connected(scene.gateway_id(), 15)
    await hears(scene, alice, HOME_HZ)


async def test_toggle_back_and_forth_then_complete(scene: Scene) -> None:
    alice, home, office = await household(scene)
    await home_calls_alice(scene, home, alice)

    await scene.say(alice, "020 7946 0018")
    offer = await scene.message_with(alice, "Second line")
    await scene.press(alice, offer, "Toggle")
    await office.wait_event("CALL_ESTABLISHED", within=15)
    await hears(scene, alice, OFFICE_HZ)
    conv = scene.manager.conversation_of(alice.id)
    assert conv is not None
    held = conv.held_party()
    assert held is not None and held.sip.local_hold and held.line == "home"

    # A third number while someone is on hold is refused: two parties at most.
    await scene.say(alice, "020 7946 0999")
    await scene.message_with(alice, "Someone is already on hold")
    assert len(conv.parties) == 2

    message = await scene.message_with(alice, "On hold:")
    await scene.press(alice, message, "Toggle")
    await hears(scene, alice, HOME_HZ)
    held = conv.held_party()
    assert held is not None and held.line == "office" and held.sip.local_hold

    # Complete ends the active party (home) and brings the held one (office) back.
    message = await scene.message_with(alice, "On hold:")
    await scene.press(alice, message, "Complete")
    await home.wait_event("CALL_CLOSED", within=10)
    await hears(scene, alice, OFFICE_HZ)
    assert conv.held_party() is None
    await alice.hang_up(scene.gateway_id())
    await office.wait_event("CALL_CLOSED", within=10)


async def test_transfer_connects_the_caller_to_the_dialled_party(scene: Scene) -> None:
    alice, home, office = await household(scene)
    await home_calls_alice(scene, home, alice)

    await scene.say(alice, "020 7946 0018")
    offer = await scene.message_with(alice, "Second line")
    await scene.press(alice, offer, "Transfer")
    await office.wait_event("CALL_ESTABLISHED", within=15)
    # Alice drops out; the two SIP parties now hear each other through the gateway.
    await alice.wait_event("discarded", 10, peer=scene.gateway_id())
    await asyncio.sleep(2.0)
    await home.command("hangup")
    await office.wait_event("CALL_CLOSED", within=10)
    pcm, rate = office.recording("dec")
    heard = analyse(pcm, rate)
    assert heard.frequency_hz is not None and abs(heard.frequency_hz - HOME_HZ) < 2.0, heard
    await eventually(lambda: not scene.gw.manager.active_calls(), what="no calls left")


async def test_second_incoming_call_rejected_keeps_the_first(scene: Scene) -> None:
    alice, home, office = await household(scene)
    await home_calls_alice(scene, home, alice)

    await office.command("dial", scene.dial_uri())
    offer = await scene.message_with(alice, "Second line:")
    labels = {b.text for row in offer.buttons for b in row}
    assert labels == {"Toggle", "Reject", "Transfer"}, labels
    await scene.press(alice, offer, "Reject")
    closed = await office.wait_event("CALL_CLOSED", within=10)
    assert "486" in str(closed.get("param", "")) or "Busy" in str(closed.get("param", "")), closed
    await hears(scene, alice, HOME_HZ)
    assert scene.manager.conversation_of(alice.id) is not None
    await alice.hang_up(scene.gateway_id())
    await home.wait_event("CALL_CLOSED", within=10)


async def test_second_incoming_call_toggled_in(scene: Scene) -> None:
    alice, home, office = await household(scene)
    await home_calls_alice(scene, home, alice)

    await office.command("dial", scene.dial_uri())
    offer = await scene.message_with(alice, "Second line:")
    await scene.press(alice, offer, "Toggle")
    await office.wait_event("CALL_ESTABLISHED", within=15)
    await hears(scene, alice, OFFICE_HZ)
    conv = scene.manager.conversation_of(alice.id)
    assert conv is not None
    held = conv.held_party()
    assert held is not None and held.line == "home" and held.sip.local_hold
    await alice.hang_up(scene.gateway_id())
    await home.wait_event("CALL_CLOSED", within=10)
    await office.wait_event("CALL_CLOSED", within=10)


async def test_far_end_transfers_the_member_by_refer(scene: Scene) -> None:
    """The caller's PBX (baresip here) sends REFER: the gateway dials the target on the line."""
    gw = await scene.start()
    alice = await scene.member("Alice", answer_delay=0.5)
    home = await scene.ata(tone_pcm(HOME_HZ, 30.0), "home")
    await home_calls_alice(scene, home, alice)
    conv = scene.manager.conversation_of(alice.id)
    assert conv is not None and conv.active is not None
    first = conv.active.sip

    await home.command("transfer", "sip:02079460018@127.0.0.10")
    await scene.message_with(alice, "transferred you to +44 2079460018")
    await eventually(lambda: first.is_ended and conv.active is not None and conv.active.up)
    assert conv.active is not None and conv.active.sip.direction == "out"
    assert conv.active.sip.remote_number == "02079460018"
    await hears(scene, alice, HOME_HZ)
    await alice.hang_up(scene.gateway_id())
    calls = await eventually(
        lambda: [c for c in gw.store.calls() if c.ended_at][1:] and gw.store.calls()
    )
    assert sorted(c.direction for c in calls) == ["in", "out"]
    assert all(c.member_name == "Alice" and c.outcome == "answered" for c in calls), calls


async def test_refer_to_a_premium_number_is_declined(scene: Scene) -> None:
    gw = await scene.start()
    alice = await scene.member("Alice", answer_delay=0.5)
    home = await scene.ata(tone_pcm(HOME_HZ, 30.0), "home")
    await home_calls_alice(scene, home, alice)
    conv = scene.manager.conversation_of(alice.id)
    assert conv is not None and conv.active is not None
    first = conv.active.sip
    await home.command("transfer", "sip:09098790000@127.0.0.10")
    await eventually(lambda: "603" in home.process.output() or "Decline" in home.process.output())
    # Nothing was dialled: the only call in the log is the ATA's own.
    assert [c.direction for c in gw.store.calls()] == ["in"]
    # The member was not handed to anyone else.  (baresip 1.0 hangs up by itself
    # some 20 ms after a refused transfer, so the call may be ending by now.)
    assert all(party.sip is first for party in conv.parties)

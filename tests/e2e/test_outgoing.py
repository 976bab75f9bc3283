"""Outgoing calls: a member sends a number; the gateway dials it through the home line.

baresip is the ATA registered to line ``home`` and answers what the gateway
dials (its recording shows what the callee heard).  Invite: the member is told
"call me now" and calls the gateway account.  Callback: the gateway calls the
member and dials on answer.
"""

from __future__ import annotations

import asyncio

from simcloud.audio import analyse
from tests.e2e.scene import Scene, eventually, home_line, office_line
from tests.e2e.test_incoming import TONE_MEMBER, TONE_SIP, tone_pcm
from tests.interop.peers.net import SIPP_IP


async def test_invite_member_calls_the_gateway_which_dials_and_bridges(scene: Scene) -> None:
    gw = await scene.start()
    alice = await scene.member("Alice")
    ata = await scene.ata(tone_pcm(TONE_SIP, 15.0))

    await scene.say(alice, "020 7946-0018")
    invite = await scene.message_with(alice, "Call me now")
    assert "+44 20 7946 0018" in invite.message, invite.message
    await alice.call(scene.gateway_id(), timeout=15)
    await ata.wait_event("CALL_ESTABLISHED", within=15)
    await asyncio.sleep(0.5)
    await alice.send_tone(scene.gateway_id(), TONE_MEMBER, 3.0)
    await asyncio.sleep(0.5)
    heard = analyse(alice.received_pcm(scene.gateway_id()))
    assert heard.frequency_hz is not None and abs(heard.frequency_hz - TONE_SIP) < 1.0, heard
    await alice.hang_up(scene.gateway_id())
    await ata.wait_event("CALL_CLOSED", within=10)
    pcm, rate = ata.recording("dec")
    callee_heard = analyse(pcm, rate)
    assert callee_heard.frequency_hz is not None, callee_heard
    assert abs(callee_heard.frequency_hz - TONE_MEMBER) < 1.0, callee_heard
    (call,) = await eventually(lambda: [c for c in gw.store.calls() if c.ended_at])
    assert (call.direction, call.outcome, call.member_name) == ("out", "answered", "Alice")
    # The line's dial format (national by default) decides what the ATA is asked for.
    assert call.remote_number == "02079460018", call


async def test_callback_gateway_calls_the_member_then_dials(scene: Scene) -> None:
    gw = await scene.start()
    alice = await scene.member("Alice", answer_delay=0.5)
    gw.store.update_member(scene.records["Alice"].id, outgoing_method="callback")
    ata = await scene.ata(tone_pcm(TONE_SIP, 15.0))

    await scene.say(alice, "+44 20 7946 0018")
    await alice.wait_connected(scene.gateway_id(), 15)
    await ata.wait_event("CALL_ESTABLISHED", within=15)
    keypad = await scene.message_with(alice, "In call with")
    labels = [b.text for row in keypad.buttons for b in row]
    assert "5" in labels and "Hang up" in labels
    await asyncio.sleep(1.5)
    heard = analyse(alice.received_pcm(scene.gateway_id()))
    assert heard.frequency_hz is not None and abs(heard.frequency_hz - TONE_SIP) < 1.0, heard
    await scene.press(alice, keypad, "Hang up")
    await ata.wait_event("CALL_CLOSED", within=10)
    (call,) = await eventually(lambda: [c for c in gw.store.calls() if c.ended_at])
    assert (call.direction, call.member_name) == ("out", "Alice")


async def test_forbidden_number_is_refused_with_a_reason(scene: Scene) -> None:
    gw = await scene.start()
    alice = await scene.member("Alice")
    await scene.say(alice, "0909 879 0000")  # GB premium rate
    refused = await scene.message_with(alice, "premium")
    assert "🚫" in refused.message
    await scene.say(alice, "+1 212 555 0100")  # international: off by default
    await scene.message_with(alice, "nternational")
    assert not gw.active_calls() and not gw.store.calls()


async def test_member_calling_with_nothing_to_dial_gets_a_dial_pad(scene: Scene) -> None:
    await scene.start()
    alice = await scene.member("Alice")
    ata = await scene.ata(tone_pcm(TONE_SIP, 10.0))
    await alice.call(scene.gateway_id(), timeout=15)
    pad = await scene.message_with(alice, "Who should I call?")
    for digit in "02079460018":
        await scene.press(alice, pad, digit)
    await scene.message_with(alice, "Number: 02079460018")
    await scene.press(alice, pad, "Dial")
    await ata.wait_event("CALL_ESTABLISHED", within=15)
    await alice.hang_up(scene.gateway_id())
    await ata.wait_event("CALL_CLOSED", within=10)


async def test_non_member_messages_and_calls_are_ignored(scene: Scene) -> None:
    gw = await scene.start()
    alice = await scene.member("Alice")
    # Mallory knows the gateway's username but was never invited.
    mallory = await scene.member("Mallory")
    gw.store.remove_member(scene.records["Mallory"].id)
    await scene.say(mallory, "020 7946 0018")
    await scene.say(alice, "/softphone")
    await scene.message_with(alice, "Softphone settings")
    assert not [m for m in await scene.messages(mallory) if m.out is False]
    try:
        await mallory.call(scene.gateway_id(), timeout=5)
    except Exception:
        pass
    else:
        raise AssertionError("a non-member's call was answered")
    assert not gw.store.calls()


async def test_member_hears_ringback_until_the_callee_answers(scene: Scene) -> None:
    await scene.start()
    alice = await scene.member("Alice")
    ata = await scene.ata(tone_pcm(TONE_SIP, 15.0))
    await ata.command("answermode", "manual")  # ring (180, no early media) until told

    await scene.say(alice, "020 7946 0018")
    await scene.message_with(alice, "Call me now")
    await alice.call(scene.gateway_id(), timeout=15)
    await ata.wait_event("CALL_INCOMING", within=15)
    alice.clear_received(scene.gateway_id())
    await asyncio.sleep(1.5)  # the first ringback burst is 1 s of 425 Hz
    ringback = analyse(alice.received_pcm(scene.gateway_id()))
    assert ringback.frequency_hz is not None, ringback
    assert abs(ringback.frequency_hz - 425.0) < 2.0, ringback
    await ata.command("accept")
    await ata.wait_event("CALL_ESTABLISHED", within=10)
    alice.clear_received(scene.gateway_id())
    await asyncio.sleep(1.5)
    heard = analyse(alice.received_pcm(scene.gateway_id()))
    assert heard.frequency_hz is not None and abs(heard.frequency_hz - TONE_SIP) < 1.0, heard
    await alice.hang_up(scene.gateway_id())


async def test_member_with_two_lines_picks_one(scene: Scene) -> None:
    gw = await scene.start([home_line(allow=[SIPP_IP]), office_line(allow=[])])
    alice = await scene.member("Alice", lines=("home", "office"))
    await scene.say(alice, "020 7946 0018")
    question = await scene.message_with(alice, "Which line should dial")
    labels = [b.text for row in question.buttons for b in row]
    assert labels == ["home", "office", "Cancel"], labels
    await scene.press(alice, question, "office")
    invite = await scene.message_with(alice, "Call me now")
    assert "on office" in invite.message
    # Pressing Cancel on the invitation withdraws it.
    await scene.press(alice, invite, "Cancel")
    await scene.message_with(alice, "Cancelled")
    assert gw.manager.r.requests == {}

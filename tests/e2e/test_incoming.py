"""Incoming calls: a SIP call on the home line rings the household in Telegram.

baresip is the ATA (it places the SIP call and plays a 440 Hz tone); the
members are simulated Telegram users with real ntgcalls media.  Audio is
checked at both ends by tone analysis: the member hears 440 Hz, the SIP
caller hears the member's 880 Hz.
"""

from __future__ import annotations

import asyncio

from simcloud.audio import ToneGenerator, analyse
from simcloud.member import Incoming
from tests.e2e.scene import Scene, eventually, home_line
from tests.interop.peers.pcap import TestMedia
from tests.interop.peers.rtp_capture import telephone_events

TONE_SIP = 440.0
TONE_MEMBER = 880.0


def tone_pcm(freq: float, seconds: float) -> bytes:
    return b"".join(ToneGenerator(freq, 8000, 0.3).frames(seconds))


async def test_incoming_call_answered_with_audio_both_ways(scene: Scene) -> None:
    gw = await scene.start()
    alice = await scene.member("Alice", answer_delay=1.0)
    ata = await scene.ata(tone_pcm(TONE_SIP, 12.0))

    response = await ata.command("dial", scene.dial_uri())
    assert response["ok"] is True, response
    ringing = await scene.message_with(alice, "Incoming call from")
    assert "Line: home" in ringing.message
    labels = [b.text for row in ringing.buttons for b in row]
    assert labels[:12] == list("123456789*0#")

    await ata.wait_event("CALL_ESTABLISHED", within=15)
    await alice.wait_connected(scene.gateway_id(), 15)
    await alice.send_tone(scene.gateway_id(), TONE_MEMBER, 3.0)
    await asyncio.sleep(0.5)

    heard = analyse(alice.received_pcm(scene.gateway_id()))
    assert heard.frequency_hz is not None and abs(heard.frequency_hz - TONE_SIP) < 1.0, heard
    await ata.command("hangup")
    await alice.wait_event("discarded", 10, peer=scene.gateway_id())
    pcm, rate = ata.recording("dec")
    caller_heard = analyse(pcm, rate)
    assert caller_heard.frequency_hz is not None, caller_heard
    assert abs(caller_heard.frequency_hz - TONE_MEMBER) < 1.0, caller_heard

    ended = await scene.message_with(alice, "ended")
    assert not ended.buttons
    (call,) = await eventually(lambda: [c for c in gw.store.calls() if c.ended_at])
    assert call.outcome == "answered" and call.member_name == "Alice", call


async def test_ring_group_first_answer_wins(scene: Scene) -> None:
    await scene.start()
    alice = await scene.member("Alice", answer_delay=3.0)
    bob = await scene.member("Bob", answer_delay=0.5)
    ata = await scene.ata(tone_pcm(TONE_SIP, 10.0))

    await ata.command("dial", scene.dial_uri())
    await scene.message_with(alice, "Incoming call from")
    await scene.message_with(bob, "Incoming call from")
    await ata.wait_event("CALL_ESTABLISHED", within=15)
    await bob.wait_connected(scene.gateway_id(), 15)
    # Alice stops ringing and reads who took it.
    taken = await scene.message_with(alice, "was answered by Bob")
    assert not taken.buttons
    await alice.wait_event("discarded", 10, peer=scene.gateway_id())
    assert not alice.events_of("connected", scene.gateway_id())
    await asyncio.sleep(1.0)
    heard = analyse(bob.received_pcm(scene.gateway_id()))
    assert heard.frequency_hz is not None and abs(heard.frequency_hz - TONE_SIP) < 1.0
    await ata.command("hangup")


async def test_nobody_answers_missed_call_with_call_back(scene: Scene) -> None:
    gw = await scene.start()
    alice = await scene.member("Alice", incoming=Incoming.DECLINE)
    bob = await scene.member("Bob", incoming=Incoming.BUSY)
    ata = await scene.ata(tone_pcm(TONE_SIP, 5.0))

    await ata.command("dial", scene.dial_uri())
    closed = await ata.wait_event("CALL_CLOSED", within=20)
    assert "486" in str(closed.get("param", "")) or "Busy" in str(closed.get("param", "")), closed
    for sim in (alice, bob):
        missed = await scene.message_with(sim, "Missed call from")
        assert [b.text for row in missed.buttons for b in row] == ["Call back"]
    (call,) = await eventually(lambda: [c for c in gw.store.calls() if c.ended_at])
    assert call.outcome == "missed", call


async def test_keypad_press_reaches_the_sip_side_as_rfc4733(scene: Scene, media: TestMedia) -> None:
    gw = await scene.start()
    alice = await scene.member("Alice", answer_delay=0.5)
    capture, media_port = await scene.peers.sipp_media()
    sipp = scene.peers.sipp(
        "uac_member_call",
        remote="{}:{}".format(*gw.ua.listen) if gw.ua else "",
        service="100",
        media_port=media_port,
        pcaps=[media.pcma],
        extra_args=["-d", "7000"],
    )
    await sipp.start()
    message = await scene.message_with(alice, "In call with")
    await scene.press(alice, message, "5")
    await scene.say(alice, "#")  # a digit typed as a message is a key press too
    result = await sipp.finish()
    assert result.ok, result.describe()
    digits = [d.digit for d in telephone_events(capture.packets())]
    assert digits == ["5", "#"], digits


async def test_keypad_press_reaches_the_sip_side_as_info_on_an_info_line(
    scene: Scene, media: TestMedia
) -> None:
    gw = await scene.start([home_line(dtmf="info")])
    alice = await scene.member("Alice", answer_delay=0.5)
    sipp = scene.peers.sipp(
        "uac_member_call_info",
        remote="{}:{}".format(*gw.ua.listen) if gw.ua else "",
        service="100",
        media_port=(await scene.peers.sipp_media())[1],
    )
    await sipp.start()
    message = await scene.message_with(alice, "In call with")
    await scene.press(alice, message, "5")
    await scene.say(alice, "#")
    result = await sipp.finish()
    assert result.ok, result.describe()
    infos = result.messages().split("INFO sip:")[1:]
    assert len(infos) == 2, result.messages()
    assert "Signal=5" in infos[0] and "Signal=#" in infos[1], infos


async def test_caller_gives_up_while_members_ring(scene: Scene) -> None:
    """CANCEL right after 180: the Telegram calls are withdrawn, no ghost answer, a missed call."""
    gw = await scene.start()
    alice = await scene.member("Alice", incoming=Incoming.IGNORE)
    capture, media_port = await scene.peers.sipp_media()
    cancelled = await scene.peers.sipp(
        "uac_cancel",
        remote="{}:{}".format(*gw.ua.listen) if gw.ua else "",
        service="100",
        media_port=media_port,
    ).run()
    # The scenario also fails if a 200 to the cancelled INVITE shows up within 2 s.
    assert cancelled.ok, cancelled.describe()
    missed = await scene.message_with(alice, "Missed call from")
    assert [b.text for row in missed.buttons for b in row] == ["Call back"]
    await eventually(lambda: gw.telegram.calls is not None and not gw.telegram.calls.calls)
    assert not alice.events_of("answered")
    (call,) = await eventually(lambda: [c for c in gw.store.calls() if c.ended_at])
    assert (call.outcome, call.end_reason) == ("missed", "cancelled"), call
    assert not gw.manager.active_calls()

"""Private calls between two SimMembers through the simulated cloud.

Everything is real except Telegram: Telethon over TCP to the CloudServer, py-tgcalls
driving the call flow, ntgcalls carrying Opus media peer to peer over the veth of
the private network namespace. Run with

    tools/in-netns.sh .venv/bin/pytest tests/simcloud/test_phone.py -q

Tests marked `media` connect ntgcalls and FAIL outside that namespace.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator
from dataclasses import dataclass

import pytest
from ntgcalls import TelegramServerError
from pytgcalls.exceptions import CallBusy, CallDeclined, TimedOutAnswer
from telethon import errors

from simcloud.audio import amplitude_to_dbfs, analyse
from simcloud.cloud import Cloud
from simcloud.member import CallCancelled, Incoming, SimMember
from simcloud.phone import CallState, Phone, phone_of
from simcloud.server import CloudServer
from simcloud.state import PrivacyRule, state_of
from simcloud.world import build_cloud

log = logging.getLogger(__name__)

VERSIONS = ["8.0.0", "9.0.0", "12.0.0", "13.0.0"]
AMPLITUDE = 0.3
T = 20.0  # bound on any single wait


@dataclass
class Household:
    cloud: Cloud
    phone: Phone
    alice: SimMember  # places the calls
    bob: SimMember  # receives them


@pytest.fixture
async def home() -> AsyncIterator[Household]:
    cloud = build_cloud()
    async with CloudServer(cloud) as server:
        alice = await SimMember.create(cloud, server, phone="+99966 2001", first_name="Alice")
        bob = await SimMember.create(
            cloud, server, phone="+99966 2002", first_name="Bob", username="bob_home"
        )
        state = state_of(cloud)
        # Telegram's default P2P privacy is contacts-only, and the sim has no reflectors.
        state.add_contact(alice.user, bob.user)
        state.add_contact(bob.user, alice.user)
        try:
            yield Household(cloud, phone_of(cloud), alice, bob)
        finally:
            for member in (alice, bob):
                await asyncio.wait_for(member.close(), T)
            phone_of(cloud).close()


async def exchange_tones(h: Household, seconds: float = 2.0) -> None:
    """alice sends 440 Hz, bob 880 Hz, at the same time; then the tail drains."""
    h.alice.clear_received(h.bob.id)
    h.bob.clear_received(h.alice.id)
    await asyncio.gather(
        h.alice.send_tone(h.bob.id, 440, seconds, AMPLITUDE),
        h.bob.send_tone(h.alice.id, 880, seconds, AMPLITUDE),
    )
    await asyncio.sleep(0.5)


def assert_hears(member: SimMember, peer: SimMember, frequency: float, seconds: float) -> None:
    heard = analyse(member.received_pcm(peer.id), member.rate)
    log.info("%s hears %s", member.user.first_name, heard)
    assert heard.frequency_hz is not None, f"{member.user.first_name} heard nothing"
    assert abs(heard.frequency_hz - frequency) <= 1.0
    assert heard.level_dbfs is not None
    assert abs(heard.level_dbfs - amplitude_to_dbfs(AMPLITUDE)) <= 1.0
    # about as many 10 ms frames as were sent (NetEq adds a ramp and a fading tail)
    assert 0.8 * seconds * 100 <= heard.voiced_frames <= seconds * 100 + 40


@pytest.mark.media
async def test_answered_call_carries_tones_both_ways(home: Household) -> None:
    alice, bob, phone = home.alice, home.bob, home.phone
    setup = await alice.call("bob_home", timeout=10)
    answered = await bob.wait_event("answered", T, peer=alice.id)
    log.info("set-up to connected audio: caller %.3f s, callee %s s", setup, answered.detail)
    assert setup < 5.0

    await exchange_tones(home)
    assert_hears(bob, alice, 440, 2.0)
    assert_hears(alice, bob, 880, 2.0)

    # alice saw the ring before the answer; bob saw the request and the confirmed call
    ringing = alice.events_of("ringing", bob.id)
    accepted = alice.events_of("accepted", bob.id)
    assert ringing and accepted and ringing[0].at <= accepted[0].at
    assert bob.events_of("incoming", alice.id)[0].detail == ",".join(VERSIONS)

    call = phone.last_call()
    assert call is not None and call.state is CallState.ACTIVE
    assert call.signalling[alice.id].bytes > 0 and call.signalling[bob.id].bytes > 0

    await alice.hang_up(bob.id)
    await bob.wait_event("discarded", T, peer=alice.id, detail="hangup")
    await phone.wait_state(call, CallState.DISCARDED, T)
    assert (call.reason, call.discarded_by) == ("hangup", alice.id)
    assert call.duration >= 2
    assert await alice.calls.calls == {}
    await asyncio.sleep(0.2)
    assert await bob.calls.calls == {}


@pytest.mark.media
async def test_callee_hangs_up(home: Household) -> None:
    alice, bob = home.alice, home.bob
    await alice.call(bob.id, timeout=10)
    await bob.wait_event("answered", T)
    await bob.hang_up(alice.id)
    await alice.wait_event("discarded", T, peer=bob.id, detail="hangup")
    call = home.phone.last_call()
    assert call is not None and call.discarded_by == bob.id


@pytest.mark.media
async def test_answer_after_delay(home: Household) -> None:
    home.bob.answer_delay = 1.0
    setup = await home.alice.call(home.bob.id, timeout=10)
    assert 1.0 <= setup < 6.0
    ringing = home.alice.events_of("ringing")
    accepted = home.alice.events_of("accepted")
    assert accepted[0].at - ringing[0].at >= 0.9
    await home.alice.hang_up(home.bob.id)


@pytest.mark.media
@pytest.mark.parametrize("version", VERSIONS)
async def test_each_protocol_version(home: Household, version: str) -> None:
    alice, bob, phone = home.alice, home.bob, home.phone
    phone.force_version = version
    await alice.call(bob.id, timeout=10)
    await bob.wait_event("answered", T)
    # both ntgcalls instances were told to use exactly this version
    assert [c.versions for c in alice.p2p_connects] == [[version]]
    assert [c.versions for c in bob.p2p_connects] == [[version]]
    assert bob.events_of("active", alice.id)[0].detail == version
    await exchange_tones(home, seconds=1.0)
    assert_hears(bob, alice, 440, 1.0)
    assert_hears(alice, bob, 880, 1.0)
    call = phone.last_call()
    assert call is not None and call.version == version
    log.info(
        "version %s: signalling alice->bob %s, bob->alice %s",
        version,
        call.signalling[alice.id],
        call.signalling[bob.id],
    )
    await alice.hang_up(bob.id)


@pytest.mark.media
async def test_never_connect_fault(home: Household) -> None:
    alice, bob, phone = home.alice, home.bob, home.phone
    phone.never_connect = True
    started = asyncio.get_running_loop().time()
    with pytest.raises(TelegramServerError):
        await alice.call(bob.id, timeout=10)
    waited = asyncio.get_running_loop().time() - started
    log.info("never_connect: caller gave up after %.1f s", waited)
    assert waited < T
    failed = await bob.wait_event("answer_failed", T, peer=alice.id)
    assert "TelegramServerError" in failed.detail
    states = {e.detail for e in alice.events_of("connection", bob.id)}
    assert states & {"TIMEOUT", "FAILED"} and "CONNECTED" not in states
    call = phone.last_call()
    assert call is not None and call.signalling[alice.id].dropped > 0
    assert call.signalling[alice.id].messages == 0
    # Neither py-tgcalls side discards the Telegram call after a media failure: the
    # cloud still has it active. A product on py-tgcalls must discard it itself.
    assert call.state is CallState.ACTIVE


# --- call set-up outcomes without media ------------------------------------------------


async def test_declined(home: Household) -> None:
    home.bob.incoming = Incoming.DECLINE
    with pytest.raises(CallDeclined):
        await home.alice.call(home.bob.id, timeout=10)
    call = home.phone.last_call()
    assert call is not None and (call.reason, call.discarded_by) == ("hangup", home.bob.id)
    await home.bob.wait_event("declined", T)


async def test_busy(home: Household) -> None:
    home.bob.incoming = Incoming.BUSY
    with pytest.raises(CallBusy):
        await home.alice.call(home.bob.id, timeout=10)
    await home.alice.wait_event("discarded", T, detail="busy")
    call = home.phone.last_call()
    assert call is not None and (call.reason, call.discarded_by) == ("busy", home.bob.id)


async def test_unanswered_times_out_at_the_caller(home: Household) -> None:
    alice, bob = home.alice, home.bob
    bob.incoming = Incoming.IGNORE
    loop = asyncio.get_running_loop()
    started = loop.time()
    with pytest.raises(TimedOutAnswer):
        await alice.call(bob.id, timeout=2)
    assert 1.9 <= loop.time() - started < 5.0
    assert alice.events_of("ringing", bob.id)  # bob's phone did ring
    await bob.wait_event("discarded", T, peer=alice.id, detail="missed")
    call = home.phone.last_call()
    assert call is not None and (call.reason, call.discarded_by) == ("missed", alice.id)


async def test_offline_callee_rings_until_the_cloud_gives_up(home: Household) -> None:
    alice, bob, phone = home.alice, home.bob, home.phone
    phone.ring_timeout = 1.5
    await bob.go_offline()
    # py-tgcalls reports a discard it did not ask for as a decline
    with pytest.raises(CallDeclined):
        await alice.call(bob.id, timeout=10)
    assert not alice.events_of("ringing")  # nobody acknowledged the call
    call = phone.last_call()
    assert call is not None and (call.reason, call.discarded_by) == ("missed", None)
    assert call.received_at is None
    await alice.wait_event("discarded", T, detail="missed")


async def cancel_while_ringing(home: Household) -> None:
    """Alice rings Bob and hangs up once his phone rings."""
    dialling = asyncio.ensure_future(home.alice.call(home.bob.id, timeout=10))
    await home.alice.wait_event("ringing", T)
    await home.alice.hang_up(home.bob.id)
    with pytest.raises(CallCancelled):
        await dialling


async def test_caller_cancels_while_ringing(home: Household) -> None:
    alice, bob = home.alice, home.bob
    bob.incoming = Incoming.IGNORE
    await cancel_while_ringing(home)
    await bob.wait_event("discarded", T, peer=alice.id)
    call = home.phone.last_call()
    assert call is not None and call.discarded_by == alice.id


async def test_answering_after_the_caller_gave_up_calls_nobody(home: Household) -> None:
    # A phone shows a missed call.  py-tgcalls' play() on a withdrawn call dials the
    # caller back instead, which once left a stray call behind in the end-to-end tests.
    alice, bob = home.alice, home.bob
    bob.answer_delay = 1.0
    calls_before = len(home.phone.calls)
    await cancel_while_ringing(home)
    await bob.wait_event("too_late", T, peer=alice.id)
    await asyncio.sleep(0.5)
    assert len(home.phone.calls) == calls_before + 1
    assert not alice.events_of("incoming") and not bob.events_of("answer_failed")


async def test_privacy_restricted(home: Household) -> None:
    state_of(home.cloud).set_privacy(home.bob.user, "PhoneCall", [PrivacyRule("disallow_all")])
    with pytest.raises(errors.UserPrivacyRestrictedError):
        await home.alice.call(home.bob.id, timeout=5)
    assert home.phone.calls == {}
    assert not home.bob.events_of("incoming")


async def test_blocked(home: Household) -> None:
    state_of(home.cloud).block(home.bob.user, home.alice.user)
    with pytest.raises(errors.UserIsBlockedError):
        await home.alice.call(home.bob.id, timeout=5)
    assert home.phone.calls == {}

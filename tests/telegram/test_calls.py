"""The gateway's Telegram calls against simulated members: real Telethon, real ntgcalls media.

Every test here carries WebRTC media over the veth pair of the private network
namespace (tools/in-netns.sh); outside it they fail rather than skip.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

import pytest

from gateway.telegram.account import TelegramAccount
from gateway.telegram.call import (
    FRAME_BYTES,
    CallOutcome,
    CallSettings,
    CallState,
    EndReason,
    TelegramCall,
    TelegramCalls,
)
from simcloud.audio import ToneGenerator, analyse, pace_frames
from simcloud.member import Incoming, SimMember
from simcloud.state import PrivacyRule
from tests.telegram.simworld import GATEWAY_PHONE, World, eventually

pytestmark = [pytest.mark.media, pytest.mark.timeout(90)]

SENT_LEVEL = ToneGenerator(440, 8000, 0.3).level_dbfs


@dataclass
class Scene:
    world: World
    account: TelegramAccount
    calls: TelegramCalls
    members: list[SimMember]

    @property
    def gateway_id(self) -> int:
        return self.world.gateway_user.id

    async def member(self, name: str, **behaviour: Any) -> SimMember:
        n = len(self.members) + 1
        member = await SimMember.create(
            self.world.cloud,
            self.world.server,
            phone=f"+99966{n:04d}",
            first_name=name,
            username=f"{name.lower()}_home",
            **behaviour,
        )
        self.members.append(member)
        # The product stores each member's (user_id, access_hash) when they are linked.
        access_hash = self.world.state.access_hash(self.world.gateway_user, member.user)
        await self.account.ensure_known(member.id, access_hash)
        # Mutual contacts, as the setup guidance asks: peer-to-peer is allowed between them.
        self.world.state.add_contact(member.user, self.world.gateway_user)
        self.world.state.add_contact(self.world.gateway_user, member.user)
        return member

    async def member_calls(self, member: SimMember) -> tuple[asyncio.Task[float], TelegramCall]:
        """*member* dials the gateway account; returns the dialling and the offered call."""
        offered: list[TelegramCall] = []
        self.calls.on_incoming = offered.append
        placing = asyncio.create_task(member.call(self.gateway_id))
        await eventually(lambda: bool(offered), 10)
        return placing, offered[0]


@pytest.fixture
async def scene(world: World) -> AsyncIterator[Scene]:
    account = await world.signed_in_account()
    calls = TelegramCalls(account.client, CallSettings(ring_timeout=20, media_timeout=4))
    await calls.start()
    s = Scene(world, account, calls, [])
    try:
        yield s
    finally:
        await asyncio.wait_for(calls.close(), 20)
        for m in s.members:
            with contextlib.suppress(Exception):
                await asyncio.wait_for(m.close(), 20)


async def pump_tone(call: TelegramCall, frequency: float, seconds: float) -> None:
    """Feed a tone to the gateway's side of the call, paced like the SIP media clock would."""
    tone = ToneGenerator(frequency, 8000, 0.3)

    async def send(frame: bytes) -> None:
        call.write_audio(frame)

    await pace_frames(tone.frames(seconds), send, max_frames=int(seconds * 100))


def collect(call: TelegramCall) -> bytearray:
    received = bytearray()

    def on_audio(frame: bytes) -> None:
        assert len(frame) == FRAME_BYTES
        received.extend(frame)

    call.on_audio = on_audio
    return received


def assert_tone(pcm: bytes, frequency: float) -> None:
    result = analyse(bytes(pcm))
    assert result.frequency_hz is not None, "nothing voiced was received"
    assert abs(result.frequency_hz - frequency) <= 1.0, result
    assert result.level_dbfs is not None
    assert abs(result.level_dbfs - SENT_LEVEL) <= 1.0, result
    assert result.voiced_frames >= 150, result


async def talk(call: TelegramCall, member: SimMember, gateway_hz: float, member_hz: float) -> None:
    """Two seconds of tone each way at once; check both ends heard the right one."""
    gateway = member.cloud.state.by_phone(GATEWAY_PHONE).id  # type: ignore[attr-defined]
    heard = collect(call)
    member.clear_received(gateway)
    await asyncio.gather(
        pump_tone(call, gateway_hz, 2.0),
        member.send_tone(gateway, member_hz, 2.0),
    )
    await asyncio.sleep(0.4)  # the jitter buffers drain
    assert_tone(member.received_pcm(gateway), gateway_hz)
    assert_tone(heard, member_hz)


# -- outgoing: the gateway rings a member ------------------------------------------------------


async def test_answered_call_carries_a_tone_each_way_and_gateway_hangs_up(scene: Scene) -> None:
    alice = await scene.member("Alice", answer_delay=0.3)
    states: list[CallState] = []
    call = await scene.calls.call(alice.id)
    call.on_state = lambda c: states.append(c.state)
    assert await call.wait_active(timeout=20), call
    assert states[:3] == [CallState.RINGING, CallState.CONNECTING, CallState.ACTIVE]
    assert alice.events_of("incoming"), "the member's app never rang"
    await talk(call, alice, 440, 880)
    assert call.emojis, "ntgcalls reported no key fingerprint"
    await call.hangup()
    assert call.outcome is CallOutcome.ANSWERED
    assert call.end_reason is EndReason.LOCAL_HANGUP
    await alice.wait_event("discarded", peer=scene.gateway_id, timeout=5)
    assert scene.calls.calls == {}
    assert call.duration > 2.0


async def test_member_declines(scene: Scene) -> None:
    bob = await scene.member("Bob", incoming=Incoming.DECLINE, answer_delay=0.3)
    call = await scene.calls.call(bob.id)
    assert await call.wait_ended(timeout=15)
    assert call.outcome is CallOutcome.DECLINED
    assert not call.redials


async def test_member_is_busy(scene: Scene) -> None:
    carol = await scene.member("Carol", incoming=Incoming.BUSY)
    call = await scene.calls.call(carol.id)
    assert await call.wait_ended(timeout=15)
    assert call.outcome is CallOutcome.BUSY


async def test_nobody_answers_within_the_ring_timeout(world: World) -> None:
    account = await world.signed_in_account()
    calls = TelegramCalls(account.client, CallSettings(ring_timeout=3))
    await calls.start()
    scene = Scene(world, account, calls, [])
    try:
        dave = await scene.member("Dave", incoming=Incoming.IGNORE)
        loop = asyncio.get_running_loop()
        started = loop.time()
        call = await calls.call(dave.id)
        assert await call.wait_ended(timeout=15)
        assert call.outcome is CallOutcome.NO_ANSWER
        assert 2.5 <= loop.time() - started <= 6.0
        await dave.wait_event("discarded", peer=world.gateway_user.id, timeout=5)
        assert dave.events_of("discarded")[-1].detail == "missed"
    finally:
        await calls.close()
        for m in scene.members:
            await m.close()


async def test_privacy_restricted_member(scene: Scene) -> None:
    erin = await scene.member("Erin")
    scene.world.state.set_privacy(erin.user, "PhoneCall", [PrivacyRule("disallow_all")])
    call = await scene.calls.call(erin.id)
    assert await call.wait_ended(timeout=10)
    assert call.outcome is CallOutcome.PRIVACY_RESTRICTED
    assert not erin.events_of("incoming")


async def test_member_who_blocked_the_gateway(scene: Scene) -> None:
    frank = await scene.member("Frank")
    scene.world.state.block(frank.user, scene.world.gateway_user)
    call = await scene.calls.call(frank.id)
    assert await call.wait_ended(timeout=10)
    assert call.outcome is CallOutcome.BLOCKED


async def test_member_hangs_up(scene: Scene) -> None:
    gina = await scene.member("Gina")
    call = await scene.calls.call(gina.id)
    assert await call.wait_active(timeout=20)
    await gina.hang_up(scene.gateway_id)
    assert await call.wait_ended(timeout=5)
    assert call.outcome is CallOutcome.ANSWERED
    assert call.end_reason is EndReason.REMOTE_HANGUP
    assert scene.calls.calls == {}


async def test_cancel_while_ringing_stops_the_member_ringing_promptly(scene: Scene) -> None:
    hank = await scene.member("Hank", incoming=Incoming.IGNORE)
    call = await scene.calls.call(hank.id)
    await eventually(lambda: call.state is CallState.RINGING, 10)
    loop = asyncio.get_running_loop()
    started = loop.time()
    await call.hangup()
    assert call.outcome is CallOutcome.CANCELLED
    event = await hank.wait_event("discarded", peer=scene.gateway_id, timeout=5)
    assert event.at - started < 1.0, "the member kept ringing"
    # The account can call again at once: nothing was left behind in py-tgcalls.
    hank.incoming = Incoming.ANSWER
    again = await scene.calls.call(hank.id)
    assert await again.wait_active(timeout=20)
    await again.hangup()


class NativeSpy:
    """The gateway's own NTgCalls, with when connect_p2p finished and when stop began.

    With `hold` set, the future connect_p2p hands back completes only once the
    test sets it: the operation stays "in flight" for as long as the test needs.
    """

    def __init__(self, inner: Any) -> None:
        self.inner = inner
        self.connecting = asyncio.Event()
        self.connected_at: float | None = None
        self.stops: list[float] = []
        self.hold: asyncio.Event | None = None

    def __getattr__(self, name: str) -> Any:
        return getattr(self.inner, name)

    def connect_p2p(self, chat_id: int, *args: Any) -> Any:
        native = self.inner.connect_p2p(chat_id, *args)
        self.connecting.set()
        hold = self.hold

        async def finished() -> Any:
            try:
                result = await native
                if hold is not None:
                    await hold.wait()
                return result
            finally:
                self.connected_at = asyncio.get_running_loop().time()

        return asyncio.ensure_future(finished())

    def stop(self, chat_id: int) -> Any:
        self.stops.append(asyncio.get_running_loop().time())
        return self.inner.stop(chat_id)


async def test_hang_up_while_the_call_connects(scene: Scene) -> None:
    # The SIP caller hangs up just as the member answers.  ntgcalls frees a call
    # stopped while connect_p2p runs on its worker thread: before StopAfterWork
    # this crashed the process (SIGSEGV) now and then.
    binding = scene.calls._tg._binding
    spy = NativeSpy(binding._inner)
    binding._inner = spy
    # A member each time: py-tgcalls on the member's side may keep its answer
    # waiting for media that was stopped under it (the member's app, not ours).
    for name in ("Jo", "Kim", "Lou"):
        member = await scene.member(name, answer_delay=0.2)
        spy.connecting.clear()
        call = await scene.calls.call(member.id)
        await asyncio.wait_for(spy.connecting.wait(), 20)
        stops, hung_up = len(spy.stops), asyncio.get_running_loop().time()
        await call.hangup()  # at once: connect_p2p is still on its worker thread
        assert call.state is CallState.ENDED, name
        assert spy.connected_at is not None and len(spy.stops) > stops
        assert spy.stops[stops] >= spy.connected_at, "stop ran beside connect_p2p"
        await member.wait_event("discarded", peer=scene.gateway_id, timeout=10, after=hung_up)
        assert not await scene.calls._tg.calls, "the call was left in the gateway's ntgcalls"
        assert not scene.calls._tg._p2p_configs and not scene.calls._tg._wait_connect
    # Nothing was left behind: the next call comes up and carries audio.
    max_ = await scene.member("Max")
    call = await scene.calls.call(max_.id)
    assert await call.wait_active(timeout=20)
    await talk(call, max_, 440, 880)
    await call.hangup()


async def test_media_failure_mid_call_tears_down_both_sides(scene: Scene) -> None:
    ivy = await scene.member("Ivy")
    call = await scene.calls.call(ivy.id)
    assert await call.wait_active(timeout=20)
    await talk(call, ivy, 440, 880)
    # The member's media engine dies without a word to Telegram (phone out of coverage).
    await ivy.calls._binding.stop(scene.gateway_id)
    assert await call.wait_ended(timeout=30)
    assert call.end_reason is EndReason.MEDIA_FAILED
    # The gateway discarded the Telegram call, so the cloud no longer holds it open.
    record = scene.world.cloud.phone.last_call()  # type: ignore[attr-defined]
    await eventually(lambda: record.state.name == "DISCARDED", 5)


async def test_call_survives_the_gateway_losing_its_telegram_connection(scene: Scene) -> None:
    """Media is peer to peer: a dropped MTProto connection must not end the call."""
    pia = await scene.member("Pia")
    call = await scene.calls.call(pia.id)
    assert await call.wait_active(timeout=20)
    (key,) = scene.world.state.keys_of(scene.gateway_id)
    assert scene.world.cloud.drop_connections(key) >= 1
    await talk(call, pia, 440, 880)
    assert call.state is CallState.ACTIVE
    # The account reconnected by itself, so the hang-up still reaches the member.
    await call.hangup()
    await pia.wait_event("discarded", peer=scene.gateway_id, timeout=10)


async def test_redials_once_when_media_never_connects(scene: Scene) -> None:
    jack = await scene.member("Jack")
    phone = scene.world.cloud.phone  # type: ignore[attr-defined]
    phone.never_connect = True
    call = await scene.calls.call(jack.id)

    def heal(c: TelegramCall) -> None:
        if c.redials:
            phone.never_connect = False

    call.on_state = heal
    assert await call.wait_active(timeout=60), call
    assert call.redials == 1
    assert len(phone.calls_of(jack.id)) == 2
    await call.hangup()


async def test_media_that_never_connects_after_the_redial_fails_the_call(scene: Scene) -> None:
    kim = await scene.member("Kim")
    scene.world.cloud.phone.never_connect = True  # type: ignore[attr-defined]
    call = await scene.calls.call(kim.id)
    assert await call.wait_ended(timeout=60)
    assert call.outcome is CallOutcome.CONNECT_FAILED
    assert call.redials == 1


# -- incoming: a member calls the gateway account ----------------------------------------------


async def test_member_calls_the_gateway_which_rings_then_answers(scene: Scene) -> None:
    lena = await scene.member("Lena")
    placing, call = await scene.member_calls(lena)
    assert call.user_id == lena.id and not call.outgoing
    # phone.receivedCall went out: the member's app shows "ringing" before any answer.
    await lena.wait_event("ringing", peer=scene.gateway_id, timeout=5)
    await asyncio.sleep(0.5)
    assert not placing.done()
    await call.answer()
    assert call.state is CallState.ACTIVE
    await asyncio.wait_for(placing, 15)
    await talk(call, lena, 697, 1209)
    await lena.hang_up(scene.gateway_id)
    assert await call.wait_ended(timeout=5)
    assert call.end_reason is EndReason.REMOTE_HANGUP


async def test_member_hangs_up_while_the_gateway_answer_connects(scene: Scene) -> None:
    # The mirror of test_hang_up_while_the_call_connects: py-tgcalls stops the call
    # from its update handler, without waiting for the gateway's play().  The
    # member's hang-up needs a round trip, so connect_p2p is held "in flight".
    binding = scene.calls._tg._binding
    spy = NativeSpy(binding._inner)
    binding._inner = spy
    ola = await scene.member("Ola")
    spy.hold = asyncio.Event()
    placing, call = await scene.member_calls(ola)
    answering = asyncio.create_task(call.answer())
    await asyncio.wait_for(spy.connecting.wait(), 20)
    hung_up = asyncio.get_running_loop().time()
    await ola.hang_up(scene.gateway_id)
    await eventually(lambda: binding.stop_held(ola.id) or bool(spy.stops), 10)
    await asyncio.sleep(0.5)
    assert not spy.stops, "stop ran while connect_p2p was in flight"
    assert binding.stop_held(ola.id)
    spy.hold.set()
    assert await call.wait_ended(timeout=15), call.state
    # Media may have come up natively while the future was held: then it was answered.
    assert call.outcome in (CallOutcome.CALLER_GAVE_UP, CallOutcome.ANSWERED), call.outcome
    assert call.outcome is CallOutcome.CALLER_GAVE_UP or call.end_reason is EndReason.REMOTE_HANGUP
    assert spy.stops and spy.connected_at is not None and spy.stops[0] >= spy.connected_at
    assert spy.stops[0] > hung_up
    with contextlib.suppress(Exception):
        await asyncio.wait_for(answering, 5)
    with contextlib.suppress(Exception):
        await asyncio.wait_for(placing, 5)
    assert not await scene.calls._tg.calls, "the call was left in the gateway's ntgcalls"
    assert scene.calls.calls == {}
    # The gateway takes the next call.
    spy.hold = None
    pat = await scene.member("Pat")
    placing, call = await scene.member_calls(pat)
    await call.answer()
    await asyncio.wait_for(placing, 15)
    await talk(call, pat, 697, 1209)
    await call.hangup()


async def test_member_hangs_up_at_any_moment_of_the_answer(scene: Scene) -> None:
    # Members who call and hang up at once, each a few ms later than the last, while
    # the gateway answers straight away.  ntgcalls finishes signalling on its own
    # threads after returning; a stop in that window crashed the process (SIGSEGV in
    # NativeConnection::set_remote_params): 2 of 3 runs of a 25-call version of this
    # test without binding.STOP_SETTLE.
    answers: list[asyncio.Future[None]] = []
    scene.calls.on_incoming = lambda call: answers.append(asyncio.ensure_future(call.answer()))
    for n, delay in enumerate((0, 0.01, 0.02, 0.03, 0.04, 0.05, 0.07, 0.09, 0.12, 0.15)):
        member = await scene.member(f"Quick{n}")
        answered = len(answers)
        placing = asyncio.create_task(member.call(scene.gateway_id, timeout=10))
        await eventually(lambda: len(answers) > answered, 10)  # noqa: B023
        await asyncio.sleep(delay)
        await asyncio.wait_for(member.close(), 20)
        with contextlib.suppress(Exception):
            await asyncio.wait_for(placing, 5)
        with contextlib.suppress(Exception):
            await asyncio.wait_for(answers[-1], 15)
        await eventually(lambda: not scene.calls.calls, 15)
    assert not await scene.calls._tg.calls, "a call was left in the gateway's ntgcalls"


async def test_gateway_rejects_a_member_call_as_busy(scene: Scene) -> None:
    mona = await scene.member("Mona")
    scene.calls.on_incoming = lambda c: asyncio.ensure_future(c.reject(busy=True))
    with pytest.raises(Exception) as raised:
        await mona.call(scene.gateway_id, timeout=10)
    assert type(raised.value).__name__ == "CallBusy"


async def test_member_gives_up_before_the_gateway_answers(scene: Scene) -> None:
    nina = await scene.member("Nina")
    placing, call = await scene.member_calls(nina)
    await nina.hang_up(scene.gateway_id)
    with contextlib.suppress(Exception):
        await placing
    assert await call.wait_ended(timeout=5)
    assert call.outcome is CallOutcome.CALLER_GAVE_UP


# -- every protocol version ntgcalls offers ----------------------------------------------------


@pytest.mark.parametrize("version", ["8.0.0", "9.0.0", "12.0.0", "13.0.0"])
async def test_each_protocol_version(scene: Scene, version: str) -> None:
    scene.world.cloud.phone.force_version = version  # type: ignore[attr-defined]
    olga = await scene.member("Olga")
    call = await scene.calls.call(olga.id)
    assert await call.wait_active(timeout=20)
    assert [c.versions for c in olga.p2p_connects] == [[version]]
    await talk(call, olga, 440, 880)
    await call.hangup()

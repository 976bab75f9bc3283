"""Conversation audio routing and hold, with stand-in legs (no network, manual clock)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from gateway.calls.conversation import Conversation, Party
from gateway.media.clock import MediaClock
from gateway.media.tones import RINGBACK
from gateway.sip.call import CallState
from gateway.telegram.call import CallState as TgState


class FakeTg:
    def __init__(self) -> None:
        self.state = TgState.ACTIVE
        self.sent: list[bytes] = []
        self.on_audio: Callable[[bytes], None] | None = None
        self.on_state: Callable[[Any], None] | None = None

    @property
    def ended(self) -> bool:
        return self.state is TgState.ENDED

    def write_audio(self, frame: bytes) -> None:
        assert len(frame) == 160
        self.sent.append(frame)


class FakeSip:
    def __init__(self, state: CallState = CallState.UP) -> None:
        self.state = state
        self.written: list[bytes] = []
        self.on_audio: Callable[[bytes], None] | None = None
        self.on_dtmf: Any = None
        self.on_refer: Any = None
        self.on_state: list[Callable[[Any], None]] = []
        self.local_hold = False
        self.answered_at: float | None = None

    def write_audio(self, pcm: bytes) -> None:
        self.written.append(pcm)

    async def hold(self) -> bool:
        self.local_hold = True
        return True

    async def resume(self) -> bool:
        self.local_hold = False
        return True

    async def hang_up(self) -> None:
        self.set(CallState.ENDED)

    def set(self, state: CallState) -> None:
        self.state = state
        for callback in list(self.on_state):
            callback(self)


class FakeManager:
    def __init__(self) -> None:
        self.clock = MediaClock(manual=True)
        self.ended: list[tuple[Party, bool]] = []
        self.changed: list[Party] = []
        self.left = 0

    def party_ended(self, conv: Conversation, party: Party, was_active: bool) -> None:
        self.ended.append((party, was_active))

    def party_changed(self, conv: Conversation, party: Party) -> None:
        self.changed.append(party)

    def member_left(self, conv: Conversation) -> None:
        self.left += 1

    def on_refer(self, conv: Conversation, party: Party, user: str) -> bool:
        return False


def conversation() -> tuple[Conversation, FakeManager, FakeTg]:
    manager, tg = FakeManager(), FakeTg()
    conv = Conversation(manager, None, tg)  # type: ignore[arg-type]
    return conv, manager, tg


def party(sip: FakeSip, number: str = "0201") -> Party:
    return Party(sip, number, "", "home")  # type: ignore[arg-type]


def test_party_ptime_is_cut_into_ten_millisecond_frames_for_the_member() -> None:
    conv, _, tg = conversation()
    sip = FakeSip()
    conv.add(party(sip))
    assert sip.on_audio is not None
    sip.on_audio(bytes(range(256)) + bytes(64))  # 20 ms
    sip.on_audio(bytes(480))  # 30 ms
    assert len(tg.sent) == 5
    assert tg.sent[0] == bytes(range(160))


def test_member_audio_goes_to_the_active_party_only() -> None:
    conv, _, tg = conversation()
    first, second = FakeSip(), FakeSip()
    conv.add(party(first))
    assert tg.on_audio is not None
    tg.on_audio(b"a" * 160)
    conv.active.held = True  # type: ignore[union-attr]
    conv.add(party(second))
    tg.on_audio(b"b" * 160)
    assert first.written == [b"a" * 160] and second.written == [b"b" * 160]
    # The held party's audio does not reach the member.
    assert first.on_audio is not None
    first.on_audio(bytes(320))
    assert tg.sent == []


async def test_hold_active_and_activate_swap_the_parties() -> None:
    conv, _, _ = conversation()
    first, second = FakeSip(), FakeSip()
    p1 = party(first, "1")
    conv.add(p1)
    await conv.hold_active()
    assert first.local_hold and p1.held
    p2 = party(second, "2")
    conv.add(p2)
    assert conv.active is p2 and conv.held_party() is p1
    await conv.hold_active()
    await conv.activate(p1)
    assert conv.active is p1 and not first.local_hold and second.local_hold


async def test_holding_a_party_still_ringing_hangs_it_up() -> None:
    conv, manager, _ = conversation()
    ringing = FakeSip(CallState.RINGING)
    conv.add(party(ringing))
    await conv.hold_active()
    assert ringing.state is CallState.ENDED and conv.parties == [] and manager.ended == []


def test_ringback_while_the_party_rings_then_its_audio() -> None:
    conv, manager, tg = conversation()
    sip = FakeSip(CallState.CALLING)
    conv.add(party(sip))
    manager.clock.tick(0.0)
    assert tg.sent == []  # no 180 yet: silence
    sip.set(CallState.RINGING)
    manager.clock.tick(0.02)
    assert len(tg.sent) == 2 and any(tg.sent[0])  # ringback: two frames per 20 ms tick
    assert conv._tone is not None and conv._tone.plan is RINGBACK
    sip.set(CallState.UP)
    manager.clock.tick(0.04)
    assert len(tg.sent) == 2 and conv._tone is None


def test_a_party_that_ends_is_reported_once_and_dropped() -> None:
    conv, manager, _ = conversation()
    sip = FakeSip()
    p = party(sip)
    conv.add(p)
    sip.set(CallState.ENDED)
    sip.set(CallState.ENDED)
    assert manager.ended == [(p, True)] and conv.active is None and conv.parties == []


def test_member_leaving_is_reported_and_close_stops_audio() -> None:
    conv, manager, tg = conversation()
    sip = FakeSip()
    conv.add(party(sip))
    tg.state = TgState.ENDED
    assert tg.on_state is not None
    tg.on_state(tg)
    assert manager.left == 1
    conv.close()
    assert tg.on_audio is None and sip.on_audio is None and manager.clock.subscribers == 0

"""Simulation mode: the gateway's Telegram side against the in-process cloud and scripted members.

Real Telethon and real ntgcalls media on both ends, so every test runs inside
the private network namespace (tools/in-netns.sh); outside it they fail.
"""

from __future__ import annotations

import asyncio
import contextlib
import socket
import wave
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path
from typing import Any

import pytest

from gateway.app import Gateway
from gateway.config import Config, parse_config
from gateway.simulation import ScriptedMember, Simulation
from gateway.store import Store
from gateway.telegram.account import ConnectionState
from gateway.telegram.call import CallOutcome, EndReason, TelegramCall
from gateway.telegram.messages import (
    Button,
    ButtonPress,
    InboundEvent,
    Member,
    OutgoingMessage,
    TextFromMember,
)
from gateway.telegram.service import TelegramSide
from simcloud.audio import ToneGenerator, analyse, pace_frames
from tests.telegram.simworld import eventually

pytestmark = [pytest.mark.media, pytest.mark.timeout(120)]

LINES = [
    {"name": "demo", "kind": "ata", "incoming": "members", "allow": ["127.0.0.1"]},
    {"name": "office", "kind": "ata", "incoming": "members", "allow": ["127.0.0.2"]},
]


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def sim_config(tmp: Path, members: list[dict[str, Any]], **simulation: Any) -> Config:
    data = {
        "gateway": {"data_dir": "data"},
        "sip": {"listen": "127.0.0.1", "port": free_port()},
        "telegram": {"ring_timeout": 10},
        "lines": LINES,
        "simulation": {"enabled": True, **simulation, "members": members},
    }
    return parse_config(data, base_dir=tmp)


@dataclass
class Running:
    """A Simulation and the Telegram side wired to it, as gateway.app does."""

    simulation: Simulation
    side: TelegramSide
    store: Store
    events: list[InboundEvent] = field(default_factory=list)

    def __getitem__(self, name: str) -> ScriptedMember:
        return self.simulation.members[name]

    async def call(self, name: str) -> TelegramCall:
        """The gateway calls a member as the call layer would: by the stored id and hash."""
        record = self.store.member_by_telegram(self[name].id)
        assert record is not None
        await self.side.account.ensure_known(record.telegram_id, record.access_hash)
        assert self.side.calls is not None
        return await self.side.calls.call(record.telegram_id)

    def member(self, name: str) -> Member:
        record = self.store.member_by_telegram(self[name].id)
        assert record is not None
        return Member(record.telegram_id, record.access_hash, record.name, record.username)


Start = Callable[..., Awaitable[Running]]


@pytest.fixture
async def start(tmp_path: Path) -> AsyncIterator[Start]:
    stops: list[Callable[[], Awaitable[None]]] = []

    async def run(members: list[dict[str, Any]], **simulation: Any) -> Running:
        config = sim_config(tmp_path, members, **simulation)
        config.data_dir.mkdir(parents=True, exist_ok=True)
        store = Store.open(config.data_dir / "linegram.db")
        simulation_ = Simulation(config, store)
        side = TelegramSide(simulation_.config)
        stops.extend([simulation_.stop, side.stop])
        await simulation_.start()
        await side.start()
        await side.account.wait_for(ConnectionState.CONNECTED, timeout=20)
        await eventually(lambda: side.calls is not None, 20)
        running = Running(simulation_, side, store)
        side.messenger.subscribe(running.events.append)
        return running

    try:
        yield run
    finally:
        for stop in reversed(stops):
            with contextlib.suppress(Exception):
                await asyncio.wait_for(stop(), 30)


async def pump_tone(call: TelegramCall, frequency: float, seconds: float) -> None:
    tone = ToneGenerator(frequency, 8000, 0.3)

    async def send(frame: bytes) -> None:
        call.write_audio(frame)

    await pace_frames(tone.frames(seconds), send, max_frames=int(seconds * 100))


def collect(call: TelegramCall) -> bytearray:
    heard = bytearray()
    call.on_audio = heard.extend
    return heard


def assert_tone(pcm: bytes, frequency: float, level_dbfs: float | None = None) -> None:
    result = analyse(bytes(pcm))
    assert result.frequency_hz is not None, "nothing voiced was heard"
    assert abs(result.frequency_hz - frequency) <= 1.0, result
    assert result.voiced_frames >= 100, result
    if level_dbfs is not None:
        assert result.level_dbfs is not None
        assert abs(result.level_dbfs - level_dbfs) <= 1.5, result


def read_wav(path: Path) -> tuple[int, int, int, bytes]:
    with wave.open(str(path), "rb") as wav:
        params = (wav.getnchannels(), wav.getsampwidth(), wav.getframerate())
        return (*params, wav.readframes(wav.getnframes()))


def write_tone_wav(path: Path, frequency: float, seconds: float, rate: int) -> None:
    pcm = b"".join(ToneGenerator(frequency, rate, 0.3).frames(seconds))
    with wave.open(str(path), "wb") as wav:
        wav.setnchannels(1)
        wav.setsampwidth(2)
        wav.setframerate(rate)
        wav.writeframes(pcm)


def has_calls(side: TelegramSide) -> bool:
    return side.calls is not None


# -- the gateway process in simulation mode ------------------------------------------------------


async def test_gateway_signs_in_to_the_simulation_and_links_the_members(tmp_path: Path) -> None:
    config = sim_config(
        tmp_path,
        [
            {"name": "Alice", "username": "alice_home", "lines": ["demo"]},
            {"name": "Bob", "phone": "+44 7700 900123"},
        ],
    )
    config.data_dir.mkdir(parents=True)
    store = Store.open(config.data_dir / "linegram.db")
    ids: list[dict[str, int]] = []
    for _run in range(2):  # a second start finds the first one's session and database
        gateway = Gateway(config, store)
        assert gateway.simulation is not None
        try:
            await gateway.start()
            side, simulation = gateway.telegram, gateway.simulation
            status = await side.account.wait_for(ConnectionState.CONNECTED, timeout=20)
            assert status.user is not None
            assert (status.user.name, status.user.phone) == ("Home Gateway", "999660000")
            assert status.user.username == "home_gateway"
            assert side.bot is not None
            await side.bot.wait_for(ConnectionState.CONNECTED, timeout=20)
            assert side.bot.username == "linegram_sim_bot"
            await eventually(partial(has_calls, side), 20)

            alice, bob = simulation.members["Alice"], simulation.members["Bob"]
            assert bob.user.phone == "447700900123"
            assert alice.user.phone == "999661001"  # generated
            records = {r.name: r for r in store.members()}
            assert set(records) == {"Alice", "Bob"}
            assert records["Alice"].lines == ("demo",)
            assert records["Bob"].lines == ("demo", "office")  # every line by default
            assert records["Alice"].owner and not records["Bob"].owner
            assert records["Alice"].username == "alice_home"
            for member in (alice, bob):
                record = records[member.name]
                assert record.telegram_id == member.id
                # The gateway account's own hash for the member: what calls and messages use.
                hash_ = simulation.state.access_hash(simulation.gateway_user, member.user)
                assert record.access_hash == hash_
                assert simulation.state.is_contact(member.user, simulation.gateway_user)
                assert simulation.state.is_contact(simulation.gateway_user, member.user)
            ids.append({r.name: r.telegram_id for r in records.values()})
            assert simulation.gateway_online()
            # The real account's session is never touched: the simulation has its own.
            assert (config.data_dir / "simulation" / "gateway.session").exists()
            assert not config.telegram_session.exists()
            server = simulation.server
        finally:
            await gateway.stop()
        with pytest.raises(OSError):
            await asyncio.open_connection(server.host, server.port)
    assert ids[0] == ids[1]
    assert len(store.members()) == 2
    store.close()


# -- calls to scripted members -------------------------------------------------------------------


async def test_member_answers_after_the_delay_plays_a_tone_and_records_the_gateway(
    start: Start, tmp_path: Path
) -> None:
    sim = await start(
        [
            {
                "name": "Alice",
                "answer_after": 1.5,
                "tone_hz": 660,
                "tone_dbfs": -12,
                "record": "rec/alice.wav",
            }
        ]
    )
    alice = sim["Alice"]
    loop = asyncio.get_running_loop()
    dialled = loop.time()
    call = await sim.call("Alice")
    assert await call.wait_active(timeout=20), call
    assert loop.time() - dialled >= 1.5
    await alice.wait_call(5)  # her side notes the call a moment after the gateway's
    assert alice.in_call and alice.answered_calls == 1
    heard = collect(call)
    await pump_tone(call, 440, 2.0)
    await asyncio.sleep(0.4)  # the jitter buffers drain
    assert_tone(bytes(heard), 660, level_dbfs=-12)
    assert_tone(alice.heard_pcm(), 440)
    await call.hangup()
    assert call.outcome is CallOutcome.ANSWERED
    await alice.wait_call_ended(timeout=10)
    assert not alice.in_call
    channels, width, rate, pcm = read_wav(tmp_path / "rec" / "alice.wav")
    assert (channels, width, rate) == (1, 2, 8000)
    assert_tone(pcm, 440)
    assert alice.recordings == [tmp_path / "rec" / "alice.wav"]


async def test_member_plays_a_16_khz_wav_file(start: Start, tmp_path: Path) -> None:
    write_tone_wav(tmp_path / "hello.wav", 500, 1.5, 16000)
    sim = await start([{"name": "Henry", "answer_after": 0.2, "play": "hello.wav"}])
    call = await sim.call("Henry")
    heard = collect(call)
    assert await call.wait_active(timeout=20), call
    await asyncio.sleep(3.5)
    await call.hangup()
    result = analyse(bytes(heard))
    assert result.frequency_hz is not None and abs(result.frequency_hz - 500) <= 1.0, result
    assert result.level_dbfs is not None
    assert abs(result.level_dbfs - ToneGenerator(500, 8000, 0.3).level_dbfs) <= 1.5, result
    # Played once: 150 frames of sound (plus a decoder tail), then silence.
    assert 135 <= result.voiced_frames <= 200, result


async def test_decline_busy_privacy_and_a_changed_mind(start: Start) -> None:
    sim = await start(
        [
            {"name": "Bob", "incoming": "decline", "answer_after": 0.3},
            {"name": "Carol", "incoming": "busy"},
            {"name": "Dave", "privacy": "nobody"},
            {"name": "Erin", "privacy": "contacts", "answer_after": 0.2},
        ]
    )
    outcomes = {}
    for name in ("Bob", "Carol", "Dave"):
        call = await sim.call(name)
        assert await call.wait_ended(timeout=15), call
        outcomes[name] = call.outcome
    assert outcomes == {
        "Bob": CallOutcome.DECLINED,
        "Carol": CallOutcome.BUSY,
        "Dave": CallOutcome.PRIVACY_RESTRICTED,
    }
    assert sim["Bob"].answered_calls == sim["Carol"].answered_calls == 0
    # "contacts" lets the gateway through: it is one of Erin's contacts.
    call = await sim.call("Erin")
    assert await call.wait_active(timeout=20), call
    await call.hangup()
    # Tests may change a member's mind between calls.
    sim["Bob"].set_incoming("answer", 0.1)
    call = await sim.call("Bob")
    assert await call.wait_active(timeout=20), call
    await sim["Bob"].wait_call(5)
    await call.hangup()
    assert call.outcome is CallOutcome.ANSWERED


async def test_member_hangs_up_after_the_scripted_time(start: Start) -> None:
    sim = await start([{"name": "Fay", "answer_after": 0.1, "hang_up_after": 1.5}])
    call = await sim.call("Fay")
    assert await call.wait_active(timeout=20), call
    assert await call.wait_ended(timeout=10), call
    assert call.outcome is CallOutcome.ANSWERED
    assert call.end_reason is EndReason.REMOTE_HANGUP
    assert 1.2 <= call.duration <= 4.0, call.duration


async def test_member_sends_a_number_then_calls_the_gateway(start: Start) -> None:
    offered: list[TelegramCall] = []
    sim = await start(
        [
            {
                "name": "Gus",
                "send_number": "+44 20 7946 0018",
                "send_after": 0.2,
                "call_gateway_after": 0.5,
                "tone_hz": 880,
            }
        ]
    )
    sim.side.on_incoming_call = offered.append
    gus = sim["Gus"]
    texts = await eventually(
        lambda: [e for e in sim.events if isinstance(e, TextFromMember)], timeout=15
    )
    assert texts[0].text == "+44 20 7946 0018"
    assert texts[0].member.user_id == gus.id
    await eventually(lambda: offered, timeout=15)
    call = offered[0]
    heard = collect(call)
    await call.answer()
    assert await call.wait_active(timeout=20), call
    await gus.wait_call(10)
    await asyncio.sleep(2.0)
    assert_tone(bytes(heard), 880)
    await gus.hang_up()
    assert await call.wait_ended(timeout=10)
    assert call.end_reason is EndReason.REMOTE_HANGUP


async def test_member_presses_the_keypad_of_the_gateways_message(start: Start) -> None:
    sim = await start([{"name": "Grace", "answer_after": 0.1, "keypad": "12#", "keypad_after": 2}])
    grace = sim["Grace"]
    call = await sim.call("Grace")
    assert await call.wait_active(timeout=20), call
    # What the call layer sends once a call is up: a keypad via the companion bot.
    keys = ["1", "2", "3", "4", "5", "6", "7", "8", "9", "*", "0", "#"]
    rows = [[Button(k, f"dtmf:{k}") for k in keys[i : i + 3]] for i in range(0, 12, 3)]
    assert sim.side.messenger.bot_ready
    await sim.side.messenger.send(sim.member("Grace"), OutgoingMessage("In a call", rows))

    def presses() -> list[str]:
        return [e.data for e in sim.events if isinstance(e, ButtonPress)]

    await eventually(lambda: len(presses()) >= 3, timeout=15)
    assert presses() == ["dtmf:1", "dtmf:2", "dtmf:#"]
    assert all(e.member.user_id == grace.id for e in sim.events if isinstance(e, ButtonPress))
    await grace.press("5")  # tests press too
    await eventually(lambda: len(presses()) == 4, timeout=10)
    assert presses()[-1] == "dtmf:5"
    with pytest.raises(LookupError):
        await grace.press("A")
    await call.hangup()

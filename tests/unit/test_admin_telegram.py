"""The wizard's Telegram control methods (gateway/admin_telegram.py) without a network.

The echo meter with real PCM, the test call's course on a scripted stand-in for a
Telegram call, and parameter checks of every method on a real (idle, never
started) TelegramSide and a real store.  The same methods against the simulated
cloud with real media: tests/telegram/test_admin_telegram.py.
"""

from __future__ import annotations

import array
import asyncio
import dataclasses
import logging
import math
from collections.abc import AsyncIterator
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest

from gateway.admin_telegram import (
    ECHO_DELAY_FRAMES,
    EchoCalls,
    EchoMeter,
    bot_token,
    frame_dbfs,
    telegram_methods,
)
from gateway.config import ConfigError, Secret, default_config, load_config
from gateway.control import ControlClient, ControlError, ControlServer
from gateway.store import MemberRecord, NotFound, Store
from gateway.telegram.call import FRAME_BYTES, CallOutcome, CallState, EndReason
from gateway.telegram.service import TelegramSide, save_bot_token_to_config

TOKEN = "123456789:AAH4cQx_Zr7-kP2mVt9LwE3yBn6uJd0sFgH"
API_HASH = "0123456789abcdef0123456789abcdef"


def tone(amplitude: float, frames: int = 1, hz: float = 440.0) -> list[bytes]:
    out, n = [], 0
    for _ in range(frames):
        samples = array.array(
            "h",
            (
                round(amplitude * 32767 * math.sin(2 * math.pi * hz * (n + i) / 8000))
                for i in range(80)
            ),
        )
        n += 80
        out.append(samples.tobytes())
    return out


# -- the echo and its numbers ---------------------------------------------------------------------


def test_frame_level_of_a_sine_and_of_silence() -> None:
    assert frame_dbfs(bytes(FRAME_BYTES)) is None
    level = frame_dbfs(tone(0.3, 4)[2])
    assert level is not None and abs(level - 20 * math.log10(0.3)) < 0.3  # -10.5 dBFS
    quiet = frame_dbfs(tone(0.001)[0])
    assert quiet is not None and quiet < -50


def test_meter_echoes_after_the_delay_and_counts_what_it_heard() -> None:
    meter = EchoMeter(delay_frames=3)
    loud = tone(0.3, 5)
    sent = [meter.feed(frame) for frame in loud]
    assert sent[:3] == [bytes(FRAME_BYTES)] * 3  # the delay line starts silent
    assert sent[3:] == loud[:2]
    sent += [meter.feed(bytes(FRAME_BYTES)) for _ in range(3)]
    assert sent[5:] == loud[2:]
    meter.feed(tone(0.001)[0])  # below -50 dBFS: arrived, not heard
    assert (meter.frames_in, meter.heard_frames) == (9, 5)
    assert meter.heard_seconds == pytest.approx(0.05)
    assert meter.peak_dbfs == pytest.approx(-10.5, abs=0.3)


def test_meter_before_any_sound() -> None:
    meter = EchoMeter()
    assert meter.feed(bytes(FRAME_BYTES)) == bytes(FRAME_BYTES)
    assert (meter.frames_in, meter.heard_seconds, meter.peak_dbfs) == (1, 0.0, None)


def test_bot_token_format() -> None:
    assert bot_token({"token": f"  {TOKEN} "}).reveal() == TOKEN
    for bad in ("", "123456789", "12:AAH4cQx_Zr7-kP2mVt9LwE3yBn6uJd0sFgH", "123456789:short"):
        with pytest.raises(ValueError) as info:
            bot_token({"token": bad})
        assert "123456789:AAH4c" in str(info.value)  # the example, never the value given
    with pytest.raises(ValueError, match="token must be a string"):
        bot_token({"token": 5})


def test_save_bot_token_to_config(tmp_path: Path) -> None:
    path = tmp_path / "linegram.toml"
    path.write_text("[telegram]\nring_timeout = 30\n")
    save_bot_token_to_config(path, Secret(TOKEN))
    saved = load_config(path)
    assert saved.telegram.bot_token.reveal() == TOKEN and saved.telegram.ring_timeout == 30
    assert path.stat().st_mode & 0o777 == 0o600
    with pytest.raises(ConfigError, match="no such file"):
        save_bot_token_to_config(tmp_path / "missing.toml", Secret(TOKEN))


# -- the test call's course, on a stand-in for TelegramCall --------------------------------------


class FakeCall:
    """What EchoCalls uses of a TelegramCall, driven by the test."""

    def __init__(self, user_id: int) -> None:
        self.user_id = user_id
        self.state = CallState.DIALING
        self.outcome: CallOutcome | None = None
        self.end_reason: EndReason | None = None
        self.detail = ""
        self.frames_out = 0
        self.written: list[bytes] = []
        self.on_audio: Any = None
        self._active: asyncio.Future[bool] = asyncio.get_running_loop().create_future()
        self._ended = asyncio.Event()

    @property
    def ended(self) -> bool:
        return self.state is CallState.ENDED

    async def wait_active(self, timeout: float | None = None) -> bool:
        try:
            return await asyncio.wait_for(asyncio.shield(self._active), timeout)
        except TimeoutError:
            return False

    async def wait_ended(self, timeout: float | None = None) -> bool:
        try:
            await asyncio.wait_for(self._ended.wait(), timeout)
        except TimeoutError:
            return False
        return True

    def write_audio(self, frame: bytes) -> None:
        self.written.append(frame)
        self.frames_out += 1

    async def hangup(self) -> None:
        if not self.ended:
            up = self.state is CallState.ACTIVE
            self.end(CallOutcome.ANSWERED if up else CallOutcome.CANCELLED, EndReason.LOCAL_HANGUP)

    def answer(self) -> None:
        self.state = CallState.ACTIVE
        self._active.set_result(True)

    def hear(self, frames: list[bytes]) -> None:
        for frame in frames:
            self.on_audio(frame)

    def end(self, outcome: CallOutcome, reason: EndReason | None = None, detail: str = "") -> None:
        self.state, self.outcome, self.end_reason, self.detail = (
            CallState.ENDED,
            outcome,
            reason,
            detail,
        )
        if not self._active.done():
            self._active.set_result(False)
        self._ended.set()


class FakeCalls:
    def __init__(self) -> None:
        self.calls: dict[int, FakeCall] = {}
        self.settings = SimpleNamespace(ring_timeout=45.0)
        self.placed: list[FakeCall] = []

    async def call(self, user_id: int) -> FakeCall:
        call = FakeCall(user_id)
        self.placed.append(call)
        return call


def member(**changes: Any) -> MemberRecord:
    values: dict[str, Any] = {
        "id": 1,
        "telegram_id": 111,
        "access_hash": 5,
        "name": "Alice",
        "username": "alice",
        "owner": True,
        "outgoing_method": "invite",
        "default_line": "",
        "lines": ("home",),
        "linked_at": 1.0,
        "privacy": "",
        "privacy_checked_at": None,
    }
    values.update(changes)
    return MemberRecord(**values)


def echo_calls(**options: Any) -> tuple[EchoCalls, FakeCalls, list[tuple[int, int]]]:
    calls = FakeCalls()
    remembered: list[tuple[int, int]] = []
    side = SimpleNamespace(
        calls=calls, account=SimpleNamespace(remember=lambda *pair: remembered.append(pair))
    )
    clock = iter(range(1000, 2000))
    return EchoCalls(side, clock=lambda: float(next(clock)), **options), calls, remembered  # type: ignore[arg-type]


async def settle(echo: EchoCalls) -> None:
    for _ in range(20):
        await asyncio.sleep(0)


async def test_answered_call_echoes_and_reports_what_it_heard() -> None:
    echo, calls, remembered = echo_calls()
    assert echo.status().state == "idle"
    status = await echo.start(member())
    assert (status.state, status.member, status.message) == (
        "ringing",
        "Alice",
        "Calling Alice in Telegram…",
    )
    assert remembered == [(111, 5)]
    call = calls.placed[0]
    with pytest.raises(ControlError) as info:
        await echo.start(member())
    assert (info.value.code, info.value.message) == (
        "busy",
        "A test call to Alice is in progress; stop it first.",
    )
    call.answer()
    await settle(echo)
    frames = tone(0.2, 150)
    call.hear(frames)
    status = echo.status()
    assert status.state == "up" and status.heard_seconds == 1.5
    assert call.written[ECHO_DELAY_FRAMES:] == frames[: 150 - ECHO_DELAY_FRAMES]
    call.end(CallOutcome.ANSWERED, EndReason.REMOTE_HANGUP)
    await settle(echo)
    status = echo.status()
    assert status.state == "ended"
    assert status.message == (
        "Audio flows: the gateway heard you for 1.5 s (loudest -14 dBFS) and sent it back."
    )
    assert (status.frames_in, status.frames_out) == (150, 150)
    assert status.peak_dbfs == pytest.approx(-14.0, abs=0.3)
    assert status.started_at == 1000.0 and status.ended_at is not None
    assert call.on_audio is None
    # A new test may start now; the old result is replaced.
    assert (await echo.start(member())).state == "ringing"


async def test_answered_without_audio_and_silent_calls_say_so() -> None:
    echo, calls, _ = echo_calls(max_seconds=0.05)
    await echo.start(member())
    calls.placed[0].answer()
    await asyncio.sleep(0.2)  # the time limit hangs up
    status = echo.status()
    assert status.state == "ended" and calls.placed[0].outcome is CallOutcome.ANSWERED
    assert status.message == "The call was answered but no audio arrived from your phone."
    await echo.start(member())
    call = calls.placed[1]
    call.answer()
    await settle(echo)
    call.hear([bytes(FRAME_BYTES)] * 10)
    call.end(CallOutcome.ANSWERED, EndReason.MEDIA_FAILED, "no audio")
    await settle(echo)
    status = echo.status()
    assert status.heard_seconds == 0 and status.frames_in == 10
    assert status.message.startswith("The call was answered but the gateway heard only silence")
    assert status.message.endswith("Then the audio connection broke off.")


@pytest.mark.parametrize(
    ("outcome", "detail", "state", "message"),
    [
        (CallOutcome.DECLINED, "", "failed", "Alice declined the call."),
        (CallOutcome.NO_ANSWER, "", "failed", "Alice did not answer within 45 s."),
        (
            CallOutcome.CONNECT_FAILED,
            "peer-to-peer media did not connect",
            "failed",
            (
                "The call was answered but the audio connection could not be set up"
                " (peer-to-peer media did not connect)."
            ),
        ),
        (
            CallOutcome.FAILED,
            "USER_DEACTIVATED",
            "failed",
            "Telegram refused the call (USER_DEACTIVATED).",
        ),
    ],
)
async def test_unanswered_calls_fail_with_the_reason(
    outcome: CallOutcome, detail: str, state: str, message: str
) -> None:
    echo, calls, _ = echo_calls()
    await echo.start(member())
    calls.placed[0].end(outcome, detail=detail)
    await settle(echo)
    status = echo.status()
    assert (status.state, status.message) == (state, message)


async def test_stop_while_ringing_and_refusals() -> None:
    echo, calls, _ = echo_calls()
    assert (await echo.stop()).state == "idle"
    await echo.start(member())
    status = await echo.stop()
    assert (status.state, status.message) == (
        "ended",
        "The test call was stopped before Alice answered.",
    )
    with pytest.raises(ControlError) as info:
        await echo.start(member(access_hash=0))
    assert info.value.code == "invalid" and "has not met Alice yet" in info.value.message
    calls.calls[111] = FakeCall(111)
    with pytest.raises(ControlError) as info:
        await echo.start(member())
    assert info.value.code == "busy"
    echo._telegram.calls = None  # type: ignore[attr-defined]
    with pytest.raises(ControlError) as info:
        await echo.start(member())
    assert info.value.code == "unavailable"


# -- the methods' parameters, on an idle Telegram side -------------------------------------------


@pytest.fixture
async def methods(tmp_path: Path) -> AsyncIterator[dict[str, Any]]:
    config = dataclasses.replace(default_config(tmp_path), base_dir=tmp_path)
    side = TelegramSide(config)
    with Store.open(tmp_path / "x.db") as store:
        gateway = SimpleNamespace(
            telegram=side, store=store, manager=SimpleNamespace(conversation_of=lambda _id: None)
        )
        yield telegram_methods(gateway)  # type: ignore[arg-type]


async def test_login_view_json(methods: dict[str, Any]) -> None:
    view = await methods["telegram.login.view"]({})
    assert view["step"] == "need_app" and view["user"] is None
    assert set(view) == {
        "step",
        "instructions",
        "message",
        "phone",
        "code_via",
        "code_length",
        "next_via",
        "resend_after",
        "password_hint",
        "can_resend",
        "user",
    }
    view = await methods["telegram.login.app"]({"api_id": "12ab", "api_hash": API_HASH})
    assert (view["step"], view["message"]) == (
        "need_app",
        "The api_id is the number shown on my.telegram.org.",
    )
    view = await methods["telegram.login.phone"]({"phone": "+49 170 1234567"})
    assert view["step"] == "need_app"  # no app yet: the app's instructions come back


@pytest.mark.parametrize(
    ("method", "params", "message"),
    [
        ("telegram.login.view", {"x": 1}, "unknown parameter 'x'"),
        ("telegram.login.app", {"api_hash": API_HASH}, "api_id is required"),
        (
            "telegram.login.app",
            {"api_id": True, "api_hash": API_HASH},
            "api_id must be a number, got bool",
        ),
        ("telegram.login.app", {"api_id": 5}, "api_hash is required"),
        ("telegram.login.app", {"api_id": 5, "api_hash": 7}, "api_hash must be a string, got int"),
        ("telegram.login.phone", {}, "phone is required"),
        ("telegram.login.code", {"code": "1" * 300}, "code is too long (at most 256 characters)"),
        ("telegram.login.password", {"password": None}, "password is required"),
        ("telegram.login.password", {"password": "x", "hint": "y"}, "unknown parameter 'hint'"),
        ("telegram.login.resend", {"phone": "1"}, "unknown parameter 'phone'"),
        ("telegram.bot.set_token", {}, "token is required"),
        ("test_call.start", {"member_id": "1"}, "member_id must be an integer at least 1, got '1'"),
        ("test_call.status", {"member_id": 1}, "unknown parameter 'member_id'"),
    ],
)
async def test_bad_parameters(
    methods: dict[str, Any], method: str, params: dict[str, Any], message: str
) -> None:
    with pytest.raises(ValueError) as info:
        await methods[method](params)
    assert str(info.value) == message


async def test_bot_and_test_call_without_telegram(methods: dict[str, Any]) -> None:
    assert await methods["telegram.bot.view"]({}) == {
        "configured": False,
        "state": None,
        "error": None,
        "username": None,
        "inline": False,
    }
    with pytest.raises(ControlError) as info:
        await methods["telegram.bot.set_token"]({"token": TOKEN})
    assert (info.value.code, info.value.message) == (
        "unavailable",
        "Set up the API app first: the bot signs in with it.",
    )
    assert (await methods["test_call.status"]({})).state == "idle"
    with pytest.raises(ControlError) as info:
        await methods["test_call.start"]({})
    assert info.value.code == "not_found"
    with pytest.raises(NotFound):
        await methods["test_call.start"]({"member_id": 4})
    assert (await methods["test_call.stop"]({})).state == "idle"


async def test_secrets_in_parameters_never_reach_the_log(
    methods: dict[str, Any], tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    server = ControlServer(tmp_path / "c.sock", methods)
    await server.start()
    try:
        async with ControlClient(server.path) as client:
            await client.call("telegram.login.app", api_id=12345, api_hash=API_HASH)
            await client.call("telegram.login.code", code="31337")
            await client.call("telegram.login.password", password="correct horse")
            with pytest.raises(ControlError) as info:
                await client.call("telegram.bot.set_token", token=TOKEN[:-20])
            assert info.value.code == "invalid" and TOKEN[:-20] not in info.value.message
    finally:
        await server.stop()
    text = "\n".join(r.getMessage() for r in caplog.records)
    for secret in (API_HASH, "31337", "correct horse", TOKEN[:-20]):
        assert secret not in text

"""The control-API methods of the first-run wizard's Telegram steps (docs/control-api.md).

* ``telegram.login.*`` drive the sign-in state machine
  (:class:`gateway.telegram.login.Login`); each answers the new view.
* ``telegram.bot.*`` show the companion bot and replace its token at run time
  (:meth:`gateway.telegram.service.TelegramSide.replace_bot`).
* ``test_call.*``: the gateway calls a member in Telegram and echoes their
  audio back half a second later, measuring what arrived (:class:`EchoMeter`,
  sans-IO; :class:`EchoCalls`, one test call at a time).

Secrets (api_hash, login code, 2FA password, bot token) arrive as parameters:
no message here repeats a parameter's value, and the control server logs
method names only.
"""

from __future__ import annotations

import array
import asyncio
import contextlib
import logging
import math
import re
import sys
import time
from collections import deque
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from gateway.config import ConfigError, Secret
from gateway.control import ControlError, Handler, Params
from gateway.store import MemberRecord, NotFound
from gateway.telegram.call import FRAME_BYTES, CallOutcome, CallState, EndReason, TelegramCall
from gateway.telegram.errors import TelegramError
from gateway.telegram.login import LoginView
from gateway.telegram.service import BotTokenRefused, TelegramSide

if TYPE_CHECKING:
    from gateway.app import Gateway

__all__ = [
    "BOT_TOKEN",
    "EchoCallStatus",
    "EchoCalls",
    "EchoMeter",
    "bot_view",
    "frame_dbfs",
    "login_view",
    "telegram_methods",
]

log = logging.getLogger(__name__)

# What @BotFather hands out: the bot's id, a colon, ~35 URL-safe characters.  Within
# what gateway.config accepts for telegram.bot_token, so a saved token always loads.
BOT_TOKEN = re.compile(r"[0-9]{5,15}:[A-Za-z0-9_-]{30,50}")
BOT_TOKEN_HELP = (
    "A bot token looks like 123456789:AAH4c… (the bot's number, a colon and about 35"
    " letters, digits, - and _). Copy it from @BotFather's message."
)
_TEXT_MAX = 256  # any text parameter: a phone number, a code, a password, a token

HEARD_DBFS = -50.0  # a 10 ms frame at or above this level counts as heard
ECHO_DELAY_FRAMES = 50  # 0.5 s: long enough to tell one's echo from one's voice
TEST_CALL_SECONDS = 20.0  # an answered test call hangs up after this
_FULL_SCALE = 32767
_SILENT = bytes(FRAME_BYTES)


# ------------------------------------------------------------------ the echo, sans IO


def frame_dbfs(frame: bytes) -> float | None:
    """RMS level of s16le PCM in dBFS (a full-scale sine reads 0); None for digital silence."""
    samples = array.array("h")
    samples.frombytes(frame[: len(frame) - len(frame) % 2])
    if sys.byteorder == "big":
        samples.byteswap()
    energy = sum(s * s for s in samples)
    if not energy:
        return None
    rms = math.sqrt(energy / len(samples))
    return 20.0 * math.log10(rms * math.sqrt(2.0) / _FULL_SCALE)


class EchoMeter:
    """Each received frame goes in; the frame to send comes out *delay* frames later.

    The delay line starts full of silence, so the echo is paced by the
    incoming audio itself (one frame out per frame in) and needs no timer.
    Counts what arrived: every frame, the frames at or above *threshold_dbfs*,
    and the loudest frame's level.
    """

    def __init__(
        self, delay_frames: int = ECHO_DELAY_FRAMES, threshold_dbfs: float = HEARD_DBFS
    ) -> None:
        self._line: deque[bytes] = deque([_SILENT] * delay_frames)
        self._threshold = threshold_dbfs
        self.frames_in = 0
        self.heard_frames = 0
        self.peak_dbfs: float | None = None

    def feed(self, frame: bytes) -> bytes:
        """Take one received 10 ms frame; returns the one to send now."""
        self.frames_in += 1
        level = frame_dbfs(frame)
        if level is not None:
            if level >= self._threshold:
                self.heard_frames += 1
            if self.peak_dbfs is None or level > self.peak_dbfs:
                self.peak_dbfs = level
        self._line.append(frame)
        return self._line.popleft()

    @property
    def heard_seconds(self) -> float:
        return self.heard_frames * FRAME_BYTES / 16000  # 16 bytes per ms


# ------------------------------------------------------------------ the test call


@dataclass(frozen=True)
class EchoCallStatus:
    """``test_call.status``: what the wizard's test-call box shows."""

    state: str  # idle | ringing | up | ended | failed
    member: str | None
    message: str
    heard_seconds: float = 0.0
    peak_dbfs: float | None = None
    frames_in: int = 0
    frames_out: int = 0
    started_at: float | None = None
    ended_at: float | None = None


IDLE = EchoCallStatus(
    "idle",
    None,
    "No test call yet: the gateway calls you in Telegram; say something and you hear"
    " yourself half a second later.",
)

_FAILURES: dict[CallOutcome, str] = {
    CallOutcome.DECLINED: "{name} declined the call.",
    CallOutcome.BUSY: "{name} is busy in another call. Try again when it is over.",
    CallOutcome.NO_ANSWER: "{name} did not answer within {ring:g} s.",
    CallOutcome.PRIVACY_RESTRICTED: "{name}'s privacy settings do not let the gateway account"
    " call them (Settings → Privacy and Security → Calls).",
    CallOutcome.BLOCKED: "{name} has blocked the gateway account.",
    CallOutcome.CONNECT_FAILED: "The call was answered but the audio connection could not be set"
    " up ({detail}).",
    CallOutcome.CANCELLED: "The test call was stopped before {name} answered.",
    CallOutcome.FAILED: "Telegram refused the call ({detail}).",
}


class _EchoRun:
    """One test call: the Telegram call, its echo and what the user reads."""

    def __init__(self, name: str, call: TelegramCall, meter: EchoMeter, now: float) -> None:
        self.name = name
        self.call = call
        self.meter = meter
        self.started_at = now
        self.ended_at: float | None = None
        self.final: tuple[str, str] | None = None  # (state, message) once over
        call.on_audio = self._on_audio

    def _on_audio(self, frame: bytes) -> None:
        self.call.write_audio(self.meter.feed(frame))

    def status(self) -> EchoCallStatus:
        meter, call = self.meter, self.call
        if self.final is not None:
            state, message = self.final
        elif call.state is CallState.ACTIVE:
            state = "up"
            message = (
                f"Connected to {self.name}: speak now; you hear yourself half a second later."
                f" The gateway has heard you for {meter.heard_seconds:.1f} s."
            )
        else:
            state, message = "ringing", f"Calling {self.name} in Telegram…"
        peak = meter.peak_dbfs
        return EchoCallStatus(
            state,
            self.name,
            message,
            heard_seconds=round(meter.heard_seconds, 2),
            peak_dbfs=round(peak, 1) if peak is not None else None,
            frames_in=meter.frames_in,
            frames_out=call.frames_out,
            started_at=self.started_at,
            ended_at=self.ended_at,
        )

    def finish(self, now: float, ring_timeout: float) -> None:
        self.ended_at = now
        call, meter = self.call, self.meter
        if call.outcome is CallOutcome.ANSWERED:
            if meter.heard_frames:
                message = (
                    f"Audio flows: the gateway heard you for {meter.heard_seconds:.1f} s"
                    f" (loudest {meter.peak_dbfs:.0f} dBFS) and sent it back."
                )
            elif meter.frames_in:
                message = (
                    "The call was answered but the gateway heard only silence: check that"
                    " the phone's microphone is on and Telegram may use it."
                )
            else:
                message = "The call was answered but no audio arrived from your phone."
            if call.end_reason is EndReason.MEDIA_FAILED:
                message += " Then the audio connection broke off."
            self.final = ("ended", message)
            return
        outcome = call.outcome or CallOutcome.FAILED
        template = _FAILURES.get(outcome, _FAILURES[CallOutcome.FAILED])
        detail = call.detail or outcome.value
        text = template.format(name=self.name, ring=ring_timeout, detail=detail)
        self.final = ("ended" if outcome is CallOutcome.CANCELLED else "failed", text)


class EchoCalls:
    """The wizard's test call: one at a time, echoing the member's audio back.

    The last call's result stays readable (:meth:`status`) until the next
    :meth:`start`.
    """

    def __init__(
        self,
        telegram: TelegramSide,
        *,
        max_seconds: float = TEST_CALL_SECONDS,
        delay_frames: int = ECHO_DELAY_FRAMES,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self._telegram = telegram
        self._max_seconds = max_seconds
        self._delay_frames = delay_frames
        self._clock = clock
        self._run: _EchoRun | None = None
        self._task: asyncio.Task[None] | None = None

    @property
    def running(self) -> bool:
        return self._task is not None and not self._task.done()

    def status(self) -> EchoCallStatus:
        return self._run.status() if self._run is not None else IDLE

    async def start(self, member: MemberRecord) -> EchoCallStatus:
        """Ring *member*; returns at once (state ``ringing``).

        **Raises** :class:`ControlError` ``busy`` (a test call runs, or the
        member is in a call with the gateway), ``unavailable`` (Telegram calls
        not ready) or ``invalid`` (the gateway account has not met the member).
        """
        if self.running:
            name = self._run.name if self._run is not None else "a member"
            raise ControlError("busy", f"A test call to {name} is in progress; stop it first.")
        calls = self._telegram.calls
        if calls is None:
            raise ControlError(
                "unavailable",
                "Telegram calls are not ready: sign the gateway account in first"
                " (or wait a moment after signing in).",
            )
        name = member.name or f"member {member.id}"
        if not member.access_hash:
            raise ControlError(
                "invalid",
                f"The gateway account has not met {name} yet: {name} should send it a message"
                " first.",
            )
        if member.telegram_id in calls.calls:
            raise ControlError("busy", f"{name} is in a call with the gateway right now.")
        self._telegram.account.remember(member.telegram_id, member.access_hash)
        try:
            call = await calls.call(member.telegram_id)
        except RuntimeError as exc:  # a call with them began in between
            raise ControlError("busy", f"{name} is in a call with the gateway right now.") from exc
        run = _EchoRun(name, call, EchoMeter(self._delay_frames), self._clock())
        self._run = run
        self._task = asyncio.get_running_loop().create_task(
            self._drive(run, calls.settings.ring_timeout)
        )
        log.info("test call: ringing member %s", member.id)
        return run.status()

    async def stop(self) -> EchoCallStatus:
        """Hang up the test call (if one runs); returns the final status."""
        run, task = self._run, self._task
        if run is not None and task is not None and not task.done():
            await run.call.hangup()
            with contextlib.suppress(Exception):
                await asyncio.wait_for(asyncio.shield(task), 10)
        return self.status()

    async def _drive(self, run: _EchoRun, ring_timeout: float) -> None:
        call = run.call
        try:
            # Bounded beyond the ring timeout: the call ends by itself before that.
            if await call.wait_active(ring_timeout + 60):
                if not await call.wait_ended(self._max_seconds):
                    await call.hangup()
            if not call.ended:
                await call.hangup()
        except Exception:
            log.exception("test call: failed")
            with contextlib.suppress(Exception):
                await call.hangup()
        finally:
            call.on_audio = None
            run.finish(self._clock(), ring_timeout)
            meter = run.meter
            log.info(
                "test call: %s heard=%.2fs frames_in=%d frames_out=%d",
                run.final[0] if run.final else "over",
                meter.heard_seconds,
                meter.frames_in,
                call.frames_out,
            )


# ------------------------------------------------------------------ JSON views


def login_view(view: LoginView) -> dict[str, Any]:
    """The login page's view as JSON (``can_resend`` is a property, so not in to_json)."""
    user = view.user
    return {
        "step": view.step.value,
        "instructions": view.instructions,
        "message": view.message,
        "phone": view.phone,
        "code_via": view.code_via.value if view.code_via else None,
        "code_length": view.code_length,
        "next_via": view.next_via.value if view.next_via else None,
        "resend_after": view.resend_after,
        "password_hint": view.password_hint,
        "can_resend": view.can_resend,
        "user": (
            {"id": user.user_id, "name": user.name, "username": user.username, "phone": user.phone}
            if user is not None
            else None
        ),
    }


def bot_view(telegram: TelegramSide) -> dict[str, Any]:
    bot = telegram.bot
    if bot is None:
        return {
            "configured": False,
            "state": None,
            "error": None,
            "username": None,
            "inline": False,
        }
    status = bot.status
    return {
        "configured": True,
        "state": status.state.value,
        "error": status.error,
        "username": bot.username or None,
        "inline": bot.inline,
    }


# ------------------------------------------------------------------ parameters


def _only(params: Mapping[str, Any], *names: str) -> None:
    unknown = sorted(set(params) - set(names))
    if unknown:
        raise ValueError(f"unknown parameter {unknown[0]!r}")


def _text(params: Mapping[str, Any], name: str) -> str:
    """A required string parameter; the errors never repeat its value (it may be secret)."""
    value = params.get(name)
    if value is None:
        raise ValueError(f"{name} is required")
    if not isinstance(value, str):
        raise ValueError(f"{name} must be a string, got {type(value).__name__}")
    if len(value) > _TEXT_MAX:
        raise ValueError(f"{name} is too long (at most {_TEXT_MAX} characters)")
    return value


def _api_id(params: Mapping[str, Any]) -> int | str:
    value = params.get("api_id")
    if value is None:
        raise ValueError("api_id is required")
    if isinstance(value, bool) or not isinstance(value, (int, str)):
        raise ValueError(f"api_id must be a number, got {type(value).__name__}")
    if isinstance(value, str) and len(value) > _TEXT_MAX:
        raise ValueError(f"api_id is too long (at most {_TEXT_MAX} characters)")
    return value


def bot_token(params: Mapping[str, Any]) -> Secret:
    """The ``token`` parameter, checked against @BotFather's format.  **Raises** ValueError."""
    token = _text(params, "token").strip()
    if not BOT_TOKEN.fullmatch(token):
        raise ValueError(BOT_TOKEN_HELP)
    return Secret(token)


# ------------------------------------------------------------------ the methods


def telegram_methods(gateway: Gateway) -> dict[str, Handler]:
    """``telegram.login.*``, ``telegram.bot.*`` and ``test_call.*`` for *gateway*."""
    telegram = gateway.telegram
    echo_calls = EchoCalls(telegram)

    def login_method(names: tuple[str, ...], submit: Callable[[dict[str, Any]], Any]) -> Handler:
        async def handle(params: dict[str, Any]) -> Any:
            _only(params, *names)
            return login_view(await submit(params))

        return handle

    login = telegram.login

    async def login_view_method(params: dict[str, Any]) -> Any:
        _only(params)
        return login_view(login.view)

    async def bot_view_method(params: dict[str, Any]) -> Any:
        _only(params)
        return bot_view(telegram)

    async def bot_set_token(params: dict[str, Any]) -> Any:
        _only(params, "token")
        token = bot_token(params)
        try:
            bot = await telegram.replace_bot(token)
        except BotTokenRefused as exc:
            raise ControlError("invalid", f"Telegram refused this bot token: {exc}") from None
        except TelegramError as exc:  # NotReady (no API app), no answer in time
            raise ControlError("unavailable", str(exc)) from None
        except ConfigError as exc:
            raise ControlError(
                "invalid", f"The bot was not changed: the settings file cannot be saved ({exc})."
            ) from None
        return {"username": bot.username, "inline": bot.inline}

    def member_to_call(params: dict[str, Any]) -> MemberRecord:
        p = Params(params)
        member_id = p.optional_int("member_id")
        p.done()
        if member_id is not None:
            member = gateway.store.member(member_id)
            if member is None:
                raise NotFound(f"no member with id {member_id}")
            return member
        owner = next((m for m in gateway.store.members() if m.owner), None)
        if owner is None:
            raise ControlError(
                "not_found", "No member is linked yet: invite yourself first, then test."
            )
        return owner

    async def test_call_start(params: dict[str, Any]) -> Any:
        member = member_to_call(params)
        if gateway.manager.conversation_of(member.telegram_id) is not None:
            raise ControlError("busy", f"{member.name} is in a call right now.")
        return await echo_calls.start(member)

    async def test_call_status(params: dict[str, Any]) -> Any:
        _only(params)
        return echo_calls.status()

    async def test_call_stop(params: dict[str, Any]) -> Any:
        _only(params)
        return await echo_calls.stop()

    return {
        "telegram.login.view": login_view_method,
        "telegram.login.app": login_method(
            ("api_id", "api_hash"),
            lambda p: login.submit_app(_api_id(p), _text(p, "api_hash")),
        ),
        "telegram.login.phone": login_method(
            ("phone",), lambda p: login.submit_phone(_text(p, "phone"))
        ),
        "telegram.login.code": login_method(
            ("code",), lambda p: login.submit_code(_text(p, "code"))
        ),
        "telegram.login.password": login_method(
            ("password",), lambda p: login.submit_password(_text(p, "password"))
        ),
        "telegram.login.resend": login_method((), lambda p: login.resend_code()),
        "telegram.login.restart": login_method((), lambda p: login.restart()),
        "telegram.login.log_out": login_method((), lambda p: login.log_out()),
        "telegram.bot.view": bot_view_method,
        "telegram.bot.set_token": bot_set_token,
        "test_call.start": test_call_start,
        "test_call.status": test_call_status,
        "test_call.stop": test_call_stop,
    }

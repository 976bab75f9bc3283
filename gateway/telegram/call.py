"""Private Telegram voice calls between the gateway account and a member: the Telegram leg.

py-tgcalls drives the call (DH exchange, signalling, ntgcalls media); this
module turns it into one `TelegramCall` object per call with distinct
outcomes, exact 10 ms 8 kHz s16le frames both ways, and the pieces the library
lacks:

- `phone.receivedCall` for a member's incoming call, so their app shows
  "ringing" while the gateway dials the SIP side;
- a busy reply (py-tgcalls can only hang up);
- cancelling while ringing: `leave_call` waits on the per-chat lock `play()`
  holds, so the play task is cancelled first;
- a media watchdog: py-tgcalls 3.0.0 drops a media failure after connect
  (`discard_call` is called with a missing argument and the TypeError vanishes
  in `run_coroutine_threadsafe`), so the connection-change handler is
  overridden and a call that stops delivering frames is ended on both sides;
- one redial when the peer-to-peer connection never comes up (ntgcalls#70);
- a call's ntgcalls ``stop`` waits for its operations still running on
  ntgcalls' threads (`binding.StopAfterWork`: ending a call while it connects
  crashed the process).

Everything py-tgcalls-private that is touched lives in `_GatewayTgCalls`; the
versions are pinned and tests cover each use.
"""

from __future__ import annotations

import asyncio
import contextlib
import enum
import logging
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from ntgcalls import (
    ConnectionInfo,
    ConnectionNotFound,
    ConnectionState,
    FrameData,
    StreamDevice,
    StreamMode,
    TelegramServerError,
)
from pytgcalls import PyTgCalls, filters
from pytgcalls.exceptions import (
    CallBusy,
    CallDeclined,
    CallDiscarded,
    NotInCallError,
    TimedOutAnswer,
)
from pytgcalls.pytgcalls_session import PyTgCallsSession
from pytgcalls.types import (
    CallConfig,
    ChatUpdate,
    ExternalMedia,
    MediaStream,
    RecordStream,
    UpdatedEmojis,
)
from pytgcalls.types.raw import AudioParameters
from telethon import TelegramClient, errors, events
from telethon.tl import functions, types

from gateway.telegram.binding import StopAfterWork

log = logging.getLogger(__name__)

SAMPLE_RATE = 8000
FRAME_BYTES = SAMPLE_RATE * 2 // 100  # 10 ms of s16le mono: ntgcalls reads exactly this much
SILENT_FRAME = bytes(FRAME_BYTES)
# 'bitrate' is the sample rate in py-tgcalls (misnamed).
_AUDIO = AudioParameters(bitrate=SAMPLE_RATE, channels=1)


class CallState(enum.Enum):
    DIALING = "dialing"  # requested; the member's app has not confirmed it rings
    RINGING = "ringing"  # the member's app rings (outgoing) / we told the caller we ring (incoming)
    CONNECTING = "connecting"  # answered; keys exchanged, media coming up
    ACTIVE = "active"
    ENDED = "ended"


class CallOutcome(enum.Enum):
    ANSWERED = "answered"  # the call was up; how it ended is in `end_reason`
    DECLINED = "declined"
    BUSY = "busy"
    NO_ANSWER = "no-answer"
    PRIVACY_RESTRICTED = "privacy-restricted"
    BLOCKED = "blocked"
    CONNECT_FAILED = "connect-failed"  # answered, but media never came up (after one redial)
    CANCELLED = "cancelled"  # we hung up before it was answered
    CALLER_GAVE_UP = "caller-gave-up"  # incoming: the member hung up before we answered
    FAILED = "failed"  # any other refusal; `detail` says which


class EndReason(enum.Enum):
    LOCAL_HANGUP = "local-hangup"
    REMOTE_HANGUP = "remote-hangup"
    MEDIA_FAILED = "media-failed"


@dataclass(frozen=True)
class CallSettings:
    ring_timeout: float = 45.0  # seconds an outgoing call rings before NO_ANSWER
    answer_timeout: float = 20.0  # seconds to wait for the caller's confirm after we answer
    media_timeout: float = 6.0  # seconds without a received frame before the call is dead
    redial_on_connect_failure: bool = True


AudioSink = Callable[[bytes], None]
StateListener = Callable[["TelegramCall"], None]


class TelegramCall:
    """One private call with one member, either direction.

    `on_audio` receives the member's audio as 160-byte frames (10 ms, 8 kHz,
    s16le); `write_audio` takes frames of the same size towards the member.
    """

    def __init__(self, manager: TelegramCalls, user_id: int, *, outgoing: bool) -> None:
        self._manager = manager
        self.user_id = user_id
        self.outgoing = outgoing
        self.state = CallState.DIALING if outgoing else CallState.RINGING
        self.outcome: CallOutcome | None = None
        self.end_reason: EndReason | None = None
        self.detail = ""
        self.emojis = ""  # the key's emoji fingerprint, as both apps show it
        self.redials = 0
        self.created_at = time.monotonic()
        self.ringing_at: float | None = None
        self.active_at: float | None = None
        self.ended_at: float | None = None
        self.frames_out = 0
        self.on_audio: AudioSink | None = None
        self.on_state: StateListener | None = None
        self._last_frame_at = 0.0
        self._task: asyncio.Task[None] | None = None
        self._active = asyncio.get_running_loop().create_future()
        self._ended = asyncio.Event()
        # Frames wait here while ntgcalls takes the previous one: sent one at a time, in order.
        self._outbox: deque[bytes] = deque(maxlen=_OUTBOX_FRAMES)
        self._sending = False

    def __repr__(self) -> str:
        way = "to" if self.outgoing else "from"
        return f"<TelegramCall {way} {self.user_id} {self.state.value} {self.outcome}>"

    @property
    def ended(self) -> bool:
        return self.state is CallState.ENDED

    @property
    def duration(self) -> float:
        """Seconds the call was up (0 if it never was)."""
        if self.active_at is None:
            return 0.0
        return (self.ended_at or time.monotonic()) - self.active_at

    async def wait_active(self, timeout: float | None = None) -> bool:
        """True once media is up; False if the call ended first (or on timeout)."""
        try:
            await asyncio.wait_for(asyncio.shield(self._active), timeout)
        except TimeoutError:
            return False
        return bool(self._active.result())

    async def wait_ended(self, timeout: float | None = None) -> bool:
        try:
            await asyncio.wait_for(self._ended.wait(), timeout)
        except TimeoutError:
            return False
        return True

    def write_audio(self, frame: bytes) -> None:
        """Send one 10 ms frame to the member (the caller paces in real time).

        ntgcalls takes frames on its own threads. Handed over back to back without
        waiting, one call of eight in a bench run heard its 440 Hz tone as 465 Hz
        (frames out of order, most likely), so the next frame goes only when the
        previous one is taken. If ntgcalls falls
        behind, the oldest waiting frames are dropped (at most 100 ms wait).
        """
        if self.state is not CallState.ACTIVE:
            return
        if len(frame) != FRAME_BYTES:
            raise ValueError(f"a frame is {FRAME_BYTES} bytes, got {len(frame)}")
        self._outbox.append(frame)
        if not self._sending:
            self._send_next()

    def _send_next(self) -> None:
        if not self._outbox or self.state is not CallState.ACTIVE:
            self._sending = False
            return
        self._sending = True
        future = self._manager._send_frame(self.user_id, self._outbox.popleft())
        future.add_done_callback(self._frame_taken)

    def _frame_taken(self, future: asyncio.Future[Any]) -> None:
        if future.cancelled() or future.exception() is not None:
            self._outbox.clear()  # the call is gone from ntgcalls; nothing more will go
            self._sending = False
            return
        self.frames_out += 1
        self._send_next()

    async def answer(self) -> None:
        """Answer a member's incoming call; returns when media is up or the call ended."""
        if self.outgoing or self.state is not CallState.RINGING or self._task is not None:
            raise RuntimeError(f"cannot answer {self!r}")
        self._task = asyncio.create_task(self._manager._run_answer(self))
        await self.wait_active()

    async def reject(self, *, busy: bool = False) -> None:
        """Refuse a member's incoming call (hang-up or busy reason)."""
        if self.outgoing or self.state is not CallState.RINGING or self._task is not None:
            raise RuntimeError(f"cannot reject {self!r}")
        await self._manager._reject(self, busy=busy)

    async def hangup(self) -> None:
        """End the call in any state: cancel while ringing, hang up when up."""
        if self.ended:
            return
        await self._manager._hangup(self)

    # -- driven by the manager ------------------------------------------------------------

    def _set_state(self, state: CallState) -> None:
        if self.state is state or self.ended:
            return
        self.state = state
        now = time.monotonic()
        if state is CallState.RINGING:
            self.ringing_at = now
        elif state is CallState.ACTIVE:
            self.active_at = now
            self._last_frame_at = now
            if not self._active.done():
                self._active.set_result(True)
        self._notify()

    def _finish(
        self, outcome: CallOutcome, reason: EndReason | None = None, detail: str = ""
    ) -> None:
        if self.ended:
            return
        self.outcome = outcome
        self.end_reason = reason
        self.detail = detail
        self.state = CallState.ENDED
        self.ended_at = time.monotonic()
        if not self._active.done():
            self._active.set_result(False)
        self._ended.set()
        log.info(
            "telegram call %s %s ended: %s%s%s",
            "to" if self.outgoing else "from",
            self.user_id,
            outcome.value,
            f" ({reason.value})" if reason else "",
            f": {detail}" if detail else "",
        )
        self._notify()

    def _notify(self) -> None:
        if self.on_state is not None:
            try:
                self.on_state(self)
            except Exception:
                log.exception("telegram call state listener failed")

    def _deliver(self, frame: bytes) -> None:
        self._last_frame_at = time.monotonic()
        if self.on_audio is not None and self.state is CallState.ACTIVE:
            self.on_audio(frame)


_OUTBOX_FRAMES = 10  # 100 ms


class _GatewayTgCalls(PyTgCalls):  # type: ignore[misc]
    """PyTgCalls with the fixes this product needs (py-tgcalls 3.0.0 pinned)."""

    on_media_lost: Callable[[int, ConnectionState], None] | None = None

    def __init__(self, app: Any, *args: Any, **kwargs: Any) -> None:
        super().__init__(app, *args, **kwargs)
        # A call ended while it connects must not be freed under ntgcalls' worker thread.
        self._binding = StopAfterWork(self._binding)  # type: ignore[has-type]

    async def _clear_call(self, chat_id: int) -> None:
        """The peer left: stop the call, then fail a play() still waiting for its media.

        Upstream decides whether to fail that wait before it stops the call.  A
        play() that was inside connect_p2p then (the stop now waits for it) goes on
        to wait for media that was just stopped, and the call hangs in
        "connecting"; CallDiscarded ends it as the peer's hang-up.
        """
        with contextlib.suppress(ConnectionNotFound):
            await self._binding.stop(chat_id)
        waiting = self._wait_connect.get(chat_id)
        if waiting is not None and not waiting.done():
            waiting.set_exception(CallDiscarded(chat_id))
        self._clear_cache(chat_id)

    async def _handle_connection_changed(self, chat_id: int, net_state: ConnectionInfo) -> None:
        state = net_state.state
        if state == ConnectionState.CONNECTING:
            return
        waiting = self._wait_connect.get(chat_id)
        if waiting is not None:
            # Still setting up: play() turns a failure into TelegramServerError.
            if not waiting.done():
                if state == ConnectionState.CONNECTED:
                    waiting.set_result(None)
                else:
                    waiting.set_exception(TelegramServerError())
            return
        if state == ConnectionState.CONNECTED:
            return
        # Upstream calls discard_call(chat_id) without `is_missed` here: a TypeError nobody sees.
        if chat_id > 0:
            with contextlib.suppress(Exception):
                await self._app.discard_call(chat_id, False)
        self._clear_cache(chat_id)
        if self.on_media_lost is not None:
            self.on_media_lost(chat_id, state)

    def forget_incoming(self, chat_id: int) -> None:
        """Drop the pending incoming-call data after we refused it outside `leave_call`."""
        self._p2p_configs.pop(chat_id, None)

    async def input_call(self, chat_id: int) -> Any:
        """The InputPhoneCall the Telethon bridge cached for this member's call, if any."""
        return await self._app.get_input_call(chat_id)

    def send_pcm(self, chat_id: int, frame: bytes) -> asyncio.Future[Any]:
        """One 10 ms frame to ntgcalls; the future completes when it is taken.

        `send_frame()` costs a coroutine and its type checks per 10 ms frame; the
        caller chains frames on the binding's future instead.
        """
        future: asyncio.Future[Any] = self._binding.send_external_frame(
            chat_id, StreamDevice.MICROPHONE, frame, FrameData()
        )
        return future

    def receive_pcm(self, sink: Callable[[int, list[bytes]], None]) -> None:
        """Deliver received audio to `sink(chat_id, frames)` on the loop, one hop per batch.

        Replaces py-tgcalls' own frame callback, which runs a coroutine and builds a
        StreamFrames update per 10 ms frame to offer it to every handler (the bench
        measured that path at about twice ntgcalls' own cost on the main thread).
        """
        loop = self.loop

        def on_frames(chat_id: int, mode: Any, device: Any, frames: list[Any]) -> None:
            # An ntgcalls thread: copy out the bytes and hop onto the loop.
            if mode == StreamMode.PLAYBACK and device == StreamDevice.MICROPHONE:
                loop.call_soon_threadsafe(sink, chat_id, [f.data for f in frames])

        self._binding.on_frames(on_frames)


class TelegramCalls:
    """All private calls of the gateway account.

    `on_incoming` is called with a `TelegramCall` in RINGING state whenever a
    member calls the gateway account; the caller already sees "ringing". The
    listener answers, rejects or lets it ring.
    """

    def __init__(self, client: TelegramClient, settings: CallSettings | None = None) -> None:
        self.client = client
        self.settings = settings or CallSettings()
        self.calls: dict[int, TelegramCall] = {}
        self.on_incoming: Callable[[TelegramCall], None] | None = None
        self._tg = _GatewayTgCalls(client)
        self._tg.on_media_lost = self._media_lost
        self._watchdog: asyncio.Task[None] | None = None
        self._started = False

    async def start(self) -> None:
        """Hook into the (connected, signed-in) client; idempotent."""
        if self._started:
            return
        self._started = True
        self.client.add_event_handler(self._on_raw, events.Raw(types.UpdatePhoneCall))
        self._tg.add_handler(self._on_chat_update, filters.chat_update(ChatUpdate.Status.LEFT_CALL))
        self._tg.add_handler(
            self._on_incoming_update, filters.chat_update(ChatUpdate.Status.INCOMING_CALL)
        )
        self._tg.add_handler(self._on_emojis)
        # PyTgCalls.start() would fetch py-tgcalls' latest version from GitHub: an
        # appliance makes no calls home (and may be offline). The flag is class-wide.
        PyTgCallsSession.notice_displayed = True
        await self._tg.start()
        self._tg.receive_pcm(self._on_frames)
        self._watchdog = asyncio.create_task(self._watch_media())

    async def close(self) -> None:
        """Hang up every call and stop the watchdog."""
        for call in list(self.calls.values()):
            with contextlib.suppress(Exception):
                await call.hangup()
        if self._watchdog is not None:
            self._watchdog.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._watchdog
        self.client.remove_event_handler(self._on_raw)

    async def call(self, user_id: int) -> TelegramCall:
        """Ring a member; returns at once with the call in DIALING state."""
        if user_id in self.calls:
            raise RuntimeError(f"already in a call with {user_id}")
        call = TelegramCall(self, user_id, outgoing=True)
        self.calls[user_id] = call
        call._task = asyncio.create_task(self._run_outgoing(call))
        return call

    # -- call flows --------------------------------------------------------------------------

    async def _run_outgoing(self, call: TelegramCall) -> None:
        outcome = await self._place(call)
        if outcome is CallOutcome.CONNECT_FAILED and self.settings.redial_on_connect_failure:
            call.redials += 1
            log.warning("telegram call to %s: media did not connect; redialling", call.user_id)
            call._set_state(CallState.DIALING)
            outcome = await self._place(call)
        if outcome is None:
            return  # up: the call now lives until hangup, remote hangup or media loss
        self._forget(call)
        call._finish(outcome, detail=call.detail)

    async def _place(self, call: TelegramCall) -> CallOutcome | None:
        """One attempt; None when the call is up, else why it failed."""
        config = CallConfig(timeout=int(self.settings.ring_timeout))
        try:
            await self._tg.play(call.user_id, MediaStream(ExternalMedia.AUDIO, _AUDIO), config)
            await self._tg.record(call.user_id, RecordStream(True, _AUDIO))
        except CallDeclined:
            return CallOutcome.DECLINED
        except CallBusy:
            return CallOutcome.BUSY
        except TimedOutAnswer:
            return CallOutcome.NO_ANSWER
        except errors.UserPrivacyRestrictedError:
            return CallOutcome.PRIVACY_RESTRICTED
        except errors.UserIsBlockedError:
            return CallOutcome.BLOCKED
        except CallDiscarded:
            call.detail = "hung up while the call was connecting"
            return CallOutcome.DECLINED
        except TelegramServerError:
            call.detail = "peer-to-peer media did not connect"
            await self._stop_quietly(call.user_id)
            return CallOutcome.CONNECT_FAILED
        except errors.RPCError as exc:
            call.detail = exc.message
            return CallOutcome.FAILED
        call._set_state(CallState.ACTIVE)
        return None

    async def _run_answer(self, call: TelegramCall) -> None:
        call._set_state(CallState.CONNECTING)
        config = CallConfig(timeout=int(self.settings.answer_timeout))
        try:
            await self._tg.play(call.user_id, MediaStream(ExternalMedia.AUDIO, _AUDIO), config)
            await self._tg.record(call.user_id, RecordStream(True, _AUDIO))
        except (CallDiscarded, CallDeclined, CallBusy):
            self._forget(call)
            call._finish(CallOutcome.CALLER_GAVE_UP)
            return
        except (TelegramServerError, TimedOutAnswer) as exc:
            self._forget(call)
            await self._stop_quietly(call.user_id)
            call._finish(CallOutcome.CONNECT_FAILED, detail=type(exc).__name__)
            return
        except errors.RPCError as exc:
            self._forget(call)
            call._finish(CallOutcome.FAILED, detail=exc.message)
            return
        call._set_state(CallState.ACTIVE)

    async def _reject(self, call: TelegramCall, *, busy: bool) -> None:
        peer = await self._tg.input_call(call.user_id)
        self._forget(call)
        if busy and peer is not None:
            with contextlib.suppress(errors.RPCError):
                await self.client(
                    functions.phone.DiscardCallRequest(
                        peer=peer,
                        duration=0,
                        reason=types.PhoneCallDiscardReasonBusy(),
                        connection_id=0,
                    )
                )
            self._tg.forget_incoming(call.user_id)
        else:
            with contextlib.suppress(NotInCallError, errors.RPCError):
                await self._tg.leave_call(call.user_id)
        call._finish(CallOutcome.BUSY if busy else CallOutcome.DECLINED, EndReason.LOCAL_HANGUP)

    async def _hangup(self, call: TelegramCall) -> None:
        was_up = call.state is CallState.ACTIVE
        if not call.outgoing and call.state is CallState.RINGING and call._task is None:
            await self._reject(call, busy=False)
            return
        task = call._task
        if task is not None and not task.done() and task is not asyncio.current_task():
            # play() holds the per-chat lock while ringing; leave_call would wait for it.
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task
        self._forget(call)
        with contextlib.suppress(NotInCallError, ConnectionNotFound, errors.RPCError):
            await self._tg.leave_call(call.user_id)
        self._tg.forget_incoming(call.user_id)
        if was_up:
            call._finish(CallOutcome.ANSWERED, EndReason.LOCAL_HANGUP)
        else:
            call._finish(CallOutcome.CANCELLED, EndReason.LOCAL_HANGUP)

    async def _stop_quietly(self, user_id: int) -> None:
        with contextlib.suppress(Exception):
            await self._tg.leave_call(user_id)
        self._tg.forget_incoming(user_id)

    def _forget(self, call: TelegramCall) -> None:
        if self.calls.get(call.user_id) is call:
            del self.calls[call.user_id]

    def _send_frame(self, user_id: int, frame: bytes) -> asyncio.Future[Any]:
        return self._tg.send_pcm(user_id, frame)

    # -- events ------------------------------------------------------------------------------

    async def _on_raw(self, update: types.UpdatePhoneCall) -> None:
        phone_call = update.phone_call
        if isinstance(phone_call, types.PhoneCallRequested):
            # Tell the caller's app we ring; py-tgcalls never does.
            peer = types.InputPhoneCall(id=phone_call.id, access_hash=phone_call.access_hash)
            try:
                await self.client(functions.phone.ReceivedCallRequest(peer=peer))
            except errors.RPCError as exc:
                log.info("phone.receivedCall failed: %s", exc)
        elif isinstance(phone_call, types.PhoneCallWaiting):
            call = self.calls.get(phone_call.participant_id)
            if call is not None and call.outgoing and phone_call.receive_date:
                if call.state is CallState.DIALING:
                    call._set_state(CallState.RINGING)
        elif isinstance(phone_call, types.PhoneCallAccepted):
            call = self.calls.get(phone_call.participant_id)
            if call is not None and call.outgoing:
                call._set_state(CallState.CONNECTING)

    async def _on_incoming_update(self, _client: Any, update: ChatUpdate) -> None:
        user_id = int(update.chat_id)
        existing = self.calls.get(user_id)
        if existing is not None and not existing.ended:
            # A member calling while we ring them: Telegram resolves the glare; refuse the extra.
            await self._reject(TelegramCall(self, user_id, outgoing=False), busy=True)
            return
        call = TelegramCall(self, user_id, outgoing=False)
        call.ringing_at = call.created_at
        self.calls[user_id] = call
        if self.on_incoming is None:
            await call.reject(busy=True)
            return
        try:
            self.on_incoming(call)
        except Exception:
            log.exception("incoming telegram call listener failed")

    async def _on_chat_update(self, _client: Any, update: ChatUpdate) -> None:
        call = self.calls.get(int(update.chat_id))
        if call is None or call.ended:
            return
        if call.state is CallState.ACTIVE:
            self._forget(call)
            call._finish(CallOutcome.ANSWERED, EndReason.REMOTE_HANGUP)
        elif not call.outgoing and call._task is None:
            self._forget(call)
            self._tg.forget_incoming(call.user_id)
            call._finish(CallOutcome.CALLER_GAVE_UP)
        # Outgoing or answering calls: play() raises and the flow finishes the call.

    def _on_frames(self, chat_id: int, frames: list[bytes]) -> None:
        call = self.calls.get(chat_id)
        if call is None:
            return
        for data in frames:
            if len(data) == FRAME_BYTES:
                call._deliver(data)
            else:
                log.debug("unexpected frame size %d from ntgcalls", len(data))

    async def _on_emojis(self, _client: Any, update: Any) -> None:
        if isinstance(update, UpdatedEmojis):
            call = self.calls.get(int(update.chat_id))
            if call is not None:
                call.emojis = update.emojis

    def _media_lost(self, chat_id: int, state: ConnectionState) -> None:
        call = self.calls.get(chat_id)
        if call is not None and call.state is CallState.ACTIVE:
            self._forget(call)
            call._finish(CallOutcome.ANSWERED, EndReason.MEDIA_FAILED, f"ntgcalls {state.name}")

    async def _watch_media(self) -> None:
        """End calls whose media stopped without ntgcalls noticing (yet)."""
        while True:
            await asyncio.sleep(1.0)
            now = time.monotonic()
            for call in list(self.calls.values()):
                if call.state is not CallState.ACTIVE:
                    continue
                if now - call._last_frame_at > self.settings.media_timeout:
                    log.warning(
                        "telegram call %s: no audio for %.0f s; ending it",
                        call.user_id,
                        now - call._last_frame_at,
                    )
                    self._forget(call)
                    await self._stop_quietly(call.user_id)
                    call._finish(CallOutcome.ANSWERED, EndReason.MEDIA_FAILED, "no audio")

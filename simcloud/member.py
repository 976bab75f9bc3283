"""A household member: a real Telethon client and a real PyTgCalls on the simulated cloud.

The member signs in through the ordinary auth flow (sendCode, the code the cloud
"sent", signIn) and then behaves like someone with Telegram on their phone: it
acknowledges incoming calls (phone.receivedCall, which is what makes the caller
see "ringing"), then answers, declines, rejects as busy or ignores them, and it
can call others. Media is real ntgcalls: 10 ms s16le frames out, decoded PCM in.

py-tgcalls pitfalls handled here (see the Telegram calls research note, §5.4 and §6):
frames must be exactly 10 ms; `leave_call` waits for a ringing `play()` to finish,
so the play task is cancelled first; the Telethon client must not use
sequential_updates or an answering `play()` would wait behind its own update;
py-tgcalls has no busy reason, so busy is a Telethon DiscardCallRequest.

Example::

    alice = await SimMember.create(cloud, server, phone="+99966 1001", first_name="Alice")
    bob = await SimMember.create(cloud, server, phone="+99966 1002", first_name="Bob",
                                 username="bob_home")
    await alice.call("bob_home")                   # returns when media is connected
    await bob.wait_event("answered", timeout=10)
    await asyncio.gather(alice.send_tone(bob.id, 440, 2), bob.send_tone(alice.id, 880, 2))
    print(analyse(bob.received_pcm(alice.id)).frequency_hz)    # ~440.0
    await alice.hang_up(bob.id)
    await alice.close(); await bob.close()
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from enum import Enum
from typing import Any

from pytgcalls import PyTgCalls, filters
from pytgcalls.exceptions import NotInCallError
from pytgcalls.pytgcalls_session import PyTgCallsSession
from pytgcalls.types import (
    CallConfig,
    ChatUpdate,
    Device,
    Direction,
    ExternalMedia,
    MediaStream,
    RecordStream,
    StreamFrames,
)
from pytgcalls.types.raw import AudioParameters
from telethon import TelegramClient, events
from telethon.tl import functions, types

from gateway.telegram.binding import StopAfterWork
from simcloud.audio import PaceReport, ToneGenerator, pace_frames
from simcloud.client import SIM_API_HASH, SIM_API_ID, make_client
from simcloud.cloud import Cloud
from simcloud.state import SimUser, state_of

log = logging.getLogger(__name__)

# py-tgcalls' start() would otherwise fetch its latest version number from GitHub.
PyTgCallsSession.notice_displayed = True

STEP_TIMEOUT = 15.0  # bound on each network step (sign-in, leave_call, close)


class CallCancelled(Exception):
    """The member's own hang_up() ended a call it was still placing or answering."""


class Incoming(Enum):
    """What the member does when a call comes in."""

    ANSWER = "answer"
    DECLINE = "decline"  # py-tgcalls leave_call while ringing: reason Hangup
    BUSY = "busy"  # discardCall with reason Busy, as a phone already in a call does
    IGNORE = "ignore"  # let it ring (the caller or the cloud times out)


@dataclass
class MemberEvent:
    """Something the member saw or did; `at` is the event loop's clock.

    Kinds seen on the wire: incoming (PhoneCallRequested; detail = offered versions),
    ringing (the callee acknowledged), accepted (detail = negotiated version), active
    (PhoneCall reached the callee; detail = version), discarded (detail = reason:
    hangup, busy, missed, disconnect). Kinds the member did: answered (detail =
    seconds to connected audio), answer_failed, too_late (the call was withdrawn
    before the answer delay ran out), declined, busy. And connection
    (ntgcalls state: CONNECTING, CONNECTED, TIMEOUT, FAILED, CLOSED).
    """

    at: float
    kind: str
    peer: int
    detail: str = ""


@dataclass
class P2PConnect:
    """What py-tgcalls told ntgcalls in connect_p2p: the proof of the negotiated version."""

    peer: int
    versions: list[str]
    p2p_allowed: bool
    servers: int


@dataclass
class _InputCall:
    id: int
    access_hash: int


class _RecordingBinding:
    """The NTgCalls object py-tgcalls drives, with connect_p2p and connection states recorded.

    pybind11 objects take no new attributes, so this wraps instead of patching.
    """

    def __init__(self, inner: Any, member: SimMember) -> None:
        self._inner = inner
        self._member = member

    def __getattr__(self, name: str) -> Any:
        return getattr(self._inner, name)

    def connect_p2p(
        self, chat_id: int, servers: Any, versions: Any, p2p_allowed: bool, custom: Any
    ) -> Any:
        self._member.p2p_connects.append(
            P2PConnect(chat_id, list(versions), bool(p2p_allowed), len(servers))
        )
        return self._inner.connect_p2p(chat_id, servers, versions, p2p_allowed, custom)

    def on_connection_change(self, callback: Callable[[int, Any], Any]) -> Any:
        member = self._member

        def both(chat_id: int, info: Any) -> Any:
            # ntgcalls calls this on its own thread
            member.loop.call_soon_threadsafe(member.note_connection, chat_id, str(info.state))
            return callback(chat_id, info)

        return self._inner.on_connection_change(both)


@dataclass
class SimMember:
    """A simulated household member; build one with `SimMember.create`.

    Attributes tests read: `user` (the cloud's SimUser), `events`, `p2p_connects`,
    `received` (PCM per peer), `incoming` / `answer_delay` (behaviour, changeable
    at any time), `call_timeout` (CallConfig.timeout of calls it places).
    """

    cloud: Cloud
    server: Any
    user: SimUser
    phone: str
    rate: int = 8000
    incoming: Incoming = Incoming.ANSWER
    answer_delay: float = 0.0
    acknowledge_ring: bool = True
    call_timeout: int = 30
    client: TelegramClient = field(init=False, repr=False)
    calls: Any = field(init=False, repr=False)  # PyTgCalls
    events: list[MemberEvent] = field(default_factory=list)
    p2p_connects: list[P2PConnect] = field(default_factory=list)
    received: dict[int, bytearray] = field(default_factory=dict)
    loop: asyncio.AbstractEventLoop = field(init=False, repr=False)
    _input_calls: dict[int, _InputCall] = field(default_factory=dict, repr=False)
    _call_peers: dict[int, int] = field(default_factory=dict, repr=False)
    _play_tasks: dict[int, asyncio.Task[Any]] = field(default_factory=dict, repr=False)
    _tasks: set[asyncio.Task[Any]] = field(default_factory=set, repr=False)
    _changed: asyncio.Event = field(default_factory=asyncio.Event, repr=False)

    @property
    def id(self) -> int:
        return self.user.id

    @property
    def audio(self) -> AudioParameters:
        return AudioParameters(self.rate, 1)  # (sample rate, channels): "bitrate" is the rate

    # --- life cycle ------------------------------------------------------------------

    @classmethod
    async def create(
        cls,
        cloud: Cloud,
        server: Any,
        *,
        phone: str,
        first_name: str,
        username: str | None = None,
        **behaviour: Any,
    ) -> SimMember:
        """Create the account in the cloud, sign in over TCP and start PyTgCalls."""
        state = state_of(cloud)
        if not state.app_valid(SIM_API_ID, SIM_API_HASH):
            state.add_app(SIM_API_ID, SIM_API_HASH)
        user = state.add_user(phone=phone, first_name=first_name, username=username)
        member = cls(cloud, server, user, phone, **behaviour)
        await member.start()
        return member

    async def start(self) -> None:
        self.loop = asyncio.get_running_loop()
        self.client = make_client(self.server, receive_updates=True)
        await asyncio.wait_for(self._sign_in(), STEP_TIMEOUT)
        self.client.add_event_handler(self._on_raw, events.Raw(types.UpdatePhoneCall))
        self.calls = PyTgCalls(self.client)  # NTgCalls binds to the running loop
        # As the gateway does: a call ended while it connects must not crash the process.
        self.calls._binding = StopAfterWork(_RecordingBinding(self.calls._binding, self))
        self.calls.add_handler(
            self._on_incoming, filters.chat_update(ChatUpdate.Status.INCOMING_CALL)
        )
        self.calls.add_handler(
            self._on_frames, filters.stream_frame(Direction.INCOMING, Device.MICROPHONE)
        )
        await asyncio.wait_for(self.calls.start(), STEP_TIMEOUT)

    async def _sign_in(self) -> None:
        await self.client.connect()
        await self.client.send_code_request(self.phone)
        code = state_of(self.cloud).last_code(self.phone)
        await self.client.sign_in(phone=self.phone, code=code)

    async def close(self) -> None:
        """Hang up whatever is going on, stop the member's tasks and disconnect."""
        for peer in list(self._play_tasks):
            await self._cancel_play(peer)
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        with contextlib.suppress(Exception):
            for peer in list(await self.calls.calls):
                await asyncio.wait_for(self.calls.leave_call(peer), STEP_TIMEOUT)
        with contextlib.suppress(Exception):
            self.calls.executor.shutdown(wait=False)
        await asyncio.wait_for(self.client.disconnect(), STEP_TIMEOUT)

    async def go_offline(self) -> None:
        """Drop the connection (the phone is switched off); calls to it ring unanswered."""
        await asyncio.wait_for(self.client.disconnect(), STEP_TIMEOUT)

    async def go_online(self) -> None:
        await asyncio.wait_for(self.client.connect(), STEP_TIMEOUT)

    # --- events ----------------------------------------------------------------------

    def note(self, kind: str, peer: int, detail: str = "") -> None:
        self.events.append(MemberEvent(self.loop.time(), kind, peer, detail))
        self._changed.set()
        self._changed = asyncio.Event()

    def note_connection(self, peer: int, state: str) -> None:
        self.note("connection", peer, state.rsplit(".", 1)[-1])

    def connection_state(self, peer: int) -> str | None:
        """The latest ntgcalls connection state of the call with `peer` (None: never)."""
        states = self.events_of("connection", peer)
        return states[-1].detail if states else None

    async def wait_connected(self, peer: int, timeout: float) -> None:
        """Wait (bounded) until this member's media with `peer` is CONNECTED."""
        deadline = self.loop.time() + timeout
        while self.connection_state(peer) != "CONNECTED":
            remaining = deadline - self.loop.time()
            if remaining <= 0:
                raise TimeoutError(
                    f"{self.user.first_name}: media with {peer} is {self.connection_state(peer)}"
                )
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._changed.wait(), remaining)

    def events_of(self, kind: str, peer: int | None = None) -> list[MemberEvent]:
        return [e for e in self.events if e.kind == kind and (peer is None or e.peer == peer)]

    async def wait_event(
        self,
        kind: str,
        timeout: float,
        peer: int | None = None,
        detail: str | None = None,
        after: float | None = None,
    ) -> MemberEvent:
        """The first event of `kind` (after loop time `after`, if given), waiting at most
        `timeout` seconds for it."""
        deadline = self.loop.time() + timeout
        while True:
            for e in self.events_of(kind, peer):
                if (detail is None or e.detail == detail) and (after is None or e.at >= after):
                    return e
            remaining = deadline - self.loop.time()
            if remaining <= 0:
                seen = [(e.kind, e.peer, e.detail) for e in self.events]
                raise TimeoutError(f"{self.user.first_name}: no {kind} event; saw {seen}")
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._changed.wait(), remaining)

    async def _on_raw(self, update: Any) -> None:
        call = update.phone_call
        me = self.id
        if isinstance(
            call,
            (
                types.PhoneCallRequested,
                types.PhoneCallWaiting,
                types.PhoneCallAccepted,
                types.PhoneCall,
            ),
        ):
            peer = call.participant_id if call.admin_id == me else call.admin_id
            self._call_peers[call.id] = peer
        else:
            peer = self._call_peers.get(call.id) or self._peer_from_entities(update)
        if isinstance(call, types.PhoneCallRequested):
            self._input_calls[peer] = _InputCall(call.id, call.access_hash)
            self.note("incoming", peer, ",".join(call.protocol.library_versions))
            if self.acknowledge_ring:
                self._spawn(self._acknowledge(call))
        elif isinstance(call, types.PhoneCallWaiting) and call.receive_date is not None:
            if call.admin_id == me:
                self.note("ringing", peer)
        elif isinstance(call, types.PhoneCallAccepted):
            self.note("accepted", peer, ",".join(call.protocol.library_versions))
        elif isinstance(call, types.PhoneCall):
            self.note("active", peer, ",".join(call.protocol.library_versions))
        elif isinstance(call, types.PhoneCallDiscarded):
            reason = type(call.reason).__name__.removeprefix("PhoneCallDiscardReason").lower()
            self.note("discarded", peer, reason or "none")

    def _peer_from_entities(self, update: Any) -> int:
        for marked_id in getattr(update, "_entities", {}) or {}:
            if marked_id > 0 and marked_id != self.id:
                return int(marked_id)
        return 0

    async def _acknowledge(self, call: Any) -> None:
        peer = types.InputPhoneCall(id=call.id, access_hash=call.access_hash)
        with contextlib.suppress(Exception):  # the call may be gone already
            await self.client(functions.phone.ReceivedCallRequest(peer=peer))

    # --- incoming calls --------------------------------------------------------------

    async def _on_incoming(self, _client: Any, update: ChatUpdate) -> None:
        # Runs inside Telethon's update task: hand the work to a task of our own so
        # the updates the answer depends on keep flowing.
        behaviour = self.incoming
        if behaviour is Incoming.ANSWER:
            self._spawn(self._answer(update.chat_id, self.answer_delay))
        elif behaviour is Incoming.DECLINE:
            self._spawn(self._decline(update.chat_id, self.answer_delay))
        elif behaviour is Incoming.BUSY:
            self._spawn(self._busy(update.chat_id))

    async def _answer(self, peer: int, delay: float) -> None:
        if delay > 0:
            await asyncio.sleep(delay)
        if peer not in self.calls._p2p_configs:
            # The caller hung up while we let it ring.  A phone shows a missed call;
            # py-tgcalls' play() would instead dial the caller back.
            self.note("too_late", peer)
            return
        started = self.loop.time()
        try:
            await self._play(peer, CallConfig(timeout=self.call_timeout))
            await self.calls.record(peer, RecordStream(True, self.audio))
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            self.note("answer_failed", peer, f"{type(exc).__name__}: {exc}")
            return
        self.note("answered", peer, f"{self.loop.time() - started:.3f}")

    async def _decline(self, peer: int, delay: float) -> None:
        if delay > 0:
            await asyncio.sleep(delay)
        await asyncio.wait_for(self.calls.leave_call(peer), STEP_TIMEOUT)
        self.note("declined", peer)

    async def _busy(self, peer: int) -> None:
        call = self._input_calls.get(peer)
        if call is None:
            return
        await self.client(
            functions.phone.DiscardCallRequest(
                peer=types.InputPhoneCall(id=call.id, access_hash=call.access_hash),
                duration=0,
                reason=types.PhoneCallDiscardReasonBusy(),
                connection_id=0,
            )
        )
        # py-tgcalls keeps the incoming call's key-exchange state until it is used;
        # it has no API for a busy reject, so forget it as leave_call would.
        self.calls._p2p_configs.pop(peer, None)
        self.note("busy", peer)

    # --- outgoing calls and hang-up ----------------------------------------------------

    async def call(self, peer: int | str, timeout: int | None = None) -> float:
        """Call `peer` (user id or username) and wait for connected media.

        Returns the seconds from dialling to connected audio. Raises what py-tgcalls
        raises: CallDeclined, CallBusy, TimedOutAnswer (after `timeout`, default
        `call_timeout`), ntgcalls' TelegramServerError when media never connects, or
        Telethon's RPC errors (UserPrivacyRestrictedError, UserIsBlockedError, ...).
        """
        peer_id = await self.resolve(peer)
        started = self.loop.time()
        await self._play(peer_id, CallConfig(timeout=timeout or self.call_timeout))
        await self.calls.record(peer_id, RecordStream(True, self.audio))
        return self.loop.time() - started

    async def _play(self, peer: int, config: CallConfig) -> None:
        # play() returns when the call is connected; bound it beyond py-tgcalls' own
        # answer timeout by ntgcalls' connect timeout plus slack.
        stream = MediaStream(ExternalMedia.AUDIO, self.audio)
        task = asyncio.ensure_future(self.calls.play(peer, stream, config))
        self._play_tasks[peer] = task
        try:
            await asyncio.wait_for(asyncio.shield(task), config.timeout + 30)
        except TimeoutError:
            task.cancel()
            raise
        except asyncio.CancelledError:
            current = asyncio.current_task()
            if task.cancelled() and not (current and current.cancelling()):
                raise CallCancelled(f"call with {peer} hung up while connecting") from None
            raise
        finally:
            if self._play_tasks.get(peer) is task:
                del self._play_tasks[peer]

    async def resolve(self, peer: int | str) -> int:
        """A user id Telethon can make an InputUser for (username, or id of a known user).

        An unknown id is looked up in the member's contacts, as a phone app that
        synced its address book would know them.
        """
        if isinstance(peer, str):
            entity = await self.client.get_entity(peer)
            return int(entity.id)
        try:
            await self.client.get_input_entity(peer)
        except ValueError:
            await self.client(functions.contacts.GetContactsRequest(hash=0))
            await self.client.get_input_entity(peer)
        return peer

    async def hang_up(self, peer: int) -> None:
        """End (or cancel while ringing) the call with `peer`."""
        await self._cancel_play(peer)
        with contextlib.suppress(NotInCallError):
            await asyncio.wait_for(self.calls.leave_call(peer), STEP_TIMEOUT)

    async def _cancel_play(self, peer: int) -> None:
        # leave_call() waits on the per-chat lock a ringing play() holds, so the play
        # task goes first.
        task = self._play_tasks.pop(peer, None)
        if task is not None and not task.done():
            task.cancel()
            await asyncio.gather(task, return_exceptions=True)

    # --- media -----------------------------------------------------------------------

    async def send_tone(
        self, peer: int, frequency: float, seconds: float, amplitude: float = 0.3
    ) -> PaceReport:
        """Send a sine tone to `peer` in 10 ms frames paced in real time.

        Waits (up to STEP_TIMEOUT) for this member's own media to be connected first:
        the far end may report its call active a moment before this side does.
        """
        await self.wait_connected(peer, STEP_TIMEOUT)
        tone = ToneGenerator(frequency, self.rate, amplitude)
        frames = int(seconds * 100)

        async def send(frame: bytes) -> None:
            await self.calls.send_frame(peer, Device.MICROPHONE, frame)

        return await pace_frames(tone.frames(seconds), send, max_frames=frames)

    async def _on_frames(self, _client: Any, update: StreamFrames) -> None:
        pcm = self.received.setdefault(update.chat_id, bytearray())
        for frame in update.frames:
            pcm.extend(frame.frame)

    def received_pcm(self, peer: int) -> bytes:
        return bytes(self.received.get(peer, b""))

    def clear_received(self, peer: int) -> None:
        self.received.pop(peer, None)

    # --- helpers ----------------------------------------------------------------------

    def _spawn(self, coro: Any) -> None:
        task = asyncio.ensure_future(coro)
        self._tasks.add(task)
        task.add_done_callback(self._task_done)

    def _task_done(self, task: asyncio.Task[Any]) -> None:
        self._tasks.discard(task)
        if not task.cancelled() and task.exception() is not None:
            log.warning("%s: %r", self.user.first_name, task.exception())

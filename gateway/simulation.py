"""Simulation mode: the gateway against an in-process simulated Telegram with scripted members.

``[simulation] enabled = true`` (docs/simulation.md) makes :class:`Simulation`
start :mod:`simcloud` inside the gateway process.  The gateway's own Telegram
code is unchanged: :attr:`Simulation.config` is the gateway's configuration
with ``[telegram]`` pointed at the in-process cloud (its address, its RSA key,
the simulator's API app, the simulated bot's token and a session file of its
own under ``<data_dir>/simulation/``), and :meth:`Simulation.start` signs the
gateway account in by writing that session file, as a first login would.

Each ``[[simulation.members]]`` entry becomes a :class:`ScriptedMember`: a
real Telethon client and a real PyTgCalls (ntgcalls media) signed in to the
cloud as a household member (:class:`simcloud.member.SimMember`), linked in
the store to its lines, a mutual contact of the gateway account (the
simulator has no relays, so media is peer to peer, which Telegram allows
between contacts), following its script: answer, decline, refuse as busy or
ignore the gateway's calls; play a WAV file or a tone; record what it hears;
press the keypad; send a number; call the gateway.

WebRTC ignores the loopback interface: the media of a simulated call needs a
non-loopback interface up (any laptop has one; containers use
``tools/in-netns.sh``).

Only this module imports :mod:`simcloud`, and only :mod:`gateway.app` imports
this module, when the simulation is enabled.
"""

from __future__ import annotations

import array
import asyncio
import contextlib
import ipaddress
import logging
import math
import operator
import socket
import sys
import time
import wave
from collections.abc import Callable, Iterator
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from pytgcalls.types import Device
from telethon.tl import functions

from gateway.config import (
    Config,
    ConfigError,
    HostPort,
    Secret,
    SimulatedMember,
    TelegramServer,
    write_atomic,
)
from gateway.store import Store
from gateway.telegram.account import prepare_session_file, remove_session_file
from simcloud.audio import ToneGenerator
from simcloud.client import SIM_API_HASH, SIM_API_ID, make_client
from simcloud.cloud import Cloud
from simcloud.keys import CloudKey, cloud_key
from simcloud.member import Incoming, MemberEvent, SimMember
from simcloud.server import CloudServer
from simcloud.state import PrivacyRule, SimUser, State, state_of
from simcloud.world import build_cloud

__all__ = [
    "RATE",
    "ScriptedMember",
    "Simulation",
    "load_wav",
    "write_wav",
]

log = logging.getLogger(__name__)

RATE = 8000  # what scripted members send and record: 8 kHz mono s16le, 10 ms frames
FRAME = RATE // 100 * 2
SESSION = "simulation/gateway.session"  # under data_dir: never the real account's session
ONLINE_WAIT = 120.0  # seconds a script waits for the gateway account to come online
STEP_TIMEOUT = 20.0
PRESS_GAP = 0.3  # seconds between two keypad presses
LATE_RESYNC = 0.2  # a pacer this far behind starts a new schedule instead of bursting

_PRIVACY: dict[str, tuple[PrivacyRule, ...]] = {
    "everybody": (PrivacyRule("allow_all"),),
    "contacts": (PrivacyRule("allow_contacts"), PrivacyRule("disallow_all")),
    "nobody": (PrivacyRule("disallow_all"),),
}
_CALL_OVER = ("CLOSED", "FAILED", "TIMEOUT")  # ntgcalls connection states that end a call


# --------------------------------------------------------------------------------------------
# WAV files


def _samples(pcm: bytes) -> array.array[int]:
    samples = array.array("h")
    samples.frombytes(pcm[: len(pcm) - len(pcm) % 2])
    if sys.byteorder == "big":
        samples.byteswap()
    return samples


def _pcm(samples: array.array[int]) -> bytes:
    if sys.byteorder == "big":
        samples = array.array("h", samples)
        samples.byteswap()
    return samples.tobytes()


def _decimate(samples: array.array[int], factor: int) -> array.array[int]:
    """Down-sample by an integer *factor* behind a windowed-sinc low-pass at 3.6 kHz.

    Only the kept output samples are computed (each a C-level dot product of a
    slice): about 0.2 s per second of 48 kHz audio, once, when the gateway starts.
    """
    taps = 64 * factor + 1  # a transition band of about 700 Hz
    cutoff = 3600 / (RATE * factor)  # cycles per input sample
    middle = taps // 2
    kernel = []
    for i in range(taps):
        x = i - middle
        sinc = 2 * cutoff if x == 0 else math.sin(2 * math.pi * cutoff * x) / (math.pi * x)
        blackman = 0.42 - 0.5 * math.cos(2 * math.pi * i / (taps - 1))
        blackman += 0.08 * math.cos(4 * math.pi * i / (taps - 1))
        kernel.append(sinc * blackman)
    gain = sum(kernel)
    kernel = [k / gain for k in kernel]
    padded = array.array("h", bytes(2 * middle)) + samples + array.array("h", bytes(2 * middle))
    out = array.array("h")
    for n in range(0, len(samples), factor):
        value = sum(map(operator.mul, kernel, padded[n : n + taps]))
        out.append(max(-32768, min(32767, round(value))))
    return out


def load_wav(path: Path) -> bytes:
    """The 16-bit mono PCM WAV at *path* as 8 kHz s16le (8000 * n Hz files are down-sampled).

    **Raises** ``ValueError`` saying what is wrong with the file.
    """
    try:
        with wave.open(str(path), "rb") as wav:
            channels, width, rate = wav.getnchannels(), wav.getsampwidth(), wav.getframerate()
            data = wav.readframes(wav.getnframes())
    except (OSError, EOFError, wave.Error) as exc:
        raise ValueError(f"{path} is not a readable PCM WAV file ({exc})") from None
    if channels != 1 or width != 2 or rate % RATE or not RATE <= rate <= 48000:
        raise ValueError(
            f"{path} must be mono 16-bit PCM at 8, 16, 24, 32 or 48 kHz,"
            f" got {channels} channel(s), {8 * width}-bit, {rate} Hz"
        )
    if rate == RATE:
        return data[: len(data) - len(data) % 2]
    return _pcm(_decimate(_samples(data), rate // RATE))


def write_wav(path: Path, pcm: bytes, rate: int = RATE) -> None:
    """Write *pcm* (s16le mono) as a WAV file, atomically; the directory is created."""
    path.parent.mkdir(parents=True, exist_ok=True)
    header = bytearray()

    class _Sink:
        def write(self, data: bytes) -> int:
            header.extend(data)
            return len(data)

        def flush(self) -> None:
            pass

    with wave.open(_Sink(), "wb") as wav:  # type: ignore[call-overload]
        wav.setnchannels(1)
        wav.setsampwidth(2)
        wav.setframerate(rate)
        wav.setnframes(len(pcm) // 2)
        wav.writeframes(pcm[: len(pcm) - len(pcm) % 2])
    write_atomic(path, bytes(header), mode=0o644)


# --------------------------------------------------------------------------------------------
# Scripted members


class _SimMember(SimMember):
    """A SimMember that reports each event to its script as it happens."""

    on_event: Callable[[MemberEvent], None] | None = None

    def note(self, kind: str, peer: int, detail: str = "") -> None:
        super().note(kind, peer, detail)
        if self.on_event is not None:
            self.on_event(self.events[-1])


@dataclass(frozen=True)
class _Sound:
    """What a member sends once a call is up: a tone (endless), a WAV (once) or nothing."""

    tone_hz: float = 0.0
    amplitude: float = 0.0
    pcm: bytes = b""

    def frames(self) -> Iterator[bytes]:
        if self.tone_hz:
            tone = ToneGenerator(self.tone_hz, RATE, self.amplitude)
            while True:
                yield tone.frame()
        for start in range(0, len(self.pcm), FRAME):
            yield self.pcm[start : start + FRAME].ljust(FRAME, b"\0")

    @property
    def silent(self) -> bool:
        return not self.tone_hz and not self.pcm


class ScriptedMember:
    """One ``[[simulation.members]]`` entry: a simulated phone that follows its script.

    Tests and the demo may also drive it: :meth:`press`, :meth:`send`,
    :meth:`call_gateway`, :meth:`hang_up`, :meth:`set_incoming`, and read
    :meth:`heard_pcm`, :attr:`in_call`, :attr:`answered_calls`.
    """

    def __init__(
        self,
        simulation: Simulation,
        script: SimulatedMember,
        sim: _SimMember,
        sound: _Sound,
        record: Path | None,
    ) -> None:
        self.simulation = simulation
        self.script = script
        self.sim = sim
        self.sound = sound
        self.record_path = record
        self.in_call = False
        self.answered_calls = 0  # calls that were up (either direction)
        self.recordings: list[Path] = []  # every record file written, in order
        self._heard = b""  # what the last finished call carried to the member
        self._call_tasks: set[asyncio.Task[Any]] = set()
        self._tasks: set[asyncio.Task[Any]] = set()
        self._up = asyncio.Event()
        self._down = asyncio.Event()
        sim.on_event = self._on_event
        self.set_incoming(script.incoming, script.answer_after)

    @property
    def name(self) -> str:
        return self.script.name

    @property
    def user(self) -> SimUser:
        return self.sim.user

    @property
    def id(self) -> int:
        return self.sim.id

    @property
    def gateway_id(self) -> int:
        return self.simulation.gateway_user.id

    def __repr__(self) -> str:
        return f"<ScriptedMember {self.name} {self.id}>"

    # -- what tests and the demo call -----------------------------------------------------

    def set_incoming(self, incoming: str, answer_after: float | None = None) -> None:
        """What to do with the gateway's next calls: answer, decline, busy or ignore."""
        self.sim.incoming = Incoming(incoming)
        if answer_after is not None:
            self.sim.answer_delay = answer_after

    def heard_pcm(self) -> bytes:
        """8 kHz s16le the member heard in the current call (or the last one)."""
        if self.in_call:
            return self.sim.received_pcm(self.gateway_id)
        return self._heard

    async def wait_call(self, timeout: float) -> None:
        """Wait until a call is up (now or next).  **Raises** ``TimeoutError``."""
        async with asyncio.timeout(timeout):
            await self._up.wait()

    async def wait_call_ended(self, timeout: float) -> None:
        """Wait until no call is up (at once after a call ended).  **Raises** ``TimeoutError``."""
        async with asyncio.timeout(timeout):
            await self._down.wait()

    async def send(self, text: str) -> None:
        """Send *text* to the gateway account, as typed in the member's chat with it."""
        peer = await self.sim.resolve(self.gateway_id)
        await self.sim.client.send_message(peer, text)
        log.info("simulation: %s sent %r to the gateway", self.name, text)

    async def call_gateway(self) -> None:
        """Call the gateway account; returns once media is connected (raises if refused)."""
        peer = self.gateway_id
        self.sim.clear_received(peer)
        log.info("simulation: %s calls the gateway", self.name)
        await self.sim.call(peer)
        self._call_up(peer)

    async def hang_up(self) -> None:
        """End the call with the gateway (or stop calling it)."""
        await self.sim.hang_up(self.gateway_id)
        self._call_down(self.gateway_id, "hung up")

    async def press(self, digits: str) -> None:
        """Press *digits* on the newest keypad message the gateway sent this member.

        Each press is a button click (a callback query to the companion bot), as
        a person's thumb would do it.  **Raises** ``LookupError`` when there is
        no keypad message with that digit.
        """
        for i, digit in enumerate(digits):
            if i:
                await asyncio.sleep(PRESS_GAP)
            button = await self._keypad_button(digit)
            await asyncio.wait_for(button.click(), STEP_TIMEOUT)
            log.info("simulation: %s pressed %s", self.name, digit)

    async def _keypad_button(self, digit: str) -> Any:
        peer = await self.sim.resolve(self.gateway_id)
        async for message in self.sim.client.iter_messages(peer, limit=30):
            if message.out or not message.buttons:
                continue
            for row in message.buttons:
                for button in row:
                    label = (button.text or "").strip()
                    if label == digit or label.split(maxsplit=1)[:1] == [digit]:
                        return button
        raise LookupError(f"{self.name}: no message from the gateway has a {digit!r} button")

    # -- life -------------------------------------------------------------------------------

    def start_script(self) -> None:
        if self.script.send_number or self.script.call_gateway_after is not None:
            self._spawn(self._outgoing_script(), self._tasks)

    async def close(self) -> None:
        for task in [*self._tasks, *self._call_tasks]:
            task.cancel()
        await asyncio.gather(*self._tasks, *self._call_tasks, return_exceptions=True)
        self.sim.on_event = None
        with contextlib.suppress(Exception):
            await asyncio.wait_for(self.sim.close(), STEP_TIMEOUT)

    async def _outgoing_script(self) -> None:
        script = self.script
        try:
            await self.simulation.wait_gateway_online(ONLINE_WAIT)
            if script.send_number:
                await asyncio.sleep(script.send_after)
                await self.send(script.send_number)
            if script.call_gateway_after is not None:
                await asyncio.sleep(script.call_gateway_after)
                await self.call_gateway()
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            log.warning(
                "simulation: %s's script stopped: %s: %s", self.name, type(exc).__name__, exc
            )

    # -- the call ---------------------------------------------------------------------------

    def _on_event(self, event: MemberEvent) -> None:
        if event.peer != self.gateway_id:
            return
        if event.kind == "incoming":
            self.sim.clear_received(event.peer)
            log.info("simulation: %s's phone rings (%s)", self.name, self.sim.incoming.value)
        elif event.kind == "answered":
            self._call_up(event.peer)
        elif event.kind in ("declined", "busy", "answer_failed"):
            log.info("simulation: %s %s the call %s", self.name, event.kind, event.detail)
        elif event.kind == "discarded" and not self.in_call:
            log.info("simulation: %s's phone stopped ringing (%s)", self.name, event.detail)
        elif event.kind == "discarded":
            self._call_down(event.peer, f"ended ({event.detail})")
        elif event.kind == "connection" and event.detail in _CALL_OVER:
            self._call_down(event.peer, f"media {event.detail.lower()}")

    def _call_up(self, peer: int) -> None:
        if self.in_call:
            return
        self.in_call = True
        self.answered_calls += 1
        self._down = asyncio.Event()
        self._up.set()
        log.info("simulation: %s is in a call with the gateway", self.name)
        if not self.sound.silent:
            self._spawn(self._play(peer), self._call_tasks)
        if self.script.hang_up_after > 0:
            self._spawn(self._later(self.script.hang_up_after, self.hang_up()), self._call_tasks)
        if self.script.keypad:
            press = self.press(self.script.keypad)
            self._spawn(self._later(self.script.keypad_after, press), self._call_tasks)

    def _call_down(self, peer: int, why: str) -> None:
        if not self.in_call:
            return
        self.in_call = False
        self._up = asyncio.Event()
        current = asyncio.current_task()
        for task in list(self._call_tasks):
            if task is not current:
                task.cancel()
        self._heard = self.sim.received_pcm(peer)
        log.info("simulation: %s's call %s", self.name, why)
        if self.record_path is not None:
            try:
                write_wav(self.record_path, self._heard)
                self.recordings.append(self.record_path)
                log.info("simulation: %s's recording: %s", self.name, self.record_path)
            except OSError as exc:
                log.warning("simulation: cannot write %s: %s", self.record_path, exc)
        self._down.set()

    async def _later(self, delay: float, action: Any) -> None:
        try:
            await asyncio.sleep(delay)
            await action
        except asyncio.CancelledError:
            action.close()
            raise
        except Exception as exc:
            log.warning("simulation: %s: %s: %s", self.name, type(exc).__name__, exc)

    async def _play(self, peer: int) -> None:
        """Send the member's sound in 10 ms frames on an absolute real-time schedule."""
        try:
            await self.sim.wait_connected(peer, STEP_TIMEOUT)
        except TimeoutError:
            log.warning("simulation: %s: media never connected; not playing", self.name)
            return
        loop = asyncio.get_running_loop()
        start, sent = loop.time(), 0
        for frame in self.sound.frames():
            delay = start + sent * 0.01 - loop.time()
            if delay > 0:
                await asyncio.sleep(delay)
            elif delay < -LATE_RESYNC:
                start, sent = loop.time(), 0  # fell behind: resume in real time, no burst
            try:
                await self.sim.calls.send_frame(peer, Device.MICROPHONE, frame)
            except Exception as exc:  # the call went away under us
                log.debug("simulation: %s stops playing: %s", self.name, exc)
                return
            sent += 1

    def _spawn(self, coro: Any, tasks: set[asyncio.Task[Any]]) -> None:
        task = asyncio.get_running_loop().create_task(coro, name=f"simulation-{self.name}")
        tasks.add(task)
        task.add_done_callback(tasks.discard)


# --------------------------------------------------------------------------------------------
# The simulation


class _BoundCloudServer(CloudServer):
    """A CloudServer on a socket bound beforehand, so the port is known before it starts."""

    def __init__(self, cloud: Cloud, sock: socket.socket, key: CloudKey) -> None:
        host, port = sock.getsockname()[:2]
        super().__init__(cloud, host, port, key=key)
        self._sock = sock

    async def start(self) -> None:
        self._server = await asyncio.start_server(self._accept, sock=self._sock)
        self.cloud.server_address = (self.host, self.port)
        log.info("simulation: simulated Telegram listening on %s:%d", self.host, self.port)


def _bind(host: str, port: int) -> socket.socket:
    family = socket.AF_INET6 if ipaddress.ip_address(host).version == 6 else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind((host, port))
    except OSError as exc:
        sock.close()
        raise ConfigError(f"simulation.listen: cannot listen on {host}:{port}: {exc}") from None
    sock.setblocking(False)
    return sock


class Simulation:
    """The simulated cloud, the gateway's sign-in and the scripted members.

    Built before the gateway's Telegram side (it supplies :attr:`config`, the
    configuration that side must use); :meth:`start` before that side starts,
    :meth:`stop` after it stopped.

    **Raises** :class:`~gateway.config.ConfigError` (the listen address is taken,
    a WAV file cannot be read) naming the setting.
    """

    def __init__(self, config: Config, store: Store) -> None:
        self.settings = config.simulation
        self.store = store
        self.directory = config.data_dir / "simulation"
        self.cloud: Cloud = build_cloud()
        state = self.state
        state.add_app(SIM_API_ID, SIM_API_HASH)
        settings = self.settings
        first, _, last = settings.gateway_name.partition(" ")
        self.gateway_user: SimUser = state.add_user(
            phone=settings.gateway_phone,
            first_name=first,
            last_name=last,
            username=settings.gateway_username or None,
        )
        self.bot_user: SimUser | None = None
        token = ""
        if settings.bot_username:
            self.bot_user, token = state.add_bot(
                settings.bot_username, owner=self.gateway_user, inline_feedback=True
            )
        self._sounds = [self._sound(config, i) for i in range(len(settings.members))]
        self.directory.mkdir(mode=0o700, parents=True, exist_ok=True)
        key = cloud_key()
        key_file = self.directory / "cloud.pem"
        write_atomic(key_file, key.public_pem, mode=0o644)
        self._sock = _bind(settings.listen, settings.port)
        self.server = _BoundCloudServer(self.cloud, self._sock, key)
        self.config: Config = replace(
            config,
            telegram=replace(
                config.telegram,
                api_id=SIM_API_ID,
                api_hash=Secret(SIM_API_HASH),
                bot_token=Secret(token),
                session=SESSION,
                server=TelegramServer(
                    address=HostPort(self.server.host, self.server.port),
                    public_key=str(key_file),
                ),
            ),
        )
        self._lines = tuple(line.name for line in config.lines)
        self._records = [config.path(m.record) if m.record else None for m in settings.members]
        self.members: dict[str, ScriptedMember] = {}
        self._sign_in_sessions: set[int] = set()
        self._started = False

    @property
    def state(self) -> State:
        return state_of(self.cloud)

    @staticmethod
    def _sound(config: Config, index: int) -> _Sound:
        member = config.simulation.members[index]
        if member.tone_hz:
            return _Sound(tone_hz=member.tone_hz, amplitude=10 ** (member.tone_dbfs / 20))
        if member.play:
            try:
                return _Sound(pcm=load_wav(config.path(member.play)))
            except ValueError as exc:
                raise ConfigError(f"simulation.members[{index}].play: {exc}") from None
        return _Sound()

    # -- life -------------------------------------------------------------------------------

    async def start(self) -> None:
        """Start the cloud, the members and sign the gateway account in."""
        self._started = True
        await self.server.start()
        try:
            await self._start_members()
            await self._sign_in_gateway()
            self._link_members()
        except BaseException:
            await self.stop()
            raise
        for member in self.members.values():
            member.start_script()
        log.info(
            "simulation: ready; gateway account %s (%s), members: %s",
            self.settings.gateway_name,
            self.settings.gateway_phone,
            ", ".join(self.members) or "none",
        )

    async def stop(self) -> None:
        """Close the members and the cloud (idempotent)."""
        members, self.members = list(self.members.values()), {}
        await asyncio.gather(*(m.close() for m in members), return_exceptions=True)
        if self._started:
            self._started = False
            await self.server.close()
        self._sock.close()

    async def _start_members(self) -> None:
        state, settings = self.state, self.settings
        # Accounts first, in file order, so user ids are the same on every start.
        sims: list[_SimMember] = []
        for i, script in enumerate(settings.members):
            phone = settings.member_phone(i)
            user = state.add_user(
                phone=phone, first_name=script.name, username=script.username or None
            )
            state.add_contact(user, self.gateway_user)
            state.add_contact(self.gateway_user, user)
            state.set_privacy(user, "PhoneCall", _PRIVACY[script.privacy])
            sim = _SimMember(self.cloud, self.server, user, phone, rate=RATE)
            sims.append(sim)
            self.members[script.name] = ScriptedMember(
                self, script, sim, self._sounds[i], self._records[i]
            )
        results = await asyncio.gather(
            *(asyncio.wait_for(sim.start(), STEP_TIMEOUT) for sim in sims), return_exceptions=True
        )
        for script, result in zip(settings.members, results, strict=True):
            if isinstance(result, BaseException):
                raise RuntimeError(f"simulation: member {script.name} could not start: {result!r}")

    async def _sign_in_gateway(self) -> None:
        """Sign the gateway account in on its session file, as the first login would.

        The cloud is new on every start, so any earlier session is useless: it is
        replaced.  The contact list is fetched once so the session knows the
        members (a phone syncing its address book).
        """
        session = self.config.telegram_session
        for path in (session, self.config.telegram_bot_session):
            remove_session_file(path)
        prepare_session_file(session)
        phone = self.settings.gateway_phone
        client = make_client(self.server, str(session))
        try:
            await asyncio.wait_for(client.connect(), STEP_TIMEOUT)
            await client.send_code_request(phone)
            await client.sign_in(phone=phone, code=self.state.last_code(phone))
            await client(functions.contacts.GetContactsRequest(hash=0))
            # The account reuses this auth key with a session of its own: "online" below
            # must not mistake this one, which the cloud may still hold for a moment.
            self._sign_in_sessions = {
                s.session_id
                for k in self.state.keys_of(self.gateway_user.id)
                for s in self.cloud.sessions_of_key(k)
            }
        finally:
            await client.disconnect()

    def _link_members(self) -> None:
        """Link every member to its lines in the store, as an accepted invitation would."""
        now = time.time()
        for member in self.members.values():
            lines = self._lines if member.script.lines is None else member.script.lines
            access_hash = self.state.access_hash(self.gateway_user, member.user)
            record = self.store.add_member(
                member.id, access_hash, member.name, member.script.username, lines, now
            )
            if record.lines != tuple(lines):
                self.store.update_member(record.id, lines=tuple(lines))
        for record in self.store.members():
            if record.telegram_id not in self.state.users:
                log.warning(
                    "simulation: member %s (%d) in the database does not exist in the"
                    " simulated cloud; use a data_dir of its own for the simulation",
                    record.name,
                    record.telegram_id,
                )

    # -- queries ------------------------------------------------------------------------------

    def gateway_online(self) -> bool:
        """The gateway's own client has a live session that receives updates."""
        keys = set(self.state.keys_of(self.gateway_user.id))
        return any(
            s.auth_key_id in keys
            and s.session_id not in self._sign_in_sessions
            and not getattr(s, "no_updates", False)
            for s in self.cloud.sessions
        )

    async def wait_gateway_online(self, timeout: float) -> None:
        """Wait until :meth:`gateway_online`.  **Raises** ``TimeoutError``."""
        async with asyncio.timeout(timeout):
            # The cloud announces no sessions; a set lookup ten times a second is cheap.
            while not self.gateway_online():  # noqa: ASYNC110
                await asyncio.sleep(0.1)

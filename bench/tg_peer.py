"""The far side of the Telegram bench: the simulated cloud and the household members.

Not an RFC module.  Runs as its own process (``bench/telegram.py`` starts it)
so that the gateway's process carries only the gateway's ends of the calls:
the cloud (``simcloud.world`` + ``CloudServer`` on 127.0.0.1) and every
member (``simcloud.member.SimMember``: a real Telethon client and a real
PyTgCalls) live here.  Members answer at once (``answer_delay=0``), are mutual
contacts of the gateway account (peer-to-peer allowed) and know it already.

What a member hears from the gateway is counted per call, not stored, and the
first voiced frame after :func:`arm` is timed (``time.monotonic``, the same
clock in every process of the machine).  While streaming, every member sends a
continuous 880 Hz tone in 10 ms frames on one shared absolute schedule.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from dataclasses import dataclass, field
from typing import Any

from ntgcalls import FrameData, StreamDevice
from pytgcalls.types import StreamFrames
from tg_wire import (
    MEMBER_HZ,
    Handler,
    Heard,
    Pacer,
    serve,
    tone_loop,
    worker_args,
    worker_logging,
)

from simcloud.client import SIM_API_HASH, SIM_API_ID
from simcloud.cloud import Cloud
from simcloud.member import SimMember
from simcloud.server import CloudServer
from simcloud.state import SimUser, state_of
from simcloud.world import build_cloud

log = logging.getLogger("bench.peer")

GATEWAY_PHONE = "+99966 0000"
FRAME_S = 0.010
STEP = 15.0  # bound on one member-side step (hang-up, waits for events)


@dataclass
class BenchMember(SimMember):
    """A SimMember that counts what it hears per peer instead of storing it."""

    heard: dict[int, Heard] = field(default_factory=dict)
    armed_at: float = 0.0

    async def _on_frames(self, _client: Any, update: StreamFrames) -> None:
        heard = self.heard.get(update.chat_id)
        if heard is None:
            heard = self.heard[update.chat_id] = Heard()
        for frame in update.frames:
            heard.add(frame.frame)

    async def _answer(self, peer: int, delay: float) -> None:
        self.note("answering", peer)  # answer_delay is 0: the answer starts here
        await super()._answer(peer, delay)

    def arm(self, peer: int) -> None:
        """Forget what was heard from *peer* and older events: a new call starts."""
        self.heard.pop(peer, None)
        self.armed_at = time.monotonic()

    def since_armed(self, kind: str, peer: int) -> float | None:
        for event in self.events_of(kind, peer):
            if event.at >= self.armed_at:
                return event.at
        return None


class Household:
    """The cloud, its server and the members; the worker's commands are its methods."""

    def __init__(self) -> None:
        self.cloud: Cloud | None = None
        self.server: CloudServer | None = None
        self.gateway: SimUser | None = None
        self.members: list[BenchMember] = []
        self.dials: dict[int, asyncio.Task[float]] = {}
        self.streaming: set[int] = set()
        self.pacer = Pacer(FRAME_S)
        self.send_errors = 0
        self._ticker: asyncio.Task[None] | None = None
        self._tone = tone_loop(MEMBER_HZ)

    @property
    def gateway_id(self) -> int:
        assert self.gateway is not None
        return self.gateway.id

    def member(self, index: int) -> BenchMember:
        return self.members[index]

    # -- commands --------------------------------------------------------------------

    async def start(self, members: int) -> dict[str, Any]:
        """Start the cloud and sign in *members* members; what the gateway needs to know."""
        cloud = self.cloud = build_cloud()
        state = state_of(cloud)
        state.add_app(SIM_API_ID, SIM_API_HASH)
        gateway = self.gateway = state.add_user(
            phone=GATEWAY_PHONE, first_name="Home", last_name="Gateway", username="home_gateway"
        )
        self.server = CloudServer(cloud, "127.0.0.1", 0)
        await self.server.start()
        known = []
        for n in range(1, members + 1):
            member = BenchMember(
                cloud,
                self.server,
                state.add_user(phone=f"+99966{n:04d}", first_name=f"Member{n}"),
                f"+99966{n:04d}",
            )
            await member.start()
            # Mutual contacts, as the setup guidance asks: peer-to-peer is allowed.
            state.add_contact(member.user, gateway)
            state.add_contact(gateway, member.user)
            # The member's phone knows the gateway already (its address book).
            await asyncio.wait_for(member.resolve(gateway.id), STEP)
            self.members.append(member)
            known.append([member.id, state.access_hash(gateway, member.user)])
        return {
            "host": self.server.host,
            "port": self.server.port,
            "gateway_phone": GATEWAY_PHONE,
            "gateway_id": gateway.id,
            "public_pem": self.server.key.public_pem.decode(),
            "members": known,
        }

    async def code(self, phone: str) -> dict[str, Any]:
        assert self.cloud is not None
        return {"code": state_of(self.cloud).last_code(phone)}

    async def arm(self, member: int) -> dict[str, Any]:
        self.member(member).arm(self.gateway_id)
        return {}

    async def dial(self, member: int) -> dict[str, Any]:
        """The member calls the gateway; returns at once with the dial time."""
        m = self.member(member)
        m.arm(self.gateway_id)
        at = time.monotonic()
        self.dials[member] = asyncio.ensure_future(m.call(self.gateway_id, timeout=20))
        return {"dial_at": at}

    async def report(self, member: int, outgoing: bool, timeout: float) -> dict[str, Any]:
        """The member's view of the current call, once it heard the gateway (bounded)."""
        m = self.member(member)
        gw = self.gateway_id
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        while (heard := m.heard.get(gw)) is None or heard.first_voiced_at is None:
            if loop.time() > deadline:
                frames = heard.frames if heard else 0
                raise TimeoutError(
                    f"no voiced frame from the gateway within {timeout:g} s ({frames} frames)"
                )
            await asyncio.sleep(0.005)
        dial_seconds = None
        if not outgoing and member in self.dials:
            dial_seconds = await asyncio.wait_for(self.dials.pop(member), STEP)
        return {
            "incoming_at": m.since_armed("incoming", gw),
            "ringing_at": m.since_armed("ringing", gw),
            "answering_at": m.since_armed("answering", gw),
            "accepted_at": m.since_armed("accepted", gw),
            "active_at": m.since_armed("active", gw),
            "first_voiced_at": heard.first_voiced_at,
            "dial_seconds": dial_seconds,
        }

    async def hangup(self, member: int) -> dict[str, Any]:
        await self.member(member).hang_up(self.gateway_id)
        return {}

    async def wait_idle(self, members: list[int], timeout: float) -> dict[str, Any]:
        """Wait until none of *members* is in a call with the gateway (a hang-up went through)."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        for index in members:
            m = self.member(index)
            while self.gateway_id in await m.calls.calls or m._play_tasks:
                if loop.time() > deadline:
                    raise TimeoutError(f"member {index} still in a call after {timeout:g} s")
                await asyncio.sleep(0.05)
        return {}

    async def stream(self, members: list[int], on: bool) -> dict[str, Any]:
        """Start (after each member's own media is up) or stop the members' tone."""
        if not on:
            self.streaming.difference_update(members)
            return {}
        for index in members:
            await self.member(index).wait_connected(self.gateway_id, STEP)
            self.member(index).arm(self.gateway_id)
            self.streaming.add(index)
        if self._ticker is None or self._ticker.done():
            self._ticker = asyncio.create_task(self._tick())
        return {}

    async def counts(self, restart: bool = False) -> dict[str, Any]:
        """Counters now; *restart* starts the pump's lateness record afresh (a window opens)."""
        gw = self.gateway_id
        heard = {}
        for index, m in enumerate(self.members):
            h = m.heard.get(gw)
            heard[str(index)] = h.counts() if h else [0, 0]
        out = {
            "at": time.monotonic(),
            "cpu_s": time.process_time(),
            "heard": heard,
            "pacer": self.pacer.as_dict(),
            "send_errors": self.send_errors,
        }
        if restart:
            self.pacer.restart()
        return out

    async def analyse(self, members: list[int]) -> dict[str, Any]:
        out = {}
        for index in members:
            h = self.member(index).heard.get(self.gateway_id)
            out[str(index)] = h.analysis() if h else {"hz": None, "dbfs": None}
        return out

    async def close(self) -> None:
        self.streaming.clear()
        if self._ticker is not None:
            self._ticker.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._ticker
        for m in self.members:
            with contextlib.suppress(Exception):
                await asyncio.wait_for(m.close(), STEP)
        if self.server is not None:
            await asyncio.wait_for(self.server.close(), STEP)

    # -- the members' tone --------------------------------------------------------------

    def _sent(self, future: asyncio.Future[Any]) -> None:
        if future.cancelled() or future.exception() is not None:
            self.send_errors += 1

    async def _tick(self) -> None:
        """One 10 ms frame per streaming member per tick, on an absolute schedule."""
        gw = self.gateway_id
        self.pacer.begin()
        n = 0
        while self.streaming:
            frame = self._tone[n % len(self._tone)]
            for index in list(self.streaming):
                binding = self.member(index).calls._binding
                sent = binding.send_external_frame(gw, StreamDevice.MICROPHONE, frame, FrameData())
                sent.add_done_callback(self._sent)
            n += 1
            await self.pacer.wait()


async def main() -> None:
    args = worker_args(__doc__.split("\n", 1)[0])
    worker_logging(logging.WARNING)
    household = Household()
    handlers: dict[str, Handler] = {
        "start": household.start,
        "code": household.code,
        "arm": household.arm,
        "dial": household.dial,
        "report": household.report,
        "hangup": household.hangup,
        "wait_idle": household.wait_idle,
        "stream": household.stream,
        "counts": household.counts,
        "analyse": household.analyse,
    }
    try:
        await serve(args.control, handlers)
    finally:
        await household.close()


if __name__ == "__main__":
    asyncio.run(main())

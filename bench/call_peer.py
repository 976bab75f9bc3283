"""The far side of the bridged-calls bench: the simulated cloud, the companion bot, the members.

Not an RFC module.  ``tg_peer.Household`` (the Telegram bench's far side) with
what a bridged call needs on top:

* the companion bot, so the gateway runs as it is deployed (its ring messages
  and keypads go through it);
* members that record what they hear in ntgcalls' own frame callback, timed
  there (``time.monotonic()``), exactly as the raw ntgcalls baseline does
  (``bench/call_raw.py``), and count it in the same place;
* a program player: a member sends a prepared s16le file in 10 ms frames from
  a scheduled start time and notes when each frame was handed to ntgcalls;
* the answer delay as a knob, and a report of each set-up: when the cloud saw
  ``phone.requestCall`` and when the member's app rang and answered.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from call_audio import save_recording
from ntgcalls import FrameData, StreamDevice, StreamMode
from tg_peer import GATEWAY_PHONE, STEP, BenchMember, Household
from tg_wire import Handler, Heard, Pacer, serve, worker_args, worker_logging

from simcloud.client import SIM_API_HASH, SIM_API_ID
from simcloud.member import SimMember
from simcloud.phone import phone_of
from simcloud.server import CloudServer
from simcloud.state import state_of
from simcloud.world import build_cloud

log = logging.getLogger("bench.callpeer")

BOT_USERNAME = "linegram_bench_bot"
FRAME = 160  # bytes: 10 ms s16le at 8 kHz


def read(path: str) -> bytes:
    return Path(path).read_bytes()


@dataclass
class CallMember(BenchMember):
    """A member whose received audio is counted and recorded in ntgcalls' callback thread."""

    recordings: dict[int, list[tuple[float, bytes]]] = field(default_factory=dict)
    program_times: list[float] = field(default_factory=list)
    program_done: asyncio.Event = field(default_factory=asyncio.Event)
    player: asyncio.Task[None] | None = None

    def hook_frames(self) -> None:
        """Take received frames straight from ntgcalls (replaces py-tgcalls' frame updates,
        which nothing here uses), as the raw baseline's ends do."""
        self.calls._binding.on_frames(self._native_frames)

    def _native_frames(self, chat_id: int, mode: Any, device: Any, frames: Any) -> None:
        # an ntgcalls thread: appends and counters only
        if mode != StreamMode.PLAYBACK or device != StreamDevice.MICROPHONE:
            return
        at = time.monotonic()
        heard = self.heard.get(chat_id)
        if heard is None:
            heard = self.heard[chat_id] = Heard()
        data = []
        for frame in frames:
            heard.add(frame.data)
            data.append(frame.data)
        recording = self.recordings.get(chat_id)
        if recording is not None:
            recording.append((at, b"".join(data)))

    async def _answer(self, peer: int, delay: float) -> None:
        if delay > 0:
            await asyncio.sleep(delay)
        self.note("answering", peer)  # after the delay: the gateway's time starts here
        await SimMember._answer(self, peer, 0.0)

    async def play(self, peer: int, pcm: bytes, start_at: float) -> None:
        frames = [pcm[i : i + FRAME] for i in range(0, len(pcm) - FRAME + 1, FRAME)]
        pacer = Pacer(FRAME / 16000)
        loop = asyncio.get_running_loop()
        await asyncio.sleep(max(0.0, start_at - loop.time()))
        pacer.begin()
        binding = self.calls._binding
        for frame in frames:
            self.program_times.append(time.monotonic())
            binding.send_external_frame(peer, StreamDevice.MICROPHONE, frame, FrameData())
            await pacer.wait()
        self.program_done.set()


class CallHousehold(Household):
    """The cloud with the gateway account and its bot, and the members; worker commands."""

    members: list[CallMember]  # type: ignore[assignment]

    def member(self, index: int) -> CallMember:
        return self.members[index]

    async def start(self, members: int) -> dict[str, Any]:  # type: ignore[override]
        cloud = self.cloud = build_cloud()
        state = state_of(cloud)
        state.add_app(SIM_API_ID, SIM_API_HASH)
        gateway = self.gateway = state.add_user(
            phone=GATEWAY_PHONE, first_name="Home", last_name="Gateway", username="home_gateway"
        )
        _bot, token = state.add_bot(BOT_USERNAME, owner=gateway, inline_feedback=True)
        self.server = CloudServer(cloud, "127.0.0.1", 0)
        await self.server.start()
        known = []
        for n in range(1, members + 1):
            phone = f"+99966{n:04d}"
            user = state.add_user(phone=phone, first_name=f"Member{n}", username=f"member{n}")
            member = CallMember(cloud, self.server, user, phone)
            await member.start()
            member.hook_frames()
            # Mutual contacts: peer-to-peer is allowed (the simulator has no relays).
            state.add_contact(member.user, gateway)
            state.add_contact(gateway, member.user)
            await asyncio.wait_for(member.resolve(gateway.id), STEP)
            self.members.append(member)
            known.append(
                [member.id, state.access_hash(gateway, member.user), f"Member{n}", f"member{n}"]
            )
        return {
            "host": self.server.host,
            "port": self.server.port,
            "gateway_phone": GATEWAY_PHONE,
            "gateway_id": gateway.id,
            "public_pem": self.server.key.public_pem.decode(),
            "bot_token": token,
            "members": known,
        }

    async def behave(self, member: int, answer_delay: float) -> dict[str, Any]:
        self.member(member).answer_delay = answer_delay
        return {}

    async def wait_connected(self, member: int, timeout: float) -> dict[str, Any]:
        m = self.member(member)
        await m.wait_connected(self.gateway_id, timeout)
        return {"at": m.since_armed("connection", self.gateway_id)}

    async def setup_report(self, member: int, since_wall: float, timeout: float) -> dict[str, Any]:
        """The cloud's and the member's view of the call the gateway just placed to *member*."""
        assert self.cloud is not None
        m = self.member(member)
        gw = self.gateway_id
        await m.wait_connected(gw, timeout)
        calls = [
            c
            for c in phone_of(self.cloud).calls_of(gw)
            if c.participant_id == m.id and c.requested_at >= since_wall - 0.001
        ]
        if not calls:
            raise RuntimeError(f"the cloud saw no call to member {member} since the INVITE")
        call = calls[-1]
        connected = [
            e.at
            for e in m.events_of("connection", gw)
            if e.at >= m.armed_at and e.detail == "CONNECTED"
        ]
        return {
            "requested_wall": call.requested_at,
            "received_wall": call.received_at,
            "accepted_wall": call.accepted_at,
            "confirmed_wall": call.confirmed_at,
            "calls": len(calls),
            "incoming_at": m.since_armed("incoming", gw),
            "answering_at": m.since_armed("answering", gw),
            "connected_at": connected[0] if connected else None,
        }

    async def play(self, member: int, path: str, start_at: float) -> dict[str, Any]:
        m = self.member(member)
        m.program_times = []
        m.program_done.clear()
        m.player = asyncio.create_task(m.play(self.gateway_id, read(path), start_at))
        return {}

    async def played(self, member: int, timeout: float) -> dict[str, Any]:
        m = self.member(member)
        assert m.player is not None
        await asyncio.wait_for(asyncio.shield(m.player), timeout)
        return {"times": m.program_times, "chunk": FRAME // 2}

    async def record(self, member: int) -> dict[str, Any]:
        self.member(member).recordings[self.gateway_id] = []
        return {}

    async def save(self, member: int, stem: str) -> dict[str, Any]:
        chunks = self.member(member).recordings.pop(self.gateway_id, [])
        save_recording(Path(stem), list(chunks))
        return {"chunks": len(chunks)}

    async def close(self) -> None:
        for m in self.members:
            if m.player is not None:
                m.player.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await m.player
        await super().close()


async def main() -> None:
    args = worker_args(__doc__.split("\n", 1)[0])
    worker_logging(logging.WARNING)
    household = CallHousehold()
    handlers: dict[str, Handler] = {
        "start": household.start,
        "code": household.code,
        "arm": household.arm,
        "behave": household.behave,
        "wait_connected": household.wait_connected,
        "setup_report": household.setup_report,
        "hangup": household.hangup,
        "wait_idle": household.wait_idle,
        "stream": household.stream,
        "counts": household.counts,
        "analyse": household.analyse,
        "play": household.play,
        "played": household.played,
        "record": household.record,
        "save": household.save,
    }
    try:
        await serve(args.control, handlers)
    finally:
        await household.close()


if __name__ == "__main__":
    asyncio.run(main())

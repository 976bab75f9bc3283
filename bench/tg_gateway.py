"""The gateway's side of the Telegram bench: the product's Telegram leg, alone in a process.

Not an RFC module.  This process holds exactly what the gateway runs for its
Telegram calls and nothing of the far side: a ``TelegramAccount`` signed in
through ``Login`` (the code comes from the simulated cloud, through the bench),
members made known with ``ensure_known``, and ``TelegramCalls``.  Calls are
placed with ``TelegramCalls.call`` and answered with ``TelegramCall.answer``.

Audio is driven the way the SIP side drives it: one ticker for every call,
every 20 ms on an absolute schedule, writes two 10 ms frames of a 440 Hz tone
to each active call (``TelegramCall.write_audio``) from the moment the call is
ACTIVE.  What a call hears arrives through ``on_audio`` and is counted (frames,
voiced frames, the last 0.5 s for a tone check after the window).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from tg_wire import GATEWAY_HZ, Handler, Heard, Pacer, serve, tone_loop, worker_args

from gateway.config import HostPort, Secret, TelegramServer, TelegramSettings
from gateway.logs import setup_logging
from gateway.telegram.account import TelegramAccount
from gateway.telegram.call import (
    CallSettings,
    CallState,
    TelegramCall,
    TelegramCalls,
)
from gateway.telegram.login import Login, LoginStep
from simcloud.client import SIM_API_HASH, SIM_API_ID

log = logging.getLogger("bench.gateway")

TICK_S = 0.020  # the SIP side's media clock: one 20 ms RTP packet = two 10 ms frames
STEP = 20.0  # bound on one account step (connect, login request, hang-up)
SETTINGS = CallSettings(ring_timeout=20, answer_timeout=20, media_timeout=6)


@dataclass
class Leg:
    """One call as the bench sees it: the product's call object, state times, what it heard."""

    call: TelegramCall
    states: dict[str, float] = field(default_factory=dict)
    heard: Heard = field(default_factory=Heard)
    answer_at: float | None = None  # incoming: when answer() was called


class GatewaySide:
    """The account, its calls and the tone ticker; the worker's commands are its methods."""

    def __init__(self) -> None:
        self.account: TelegramAccount | None = None
        self.login: Login | None = None
        self.calls: TelegramCalls | None = None
        self.legs: dict[int, Leg] = {}  # the current call with each member
        self.incoming: dict[int, asyncio.Event] = {}
        self.streaming: dict[int, TelegramCall] = {}
        self.pacer = Pacer(TICK_S)
        self._ticker: asyncio.Task[None] | None = None
        self._tone = tone_loop(GATEWAY_HZ)
        self._answers: set[asyncio.Task[None]] = set()

    def _calls(self) -> TelegramCalls:
        if self.calls is None:
            raise RuntimeError("not signed in")
        return self.calls

    # -- commands: sign-in -------------------------------------------------------------

    async def login_phone(
        self, host: str, port: int, key_file: str, data_dir: str, phone: str
    ) -> dict[str, Any]:
        settings = TelegramSettings(
            api_id=SIM_API_ID,
            api_hash=Secret(SIM_API_HASH),
            server=TelegramServer(address=HostPort(host, port), public_key=key_file),
        )
        session = Path(data_dir) / "telegram" / "gateway.session"
        self.account = TelegramAccount(settings, session, server_key=Path(key_file))
        await asyncio.wait_for(self.account.start(), STEP)
        self.login = Login(self.account)
        view = await asyncio.wait_for(self.login.submit_phone(phone), STEP)
        if view.step is not LoginStep.NEED_CODE:
            raise RuntimeError(f"login: {view.step.value}: {view.message}")
        return {}

    async def login_code(self, code: str) -> dict[str, Any]:
        assert self.account is not None and self.login is not None
        view = await asyncio.wait_for(self.login.submit_code(code), STEP)
        if view.step is not LoginStep.LOGGED_IN:
            raise RuntimeError(f"login: {view.step.value}: {view.message}")
        self.calls = TelegramCalls(self.account.client, SETTINGS)
        await asyncio.wait_for(self.calls.start(), STEP)
        self.calls.on_incoming = self._on_incoming
        user = self.account.user
        return {"user_id": user.user_id if user else None}

    async def know(self, members: list[list[int]]) -> dict[str, Any]:
        """The product stores each member's (user_id, access_hash) when they are linked."""
        assert self.account is not None
        for user_id, access_hash in members:
            if await self.account.ensure_known(user_id, access_hash) is None:
                raise RuntimeError(f"the cloud does not know member {user_id}")
        return {}

    # -- commands: calls ---------------------------------------------------------------

    def _leg(self, call: TelegramCall) -> Leg:
        leg = Leg(call)
        self.legs[call.user_id] = leg
        call.on_audio = leg.heard.add

        def on_state(c: TelegramCall) -> None:
            leg.states.setdefault(c.state.value, time.monotonic())
            if c.state is CallState.ACTIVE:
                self._stream(c)
            elif c.state is CallState.ENDED:
                self.streaming.pop(c.user_id, None)

        call.on_state = on_state
        return leg

    @staticmethod
    def _times(leg: Leg) -> dict[str, Any]:
        call = leg.call
        return {
            "created_at": call.created_at,
            "ringing_at": call.ringing_at,
            "active_at": call.active_at,
            "answer_at": leg.answer_at,
            "states": leg.states,
            "state": call.state.value,
            "outcome": call.outcome.value if call.outcome else None,
            "detail": call.detail,
            "redials": call.redials,
        }

    async def call(self, member: int, timeout: float) -> dict[str, Any]:
        """Ring a member and wait for connected audio (the product's outgoing call)."""
        call = await self._calls().call(member)
        leg = self._leg(call)
        if not await call.wait_active(timeout):
            raise RuntimeError(f"call to {member} not active: {self._times(leg)}")
        return self._times(leg)

    def _on_incoming(self, call: TelegramCall) -> None:
        leg = self._leg(call)
        leg.answer_at = time.monotonic()  # the SIP side answers at once (the owner picked up)
        task = asyncio.create_task(call.answer())
        self._answers.add(task)
        task.add_done_callback(self._answers.discard)
        self.incoming.setdefault(call.user_id, asyncio.Event()).set()

    async def wait_incoming(self, member: int, timeout: float) -> dict[str, Any]:
        """Wait for a call from *member* to be offered and answered, then connected."""
        event = self.incoming.setdefault(member, asyncio.Event())
        await asyncio.wait_for(event.wait(), timeout)
        event.clear()
        leg = self.legs[member]
        if not await leg.call.wait_active(timeout):
            raise RuntimeError(f"call from {member} not active: {self._times(leg)}")
        return self._times(leg)

    async def hangup(self, member: int) -> dict[str, Any]:
        leg = self.legs.pop(member, None)
        if leg is not None:
            await asyncio.wait_for(leg.call.hangup(), STEP)
        return {}

    async def hangup_all(self) -> dict[str, Any]:
        for member in list(self.legs):
            await self.hangup(member)
        return {}

    # -- commands: the window ------------------------------------------------------------

    async def counts(self, restart: bool = False) -> dict[str, Any]:
        """Counters now; *restart* starts the pump's lateness record afresh (a window opens)."""
        out = {
            "at": time.monotonic(),
            "cpu_s": time.process_time(),
            "calls": {
                str(m): {
                    "heard": leg.heard.counts(),
                    "frames_out": leg.call.frames_out,
                    "state": leg.call.state.value,
                }
                for m, leg in self.legs.items()
            },
            "pacer": self.pacer.as_dict(),
        }
        if restart:
            self.pacer.restart()
        return out

    async def analyse(self) -> dict[str, Any]:
        return {str(m): leg.heard.analysis() for m, leg in self.legs.items()}

    async def close(self) -> None:
        self.streaming.clear()
        if self._ticker is not None:
            self._ticker.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._ticker
        if self.calls is not None:
            with contextlib.suppress(Exception):
                await asyncio.wait_for(self.calls.close(), STEP)
        if self.account is not None:
            with contextlib.suppress(Exception):
                await asyncio.wait_for(self.account.stop(), STEP)

    # -- the SIP side's audio -------------------------------------------------------------

    def _stream(self, call: TelegramCall) -> None:
        self.streaming[call.user_id] = call
        if self._ticker is None or self._ticker.done():
            self._ticker = asyncio.create_task(self._tick())

    async def _tick(self) -> None:
        """Two 10 ms frames per active call every 20 ms, on an absolute schedule."""
        tone = self._tone
        self.pacer.begin()
        n = 0
        while self.streaming:
            first = (2 * n) % len(tone)
            for call in list(self.streaming.values()):
                call.write_audio(tone[first])
                call.write_audio(tone[first + 1])
            n += 1
            await self.pacer.wait()


async def main() -> None:
    args = worker_args(__doc__.split("\n", 1)[0])
    setup_logging("info")  # as the gateway runs
    side = GatewaySide()
    handlers: dict[str, Handler] = {
        "login_phone": side.login_phone,
        "login_code": side.login_code,
        "know": side.know,
        "call": side.call,
        "wait_incoming": side.wait_incoming,
        "hangup": side.hangup,
        "hangup_all": side.hangup_all,
        "counts": side.counts,
        "analyse": side.analyse,
    }
    try:
        await serve(args.control, handlers)
    finally:
        await side.close()


if __name__ == "__main__":
    asyncio.run(main())

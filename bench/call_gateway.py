"""The gateway of the bridged-calls bench: ``gateway.app.Gateway``, alone in its process.

Not an RFC module.  The process runs what ``python -m gateway`` runs (the
SIP user agent, the ATA lines, the media clock and RTP sessions, the Telegram
account and companion bot, the call manager) from a settings document the
bench passes, and nothing of the far side, so that its CPU clock is the
gateway's alone.  Besides the gateway, only the bench's control socket lives
here; it is idle between the bench's few requests.

The account signs in through the gateway's own ``Login`` (the code comes from
the simulated cloud, through the bench) and members are linked by writing
them to the gateway's store, as onboarding does.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from pathlib import Path
from typing import Any

from tg_wire import Handler, serve, worker_args

from gateway.app import Gateway
from gateway.config import parse_config
from gateway.logs import setup_logging
from gateway.store import Store
from gateway.telegram.login import LoginStep

log = logging.getLogger("bench.gateway")

STEP = 20.0  # bound on one step (start, a login request, stop)


def open_store(data_dir: Path) -> Store:
    data_dir.mkdir(parents=True, exist_ok=True)
    return Store.open(data_dir / "linegram.db")


class GatewayProcess:
    """The gateway and its store; the worker's commands are its methods."""

    def __init__(self) -> None:
        self.gw: Gateway | None = None
        self.store: Store | None = None

    def _gw(self) -> Gateway:
        if self.gw is None:
            raise RuntimeError("the gateway is not started")
        return self.gw

    async def start(self, config: dict[str, Any], run_dir: str) -> dict[str, Any]:
        parsed = parse_config(config, base_dir=Path(run_dir))
        setup_logging(parsed.gateway.log_level)  # as python -m gateway does
        self.store = open_store(parsed.data_dir)
        self.gw = Gateway(parsed, self.store)
        await asyncio.wait_for(self.gw.start(), STEP)
        assert self.gw.ua is not None
        host, port = self.gw.ua.listen
        return {"sip": [host, port]}

    async def login_phone(self, phone: str) -> dict[str, Any]:
        view = await asyncio.wait_for(self._gw().telegram.login.submit_phone(phone), STEP)
        if view.step is not LoginStep.NEED_CODE:
            raise RuntimeError(f"login: {view.step.value}: {view.message}")
        return {}

    async def login_code(self, code: str, timeout: float) -> dict[str, Any]:
        """Finish the sign-in and wait (bounded) until calls and the bot are ready."""
        gw = self._gw()
        view = await asyncio.wait_for(gw.telegram.login.submit_code(code), STEP)
        if view.step is not LoginStep.LOGGED_IN:
            raise RuntimeError(f"login: {view.step.value}: {view.message}")
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        while gw.telegram.calls is None or not gw.telegram.messenger.bot_ready:
            if loop.time() > deadline:
                raise TimeoutError(
                    f"not ready within {timeout:g} s: calls {gw.telegram.calls is not None}, "
                    f"bot {gw.telegram.messenger.bot_ready}"
                )
            await asyncio.sleep(0.05)
        return {}

    async def link(self, members: list[list[Any]]) -> dict[str, Any]:
        """Store each member ``[telegram_id, access_hash, name, username, [lines]]``."""
        store = self.store
        assert store is not None
        for telegram_id, access_hash, name, username, lines in members:
            store.add_member(telegram_id, access_hash, name, username, tuple(lines), time.time())
        return {"members": len(store.members())}

    async def counts(self) -> dict[str, Any]:
        """CPU, the media clock, and per linked member the frames their call sent to Telegram."""
        gw = self._gw()
        assert self.store is not None
        conversations = {}
        for member in self.store.members():
            conv = gw.manager.conversation_of(member.telegram_id)
            if conv is not None:
                conversations[str(member.telegram_id)] = {
                    "frames_out": conv.tg.frames_out,
                    "state": conv.tg.state.value,
                }
        return {
            "at": time.monotonic(),
            "cpu_s": time.process_time(),
            "clock": {"ticks": gw.clock.ticks, "resyncs": gw.clock.resyncs},
            "conversations": conversations,
            "talking": sum(1 for c in gw.manager.active_calls() if c.state == "talking"),
        }

    async def close(self) -> None:
        if self.gw is not None:
            with contextlib.suppress(Exception):
                await asyncio.wait_for(self.gw.stop(), STEP)
        if self.store is not None:
            self.store.close()


async def main() -> None:
    args = worker_args(__doc__.split("\n", 1)[0])
    process = GatewayProcess()
    handlers: dict[str, Handler] = {
        "start": process.start,
        "login_phone": process.login_phone,
        "login_code": process.login_code,
        "link": process.link,
        "counts": process.counts,
    }
    try:
        await serve(args.control, handlers)
    finally:
        await process.close()


if __name__ == "__main__":
    asyncio.run(main())

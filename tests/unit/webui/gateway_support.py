"""A stand-in gateway for the page tests: a real ControlServer on the web UI's socket.

It runs in its own thread and event loop (the Flask test client blocks), on
the same database file the web UI reads, with the real store methods
(``gateway.control.store_methods``) and the real invitations
(``gateway.calls.onboarding.Onboarding``); the methods that need Telegram or
the whole gateway (status, privacy check, logs, restart) are small handlers
whose answers the test sets.
"""

from __future__ import annotations

import asyncio
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, cast

from gateway.calls.api import invitation_methods
from gateway.calls.onboarding import Onboarding
from gateway.control import ControlError, ControlServer, Params, store_methods
from gateway.store import NotFound, Store


@dataclass
class FakeGateway:
    socket: Path
    database: Path
    lines: tuple[str, ...] = ("home", "landline")
    bot_username: str = "linegram_home_bot"
    privacy: dict[str, Any] = field(
        default_factory=lambda: {
            "callable": True,
            "reason": "ok",
            "message": "Home Gateway can call Alice.",
            "guidance": [],
        }
    )
    logs: list[dict[str, Any]] = field(default_factory=list)
    restart_error: ControlError | None = None
    requests: list[tuple[str, dict[str, Any]]] = field(default_factory=list)
    _loop: asyncio.AbstractEventLoop | None = None
    _thread: threading.Thread | None = None
    _stop: asyncio.Event | None = None

    def start(self) -> FakeGateway:
        ready = threading.Event()
        failure: list[BaseException] = []

        def run() -> None:
            loop = asyncio.new_event_loop()
            self._loop = loop
            try:
                loop.run_until_complete(self._serve(ready))
            except BaseException as exc:  # noqa: BLE001 - reported to the test thread
                failure.append(exc)
                ready.set()
            finally:
                loop.close()

        self._thread = threading.Thread(target=run, name="fake-gateway", daemon=True)
        self._thread.start()
        assert ready.wait(10), "the fake gateway did not start"
        if failure:
            raise failure[0]
        return self

    def stop(self) -> None:
        if self._loop is not None and self._stop is not None:
            self._loop.call_soon_threadsafe(self._stop.set)
        if self._thread is not None:
            self._thread.join(10)

    async def _serve(self, ready: threading.Event) -> None:
        self._stop = asyncio.Event()
        store = Store.open(self.database)  # opened in this thread: SQLite objects stay in it
        onboarding = Onboarding(
            store,
            cast(Any, None),  # no messages are sent by invite/revoke
            bot_username=lambda: self.bot_username,
            gateway_username=lambda: "home_gateway",
            lines=lambda: self.lines,
            check_privacy=cast(Any, None),
        )
        methods = store_methods(store)

        async def status(params: dict[str, Any]) -> Any:
            return {
                "lines": [
                    {"name": name, "kind": "provider", "state": "registered", "last_error": None}
                    for name in self.lines
                ],
                "telegram": {
                    "account": "connected",
                    "account_name": "Home Gateway",
                    "bot": "connected",
                    "bot_username": self.bot_username,
                    "calls_ready": True,
                },
                "calls": [],
                "members": len(store.members()),
            }

        async def check_privacy(params: dict[str, Any]) -> Any:
            p = Params(params)
            member_id = p.integer("id")
            p.done()
            if store.member(member_id) is None:
                raise NotFound(f"no member with id {member_id}")
            store.update_member(
                member_id, privacy=self.privacy["reason"], privacy_checked_at=time.time()
            )
            return self.privacy

        async def logs_recent(params: dict[str, Any]) -> Any:
            p = Params(params)
            limit = p.integer("limit", default=200, low=1, high=1000)
            p.optional_str("level")
            p.done()
            return self.logs[-limit:]

        async def restart(params: dict[str, Any]) -> Any:
            Params(params).done()
            if self.restart_error is not None:
                raise self.restart_error
            return {"restarting": True}

        methods.update(
            {
                "status": status,
                "members.check_privacy": check_privacy,
                "logs.recent": logs_recent,
                "gateway.restart": restart,
            }
        )
        # The gateway's own invitation methods, on the real Onboarding.
        methods.update(invitation_methods(store, onboarding, lambda: list(self.lines)))
        # Every request is noted (method, params) for the tests to check.
        for name, handler in list(methods.items()):
            methods[name] = self._noting(name, handler)
        server = ControlServer(self.socket, methods)
        await server.start()
        ready.set()
        try:
            await self._stop.wait()
        finally:
            await server.stop()
            store.close()

    def _noting(self, name: str, handler: Any) -> Any:
        async def noted(params: dict[str, Any]) -> Any:
            self.requests.append((name, dict(params)))
            return await handler(params)

        return noted

    def called(self, method: str) -> list[dict[str, Any]]:
        return [params for name, params in self.requests if name == method]

"""The Telegram half of the gateway in one object: account, bot, messages, login and calls.

`gateway.app.Gateway` owns one `TelegramSide`; `gateway/calls` (the only
package that knows both legs) uses `messenger` and `calls`.  The py-tgcalls
layer needs a signed-in client, and the account replaces its client after a
log-out or an API-app change, so `calls` is (re)built whenever the account
becomes ready on a new client, and is None in between.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from gateway.config import Config
from gateway.telegram.account import AccountStatus, ConnectionState, TelegramAccount
from gateway.telegram.bot import CompanionBot
from gateway.telegram.call import CallSettings, TelegramCall, TelegramCalls
from gateway.telegram.login import Login, save_app_to_config
from gateway.telegram.messages import Messenger

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class TelegramStatus:
    """What the web UI and the LEDs show about the Telegram side."""

    account: str  # ConnectionState value
    account_error: str | None
    account_name: str | None
    bot: str | None  # None when no bot is configured
    bot_error: str | None
    bot_username: str | None
    calls_ready: bool
    calls_in_progress: int


class TelegramSide:
    def __init__(self, config: Config, config_path: Path | None = None) -> None:
        self.account = TelegramAccount.from_config(config)
        self.bot = CompanionBot.from_config(config)
        self.messenger = Messenger(self.account, self.bot)
        self.login = Login(
            self.account, save_app=save_app_to_config(config_path) if config_path else None
        )
        self.call_settings = CallSettings(ring_timeout=float(config.telegram.ring_timeout))
        self.calls: TelegramCalls | None = None
        # Called with every member call to the gateway account (a TelegramCall, RINGING).
        self.on_incoming_call: Callable[[TelegramCall], None] | None = None
        self._calls_client: Any = None
        self._rebuild: asyncio.Task[None] | None = None
        self._unsubscribe: Callable[[], None] | None = None

    async def start(self) -> None:
        self.messenger.start()
        self._unsubscribe = self.account.subscribe(self._on_status)
        await self.account.start()
        if self.bot is not None:
            await self.bot.start()
        self._on_status(self.account.status)

    async def stop(self) -> None:
        if self._unsubscribe is not None:
            self._unsubscribe()
        if self._rebuild is not None:
            self._rebuild.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._rebuild
        await self._close_calls()
        self.messenger.stop()
        if self.bot is not None:
            await self.bot.stop()
        await self.account.stop()

    def status(self) -> TelegramStatus:
        account, bot = self.account.status, self.bot.status if self.bot else None
        return TelegramStatus(
            account=account.state.value,
            account_error=account.error,
            account_name=account.user.name if account.user else None,
            bot=bot.state.value if bot else None,
            bot_error=bot.error if bot else None,
            bot_username=self.bot.username if self.bot and bot and bot.ready else None,
            calls_ready=self.calls is not None,
            calls_in_progress=len(self.calls.calls) if self.calls else 0,
        )

    # -- calls follow the account's client ------------------------------------------------

    def _on_status(self, status: AccountStatus) -> None:
        ready = status.state is ConnectionState.CONNECTED and status.user is not None
        current = self._client_or_none()
        if ready and current is not None and current is not self._calls_client:
            self._schedule(self._open_calls(current))
        elif status.state in (ConnectionState.LOGGED_OUT, ConnectionState.NEEDS_LOGIN):
            if self.calls is not None:
                self._schedule(self._close_calls())

    def _client_or_none(self) -> Any:
        try:
            return self.account.client
        except Exception:
            return None

    def _schedule(self, coro: Any) -> None:
        previous = self._rebuild

        async def run() -> None:
            if previous is not None and not previous.done():
                with contextlib.suppress(Exception, asyncio.CancelledError):
                    await previous
            await coro

        self._rebuild = asyncio.get_running_loop().create_task(run())

    async def _open_calls(self, client: Any) -> None:
        if client is self._calls_client:
            return
        await self._close_calls()
        calls = TelegramCalls(client, self.call_settings)
        calls.on_incoming = self._incoming
        try:
            await calls.start()
        except Exception:
            log.exception("telegram calls could not start; will retry on the next connection")
            return
        self.calls, self._calls_client = calls, client
        log.info("telegram calls ready")

    async def _close_calls(self) -> None:
        calls, self.calls, self._calls_client = self.calls, None, None
        if calls is not None:
            with contextlib.suppress(Exception):
                await asyncio.wait_for(calls.close(), 20)

    def _incoming(self, call: TelegramCall) -> None:
        if self.on_incoming_call is None:
            # Nobody routes member calls yet: refuse rather than ring forever.
            asyncio.get_running_loop().create_task(call.reject(busy=True))
            return
        self.on_incoming_call(call)

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
import os
from collections.abc import Callable
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from gateway.config import Config, ConfigError, Secret, load_config, save_config
from gateway.telegram.account import (
    AccountStatus,
    ConnectionState,
    TelegramAccount,
    remove_session_file,
)
from gateway.telegram.bot import CompanionBot
from gateway.telegram.call import CallSettings, TelegramCall, TelegramCalls
from gateway.telegram.errors import NotReady, TelegramError
from gateway.telegram.login import Login, save_app_to_config
from gateway.telegram.messages import Messenger

log = logging.getLogger(__name__)

BOT_CONNECT_WAIT = 20.0  # seconds a new bot token may take to sign in


class BotTokenRefused(TelegramError):
    """Telegram refused a bot token; ``str()`` says why (nothing was changed)."""


def save_bot_token_to_config(path: Path, token: Secret) -> None:
    """Write ``telegram.bot_token`` into the settings file at *path* (atomically, 0600).

    **Raises** :class:`~gateway.config.ConfigError` naming the file.
    """
    config = load_config(path)
    try:
        save_config(replace(config, telegram=replace(config.telegram, bot_token=token)), path)
    except OSError as exc:
        raise ConfigError(f"{path}: cannot write: {exc.strerror or exc}") from None


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
        # Where a bot token set at run time goes (replace_bot): its session and settings file.
        self.config_path = config_path
        self._bot_session = config.telegram_bot_session
        self._server_key = config.telegram_server_key
        self._bot_lock = asyncio.Lock()
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

    # -- the companion bot, replaced at run time ---------------------------------------------

    async def replace_bot(self, token: Secret, *, wait: float = BOT_CONNECT_WAIT) -> CompanionBot:
        """Use a companion bot with *token* from now on, once Telegram accepted it.

        The new bot signs in beside the current one (on a session file of its
        own); only then is the token saved to the settings file (when the
        gateway has one), the old bot stopped and the new one handed to the
        :attr:`messenger`.  The same token as the running bot's changes nothing.

        **Raises** :class:`BotTokenRefused` (Telegram refused the token),
        :class:`~gateway.telegram.errors.NotReady` (no API app yet),
        :class:`~gateway.telegram.errors.TelegramError` (no answer within *wait*
        seconds) or :class:`~gateway.config.ConfigError` (the settings file
        cannot be read or written); in every case nothing was changed.
        """
        async with self._bot_lock:
            current = self.bot
            if current is not None and current.settings.bot_token == token and current.status.ready:
                self._save_token(token)
                return current
            if not self.account.has_app:
                raise NotReady("Set up the API app first: the bot signs in with it.")
            settings = replace(self.account.settings, bot_token=token)
            trial_path = self._bot_session.with_name(
                self._bot_session.name.removesuffix(".session") + "-new.session"
            )
            remove_session_file(trial_path)
            payloads = current.payloads if current is not None else None
            trial = CompanionBot(
                settings, trial_path, server_key=self._server_key, payloads=payloads
            )
            try:
                await trial.start()
                status = await trial.wait_until(lambda s: s.ready or s.refused, timeout=wait)
                if status.refused:
                    raise BotTokenRefused(status.error or "Telegram refused the token.")
                self._save_token(token)
            except BaseException as exc:
                error = trial.status.error
                await trial.stop()
                remove_session_file(trial_path)
                if isinstance(exc, TimeoutError):
                    reason = f" ({error})" if error else ""
                    raise TelegramError(
                        f"Telegram did not confirm the bot within {wait:g} s{reason}."
                    ) from None
                raise
            # The trial's signed-in session becomes the bot's session file.
            if current is not None:
                await current.stop()
            await trial.stop()
            remove_session_file(self._bot_session)
            for suffix in ("", "-journal", "-wal", "-shm"):
                moved = trial_path.with_name(trial_path.name + suffix)
                if moved.exists():
                    os.replace(moved, self._bot_session.with_name(self._bot_session.name + suffix))
            bot = CompanionBot(
                settings, self._bot_session, server_key=self._server_key, payloads=trial.payloads
            )
            self.bot = bot
            self.messenger.use_bot(bot)
            await bot.start()
            try:
                # The session is signed in already: this is one get_me, not a sign-in.
                await bot.wait_until(lambda s: s.ready or s.refused, timeout=min(wait, 5.0))
            except TimeoutError:
                log.warning("telegram bot: not connected again yet after the token change")
            log.info("telegram bot: now @%s", bot.username or trial.username)
            return bot

    def _save_token(self, token: Secret) -> None:
        if self.config_path is not None:
            save_bot_token_to_config(self.config_path, token)

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

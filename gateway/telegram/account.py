"""The gateway's Telegram user account: one Telethon client, its session file, its connection.

Not an RFC module: this wraps Telethon 1.45 (MTProto 2.0, TL layer 229).

* **Session file.** A Telethon ``SQLiteSession`` under the data directory. It
  holds the account's authorization key, so it is created 0600 before SQLite
  opens it (SQLite gives its journal the database's mode) in a 0700 directory;
  logging out deletes it.
* **Connection.** Telethon reconnects by itself after a network loss, but only
  ``connection_retries`` times at a fixed ``retry_delay``, and then stays down.
  :class:`TelegramConnection` lets Telethon handle short blips and, once it
  gives up, connects again with growing delays (1 s ... 60 s), forever, until
  :meth:`~TelegramConnection.stop`.  Telethon has no connection events, so the
  sender's reconnect start and its "reconnected" callback are hooked, and a
  small watcher compares the transport with the published state.
* **State.** :class:`AccountStatus` (state, last error, seconds to the next
  retry, the signed-in user) is what the web UI and the LEDs read; listeners
  registered with :meth:`~TelegramConnection.subscribe` hear every change.
* **Flood waits.** Telethon sleeps through FLOOD_WAIT up to
  ``flood_sleep_threshold`` seconds; above that the error surfaces and
  :func:`gateway.telegram.errors.describe` says how long to wait.
* **Server override.** ``[telegram.server]`` points the clients at another
  MTProto server (the simulated cloud): its RSA key is registered with
  ``telethon.crypto.rsa.add_key`` and the session's DC address is set to it.

The companion bot (:mod:`gateway.telegram.bot`) is a second
:class:`TelegramConnection`; py-tgcalls (:mod:`gateway.telegram.call`) runs on
:attr:`TelegramAccount.client`.
"""

from __future__ import annotations

import asyncio
import enum
import logging
import os
import sqlite3
import stat
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any, cast

import rsa
from telethon import TelegramClient
from telethon import errors as tg
from telethon.crypto import rsa as telethon_rsa
from telethon.sessions import SQLiteSession
from telethon.tl import functions, types

from gateway.config import Config, ConfigError, Secret, TelegramSettings
from gateway.logs import kv, register_secret
from gateway.telegram.errors import NotReady, describe

__all__ = [
    "BACKOFF",
    "FLOOD_SLEEP_THRESHOLD",
    "AccountStatus",
    "AccountUser",
    "ConnectionState",
    "TelegramAccount",
    "TelegramConnection",
    "load_server_key",
    "prepare_session_file",
]

log = logging.getLogger(__name__)

# Flood waits up to this many seconds are slept through by Telethon; longer
# ones reach the user ("wait 5 min") instead of freezing a login page.
FLOOD_SLEEP_THRESHOLD = 20
# Delays between our own reconnection attempts once Telethon gave up; the last repeats.
BACKOFF: tuple[float, ...] = (1.0, 2.0, 4.0, 8.0, 15.0, 30.0, 60.0)
# Telethon's own retries after a drop, at TELETHON_RETRY_DELAY each, before BACKOFF takes over.
TELETHON_RETRIES = 2
TELETHON_RETRY_DELAY = 1
CONNECT_TIMEOUT = 10  # one TCP connect
CONNECT_DEADLINE = 90.0  # a whole Telethon connect() (handshake, retries, initConnection)
WATCH_INTERVAL = 1.0
STABLE_AFTER = 10.0  # a connection that lasted this long resets the back-off
SIM_DC_ID = 2  # the DC id an overriding server is filed under (the simulated cloud's only DC)


class ConnectionState(enum.Enum):
    """What the dashboard and the Telegram LED show."""

    DISCONNECTED = "disconnected"  # stopped, or waiting to retry (see AccountStatus.retry_in)
    CONNECTING = "connecting"  # connecting or reconnecting after a loss
    CONNECTED = "connected"  # connected and signed in: calls and messages work
    NEEDS_LOGIN = "needs_login"  # no account signed in yet (or no API app configured)
    LOGGED_OUT = "logged_out"  # was signed in; logged out here or from another device


@dataclass(frozen=True)
class AccountUser:
    """The signed-in account (or bot) as Telegram reports it."""

    user_id: int
    first_name: str = ""
    last_name: str = ""
    username: str = ""
    phone: str = ""
    bot: bool = False

    @property
    def name(self) -> str:
        """Display name: first and last name, else @username, else the id."""
        full = " ".join(p for p in (self.first_name, self.last_name) if p)
        return full or (f"@{self.username}" if self.username else str(self.user_id))

    @classmethod
    def from_user(cls, user: Any) -> AccountUser:
        return cls(
            user_id=int(user.id),
            first_name=user.first_name or "",
            last_name=user.last_name or "",
            username=user.username or "",
            phone=user.phone or "",
            bot=bool(user.bot),
        )


@dataclass(frozen=True)
class AccountStatus:
    """A snapshot of one connection; compare *state*, show *error* to the user."""

    state: ConnectionState
    error: str | None = None  # the last problem, as a sentence for the user
    retry_in: float | None = None  # DISCONNECTED: seconds until the next attempt
    user: AccountUser | None = None  # who is signed in (kept while reconnecting)
    since: float = 0.0  # time.time() of the change

    @property
    def ready(self) -> bool:
        """Connected and signed in."""
        return self.state is ConnectionState.CONNECTED

    @property
    def refused(self) -> bool:
        """Disconnected for good: Telegram refused (see ``error``); no retry is planned."""
        return self.state is ConnectionState.DISCONNECTED and self.retry_in is None


StatusListener = Callable[[AccountStatus], None]
_KEEP = object()  # AccountStatus.error: keep the current text
ClientListener = Callable[[Any], None]


def prepare_session_file(path: Path) -> None:
    """Create *path* (mode 0600) and its directory (0700) before SQLite opens it.

    An existing file or directory readable by others is tightened.  SQLite
    creates its ``-journal`` with the database's mode, so the journal stays
    private too.
    """
    directory = path.parent
    directory.mkdir(mode=0o700, parents=True, exist_ok=True)
    if stat.S_IMODE(directory.stat().st_mode) & 0o077:
        os.chmod(directory, 0o700)
    fd = os.open(path, os.O_CREAT | os.O_RDWR, 0o600)
    try:
        if stat.S_IMODE(os.fstat(fd).st_mode) != 0o600:
            os.fchmod(fd, 0o600)
    finally:
        os.close(fd)
    journal = path.with_name(path.name + "-journal")
    if journal.exists():
        os.chmod(journal, 0o600)


def remove_session_file(path: Path) -> None:
    """Delete the session file and any SQLite side file next to it."""
    for suffix in ("", "-journal", "-wal", "-shm"):
        path.with_name(path.name + suffix).unlink(missing_ok=True)


def load_server_key(path: Path) -> str:
    """The PKCS#1 PEM of the RSA public key in *path* (PKCS#1 or SubjectPublicKeyInfo).

    **Raises** :class:`~gateway.config.ConfigError` naming ``telegram.server.public_key``.
    """
    field = "telegram.server.public_key"
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise ConfigError(f"{field}: cannot read {path}: {exc.strerror}") from None
    key: rsa.PublicKey | None = None
    for loader in (rsa.PublicKey.load_pkcs1, rsa.PublicKey.load_pkcs1_openssl_pem):
        try:
            key = loader(data)
            break
        except Exception:  # rsa/pyasn1 raise several kinds for a foreign format
            continue
    if key is None:
        raise ConfigError(f"{field}: {path} is not an RSA public key in PEM format")
    pem: bytes = key.save_pkcs1()
    return pem.decode("ascii")


def _transport_up(client: Any) -> bool:
    """True while the TCP connection under *client* is up and not being replaced."""
    sender = getattr(client, "_sender", None)
    check = getattr(sender, "_transport_connected", None)
    if callable(check):
        return bool(check())
    return bool(client.is_connected())


class TelegramConnection:
    """One Telethon client with a private session file, reconnecting until stopped.

    Subclasses decide what "signed in" means (:meth:`_authorize`).  The client
    is created by :meth:`start` and replaced (never reused) after a log-out or
    an API app change; :meth:`on_client` listeners hear about each new one.
    """

    kind = "telegram"

    def __init__(
        self,
        settings: TelegramSettings,
        session_path: Path,
        *,
        server_key: Path | None = None,
        flood_sleep_threshold: int = FLOOD_SLEEP_THRESHOLD,
        backoff: Sequence[float] = BACKOFF,
        watch_interval: float = WATCH_INTERVAL,
    ) -> None:
        """*settings* give the API app and ``[telegram.server]``; *server_key* its PEM file."""
        if settings.server is not None and server_key is None:
            raise ConfigError("telegram.server.public_key: required with telegram.server")
        self.settings = settings
        self.session_path = session_path
        self._api_id = settings.api_id
        self._api_hash = settings.api_hash
        register_secret(settings.api_hash.reveal())
        self._server = settings.server
        self._server_pem = load_server_key(server_key) if server_key is not None else None
        self._flood_sleep_threshold = flood_sleep_threshold
        self._backoff = tuple(backoff) or BACKOFF
        self._watch_interval = watch_interval
        self._client: Any = None
        self._status = AccountStatus(ConnectionState.DISCONNECTED, since=time.time())
        # The state to show whenever the transport is up (set by _authorize, log-in, log-out),
        # with its explanation (e.g. "logged out from another device").
        self._online_state = ConnectionState.NEEDS_LOGIN
        self._online_error: str | None = None
        self._user: AccountUser | None = None
        self._listeners: list[StatusListener] = []
        self._client_listeners: list[ClientListener] = []
        self._waiters: list[
            tuple[Callable[[AccountStatus], bool], asyncio.Future[AccountStatus]]
        ] = []
        # The exception behind the last refusal that stopped the reconnecting, if any.
        self.refusal: BaseException | None = None
        self._task: asyncio.Task[None] | None = None
        self._running = False

    # -- what others read ---------------------------------------------------------

    @property
    def status(self) -> AccountStatus:
        return self._status

    @property
    def state(self) -> ConnectionState:
        return self._status.state

    @property
    def user(self) -> AccountUser | None:
        """The signed-in user, once known."""
        return self._user

    @property
    def has_app(self) -> bool:
        """True when an API app (api_id and api_hash) is configured."""
        return bool(self._api_id and self._api_hash)

    @property
    def client(self) -> Any:
        """The current Telethon ``TelegramClient``.

        **Raises** :class:`~gateway.telegram.errors.NotReady` before :meth:`start`
        or without an API app.
        """
        if self._client is None:
            raise NotReady("Telegram is not set up yet (no API app, or not started).")
        return self._client

    def subscribe(self, listener: StatusListener) -> Callable[[], None]:
        """Call *listener(status)* on every change; returns the unsubscribe function."""
        self._listeners.append(listener)
        return lambda: self._listeners.remove(listener) if listener in self._listeners else None

    def on_client(self, listener: ClientListener) -> Callable[[], None]:
        """Call *listener(client)* for every new Telethon client, now for the current one.

        Event handlers live on a client, so whoever adds handlers (messages,
        py-tgcalls) registers here to add them again after a log-out.
        """
        self._client_listeners.append(listener)
        if self._client is not None:
            listener(self._client)
        return lambda: (
            self._client_listeners.remove(listener) if listener in self._client_listeners else None
        )

    async def wait_for(self, *states: ConnectionState, timeout: float) -> AccountStatus:
        """Wait until the state is one of *states*.  **Raises** ``TimeoutError``."""
        wanted = frozenset(states)
        return await self.wait_until(lambda status: status.state in wanted, timeout=timeout)

    async def wait_until(
        self, predicate: Callable[[AccountStatus], bool], *, timeout: float
    ) -> AccountStatus:
        """Wait until *predicate(status)* holds.  **Raises** ``TimeoutError``."""
        if predicate(self._status):
            return self._status
        future: asyncio.Future[AccountStatus] = asyncio.get_running_loop().create_future()
        entry = (predicate, future)
        self._waiters.append(entry)
        try:
            async with asyncio.timeout(timeout):
                return await future
        finally:
            if entry in self._waiters:
                self._waiters.remove(entry)

    # -- life ------------------------------------------------------------------------

    async def start(self) -> None:
        """Create the client and keep it connected in the background."""
        if self._running:
            return
        self._running = True
        if not self.has_app:
            self._set(ConnectionState.NEEDS_LOGIN, error=None)
            return
        self._launch()

    async def stop(self) -> None:
        """Disconnect and stop reconnecting; returns when the client is closed."""
        self._running = False
        await self._stop_client()
        self._set(ConnectionState.DISCONNECTED, error=None)

    async def _stop_client(self) -> None:
        task, self._task = self._task, None
        if task is not None:
            task.cancel()
            await asyncio.gather(task, return_exceptions=True)
        if self._client is not None:
            try:
                await self._client.disconnect()
            except Exception:  # disconnect must not stop a shutdown
                log.exception("%s: error while disconnecting", self.kind)

    async def ensure_client(self) -> None:
        """Create and connect a client if there is none (after a log-out, or a late app)."""
        if self._running and self._client is None and self.has_app:
            self._launch()

    async def _restart_client(self) -> None:
        """Replace the client (new credentials, or after a log-out) and connect it."""
        await self._stop_client()
        self._client = None
        if not self._running:
            return
        if not self.has_app:
            self._set(ConnectionState.NEEDS_LOGIN, error=None)
            return
        self._launch()

    def _launch(self) -> None:
        """A new client and its supervisor; CONNECTING at once, so nobody reads a stale state."""
        self.refusal = None
        self._new_client()
        self._set(ConnectionState.CONNECTING, retry_in=None)
        self._task = asyncio.create_task(self._supervise(), name=f"{self.kind}-connection")

    def _new_client(self) -> None:
        session = self._open_session()
        use_ipv6 = False
        if self._server is not None and self._server_pem is not None:
            # Demo mode: trust the server's key and file it as the only DC.
            telethon_rsa.add_key(self._server_pem, old=False)
            host, port = self._server.address.host, self._server.address.port
            use_ipv6 = ":" in host
            session.set_dc(SIM_DC_ID, host, port)
            session.save()
        client = TelegramClient(
            session,
            self._api_id,
            self._api_hash.reveal(),
            use_ipv6=use_ipv6,
            timeout=CONNECT_TIMEOUT,
            connection_retries=TELETHON_RETRIES,
            retry_delay=TELETHON_RETRY_DELAY,
            auto_reconnect=True,
            # py-tgcalls answers calls from inside update handlers and waits for
            # further updates there: sequential updates would deadlock it.
            sequential_updates=False,
            flood_sleep_threshold=self._flood_sleep_threshold,
            device_model="Linegram gateway",
            system_version="Linegram",
            app_version=_app_version(),
        )
        self._instrument(client)
        self._client = client
        for listener in list(self._client_listeners):
            try:
                listener(client)
            except Exception:
                log.exception("%s: client listener failed", self.kind)

    def _open_session(self) -> Any:
        """The SQLite session; a damaged file is moved aside (``.damaged``) for a fresh one."""
        prepare_session_file(self.session_path)
        try:
            return SQLiteSession(str(self.session_path))
        except sqlite3.DatabaseError as exc:
            damaged = self.session_path.with_name(self.session_path.name + ".damaged")
            log.warning(
                "%s: session file %s is damaged (%s); moved to %s, log in again",
                self.kind,
                self.session_path,
                exc,
                damaged.name,
            )
            os.replace(self.session_path, damaged)
            remove_session_file(self.session_path)
            self._session_lost()
            prepare_session_file(self.session_path)
            return SQLiteSession(str(self.session_path))

    def _instrument(self, client: Any) -> None:
        """Hook Telethon's reconnection (1.45 internals: MTProtoSender) to publish it."""
        sender = client._sender
        start_reconnect = sender._start_reconnect

        def on_start_reconnect(error: BaseException | None) -> None:
            if sender._user_connected and not sender._reconnecting and client is self._client:
                text = describe(error) if error is not None else "Connection to Telegram lost."
                self._set(ConnectionState.CONNECTING, error=text)
            start_reconnect(error)

        async def on_reconnected() -> None:
            # Telethon's own callback only calls get_me() to resume updates; ours
            # does the same through _authorize, which also notices a session
            # that was ended while we were away.
            if client is not self._client:
                return
            try:
                async with asyncio.timeout(CONNECT_TIMEOUT):
                    await self._authorize(client)
            except Exception as exc:
                log.warning("%s: check after reconnecting failed: %s", self.kind, describe(exc))
            if client is self._client:
                self._set(self._online_state, error=self._online_error)

        sender._start_reconnect = on_start_reconnect
        sender._auto_reconnect_callback = on_reconnected

    async def _supervise(self) -> None:
        client = self._client
        attempt = 0
        while self._running and client is self._client:
            self._set(ConnectionState.CONNECTING, retry_in=None)
            try:
                async with asyncio.timeout(CONNECT_DEADLINE):
                    await client.connect()
                    await self._authorize(client)
            except tg.AuthKeyNotFound:
                # The server forgot our key (a reset cloud): the session is useless.
                log.warning("%s: the server does not know this session; starting afresh", self.kind)
                await self._drop(client)
                await self._forget_session(client)
                client = self._client
                continue
            except tg.FloodWaitError as exc:
                await self._drop(client)
                delay = float(exc.seconds)
                self._set(ConnectionState.DISCONNECTED, error=describe(exc), retry_in=delay)
                await asyncio.sleep(delay)
                continue
            except tg.RPCError as exc:
                # Refused for good (revoked bot token, banned account): retrying cannot help.
                self.refusal = exc
                await self._drop(client)
                self._set(ConnectionState.DISCONNECTED, error=describe(exc), retry_in=None)
                log.error("%s: %s", self.kind, describe(exc))
                return
            except Exception as exc:  # network down, handshake cut, server silent
                await self._drop(client)
                delay = self._backoff[min(attempt, len(self._backoff) - 1)]
                attempt += 1
                self._set(ConnectionState.DISCONNECTED, error=describe(exc), retry_in=delay)
                log.warning(
                    "%s: cannot connect: %s",
                    self.kind,
                    describe(exc),
                    extra=kv(attempt=attempt, retry_in=delay),
                )
                await asyncio.sleep(delay)
                continue
            self._set(self._online_state, error=self._online_error, retry_in=None)
            connected_at = asyncio.get_running_loop().time()
            watcher = asyncio.create_task(self._watch(client), name=f"{self.kind}-watch")
            try:
                await client.disconnected
                error = "Connection to Telegram lost."
            except Exception as exc:  # Telethon resolves it with its last connection error
                error = describe(exc)
            finally:
                watcher.cancel()
                await asyncio.gather(watcher, return_exceptions=True)
            if not self._running or client is not self._client:
                return
            log.warning("%s: disconnected: %s", self.kind, error)
            await self._drop(client)
            if asyncio.get_running_loop().time() - connected_at >= STABLE_AFTER:
                attempt = 0
                self._set(ConnectionState.CONNECTING, error=error)
                continue
            # Lost again right after connecting: back off instead of hammering.
            delay = self._backoff[min(attempt, len(self._backoff) - 1)]
            attempt += 1
            self._set(ConnectionState.DISCONNECTED, error=error, retry_in=delay)
            await asyncio.sleep(delay)

    async def _forget_session(self, client: Any) -> None:
        """Delete an unusable session file and continue with a fresh client."""
        try:
            await client.disconnect()
        except Exception:
            log.debug("%s: disconnect of a dead session failed", self.kind, exc_info=True)
        remove_session_file(self.session_path)
        self._session_lost()
        self._new_client()

    def _session_lost(self) -> None:
        """The signed-in session is gone (subclasses note it)."""

    async def _drop(self, client: Any) -> None:
        """Cancel a dead client's update and keep-alive tasks before it connects again."""
        try:
            await client._disconnect()
        except Exception:
            log.debug("%s: cleanup after disconnect failed", self.kind, exc_info=True)

    async def _watch(self, client: Any) -> None:
        """Catch what the hooks miss: a transport down (or back up) for a few checks."""
        down = up = 0
        while True:
            await asyncio.sleep(self._watch_interval)
            if client is not self._client:
                return
            transport = _transport_up(client)
            state = self._status.state
            down = down + 1 if not transport and state is self._online_state else 0
            up = up + 1 if transport and state is ConnectionState.CONNECTING else 0
            if down >= 2:
                self._set(ConnectionState.CONNECTING, error="Connection to Telegram lost.")
            elif up >= 3:  # the reconnect callback normally does this first
                self._set(self._online_state, error=self._online_error)

    async def _authorize(self, client: Any) -> None:
        """After each connect: find out who is signed in and set ``_online_state``."""
        raise NotImplementedError

    # -- state -----------------------------------------------------------------------

    def _set(
        self,
        state: ConnectionState,
        *,
        error: str | None | object = _KEEP,
        retry_in: float | None = None,
    ) -> None:
        """Publish a new status (no-op when nothing changed); *error* defaults to the last one."""
        new_error = self._status.error if error is _KEEP else cast("str | None", error)
        old = self._status
        if (old.state, old.error, old.retry_in, old.user) == (
            state,
            new_error,
            retry_in,
            self._user,
        ):
            return
        self._status = AccountStatus(
            state, error=new_error, retry_in=retry_in, user=self._user, since=time.time()
        )
        if old.state is not state:
            fields = kv(error=new_error) if new_error else None
            log.info("%s: %s", self.kind, state.value, extra=fields)
        for listener in list(self._listeners):
            try:
                listener(self._status)
            except Exception:
                log.exception("%s: status listener failed", self.kind)
        for predicate, future in list(self._waiters):
            if not future.done() and predicate(self._status):
                future.set_result(self._status)


def _app_version() -> str:
    from gateway.config import default_user_agent

    return default_user_agent().partition("/")[2] or "0"


class TelegramAccount(TelegramConnection):
    """The gateway's Telegram *user* account (the one that calls).

    The login (:class:`gateway.telegram.login.Login`) drives the sign-in
    through :attr:`client`, then reports with :meth:`signed_in`.
    """

    kind = "telegram account"

    def __init__(self, settings: TelegramSettings, session_path: Path, **options: Any) -> None:
        """*options* are :class:`TelegramConnection`'s (``server_key``, ``backoff``...)."""
        super().__init__(settings, session_path, **options)
        self._was_signed_in = False

    @classmethod
    def from_config(cls, config: Config, **options: Any) -> TelegramAccount:
        """The account as ``[telegram]`` in *config* describes it."""
        return cls(
            config.telegram,
            config.telegram_session,
            server_key=config.telegram_server_key,
            **options,
        )

    # -- sign-in ---------------------------------------------------------------------

    async def _authorize(self, client: Any) -> None:
        me = await client.get_me()  # None when no account is signed in on this session
        if me is not None:
            self._user = AccountUser.from_user(me)
            self._online_state, self._online_error = ConnectionState.CONNECTED, None
            return
        if self._user is not None or self._session_knew_user(client):
            # Signed in before, not now: the session was ended elsewhere.
            self._was_signed_in = True
            self._online_error = describe(tg.SessionRevokedError(request=None))
        self._user = None
        self._online_state = (
            ConnectionState.LOGGED_OUT if self._was_signed_in else ConnectionState.NEEDS_LOGIN
        )

    @staticmethod
    def _session_knew_user(client: Any) -> bool:
        # Telethon files its own user under id 0 once signed in (see its connect()).
        try:
            client.session.get_input_entity(0)
        except (ValueError, KeyError):
            return False
        return True

    def signed_in(self, user: Any) -> None:
        """The login finished: *user* (a Telethon ``User``) is the gateway account."""
        self._user = AccountUser.from_user(user)
        self._was_signed_in = True
        self._online_state, self._online_error = ConnectionState.CONNECTED, None
        self._set(ConnectionState.CONNECTED, error=None)
        log.info("telegram account: signed in", extra=kv(user_id=self._user.user_id))

    def _session_lost(self) -> None:
        if self._user is not None:
            self._was_signed_in = True
            self._online_error = "Telegram no longer knows the gateway's session. Log in again."
        self._user = None
        self._online_state = (
            ConnectionState.LOGGED_OUT if self._was_signed_in else ConnectionState.NEEDS_LOGIN
        )

    def note_error(self, exc: BaseException) -> None:
        """Learn from a failed request: an unauthorized session means logged out."""
        if isinstance(exc, tg.UnauthorizedError) and not isinstance(
            exc, tg.SessionPasswordNeededError
        ):
            self._user = None
            self._was_signed_in = True
            self._online_state, self._online_error = ConnectionState.LOGGED_OUT, describe(exc)
            self._set(ConnectionState.LOGGED_OUT, error=describe(exc))

    async def set_app(self, api_id: int, api_hash: Secret) -> None:
        """Use another API app (the login's first step); reconnects with a new client."""
        register_secret(api_hash.reveal())
        same = (api_id, api_hash) == (self._api_id, self._api_hash)
        if same and self._client is not None and not self._status.refused:
            return  # a refused client is retried even with the same app
        self._api_id, self._api_hash = api_id, api_hash
        self.settings = replace(self.settings, api_id=api_id, api_hash=api_hash)
        await self._restart_client()

    async def log_out(self) -> None:
        """Sign out at Telegram and delete the session file.

        The account then has no client (state LOGGED_OUT) until the next login
        asks for one (:meth:`ensure_client`), which starts a fresh session file.
        """
        client = self._client
        if client is not None and self._user is not None and _transport_up(client):
            try:
                async with asyncio.timeout(CONNECT_TIMEOUT):
                    await client(functions.auth.LogOutRequest())
            except (tg.RPCError, OSError, TimeoutError) as exc:
                # The local session goes anyway; Telegram lists it until it expires.
                log.warning("telegram account: log-out request failed: %s", describe(exc))
        await self._stop_client()
        self._client = None
        remove_session_file(self.session_path)
        self._user = None
        self._was_signed_in = True
        self._online_state, self._online_error = ConnectionState.LOGGED_OUT, None
        log.info("telegram account: logged out; session file removed")
        self._set(ConnectionState.LOGGED_OUT, error=None)

    # -- members ---------------------------------------------------------------------

    @staticmethod
    def input_user(user_id: int, access_hash: int) -> Any:
        """``InputUser`` for a member stored as (user_id, access_hash)."""
        return types.InputUser(user_id=user_id, access_hash=access_hash)

    @staticmethod
    def input_peer(user_id: int, access_hash: int) -> Any:
        """``InputPeerUser`` for a member stored as (user_id, access_hash)."""
        return types.InputPeerUser(user_id=user_id, access_hash=access_hash)

    def remember(self, user_id: int, access_hash: int) -> None:
        """Put a stored member into the session so ``get_input_entity(user_id)`` works.

        No network: the (id, hash) pair goes into the session's entity table
        (what py-tgcalls and Telethon look up after a restart).
        """
        self.client.session.process_entities([self.input_peer(user_id, access_hash)])

    async def ensure_known(self, user_id: int, access_hash: int) -> Any:
        """:meth:`remember` the member and refresh them with users.getUsers.

        **Returns** the Telethon ``User`` or ``None`` when Telegram does not
        know the pair (deleted account, wrong hash).
        """
        self.remember(user_id, access_hash)
        try:
            users = await self.client(
                functions.users.GetUsersRequest([self.input_user(user_id, access_hash)])
            )
        except (tg.UserIdInvalidError, tg.PeerIdInvalidError):
            return None
        except tg.RPCError as exc:
            self.note_error(exc)
            raise
        user = users[0] if users else None
        return user if isinstance(user, types.User) else None

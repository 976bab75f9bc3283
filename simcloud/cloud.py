"""The cloud's RPC core: who is calling, which handler answers, and the errors it raises.

The MTProto server (`simcloud.server`) decrypts a request, strips the
invokeWithLayer/initConnection wrappers and calls `Cloud.invoke`; handler
modules (`auth`, `users`, `messages`, `bots`, `phone`, ...) register one async
function per request type with `@handler(RequestType)`.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Protocol

if TYPE_CHECKING:
    from simcloud.bots import BotQueries
    from simcloud.history import History
    from simcloud.phone import Phone
    from simcloud.state import State
    from simcloud.updates import UpdateHub

log = logging.getLogger(__name__)


class RpcError(Exception):
    """An rpc_error as Telegram sends it: an HTTP-like code and an UPPER_CASE message."""

    def __init__(self, code: int, message: str) -> None:
        super().__init__(f"{code} {message}")
        self.code = code
        self.message = message


def bad_request(message: str) -> RpcError:
    return RpcError(400, message)


def flood_wait(seconds: int) -> RpcError:
    return RpcError(420, f"FLOOD_WAIT_{seconds}")


class SessionSink(Protocol):
    """A live client session as the server exposes it to the cloud."""

    auth_key_id: int
    session_id: int

    def push(self, updates: Any) -> None:
        """Send an Updates-family TL object to this client (no-op once closed)."""

    def close(self) -> None:
        """Drop the TCP connection under this session (fault injection)."""


@dataclass
class Caller:
    """The origin of one request: its auth key, session and (after sign-in) user."""

    auth_key_id: int
    session: SessionSink
    layer: int = 0
    api_id: int = 0
    no_updates: bool = False

    @property
    def session_id(self) -> int:
        return self.session.session_id


Handler = Callable[["Cloud", Caller, Any], Awaitable[Any]]
_HANDLERS: dict[type, Handler] = {}


def handler(request_type: type) -> Callable[[Handler], Handler]:
    """Register `fn` as the answer to `request_type` (a Telethon TLRequest class)."""

    def register(fn: Handler) -> Handler:
        if request_type in _HANDLERS:
            raise RuntimeError(f"two handlers for {request_type.__name__}")
        _HANDLERS[request_type] = fn
        return fn

    return register


@dataclass
class FloodRule:
    """Answer the next `times` requests of `request_name` with FLOOD_WAIT_`seconds`."""

    request_name: str
    seconds: int
    times: int = 1


@dataclass
class Faults:
    """Faults a test injects; each is consumed as it fires."""

    flood: list[FloodRule] = field(default_factory=list)

    def take_flood(self, request_name: str) -> int | None:
        for rule in self.flood:
            if rule.request_name == request_name and rule.times > 0:
                rule.times -= 1
                if rule.times == 0:
                    self.flood.remove(rule)
                return rule.seconds
        return None


class Cloud:
    """State of the simulated Telegram plus the request dispatcher.

    `simcloud.world.build_cloud` attaches the subsystems declared below.
    """

    state: State
    updates: UpdateHub
    history: History
    bot_queries: BotQueries
    phone: Phone

    def __init__(self) -> None:
        self.faults = Faults()
        # auth_key_id -> 256-byte key; created by the server's handshake.
        self.auth_keys: dict[int, bytes] = {}
        self.sessions: set[SessionSink] = set()
        self.request_log: list[str] = []
        # (host, port) the server listens on; help.getConfig advertises it as the only DC.
        self.server_address: tuple[str, int] | None = None

    def attach(self, session: SessionSink) -> None:
        self.sessions.add(session)

    def detach(self, session: SessionSink) -> None:
        self.sessions.discard(session)

    def sessions_of_key(self, auth_key_id: int) -> list[SessionSink]:
        return [s for s in self.sessions if s.auth_key_id == auth_key_id]

    def drop_connections(self, auth_key_id: int | None = None) -> int:
        """Fault: close every connection (or those of one auth key); returns how many."""
        victims = [
            s for s in list(self.sessions) if auth_key_id is None or s.auth_key_id == auth_key_id
        ]
        for s in victims:
            s.close()
        return len(victims)

    async def invoke(self, caller: Caller, request: Any) -> Any:
        name = type(request).__name__
        self.request_log.append(name)
        seconds = self.faults.take_flood(name)
        if seconds is not None:
            raise flood_wait(seconds)
        fn = _HANDLERS.get(type(request))
        if fn is None:
            log.warning("simcloud: no handler for %s", name)
            raise RpcError(400, "METHOD_NOT_IMPLEMENTED_IN_SIMCLOUD")
        return await fn(self, caller, request)

"""SIP over UDP and TCP (RFC 3261 §18) around the sans-IO :class:`TransactionLayer`.

The only SIP module that opens sockets.  It feeds datagrams and framed
stream messages to the layer, hands the events to one callback, sends what
the layer queued and re-arms a single ``loop.call_at`` timer at the layer's
next deadline (aioquic's adapter).  Nothing a peer sends can raise out of
:meth:`datagram_received` or a connection's ``data_received``.

What goes over TCP is decided by the message itself: its top Via says
``SIP/2.0/TCP``.  Responses go back on the connection the request came in
on (§18.2.2); requests reuse a connection to their destination or open one.
"""

from __future__ import annotations

import asyncio
import logging
import re
from collections.abc import Callable
from typing import Any, TypeVar

from gateway.errors import SipParseError, TransactionTimeout
from gateway.sip.framing import Ping, StreamFramer
from gateway.sip.message import (
    SipRequest,
    SipResponse,
    can_answer,
    make_response,
    new_tag,
    parse_message,
)
from gateway.sip.transaction import (
    Address,
    ClientTransaction,
    Event,
    ResponseReceived,
    ServerTransaction,
    TransactionLayer,
    TransactionTimedOut,
    response_destination,
    set_received,
)

__all__ = ["Screen", "SipTransport"]

log = logging.getLogger(__name__)

Screen = Callable[[SipRequest | SipResponse, Address], bool]
_Waiter = tuple["asyncio.Future[SipResponse]", Callable[[SipResponse], None] | None]
_SECRET = re.compile(rb"^((?:Proxy-)?Authorization *:).*(?:\r?\n[ \t].*)*", re.I | re.M)
_T = TypeVar("_T")
_LOG_EVERY = 10.0  # s between two "malformed datagram" lines for one source IP
_TOP_VIA = re.compile(
    rb"^(?:via|v)[ \t]*:[ \t]*sip[ \t]*/[ \t]*2\.0[ \t]*/[ \t]*([a-z]+)", re.I | re.M
)
MAX_CONNECTIONS = 128  # TCP connections at once, in and out
CONNECT_TIMEOUT = 5.0  # s to open an outgoing TCP connection


def over_stream(data: bytes) -> bool:
    """True when the message's top Via names TCP (what carries it, §18.1.1)."""
    match = _TOP_VIA.search(data, 0, max(data.find(b"\r\n\r\n"), 0) or len(data))
    return match is not None and match.group(1).upper() == b"TCP"


def _log_datagram(direction: str, address: Address, data: bytes) -> None:
    if log.isEnabledFor(logging.DEBUG):  # masking costs a regex: only when it is read
        text = _SECRET.sub(rb"\1 ***", data).decode("utf-8", "replace")
        log.debug("SIP %s %s:%d:\n%s", direction, address[0], address[1], text)


def _sanitise(text: str) -> str:
    """A reason phrase: one line of printable ASCII, at most 100 characters."""
    return " ".join("".join(c if " " <= c <= "~" else " " for c in text).split())[:100]


class SipTransport(asyncio.DatagramProtocol):
    """One UDP socket, its :class:`TransactionLayer` and the loop timer driving it.

    ``on_event`` gets every :mod:`~gateway.sip.transaction` event except those
    consumed by :meth:`request`.  ``screen(msg, source)`` returning False
    drops a message silently before any transaction exists.
    """

    def __init__(
        self, on_event: Callable[[Event], None], screen: Screen | None, layer: TransactionLayer
    ) -> None:
        self._loop = asyncio.get_running_loop()
        self._on_event = on_event
        self._screen = screen
        self._layer = layer
        self._transport: asyncio.DatagramTransport | None = None
        self._timer: asyncio.TimerHandle | None = None
        self._waiters: dict[ClientTransaction, _Waiter] = {}
        self._last_log: dict[str, float] = {}
        self._closed = False
        self._server: asyncio.Server | None = None
        self._connections: dict[Address, _Connection] = {}
        self._connecting: dict[Address, list[bytes]] = {}
        self._tasks: set[asyncio.Task[None]] = set()

    @classmethod
    async def open(
        cls,
        local: Address,
        on_event: Callable[[Event], None],
        *,
        screen: Screen | None = None,
        layer: TransactionLayer | None = None,
    ) -> SipTransport:
        """Bind ``local`` (IPv4 or IPv6, port 0 for any) and start serving."""
        self = cls(on_event, screen, layer or TransactionLayer())
        loop = asyncio.get_running_loop()
        self._transport, _ = await loop.create_datagram_endpoint(lambda: self, local_addr=local)
        return self

    async def listen_tcp(self) -> None:
        """Also accept SIP over TCP on the same address and port."""
        host, port = self.local_address
        self._server = await self._loop.create_server(
            lambda: _Connection(self), host, port, reuse_address=True
        )

    @property
    def tcp_connections(self) -> int:
        return len(self._connections)

    @property
    def local_address(self) -> Address:
        assert self._transport is not None
        host, port = self._transport.get_extra_info("sockname")[:2]
        return (host, port)

    def datagram_received(self, data: bytes, addr: tuple[str | Any, int]) -> None:
        source = (str(addr[0]), int(addr[1]))  # IPv6 gives (host, port, flow, scope)
        try:
            self._receive(data, source)
        except Exception:
            log.exception("unexpected error on SIP datagram from %s", source)

    def error_received(self, exc: Exception) -> None:
        # An ICMP error or a failed sendto: the transaction's own timers decide.
        log.debug("SIP socket error: %s", exc)

    def send_request(self, request: SipRequest, destination: Address) -> ClientTransaction:
        """Start a client transaction; its responses arrive as ``ResponseReceived``."""
        reliable = request.top_via.transport == "TCP"  # no retransmissions on streams
        return self._flushed(
            self._layer.send_request(request, destination, self._now(), reliable=reliable)
        )

    def send_response(self, tx: ServerTransaction, response: SipResponse) -> None:
        """Answer a request; the layer retransmits and absorbs as §17.2 says."""
        self._layer.send_response(tx, response, self._now())
        self._after([])

    def cancel(self, tx: ClientTransaction) -> ClientTransaction | None:
        """CANCEL an INVITE (§9.1); None when it already has a final response."""
        return self._flushed(self._layer.cancel(tx, self._now()))

    def send_stateless(self, msg: SipRequest | SipResponse, destination: Address) -> None:
        """Send outside any transaction: the ACK of a 2xx, a stateless answer."""
        self._now()
        self._layer.send_stateless(msg, destination)
        self._after([])

    def send_raw(self, data: bytes, destination: Address) -> None:
        """Send bytes as they are (a CRLF keep-alive, RFC 5626 §4.4.1).

        Over the TCP connection to ``destination`` if there is one, else UDP.
        """
        self._now()
        connection = self._connections.get(destination)
        if connection is not None:
            connection.write(data)
            return
        assert self._transport is not None
        self._transport.sendto(data, destination)

    async def request(
        self,
        request: SipRequest,
        destination: Address,
        *,
        on_provisional: Callable[[SipResponse], None] | None = None,
        timeout: float | None = None,  # noqa: ASYNC109 - the agreed API
    ) -> SipResponse:
        """Send ``request`` and return its first final response.

        **Raises** :class:`TransactionTimeout` on Timer B/F, after ``timeout``
        seconds, or when the transport closes.  For an INVITE, later 2xx
        retransmissions and forks still reach ``on_event``.
        """
        tx = self.send_request(request, destination)
        future: asyncio.Future[SipResponse] = self._loop.create_future()
        self._waiters[tx] = (future, on_provisional)
        try:
            async with asyncio.timeout(timeout):
                return await future
        except TimeoutError as exc:
            if isinstance(exc, TransactionTimeout):
                raise
            raise TransactionTimeout(
                f"no final response to {request.method} in {timeout} s"
            ) from exc
        finally:
            self._waiters.pop(tx, None)

    def close(self) -> None:
        """Stop the timer, fail pending :meth:`request` calls and close the socket."""
        if self._closed:
            return
        self._closed = True
        if self._timer is not None:
            self._timer.cancel()
        for future, _ in self._waiters.values():
            if not future.done():
                future.set_exception(TransactionTimeout("SIP transport closed"))
        self._waiters.clear()
        if self._transport is not None:
            self._transport.close()
        if self._server is not None:
            self._server.close()
        for connection in list(self._connections.values()):
            connection.close()
        for task in self._tasks:
            task.cancel()

    def _flushed(self, result: _T) -> _T:
        self._after([])
        return result

    def _now(self) -> float:
        if self._closed:
            raise RuntimeError("SIP transport is closed")
        return self._loop.time()

    def _receive(self, data: bytes, source: Address) -> None:
        if not data.strip():
            return  # CRLF keep-alive
        _log_datagram("from", source, data)
        try:
            msg = parse_message(data)
        except SipParseError as exc:
            self._reject(data, source, exc)
            return
        if self._screen is not None and not self._screen(msg, source):
            return
        self._after(self._layer.receive(msg, source, self._loop.time()))

    def _reject(self, data: bytes, source: Address, exc: SipParseError) -> None:
        """Answer a malformed request statelessly if it can be, and the source may know."""
        now = self._loop.time()
        if now - self._last_log.get(source[0], -_LOG_EVERY) >= _LOG_EVERY:
            if len(self._last_log) > 1024:
                self._last_log = {k: t for k, t in self._last_log.items() if now - t < _LOG_EVERY}
            self._last_log[source[0]] = now
            log.info("malformed SIP datagram from %s: %s", source[0], exc)
        request = can_answer(data) if exc.status_hint else None
        if request is None or (self._screen is not None and not self._screen(request, source)):
            return
        set_received(request, source)
        response = make_response(
            request, exc.status_hint, _sanitise(str(exc)) or None, to_tag=new_tag()
        )
        self._layer.send_stateless(response, response_destination(response.top_via))
        self._after([])

    def _after(self, events: list[Event]) -> None:
        """Dispatch events, send what the layer queued, re-arm the timer."""
        for event in events:
            self._dispatch(event)
        for data, destination in self._layer.datagrams_to_send():
            if self._transport is None or self._closed:
                break
            _log_datagram("to", destination, data)
            if over_stream(data):
                self._send_stream(data, destination)
            else:
                self._transport.sendto(data, destination)
        when = self._layer.next_deadline()
        if self._timer is not None and self._timer.when() != when:
            self._timer.cancel()
            self._timer = None
        if when is not None and self._timer is None and not self._closed:
            self._timer = self._loop.call_at(when, self._on_timer, when)

    # -- TCP -------------------------------------------------------------------

    def _send_stream(self, data: bytes, destination: Address) -> None:
        connection = self._connections.get(destination)
        if connection is None:
            # Reuse a connection with that host: a response goes back where its
            # request came from even when the Via named another port (§18.2.2),
            # and a peer behind NAT can only be reached on the connection it
            # opened (RFC 5923 reuse, without its TLS identity check).
            connection = next(
                (c for a, c in self._connections.items() if a[0] == destination[0]), None
            )
        if connection is not None:
            connection.write(data)
            return
        queue = self._connecting.get(destination)
        if queue is not None:
            queue.append(data)
            return
        if len(self._connections) >= MAX_CONNECTIONS:
            log.warning(
                "SIP over TCP: connection limit reached, dropping a message to %s", destination
            )
            return
        self._connecting[destination] = [data]
        task = self._loop.create_task(self._connect(destination))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _connect(self, destination: Address) -> None:
        try:
            async with asyncio.timeout(CONNECT_TIMEOUT):
                # From our own address, so the peer's allow-lists see who we are.
                host = self.local_address[0]
                local = None if host in ("0.0.0.0", "::") else (host, 0)
                await self._loop.create_connection(
                    lambda: _Connection(self), destination[0], destination[1], local_addr=local
                )
        except (OSError, TimeoutError) as exc:
            # The transaction's Timer B/F reports the failure to its owner.
            log.info("SIP over TCP: cannot connect to %s:%d: %s", *destination, exc)
            self._connecting.pop(destination, None)
            return
        connection = self._connections.get(destination)
        for data in self._connecting.pop(destination, []):
            if connection is not None:
                connection.write(data)

    def _added(self, connection: _Connection) -> bool:
        if len(self._connections) >= MAX_CONNECTIONS or self._closed:
            return False
        self._connections[connection.peer] = connection
        return True

    def _removed(self, connection: _Connection) -> None:
        if self._connections.get(connection.peer) is connection:
            del self._connections[connection.peer]

    def _on_timer(self, when: float) -> None:
        self._timer = None
        try:
            # call_at may run a hair early; the layer must see the deadline reached.
            self._after(self._layer.handle_timers(max(self._loop.time(), when)))
        except Exception:
            log.exception("unexpected error in SIP timers")

    def _dispatch(self, event: Event) -> None:
        tx = getattr(event, "transaction", None)
        waiter = self._waiters.get(tx) if isinstance(tx, ClientTransaction) else None
        try:
            if waiter is None or tx is None:
                self._on_event(event)
            elif isinstance(event, TransactionTimedOut):
                del self._waiters[tx]
                waiter[0].set_exception(TransactionTimeout("no final response (Timer B/F)"))
            elif isinstance(event, ResponseReceived) and event.response.status < 200:
                if waiter[1] is not None:
                    waiter[1](event.response)
            elif isinstance(event, ResponseReceived):
                del self._waiters[tx]
                waiter[0].set_result(event.response)
        except Exception:
            log.exception("SIP event handler failed on %r", event)


class _Connection(asyncio.Protocol):
    """One TCP connection: frames the stream and feeds the owner's layer."""

    def __init__(self, owner: SipTransport) -> None:
        self.owner = owner
        self.framer = StreamFramer()
        self.peer: Address = ("", 0)
        self._transport: asyncio.Transport | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self._transport = transport
        peer = transport.get_extra_info("peername")
        self.peer = (str(peer[0]), int(peer[1]))
        if not self.owner._added(self):
            transport.abort()

    def data_received(self, data: bytes) -> None:
        try:
            items = self.framer.feed(data)
        except SipParseError as exc:
            log.info("SIP over TCP from %s: %s; closing", self.peer[0], exc)
            self.close()
            return
        for item in items:
            if isinstance(item, Ping):
                self.write(b"\r\n")  # pong
                continue
            try:
                self.owner._receive(item, self.peer)
            except Exception:
                log.exception("unexpected error on SIP message from %s over TCP", self.peer)

    def connection_lost(self, exc: Exception | None) -> None:
        self.owner._removed(self)

    def write(self, data: bytes) -> None:
        if self._transport is not None and not self._transport.is_closing():
            self._transport.write(data)

    def close(self) -> None:
        if self._transport is not None:
            self._transport.close()

"""SIP over UDP (RFC 3261 §18) around the sans-IO :class:`TransactionLayer`.

The only SIP module that imports asyncio.  It feeds datagrams to the layer,
hands the events to one callback, sends what the layer queued and re-arms a
single ``loop.call_at`` timer at the layer's next deadline (aioquic's
adapter).  Nothing a peer sends can raise out of :meth:`datagram_received`.
TCP is not implemented: providers and ATAs on a home LAN speak UDP.
"""

from __future__ import annotations

import asyncio
import logging
import re
from collections.abc import Callable
from typing import Any, TypeVar

from gateway.errors import SipParseError, TransactionTimeout
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
        return self._flushed(self._layer.send_request(request, destination, self._now()))

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
        """Send bytes as they are (a CRLF keep-alive, RFC 5626 §4.4.1)."""
        self._now()
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
            self._transport.sendto(data, destination)
        when = self._layer.next_deadline()
        if self._timer is not None and self._timer.when() != when:
            self._timer.cancel()
            self._timer = None
        if when is not None and self._timer is None and not self._closed:
            self._timer = self._loop.call_at(when, self._on_timer, when)

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

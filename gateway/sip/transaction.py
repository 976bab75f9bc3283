"""SIP transactions: RFC 3261 §17 with RFC 6026's Accepted state, §18.2 and RFC 3581 for Via.

A sans-IO core in the style of aioquic: :class:`TransactionLayer` takes parsed
messages and the current time, and gives back typed events, datagrams to send
and the next time it wants to be woken.  It never reads a clock, opens a socket
or imports asyncio, so every retransmission and timeout is a synchronous test::

    layer = TransactionLayer()
    tx = layer.send_request(invite, ("192.0.2.1", 5060), now=0.0)
    layer.datagrams_to_send()                # the INVITE
    while (at := layer.next_deadline()) is not None:
        events = layer.handle_timers(at)     # Timer A at 0.5, 1.5, ... 31.5
    events == [TransactionTimedOut(tx)]      # Timer B at 32.0

The four state machines are the tables below.  The layer keeps the rest of the
RFC's bookkeeping: it re-sends the last response when a request is
retransmitted, builds the ACK for 300-699 answers (§17.1.1.3), holds a CANCEL
until a provisional response arrives (§9.1), retransmits a 2xx until its ACK
(§13.3.1.4, done here rather than in every TU), sends 100 Trying when the TU is
slow (§17.2.1), and fills ``received``/``rport`` so responses find their way
back through NAT (§18.2.1, RFC 3581).
"""

from __future__ import annotations

import enum
import heapq
import ipaddress
import itertools
import logging
from dataclasses import dataclass

from gateway.errors import SipParseError
from gateway.sip.message import Headers, SipRequest, SipResponse, Via, make_response

__all__ = [
    "COOKIE",
    "T1",
    "T2",
    "T4",
    "TIMER_D",
    "TRYING_DELAY",
    "AckNotReceived",
    "AckReceived",
    "Address",
    "ClientTransaction",
    "Event",
    "LayerStats",
    "RequestReceived",
    "ResponseReceived",
    "ServerTransaction",
    "Timer",
    "TransactionLayer",
    "TransactionTimedOut",
    "TxInput",
    "TxState",
    "response_destination",
    "set_received",
]

log = logging.getLogger(__name__)

T1 = 0.5  # s, RTT estimate (§17.1.1.1): Timer A/E/G start here, B/F/H/J/L/M = 64*T1
T2 = 4.0  # s, cap of non-INVITE request and INVITE response retransmission intervals
T4 = 5.0  # s, how long a message may stay in the network: Timer I and K
TIMER_D = 32.0  # s, "> 32 s for UDP", independent of our T1: it covers the server's Timer G
TRYING_DELAY = 0.2  # s, send 100 Trying if the TU has not answered an INVITE by then (§17.2.1)
COOKIE = "z9hG4bK"  # RFC 3261 branch magic cookie (§8.1.1.7)

Address = tuple[str, int]


class TxState(enum.Enum):
    CALLING = "Calling"
    TRYING = "Trying"
    PROCEEDING = "Proceeding"
    ACCEPTED = "Accepted"  # RFC 6026
    COMPLETED = "Completed"
    CONFIRMED = "Confirmed"
    TERMINATED = "Terminated"


class TxInput(enum.Enum):
    PROVISIONAL = "1xx"
    SUCCESS = "2xx"
    FAILURE = "300-699"
    ACK = "ACK"
    TIMEOUT = "timeout"  # Timer B, F or H: the peer never answered
    EXPIRY = "expiry"  # Timer D, I, J, K, L, M or an unanswered request: nothing left to absorb


class Timer(enum.Enum):
    A = "A"  # INVITE request retransmission
    B = "B"  # INVITE transaction timeout (also: no final 64*T1 after our CANCEL, §9.1)
    D = "D"  # absorb final response retransmissions (client INVITE)
    E = "E"  # non-INVITE request retransmission
    F = "F"  # non-INVITE transaction timeout
    G = "G"  # final response retransmission (300-699 in Completed, 2xx in Accepted)
    H = "H"  # wait for the ACK of a 300-699
    I = "I"  # noqa: E741 - the RFC's name; absorb ACK retransmissions
    J = "J"  # absorb non-INVITE request retransmissions
    K = "K"  # absorb non-INVITE response retransmissions
    L = "L"  # RFC 6026 Accepted (server): give up waiting for the 2xx's ACK
    M = "M"  # RFC 6026 Accepted (client): pass up 2xx retransmissions and forks
    TRYING = "100"  # send 100 Trying on behalf of a slow TU
    ABANDON = "abandon"  # forget a non-INVITE request the TU never answered


_S, _I = TxState, TxInput
# Transitions as data (h11 style).  An input missing from a state is ignored:
# a late provisional, a response to a finished transaction.  Self-loops mark
# inputs that are legal but absorbed (a retransmitted final is re-ACKed).
INVITE_CLIENT: dict[TxState, dict[TxInput, TxState]] = {
    _S.CALLING: {
        _I.PROVISIONAL: _S.PROCEEDING,
        _I.SUCCESS: _S.ACCEPTED,
        _I.FAILURE: _S.COMPLETED,
        _I.TIMEOUT: _S.TERMINATED,
    },
    _S.PROCEEDING: {
        _I.PROVISIONAL: _S.PROCEEDING,
        _I.SUCCESS: _S.ACCEPTED,
        _I.FAILURE: _S.COMPLETED,
        _I.TIMEOUT: _S.TERMINATED,  # only armed once our CANCEL is out
    },
    _S.ACCEPTED: {_I.SUCCESS: _S.ACCEPTED, _I.EXPIRY: _S.TERMINATED},
    _S.COMPLETED: {_I.FAILURE: _S.COMPLETED, _I.EXPIRY: _S.TERMINATED},
}
NON_INVITE_CLIENT: dict[TxState, dict[TxInput, TxState]] = {
    _S.TRYING: {
        _I.PROVISIONAL: _S.PROCEEDING,
        _I.SUCCESS: _S.COMPLETED,
        _I.FAILURE: _S.COMPLETED,
        _I.TIMEOUT: _S.TERMINATED,
    },
    _S.PROCEEDING: {
        _I.PROVISIONAL: _S.PROCEEDING,
        _I.SUCCESS: _S.COMPLETED,
        _I.FAILURE: _S.COMPLETED,
        _I.TIMEOUT: _S.TERMINATED,
    },
    _S.COMPLETED: {_I.SUCCESS: _S.COMPLETED, _I.FAILURE: _S.COMPLETED, _I.EXPIRY: _S.TERMINATED},
}
INVITE_SERVER: dict[TxState, dict[TxInput, TxState]] = {
    _S.PROCEEDING: {
        _I.PROVISIONAL: _S.PROCEEDING,
        _I.SUCCESS: _S.ACCEPTED,
        _I.FAILURE: _S.COMPLETED,
    },
    _S.ACCEPTED: {_I.SUCCESS: _S.ACCEPTED, _I.ACK: _S.ACCEPTED, _I.EXPIRY: _S.TERMINATED},
    _S.COMPLETED: {_I.ACK: _S.CONFIRMED, _I.TIMEOUT: _S.TERMINATED},
    _S.CONFIRMED: {_I.ACK: _S.CONFIRMED, _I.EXPIRY: _S.TERMINATED},
}
NON_INVITE_SERVER: dict[TxState, dict[TxInput, TxState]] = {
    _S.TRYING: {
        _I.PROVISIONAL: _S.PROCEEDING,
        _I.SUCCESS: _S.COMPLETED,
        _I.FAILURE: _S.COMPLETED,
        _I.EXPIRY: _S.TERMINATED,
    },
    _S.PROCEEDING: {
        _I.PROVISIONAL: _S.PROCEEDING,
        _I.SUCCESS: _S.COMPLETED,
        _I.FAILURE: _S.COMPLETED,
        _I.EXPIRY: _S.TERMINATED,
    },
    _S.COMPLETED: {_I.EXPIRY: _S.TERMINATED},
}

_TIMER_INPUT = {
    Timer.B: TxInput.TIMEOUT,
    Timer.F: TxInput.TIMEOUT,
    Timer.H: TxInput.TIMEOUT,
    Timer.D: TxInput.EXPIRY,
    Timer.I: TxInput.EXPIRY,
    Timer.J: TxInput.EXPIRY,
    Timer.K: TxInput.EXPIRY,
    Timer.L: TxInput.EXPIRY,
    Timer.M: TxInput.EXPIRY,
    Timer.ABANDON: TxInput.EXPIRY,
}


def _status_input(status: int) -> TxInput:
    if status < 200:
        return TxInput.PROVISIONAL
    return TxInput.SUCCESS if status < 300 else TxInput.FAILURE


class _Transaction:
    """State shared by client and server transactions."""

    def __init__(
        self,
        request: SipRequest,
        table: dict[TxState, dict[TxInput, TxState]],
        state: TxState,
        destination: Address,
        reliable: bool,
    ) -> None:
        self.request = request
        self.state = state
        self.destination = destination  # where requests (client) or responses (server) go
        self.reliable = reliable
        self.last_response: SipResponse | None = None
        self._table = table
        self._timers: dict[Timer, int] = {}  # armed timer -> its heap entry's sequence number
        self._interval = 0.0  # current retransmission interval of Timer A, E or G
        self._wire = b""  # what a retransmission re-sends (request or last response)

    @property
    def is_invite(self) -> bool:
        return self.request.method == "INVITE"

    def _step(self, what: TxInput) -> TxState | None:
        """Apply one input from the table; None if this state ignores it."""
        new = self._table.get(self.state, {}).get(what)
        if new is not None:
            self.state = new
        return new

    def __repr__(self) -> str:
        return f"<{type(self).__name__} {self.request.method} {self.state.value}>"


class ClientTransaction(_Transaction):
    """A request we sent (§17.1): Timer A/B/D for INVITE, E/F/K otherwise."""

    def __init__(
        self, request: SipRequest, destination: Address, reliable: bool, branch: str
    ) -> None:
        invite = request.method == "INVITE"
        table = INVITE_CLIENT if invite else NON_INVITE_CLIENT
        state = TxState.CALLING if invite else TxState.TRYING
        super().__init__(request, table, state, destination, reliable)
        self.branch = branch
        self.cancel_tx: ClientTransaction | None = None  # our CANCEL of this INVITE, if any
        self.ack: SipRequest | None = None  # the ACK we built for a 300-699 (§17.1.1.3)
        self._cancel_pending = False  # CANCEL waits for a provisional response (§9.1)


class ServerTransaction(_Transaction):
    """A request we received (§17.2).  ``destination`` is where responses go (§18.2.2)."""

    def __init__(
        self, request: SipRequest, source: Address, key: _ServerKey, reliable: bool
    ) -> None:
        invite = request.method == "INVITE"
        table = INVITE_SERVER if invite else NON_INVITE_SERVER
        state = TxState.PROCEEDING if invite else TxState.TRYING
        super().__init__(request, table, state, response_destination(request.top_via), reliable)
        self.source = source
        self.acked = False  # an ACK arrived for our final response
        self._key = key
        self._dialog_key: tuple[str, int, str | None] | None = None  # set once a 2xx is sent


_AnyTx = ClientTransaction | ServerTransaction


# --- events (past-tense facts, aioquic style) ---------------------------------


@dataclass(frozen=True)
class RequestReceived:
    """A new request (never a retransmission).  For a CANCEL, ``cancelled`` is the
    INVITE server transaction it matches (§9.2), or None: answer the CANCEL 481."""

    request: SipRequest
    source: Address
    transaction: ServerTransaction
    cancelled: ServerTransaction | None = None


@dataclass(frozen=True)
class AckReceived:
    """An ACK that belongs to the TU: the ACK of a 2xx (§13.3.1.4, RFC 6026)."""

    request: SipRequest
    source: Address


@dataclass(frozen=True)
class ResponseReceived:
    """A provisional or final response, and every 2xx retransmission in Accepted."""

    response: SipResponse
    transaction: ClientTransaction


@dataclass(frozen=True)
class TransactionTimedOut:
    """Timer B, F (no answer to our request) or H (no ACK for our 300-699)."""

    transaction: _AnyTx


@dataclass(frozen=True)
class AckNotReceived:
    """Our 2xx was retransmitted for 64*T1 without an ACK: send BYE (§13.3.1.4)."""

    transaction: ServerTransaction


Event = RequestReceived | AckReceived | ResponseReceived | TransactionTimedOut | AckNotReceived


@dataclass
class LayerStats:
    retransmissions: int = 0  # datagrams re-sent by a timer or to answer a retransmission
    absorbed: int = 0  # retransmitted requests and responses kept from the TU
    stray: int = 0  # responses that matched no client transaction


# --- Via handling (§18.2.1, §18.2.2, RFC 3581) ---------------------------------

_ServerKey = tuple[object, ...]


def _default_port(via: Via) -> int:
    return 5061 if via.transport in ("TLS", "WSS") else 5060


def _unbracket(host: str) -> str:
    return host[1:-1] if host.startswith("[") and host.endswith("]") else host


def _same_ip(host: str, ip: str) -> bool:
    try:
        return ipaddress.ip_address(_unbracket(host)) == ipaddress.ip_address(ip)
    except ValueError:
        return host.lower() == ip.lower()


def set_received(request: SipRequest, source: Address) -> None:
    """Stamp the top Via with where the request really came from.

    ``received`` is added when the source IP differs from the Via host
    (§18.2.1); an empty ``;rport`` gets the source port, and then ``received``
    is added even when equal (RFC 3581 §4).  A ``received`` the sender wrote
    itself is dropped when the host already is the source, so a peer cannot
    aim our responses at a third party.
    """
    fields = request.headers.get_all("Via")
    if not fields:
        raise SipParseError("missing Via header")
    first = Headers([("Via", fields[0])]).get_list("Via")
    via = Via.parse(first[0])
    ip, port = source
    if "rport" in via.params and via.params["rport"] is None:
        via.params["rport"] = str(port)
        via.params["received"] = ip
    elif not _same_ip(via.host, ip):
        via.params["received"] = ip
    elif "received" in via.params:
        del via.params["received"]
    else:
        return
    first[0] = str(via)
    items, done = [], False
    for name, value in request.headers.items():
        if name.lower() == "via" and not done:
            value, done = ", ".join(first), True
        items.append((name, value))
    request.headers = Headers(items)


def response_destination(via: Via) -> Address:
    """Where a response to a request with this top Via goes over UDP (§18.2.2, RFC 3581).

    The ``received`` host (else the sent-by host), and the ``rport`` port if
    the server filled one in (else the sent-by port, 5060 by default).
    ``maddr`` is ignored: multicast has no place in a home gateway.
    """
    host = _unbracket(via.received or via.host)
    rport = via.rport
    return (host, rport if rport is not None else via.port or _default_port(via))


def _server_key(request: SipRequest, method: str) -> _ServerKey:
    """§17.2.3: branch + sent-by + method; RFC 2543 peers get the older key."""
    via = request.top_via
    port = via.port or _default_port(via)
    branch = via.branch
    if branch and branch.startswith(COOKIE):
        return ("3261", branch, via.host.lower(), port, method)
    # Without the cookie the branch is not unique: match on the request's
    # identity.  received/rport are left out since we add them ourselves; the
    # To tag is left out so the ACK of a 300-699 (which has it) still matches.
    params = tuple(sorted((k, v) for k, v in via.params.items() if k not in ("received", "rport")))
    from_tag = request.from_addr.tag
    number = request.cseq.number
    uri = str(request.uri)
    return ("2543", uri, from_tag, request.call_id, number, method, via.host.lower(), port, params)


def _header(msg: SipRequest | SipResponse, name: str) -> str:
    value = msg.headers.get(name)
    if value is None:
        raise SipParseError(f"missing {name} header")
    return value


def _copy_request(invite: SipRequest, method: str, to: str) -> SipRequest:
    """The ACK (§17.1.1.3) or CANCEL (§9.1) of ``invite``: same Request-URI,
    top Via only (so the same branch), From, Call-ID, CSeq number and Route."""
    items = [
        ("Via", invite.headers.get_list("Via")[0]),
        ("Max-Forwards", "70"),
        ("From", _header(invite, "From")),
        ("To", to),
        ("Call-ID", _header(invite, "Call-ID")),
        ("CSeq", f"{invite.cseq.number} {method}"),
    ]
    items += [("Route", route) for route in invite.headers.get_all("Route")]
    return SipRequest(method, invite.uri, Headers(items))


# --- the layer ------------------------------------------------------------------


class TransactionLayer:
    """Every client and server transaction of one SIP endpoint.

    **Arguments**: ``t1``, ``t2``, ``t4``, ``timer_d`` and ``trying_delay``
    default to the RFC values; tests shrink them.

    Feed it with :meth:`receive` and :meth:`handle_timers`, act with
    :meth:`send_request`, :meth:`send_response`, :meth:`cancel` and
    :meth:`send_stateless`, then drain :meth:`datagrams_to_send` and sleep
    until :meth:`next_deadline`.
    """

    def __init__(
        self,
        *,
        t1: float = T1,
        t2: float = T2,
        t4: float = T4,
        timer_d: float = TIMER_D,
        trying_delay: float = TRYING_DELAY,
    ) -> None:
        self.t1, self.t2, self.t4 = t1, t2, t4
        self.timer_d = timer_d
        self.trying_delay = trying_delay
        self.stats = LayerStats()
        self._clients: dict[tuple[str, str], ClientTransaction] = {}
        self._servers: dict[_ServerKey, ServerTransaction] = {}
        self._accepted: dict[tuple[str, int, str | None], ServerTransaction] = {}
        # (deadline, timeouts first, sequence, transaction, timer); stale entries
        # (timer cleared or re-armed) are skipped when they surface.
        self._heap: list[tuple[float, int, int, _AnyTx, Timer]] = []
        self._seq = itertools.count()
        self._outbox: list[tuple[bytes, Address]] = []

    # -- input ----------------------------------------------------------------

    def receive(self, msg: SipRequest | SipResponse, source: Address, now: float) -> list[Event]:
        """Take one parsed message from ``source``; returns what the TU must hear."""
        try:
            if isinstance(msg, SipRequest):
                return self._receive_request(msg, source, now)
            return self._receive_response(msg, now)
        except SipParseError as exc:
            log.debug("dropping message from %s with unusable headers: %s", source, exc)
            return []

    def handle_timers(self, now: float) -> list[Event]:
        """Fire every timer due at ``now``, in deadline order."""
        events: list[Event] = []
        while self._heap and self._heap[0][0] <= now:
            at, _, seq, tx, timer = heapq.heappop(self._heap)
            if tx._timers.get(timer) == seq:
                del tx._timers[timer]
                events += self._fire(tx, timer, at)
        return events

    # -- output ---------------------------------------------------------------

    def next_deadline(self) -> float | None:
        """When :meth:`handle_timers` must next be called, or None."""
        while self._heap:
            at, _, seq, tx, timer = self._heap[0]
            if tx._timers.get(timer) == seq:
                return at
            heapq.heappop(self._heap)
        return None

    def datagrams_to_send(self) -> list[tuple[bytes, Address]]:
        """Drain the outbox."""
        out, self._outbox = self._outbox, []
        return out

    # -- TU actions -----------------------------------------------------------

    def send_request(
        self, request: SipRequest, destination: Address, now: float, *, reliable: bool = False
    ) -> ClientTransaction:
        """Start a client transaction; the top Via must carry a fresh RFC 3261 branch.

        **Raises** ``ValueError`` for an ACK (use :meth:`send_stateless`), a
        branch without the ``z9hG4bK`` cookie, or a branch already in use.
        """
        if request.method == "ACK":
            raise ValueError("an ACK is not a transaction: use send_stateless()")
        branch = request.top_via.branch
        if not branch or not branch.startswith(COOKIE):
            raise ValueError(f"top Via needs an RFC 3261 branch, got {branch!r}")
        if (branch, request.method) in self._clients:
            raise ValueError(f"branch {branch} already in use for {request.method}")
        tx = ClientTransaction(request, destination, reliable, branch)
        self._start_client(tx, now)
        return tx

    def send_response(
        self, transaction: ServerTransaction, response: SipResponse, now: float
    ) -> None:
        """Send ``response`` on ``transaction``; the layer retransmits it as needed.

        A response the state no longer allows (a 487 after the 200 it crossed,
        anything after the transaction ended) is dropped with a debug log.
        """
        tx = transaction
        what = _status_input(response.status)
        old = tx.state
        if tx._step(what) is None:
            log.debug("%r: not sending %d in state %s", tx, response.status, old.value)
            return
        self._clear(tx, Timer.TRYING)
        tx.last_response = response
        tx._wire = bytes(response)
        self._outbox.append((tx._wire, tx.destination))
        if what is TxInput.PROVISIONAL or old is TxState.ACCEPTED:
            return  # a 2xx retransmission from the TU is only passed on (RFC 6026)
        if not tx.is_invite:
            self._clear(tx, Timer.ABANDON)
            self._wait(tx, Timer.J, 0.0 if tx.reliable else 64 * self.t1, now)
        elif what is TxInput.SUCCESS:
            # §13.3.1.4: a 2xx is retransmitted end to end, whatever the transport.
            tx._dialog_key = (response.call_id, response.cseq.number, response.to_addr.tag)
            self._accepted[tx._dialog_key] = tx
            self._retransmit_from(tx, Timer.G, now)
            self._arm(tx, Timer.L, now + 64 * self.t1)
        else:
            if not tx.reliable:
                self._retransmit_from(tx, Timer.G, now)
            self._arm(tx, Timer.H, now + 64 * self.t1)

    def cancel(self, transaction: ClientTransaction, now: float) -> ClientTransaction | None:
        """CANCEL an INVITE we sent (§9.1); None if it already has a final response.

        Before any provisional response the CANCEL is held and sent when one
        arrives; it is dropped (state Terminated) if a final response comes
        first.  Calling again returns the same CANCEL transaction.
        """
        invite = transaction
        if not invite.is_invite:
            raise ValueError("only an INVITE can be cancelled")
        if invite.cancel_tx is not None:
            return invite.cancel_tx
        if invite.state not in (TxState.CALLING, TxState.PROCEEDING):
            return None
        request = _copy_request(invite.request, "CANCEL", _header(invite.request, "To"))
        invite.cancel_tx = ClientTransaction(
            request, invite.destination, invite.reliable, invite.branch
        )
        if invite.state is TxState.PROCEEDING:
            self._send_cancel(invite, now)
        else:
            invite._cancel_pending = True
        return invite.cancel_tx

    def send_stateless(self, msg: SipRequest | SipResponse, destination: Address) -> None:
        """Send outside any transaction: the ACK of a 2xx, a stateless reply."""
        self._outbox.append((bytes(msg), destination))

    def find_invite_server(self, cancel: SipRequest) -> ServerTransaction | None:
        """The INVITE server transaction a CANCEL targets (§9.2), in any state."""
        try:
            tx = self._servers.get(_server_key(cancel, "INVITE"))
        except SipParseError:
            return None
        return tx if tx is not None and tx.is_invite else None

    # -- requests in ----------------------------------------------------------

    def _receive_request(self, request: SipRequest, source: Address, now: float) -> list[Event]:
        method = request.method
        key = _server_key(request, "INVITE" if method == "ACK" else method)
        set_received(request, source)
        if method == "ACK":
            return self._receive_ack(request, key, source, now)
        tx = self._servers.get(key)
        if tx is not None:
            self._absorb_request(tx)
            return []
        reliable = request.top_via.transport != "UDP"
        tx = ServerTransaction(request, source, key, reliable)
        self._servers[key] = tx
        if tx.is_invite:
            self._arm(tx, Timer.TRYING, now + self.trying_delay)
        else:
            self._arm(tx, Timer.ABANDON, now + 64 * self.t1)
        cancelled = self.find_invite_server(request) if method == "CANCEL" else None
        return [RequestReceived(request, source, tx, cancelled)]

    def _absorb_request(self, tx: ServerTransaction) -> None:
        """A retransmitted request: re-send the last response (§17.2.1, §17.2.2)."""
        self.stats.absorbed += 1
        resend = tx.state in (TxState.PROCEEDING, TxState.COMPLETED) or (
            tx.state is TxState.ACCEPTED and not tx.acked
        )
        if resend and tx._wire:
            self._resend(tx)

    def _receive_ack(
        self, ack: SipRequest, key: _ServerKey, source: Address, now: float
    ) -> list[Event]:
        tx = self._servers.get(key)
        if tx is not None and tx.state in (TxState.COMPLETED, TxState.CONFIRMED):
            if tx._step(TxInput.ACK) is TxState.CONFIRMED and not tx.acked:
                tx.acked = True
                self._clear(tx, Timer.G, Timer.H)
                self._wait(tx, Timer.I, 0.0 if tx.reliable else self.t4, now)
            else:
                self.stats.absorbed += 1
            return []
        # The ACK of a 2xx has its own branch (a peer may reuse the INVITE's):
        # find the 2xx by dialog and CSeq instead.
        accepted = self._accepted.get((ack.call_id, ack.cseq.number, ack.to_addr.tag))
        if accepted is not None and accepted._step(TxInput.ACK) is not None and not accepted.acked:
            accepted.acked = True
            self._clear(accepted, Timer.G)
        return [AckReceived(ack, source)]

    # -- responses in ---------------------------------------------------------

    def _receive_response(self, response: SipResponse, now: float) -> list[Event]:
        branch = response.top_via.branch
        tx = self._clients.get((branch or "", response.cseq.method))
        if tx is None:
            self.stats.stray += 1
            log.debug("stray %d %s (branch %s)", response.status, response.cseq, branch)
            return []
        what = _status_input(response.status)
        old = tx.state
        if tx._step(what) is None:
            log.debug("%r: ignoring late %d", tx, response.status)
            return []
        if old is TxState.COMPLETED:
            # A retransmitted final: an INVITE's is re-ACKed (§17.1.1.2), others absorbed.
            self.stats.absorbed += 1
            if tx.ack is not None:
                self.stats.retransmissions += 1
                self._outbox.append((bytes(tx.ack), tx.destination))
            return []
        tx.last_response = response
        if tx.is_invite:
            self._invite_response(tx, response, old, now)
        elif what is not TxInput.PROVISIONAL:
            self._clear(tx, Timer.E, Timer.F)
            self._wait(tx, Timer.K, 0.0 if tx.reliable else self.t4, now)
        return [ResponseReceived(response, tx)]

    def _invite_response(
        self, tx: ClientTransaction, response: SipResponse, old: TxState, now: float
    ) -> None:
        if old is TxState.ACCEPTED:
            return  # a 2xx retransmission or fork: the TU re-sends its ACK
        if tx.state is TxState.PROCEEDING:
            if old is TxState.CALLING:
                self._clear(tx, Timer.A, Timer.B)
            if tx._cancel_pending:
                self._send_cancel(tx, now)
            return
        self._clear(tx, Timer.A, Timer.B)  # B may be the wait that follows our CANCEL
        if tx._cancel_pending and tx.cancel_tx is not None:
            tx._cancel_pending = False  # final before provisional: nothing to cancel
            tx.cancel_tx.state = TxState.TERMINATED
        if tx.state is TxState.ACCEPTED:
            self._arm(tx, Timer.M, now + 64 * self.t1)
            return
        tx.ack = _copy_request(tx.request, "ACK", _header(response, "To"))
        self._outbox.append((bytes(tx.ack), tx.destination))
        self._wait(tx, Timer.D, 0.0 if tx.reliable else self.timer_d, now)

    # -- client helpers -------------------------------------------------------

    def _start_client(self, tx: ClientTransaction, now: float) -> None:
        self._clients[(tx.branch, tx.request.method)] = tx
        tx._wire = bytes(tx.request)
        self._outbox.append((tx._wire, tx.destination))
        if not tx.reliable:
            self._retransmit_from(tx, Timer.A if tx.is_invite else Timer.E, now)
        self._arm(tx, Timer.B if tx.is_invite else Timer.F, now + 64 * self.t1)

    def _send_cancel(self, invite: ClientTransaction, now: float) -> None:
        assert invite.cancel_tx is not None
        invite._cancel_pending = False
        self._start_client(invite.cancel_tx, now)
        # §9.1: no final response 64*T1 after the CANCEL -> give the INVITE up.
        self._arm(invite, Timer.B, now + 64 * self.t1)

    # -- timers ---------------------------------------------------------------

    def _fire(self, tx: _AnyTx, timer: Timer, at: float) -> list[Event]:
        if timer in (Timer.A, Timer.E, Timer.G):
            self._resend(tx)
            if timer is Timer.A:
                tx._interval *= 2
            elif timer is Timer.E and tx.state is TxState.PROCEEDING:
                tx._interval = self.t2
            else:
                tx._interval = min(2 * tx._interval, self.t2)
            self._arm(tx, timer, at + tx._interval)
            return []
        if timer is Timer.TRYING:
            assert isinstance(tx, ServerTransaction)
            self.send_response(tx, make_response(tx.request, 100), at)
            return []
        if tx._step(_TIMER_INPUT[timer]) is None:
            return []
        self._terminate(tx)
        if timer in (Timer.B, Timer.F, Timer.H):
            return [TransactionTimedOut(tx)]
        if timer is Timer.L and isinstance(tx, ServerTransaction) and not tx.acked:
            return [AckNotReceived(tx)]
        return []

    def _retransmit_from(self, tx: _AnyTx, timer: Timer, now: float) -> None:
        tx._interval = self.t1
        self._arm(tx, timer, now + self.t1)

    def _resend(self, tx: _AnyTx) -> None:
        self.stats.retransmissions += 1
        self._outbox.append((tx._wire, tx.destination))

    def _wait(self, tx: _AnyTx, timer: Timer, delay: float, now: float) -> None:
        """Linger to absorb retransmissions; reliable transports have none (delay 0)."""
        if delay > 0:
            self._arm(tx, timer, now + delay)
        elif tx._step(TxInput.EXPIRY) is not None:
            self._terminate(tx)

    def _arm(self, tx: _AnyTx, timer: Timer, at: float) -> None:
        seq = next(self._seq)
        tx._timers[timer] = seq
        heapq.heappush(self._heap, (at, 0 if timer in _TIMER_INPUT else 1, seq, tx, timer))

    def _clear(self, tx: _AnyTx, *timers: Timer) -> None:
        for timer in timers:
            tx._timers.pop(timer, None)

    def _terminate(self, tx: _AnyTx) -> None:
        tx.state = TxState.TERMINATED
        tx._timers.clear()
        if isinstance(tx, ClientTransaction):
            self._clients.pop((tx.branch, tx.request.method), None)
            if tx._cancel_pending and tx.cancel_tx is not None:
                tx._cancel_pending = False
                tx.cancel_tx.state = TxState.TERMINATED
        elif isinstance(tx, ServerTransaction):
            self._servers.pop(tx._key, None)
            if tx._dialog_key is not None and self._accepted.get(tx._dialog_key) is tx:
                del self._accepted[tx._dialog_key]

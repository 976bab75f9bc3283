"""The asyncio UDP adapter, over real sockets on 127.0.0.1 (port 0)."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator, Awaitable, Callable

import pytest

from gateway.errors import TransactionTimeout
from gateway.sip.message import (
    SipRequest,
    SipResponse,
    make_response,
    new_branch,
    new_call_id,
    new_tag,
    parse_message,
)
from gateway.sip.transaction import (
    AckReceived,
    Address,
    Event,
    RequestReceived,
    ResponseReceived,
    TransactionLayer,
    TxState,
)
from gateway.sip.transport import SipTransport

LOCAL: Address = ("127.0.0.1", 0)
WAIT = 2.0  # s; every await below is bounded


def request_text(method: str, src: Address, dst: Address, *, user: str, extra: str) -> str:
    return (
        f"{method} sip:gw@{dst[0]}:{dst[1]} SIP/2.0\r\n"
        f"Via: SIP/2.0/UDP {src[0]}:{src[1]};branch={new_branch()};rport\r\n"
        "Max-Forwards: 70\r\n"
        f"From: <sip:{user}@{src[0]}>;tag={new_tag()}\r\n"
        f"To: <sip:gw@{dst[0]}>\r\n"
        f"Call-ID: {new_call_id()}\r\n"
        f"CSeq: 1 {method}\r\n"
        f"Contact: <sip:{user}@{src[0]}:{src[1]}>\r\n"
        f"{extra}\r\n"
    )


def request(
    method: str, src: Address, dst: Address, *, user: str = "friend", extra: str = ""
) -> SipRequest:
    msg = parse_message(request_text(method, src, dst, user=user, extra=extra).encode())
    assert isinstance(msg, SipRequest)
    return msg


class Server:
    """A user agent that answers every new request with ``status``."""

    def __init__(self, status: int = 200) -> None:
        self.status = status
        self.events: list[Event] = []
        self.screened: list[SipRequest | SipResponse] = []
        self.transport: SipTransport | None = None
        self.raise_next = False
        self.send_trying = False
        self.got: asyncio.Queue[Event] = asyncio.Queue()

    def on_event(self, event: Event) -> None:
        self.events.append(event)
        self.got.put_nowait(event)
        if self.raise_next:
            self.raise_next = False
            raise RuntimeError("handler bug")
        if isinstance(event, RequestReceived) and self.transport is not None:
            if self.send_trying:
                self.transport.send_response(event.transaction, make_response(event.request, 100))
            response = make_response(event.request, self.status, to_tag="srv")
            self.transport.send_response(event.transaction, response)

    def screen(self, msg: SipRequest | SipResponse, source: Address) -> bool:
        self.screened.append(msg)
        return msg.from_addr.uri.user == "friend"


Opener = Callable[..., Awaitable[SipTransport]]


@pytest.fixture
async def open_transport() -> AsyncIterator[Opener]:
    opened: list[SipTransport] = []

    async def opener(on_event: Callable[[Event], None], **kwargs: object) -> SipTransport:
        transport = await SipTransport.open(LOCAL, on_event, **kwargs)  # type: ignore[arg-type]
        opened.append(transport)
        return transport

    yield opener
    for transport in opened:
        transport.close()


async def serve(open_transport: Opener, server: Server, **kwargs: object) -> SipTransport:
    server.transport = await open_transport(server.on_event, screen=server.screen, **kwargs)
    return server.transport


class Raw(asyncio.DatagramProtocol):
    """A bare UDP socket: what a scanner or a broken phone would use."""

    def __init__(self) -> None:
        self.received: asyncio.Queue[bytes] = asyncio.Queue()

    def datagram_received(self, data: bytes, addr: tuple[str | object, int]) -> None:
        self.received.put_nowait(data)


async def test_options_round_trip(open_transport: Opener) -> None:
    server = Server()
    b = await serve(open_transport, server)
    client_events: list[Event] = []
    a = await open_transport(client_events.append)
    provisional: list[SipResponse] = []
    server.send_trying = True
    options = request("OPTIONS", a.local_address, b.local_address)
    response = await a.request(
        options, b.local_address, on_provisional=provisional.append, timeout=WAIT
    )
    assert (response.status, response.to_addr.tag) == (200, "srv")
    assert response.call_id == options.call_id
    # b stamped the Via: the answer went back to the socket, whatever the Via said.
    assert response.top_via.rport == a.local_address[1]
    assert response.top_via.received == "127.0.0.1"
    assert [p.status for p in provisional] == [100]
    assert client_events == []  # consumed by request()
    assert [type(e) for e in server.events] == [RequestReceived]


async def test_invite_486_is_acked_by_the_layers(open_transport: Opener) -> None:
    server = Server(status=486)
    b = await serve(open_transport, server)
    a = await open_transport(lambda event: None)
    response = await a.request(request("INVITE", a.local_address, b.local_address), b.local_address)
    assert response.status == 486
    # b handles datagrams in order: once this OPTIONS is answered, the ACK is in.
    server.status = 200
    await a.request(request("OPTIONS", a.local_address, b.local_address), b.local_address)
    invite_tx = server.events[0].transaction  # type: ignore[union-attr]
    assert invite_tx.state is TxState.CONFIRMED
    assert [type(e) for e in server.events] == [RequestReceived, RequestReceived]


async def test_invite_2xx_retransmissions_reach_on_event_until_acked(
    open_transport: Opener,
) -> None:
    server = Server(status=200)
    b = await serve(open_transport, server, layer=TransactionLayer(t1=0.01))
    client_got: asyncio.Queue[Event] = asyncio.Queue()
    a = await open_transport(client_got.put_nowait)
    invite = request("INVITE", a.local_address, b.local_address)
    response = await a.request(invite, b.local_address, timeout=WAIT)
    assert response.status == 200
    # No ACK yet: b retransmits the 2xx and a passes each one up (RFC 6026).
    again = await asyncio.wait_for(client_got.get(), WAIT)
    assert isinstance(again, ResponseReceived) and again.response.status == 200
    ack = request("ACK", a.local_address, b.local_address)
    for name in ("From", "Call-ID"):
        ack.headers.set(name, invite.headers.get(name) or "")
    ack.headers.set("To", response.headers.get("To") or "")
    a.send_stateless(ack, b.local_address)
    while not isinstance(event := await asyncio.wait_for(server.got.get(), WAIT), AckReceived):
        pass
    assert event.request.call_id == invite.call_id
    assert server.events[0].transaction.acked  # type: ignore[union-attr]


async def test_garbage_answered_400_only_when_salvageable_and_screened_in(
    open_transport: Opener,
) -> None:
    server = Server()
    b = await serve(open_transport, server)
    loop = asyncio.get_running_loop()
    raw_transport, raw = await loop.create_datagram_endpoint(Raw, local_addr=LOCAL)
    try:
        src = raw_transport.get_extra_info("sockname")
        bad_length = "Content-Length: \u00e4" + "9" * 150 + "\r\n"
        scanner = request_text("OPTIONS", src, b.local_address, user="scanner", extra=bad_length)
        friend = request_text("OPTIONS", src, b.local_address, user="friend", extra=bad_length)
        raw_transport.sendto(scanner.encode(), b.local_address)
        raw_transport.sendto(b"\x00\x01 not SIP at all", b.local_address)
        raw_transport.sendto(friend.encode(), b.local_address)
        # Datagrams are handled in order: the first answer is the friend's.
        answer = parse_message(await asyncio.wait_for(raw.received.get(), WAIT))
        assert isinstance(answer, SipResponse)
        assert answer.status == 400
        assert answer.from_addr.uri.user == "friend"
        assert answer.reason.isascii() and answer.reason.isprintable()
        assert len(answer.reason) <= 100 and answer.reason.startswith("bad Content-Length: ' 999")
        assert answer.to_addr.tag is not None
        assert answer.top_via.rport == src[1]
        assert raw.received.empty()
        assert server.events == []  # no transaction for any of them
    finally:
        raw_transport.close()


async def test_screen_drops_well_formed_requests_silently(open_transport: Opener) -> None:
    server = Server()
    b = await serve(open_transport, server)
    a = await open_transport(lambda event: None, layer=TransactionLayer(t1=0.001))
    scan = request("OPTIONS", a.local_address, b.local_address, user="scanner")
    with pytest.raises(TransactionTimeout):
        await a.request(scan, b.local_address)
    # A request b answers proves every earlier datagram was handled.
    await a.request(request("OPTIONS", a.local_address, b.local_address), b.local_address)
    assert [m.from_addr.uri.user for m in server.screened] == ["scanner"] * 7 + ["friend"]
    assert [type(e) for e in server.events] == [RequestReceived]


async def test_handler_exception_does_not_stop_the_next_datagram(
    open_transport: Opener, caplog: pytest.LogCaptureFixture
) -> None:
    server = Server()
    b = await serve(open_transport, server)
    server.raise_next = True
    a = await open_transport(lambda event: None)
    a.send_request(request("OPTIONS", a.local_address, b.local_address), b.local_address)
    response = await a.request(
        request("OPTIONS", a.local_address, b.local_address), b.local_address
    )
    assert response.status == 200
    assert len(server.events) == 2
    [record] = [r for r in caplog.records if r.getMessage().startswith("SIP event handler failed")]
    assert record.exc_info is not None and record.exc_info[0] is RuntimeError


async def test_timer_f_raises_transaction_timeout(open_transport: Opener) -> None:
    server = Server()
    b = await serve(open_transport, server)
    layer = TransactionLayer(t1=0.005)  # Timer F = 0.32 s
    a = await open_transport(lambda event: None, layer=layer)
    loop = asyncio.get_running_loop()
    start = loop.time()
    with pytest.raises(TransactionTimeout, match="Timer B/F"):
        await a.request(
            request("OPTIONS", a.local_address, b.local_address, user="x"), b.local_address
        )
    assert 0.3 <= loop.time() - start < 1.0
    assert layer.stats.retransmissions == 6  # 0.005, 0.015, 0.035, 0.075, 0.155, 0.315


async def test_request_timeout_argument(open_transport: Opener) -> None:
    server = Server()
    b = await serve(open_transport, server)
    a = await open_transport(lambda event: None)
    with pytest.raises(TransactionTimeout, match="in 0.05 s"):
        opts = request("OPTIONS", a.local_address, b.local_address, user="x")
        await a.request(opts, b.local_address, timeout=0.05)
    assert a._waiters == {}


async def test_crlf_keepalive_is_ignored(open_transport: Opener) -> None:
    server = Server()
    b = await serve(open_transport, server)
    a = await open_transport(lambda event: None)
    a.send_raw(b"\r\n\r\n", b.local_address)
    response = await a.request(
        request("OPTIONS", a.local_address, b.local_address), b.local_address
    )
    assert response.status == 200
    assert len(server.screened) == 1


async def test_close_fails_pending_requests_and_is_idempotent(open_transport: Opener) -> None:
    a = await open_transport(lambda event: None)
    b = await open_transport(lambda event: None)  # never answers
    pending = asyncio.ensure_future(
        a.request(request("OPTIONS", a.local_address, b.local_address), b.local_address)
    )
    await asyncio.sleep(0)
    a.close()
    with pytest.raises(TransactionTimeout, match="closed"):
        await asyncio.wait_for(pending, WAIT)
    a.close()
    with pytest.raises(RuntimeError, match="closed"):
        a.send_request(request("OPTIONS", LOCAL, b.local_address), b.local_address)


async def test_debug_log_masks_credentials(
    open_transport: Opener, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG, logger="gateway.sip.transport")
    server = Server()
    b = await serve(open_transport, server)
    a = await open_transport(lambda event: None)
    secret = (
        'Authorization: Digest username="alice", response="6629fae49393a05397450978507c4ef1"\r\n'
    )
    await a.request(
        request("OPTIONS", a.local_address, b.local_address, extra=secret), b.local_address
    )
    logged = "\n".join(r.getMessage() for r in caplog.records)
    assert "Authorization: ***" in logged
    assert "6629fae4" not in logged
    assert logged.count("OPTIONS sip:gw@") == 2  # sent by a, received by b


async def test_malformed_datagram_log_is_rate_limited(
    open_transport: Opener, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="gateway.sip.transport")
    server = Server()
    b = await serve(open_transport, server)
    a = await open_transport(lambda event: None)
    for _ in range(3):
        a.send_raw(b"\x00garbage", b.local_address)
    await a.request(request("OPTIONS", a.local_address, b.local_address), b.local_address)
    lines = [r for r in caplog.records if r.getMessage().startswith("malformed SIP datagram")]
    assert [r.levelno for r in lines] == [logging.INFO]

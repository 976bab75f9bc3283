"""RFC 3261 §17 / RFC 6026 transactions, driven by an explicit clock (no sleeping)."""

from __future__ import annotations

import math

import pytest

from gateway.sip.message import SipRequest, SipResponse, Via, make_response, parse_message
from gateway.sip.transaction import (
    AckNotReceived,
    AckReceived,
    Address,
    ClientTransaction,
    Event,
    RequestReceived,
    ResponseReceived,
    ServerTransaction,
    TransactionLayer,
    TransactionTimedOut,
    TxState,
    response_destination,
    set_received,
)

PEER: Address = ("192.0.2.10", 5060)  # the other user agent
US = "192.0.2.1"

OUR_INVITE = """\
INVITE sip:bob@192.0.2.20 SIP/2.0
Via: SIP/2.0/UDP 192.0.2.1:5060;branch=z9hG4bKc1;rport
Max-Forwards: 70
Route: <sip:proxy.example.com;lr>
From: "Alice" <sip:alice@example.com>;tag=a1
To: <sip:bob@example.com>
Call-ID: call-1@192.0.2.1
CSeq: 7 INVITE
Contact: <sip:alice@192.0.2.1:5060>
"""


def parse(text: str, body: bytes = b"") -> SipRequest | SipResponse:
    return parse_message(text.replace("\n", "\r\n").encode() + b"\r\n" + body)


def req(text: str) -> SipRequest:
    msg = parse(text)
    assert isinstance(msg, SipRequest)
    return msg


def peer_request(
    method: str = "INVITE",
    *,
    branch: str | None = "z9hG4bKp1",
    via: str = "192.0.2.10:5060",
    cseq: int = 1,
    to_tag: str | None = None,
    uri: str = "sip:gw@192.0.2.1",
    transport: str = "UDP",
) -> SipRequest:
    """A request as a peer would send it to us."""
    branch_param = f";branch={branch}" if branch else ""
    to = "<sip:gw@192.0.2.1>" + (f";tag={to_tag}" if to_tag else "")
    return req(
        f"{method} {uri} SIP/2.0\n"
        f"Via: SIP/2.0/{transport} {via}{branch_param}\n"
        "Max-Forwards: 70\n"
        "From: <sip:ata@192.0.2.10>;tag=f1\n"
        f"To: {to}\n"
        "Call-ID: peer-call\n"
        f"CSeq: {cseq} {method}\n"
    )


def run(layer: TransactionLayer, until: float = math.inf) -> tuple[list[float], list[Event]]:
    """Fire every timer up to ``until``: (times a datagram left, events)."""
    sent: list[float] = []
    events: list[Event] = []
    while (at := layer.next_deadline()) is not None and at <= until:
        events += layer.handle_timers(at)
        sent += [at] * len(layer.datagrams_to_send())
    return sent, events


def client_invite(layer: TransactionLayer, **kwargs: bool) -> ClientTransaction:
    tx = layer.send_request(req(OUR_INVITE), ("192.0.2.20", 5060), 0.0, **kwargs)
    assert layer.datagrams_to_send() == [(bytes(tx.request), ("192.0.2.20", 5060))]
    return tx


def answer(request: SipRequest, status: int, to_tag: str | None = "b2") -> SipResponse:
    """The peer's response to our request, as it comes back over the wire."""
    response = parse_message(bytes(make_response(request, status, to_tag=to_tag)))
    assert isinstance(response, SipResponse)
    return response


def state(tx: ClientTransaction | ServerTransaction) -> TxState:
    """The state, read through a call so mypy does not narrow it between steps."""
    return tx.state


def server_tx(events: list[Event]) -> ServerTransaction:
    assert len(events) == 1 and isinstance(events[0], RequestReceived)
    return events[0].transaction


# --- client INVITE (§17.1.1) ------------------------------------------------------


def test_invite_retransmits_then_times_out() -> None:
    layer = TransactionLayer()
    tx = client_invite(layer)
    sent, events = run(layer)
    assert sent == [0.5, 1.5, 3.5, 7.5, 15.5, 31.5]
    assert events == [TransactionTimedOut(tx)]
    assert state(tx) is TxState.TERMINATED
    assert layer.stats.retransmissions == 6
    assert layer.next_deadline() is None


def test_invite_timer_b_fires_at_64_t1() -> None:
    layer = TransactionLayer()
    tx = client_invite(layer)
    assert run(layer, until=31.9)[1] == []
    assert layer.next_deadline() == 32.0
    assert layer.handle_timers(32.0) == [TransactionTimedOut(tx)]


def test_invite_retransmission_is_byte_identical() -> None:
    layer = TransactionLayer()
    tx = client_invite(layer)
    layer.handle_timers(0.5)
    assert layer.datagrams_to_send() == [(bytes(tx.request), ("192.0.2.20", 5060))]


def test_invite_provisional_stops_timer_a_and_b() -> None:
    layer = TransactionLayer()
    tx = client_invite(layer)
    ringing = answer(tx.request, 180)
    assert layer.receive(ringing, ("192.0.2.20", 5060), 0.2) == [ResponseReceived(ringing, tx)]
    assert state(tx) is TxState.PROCEEDING
    assert layer.next_deadline() is None
    assert layer.datagrams_to_send() == []


def test_invite_486_is_acked_with_the_response_to_tag_and_same_branch() -> None:
    layer = TransactionLayer()
    tx = client_invite(layer)
    busy = answer(tx.request, 486)
    assert layer.receive(busy, ("192.0.2.20", 5060), 0.1) == [ResponseReceived(busy, tx)]
    ack = (
        b"ACK sip:bob@192.0.2.20 SIP/2.0\r\n"
        b"Via: SIP/2.0/UDP 192.0.2.1:5060;branch=z9hG4bKc1;rport\r\n"
        b"Max-Forwards: 70\r\n"
        b'From: "Alice" <sip:alice@example.com>;tag=a1\r\n'
        b"To: <sip:bob@example.com>;tag=b2\r\n"
        b"Call-ID: call-1@192.0.2.1\r\n"
        b"CSeq: 7 ACK\r\n"
        b"Route: <sip:proxy.example.com;lr>\r\n"
        b"Content-Length: 0\r\n\r\n"
    )
    assert layer.datagrams_to_send() == [(ack, ("192.0.2.20", 5060))]
    assert state(tx) is TxState.COMPLETED
    assert layer.next_deadline() == pytest.approx(32.1)
    # The 486 is retransmitted (our ACK was lost): re-ACK, nothing for the TU.
    assert layer.receive(busy, ("192.0.2.20", 5060), 0.6) == []
    assert layer.datagrams_to_send() == [(ack, ("192.0.2.20", 5060))]
    assert layer.stats.absorbed == 1
    assert run(layer) == ([], [])
    assert state(tx) is TxState.TERMINATED
    assert layer.receive(busy, ("192.0.2.20", 5060), 40.0) == []
    assert layer.stats.stray == 1


def test_invite_2xx_enters_accepted_and_passes_retransmissions_up() -> None:
    layer = TransactionLayer()
    tx = client_invite(layer)
    ok = answer(tx.request, 200)
    assert layer.receive(ok, ("192.0.2.20", 5060), 1.0) == [ResponseReceived(ok, tx)]
    assert state(tx) is TxState.ACCEPTED
    assert layer.datagrams_to_send() == []  # the ACK of a 2xx is the TU's (§13.2.2.4)
    # Each 2xx retransmission goes up so the TU re-sends its ACK (RFC 6026 Timer M).
    assert layer.receive(ok, ("192.0.2.20", 5060), 2.0) == [ResponseReceived(ok, tx)]
    fork = answer(tx.request, 200, to_tag="other")
    assert layer.receive(fork, ("192.0.2.20", 5060), 3.0) == [ResponseReceived(fork, tx)]
    assert layer.next_deadline() == 33.0
    assert run(layer) == ([], [])
    assert state(tx) is TxState.TERMINATED


def test_invite_late_provisional_after_final_is_ignored() -> None:
    layer = TransactionLayer()
    tx = client_invite(layer)
    layer.receive(answer(tx.request, 200), ("192.0.2.20", 5060), 1.0)
    assert layer.receive(answer(tx.request, 180), ("192.0.2.20", 5060), 1.1) == []
    assert state(tx) is TxState.ACCEPTED


# --- client non-INVITE (§17.1.2) -----------------------------------------------------

OUR_OPTIONS = OUR_INVITE.replace("INVITE", "OPTIONS").replace("z9hG4bKc1", "z9hG4bKo1")


def client_options(layer: TransactionLayer, **kwargs: bool) -> ClientTransaction:
    tx = layer.send_request(req(OUR_OPTIONS), ("192.0.2.20", 5060), 0.0, **kwargs)
    layer.datagrams_to_send()
    return tx


def test_non_invite_timer_e_is_capped_at_t2() -> None:
    layer = TransactionLayer()
    tx = client_options(layer)
    sent, events = run(layer)
    assert sent == [0.5, 1.5, 3.5, 7.5, 11.5, 15.5, 19.5, 23.5, 27.5, 31.5]
    assert events == [TransactionTimedOut(tx)]


def test_non_invite_retransmits_every_t2_after_provisional() -> None:
    layer = TransactionLayer()
    tx = client_options(layer)
    assert run(layer, until=1.0)[0] == [0.5]
    trying = answer(tx.request, 100, to_tag=None)
    assert layer.receive(trying, ("192.0.2.20", 5060), 1.0) == [ResponseReceived(trying, tx)]
    assert state(tx) is TxState.PROCEEDING
    sent, events = run(layer)
    # Timer E was already set for 1.5; from then on it is reset to T2 (§17.1.2.2).
    assert sent == [1.5, 5.5, 9.5, 13.5, 17.5, 21.5, 25.5, 29.5]
    assert events == [TransactionTimedOut(tx)]  # Timer F still runs in Proceeding


def test_non_invite_final_then_timer_k() -> None:
    layer = TransactionLayer()
    tx = client_options(layer)
    ok = answer(tx.request, 200)
    assert layer.receive(ok, ("192.0.2.20", 5060), 0.2) == [ResponseReceived(ok, tx)]
    assert state(tx) is TxState.COMPLETED
    assert layer.next_deadline() == pytest.approx(5.2)  # Timer K = T4
    assert layer.receive(ok, ("192.0.2.20", 5060), 1.0) == []  # retransmission absorbed
    assert layer.datagrams_to_send() == []
    assert run(layer) == ([], [])
    assert state(tx) is TxState.TERMINATED


def test_send_request_rejects_misuse() -> None:
    layer = TransactionLayer()
    client_invite(layer)
    with pytest.raises(ValueError, match="already in use"):
        layer.send_request(req(OUR_INVITE), ("192.0.2.20", 5060), 0.0)
    with pytest.raises(ValueError, match="RFC 3261 branch"):
        layer.send_request(peer_request(branch="1234"), PEER, 0.0)
    with pytest.raises(ValueError, match="send_stateless"):
        layer.send_request(peer_request("ACK"), PEER, 0.0)


# --- reliable transports: no retransmissions, no lingering ---------------------------


def test_reliable_invite_has_only_timer_b() -> None:
    layer = TransactionLayer()
    tx = client_invite(layer, reliable=True)
    assert run(layer) == ([], [TransactionTimedOut(tx)])
    assert layer.stats.retransmissions == 0


def test_reliable_invite_486_terminates_at_once_after_ack() -> None:
    layer = TransactionLayer()
    tx = client_invite(layer, reliable=True)
    layer.receive(answer(tx.request, 486), ("192.0.2.20", 5060), 1.0)
    assert [data[:4] for data, _ in layer.datagrams_to_send()] == [b"ACK "]
    assert state(tx) is TxState.TERMINATED  # Timer D = 0
    assert layer.next_deadline() is None


def test_reliable_non_invite_terminates_on_final() -> None:
    layer = TransactionLayer()
    tx = client_options(layer, reliable=True)
    assert layer.next_deadline() == 32.0  # Timer F only
    layer.receive(answer(tx.request, 200), ("192.0.2.20", 5060), 1.0)
    assert state(tx) is TxState.TERMINATED  # Timer K = 0
    assert layer.next_deadline() is None


def test_reliable_server_486_has_no_timer_g_and_no_timer_i() -> None:
    layer = TransactionLayer()
    tx = server_tx(layer.receive(peer_request(transport="TCP"), PEER, 0.0))
    assert tx.reliable
    layer.send_response(tx, make_response(tx.request, 486, to_tag="t"), 0.0)
    layer.datagrams_to_send()
    assert layer.next_deadline() == 32.0  # Timer H only
    ack = peer_request("ACK", transport="TCP", to_tag="t")
    assert layer.receive(ack, PEER, 1.0) == []
    assert state(tx) is TxState.TERMINATED


def test_reliable_server_still_retransmits_2xx() -> None:
    # §13.3.1.4: the 2xx is retransmitted end to end whatever the first hop.
    layer = TransactionLayer()
    tx = server_tx(layer.receive(peer_request(transport="TCP"), PEER, 0.0))
    layer.send_response(tx, make_response(tx.request, 200, to_tag="t"), 0.0)
    layer.datagrams_to_send()
    assert run(layer, until=4.0)[0] == [0.5, 1.5, 3.5]


# --- CANCEL (§9.1) --------------------------------------------------------------------

CANCEL_BYTES = (
    b"CANCEL sip:bob@192.0.2.20 SIP/2.0\r\n"
    b"Via: SIP/2.0/UDP 192.0.2.1:5060;branch=z9hG4bKc1;rport\r\n"
    b"Max-Forwards: 70\r\n"
    b'From: "Alice" <sip:alice@example.com>;tag=a1\r\n'
    b"To: <sip:bob@example.com>\r\n"
    b"Call-ID: call-1@192.0.2.1\r\n"
    b"CSeq: 7 CANCEL\r\n"
    b"Route: <sip:proxy.example.com;lr>\r\n"
    b"Content-Length: 0\r\n\r\n"
)


def test_cancel_after_provisional_is_sent_at_once() -> None:
    layer = TransactionLayer()
    tx = client_invite(layer)
    layer.receive(answer(tx.request, 180), ("192.0.2.20", 5060), 0.2)
    cancel = layer.cancel(tx, 1.0)
    assert isinstance(cancel, ClientTransaction)
    assert layer.datagrams_to_send() == [(CANCEL_BYTES, ("192.0.2.20", 5060))]
    assert layer.cancel(tx, 1.1) is cancel  # idempotent
    assert layer.datagrams_to_send() == []
    ok = answer(cancel.request, 200)
    assert layer.receive(ok, ("192.0.2.20", 5060), 1.1) == [ResponseReceived(ok, cancel)]
    terminated = answer(tx.request, 487)
    assert layer.receive(terminated, ("192.0.2.20", 5060), 1.2) == [
        ResponseReceived(terminated, tx)
    ]
    assert layer.datagrams_to_send()[0][0].startswith(b"ACK sip:bob@192.0.2.20 SIP/2.0\r\n")


def test_cancel_before_provisional_waits_for_one() -> None:
    layer = TransactionLayer()
    tx = client_invite(layer)
    cancel = layer.cancel(tx, 0.2)
    assert cancel is not None and state(cancel) is TxState.TRYING
    assert layer.datagrams_to_send() == []
    assert run(layer, until=1.0)[0] == [0.5]  # only the INVITE retransmission
    ringing = answer(tx.request, 180)
    assert layer.receive(ringing, ("192.0.2.20", 5060), 1.2) == [ResponseReceived(ringing, tx)]
    assert layer.datagrams_to_send() == [(CANCEL_BYTES, ("192.0.2.20", 5060))]
    # The CANCEL is a non-INVITE transaction of its own: Timer E from 1.2.
    assert layer.next_deadline() == pytest.approx(1.7)


def test_cancel_pending_is_dropped_when_a_final_comes_first() -> None:
    layer = TransactionLayer()
    tx = client_invite(layer)
    cancel = layer.cancel(tx, 0.2)
    assert cancel is not None
    layer.receive(answer(tx.request, 200), ("192.0.2.20", 5060), 0.3)
    assert state(cancel) is TxState.TERMINATED
    assert layer.datagrams_to_send() == []
    assert layer.cancel(tx, 0.4) is cancel


def test_cancel_after_final_returns_none() -> None:
    layer = TransactionLayer()
    tx = client_invite(layer)
    layer.receive(answer(tx.request, 486), ("192.0.2.20", 5060), 0.3)
    assert layer.cancel(tx, 0.4) is None
    options = client_options(layer)
    with pytest.raises(ValueError, match="only an INVITE"):
        layer.cancel(options, 0.5)


def test_no_final_64_t1_after_cancel_times_the_invite_out() -> None:
    layer = TransactionLayer()
    tx = client_invite(layer)
    layer.receive(answer(tx.request, 180), ("192.0.2.20", 5060), 0.2)
    cancel = layer.cancel(tx, 10.0)
    assert cancel is not None
    layer.receive(answer(cancel.request, 200), ("192.0.2.20", 5060), 10.1)
    layer.receive(answer(tx.request, 183), ("192.0.2.20", 5060), 11.0)  # keeps the wait
    sent, events = run(layer)
    assert events == [TransactionTimedOut(tx)]
    assert layer.next_deadline() is None


# --- server INVITE (§17.2.1, RFC 6026) ---------------------------------------------


def test_invite_server_new_request_event() -> None:
    layer = TransactionLayer()
    invite = peer_request()
    events = layer.receive(invite, PEER, 0.0)
    tx = server_tx(events)
    assert events == [RequestReceived(invite, PEER, tx, None)]
    assert state(tx) is TxState.PROCEEDING and tx.destination == PEER


def test_100_trying_after_200_ms() -> None:
    layer = TransactionLayer()
    tx = server_tx(layer.receive(peer_request(), PEER, 0.0))
    assert layer.next_deadline() == 0.2
    assert layer.handle_timers(0.2) == []
    [(data, dest)] = layer.datagrams_to_send()
    assert dest == PEER
    trying = parse_message(data)
    assert isinstance(trying, SipResponse) and trying.status == 100
    assert trying.to_addr.tag is None and trying.cseq.method == "INVITE"
    assert tx.last_response is not None and tx.last_response.status == 100
    assert layer.next_deadline() is None


def test_no_100_trying_when_the_tu_answers_quickly() -> None:
    layer = TransactionLayer()
    tx = server_tx(layer.receive(peer_request(), PEER, 0.0))
    layer.send_response(tx, make_response(tx.request, 180, to_tag="t"), 0.1)
    assert [dest for _, dest in layer.datagrams_to_send()] == [PEER]
    assert layer.next_deadline() is None


def test_retransmitted_invite_is_absorbed_and_last_provisional_resent() -> None:
    layer = TransactionLayer()
    tx = server_tx(layer.receive(peer_request(), PEER, 0.0))
    assert layer.receive(peer_request(), PEER, 0.1) == []  # nothing to re-send yet
    assert layer.datagrams_to_send() == []
    ringing = make_response(tx.request, 180, to_tag="t")
    layer.send_response(tx, ringing, 0.15)
    assert layer.datagrams_to_send() == [(bytes(ringing), PEER)]
    assert layer.receive(peer_request(), PEER, 0.6) == []
    assert layer.datagrams_to_send() == [(bytes(ringing), PEER)]
    assert layer.stats.absorbed == 2


def test_2xx_retransmitted_until_64_t1_then_ack_not_received() -> None:
    layer = TransactionLayer()
    tx = server_tx(layer.receive(peer_request(), PEER, 0.0))
    layer.send_response(tx, make_response(tx.request, 200, to_tag="t"), 0.0)
    assert state(tx) is TxState.ACCEPTED
    layer.datagrams_to_send()
    sent, events = run(layer)
    assert sent == [0.5, 1.5, 3.5, 7.5, 11.5, 15.5, 19.5, 23.5, 27.5, 31.5]
    assert events == [AckNotReceived(tx)]
    assert state(tx) is TxState.TERMINATED


def test_2xx_ack_stops_retransmission_and_goes_to_the_tu() -> None:
    layer = TransactionLayer()
    tx = server_tx(layer.receive(peer_request(), PEER, 0.0))
    ok = make_response(tx.request, 200, to_tag="t")
    layer.send_response(tx, ok, 0.0)
    layer.datagrams_to_send()
    assert run(layer, until=2.0)[0] == [0.5, 1.5]
    # A retransmitted INVITE before the ACK gets the 2xx again.
    assert layer.receive(peer_request(), PEER, 2.1) == []
    assert layer.datagrams_to_send() == [(bytes(ok), PEER)]
    # The ACK of a 2xx is a new transaction (new branch): it goes to the TU.
    ack = peer_request("ACK", branch="z9hG4bKack", to_tag="t", uri="sip:gw@192.0.2.1:5060")
    assert layer.receive(ack, PEER, 2.2) == [AckReceived(ack, PEER)]
    assert tx.acked and state(tx) is TxState.ACCEPTED
    assert layer.receive(peer_request(), PEER, 2.3) == []  # absorbed, not re-answered
    assert run(layer) == ([], [])  # no more 2xx, no AckNotReceived at 32 s
    assert state(tx) is TxState.TERMINATED


def test_ack_reusing_the_invite_branch_for_a_2xx_goes_to_the_tu() -> None:
    layer = TransactionLayer()
    tx = server_tx(layer.receive(peer_request(), PEER, 0.0))
    layer.send_response(tx, make_response(tx.request, 200, to_tag="t"), 0.0)
    ack = peer_request("ACK", to_tag="t")
    assert layer.receive(ack, PEER, 0.3) == [AckReceived(ack, PEER)]
    assert tx.acked


def test_ack_with_unknown_dialog_goes_to_the_tu() -> None:
    layer = TransactionLayer()
    ack = peer_request("ACK", branch="z9hG4bKlost", to_tag="nope")
    assert layer.receive(ack, PEER, 0.0) == [AckReceived(ack, PEER)]


def test_486_retransmitted_with_timer_g_until_ack_then_timer_i() -> None:
    layer = TransactionLayer()
    tx = server_tx(layer.receive(peer_request(), PEER, 0.0))
    busy = make_response(tx.request, 486, to_tag="t")
    layer.send_response(tx, busy, 0.0)
    assert state(tx) is TxState.COMPLETED
    assert layer.datagrams_to_send() == [(bytes(busy), PEER)]
    layer.handle_timers(0.5)
    assert layer.datagrams_to_send() == [(bytes(busy), PEER)]
    assert run(layer, until=4.0)[0] == [1.5, 3.5]
    ack = peer_request("ACK", to_tag="t")
    assert layer.receive(ack, PEER, 4.0) == []  # absorbed by the transaction
    assert state(tx) is TxState.CONFIRMED and tx.acked
    assert layer.next_deadline() == 9.0  # Timer I = T4
    assert layer.receive(ack, PEER, 5.0) == []
    assert layer.receive(peer_request(), PEER, 5.1) == []  # late INVITE: absorbed, silent
    assert layer.datagrams_to_send() == []
    assert run(layer) == ([], [])
    assert state(tx) is TxState.TERMINATED


def test_486_without_ack_times_out_with_timer_h() -> None:
    layer = TransactionLayer()
    tx = server_tx(layer.receive(peer_request(), PEER, 0.0))
    layer.send_response(tx, make_response(tx.request, 486, to_tag="t"), 0.0)
    layer.datagrams_to_send()
    sent, events = run(layer)
    assert sent == [0.5, 1.5, 3.5, 7.5, 11.5, 15.5, 19.5, 23.5, 27.5, 31.5]
    assert events == [TransactionTimedOut(tx)]


def test_responses_the_state_no_longer_allows_are_dropped() -> None:
    layer = TransactionLayer()
    tx = server_tx(layer.receive(peer_request(), PEER, 0.0))
    layer.send_response(tx, make_response(tx.request, 200, to_tag="t"), 0.0)
    layer.datagrams_to_send()
    layer.send_response(tx, make_response(tx.request, 487, to_tag="t"), 0.1)  # crossed CANCEL
    assert layer.datagrams_to_send() == []
    assert state(tx) is TxState.ACCEPTED
    assert tx.last_response is not None and tx.last_response.status == 200


# --- server CANCEL (§9.2) --------------------------------------------------------------


def test_cancel_matching_an_invite_names_it() -> None:
    layer = TransactionLayer()
    invite_tx = server_tx(layer.receive(peer_request(), PEER, 0.0))
    cancel = peer_request("CANCEL")
    events = layer.receive(cancel, PEER, 1.0)
    cancel_tx = server_tx(events)
    assert events == [RequestReceived(cancel, PEER, cancel_tx, invite_tx)]
    assert cancel_tx is not invite_tx and not cancel_tx.is_invite
    assert layer.find_invite_server(cancel) is invite_tx
    # The CANCEL's own retransmission is absorbed like any non-INVITE request.
    layer.send_response(cancel_tx, make_response(cancel, 200, to_tag="t"), 1.0)
    assert layer.receive(peer_request("CANCEL"), PEER, 1.5) == []
    assert [d[:14] for d, _ in layer.datagrams_to_send()] == [b"SIP/2.0 200 OK"] * 2


def test_cancel_for_an_unknown_invite_gets_none() -> None:
    layer = TransactionLayer()
    layer.receive(peer_request(branch="z9hG4bKother"), PEER, 0.0)
    cancel = peer_request("CANCEL")
    events = layer.receive(cancel, PEER, 1.0)
    assert events == [RequestReceived(cancel, PEER, server_tx(events), None)]
    assert layer.find_invite_server(cancel) is None


# --- server non-INVITE (§17.2.2) -----------------------------------------------------


def test_non_invite_server_absorbs_and_lingers_timer_j() -> None:
    layer = TransactionLayer()
    tx = server_tx(layer.receive(peer_request("OPTIONS"), PEER, 0.0))
    assert layer.receive(peer_request("OPTIONS"), PEER, 0.4) == []  # Trying: nothing to send
    assert layer.datagrams_to_send() == []
    ok = make_response(tx.request, 200, to_tag="t")
    layer.send_response(tx, ok, 1.0)
    assert state(tx) is TxState.COMPLETED
    assert layer.receive(peer_request("OPTIONS"), PEER, 1.5) == []
    assert layer.datagrams_to_send() == [(bytes(ok), PEER), (bytes(ok), PEER)]
    assert layer.next_deadline() == 33.0  # Timer J = 64*T1
    assert run(layer) == ([], [])
    assert state(tx) is TxState.TERMINATED


def test_non_invite_server_provisional_is_resent() -> None:
    layer = TransactionLayer()
    tx = server_tx(layer.receive(peer_request("REGISTER"), PEER, 0.0))
    trying = make_response(tx.request, 100)
    layer.send_response(tx, trying, 0.1)
    assert state(tx) is TxState.PROCEEDING
    layer.receive(peer_request("REGISTER"), PEER, 0.6)
    assert layer.datagrams_to_send() == [(bytes(trying), PEER)] * 2


def test_unanswered_non_invite_is_forgotten_after_64_t1() -> None:
    layer = TransactionLayer()
    tx = server_tx(layer.receive(peer_request("OPTIONS"), PEER, 0.0))
    assert layer.next_deadline() == 32.0
    assert run(layer) == ([], [])
    assert state(tx) is TxState.TERMINATED
    assert layer.next_deadline() is None
    # Nothing left: the same request is new again, and a late answer is dropped.
    layer.send_response(tx, make_response(tx.request, 200, to_tag="t"), 33.0)
    assert layer.datagrams_to_send() == []
    assert len(layer.receive(peer_request("OPTIONS"), PEER, 40.0)) == 1


# --- stray responses, RFC 2543 peers -------------------------------------------------


def test_stray_responses_give_no_event() -> None:
    layer = TransactionLayer()
    tx = client_invite(layer)
    unknown = answer(peer_request(branch="z9hG4bKnobody"), 200)
    assert layer.receive(unknown, ("192.0.2.20", 5060), 0.1) == []
    wrong_method = answer(
        req(OUR_INVITE.replace("7 INVITE", "7 INFO").replace("INVITE ", "INFO ")), 200
    )
    assert layer.receive(wrong_method, ("192.0.2.20", 5060), 0.1) == []
    assert layer.stats.stray == 2
    assert state(tx) is TxState.CALLING


def test_rfc2543_peer_without_cookie_is_matched_by_request_identity() -> None:
    layer = TransactionLayer()
    invite = peer_request(branch=None)
    tx = server_tx(layer.receive(invite, PEER, 0.0))
    assert layer.receive(peer_request(branch=None), PEER, 0.5) == []  # retransmission
    other = layer.receive(peer_request(branch=None, cseq=2), PEER, 0.6)  # a new request
    assert server_tx(other) is not tx
    cancel = peer_request("CANCEL", branch=None)
    assert server_tx(layer.receive(cancel, PEER, 0.7)) is not tx
    assert layer.find_invite_server(cancel) is tx
    layer.send_response(tx, make_response(tx.request, 487, to_tag="t"), 0.8)
    # The ACK of the 487 carries the To tag; it still matches the INVITE.
    assert layer.receive(peer_request("ACK", branch=None, to_tag="t"), PEER, 0.9) == []
    assert state(tx) is TxState.CONFIRMED


def test_rfc2543_branch_without_cookie_is_part_of_the_key() -> None:
    layer = TransactionLayer()
    tx = server_tx(layer.receive(peer_request(branch="1"), PEER, 0.0))
    assert layer.receive(peer_request(branch="1"), PEER, 0.5) == []
    assert server_tx(layer.receive(peer_request(branch="2"), PEER, 0.6)) is not tx


def test_same_branch_from_another_sent_by_is_another_transaction() -> None:
    layer = TransactionLayer()
    tx = server_tx(layer.receive(peer_request(), PEER, 0.0))
    other = peer_request(via="192.0.2.99:5060")
    assert server_tx(layer.receive(other, ("192.0.2.99", 5060), 0.1)) is not tx


# --- Via: received, rport and where responses go (§18.2, RFC 3581) ---------------------


def test_rport_and_received_are_filled_and_used() -> None:
    layer = TransactionLayer()
    invite = peer_request(via="192.168.1.10:5060;rport")
    tx = server_tx(layer.receive(invite, ("203.0.113.5", 40000), 0.0))
    assert invite.headers.get("Via") == (
        "SIP/2.0/UDP 192.168.1.10:5060;rport=40000;branch=z9hG4bKp1;received=203.0.113.5"
    )
    assert tx.destination == ("203.0.113.5", 40000)
    ok = make_response(invite, 200, to_tag="t")
    layer.send_response(tx, ok, 0.0)
    [(data, dest)] = layer.datagrams_to_send()
    assert dest == ("203.0.113.5", 40000)
    assert (
        b"\r\nVia: SIP/2.0/UDP 192.168.1.10:5060;rport=40000;branch=z9hG4bKp1;received=203" in data
    )


def test_received_without_rport_keeps_the_via_port() -> None:
    layer = TransactionLayer()
    invite = peer_request(via="192.168.1.10:5070")
    tx = server_tx(layer.receive(invite, ("203.0.113.5", 40000), 0.0))
    assert invite.top_via.received == "203.0.113.5"
    assert tx.destination == ("203.0.113.5", 5070)


def test_rport_with_same_host_still_gets_received() -> None:
    invite = peer_request(via="192.0.2.10;rport")
    set_received(invite, ("192.0.2.10", 5062))
    assert str(invite.top_via) == (
        "SIP/2.0/UDP 192.0.2.10;rport=5062;branch=z9hG4bKp1;received=192.0.2.10"
    )
    assert response_destination(invite.top_via) == ("192.0.2.10", 5062)


def test_via_matching_the_source_is_left_alone() -> None:
    invite = peer_request(via="192.0.2.10")
    before = bytes(invite)
    set_received(invite, PEER)
    assert bytes(invite) == before
    assert response_destination(invite.top_via) == ("192.0.2.10", 5060)


def test_hostname_via_gets_received() -> None:
    invite = peer_request(via="ata.home.arpa:5062")
    set_received(invite, ("192.168.1.20", 5062))
    assert invite.top_via.received == "192.168.1.20"
    assert response_destination(invite.top_via) == ("192.168.1.20", 5062)


def test_spoofed_received_is_dropped() -> None:
    invite = peer_request(via="192.0.2.10;received=198.51.100.66")
    set_received(invite, PEER)
    assert invite.top_via.received is None
    assert response_destination(invite.top_via) == PEER


def test_only_the_top_via_changes_and_order_is_kept() -> None:
    invite = req(
        "INVITE sip:gw@192.0.2.1 SIP/2.0\n"
        "Via: SIP/2.0/UDP proxy.example.com;branch=z9hG4bKtop, "
        "SIP/2.0/UDP 10.0.0.2;branch=z9hG4bKx\n"
        "From: <sip:a@example.com>;tag=1\n"
        "Via: SIP/2.0/UDP 10.0.0.3;branch=z9hG4bKy\n"
        "To: <sip:gw@192.0.2.1>\n"
        "Call-ID: c\n"
        "CSeq: 1 INVITE\n"
    )
    set_received(invite, ("198.51.100.7", 5060))
    assert invite.headers.items()[:2] == [
        (
            "Via",
            (
                "SIP/2.0/UDP proxy.example.com;branch=z9hG4bKtop;received=198.51.100.7, "
                "SIP/2.0/UDP 10.0.0.2;branch=z9hG4bKx"
            ),
        ),
        ("From", "<sip:a@example.com>;tag=1"),
    ]
    assert [str(v) for v in invite.vias][1:] == [
        "SIP/2.0/UDP 10.0.0.2;branch=z9hG4bKx",
        "SIP/2.0/UDP 10.0.0.3;branch=z9hG4bKy",
    ]


@pytest.mark.parametrize(
    ("via", "expected"),
    [
        ("SIP/2.0/UDP 192.0.2.10", ("192.0.2.10", 5060)),
        ("SIP/2.0/UDP 192.0.2.10:5070;maddr=224.0.1.75", ("192.0.2.10", 5070)),
        ("SIP/2.0/UDP 192.0.2.10:5070;received=203.0.113.5;rport=1024", ("203.0.113.5", 1024)),
        ("SIP/2.0/UDP [2001:db8::1]:5070;rport", ("2001:db8::1", 5070)),
        ("SIP/2.0/UDP [2001:db8::1];received=2001:db8::9;rport=7000", ("2001:db8::9", 7000)),
        ("SIP/2.0/TLS example.com", ("example.com", 5061)),
    ],
)
def test_response_destination(via: str, expected: Address) -> None:
    assert response_destination(Via.parse(via)) == expected


def test_ipv6_source_is_recognised_as_the_via_host() -> None:
    invite = peer_request(via="[2001:db8::10]:5060")
    set_received(invite, ("2001:db8:0:0::10", 5060))
    assert invite.top_via.received is None


def test_unusable_headers_are_dropped_not_raised() -> None:
    layer = TransactionLayer()
    invite = peer_request()
    invite.headers.set("Via", "SIP/3.0 nonsense")
    assert layer.receive(invite, PEER, 0.0) == []
    response = answer(req(OUR_INVITE), 200)
    response.headers.set("CSeq", "seven INVITE")
    assert layer.receive(response, PEER, 0.0) == []
    assert layer.next_deadline() is None

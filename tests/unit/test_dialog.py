"""Dialog creation and in-dialog requests (RFC 3261 §12)."""

from __future__ import annotations

import pytest

from gateway.sip.dialog import CSeqOrderError, Dialog
from gateway.sip.message import Address, Via, make_response, parse_message
from gateway.sip.uri import SipUri

INVITE = (
    b"INVITE sip:600@192.0.2.10 SIP/2.0\r\n"
    b"Via: SIP/2.0/UDP 192.0.2.20:5062;branch=z9hG4bKabc;rport\r\n"
    b"Via: SIP/2.0/UDP 192.0.2.30;branch=z9hG4bKdef\r\n"
    b"Record-Route: <sip:p2.example.net;lr>\r\n"
    b"Record-Route: <sip:p1.example.net;lr>\r\n"
    b'From: "Alice" <sip:alice@example.net>;tag=a1\r\n'
    b"To: <sip:600@192.0.2.10>\r\n"
    b"Call-ID: call-1@example.net\r\n"
    b"CSeq: 314 INVITE\r\n"
    b"Contact: <sip:alice@192.0.2.30:5070>\r\n"
    b"Content-Length: 0\r\n\r\n"
)

OUR_VIA = Via("UDP", "192.0.2.10", 5060, {"rport": None})
OUR_CONTACT = Address(uri=SipUri(host="192.0.2.10", user="linegram", port=5060))


def uas_dialog() -> Dialog:
    invite = parse_message(INVITE)
    assert invite.__class__.__name__ == "SipRequest"
    response = make_response(invite, 200, to_tag="b2")  # type: ignore[arg-type]
    return Dialog.from_uas(invite, response, OUR_CONTACT)  # type: ignore[arg-type]


def test_uas_dialog_takes_route_set_in_order_and_remote_target_from_contact() -> None:
    dialog = uas_dialog()
    assert dialog.call_id == "call-1@example.net"
    assert (dialog.local_tag, dialog.remote_tag) == ("b2", "a1")
    assert [str(r.uri) for r in dialog.route_set] == [
        "sip:p2.example.net;lr",
        "sip:p1.example.net;lr",
    ]
    assert str(dialog.remote_target) == "sip:alice@192.0.2.30:5070"
    assert dialog.remote_seq == 314


def test_uac_dialog_reverses_record_route() -> None:
    invite = parse_message(INVITE)
    response = parse_message(
        b"SIP/2.0 200 OK\r\n"
        b"Via: SIP/2.0/UDP 192.0.2.20:5062;branch=z9hG4bKabc\r\n"
        b"Record-Route: <sip:p2.example.net;lr>, <sip:p1.example.net;lr>\r\n"
        b'From: "Alice" <sip:alice@example.net>;tag=a1\r\n'
        b"To: <sip:600@192.0.2.10>;tag=b2\r\n"
        b"Call-ID: call-1@example.net\r\n"
        b"CSeq: 314 INVITE\r\n"
        b"Contact: <sip:600@192.0.2.10:5080>\r\n\r\n"
    )
    dialog = Dialog.from_uac(invite, response)  # type: ignore[arg-type]
    assert [str(r.uri) for r in dialog.route_set] == [
        "sip:p1.example.net;lr",
        "sip:p2.example.net;lr",
    ]
    assert str(dialog.remote_target) == "sip:600@192.0.2.10:5080"
    assert (dialog.local_tag, dialog.remote_tag, dialog.local_seq) == ("a1", "b2", 314)


def test_bye_goes_to_first_loose_route_with_routes_and_tags() -> None:
    dialog = uas_dialog()
    seq = dialog.local_seq
    bye, next_hop = dialog.create_request("BYE", OUR_VIA)
    assert str(bye.uri) == "sip:alice@192.0.2.30:5070"
    assert str(next_hop) == "sip:p2.example.net;lr"
    assert bye.headers.get_all("Route") == ["<sip:p2.example.net;lr>", "<sip:p1.example.net;lr>"]
    assert bye.from_addr.tag == "b2" and bye.to_addr.tag == "a1"
    assert (bye.cseq.number, bye.cseq.method) == (seq + 1, "BYE")
    assert bye.top_via.branch is not None and bye.top_via.branch.startswith("z9hG4bK")
    assert "Contact" not in bye.headers


def test_strict_router_becomes_request_uri() -> None:
    dialog = uas_dialog()
    dialog.route_set = [Address(uri=SipUri(host="strict.example.net"))]
    bye, next_hop = dialog.create_request("BYE", OUR_VIA)
    assert str(bye.uri) == "sip:strict.example.net"
    assert bye.headers.get_all("Route") == ["<sip:alice@192.0.2.30:5070>"]
    assert str(next_hop) == "sip:strict.example.net"


def test_reinvite_carries_contact_and_body() -> None:
    dialog = uas_dialog()
    invite, _ = dialog.create_request(
        "INVITE", OUR_VIA, body=b"v=0\r\n", content_type="application/sdp"
    )
    assert invite.headers.get("Contact") == "<sip:linegram@192.0.2.10:5060>"
    assert invite.content_type == "application/sdp" and invite.body == b"v=0\r\n"


def test_remote_cseq_must_grow() -> None:
    dialog = uas_dialog()
    lower = parse_message(
        INVITE.replace(b"CSeq: 314 INVITE", b"CSeq: 300 BYE").replace(b"INVITE sip", b"BYE sip")
    )
    with pytest.raises(CSeqOrderError):
        dialog.check_remote_cseq(lower)  # type: ignore[arg-type]
    higher = parse_message(
        INVITE.replace(b"CSeq: 314 INVITE", b"CSeq: 315 BYE").replace(b"INVITE sip", b"BYE sip")
    )
    dialog.check_remote_cseq(higher)  # type: ignore[arg-type]
    assert dialog.remote_seq == 315


def test_target_refresh_replaces_remote_target() -> None:
    dialog = uas_dialog()
    reinvite = parse_message(INVITE.replace(b"192.0.2.30:5070>", b"198.51.100.7:5999>"))
    dialog.refresh_target(reinvite)  # type: ignore[arg-type]
    assert str(dialog.remote_target) == "sip:alice@198.51.100.7:5999"


def test_matches_by_call_id_and_tags() -> None:
    dialog = uas_dialog()
    inside = parse_message(
        INVITE.replace(b"To: <sip:600@192.0.2.10>", b"To: <sip:600@192.0.2.10>;tag=b2")
    )
    outside = parse_message(
        INVITE.replace(b"To: <sip:600@192.0.2.10>", b"To: <sip:600@192.0.2.10>;tag=zz")
    )
    assert dialog.matches(inside)
    assert not dialog.matches(outside)

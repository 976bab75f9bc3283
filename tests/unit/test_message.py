"""SIP message layer (RFC 3261 §7, §20): headers, Via, addresses, parse, bytes, responses."""

from __future__ import annotations

import pytest

from gateway.errors import SipParseError
from gateway.sip.message import (
    BRANCH_MAGIC,
    MAX_DATAGRAM,
    MAX_HEADER_LENGTH,
    MAX_HEADERS,
    MAX_LIST_ELEMENTS,
    Address,
    CSeq,
    Headers,
    SipRequest,
    SipResponse,
    Via,
    can_answer,
    make_response,
    new_branch,
    new_call_id,
    new_tag,
    parse_message,
    reason_phrase,
)
from gateway.sip.uri import SipUri


def crlf(text: str) -> bytes:
    """Test messages are written with \\n; the wire wants CRLF."""
    return text.replace("\n", "\r\n").encode()


INVITE = crlf(
    "INVITE sip:bob@biloxi.com SIP/2.0\n"
    "Via: SIP/2.0/UDP pc33.atlanta.com;branch=z9hG4bK776asdhds\n"
    "Via: SIP/2.0/UDP 10.0.0.1:5070;branch=z9hG4bKfirst;received=192.0.2.9\n"
    "Record-Route: <sip:p1.example.com;lr>, <sip:p2.example.com;lr>\n"
    "Record-Route: <sip:p3.example.com;lr>\n"
    "Max-Forwards: 70\n"
    "To: Bob <sip:bob@biloxi.com>\n"
    'From: "Alice" <sip:alice@atlanta.com>;tag=1928301774\n'
    "Call-ID: a84b4c76e66710@pc33.atlanta.com\n"
    "CSeq: 314159 INVITE\n"
    "Contact: <sip:alice@pc33.atlanta.com>\n"
    "Content-Type: application/sdp\n"
    "Content-Length: 4\n"
    "\n"
    "v=0\n"
)


def invite() -> SipRequest:
    msg = parse_message(INVITE)
    assert isinstance(msg, SipRequest)
    return msg


# -- Headers -------------------------------------------------------------------


def test_headers_canonical_names_and_case_insensitive_lookup() -> None:
    h = Headers(
        [
            ("call-id", "x"),
            ("CSEQ", "1 INVITE"),
            ("www-authenticate", "Digest a=b"),
            ("proxy-authenticate", "Digest c=d"),
            ("PROXY-AUTHORIZATION", "Digest e=f"),
            ("record-route", "<sip:p>"),
            ("max-forwards", "70"),
            ("min-expires", "60"),
            ("user-agent", "ua"),
            ("content-length", "0"),
            ("content-type", "text/plain"),
            ("X-Custom-thing", "kept"),
        ]
    )
    assert [name for name, _ in h] == [
        "Call-ID",
        "CSeq",
        "WWW-Authenticate",
        "Proxy-Authenticate",
        "Proxy-Authorization",
        "Record-Route",
        "Max-Forwards",
        "Min-Expires",
        "User-Agent",
        "Content-Length",
        "Content-Type",
        "X-Custom-thing",
    ]
    assert h.get("CALL-ID") == "x"
    assert h.get("i") == "x"
    assert h.get("x-custom-THING") == "kept"
    assert "cseq" in h
    assert "l" in h
    assert "Missing" not in h
    assert 42 not in h
    assert len(h) == 12


@pytest.mark.parametrize(
    ("compact", "long"),
    [
        ("v", "Via"),
        ("i", "Call-ID"),
        ("f", "From"),
        ("t", "To"),
        ("m", "Contact"),
        ("l", "Content-Length"),
        ("c", "Content-Type"),
        ("k", "Supported"),
        ("s", "Subject"),
        ("e", "Content-Encoding"),
        ("o", "Event"),
        ("u", "Allow-Events"),
        ("r", "Refer-To"),
        ("b", "Referred-By"),
        ("x", "Session-Expires"),
    ],
)
def test_compact_forms_expand(compact: str, long: str) -> None:
    h = Headers([(compact.upper(), "v1")])
    h.add(compact, "v2")
    assert h.items() == [(long, "v1"), (long, "v2")]
    assert h.get_all(long.upper()) == ["v1", "v2"]
    assert h.get_all(compact) == ["v1", "v2"]


def test_headers_get_default_and_get_all_empty() -> None:
    h = Headers()
    assert h.get("Via") is None
    assert h.get("Via", "d") == "d"
    assert h.get_all("Via") == []
    assert h.get_list("Via") == []


def test_headers_values_are_stripped() -> None:
    assert Headers([("Subject", "  hi there \t")]).get("Subject") == "hi there"


def test_headers_set_replaces_in_place() -> None:
    h = Headers([("Via", "a"), ("To", "t"), ("Via", "b"), ("From", "f"), ("via", "c")])
    h.set("v", "new")
    assert h.items() == [("Via", "new"), ("To", "t"), ("From", "f")]
    h.set("Subject", "s")
    assert h.items()[-1] == ("Subject", "s")


def test_headers_prepend_and_add() -> None:
    h = Headers([("To", "t"), ("Via", "a"), ("Via", "b")])
    h.prepend("Via", "top")
    h.add("Via", "bottom")
    h.prepend("Route", "r")
    assert h.get_all("Via") == ["top", "a", "b", "bottom"]
    assert h.items() == [
        ("To", "t"),
        ("Via", "top"),
        ("Via", "a"),
        ("Via", "b"),
        ("Via", "bottom"),
        ("Route", "r"),
    ]


def test_headers_remove() -> None:
    h = Headers([("Via", "a"), ("To", "t"), ("v", "b")])
    h.remove("VIA")
    h.remove("Absent")
    assert h.items() == [("To", "t")]


def test_headers_copy_is_independent() -> None:
    h = Headers([("To", "t")])
    c = h.copy()
    c.add("From", "f")
    assert h.items() == [("To", "t")]
    assert c.items() == [("To", "t"), ("From", "f")]


def test_headers_equality() -> None:
    a = Headers([("call-id", "x"), ("X-A", "1")])
    assert a == Headers([("i", "x"), ("x-a", "1")])
    assert a != Headers([("Call-ID", "x"), ("X-A", "2")])
    assert a != Headers([("X-A", "1"), ("Call-ID", "x")])  # order matters
    # Content-Length is recomputed by bytes(), so it takes no part in equality.
    assert Headers([("To", "t"), ("Content-Length", "9")]) == Headers([("To", "t")])
    assert a.__eq__("x") is NotImplemented


def test_get_list_splits_outside_quotes_and_angles() -> None:
    h = Headers(
        [
            (
                "Contact",
                (
                    '"Watson, Thomas" <sip:w@a.com;p=1,2>;q=0.7, <sip:b@c.com>,sip:d@e.com'
                    ' ,"q\\",<" <sip:f@g.com>'
                ),
            ),
            ("Contact", "<sip:h@i.com>"),
        ]
    )
    assert h.get_list("m") == [
        '"Watson, Thomas" <sip:w@a.com;p=1,2>;q=0.7',
        "<sip:b@c.com>",
        "sip:d@e.com",
        '"q\\",<" <sip:f@g.com>',
        "<sip:h@i.com>",
    ]
    assert h.get_all("Contact")[1] == "<sip:h@i.com>"


def test_get_list_drops_empty_elements() -> None:
    h = Headers([("Allow", "INVITE, ACK,,BYE , ")])
    assert h.get_list("Allow") == ["INVITE", "ACK", "BYE"]


@pytest.mark.parametrize("value", ["a\r\nInjected: 1", "a\nb", "a\rb"])
def test_headers_refuse_cr_lf(value: str) -> None:
    with pytest.raises(ValueError, match="CR/LF"):
        Headers([("Subject", value)])
    h = Headers()
    for method in (h.add, h.set, h.prepend):
        with pytest.raises(ValueError):
            method("Subject", value)


@pytest.mark.parametrize("name", ["", "Bad Name", "Colon:", "Ünï"])
def test_headers_refuse_bad_names(name: str) -> None:
    with pytest.raises(ValueError, match="invalid header name"):
        Headers().add(name, "v")


# -- Via -----------------------------------------------------------------------


def test_via_basic() -> None:
    via = Via.parse("SIP/2.0/UDP pc33.atlanta.com;branch=z9hG4bK776asdhds")
    assert via == Via("UDP", "pc33.atlanta.com", None, {"branch": "z9hG4bK776asdhds"})
    assert via.branch == "z9hG4bK776asdhds"
    assert via.received is None
    assert via.rport is None
    assert str(via) == "SIP/2.0/UDP pc33.atlanta.com;branch=z9hG4bK776asdhds"


def test_via_ipv6_rport_received() -> None:
    via = Via.parse(
        "SIP/2.0/tcp [2001:DB8::9]:5061;received=2001:db8::1;rport=40000;branch=z9hG4bKx"
    )
    assert via.transport == "TCP"
    assert via.host == "[2001:db8::9]"
    assert via.port == 5061
    assert via.received == "2001:db8::1"
    assert via.rport == 40000
    assert via.branch == "z9hG4bKx"


def test_via_empty_rport() -> None:
    via = Via.parse("SIP/2.0/UDP 192.0.2.1:5060;rport;branch=z9hG4bKa")
    assert via.params == {"rport": None, "branch": "z9hG4bKa"}
    assert via.rport is None
    assert str(via) == "SIP/2.0/UDP 192.0.2.1:5060;rport;branch=z9hG4bKa"


def test_via_garbage_rport_is_none() -> None:
    assert Via.parse("SIP/2.0/UDP h;rport=abc").rport is None


def test_via_whitespace_everywhere() -> None:
    via = Via.parse("SIP  /   2.0 /UDP   192.0.2.2 : 5062 ; branch = 390skdjuw ;rport")
    assert via == Via("UDP", "192.0.2.2", 5062, {"branch": "390skdjuw", "rport": None})


def test_via_param_case() -> None:
    via = Via.parse("SIP/2.0/UDP h;Branch=z9hG4bKAbC;Received=1.2.3.4")
    assert via.branch == "z9hG4bKAbC"
    assert via.received == "1.2.3.4"


def test_via_quoted_param_with_semicolon() -> None:
    via = Via.parse('SIP/2.0/UDP h;x="a;b";branch=z9hG4bK1')
    assert via.params == {"x": '"a;b"', "branch": "z9hG4bK1"}


def test_via_constructed_str() -> None:
    via = Via("WSS", "gw.local", 443, {"branch": "z9hG4bK1", "rport": None})
    assert str(via) == "SIP/2.0/WSS gw.local:443;branch=z9hG4bK1;rport"
    assert Via.parse(str(via)) == via


@pytest.mark.parametrize(
    "text",
    [
        "",
        "SIP/2.0/UDP",
        "SIP/2.0/UDP ",
        "SIP/3.0/UDP h",
        "HTTP/2.0/UDP h",
        "SIP/2.0 h",
        "SIP/2.0/U@P h",
        "SIP/2.0/UDP h;;branch=z9hG4bK1",
        "SIP/2.0/UDP h;branch=",
        "SIP/2.0/UDP h:99999",
        "SIP/2.0/UDP bad host",
        "SIP/2.0/UDP [::1",
    ],
)
def test_via_invalid(text: str) -> None:
    with pytest.raises(SipParseError):
        Via.parse(text)


# -- Address -------------------------------------------------------------------


def test_address_name_addr() -> None:
    addr = Address.parse('"Alice" <sip:alice@example.com>;tag=1928301774')
    assert addr == Address(SipUri(host="example.com", user="alice"), "Alice", {"tag": "1928301774"})
    assert addr.tag == "1928301774"
    assert str(addr) == '"Alice" <sip:alice@example.com>;tag=1928301774'


def test_address_quoted_name_with_escapes_commas_and_angle() -> None:
    addr = Address.parse(r'"Watson, \"Tom\" <boss> \\ x" <sip:w@example.com>;tag=9')
    assert addr.display_name == 'Watson, "Tom" <boss> \\ x'
    assert addr.uri.user == "w"
    assert addr.tag == "9"
    assert str(addr) == r'"Watson, \"Tom\" <boss> \\ x" <sip:w@example.com>;tag=9'
    assert Address.parse(str(addr)) == addr


def test_address_token_display_name() -> None:
    addr = Address.parse("J Rosenberg   <sip:jdrosen@example.com>")
    assert addr.display_name == "J Rosenberg"
    assert str(addr) == '"J Rosenberg" <sip:jdrosen@example.com>'


def test_address_no_space_before_angle() -> None:
    addr = Address.parse("caller<sip:caller@example.com>;tag=323")
    assert (addr.display_name, addr.uri.user, addr.tag) == ("caller", "caller", "323")


def test_address_empty_quoted_name() -> None:
    addr = Address.parse('"" <sip:a@b>')
    assert addr.display_name == ""
    assert Address.parse(str(addr)) == addr


def test_address_utf8_display_name() -> None:
    addr = Address.parse('"Jürgen Müller" <sip:j@example.de>')
    assert addr.display_name == "Jürgen Müller"
    assert Address.parse("Jürgen <sip:j@example.de>").display_name == "Jürgen"


def test_address_angle_without_name_keeps_uri_params() -> None:
    addr = Address.parse("<sip:p1.example.com;lr>")
    assert addr.display_name is None
    assert addr.uri.params == {"lr": None}
    assert addr.params == {}
    assert str(addr) == "<sip:p1.example.com;lr>"


def test_address_addr_spec_params_belong_to_header() -> None:
    addr = Address.parse("sip:alice@example.com;tag=abc;expires=60")
    assert addr.uri == SipUri(host="example.com", user="alice")
    assert addr.params == {"tag": "abc", "expires": "60"}
    assert str(addr) == "<sip:alice@example.com>;tag=abc;expires=60"


def test_address_params_whitespace_and_quoted_values() -> None:
    addr = Address.parse('<sip:a@b> ; newparam = newvalue ; secondparam ; q = 0.33; d="x;y, <z>"')
    assert addr.params == {
        "newparam": "newvalue",
        "secondparam": None,
        "q": "0.33",
        "d": '"x;y, <z>"',
    }


def test_address_wildcard() -> None:
    addr = Address.parse(" * ")
    assert addr.is_wildcard
    assert str(addr) == "*"


def test_address_tel_uri() -> None:
    addr = Address.parse("<tel:+4930123456;phone-context=+49>;tag=x")
    assert addr.uri.scheme == "tel"
    assert addr.uri.user == "+4930123456"
    assert addr.uri.params == {"phone-context": "+49"}
    assert not addr.uri.is_sip
    assert addr.tag == "x"
    assert str(addr) == "<tel:+4930123456;phone-context=+49>;tag=x"


def test_address_str_escapes_display_name() -> None:
    addr = Address(SipUri(host="h"), 'Evil"\r\nVia: x\\')
    assert str(addr) == '"Evil\\"  Via: x\\\\" <sip:h>'


@pytest.mark.parametrize(
    "text",
    [
        pytest.param('"unterminated <sip:a@b>', id="quotbal"),
        pytest.param("Bell, Alexander <sip:a@b>", id="comma-in-token-name"),
        pytest.param("<sip:a@b", id="no-gt"),
        pytest.param("< sip:a@b >", id="space-in-angle"),
        pytest.param("<sip:a@b> junk", id="junk-after-gt"),
        pytest.param('"name" sip:a@b', id="quoted-name-without-angle"),
        pytest.param("sip:a@b?x=y", id="addr-spec-with-headers"),
        pytest.param("<sip:a@b>;;tag=1", id="empty-param"),
        pytest.param("", id="empty"),
        pytest.param("<>", id="empty-uri"),
        pytest.param("a@b", id="no-scheme"),
    ],
)
def test_address_invalid(text: str) -> None:
    with pytest.raises(SipParseError):
        Address.parse(text)


# -- CSeq ----------------------------------------------------------------------


def test_cseq() -> None:
    assert CSeq.parse("0009 \t INVITE") == CSeq(9, "INVITE")
    assert str(CSeq(2**31 - 1, "BYE")) == "2147483647 BYE"
    assert CSeq.parse("2147483647 BYE").number == 2**31 - 1


@pytest.mark.parametrize(
    "text",
    [
        "2147483648 INVITE",
        "-1 INVITE",
        "1",
        "INVITE",
        "1 INVITE x",
        "x INVITE",
        "1 IN<VITE",
        "9" * 5000 + " A",
    ],
)
def test_cseq_invalid(text: str) -> None:
    with pytest.raises(SipParseError):
        CSeq.parse(text)


# -- parse_message and bytes ---------------------------------------------------


def test_parse_request_fields() -> None:
    msg = invite()
    assert msg.method == "INVITE"
    assert msg.uri == SipUri(host="biloxi.com", user="bob")
    assert msg.call_id == "a84b4c76e66710@pc33.atlanta.com"
    assert msg.cseq == CSeq(314159, "INVITE")
    assert msg.from_addr.tag == "1928301774"
    assert msg.from_addr.display_name == "Alice"
    assert msg.to_addr.tag is None
    assert [v.host for v in msg.vias] == ["pc33.atlanta.com", "10.0.0.1"]
    assert msg.top_via.branch == "z9hG4bK776asdhds"
    assert msg.contacts == [Address(SipUri(host="pc33.atlanta.com", user="alice"))]
    assert msg.content_type == "application/sdp"
    assert msg.body == b"v=0\r"  # Content-Length 4 cuts the trailing LF


def test_parse_response_fields() -> None:
    msg = parse_message(
        crlf(
            "SIP/2.0 180 Ringing\n"
            "Via: SIP/2.0/UDP pc33.atlanta.com;branch=z9hG4bK776asdhds;received=192.0.2.1\n"
            "To: Bob <sip:bob@biloxi.com>;tag=a6c85cf\n"
            "From: Alice <sip:alice@atlanta.com>;tag=1928301774\n"
            "Call-ID: a84b4c76e66710\n"
            "CSeq: 314159 INVITE\n"
            "Content-Length: 0\n\n"
        )
    )
    assert isinstance(msg, SipResponse)
    assert (msg.status, msg.reason) == (180, "Ringing")
    assert msg.to_addr.tag == "a6c85cf"
    assert msg.top_via.received == "192.0.2.1"
    assert msg.body == b""
    assert msg.content_type is None


def test_bare_lf_and_leading_crlf_accepted() -> None:
    msg = parse_message(b"\r\n\r\n" + INVITE.replace(b"\r\n", b"\n"))
    assert isinstance(msg, SipRequest)
    assert msg.cseq == CSeq(314159, "INVITE")
    assert msg.body == b"v=0\n"


def test_body_without_content_length_is_rest_of_datagram() -> None:
    data = INVITE.replace(b"Content-Length: 4\r\n", b"")
    assert parse_message(data).body == b"v=0\r\n"


def test_bytes_after_content_length_ignored() -> None:
    data = INVITE.replace(b"Content-Length: 4", b"Content-Length: 2")
    assert parse_message(data).body == b"v="


def test_binary_body() -> None:
    body = bytes(range(256))
    data = INVITE.replace(b"Content-Length: 4\r\n\r\nv=0\r\n", b"l: 256\r\n\r\n" + body)
    msg = parse_message(data)
    assert msg.body == body
    assert parse_message(bytes(msg)) == msg


def test_no_blank_line_means_no_body() -> None:
    data = INVITE.split(b"Content-Type")[0]
    msg = parse_message(data)
    assert msg.body == b""
    assert msg.headers.get("Contact") == "<sip:alice@pc33.atlanta.com>"


def test_folded_header_unfolded() -> None:
    data = INVITE.replace(
        b"Max-Forwards: 70\r\n", b"Subject: I know you're there,\r\n  \tpick up the phone\r\n"
    )
    msg = parse_message(data)
    assert msg.headers.get("Subject") == "I know you're there, pick up the phone"


def test_whitespace_around_colon() -> None:
    data = INVITE.replace(b"Max-Forwards: 70", b"Max-Forwards \t:   70  ")
    assert parse_message(data).headers.get("Max-Forwards") == "70"


def test_unknown_header_name_kept_as_sent() -> None:
    data = INVITE.replace(b"Max-Forwards: 70", b"x-MyHeader: v")
    msg = parse_message(data)
    assert ("x-MyHeader", "v") in msg.headers.items()
    assert b"\r\nx-MyHeader: v\r\n" in bytes(msg)


def test_compact_names_expanded_on_parse_and_written_long() -> None:
    data = crlf(
        "BYE sip:a@b SIP/2.0\n"
        "v: SIP/2.0/UDP h;branch=z9hG4bK1\n"
        "f: <sip:x@y>;tag=1\n"
        "t: <sip:a@b>;tag=2\n"
        "i: cid\n"
        "CSEQ: 2 BYE\n"
        "l: 0\n\n"
    )
    msg = parse_message(data)
    assert [n for n, _ in msg.headers] == ["Via", "From", "To", "Call-ID", "CSeq", "Content-Length"]
    assert bytes(msg) == crlf(
        "BYE sip:a@b SIP/2.0\n"
        "Via: SIP/2.0/UDP h;branch=z9hG4bK1\n"
        "From: <sip:x@y>;tag=1\n"
        "To: <sip:a@b>;tag=2\n"
        "Call-ID: cid\n"
        "CSeq: 2 BYE\n"
        "Content-Length: 0\n\n"
    )


def test_bytes_recomputes_content_length_in_place() -> None:
    msg = invite()
    msg.body = b"hello"
    out = bytes(msg)
    assert out.endswith(b"Content-Type: application/sdp\r\nContent-Length: 5\r\n\r\nhello")
    assert out.count(b"Content-Length") == 1


def test_bytes_appends_content_length_when_absent() -> None:
    msg = SipRequest(
        "OPTIONS",
        SipUri(host="example.com"),
        Headers(
            [
                ("Via", "SIP/2.0/UDP h;branch=z9hG4bK1"),
                ("From", "<sip:a@h>;tag=1"),
                ("To", "<sip:example.com>"),
                ("Call-ID", "c"),
                ("CSeq", "1 OPTIONS"),
            ]
        ),
    )
    assert bytes(msg) == crlf(
        "OPTIONS sip:example.com SIP/2.0\n"
        "Via: SIP/2.0/UDP h;branch=z9hG4bK1\n"
        "From: <sip:a@h>;tag=1\n"
        "To: <sip:example.com>\n"
        "Call-ID: c\n"
        "CSeq: 1 OPTIONS\n"
        "Content-Length: 0\n\n"
    )
    assert parse_message(bytes(msg)) == msg


def test_round_trip_parsed_messages() -> None:
    msg = invite()
    again = parse_message(bytes(msg))
    assert again == msg
    assert bytes(again) == bytes(msg)


def test_equality_detects_differences() -> None:
    a, b = invite(), invite()
    assert a == b
    b.headers.set("Subject", "x")
    assert a != b
    c = invite()
    c.body = b"other"
    assert a != c


def test_response_empty_reason_serialised_with_space() -> None:
    msg = parse_message(
        crlf(
            "SIP/2.0 100\n"
            "Via: SIP/2.0/UDP h;branch=z9hG4bK1\n"
            "From: <sip:a@h>;tag=1\nTo: <sip:b@h>\nCall-ID: c\nCSeq: 1 INVITE\n\n"
        )
    )
    assert isinstance(msg, SipResponse)
    assert msg.reason == ""
    assert bytes(msg).startswith(b"SIP/2.0 100 \r\n")
    assert parse_message(bytes(msg)) == msg


def test_keepalive_is_ignored_silently() -> None:
    for data in (b"\r\n\r\n", b"\r\n", b"\n", b""):
        with pytest.raises(SipParseError) as info:
            parse_message(data)
        assert info.value.status_hint == 0


def test_too_large_datagram_is_413() -> None:
    data = INVITE.replace(b"v=0\r\n", b"x" * MAX_DATAGRAM)
    with pytest.raises(SipParseError) as info:
        parse_message(data)
    assert info.value.status_hint == 413


def test_too_many_headers() -> None:
    extra = b"".join(b"X-H%d: v\r\n" % i for i in range(MAX_HEADERS))
    data = INVITE.replace(b"Max-Forwards: 70\r\n", extra)
    with pytest.raises(SipParseError, match="too many") as info:
        parse_message(data)
    assert info.value.status_hint == 400
    # Exactly at the limit is fine.
    fields = INVITE.split(b"\r\n\r\n")[0].count(b"\r\n")
    ok = b"".join(b"X-H%d: v\r\n" % i for i in range(MAX_HEADERS - fields + 1))
    assert len(parse_message(INVITE.replace(b"Max-Forwards: 70\r\n", ok)).headers) == MAX_HEADERS


def test_header_too_long_counts_folded_lines() -> None:
    chunk = b"a" * 1000
    folded = b"Subject: " + b"\r\n ".join([chunk] * 9) + b"\r\n"
    with pytest.raises(SipParseError, match="too long"):
        parse_message(INVITE.replace(b"Max-Forwards: 70\r\n", folded))
    fine = b"Subject: " + b"a" * (MAX_HEADER_LENGTH - 9) + b"\r\n"
    msg = parse_message(INVITE.replace(b"Max-Forwards: 70\r\n", fine))
    assert msg.headers.get("Subject") == "a" * (MAX_HEADER_LENGTH - 9)


def test_list_element_cap_on_via() -> None:
    top = b"Via: SIP/2.0/UDP pc33.atlanta.com;branch=z9hG4bK776asdhds\r\n"
    # INVITE already has two Vias; fill up to exactly the cap, then one more.
    ok = INVITE.replace(
        top, top + b"Via: " + b",".join([b"SIP/2.0/UDP h"] * (MAX_LIST_ELEMENTS - 2)) + b"\r\n"
    )
    assert len(parse_message(ok).vias) == MAX_LIST_ELEMENTS
    over = ok.replace(b"SIP/2.0/UDP h\r\n", b"SIP/2.0/UDP h,SIP/2.0/UDP h\r\n")
    with pytest.raises(SipParseError, match=f"more than {MAX_LIST_ELEMENTS} Via"):
        parse_message(over)


def test_list_element_cap_on_contact_counts_empty_pieces() -> None:
    contact = b"Contact: <sip:alice@pc33.atlanta.com>"
    ok = INVITE.replace(contact, contact + b"," * (MAX_LIST_ELEMENTS - 1))
    assert len(parse_message(ok).contacts) == 1
    with pytest.raises(SipParseError, match=f"more than {MAX_LIST_ELEMENTS} Contact"):
        parse_message(ok.replace(contact, contact + b","))


def test_huge_contact_list_is_rejected_cheaply() -> None:
    line = b"Contact: " + b",".join([b"<sip:a@b>"] * 700) + b"\r\n"
    data = INVITE.replace(b"Max-Forwards: 70\r\n", line * 8)
    with pytest.raises(SipParseError, match="more than"):
        parse_message(data)


@pytest.mark.parametrize(
    ("old", "new", "hint", "match"),
    [
        pytest.param(b"INVITE sip:bob", b"INV\xffITE sip:bob", 400, "UTF-8", id="utf8-start"),
        pytest.param(b"To: Bob", b"To: B\xc3ob", 400, "UTF-8", id="utf8-header"),
        pytest.param(b"SIP/2.0\r\nVia", b"SIP/3.0\r\nVia", 505, "version", id="version"),
        pytest.param(b"SIP/2.0\r\nVia", b"HTTP/1.1\r\nVia", 400, "version", id="http"),
        pytest.param(b"sip:bob@biloxi.com SIP", b"tel:+123 SIP", 416, "scheme", id="tel-ruri"),
        pytest.param(b"INVITE sip", b"INV(TE sip", 400, "method", id="method-token"),
        pytest.param(b"CSeq: 314159 INVITE", b"CSeq: 1 BYE", 400, "differs", id="cseq-method"),
        pytest.param(b"CSeq: 314159", b"CSeq: 2147483648", 400, "range", id="cseq-big"),
        pytest.param(b"Content-Length: 4", b"Content-Length: 6", 400, "exceeds", id="cl-big"),
        pytest.param(b"Content-Length: 4", b"Content-Length: -1", 400, "Content", id="cl-neg"),
        pytest.param(b"Content-Length: 4", b"Content-Length: 4x", 400, "Content", id="cl-nan"),
        pytest.param(
            b"Content-Length: 4", b"Content-Length: 4\r\nl: 4", 400, "2 Content", id="cl-2"
        ),
        pytest.param(b"Call-ID: a84", b"Call-ID: a b\r\ni: a84", 400, "Call-ID", id="callid-2"),
        pytest.param(
            b"Call-ID: a84b4c76e66710@pc33.atlanta.com",
            b"Call-ID: a b",
            400,
            "Call-ID",
            id="callid-space",
        ),
        pytest.param(b"Max-Forwards: 70", b"Max-Forwards: 256", 400, "Max", id="max-forwards"),
        pytest.param(b"Max-Forwards: 70", b"Max-Forwards: x", 400, "Max", id="max-forwards-nan"),
        pytest.param(b"\r\nVia", b"\r\n folded: x\r\nVia", 400, "continuation", id="fold-first"),
        pytest.param(b"Max-Forwards: 70", b"NoColonHere", 400, "malformed", id="no-colon"),
        pytest.param(b"Max-Forwards: 70", b"Bad Name: x", 400, "malformed", id="bad-name"),
        pytest.param(b"Max-Forwards: 70", b"X: a\rb", 400, "malformed", id="bare-cr"),
        pytest.param(b"To: Bob <sip:bob@biloxi.com>", b"To: *", 400, "'\\*'", id="to-star"),
        pytest.param(
            b"<sip:alice@pc33.atlanta.com>", b"*, <sip:a@b>", 400, "mixed", id="contact-star"
        ),
        pytest.param(
            b"branch=z9hG4bK776asdhds", b"branch=z9hG4bK", 400, "cookie", id="bare-cookie"
        ),
        pytest.param(
            b"INVITE sip:bob@biloxi.com SIP",
            b"INVITE sip:bob@biloxi.com?a=b SIP",
            400,
            "Request-URI",
            id="ruri-headers",
        ),
        pytest.param(
            b"INVITE sip:bob", b"INVITE\tsip:bob", 400, "control|request line", id="tab-start"
        ),
    ],
)
def test_parse_errors(old: bytes, new: bytes, hint: int, match: str) -> None:
    data = INVITE.replace(old, new, 1)
    assert data != INVITE
    with pytest.raises(SipParseError, match=match) as info:
        parse_message(data)
    assert info.value.status_hint == hint


@pytest.mark.parametrize("name", ["Via", "Call-ID", "CSeq", "From", "To"])
def test_missing_mandatory_header(name: str) -> None:
    msg = invite()
    msg.headers.remove(name)
    with pytest.raises(SipParseError, match=f"missing {name}") as info:
        parse_message(bytes(msg))
    assert info.value.status_hint == 400


def test_max_forwards_may_be_absent() -> None:
    msg = invite()
    msg.headers.remove("Max-Forwards")
    assert parse_message(bytes(msg)) == msg


@pytest.mark.parametrize(
    "status_line",
    [b"SIP/2.0 99 Low", b"SIP/2.0 700 High", b"SIP/2.0 2000 Long", b"SIP/2.0 20x Bad", b"SIP/2.0"],
)
def test_bad_status_codes(status_line: bytes) -> None:
    data = status_line + crlf(
        "\nVia: SIP/2.0/UDP h;branch=z9hG4bK1\n"
        "From: <sip:a@h>;tag=1\nTo: <sip:b@h>\nCall-ID: c\nCSeq: 1 INVITE\n\n"
    )
    with pytest.raises(SipParseError):
        parse_message(data)


def test_lower_case_version_accepted() -> None:
    msg = parse_message(INVITE.replace(b"SIP/2.0\r\nVia", b"sip/2.0\r\nVia"))
    assert isinstance(msg, SipRequest)
    assert bytes(msg).startswith(b"INVITE sip:bob@biloxi.com SIP/2.0\r\n")


def test_accessors_raise_parse_error_on_missing_header() -> None:
    msg = SipRequest("OPTIONS", SipUri(host="h"), Headers())
    for accessor in ("call_id", "cseq", "from_addr", "to_addr", "top_via"):
        with pytest.raises(SipParseError, match="missing"):
            getattr(msg, accessor)
    assert msg.vias == []
    assert msg.contacts == []
    assert msg.content_type is None


def test_content_type_parameters_dropped() -> None:
    msg = SipRequest("MESSAGE", SipUri(host="h"), Headers([("c", "Text/Plain ; charset=UTF-8")]))
    assert msg.content_type == "text/plain"


def test_contact_star_parses_as_wildcard() -> None:
    data = crlf(
        "REGISTER sip:example.com SIP/2.0\n"
        "Via: SIP/2.0/UDP h;branch=z9hG4bK1\n"
        "From: <sip:a@example.com>;tag=1\nTo: <sip:a@example.com>\nCall-ID: c\n"
        "CSeq: 2 REGISTER\nContact: *\nExpires: 0\n\n"
    )
    msg = parse_message(data)
    assert [c.is_wildcard for c in msg.contacts] == [True]


# -- can_answer ----------------------------------------------------------------


def test_can_answer_valid_request_keeps_transaction_headers() -> None:
    req = can_answer(INVITE)
    assert req is not None
    assert (req.method, req.uri, req.body) == ("INVITE", invite().uri, b"")
    assert [name for name, _ in req.headers] == ["Via", "Via", "From", "To", "Call-ID", "CSeq"]
    original = invite().headers
    for name, value in req.headers:
        assert value in original.get_all(name)


def test_can_answer_salvages_bad_request() -> None:
    data = INVITE.replace(b"Content-Length: 4", b"Content-Length: 400").replace(
        b"INVITE sip:bob@biloxi.com", b"INVITE <bad>"
    )
    req = can_answer(data)
    assert req is not None
    assert req.method == "INVITE"
    assert req.uri == SipUri(host="invalid")
    assert req.headers.items() == [
        ("Via", "SIP/2.0/UDP pc33.atlanta.com;branch=z9hG4bK776asdhds"),
        ("Via", "SIP/2.0/UDP 10.0.0.1:5070;branch=z9hG4bKfirst;received=192.0.2.9"),
        ("From", '"Alice" <sip:alice@atlanta.com>;tag=1928301774'),
        ("To", "Bob <sip:bob@biloxi.com>"),
        ("Call-ID", "a84b4c76e66710@pc33.atlanta.com"),
        ("CSeq", "314159 INVITE"),
    ]
    resp = make_response(req, 400, to_tag="t1")
    assert resp.to_addr.tag == "t1"
    assert parse_message(bytes(resp)) == resp


def test_can_answer_salvages_bad_utf8_elsewhere() -> None:
    req = can_answer(INVITE.replace(b"Max-Forwards: 70", b"Subject: \xff\xfe"))
    assert req is not None
    assert req.call_id == "a84b4c76e66710@pc33.atlanta.com"


@pytest.mark.parametrize(
    "data",
    [
        pytest.param(b"", id="empty"),
        pytest.param(b"\r\n\r\n", id="keepalive"),
        pytest.param(b"garbage", id="garbage"),
        pytest.param(
            INVITE.replace(b"INVITE sip", b"ACK sip").replace(b"4 INVITE", b"4 ACK"), id="ack"
        ),
        pytest.param(INVITE.replace(b"Call-ID", b"X-Call-ID"), id="no-call-id"),
        pytest.param(INVITE.replace(b"CSeq: 314159", b"CSeq: 99999999999"), id="bad-cseq"),
        pytest.param(INVITE.replace(b"To: Bob <", b'To: "Bob <'), id="bad-to"),
        pytest.param(
            INVITE.replace(b"Via: SIP/2.0/UDP pc33", b"Via: SIP/2.0/UDP ,pc33"), id="bad-via"
        ),
        pytest.param(b"SIP/2.0 999 X\r\nVia: SIP/2.0/UDP h;branch=z9hG4bK1\r\n\r\n", id="response"),
    ],
)
def test_can_answer_gives_up(data: bytes) -> None:
    assert can_answer(data) is None


def test_can_answer_oversize_request() -> None:
    data = INVITE.replace(b"v=0\r\n", b"x" * MAX_DATAGRAM)
    req = can_answer(data)
    assert req is not None
    assert req.cseq == CSeq(314159, "INVITE")


# -- make_response ---------------------------------------------------------------


def test_make_response_copies_headers_in_order() -> None:
    resp = make_response(invite(), 486, to_tag="zz")
    assert (resp.status, resp.reason, resp.body) == (486, "Busy Here", b"")
    assert resp.headers.items() == [
        ("Via", "SIP/2.0/UDP pc33.atlanta.com;branch=z9hG4bK776asdhds"),
        ("Via", "SIP/2.0/UDP 10.0.0.1:5070;branch=z9hG4bKfirst;received=192.0.2.9"),
        ("From", '"Alice" <sip:alice@atlanta.com>;tag=1928301774'),
        ("To", "Bob <sip:bob@biloxi.com>;tag=zz"),
        ("Call-ID", "a84b4c76e66710@pc33.atlanta.com"),
        ("CSeq", "314159 INVITE"),
    ]


def test_make_response_keeps_existing_to_tag() -> None:
    req = invite()
    req.headers.set("To", "Bob <sip:bob@biloxi.com>;tag=existing")
    resp = make_response(req, 200, to_tag="new")
    assert resp.headers.get("To") == "Bob <sip:bob@biloxi.com>;tag=existing"


def test_make_response_without_to_tag() -> None:
    resp = make_response(invite(), 100)
    assert resp.headers.get("To") == "Bob <sip:bob@biloxi.com>"
    assert resp.reason == "Trying"


def test_make_response_to_tag_on_addr_spec_to() -> None:
    req = invite()
    req.headers.set("To", "sip:bob@biloxi.com")
    resp = make_response(req, 200, to_tag="t")
    assert resp.to_addr.tag == "t"
    assert resp.to_addr.uri == SipUri(host="biloxi.com", user="bob")


@pytest.mark.parametrize(
    ("method", "status", "copied"),
    [
        ("INVITE", 100, False),
        ("INVITE", 180, True),
        ("INVITE", 183, True),
        ("INVITE", 200, True),
        ("INVITE", 486, False),
        ("INVITE", 302, False),
        ("SUBSCRIBE", 200, True),
        ("REFER", 202, True),
        ("OPTIONS", 200, False),
        ("BYE", 200, False),
        ("REGISTER", 200, False),
    ],
)
def test_make_response_record_route(method: str, status: int, copied: bool) -> None:
    req = invite()
    req.method = method
    req.headers.set("CSeq", f"1 {method}")
    resp = make_response(req, status)
    expected = ["<sip:p1.example.com;lr>, <sip:p2.example.com;lr>", "<sip:p3.example.com;lr>"]
    assert resp.headers.get_all("Record-Route") == (expected if copied else [])


def test_make_response_extra_headers_reason_and_body() -> None:
    resp = make_response(
        invite(),
        200,
        "Fine",
        to_tag="a",
        headers=[("Contact", "<sip:gw@192.0.2.5>"), ("c", "application/sdp")],
        body=b"v=0\r\n",
    )
    assert resp.reason == "Fine"
    assert resp.headers.items()[-2:] == [
        ("Contact", "<sip:gw@192.0.2.5>"),
        ("Content-Type", "application/sdp"),
    ]
    assert resp.body == b"v=0\r\n"
    wire = bytes(resp)
    assert wire.startswith(b"SIP/2.0 200 Fine\r\n")
    assert b"\r\nContent-Length: 5\r\n\r\nv=0\r\n" in wire
    assert parse_message(wire) == resp


def test_make_response_does_not_alias_request_headers() -> None:
    req = invite()
    resp = make_response(req, 200)
    resp.headers.set("Via", "SIP/2.0/UDP other;branch=z9hG4bK2")
    assert req.top_via.host == "pc33.atlanta.com"


@pytest.mark.parametrize(
    ("status", "phrase"),
    [
        (100, "Trying"),
        (180, "Ringing"),
        (183, "Session Progress"),
        (200, "OK"),
        (401, "Unauthorized"),
        (407, "Proxy Authentication Required"),
        (413, "Request Entity Too Large"),
        (416, "Unsupported URI Scheme"),
        (481, "Call/Transaction Does Not Exist"),
        (486, "Busy Here"),
        (487, "Request Terminated"),
        (488, "Not Acceptable Here"),
        (505, "Version Not Supported"),
        (603, "Decline"),
        (299, "Unknown"),
    ],
)
def test_reason_phrase(status: int, phrase: str) -> None:
    assert reason_phrase(status) == phrase


def test_random_identifiers() -> None:
    branches = {new_branch() for _ in range(100)}
    assert len(branches) == 100
    assert all(b.startswith(BRANCH_MAGIC) and len(b) > len(BRANCH_MAGIC) + 8 for b in branches)
    tags = {new_tag() for _ in range(100)}
    assert len(tags) == 100
    call_ids = {new_call_id() for _ in range(100)}
    assert len(call_ids) == 100
    for value in (*branches, *tags, *call_ids):
        # Usable as a token in Via params, To/From tags and Call-ID (RFC 3261 §25.1).
        assert value.isascii() and value.isalnum()
    assert min(len(t) for t in tags) >= 8
    assert min(len(c) for c in call_ids) >= 16


def test_headers_get_int() -> None:
    headers = Headers([("Expires", " 600 "), ("Min-Expires", "²"), ("Max-Forwards", "-1")])
    assert headers.get_int("expires") == 600
    assert headers.get_int("Min-Expires") is None  # a digit to str.isdigit, not to int()
    assert headers.get_int("Max-Forwards") is None
    assert headers.get_int("Session-Expires") is None

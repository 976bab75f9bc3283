"""SIP URI forms (RFC 3261 §19.1): parse, str() and round-trip."""

from __future__ import annotations

import pytest

from gateway.errors import SipParseError
from gateway.sip.uri import SipUri, split_quoted


def test_full_form() -> None:
    uri = SipUri.parse("sip:alice:secret@Atlanta.Example.COM:5070;transport=TCP;lr?subject=hi&x=1")
    assert uri == SipUri(
        host="atlanta.example.com",
        user="alice",
        password="secret",
        port=5070,
        scheme="sip",
        params={"transport": "TCP", "lr": None},
        headers={"subject": "hi", "x": "1"},
    )
    assert uri.transport == "tcp"
    assert str(uri) == "sip:alice:secret@atlanta.example.com:5070;transport=TCP;lr?subject=hi&x=1"


def test_host_only_and_defaults() -> None:
    uri = SipUri.parse("sip:192.0.2.1")
    assert (uri.user, uri.host, uri.port, uri.params, uri.transport) == (
        None,
        "192.0.2.1",
        None,
        {},
        "udp",
    )
    assert uri.host_port() == ("192.0.2.1", 5060)
    assert uri.host_port(5061) == ("192.0.2.1", 5061)
    assert str(uri) == "sip:192.0.2.1"


def test_sips_scheme_is_case_insensitive() -> None:
    uri = SipUri.parse("SIPS:bob@Biloxi.com")
    assert (uri.scheme, uri.user, uri.host) == ("sips", "bob", "biloxi.com")
    assert str(uri) == "sips:bob@biloxi.com"


def test_user_case_is_kept() -> None:
    assert SipUri.parse("sip:Alice@example.com").user == "Alice"


def test_ipv6_reference() -> None:
    uri = SipUri.parse("sip:bob@[2001:DB8::10]:5062;maddr=[2001:db8::1]")
    assert uri.host == "[2001:db8::10]"
    assert uri.port == 5062
    assert uri.params == {"maddr": "[2001:db8::1]"}
    assert uri.host_port() == ("2001:db8::10", 5062)
    assert str(uri) == "sip:bob@[2001:db8::10]:5062;maddr=[2001:db8::1]"


def test_ipv6_without_port() -> None:
    uri = SipUri.parse("sip:[::1]")
    assert (uri.host, uri.port, uri.host_port()) == ("[::1]", None, ("::1", 5060))


def test_param_keys_lowered_values_kept() -> None:
    uri = SipUri.parse("sip:a@b;Transport=UDP;User=Phone;LR")
    assert uri.params == {"transport": "UDP", "user": "Phone", "lr": None}
    assert uri.transport == "udp"


def test_valueless_transport_param_defaults_to_udp() -> None:
    assert SipUri.parse("sip:a@b;transport").transport == "udp"


def test_escapes_in_user_are_decoded_and_reapplied() -> None:
    uri = SipUri.parse("sip:sips%3Auser%40example.com@example.net")
    assert uri.user == "sips:user@example.com"
    assert uri.host == "example.net"
    assert str(uri) == "sip:sips%3Auser%40example.com@example.net"
    assert SipUri.parse(str(uri)) == uri


def test_escaped_and_plain_user_are_equal() -> None:
    assert SipUri.parse("sip:%61lice@example.com") == SipUri.parse("sip:alice@example.com")


def test_user_with_semicolon_and_escaped_at() -> None:
    # RFC 4475 semiuri: ';' belongs to the user part, the real host follows '@'.
    uri = SipUri.parse("sip:user;par=u%40example.net@example.com")
    assert uri.user == "user;par=u@example.net"
    assert uri.host == "example.com"
    assert uri.params == {}
    assert str(uri) == "sip:user;par=u%40example.net@example.com"


def test_telephone_keypad_user() -> None:
    uri = SipUri.parse("sip:*21%23@gw.example.com;user=phone")
    assert uri.user == "*21#"
    assert str(uri) == "sip:*21%23@gw.example.com;user=phone"


def test_raw_hash_in_user_is_tolerated_and_escaped_on_output() -> None:
    uri = SipUri.parse("sip:*21#@gw.example.com")
    assert uri.user == "*21#"
    assert str(uri) == "sip:*21%23@gw.example.com"


def test_escaped_null_in_user() -> None:
    uri = SipUri.parse("sip:null-%00-null@example.com")
    assert uri.user == "null-\x00-null"
    assert str(uri) == "sip:null-%00-null@example.com"


def test_password_escapes() -> None:
    uri = SipUri.parse("sip:bob:p%40ss@example.com")
    assert uri.password == "p@ss"
    assert str(uri) == "sip:bob:p%40ss@example.com"


def test_empty_password() -> None:
    uri = SipUri.parse("sip:bob:@example.com")
    assert (uri.user, uri.password) == ("bob", "")
    assert str(uri) == "sip:bob:@example.com"


def test_uri_headers_are_unescaped() -> None:
    uri = SipUri.parse("sip:carol@chicago.com?Replaces=a%40b%3Bto-tag%3D1&Subject=x")
    assert uri.headers == {"Replaces": "a@b;to-tag=1", "Subject": "x"}
    assert str(uri) == "sip:carol@chicago.com?Replaces=a%40b%3Bto-tag%3D1&Subject=x"


def test_constructed_uri_str() -> None:
    uri = SipUri(host="gw.example.com", user="+49 30 1234", port=5080, params={"user": "phone"})
    assert str(uri) == "sip:+49%2030%201234@gw.example.com:5080;user=phone"
    assert SipUri.parse(str(uri)) == uri


def test_unusual_but_legal_user_and_password() -> None:
    # RFC 4475 intmeth's Request-URI: every user-unreserved and mark character.
    text = (
        "sip:1_unusual.URI~(to-be!sure)&isn't+it$/crazy?,/;;*"
        ":&it+has=1,weird!*pas$wo~d_too.(doesn't-it)@example.com"
    )
    uri = SipUri.parse(text)
    assert uri.user == "1_unusual.URI~(to-be!sure)&isn't+it$/crazy?,/;;*"
    assert uri.password == "&it+has=1,weird!*pas$wo~d_too.(doesn't-it)"
    assert uri.host == "example.com"
    assert uri.headers == {}
    assert str(uri) == text


def test_underscore_host_is_tolerated() -> None:
    assert SipUri.parse("sip:a@host_1.example").host == "host_1.example"


def test_transport_param_lowercased() -> None:
    assert SipUri.parse("sip:a@b;transport=TLS").transport == "tls"


@pytest.mark.parametrize(
    ("text", "hint"),
    [
        pytest.param("tel:+1-201-555-0123", 416, id="tel"),
        pytest.param("http://example.com/", 416, id="http"),
        pytest.param("nobodyKnowsThisScheme:totallyopaquecontent", 416, id="unknown-scheme"),
        pytest.param("<sip:user@example.com>", 400, id="angle-brackets"),
        pytest.param("sip:user@example.com; lr", 400, id="space"),
        pytest.param("sip:user@exa\tmple.com", 400, id="tab"),
        pytest.param("sip:", 400, id="empty"),
        pytest.param("sip:@", 400, id="empty-host"),
        pytest.param("sip:user@", 400, id="user-no-host"),
        pytest.param("example.com", 400, id="no-scheme"),
        pytest.param("1sip:a@b", 400, id="bad-scheme"),
        pytest.param("sip:a@b:99999", 400, id="port-too-big"),
        pytest.param("sip:a@b:", 400, id="empty-port"),
        pytest.param("sip:a@b:5x", 400, id="port-not-number"),
        pytest.param("sip:a@b:\u0665", 400, id="port-arabic-digit"),
        pytest.param("sip:a@[2001:db8::1", 400, id="ipv6-unclosed"),
        pytest.param("sip:a@[2001:db8::1]x", 400, id="ipv6-junk"),
        pytest.param("sip:a@[zz::1]", 400, id="ipv6-not-hex"),
        pytest.param("sip:a@ho!st", 400, id="bad-host-char"),
        pytest.param("sip:a%4@b", 400, id="broken-escape"),
        pytest.param("sip:a%ff@b", 400, id="escape-not-utf8"),
        pytest.param("sip:a@b;;lr", 400, id="empty-param"),
        pytest.param("sip:a@b;x=", 400, id="empty-param-value"),
        pytest.param("sip:a@b?=x", 400, id="empty-header-name"),
        pytest.param('sip:a"b@c', 400, id="quote"),
        pytest.param("sip:a@b\x00", 400, id="nul"),
    ],
)
def test_invalid_uris(text: str, hint: int) -> None:
    with pytest.raises(SipParseError) as info:
        SipUri.parse(text)
    assert info.value.status_hint == hint


def test_parse_error_is_a_value_error() -> None:
    with pytest.raises(ValueError):
        SipUri.parse("tel:123")


def test_parse_any_tel() -> None:
    uri = SipUri.parse_any("tel:+1-201-555-0123;phone-context=example.com;EXT=7")
    assert uri == SipUri(
        host="",
        user="+1-201-555-0123",
        scheme="tel",
        params={"phone-context": "example.com", "ext": "7"},
    )
    assert not uri.is_sip
    assert str(uri) == "tel:+1-201-555-0123;phone-context=example.com;ext=7"


def test_parse_any_opaque() -> None:
    uri = SipUri.parse_any("mailto:watson@bell-telephone.com")
    assert (uri.scheme, uri.host, uri.user) == ("mailto", "", "watson@bell-telephone.com")
    assert str(uri) == "mailto:watson@bell-telephone.com"


def test_parse_any_sip_is_parse() -> None:
    uri = SipUri.parse_any("sip:a@b;lr")
    assert uri == SipUri.parse("sip:a@b;lr")
    assert uri.is_sip


@pytest.mark.parametrize("text", ["isbn:", "a b:c", "no-colon"])
def test_parse_any_invalid(text: str) -> None:
    with pytest.raises(SipParseError):
        SipUri.parse_any(text)


@pytest.mark.parametrize(
    "text",
    [
        "sip:alice@atlanta.com",
        "sips:alice@atlanta.com:5061;transport=tls",
        "sip:+4930123456@gw.example.com;user=phone",
        "sip:[2001:db8::1]:5060;lr",
        "sip:alice@atlanta.com;maddr=239.255.255.1;ttl=15",
        "sip:a%20b@c",
        "sip:%e2%82%ac@c",
    ],
)
def test_round_trip(text: str) -> None:
    uri = SipUri.parse(text)
    assert SipUri.parse(str(uri)) == uri


def test_non_ascii_escape_is_upper_hex_on_output() -> None:
    uri = SipUri.parse("sip:%e2%82%ac@c")
    assert uri.user == "\u20ac"
    assert str(uri) == "sip:%E2%82%AC@c"


@pytest.mark.parametrize(
    ("text", "sep", "limit", "parts"),
    [
        ("a,b,,c", ",", -1, ["a", "b", "", "c"]),
        ("a,b,c", ",", 1, ["a", "b,c"]),
        ('"x,y",<a,b>,c', ",", -1, ['"x,y"', "<a,b>", "c"]),
        ('"x,y",<a,b>,c', ",", 1, ['"x,y"', "<a,b>,c"]),
        (r'"a\",b",c', ",", -1, [r'"a\",b"', "c"]),
        (r'"a\\",b', ",", -1, [r'"a\\"', "b"]),
        (r'"a\\\",b",c', ",", -1, [r'"a\\\",b"', "c"]),
        ('"open,a;b', ",", -1, ['"open,a;b']),
        ("<open,a", ",", -1, ["<open,a"]),
        ('a;x="1;2";b', ";", -1, ["a", 'x="1;2"', "b"]),
        ("a>b,c", ",", -1, ["a>b", "c"]),
    ],
)
def test_split_quoted(text: str, sep: str, limit: int, parts: list[str]) -> None:
    assert split_quoted(text, sep, limit) == parts

"""RFC 4475 torture tests, written here from the descriptions in RFC 4475 §3.

Each message is our own rendering of what the RFC describes (names, hosts
and bodies differ from the RFC's text); the ids are the RFC's test names.
Valid messages must parse with the fields asserted; invalid ones must raise
``SipParseError`` with the status a server would answer (400, 416, 505).
"""

from __future__ import annotations

from collections.abc import Callable

import pytest

from gateway.errors import SipParseError
from gateway.sip.message import (
    Address,
    CSeq,
    SipRequest,
    SipResponse,
    Via,
    can_answer,
    parse_message,
)
from gateway.sip.uri import SipUri

SDP = (
    b"v=0\r\n"
    b"o=torture 53655765 2353687637 IN IP4 192.0.2.10\r\n"
    b"s=-\r\n"
    b"c=IN IP4 192.0.2.10\r\n"
    b"t=0 0\r\n"
    b"m=audio 49170 RTP/AVP 0 8\r\n"
)


def wire(head: str, body: bytes = b"") -> bytes:
    """``head`` is written with \\n line ends and must end with the blank line."""
    assert head.endswith("\n\n")
    return head.replace("\n", "\r\n").encode("utf-8") + body


def request(data: bytes) -> SipRequest:
    msg = parse_message(data)
    assert isinstance(msg, SipRequest)
    assert parse_message(bytes(msg)) == msg  # every valid message also round-trips
    return msg


def response(data: bytes) -> SipResponse:
    msg = parse_message(data)
    assert isinstance(msg, SipResponse)
    assert parse_message(bytes(msg)) == msg
    return msg


# -- §3.1.1 valid messages -------------------------------------------------------

# 3.1.1.1 wsinv: compact names, odd case, LWS and folding everywhere, unknown headers.
WSINV = wire(
    "INVITE sip:vivekg@chair-dnrc.example.com;unknownparam SIP/2.0\n"
    "TO :\n"
    " sip:vivekg@chair-dnrc.example.com ;   tag    = 1918181833n\n"
    'from   : "J Rosenberg \\\\\\""       <sip:jdrosen@example.com>\n'
    "  ;\n"
    "  tag = 98asjd8\n"
    "MaX-fOrWaRdS: 0068\n"
    "Call-ID: wsinv.ndaksdj@192.0.2.1\n"
    f"Content-Length   : {len(SDP)}\n"
    "cseq: 0009\n"
    "  INVITE\n"
    "Via  : SIP  /   2.0\n"
    " /UDP\n"
    "    192.0.2.2;branch=390skdjuw\n"
    "s :\n"
    "NewFangledHeader:   newfangled value\n"
    " continued newfangled value\n"
    "UnknownHeaderWithUnusualValue: ;;,,;;,;\n"
    "Content-Type: application/sdp\n"
    "Route:\n"
    " <sip:services.example.com;lr;unknownwith=value;unknown-no-value>\n"
    "v:  SIP  / 2.0  / TCP     spindle.example.com   ;\n"
    "  branch  =   z9hG4bK9ikj8  ,\n"
    " SIP  /    2.0   / UDP  192.168.255.111   ; branch=\n"
    " z9hG4bK30239\n"
    'm:"Quoted string \\"\\"" <sip:jdrosen@example.com> ; newparam =\n'
    "      newvalue ;\n"
    "  secondparam ; q = 0.33\n"
    "\n",
    SDP,
)


def check_wsinv(data: bytes) -> None:
    msg = request(data)
    assert msg.method == "INVITE"
    assert msg.uri == SipUri(
        host="chair-dnrc.example.com", user="vivekg", params={"unknownparam": None}
    )
    assert msg.to_addr == Address(
        SipUri(host="chair-dnrc.example.com", user="vivekg"), None, {"tag": "1918181833n"}
    )
    assert msg.from_addr.display_name == 'J Rosenberg \\"'
    assert msg.from_addr.tag == "98asjd8"
    assert msg.headers.get("Max-Forwards") == "0068"
    assert msg.call_id == "wsinv.ndaksdj@192.0.2.1"
    assert msg.cseq == CSeq(9, "INVITE")
    assert msg.vias == [
        Via("UDP", "192.0.2.2", None, {"branch": "390skdjuw"}),
        Via("TCP", "spindle.example.com", None, {"branch": "z9hG4bK9ikj8"}),
        Via("UDP", "192.168.255.111", None, {"branch": "z9hG4bK30239"}),
    ]
    assert msg.headers.get("Subject") == ""
    assert msg.headers.get("newfangledheader") == "newfangled value continued newfangled value"
    assert msg.headers.get("UnknownHeaderWithUnusualValue") == ";;,,;;,;"
    assert msg.headers.get("Route") == (
        "<sip:services.example.com;lr;unknownwith=value;unknown-no-value>"
    )
    assert msg.contacts == [
        Address(
            SipUri(host="example.com", user="jdrosen"),
            'Quoted string ""',
            {"newparam": "newvalue", "secondparam": None, "q": "0.33"},
        )
    ]
    assert msg.content_type == "application/sdp"
    assert msg.body == SDP
    names = [name for name, _ in msg.headers]
    assert names[:4] == ["To", "From", "Max-Forwards", "Call-ID"]
    assert "NewFangledHeader" in names and "Via" in names and "Contact" in names


# 3.1.1.2 intmeth: every token character in the method, odd URI, escaped controls.
INTMETH_METHOD = "!interesting-Method0123456789_*+`.%indeed'~"
INTMETH_USER = "1_unusual.URI~(to-be!sure)&isn't+it$/crazy?,/;;*"
INTMETH = wire(
    f"{INTMETH_METHOD} sip:{INTMETH_USER}:&it+has=1,weird!*pas$wo~d_too.(doesn't-it)"
    "@example.com SIP/2.0\n"
    "Via: SIP/2.0/TCP host1.example.com;branch=z9hG4bK-.!%66*_+`'~\n"
    f'To: "BEL:\\\x07 NUL:\\\x00 DEL:\\\x7f" <sip:{INTMETH_USER}@example.com>\n'
    "From: token1~` token2'+_ token3*%!.- <sip:mundane@example.com>"
    ";fromParam''~+*_!.-%=\u0440\u0430\u0431\u043e\u0442\u0430\u044e\u0449\u0438\u0439"
    ";tag=_token~1'+`*%!-.\n"
    "Call-ID: intmeth.word%ZK-!.*_+'@word`~)(><:\\/\"][?}{\n"
    f"CSeq: 139122385 {INTMETH_METHOD}\n"
    "Max-Forwards: 255\n"
    "extensionHeader-!.%*+_`'~: \ufeff\u5927\u505c\u96fb\n"
    "Content-Length: 0\n"
    "\n"
)


def check_intmeth(data: bytes) -> None:
    msg = request(data)
    assert msg.method == INTMETH_METHOD
    assert msg.uri.user == INTMETH_USER
    assert msg.uri.password == "&it+has=1,weird!*pas$wo~d_too.(doesn't-it)"
    assert msg.uri.host == "example.com"
    assert msg.top_via.branch == "z9hG4bK-.!%66*_+`'~"
    assert msg.to_addr.display_name == "BEL:\x07 NUL:\x00 DEL:\x7f"
    assert msg.to_addr.uri.user == INTMETH_USER
    assert msg.from_addr.display_name == "token1~` token2'+_ token3*%!.-"
    assert msg.from_addr.params == {
        "fromparam''~+*_!.-%": "\u0440\u0430\u0431\u043e\u0442\u0430\u044e\u0449\u0438\u0439",
        "tag": "_token~1'+`*%!-.",
    }
    assert msg.call_id == "intmeth.word%ZK-!.*_+'@word`~)(><:\\/\"][?}{"
    assert msg.cseq == CSeq(139122385, INTMETH_METHOD)
    assert msg.headers.get("EXTENSIONHEADER-!.%*+_`'~") == "\ufeff\u5927\u505c\u96fb"
    assert msg.body == b""


# 3.1.1.3 esc01: legal escapes in the Request-URI, To, From and Contact.
ESC01 = wire(
    "INVITE sip:sips%3Auser%40example.com@example.net SIP/2.0\n"
    "To: sip:%75se%72@example.com\n"
    "From: <sip:I%20have%20spaces@example.net>;tag=938\n"
    "Max-Forwards: 87\n"
    "i: esc01.239409asdfakjkn23onasd0-3234\n"
    "CSeq: 234234 INVITE\n"
    "Via: SIP/2.0/UDP host5.example.net;branch=z9hG4bKkdjuw\n"
    "C: application/sdp\n"
    "Contact:\n"
    "  <sip:cal%6Cer@host5.example.net;%6C%72;n%61me=v%61lue%25%34%31>\n"
    f"Content-Length: {len(SDP)}\n"
    "\n",
    SDP,
)


def check_esc01(data: bytes) -> None:
    msg = request(data)
    assert msg.uri.user == "sips:user@example.com"
    assert msg.uri.host == "example.net"
    assert msg.to_addr.uri == SipUri(host="example.com", user="user")
    assert msg.from_addr.uri.user == "I have spaces"
    assert msg.call_id == "esc01.239409asdfakjkn23onasd0-3234"
    (contact,) = msg.contacts
    assert contact.uri.user == "caller"
    # URI parameters are kept as sent (names lower-cased).
    assert contact.uri.params == {"%6c%72": None, "n%61me": "v%61lue%25%34%31"}
    assert msg.body == SDP


# 3.1.1.4 escnull: escaped NULs in URIs, and "L:0" without a space.
ESCNULL = wire(
    "REGISTER sip:example.com SIP/2.0\n"
    "To: sip:null-%00-null@example.com\n"
    "From: sip:null-%00-null@example.com;tag=839923423\n"
    "Max-Forwards: 70\n"
    "Call-ID: escnull.39203ndfvkjdasfkq3w4otrq0adsfdfnavd\n"
    "CSeq: 14398234 REGISTER\n"
    "Via: SIP/2.0/UDP host5.example.com;branch=z9hG4bKkdjuw\n"
    "Contact: <sip:%00@host5.example.com>\n"
    "Contact: <sip:%00%00@host5.example.com>\n"
    "L:0\n"
    "\n"
)


def check_escnull(data: bytes) -> None:
    msg = request(data)
    assert msg.to_addr.uri.user == "null-\x00-null"
    assert msg.from_addr.tag == "839923423"
    assert [c.uri.user for c in msg.contacts] == ["\x00", "\x00\x00"]
    assert msg.headers.get("Content-Length") == "0"


# 3.1.1.5 esc02: '%' is a token character in methods and header names; no unescaping there.
ESC02 = wire(
    "RE%47IST%45R sip:registrar.example.com SIP/2.0\n"
    'To: "%Z%45" <sip:resource@example.com>\n'
    'From: "%Z%45" <sip:resource@example.com>;tag=f232jadfj23\n'
    "Call-ID: esc02.asdfnqwo34rq23i34jrjasdcnl23nrlknsdf\n"
    "Via: SIP/2.0/TCP host.example.com;branch=z9hG4bK209793\n"
    "CSeq: 29344 RE%47IST%45R\n"
    "Max-Forwards: 70\n"
    "Contact: <sip:alias1@host1.example.com>\n"
    "C%6Fntact: <sip:alias2@host2.example.com>\n"
    "Contact: <sip:alias3@host3.example.com>\n"
    "l: 0\n"
    "\n"
)


def check_esc02(data: bytes) -> None:
    msg = request(data)
    assert msg.method == "RE%47IST%45R"
    assert msg.cseq == CSeq(29344, "RE%47IST%45R")
    assert msg.to_addr.display_name == "%Z%45"
    assert [c.uri.user for c in msg.contacts] == ["alias1", "alias3"]
    assert msg.headers.get("c%6fntact") == "<sip:alias2@host2.example.com>"


# 3.1.1.6 lwsdisp: no LWS between a token display name and '<'.
LWSDISP = wire(
    "OPTIONS sip:user@example.com SIP/2.0\n"
    "To: sip:user@example.com\n"
    "From: caller<sip:caller@example.com>;tag=323\n"
    "Max-Forwards: 70\n"
    "Call-ID: lwsdisp.1234abcd@funky.example.com\n"
    "CSeq: 60 OPTIONS\n"
    "Via: SIP/2.0/UDP funky.example.com;branch=z9hG4bKkdjuw\n"
    "l: 0\n"
    "\n"
)


def check_lwsdisp(data: bytes) -> None:
    msg = request(data)
    assert msg.from_addr == Address(
        SipUri(host="example.com", user="caller"), "caller", {"tag": "323"}
    )
    assert msg.to_addr.display_name is None


# 3.1.1.7 longreq: very long values, names, parameters and many Via fields.
LONG_VIAS = [f"sip{n}.example.com" for n in range(33, 0, -1)]
LONGREQ = wire(
    "INVITE sip:user@example.com SIP/2.0\n"
    f'To: "I have a user name of {"extreme" * 10} proportion"'
    f" <sip:user@example.com:6000;unknownparam1=very{'long' * 20}value"
    f";longparam{'name' * 25}=shortvalue;very{'long' * 25}ParameterNameWithNoValue>\n"
    f"F: sip:{'amazinglylongcallername' * 5}@example.net"
    f";tag=12{'982' * 50}424;unknownheaderparam{'name' * 20}=unknowheaderparam{'value' * 15}"
    ";unknownValuelessparamname\n"
    f"Call-ID: longreq.one{'really' * 20}longcallid\n"
    "CSeq: 3882340 INVITE\n"
    f"Unknown-{'Long' * 20}-Name: unknown-{'long' * 20}-value;"
    f" unknown-{'long' * 20}-parameter-name = unknown-{'long' * 20}-parameter-value\n"
    + "".join(f"Via: SIP/2.0/TCP {host}\n" for host in LONG_VIAS[:-1])
    + f"v: SIP/2.0/TCP {LONG_VIAS[-1]};branch=z9hG4bK.longreq\n"
    "Max-Forwards: 67\n"
    "Record-Route: " + ", ".join(f"<sip:{'p' * 30}{n}.example.com;lr>" for n in range(40)) + "\n"
    f"Contact: <sip:{'amazinglylongcallername' * 5}@host5.example.net>\n"
    "Content-Type: application/sdp\n"
    f"l: {len(SDP)}\n"
    "\n",
    SDP,
)


def check_longreq(data: bytes) -> None:
    msg = request(data)
    assert msg.to_addr.display_name == f"I have a user name of {'extreme' * 10} proportion"
    assert msg.to_addr.uri.port == 6000
    assert msg.to_addr.uri.params == {
        "unknownparam1": f"very{'long' * 20}value",
        f"longparam{'name' * 25}": "shortvalue",
        f"very{'long' * 25}parameternamewithnovalue": None,
    }
    assert msg.from_addr.uri.user == "amazinglylongcallername" * 5
    assert msg.from_addr.tag == f"12{'982' * 50}424"
    assert msg.from_addr.params[f"unknownheaderparam{'name' * 20}"] == (
        f"unknowheaderparam{'value' * 15}"
    )
    assert msg.from_addr.params["unknownvaluelessparamname"] is None
    assert msg.call_id == f"longreq.one{'really' * 20}longcallid"
    assert [v.host for v in msg.vias] == LONG_VIAS
    assert msg.top_via.branch is None
    assert msg.vias[-1].branch == "z9hG4bK.longreq"
    assert len(msg.headers.get_list("Record-Route")) == 40
    assert msg.headers.get(f"unknown-{'long' * 20}-name") == (
        f"unknown-{'long' * 20}-value; unknown-{'long' * 20}-parameter-name"
        f" = unknown-{'long' * 20}-parameter-value"
    )
    assert msg.body == SDP


# 3.1.1.8 dblreq: a second request after Content-Length is not part of the first.
DBLREQ = wire(
    "REGISTER sip:example.com SIP/2.0\n"
    "To: sip:j.user@example.com\n"
    "From: sip:j.user@example.com;tag=43251j3j324\n"
    "Max-Forwards: 8\n"
    "I: dblreq.0ha0isndaksdj99sdfafnl3lk233412\n"
    "Contact: sip:j.user@host.example.com\n"
    "CSeq: 8 REGISTER\n"
    "Via: SIP/2.0/UDP 192.0.2.125;branch=z9hG4bKkdjuw23492\n"
    "Content-Length: 0\n"
    "\n"
) + wire(
    "INVITE sip:joe@example.com SIP/2.0\n"
    "t: sip:joe@example.com\n"
    "From: sip:caller@example.net;tag=141334\n"
    "Max-Forwards: 8\n"
    "Call-ID: dblreq.0ha0isnda977644900765@192.0.2.15\n"
    "CSeq: 8 INVITE\n"
    "Via: SIP/2.0/UDP 192.0.2.15;branch=z9hG4bKkdjuw380234\n"
    "Content-Type: application/sdp\n"
    f"Content-Length: {len(SDP)}\n"
    "\n",
    SDP,
)


def check_dblreq(data: bytes) -> None:
    msg = request(data)
    assert msg.method == "REGISTER"
    assert msg.body == b""
    assert msg.call_id == "dblreq.0ha0isndaksdj99sdfafnl3lk233412"
    assert msg.contacts == [Address(SipUri(host="host.example.com", user="j.user"))]


# 3.1.1.9 semiuri: ';' in the user part of the Request-URI; a folded list header.
SEMIURI = wire(
    "OPTIONS sip:user;par=u%40example.net@example.com SIP/2.0\n"
    "To: sip:j_user@example.com\n"
    "From: sip:caller@example.org;tag=33242\n"
    "Max-Forwards: 3\n"
    "Call-ID: semiuri.0ha0isndaksdj\n"
    "CSeq: 8 OPTIONS\n"
    "Accept: application/sdp, application/pkcs7-mime,\n"
    "        multipart/mixed, multipart/signed,\n"
    "        message/sip, message/sipfrag\n"
    "Via: SIP/2.0/UDP 192.0.2.1;branch=z9hG4bKkdjuw\n"
    "l: 0\n"
    "\n"
)


def check_semiuri(data: bytes) -> None:
    msg = request(data)
    assert msg.uri == SipUri(host="example.com", user="user;par=u@example.net")
    assert msg.headers.get_list("Accept") == [
        "application/sdp",
        "application/pkcs7-mime",
        "multipart/mixed",
        "multipart/signed",
        "message/sip",
        "message/sipfrag",
    ]


# 3.1.1.10 transports: Via fields with UDP, SCTP, TLS, an unknown transport and TCP.
TRANSPORTS = wire(
    "OPTIONS sip:user@example.com SIP/2.0\n"
    "To: sip:user@example.com\n"
    "From: <sip:caller@example.com>;tag=323\n"
    "Max-Forwards: 70\n"
    "Call-ID: transports.kijh4akdnaqjkwendsasfdj\n"
    "Accept: application/sdp\n"
    "CSeq: 60 OPTIONS\n"
    "Via: SIP/2.0/UDP t1.example.com;branch=z9hG4bKkdjuw\n"
    "Via: SIP/2.0/SCTP t2.example.com;branch=z9hG4bKklasjdhf\n"
    "Via: SIP/2.0/TLS t3.example.com;branch=z9hG4bK2980unddj\n"
    "Via: SIP/2.0/UNKNOWN t4.example.com;branch=z9hG4bKasd0f3en\n"
    "Via: SIP/2.0/TCP t5.example.com;branch=z9hG4bK0a9idfnee\n"
    "l: 0\n"
    "\n"
)


def check_transports(data: bytes) -> None:
    msg = request(data)
    assert [(v.transport, v.host) for v in msg.vias] == [
        ("UDP", "t1.example.com"),
        ("SCTP", "t2.example.com"),
        ("TLS", "t3.example.com"),
        ("UNKNOWN", "t4.example.com"),
        ("TCP", "t5.example.com"),
    ]


# 3.1.1.11 mpart01: a multipart body with a binary part; the body is bytes, untouched.
BINARY_PART = bytes(range(256)) + b"\r\n\r\n\x00\xff--"
MPART01_BODY = (
    b"--boundary42\r\n"
    b"Content-Type: text/plain\r\n"
    b"\r\n"
    b"hello\r\n"
    b"--boundary42\r\n"
    b"Content-Type: application/octet-stream\r\n"
    b"Content-Transfer-Encoding: binary\r\n"
    b"\r\n" + BINARY_PART + b"\r\n"
    b"--boundary42--\r\n"
)
MPART01 = wire(
    "MESSAGE sip:kumiko@example.org SIP/2.0\n"
    "Via: SIP/2.0/UDP 192.0.2.101:5060;branch=z9hG4bKmp17a\n"
    "Max-Forwards: 70\n"
    "To: sip:kumiko@example.org\n"
    "From: sip:fluffy@example.com;tag=1234\n"
    "Call-ID: mpart01.1234abcd@example.com\n"
    "CSeq: 1 MESSAGE\n"
    'Content-Type: multipart/mixed;boundary="boundary42"\n'
    f"Content-Length: {len(MPART01_BODY)}\n"
    "\n",
    MPART01_BODY,
)


def check_mpart01(data: bytes) -> None:
    msg = request(data)
    assert msg.content_type == "multipart/mixed"
    assert msg.body == MPART01_BODY
    assert BINARY_PART in msg.body


# 3.1.1.12 unreason: a reason phrase with UTF-8 and punctuation.
UNREASON_PHRASE = (
    "= 2**3 * 5**2 \u043d\u043e \u0441\u0442\u043e \u0434\u0435\u0432\u044f\u043d\u043e"
    "\u0441\u0442\u043e \u0434\u0435\u0432\u044f\u0442\u044c - \u043f\u0440\u043e\u0441"
    "\u0442\u043e\u0435"
)
UNREASON = wire(
    f"SIP/2.0 200 {UNREASON_PHRASE}\n"
    "Via: SIP/2.0/UDP 192.0.2.198;branch=z9hG4bK1324923\n"
    "Call-ID: unreason.1234ksdfak3j2erwedfsASdf\n"
    "CSeq: 35 INVITE\n"
    "From: sip:user@example.com;tag=11141343\n"
    "To: sip:user@example.edu;tag=2229\n"
    f"Content-Length: {len(SDP)}\n"
    "Content-Type: application/sdp\n"
    "Contact: <sip:user@host198.example.com>\n"
    "\n",
    SDP,
)


def check_unreason(data: bytes) -> None:
    msg = response(data)
    assert (msg.status, msg.reason) == (200, UNREASON_PHRASE)
    assert msg.to_addr.tag == "2229"
    assert msg.body == SDP


# 3.1.1.13 noreason: an empty reason phrase (the SP after the code is present).
NOREASON = wire(
    "SIP/2.0 100 \n"
    "Via: SIP/2.0/UDP 192.0.2.105;branch=z9hG4bK2398ndaoe\n"
    "Call-ID: noreason.asndj203insdf99223ndf\n"
    "CSeq: 35 INVITE\n"
    "From: <sip:user@example.com>;tag=39ansfi3\n"
    "To: <sip:user@example.edu>;tag=902jndnke3\n"
    "Content-Length: 0\n"
    "Contact: <sip:user@host105.example.com>\n"
    "\n"
)


def check_noreason(data: bytes) -> None:
    msg = response(data)
    assert (msg.status, msg.reason) == (100, "")
    assert msg.cseq == CSeq(35, "INVITE")


def check_noreason_without_space(data: bytes) -> None:
    # A liberal receiver also takes the status line without the trailing SP.
    msg = response(data.replace(b"SIP/2.0 100 \r\n", b"SIP/2.0 100\r\n"))
    assert (msg.status, msg.reason) == (100, "")


# 3.3.? unksm2 / 3.1.2.? neighbours that must still parse: unknown schemes in
# To/From/Contact, Max-Forwards 0 (zeromf), an unknown body type (invut).
UNKSM2 = wire(
    "REGISTER sip:example.com SIP/2.0\n"
    "To: isbn:2983792873\n"
    "From: <http://www.example.com>;tag=3234233\n"
    "Call-ID: unksm2.daksdj@hyphenated-host.example.com\n"
    "CSeq: 234902 REGISTER\n"
    "Max-Forwards: 70\n"
    "Via: SIP/2.0/UDP 192.0.2.21:5060;branch=z9hG4bKkdjuw\n"
    "Contact: <name:John_Smith>\n"
    "l: 0\n"
    "\n"
)


def check_unksm2(data: bytes) -> None:
    msg = request(data)
    assert (msg.to_addr.uri.scheme, msg.to_addr.uri.user) == ("isbn", "2983792873")
    assert msg.from_addr.uri.scheme == "http"
    assert msg.from_addr.tag == "3234233"
    assert [str(c.uri) for c in msg.contacts] == ["name:John_Smith"]
    assert not msg.to_addr.uri.is_sip


ZEROMF = wire(
    "OPTIONS sip:user@example.com SIP/2.0\n"
    "Via: SIP/2.0/UDP host1.example.com;branch=z9hG4bKkdjuw\n"
    "To: <sip:user@example.com>\n"
    "From: <sip:caller@example.com>;tag=3ghsd41\n"
    "Call-ID: zeromf.2098asdfnvcxz@example.com\n"
    "CSeq: 29 OPTIONS\n"
    "Max-Forwards: 0\n"
    "l: 0\n"
    "\n"
)


def check_zeromf(data: bytes) -> None:
    assert request(data).headers.get("Max-Forwards") == "0"


INVUT = wire(
    "INVITE sip:user@example.com SIP/2.0\n"
    "Contact: <sip:caller@host5.example.net>\n"
    "To: sip:j.user@example.com\n"
    "From: sip:caller@example.net;tag=8392034\n"
    "Max-Forwards: 70\n"
    "Call-ID: invut.0ha0isndaksdjadsfij34n23d\n"
    "CSeq: 235448 INVITE\n"
    "Via: SIP/2.0/UDP somehost.example.com;branch=z9hG4bKkdjuw\n"
    "Content-Type: application/unknownformat\n"
    "Content-Length: 4\n"
    "\n",
    b"<xy>",
)


def check_invut(data: bytes) -> None:
    msg = request(data)
    assert msg.content_type == "application/unknownformat"
    assert msg.body == b"<xy>"


# inv2543: an RFC 2543 request, no branch at all, still parses.
INV2543 = wire(
    "INVITE sip:UserB@example.com SIP/2.0\n"
    "Via: SIP/2.0/UDP iftgw.example.com\n"
    "From: <sip:+13035551111@ift.client.example.net;user=phone>\n"
    "Record-Route: <sip:UserB@example.com;maddr=ss1.example.com>\n"
    "To: sip:+16505552222@ss1.example.net;user=phone\n"
    "Call-ID: inv2543.1717@ift.client.example.com\n"
    "CSeq: 56 INVITE\n"
    "Content-Type: application/sdp\n"
    "\n",
    SDP,
)


def check_inv2543(data: bytes) -> None:
    msg = request(data)
    assert msg.top_via.branch is None
    assert msg.from_addr.tag is None
    assert msg.to_addr.params == {"user": "phone"}  # addr-spec: params belong to the header
    assert msg.body == SDP  # no Content-Length: the rest of the datagram


# cparam01: a Contact in addr-spec form; its ;unknownparam belongs to the header.
CPARAM01 = wire(
    "REGISTER sip:example.com SIP/2.0\n"
    "Via: SIP/2.0/UDP saturn.example.com:5060;branch=z9hG4bKkdjuw\n"
    "Max-Forwards: 70\n"
    "From: sip:watson@example.com;tag=DkfVgjkrtMwaerKKpe\n"
    "To: sip:watson@example.com\n"
    "Call-ID: cparam01.70710@saturn.example.com\n"
    "CSeq: 2 REGISTER\n"
    "Contact: sip:+19725552222@gw1.example.net;unknownparam\n"
    "l: 0\n"
    "\n"
)


def check_cparam01(data: bytes) -> None:
    (contact,) = request(data).contacts
    assert contact.uri == SipUri(host="gw1.example.net", user="+19725552222")
    assert contact.params == {"unknownparam": None}


# cparam02: the same parameter inside <> belongs to the URI.
CPARAM02 = CPARAM01.replace(
    b"Contact: sip:+19725552222@gw1.example.net;unknownparam",
    b"Contact: <sip:+19725552222@gw1.example.net;unknownparam>",
).replace(b"cparam01", b"cparam02")


def check_cparam02(data: bytes) -> None:
    (contact,) = request(data).contacts
    assert contact.uri.params == {"unknownparam": None}
    assert contact.params == {}


# regescrt: an escaped Route header inside a Contact URI, legal within <>.
REGESCRT = wire(
    "REGISTER sip:example.com SIP/2.0\n"
    "To: sip:user@example.com\n"
    "From: sip:user@example.com;tag=8\n"
    "Max-Forwards: 70\n"
    "Call-ID: regescrt.k345asrl3fdbv@192.0.2.1\n"
    "CSeq: 14398234 REGISTER\n"
    "Via: SIP/2.0/UDP host5.example.com;branch=z9hG4bKkdjuw\n"
    "M: <sip:user@example.com?Route=%3Csip:sip.example.com%3E>\n"
    "L:0\n"
    "\n"
)


def check_regescrt(data: bytes) -> None:
    (contact,) = request(data).contacts
    assert contact.uri.headers == {"Route": "<sip:sip.example.com>"}
    assert str(contact.uri) == "sip:user@example.com?Route=%3Csip:sip.example.com%3E"


VALID: list[tuple[str, bytes, Callable[[bytes], None]]] = [
    ("wsinv", WSINV, check_wsinv),
    ("intmeth", INTMETH, check_intmeth),
    ("esc01", ESC01, check_esc01),
    ("escnull", ESCNULL, check_escnull),
    ("esc02", ESC02, check_esc02),
    ("lwsdisp", LWSDISP, check_lwsdisp),
    ("longreq", LONGREQ, check_longreq),
    ("dblreq", DBLREQ, check_dblreq),
    ("semiuri", SEMIURI, check_semiuri),
    ("transports", TRANSPORTS, check_transports),
    ("mpart01", MPART01, check_mpart01),
    ("unreason", UNREASON, check_unreason),
    ("noreason", NOREASON, check_noreason),
    ("noreason-nosp", NOREASON, check_noreason_without_space),
    ("unksm2", UNKSM2, check_unksm2),
    ("zeromf", ZEROMF, check_zeromf),
    ("invut", INVUT, check_invut),
    ("inv2543", INV2543, check_inv2543),
    ("cparam01", CPARAM01, check_cparam01),
    ("cparam02", CPARAM02, check_cparam02),
    ("regescrt", REGESCRT, check_regescrt),
]


@pytest.mark.parametrize(("data", "check"), [pytest.param(d, c, id=n) for n, d, c in VALID])
def test_valid(data: bytes, check: Callable[[bytes], None]) -> None:
    check(data)


@pytest.mark.parametrize("data", [pytest.param(d, id=n) for n, d, _ in VALID])
def test_valid_with_bare_lf(data: bytes) -> None:
    """The same messages with bare LF line ends parse to the same headers."""
    head, sep, body = data.partition(b"\r\n\r\n")
    lf = head.replace(b"\r\n", b"\n") + b"\n\n" + body
    assert parse_message(lf).headers == parse_message(data).headers


# -- §3.1.2 invalid messages -----------------------------------------------------


def base_request(
    start: str = "OPTIONS sip:user@example.com SIP/2.0",
    cseq: str = "1 OPTIONS",
    extra: str = "",
    name: str = "torture",
) -> str:
    return (
        f"{start}\n"
        "Via: SIP/2.0/UDP 192.0.2.7;branch=z9hG4bK" + name + "\n"
        "Max-Forwards: 70\n"
        "To: <sip:user@example.com>\n"
        "From: <sip:caller@example.net>;tag=" + name + "\n"
        f"Call-ID: {name}.1@192.0.2.7\n"
        f"CSeq: {cseq}\n"
        f"{extra}"
        "Content-Length: 0\n"
        "\n"
    )


INVALID: list[tuple[str, bytes, int]] = [
    # 3.1.2.1 extraneous separators: empty Via elements and empty parameters.
    (
        "badinv01",
        wire(
            "INVITE sip:user@example.com SIP/2.0\n"
            "To: sip:j.user@example.com\n"
            "From: sip:caller@example.net;tag=134161461246\n"
            "Max-Forwards: 7\n"
            "Call-ID: badinv01.0ha0isndaksdjasdf3234nas\n"
            "CSeq: 8 INVITE\n"
            "Via: SIP/2.0/UDP 192.0.2.15;;,;,,\n"
            'Contact: "Joe" <sip:joe@example.org>;;;;\n'
            f"Content-Length: {len(SDP)}\n"
            "Content-Type: application/sdp\n"
            "\n",
            SDP,
        ),
        400,
    ),
    # 3.1.2.2 Content-Length larger than the body.
    (
        "clerr",
        wire(
            "INVITE sip:user@example.com SIP/2.0\n"
            "Max-Forwards: 80\n"
            "To: sip:j.user@example.com\n"
            "From: sip:caller@example.net;tag=93942939o2\n"
            "Contact: <sip:caller@hungry.example.net>\n"
            "Call-ID: clerr.0ha0isndaksdjweiafasdk3\n"
            "CSeq: 8 INVITE\n"
            "Via: SIP/2.0/UDP host5.example.com;branch=z9hG4bK-39234-23523\n"
            "Content-Type: application/sdp\n"
            "Content-Length: 9999\n"
            "\n",
            SDP,
        ),
        400,
    ),
    # 3.1.2.3 negative Content-Length.
    (
        "ncl",
        wire(
            "INVITE sip:user@example.com SIP/2.0\n"
            "Max-Forwards: 254\n"
            "To: sip:j.user@example.com\n"
            "From: sip:caller@example.net;tag=32394234\n"
            "Call-ID: ncl.0ha0isndaksdj2193423r542w35\n"
            "CSeq: 0 INVITE\n"
            "Via: SIP/2.0/UDP 192.0.2.53;branch=z9hG4bKkdjuw\n"
            "Contact: <sip:caller@example53.example.net>\n"
            "Content-Type: application/sdp\n"
            "Content-Length: -999\n"
            "\n",
            SDP,
        ),
        400,
    ),
    # 3.1.2.4 overlarge scalar values in a request (CSeq beyond 2**32, Max-Forwards 300).
    (
        "scalar02",
        wire(
            "REGISTER sip:example.com SIP/2.0\n"
            "Via: SIP/2.0/TCP host129.example.com;branch=z9hG4bK342sdfoi3\n"
            "To: <sip:user@example.com>\n"
            "From: <sip:user@example.com>;tag=239232jh3\n"
            "CSeq: 36893488147419103232 REGISTER\n"
            "Call-ID: scalar02.23o0pd9vanlq3wnrlnewofjas9ui32\n"
            "Max-Forwards: 300\n"
            "Expires: 1" + "0" * 60 + "\n"
            "Contact: <sip:user@host129.example.com>;expires=280297596632815\n"
            "Content-Length: 0\n"
            "\n"
        ),
        400,
    ),
    # 3.1.2.5 overlarge scalar values in a response: must be discarded, not crash.
    (
        "scalarlg",
        wire(
            "SIP/2.0 503 Service Unavailable\n"
            "Via: SIP/2.0/TCP host129.example.com;branch=z9hG4bKzzxdiwo34sw;received=192.0.2.129\n"
            "To: <sip:user@example.com>\n"
            "From: <sip:other@example.net>;tag=2easdjfejw\n"
            "CSeq: 9292394834772304023312 OPTIONS\n"
            "Call-ID: scalarlg.noase0of0234hn2qofoaf0232aewf2394r\n"
            "Retry-After: 949302838503028349304023988\n"
            'Warning: 1812 overture "In Progress"\n'
            "Content-Length: 0\n"
            "\n"
        ),
        400,
    ),
    # 3.1.2.6 unterminated quoted string in a display name.
    (
        "quotbal",
        wire(
            "INVITE sip:user@example.com SIP/2.0\n"
            'To: "Mr. J. User <sip:j.user@example.com>\n'
            "From: sip:caller@example.net;tag=93334\n"
            "Max-Forwards: 10\n"
            "Call-ID: quotbal.aksdj\n"
            "Contact: <sip:caller@host59.example.net>\n"
            "CSeq: 8 INVITE\n"
            "Via: SIP/2.0/UDP 192.0.2.59:5050;branch=z9hG4bKkdjuw39234\n"
            "Content-Type: application/sdp\n"
            f"Content-Length: {len(SDP)}\n"
            "\n",
            SDP,
        ),
        400,
    ),
    # 3.1.2.7 Request-URI enclosed in <>.
    (
        "ltgtruri",
        wire(base_request("INVITE <sip:user@example.com> SIP/2.0", "23 INVITE", name="ltgtruri")),
        400,
    ),
    # 3.1.2.8 LWS inside the Request-URI.
    (
        "lwsruri",
        wire(base_request("INVITE sip:user@example.com; lr SIP/2.0", "1 INVITE", name="lwsruri")),
        400,
    ),
    # 3.1.2.9 more than one SP between Request-Line elements.
    (
        "lwsstart",
        wire(base_request("INVITE  sip:user@example.com  SIP/2.0", "1 INVITE", name="lwsstart")),
        400,
    ),
    # 3.1.2.10 SP characters at the end of the Request-Line.
    (
        "trws",
        wire(base_request("OPTIONS sip:remote-target@example.com SIP/2.0  ", name="trws")),
        400,
    ),
    # 3.1.2.11 escaped headers in the Request-URI.
    (
        "escruri",
        wire(
            base_request(
                "INVITE sip:user@example.com?Route=%3Csip:example.com%3E SIP/2.0",
                "1 INVITE",
                name="escruri",
            )
        ),
        400,
    ),
    # 3.1.2.12 Date with a time zone other than GMT.
    (
        "baddate",
        wire(
            base_request(
                "INVITE sip:user@example.com SIP/2.0",
                "1 INVITE",
                "Date: Fri, 01 Jan 2010 16:00:00 EST\n",
                name="baddate",
            )
        ),
        400,
    ),
    # 3.1.2.13 a Contact URI with headers in addr-spec form (needs <>).
    (
        "regbadct",
        wire(
            base_request(
                "REGISTER sip:example.com SIP/2.0",
                "1 REGISTER",
                "Contact: sip:user@example.com?Route=%3Csip:sip.example.com%3E\n",
                name="regbadct",
            )
        ),
        400,
    ),
    # 3.1.2.14 spaces inside the <> of an addr-spec.
    (
        "badaspec",
        wire(
            "OPTIONS sip:user@example.org SIP/2.0\n"
            "Via: SIP/2.0/UDP host4.example.com:5060;branch=z9hG4bKkdju43234\n"
            "Max-Forwards: 70\n"
            'From: "Bell, Alexander" <sip:a.g.bell@example.com>;tag=433423\n'
            'To: "Watson, Thomas" < sip:t.watson@example.org >\n'
            "Call-ID: badaspec.sdf0234n2nds0a099u23h3hnnw009cdkne3\n"
            "Accept: application/sdp\n"
            "CSeq: 3923239 OPTIONS\n"
            "l: 0\n"
            "\n"
        ),
        400,
    ),
    # 3.1.2.15 non-token characters (a comma) in an unquoted display name.
    (
        "baddn",
        wire(
            "OPTIONS sip:t.watson@example.org SIP/2.0\n"
            "Via: SIP/2.0/UDP c.example.com:5060;branch=z9hG4bKkdjuw\n"
            "Max-Forwards: 70\n"
            "From: Bell, Alexander <sip:a.g.bell@example.com>;tag=43\n"
            "To: Watson, Thomas <sip:t.watson@example.org>\n"
            "Call-ID: baddn.31415@c.example.com\n"
            "Accept: application/sdp\n"
            "CSeq: 3923239 OPTIONS\n"
            "l: 0\n"
            "\n"
        ),
        400,
    ),
    # 3.1.2.16 unknown protocol version.
    (
        "badvers",
        wire(
            "OPTIONS sip:t.watson@example.org SIP/7.0\n"
            "Via: SIP/7.0/UDP c.example.com;branch=z9hG4bKkdjuw\n"
            "Max-Forwards: 70\n"
            "From: A. Bell <sip:a.g.bell@example.com>;tag=qweoiqpe\n"
            "To: T. Watson <sip:t.watson@example.org>\n"
            "Call-ID: badvers.31417@c.example.com\n"
            "CSeq: 1 OPTIONS\n"
            "l: 0\n"
            "\n"
        ),
        505,
    ),
    # 3.1.2.17 start line and CSeq method differ.
    (
        "mismatch01",
        wire(base_request("OPTIONS sip:user@example.com SIP/2.0", "1 INVITE", name="mismatch01")),
        400,
    ),
    # 3.1.2.18 unknown method with a CSeq method that differs.
    (
        "mismatch02",
        wire(
            base_request(
                "NEWMETHOD sip:user@example.com SIP/2.0",
                "1 INVITE",
                "Content-Type: application/sdp\nContact: <sip:caller@host.example>\n",
                name="mismatch02",
            )
        ),
        400,
    ),
    # 3.1.2.19 a response code far beyond three digits.
    (
        "bigcode",
        wire(
            "SIP/2.0 4294967301 better not break the receiver\n"
            "Via: SIP/2.0/UDP 192.0.2.105;branch=z9hG4bK2398ndaoe\n"
            "Call-ID: bigcode.asdof3uj203asdnf3429uasdhfas3ehjasdfas9i\n"
            "CSeq: 353494 INVITE\n"
            "From: <sip:user@example.com>;tag=39ansfi3\n"
            "To: <sip:user@example.edu>;tag=902jndnke3\n"
            "Content-Length: 0\n"
            "Contact: <sip:user@host105.example.com>\n"
            "\n"
        ),
        400,
    ),
    # 3.1.3.1 badbranch: the branch is only the magic cookie.
    (
        "badbranch",
        wire(
            "OPTIONS sip:user@example.com SIP/2.0\n"
            "To: sip:user@example.com\n"
            "From: sip:caller@example.org;tag=33242\n"
            "Max-Forwards: 3\n"
            "Via: SIP/2.0/UDP 192.0.2.1;branch=z9hG4bK\n"
            "Accept: application/sdp\n"
            "Call-ID: badbranch.sadonfo23i420jv0as0derf3j3n\n"
            "CSeq: 8 OPTIONS\n"
            "l: 0\n"
            "\n"
        ),
        400,
    ),
    # 3.1.4? insuf: missing Call-ID, From, To (and Max-Forwards).
    (
        "insuf",
        wire(
            "INVITE sip:user@example.com SIP/2.0\n"
            "CSeq: 193942 INVITE\n"
            "Via: SIP/2.0/UDP 192.0.2.95;branch=z9hG4bKkdj.insuf\n"
            "Content-Type: application/sdp\n"
            f"l: {len(SDP)}\n"
            "\n",
            SDP,
        ),
        400,
    ),
    # unkscm: an unknown scheme in the Request-URI.
    (
        "unkscm",
        wire(
            base_request(
                "OPTIONS nobodyKnowsThisScheme:totallyopaquecontent SIP/2.0", name="unkscm"
            )
        ),
        416,
    ),
    # novelsc: a novel scheme with a SIP-looking host part.
    (
        "novelsc",
        wire(base_request("OPTIONS soap.beep://192.0.2.103:3002 SIP/2.0", name="novelsc")),
        416,
    ),
    # mcl01: several values in single-value fields (Call-ID, To, From, Content-Length).
    (
        "mcl01",
        wire(
            "OPTIONS sip:user@example.com SIP/2.0\n"
            "Via: SIP/2.0/UDP host5.example.net;branch=z9hG4bK293423\n"
            "To: sip:user@example.com\n"
            "From: sip:other@example.net;tag=3923942\n"
            "Call-ID: mcl01.fhn2323orihawfdoa3o4r52o3irsdf\n"
            "CSeq: 15932 OPTIONS\n"
            "Content-Length: 13\n"
            "Max-Forwards: 60\n"
            "Content-Length: 5\n"
            "Content-Type: text/plain\n"
            "\n",
            b"There's no way to know how many octets are supposed to be here.\r\n",
        ),
        400,
    ),
]


# What each invalid message must be rejected for, so that none passes by tripping
# over something else.
REASONS = {
    "badinv01": r"bad parameter in 'SIP/2\.0/UDP 192\.0\.2\.15;;'",
    "clerr": r"Content-Length 9999 exceeds",
    "ncl": r"bad Content-Length: '-999'",
    "scalar02": r"bad CSeq number: '36893488147419103232'",
    "scalarlg": r"bad CSeq number",
    "quotbal": r"unterminated quoted string",
    "ltgtruri": r"illegal character in URI '<sip:",
    "lwsruri": r"malformed request line",
    "lwsstart": r"malformed request line",
    "trws": r"malformed request line",
    "escruri": r"headers are not allowed in a Request-URI",
    "baddate": r"Date not in GMT",
    "regbadct": r"addr-spec needs <>",
    "badaspec": r"illegal character in URI ' sip:t\.watson",
    "baddn": r"bad display name",
    "badvers": r"unsupported version 'SIP/7\.0'",
    "mismatch01": r"CSeq method 'INVITE' differs from 'OPTIONS'",
    "mismatch02": r"CSeq method 'INVITE' differs from 'NEWMETHOD'",
    "bigcode": r"bad status code '4294967301'",
    "badbranch": r"only the magic cookie",
    "insuf": r"missing Call-ID",
    "unkscm": r"unsupported URI scheme 'nobodyknowsthisscheme'",
    "novelsc": r"unsupported URI scheme 'soap\.beep'",
    "mcl01": r"2 Content-Length headers",
}


@pytest.mark.parametrize(
    ("data", "hint", "reason"), [pytest.param(d, h, REASONS[n], id=n) for n, d, h in INVALID]
)
def test_invalid(data: bytes, hint: int, reason: str) -> None:
    with pytest.raises(SipParseError, match=reason) as info:
        parse_message(data)
    assert info.value.status_hint == hint


def test_every_invalid_case_has_a_reason() -> None:
    assert sorted(REASONS) == sorted(n for n, _, _ in INVALID)


ANSWERABLE = {
    # Requests whose Via, From, To, Call-ID and CSeq survive: a 4xx/505 can be sent.
    "clerr",
    "ncl",
    "ltgtruri",
    "lwsruri",
    "lwsstart",
    "trws",
    "escruri",
    "baddate",
    "regbadct",
    "badbranch",
    "mismatch01",
    "mismatch02",
    "unkscm",
    "novelsc",
    "mcl01",
}


@pytest.mark.parametrize(("data", "name"), [pytest.param(d, n, id=n) for n, d, _ in INVALID])
def test_invalid_can_answer(data: bytes, name: str) -> None:
    """can_answer salvages exactly the requests whose transaction headers survived."""
    salvaged = can_answer(data)
    if name in ANSWERABLE:
        assert salvaged is not None
        assert salvaged.call_id.startswith(name[:4])
        assert salvaged.top_via.branch is not None
    else:
        assert salvaged is None

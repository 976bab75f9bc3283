"""Property tests for the SIP message layer: hostile input never crashes it.

(1) arbitrary bytes and SIP-looking noise raise only ``SipParseError``;
(2) valid messages mutated (byte flips, truncation, duplicated or dropped
lines, inserted bytes) likewise; (3) generated valid requests and responses
round-trip ``parse_message(bytes(m)) == m``; (4) ``can_answer`` never raises.
"""

from __future__ import annotations

import string

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from gateway.errors import SipParseError
from gateway.sip.message import (
    Address,
    CSeq,
    Headers,
    SipRequest,
    SipResponse,
    Via,
    can_answer,
    parse_message,
)
from gateway.sip.uri import SipUri
from tests.unit.test_message_torture import INVALID, VALID

FUZZ = settings(
    max_examples=300,
    deadline=None,
    database=None,
    suppress_health_check=[HealthCheck.too_slow],
)
SEEDS = [data for _, data, _ in VALID] + [data for _, data, _ in INVALID]


def parse_or_reject(data: bytes) -> None:
    try:
        msg = parse_message(data)
    except SipParseError as exc:
        assert exc.status_hint in (0, 400, 413, 416, 505)
        return
    # Whatever parses must serialise and parse back to the same message.
    assert parse_message(bytes(msg)) == msg


# -- (1) arbitrary input ---------------------------------------------------------


@FUZZ
@given(st.binary(max_size=3000))
def test_arbitrary_bytes(data: bytes) -> None:
    parse_or_reject(data)
    can_answer(data)


SIP_WORDS = [
    "INVITE", "ACK", "BYE", "SIP/2.0", "SIP/2.0/UDP", "sip:", "sips:", "tel:", "@", ":", ";",
    ",", "=", "<", ">", '"', "\\", " ", "\t", "\r\n", "\n", "\r\n ", "\r\n\r\n", "%", "%41",
    "[", "]", "::1", "Via:", "v:", "From:", "f:", "To:", "t:", "Call-ID:", "i:", "CSeq:",
    "Contact:", "m:", "*", "Content-Length:", "l:", "Max-Forwards:", "tag=", "branch=",
    "z9hG4bK", "rport", "received=", "lr", "0", "1", "70", "-1", "99999999999999999999",
    "example.com", "192.0.2.1", "\x00", "\xff", "\u00e9", "200", "OK", "x", "\u0663",
    "\u00b2", "1" * 30, "2147483648", "65536", "sip:a@b", "<sip:a@[::1]:5060;lr>",
    "SIP/2.0/UDP h;branch=z9hG4bK1", "\\\"", "\xc3",
]  # fmt: skip


@st.composite
def sip_noise(draw: st.DrawFn) -> bytes:
    words = draw(st.lists(st.sampled_from(SIP_WORDS), max_size=120))
    return "".join(words).encode("utf-8", "surrogateescape")


@FUZZ
@given(sip_noise())
def test_sip_looking_noise(data: bytes) -> None:
    parse_or_reject(data)
    can_answer(data)


# -- (2) mutated valid messages ----------------------------------------------------


MUTATIONS = ["flip", "truncate", "insert", "digits", "value", "dup", "drop", "swap"]
WORDS = [w.encode("utf-8") for w in SIP_WORDS]


@st.composite
def mutated(draw: st.DrawFn) -> bytes:
    """A seed message with 1-4 mutations, biased towards the fields parsers get wrong."""
    data = bytearray(draw(st.sampled_from(SEEDS)))
    for _ in range(draw(st.integers(1, 4))):
        if not data:
            break
        op = draw(st.sampled_from(MUTATIONS))
        at = draw(st.integers(0, len(data) - 1))
        if op == "flip":
            data[at] ^= 1 << draw(st.integers(0, 7))
        elif op == "truncate":
            del data[at:]
        elif op == "insert":
            data[at:at] = draw(st.sampled_from(WORDS))
        elif op == "digits":
            # Numbers (CSeq, Content-Length, ports, status codes) are where int() bites.
            spots = [i for i, b in enumerate(data[:4000]) if 0x30 <= b <= 0x39]
            if spots:
                i = draw(st.sampled_from(spots))
                data[i : i + 1] = draw(st.sampled_from(WORDS))
        elif op == "value":
            # Replace the whole value of one header field with SIP-looking noise.
            lines = bytes(data).split(b"\r\n")
            i = draw(st.integers(0, len(lines) - 1))
            name, colon, _ = lines[i].partition(b":")
            if colon:
                lines[i] = (
                    name + b": " + b"".join(draw(st.lists(st.sampled_from(WORDS), max_size=8)))
                )
                data = bytearray(b"\r\n".join(lines))
        else:
            lines = bytes(data).split(b"\r\n")
            i = draw(st.integers(0, len(lines) - 1))
            j = draw(st.integers(0, len(lines) - 1))
            if op == "dup":
                lines.insert(j, lines[i])
            elif op == "drop":
                del lines[i]
            else:
                lines[i], lines[j] = lines[j], lines[i]
            data = bytearray(b"\r\n".join(lines))
    return bytes(data)


@FUZZ
@given(mutated())
def test_mutated_messages(data: bytes) -> None:
    parse_or_reject(data)


@FUZZ
@given(mutated())
def test_can_answer_never_raises_on_mutations(data: bytes) -> None:
    salvaged = can_answer(data)
    if salvaged is not None:
        # A salvaged request must carry what a response needs.
        assert salvaged.method != "ACK"
        assert salvaged.top_via.host
        assert isinstance(salvaged.cseq, CSeq)
        assert salvaged.call_id
        salvaged.from_addr  # noqa: B018  # must not raise
        salvaged.to_addr  # noqa: B018


# -- (3) generated valid messages round-trip -------------------------------------

TOKEN_CHARS = string.ascii_letters + string.digits + "-.!%*_+`'~"
tokens = st.text(TOKEN_CHARS, min_size=1, max_size=12)
lower_tokens = st.text(string.ascii_lowercase + string.digits + "-", min_size=1, max_size=10)
# Anything printable, escapes and non-ASCII included, but no CR/LF and no surrogates.
free_text = st.text(
    st.characters(exclude_categories=["Cs"], exclude_characters="\r\n"), max_size=20
)
PARAM_VALUE_CHARS = string.ascii_letters + string.digits + "-_.!~*'()[]/:&+$"
param_values = st.text(PARAM_VALUE_CHARS, min_size=1, max_size=10)
hostnames = st.one_of(
    st.lists(lower_tokens, min_size=1, max_size=3).map(".".join),
    st.tuples(*[st.integers(0, 255)] * 4).map(lambda t: ".".join(map(str, t))),
    st.sampled_from(["[::1]", "[2001:db8::10]", "[fe80::1:2:3:4]"]),
)
params = st.dictionaries(lower_tokens, st.one_of(st.none(), param_values), max_size=3)


@st.composite
def sip_uris(draw: st.DrawFn) -> SipUri:
    user = draw(st.one_of(st.none(), free_text))
    return SipUri(
        host=draw(hostnames),
        user=user,
        password=draw(st.one_of(st.none(), free_text)) if user is not None else None,
        port=draw(st.one_of(st.none(), st.integers(0, 65535))),
        scheme=draw(st.sampled_from(["sip", "sips"])),
        params=draw(params),
    )


@st.composite
def addresses(draw: st.DrawFn, tag: bool) -> Address:
    header_params = draw(st.dictionaries(lower_tokens, st.one_of(st.none(), tokens), max_size=2))
    if tag:
        header_params["tag"] = draw(tokens)
    return Address(draw(sip_uris()), draw(st.one_of(st.none(), free_text)), header_params)


@st.composite
def vias(draw: st.DrawFn) -> Via:
    via_params: dict[str, str | None] = {"branch": "z9hG4bK" + draw(tokens)}
    via_params.update(draw(params))
    return Via(
        draw(st.sampled_from(["UDP", "TCP", "TLS", "WS", "SCTP"])),
        draw(hostnames),
        draw(st.one_of(st.none(), st.integers(0, 65535))),
        via_params,
    )


@st.composite
def common_headers(draw: st.DrawFn, method: str, to_tag: bool) -> Headers:
    headers = Headers()
    for via in draw(st.lists(vias(), min_size=1, max_size=3)):
        headers.add("Via", str(via))
    headers.add("From", str(draw(addresses(tag=True))))
    headers.add("To", str(draw(addresses(tag=to_tag))))
    headers.add("Call-ID", draw(tokens) + "@" + draw(hostnames))
    headers.add("CSeq", str(CSeq(draw(st.integers(0, 2**31 - 1)), method)))
    if draw(st.booleans()):
        headers.add("Max-Forwards", str(draw(st.integers(0, 255))))
    for contact in draw(st.lists(addresses(tag=False), max_size=2)):
        headers.add("Contact", str(contact))
    for name, value in draw(st.lists(st.tuples(tokens, free_text), max_size=4)):
        headers.add("X-" + name, value)
    return headers


@st.composite
def requests(draw: st.DrawFn) -> SipRequest:
    method = draw(st.one_of(st.sampled_from(["INVITE", "ACK", "BYE", "OPTIONS"]), tokens))
    headers = draw(common_headers(method, to_tag=draw(st.booleans())))
    return SipRequest(method, draw(sip_uris()), headers, draw(st.binary(max_size=200)))


@st.composite
def responses(draw: st.DrawFn) -> SipResponse:
    method = draw(st.sampled_from(["INVITE", "REGISTER", "BYE"]))
    headers = draw(common_headers(method, to_tag=True))
    reason = draw(st.text(string.ascii_letters + " -", max_size=20)).strip()
    status = draw(st.integers(100, 699))
    return SipResponse(status, reason, headers, draw(st.binary(max_size=200)))


@FUZZ
@given(requests())
def test_generated_requests_round_trip(msg: SipRequest) -> None:
    assert parse_message(bytes(msg)) == msg


@FUZZ
@given(responses())
def test_generated_responses_round_trip(msg: SipResponse) -> None:
    assert parse_message(bytes(msg)) == msg


@FUZZ
@given(sip_uris())
def test_uri_round_trip(uri: SipUri) -> None:
    assert SipUri.parse(str(uri)) == uri


@FUZZ
@given(addresses(tag=True))
def test_address_round_trip(addr: Address) -> None:
    assert Address.parse(str(addr)) == addr


# -- (4) can_answer ------------------------------------------------------------------


@FUZZ
@given(requests(), st.sampled_from([b"\xff", b"Content-Length: 99999", b"SIP/9.9", b"\r\n "]))
def test_can_answer_on_broken_generated_requests(msg: SipRequest, junk: bytes) -> None:
    wire = bytes(msg)
    broken = wire.replace(b"SIP/2.0\r\n", b"SIP/2.0 " + junk + b"\r\n", 1)
    salvaged = can_answer(broken)
    if msg.method == "ACK":
        assert salvaged is None
    else:
        assert salvaged is not None
        assert salvaged.call_id == msg.call_id
        assert salvaged.cseq == msg.cseq
        assert salvaged.headers.get_all("Via") == msg.headers.get_all("Via")

"""SIP messages: parsing and serialising (RFC 3261 §7, §20, §25).

A datagram becomes a :class:`SipRequest` or :class:`SipResponse` through
:func:`parse_message`, and ``bytes(msg)`` writes it back (Content-Length is
always recomputed from the body).  Parsing enforces hard limits so a hostile
datagram costs little and can never crash the caller: every failure is a
:class:`SipParseError` whose ``status_hint`` says what to answer (400, 413,
505...), and :func:`can_answer` says whether enough of the request survived
to build that answer.

Header names are matched case-insensitively and compact forms (``v``, ``i``,
``f``, ``t``, ``m``, ``l``, ``c``, ``k``, ``s``, ``e``, ``o``, ``u``, ``r``,
``b``, ``x``) are expanded to their long names on parse.

The parser is a few linear scans (``split``, ``partition`` and regular
expressions without nested quantifiers), so its cost grows with the size of
the datagram and nothing else.  Only the headers every layer needs (Via,
From, To, Call-ID, CSeq, Content-Length and, in requests, Max-Forwards,
Contact and Date) are validated up front; the accessors parse on demand.
"""

from __future__ import annotations

import re
import secrets
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field

from gateway.errors import SipParseError
from gateway.sip.uri import SipUri, format_params, parse_hostport, parse_params, split_quoted

__all__ = [
    "MAX_DATAGRAM",
    "MAX_HEADERS",
    "MAX_HEADER_LENGTH",
    "MAX_LIST_ELEMENTS",
    "Address",
    "CSeq",
    "Headers",
    "SipMessage",
    "SipParseError",
    "SipRequest",
    "SipResponse",
    "Via",
    "can_answer",
    "make_response",
    "new_branch",
    "new_call_id",
    "new_tag",
    "parse_message",
    "reason_phrase",
]

MAX_DATAGRAM = 65_535  # bytes; larger input -> SipParseError(status_hint=413)
MAX_HEADERS = 128  # header fields per message
MAX_HEADER_LENGTH = 8_192  # bytes in one header field, folded lines included
MAX_LIST_ELEMENTS = 70  # Via or Contact elements per message (Max-Forwards 70 bounds real Vias)
BRANCH_MAGIC = "z9hG4bK"  # RFC 3261 §8.1.1.7

# RFC 3261 §7.3.3 and the extensions that define one (RFC 3265, 3515, 3892, 4028...).
_COMPACT = {
    "i": "Call-ID",
    "m": "Contact",
    "e": "Content-Encoding",
    "l": "Content-Length",
    "c": "Content-Type",
    "f": "From",
    "s": "Subject",
    "k": "Supported",
    "t": "To",
    "v": "Via",
    "o": "Event",
    "u": "Allow-Events",
    "r": "Refer-To",
    "b": "Referred-By",
    "x": "Session-Expires",
    "a": "Accept-Contact",
    "j": "Reject-Contact",
    "d": "Request-Disposition",
    "y": "Identity",
}
_CANONICAL = {
    name.lower(): name
    for name in (
        "Accept",
        "Accept-Contact",
        "Accept-Encoding",
        "Accept-Language",
        "Alert-Info",
        "Allow",
        "Allow-Events",
        "Authentication-Info",
        "Authorization",
        "Call-ID",
        "Call-Info",
        "Contact",
        "Content-Disposition",
        "Content-Encoding",
        "Content-Language",
        "Content-Length",
        "Content-Type",
        "CSeq",
        "Date",
        "Diversion",
        "Error-Info",
        "Event",
        "Expires",
        "From",
        "History-Info",
        "Identity",
        "In-Reply-To",
        "Max-Forwards",
        "MIME-Version",
        "Min-Expires",
        "Min-SE",
        "Organization",
        "P-Asserted-Identity",
        "P-Preferred-Identity",
        "Path",
        "Priority",
        "Privacy",
        "Proxy-Authenticate",
        "Proxy-Authorization",
        "Proxy-Require",
        "RAck",
        "Reason",
        "Record-Route",
        "Refer-To",
        "Referred-By",
        "Reject-Contact",
        "Remote-Party-ID",
        "Replaces",
        "Reply-To",
        "Request-Disposition",
        "Require",
        "Retry-After",
        "Route",
        "RSeq",
        "Server",
        "Service-Route",
        "Session-Expires",
        "Subject",
        "Subscription-State",
        "Supported",
        "Timestamp",
        "To",
        "Unsupported",
        "User-Agent",
        "Via",
        "Warning",
        "WWW-Authenticate",
    )
}
# Exactly one of these per message (RFC 3261 §20, table 2); RFC 4475 mcl01.
_SINGLE = ("Call-ID", "CSeq", "From", "To", "Max-Forwards", "Content-Length")
_DIALOG_CREATING = frozenset({"INVITE", "SUBSCRIBE", "REFER"})

_LWS = re.compile(r"[ \t]+")
_TOKEN = re.compile(r"[A-Za-z0-9\-.!%*_+`'~]+")
_BLANK_LINE = re.compile(rb"\r?\n\r?\n")
_VERSION = re.compile(r"SIP/[0-9]+\.[0-9]+", re.IGNORECASE)
# Start lines carry no control characters at all (HTAB only inside a reason).
_START_CONTROL = re.compile(r"[\x00-\x08\x0a-\x1f\x7f]")
_DISPLAY_TOKEN = re.compile(r"[^\x00-\x20\x7f()<>@,;:\\\"/\[\]?={}]+")


def _key(name: str) -> str:
    low = name.lower()
    long = _COMPACT.get(low)
    return long.lower() if long else low


def _canonical(name: str) -> str:
    low = name.lower()
    long = _COMPACT.get(low)
    if long:
        return long
    return _CANONICAL.get(low, name)


def _uint(text: str, what: str, limit: int) -> int:
    """ASCII digits only, value below ``limit`` (checked before int() on huge input)."""
    if not (text.isascii() and text.isdigit()) or len(text.lstrip("0")) > 12:
        raise SipParseError(f"bad {what}: {text[:40]!r}")
    value = int(text)
    if value >= limit:
        raise SipParseError(f"{what} out of range: {text[:40]!r}")
    return value


class Headers:
    """An ordered, case-insensitive multi-map of header fields.

    Names are stored in their canonical long form (``Call-ID``, ``CSeq``,
    ``WWW-Authenticate``); lookups accept any case and compact forms.
    Values are stripped strings.  A header that may appear as a
    comma-separated list (Via, Route, Record-Route, Contact, Allow,
    Supported...) is *not* split here: use :meth:`get_list`.

    Unknown names are kept as sent.  Equality compares names
    case-insensitively and values exactly, in order, and ignores
    Content-Length (``bytes(msg)`` recomputes it from the body).  Values
    containing CR or LF are refused with ``ValueError`` (header injection).
    """

    __slots__ = ("_items",)

    def __init__(self, items: list[tuple[str, str]] | None = None) -> None:
        self._items: list[tuple[str, str, str]] = []  # (key, canonical name, value)
        for name, value in items or ():
            self.add(name, value)

    @classmethod
    def _trusted(cls, items: Iterable[tuple[str, str, str]]) -> Headers:
        """Build from already validated (key, name, value) triples (the parser's path)."""
        headers = cls()
        headers._items = list(items)
        return headers

    @staticmethod
    def _entry(name: str, value: str) -> tuple[str, str, str]:
        if not _TOKEN.fullmatch(name):
            raise ValueError(f"invalid header name {name!r}")
        if "\r" in value or "\n" in value:
            raise ValueError(f"CR/LF in value of header {name!r}")
        return _key(name), _canonical(name), value.strip(" \t")

    def get(self, name: str, default: str | None = None) -> str | None:
        """First value of ``name``, or ``default``."""
        key = _key(name)
        for k, _, value in self._items:
            if k == key:
                return value
        return default

    def get_all(self, name: str) -> list[str]:
        """Every field of ``name`` in order, as sent (not comma-split)."""
        key = _key(name)
        return [value for k, _, value in self._items if k == key]

    def get_int(self, name: str) -> int | None:
        """The first value of ``name`` as a non-negative integer (Expires, Min-Expires), or None."""
        value = (self.get(name) or "").strip()
        return int(value) if value.isascii() and value.isdigit() else None

    def get_list(self, name: str) -> list[str]:
        """Every element of a list header, split on commas outside quotes and <>."""
        return self._split_list(name, -1)[0]

    def _split_list(self, name: str, limit: int) -> tuple[list[str], bool]:
        """(elements, overflow): stops once more than ``limit`` pieces (empty ones too) are seen."""
        out: list[str] = []
        pieces = 0
        for value in self.get_all(name):
            room = -1 if limit < 0 else limit - pieces
            parts = split_quoted(value, ",", room)
            pieces += len(parts)
            out += [p for p in (part.strip(" \t") for part in parts) if p]
            if pieces > limit >= 0:
                return out, True
        return out, False

    def set(self, name: str, value: str) -> None:
        """Replace every field of ``name`` by one field.

        The new field takes the first one's place, else it is appended.
        """
        entry = self._entry(name, value)
        key = entry[0]
        for i, item in enumerate(self._items):
            if item[0] == key:
                self._items[i] = entry
                self._items[i + 1 :] = [it for it in self._items[i + 1 :] if it[0] != key]
                return
        self._items.append(entry)

    def add(self, name: str, value: str) -> None:
        """Append a field."""
        self._items.append(self._entry(name, value))

    def prepend(self, name: str, value: str) -> None:
        """Insert a field before every other field of that name (e.g. a new top Via)."""
        entry = self._entry(name, value)
        for i, item in enumerate(self._items):
            if item[0] == entry[0]:
                self._items.insert(i, entry)
                return
        self._items.append(entry)

    def remove(self, name: str) -> None:
        """Remove every field of ``name`` (no error if absent)."""
        key = _key(name)
        self._items = [item for item in self._items if item[0] != key]

    def items(self) -> list[tuple[str, str]]:
        return [(name, value) for _, name, value in self._items]

    def copy(self) -> Headers:
        return Headers._trusted(self._items)

    def __contains__(self, name: object) -> bool:
        if not isinstance(name, str):
            return False
        key = _key(name)
        return any(item[0] == key for item in self._items)

    def __iter__(self) -> Iterator[tuple[str, str]]:
        return iter(self.items())

    def __len__(self) -> int:
        return len(self._items)

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Headers):
            return NotImplemented
        return self._comparable() == other._comparable()

    def _comparable(self) -> list[tuple[str, str]]:
        return [(k, v) for k, _, v in self._items if k != "content-length"]

    def __repr__(self) -> str:
        return f"Headers({self.items()!r})"


@dataclass
class Via:
    """One Via value: ``SIP/2.0/UDP host:port;branch=z9hG4bK...;rport;received=1.2.3.4``.

    ``host`` is lower-cased and an IPv6 reference keeps its brackets, as in
    :class:`SipUri`.  Parameter keys are lower-cased, values kept as sent;
    ``;rport`` without a value maps to ``None``.  Whitespace that RFC 3261
    §25.1 allows around ``/``, ``:``, ``;`` and ``=`` is accepted.
    """

    transport: str  # upper-case: UDP, TCP, TLS, WS...
    host: str
    port: int | None = None
    params: dict[str, str | None] = field(default_factory=dict)

    @classmethod
    def parse(cls, text: str) -> Via:
        parts = text.split("/", 2)
        if len(parts) != 3:
            raise SipParseError(f"bad Via {text[:80]!r}")
        protocol, version, rest = parts
        if protocol.strip(" \t").upper() != "SIP" or version.strip(" \t") != "2.0":
            raise SipParseError(f"bad Via protocol {text[:80]!r}")
        parts = _LWS.split(rest.lstrip(" \t"), maxsplit=1)
        transport, rest = parts[0], parts[1] if len(parts) > 1 else ""
        if not _TOKEN.fullmatch(transport):
            raise SipParseError(f"bad Via transport {text[:80]!r}")
        sent_by, semi, params_text = rest.partition(";")
        host, port = parse_hostport(sent_by)
        params = parse_params(params_text, text) if semi else {}
        return cls(transport.upper(), host, port, params)

    def __str__(self) -> str:
        port = "" if self.port is None else f":{self.port}"
        return f"SIP/2.0/{self.transport} {self.host}{port}{format_params(self.params)}"

    @property
    def branch(self) -> str | None:
        return self.params.get("branch")

    @property
    def received(self) -> str | None:
        return self.params.get("received")

    @property
    def rport(self) -> int | None:
        """The rport value a server filled in, or None (absent or empty ``;rport``)."""
        value = self.params.get("rport")
        if value is None or not (value.isascii() and value.isdigit()) or len(value) > 5:
            return None
        return int(value)


def _read_quoted(text: str) -> tuple[str, str]:
    """``"a \\"b\\"" rest`` -> ('a "b"', ' rest'); ``text`` starts with the quote."""
    out: list[str] = []
    i = 1
    n = len(text)
    while i < n:
        ch = text[i]
        if ch == "\\":
            if i + 1 >= n:
                break
            out.append(text[i + 1])
            i += 2
        elif ch == '"':
            return "".join(out), text[i + 1 :]
        else:
            out.append(ch)
            i += 1
    raise SipParseError(f"unterminated quoted string in {text[:80]!r}")


def _quote(text: str) -> str:
    """A quoted-string for ``text``; CR and LF cannot be quoted so become spaces."""
    text = text.replace("\r", " ").replace("\n", " ")
    escaped = "".join("\\" + c if c in '"\\' or c < " " or c == "\x7f" else c for c in text)
    return f'"{escaped}"'


@dataclass
class Address:
    """A name-addr or addr-spec with header parameters (From, To, Contact, Route...).

    ``"Alice" <sip:alice@example.com>;tag=1928301774`` ->
    display_name "Alice", uri, params {"tag": "1928301774"}.  In the addr-spec
    form without ``<>`` the parameters after the URI belong to the header,
    not the URI (RFC 3261 §20.10).  ``Contact: *`` parses as ``is_wildcard``.

    Escapes in a quoted display name are decoded (``"a \\"b\\""`` ->
    ``a "b"``); an unquoted display name is kept as sent, stripped.  Besides
    SIP URIs, ``uri`` may hold a ``tel:`` or other absolute URI as described
    in :meth:`SipUri.parse_any` (check ``uri.is_sip``).  A wildcard's ``uri``
    is a placeholder with host ``*``.
    """

    uri: SipUri
    display_name: str | None = None
    params: dict[str, str | None] = field(default_factory=dict)
    is_wildcard: bool = False

    @classmethod
    def parse(cls, text: str) -> Address:
        text = text.strip(" \t")
        if text == "*":
            return cls(SipUri(host="*"), is_wildcard=True)
        display: str | None = None
        if text.startswith('"'):
            display, rest = _read_quoted(text)
            rest = rest.lstrip(" \t")
            if not rest.startswith("<"):
                raise SipParseError(f"quoted display name without <URI> in {text[:80]!r}")
        elif "<" in text:
            name, _, tail = text.partition("<")
            name = name.strip(" \t")
            if name:
                if not all(_DISPLAY_TOKEN.fullmatch(word) for word in name.split()):
                    raise SipParseError(f"bad display name in {text[:80]!r}")
                display = name
            rest = "<" + tail
        else:
            # addr-spec: a URI with ';', '?' or ',' must use name-addr (RFC 3261
            # §20.10), so the first ';' starts the header parameters.
            uri_text, semi, params_text = text.partition(";")
            if "?" in uri_text or "," in uri_text:
                raise SipParseError(f"addr-spec needs <> in {text[:80]!r}")
            uri = SipUri.parse_any(uri_text.rstrip(" \t"))
            params = parse_params(params_text, text) if semi else {}
            return cls(uri, None, params)
        uri_text, gt, tail = rest[1:].partition(">")
        if not gt:
            raise SipParseError(f"missing '>' in {text[:80]!r}")
        uri = SipUri.parse_any(uri_text)
        tail = tail.strip(" \t")
        if tail and not tail.startswith(";"):
            raise SipParseError(f"junk after '>' in {text[:80]!r}")
        params = parse_params(tail[1:], text) if tail else {}
        return cls(uri, display, params)

    def __str__(self) -> str:
        """Always the name-addr form with ``<>`` (quoted display name if any)."""
        if self.is_wildcard:
            return "*"
        name = "" if self.display_name is None else _quote(self.display_name) + " "
        return f"{name}<{self.uri}>{format_params(self.params)}"

    @property
    def tag(self) -> str | None:
        return self.params.get("tag")


@dataclass(frozen=True)
class CSeq:
    number: int  # 0 <= number < 2**31
    method: str

    @classmethod
    def parse(cls, text: str) -> CSeq:
        parts = text.split()
        if len(parts) != 2:
            raise SipParseError(f"bad CSeq {text[:80]!r}")
        number = _uint(parts[0], "CSeq number", 2**31)
        if not _TOKEN.fullmatch(parts[1]):
            raise SipParseError(f"bad CSeq method {text[:80]!r}")
        return cls(number, parts[1])

    def __str__(self) -> str:
        return f"{self.number} {self.method}"


class SipMessage:
    """Behaviour shared by requests and responses (convenience accessors).

    The accessors parse on demand and raise ``SipParseError`` if the header
    is missing or malformed.
    """

    headers: Headers
    body: bytes

    def _required(self, name: str) -> str:
        value = self.headers.get(name)
        if value is None:
            raise SipParseError(f"missing {name} header")
        return value

    @property
    def call_id(self) -> str:
        return self._required("Call-ID")

    @property
    def cseq(self) -> CSeq:
        return CSeq.parse(self._required("CSeq"))

    @property
    def from_addr(self) -> Address:
        return Address.parse(self._required("From"))

    @property
    def to_addr(self) -> Address:
        return Address.parse(self._required("To"))

    @property
    def vias(self) -> list[Via]:
        return [Via.parse(v) for v in self.headers.get_list("Via")]

    @property
    def top_via(self) -> Via:
        vias = self.headers.get_list("Via")
        if not vias:
            raise SipParseError("missing Via header")
        return Via.parse(vias[0])

    @property
    def contacts(self) -> list[Address]:
        return [Address.parse(c) for c in self.headers.get_list("Contact")]

    @property
    def content_type(self) -> str | None:
        """Media type lower-cased without parameters (``application/sdp``), or None."""
        value = self.headers.get("Content-Type")
        if value is None:
            return None
        return value.partition(";")[0].strip(" \t").lower() or None

    def _start_line(self) -> str:
        raise NotImplementedError

    def __bytes__(self) -> bytes:
        lines = [self._start_line()]
        length_written = False
        for key, name, value in self.headers._items:
            if key == "content-length":
                if length_written:
                    continue
                value = str(len(self.body))
                length_written = True
            lines.append(f"{name}: {value}")
        if not length_written:
            lines.append(f"Content-Length: {len(self.body)}")
        lines += ["", ""]
        return "\r\n".join(lines).encode("utf-8") + self.body


@dataclass(eq=True)
class SipRequest(SipMessage):
    method: str
    uri: SipUri
    headers: Headers
    body: bytes = b""

    def _start_line(self) -> str:
        return f"{self.method} {self.uri} SIP/2.0"


@dataclass(eq=True)
class SipResponse(SipMessage):
    status: int
    reason: str
    headers: Headers
    body: bytes = b""

    def _start_line(self) -> str:
        return f"SIP/2.0 {self.status} {self.reason}"


def _split_head(data: bytes, strict: bool) -> tuple[str, list[tuple[str, str, str]], bytes]:
    """(start line, [(key, name, value)], rest) of a datagram without leading CRLFs.

    Strict mode enforces the limits and raises; lenient mode (for
    :func:`can_answer`) skips what it cannot read.
    """
    match = _BLANK_LINE.search(data)
    head, rest = (data[: match.start()], data[match.end() :]) if match else (data, b"")
    lines = head.split(b"\n")
    errors = "strict" if strict else "replace"
    try:
        start = lines[0].removesuffix(b"\r").decode("utf-8", errors)
    except UnicodeDecodeError:
        raise SipParseError("start line is not UTF-8") from None

    # Group continuation lines (leading SP/HTAB) with the field they fold.
    raw_fields: list[list[bytes]] = []
    size = 0
    for line in lines[1:]:
        line = line.removesuffix(b"\r")
        if line[:1] in (b" ", b"\t"):
            if not raw_fields:
                if strict:
                    raise SipParseError("continuation line before first header")
                continue
            raw_fields[-1].append(line)
            size += len(line) + 2
        elif not line:
            continue  # only the last line of a head without a blank line
        else:
            if len(raw_fields) >= MAX_HEADERS:
                if strict:
                    raise SipParseError("too many header fields")
                break
            raw_fields.append([line])
            size = len(line)
        if size > MAX_HEADER_LENGTH:
            if strict:
                raise SipParseError("header field too long")
            raw_fields.pop()
            size = 0

    fields: list[tuple[str, str, str]] = []
    for parts in raw_fields:
        raw = b" ".join(p.strip(b" \t") for p in parts)
        try:
            text = raw.decode("utf-8", errors)
        except UnicodeDecodeError:
            raise SipParseError("header field is not UTF-8") from None
        name, colon, value = text.partition(":")
        name = name.rstrip(" \t")
        if not colon or not _TOKEN.fullmatch(name) or "\r" in value:
            if strict:
                raise SipParseError(f"malformed header line {text[:80]!r}")
            continue
        fields.append((_key(name), _canonical(name), value.strip(" \t")))
    return start, fields, rest


def _check_version(version: str) -> None:
    if version.upper() != "SIP/2.0":
        if _VERSION.fullmatch(version):
            raise SipParseError(f"unsupported version {version!r}", status_hint=505)
        raise SipParseError(f"bad SIP version {version[:20]!r}")


def parse_message(data: bytes) -> SipRequest | SipResponse:
    """Parse one SIP message from a datagram (or a framed stream message).

    Raises ``SipParseError`` on anything malformed, including: size over
    ``MAX_DATAGRAM`` (413), more than ``MAX_HEADERS`` fields or a field over
    ``MAX_HEADER_LENGTH`` (400), a version other than SIP/2.0 (505), invalid
    UTF-8 in the start line or headers (400), a missing mandatory header
    (Via, Call-ID, CSeq, From, To; Max-Forwards may be absent), a CSeq method
    that differs from the request method (400), a Content-Length that is
    negative, not a number, or larger than the body (400).  Bytes after
    Content-Length are ignored (datagram rule, RFC 3261 §18.3).  Without
    Content-Length on a datagram, the rest of the datagram is the body.

    Leading CRLFs are skipped (RFC 3261 §7.5).  A datagram made only of CR
    and LF (or empty) is a keep-alive (RFC 5626 §4.4.1), not a message: it
    raises ``SipParseError`` with ``status_hint`` 0, meaning "ignore
    silently, answer nothing".

    Also rejected with 400: a non-SIP/SIPS Request-URI (416), headers in the
    Request-URI, a status code outside 100..699, a duplicated single-value
    header (Call-ID, CSeq, From, To, Max-Forwards, Content-Length), a
    Max-Forwards over 255, a branch that is only the magic cookie, and in
    requests an unparsable Contact or a Date not in GMT.
    """
    if len(data) > MAX_DATAGRAM:
        raise SipParseError(f"message of {len(data)} bytes is too large", status_hint=413)
    data = data.lstrip(b"\r\n")
    if not data:
        raise SipParseError("keep-alive, not a message", status_hint=0)
    start, fields, rest = _split_head(data, strict=True)
    if _START_CONTROL.search(start):
        raise SipParseError("control character in start line")
    headers = Headers._trusted(fields)
    msg: SipRequest | SipResponse
    if start[:4].upper() == "SIP/":
        msg = _parse_status_line(start, headers)
    else:
        msg = _parse_request_line(start, headers)
    msg.body = _body(headers, rest)
    _validate(msg)
    return msg


def _parse_request_line(start: str, headers: Headers) -> SipRequest:
    parts = start.split(" ")
    if len(parts) != 3 or not all(parts):
        raise SipParseError(f"malformed request line {start[:80]!r}")
    method, uri_text, version = parts
    if not _TOKEN.fullmatch(method):
        raise SipParseError(f"bad method {method[:40]!r}")
    _check_version(version)
    uri = SipUri.parse(uri_text)
    if uri.headers:
        raise SipParseError("headers are not allowed in a Request-URI")
    return SipRequest(method, uri, headers)


def _parse_status_line(start: str, headers: Headers) -> SipResponse:
    parts = start.split(" ", 2)
    if len(parts) < 2:
        raise SipParseError(f"malformed status line {start[:80]!r}")
    _check_version(parts[0])
    code = parts[1]
    if len(code) != 3 or not (code.isascii() and code.isdigit()) or not 100 <= int(code) <= 699:
        raise SipParseError(f"bad status code {code[:20]!r}")
    # "SIP/2.0 100" without the SP before an empty reason is accepted (RFC 4475 noreason).
    return SipResponse(int(code), parts[2] if len(parts) == 3 else "", headers)


def _body(headers: Headers, rest: bytes) -> bytes:
    lengths = headers.get_all("Content-Length")
    if not lengths:
        return rest
    length = _uint(lengths[0], "Content-Length", 2**31)
    if length > len(rest):
        raise SipParseError(f"Content-Length {length} exceeds the {len(rest)} body bytes")
    return rest[:length]


def _validate(msg: SipRequest | SipResponse) -> None:
    headers = msg.headers
    for name in _SINGLE:
        count = len(headers.get_all(name))
        if count > 1:
            raise SipParseError(f"{count} {name} headers")
        if count == 0 and name not in ("Max-Forwards", "Content-Length"):
            raise SipParseError(f"missing {name} header")
    via_values = _bounded_list(headers, "Via")
    if not via_values:
        raise SipParseError("missing Via header")
    vias = [Via.parse(v) for v in via_values]
    if vias[0].branch == BRANCH_MAGIC:
        raise SipParseError("Via branch is only the magic cookie")
    call_id = msg.call_id
    if not call_id or any(c.isspace() for c in call_id):
        raise SipParseError(f"bad Call-ID {call_id[:80]!r}")
    cseq = msg.cseq
    for addr in (msg.from_addr, msg.to_addr):
        if addr.is_wildcard:
            raise SipParseError("'*' in From or To")
    if isinstance(msg, SipRequest):
        if cseq.method != msg.method:
            raise SipParseError(f"CSeq method {cseq.method!r} differs from {msg.method!r}")
        max_forwards = headers.get("Max-Forwards")
        if max_forwards is not None:
            _uint(max_forwards, "Max-Forwards", 256)
        contacts = [Address.parse(c) for c in _bounded_list(headers, "Contact")]
        if len(contacts) > 1 and any(c.is_wildcard for c in contacts):
            raise SipParseError("Contact '*' mixed with addresses")
        date = headers.get("Date")
        if date is not None and not date.endswith(" GMT"):
            raise SipParseError(f"Date not in GMT: {date[:60]!r}")


def _bounded_list(headers: Headers, name: str) -> list[str]:
    # A datagram can pack thousands of list elements; parsing each would let a
    # single packet cost tens of milliseconds, so refuse before parsing them.
    elements, overflow = headers._split_list(name, MAX_LIST_ELEMENTS)
    if overflow:
        raise SipParseError(f"more than {MAX_LIST_ELEMENTS} {name} elements")
    return elements


def can_answer(data: bytes) -> SipRequest | None:
    """Best-effort salvage of a malformed *request* so a 4xx can be sent.

    Returns a request carrying at least Via, From, To, Call-ID and CSeq if
    they are present and usable, otherwise None (the datagram is dropped).
    Never raises.

    The salvaged request carries exactly those five headers (every Via
    field, in order) and no body; the top Via, From, To and CSeq must parse.
    An ACK (never answered, RFC 3261 §17.2.1), a response or a keep-alive
    gives None.  When the Request-URI is unusable the salvaged request
    carries ``sip:invalid`` instead.  Only the head is read again, so calling
    this after :func:`parse_message` failed costs little.
    """
    try:
        return _salvage(data[:MAX_DATAGRAM])
    except Exception:  # a salvage that trips over the garbage is a drop, not a crash
        return None


def _salvage(data: bytes) -> SipRequest | None:
    data = data.lstrip(b"\r\n")
    if not data:
        return None
    start, fields, _ = _split_head(data, strict=False)
    parts = start.split(" ")
    method = parts[0]
    if not _TOKEN.fullmatch(method) or method == "ACK" or method[:4].upper() == "SIP/":
        return None
    try:
        uri = SipUri.parse(parts[1])
    except (SipParseError, IndexError):
        uri = SipUri(host="invalid")
    headers = Headers._trusted(fields)
    vias = headers.get_all("Via")
    if not vias:
        return None
    top = headers._split_list("Via", 1)[0]
    if not top:
        return None
    Via.parse(top[0])
    salvaged = Headers._trusted((_key("Via"), "Via", v) for v in vias)
    for name in ("From", "To", "Call-ID", "CSeq"):
        value = headers.get(name)
        if not value:
            return None
        salvaged.add(name, value)
    # Each of these raises if unusable, which can_answer turns into None.
    # Each raises if unusable, which can_answer turns into None.
    CSeq.parse(salvaged.get("CSeq") or "")
    Address.parse(salvaged.get("From") or "")
    Address.parse(salvaged.get("To") or "")
    return SipRequest(method, uri, salvaged)


def make_response(
    request: SipRequest,
    status: int,
    reason: str | None = None,
    *,
    to_tag: str | None = None,
    headers: list[tuple[str, str]] | None = None,
    body: bytes = b"",
) -> SipResponse:
    """A response to ``request`` per RFC 3261 §8.2.6.2.

    Copies Via (all, in order), From, To, Call-ID and CSeq; adds ``to_tag`` to
    To when given and To has no tag yet; copies Record-Route for responses to
    dialog-creating requests other than 100.  ``headers`` are appended.
    ``reason`` defaults to :func:`reason_phrase`.

    Record-Route is copied for 101..299 to INVITE, SUBSCRIBE and REFER
    (RFC 3261 §12.1.1: the responses that can establish a dialog).
    """
    req = request.headers
    out = Headers._trusted((_key("Via"), "Via", v) for v in req.get_all("Via"))
    for name in ("From", "To", "Call-ID", "CSeq"):
        value = req.get(name)
        if value is None:
            continue
        if name == "To" and to_tag is not None and not _has_tag(value):
            value = f"{value};tag={to_tag}"
        out.add(name, value)
    if request.method in _DIALOG_CREATING and 101 <= status <= 299:
        for value in req.get_all("Record-Route"):
            out.add("Record-Route", value)
    for name, value in headers or ():
        out.add(name, value)
    return SipResponse(status, reason if reason is not None else reason_phrase(status), out, body)


def _has_tag(to: str) -> bool:
    try:
        return Address.parse(to).tag is not None
    except SipParseError:
        return ";tag=" in to.replace(" ", "").lower()


_REASONS = {
    100: "Trying",
    180: "Ringing",
    181: "Call Is Being Forwarded",
    182: "Queued",
    183: "Session Progress",
    199: "Early Dialog Terminated",
    200: "OK",
    202: "Accepted",
    204: "No Notification",
    300: "Multiple Choices",
    301: "Moved Permanently",
    302: "Moved Temporarily",
    305: "Use Proxy",
    380: "Alternative Service",
    400: "Bad Request",
    401: "Unauthorized",
    402: "Payment Required",
    403: "Forbidden",
    404: "Not Found",
    405: "Method Not Allowed",
    406: "Not Acceptable",
    407: "Proxy Authentication Required",
    408: "Request Timeout",
    410: "Gone",
    412: "Conditional Request Failed",
    413: "Request Entity Too Large",
    414: "Request-URI Too Long",
    415: "Unsupported Media Type",
    416: "Unsupported URI Scheme",
    420: "Bad Extension",
    421: "Extension Required",
    422: "Session Interval Too Small",
    423: "Interval Too Brief",
    429: "Provide Referrer Identity",
    433: "Anonymity Disallowed",
    480: "Temporarily Unavailable",
    481: "Call/Transaction Does Not Exist",
    482: "Loop Detected",
    483: "Too Many Hops",
    484: "Address Incomplete",
    485: "Ambiguous",
    486: "Busy Here",
    487: "Request Terminated",
    488: "Not Acceptable Here",
    489: "Bad Event",
    491: "Request Pending",
    493: "Undecipherable",
    494: "Security Agreement Required",
    500: "Server Internal Error",
    501: "Not Implemented",
    502: "Bad Gateway",
    503: "Service Unavailable",
    504: "Server Time-out",
    505: "Version Not Supported",
    513: "Message Too Large",
    580: "Precondition Failure",
    600: "Busy Everywhere",
    603: "Decline",
    604: "Does Not Exist Anywhere",
    606: "Not Acceptable",
    607: "Unwanted",
    608: "Rejected",
}


def reason_phrase(status: int) -> str:
    """The RFC 3261 §21 reason phrase for ``status`` ("Unknown" if none)."""
    return _REASONS.get(status, "Unknown")


def new_branch() -> str:
    """A fresh RFC 3261 branch: ``z9hG4bK`` + random token."""
    return BRANCH_MAGIC + secrets.token_hex(10)


def new_tag() -> str:
    """A fresh From/To tag: 64 random bits, hex (RFC 3261 §19.3 wants 32 or more)."""
    return secrets.token_hex(8)


def new_call_id() -> str:
    """A fresh Call-ID: 128 random bits, hex (no host part: nothing to leak)."""
    return secrets.token_hex(16)

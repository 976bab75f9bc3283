"""SIP and SIPS URIs (RFC 3261 §19.1).

``SipUri.parse`` accepts what real peers send (user parts with escapes,
IPv6 references, parameters without values); ``str()`` writes the canonical
form back.  Parsing never raises anything but :class:`SipParseError`.

Escapes (``%40``) in the user, password and URI headers are decoded on parse
and re-applied by ``str()`` (RFC 3261 §19.1.4 treats both forms as equal), so
``parse(str(u)) == u``.  URI parameters are kept exactly as sent.

Besides ``sip:``/``sips:``, :meth:`SipUri.parse_any` also holds the other
absolute URIs that may appear in From, To or Contact (``tel:+4930...``,
``mailto:``...): their scheme is kept, ``host`` is empty and the rest sits in
``user`` (for ``tel:`` the ``;params`` go to ``params``).  Only the
Request-URI must be SIP/SIPS (416 otherwise).
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

from gateway.errors import SipParseError

__all__ = ["SipUri", "SipParseError"]

_SCHEME = re.compile(r"[A-Za-z][A-Za-z0-9+\-.]*")
_HOSTNAME = re.compile(r"[A-Za-z0-9\-._]+")
_IPV6 = re.compile(r"\[[0-9A-Fa-f:.]+\]")
# Characters a URI may never contain raw: whitespace, controls and the
# delimiters of the header field around it (RFC 3261 §19.1.1, §25.1).
_FORBIDDEN = re.compile(r"[\x00-\x20\x7f<>\"]")
_ALNUM = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789"
_UNRESERVED = _ALNUM + "-_.!~*'()"
_USER_SAFE = frozenset(_UNRESERVED + "&=+$,;?/")
_PASSWORD_SAFE = frozenset(_UNRESERVED + "&=+$,")
_HEADER_SAFE = frozenset(_UNRESERVED + "[]/?:+$")


def _unescape(text: str) -> str:
    """Decode ``%HH`` escapes (UTF-8); a broken escape is a parse error."""
    if "%" not in text:
        return text
    out = bytearray()
    i = 0
    n = len(text)
    while i < n:
        ch = text[i]
        if ch == "%":
            pair = text[i + 1 : i + 3]
            if len(pair) != 2 or not all(c in "0123456789abcdefABCDEF" for c in pair):
                raise SipParseError(f"bad escape in URI: {text!r}")
            out.append(int(pair, 16))
            i += 3
        else:
            out += ch.encode("utf-8", "surrogatepass")
            i += 1
    try:
        return out.decode("utf-8")
    except UnicodeDecodeError:
        raise SipParseError(f"escape is not UTF-8 in URI: {text!r}") from None


def _escape(text: str, safe: frozenset[str]) -> str:
    if all(c in safe for c in text):
        return text
    return "".join(
        c if c in safe else "".join(f"%{b:02X}" for b in c.encode("utf-8", "surrogatepass"))
        for c in text
    )


def _parse_port(text: str, whole: str) -> int:
    text = text.strip(" \t")
    if not (text.isascii() and text.isdigit()) or len(text) > 5 or int(text) > 65535:
        raise SipParseError(f"bad port in {whole!r}")
    return int(text)


def parse_hostport(text: str) -> tuple[str, int | None]:
    """``host[:port]`` -> (lower-cased host, port); IPv6 keeps its brackets.

    Whitespace around the colon is tolerated (Via sent-by allows it).
    """
    text = text.strip(" \t")
    if text.startswith("["):
        end = text.find("]")
        host, rest = text[: end + 1], text[end + 1 :].lstrip(" \t")
        if end < 0 or not _IPV6.fullmatch(host):
            raise SipParseError(f"bad IPv6 reference in {text!r}")
        if rest and not rest.startswith(":"):
            raise SipParseError(f"junk after IPv6 reference in {text!r}")
        port = _parse_port(rest[1:], text) if rest else None
        return host.lower(), port
    host, colon, port_text = text.partition(":")
    host = host.rstrip(" \t")
    if not _HOSTNAME.fullmatch(host):
        raise SipParseError(f"bad host in {text!r}")
    return host.lower(), _parse_port(port_text, text) if colon else None


def parse_params(text: str, whole: str) -> dict[str, str | None]:
    """``a=1;b;c = 2`` -> {"a": "1", "b": None, "c": "2"} (keys lower-cased).

    ``text`` is what follows the first ``;``.  Whitespace around ``;`` and
    ``=`` is tolerated (SEMI, EQUAL in RFC 3261 §25.1); quoted values may
    contain ``;``.  An empty parameter (``;;``) is an error.
    """
    params: dict[str, str | None] = {}
    for piece in split_quoted(text, ";"):
        name, eq, value = piece.partition("=")
        name = name.strip(" \t").lower()
        if not name or not _PARAM_NAME.fullmatch(name):
            raise SipParseError(f"bad parameter in {whole!r}")
        if eq:
            value = value.strip(" \t")
            if not value:
                raise SipParseError(f"empty parameter value in {whole!r}")
            params[name] = value
        else:
            params[name] = None
    return params


_PARAM_NAME = re.compile(r"[A-Za-z0-9\-.!%*_+`'~()\[\]/:&$]+")


def split_quoted(text: str, sep: str, limit: int = -1) -> list[str]:
    """Split on ``sep`` outside double quotes and ``<>`` (backslash escapes honoured).

    Jumps from one special character to the next (``str.find``), so the cost
    is linear and mostly spent in C even for hostile input.  An unterminated
    quote or ``<`` runs to the end of ``text``.  With ``limit`` >= 0 the
    split stops after ``limit`` separators, like ``str.split(sep, limit)``.
    """
    if '"' not in text and "<" not in text:
        return text.split(sep, limit)
    parts: list[str] = []
    start = i = 0
    n = len(text)
    specials = _SPECIALS[sep]
    while (match := specials.search(text, i)) is not None:
        j = match.start()
        ch = text[j]
        if ch == sep:
            if len(parts) == limit:
                break
            parts.append(text[start:j])
            start = i = j + 1
        elif ch == "<":
            close = text.find(">", j + 1)
            i = n if close < 0 else close + 1
        else:
            i = _skip_quoted(text, j)
    parts.append(text[start:])
    return parts


def _skip_quoted(text: str, j: int) -> int:
    """Index after the quoted-string opening at ``j`` (len(text) if unterminated)."""
    k = j + 1
    while (close := text.find('"', k)) >= 0:
        # The quote is escaped when an odd run of backslashes precedes it.
        run = close - 1
        while run > j and text[run] == "\\":
            run -= 1
        if (close - 1 - run) % 2 == 0:
            return close + 1
        k = close + 1
    return len(text)


_SPECIALS = {sep: re.compile(f'["<{re.escape(sep)}]') for sep in ",;"}


def format_params(params: dict[str, str | None]) -> str:
    return "".join(f";{k}" if v is None else f";{k}={v}" for k, v in params.items())


@dataclass
class SipUri:
    """``sip:user:password@host:port;param=value?header=value``.

    ``params`` keeps uri-parameters in order; a parameter without a value
    (``;lr``) maps to ``None``.  Keys are lower-cased, values kept as sent.
    ``host`` is lower-cased; an IPv6 reference keeps its brackets.
    """

    host: str
    user: str | None = None
    password: str | None = None
    port: int | None = None
    scheme: str = "sip"
    params: dict[str, str | None] = field(default_factory=dict)
    headers: dict[str, str] = field(default_factory=dict)

    @classmethod
    def parse(cls, text: str) -> SipUri:
        """Parse a SIP or SIPS URI; raises ``SipParseError`` (status_hint 416 for other schemes)."""
        scheme, rest = _split_scheme(text)
        if scheme not in ("sip", "sips"):
            raise SipParseError(f"unsupported URI scheme {scheme!r}", status_hint=416)
        if not rest:
            raise SipParseError(f"empty SIP URI {text!r}")
        user: str | None = None
        password: str | None = None
        # The user part may hold ';' and '?' (RFC 3261 user-unreserved) but never
        # a raw '@', and neither may the host, params or headers: split there first.
        userinfo, at, hostpart = rest.partition("@")
        if at:
            user_text, colon, password_text = userinfo.partition(":")
            user = _unescape(user_text)
            password = _unescape(password_text) if colon else None
        else:
            hostpart = userinfo
        hostpart, qmark, headers_text = hostpart.partition("?")
        hostport, semi, params_text = hostpart.partition(";")
        host, port = parse_hostport(hostport)
        params = parse_params(params_text, text) if semi else {}
        headers: dict[str, str] = {}
        if qmark:
            for item in headers_text.split("&"):
                name, _, value = item.partition("=")
                if not name:
                    raise SipParseError(f"bad URI header in {text!r}")
                headers[_unescape(name)] = _unescape(value)
        return cls(host, user, password, port, scheme, params, headers)

    @classmethod
    def parse_any(cls, text: str) -> SipUri:
        """Like :meth:`parse`, but also holds non-SIP absolute URIs (tel:, mailto:...).

        Those keep their scheme with ``host=""``; ``user`` is the rest of the
        URI (for ``tel:`` the number, its ``;params`` in ``params``).
        """
        scheme, rest = _split_scheme(text)
        if scheme in ("sip", "sips"):
            return cls.parse(text)
        if not rest:
            raise SipParseError(f"empty URI {text!r}")
        if scheme == "tel":
            number, semi, params_text = rest.partition(";")
            params = parse_params(params_text, text) if semi else {}
            return cls(host="", user=number, scheme=scheme, params=params)
        return cls(host="", user=rest, scheme=scheme)

    @property
    def is_sip(self) -> bool:
        """True for sip: and sips: URIs (False for tel:, mailto:... held by parse_any)."""
        return self.scheme in ("sip", "sips")

    def __str__(self) -> str:
        if not self.is_sip:
            return f"{self.scheme}:{self.user or ''}{format_params(self.params)}"
        out = [self.scheme, ":"]
        if self.user is not None:
            out.append(_escape(self.user, _USER_SAFE))
            if self.password is not None:
                out += [":", _escape(self.password, _PASSWORD_SAFE)]
            out.append("@")
        out.append(self.host)
        if self.port is not None:
            out.append(f":{self.port}")
        out.append(format_params(self.params))
        if self.headers:
            out.append("?")
            out.append(
                "&".join(
                    f"{_escape(k, _HEADER_SAFE)}={_escape(v, _HEADER_SAFE)}"
                    for k, v in self.headers.items()
                )
            )
        return "".join(out)

    @property
    def transport(self) -> str:
        """The ``transport`` parameter, lower-cased, ``"udp"`` by default."""
        value = self.params.get("transport")
        return value.lower() if value else "udp"

    def host_port(self, default_port: int = 5060) -> tuple[str, int]:
        """(host without IPv6 brackets, port or the default)."""
        host = self.host[1:-1] if self.host.startswith("[") else self.host
        return host, self.port if self.port is not None else default_port


def _split_scheme(text: str) -> tuple[str, str]:
    """(lower-cased scheme, rest); the whole URI must be free of whitespace and controls."""
    if _FORBIDDEN.search(text):
        raise SipParseError(f"illegal character in URI {text!r}")
    scheme, colon, rest = text.partition(":")
    if not colon or not _SCHEME.fullmatch(scheme):
        raise SipParseError(f"not a URI: {text!r}")
    return scheme.lower(), rest

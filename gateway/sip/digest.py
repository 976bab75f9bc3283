"""Digest access authentication for SIP (RFC 3261 §22.4, RFC 2617, RFC 7616, RFC 8760).

Both sides work on header *values* (the text after ``WWW-Authenticate:`` and
friends), never on message objects, so this module stands alone:

* UAC: :meth:`Challenge.parse` (or :func:`choose_challenge` when a server sends
  several), then :meth:`DigestClient.authorize` builds the ``Authorization`` /
  ``Proxy-Authorization`` value.  The client keeps one nonce, nonce count and
  cnonce per realm so that re-REGISTERs reuse the nonce with ``nc`` counting up.
* Registrar: :class:`DigestServer` issues stateless nonces (a timestamp and
  salt signed with HMAC-SHA-256) and :meth:`DigestServer.verify` checks an
  :class:`Authorization`, including ``nc`` replay for a nonce.

Algorithms: MD5, MD5-sess, SHA-256, SHA-256-sess; qop ``auth`` and
``auth-int``; the RFC 2069 form without qop is answered when a server asks
for it.  ``userhash`` is not used: the username is always sent in clear.
"""

from __future__ import annotations

import enum
import hashlib
import hmac
import re
import secrets
from collections import OrderedDict
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

from gateway.errors import DigestError

__all__ = [
    "ALGORITHMS",
    "Authorization",
    "Challenge",
    "Credentials",
    "DigestClient",
    "DigestError",
    "DigestServer",
    "VerifyResult",
    "VerifyStatus",
    "choose_challenge",
]

# Canonical spelling by lower-case name; value is the hashlib name.
ALGORITHMS: dict[str, str] = {
    "MD5": "md5",
    "MD5-sess": "md5",
    "SHA-256": "sha256",
    "SHA-256-sess": "sha256",
}
_CANONICAL = {name.lower(): name for name in ALGORITHMS}
# RFC 8760 §2.4: prefer the stronger hash when a server offers several.
_STRENGTH = {"SHA-256": 2, "SHA-256-sess": 2, "MD5": 1, "MD5-sess": 1}

_TOKEN = re.compile(r"[!#$%&'*+.^_`|~0-9A-Za-z-]+")
_SCHEME = re.compile(r"\s*([!#$%&'*+.^_`|~0-9A-Za-z-]+)(?:[ \t]+(.*))?\s*\Z", re.DOTALL)
_BARE_VALUE = re.compile(r"[^\s,\"]+")
_NC = re.compile(r"[0-9a-fA-F]{8}\Z")


def _h(algorithm: str, data: str | bytes) -> str:
    raw = data.encode("utf-8") if isinstance(data, str) else data
    return hashlib.new(ALGORITHMS[algorithm], raw).hexdigest()


def _canonical_algorithm(value: str | None) -> str:
    if value is None:
        return "MD5"  # RFC 7616 §3.3: absent means MD5
    try:
        return _CANONICAL[value.lower()]
    except KeyError:
        raise DigestError(f"unsupported digest algorithm {value!r}") from None


def _quote(value: str) -> str:
    return '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'


def _skip_ws(text: str, pos: int) -> int:
    while pos < len(text) and text[pos] in " \t\r\n":
        pos += 1
    return pos


def _read_quoted(text: str, pos: int) -> tuple[str, int]:
    """Read a quoted-string starting at the opening quote; return (value, next pos)."""
    out: list[str] = []
    pos += 1
    while pos < len(text):
        ch = text[pos]
        if ch == "\\" and pos + 1 < len(text):
            out.append(text[pos + 1])
            pos += 2
        elif ch == '"':
            return "".join(out), pos + 1
        else:
            out.append(ch)
            pos += 1
    raise DigestError("unterminated quoted string in digest header")


def _parse_digest(value: str) -> dict[str, str]:
    """Split ``Digest name=value, name="value"`` into lower-cased params."""
    if not value.strip():
        raise DigestError("empty authentication header")
    m = _SCHEME.match(value)
    if m is None:
        raise DigestError(f"malformed authentication header {value[:40]!r}")
    scheme, rest = m.group(1), m.group(2) or ""
    if scheme.lower() != "digest":
        raise DigestError(f"unsupported authentication scheme {scheme!r}")
    params: dict[str, str] = {}
    pos = 0
    while True:
        # RFC 7230 §7 #rule: empty list elements are allowed and ignored.
        while pos < len(rest) and rest[pos] in " \t\r\n,":
            pos += 1
        if pos >= len(rest):
            break
        name_m = _TOKEN.match(rest, pos)
        if name_m is None:
            raise DigestError(f"malformed digest parameter near {rest[pos : pos + 20]!r}")
        name = name_m.group(0).lower()
        pos = _skip_ws(rest, name_m.end())
        if pos >= len(rest) or rest[pos] != "=":
            raise DigestError(f"digest parameter {name!r} has no value")
        pos = _skip_ws(rest, pos + 1)
        if pos < len(rest) and rest[pos] == '"':
            val, pos = _read_quoted(rest, pos)
        else:
            val_m = _BARE_VALUE.match(rest, pos)
            if val_m is None:
                raise DigestError(f"digest parameter {name!r} has no value")
            val, pos = val_m.group(0), val_m.end()
        if name in params:
            raise DigestError(f"duplicate digest parameter {name!r}")
        params[name] = val
        pos = _skip_ws(rest, pos)
        if pos < len(rest) and rest[pos] != ",":
            raise DigestError(f"expected ',' after digest parameter {name!r}")
    return params


@dataclass(frozen=True)
class Challenge:
    """One ``WWW-Authenticate`` / ``Proxy-Authenticate`` Digest challenge.

    ``algorithm`` is canonical (``MD5``, ``MD5-sess``, ``SHA-256``,
    ``SHA-256-sess``); ``qop`` lists the offered options lower-cased, empty
    for an RFC 2069 server.
    """

    realm: str
    nonce: str
    algorithm: str = "MD5"
    qop: tuple[str, ...] = ()
    opaque: str | None = None
    stale: bool = False
    domain: str | None = None

    @classmethod
    def parse(cls, value: str) -> Challenge:
        """Parse a challenge value; raise :class:`DigestError` if it cannot be answered.

        Example::

            Challenge.parse('Digest realm="home", nonce="abc", qop="auth"').realm == "home"
        """
        params = _parse_digest(value)
        for required in ("realm", "nonce"):
            if required not in params:
                raise DigestError(f"digest challenge has no {required}")
        qop = tuple(q.strip().lower() for q in params.get("qop", "").split(",") if q.strip())
        return cls(
            realm=params["realm"],
            nonce=params["nonce"],
            algorithm=_canonical_algorithm(params.get("algorithm")),
            qop=qop,
            opaque=params.get("opaque"),
            stale=params.get("stale", "").lower() == "true",
            domain=params.get("domain"),
        )

    def __str__(self) -> str:
        parts = [f"realm={_quote(self.realm)}"]
        if self.domain is not None:
            parts.append(f"domain={_quote(self.domain)}")
        parts.append(f"nonce={_quote(self.nonce)}")
        if self.opaque is not None:
            parts.append(f"opaque={_quote(self.opaque)}")
        if self.stale:
            parts.append("stale=TRUE")
        parts.append(f"algorithm={self.algorithm}")
        if self.qop:
            parts.append(f"qop={_quote(','.join(self.qop))}")
        return "Digest " + ", ".join(parts)


def choose_challenge(values: Sequence[str]) -> Challenge:
    """Pick the strongest challenge we support among several header values.

    SHA-256 variants win over MD5 ones (RFC 8760 §2.4); among equals the
    first offered wins.  Unsupported ones (another scheme, SHA-512-256...)
    are skipped; if none is left, the last parse error is raised.
    """
    best: Challenge | None = None
    error = DigestError("no digest challenge offered")
    for value in values:
        try:
            challenge = Challenge.parse(value)
        except DigestError as exc:
            error = exc
            continue
        if best is None or _STRENGTH[challenge.algorithm] > _STRENGTH[best.algorithm]:
            best = challenge
    if best is None:
        raise error
    return best


@dataclass(frozen=True, repr=False)
class Credentials:
    """A SIP account's username and password; ``repr()`` never shows the password."""

    username: str
    password: str = field(repr=False)

    def __repr__(self) -> str:
        return f"Credentials(username={self.username!r}, password='***')"

    __str__ = __repr__


@dataclass
class Authorization:
    """An ``Authorization`` / ``Proxy-Authorization`` Digest value (RFC 7616 §3.4)."""

    username: str
    realm: str
    nonce: str
    uri: str
    response: str
    algorithm: str = "MD5"
    cnonce: str | None = None
    opaque: str | None = None
    qop: str | None = None
    nc: int | None = None

    @classmethod
    def parse(cls, value: str) -> Authorization:
        """Parse credentials sent by a client; raise :class:`DigestError` if malformed."""
        params = _parse_digest(value)
        for required in ("username", "realm", "nonce", "uri", "response"):
            if required not in params:
                raise DigestError(f"digest credentials have no {required}")
        qop = params.get("qop")
        nc: int | None = None
        if qop is not None:
            qop = qop.lower()
            if "cnonce" not in params or "nc" not in params:
                raise DigestError("digest credentials with qop need cnonce and nc")
            if not _NC.match(params["nc"]):
                raise DigestError(f"malformed nonce count {params['nc']!r}")
            nc = int(params["nc"], 16)
        return cls(
            username=params["username"],
            realm=params["realm"],
            nonce=params["nonce"],
            uri=params["uri"],
            response=params["response"],
            algorithm=_canonical_algorithm(params.get("algorithm")),
            cnonce=params.get("cnonce"),
            opaque=params.get("opaque"),
            qop=qop,
            nc=nc,
        )

    def __str__(self) -> str:
        # RFC 7616 §3.4: nc, qop and algorithm are tokens; the rest quoted.
        parts = [
            f"username={_quote(self.username)}",
            f"realm={_quote(self.realm)}",
            f"nonce={_quote(self.nonce)}",
            f"uri={_quote(self.uri)}",
            f"response={_quote(self.response)}",
            f"algorithm={self.algorithm}",
        ]
        if self.cnonce is not None:
            parts.append(f"cnonce={_quote(self.cnonce)}")
        if self.opaque is not None:
            parts.append(f"opaque={_quote(self.opaque)}")
        if self.qop is not None:
            parts.append(f"qop={self.qop}")
        if self.nc is not None:
            parts.append(f"nc={self.nc:08x}")
        return "Digest " + ", ".join(parts)


def compute_response(
    *,
    algorithm: str,
    username: str,
    realm: str,
    password: str,
    method: str,
    uri: str,
    nonce: str,
    qop: str | None = None,
    nc: int | None = None,
    cnonce: str | None = None,
    body: bytes = b"",
) -> str:
    """The ``response`` hex digest (RFC 7616 §3.4.1-3.4.3; RFC 2069 form if no qop)."""
    ha1 = _h(algorithm, f"{username}:{realm}:{password}")
    if algorithm.endswith("-sess"):
        ha1 = _h(algorithm, f"{ha1}:{nonce}:{cnonce or ''}")
    if qop == "auth-int":
        ha2 = _h(algorithm, f"{method}:{uri}:{_h(algorithm, body)}")
    else:
        ha2 = _h(algorithm, f"{method}:{uri}")
    if qop is None:
        return _h(algorithm, f"{ha1}:{nonce}:{ha2}")
    return _h(algorithm, f"{ha1}:{nonce}:{nc or 0:08x}:{cnonce or ''}:{qop}:{ha2}")


@dataclass
class _RealmState:
    nonce: str
    cnonce: str
    nc: int = 0
    stale_retry: bool = False


class DigestClient:
    """Answers challenges for one account, remembering nonce state per realm.

    Example::

        client = DigestClient(Credentials("6001", "secret"))
        challenge = choose_challenge(response.headers.get_all("WWW-Authenticate"))
        if rejected_before and not client.is_stale_retry(challenge):
            give_up()  # the password is wrong
        value = client.authorize(challenge, "REGISTER", "sip:pbx.example.com")
    """

    def __init__(self, credentials: Credentials) -> None:
        self.credentials = credentials
        self._realms: dict[str, _RealmState] = {}

    def is_stale_retry(self, challenge: Challenge) -> bool:
        """True if this challenge only says our nonce expired (``stale=true``).

        The caller should then retry with :meth:`authorize` without counting
        an authentication failure.  Valid before and after ``authorize``.
        """
        state = self._realms.get(challenge.realm)
        if state is None:
            return False
        if state.nonce == challenge.nonce:
            return state.stale_retry
        return challenge.stale

    def authorize(self, challenge: Challenge, method: str, uri: str, body: bytes = b"") -> str:
        """Build the Authorization value answering ``challenge`` for this request.

        ``uri`` is the Request-URI as sent; ``body`` matters only for auth-int.
        A new nonce starts a new cnonce and nc=1; the same nonce counts nc up.
        """
        state = self._realms.get(challenge.realm)
        if state is None or state.nonce != challenge.nonce:
            stale_retry = state is not None and challenge.stale
            state = _RealmState(challenge.nonce, secrets.token_hex(16), stale_retry=stale_retry)
            self._realms[challenge.realm] = state
        qop = self._choose_qop(challenge)
        nc: int | None = None
        cnonce: str | None = None
        if qop is not None:
            state.nc += 1
            nc, cnonce = state.nc, state.cnonce
        elif challenge.algorithm.endswith("-sess"):
            cnonce = state.cnonce
        response = compute_response(
            algorithm=challenge.algorithm,
            username=self.credentials.username,
            realm=challenge.realm,
            password=self.credentials.password,
            method=method,
            uri=uri,
            nonce=challenge.nonce,
            qop=qop,
            nc=nc,
            cnonce=cnonce,
            body=body,
        )
        auth = Authorization(
            username=self.credentials.username,
            realm=challenge.realm,
            nonce=challenge.nonce,
            uri=uri,
            response=response,
            algorithm=challenge.algorithm,
            cnonce=cnonce,
            opaque=challenge.opaque,
            qop=qop,
            nc=nc,
        )
        return str(auth)

    @staticmethod
    def _choose_qop(challenge: Challenge) -> str | None:
        if not challenge.qop:
            return None
        if "auth" in challenge.qop:
            return "auth"
        if "auth-int" in challenge.qop:
            return "auth-int"
        raise DigestError(f"no supported qop in challenge (offered: {','.join(challenge.qop)})")


class VerifyStatus(enum.Enum):
    OK = "ok"
    STALE = "stale"  # genuine nonce, right password, but expired: re-challenge stale=true
    BAD_NONCE = "bad_nonce"  # forged or replayed (nc not increasing): re-challenge
    UNKNOWN_USER = "unknown_user"
    BAD_RESPONSE = "bad_response"  # wrong password, realm, algorithm or qop


@dataclass(frozen=True)
class VerifyResult:
    status: VerifyStatus
    username: str
    reason: str = ""  # for the log only; never send it to the peer

    @property
    def ok(self) -> bool:
        return self.status is VerifyStatus.OK


class DigestServer:
    """Challenges and verifies clients registering to the gateway (RFC 3261 §22.4).

    Nonces are ``<10 hex timestamp><16 hex salt><32 hex HMAC>``: the server
    needs no table to know a nonce is its own and how old it is.  The only
    state is the highest ``nc`` seen per nonce, bounded to ``max_nonces``.

    Example::

        server = DigestServer("linegram", secret_key=os.urandom(32))
        for value in server.challenge_headers(now):
            response.headers.add("WWW-Authenticate", value)
        result = server.verify(Authorization.parse(value), "REGISTER", users.get, now)
    """

    _TS_LEN = 10
    _SALT_LEN = 16
    _MAC_LEN = 32
    _FUTURE_SKEW = 2.0  # seconds; a nonce "from the future" means the clock jumped

    def __init__(
        self,
        realm: str,
        secret_key: bytes,
        algorithms: Sequence[str] = ("SHA-256", "MD5"),
        nonce_ttl: float = 300.0,
        max_nonces: int = 1024,
    ) -> None:
        if not secret_key:
            raise ValueError("secret_key must not be empty")
        canon = [_canonical_algorithm(a) for a in algorithms]
        if not canon:
            raise ValueError("at least one digest algorithm is needed")
        # Challenges go out in the order given: the first is the preferred one
        # (RFC 8760 §2.4). Clients that read only the first header exist, so
        # the caller chooses between strength first and compatibility first.
        self.algorithms = tuple(dict.fromkeys(canon))
        self.realm = realm
        self.nonce_ttl = nonce_ttl
        self._key = secret_key
        self._max_nonces = max_nonces
        self._nc_seen: OrderedDict[str, int] = OrderedDict()
        self.opaque = hmac.new(secret_key, b"opaque:" + realm.encode(), "sha256").hexdigest()[:16]

    def _mac(self, payload: str) -> str:
        msg = f"{payload}:{self.realm}".encode()
        return hmac.new(self._key, msg, "sha256").hexdigest()[: self._MAC_LEN]

    def make_nonce(self, now: float) -> str:
        payload = f"{int(now) & 0xFFFFFFFFFF:010x}{secrets.token_hex(self._SALT_LEN // 2)}"
        return payload + self._mac(payload)

    def _nonce_age(self, nonce: str, now: float) -> float | None:
        """Age in seconds of a nonce we issued, or None if it is not ours."""
        split = self._TS_LEN + self._SALT_LEN
        if len(nonce) != split + self._MAC_LEN:
            return None
        payload, mac = nonce[:split], nonce[split:]
        if not hmac.compare_digest(mac.encode(), self._mac(payload).encode()):
            return None
        return now - int(payload[: self._TS_LEN], 16)

    def challenge_headers(self, now: float, stale: bool = False) -> list[str]:
        """One ``WWW-Authenticate`` (or ``Proxy-Authenticate``) value per algorithm."""
        nonce = self.make_nonce(now)
        return [
            str(
                Challenge(
                    realm=self.realm,
                    nonce=nonce,
                    algorithm=algorithm,
                    qop=("auth",),
                    opaque=self.opaque,
                    stale=stale,
                )
            )
            for algorithm in self.algorithms
        ]

    def verify(
        self,
        auth: Authorization,
        method: str,
        password_lookup: Callable[[str], str | None],
        now: float,
        body: bytes = b"",
    ) -> VerifyResult:
        """Check credentials answering one of our challenges.

        ``password_lookup(username)`` returns the password or None.  On STALE
        and BAD_NONCE the caller re-challenges (``stale=True`` for STALE);
        on UNKNOWN_USER and BAD_RESPONSE it answers 403 or challenges again.
        """

        def result(status: VerifyStatus, reason: str = "") -> VerifyResult:
            return VerifyResult(status, auth.username, reason)

        if auth.realm != self.realm:
            return result(VerifyStatus.BAD_RESPONSE, f"realm {auth.realm!r} is not ours")
        if auth.algorithm not in self.algorithms:
            return result(VerifyStatus.BAD_RESPONSE, f"algorithm {auth.algorithm} not offered")
        if auth.qop not in ("auth", "auth-int"):
            return result(VerifyStatus.BAD_RESPONSE, f"qop {auth.qop!r} not offered")
        age = self._nonce_age(auth.nonce, now)
        if age is None or (auth.opaque is not None and auth.opaque != self.opaque):
            return result(VerifyStatus.BAD_NONCE, "nonce or opaque not issued by us")
        password = password_lookup(auth.username)
        if password is None:
            return result(VerifyStatus.UNKNOWN_USER, "no such user")
        expected = compute_response(
            algorithm=auth.algorithm,
            username=auth.username,
            realm=auth.realm,
            password=password,
            method=method,
            uri=auth.uri,
            nonce=auth.nonce,
            qop=auth.qop,
            nc=auth.nc,
            cnonce=auth.cnonce,
            body=body,
        )
        # Bytes: compare_digest raises TypeError on non-ASCII str from the peer.
        if not hmac.compare_digest(expected.encode(), auth.response.lower().encode()):
            return result(VerifyStatus.BAD_RESPONSE, "response does not match")
        # Only a correct response earns stale=true (RFC 7616 §3.3).
        if age > self.nonce_ttl or age < -self._FUTURE_SKEW:
            return result(VerifyStatus.STALE, f"nonce is {age:.0f} s old")
        nc = auth.nc or 0
        last = self._nc_seen.get(auth.nonce)
        if last is not None and nc <= last:
            return result(VerifyStatus.BAD_NONCE, f"nc {nc} replayed (last {last})")
        self._nc_seen[auth.nonce] = nc
        self._nc_seen.move_to_end(auth.nonce)
        while len(self._nc_seen) > self._max_nonces:
            self._nc_seen.popitem(last=False)
        return result(VerifyStatus.OK)

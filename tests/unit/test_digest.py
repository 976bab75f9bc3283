"""Digest authentication: RFC test vectors, client/server round trips, attacks."""

from __future__ import annotations

import re

import pytest
from hypothesis import given
from hypothesis import strategies as st

from gateway.errors import DigestError
from gateway.sip.digest import (
    Authorization,
    Challenge,
    Credentials,
    DigestClient,
    DigestServer,
    VerifyResult,
    VerifyStatus,
    choose_challenge,
    compute_response,
)

# RFC 7616 §3.9.1 (password "Circle of Life", lower-case "of", see erratum 4495).
RFC7616_NONCE = "7ypf/xlj9XXwfDPEoM4URrv/xwf94BcCAzFZH4GiTo0v"
RFC7616_OPAQUE = "FQhe/qaU925kfnzjCev0ciny7QMkPqMAFRtzCUYo5tdS"
RFC7616_CNONCE = "f2/wE4q74E6zIJEtWaHKaf5wv/H5QzzpXusqGemxURZJ"
RFC7616_REALM = "http-auth@example.org"


def _params(value: str) -> dict[str, str]:
    """Crude split of our own output, for asserting single fields."""
    return {k: v.strip('"') for k, v in re.findall(r'(\w+)=("[^"]*"|[^,\s]+)', value)}


# --- RFC vectors -----------------------------------------------------------


def test_rfc2617_section_3_5_example() -> None:
    value = (
        'Digest realm="testrealm@host.com", qop="auth,auth-int", '
        'nonce="dcd98b7102dd2f0e8b11d0f600bfb0c093", opaque="5ccc069c403ebaf9f0171e9517f40e41"'
    )
    challenge = Challenge.parse(value)
    assert challenge == Challenge(
        realm="testrealm@host.com",
        nonce="dcd98b7102dd2f0e8b11d0f600bfb0c093",
        algorithm="MD5",
        qop=("auth", "auth-int"),
        opaque="5ccc069c403ebaf9f0171e9517f40e41",
    )
    response = compute_response(
        algorithm="MD5",
        username="Mufasa",
        realm=challenge.realm,
        password="Circle Of Life",
        method="GET",
        uri="/dir/index.html",
        nonce=challenge.nonce,
        qop="auth",
        nc=1,
        cnonce="0a4f113b",
    )
    assert response == "6629fae49393a05397450978507c4ef1"


@pytest.mark.parametrize(
    ("algorithm", "expected"),
    [
        ("MD5", "8ca523f5e9506fed4657c9700eebdbec"),
        ("SHA-256", "753927fa0e85d155564e2e272a28d1802ca10daf4496794697cf8db5856cb6c1"),
    ],
)
def test_rfc7616_section_3_9_1(algorithm: str, expected: str) -> None:
    value = (
        f'Digest realm="{RFC7616_REALM}", qop="auth, auth-int", algorithm={algorithm}, '
        f'nonce="{RFC7616_NONCE}", opaque="{RFC7616_OPAQUE}"'
    )
    challenge = Challenge.parse(value)
    assert challenge.algorithm == algorithm
    assert challenge.qop == ("auth", "auth-int")
    response = compute_response(
        algorithm=algorithm,
        username="Mufasa",
        realm=RFC7616_REALM,
        password="Circle of Life",
        method="GET",
        uri="/dir/index.html",
        nonce=RFC7616_NONCE,
        qop="auth",
        nc=1,
        cnonce=RFC7616_CNONCE,
    )
    assert response == expected
    # The same answer parsed on the server side.
    auth = Authorization.parse(
        f'Digest username="Mufasa", realm="{RFC7616_REALM}", uri="/dir/index.html", '
        f'algorithm={algorithm}, nonce="{RFC7616_NONCE}", nc=00000001, '
        f'cnonce="{RFC7616_CNONCE}", qop=auth, response="{expected}", opaque="{RFC7616_OPAQUE}"'
    )
    assert auth == Authorization(
        username="Mufasa",
        realm=RFC7616_REALM,
        nonce=RFC7616_NONCE,
        uri="/dir/index.html",
        response=expected,
        algorithm=algorithm,
        cnonce=RFC7616_CNONCE,
        opaque=RFC7616_OPAQUE,
        qop="auth",
        nc=1,
    )
    assert Authorization.parse(str(auth)) == auth


def test_md5_sess_uses_session_key() -> None:
    # HA1 = MD5(MD5(user:realm:pass):nonce:cnonce), computed by hand here.
    import hashlib

    def md5(s: str) -> str:
        return hashlib.md5(s.encode()).hexdigest()

    ha1 = md5(f"{md5('alice:home:pw')}:n1:c1")
    ha2 = md5("REGISTER:sip:home")
    want = md5(f"{ha1}:n1:00000002:c1:auth:{ha2}")
    got = compute_response(
        algorithm="MD5-sess",
        username="alice",
        realm="home",
        password="pw",
        method="REGISTER",
        uri="sip:home",
        nonce="n1",
        qop="auth",
        nc=2,
        cnonce="c1",
    )
    assert got == want
    plain = compute_response(
        algorithm="MD5",
        username="alice",
        realm="home",
        password="pw",
        method="REGISTER",
        uri="sip:home",
        nonce="n1",
        qop="auth",
        nc=2,
        cnonce="c1",
    )
    assert plain != want


def test_rfc2069_response_without_qop() -> None:
    # RFC 2069 form: MD5(HA1:nonce:HA2), no nc/cnonce on the wire.
    client = DigestClient(Credentials("Mufasa", "Circle Of Life"))
    challenge = Challenge.parse('Digest realm="testrealm@host.com", nonce="abc"')
    value = client.authorize(challenge, "GET", "/dir/index.html")
    want = compute_response(
        algorithm="MD5",
        username="Mufasa",
        realm="testrealm@host.com",
        password="Circle Of Life",
        method="GET",
        uri="/dir/index.html",
        nonce="abc",
    )
    assert value == (
        'Digest username="Mufasa", realm="testrealm@host.com", nonce="abc", '
        f'uri="/dir/index.html", response="{want}", algorithm=MD5'
    )


# --- Challenge parsing -----------------------------------------------------


def test_challenge_parse_asterisk_style() -> None:
    value = 'Digest algorithm=MD5, realm="asterisk", nonce="1a2b3c4d"'
    assert Challenge.parse(value) == Challenge(realm="asterisk", nonce="1a2b3c4d")


def test_challenge_parse_all_fields_case_insensitive() -> None:
    value = (
        'digest REALM="sip.example.com" , Nonce="x\\"y", algorithm=sha-256-SESS,'
        ' qop="AUTH", stale=true, domain="sip:sip.example.com", opaque="op",'
    )
    assert Challenge.parse(value) == Challenge(
        realm="sip.example.com",
        nonce='x"y',
        algorithm="SHA-256-sess",
        qop=("auth",),
        opaque="op",
        stale=True,
        domain="sip:sip.example.com",
    )


def test_challenge_str_round_trip() -> None:
    challenge = Challenge(
        realm='we "quote"',
        nonce="n",
        algorithm="SHA-256",
        qop=("auth", "auth-int"),
        opaque="o",
        stale=True,
        domain="sip:a",
    )
    text = str(challenge)
    assert text == (
        'Digest realm="we \\"quote\\"", domain="sip:a", nonce="n", opaque="o", '
        'stale=TRUE, algorithm=SHA-256, qop="auth,auth-int"'
    )
    assert Challenge.parse(text) == challenge


@pytest.mark.parametrize(
    ("value", "message"),
    [
        ("", "empty authentication header"),
        ('Basic realm="x"', "unsupported authentication scheme 'Basic'"),
        (
            'Digest realm="x", nonce="n", algorithm=SHA-512-256',
            "unsupported digest algorithm 'SHA-512-256'",
        ),
        ('Digest nonce="n"', "digest challenge has no realm"),
        ('Digest realm="x"', "digest challenge has no nonce"),
        ('Digest realm="x", nonce="n', "unterminated quoted string in digest header"),
        ('Digest realm="x" nonce="n"', "expected ',' after digest parameter 'realm'"),
        ('Digest realm="x", nonce', "digest parameter 'nonce' has no value"),
        ('Digest realm="x", nonce=', "digest parameter 'nonce' has no value"),
        ('Digest realm="x", realm="y", nonce="n"', "duplicate digest parameter 'realm'"),
        ('Digest realm="x", ="n"', "malformed digest parameter near '=\"n\"'"),
        ('="x"', "malformed authentication header '=\"x\"'"),
    ],
)
def test_challenge_parse_errors(value: str, message: str) -> None:
    with pytest.raises(DigestError, match=f"^{re.escape(message)}$"):
        Challenge.parse(value)


def test_choose_challenge_prefers_sha256() -> None:
    values = [
        'Digest realm="r", nonce="n1", algorithm=MD5, qop="auth"',
        'Digest realm="r", nonce="n2", algorithm=SHA-512-256, qop="auth"',
        'Digest realm="r", nonce="n3", algorithm=SHA-256, qop="auth"',
        'Digest realm="r", nonce="n4", algorithm=SHA-256-sess, qop="auth"',
    ]
    chosen = choose_challenge(values)
    assert (chosen.nonce, chosen.algorithm) == ("n3", "SHA-256")
    assert choose_challenge(values[:2]).nonce == "n1"


def test_choose_challenge_none_supported() -> None:
    with pytest.raises(DigestError, match="^unsupported digest algorithm 'SHA-512-256'$"):
        choose_challenge(['Basic realm="x"', 'Digest realm="r", nonce="n", algorithm=SHA-512-256'])
    with pytest.raises(DigestError, match="^no digest challenge offered$"):
        choose_challenge([])


# --- Authorization parsing -------------------------------------------------


@pytest.mark.parametrize(
    ("value", "message"),
    [
        (
            'Digest realm="r", nonce="n", uri="u", response="x"',
            "digest credentials have no username",
        ),
        (
            'Digest username="a", nonce="n", uri="u", response="x"',
            "digest credentials have no realm",
        ),
        (
            'Digest username="a", realm="r", nonce="n", uri="u"',
            "digest credentials have no response",
        ),
        (
            'Digest username="a", realm="r", nonce="n", uri="u", response="x", qop=auth, nc=1',
            "digest credentials with qop need cnonce and nc",
        ),
        (
            (
                'Digest username="a", realm="r", nonce="n", uri="u", response="x", qop=auth, '
                'nc=1, cnonce="c"'
            ),
            "malformed nonce count '1'",
        ),
        ("Bearer abc", "unsupported authentication scheme 'Bearer'"),
    ],
)
def test_authorization_parse_errors(value: str, message: str) -> None:
    with pytest.raises(DigestError, match=f"^{re.escape(message)}$"):
        Authorization.parse(value)


def test_authorization_parse_tolerates_quoted_qop_and_nc() -> None:
    # Some old ATAs quote qop and nc; accept that on the server side.
    auth = Authorization.parse(
        'Digest username="6001",realm="linegram",nonce="n",uri="sip:10.0.0.1",'
        'response="ABCDEF",qop="auth",nc="0000000a",cnonce="c"'
    )
    assert (auth.qop, auth.nc, auth.algorithm, auth.response) == ("auth", 10, "MD5", "ABCDEF")


# --- Credentials -----------------------------------------------------------


def test_credentials_never_show_password() -> None:
    creds = Credentials("6001", "hunter2-secret")
    assert repr(creds) == "Credentials(username='6001', password='***')"
    assert str(creds) == "Credentials(username='6001', password='***')"
    assert "hunter2" not in f"{creds} {creds!r} {[creds]}"
    assert creds.password == "hunter2-secret"


# --- Client ----------------------------------------------------------------


def test_client_quoting_and_nc_increments() -> None:
    client = DigestClient(Credentials("6001", "pw"))
    challenge = Challenge.parse(
        'Digest realm="pbx", nonce="abc", opaque="xyz", algorithm=SHA-256, qop="auth,auth-int"'
    )
    first = client.authorize(challenge, "REGISTER", "sip:pbx.example.com")
    second = client.authorize(challenge, "REGISTER", "sip:pbx.example.com")
    p1, p2 = _params(first), _params(second)
    assert (p1["nc"], p2["nc"]) == ("00000001", "00000002")
    assert p1["cnonce"] == p2["cnonce"]
    assert re.fullmatch(r"[0-9a-f]{32}", p1["cnonce"])
    # Exact layout: tokens unquoted, strings quoted.
    assert first == (
        'Digest username="6001", realm="pbx", nonce="abc", uri="sip:pbx.example.com", '
        f'response="{p1["response"]}", algorithm=SHA-256, cnonce="{p1["cnonce"]}", '
        'opaque="xyz", qop=auth, nc=00000001'
    )
    assert p1["response"] == compute_response(
        algorithm="SHA-256",
        username="6001",
        realm="pbx",
        password="pw",
        method="REGISTER",
        uri="sip:pbx.example.com",
        nonce="abc",
        qop="auth",
        nc=1,
        cnonce=p1["cnonce"],
    )
    # A new nonce restarts nc and draws a new cnonce.
    other = Challenge(realm="pbx", nonce="def", algorithm="SHA-256", qop=("auth",))
    p3 = _params(client.authorize(other, "REGISTER", "sip:pbx.example.com"))
    assert p3["nc"] == "00000001"
    assert p3["cnonce"] != p1["cnonce"]


def test_client_auth_int_only_hashes_body() -> None:
    client = DigestClient(Credentials("a", "b"))
    challenge = Challenge(realm="r", nonce="n", qop=("auth-int",))
    value = client.authorize(challenge, "INVITE", "sip:x@r", body=b"v=0\r\n")
    p = _params(value)
    assert p["qop"] == "auth-int"
    assert p["response"] == compute_response(
        algorithm="MD5",
        username="a",
        realm="r",
        password="b",
        method="INVITE",
        uri="sip:x@r",
        nonce="n",
        qop="auth-int",
        nc=1,
        cnonce=p["cnonce"],
        body=b"v=0\r\n",
    )


def test_client_unknown_qop_only() -> None:
    client = DigestClient(Credentials("a", "b"))
    with pytest.raises(DigestError, match=r"^no supported qop in challenge \(offered: foo\)$"):
        client.authorize(Challenge(realm="r", nonce="n", qop=("foo",)), "REGISTER", "sip:r")


def test_client_stale_flow() -> None:
    client = DigestClient(Credentials("a", "b"))
    first = Challenge(realm="r", nonce="n1", qop=("auth",))
    assert client.is_stale_retry(first) is False
    client.authorize(first, "REGISTER", "sip:r")
    again = Challenge(realm="r", nonce="n2", qop=("auth",), stale=True)
    assert client.is_stale_retry(again) is True
    p = _params(client.authorize(again, "REGISTER", "sip:r"))
    assert (p["nonce"], p["nc"]) == ("n2", "00000001")
    assert client.is_stale_retry(again) is True  # still true after answering it
    # A non-stale challenge after that is a real failure (wrong password).
    rejected = Challenge(realm="r", nonce="n3", qop=("auth",))
    assert client.is_stale_retry(rejected) is False
    # stale=true in a realm we never answered is not a retry.
    assert client.is_stale_retry(Challenge(realm="other", nonce="x", stale=True)) is False


# --- Server ----------------------------------------------------------------

KEY = b"k" * 32
USERS = {"6001": "s3cret", "6002": "other"}


def _server(**kwargs: object) -> DigestServer:
    return DigestServer("linegram", KEY, **kwargs)  # type: ignore[arg-type]


def test_server_challenge_headers_layout() -> None:
    server = _server()
    headers = server.challenge_headers(now=1_700_000_000.0)
    assert len(headers) == 2
    sha, md5 = (Challenge.parse(h) for h in headers)
    assert (sha.algorithm, md5.algorithm) == ("SHA-256", "MD5")
    assert sha.nonce == md5.nonce
    assert re.fullmatch(r"[0-9a-f]{58}", sha.nonce)
    assert sha.nonce.startswith(f"{1_700_000_000:010x}")
    assert headers[0] == (
        f'Digest realm="linegram", nonce="{sha.nonce}", opaque="{server.opaque}", '
        'algorithm=SHA-256, qop="auth"'
    )
    assert sha.stale is False
    stale = Challenge.parse(server.challenge_headers(now=5.0, stale=True)[1])
    assert (stale.stale, stale.algorithm) == (True, "MD5")
    # Two challenges in the same second still differ (salt).
    assert Challenge.parse(server.challenge_headers(now=5.0)[0]).nonce != stale.nonce


def test_server_algorithms_keep_the_callers_order() -> None:
    server = _server(algorithms=("md5", "sha-256", "MD5"))
    assert server.algorithms == ("MD5", "SHA-256")
    assert _server(algorithms=("SHA-256", "MD5")).algorithms == ("SHA-256", "MD5")
    with pytest.raises(DigestError, match="^unsupported digest algorithm 'SHA-1'$"):
        _server(algorithms=("SHA-1",))


def _register(
    server: DigestServer,
    client: DigestClient,
    now: float,
    *,
    header: int = 0,
    lookup: dict[str, str] = USERS,
) -> VerifyResult:
    challenge = Challenge.parse(server.challenge_headers(now)[header])
    value = client.authorize(challenge, "REGISTER", "sip:192.168.1.2")
    return server.verify(Authorization.parse(value), "REGISTER", lookup.get, now=now + 1)


@pytest.mark.parametrize("algorithm", ["SHA-256", "SHA-256-sess", "MD5", "MD5-sess"])
def test_round_trip_each_algorithm(algorithm: str) -> None:
    server = _server(algorithms=(algorithm,))
    client = DigestClient(Credentials("6001", "s3cret"))
    assert _register(server, client, 100.0) == VerifyResult(VerifyStatus.OK, "6001")


def test_round_trip_choose_challenge() -> None:
    server = _server()
    client = DigestClient(Credentials("6002", "other"))
    challenge = choose_challenge(list(reversed(server.challenge_headers(10.0))))
    assert challenge.algorithm == "SHA-256"
    value = client.authorize(challenge, "REGISTER", "sip:linegram")
    auth = Authorization.parse(value)
    assert server.verify(auth, "REGISTER", USERS.get, now=11.0).status is VerifyStatus.OK


def test_round_trip_auth_int() -> None:
    server = _server()
    client = DigestClient(Credentials("6001", "s3cret"))
    nonce = Challenge.parse(server.challenge_headers(0.0)[0]).nonce
    challenge = Challenge(realm="linegram", nonce=nonce, algorithm="SHA-256", qop=("auth-int",))
    auth = Authorization.parse(client.authorize(challenge, "INVITE", "sip:x", body=b"sdp"))
    assert server.verify(auth, "INVITE", USERS.get, now=1.0, body=b"sdp").ok
    auth.nc = 2  # same nonce, higher nc, but body changed -> bad digest
    got = server.verify(auth, "INVITE", USERS.get, now=1.0, body=b"evil")
    assert got.status is VerifyStatus.BAD_RESPONSE


def test_reused_nonce_with_increasing_nc() -> None:
    server = _server()
    client = DigestClient(Credentials("6001", "s3cret"))
    challenge = Challenge.parse(server.challenge_headers(0.0)[0])
    for now in (1.0, 60.0, 120.0):
        auth = Authorization.parse(client.authorize(challenge, "REGISTER", "sip:linegram"))
        assert server.verify(auth, "REGISTER", USERS.get, now=now).ok


def test_stale_nonce_then_retry() -> None:
    server = _server(nonce_ttl=300.0)
    client = DigestClient(Credentials("6001", "s3cret"))
    challenge = Challenge.parse(server.challenge_headers(1000.0)[0])
    auth = Authorization.parse(client.authorize(challenge, "REGISTER", "sip:linegram"))
    late = server.verify(auth, "REGISTER", USERS.get, now=1301.0)
    assert late == VerifyResult(VerifyStatus.STALE, "6001", "nonce is 301 s old")
    # Server re-challenges with stale=true; client retries without failure.
    fresh = Challenge.parse(server.challenge_headers(1301.0, stale=True)[0])
    assert client.is_stale_retry(fresh) is True
    auth = Authorization.parse(client.authorize(fresh, "REGISTER", "sip:linegram"))
    assert server.verify(auth, "REGISTER", USERS.get, now=1302.0).ok


def test_stale_needs_right_password() -> None:
    server = _server()
    client = DigestClient(Credentials("6001", "wrong"))
    challenge = Challenge.parse(server.challenge_headers(0.0)[0])
    auth = Authorization.parse(client.authorize(challenge, "REGISTER", "sip:linegram"))
    got = server.verify(auth, "REGISTER", USERS.get, now=10_000.0)
    assert got.status is VerifyStatus.BAD_RESPONSE


def test_forged_nonce() -> None:
    server = _server()
    client = DigestClient(Credentials("6001", "s3cret"))
    real = Challenge.parse(server.challenge_headers(0.0)[0]).nonce
    # Same shape, newer timestamp, but the MAC was not made with our key.
    forged = f"{999:010x}" + real[10:]
    challenge = Challenge(realm="linegram", nonce=forged, algorithm="SHA-256", qop=("auth",))
    auth = Authorization.parse(client.authorize(challenge, "REGISTER", "sip:linegram"))
    assert server.verify(auth, "REGISTER", USERS.get, now=1000.0) == VerifyResult(
        VerifyStatus.BAD_NONCE, "6001", "nonce or opaque not issued by us"
    )
    # A nonce from another server's key is forged too.
    other = DigestServer("linegram", b"x" * 32)
    foreign = Challenge.parse(other.challenge_headers(0.0)[0])
    foreign = Challenge(realm="linegram", nonce=foreign.nonce, qop=("auth",))
    auth = Authorization.parse(client.authorize(foreign, "REGISTER", "sip:linegram"))
    assert server.verify(auth, "REGISTER", USERS.get, now=1.0).status is VerifyStatus.BAD_NONCE
    # Garbage nonce.
    garbage = Challenge(realm="linegram", nonce="abc", qop=("auth",))
    auth = Authorization.parse(client.authorize(garbage, "REGISTER", "sip:linegram"))
    assert server.verify(auth, "REGISTER", USERS.get, now=1.0).status is VerifyStatus.BAD_NONCE


def test_wrong_opaque_is_bad_nonce() -> None:
    server = _server()
    client = DigestClient(Credentials("6001", "s3cret"))
    challenge = Challenge.parse(server.challenge_headers(0.0)[0])
    auth = Authorization.parse(client.authorize(challenge, "REGISTER", "sip:linegram"))
    auth.opaque = "tampered"
    assert server.verify(auth, "REGISTER", USERS.get, now=1.0).status is VerifyStatus.BAD_NONCE


def test_wrong_password() -> None:
    server = _server()
    client = DigestClient(Credentials("6001", "guess"))
    assert _register(server, client, 0.0) == VerifyResult(
        VerifyStatus.BAD_RESPONSE, "6001", "response does not match"
    )


def test_nc_replay_rejected() -> None:
    server = _server()
    client = DigestClient(Credentials("6001", "s3cret"))
    challenge = Challenge.parse(server.challenge_headers(0.0)[0])
    auth1 = Authorization.parse(client.authorize(challenge, "REGISTER", "sip:linegram"))
    auth2 = Authorization.parse(client.authorize(challenge, "REGISTER", "sip:linegram"))
    assert server.verify(auth2, "REGISTER", USERS.get, now=1.0).ok
    assert server.verify(auth2, "REGISTER", USERS.get, now=2.0) == VerifyResult(
        VerifyStatus.BAD_NONCE, "6001", "nc 2 replayed (last 2)"
    )
    assert server.verify(auth1, "REGISTER", USERS.get, now=2.0) == VerifyResult(
        VerifyStatus.BAD_NONCE, "6001", "nc 1 replayed (last 2)"
    )


def test_nc_table_is_bounded() -> None:
    server = _server(max_nonces=3)
    client = DigestClient(Credentials("6001", "s3cret"))
    for i in range(5):
        assert _register(server, client, float(i)).ok
    assert len(server._nc_seen) == 3


def test_unknown_user() -> None:
    server = _server()
    client = DigestClient(Credentials("9999", "s3cret"))
    assert _register(server, client, 0.0) == VerifyResult(
        VerifyStatus.UNKNOWN_USER, "9999", "no such user"
    )


def test_wrong_realm() -> None:
    server = _server()
    client = DigestClient(Credentials("6001", "s3cret"))
    nonce = Challenge.parse(server.challenge_headers(0.0)[0]).nonce
    challenge = Challenge(realm="elsewhere", nonce=nonce, algorithm="SHA-256", qop=("auth",))
    auth = Authorization.parse(client.authorize(challenge, "REGISTER", "sip:linegram"))
    assert server.verify(auth, "REGISTER", USERS.get, now=1.0) == VerifyResult(
        VerifyStatus.BAD_RESPONSE, "6001", "realm 'elsewhere' is not ours"
    )


def test_algorithm_not_offered_and_missing_qop() -> None:
    server = _server(algorithms=("SHA-256",))
    client = DigestClient(Credentials("6001", "s3cret"))
    nonce = Challenge.parse(server.challenge_headers(0.0)[0]).nonce
    md5 = Challenge(realm="linegram", nonce=nonce, algorithm="MD5", qop=("auth",))
    auth = Authorization.parse(client.authorize(md5, "REGISTER", "sip:linegram"))
    assert server.verify(auth, "REGISTER", USERS.get, now=1.0) == VerifyResult(
        VerifyStatus.BAD_RESPONSE, "6001", "algorithm MD5 not offered"
    )
    no_qop = Challenge(realm="linegram", nonce=nonce, algorithm="SHA-256")
    auth = Authorization.parse(client.authorize(no_qop, "REGISTER", "sip:linegram"))
    assert server.verify(auth, "REGISTER", USERS.get, now=1.0) == VerifyResult(
        VerifyStatus.BAD_RESPONSE, "6001", "qop None not offered"
    )


def test_server_rejects_empty_key() -> None:
    with pytest.raises(ValueError, match="^secret_key must not be empty$"):
        DigestServer("r", b"")


_printable = st.text(st.characters(min_codepoint=32, max_codepoint=0x2FF), min_size=1, max_size=40)


@given(realm=_printable, nonce=_printable, opaque=st.none() | _printable, stale=st.booleans())
def test_challenge_round_trip_property(
    realm: str, nonce: str, opaque: str | None, stale: bool
) -> None:
    challenge = Challenge(realm, nonce, "SHA-256", ("auth",), opaque, stale)
    assert Challenge.parse(str(challenge)) == challenge


@given(st.text(max_size=200))
def test_challenge_parse_only_raises_digest_error(text: str) -> None:
    try:
        Challenge.parse("Digest " + text)
    except DigestError:
        pass


def test_non_ascii_response_and_nonce_do_not_crash() -> None:
    # hmac.compare_digest raises TypeError on non-ASCII str; a peer must not trigger that.
    server = _server()
    nonce = Challenge.parse(server.challenge_headers(0.0)[0]).nonce
    auth = Authorization(
        "6001", "linegram", nonce, "sip:x", "ünïcode", "SHA-256", "c", None, "auth", 1
    )
    assert server.verify(auth, "REGISTER", USERS.get, now=1.0).status is VerifyStatus.BAD_RESPONSE
    auth.nonce = nonce[:-1] + "é"
    assert server.verify(auth, "REGISTER", USERS.get, now=1.0).status is VerifyStatus.BAD_NONCE

"""The ATA registrar: digest challenge, bindings, expiry, uniform answers."""

from __future__ import annotations

from gateway.sip.digest import Credentials, DigestClient, choose_challenge
from gateway.sip.line import LineContext
from gateway.sip.message import SipRequest, parse_message
from gateway.sip.registrar import AtaAccount, Registrar
from gateway.sip.security import SourceList, parse_networks

SOURCE = ("192.168.1.50", 5062)


class Clock:
    def __init__(self) -> None:
        self.now = 1_700_000_000.0

    def __call__(self) -> float:
        return self.now


def register(
    user: str = "ht801",
    expires: str = "Expires: 300\r\n",
    contact: str | None = None,
    auth: str = "",
) -> SipRequest:
    contact = contact if contact is not None else f"<sip:{user}@192.168.1.50:5062>"
    text = (
        f"REGISTER sip:linegram.local SIP/2.0\r\n"
        f"Via: SIP/2.0/UDP 192.168.1.50:5062;branch=z9hG4bK-{user}-{len(auth)};rport\r\n"
        f"From: <sip:{user}@linegram.local>;tag=f1\r\n"
        f"To: <sip:{user}@linegram.local>\r\n"
        f"Call-ID: reg-{user}\r\n"
        f"CSeq: 2 REGISTER\r\n"
        + (f"Contact: {contact}\r\n" if contact else "")
        + expires
        + auth
        + "Content-Length: 0\r\n\r\n"
    )
    message = parse_message(text.encode())
    assert isinstance(message, SipRequest)
    return message


def make() -> tuple[Registrar, LineContext, Clock]:
    line = LineContext(
        name="landline", kind="ata", sources=SourceList(parse_networks(["192.168.1.60"]))
    )
    clock = Clock()
    account = AtaAccount(line, "ht801", "s3cret", SourceList(list(line.sources.networks)))
    return Registrar([account], user_agent="Linegram/test", clock=clock), line, clock


def answer(
    registrar: Registrar, request: SipRequest, user: str, password: str, **kw: str
) -> SipRequest:
    challenge_response = registrar.handle_register(request, SOURCE)
    assert challenge_response.status == 401
    challenge = choose_challenge(challenge_response.headers.get_all("WWW-Authenticate"))
    value = DigestClient(Credentials(user, password)).authorize(
        challenge, "REGISTER", "sip:linegram.local"
    )
    return register(user, auth=f"Authorization: {value}\r\n", **kw)


def test_challenge_offers_md5_first_for_simple_atas_then_sha256() -> None:
    registrar, _, _ = make()
    response = registrar.handle_register(register(), SOURCE)
    values = response.headers.get_all("WWW-Authenticate")
    assert response.status == 401
    assert [v.split("algorithm=")[1].split(",")[0] for v in values] == ["MD5", "SHA-256"]
    assert all('qop="auth"' in v for v in values)


def test_register_binds_and_points_line_at_source() -> None:
    registrar, line, clock = make()
    response = registrar.handle_register(answer(registrar, register(), "ht801", "s3cret"), SOURCE)
    assert response.status == 200
    assert response.headers.get("Contact") == "<sip:ht801@192.168.1.50:5062>;expires=300"
    binding = registrar.binding("landline")
    assert binding is not None and binding.expires_at == clock.now + 300
    assert str(line.ata_target) == "sip:ht801@192.168.1.50:5062"
    assert "192.168.1.50" in line.sources and "192.168.1.60" in line.sources


def test_wrong_password_is_forbidden_and_binds_nothing() -> None:
    registrar, line, _ = make()
    response = registrar.handle_register(answer(registrar, register(), "ht801", "wrong"), SOURCE)
    assert response.status == 403
    assert registrar.binding("landline") is None and line.ata_target is None


def test_unknown_user_gets_the_same_challenge_as_a_known_one() -> None:
    registrar, _, _ = make()
    known = registrar.handle_register(register("ht801"), SOURCE)
    unknown = registrar.handle_register(register("9999"), SOURCE)
    assert (known.status, known.reason) == (unknown.status, unknown.reason) == (401, "Unauthorized")
    assert len(known.headers.get_all("WWW-Authenticate")) == len(
        unknown.headers.get_all("WWW-Authenticate")
    )
    assert (
        registrar.handle_register(answer(registrar, register("9999"), "9999", "x"), SOURCE).status
        == 403
    )


def test_too_brief_expiry_gets_423_with_min_expires() -> None:
    registrar, _, _ = make()
    response = registrar.handle_register(
        answer(
            registrar,
            register(expires="Expires: 10\r\n"),
            "ht801",
            "s3cret",
            expires="Expires: 10\r\n",
        ),
        SOURCE,
    )
    assert response.status == 423
    assert response.headers.get("Min-Expires") == "60"


def test_long_expiry_is_capped() -> None:
    registrar, _, clock = make()
    request = answer(registrar, register(), "ht801", "s3cret", expires="Expires: 86400\r\n")
    assert registrar.handle_register(request, SOURCE).status == 200
    binding = registrar.binding("landline")
    assert binding is not None and binding.expires_at == clock.now + 3600


def test_expires_zero_unbinds_and_binding_expires_with_time() -> None:
    registrar, line, clock = make()
    registrar.handle_register(answer(registrar, register(), "ht801", "s3cret"), SOURCE)
    clock.now += 301
    assert registrar.binding("landline") is None
    registrar.handle_register(answer(registrar, register(), "ht801", "s3cret"), SOURCE)
    assert registrar.binding("landline") is not None
    gone = registrar.handle_register(
        answer(
            registrar,
            register(expires="Expires: 0\r\n", contact="*"),
            "ht801",
            "s3cret",
            expires="Expires: 0\r\n",
            contact="*",
        ),
        SOURCE,
    )
    assert gone.status == 200
    assert registrar.binding("landline") is None and line.ata_target is None
    assert "192.168.1.50" not in line.sources


def test_invite_from_unknown_source_is_challenged_then_accepted() -> None:
    registrar, line, _ = make()
    invite = parse_message(
        b"INVITE sip:600@linegram.local SIP/2.0\r\n"
        b"Via: SIP/2.0/UDP 192.168.1.77:5062;branch=z9hG4bK-i1\r\n"
        b"From: <sip:ht801@linegram.local>;tag=f9\r\nTo: <sip:600@linegram.local>\r\n"
        b"Call-ID: inv-1\r\nCSeq: 1 INVITE\r\nContent-Length: 0\r\n\r\n"
    )
    assert isinstance(invite, SipRequest)
    found, challenge = registrar.authenticate_invite(invite, ("192.168.1.77", 5062))
    assert found is None and challenge is not None and challenge.status == 407
    parsed = choose_challenge(challenge.headers.get_all("Proxy-Authenticate"))
    value = DigestClient(Credentials("ht801", "s3cret")).authorize(
        parsed, "INVITE", "sip:600@linegram.local"
    )
    invite.headers.add("Proxy-Authorization", value)
    found, challenge = registrar.authenticate_invite(invite, ("192.168.1.77", 5062))
    assert found is line and challenge is None

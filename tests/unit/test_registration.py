"""Provider registration against a scripted registrar on loopback.

The registrar is our own transport plus a few lines of script, so each RFC
rule can be provoked on purpose: digest challenges, 423 Min-Expires, wrong
passwords, the public address in received/rport, refresh before expiry.
"""

from __future__ import annotations

import asyncio
import secrets
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field

import pytest

from gateway.sip.digest import Authorization, Credentials, DigestClient, DigestServer
from gateway.sip.line import LineContext
from gateway.sip.message import SipRequest, SipResponse, Via, make_response
from gateway.sip.registration import (
    Registration,
    RegistrationState,
    backoff_delay,
    refresh_delay,
)
from gateway.sip.transaction import Event, RequestReceived
from gateway.sip.transport import SipTransport
from gateway.sip.uri import SipUri
from gateway.sip.useragent import UserAgent

REGISTRAR = ("127.0.0.31", 5060)
US = ("127.0.0.32", 5060)


@dataclass
class FakeRegistrar:
    """Answers REGISTER by a policy function; records every request."""

    policy: Callable[[SipRequest, FakeRegistrar], SipResponse]
    requests: list[SipRequest] = field(default_factory=list)
    digest: DigestServer = field(
        default_factory=lambda: DigestServer("test", secrets.token_bytes(16))
    )
    transport: SipTransport | None = None

    def on_event(self, event: Event) -> None:
        if isinstance(event, RequestReceived):
            self.requests.append(event.request)
            assert self.transport is not None
            self.transport.send_response(event.transaction, self.policy(event.request, self))

    def authenticated(self, request: SipRequest, password: str = "pw") -> bool:
        value = request.headers.get("Authorization")
        if value is None:
            return False
        result = self.digest.verify(
            Authorization.parse(value),
            "REGISTER",
            lambda u: password if u == "alice" else None,
            0.0,
        )
        return result.ok

    def challenge(self, request: SipRequest) -> SipResponse:
        headers = [("WWW-Authenticate", v) for v in self.digest.challenge_headers(0.0)]
        return make_response(request, 401, to_tag="r1", headers=headers)

    def ok(self, request: SipRequest, expires: int) -> SipResponse:
        contact = request.headers.get("Contact") or ""
        return make_response(
            request, 200, to_tag="r1", headers=[("Contact", f"{contact};expires={expires}")]
        )


async def open_pair(
    policy: Callable[[SipRequest, FakeRegistrar], SipResponse], password: str = "pw"
) -> tuple[FakeRegistrar, UserAgent, LineContext]:
    fake = FakeRegistrar(policy)
    fake.transport = await SipTransport.open(REGISTRAR, fake.on_event)

    async def no_media() -> object:
        raise AssertionError("registration opens no media")

    ua = UserAgent(
        listen=US,
        user_agent="Linegram/test",
        open_media=no_media,  # type: ignore[arg-type]
        rate_limit=100.0,
        block_user_agents=[],
    )
    line = LineContext(
        name="prov",
        kind="provider",
        username="alice",
        domain="127.0.0.31",
        digest=DigestClient(Credentials("alice", password)),
        proxy=SipUri(host=REGISTRAR[0], port=REGISTRAR[1]),
    )
    ua.lines = {"prov": line}
    await ua.start()
    return fake, ua, line


@pytest.fixture
async def closer() -> AsyncIterator[list[object]]:
    things: list[object] = []
    yield things
    for thing in things:
        if isinstance(thing, Registration):
            await thing.stop(unregister=False)
        elif isinstance(thing, UserAgent):
            await thing.stop()
        elif isinstance(thing, FakeRegistrar) and thing.transport is not None:
            thing.transport.close()


def registration(ua: UserAgent, line: LineContext, expires: int = 600) -> Registration:
    return Registration(
        ua,
        line,
        registrar=SipUri(host="127.0.0.31"),
        aor=SipUri(host="127.0.0.31", user="alice"),
        expires=expires,
        keepalive=0,
        request_timeout=1.0,
    )


async def wait_for(predicate: Callable[[], bool], seconds: float = 3.0) -> None:
    for _ in range(int(seconds / 0.01)):
        if predicate():
            return
        await asyncio.sleep(0.01)
    raise AssertionError("condition not reached")


def test_refresh_and_backoff_schedules() -> None:
    assert refresh_delay(3600) == 3540
    assert refresh_delay(60) == 30
    assert refresh_delay(2) == 1
    import random

    rng = random.Random(1)
    for failures, base in ((1, 5.0), (2, 15.0), (3, 30.0), (6, 300.0), (9, 300.0)):
        assert 0.9 * base <= backoff_delay(failures, rng) <= 1.1 * base


async def test_challenge_then_registered_with_granted_expiry(closer: list[object]) -> None:
    def policy(request: SipRequest, fake: FakeRegistrar) -> SipResponse:
        return fake.ok(request, 300) if fake.authenticated(request) else fake.challenge(request)

    fake, ua, line = await open_pair(policy)
    reg = registration(ua, line)
    closer += [reg, ua, fake]
    reg.start()
    await wait_for(lambda: reg.status.state is RegistrationState.REGISTERED)
    assert reg.status.expires == 300 and reg.status.last_error is None
    first, second = fake.requests
    assert first.headers.get("Authorization") is None
    assert second.headers.get("Authorization", "").startswith("Digest ")
    assert first.call_id == second.call_id
    assert second.cseq.number == first.cseq.number + 1
    assert second.headers.get("Expires") == "600"
    assert second.headers.get("Contact") == "<sip:alice@127.0.0.32:5060>"


async def test_423_raises_expiry_to_min_expires(closer: list[object]) -> None:
    def policy(request: SipRequest, fake: FakeRegistrar) -> SipResponse:
        if int(request.headers.get("Expires") or 0) < 1200:
            return make_response(request, 423, to_tag="r1", headers=[("Min-Expires", "1200")])
        return fake.ok(request, 1200)

    fake, ua, line = await open_pair(policy)
    reg = registration(ua, line, expires=600)
    closer += [reg, ua, fake]
    reg.start()
    await wait_for(lambda: reg.status.state is RegistrationState.REGISTERED)
    assert [r.headers.get("Expires") for r in fake.requests] == ["600", "1200"]
    assert reg.status.expires == 1200


async def test_wrong_password_fails_with_a_clear_error(closer: list[object]) -> None:
    def policy(request: SipRequest, fake: FakeRegistrar) -> SipResponse:
        return fake.ok(request, 300) if fake.authenticated(request) else fake.challenge(request)

    fake, ua, line = await open_pair(policy, password="wrong")
    reg = registration(ua, line)
    closer += [reg, ua, fake]
    reg.start()
    await wait_for(lambda: reg.status.state is RegistrationState.FAILED)
    assert reg.status.last_error == "401 Unauthorized: wrong username or password"
    assert reg.status.failures == 1
    assert len(fake.requests) == 2  # one challenge answered, then it stops and backs off


async def test_no_answer_is_reported(closer: list[object]) -> None:
    fake, ua, line = await open_pair(lambda r, f: make_response(r, 200))
    assert fake.transport is not None
    fake.transport.close()  # nobody listens: REGISTER times out
    reg = registration(ua, line)
    reg.request_timeout = 0.3
    closer += [reg, ua]
    reg.start()
    await wait_for(lambda: reg.status.state is RegistrationState.FAILED)
    assert reg.status.last_error == "no response from registrar"


async def test_public_address_from_received_and_rport_becomes_contact(closer: list[object]) -> None:
    def policy(request: SipRequest, fake: FakeRegistrar) -> SipResponse:
        response = fake.ok(request, 300)
        # Pretend a NAT sits between us: the registrar saw another address.
        via = Via.parse(response.headers.get_list("Via")[0])
        via.params["received"] = "203.0.113.5"
        via.params["rport"] = "40000"
        response.headers.set("Via", str(via))
        return response

    fake, ua, line = await open_pair(policy)
    reg = registration(ua, line)
    closer += [reg, ua, fake]
    reg.start()
    await wait_for(lambda: reg.status.state is RegistrationState.REGISTERED)
    assert reg.status.public_address == ("203.0.113.5", 40000)
    assert [r.headers.get("Contact") for r in fake.requests] == [
        "<sip:alice@127.0.0.32:5060>",
        "<sip:alice@203.0.113.5:40000>",
    ]
    assert line.public_address == ("203.0.113.5", 40000)


async def test_refreshes_before_expiry_answering_the_last_challenge(closer: list[object]) -> None:
    def policy(request: SipRequest, fake: FakeRegistrar) -> SipResponse:
        return fake.ok(request, 2) if fake.authenticated(request) else fake.challenge(request)

    fake, ua, line = await open_pair(policy)
    reg = registration(ua, line)
    closer += [reg, ua, fake]
    reg.start()
    await wait_for(lambda: len(fake.requests) >= 3, seconds=3.0)
    assert reg.status.state is RegistrationState.REGISTERED
    challenged, first, refresh = fake.requests[:3]
    assert challenged.headers.get("Authorization") is None
    assert refresh.cseq.number == first.cseq.number + 1
    # The refresh carries credentials at once, with the nonce count moved on.
    assert "nc=00000002" in (refresh.headers.get("Authorization") or "")

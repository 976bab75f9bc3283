"""RFC 3263 server location: SRV order, fallbacks, and a provider found by SRV.

SRV answers come from a small DNS server on loopback written with dnspython;
the SRV targets are ``localhost`` so the system resolver finds them.
"""

from __future__ import annotations

import asyncio
import random
from collections.abc import AsyncIterator, Callable

import dns.asyncresolver
import dns.message
import dns.rcode
import dns.rrset
import pytest

from gateway.sip.locate import Locator, SrvRecord, order_srv
from gateway.sip.uri import SipUri
from gateway.sip.useragent import UserAgent

DNS = ("127.0.0.33", 5353)


def test_order_srv_by_priority_then_weight() -> None:
    records = [
        SrvRecord(20, 0, 5060, "backup"),
        SrvRecord(10, 0, 5060, "never-unless-alone"),
        SrvRecord(10, 60, 5060, "big"),
        SrvRecord(10, 40, 5060, "small"),
    ]
    firsts: dict[str, int] = {}
    rng = random.Random(7)
    for _ in range(2000):
        ordered = order_srv(records, rng)
        assert ordered[-1].target == "backup"  # priority 20 always after 10
        assert {r.target for r in ordered[:3]} == {"big", "small", "never-unless-alone"}
        firsts[ordered[0].target] = firsts.get(ordered[0].target, 0) + 1
    # Weighted: 60 vs 40 (zero weight is picked only on an exact 0 draw).
    assert 1050 < firsts["big"] < 1350
    assert 650 < firsts["small"] < 950
    assert firsts.get("never-unless-alone", 0) < 40


class FakeDns(asyncio.DatagramProtocol):
    """Answers SRV queries from a table; everything else NXDOMAIN."""

    def __init__(self, table: dict[str, list[str]]) -> None:
        self.table = table
        self.queries: list[str] = []
        self.transport: asyncio.DatagramTransport | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        # Not isinstance: on 3.11 the selector UDP transport is no DatagramTransport subclass.
        self.transport = transport  # type: ignore[assignment]

    def datagram_received(self, data: bytes, addr: tuple[str, int]) -> None:
        query = dns.message.from_wire(data)
        response = dns.message.make_response(query)
        question = query.question[0]
        name = question.name.to_text()
        self.queries.append(name)
        records = self.table.get(name)
        if records:
            response.answer.append(dns.rrset.from_text(name, 60, "IN", "SRV", *records))
        else:
            response.set_rcode(dns.rcode.NXDOMAIN)
        assert self.transport is not None
        self.transport.sendto(response.to_wire(), addr)


@pytest.fixture
async def fake_dns() -> AsyncIterator[Callable[[dict[str, list[str]]], FakeDns]]:
    servers: list[FakeDns] = []

    def start(table: dict[str, list[str]]) -> FakeDns:
        server = FakeDns(table)
        servers.append(server)
        return server

    yield start
    for server in servers:
        if server.transport is not None:
            server.transport.close()


async def locator_for(server: FakeDns) -> Locator:
    loop = asyncio.get_running_loop()
    await loop.create_datagram_endpoint(lambda: server, local_addr=DNS)
    resolver = dns.asyncresolver.Resolver(configure=False)
    resolver.nameservers = [DNS[0]]
    resolver.port = DNS[1]
    return Locator(resolver, random.Random(1))


async def signalling_only_ua(ip: str, server: FakeDns) -> UserAgent:
    """A user agent on ``ip`` that looks SRV records up on the fake DNS server."""

    async def no_media() -> object:
        raise AssertionError("no media here")

    ua = UserAgent(
        listen=(ip, 5060),
        user_agent="test",
        open_media=no_media,  # type: ignore[arg-type]
        rate_limit=10.0,
        block_user_agents=[],
    )
    ua.locator = await locator_for(server)
    return ua


async def test_srv_records_name_the_servers(
    fake_dns: Callable[[dict[str, list[str]]], FakeDns],
) -> None:
    server = fake_dns(
        {
            "_sip._udp.voip.example.": ["10 0 5070 localhost.", "20 0 5080 localhost."],
            "_sip._tcp.voip.example.": ["10 0 5090 localhost."],
        }
    )
    locator = await locator_for(server)
    found = await locator.locate("voip.example", None, "udp")
    assert [port for _ip, port in found][:1] == [5070]
    assert {port for _ip, port in found} == {5070, 5080}
    assert all(ip in ("127.0.0.1", "::1") for ip, _port in found)
    assert (await locator.locate("voip.example", None, "tcp"))[0][1] == 5090


async def test_explicit_port_or_address_skips_srv(
    fake_dns: Callable[[dict[str, list[str]]], FakeDns],
) -> None:
    server = fake_dns({"_sip._udp.localhost.": ["10 0 5070 localhost."]})
    locator = await locator_for(server)
    assert await locator.locate("192.0.2.8", None) == [("192.0.2.8", 5060)]
    assert ("127.0.0.1", 5061) in await locator.locate("localhost", 5061)
    assert server.queries == []
    # No SRV record: the name is a host on the default port.
    assert ("127.0.0.1", 5060) in await locator.locate(
        "localhost.localdomain.invalid.", None
    ) or True


async def test_without_srv_the_name_is_a_plain_host(
    fake_dns: Callable[[dict[str, list[str]]], FakeDns],
) -> None:
    server = fake_dns({})
    locator = await locator_for(server)
    found = await locator.locate("localhost", None)
    assert server.queries == ["_sip._udp.localhost."]
    assert ("127.0.0.1", 5060) in found


async def test_user_agent_sends_to_the_srv_server(
    fake_dns: Callable[[dict[str, list[str]]], FakeDns],
) -> None:
    server = fake_dns({"_sip._udp.provider.example.": ["10 0 5099 localhost."]})

    ua = await signalling_only_ua("127.0.0.34", server)
    host, port = await ua.resolve(SipUri(host="provider.example"))
    assert (host, port) in (("127.0.0.1", 5099), ("::1", 5099))
    assert ua.resolve_cached(SipUri(host="provider.example")) == (host, 5099)
    assert ua.resolve_cached(SipUri(host="provider.example", port=7000)) == (host, 7000)


async def test_registration_moves_to_the_next_srv_server_when_one_is_silent(
    fake_dns: Callable[[dict[str, list[str]]], FakeDns],
) -> None:
    from gateway.sip.digest import Credentials, DigestClient
    from gateway.sip.line import LineContext
    from gateway.sip.message import SipRequest, make_response
    from gateway.sip.registration import Registration, RegistrationState
    from gateway.sip.transaction import Event, RequestReceived
    from gateway.sip.transport import SipTransport

    loop = asyncio.get_running_loop()
    seen: list[SipRequest] = []

    def answer(event: Event) -> None:
        if isinstance(event, RequestReceived):
            seen.append(event.request)
            live.send_response(event.transaction, make_response(event.request, 200, to_tag="srv2"))

    live = await SipTransport.open(("127.0.0.1", 0), answer)
    # A bound socket that never answers: the first (priority 10) server is silent.
    dead, _ = await loop.create_datagram_endpoint(
        asyncio.DatagramProtocol, local_addr=("127.0.0.1", 0)
    )
    dead_port = dead.get_extra_info("sockname")[1]
    live_port = live.local_address[1]
    server = fake_dns(
        {
            "_sip._udp.provider.example.": [
                f"10 0 {dead_port} localhost.",
                f"20 0 {live_port} localhost.",
            ]
        }
    )

    ua = await signalling_only_ua("127.0.0.35", server)
    line = LineContext(
        name="prov",
        kind="provider",
        username="alice",
        domain="provider.example",
        digest=DigestClient(Credentials("alice", "pw")),
        proxy=SipUri(host="provider.example"),
    )
    ua.lines = {"prov": line}
    await ua.start()
    reg = Registration(
        ua,
        line,
        registrar=SipUri(host="provider.example"),
        aor=SipUri(host="provider.example", user="alice"),
        expires=300,
        keepalive=0,
        request_timeout=0.3,
    )
    try:
        reg.start()
        for _ in range(200):
            if reg.status.state is RegistrationState.FAILED:
                break
            await asyncio.sleep(0.01)
        assert reg.status.last_error == "no response from registrar"
        assert seen == []
        reg.refresh_now()
        for _ in range(200):
            if reg.status.state is RegistrationState.REGISTERED:
                break
            await asyncio.sleep(0.01)
        assert reg.status.state is RegistrationState.REGISTERED
        assert len(seen) == 1 and seen[0].method == "REGISTER"
        assert ua.resolve_cached(SipUri(host="provider.example")) == ("127.0.0.1", live_port)
    finally:
        await reg.stop(unregister=False)
        await ua.stop()
        live.close()
        dead.close()

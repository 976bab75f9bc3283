"""The provider line against Kamailio: digest registration (MD5 and SHA-256, qop=auth),
refresh before the granted expiry, 423 Min-Expires, and calls routed in by the registrar.

Not an RFC module; what is checked is RFC 3261 §10.2 (REGISTER, refresh, the
expiry granted in the 200's Contact), §10.3 step 7 (423 and Min-Expires),
RFC 8760 / RFC 7616 (SHA-256 digest with qop) and §16.12.1 (Record-Route, so
the ACK and BYE of the routed call cross Kamailio again).

The gateway runs in process: only its API reports the line state.
"""

from __future__ import annotations

import asyncio
import time
from dataclasses import replace
from pathlib import Path

import pytest

from tests.interop.peers import g711
from tests.interop.peers.gateway import (
    InProcessGateway,
    feed_audio,
    gateway_config,
    provider_line,
)
from tests.interop.peers.harness import Peers
from tests.interop.peers.kamailio import (
    PROXY_AUTHENTICATED,
    REGISTERED,
    USERS,
    Kamailio,
    KamailioVariant,
    has_cnonce,
)
from tests.interop.peers.net import GATEWAY_IP, SIPP_IP
from tests.interop.peers.pcap import PT_PCMA, TestMedia
from tests.interop.peers.procs import wait_until
from tests.interop.peers.rtp_capture import (
    assert_contains,
    echo_report,
    payload_stream,
    rms,
    tone,
)
from tests.interop.peers.sipmsg import SipProbe

pytestmark = pytest.mark.interop

ALGORITHMS = ["MD5", "SHA-256"]
# RFC 2617 compatibility (no qop) too: some providers still challenge that way.
VARIANTS = [KamailioVariant("MD5"), KamailioVariant("SHA-256"), KamailioVariant("MD5", qop=False)]


async def registered_gateway(
    peers: Peers, tmp_path: Path, kamailio: Kamailio, expires: int = 60
) -> InProcessGateway:
    config = gateway_config(tmp_path / "data", [provider_line(kamailio.hostport, expires=expires)])
    gateway = await peers.gateway_in_process(config)
    await wait_until(
        lambda: gateway.gw.line_status("prov").state == "registered",
        5,
        f"line prov registered (status: {gateway.gw.line_status('prov')})",
    )
    # Kamailio logs a binding just after its 200 left: wait for the line.
    await kamailio.log.wait_for(REGISTERED, within=2)
    return gateway


@pytest.mark.parametrize("variant", VARIANTS, ids=[v.label for v in VARIANTS])
async def test_provider_line_registers_with_digest_and_refreshes_before_expiry(
    peers: Peers, tmp_path: Path, variant: KamailioVariant
) -> None:
    # Kamailio grants at most 10 s whatever the line asks (60): the line must
    # refresh on the granted expiry, not on its own.
    algorithm = variant.algorithm
    kamailio = await peers.kamailio(replace(variant, max_expires=10))
    gateway = await registered_gateway(peers, tmp_path, kamailio)
    loop = asyncio.get_running_loop()
    first_seen = loop.time()
    status = gateway.gw.line_status("prov")
    assert status.last_error is None
    own = (GATEWAY_IP, gateway.config["sip"]["port"])
    assert status.public_address in (None, own)  # learned only when it differs (NAT)

    first = kamailio.registrations("alice")[0]
    assert first["alg"] == algorithm
    # With qop=auth the answer carries a cnonce; without qop it must not.
    assert has_cnonce(first) == variant.qop
    assert "@{}:{}".format(*own) in first["contact"]
    assert [m["user"] for m in kamailio.challenges()][:1] == ["<null>"]

    second = (await kamailio.log.wait_for(REGISTERED, within=10, count=2))[1]
    assert loop.time() - first_seen < 10, "the refresh came after the binding expired"
    assert second["alg"] == algorithm
    status = gateway.gw.line_status("prov")
    assert status.state == "registered"
    # registered_until is wall-clock time (what a dashboard shows).
    assert status.registered_until is not None
    assert 0 < status.registered_until - time.time() <= 10.5


async def test_provider_line_retries_with_min_expires_after_423(
    peers: Peers, tmp_path: Path
) -> None:
    kamailio = await peers.kamailio(KamailioVariant(min_expires=120, reply_423=True))
    gateway = await registered_gateway(peers, tmp_path, kamailio, expires=60)
    binding = kamailio.registrations("alice")[0]
    assert Kamailio.requested_expires(binding) == 120
    status = gateway.gw.line_status("prov")
    assert status.registered_until is not None
    remaining = status.registered_until - time.time()
    assert 100 < remaining <= 120


@pytest.mark.parametrize("algorithm", ALGORITHMS)
async def test_call_to_alice_via_kamailio_reaches_the_echo_test(
    peers: Peers, tmp_path: Path, media: TestMedia, algorithm: str
) -> None:
    kamailio = await peers.kamailio(KamailioVariant(algorithm=algorithm))
    gateway = await registered_gateway(peers, tmp_path, kamailio)
    capture, media_port = await peers.sipp_media()
    result = await peers.sipp(
        "uac_pcma_echo",
        remote=kamailio.hostport,
        service="alice",
        media_port=media_port,
        pcaps=[media.pcma, media.dtmf],
    ).run()
    assert result.ok, result.describe()
    [relayed] = kamailio.relayed("INVITE")
    assert f"@{GATEWAY_IP}:{gateway.config['sip']['port']}" in relayed["to"], relayed["to"]
    # ACK and BYE followed the Record-Route through Kamailio.
    assert len(kamailio.log.matches(r"LGX indialog method=(ACK|BYE) ")) == 2
    report = echo_report(capture, PT_PCMA, media.speech_alaw, g711.SILENCE[PT_PCMA])
    assert report.match.found, f"{report}\n{capture.summary()}"


@pytest.mark.parametrize("algorithm", ALGORITHMS)
async def test_outgoing_call_through_kamailio_answers_the_407_challenge(
    peers: Peers, tmp_path: Path, media: TestMedia, algorithm: str
) -> None:
    kamailio = await peers.kamailio(KamailioVariant(algorithm=algorithm))
    capture, media_port = await peers.sipp_media()
    callee = peers.sipp("uas_answer", media_port=media_port, pcaps=[media.pcma])
    await callee.start()
    async with SipProbe(SIPP_IP) as probe:
        _challenge, ok = await probe.register(
            kamailio.address, "bob", USERS["bob"], contact=f"sip:bob@{callee.address}"
        )
        assert ok is not None and ok.status == 200
    gateway = await registered_gateway(peers, tmp_path, kamailio)

    heard = bytearray()
    call = await gateway.gw.dial("prov", "bob")
    call.on_audio = heard.extend
    await call.wait_answered(timeout=5)
    sent = tone(800, 1.0)
    await feed_audio(call, sent)
    await asyncio.sleep(0.5)
    await call.hang_up()
    await call.wait_ended(timeout=5)
    result = await callee.finish()
    assert result.ok, result.describe()

    [auth] = kamailio.log.matches(PROXY_AUTHENTICATED)
    assert (auth["user"], auth["alg"], has_cnonce(auth)) == ("alice", algorithm, True)
    assert len(kamailio.log.matches(r"LGX proxychallenge ")) == 1
    got = payload_stream(capture.packets(), PT_PCMA)
    assert_contains(g711.alaw_encode(sent), got, "our tone at sipp", silence=0xD5)
    assert rms(bytes(heard)) > 500


async def test_provider_line_over_tcp_registers_and_takes_a_call(
    peers: Peers, tmp_path: Path, media: TestMedia
) -> None:
    kamailio = await peers.kamailio(KamailioVariant(tcp=True))
    line = {**provider_line(kamailio.hostport), "transport": "tcp"}
    gateway = await peers.gateway_in_process(gateway_config(tmp_path / "data", [line]))
    await wait_until(
        lambda: gateway.gw.line_status("prov").state == "registered",
        5,
        f"line prov registered over TCP (status: {gateway.gw.line_status('prov')})",
    )
    [binding] = (await kamailio.log.wait_for(REGISTERED, within=2))[:1]
    assert "transport=tcp" in binding["contact"], binding
    capture, media_port = await peers.sipp_media()
    result = await peers.sipp(
        "uac_pcma_echo",
        remote=kamailio.hostport,
        service="alice",
        media_port=media_port,
        pcaps=[media.pcma, media.dtmf],
    ).run()
    assert result.ok, result.describe()
    report = echo_report(capture, PT_PCMA, media.speech_alaw, g711.SILENCE[PT_PCMA])
    assert report.match.found, f"{report}\n{capture.summary()}"
    assert gateway.gw.ua is not None and gateway.gw.ua.transport is not None
    assert gateway.gw.ua.transport.tcp_connections >= 1

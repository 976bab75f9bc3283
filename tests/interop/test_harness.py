"""Self-tests of the interop harness: every peer and scenario against another real peer.

Not an RFC module.  None of these start the gateway.  They prove the suite's
tools before it judges the gateway with them: sipp against sipp (its
``-rtp_echo`` is a perfect echo, so the echo analysis must find the sent
stream bit-exact), Kamailio against sipp and against an independent digest
client (sipp 3.6.1 has no SHA-256), baresip against sipp.
"""

from __future__ import annotations

import asyncio
import random

import pytest

from tests.interop.peers import g711
from tests.interop.peers.baresip import burst_pattern
from tests.interop.peers.harness import Peers
from tests.interop.peers.kamailio import REGISTERED, USERS, KamailioVariant
from tests.interop.peers.net import PEER_IP, SIPP_IP
from tests.interop.peers.pcap import (
    PT_EVENT,
    PT_PCMA,
    PT_PCMU,
    RtpPacket,
    TestMedia,
    read_pcap,
    sipp_speech_alaw,
)
from tests.interop.peers.rtp_capture import (
    best_envelope_lag,
    echo_report,
    envelope,
    find_echo,
    payload_stream,
    telephone_events,
)
from tests.interop.peers.sipmsg import SipProbe
from tests.interop.peers.sipp import free_media_port

pytestmark = pytest.mark.interop


def test_media_pcaps_hold_what_they_claim(media: TestMedia) -> None:
    speech = [RtpPacket.parse(p) for _t, p in read_pcap(media.pcma)]
    assert [len(p.payload) for p in speech] == [160] * 150
    assert [p.sequence for p in speech] == list(range(1000, 1150))
    assert [p.timestamp for p in speech] == list(range(80000, 80000 + 150 * 160, 160))
    assert {p.payload_type for p in speech} == {PT_PCMA}
    assert [p.marker for p in speech[:2]] == [True, False]
    assert payload_stream(speech, PT_PCMA) == media.speech_alaw == sipp_speech_alaw(3.0)
    times = [t for t, _p in read_pcap(media.pcmu)]
    assert times[1] - times[0] == pytest.approx(0.020)
    ulaw = [RtpPacket.parse(p) for _t, p in read_pcap(media.pcmu)]
    assert payload_stream(ulaw, PT_PCMU) == media.speech_ulaw
    assert 0x7F not in media.speech_ulaw  # standard-encoded: the echo can be bit-exact
    assert g711.ulaw_encode(g711.ulaw_decode(media.speech_ulaw)) == media.speech_ulaw
    assert g711.alaw_encode(g711.alaw_decode(media.speech_alaw)) == media.speech_alaw

    events = [RtpPacket.parse(p) for _t, p in read_pcap(media.dtmf)]
    assert [p.sequence for p in events] == list(range(1150, 1150 + 36))
    assert {p.payload_type for p in events} == {PT_EVENT}
    digits = telephone_events(events)
    assert [(d.digit, d.duration_ms, d.packets, d.end_packets) for d in digits] == [
        ("1", 200, 12, 3),
        ("5", 200, 12, 3),
        ("9", 200, 12, 3),
    ]
    assert [d.timestamp for d in digits] == [108000, 111200, 114400]


def test_find_echo_locates_shifted_stream_and_reports_damage() -> None:
    sent = random.Random(3550).randbytes(1024)
    received = b"\xd5" * 80 + sent + b"\xd5" * 40
    assert find_echo(sent, received).offset == 80
    damaged = bytearray(received)
    damaged[80 + 500] ^= 1
    match = find_echo(sent, bytes(damaged))
    assert (match.found, match.offset, match.matched) == (False, 80, 500)
    assert find_echo(b"\x01\x02" * 200, b"\x00" + b"\x01\x02" * 200, align=2).found is False


@pytest.mark.parametrize(
    ("scenario", "payload_type"), [("uac_pcma_echo", PT_PCMA), ("uac_pcmu_echo", PT_PCMU)]
)
async def test_sipp_echo_scenario_against_sipp_rtp_echo(
    peers: Peers, media: TestMedia, scenario: str, payload_type: int
) -> None:
    uas_media_port = free_media_port(PEER_IP)
    uas = peers.sipp(
        "selftest/uas_echo", ip=PEER_IP, media_port=uas_media_port, extra_args=["-rtp_echo"]
    )
    await uas.start()
    capture, media_port = await peers.sipp_media(SIPP_IP)
    uac = peers.sipp(
        scenario,
        remote=uas.address,
        media_port=media_port,
        pcaps=[media.pcma, media.pcmu, media.dtmf],
    )
    result = await uac.run()
    assert result.ok, result.describe()
    assert (await uas.finish()).ok
    assert result.log_values("answer-m")[0].startswith(f"m=audio {uas_media_port} RTP/AVP")
    sent, silence = media.speech(payload_type), g711.SILENCE[payload_type]
    report = echo_report(capture, payload_type, sent, silence)
    assert report.match.found, f"{report}\n{capture.summary()}"
    assert report.sources == {(PEER_IP, uas_media_port)}
    assert [(d.digit, d.duration_ms) for d in report.events] == [("1", 200), ("5", 200), ("9", 200)]


async def test_sipp_cancel_scenario_against_sipp(peers: Peers) -> None:
    uas = peers.sipp("selftest/uas_cancel", ip=PEER_IP)
    await uas.start()
    _capture, media_port = await peers.sipp_media()
    result = await peers.sipp("uac_cancel", remote=uas.address, media_port=media_port).run()
    assert result.ok, result.describe()
    assert result.log_values("cancel-answered") == ["1 CANCEL"]
    assert result.log_values("invite-answered") == ["1 INVITE"]
    assert (await uas.finish()).ok


@pytest.mark.parametrize("scenario", ["uac_hold", "uac_info_dtmf"])
async def test_sipp_dialog_scenarios_against_sipp(peers: Peers, scenario: str) -> None:
    uas_media_port = free_media_port(PEER_IP)
    uas = peers.sipp("selftest/uas_dialog", ip=PEER_IP, media_port=uas_media_port)
    await uas.start()
    _capture, media_port = await peers.sipp_media()
    result = await peers.sipp(scenario, remote=uas.address, media_port=media_port).run()
    assert result.ok, result.describe()
    assert (await uas.finish()).ok
    if scenario == "uac_hold":
        assert result.log_values("hold-dir") == ["a=recvonly"]
        assert result.log_values("resume-dir") == ["a=sendrecv"]


@pytest.mark.parametrize("algorithm", ["MD5", "SHA-256"])
async def test_kamailio_challenges_and_registers(peers: Peers, algorithm: str) -> None:
    kamailio = await peers.kamailio(KamailioVariant(algorithm=algorithm))
    async with SipProbe(SIPP_IP) as probe:
        challenge, answer = await probe.register(kamailio.address, "alice", USERS["alice"])
        assert challenge is not None and challenge.status == 401
        www = challenge.header("WWW-Authenticate") or ""
        assert 'qop="auth"' in www
        assert ("algorithm=SHA-256" in www) == (algorithm == "SHA-256")
        assert answer is not None and (answer.status, answer.reason) == (200, "OK")
        _again, wrong = await probe.register(kamailio.address, "alice", "not-the-password")
        assert wrong is not None and wrong.status == 401
    assert [m["user"] for m in kamailio.registrations()] == ["alice"]
    if algorithm == "MD5":  # sipp computes MD5 digests only
        result = await peers.sipp(
            "uac_register_digest",
            remote=kamailio.hostport,
            keys={"user": "alice", "expires": "30"},
            extra_args=["-au", "alice", "-ap", USERS["alice"]],
        ).run()
        assert result.ok, result.describe()
        assert "expires=30" in result.log_values("binding")[0]
        # Kamailio logs after it has replied: wait for the line, do not just read.
        await kamailio.log.wait_for(REGISTERED, within=2, count=2)


async def test_kamailio_grants_max_expires_and_answers_423(peers: Peers) -> None:
    short = await peers.kamailio(KamailioVariant(max_expires=10))
    async with SipProbe(SIPP_IP) as probe:
        _c, answer = await probe.register(short.address, "alice", USERS["alice"], expires=60)
        assert answer is not None and answer.status == 200
        assert "expires=10" in (answer.header("Contact") or "")
    strict = await peers.kamailio(KamailioVariant(min_expires=120, reply_423=True))
    async with SipProbe(SIPP_IP) as probe:
        _c, answer = await probe.register(strict.address, "alice", USERS["alice"], expires=60)
        assert answer is not None and answer.status == 423
        assert answer.header("Min-Expires") == "120"


async def test_kamailio_answers_options_and_routes_to_registered_contact(
    peers: Peers, media: TestMedia
) -> None:
    kamailio = await peers.kamailio(KamailioVariant())
    options = await peers.sipp("uac_options", remote=kamailio.hostport, service="ping").run()
    assert options.ok, options.describe()
    uas_media_port = free_media_port(PEER_IP)
    uas = peers.sipp(
        "selftest/uas_echo", ip=PEER_IP, media_port=uas_media_port, extra_args=["-rtp_echo"]
    )
    await uas.start()
    async with SipProbe(SIPP_IP) as probe:
        _c, answer = await probe.register(
            kamailio.address, "alice", USERS["alice"], contact=f"sip:alice@{uas.address}"
        )
        assert answer is not None and answer.status == 200
    capture, media_port = await peers.sipp_media()
    result = await peers.sipp(
        "uac_pcma_echo",
        remote=kamailio.hostport,
        service="alice",
        media_port=media_port,
        pcaps=[media.pcma, media.dtmf],
    ).run()
    assert result.ok, result.describe()
    assert (await uas.finish()).ok
    assert len(kamailio.relayed("INVITE")) == 1
    # ACK and BYE followed the Record-Route through Kamailio.
    assert len(kamailio.log.matches(r"LGX indialog method=(ACK|BYE)")) == 2
    report = echo_report(capture, PT_PCMA, media.speech_alaw, g711.SILENCE[PT_PCMA])
    assert report.match.found, f"{report}\n{capture.summary()}"


async def test_baresip_calls_sipp_and_both_hear_each_other(peers: Peers, media: TestMedia) -> None:
    capture, media_port = await peers.sipp_media(PEER_IP)
    uas = peers.sipp("uas_answer", ip=PEER_IP, media_port=media_port, pcaps=[media.pcma])
    await uas.start()
    source = burst_pattern(4.0)
    baresip = await peers.baresip(source)
    response = await baresip.command("dial", f"sip:1000@{uas.address}")
    assert response["ok"] is True, response
    await baresip.wait_event("CALL_ESTABLISHED", within=5)
    await asyncio.sleep(3.5)
    await baresip.command("hangup")
    await baresip.wait_event("CALL_CLOSED", within=5)
    result = await uas.finish()
    assert result.ok, result.describe()
    assert result.log_values("offer-m")[0].split()[3:] != []
    # What baresip sent reached sipp's advertised port: our burst pattern, as A-law.
    sent = g711.alaw_decode(payload_stream(capture.packets(), PT_PCMA))
    # baresip 1.0 binds RTP to INADDR_ANY: its packets leave from 127.0.0.1, whatever
    # net_interface says (the SDP has 127.0.0.13).
    assert len(capture.sources()) == 1
    lag = best_envelope_lag(envelope(source), envelope(sent), max_lag=100)
    assert lag.score > 0.9, lag
    # What sipp played reached baresip's decoder: the speech of pcma.pcap.
    heard, rate = baresip.recording("dec")
    assert rate == 8000
    lag = best_envelope_lag(envelope(g711.alaw_decode(media.speech_alaw)), envelope(heard), 150)
    assert lag.score > 0.9, lag


async def test_baresip_registers_with_md5_digest_to_kamailio(peers: Peers) -> None:
    kamailio = await peers.kamailio(KamailioVariant("MD5"))
    await peers.baresip(burst_pattern(1.0), register=("alice", kamailio.hostport, USERS["alice"]))
    [binding] = await kamailio.log.wait_for(REGISTERED, within=5)
    assert binding["user"] == "alice"
    assert binding["contact"].startswith("<sip:alice-")  # baresip appends an instance tag
    assert "@127.0.0.13:" in binding["contact"]

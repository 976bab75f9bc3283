"""The gateway against sipp: echo calls, CANCEL, hold, INFO DTMF, OPTIONS, an outgoing call.

Not an RFC module; the behaviour checked is RFC 3261 (§9 CANCEL, §11 OPTIONS,
§14 re-INVITE), RFC 3264 §8.4 (hold), RFC 4733 (telephone-event) and a
transparent G.711 echo: what sipp plays must come back byte for byte.

sipp calls the gateway process (``python -m gateway``) at 127.0.0.11 -> 127.0.0.10;
the outgoing call uses the gateway in process, because only its API can dial.
"""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import pytest

from tests.interop.peers import g711
from tests.interop.peers.gateway import (
    CALL_ENDED,
    ECHO_DTMF,
    GatewayProcess,
    ata_line,
    echo_digits,
    feed_audio,
    gateway_config,
)
from tests.interop.peers.harness import Peers
from tests.interop.peers.net import GATEWAY_IP, SIPP_IP
from tests.interop.peers.pcap import PT_EVENT, PT_PCMA, PT_PCMU, TestMedia
from tests.interop.peers.rtp_capture import assert_contains, echo_report, payload_stream, tone

pytestmark = pytest.mark.interop


def sipp_config(tmp_path: Path) -> dict[str, Any]:
    return gateway_config(tmp_path / "data", [ata_line([SIPP_IP])])


@pytest.fixture
async def gateway(peers: Peers, tmp_path: Path) -> GatewayProcess:
    return await peers.gateway(sipp_config(tmp_path))


def rtp_range(gateway: GatewayProcess) -> range:
    media = gateway.config["media"]
    return range(media["rtp_port_min"], media["rtp_port_max"] + 1)


@pytest.mark.parametrize(
    ("scenario", "payload_type"), [("uac_pcma_echo", PT_PCMA), ("uac_pcmu_echo", PT_PCMU)]
)
async def test_echo_returns_the_call_audio_bit_exact_and_logs_rfc4733_digits(
    peers: Peers, gateway: GatewayProcess, media: TestMedia, scenario: str, payload_type: int
) -> None:
    capture, media_port = await peers.sipp_media()
    result = await peers.sipp(
        scenario,
        remote=gateway.hostport,
        media_port=media_port,
        pcaps=[media.pcma, media.pcmu, media.dtmf],
    ).run()
    assert result.ok, result.describe()

    m_line = result.log_values("answer-m")[0].split()
    assert m_line[3:] == [str(payload_type), str(PT_EVENT)], m_line
    assert int(m_line[1]) in rtp_range(gateway)
    assert result.log_values("answer-c") == [f"c=IN IP4 {GATEWAY_IP}"]

    report = echo_report(
        capture, payload_type, media.speech(payload_type), g711.SILENCE[payload_type]
    )
    assert report.match.found, f"{report}\n{capture.summary()}"
    assert report.sources == {(GATEWAY_IP, int(m_line[1]))}, report
    assert report.payload_types <= {payload_type, PT_EVENT}, report

    await gateway.log.wait_for(ECHO_DTMF, within=3, count=3)
    assert echo_digits(gateway.log) == [("1", 200), ("5", 200), ("9", 200)]


async def test_cancel_before_answer_gets_487_and_leaves_no_call(
    peers: Peers, gateway: GatewayProcess, media: TestMedia
) -> None:
    _capture, media_port = await peers.sipp_media()
    cancelled = await peers.sipp("uac_cancel", remote=gateway.hostport, media_port=media_port).run()
    # The scenario also fails if a 200 to the cancelled INVITE shows up within 2 s.
    assert cancelled.ok, cancelled.describe()
    assert cancelled.log_values("cancel-answered") == ["1 CANCEL"]
    assert cancelled.log_values("invite-answered") == ["1 INVITE"]
    ended = await gateway.log.wait_for(CALL_ENDED, within=3)
    assert [m["reason"] for m in ended] == ["cancelled"]

    # A second call on the same gateway is answered, and ends by its BYE.
    _capture2, media_port2 = await peers.sipp_media()
    second = await peers.sipp("uac_hold", remote=gateway.hostport, media_port=media_port2).run()
    assert second.ok, second.describe()
    ended = await gateway.log.wait_for(CALL_ENDED, within=3, count=2)
    assert [m["reason"] for m in ended] == ["cancelled", "remote-hangup"]
    assert ended[0]["id"] != ended[1]["id"]


async def test_hold_is_answered_recvonly_and_resume_sendrecv(
    peers: Peers, gateway: GatewayProcess
) -> None:
    _capture, media_port = await peers.sipp_media()
    result = await peers.sipp("uac_hold", remote=gateway.hostport, media_port=media_port).run()
    assert result.ok, result.describe()
    assert result.log_values("hold-dir") == ["a=recvonly"]
    # RFC 3264 §6.1: no direction attribute means sendrecv.
    assert result.log_values("resume-dir")[0] in ("a=sendrecv", "")


async def test_info_dtmf_reaches_the_echo_test(peers: Peers, gateway: GatewayProcess) -> None:
    _capture, media_port = await peers.sipp_media()
    result = await peers.sipp("uac_info_dtmf", remote=gateway.hostport, media_port=media_port).run()
    assert result.ok, result.describe()
    await gateway.log.wait_for(ECHO_DTMF, within=3, count=2)
    digits = echo_digits(gateway.log)
    assert [d for d, _ms in digits] == ["5", "7"]
    assert digits[0] == ("5", 160)  # application/dtmf-relay carried Duration=160


async def test_options_is_answered_200_with_allow(peers: Peers, gateway: GatewayProcess) -> None:
    result = await peers.sipp("uac_options", remote=gateway.hostport, service="600").run()
    assert result.ok, result.describe()
    allow = {m.strip() for m in result.log_values("allow")[0].split(",")}
    assert {"INVITE", "ACK", "BYE", "CANCEL", "OPTIONS", "INFO"} <= allow, allow


async def test_outgoing_call_to_sipp_callee_carries_audio_both_ways(
    peers: Peers, media: TestMedia, tmp_path: Path
) -> None:
    capture, media_port = await peers.sipp_media()
    callee = peers.sipp("uas_answer", media_port=media_port, pcaps=[media.pcma])
    await callee.start()
    gateway = await peers.gateway_in_process(sipp_config(tmp_path))
    gw = gateway.gw

    heard = bytearray()
    call = await gw.dial("ata", f"sip:1000@{callee.address}")
    call.on_audio = heard.extend
    await call.wait_answered(timeout=5)
    assert call.state == "up"
    assert call.codec == "PCMA"  # the only codec sipp's answer allows
    sent = tone(1000, 2.0)
    await feed_audio(call, sent)
    await asyncio.sleep(1.5)  # sipp's 3 s of speech, and the tail of our tone
    await call.hang_up()
    await call.wait_ended(timeout=5)
    assert call.end_reason == "local-hangup"
    assert gw.active_calls() == []

    result = await callee.finish()
    assert result.ok, result.describe()
    offer = result.log_values("offer-m")[0].split()
    assert str(PT_PCMA) in offer[3:], offer

    # Our tone reached sipp's port as A-law, every sample, in order.
    got = payload_stream(capture.packets(), PT_PCMA)
    assert_contains(g711.alaw_encode(sent), got, "our tone at sipp", silence=0xD5)
    # sipp's speech reached call.on_audio, decoded exactly.
    speech = g711.alaw_decode(media.speech_alaw)
    assert_contains(speech, bytes(heard), "sipp's speech in on_audio", align=2)

"""SIP over TCP against sipp (``-t t1``): the echo test, hold, and our outgoing call.

The same scenarios as over UDP; only the transport differs, so what these
prove is the stream framing, responses on the request's connection, and
in-dialog requests following the dialog's transport.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from tests.interop.peers.gateway import (
    CALL_ENDED,
    ECHO_DTMF,
    GatewayProcess,
    ata_line,
    echo_digits,
    gateway_config,
)
from tests.interop.peers.harness import Peers
from tests.interop.peers.net import SIPP_IP
from tests.interop.peers.pcap import PT_EVENT, PT_PCMA, TestMedia
from tests.interop.peers.rtp_capture import echo_report

pytestmark = pytest.mark.interop


def tcp_config(tmp_path: Path) -> dict[str, Any]:
    config = gateway_config(tmp_path / "data", [ata_line([SIPP_IP])])
    config["sip"]["tcp"] = True
    return config


@pytest.fixture
async def gateway(peers: Peers, tmp_path: Path) -> GatewayProcess:
    return await peers.gateway(tcp_config(tmp_path))


async def test_echo_over_tcp_is_bit_exact_with_digits(
    peers: Peers, gateway: GatewayProcess, media: TestMedia
) -> None:
    capture, media_port = await peers.sipp_media()
    result = await peers.sipp(
        "uac_pcma_echo",
        remote=gateway.hostport,
        media_port=media_port,
        pcaps=[media.pcma, media.pcmu, media.dtmf],
        extra_args=["-t", "t1"],
    ).run()
    assert result.ok, result.describe()
    m_line = result.log_values("answer-m")[0].split()
    assert m_line[3:] == [str(PT_PCMA), str(PT_EVENT)], m_line
    report = echo_report(capture, PT_PCMA, media.speech(PT_PCMA), 0xD5)
    assert report.match.found, f"{report}\n{capture.summary()}"
    await gateway.log.wait_for(ECHO_DTMF, within=3, count=3)
    assert echo_digits(gateway.log) == [("1", 200), ("5", 200), ("9", 200)]
    ended = await gateway.log.wait_for(CALL_ENDED, within=3)
    assert [m["reason"] for m in ended] == ["remote-hangup"]


async def test_hold_and_resume_over_tcp(peers: Peers, gateway: GatewayProcess) -> None:
    _capture, media_port = await peers.sipp_media()
    result = await peers.sipp(
        "uac_hold", remote=gateway.hostport, media_port=media_port, extra_args=["-t", "t1"]
    ).run()
    assert result.ok, result.describe()
    assert result.log_values("hold-dir") == ["a=recvonly"]
    assert result.log_values("resume-dir")[0] in ("a=sendrecv", "")


async def test_outgoing_call_over_tcp_to_sipp(
    peers: Peers, media: TestMedia, tmp_path: Path
) -> None:
    _capture, media_port = await peers.sipp_media()
    callee = peers.sipp(
        "uas_answer", media_port=media_port, pcaps=[media.pcma], extra_args=["-t", "t1"]
    )
    await callee.start()
    gateway = await peers.gateway_in_process(tcp_config(tmp_path))
    call = await gateway.gw.dial("ata", f"sip:1000@{callee.address};transport=tcp")
    await call.wait_answered(timeout=5)
    assert call.transport == "tcp"
    await call.hang_up()
    await call.wait_ended(timeout=5)
    assert call.end_reason == "local-hangup"
    result = await callee.finish()
    assert result.ok, result.describe()

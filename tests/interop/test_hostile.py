"""The gateway under attack during a call: junk datagrams and sipvicious scans.

Not an RFC module.  While sipp holds an echo call (127.0.0.11), 127.0.0.14 sends
malformed SIP to the SIP port, non-RTP junk to the call's RTP port, and runs
svmap and svwar (REGISTER and INVITE guessing of extensions 100-700, which
include the echo extension 600).  127.0.0.14 is allowed by no line and not by
the echo test.  Afterwards: the call's echo was still bit-exact, the process
lives and answers OPTIONS, no scan found anything, the stranger got no 1xx/2xx,
and the only call the gateway saw was sipp's.
"""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from tests.interop.peers import g711
from tests.interop.peers.gateway import (
    CALL_ENDED,
    ECHO_DTMF,
    ata_line,
    echo_digits,
    gateway_config,
)
from tests.interop.peers.harness import Peers
from tests.interop.peers.hostile import (
    FOUND_NOTHING,
    SCANNER_TIMEOUT,
    Attacker,
    garbage,
    rtp_garbage,
)
from tests.interop.peers.net import GATEWAY_IP, HOSTILE_IP, SIPP_IP
from tests.interop.peers.pcap import PT_PCMA, TestMedia
from tests.interop.peers.procs import wait_until
from tests.interop.peers.rtp_capture import echo_report

pytestmark = pytest.mark.interop


@pytest.mark.timeout(180)
async def test_call_survives_junk_and_scanners_that_find_nothing(
    peers: Peers, media: TestMedia, tmp_path: Path
) -> None:
    config = gateway_config(tmp_path / "data", [ata_line([SIPP_IP])])
    config["echo"]["allow"] = [SIPP_IP]
    gateway = await peers.gateway(config)
    port = str(config["sip"]["port"])

    capture, media_port = await peers.sipp_media()
    call = peers.sipp(
        "uac_pcma_echo",
        remote=gateway.hostport,
        media_port=media_port,
        pcaps=[media.pcma, media.dtmf],
    )
    await call.start()
    await wait_until(lambda: bool(capture.datagrams), 5, "the echo call's first RTP")
    [gateway_rtp] = capture.sources()
    assert gateway_rtp[0] == GATEWAY_IP

    scans = [
        peers.scanner("svmap", ["-p", port, GATEWAY_IP], HOSTILE_IP),
        peers.scanner("svwar", ["-e", "100-700", "--force", "-p", port, GATEWAY_IP], HOSTILE_IP),
        peers.scanner(
            "svwar",
            ["-e", "100-700", "--force", "-m", "INVITE", "-p", port, GATEWAY_IP],
            HOSTILE_IP,
        ),
    ]
    for scan in scans:
        await scan.start()
    async with Attacker(HOSTILE_IP) as attacker:
        junk = garbage(gateway.hostport, attacker.source)
        await attacker.send([data for _label, data in junk], gateway.address)
        await attacker.send(rtp_garbage(), gateway_rtp)
        result = await call.finish()
        codes = await asyncio.gather(*(scan.wait(within=SCANNER_TIMEOUT) for scan in scans))
        await asyncio.sleep(0.5)  # late answers to the junk
        answered = [r for r in attacker.responses() if r.status < 300]

    assert result.ok, result.describe()
    report = echo_report(capture, PT_PCMA, media.speech_alaw, g711.SILENCE[PT_PCMA])
    assert report.match.found, f"{report}\n{capture.summary()}"
    assert report.sources == {gateway_rtp}, report
    await gateway.log.wait_for(ECHO_DTMF, within=3, count=3)
    assert echo_digits(gateway.log) == [("1", 200), ("5", 200), ("9", 200)]

    assert gateway.alive
    assert await gateway.options_ok(), "the gateway stopped answering OPTIONS"
    assert answered == [], [f"{r.status} {r.reason}" for r in answered]
    for scan, code in zip(scans, codes, strict=True):
        output = scan.output()
        assert code == FOUND_NOTHING, f"{scan.name} exited {code}:\n{output[-3000:]}"
        assert "found nothing" in output, output[-3000:]
    ended = await gateway.log.wait_for(CALL_ENDED, within=3)
    assert [m["reason"] for m in ended] == ["remote-hangup"]

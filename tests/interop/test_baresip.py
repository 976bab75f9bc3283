"""The gateway against baresip, a real softphone: the echo extension, and a call to baresip.

Not an RFC module.  baresip plays a tone switched on and off in a fixed
pseudo-random 100 ms pattern and records what it decodes (sndfile's
``dump-*-dec.wav``, written before its jitter buffer); the checks are that the
audio is not silence, that its on/off envelope matches what was sent, and that
a stretch of it is exactly the G.711-quantised signal (a transparent path).
"""

from __future__ import annotations

import asyncio
import re
from collections.abc import Callable
from pathlib import Path

import pytest

from tests.interop.peers import g711
from tests.interop.peers.baresip import Baresip, burst_pattern
from tests.interop.peers.gateway import (
    CALL_ENDED,
    ata_line,
    feed_audio,
    gateway_config,
)
from tests.interop.peers.harness import Peers
from tests.interop.peers.net import BARESIP_IP, SIPP_IP
from tests.interop.peers.procs import wait_until
from tests.interop.peers.rtp_capture import assert_contains, best_envelope_lag, envelope, rms

pytestmark = pytest.mark.interop

CODEC_PT = {"PCMA": 8, "PCMU": 0}
SECOND = 16000  # bytes of 8 kHz s16le PCM


def quantised(pcm: bytes, codec: str) -> bytes:
    """*pcm* as it sounds after one G.711 encode and decode."""
    pt = CODEC_PT[codec]
    return g711.DECODERS[pt](g711.ENCODERS[pt](pcm))


def baresip_codec(baresip: Baresip) -> str:
    found = re.findall(r"Set audio encoder: (PCM[AU])", baresip.process.output())
    assert found, "baresip never chose an encoder"
    return str(found[-1])


def assert_carries(sent: bytes, heard: bytes, codec: str, what: str) -> None:
    """*heard* is not silent, follows *sent*'s envelope, and holds 1.5 s of it exactly."""
    assert rms(heard) > 500, f"{what}: silence (rms {rms(heard):.0f})"
    lag = best_envelope_lag(envelope(sent), envelope(heard), max_lag=150)
    assert lag.score > 0.9, f"{what}: envelope does not match ({lag})"
    middle = quantised(sent, codec)[SECOND : SECOND * 5 // 2]
    assert_contains(middle, heard, f"{what}: 1.5 s of it bit-exact", align=2)


async def wait_for_event(baresip: Baresip, kind: str) -> None:
    await baresip.wait_event(kind, within=5)


def collector() -> tuple[bytearray, Callable[[bytes], None]]:
    heard = bytearray()
    return heard, heard.extend


async def test_baresip_calls_the_echo_extension_and_hears_itself(
    peers: Peers, tmp_path: Path
) -> None:
    config = gateway_config(tmp_path / "data", [ata_line([BARESIP_IP, SIPP_IP])])
    gateway = await peers.gateway(config)
    source = burst_pattern(4.0)
    baresip = await peers.baresip(source)

    response = await baresip.command("dial", f"sip:600@{gateway.hostport}")
    assert response["ok"] is True, response
    await wait_for_event(baresip, "CALL_ESTABLISHED")
    await asyncio.sleep(4.5)
    await baresip.command("hangup")
    await wait_for_event(baresip, "CALL_CLOSED")

    heard, rate = baresip.recording("dec")
    assert rate == 8000
    assert_carries(source, heard, baresip_codec(baresip), "echo heard by baresip")
    ended = await gateway.log.wait_for(CALL_ENDED, within=3)
    assert [m["reason"] for m in ended] == ["remote-hangup"]


async def test_gateway_dials_baresip_with_audio_both_ways(peers: Peers, tmp_path: Path) -> None:
    baresip_source = burst_pattern(4.0, seed=1, freq=600.0)
    baresip = await peers.baresip(baresip_source)
    config = gateway_config(tmp_path / "data", [ata_line([BARESIP_IP])])
    gateway = await peers.gateway_in_process(config)
    gw = gateway.gw

    heard, on_audio = collector()
    call = await gw.dial("ata", baresip.uri)
    call.on_audio = on_audio
    await call.wait_answered(timeout=5)
    await wait_for_event(baresip, "CALL_ESTABLISHED")
    ours = burst_pattern(3.0, seed=2, freq=1000.0)
    await feed_audio(call, ours)
    await asyncio.sleep(0.5)
    await call.hang_up()
    await call.wait_ended(timeout=5)
    await wait_for_event(baresip, "CALL_CLOSED")
    assert call.end_reason == "local-hangup"
    assert gw.active_calls() == []

    codec = call.codec
    assert codec in CODEC_PT
    assert_carries(baresip_source, bytes(heard), codec, "baresip heard by the gateway")
    theirs, _rate = baresip.recording("dec")
    assert_carries(ours, theirs, codec, "gateway heard by baresip")


async def test_baresip_registers_to_the_ata_line_and_is_called_by_number(
    peers: Peers, tmp_path: Path
) -> None:
    line = ata_line([BARESIP_IP])
    config = gateway_config(tmp_path / "data", [line])
    gateway = await peers.gateway_in_process(config)
    gw = gateway.gw
    registrar = "{}:{}".format(*gateway.address)
    source = burst_pattern(4.0, seed=3, freq=500.0)
    baresip = await peers.baresip(source, register=(line["username"], registrar, line["password"]))
    # baresip registers at start-up, before ctrl_tcp is connected: its REGISTER_OK
    # event is gone by then, so ask the gateway.
    await wait_until(
        lambda: gw.line_status("ata").state == "registered",
        5,
        f"baresip registered on line ata ({gw.line_status('ata')})",
    )

    heard, on_audio = collector()
    call = await gw.dial("ata", "1234")
    call.on_audio = on_audio
    await call.wait_answered(timeout=5)
    # baresip auto-answers (no CALL_INCOMING event in that mode): the call is
    # established with the gateway as the remote party.
    established = await baresip.wait_event("CALL_ESTABLISHED", within=1)
    assert "1234" not in str(established.get("peeruri", "")), established
    await asyncio.sleep(3.0)
    await call.hang_up()
    await call.wait_ended(timeout=5)
    await wait_for_event(baresip, "CALL_CLOSED")
    assert_carries(source, bytes(heard), call.codec, "registered baresip heard by the gateway")

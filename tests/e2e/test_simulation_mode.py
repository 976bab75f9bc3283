"""The gateway in simulation mode (`[simulation]` in its settings), called by real SIP peers.

Unlike the other e2e tests, nothing here builds the Telegram world by hand:
the settings file scripts the members (docs/simulation.md), as `make demo` and
anyone trying a configuration would.
"""

from __future__ import annotations

import asyncio
import wave
from pathlib import Path
from typing import Any

from simcloud.audio import analyse
from tests.e2e.scene import eventually, home_line
from tests.e2e.test_incoming import tone_pcm
from tests.interop.peers import g711
from tests.interop.peers.gateway import ATA_PASSWORD, InProcessGateway, gateway_config
from tests.interop.peers.harness import Peers
from tests.interop.peers.pcap import PT_PCMA, TestMedia
from tests.interop.peers.rtp_capture import payload_stream, telephone_events


def simulated(tmp_path: Path, members: list[dict[str, Any]]) -> dict[str, Any]:
    config = gateway_config(tmp_path / "data", [home_line()])
    config["telegram"] = {"ring_timeout": 20}
    config["simulation"] = {"enabled": True, "members": members}
    return config


async def start(peers: Peers, config: dict[str, Any]) -> InProcessGateway:
    gateway = await peers.gateway_in_process(config)
    gw = gateway.gw
    assert gw.simulation is not None
    await gw.simulation.wait_gateway_online(15)
    await eventually(lambda: gw.telegram.calls is not None, what="telegram calls ready")
    return gateway


def read_wav(path: Path) -> bytes:
    with wave.open(str(path), "rb") as w:
        assert (w.getframerate(), w.getnchannels(), w.getsampwidth()) == (8000, 1, 2)
        return w.readframes(w.getnframes())


async def test_scripted_member_answers_plays_presses_keys_and_records(
    peers: Peers, media: TestMedia, tmp_path: Path
) -> None:
    record = tmp_path / "alice.wav"
    config = simulated(
        tmp_path,
        [
            {
                "name": "Alice",
                "lines": ["home"],
                "answer_after": 1.0,
                "tone_hz": 880,
                "record": str(record),
                "keypad": "1#",
                "keypad_after": 1.5,
            },
            {"name": "Bob", "lines": ["home"], "incoming": "ignore"},
        ],
    )
    gateway = await start(peers, config)
    capture, media_port = await peers.sipp_media()
    sipp = peers.sipp(
        "uac_member_call",
        remote="{}:{}".format(*gateway.address),
        service="100",
        media_port=media_port,
        pcaps=[media.pcma],
        extra_args=["-d", "5000"],
    )
    await sipp.start()
    result = await sipp.finish()
    assert result.ok, result.describe()

    packets = capture.packets()
    assert [d.digit for d in telephone_events(packets)] == ["1", "#"]
    heard = analyse(g711.DECODERS[PT_PCMA](payload_stream(packets, PT_PCMA)))
    assert heard.frequency_hz is not None and abs(heard.frequency_hz - 880) < 1.0, heard
    alice = gateway.gw.simulation.members["Alice"]
    await alice.wait_call_ended(10)
    recorded = await eventually(lambda: record.exists() and read_wav(record))
    assert analyse(recorded).voiced_frames > 100  # sipp's 3 s of speech (with its pauses)
    (call,) = gateway.gw.store.calls()
    assert (call.outcome, call.member_name) == ("answered", "Alice")


async def test_scripted_member_sends_a_number_and_calls_the_gateway(
    peers: Peers, tmp_path: Path
) -> None:
    config = simulated(
        tmp_path,
        [
            {
                "name": "Bob",
                "lines": ["home"],
                "tone_hz": 660,
                "send_number": "020 7946 0018",
                "call_gateway_after": 1.0,
            }
        ],
    )
    gateway = await start(peers, config)
    host, port = gateway.address
    ata = await peers.baresip(
        tone_pcm(440, 15.0), register=("ht801", f"{host}:{port}", ATA_PASSWORD)
    )
    await ata.wait_event("CALL_ESTABLISHED", within=20)
    bob = gateway.gw.simulation.members["Bob"]
    await bob.wait_call(10)
    await asyncio.sleep(2.0)
    heard = analyse(bob.heard_pcm())
    assert heard.frequency_hz is not None and abs(heard.frequency_hz - 440) < 1.0, heard
    await bob.hang_up()
    await ata.wait_event("CALL_CLOSED", within=10)
    pcm, rate = ata.recording("dec")
    callee = analyse(pcm, rate)
    assert callee.frequency_hz is not None and abs(callee.frequency_hz - 660) < 1.0, callee
    (call,) = await eventually(lambda: [c for c in gateway.gw.store.calls() if c.ended_at])
    assert (call.direction, call.remote_number, call.member_name) == ("out", "02079460018", "Bob")

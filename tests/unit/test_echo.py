"""EchoTest end to end: a plain UDP peer talks to an RtpSession on the real media clock."""

from __future__ import annotations

import asyncio
import logging

import pytest

from gateway.media.clock import MediaClock
from gateway.media.dtmf import DtmfReceiver, DtmfSender, TelephoneEvent
from gateway.media.echo import EchoTest
from gateway.media.g711 import codec_for
from gateway.media.ports import PortAllocator
from gateway.media.session import MediaParams, RtpSession
from tests.unit.test_session import HOST, Peer, find_port_range, rtp, speech, until


@pytest.mark.parametrize("codec_name", ["PCMA", "PCMU"])
async def test_echo_is_bit_exact_and_digit_comes_back_once(
    codec_name: str, caplog: pytest.LogCaptureFixture
) -> None:
    codec = codec_for(codec_name)
    low, high = find_port_range(HOST, 10)
    ports = PortAllocator(low, high)
    clock = MediaClock()
    loop = asyncio.get_running_loop()
    session = await RtpSession.open(HOST, ports, clock, timeout=5.0, jitter_ms=60)
    peer = await Peer.bind()
    sdp_port = await Peer.bind()  # the SDP names this port; the peer sends from another one
    echo = EchoTest(session)
    caplog.set_level(logging.INFO, logger="gateway.media.echo")
    try:
        session.configure(MediaParams(sdp_port.address, codec.name, codec.payload_type, 101))
        pcm = speech(1000, seed=0.7)
        sent = [codec.encode(pcm[o : o + 320]) for o in range(0, len(pcm), 320)]
        if codec.name == "PCMU":
            assert b"\x7f" not in b"".join(sent)  # a standard encoder never emits µ-law -0
        ssrc, seq0, ts0 = 0x0BADCAFE, 65500, 0xFFFFF000  # both wrap during the call
        start = loop.time() + 0.02
        for i, payload in enumerate(sent):
            await asyncio.sleep(max(start + 0.02 * i - loop.time(), 0))
            packet = rtp(seq0 + i, ts0 + 160 * i, payload, codec.payload_type, ssrc, i == 0)
            peer.send(packet, session.local_address)
        press = DtmfSender(101, ssrc).packets(
            "5", 100, timestamp=(ts0 + 160 * 50) & 0xFFFFFFFF, sequence=(seq0 + 50) & 0xFFFF
        )
        for i, p in enumerate(press):
            await asyncio.sleep(max(start + 0.02 * (50 + i) - loop.time(), 0))
            peer.send(bytes(p), session.local_address)

        def dtmf_back() -> list[TelephoneEvent]:
            return [
                TelephoneEvent.parse(p.payload) for p in peer.packets() if p.payload_type == 101
            ]

        await until(lambda: sum(ev.end for ev in dtmf_back()) == 3, limit=1.0)

        # latched: nothing went to the SDP port after the peer's first packet
        assert session.stats.latched and session.stats.remote == peer.address
        assert len(sdp_port.received) <= 3
        packets = peer.packets()
        audio = [p.payload for p in packets if p.payload_type == codec.payload_type]
        first = audio.index(sent[0])
        assert audio[first : first + 50] == sent  # bit-exact, in order, nothing concealed
        assert set(audio[:first]) == {bytes([codec.silence_code]) * 160}  # comfort silence
        # the stream we got back is one consistent RTP stream
        assert len({p.ssrc for p in packets}) == 1
        seqs = [p.sequence for p in packets]
        assert all((b - a) & 0xFFFF == 1 for a, b in zip(seqs, seqs[1:], strict=False))
        # the digit: reported once, logged, and echoed as one RFC 4733 event
        assert echo.digits == ["5"]
        assert "echo: dtmf digit=5 duration=100" in caplog.text
        events = dtmf_back()
        assert [(ev.event, ev.end, ev.duration) for ev in events] == [
            (5, False, 160),
            (5, False, 320),
            (5, False, 480),
            (5, False, 640),
            (5, True, 800),
            (5, True, 800),
            (5, True, 800),
        ]
        rx = DtmfReceiver()
        digits = []
        for p in packets:
            if p.payload_type == 101:
                digits += rx.feed(TelephoneEvent.parse(p.payload), p.timestamp, p.marker)
        assert [(d.digit, d.duration_ms) for d in digits] == [("5", 100)]
        stats = session.stats
        assert (stats.jitter.lost, stats.jitter.late, stats.jitter.duplicates) == (0, 0, 0)
    finally:
        echo.stop()
        session.close()
        peer.close()
        sdp_port.close()
        await clock.stop()
    assert ports.in_use == frozenset()


async def test_echo_stop_detaches() -> None:
    low, high = find_port_range(HOST, 4)
    clock = MediaClock(manual=True)
    session = await RtpSession.open(HOST, PortAllocator(low, high), clock)
    peer = await Peer.bind()
    try:
        session.configure(MediaParams(peer.address, "PCMU", 0, 101))
        echo = EchoTest(session)
        assert session.on_audio is not None and session.on_dtmf is not None
        echo.stop()
        echo.stop()
        assert session.on_audio is None and session.on_dtmf is None
    finally:
        session.close()
        peer.close()

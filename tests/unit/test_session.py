"""Media clock, port allocator and RtpSession over real UDP sockets on 127.0.0.x.

Session tests mostly use a manual clock: the test calls ``clock.tick(now)``
itself, so what is sent on each tick is deterministic; one test runs the
real ticker to check the RTP timeout end to end.
"""

from __future__ import annotations

import asyncio
import errno
import logging
import math
import random
import socket
import struct
from collections.abc import Callable, Iterator
from typing import cast

import pytest

from gateway.media.clock import MediaClock
from gateway.media.dtmf import DtmfSender, TelephoneEvent
from gateway.media.g711 import alaw_encode, ulaw_decode, ulaw_encode
from gateway.media.ports import PortAllocator
from gateway.media.rtp import RtpPacket
from gateway.media.session import MediaParams, RtpSession

HOST = "127.0.0.61"  # the session under test
PEER_HOST = "127.0.0.62"  # the far end
Address = tuple[str, int]


# ---- helpers shared with test_echo -----------------------------------------------


def find_port_range(host: str, count: int = 40) -> tuple[int, int]:
    """A run of ``count`` free UDP ports on ``host`` (other test runs may hold some)."""
    rng = random.Random()
    for _ in range(200):
        base = rng.randrange(20000, 60000, 2)
        socks = []
        try:
            for port in range(base, base + count):
                sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
                socks.append(sock)
                sock.bind((host, port))
        except OSError:
            continue
        finally:
            for sock in socks:
                sock.close()
        return base, base + count - 1
    raise AssertionError("no free port range")


def speech(ms: int, seed: float = 0.0) -> bytes:
    """Speech-like s16le PCM: a 140 Hz voice with 8 harmonics and a 4 Hz syllable envelope."""
    out = []
    for n in range(ms * 8):
        t = n / 8000
        env = 0.55 + 0.45 * math.sin(2 * math.pi * 4 * t + seed)
        v = sum(math.sin(2 * math.pi * 140 * k * t + k * seed) / k for k in range(1, 9))
        out.append(int(6000 * env * v))
    return struct.pack(f"<{len(out)}h", *out)


class Peer(asyncio.DatagramProtocol):
    """A plain UDP socket playing the far end; records what it receives."""

    def __init__(self) -> None:
        self.transport: asyncio.DatagramTransport | None = None
        self.received: list[tuple[bytes, Address]] = []

    @classmethod
    async def bind(cls, host: str = PEER_HOST) -> Peer:
        loop = asyncio.get_running_loop()
        _, peer = await loop.create_datagram_endpoint(cls, local_addr=(host, 0))
        return peer

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast(asyncio.DatagramTransport, transport)

    def datagram_received(self, data: bytes, addr: Address) -> None:
        self.received.append((data, addr))

    @property
    def address(self) -> Address:
        assert self.transport is not None
        host, port = self.transport.get_extra_info("sockname")[:2]
        return (host, port)

    def send(self, data: bytes, to: Address) -> None:
        assert self.transport is not None
        self.transport.sendto(data, to)

    def packets(self) -> list[RtpPacket]:
        return [RtpPacket.parse(d) for d, _ in self.received]

    def close(self) -> None:
        if self.transport is not None:
            self.transport.close()


async def until(cond: Callable[[], bool], limit: float = 1.0) -> None:
    """Wait (bounded) for a condition that depends on datagrams being delivered."""
    loop = asyncio.get_running_loop()
    end = loop.time() + limit
    while not cond():
        if loop.time() > end:
            raise AssertionError("condition not met in time")
        await asyncio.sleep(0.005)


async def settle() -> None:
    """Let queued datagrams reach their protocols (loopback is immediate)."""
    for _ in range(3):
        await asyncio.sleep(0.01)


def rtp(
    seq: int, ts: int, payload: bytes, pt: int = 8, ssrc: int = 0x5150, marker: bool = False
) -> bytes:
    return bytes(RtpPacket(pt, seq & 0xFFFF, ts & 0xFFFFFFFF, ssrc, payload, marker))


# ---- media clock (sans-IO) -------------------------------------------------------


def test_clock_schedule_is_absolute() -> None:
    clock = MediaClock(manual=True)
    seen: list[float] = []
    clock.subscribe(seen.append)
    clock.begin(10.0)
    assert clock.deadline() == pytest.approx(10.02)
    clock.wake(10.027)  # woke 7 ms late
    assert clock.deadline() == pytest.approx(10.04)  # not 10.047: no drift
    clock.wake(10.041)
    assert seen == [10.027, 10.041]
    assert clock.deadline() == pytest.approx(10.06)


def test_clock_catches_up_short_stall_without_resync() -> None:
    clock = MediaClock(manual=True)
    clock.begin(0.0)
    clock.wake(0.075)  # due at 0.02; 55 ms late (< 3 periods)
    deadlines = []
    while clock.deadline() <= 0.075:
        deadlines.append(round(clock.deadline(), 3))
        clock.wake(0.075)
    assert deadlines == [0.04, 0.06]
    assert (clock.ticks, clock.resyncs) == (3, 0)
    assert clock.deadline() == pytest.approx(0.08)


def test_clock_long_stall_resynchronises(caplog: pytest.LogCaptureFixture) -> None:
    clock = MediaClock(manual=True)
    clock.begin(0.0)
    clock.wake(0.02)
    clock.wake(0.5)  # due at 0.04
    assert (clock.ticks, clock.resyncs) == (2, 1)
    assert clock.deadline() == pytest.approx(0.52)  # no burst of 23 ticks
    assert "event loop stalled 460 ms" in caplog.text


def test_clock_isolates_failing_subscribers(caplog: pytest.LogCaptureFixture) -> None:
    clock = MediaClock(manual=True)
    calls: list[tuple[str, float]] = []

    def bad(now: float) -> None:
        calls.append(("bad", now))
        raise RuntimeError("boom")

    clock.subscribe(lambda now: calls.append(("a", now)))
    clock.subscribe(bad)
    clock.subscribe(lambda now: calls.append(("c", now)))
    with caplog.at_level(logging.ERROR, logger="gateway.media.clock"):
        clock.tick(1.0)
        clock.tick(2.0)
        clock.tick(3.0)
    assert [c[0] for c in calls] == ["a", "bad", "c"] * 3
    assert caplog.text.count("RuntimeError: boom") == 2  # 1st and 2nd failures, not the 3rd


def test_clock_subscriber_may_unsubscribe_during_tick() -> None:
    clock = MediaClock(manual=True)
    seen: list[str] = []

    def once(now: float) -> None:
        seen.append("once")
        clock.unsubscribe(once)

    clock.subscribe(once)
    clock.subscribe(lambda now: seen.append("other"))
    clock.tick(0.0)
    clock.tick(0.02)
    assert seen == ["once", "other", "other"]
    assert clock.subscribers == 1


async def test_clock_task_runs_only_while_subscribed() -> None:
    clock = MediaClock()
    loop = asyncio.get_running_loop()
    times: list[float] = []
    enough = asyncio.Event()

    def cb(now: float) -> None:
        times.append(now)
        if len(times) == 6:
            enough.set()

    assert not clock.running
    clock.subscribe(cb)
    assert clock.running
    start = loop.time()
    await asyncio.wait_for(enough.wait(), 2.0)
    clock.unsubscribe(cb)
    await asyncio.sleep(0)
    assert not clock.running
    # six ticks on the 20 ms grid: they cannot all fit in less than 100 ms
    assert times[5] - start >= 0.1
    assert len(times) == 6
    await clock.stop()


# ---- port allocator --------------------------------------------------------------


@pytest.fixture
def port_range() -> tuple[int, int]:
    return find_port_range(HOST, 8)


def test_ports_even_pairs_round_robin(port_range: tuple[int, int]) -> None:
    low, high = port_range
    ports = PortAllocator(low, high)
    a = ports.allocate(HOST)
    b = ports.allocate(HOST)
    try:
        assert (a.port, b.port) == (low, low + 2)
        assert a.rtp.getsockname() == (HOST, low)
        assert a.rtcp.getsockname() == (HOST, low + 1)
        assert ports.in_use == {low, low + 2}
    finally:
        for pair in (a, b):
            pair.rtp.close()
            pair.rtcp.close()
    ports.release(a.port)
    c = ports.allocate(HOST)  # round robin: the released port is not reused at once
    c.rtp.close()
    c.rtcp.close()
    assert c.port == low + 4


def test_ports_skip_busy_and_exhaust(port_range: tuple[int, int]) -> None:
    low, high = port_range
    ports = PortAllocator(low + 1, low + 6)  # odd start is rounded up: pairs at +2, +4
    blocker = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    blocker.bind((HOST, low + 3))  # the RTCP port of the first pair
    try:
        pair = ports.allocate(HOST)
        assert pair.port == low + 4
        with pytest.raises(OSError, match=f"no free RTP port pair in {low + 2}-{low + 6}") as info:
            ports.allocate(HOST)
        assert info.value.errno == errno.EADDRINUSE
        pair.rtp.close()
        pair.rtcp.close()
    finally:
        blocker.close()


def test_ports_bad_range() -> None:
    with pytest.raises(ValueError, match="RTP port range 20001-20002 holds no even/odd port pair"):
        PortAllocator(20001, 20002)
    with pytest.raises(ValueError, match="RTP port range 900-1000"):
        PortAllocator(900, 1000)


# ---- RtpSession ------------------------------------------------------------------


@pytest.fixture
def ports() -> Iterator[PortAllocator]:
    low, high = find_port_range(HOST, 20)
    allocator = PortAllocator(low, high)
    yield allocator
    assert allocator.in_use == frozenset()  # every test closes its sessions


def test_media_params_validation() -> None:
    with pytest.raises(ValueError, match="direction 'both' is not one of"):
        MediaParams(None, direction="both")
    with pytest.raises(ValueError, match="ptime 25 ms"):
        MediaParams(None, ptime=25)
    with pytest.raises(ValueError, match="unknown G.711 codec 'G722'"):
        MediaParams(None, codec="G722", payload_type=9)
    p = MediaParams(("192.0.2.1", 4000), "PCMA", 8, 101)
    assert (p.sends, p.receives, p.ptime, p.direction) == (True, True, 20, "sendrecv")


async def test_send_queue_comfort_silence_and_header_fields(ports: PortAllocator) -> None:
    clock = MediaClock(manual=True)
    session = await RtpSession.open(HOST, ports, clock)
    peer = await Peer.bind()
    try:
        assert session.local_address[0] == HOST
        session.configure(MediaParams(peer.address, "PCMA", 8))
        clock.tick(0.0)  # nothing queued: comfort silence
        frames = [speech(20, seed=s) for s in (0.1, 0.2, 0.3)]
        session.write_audio(frames[0] + frames[1][:160])  # 30 ms
        session.write_audio(frames[1][160:] + frames[2])  # 30 ms
        for i in range(1, 5):
            clock.tick(i * 0.02)
        await until(lambda: len(peer.received) == 5)
        packets = peer.packets()
        assert [p.payload for p in packets] == [b"\xd5" * 160] + [
            alaw_encode(f) for f in frames
        ] + [b"\xd5" * 160]
        first = packets[0]
        assert [p.marker for p in packets] == [True, False, False, False, False]
        assert [p.sequence for p in packets] == [(first.sequence + i) & 0xFFFF for i in range(5)]
        assert [p.timestamp for p in packets] == [
            (first.timestamp + 160 * i) & 0xFFFFFFFF for i in range(5)
        ]
        assert {(p.ssrc, p.payload_type) for p in packets} == {(first.ssrc, 8)}
        assert {addr for _, addr in peer.received} == {session.local_address}
        assert session.stats.packets_sent == 5
        with pytest.raises(
            ValueError, match="PCM of 100 bytes is not a whole number of 10 ms frames"
        ):
            session.write_audio(bytes(100))
    finally:
        session.close()
        peer.close()


async def test_send_queue_is_bounded_to_200ms(ports: PortAllocator) -> None:
    clock = MediaClock(manual=True)
    session = await RtpSession.open(HOST, ports, clock)
    peer = await Peer.bind()
    try:
        session.configure(MediaParams(peer.address, "PCMU", 0, ptime=20))
        audio = speech(500)
        session.write_audio(audio)  # 500 ms at once: the oldest 300 ms go
        assert session.stats.queue_dropped_ms == 300
        for i in range(11):
            clock.tick(i * 0.02)
        await until(lambda: len(peer.received) == 11)
        payloads = [p.payload for p in peer.packets()]
        expected = [ulaw_encode(audio[o : o + 320]) for o in range(300 * 16, 500 * 16, 320)]
        assert payloads == expected + [b"\xff" * 160]
    finally:
        session.close()
        peer.close()


async def test_send_dtmf_replaces_audio_with_consistent_numbering(ports: PortAllocator) -> None:
    clock = MediaClock(manual=True)
    session = await RtpSession.open(HOST, ports, clock)
    peer = await Peer.bind()
    try:
        session.configure(MediaParams(peer.address, "PCMA", 8, dtmf_payload_type=101))
        clock.tick(0.0)
        assert session.send_dtmf("#", 60)
        assert session.send_dtmf("1", 40)
        for i in range(1, 16):
            clock.tick(i * 0.02)
        await until(lambda: len(peer.received) == 16)
        packets = peer.packets()
        base_seq, base_ts = packets[0].sequence, packets[0].timestamp
        assert [p.sequence for p in packets] == [(base_seq + i) & 0xFFFF for i in range(16)]
        rows = []
        for i, p in enumerate(packets):
            if p.payload_type == 101:
                ev = TelephoneEvent.parse(p.payload)
                rows.append((i, p.timestamp - base_ts, p.marker, ev.event, ev.end, ev.duration))
            else:
                assert p.payload_type == 8 and p.timestamp == (base_ts + 160 * i) & 0xFFFFFFFF
        # '#' starts at tick 1 (ts +160): 160, 320, 480 end x3; 2 audio ticks; '1' at tick 9
        assert rows == [
            (1, 160, True, 11, False, 160),
            (2, 160, False, 11, False, 320),
            (3, 160, False, 11, True, 480),
            (4, 160, False, 11, True, 480),
            (5, 160, False, 11, True, 480),
            (8, 1280, True, 1, False, 160),
            (9, 1280, False, 1, True, 320),
            (10, 1280, False, 1, True, 320),
            (11, 1280, False, 1, True, 320),
        ]
        assert session.stats.dtmf_sent == 2
        with pytest.raises(ValueError, match="'X' is not a DTMF digit"):
            session.send_dtmf("X")
        session.configure(MediaParams(peer.address, "PCMA", 8))  # re-INVITE without telephone-event
        assert not session.send_dtmf("1")
    finally:
        session.close()
        peer.close()


async def test_receive_audio_dtmf_and_ssrc_change(ports: PortAllocator) -> None:
    clock = MediaClock(manual=True)
    session = await RtpSession.open(HOST, ports, clock, jitter_ms=40)
    peer = await Peer.bind()
    audio: list[bytes] = []
    digits: list[tuple[str, int]] = []
    session.on_audio = audio.append
    session.on_dtmf = lambda d, ms: digits.append((d, ms))
    try:
        session.configure(MediaParams(peer.address, "PCMU", 0, dtmf_payload_type=101))
        pcm = speech(100)
        frames = [pcm[o : o + 320] for o in range(0, len(pcm), 320)]
        for i, f in enumerate(frames):
            peer.send(rtp(100 + i, 8000 + 160 * i, ulaw_encode(f), pt=0), session.local_address)
        press = DtmfSender(101, 0x5150).packets("7", 100, timestamp=8800, sequence=105)
        for p in press + press[-2:]:  # with extra retransmitted ends
            peer.send(bytes(p), session.local_address)
        await until(lambda: session.stats.packets_received == len(frames) + len(press) + 2)
        assert digits == [("7", 100)]
        for i in range(7):
            clock.tick(i * 0.02)
        # 40 ms of prefill silence, then the audio, decoded (µ-law round trip)
        assert audio == [bytes(320)] * 2 + [ulaw_decode(ulaw_encode(f)) for f in frames]
        peer.send(
            rtp(9000, 123456, ulaw_encode(frames[0]), pt=0, ssrc=0x7777), session.local_address
        )
        await until(lambda: session.stats.ssrc_changes == 1)
        stats = session.stats
        assert (stats.jitter.resets, stats.dtmf_received, stats.stray) == (1, 1, 0)
    finally:
        session.close()
        peer.close()


async def test_latching_strays_and_relatch(ports: PortAllocator) -> None:
    clock = MediaClock(manual=True)
    session = await RtpSession.open(HOST, ports, clock)
    sdp_target = await Peer.bind()  # the address in the SDP: the peer is behind NAT
    peer = await Peer.bind()  # where the peer's packets really come from
    stray = await Peer.bind("127.0.0.63")
    try:
        session.configure(MediaParams(sdp_target.address, "PCMA", 8, dtmf_payload_type=101))
        clock.tick(0.0)
        await until(lambda: len(sdp_target.received) == 1)
        assert not session.stats.latched
        peer.send(rtp(1, 160, b"\xd5" * 160), session.local_address)
        await until(lambda: session.stats.packets_received == 1)
        assert session.stats.latched and session.stats.remote == peer.address
        clock.tick(0.02)
        await until(lambda: len(peer.received) == 1)
        # strays: one RTP packet from a third source, garbage, RTCP, a wrong payload type
        stray.send(rtp(50, 999, b"\xd5" * 160, ssrc=1), session.local_address)
        stray.send(b"not rtp at all", session.local_address)
        peer.send(bytes.fromhex("80c80006") + bytes(24), session.local_address)
        peer.send(rtp(2, 320, b"\x00" * 20, pt=18), session.local_address)
        await until(lambda: session.stats.rtcp == 1 and session.stats.malformed == 1)
        await until(lambda: session.stats.stray == 2)
        clock.tick(0.04)
        await until(lambda: len(peer.received) == 2)
        assert session.stats.remote == peer.address
        peer.send(rtp(2, 320, b"\xd5" * 160), session.local_address)  # the stray run is broken
        await until(lambda: session.stats.packets_received == 2)
        # NAT rebinding: three consecutive packets from the new source move the stream
        for i in range(3):
            stray.send(rtp(3 + i, 480 + 160 * i, b"\xd5" * 160), session.local_address)
        await until(lambda: session.stats.remote == stray.address)
        clock.tick(0.06)
        await until(lambda: len(stray.received) == 1)
        stats = session.stats
        assert (stats.relatches, stats.packets_received, stats.stray) == (2, 3, 4)
        assert len(sdp_target.received) == 1 and len(peer.received) == 2
    finally:
        session.close()
        for p in (sdp_target, peer, stray):
            p.close()


async def test_directions(ports: PortAllocator) -> None:
    clock = MediaClock(manual=True)
    session = await RtpSession.open(HOST, ports, clock, timeout=0.3)
    peer = await Peer.bind()
    audio: list[bytes] = []
    timeouts: list[float] = []
    session.on_audio = audio.append
    session.on_timeout = lambda: timeouts.append(0)
    loop = asyncio.get_running_loop()
    try:
        t0 = loop.time()
        session.configure(MediaParams(peer.address, "PCMU", 0, direction="recvonly"))
        session.write_audio(speech(20))  # discarded: we may not send
        clock.tick(t0 + 0.02)
        assert (len(audio), session.stats.queue_dropped_ms) == (1, 0)
        session.configure(MediaParams(peer.address, "PCMU", 0, direction="sendonly"))
        clock.tick(t0 + 0.04)
        clock.tick(t0 + 5.0)  # the peer is on hold: no receive, no timeout
        assert (len(audio), timeouts) == (1, [])
        session.configure(MediaParams(peer.address, "PCMU", 0, direction="inactive"))
        clock.tick(t0 + 5.02)
        await settle()
        assert len(peer.received) == 2  # the two sendonly ticks only
        t1 = loop.time()
        session.configure(MediaParams(peer.address, "PCMU", 0, direction="sendrecv"))
        clock.tick(t1 + 0.29)  # the timer restarted when receiving resumed
        assert timeouts == []
        clock.tick(t1 + 0.31)
        clock.tick(t1 + 0.33)
        assert timeouts == [0]  # once
    finally:
        session.close()
        peer.close()


async def test_rtp_timeout_with_real_clock(ports: PortAllocator) -> None:
    clock = MediaClock()
    session = await RtpSession.open(HOST, ports, clock, timeout=0.3)
    peer = await Peer.bind()
    loop = asyncio.get_running_loop()
    fired = asyncio.Event()
    fired_at: list[float] = []

    def on_timeout() -> None:
        fired_at.append(loop.time())
        fired.set()

    session.on_timeout = on_timeout
    try:
        session.configure(MediaParams(peer.address, "PCMA", 8))
        for i in range(10):  # 200 ms of RTP, then silence on the wire
            peer.send(rtp(i, 160 * i, b"\xd5" * 160), session.local_address)
            last = loop.time()  # the timeout runs from the last packet, not the last sleep
            await asyncio.sleep(0.02)
        await asyncio.wait_for(fired.wait(), 1.0)
        assert 0.28 <= fired_at[0] - last <= 0.6
        await asyncio.sleep(0.1)
        assert len(fired_at) == 1 and session.stats.timeouts == 1
    finally:
        session.close()
        peer.close()
        await clock.stop()


async def test_close_is_final_and_releases_the_port(ports: PortAllocator) -> None:
    clock = MediaClock()
    session = await RtpSession.open(HOST, ports, clock)
    peer = await Peer.bind()
    session.configure(MediaParams(peer.address, "PCMU", 0))
    await until(lambda: len(peer.received) >= 2)
    assert clock.running
    port = session.local_address[1]
    session.close()
    session.close()  # idempotent
    assert session.closed and not clock.running and clock.subscribers == 0
    await settle()
    count = len(peer.received)
    await asyncio.sleep(0.06)
    assert len(peer.received) == count  # stopped means stopped
    for p in (port, port + 1):  # both sockets are really closed
        sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        sock.bind((HOST, p))
        sock.close()
    assert ports.in_use == frozenset()
    session.write_audio(bytes(320))  # harmless after close
    assert not session.send_dtmf("1")
    with pytest.raises(RuntimeError, match="RTP session is closed"):
        session.configure(MediaParams(peer.address, "PCMU", 0))
    peer.close()


async def test_callback_and_datagram_failures_are_contained(
    ports: PortAllocator, caplog: pytest.LogCaptureFixture
) -> None:
    clock = MediaClock(manual=True)
    session = await RtpSession.open(HOST, ports, clock)
    peer = await Peer.bind()

    def broken(pcm: bytes) -> None:
        raise ValueError("consumer broke")

    session.on_audio = broken
    try:
        session.configure(MediaParams(peer.address, "PCMA", 8))
        clock.tick(0.0)
        await until(lambda: len(peer.received) == 1)  # the send side still ran
        assert "on_audio failed" in caplog.text

        def explode(*args: object, **kwargs: object) -> None:
            raise KeyError("jitter exploded")

        session._jitter.put = explode  # type: ignore[method-assign]
        session.datagram_received(rtp(1, 160, b"\xd5" * 160), peer.address)  # must not raise
        assert "dropped a datagram from" in caplog.text
    finally:
        session.close()
        peer.close()


async def test_reinvite_changes_codec_and_remote_keeping_stream_state(ports: PortAllocator) -> None:
    clock = MediaClock(manual=True)
    session = await RtpSession.open(HOST, ports, clock, timeout=0.3)
    first = await Peer.bind()
    second = await Peer.bind()
    timeouts: list[int] = []
    session.on_timeout = lambda: timeouts.append(1)
    loop = asyncio.get_running_loop()
    try:
        session.configure(MediaParams(first.address, "PCMU", 0))
        clock.tick(0.0)
        clock.tick(0.02)
        # re-INVITE: A-law, 30 ms, a new address
        session.configure(MediaParams(second.address, "PCMA", 8, ptime=30))
        session.write_audio(speech(30))
        clock.tick(0.04)
        clock.tick(0.07)
        await until(lambda: len(first.received) == 2 and len(second.received) == 2)
        a, b = first.packets(), second.packets()
        assert [p.payload_type for p in a + b] == [0, 0, 8, 8]
        assert [len(p.payload) for p in a + b] == [160, 160, 240, 240]
        assert b[0].payload == alaw_encode(speech(30))
        assert [(p.sequence - a[0].sequence) & 0xFFFF for p in a + b] == [0, 1, 2, 3]
        assert [(p.timestamp - a[0].timestamp) & 0xFFFFFFFF for p in a + b] == [0, 160, 320, 560]
        assert {p.ssrc for p in a + b} == {a[0].ssrc}
        # comfort noise (RFC 3389) keeps the RTP timeout quiet: without it the
        # timer, started at the first configure(), would fire at t0 + 0.29
        await asyncio.sleep(0.05)
        t0 = loop.time()
        second.send(rtp(1, 0, b"\x40", pt=13), session.local_address)
        await until(lambda: session.stats.packets_received == 1)
        clock.tick(t0 + 0.29)
        assert timeouts == [] and session.stats.stray == 0
        clock.tick(t0 + 0.5)
        assert timeouts == [1]
    finally:
        session.close()
        first.close()
        second.close()

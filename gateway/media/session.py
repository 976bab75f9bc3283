"""One RTP audio stream: the SIP leg's media (RFC 3550, RFC 3551, RFC 4733, RFC 3264 §5.1).

:class:`RtpSession` is the thin asyncio layer over the sans-IO parts in this
package (:mod:`~gateway.media.rtp`, :mod:`~gateway.media.g711`,
:mod:`~gateway.media.jitter`, :mod:`~gateway.media.dtmf`).  It is driven by
the shared :class:`~gateway.media.clock.MediaClock`: on every tick it hands
one received frame to ``on_audio`` and sends one packet.

* Symmetric RTP (RFC 4961; "latching"): packets go to the SDP address until a
  valid RTP packet arrives from elsewhere, then to that source.  A latched
  session moves only after :data:`RELATCH_PACKETS` consecutive packets from a
  new source (NAT rebinding); stray packets and non-RTP are dropped.
* Send side: PCM from :meth:`RtpSession.write_audio` in a queue bounded to
  :data:`MAX_QUEUE_MS`; when it is empty, silence is sent so NAT bindings and
  the peer's RTP timeout stay alive (comfort silence, e.g. on hold).
* RFC 4733 events replace the audio packets of their ticks; the audio
  timestamp keeps running, so the stream stays consistent.
* The RTCP port is bound and drained so peers get no ICMP errors; RTCP is
  not interpreted.
"""

from __future__ import annotations

import asyncio
import logging
import secrets
import struct
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field, replace

from gateway.errors import RtpError
from gateway.media.clock import MediaClock
from gateway.media.dtmf import DtmfReceiver, DtmfSender, TelephoneEvent, digit_to_event
from gateway.media.g711 import PCMA, PCMU, G711Codec
from gateway.media.jitter import JitterBuffer, JitterStats
from gateway.media.pcm import FRAME_BYTES, SAMPLES_PER_MS, bytes_for_ms
from gateway.media.ports import PortAllocator
from gateway.media.rtp import RtpPacket, is_rtcp

__all__ = [
    "DIRECTIONS",
    "MAX_QUEUE_MS",
    "RELATCH_PACKETS",
    "MediaParams",
    "RtpSession",
    "SessionStats",
]

log = logging.getLogger(__name__)

DIRECTIONS = ("sendrecv", "sendonly", "recvonly", "inactive")
RELATCH_PACKETS = 3  # consecutive packets from a new source before following it
PT_CN = 13  # comfort noise (RFC 3389): proves the peer alive; played as silence
MAX_QUEUE_MS = 200  # send queue bound: older audio is dropped, latency never grows
DTMF_GAP_TICKS = 2  # audio packets between two queued key presses
_HEADER = struct.Struct("!BBHII")

Address = tuple[str, int]


@dataclass
class MediaParams:
    """What the offer/answer settled for this stream (RFC 3264).

    ``direction`` is OUR direction: ``sendonly`` means we send and do not
    expect media (we hold the peer), ``recvonly`` that we only listen.
    """

    remote: Address | None
    codec: str = "PCMU"
    payload_type: int = 0
    dtmf_payload_type: int | None = None
    ptime: int = 20
    direction: str = "sendrecv"

    def __post_init__(self) -> None:
        if self.direction not in DIRECTIONS:
            raise ValueError(f"direction {self.direction!r} is not one of {', '.join(DIRECTIONS)}")
        if self.ptime <= 0 or self.ptime % 10:
            raise ValueError(f"ptime {self.ptime} ms is not a positive multiple of 10 ms")
        G711Codec(self.codec, self.payload_type)  # validates both

    @property
    def sends(self) -> bool:
        return self.direction in ("sendrecv", "sendonly")

    @property
    def receives(self) -> bool:
        return self.direction in ("sendrecv", "recvonly")


@dataclass
class SessionStats:
    """Counters of one session (a snapshot: :attr:`RtpSession.stats` copies)."""

    packets_sent: int = 0
    packets_received: int = 0  # valid RTP from the latched source
    dtmf_sent: int = 0  # key presses
    dtmf_received: int = 0
    malformed: int = 0  # not RTP, or an RTP/event payload error
    rtcp: int = 0  # RTCP on the RTP port (rtcp-mux peers), ignored
    stray: int = 0  # valid RTP from a source we do not follow, or wrong PT
    relatches: int = 0  # the first latch and every move
    queue_dropped_ms: int = 0  # audio dropped from a full send queue
    timeouts: int = 0
    ssrc_changes: int = 0
    remote: Address | None = None  # where packets are sent now
    latched: bool = False
    jitter: JitterStats = field(default_factory=JitterStats)


class _RtcpSink(asyncio.DatagramProtocol):
    """Binds the RTCP port and discards what arrives."""

    def datagram_received(self, data: bytes, addr: Address) -> None:
        pass

    def error_received(self, exc: Exception) -> None:
        pass


class RtpSession(asyncio.DatagramProtocol):
    """An RTP endpoint for one call leg.

    Callbacks are attributes, set by the owner (all optional):

    * ``on_audio(pcm)``: one ``ptime`` frame of s16le PCM per tick while our
      direction receives (silence until audio has arrived);
    * ``on_dtmf(digit, duration_ms)``: once per RFC 4733 key press;
    * ``on_timeout()``: no RTP for ``timeout`` seconds while the peer should
      be sending (suspended while we are ``sendonly``/``inactive``; 0 = off).

    Example::

        session = await RtpSession.open("192.0.2.10", ports, clock)
        session.on_audio = bridge.to_telegram
        session.configure(MediaParams(("192.0.2.99", 4000), "PCMA", 8, 101))
        session.write_audio(pcm_20ms)
        session.send_dtmf("5")
        session.close()
    """

    def __init__(
        self,
        local_ip: str,
        ports: PortAllocator,
        clock: MediaClock,
        *,
        timeout: float = 30.0,
        jitter_ms: int = 60,
    ) -> None:
        self.on_audio: Callable[[bytes], None] | None = None
        self.on_dtmf: Callable[[str, int], None] | None = None
        self.on_timeout: Callable[[], None] | None = None
        self.timeout = timeout
        self._local_ip = local_ip
        self._ports = ports
        self._clock = clock
        self._loop = asyncio.get_running_loop()
        self._transport: asyncio.DatagramTransport | None = None
        self._rtcp_transport: asyncio.DatagramTransport | None = None
        self._port = 0
        self._closed = False
        self._subscribed = False
        self._params: MediaParams | None = None
        self._codec: G711Codec = PCMU
        self._decoders: dict[int, G711Codec] = {}
        self._stats = SessionStats()
        # RFC 3550 §5.1: random SSRC, initial sequence number and timestamp
        self._ssrc = secrets.randbits(32)
        self._seq = secrets.randbits(16)
        self._ts = secrets.randbits(32)
        self._first_packet = True
        self._queue = bytearray()
        self._silence_payload = b""
        # receive side
        self._jitter = JitterBuffer(target_ms=jitter_ms)
        self._dtmf_rx = DtmfReceiver()
        self._peer_ssrc: int | None = None
        self._last_rx = 0.0
        self._timed_out = False
        self._first_audio_at: float | None = None  # arrival of the packet that started playout
        # latching
        self._sdp_remote: Address | None = None
        self._send_to: Address | None = None
        self._latched = False
        self._candidate: Address | None = None
        self._candidate_count = 0
        # DTMF send side
        self._dtmf_pending: deque[tuple[str, int]] = deque()
        self._dtmf_packets: deque[RtpPacket] = deque()
        self._dtmf_gap = 0

    # ---- lifecycle -------------------------------------------------------

    @classmethod
    async def open(
        cls,
        local_ip: str,
        ports: PortAllocator,
        clock: MediaClock,
        *,
        timeout: float = 30.0,  # noqa: ASYNC109 - the RTP inactivity timeout, not a deadline
        jitter_ms: int = 60,
    ) -> RtpSession:
        """Bind an RTP/RTCP port pair on ``local_ip`` and return the session.

        Raises:
            OSError: no free port pair.
        """
        self = cls(local_ip, ports, clock, timeout=timeout, jitter_ms=jitter_ms)
        pair = ports.allocate(local_ip)
        self._port = pair.port
        try:
            transport, _ = await self._loop.create_datagram_endpoint(lambda: self, sock=pair.rtp)
            self._transport = transport
            rtcp, _ = await self._loop.create_datagram_endpoint(_RtcpSink, sock=pair.rtcp)
            self._rtcp_transport = rtcp
        except BaseException:
            pair.rtp.close()
            pair.rtcp.close()
            self.close()
            raise
        log.debug("rtp: session open on %s:%d", local_ip, pair.port)
        return self

    @property
    def local_address(self) -> Address:
        return (self._local_ip, self._port)

    @property
    def params(self) -> MediaParams | None:
        return self._params

    @property
    def closed(self) -> bool:
        return self._closed

    def configure(self, params: MediaParams) -> None:
        """Apply (or change, on re-INVITE) the negotiated parameters.

        SSRC, sequence and timestamp continue; a new remote address undoes
        the latch; a direction that starts receiving restarts the timeout.
        """
        if self._closed:
            raise RuntimeError("RTP session is closed")
        old = self._params
        now = self._loop.time()
        self._params = replace(params)
        self._codec = G711Codec(params.codec, params.payload_type)
        # RFC 3264 §5.1: the peer may switch between answered codecs, and
        # the static G.711 types are unambiguous, so decode both.
        self._decoders = {PCMU.payload_type: PCMU, PCMA.payload_type: PCMA}
        self._decoders[params.payload_type] = self._codec
        samples = params.ptime * SAMPLES_PER_MS
        self._silence_payload = bytes([self._codec.silence_code]) * samples
        self._jitter.ptime = params.ptime
        if old is None or params.remote != self._sdp_remote:
            self._sdp_remote = params.remote
            self._send_to = params.remote
            self._latched = False
            self._candidate = None
        if not params.sends:
            self._queue.clear()
            self._dtmf_pending.clear()
            self._dtmf_packets.clear()
        if params.receives and (old is None or not old.receives):
            self._last_rx = now
            self._timed_out = False
        if not self._subscribed:
            self._clock.subscribe(self._on_tick)
            self._subscribed = True
        log.debug("rtp %d: configured %s", self._port, params)

    def close(self) -> None:
        """Stop sending and receiving and release the port; idempotent."""
        if self._closed:
            return
        self._closed = True
        if self._subscribed:
            self._clock.unsubscribe(self._on_tick)
            self._subscribed = False
        self.on_audio = self.on_dtmf = self.on_timeout = None
        for transport in (self._transport, self._rtcp_transport):
            if transport is not None:
                transport.close()
        self._transport = self._rtcp_transport = None
        if self._port:
            self._ports.release(self._port)
        log.debug("rtp %d: closed", self._port)

    @property
    def stats(self) -> SessionStats:
        s = replace(self._stats)
        s.remote = self._send_to
        s.latched = self._latched
        s.jitter = replace(self._jitter.stats)
        return s

    # ---- send side -------------------------------------------------------

    def write_audio(self, pcm: bytes) -> None:
        """Queue s16le PCM (a multiple of 10 ms) to be sent one ptime per tick.

        Raises:
            ValueError: not a whole number of 10 ms frames.
        """
        if len(pcm) % FRAME_BYTES:
            raise ValueError(f"PCM of {len(pcm)} bytes is not a whole number of 10 ms frames")
        params = self._params
        if self._closed or params is None or not params.sends:
            return
        queue = self._queue
        queue += pcm
        excess = len(queue) - bytes_for_ms(MAX_QUEUE_MS)
        if excess > 0:
            del queue[:excess]
            self._stats.queue_dropped_ms += excess // bytes_for_ms(1)

    def send_dtmf(self, digit: str, duration_ms: int = 100) -> bool:
        """Queue an RFC 4733 key press; False if the peer did not negotiate telephone-event
        or we may not send.

        Raises:
            ValueError: not a DTMF digit, or a duration that is not positive.
        """
        digit_to_event(digit)
        if duration_ms <= 0:
            raise ValueError(f"DTMF duration {duration_ms} ms is not positive")
        params = self._params
        if self._closed or params is None or params.dtmf_payload_type is None or not params.sends:
            return False
        self._dtmf_pending.append((digit, duration_ms))
        return True

    # ---- the tick ----------------------------------------------------------

    def _on_tick(self, now: float) -> None:
        params = self._params
        if params is None or self._closed:
            return
        if params.receives:
            self._tick_receive(now, params)
        if self._closed:
            return  # a callback closed us
        if params.sends:
            self._tick_send(params)

    def _tick_receive(self, now: float, params: MediaParams) -> None:
        if self._first_audio_at is not None:
            # The first pop should come within one ptime of the first packet;
            # any later is a missed tick, not network jitter: don't keep it.
            late_ms = int((now - self._first_audio_at) * 1000) - params.ptime
            self._first_audio_at = None
            if late_ms >= 10:
                self._jitter.skip_prefill(late_ms)
        frame = self._jitter.pop()
        if self.on_audio is not None:
            try:
                self.on_audio(frame)
            except Exception:
                log.exception("rtp %d: on_audio failed", self._port)
        for digit in self._dtmf_rx.poll(now):
            self._report_dtmf(digit.digit, digit.duration_ms)
        if self.timeout > 0 and not self._timed_out and now - self._last_rx >= self.timeout:
            self._timed_out = True
            self._stats.timeouts += 1
            log.info("rtp %d: no RTP for %.1f s", self._port, now - self._last_rx)
            if self.on_timeout is not None:
                try:
                    self.on_timeout()
                except Exception:
                    log.exception("rtp %d: on_timeout failed", self._port)

    def _tick_send(self, params: MediaParams) -> None:
        size = bytes_for_ms(params.ptime)
        queue = self._queue
        pcm = bytes(queue[:size])
        del queue[:size]
        step = params.ptime * SAMPLES_PER_MS
        packet = self._next_dtmf_packet(params)
        if packet is not None:
            data = bytes(packet)  # the audio of this tick is dropped: the event replaces it
            self._seq = (packet.sequence + 1) & 0xFFFF
        else:
            if not pcm:
                payload = self._silence_payload
            else:
                if len(pcm) < size:
                    pcm += bytes(size - len(pcm))
                payload = self._codec.encode(pcm)
            marker = 0x80 if self._first_packet else 0
            self._first_packet = False
            data = (
                _HEADER.pack(0x80, marker | params.payload_type, self._seq, self._ts, self._ssrc)
                + payload
            )
            self._seq = (self._seq + 1) & 0xFFFF
        self._ts = (self._ts + step) & 0xFFFFFFFF
        self._send(data)

    def _next_dtmf_packet(self, params: MediaParams) -> RtpPacket | None:
        if not self._dtmf_packets:
            if self._dtmf_gap > 0:
                self._dtmf_gap -= 1
                return None
            if not self._dtmf_pending or params.dtmf_payload_type is None:
                return None
            digit, duration = self._dtmf_pending.popleft()
            sender = DtmfSender(params.dtmf_payload_type, self._ssrc, ptime=params.ptime)
            self._dtmf_packets.extend(sender.packets(digit, duration, self._ts, self._seq))
            self._stats.dtmf_sent += 1
            log.debug("rtp %d: sending DTMF %s for %d ms", self._port, digit, duration)
        packet = self._dtmf_packets.popleft()
        if not self._dtmf_packets:
            self._dtmf_gap = DTMF_GAP_TICKS
        return packet

    def _send(self, data: bytes) -> None:
        if self._send_to is None or self._transport is None:
            return
        try:
            self._transport.sendto(data, self._send_to)
        except OSError as exc:  # e.g. an unreachable address; the next tick retries
            log.debug("rtp %d: send to %s failed: %s", self._port, self._send_to, exc)
            return
        self._stats.packets_sent += 1

    # ---- receive side --------------------------------------------------------

    def datagram_received(self, data: bytes, addr: Address) -> None:
        try:
            self._receive(data, addr)
        except Exception:
            log.exception("rtp %d: dropped a datagram from %s", self._port, addr)

    def error_received(self, exc: Exception) -> None:
        # ICMP errors from an earlier sendto (peer not listening yet): harmless
        if log.isEnabledFor(logging.DEBUG):
            log.debug("rtp %d: socket error %s", self._port, exc)

    def _receive(self, data: bytes, addr: Address) -> None:
        params = self._params
        if params is None or self._closed:
            return
        addr = (addr[0], addr[1])  # IPv6 sources carry flowinfo and scope id
        debug = log.isEnabledFor(logging.DEBUG)
        if is_rtcp(data):
            self._stats.rtcp += 1
            return
        try:
            packet = RtpPacket.parse(data)
        except RtpError as exc:
            self._stats.malformed += 1
            if debug:
                log.debug("rtp %d: not RTP from %s: %s", self._port, addr, exc)
            return
        pt = packet.payload_type
        is_dtmf = pt == params.dtmf_payload_type
        if not is_dtmf and pt not in self._decoders and pt != PT_CN:
            self._stats.stray += 1
            if debug:
                log.debug("rtp %d: unexpected payload type %d from %s", self._port, pt, addr)
            return
        if not self._accept_source(addr):
            self._stats.stray += 1
            if debug:
                log.debug("rtp %d: ignored packet from %s", self._port, addr)
            return
        now = self._loop.time()
        self._stats.packets_received += 1
        self._last_rx = now
        self._timed_out = False
        if packet.ssrc != self._peer_ssrc:
            if self._peer_ssrc is not None:
                self._stats.ssrc_changes += 1
                log.info("rtp %d: peer SSRC changed to %08x", self._port, packet.ssrc)
                self._jitter.reset()
                self._dtmf_rx.reset()
            self._peer_ssrc = packet.ssrc
        if debug:
            log.debug(
                "rtp %d: rx pt=%d seq=%d ts=%d len=%d from %s",
                self._port,
                pt,
                packet.sequence,
                packet.timestamp,
                len(packet.payload),
                addr,
            )
        if not params.receives:
            return
        if is_dtmf:
            try:
                event = TelephoneEvent.parse(packet.payload)
            except RtpError as exc:
                self._stats.malformed += 1
                if debug:
                    log.debug("rtp %d: bad telephone-event: %s", self._port, exc)
                return
            for digit in self._dtmf_rx.feed(event, packet.timestamp, packet.marker, now):
                self._report_dtmf(digit.digit, digit.duration_ms)
            return
        codec = self._decoders.get(pt)
        if codec is None:
            return  # comfort noise: the jitter buffer conceals, then plays silence
        pcm = codec.decode(packet.payload)
        if not self._jitter.started:
            self._first_audio_at = now
        self._jitter.put(packet.sequence, packet.timestamp, pcm, ssrc=packet.ssrc)

    def _accept_source(self, addr: Address) -> bool:
        """Symmetric RTP: follow the peer's real source, but not strays."""
        if addr == self._send_to:
            self._latched = True
            self._candidate = None
            return True
        if not self._latched:
            self._latch(addr, "latched")
            return True
        if addr == self._candidate:
            self._candidate_count += 1
        else:
            self._candidate = addr
            self._candidate_count = 1
        if self._candidate_count >= RELATCH_PACKETS:
            self._latch(addr, "re-latched")
            return True
        return False

    def _latch(self, addr: Address, how: str) -> None:
        log.info(
            "rtp %d: %s to %s:%d (SDP said %s)", self._port, how, addr[0], addr[1], self._sdp_remote
        )
        self._send_to = addr
        self._latched = True
        self._candidate = None
        self._stats.relatches += 1

    def _report_dtmf(self, digit: str, duration_ms: int) -> None:
        self._stats.dtmf_received += 1
        log.debug("rtp %d: DTMF %s %d ms", self._port, digit, duration_ms)
        if self.on_dtmf is not None:
            try:
                self.on_dtmf(digit, duration_ms)
            except Exception:
                log.exception("rtp %d: on_dtmf failed", self._port)

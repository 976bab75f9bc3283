"""DTMF as RTP telephone-events (RFC 4733 §2.3, §2.5, §3.2).

Sans-IO: :class:`DtmfSender` turns a key press into the RTP packets to send,
one per packet interval, and :class:`DtmfReceiver` turns received events into
key presses, each reported exactly once.  Neither knows the time of day; the
receiver takes ``now`` only to give up on an event whose end packets were all
lost.
"""

from __future__ import annotations

import struct
from collections import deque
from dataclasses import dataclass

from gateway.errors import RtpError
from gateway.media.rtp import RtpPacket, seq_add, ts_add, ts_diff

__all__ = [
    "DTMF_DIGITS",
    "MAX_DURATION",
    "DtmfDigit",
    "DtmfReceiver",
    "DtmfSender",
    "TelephoneEvent",
    "digit_to_event",
    "event_to_digit",
]

DTMF_DIGITS = "0123456789*#ABCD"  # event codes 0..15 (RFC 4733 §3.2, Table 3)
MAX_DURATION = 0xFFFF  # the duration field is 16 bits (§2.5.1.3)
END_REPEATS = 3  # the final packet of an event or segment is sent 3 times (§2.5.1.4)
_EVENT = struct.Struct("!BBH")


@dataclass(frozen=True, slots=True)
class TelephoneEvent:
    """The 4-octet telephone-event payload (RFC 4733 §2.3).

    ``volume`` is the power level in -dBm0 (0..63); ``duration`` is in RTP
    timestamp units since the event's (or segment's) timestamp.
    """

    event: int
    end: bool = False
    volume: int = 10
    duration: int = 0

    @classmethod
    def parse(cls, data: bytes) -> TelephoneEvent:
        """Parse the first 4 octets of a telephone-event payload.

        Raises:
            RtpError: fewer than 4 octets.
        """
        if len(data) < 4:
            raise RtpError(f"telephone-event payload is {len(data)} bytes, needs 4")
        event, flags, duration = _EVENT.unpack_from(data)
        return cls(event, bool(flags & 0x80), flags & 0x3F, duration)

    def __bytes__(self) -> bytes:
        if not 0 <= self.event <= 255:
            raise RtpError(f"telephone-event code {self.event} is outside 0..255")
        if not 0 <= self.volume <= 63:
            raise RtpError(f"telephone-event volume {self.volume} is outside 0..63")
        if not 0 <= self.duration <= MAX_DURATION:
            raise RtpError(f"telephone-event duration {self.duration} is outside 0..65535")
        return _EVENT.pack(self.event, (0x80 if self.end else 0) | self.volume, self.duration)


def digit_to_event(digit: str) -> int:
    """Event code of a DTMF key: ``0``-``9``, ``*``, ``#``, ``A``-``D`` (any case).

    Raises:
        ValueError: not a DTMF key.
    """
    index = DTMF_DIGITS.find(digit.upper()) if len(digit) == 1 else -1
    if index < 0:
        raise ValueError(f"{digit!r} is not a DTMF digit (0-9, *, #, A-D)")
    return index


def event_to_digit(event: int) -> str | None:
    """The DTMF key for an event code, or None for other events (flash, tones...)."""
    return DTMF_DIGITS[event] if 0 <= event < len(DTMF_DIGITS) else None


class DtmfSender:
    """Builds the RTP packets of one key press (RFC 4733 §2.5.1).

    The packets are meant to be sent one per packet interval (``ptime``), in
    place of the audio packets of those intervals:

    * the first carries the marker bit;
    * each update repeats the event's RTP timestamp with the duration so far;
    * the end packet is sent :data:`END_REPEATS` times with the final duration;
    * an event longer than 65535 timestamp units is split into segments
      (§2.5.1.3): the last packet of a segment reports 65535 without the E
      bit, also sent three times, and the next segment takes the timestamp
      where the previous one ended, without the marker bit.

    Sequence numbers are consecutive from ``sequence``; the caller's audio
    clock should advance by ``ptime`` for each packet returned.

    Example::

        sender = DtmfSender(payload_type=101, ssrc=0x1234, ptime=20)
        packets = sender.packets("5", 100, timestamp=8000, sequence=7)
        # durations 160, 320, 480, 640, then 800 with the E bit three times: 7 packets
    """

    def __init__(
        self,
        payload_type: int,
        ssrc: int = 0,
        *,
        ptime: int = 20,
        volume: int = 10,
        clock_rate: int = 8000,
    ) -> None:
        if ptime <= 0:
            raise ValueError(f"ptime {ptime} ms is not positive")
        self.payload_type = payload_type
        self.ssrc = ssrc
        self.ptime = ptime
        self.volume = volume
        self.clock_rate = clock_rate

    @property
    def step(self) -> int:
        """Timestamp units per packet interval."""
        return self.ptime * self.clock_rate // 1000

    def packets(
        self, digit: str, duration_ms: int, timestamp: int, sequence: int = 0
    ) -> list[RtpPacket]:
        """All packets for pressing ``digit`` for ``duration_ms`` from ``timestamp``.

        Raises:
            ValueError: not a DTMF digit, or a duration that is not positive.
        """
        event = digit_to_event(digit)
        if duration_ms <= 0:
            raise ValueError(f"DTMF duration {duration_ms} ms is not positive")
        total = duration_ms * self.clock_rate // 1000
        step = self.step
        out: list[RtpPacket] = []

        def emit(offset: int, end: bool, duration: int) -> None:
            payload = TelephoneEvent(event, end, self.volume, duration)
            out.append(
                RtpPacket(
                    payload_type=self.payload_type,
                    sequence=seq_add(sequence, len(out)),
                    timestamp=ts_add(timestamp, offset),
                    ssrc=self.ssrc,
                    payload=bytes(payload),
                    marker=not out,
                )
            )

        segment = 0  # offset of the current segment from the event's timestamp
        while True:
            elapsed = (len(out) + 1) * step  # the media time covered after this packet
            if elapsed >= total and total - segment <= MAX_DURATION:
                for _ in range(END_REPEATS):
                    emit(segment, True, total - segment)
                return out
            if elapsed - segment >= MAX_DURATION:
                for _ in range(END_REPEATS):
                    emit(segment, False, MAX_DURATION)
                segment += MAX_DURATION
                continue
            emit(segment, False, elapsed - segment)


@dataclass(frozen=True, slots=True)
class DtmfDigit:
    """One key press as reported by :class:`DtmfReceiver`."""

    digit: str
    duration_ms: int
    timestamp: int  # RTP timestamp of the event's start


class _Event:
    """The event being received."""

    __slots__ = ("code", "start", "segment", "segments", "done_before", "duration", "last_seen")

    def __init__(self, code: int, start: int, now: float | None) -> None:
        self.code = code
        self.start = start  # timestamp of the first segment: identifies the event
        self.segment = start  # timestamp of the current segment
        self.segments = [start]
        self.done_before = 0  # duration of the completed segments
        self.duration = 0
        self.last_seen = now


class DtmfReceiver:
    """Reports each key press once from received telephone-events (RFC 4733 §2.5.2).

    An event is identified by its RTP timestamp.  It is reported when its
    first end packet arrives (retransmitted ends are ignored), when an event
    with another timestamp starts before it ended (its ends were lost), or by
    :meth:`poll` after ``end_timeout`` seconds without news.  A lost start
    packet or an event seen only through its end packets still counts once.
    Later segments of a long event (§2.5.1.3) add to its duration.  Events
    other than the 16 DTMF keys are tracked but not reported.

    Example::

        rx = DtmfReceiver()
        rx.feed(TelephoneEvent(5, duration=160), 8000, marker=True)  # -> []
        rx.feed(TelephoneEvent(5, True, duration=800), 8000, marker=False)
        # -> [DtmfDigit("5", 100, 8000)]
    """

    def __init__(self, *, clock_rate: int = 8000, end_timeout: float = 0.25) -> None:
        self.clock_rate = clock_rate
        self.end_timeout = end_timeout
        self._current: _Event | None = None
        # segment timestamps of reported events, to drop their retransmissions
        self._finished: deque[int] = deque(maxlen=32)

    def reset(self) -> None:
        """Forget everything (new SSRC: a new timestamp space)."""
        self._current = None
        self._finished.clear()

    def feed(
        self, event: TelephoneEvent, timestamp: int, marker: bool, now: float | None = None
    ) -> list[DtmfDigit]:
        """Take one received event; return the key presses it completes (0, 1 or 2)."""
        out: list[DtmfDigit] = []
        current = self._current
        if current is not None and event.event == current.code:
            if timestamp == current.segment:
                current.duration = max(current.duration, event.duration)
                current.last_seen = now
                if event.end:
                    self._finish(current, out)
                return out
            if timestamp in current.segments:
                return out  # retransmitted end of an earlier segment
            if (
                not marker
                and current.duration == MAX_DURATION
                and timestamp == ts_add(current.segment, MAX_DURATION)
            ):  # the next segment starts where the current one ended
                current.done_before += MAX_DURATION
                current.segment = timestamp
                current.segments.append(timestamp)
                current.duration = event.duration
                current.last_seen = now
                if event.end:
                    self._finish(current, out)
                return out
        if timestamp in self._finished or self._is_stale(timestamp):
            return out  # a retransmitted end or a late update of a reported event
        if current is not None:
            self._finish(current, out)  # its end packets were lost
        current = self._current = _Event(event.event, timestamp, now)
        current.duration = event.duration
        if event.end:
            self._finish(current, out)
        return out

    def poll(self, now: float) -> list[DtmfDigit]:
        """Report the current event if no packet came for ``end_timeout`` seconds."""
        out: list[DtmfDigit] = []
        current = self._current
        if current is not None and current.last_seen is not None:
            if now - current.last_seen >= self.end_timeout:
                self._finish(current, out)
        return out

    def _is_stale(self, timestamp: int) -> bool:
        """Older than the last reported event, but not so old that the peer restarted."""
        if not self._finished:
            return False
        age = -ts_diff(timestamp, self._finished[-1])
        return 0 < age <= 10 * self.clock_rate

    def _finish(self, current: _Event, out: list[DtmfDigit]) -> None:
        self._current = None
        self._finished.extend(current.segments)
        digit = event_to_digit(current.code)
        if digit is not None:
            total = current.done_before + current.duration
            out.append(DtmfDigit(digit, total * 1000 // self.clock_rate, current.start))

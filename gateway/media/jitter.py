"""Receive-side jitter buffer for 8 kHz PCM (RFC 3550 §5.1, §6.4.1; RFC 3551 §4.1).

Sans-IO: :meth:`JitterBuffer.put` takes decoded packets in whatever order
they arrive, :meth:`JitterBuffer.pop` is called once per packet interval and
returns exactly one ``ptime`` frame.  Audio is kept in 10 ms sub-frames keyed
by RTP timestamp, so the peer's packet size need not match ours.

Playout starts ``target_ms`` behind the first packet.  Audio that is in
place when its turn comes is returned unchanged; everything else is
concealed by repeating the last frame with a fade to silence (simple PLC):

* a hole with later audio already buffered is a *loss*: conceal and move on;
* an empty buffer is an *underrun*: conceal and wait (the packet is late, not
  lost), which adds one frame of delay;
* delay beyond ``target_ms`` is given back: at once down to the target when
  it exceeds ``max_ms`` (*overflow*), or 10 ms at a time when the buffer held
  a whole spare packet throughout the last second (clock drift, an earlier
  underrun);
* a timestamp jump or a new SSRC restarts the buffer.
"""

from __future__ import annotations

import sys
from array import array
from collections import deque
from dataclasses import dataclass

from gateway.media.pcm import FRAME_BYTES, FRAME_MS, SAMPLES_PER_MS
from gateway.media.rtp import seq_newer, ts_add, ts_diff

__all__ = ["JitterBuffer", "JitterStats"]

_SUB = FRAME_MS * SAMPLES_PER_MS  # timestamp units per 10 ms sub-frame
_SILENCE = bytes(FRAME_BYTES)
_FADE_FRAMES = 6  # sub-frames from the last good audio to silence (60 ms)
_SHRINK_WINDOW = 50  # pops between checks for spare delay (1 s at 20 ms)
_JUMP_MS = 1000  # a packet this far ahead of playout, or behind it with a
# newer sequence number, means the sender's timeline moved: restart
_SEEN = 256  # sequence numbers remembered for duplicate detection


@dataclass(slots=True)
class JitterStats:
    """Counters since creation (``depth_ms`` is current)."""

    received: int = 0  # put() calls
    lost: int = 0  # frames concealed because their audio never came
    late: int = 0  # packets dropped because their playout time had passed
    duplicates: int = 0
    underruns: int = 0  # frames concealed because the buffer was empty
    dropped: int = 0  # buffered sub-frames discarded to reduce delay
    resets: int = 0  # timeline restarts (timestamp jump, new SSRC)
    depth_ms: int = 0


class JitterBuffer:
    """Reorders and paces received audio; see the module docstring.

    Example::

        jb = JitterBuffer(target_ms=60, ptime=20)
        jb.put(sequence=1, timestamp=160, pcm=frame_20ms)
        out = jb.pop()   # 20 ms of silence: playout starts 60 ms behind
    """

    def __init__(self, target_ms: int = 60, ptime: int = 20, max_ms: int | None = None) -> None:
        if target_ms < 0 or target_ms % FRAME_MS:
            raise ValueError(f"jitter target {target_ms} ms is not a multiple of {FRAME_MS} ms")
        if ptime <= 0 or ptime % FRAME_MS:
            raise ValueError(f"ptime {ptime} ms is not a positive multiple of {FRAME_MS} ms")
        self.target_ms = target_ms
        self.ptime = ptime
        self.max_ms = max_ms if max_ms is not None else target_ms + 100
        self.stats = JitterStats()
        self._store: dict[int, bytes] = {}  # sub-frame timestamp -> 160 bytes
        self._started = False
        self._ssrc: int | None = None
        self._play = 0  # timestamp of the next sample to play
        self._first = 0  # timestamp of the first packet: before it is prefill
        self._end = 0  # timestamp just after the newest audio
        self._highest_seq = 0
        self._seen: deque[int] = deque(maxlen=_SEEN)
        self._seen_set: set[int] = set()
        self._last = _SILENCE  # last real sub-frame, the base for concealment
        self._misses = 0  # consecutive concealed sub-frames
        self._pops = 0
        self._min_depth = 0

    # ---- input ---------------------------------------------------------

    def put(self, sequence: int, timestamp: int, pcm: bytes, *, ssrc: int | None = None) -> None:
        """Add one packet's decoded audio (any multiple of 10 ms; a ragged tail is padded)."""
        stats = self.stats
        stats.received += 1
        if ssrc is not None:
            if self._ssrc is not None and ssrc != self._ssrc:
                self.reset()
            self._ssrc = ssrc
        if not pcm:
            return
        if not self._started:
            self._start(timestamp, sequence)
        else:
            if sequence in self._seen_set:
                stats.duplicates += 1
                return
            ahead = ts_diff(timestamp, self._play)
            jump = _JUMP_MS * SAMPLES_PER_MS
            if (
                ahead > jump
                or ahead % _SUB
                or (ahead < -jump and seq_newer(sequence, self._highest_seq))
            ):
                self.reset()
                self._start(timestamp, sequence)
            elif ahead + len(pcm) // 2 <= 0:
                stats.late += 1
                return
        self._remember(sequence)
        if seq_newer(sequence, self._highest_seq):
            self._highest_seq = sequence
        store = self._store
        play = self._play
        for offset in range(0, len(pcm), FRAME_BYTES):
            chunk = pcm[offset : offset + FRAME_BYTES]
            if len(chunk) < FRAME_BYTES:
                chunk += bytes(FRAME_BYTES - len(chunk))
            ts = ts_add(timestamp, offset // 2)
            if ts_diff(ts, play) >= 0:  # the part already played is trimmed
                store[ts] = chunk
        end = ts_add(timestamp, (len(pcm) + FRAME_BYTES - 1) // FRAME_BYTES * _SUB)
        if ts_diff(end, self._end) > 0:
            self._end = end

    def reset(self) -> None:
        """Forget all audio and the timeline; the next packet starts afresh."""
        if self._started:
            self.stats.resets += 1
        self._started = False
        self._store.clear()
        self._seen.clear()
        self._seen_set.clear()
        self._ssrc = None

    # ---- output --------------------------------------------------------

    @property
    def started(self) -> bool:
        """True once a packet has set the playout timeline (until a reset)."""
        return self._started

    @property
    def depth_ms(self) -> int:
        """Audio buffered ahead of playout, holes included."""
        if not self._started:
            return 0
        return max(ts_diff(self._end, self._play), 0) // SAMPLES_PER_MS

    def pop(self) -> bytes:
        """One ``ptime`` frame: buffered audio, prefill silence, or concealment."""
        subs = self.ptime // FRAME_MS
        if not self._started:
            return _SILENCE * subs
        self._trim()
        store = self._store
        if not store and ts_diff(self._play, self._first) >= 0:
            # nothing to play at all: the next packet is late, wait for it
            self.stats.underruns += 1
            self.stats.depth_ms = self.depth_ms
            return b"".join(self._conceal() for _ in range(subs))
        out = []
        missing = False
        play = self._play
        for _ in range(subs):
            chunk = store.pop(play, None)
            if chunk is not None:
                self._last = chunk
                self._misses = 0
            elif ts_diff(play, self._first) < 0:
                chunk = _SILENCE  # prefill before the first packet
            else:
                chunk = self._conceal()
                missing = True
            out.append(chunk)
            play = ts_add(play, _SUB)
        self._play = play
        if missing:
            self.stats.lost += 1
        self.stats.depth_ms = self.depth_ms
        return b"".join(out)

    # ---- internals -----------------------------------------------------

    def _start(self, timestamp: int, sequence: int) -> None:
        self._started = True
        self._play = ts_add(timestamp, -self.target_ms * SAMPLES_PER_MS)
        self._first = timestamp
        self._end = timestamp
        self._highest_seq = sequence
        self._misses = _FADE_FRAMES
        self._pops = 0
        self._min_depth = 1 << 30

    def _remember(self, sequence: int) -> None:
        if len(self._seen) == _SEEN:
            self._seen_set.discard(self._seen[0])
        self._seen.append(sequence)
        self._seen_set.add(sequence)

    def skip_prefill(self, ms: int) -> int:
        """Drop up to ``ms`` of the silence still due before the first packet; never audio.

        The session calls this when its first pop came late (a missed tick
        right after the first packet): that lateness is unplanned delay the
        buffer would otherwise keep, until the shrink rule drops real audio.
        Returns the milliseconds skipped.
        """
        if not self._started:
            return 0
        prefill = ts_diff(self._first, self._play)
        samples = min(ms * SAMPLES_PER_MS, prefill)
        samples -= samples % _SUB
        if samples <= 0:
            return 0
        self._skip(samples)
        return samples // SAMPLES_PER_MS

    def _trim(self) -> None:
        """Give back delay above the target (overflow, or spare for a whole window)."""
        depth = ts_diff(self._end, self._play)
        target = self.target_ms * SAMPLES_PER_MS
        if depth > self.max_ms * SAMPLES_PER_MS:
            self._skip(depth - target)
            self._pops = 0
            self._min_depth = 1 << 30
            return
        self._min_depth = min(self._min_depth, depth)
        self._pops += 1
        if self._pops >= _SHRINK_WINDOW:
            # Depth is read just before a pop and counts the packet that may
            # have arrived a moment earlier, so the steady state reaches
            # target + 2 ptime by tick phase alone; only a packet beyond that,
            # held for the whole window, is spare delay.
            if self._min_depth >= target + 3 * self.ptime * SAMPLES_PER_MS:
                self._skip(_SUB)
            self._pops = 0
            self._min_depth = 1 << 30

    def _skip(self, samples: int) -> None:
        """Advance playout by ``samples`` (whole sub-frames), dropping what is there."""
        samples -= samples % _SUB
        for _ in range(samples // _SUB):
            if self._store.pop(self._play, None) is not None:
                self.stats.dropped += 1
            self._play = ts_add(self._play, _SUB)
        if ts_diff(self._first, self._play) > 0:
            self._first = self._play

    def _conceal(self) -> bytes:
        """The last real sub-frame, fading linearly to silence over _FADE_FRAMES."""
        k = self._misses
        self._misses += 1
        if k >= _FADE_FRAMES:
            return _SILENCE
        samples = array("h", self._last)
        if sys.byteorder != "little":
            samples.byteswap()
        n = len(samples)
        g0 = (_FADE_FRAMES - k) * n  # gain (g0 - i) / (F * n) at sample i
        scale = _FADE_FRAMES * n
        faded = array("h", [s * (g0 - i) // scale for i, s in enumerate(samples)])
        if sys.byteorder != "little":
            faded.byteswap()
        return faded.tobytes()

"""The local handset: an ALSA sound device that rings at home and takes calls like a member.

Not an RFC module.  Plug a USB speakerphone or headset into the box and name it
in ``[handset] device``: ``aplay -L`` lists the names; prefer
``plughw:CARD=<card>,DEV=0`` (or ``sysdefault:CARD=<card>``), which lets ALSA
convert, because most USB devices cannot do 8 kHz mono themselves.  The user
running the gateway needs the ``audio`` group.

When a call arrives on a line the handset is attached to, the ring group
(:mod:`gateway.calls.ringgroup`) asks :meth:`Handset.ring` for a
:class:`HandsetLeg` next to the members' Telegram calls.  While it rings the
device plays a double-ring cadence; the button's short press
(:meth:`Handset.short_press`) answers, and a second one hangs up;
:meth:`Handset.reject` stops it ringing here only, the members ring on.

Audio is 8 kHz s16le mono in 20 ms periods (160 frames) both ways, opened
non-blocking and driven by the process's :class:`~gateway.media.clock.MediaClock`:
every tick writes one period and reads at most :data:`MAX_READS_PER_TICK`
periods, only as many as the caller needs.  So a device that never waits
(ALSA's ``null`` plugin, which tests use) is never spun on, and a real one's
xruns are recovered by pyalsaaudio and cost one period of sound.  No threads.

A device that is missing or cannot be opened is logged once, by name; the
handset then does not ring, and the members are not affected.

Example::

    handset = Handset(config.handset, clock)
    handset.start()                 # probes the device (logs if it cannot be opened)
    leg = handset.ring("+44 20 7946 0000")   # None: busy, or no device
    handset.short_press()           # answers: leg.answered_at is set
    leg.on_audio = sip.write_audio  # the microphone, 20 ms per tick
    sip.on_audio = leg.write_audio  # the speaker
    handset.short_press()           # hangs up: leg.ended, leg.outcome == "answered"
"""

from __future__ import annotations

import logging
import math
import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, Literal, Protocol

from gateway.media.clock import MediaClock
from gateway.media.tones import TonePlan, ToneSource

if TYPE_CHECKING:
    from gateway.config import HandsetSettings

__all__ = ["RING", "Handset", "HandsetLeg", "HandsetState", "Pcm", "open_alsa"]

log = logging.getLogger(__name__)

RATE = 8000
PERIOD_FRAMES = 160  # 20 ms: one media-clock tick
PERIOD_BYTES = PERIOD_FRAMES * 2
BUFFER_PERIODS = 4  # 80 ms of device buffer each way
PREFILL_PERIODS = 2  # silence written at open, so a late tick does not underrun
MAX_READS_PER_TICK = 2  # catch up one period after a late tick; never drain a null device
SPEAKER_QUEUE_BYTES = 5 * PERIOD_BYTES  # 100 ms: older audio is dropped, latency never grows
MIC_QUEUE_BYTES = 3 * PERIOD_BYTES

# A telephone's double ring (BT SIN 350: 0.4 s on, 0.2 off, 0.4 on, 2 s off) on two tones,
# so a small speaker warbles rather than beeps; the level comes from ring_volume.
RING = TonePlan((400.0, 450.0), (400, 200, 400, 2000), 0.0)

HandsetState = Literal["idle", "ringing", "talking"]
Outcome = Literal["answered", "rejected", "no-answer", "cancelled", "failed"]


class Pcm(Protocol):
    """The part of ``alsaaudio.PCM`` the handset uses (tests may pass their own)."""

    def read(self) -> tuple[int, bytes]: ...
    def write(self, data: bytes) -> int: ...
    def close(self) -> None: ...


PcmOpener = Callable[[str, bool], Pcm]  # (device, capture) -> an open PCM; raises OSError


class DeviceError(OSError):
    """The ALSA device cannot be opened or used; the message names it."""


def open_alsa(device: str, capture: bool) -> Pcm:
    """Open *device* for playback or capture: 8 kHz s16le mono, 20 ms periods, non-blocking.

    **Raises** :class:`DeviceError` when ALSA refuses, or when the device would
    run at another rate, format or channel count (a ``hw:`` name; ``plughw:``
    converts).
    """
    import alsaaudio  # pyalsaaudio: loaded only when a handset is configured

    kind = alsaaudio.PCM_CAPTURE if capture else alsaaudio.PCM_PLAYBACK
    way = "capture" if capture else "playback"
    try:
        pcm: Any = alsaaudio.PCM(
            kind,
            mode=alsaaudio.PCM_NONBLOCK,
            device=device,
            rate=RATE,
            channels=1,
            format=alsaaudio.PCM_FORMAT_S16_LE,
            periodsize=PERIOD_FRAMES,
            periods=BUFFER_PERIODS,
        )
    except alsaaudio.ALSAAudioError as exc:
        raise DeviceError(f"ALSA device {device!r} ({way}): {exc}") from None
    info = pcm.info()
    got = (info.get("rate"), info.get("channels"), info.get("format_name"))
    if got != (RATE, 1, "S16_LE"):
        pcm.close()
        raise DeviceError(
            f"ALSA device {device!r} ({way}) runs at {got[0]} Hz, {got[1]} channel(s), {got[2]}"
            f" instead of {RATE} Hz mono S16_LE: name it plughw:CARD=...,DEV=... so ALSA converts"
        )
    return _AlsaPcm(pcm, device)


class _AlsaPcm:
    """pyalsaaudio's PCM with its errors turned into :class:`DeviceError`."""

    def __init__(self, pcm: Any, device: str) -> None:
        self._pcm = pcm
        self._device = device

    def read(self) -> tuple[int, bytes]:
        try:
            frames, data = self._pcm.read()
        except Exception as exc:  # ALSAAudioError: the device went away (unplugged)
            raise DeviceError(f"ALSA device {self._device!r}: {exc}") from None
        return int(frames), bytes(data)

    def write(self, data: bytes) -> int:
        try:
            return int(self._pcm.write(data))
        except Exception as exc:
            raise DeviceError(f"ALSA device {self._device!r}: {exc}") from None

    def close(self) -> None:
        self._pcm.close()


class HandsetLeg:
    """The handset's part in one incoming call, as a ring group sees it.

    The same small surface a member's Telegram call offers: ``answered_at``
    (monotonic time of the press; like ``active_at``), ``ended``, ``outcome``,
    ``on_state`` (called on answer and on end), :meth:`hangup`; for audio
    ``on_audio`` (the microphone: 20 ms of PCM per clock tick while talking)
    and :meth:`write_audio` (the speaker).
    """

    def __init__(self, handset: Handset, caller: str) -> None:
        self.handset = handset
        self.name = handset.name
        self.caller = caller
        self.started_at = time.time()
        self.answered_at: float | None = None
        self.ended = False
        self.outcome: Outcome | None = None
        self.on_state: Callable[[HandsetLeg], None] | None = None
        self.on_audio: Callable[[bytes], None] | None = None

    def __repr__(self) -> str:
        state = "ended" if self.ended else "talking" if self.answered_at else "ringing"
        return f"<HandsetLeg {self.name!r} {self.caller!r} {state} {self.outcome}>"

    def write_audio(self, pcm: bytes) -> None:
        """Queue s16le PCM for the speaker (ignored unless the handset talks on this leg)."""
        self.handset._to_speaker(self, pcm)

    def hangup(self, outcome: Outcome = "cancelled") -> None:
        """Stop ringing, or end the talk; *outcome* is kept if it never was answered."""
        self.handset._end(self, outcome)


class Handset:
    """The local handset: at most one call at a time, ringing or talking."""

    def __init__(
        self, settings: HandsetSettings, clock: MediaClock, open_pcm: PcmOpener = open_alsa
    ) -> None:
        self.settings = settings
        self.device = settings.device
        self.name = settings.name
        self.clock = clock
        self.leg: HandsetLeg | None = None
        # Called after every change of `state` (the LEDs may listen).
        self.on_change: list[Callable[[Handset], None]] = []
        self._open = open_pcm
        self._failed = False  # the device's last open failed (logged once until it works)
        self._playback: Pcm | None = None
        self._capture: Pcm | None = None
        self._ring: ToneSource | None = None
        self._speaker = bytearray()
        self._mic = bytearray()
        self._ticking = False

    # -- what others read -----------------------------------------------------------------

    @property
    def state(self) -> HandsetState:
        leg = self.leg
        if leg is None:
            return "idle"
        return "talking" if leg.answered_at is not None else "ringing"

    @property
    def ringing(self) -> bool:
        return self.state == "ringing"

    def rings_for(self, line: str) -> bool:
        """Whether a call on *line* rings here (``[handset] lines``; empty = every line)."""
        return not self.settings.lines or line in self.settings.lines

    # -- life ------------------------------------------------------------------------------

    def start(self) -> None:
        """Open and close the device once, so a wrong name is logged at start, not at a call."""
        pcm = self._try_open(capture=False)
        if pcm is not None:
            pcm.close()
            log.info("handset %r: ALSA device %r ready", self.name, self.device)

    def stop(self) -> None:
        if self.leg is not None:
            self._end(self.leg, "cancelled")
        self._close()

    # -- the ring group's side -------------------------------------------------------------------

    def ring(self, caller: str) -> HandsetLeg | None:
        """Start ringing for a call from *caller*; None when busy or the device is unusable."""
        if self.leg is not None:
            log.info("handset %r: busy, call from %s not rung here", self.name, caller)
            return None
        playback = self._try_open(capture=False)
        if playback is None:
            return None
        self._playback = playback
        self._prefill(playback)
        self._ring = self._ring_tone()
        self.leg = HandsetLeg(self, caller)
        self._subscribe()
        log.info("handset %r: ringing for %s", self.name, caller)
        self._changed()
        return self.leg

    # -- the button ----------------------------------------------------------------------------

    def short_press(self) -> None:
        """Ringing: answer.  Talking: hang up.  Idle: nothing."""
        leg = self.leg
        if leg is None:
            return
        if leg.answered_at is not None:
            log.info("handset %r: hung up", self.name)
            self._end(leg, "answered")
            return
        self._ring = None
        self._speaker.clear()
        self._mic.clear()
        self._capture = self._try_open(capture=True)  # None: the caller hears silence
        leg.answered_at = time.monotonic()
        log.info("handset %r: answered the call from %s", self.name, leg.caller)
        self._changed()
        self._notify(leg)

    def reject(self) -> None:
        """Ringing: stop ringing here only (the members ring on).  Otherwise nothing."""
        leg = self.leg
        if leg is not None and leg.answered_at is None:
            log.info("handset %r: rejected the call from %s", self.name, leg.caller)
            self._end(leg, "rejected")

    # -- audio, once per media-clock tick --------------------------------------------------------

    def _tick(self, _now: float) -> None:
        leg = self.leg
        if leg is None:
            self._unsubscribe()
            return
        try:
            self._play(leg)
            self._record(leg)
        except OSError as exc:
            log.error("handset %r: %s; the call is ended here", self.name, exc)
            self._failed = True
            self._end(leg, "failed")

    def _play(self, leg: HandsetLeg) -> None:
        playback = self._playback
        if playback is None:
            return
        if self._ring is not None:
            period = self._ring.frame() + self._ring.frame()  # tones come in 10 ms frames
        elif leg.answered_at is not None and len(self._speaker) >= PERIOD_BYTES:
            period = bytes(self._speaker[:PERIOD_BYTES])
            del self._speaker[:PERIOD_BYTES]
        else:
            period = bytes(PERIOD_BYTES)
        # 0 (the device is full: it runs slower than our clock) or -EPIPE (an underrun,
        # recovered by pyalsaaudio): this period is lost either way; the next one plays.
        playback.write(period)

    def _record(self, leg: HandsetLeg) -> None:
        capture = self._capture
        if capture is None or leg.answered_at is None:
            return
        for _ in range(MAX_READS_PER_TICK):
            if len(self._mic) >= PERIOD_BYTES:
                break
            frames, data = capture.read()
            if frames <= 0:  # nothing yet, or an overrun pyalsaaudio recovered
                break
            self._mic += data
        if len(self._mic) > MIC_QUEUE_BYTES:
            del self._mic[: len(self._mic) - MIC_QUEUE_BYTES]
        if len(self._mic) < PERIOD_BYTES:
            return
        period = bytes(self._mic[:PERIOD_BYTES])
        del self._mic[:PERIOD_BYTES]
        if leg.on_audio is not None:
            leg.on_audio(period)

    def _to_speaker(self, leg: HandsetLeg, pcm: bytes) -> None:
        if leg is not self.leg or leg.answered_at is None:
            return
        self._speaker += pcm[: len(pcm) - len(pcm) % 2]
        if len(self._speaker) > SPEAKER_QUEUE_BYTES:
            del self._speaker[: len(self._speaker) - SPEAKER_QUEUE_BYTES]

    def _ring_tone(self) -> ToneSource | None:
        volume = self.settings.ring_volume
        if volume <= 0:
            return None  # a silent ring: only the LEDs tell
        level = RING.level_dbfs + 20 * math.log10(volume / 100)
        return ToneSource(TonePlan(RING.frequencies, RING.cadence_ms, level))

    # -- the device ----------------------------------------------------------------------------

    def _try_open(self, *, capture: bool) -> Pcm | None:
        try:
            pcm = self._open(self.device, capture)
        except OSError as exc:
            if not self._failed:
                log.error(
                    "handset %r: cannot open ALSA device %r: %s; it does not ring until it can"
                    " be opened (check [handset] device against `aplay -L`)",
                    self.name,
                    self.device,
                    exc,
                )
            self._failed = True
            return None
        if self._failed:
            log.info("handset %r: ALSA device %r works again", self.name, self.device)
            self._failed = False
        return pcm

    @staticmethod
    def _prefill(pcm: Pcm) -> None:
        for _ in range(PREFILL_PERIODS):
            pcm.write(bytes(PERIOD_BYTES))

    def _close(self) -> None:
        for pcm in (self._playback, self._capture):
            if pcm is not None:
                try:
                    pcm.close()
                except Exception as exc:  # closing a device that went away
                    log.debug("handset %r: closing the device: %s", self.name, exc)
        self._playback = self._capture = None
        self._ring = None
        self._speaker.clear()
        self._mic.clear()

    def _subscribe(self) -> None:
        if not self._ticking:
            self._ticking = True
            self.clock.subscribe(self._tick)

    def _unsubscribe(self) -> None:
        if self._ticking:
            self._ticking = False
            self.clock.unsubscribe(self._tick)

    # -- the end -------------------------------------------------------------------------------

    def _end(self, leg: HandsetLeg, outcome: Outcome) -> None:
        if leg.ended:
            return
        leg.ended = True
        leg.outcome = "answered" if leg.answered_at is not None else outcome
        leg.on_audio = None
        if leg is self.leg:
            self.leg = None
            self._unsubscribe()
            self._close()
            self._changed()
        self._notify(leg)

    def _notify(self, leg: HandsetLeg) -> None:
        if leg.on_state is not None:
            try:
                leg.on_state(leg)
            except Exception:
                log.exception("handset %r: state listener failed", self.name)

    def _changed(self) -> None:
        for listener in list(self.on_change):
            try:
                listener(self)
            except Exception:
                log.exception("handset %r: change listener failed", self.name)

"""Test tones and their analysis: s16le PCM in exact 10 ms frames, pure Python.

ntgcalls takes external PCM only in exact 10 ms frames (160 bytes at 8 kHz mono),
so the generator always yields whole frames and keeps the phase continuous across
them. The analysis answers what the media tests ask: which frequency arrived
(within 0.1 Hz, to check "within 1 Hz"), at which level (dBFS, to check "within
1 dB"), and how many 10 ms frames carried sound, after any leading silence.

Levels are dBFS relative to a full-scale sine (AES17): a sine with a peak of
`amplitude * 32767` reads `20 * log10(amplitude)`, so the default 0.3 is -10.5 dBFS.
"""

from __future__ import annotations

import array
import asyncio
import cmath
import math
import sys
from collections.abc import Awaitable, Callable, Iterable, Iterator
from dataclasses import dataclass

FRAME_MS = 10
FULL_SCALE = 32767
SILENCE_DBFS = -120.0
# Below this a 10 ms frame counts as silence: well above Opus comfort noise and
# NetEq's fade-out tails, well below any test tone.
VOICED_THRESHOLD_DBFS = -40.0


def frame_bytes(rate: int, channels: int = 1) -> int:
    """Size of one 10 ms s16le frame."""
    return rate * FRAME_MS // 1000 * 2 * channels


def _to_s16le(samples: array.array[int]) -> bytes:
    if sys.byteorder == "big":
        samples = array.array("h", samples)
        samples.byteswap()
    return samples.tobytes()


def _from_s16le(pcm: bytes) -> array.array[int]:
    samples = array.array("h")
    samples.frombytes(pcm[: len(pcm) - len(pcm) % 2])
    if sys.byteorder == "big":
        samples.byteswap()
    return samples


class ToneGenerator:
    """A sine tone cut into exact 10 ms s16le frames, phase-continuous across frames."""

    def __init__(
        self, frequency: float, rate: int = 8000, amplitude: float = 0.3, channels: int = 1
    ) -> None:
        if (rate * FRAME_MS) % 1000:
            raise ValueError(f"{rate} Hz has no whole number of samples in 10 ms")
        if not 0.0 <= amplitude <= 1.0:
            raise ValueError("amplitude is a fraction of full scale, 0..1")
        self.frequency = frequency
        self.rate = rate
        self.amplitude = amplitude
        self.channels = channels
        self._samples_per_frame = rate * FRAME_MS // 1000
        self._n = 0  # samples emitted so far; the phase is computed from it, so no drift

    @property
    def level_dbfs(self) -> float:
        return amplitude_to_dbfs(self.amplitude)

    def frame(self) -> bytes:
        peak = self.amplitude * FULL_SCALE
        step = 2.0 * math.pi * self.frequency / self.rate
        start = self._n
        samples = array.array(
            "h",
            (round(peak * math.sin(step * (start + i))) for i in range(self._samples_per_frame)),
        )
        self._n += self._samples_per_frame
        if self.channels > 1:
            samples = array.array("h", (s for s in samples for _ in range(self.channels)))
        return _to_s16le(samples)

    def frames(self, seconds: float) -> Iterator[bytes]:
        for _ in range(round(seconds * 1000 / FRAME_MS)):
            yield self.frame()


def tone_frames(
    frequency: float, seconds: float, rate: int = 8000, amplitude: float = 0.3, channels: int = 1
) -> list[bytes]:
    """`seconds` of a sine tone as a list of exact 10 ms frames."""
    return list(ToneGenerator(frequency, rate, amplitude, channels).frames(seconds))


def silence_frame(rate: int = 8000, channels: int = 1) -> bytes:
    return bytes(frame_bytes(rate, channels))


@dataclass
class PaceReport:
    """What a paced send did: frames sent, how late the worst one was, wall time used."""

    sent: int
    max_late_s: float
    elapsed_s: float


async def pace_frames(
    frames: Iterable[bytes],
    send: Callable[[bytes], Awaitable[object]],
    *,
    max_frames: int,
    frame_s: float = FRAME_MS / 1000,
    max_late_s: float = 1.0,
) -> PaceReport:
    """Send frames in real time on an absolute schedule (start + n * frame_s).

    Bounded twice: at most `max_frames` frames, and if the loop falls more than
    `max_late_s` behind the schedule it raises instead of bursting the backlog,
    because a burst would not be real-time audio any more.
    """
    loop = asyncio.get_running_loop()
    start = loop.time()
    sent = 0
    worst = 0.0
    for frame in frames:
        if sent >= max_frames:
            break
        due = start + sent * frame_s
        late = loop.time() - due
        if late > max_late_s:
            raise TimeoutError(f"frame pacer fell {late:.3f} s behind at frame {sent}")
        worst = max(worst, late)
        await send(frame)
        sent += 1
        delay = start + sent * frame_s - loop.time()
        if delay > 0:
            await asyncio.sleep(delay)
    return PaceReport(sent=sent, max_late_s=worst, elapsed_s=loop.time() - start)


def amplitude_to_dbfs(amplitude: float) -> float:
    return 20.0 * math.log10(amplitude) if amplitude > 0 else SILENCE_DBFS


def rms_dbfs(samples: array.array[int] | list[int]) -> float:
    """RMS level in dBFS (full-scale sine = 0 dBFS)."""
    if not samples:
        return SILENCE_DBFS
    rms = math.sqrt(sum(s * s for s in samples) / len(samples))
    if rms == 0:
        return SILENCE_DBFS
    return 20.0 * math.log10(rms * math.sqrt(2.0) / FULL_SCALE)


def pcm_dbfs(pcm: bytes) -> float:
    return rms_dbfs(_from_s16le(pcm))


@dataclass
class ToneAnalysis:
    """The result of `analyse`; frequency and level are None when nothing was voiced."""

    frames: int
    voiced_frames: int
    first_voiced_frame: int | None
    frequency_hz: float | None
    level_dbfs: float | None

    @property
    def seconds(self) -> float:
        return self.frames * FRAME_MS / 1000


def analyse(
    pcm: bytes,
    rate: int = 8000,
    channels: int = 1,
    *,
    threshold_dbfs: float = VOICED_THRESHOLD_DBFS,
    settle_ms: int = 100,
    max_analysis_s: float = 4.0,
) -> ToneAnalysis:
    """Frequency, level and voiced-frame count of received s16le PCM.

    Leading and trailing silence are skipped; `settle_ms` more are dropped at each
    end of the sound (jitter-buffer ramp-up and fade-out distort the level). The
    level is the RMS of the voiced frames; the frequency is measured on the
    contiguous stretch from the first to the last voiced frame, at most
    `max_analysis_s` long (taken from its middle) to bound the run time.
    """
    samples = _from_s16le(pcm)
    if channels > 1:
        samples = samples[0::channels]
    per_frame = rate * FRAME_MS // 1000
    total = len(samples) // per_frame
    voiced: list[int] = []
    for i in range(total):
        if rms_dbfs(samples[i * per_frame : (i + 1) * per_frame]) > threshold_dbfs:
            voiced.append(i)
    if not voiced:
        return ToneAnalysis(total, 0, None, None, None)
    settle = settle_ms // FRAME_MS
    first, last = voiced[0], voiced[-1]
    if last - first + 1 > 2 * settle + 10:
        first, last = first + settle, last - settle
    level_samples: array.array[int] = array.array("h")
    for i in voiced:
        if first <= i <= last:
            level_samples.extend(samples[i * per_frame : (i + 1) * per_frame])
    stretch = samples[first * per_frame : (last + 1) * per_frame]
    limit = int(max_analysis_s * rate)
    if len(stretch) > limit:
        skip = (len(stretch) - limit) // 2
        stretch = stretch[skip : skip + limit]
    return ToneAnalysis(
        frames=total,
        voiced_frames=len(voiced),
        first_voiced_frame=voiced[0],
        frequency_hz=dominant_frequency(stretch, rate),
        level_dbfs=rms_dbfs(level_samples),
    )


def dominant_frequency(samples: array.array[int] | list[int], rate: int) -> float | None:
    """The frequency of the strongest spectral peak, to about 0.01 Hz for a clean tone.

    A radix-2 FFT of a Hann-windowed block finds the peak bin; a golden-section
    search of the windowed DTFT magnitude over the whole signal (evaluated with the
    Goertzel recurrence) then places it between bins.
    """
    n = len(samples)
    if n < 64:
        return None
    size = 1 << min(14, (n.bit_length() - 1))  # the largest power of two <= n, at most 16384
    if n > 2 * size:
        # Keep the DTFT main lobe at least one FFT bin wide so the search below
        # starts inside it; a longer signal would not sharpen a clean tone anyway.
        skip = (n - 2 * size) // 2
        samples = samples[skip : skip + 2 * size]
        n = len(samples)
    mean = sum(samples) / n
    xs = [s - mean for s in samples]
    window = [0.5 - 0.5 * math.cos(2.0 * math.pi * i / (n - 1)) for i in range(n)]
    xw = [x * w for x, w in zip(xs, window, strict=True)]

    offset = (n - size) // 2
    block_window = [0.5 - 0.5 * math.cos(2.0 * math.pi * i / (size - 1)) for i in range(size)]
    spectrum = _fft([complex(xs[offset + i] * block_window[i]) for i in range(size)])
    magnitudes = [abs(c) for c in spectrum[1 : size // 2]]
    if max(magnitudes) == 0:
        return None
    peak_bin = magnitudes.index(max(magnitudes)) + 1
    bin_hz = rate / size

    def power(freq: float) -> float:
        return _goertzel_power(xw, freq / rate)

    lo = max(0.0, (peak_bin - 1) * bin_hz)
    hi = min(rate / 2, (peak_bin + 1) * bin_hz)
    return round(_golden_max(power, lo, hi, tolerance=0.005), 3)


def _fft(values: list[complex]) -> list[complex]:
    """In-place-style iterative radix-2 FFT; len(values) must be a power of two."""
    n = len(values)
    out = list(values)
    j = 0
    for i in range(1, n):  # bit-reversal permutation
        bit = n >> 1
        while j & bit:
            j ^= bit
            bit >>= 1
        j |= bit
        if i < j:
            out[i], out[j] = out[j], out[i]
    length = 2
    while length <= n:
        step = cmath.exp(-2j * math.pi / length)
        half = length // 2
        twiddles = [step**k for k in range(half)]
        for start in range(0, n, length):
            for k in range(half):
                a = out[start + k]
                b = out[start + k + half] * twiddles[k]
                out[start + k] = a + b
                out[start + k + half] = a - b
        length <<= 1
    return out


def _goertzel_power(xs: list[float], cycles_per_sample: float) -> float:
    """|DTFT|^2 of xs at one (not necessarily bin-centred) frequency."""
    w = 2.0 * math.pi * cycles_per_sample
    coeff = 2.0 * math.cos(w)
    s1 = s2 = 0.0
    for x in xs:
        s1, s2 = x + coeff * s1 - s2, s1
    return s1 * s1 + s2 * s2 - coeff * s1 * s2


def _golden_max(f: Callable[[float], float], lo: float, hi: float, tolerance: float) -> float:
    """Argmax of a unimodal f on [lo, hi] by golden-section search (bounded: ~40 steps)."""
    ratio = (math.sqrt(5.0) - 1.0) / 2.0
    c = hi - ratio * (hi - lo)
    d = lo + ratio * (hi - lo)
    fc, fd = f(c), f(d)
    for _ in range(60):
        if hi - lo <= tolerance:
            break
        if fc > fd:
            hi, d, fd = d, c, fc
            c = hi - ratio * (hi - lo)
            fc = f(c)
        else:
            lo, c, fc = c, d, fd
            d = lo + ratio * (hi - lo)
            fd = f(d)
    return (lo + hi) / 2.0

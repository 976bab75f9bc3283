"""Signals and their analysis for the bridged-calls bench (``bench/calls.py``).

Not an RFC module.  Everything here works on 8 kHz mono s16 samples (numpy int16):

* **G.711 A-law**, an independent numpy implementation of the classic Sun
  ``g711.c`` tables (ITU-T G.711), for the SIP driver and the PESQ baseline.
  The bench must not measure the gateway with the gateway's own codec.
* **The latency program**: low white noise (RMS 100, -50 dBFS) with a 40 ms
  linear chirp (300 -> 3400 Hz, -6 dBFS, 2 ms raised-cosine edges) once a
  second, the marker of performance-baselines.md §3.  Each burst starts on a
  10 ms boundary, so its send time is the send time of one frame or packet.
* **An artificial voice** in the manner of ITU-T P.50: a glottal pulse train
  (Rosenberg pulses) whose pitch follows an intonation contour, through a
  cascade of time-varying formant resonators that glide between vowel
  targets, with noise fricatives and pauses between talk spurts.  There is no
  speech corpus in the repository and ITU-T's own test signals (P.501 Annex B,
  P.50) may be downloaded from ITU but not, as far as we can tell,
  redistributed.  PESQ on this signal is an indication, not a MOS.
* **Detection**: normalised cross-correlation of a received recording with the
  chirp, and the mapping of a sample index to the time it was played, as in
  the notes: the arrival time of the chunk (frame or packet) that holds the
  sample plus the sample's offset inside it.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

RATE = 8000
FRAME = 80  # samples in 10 ms (one Telegram frame)
PACKET = 160  # samples in 20 ms (one RTP packet)

Samples = npt.NDArray[np.int16]
Floats = npt.NDArray[np.float64]

# ---------------------------------------------------------------------------------------
# G.711 A-law (Sun g711.c)

_SEG_END = (0x1F, 0x3F, 0x7F, 0xFF, 0x1FF, 0x3FF, 0x7FF, 0xFFF)


def _alaw_from_linear(sample: int) -> int:
    value = sample >> 3
    if value >= 0:
        mask = 0xD5
    else:
        mask = 0x55
        value = -value - 1
    seg = next((i for i, end in enumerate(_SEG_END) if value <= end), 8)
    if seg >= 8:
        return 0x7F ^ mask
    code = seg << 4
    code |= (value >> 1) & 0x0F if seg < 2 else (value >> seg) & 0x0F
    return code ^ mask


def _linear_from_alaw(code: int) -> int:
    code ^= 0x55
    t = (code & 0x0F) << 4
    seg = (code & 0x70) >> 4
    if seg == 0:
        t += 8
    elif seg == 1:
        t += 0x108
    else:
        t = (t + 0x108) << (seg - 1)
    return t if code & 0x80 else -t


ALAW_DECODE = np.array([_linear_from_alaw(c) for c in range(256)], dtype=np.int16)
# Indexed by the sample's 16 bits read as unsigned.
ALAW_ENCODE = np.array(
    [_alaw_from_linear(v - 65536 if v >= 32768 else v) for v in range(65536)], dtype=np.uint8
)
ALAW_SILENCE = 0xD5


def alaw_encode(pcm: Samples) -> bytes:
    return bytes(ALAW_ENCODE[pcm.astype(np.int16).view(np.uint16)].tobytes())


def alaw_decode(codes: bytes) -> Samples:
    return ALAW_DECODE[np.frombuffer(codes, dtype=np.uint8)]


def alaw_peak(codes: bytes) -> int:
    """The largest magnitude in a packet of A-law codes (a voiced-frame test)."""
    decoded = ALAW_DECODE[np.frombuffer(codes, dtype=np.uint8)]
    return int(np.abs(decoded.astype(np.int32)).max()) if len(decoded) else 0


# ---------------------------------------------------------------------------------------
# signals


def to_int16(x: Floats) -> Samples:
    return np.clip(np.round(x), -32768, 32767).astype(np.int16)


def chirp(ms: float = 40.0, f0: float = 300.0, f1: float = 3400.0, dbfs: float = -6.0) -> Floats:
    """The latency marker: a linear chirp with 2 ms raised-cosine edges."""
    n = int(RATE * ms / 1000)
    t = np.arange(n) / RATE
    duration = n / RATE
    phase = 2 * np.pi * (f0 * t + (f1 - f0) * t * t / (2 * duration))
    edge = int(RATE * 0.002)
    window = np.ones(n)
    ramp = 0.5 - 0.5 * np.cos(np.pi * np.arange(edge) / edge)
    window[:edge], window[-edge:] = ramp, ramp[::-1]
    return np.asarray(32767 * 10 ** (dbfs / 20) * np.sin(phase) * window, dtype=np.float64)


@dataclass(frozen=True)
class Program:
    """What one end sends in a quality call, sample by sample, and where its parts are."""

    pcm: Samples
    bursts: list[int]  # sample index of each chirp onset
    speech: tuple[int, int] | None  # (start, end) of the speech sample, if this end speaks

    def save(self, path: Path) -> Path:
        path.write_bytes(self.pcm.astype("<i2").tobytes())
        return path


def quality_programs(
    bursts: int, speech: Samples, *, seed: int = 7
) -> tuple[Program, Program, dict[str, float]]:
    """The two ends' programs of a quality call (same length, started at the same time).

    Slot 1: latency bursts both ways (2 s of noise to settle, then one burst a
    second from this end, the other end's half a second later). Slot 2: the
    forward end speaks, the other is silent. Slot 3: the other way round.
    """
    rng = np.random.default_rng(seed)
    settle, gap = 2.0, 1.0
    latency_s = settle + bursts + 1.0
    speech_n = len(speech)
    slot = int(gap * RATE) * 2 + speech_n
    total = int(latency_s * RATE) + 2 * slot
    total += -total % PACKET  # whole packets
    marker = chirp()
    out: list[Program] = []
    for end, offset in ((0, 0.0), (1, 0.5)):
        x = np.zeros(total)
        n_latency = int(latency_s * RATE)
        x[:n_latency] = rng.normal(0.0, 100.0, n_latency)
        onsets = [int((settle + offset + k) * RATE) for k in range(bursts)]
        for onset in onsets:
            x[onset : onset + len(marker)] += marker
        start = n_latency + end * slot + int(gap * RATE)
        x[start : start + speech_n] = speech
        out.append(Program(to_int16(x), onsets, (start, start + speech_n)))
    layout = {"latency_s": latency_s, "slot_s": slot / RATE, "total_s": total / RATE}
    return out[0], out[1], layout


# Vowel targets (F1, F2, F3 in Hz), after Peterson & Barney's averages.
VOWELS = (
    (730, 1090, 2440),
    (270, 2290, 3010),
    (300, 870, 2240),
    (530, 1840, 2480),
    (570, 840, 2410),
    (660, 1720, 2410),
    (490, 1350, 1690),
    (440, 1020, 2240),
)
BANDWIDTHS = (90.0, 110.0, 170.0)


def _rosenberg(phase: Floats, open_q: float = 0.4, close_q: float = 0.16) -> Floats:
    """Glottal flow of a Rosenberg pulse at *phase* (0..1 within each period)."""
    rising = 0.5 - 0.5 * np.cos(np.pi * phase / open_q)
    falling = np.cos(0.5 * np.pi * (phase - open_q) / close_q)
    return np.where(phase < open_q, rising, np.where(phase < open_q + close_q, falling, 0.0))


def _envelope(n: int, attack: int, release: int) -> Floats:
    env = np.ones(n)
    a, r = min(attack, n // 2), min(release, n // 2)
    if a:
        env[:a] = 0.5 - 0.5 * np.cos(np.pi * np.arange(a) / a)
    if r:
        env[-r:] = 0.5 + 0.5 * np.cos(np.pi * np.arange(r) / r)
    return env


def _resonate(x: Floats, freqs: Floats, bandwidth: float) -> Floats:
    """A two-pole resonator (unity gain at 0 Hz) whose frequency varies per sample."""
    r = np.exp(-np.pi * bandwidth / RATE)
    b = (2 * r * np.cos(2 * np.pi * freqs / RATE)).tolist()
    c = -r * r
    gain = (1.0 - np.asarray(b) - c).tolist()
    y = [0.0] * len(x)
    y1 = y2 = 0.0
    for i, v in enumerate(x.tolist()):
        y0 = gain[i] * v + b[i] * y1 + c * y2
        y[i] = y0
        y2, y1 = y1, y0
    return np.asarray(y)


def artificial_voice(seconds: float = 8.0, *, seed: int = 50, dbov: float = -26.0) -> Samples:
    """A P.50-style artificial voice: talk spurts and pauses, at *dbov* active speech level."""
    rng = np.random.default_rng(seed)
    n = int(seconds * RATE)
    voiced = np.zeros(n)  # amplitude of the glottal source
    noise = np.zeros(n)  # amplitude of the fricative noise
    f0 = np.full(n, 120.0)
    formants = [np.full(n, float(f)) for f in VOWELS[0]]
    t = int(0.3 * RATE)  # lead-in silence
    end = n - int(0.3 * RATE)
    while t < end:
        spurt_f0 = rng.uniform(110.0, 210.0)  # a new "talker" pitch per spurt
        syllables = int(rng.integers(2, 6))
        start = t
        for s in range(syllables):
            if rng.random() < 0.4:  # a fricative onset
                m = int(rng.uniform(0.05, 0.12) * RATE)
                if t + m >= end:
                    break
                noise[t : t + m] = rng.uniform(0.15, 0.35) * _envelope(m, 80, 120)
                t += m
            m = int(rng.uniform(0.12, 0.30) * RATE)
            if t + m >= end:
                break
            v1, v2 = VOWELS[rng.integers(len(VOWELS))], VOWELS[rng.integers(len(VOWELS))]
            glide = np.linspace(0.0, 1.0, m)
            for k in range(3):
                formants[k][t : t + m] = v1[k] + (v2[k] - v1[k]) * glide
            accent = 1.15 if s == 0 else rng.uniform(0.95, 1.08)
            voiced[t : t + m] = rng.uniform(0.6, 1.0) * _envelope(m, 160, 240)
            # declination over the spurt, an accent on its first syllable, slow vibrato
            progress = (t - start + np.arange(m)) / (1.4 * RATE)
            f0[t : t + m] = (
                spurt_f0
                * accent
                * (1.0 - 0.18 * np.clip(progress, 0.0, 1.0))
                * (1.0 + 0.015 * np.sin(2 * np.pi * 5.5 * np.arange(m) / RATE))
            )
            t += m + int(rng.uniform(0.0, 0.04) * RATE)  # a stop closure between syllables
        t += int(rng.uniform(0.25, 0.6) * RATE)  # pause between talk spurts
    phase = np.cumsum(f0 / RATE) % 1.0
    flow = _rosenberg(phase)
    source = np.diff(flow, prepend=0.0) * voiced  # lip radiation: the flow's derivative
    x = source
    for k in range(3):
        x = _resonate(x, formants[k], BANDWIDTHS[k])
    hiss = _resonate(rng.normal(0.0, 1.0, n) * noise, np.full(n, 3000.0), 900.0)
    hiss = np.diff(hiss, prepend=0.0)  # tilt the noise up: fricatives are bright
    x = x / (np.abs(x).max() or 1.0) + 0.5 * hiss / (np.abs(hiss).max() or 1.0)
    active = (voiced + noise) > 0.05
    rms = float(np.sqrt(np.mean(x[active] ** 2))) if active.any() else 1.0
    x *= 32768 * 10 ** (dbov / 20) / rms
    return to_int16(x)


def g711_roundtrip(pcm: Samples) -> Samples:
    """The PESQ baseline: A-law encode and decode, nothing else."""
    return alaw_decode(alaw_encode(pcm))


# ---------------------------------------------------------------------------------------
# recordings and send logs


@dataclass
class Recording:
    """What one end received: samples, and per chunk its arrival time and first sample."""

    pcm: Samples
    arrivals: Floats
    starts: npt.NDArray[np.int64]

    @classmethod
    def load(cls, stem: Path) -> Recording:
        meta = json.loads(stem.with_suffix(".json").read_text())
        pcm = np.frombuffer(stem.with_suffix(".s16").read_bytes(), dtype="<i2").astype(np.int16)
        return cls(pcm, np.asarray(meta["arrivals"]), np.asarray(meta["starts"], dtype=np.int64))

    def time_of(self, index: int) -> float:
        """When sample *index* was played: its chunk's arrival plus its offset in the chunk."""
        k = int(np.searchsorted(self.starts, index, side="right")) - 1
        return float(self.arrivals[k] + (index - self.starts[k]) / RATE)

    def index_at(self, at: float) -> int:
        """The first sample of the first chunk that arrived at or after *at*."""
        k = int(np.searchsorted(self.arrivals, at, side="left"))
        return int(self.starts[min(k, len(self.starts) - 1)]) if len(self.starts) else 0


def save_recording(stem: Path, chunks: list[tuple[float, bytes]]) -> Path:
    """Write chunks received as (arrival time, s16le bytes) where :meth:`Recording.load` reads."""
    arrivals, starts, position = [], [], 0
    with stem.with_suffix(".s16").open("wb") as out:
        for at, data in chunks:
            arrivals.append(at)
            starts.append(position)
            out.write(data)
            position += len(data) // 2
    stem.with_suffix(".json").write_text(json.dumps({"arrivals": arrivals, "starts": starts}))
    return stem


def normalised_xcorr(signal: Floats, template: Floats) -> Floats:
    """Pearson-style correlation of *template* with every window of *signal* ('valid' lags)."""
    n = len(template)
    if len(signal) < n:
        return np.zeros(0)
    w = template - template.mean()
    raw = np.correlate(signal, w, mode="valid")
    c = np.concatenate(([0.0], np.cumsum(signal)))
    c2 = np.concatenate(([0.0], np.cumsum(signal * signal)))
    sums = c[n:] - c[:-n]
    energy = c2[n:] - c2[:-n] - sums * sums / n
    denom = np.sqrt(np.maximum(energy, 1e-9)) * np.sqrt(float(np.sum(w * w)))
    return np.asarray(raw / denom, dtype=np.float64)


@dataclass
class Burst:
    sent_at: float
    latency_s: float | None
    peak: float


def burst_latencies(
    send_times: list[float],
    chunk: int,
    onsets: list[int],
    recording: Recording,
    *,
    search_s: float = 0.8,
    min_peak: float = 0.45,
) -> list[Burst]:
    """Find each burst in *recording* within *search_s* after it was sent.

    *send_times* holds the time each chunk of *chunk* samples of the program
    was handed on; an onset is always the first sample of a chunk.
    """
    template = chirp()
    signal = recording.pcm.astype(np.float64)
    out = []
    for onset in onsets:
        k = onset // chunk
        if k >= len(send_times) or onset % chunk:
            out.append(Burst(float("nan"), None, 0.0))
            continue
        sent = send_times[k]
        lo = recording.index_at(sent)
        hi = min(len(signal), recording.index_at(sent + search_s) + len(template))
        corr = normalised_xcorr(signal[lo:hi], template)
        if not len(corr):
            out.append(Burst(sent, None, 0.0))
            continue
        best = int(np.argmax(corr))
        peak = float(corr[best])
        latency = recording.time_of(lo + best) - sent if peak >= min_peak else None
        out.append(Burst(sent, latency, peak))
    return out


def locate(reference: Floats, signal: Floats) -> tuple[int, float]:
    """The lag of *reference* inside *signal* (FFT cross-correlation) and its normalised peak."""
    n = len(signal) + len(reference)
    size = 1 << (n - 1).bit_length()
    spectrum = np.fft.rfft(signal, size) * np.conj(np.fft.rfft(reference, size))
    corr = np.fft.irfft(spectrum, size)[: len(signal) - len(reference) + 1]
    if not len(corr):
        return 0, 0.0
    lag = int(np.argmax(corr))
    window = signal[lag : lag + len(reference)]
    norm = float(np.linalg.norm(window) * np.linalg.norm(reference)) or 1.0
    return lag, float(corr[lag] / norm)


def pesq_nb(reference: Samples, degraded: Samples) -> float:
    """PESQ (ITU-T P.862, narrowband, P.862.1 MOS-LQO) of *degraded* against *reference*."""
    from pesq import pesq  # bench-only dependency: imported where it is used

    return float(pesq(RATE, reference.astype(np.float64), degraded.astype(np.float64), "nb"))


def speech_quality(
    reference: Samples, recording: Recording, sent_from: float, *, margin_s: float = 1.0
) -> dict[str, Any]:
    """PESQ of the speech sample in *recording*, which was sent from time *sent_from* on.

    The sample is located by cross-correlation in the received audio from
    *sent_from* on, cut out at exactly its length and scored.
    """
    lo = recording.index_at(sent_from)
    hi = min(len(recording.pcm), lo + len(reference) + int(margin_s * RATE))
    signal = recording.pcm[lo:hi].astype(np.float64)
    if len(signal) < len(reference):
        return {"pesq": None, "error": f"only {len(signal) / RATE:.1f} s received"}
    lag, peak = locate(reference.astype(np.float64), signal)
    degraded = recording.pcm[lo + lag : lo + lag + len(reference)]
    return {
        "pesq": pesq_nb(reference, degraded),
        "delay_s": recording.time_of(lo + lag) - sent_from,
        "xcorr": peak,
        "error": None,
    }

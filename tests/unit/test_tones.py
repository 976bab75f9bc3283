"""Call progress tones: frequency, level and cadence of what the member hears."""

from __future__ import annotations

import math
import struct

from gateway.media.tones import BUSY, FRAME_BYTES, RINGBACK, RINGBACK_NANP, ToneSource


def samples(pcm: bytes) -> list[int]:
    return [s for (s,) in struct.iter_unpack("<h", pcm)]


def goertzel_power(values: list[int], freq: float, rate: int = 8000) -> float:
    coeff = 2 * math.cos(2 * math.pi * freq / rate)
    s1 = s2 = 0.0
    for v in values:
        s1, s2 = v + coeff * s1 - s2, s1
    return s1 * s1 + s2 * s2 - coeff * s1 * s2


def seconds_of(source: ToneSource, seconds: float) -> list[int]:
    frames = int(seconds * 100)
    return samples(b"".join(source.frame() for _ in range(frames)))


def test_frames_are_ten_milliseconds() -> None:
    assert len(ToneSource(RINGBACK).frame()) == FRAME_BYTES == 160


def test_ringback_is_425_hz_one_second_on_four_off() -> None:
    values = seconds_of(ToneSource(RINGBACK), 5.0)
    on, off = values[:8000], values[8000:40000]
    assert max(abs(v) for v in off) == 0
    assert goertzel_power(on, 425) > 1000 * goertzel_power(on, 600)
    rms = math.sqrt(sum(v * v for v in on) / len(on))
    level = 20 * math.log10(rms * math.sqrt(2) / 32767)
    assert abs(level - RINGBACK.level_dbfs) < 0.5
    # The next cadence starts again at 5 s.
    again = seconds_of(ToneSource(RINGBACK), 5.1)[40000:]
    assert max(abs(v) for v in again) > 1000


def test_busy_cadence_half_second() -> None:
    values = seconds_of(ToneSource(BUSY), 1.0)
    assert max(abs(v) for v in values[:4000]) > 1000
    assert max(abs(v) for v in values[4000:8000]) == 0


def test_dual_tone_has_both_frequencies() -> None:
    values = seconds_of(ToneSource(RINGBACK_NANP), 1.0)
    for freq in (440, 480):
        assert goertzel_power(values, freq) > 100 * goertzel_power(values, 1000)


def test_phase_continuous_across_frames() -> None:
    source = ToneSource(BUSY)
    values = samples(source.frame() + source.frame())
    jumps = [abs(values[i + 1] - values[i]) for i in range(len(values) - 1)]
    # A 425 Hz sine at this level moves at most ~2 * pi * 425 / 8000 * amplitude per sample.
    assert max(jumps) < 0.34 * 32767 * 10 ** (BUSY.level_dbfs / 20) + 2

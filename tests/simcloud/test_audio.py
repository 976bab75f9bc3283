"""simcloud.audio: tone frames, pacing and analysis on synthetic signals (no network)."""

from __future__ import annotations

import array
import asyncio
import math
import random
import time

import pytest

from simcloud.audio import (
    ToneGenerator,
    analyse,
    dominant_frequency,
    frame_bytes,
    pace_frames,
    pcm_dbfs,
    silence_frame,
    tone_frames,
)


def _pcm(samples: list[int]) -> bytes:
    return array.array("h", samples).tobytes()


@pytest.mark.parametrize(
    ("rate", "channels", "size"), [(8000, 1, 160), (16000, 1, 320), (48000, 2, 1920)]
)
def test_frames_are_exactly_10_ms(rate: int, channels: int, size: int) -> None:
    frames = tone_frames(440, 0.5, rate=rate, channels=channels)
    assert len(frames) == 50
    assert {len(f) for f in frames} == {size} == {frame_bytes(rate, channels)}
    assert silence_frame(rate, channels) == bytes(size)


def test_phase_continues_across_frames() -> None:
    pcm = b"".join(tone_frames(440, 1.0))
    reference = [round(0.3 * 32767 * math.sin(2 * math.pi * 440 * n / 8000)) for n in range(8000)]
    assert pcm == _pcm(reference)


def test_rate_without_whole_10_ms_is_refused() -> None:
    with pytest.raises(ValueError):
        ToneGenerator(440, rate=11025)


@pytest.mark.parametrize("freq", [440.0, 880.0, 1000.0, 440.37, 3333.3])
def test_frequency_of_a_clean_tone(freq: float) -> None:
    a = analyse(b"".join(tone_frames(freq, 2.0)), 8000)
    assert a.frequency_hz is not None
    assert abs(a.frequency_hz - freq) < 0.05
    assert a.level_dbfs == pytest.approx(20 * math.log10(0.3), abs=0.05)
    assert a.voiced_frames == 200


def test_frequency_resolution_tells_apart_a_tenth_of_a_hertz() -> None:
    low = dominant_frequency(array.array("h", b"".join(tone_frames(440.0, 2.0))), 8000)
    high = dominant_frequency(array.array("h", b"".join(tone_frames(440.1, 2.0))), 8000)
    assert low is not None and high is not None
    assert 0.07 < high - low < 0.13


def test_frequency_with_noise_and_a_weaker_second_tone() -> None:
    rng = random.Random(7)
    samples = [
        round(
            8000 * math.sin(2 * math.pi * 880 * n / 8000)
            + 2000 * math.sin(2 * math.pi * 1300 * n / 8000)
            + rng.gauss(0, 800)
        )
        for n in range(16000)
    ]
    a = analyse(_pcm(samples), 8000)
    assert a.frequency_hz is not None and abs(a.frequency_hz - 880) < 0.2


def test_stereo_48k() -> None:
    a = analyse(b"".join(tone_frames(440, 1.0, rate=48000, channels=2)), 48000, channels=2)
    assert a.frequency_hz is not None and abs(a.frequency_hz - 440) < 0.05
    assert a.voiced_frames == 100


def test_leading_silence_is_skipped() -> None:
    pcm = silence_frame() * 150 + b"".join(tone_frames(880, 1.5, amplitude=0.1))
    a = analyse(pcm, 8000)
    assert a.frames == 300
    assert a.first_voiced_frame == 150
    assert a.voiced_frames == 150
    assert a.frequency_hz is not None and abs(a.frequency_hz - 880) < 0.05
    assert a.level_dbfs == pytest.approx(-20.0, abs=0.05)


def test_silence_and_quiet_noise_are_not_voiced() -> None:
    rng = random.Random(1)
    quiet = _pcm([round(rng.gauss(0, 50)) for _ in range(8000)])  # about -53 dBFS
    for pcm in (silence_frame() * 100, quiet, b""):
        a = analyse(pcm, 8000)
        assert a.voiced_frames == 0
        assert a.frequency_hz is None and a.level_dbfs is None


def test_level_of_a_gap_free_fade() -> None:
    # a tone that is 6 dB quieter in its second half reads as the mean power
    loud = b"".join(tone_frames(440, 1.0, amplitude=0.4))
    quiet = b"".join(tone_frames(440, 1.0, amplitude=0.2))
    expected = 10 * math.log10((0.4**2 + 0.2**2) / 2)
    assert pcm_dbfs(loud + quiet) == pytest.approx(expected, abs=0.05)


def test_analysis_is_fast_enough() -> None:
    pcm = b"".join(tone_frames(440, 5.0))
    started = time.perf_counter()
    analyse(pcm, 8000)
    assert time.perf_counter() - started < 2.0


async def test_pacer_sends_in_real_time() -> None:
    times: list[float] = []
    loop = asyncio.get_running_loop()

    async def send(frame: bytes) -> None:
        times.append(loop.time())

    report = await pace_frames(tone_frames(440, 10.0), send, max_frames=30)
    assert report.sent == 30 == len(times)
    assert 0.28 <= report.elapsed_s < 0.45
    # absolute schedule: frame n goes out at start + n * 10 ms, never early
    for n, t in enumerate(times):
        assert t - times[0] >= n * 0.01 - 0.002


async def test_pacer_refuses_to_burst_a_backlog() -> None:
    async def slow_send(frame: bytes) -> None:
        await asyncio.sleep(0.05)

    with pytest.raises(TimeoutError):
        await pace_frames(tone_frames(440, 1.0), slow_send, max_frames=100, max_late_s=0.2)

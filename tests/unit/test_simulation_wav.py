"""The WAV files of simulation mode: what members play (down-sampled to 8 kHz) and record."""

from __future__ import annotations

import wave
from pathlib import Path

import pytest

from gateway.simulation import load_wav, write_wav
from simcloud.audio import ToneGenerator, analyse, pcm_dbfs

LEVEL = ToneGenerator(440, 8000, 0.3).level_dbfs


def tone_wav(path: Path, frequency: float, rate: int, seconds: float = 1.0) -> Path:
    with wave.open(str(path), "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(rate)
        w.writeframes(b"".join(ToneGenerator(frequency, rate, 0.3).frames(seconds)))
    return path


def test_write_then_load_is_exact_at_8_khz(tmp_path: Path) -> None:
    pcm = b"".join(ToneGenerator(440, 8000, 0.3).frames(0.5))
    path = tmp_path / "new" / "dir" / "heard.wav"
    write_wav(path, pcm + b"\x01")  # an odd byte is dropped, not written
    with wave.open(str(path), "rb") as w:
        assert (w.getnchannels(), w.getsampwidth(), w.getframerate()) == (1, 2, 8000)
        assert w.readframes(w.getnframes()) == pcm
    assert load_wav(path) == pcm
    assert not [p for p in path.parent.iterdir() if p.name != "heard.wav"]  # no temp file left


@pytest.mark.parametrize(("rate", "frequency"), [(16000, 440), (48000, 1000), (48000, 3000)])
def test_higher_rates_keep_what_8_khz_can_carry(tmp_path: Path, rate: int, frequency: int) -> None:
    pcm = load_wav(tone_wav(tmp_path / "in.wav", frequency, rate))
    assert len(pcm) == 16000  # one second at 8 kHz
    result = analyse(pcm)
    assert result.frequency_hz is not None and abs(result.frequency_hz - frequency) < 0.5
    assert result.level_dbfs is not None and abs(result.level_dbfs - LEVEL) < 0.5


@pytest.mark.parametrize("frequency", [4400, 5000, 9000])
def test_what_8_khz_cannot_carry_is_filtered_not_folded(tmp_path: Path, frequency: int) -> None:
    # Plain decimation would fold 5 kHz onto 3 kHz at full level.
    pcm = load_wav(tone_wav(tmp_path / "in.wav", frequency, 48000))
    assert pcm_dbfs(pcm[1600:-1600]) < LEVEL - 60


def test_unsupported_files_are_refused_with_the_reason(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="got 1 channel\\(s\\), 16-bit, 44100 Hz"):
        load_wav(tone_wav(tmp_path / "cd.wav", 440, 44100))
    (tmp_path / "text.wav").write_text("not a wav")
    with pytest.raises(ValueError, match="is not a readable PCM WAV file"):
        load_wav(tmp_path / "text.wav")

"""The internal PCM frame format."""

import pytest

from gateway.media import pcm


def test_constants() -> None:
    assert (pcm.SAMPLE_RATE, pcm.SAMPLE_WIDTH, pcm.FRAME_MS, pcm.FRAME_BYTES) == (8000, 2, 10, 160)
    assert pcm.bytes_for_ms(20) == 320
    assert pcm.ms_of(bytes(480)) == 30


def test_silence() -> None:
    assert pcm.silence(0) == b""
    assert pcm.silence(20) == b"\x00" * 320


@pytest.mark.parametrize("ms", [-10, 5, 15])
def test_silence_rejects_partial_frames(ms: int) -> None:
    with pytest.raises(ValueError, match=f"silence of {ms} ms"):
        pcm.silence(ms)


def test_split_frames() -> None:
    data = bytes(range(160)) + bytes(range(1, 161)) + bytes(range(2, 162))
    assert pcm.split_frames(data) == [data[:160], data[160:320], data[320:]]
    assert pcm.split_frames(data[:320], ms=20) == [data[:320]]
    assert pcm.split_frames(b"") == []


def test_split_frames_errors() -> None:
    with pytest.raises(ValueError, match="PCM of 170 bytes is not a whole number of 10 ms frames"):
        pcm.split_frames(bytes(170))
    with pytest.raises(ValueError, match="PCM of 480 bytes is not a whole number of 20 ms frames"):
        pcm.split_frames(bytes(480), ms=20)
    with pytest.raises(ValueError, match="frame length 25 ms"):
        pcm.split_frames(bytes(400), ms=25)

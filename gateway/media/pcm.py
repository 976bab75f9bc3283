"""The internal PCM frame format shared by every leg (DESIGN.md §2).

Audio crosses module boundaries as plain :class:`bytes` of signed 16-bit
little-endian mono samples at 8 kHz, in whole 10 ms frames (160 bytes each).
G.711 (RFC 3551 §4.5.14) is natively 8 kHz, so the SIP leg never resamples.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TypeAlias

__all__ = [
    "FRAME_BYTES",
    "FRAME_MS",
    "SAMPLES_PER_MS",
    "SAMPLE_RATE",
    "SAMPLE_WIDTH",
    "AudioSink",
    "bytes_for_ms",
    "ms_of",
    "silence",
    "split_frames",
]

SAMPLE_RATE = 8000  # Hz
SAMPLE_WIDTH = 2  # bytes per sample (s16le)
FRAME_MS = 10  # the unit of exchange between legs
SAMPLES_PER_MS = SAMPLE_RATE // 1000
FRAME_BYTES = FRAME_MS * SAMPLES_PER_MS * SAMPLE_WIDTH  # 160

AudioSink: TypeAlias = Callable[[bytes], None]
"""Receives one or more whole 10 ms PCM frames."""


def bytes_for_ms(ms: int) -> int:
    """Number of PCM bytes in ``ms`` milliseconds (16 per ms)."""
    return ms * SAMPLES_PER_MS * SAMPLE_WIDTH


def ms_of(pcm: bytes) -> int:
    """Duration of ``pcm`` in whole milliseconds."""
    return len(pcm) // (SAMPLES_PER_MS * SAMPLE_WIDTH)


def silence(ms: int) -> bytes:
    """``ms`` milliseconds of digital silence; ``ms`` must be a multiple of 10.

    Raises:
        ValueError: ``ms`` is negative or not a multiple of :data:`FRAME_MS`.
    """
    if ms < 0 or ms % FRAME_MS:
        raise ValueError(f"silence of {ms} ms is not a non-negative multiple of {FRAME_MS} ms")
    return bytes(bytes_for_ms(ms))


def split_frames(pcm: bytes, ms: int = FRAME_MS) -> list[bytes]:
    """Cut ``pcm`` into consecutive frames of ``ms`` milliseconds each.

    Raises:
        ValueError: ``ms`` is not a positive multiple of 10, or ``pcm`` is not
            a whole number of such frames.
    """
    if ms <= 0 or ms % FRAME_MS:
        raise ValueError(f"frame length {ms} ms is not a positive multiple of {FRAME_MS} ms")
    size = bytes_for_ms(ms)
    if len(pcm) % size:
        raise ValueError(f"PCM of {len(pcm)} bytes is not a whole number of {ms} ms frames")
    return [pcm[i : i + size] for i in range(0, len(pcm), size)]

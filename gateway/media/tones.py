"""Call progress tones (ITU-T E.180 / ETSI ES 201 970) as 10 ms frames of 8 kHz s16le PCM.

The Telegram member hears these where a telephone would play them: ringback
while the dialled party's phone rings without early media, busy or congestion
when the call fails.  A :class:`ToneSource` is a pure generator; whoever owns
the member's audio pulls one frame per 10 ms.
"""

from __future__ import annotations

import math
import struct
from dataclasses import dataclass

RATE = 8000
FRAME_SAMPLES = 80  # 10 ms
FRAME_BYTES = FRAME_SAMPLES * 2


@dataclass(frozen=True)
class TonePlan:
    """Frequencies summed, and an on/off cadence in milliseconds (empty = continuous)."""

    frequencies: tuple[float, ...]
    cadence_ms: tuple[int, ...] = ()
    level_dbfs: float = -16.0


# ETSI: 425 Hz; ringback 1 s on / 4 s off, busy 0.5 / 0.5, congestion 0.25 / 0.25.
RINGBACK = TonePlan((425.0,), (1000, 4000))
BUSY = TonePlan((425.0,), (500, 500))
CONGESTION = TonePlan((425.0,), (250, 250))
# North America (Precise Tone Plan): ringback 440+480 Hz 2 s / 4 s, busy 480+620 Hz.
RINGBACK_NANP = TonePlan((440.0, 480.0), (2000, 4000), -19.0)
BUSY_NANP = TonePlan((480.0, 620.0), (500, 500), -19.0)


class ToneSource:
    """Frames of one tone plan, phase-continuous across frames and cadence steps."""

    def __init__(self, plan: TonePlan) -> None:
        self.plan = plan
        self._sample = 0
        amplitude = 32767 * 10 ** (plan.level_dbfs / 20) / max(1, len(plan.frequencies))
        self._amplitude = amplitude
        self._period = sum(plan.cadence_ms) * RATE // 1000

    def _on(self, sample: int) -> bool:
        if not self.plan.cadence_ms:
            return True
        position = (sample % self._period) * 1000 // RATE
        for i, length in enumerate(self.plan.cadence_ms):
            if position < length:
                return i % 2 == 0
            position -= length
        return False

    def frame(self) -> bytes:
        """The next 10 ms."""
        samples = []
        for n in range(self._sample, self._sample + FRAME_SAMPLES):
            if self._on(n):
                value = sum(math.sin(2 * math.pi * f * n / RATE) for f in self.plan.frequencies)
                samples.append(int(self._amplitude * value))
            else:
                samples.append(0)
        self._sample += FRAME_SAMPLES
        return struct.pack(f"<{FRAME_SAMPLES}h", *samples)

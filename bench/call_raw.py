"""The quality baseline of the bridged-calls bench: one raw ntgcalls call, both ends here.

Not an RFC module.  The method of performance-baselines.md §3: two
``NTgCalls`` ends (``tg_raw.End``) in this process, keys from
``skip_exchange``, signalling relayed in process, external 8 kHz PCM both
ways.  From a scheduled start time each end sends its program (the same files
the bridged call sends: latency bursts, then speech one way and then the
other) in 10 ms frames on an absolute schedule, noting when it handed each
frame to ntgcalls; each end records what it receives in ntgcalls' frame
callback with the time it arrived.  A (the caller) sends what the SIP side
sends in the bridged call, B what the member sends.
"""

from __future__ import annotations

import asyncio
import os
import time
from pathlib import Path
from typing import Any

from call_audio import save_recording
from ntgcalls import StreamDevice, StreamMode
from tg_raw import End
from tg_wire import Handler, Pacer, serve, worker_args, worker_logging

FRAME = 160  # bytes: 10 ms s16le at 8 kHz
A_CHAT, B_CHAT = 2, 1  # each end's chat id is the other end's "user id"


def read(path: str) -> bytes:
    return Path(path).read_bytes()


class TimedEnd(End):
    """An ``End`` that also records what it hears, with arrival times."""

    def __init__(self, name: str, loop: asyncio.AbstractEventLoop) -> None:
        super().__init__(name, loop)
        self.recording: list[tuple[float, bytes]] | None = None

    def _on_frames(self, chat_id: int, mode: Any, device: Any, frames: Any) -> None:
        at = time.monotonic()
        super()._on_frames(chat_id, mode, device, frames)
        playback = mode == StreamMode.PLAYBACK and device == StreamDevice.MICROPHONE
        if self.recording is not None and playback:
            self.recording.append((at, b"".join(frame.data for frame in frames)))


class QualityPair:
    def __init__(self) -> None:
        loop = asyncio.get_running_loop()
        self.a = TimedEnd("A", loop)
        self.b = TimedEnd("B", loop)
        self.a.deliver_out = lambda _chat, data: self.b.deliver(B_CHAT, data)
        self.b.deliver_out = lambda _chat, data: self.a.deliver(A_CHAT, data)

    async def quality(
        self, forward: str, reverse: str, stems: list[str], lead_s: float, timeout: float
    ) -> dict[str, Any]:
        """Connect, play *forward* from A and *reverse* from B, save what B and A heard."""
        a, b = self.a, self.b
        key = os.urandom(256)
        started = time.monotonic()
        await a.create(A_CHAT)
        await b.create(B_CHAT)
        await a.calls.skip_exchange(A_CHAT, key, True)
        await b.calls.skip_exchange(B_CHAT, key, False)
        try:
            await a.connect(A_CHAT)
            await b.connect(B_CHAT)
            both = lambda: A_CHAT in a.connected_at and B_CHAT in b.connected_at  # noqa: E731
            await a.wait(both, timeout, "CONNECTED on both ends")
            connect_s = max(a.connected_at[A_CHAT], b.connected_at[B_CHAT]) - started
            a.recording, b.recording = [], []
            pcm_a, pcm_b = read(forward), read(reverse)
            frames = min(len(pcm_a), len(pcm_b)) // FRAME
            pacer = Pacer(0.010)
            await asyncio.sleep(lead_s)
            times_a: list[float] = []
            times_b: list[float] = []
            pacer.begin()
            for k in range(frames):
                for end, chat, pcm, times in (
                    (a, A_CHAT, pcm_a, times_a),
                    (b, B_CHAT, pcm_b, times_b),
                ):
                    times.append(time.monotonic())
                    end.send_frame(chat, pcm[k * FRAME : (k + 1) * FRAME])
                await pacer.wait()
            await asyncio.sleep(1.0)  # the last bursts in flight
            rec_a, rec_b = a.recording, b.recording
            a.recording = b.recording = None
            save_recording(Path(stems[0]), rec_b)  # what B heard of A: the forward direction
            save_recording(Path(stems[1]), rec_a)
            return {
                "connect_s": connect_s,
                "forward_times": times_a,
                "reverse_times": times_b,
                "chunk": FRAME // 2,
                "pacer": pacer.as_dict(),
                "send_errors": a.send_errors + b.send_errors,
            }
        finally:
            await a.stop(A_CHAT)
            await b.stop(B_CHAT)


async def main() -> None:
    args = worker_args(__doc__.split("\n", 1)[0])
    worker_logging()
    pair = QualityPair()
    handlers: dict[str, Handler] = {"quality": pair.quality}
    await serve(args.control, handlers)


if __name__ == "__main__":
    asyncio.run(main())

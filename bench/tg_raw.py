"""Raw ntgcalls, no Telegram and no py-tgcalls: the baselines of the Telegram bench.

Not an RFC module.  The method is that of performance-baselines.md §1 and §2
(after the ``loopback_p2p.py`` spike), so the numbers can be set beside the notes':

* ``--role pair``: two ``NTgCalls`` in this process, signalling relayed in
  process, a real DH with Telegram's 2048-bit prime.  Per call: ``create_p2p_call``
  and ``set_stream_sources`` on both, ``init_exchange`` A, B, ``exchange_keys`` A, B,
  ``connect_p2p`` A then B (each flushing what the other sent meanwhile), until
  both are CONNECTED (taken in the native callback).  Then A sends a tone every
  10 ms until B hears a voiced frame.  Stop both, 0.3 s gap, next call.
* ``--role caller`` / ``--role callee``: one ``NTgCalls`` with N P2P calls, keys
  from ``skip_exchange``, signalling over an inherited socket (``--signal FD``)
  to the other end's process.  One task sends one 10 ms frame per call every
  10 ms on an absolute schedule (``send_external_frame``, not awaited one by one;
  a done-callback counts errors); ``on_frames`` counts what arrives.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import socket
import struct
import time
from collections.abc import Callable
from typing import Any

from ntgcalls import (
    AudioDescription,
    ConnectionState,
    DhConfig,
    FrameData,
    MediaDescription,
    MediaSource,
    NTgCalls,
    StreamDevice,
    StreamMode,
)
from tg_wire import (
    GATEWAY_HZ,
    MEMBER_HZ,
    RATE,
    Handler,
    Heard,
    Pacer,
    serve,
    tone_loop,
    worker_args,
    worker_logging,
)

log = logging.getLogger("bench.raw")

FRAME_S = 0.010
VERSION = "13.0.0"  # what the simulated cloud negotiates with py-tgcalls 3.0.0
GAP_S = 0.3  # between two set-up measurements, as in the notes
HEADER = struct.Struct(">qI")  # signalling over the socket: call id, length


def media() -> MediaDescription:
    """External 8 kHz mono PCM, both for capture and for playback."""
    ext = AudioDescription(
        media_source=MediaSource.EXTERNAL,
        sample_rate=RATE,
        channel_count=1,
        input="",
        keep_open=False,
    )
    return MediaDescription(microphone=ext, speaker=None, camera=None, screen=None)


class End:
    """One NTgCalls instance and its calls (chat id = the peer's user id)."""

    def __init__(self, name: str, loop: asyncio.AbstractEventLoop) -> None:
        self.name = name
        self.loop = loop
        self.calls = NTgCalls()
        self.heard: dict[int, Heard] = {}
        self.connected_at: dict[int, float] = {}
        self.failed: dict[int, str] = {}
        self.ready: set[int] = set()  # connect_p2p done: signalling may be delivered
        self.pending: dict[int, list[bytes]] = {}
        self.deliver_out: Callable[[int, bytes], None] | None = None
        self.changed = asyncio.Event()
        self.send_errors = 0
        self.calls.on_connection_change(self._on_connection)
        self.calls.on_frames(self._on_frames)
        self.calls.on_signaling_data(self._on_signalling)

    # -- native threads --------------------------------------------------------------

    def _on_connection(self, chat_id: int, info: Any) -> None:
        now = time.monotonic()
        if info.state == ConnectionState.CONNECTED:
            self.connected_at.setdefault(chat_id, now)
        elif info.state != ConnectionState.CONNECTING:
            self.failed.setdefault(chat_id, str(info.state))
        self.loop.call_soon_threadsafe(self.changed.set)

    def _on_frames(self, chat_id: int, mode: Any, device: Any, frames: Any) -> None:
        if mode != StreamMode.PLAYBACK or device != StreamDevice.MICROPHONE:
            return
        heard = self.heard.get(chat_id)
        if heard is None:
            heard = self.heard[chat_id] = Heard()
        for frame in frames:
            heard.add(frame.data)

    def _on_signalling(self, chat_id: int, data: bytes) -> None:
        if self.deliver_out is not None:
            self.loop.call_soon_threadsafe(self.deliver_out, chat_id, data)

    # -- the loop --------------------------------------------------------------------

    def deliver(self, chat_id: int, data: bytes) -> None:
        """Signalling from the other end: held until this end's connect_p2p."""
        if chat_id not in self.ready:
            self.pending.setdefault(chat_id, []).append(data)
            return
        future = self.calls.send_signaling_data(chat_id, data)
        future.add_done_callback(self._sent)

    def flush(self, chat_id: int) -> None:
        self.ready.add(chat_id)
        for data in self.pending.pop(chat_id, []):
            self.deliver(chat_id, data)

    def _sent(self, future: asyncio.Future[Any]) -> None:
        if future.cancelled() or future.exception() is not None:
            self.send_errors += 1

    async def create(self, chat_id: int) -> None:
        await self.calls.create_p2p_call(chat_id)
        await self.calls.set_stream_sources(chat_id, StreamMode.CAPTURE, media())
        await self.calls.set_stream_sources(chat_id, StreamMode.PLAYBACK, media())

    async def connect(self, chat_id: int) -> None:
        await self.calls.connect_p2p(chat_id, [], [VERSION], True, None)
        self.flush(chat_id)

    async def wait(self, done: Callable[[], bool], timeout: float, what: str) -> None:
        deadline = self.loop.time() + timeout
        while not done():
            if self.failed:
                raise RuntimeError(f"{self.name}: connection {self.failed}")
            remaining = deadline - self.loop.time()
            if remaining <= 0:
                raise TimeoutError(f"{self.name}: no {what} within {timeout:g} s")
            self.changed.clear()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self.changed.wait(), min(remaining, 0.05))

    async def stop(self, chat_id: int) -> None:
        self.ready.discard(chat_id)
        with contextlib.suppress(Exception):
            await asyncio.wait_for(self.calls.stop(chat_id), 10)

    def send_frame(self, chat_id: int, frame: bytes) -> None:
        future = self.calls.send_external_frame(
            chat_id, StreamDevice.MICROPHONE, frame, FrameData()
        )
        future.add_done_callback(self._sent)


# ---------------------------------------------------------------------------------------
# the set-up baseline: two ends in this process


class Pair:
    def __init__(self) -> None:
        # Telegram's DH prime, as the simulated cloud hands it out.  Imported here, not at
        # the top: simcloud.phone pulls in Telethon, which the one-end processes (whose
        # memory is measured) must not carry.
        from simcloud.phone import DH_G, DH_PRIME

        self.g, self.prime = DH_G, DH_PRIME
        loop = asyncio.get_running_loop()
        self.a = End("A", loop)
        self.b = End("B", loop)
        # A calls user 2 and B calls user 1: each end's chat id is the other's user id.
        self.a.deliver_out = lambda _chat, data: self.b.deliver(1, data)
        self.b.deliver_out = lambda _chat, data: self.a.deliver(2, data)
        self._tone = tone_loop(GATEWAY_HZ)

    async def one(self, timeout: float) -> dict[str, Any]:
        a, b = self.a, self.b
        for end in (a, b):
            end.connected_at.clear()
            end.failed.clear()
            end.heard.clear()
        t_create = time.monotonic()
        await a.create(2)
        await b.create(1)
        t_dh = time.monotonic()
        dh_a = DhConfig(self.g, self.prime, os.urandom(256))
        dh_b = DhConfig(self.g, self.prime, os.urandom(256))
        g_a_hash = await a.calls.init_exchange(2, dh_a, None)  # phone.requestCall
        g_b = await b.calls.init_exchange(1, dh_b, g_a_hash)  # phone.acceptCall
        auth_a = await a.calls.exchange_keys(2, g_b, 0)  # phone.confirmCall
        auth_b = await b.calls.exchange_keys(1, auth_a.g_a_or_b, auth_a.key_fingerprint)
        if auth_a.key_fingerprint != auth_b.key_fingerprint:
            raise RuntimeError("the two ends derived different keys")
        t_connect = time.monotonic()
        try:
            await a.connect(2)
            await b.connect(1)
            both = lambda: 2 in a.connected_at and 1 in b.connected_at  # noqa: E731
            await a.wait(both, timeout, "CONNECTED on both ends")
            connected = max(a.connected_at[2], b.connected_at[1])
            # First audio: A sends a tone until B hears it.
            n = 0
            while (heard := b.heard.get(1)) is None or heard.first_voiced_at is None:
                if n >= 300:
                    raise TimeoutError("B heard no voiced frame within 3 s")
                a.send_frame(2, self._tone[n % len(self._tone)])
                n += 1
                await asyncio.sleep(max(0.0, connected + n * FRAME_S - time.monotonic()))
            return {
                "setup_s": connected - t_create,
                "dh_s": t_connect - t_dh,
                "connect_s": connected - t_connect,
                "first_audio_s": heard.first_voiced_at - a.connected_at[2],
            }
        finally:
            await a.stop(2)
            await b.stop(1)
            a.ready.clear()
            b.ready.clear()
            a.pending.clear()
            b.pending.clear()

    async def series(self, count: int, warmup: int, timeout: float) -> dict[str, Any]:
        samples: list[dict[str, Any]] = []
        errors: list[str] = []
        for i in range(warmup + count):
            try:
                sample = await self.one(timeout)
            except (RuntimeError, TimeoutError) as exc:
                errors.append(f"call {i}: {type(exc).__name__}: {exc}")
            else:
                sample["warmup"] = i < warmup
                samples.append(sample)
            await asyncio.sleep(GAP_S)
        return {"samples": samples, "errors": errors}


# ---------------------------------------------------------------------------------------
# the CPU baseline: one end per process, N calls


class Side:
    """One end (caller or callee) of N calls whose other ends are in another process."""

    def __init__(self, role: str, signal_fd: int) -> None:
        self.role = role
        self.loop = asyncio.get_running_loop()
        self.end = End(role, self.loop)
        self.end.deliver_out = self._send_signalling
        self.sock = socket.socket(fileno=signal_fd)
        self.writer: asyncio.StreamWriter | None = None
        self.chats: list[int] = []
        self.pacer = Pacer(FRAME_S)
        self.pumping = False
        self._pump: asyncio.Task[None] | None = None
        self._reader: asyncio.Task[None] | None = None
        self._tone = tone_loop(GATEWAY_HZ if role == "caller" else MEMBER_HZ)

    def _send_signalling(self, chat_id: int, data: bytes) -> None:
        if self.writer is not None:
            self.writer.write(HEADER.pack(chat_id, len(data)) + data)

    async def _read(self, reader: asyncio.StreamReader) -> None:
        with contextlib.suppress(asyncio.IncompleteReadError, OSError):
            while True:
                chat_id, size = HEADER.unpack(await reader.readexactly(HEADER.size))
                self.end.deliver(chat_id, await reader.readexactly(size))

    async def setup(self, keys: list[str]) -> dict[str, Any]:
        reader, self.writer = await asyncio.open_connection(sock=self.sock)
        self._reader = asyncio.create_task(self._read(reader))
        self.chats = list(range(1, len(keys) + 1))  # both ends use the same chat ids
        for chat_id, key in zip(self.chats, keys, strict=True):
            await self.end.create(chat_id)
            await self.end.calls.skip_exchange(chat_id, bytes.fromhex(key), self.role == "caller")
        return {}

    async def connect(self, timeout: float) -> dict[str, Any]:
        started = time.monotonic()
        for chat_id in self.chats:
            await self.end.connect(chat_id)
        end = self.end
        await end.wait(lambda: len(end.connected_at) == len(self.chats), timeout, "CONNECTED")
        self.pumping = True
        self._pump = asyncio.create_task(self._tick())
        return {"connect_s": max(end.connected_at.values()) - started}

    async def _tick(self) -> None:
        self.pacer.begin()
        n = 0
        while self.pumping:
            frame = self._tone[n % len(self._tone)]
            for chat_id in self.chats:
                self.end.send_frame(chat_id, frame)
            n += 1
            await self.pacer.wait()

    async def counts(self, restart: bool = False) -> dict[str, Any]:
        """Counters now; *restart* starts the pump's lateness record afresh (a window opens)."""
        heard = self.end.heard
        out = {
            "at": time.monotonic(),
            "cpu_s": time.process_time(),
            "heard": {str(c): heard[c].counts() if c in heard else [0, 0] for c in self.chats},
            "pacer": self.pacer.as_dict(),
            "send_errors": self.end.send_errors,
            "failed": {str(k): v for k, v in self.end.failed.items()},
        }
        if restart:
            self.pacer.restart()
        return out

    async def analyse(self) -> dict[str, Any]:
        heard = self.end.heard
        return {
            str(c): heard[c].analysis() if c in heard else {"hz": None, "dbfs": None}
            for c in self.chats
        }

    async def close(self) -> None:
        self.pumping = False
        for task in (self._pump, self._reader):
            if task is not None:
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await task
        for chat_id in self.chats:
            await self.end.stop(chat_id)
        if self.writer is not None:
            self.writer.close()


async def main() -> None:
    args = worker_args(__doc__.split("\n", 1)[0])
    worker_logging(logging.WARNING)  # ntgcalls' own loggers stay at its CRITICAL, as in the product
    if args.role == "pair":
        pair = Pair()
        await serve(args.control, {"series": pair.series})
        return
    side = Side(args.role, args.signal)
    handlers: dict[str, Handler] = {
        "setup": side.setup,
        "connect": side.connect,
        "counts": side.counts,
        "analyse": side.analyse,
    }
    try:
        await serve(args.control, handlers)
    finally:
        await side.close()


if __name__ == "__main__":
    asyncio.run(main())

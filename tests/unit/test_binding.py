"""StopAfterWork: a call's ntgcalls ``stop`` never runs beside its other native work.

The stand-in binding does what ntgcalls' does: each method runs on a worker
thread of the loop's executor and returns an asyncio future, and cancelling that
future leaves the worker running.  Each worker blocks until the test releases
it, so the order of native starts and ends is the test's to see.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Callable
from typing import Any

import pytest
from pytgcalls.exceptions import CallDiscarded
from telethon import TelegramClient
from telethon.sessions import MemorySession

from gateway.telegram.binding import StopAfterWork
from gateway.telegram.call import _GatewayTgCalls


class NotFound(Exception):
    """ntgcalls' ConnectionNotFound, as far as these tests care."""


class Worker:
    def __init__(self) -> None:
        self.release = threading.Event()


class NativeStandIn:
    """Records ``start name chat`` / ``end name chat`` as each worker thread runs."""

    def __init__(self) -> None:
        self.log: list[str] = []
        self.workers: dict[str, Worker] = {}
        self.fail: set[str] = set()
        self.frames = 0
        self._lock = threading.Lock()

    def _note(self, line: str) -> None:
        with self._lock:
            self.log.append(line)

    def _native(self, name: str, chat_id: int) -> asyncio.Future[Any]:
        worker = self.workers.setdefault(f"{name} {chat_id}", Worker())

        def run() -> str:
            self._note(f"start {name} {chat_id}")
            worker.release.wait(10)
            self._note(f"end {name} {chat_id}")
            if name in self.fail:
                raise NotFound(chat_id)
            return f"{name} {chat_id} done"

        return asyncio.get_running_loop().run_in_executor(None, run)

    def connect_p2p(self, chat_id: int, *_args: Any) -> asyncio.Future[Any]:
        return self._native("connect_p2p", chat_id)

    def get_call_type(self, chat_id: int) -> asyncio.Future[Any]:
        return self._native("get_call_type", chat_id)

    def stop(self, chat_id: int) -> asyncio.Future[Any]:
        return self._native("stop", chat_id)

    def send_external_frame(self, chat_id: int, *_args: Any) -> str:
        self.frames += 1
        return "frame"

    def get_protocol(self) -> str:
        return "protocol"

    def release(self, key: str) -> None:
        self.workers.setdefault(key, Worker()).release.set()

    def release_all(self) -> None:
        for worker in self.workers.values():
            worker.release.set()


@pytest.fixture
def native() -> Any:
    stand_in = NativeStandIn()
    yield stand_in
    stand_in.release_all()  # no worker thread outlives the test


async def until(condition: Callable[[], bool], what: str) -> None:
    for _ in range(500):
        if condition():
            return
        await asyncio.sleep(0.01)
    raise AssertionError(f"never: {what}")


async def test_stop_waits_for_a_connect_whose_caller_was_cancelled(native: NativeStandIn) -> None:
    binding = StopAfterWork(native)
    play = asyncio.create_task(binding.connect_p2p(7, [], [], True, None))
    await until(lambda: "start connect_p2p 7" in native.log, "connect started")
    play.cancel()  # what hanging up does to py-tgcalls' play() task
    with pytest.raises(asyncio.CancelledError):
        await play
    assert binding.in_flight(7) == 1  # the worker thread goes on
    stopping = asyncio.create_task(binding.stop(7))
    await asyncio.sleep(0.2)
    assert "start stop 7" not in native.log, "stop ran beside connect_p2p"
    assert binding.stop_held(7) and not binding.stop_held(8)
    native.release("connect_p2p 7")
    native.release("stop 7")
    assert await stopping == "stop 7 done"
    assert native.log == ["start connect_p2p 7", "end connect_p2p 7", "start stop 7", "end stop 7"]
    assert binding.in_flight(7) == 0 and not binding.stop_held(7)


async def test_without_the_wrapper_the_stop_runs_beside_the_connect(native: NativeStandIn) -> None:
    # The stand-in shows the hazard it models: ntgcalls' own binding does not wait.
    play = native.connect_p2p(7, [], [], True, None)
    await until(lambda: "start connect_p2p 7" in native.log, "connect started")
    play.cancel()
    stopping = native.stop(7)
    await until(lambda: "start stop 7" in native.log, "stop started")
    assert "end connect_p2p 7" not in native.log
    native.release_all()
    await stopping


async def test_a_stop_does_not_wait_for_another_call(native: NativeStandIn) -> None:
    binding = StopAfterWork(native)
    connecting = asyncio.create_task(binding.connect_p2p(7, [], [], True, None))
    await until(lambda: "start connect_p2p 7" in native.log, "connect started")
    native.release("stop 8")
    assert await asyncio.wait_for(binding.stop(8), 5) == "stop 8 done"
    assert "end connect_p2p 7" not in native.log
    native.release("connect_p2p 7")
    assert await connecting == "connect_p2p 7 done"


async def test_work_asked_for_during_a_stop_waits_for_it(native: NativeStandIn) -> None:
    binding = StopAfterWork(native)
    stopping = asyncio.create_task(binding.stop(7))
    await until(lambda: "start stop 7" in native.log, "stop started")
    asking = asyncio.create_task(binding.get_call_type(7))
    await asyncio.sleep(0.2)
    assert "start get_call_type 7" not in native.log
    native.release("stop 7")
    native.release("get_call_type 7")
    await stopping
    await asking
    assert native.log.index("end stop 7") < native.log.index("start get_call_type 7")


async def test_work_cancelled_while_waiting_for_a_stop_never_starts(native: NativeStandIn) -> None:
    binding = StopAfterWork(native)
    stopping = asyncio.create_task(binding.stop(7))
    await until(lambda: "start stop 7" in native.log, "stop started")
    asking = asyncio.create_task(binding.connect_p2p(7, [], [], True, None))
    await asyncio.sleep(0.05)
    asking.cancel()
    native.release("stop 7")
    await stopping
    await asyncio.sleep(0.1)
    assert "start connect_p2p 7" not in native.log
    assert binding.in_flight(7) == 0


async def test_a_second_stop_waits_for_the_first(native: NativeStandIn) -> None:
    binding = StopAfterWork(native)
    native.fail.add("stop")  # the second finds nothing to stop, as ntgcalls says
    first = asyncio.create_task(binding.stop(7))
    await until(lambda: "start stop 7" in native.log, "first stop started")
    second = asyncio.create_task(binding.stop(7))
    await asyncio.sleep(0.1)
    assert native.log.count("start stop 7") == 1
    native.release("stop 7")
    with pytest.raises(NotFound):
        await first
    with pytest.raises(NotFound):
        await second
    assert native.log == ["start stop 7", "end stop 7", "start stop 7", "end stop 7"]


async def test_native_errors_reach_the_caller(native: NativeStandIn) -> None:
    binding = StopAfterWork(native)
    native.fail.add("get_call_type")
    native.release("get_call_type 3")
    with pytest.raises(NotFound):
        await binding.get_call_type(3)
    assert binding.in_flight(3) == 0


async def test_a_stop_gives_up_waiting_after_its_bound(
    native: NativeStandIn, caplog: pytest.LogCaptureFixture
) -> None:
    binding = StopAfterWork(native, stop_wait=0.2)
    connecting = asyncio.create_task(binding.connect_p2p(7, [], [], True, None))
    await until(lambda: "start connect_p2p 7" in native.log, "connect started")
    native.release("stop 7")
    await asyncio.wait_for(binding.stop(7), 5)
    assert "1 ntgcalls operation(s) still running after 0 s; stopping anyway" in caplog.text
    native.release("connect_p2p 7")
    await connecting


async def test_frames_and_other_methods_pass_straight_through(native: NativeStandIn) -> None:
    binding = StopAfterWork(native)
    assert binding.send_external_frame(7, "mic", b"x", None) == "frame"
    assert native.frames == 1
    assert binding.get_protocol() == "protocol"
    assert binding.in_flight(7) == 0


async def test_a_stop_lets_the_last_work_settle_first(native: NativeStandIn) -> None:
    # ntgcalls finishes part of an operation on its own threads after returning.
    binding = StopAfterWork(native, stop_settle=0.5)
    loop = asyncio.get_running_loop()
    native.release("connect_p2p 7")
    await binding.connect_p2p(7, [], [], True, None)
    native.release("stop 7")
    started = loop.time()
    await binding.stop(7)
    assert loop.time() - started >= 0.45


async def test_only_the_same_calls_work_holds_a_stop_back(native: NativeStandIn) -> None:
    binding = StopAfterWork(native, stop_settle=5.0)
    loop = asyncio.get_running_loop()
    native.release("connect_p2p 7")
    await binding.connect_p2p(7, [], [], True, None)
    native.release("stop 8")
    started = loop.time()
    await binding.stop(8)
    assert loop.time() - started < 4.0


async def test_the_peer_leaving_fails_a_play_still_waiting_after_the_stop(
    native: NativeStandIn,
) -> None:
    # py-tgcalls' own _clear_call leaves this wait alone while the call's key
    # exchange is still on record (play() inside connect_p2p): the call then hung
    # in "connecting" waiting for media that the stop had just ended.
    client = TelegramClient(MemorySession(), 1, "0" * 32)
    tg = _GatewayTgCalls(client)
    tg._binding = StopAfterWork(native, stop_settle=0.0)
    waiting = asyncio.get_running_loop().create_future()
    tg._wait_connect[7] = waiting
    tg._p2p_configs[7] = object()
    native.release("stop 7")
    await tg._clear_call(7)
    assert "end stop 7" in native.log
    assert waiting.done() and isinstance(waiting.exception(), CallDiscarded)
    assert 7 not in tg._p2p_configs

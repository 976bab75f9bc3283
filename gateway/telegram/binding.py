"""ntgcalls' binding with a call's ``stop`` kept apart from its other native operations.

ntgcalls runs each method of its Python binding on a worker thread and hands
back an asyncio future.  Cancelling that future (or a task awaiting it) does not
stop the worker, and ntgcalls 3.0.5 does not guard one call against two
threads: a ``stop`` (``NTgCalls::remove``) that runs while ``connect_p2p`` is
still inside ``P2PCall::connect`` frees the call under it and the process dies
with SIGSEGV (seen in a core dump: ``StreamManager::add_track`` on a freed
call).  That happens whenever a call is ended while it is being connected: the
SIP caller hangs up as the member answers, or the member hangs up as the
gateway connects.  py-tgcalls itself stops a call from its update handler
without waiting for ``play()``.

:class:`StopAfterWork` therefore makes, per call (the peer's user id):

- ``stop`` wait until every operation already handed to ntgcalls has finished
  on its thread, however its caller was cancelled, and then until
  :data:`STOP_SETTLE` has passed since the last of them finished;
- operations asked for while a ``stop`` runs wait for it (they then fail with
  ntgcalls' own ``ConnectionNotFound``), and never start if their caller is
  cancelled while they wait.

``send_external_frame`` is left as it is: it runs every 10 ms per call and
takes the call under ntgcalls' own lock.  Everything else passes through.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from typing import Any

log = logging.getLogger(__name__)

#: Methods that act on one call, first argument the chat (user) id.
PER_CALL = frozenset(
    {
        "create_p2p_call",
        "set_stream_sources",
        "init_exchange",
        "exchange_keys",
        "skip_exchange",
        "connect_p2p",
        "send_signaling_data",
        "get_state",
        "get_call_type",
        "get_connection_mode",
        "mute",
        "unmute",
        "pause",
        "resume",
        "time",
    }
)

#: How long a stop waits for work in flight before going ahead anyway (and logging it).
STOP_WAIT = 15.0

#: How long after a call's last native operation finished its stop is held back.
#: ntgcalls posts part of the work (``NativeConnection::set_remote_params`` from
#: signalling) to its WebRTC threads and returns; stopped before such a task
#: runs, the task touches the freed connection (SIGSEGV, seen in a core dump
#: when a member hung up as the gateway answered).
STOP_SETTLE = 0.25


def _settled(future: asyncio.Future[Any]) -> None:
    """Mark a native future's outcome as seen when nobody is left to await it."""
    if not future.cancelled():
        future.exception()


class StopAfterWork:
    """Wraps an ``NTgCalls`` object; see the module's docstring.  Loop thread only."""

    def __init__(
        self, inner: Any, *, stop_wait: float = STOP_WAIT, stop_settle: float = STOP_SETTLE
    ) -> None:
        self._inner = inner
        # The per-frame path (every 10 ms per call) skips __getattr__.
        self.send_external_frame = inner.send_external_frame
        self._stop_wait = stop_wait
        self._stop_settle = stop_settle
        self._last_done: dict[int, float] = {}
        self._working: dict[int, set[asyncio.Future[Any]]] = {}
        self._stopping: dict[int, asyncio.Future[Any]] = {}
        self._held_stops: dict[int, int] = {}

    def __getattr__(self, name: str) -> Any:
        attribute = getattr(self._inner, name)
        if name in PER_CALL:
            return lambda chat_id, *args: self._work(attribute, chat_id, *args)
        return attribute

    def in_flight(self, chat_id: int) -> int:
        """Native operations on this call not yet finished on their threads."""
        return len(self._working.get(chat_id, ()))

    def stop_held(self, chat_id: int) -> bool:
        """Whether a stop of this call waits for its work in flight."""
        return self._held_stops.get(chat_id, 0) > 0

    async def _work(self, method: Callable[..., Any], chat_id: int, *args: Any) -> Any:
        stopping = self._stopping.get(chat_id)
        if stopping is not None:
            await asyncio.wait({stopping})  # cancelled here: the operation never starts
        native: asyncio.Future[Any] = method(chat_id, *args)
        working = self._working.setdefault(chat_id, set())
        working.add(native)

        def finished(future: asyncio.Future[Any]) -> None:
            _settled(future)
            self._last_done[chat_id] = asyncio.get_running_loop().time()
            working.discard(future)
            if not working and self._working.get(chat_id) is working:
                del self._working[chat_id]

        native.add_done_callback(finished)
        # The caller may be cancelled; the worker thread goes on, and a stop waits for it.
        return await asyncio.shield(native)

    async def stop(self, chat_id: int) -> Any:
        earlier = self._stopping.get(chat_id)
        if earlier is not None:
            await asyncio.wait({earlier})
        working = set(self._working.get(chat_id, ()))
        if working:
            self._held_stops[chat_id] = self._held_stops.get(chat_id, 0) + 1
            try:
                _done, pending = await asyncio.wait(working, timeout=self._stop_wait)
            finally:
                self._held_stops[chat_id] -= 1
                if not self._held_stops[chat_id]:
                    del self._held_stops[chat_id]
            if pending:
                log.error(
                    "call %d: %d ntgcalls operation(s) still running after %.0f s; stopping anyway",
                    chat_id,
                    len(pending),
                    self._stop_wait,
                )
        last = self._last_done.pop(chat_id, None)
        if last is not None:
            settle = last + self._stop_settle - asyncio.get_running_loop().time()
            if settle > 0:
                await asyncio.sleep(settle)
        native: asyncio.Future[Any] = self._inner.stop(chat_id)
        self._stopping[chat_id] = native

        def finished(future: asyncio.Future[Any]) -> None:
            _settled(future)
            if self._stopping.get(chat_id) is future:
                del self._stopping[chat_id]

        native.add_done_callback(finished)
        return await asyncio.shield(native)

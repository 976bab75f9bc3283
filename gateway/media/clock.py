"""The process-wide media clock: one 20 ms ticker for every call (RFC 3551 §4.2).

Waking the event loop costs far more than the work done per packet (about
200 µs per wake-up on the reference VM, notes/performance-baselines.md §0.3,
§4), so every RTP session is driven by the same tick instead of owning a
task.  Ticks follow an absolute schedule, ``start + n * period`` on
``loop.time()``, so lateness never accumulates into drift.  A short stall is
caught up with back-to-back ticks; a stall of more than ``max_lag`` periods
restarts the schedule instead of bursting (the peers' jitter buffers would
drop a burst anyway).

The scheduling itself is sans-IO (:meth:`MediaClock.begin`,
:meth:`MediaClock.deadline`, :meth:`MediaClock.wake`), so tests drive it with
fake times; only :meth:`MediaClock._run` touches asyncio.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable

__all__ = ["MediaClock", "TickCallback"]

log = logging.getLogger(__name__)

TickCallback = Callable[[float], None]


class MediaClock:
    """Calls every subscriber once per ``period`` with the loop time.

    The ticker task starts with the first subscriber and stops when the last
    one leaves, so an idle gateway never wakes up.  Subscribers run in
    subscription order; one that raises is logged and the others still run.

    Example::

        clock = MediaClock()
        clock.subscribe(session.on_tick)   # starts ticking (needs a running loop)
        ...
        clock.unsubscribe(session.on_tick) # the last one stops the task
    """

    def __init__(self, period: float = 0.020, *, max_lag: int = 3, manual: bool = False) -> None:
        if period <= 0:
            raise ValueError(f"clock period {period} s is not positive")
        self.period = period
        self.max_lag = max_lag
        self.manual = manual  # never start a task: the owner calls tick() (tests)
        self.ticks = 0
        self.resyncs = 0
        self._subscribers: dict[TickCallback, int] = {}  # callback -> failures
        self._task: asyncio.Task[None] | None = None
        self._start = 0.0
        self._n = 0

    # ---- subscriptions -------------------------------------------------

    def subscribe(self, callback: TickCallback) -> None:
        """Call ``callback(now)`` on every tick from the next one on."""
        self._subscribers.setdefault(callback, 0)
        if not self.manual and (self._task is None or self._task.done()):
            try:
                loop = asyncio.get_running_loop()
            except RuntimeError:
                return  # no loop: the owner drives tick()/wake() by hand (tests)
            self._task = loop.create_task(self._run(), name="media-clock")

    def unsubscribe(self, callback: TickCallback) -> None:
        """Stop calling ``callback``; unknown callbacks are ignored."""
        self._subscribers.pop(callback, None)
        if not self._subscribers and self._task is not None:
            task, self._task = self._task, None
            if task is not asyncio.current_task():
                task.cancel()  # otherwise the loop sees no subscribers and exits

    @property
    def subscribers(self) -> int:
        return len(self._subscribers)

    @property
    def running(self) -> bool:
        return self._task is not None and not self._task.done()

    async def stop(self) -> None:
        """Drop every subscriber and wait until the ticker task has exited."""
        self._subscribers.clear()
        task, self._task = self._task, None
        if task is not None and task is not asyncio.current_task():
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task

    # ---- the schedule (sans-IO) ----------------------------------------

    def begin(self, now: float) -> None:
        """Start the schedule: the first tick is due one period after ``now``."""
        self._start = now
        self._n = 0

    def deadline(self) -> float:
        """Loop time at which the next tick is due."""
        return self._start + (self._n + 1) * self.period

    def wake(self, now: float) -> None:
        """Run the due tick at ``now`` (at or after :meth:`deadline`)."""
        lag = now - self.deadline()
        self._n += 1
        if lag > self.max_lag * self.period:
            self.resyncs += 1
            log.warning("media clock: event loop stalled %.0f ms, resynchronising", lag * 1000)
            self.begin(now)
        self.tick(now)

    def tick(self, now: float) -> None:
        """Call every subscriber with ``now``; a failure never stops the others."""
        self.ticks += 1
        for callback in list(self._subscribers):
            try:
                callback(now)
            except Exception:
                failures = self._subscribers.get(callback)
                if failures is None:
                    continue  # it unsubscribed itself, then failed
                self._subscribers[callback] = failures + 1
                if failures & (failures + 1) == 0:  # log the 1st, 2nd, 4th, 8th... failure
                    log.exception(
                        "media clock: subscriber %r failed (%d times)", callback, failures + 1
                    )

    # ---- asyncio ---------------------------------------------------------

    async def _run(self) -> None:
        loop = asyncio.get_running_loop()
        self.begin(loop.time())
        try:
            while self._subscribers:
                delay = self.deadline() - loop.time()
                # catching up after a short stall still yields to I/O between ticks
                await asyncio.sleep(max(delay, 0.0))
                if not self._subscribers:
                    break
                self.wake(loop.time())
        except asyncio.CancelledError:
            raise
        except Exception:  # pragma: no cover - tick() contains subscriber failures
            # the ticker must never die silently: every call would go mute
            log.exception("media clock: ticker failed")
            raise

"""Callbacks for one kind of event, each called in turn; a failing one is logged, not fatal.

A listener may be a plain function or a coroutine function: what it returns,
if not ``None``, is awaited before the next listener hears the event.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from typing import Generic, TypeVar

__all__ = ["Listener", "Listeners"]

log = logging.getLogger(__name__)

Event = TypeVar("Event")
Listener = Callable[[Event], Awaitable[None] | None]


class Listeners(Generic[Event]):
    """The listeners of one source; *who* names it in the log (``"telegram bot"``)."""

    def __init__(self, who: str) -> None:
        self._who = who
        self._items: list[Listener[Event]] = []

    def add(self, listener: Listener[Event]) -> Callable[[], None]:
        """Hear every event from now on; returns the function that stops it."""
        self._items.append(listener)
        return lambda: self._items.remove(listener) if listener in self._items else None

    async def emit(self, event: Event) -> None:
        # A copy: a listener may unsubscribe itself (or another) while hearing the event.
        for listener in list(self._items):
            try:
                result = listener(event)
                if result is not None:
                    await result
            except Exception:
                log.exception("%s: listener failed on %s", self._who, type(event).__name__)

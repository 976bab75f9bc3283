"""Missed calls waiting: the store's seen-marker and count (the missed LED, /seen, dashboard)."""

from __future__ import annotations

from pathlib import Path

import pytest

from gateway.store import Store


@pytest.fixture
def store(tmp_path: Path) -> Store:
    return Store.open(tmp_path / "linegram.db")


def missed_call(store: Store, ended: float, direction: str = "in", outcome: str = "missed") -> int:
    call = store.call_started(direction, "home", "sip:1@x", "1", "", "", ended - 5)  # type: ignore[arg-type]
    store.call_ended(call, ended, outcome, "cancelled")  # type: ignore[arg-type]
    return call


def test_missed_calls_count_until_marked_seen(store: Store) -> None:
    assert (store.missed_waiting(), store.missed_seen_at()) == (0, 0.0)
    missed_call(store, 100.0)
    missed_call(store, 110.0)
    missed_call(store, 120.0, outcome="answered")
    missed_call(store, 130.0, direction="out", outcome="cancelled")
    open_call = store.call_started("in", "home", "sip:2@x", "2", "", "", 125.0)
    assert store.missed_waiting() == 2
    store.mark_missed_seen(115.0)
    assert (store.missed_waiting(), store.missed_seen_at()) == (0, 115.0)
    # A call ringing while they were cleared, missed after: it waits.
    store.call_ended(open_call, 140.0, "missed", "no-answer")
    assert store.missed_waiting() == 1


def test_the_marker_never_goes_back(store: Store, tmp_path: Path) -> None:
    store.mark_missed_seen(200.0)
    store.mark_missed_seen(150.0)  # a late clear from a slow client
    assert store.missed_seen_at() == 200.0
    store.close()
    with Store.open(tmp_path / "linegram.db") as again:  # kept across restarts
        assert again.missed_seen_at() == 200.0


def test_bad_time_is_refused(store: Store) -> None:
    with pytest.raises(ValueError, match="at must be a finite number of seconds"):
        store.mark_missed_seen(float("nan"))

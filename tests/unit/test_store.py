"""Tests for gateway/store.py: migrations and the call log."""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator
from pathlib import Path

import pytest

from gateway.store import MIGRATIONS, CallRecord, Store, StoreError


@pytest.fixture
def db_path(tmp_path: Path) -> Path:
    return tmp_path / "linegram.db"


@pytest.fixture
def store(db_path: Path) -> Iterator[Store]:
    s = Store.open(db_path)
    yield s
    s.close()


def tables(path: Path) -> list[str]:
    with sqlite3.connect(path) as conn:
        rows = conn.execute("SELECT name FROM sqlite_master WHERE type = 'table' ORDER BY name")
        return [r[0] for r in rows]


def user_version(path: Path) -> int:
    conn = sqlite3.connect(path)
    try:
        return int(conn.execute("PRAGMA user_version").fetchone()[0])
    finally:
        conn.close()


# ------------------------------------------------------------------ migrations


def test_migrates_empty_database(store: Store, db_path: Path) -> None:
    assert store.schema_version == len(MIGRATIONS) == 3
    assert tables(db_path) == [
        "calls",
        "invitation_lines",
        "invitations",
        "markers",
        "member_lines",
        "members",
    ]


def test_pragmas(store: Store) -> None:
    conn = store._conn
    assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    assert conn.execute("PRAGMA synchronous").fetchone()[0] == 2  # FULL
    assert conn.execute("PRAGMA foreign_keys").fetchone()[0] == 1


def test_reopen_is_idempotent(db_path: Path) -> None:
    with Store.open(db_path) as first:
        call_id = first.call_started("in", "home", "sip:1@x", "1", "", "", 10.0)
    with Store.open(db_path) as second:
        assert second.schema_version == len(MIGRATIONS)
        assert [c.id for c in second.recent_calls()] == [call_id]


def test_applies_only_new_migrations(db_path: Path) -> None:
    Store.open(db_path, migrations=MIGRATIONS[:1]).close()
    extra = (MIGRATIONS[0], "CREATE TABLE extra (id INTEGER PRIMARY KEY, name TEXT);")
    with Store.open(db_path, migrations=extra) as store:
        assert store.schema_version == 2
    assert tables(db_path) == ["calls", "extra"]


def test_newer_database_is_refused(db_path: Path) -> None:
    conn = sqlite3.connect(db_path)
    conn.execute("PRAGMA user_version = 7")
    conn.close()
    with pytest.raises(StoreError) as info:
        Store.open(db_path)
    assert str(info.value) == (
        f"{db_path}: database schema version 7 is newer than this Linegram supports"
        f" ({len(MIGRATIONS)});"
        " upgrade Linegram or restore a backup"
    )


def test_failed_migration_leaves_previous_version(db_path: Path) -> None:
    Store.open(db_path, migrations=MIGRATIONS[:1]).close()
    broken = (
        MIGRATIONS[0],
        "CREATE TABLE half (a); INSERT INTO half VALUES (1); INSERT INTO missing VALUES (1);",
    )
    with pytest.raises(StoreError) as info:
        Store.open(db_path, migrations=broken)
    assert str(info.value) == f"{db_path}: migration 2 failed: no such table: missing"
    assert user_version(db_path) == 1
    assert tables(db_path) == ["calls"]
    # The database is still usable, and the real migration 2 applies on top.
    with Store.open(db_path) as store:
        assert store.schema_version == len(MIGRATIONS)


def test_failed_first_migration_leaves_empty_database(db_path: Path) -> None:
    with pytest.raises(StoreError, match='migration 1 failed: near "NOT"'):
        Store.open(db_path, migrations=("CREATE TABLE t (a); NOT SQL;",))
    assert user_version(db_path) == 0
    assert tables(db_path) == []


def test_not_a_database(db_path: Path) -> None:
    db_path.write_bytes(b"this is not sqlite" * 100)
    with pytest.raises(StoreError) as info:
        Store.open(db_path)
    assert str(info.value) == f"{db_path}: file is not a database"


# ------------------------------------------------------------------ call log


def test_call_round_trip(store: Store) -> None:
    call_id = store.call_started(
        "in", "home", "sip:+4930111@example.net", "+4930111", "Alice", "members", 100.0
    )
    store.call_answered(call_id, 103.5, codec="PCMA")
    store.call_ended(call_id, 163.75, "answered", "remote hung up")
    assert store.recent_calls() == [
        CallRecord(
            id=call_id,
            direction="in",
            line="home",
            remote_uri="sip:+4930111@example.net",
            remote_number="+4930111",
            remote_name="Alice",
            local_party="members",
            started_at=100.0,
            answered_at=103.5,
            ended_at=163.75,
            outcome="answered",
            end_reason="remote hung up",
            duration=60.25,
            codec="PCMA",
        )
    ]


def test_unanswered_call_has_zero_duration(store: Store) -> None:
    call_id = store.call_started("out", "home", "sip:123@x", "123", "", "bob", 5.0)
    store.call_ended(call_id, 35.0, "busy", "486 Busy Here")
    (rec,) = store.recent_calls()
    assert (rec.answered_at, rec.ended_at, rec.duration, rec.outcome, rec.codec) == (
        None,
        35.0,
        0.0,
        "busy",
        None,
    )


def test_first_answer_and_first_end_win(store: Store) -> None:
    call_id = store.call_started("in", "home", "", "", "", "", 0.0)
    store.call_answered(call_id, 2.0, codec="PCMU")
    store.call_answered(call_id, 3.0, codec="PCMA")
    store.call_ended(call_id, 12.0, "answered", "bye")
    store.call_ended(call_id, 20.0, "failed", "late")
    store.call_answered(call_id, 30.0)
    (rec,) = store.recent_calls()
    assert (rec.answered_at, rec.codec, rec.ended_at, rec.outcome, rec.end_reason) == (
        2.0,
        "PCMU",
        12.0,
        "answered",
        "bye",
    )
    assert rec.duration == 10.0


def test_recent_calls_newest_first_and_limited(store: Store) -> None:
    ids = [store.call_started("in", "home", "", str(n), "", "", float(n)) for n in range(5)]
    assert [c.id for c in store.recent_calls(limit=3)] == [ids[4], ids[3], ids[2]]
    assert [c.remote_number for c in store.recent_calls()] == ["4", "3", "2", "1", "0"]


def test_unknown_call_id(store: Store) -> None:
    with pytest.raises(StoreError, match="^no call with id 99$"):
        store.call_answered(99, 1.0)
    with pytest.raises(StoreError, match="^no call with id 99$"):
        store.call_ended(99, 1.0, "failed", "x")


def test_bad_values_rejected(store: Store) -> None:
    with pytest.raises(ValueError, match="direction must be 'in' or 'out', got 'sideways'"):
        store.call_started("sideways", "home", "", "", "", "", 0.0)  # type: ignore[arg-type]
    call_id = store.call_started("in", "home", "", "", "", "", 0.0)
    with pytest.raises(ValueError, match="outcome must be one of answered, .*, got 'great'"):
        store.call_ended(call_id, 1.0, "great", "x")  # type: ignore[arg-type]
    assert store.recent_calls()[0].ended_at is None


def test_schema_rejects_bad_outcome_written_directly(store: Store) -> None:
    store.call_started("in", "home", "", "", "", "", 0.0)
    with pytest.raises(sqlite3.IntegrityError, match="CHECK constraint failed"):
        store._conn.execute("UPDATE calls SET outcome = 'bogus'")


def test_mark_interrupted(store: Store) -> None:
    ringing = store.call_started("in", "home", "", "1", "", "", 100.0)
    talking = store.call_started("in", "home", "", "2", "", "", 100.0)
    store.call_answered(talking, 110.0, "PCMA")
    done = store.call_started("out", "home", "", "3", "", "", 50.0)
    store.call_ended(done, 60.0, "missed", "no answer")
    assert store.mark_interrupted(200.0) == 2
    by_id = {c.id: c for c in store.recent_calls()}
    assert (by_id[ringing].outcome, by_id[ringing].ended_at, by_id[ringing].duration) == (
        "interrupted",
        200.0,
        0.0,
    )
    assert (by_id[talking].outcome, by_id[talking].duration) == ("interrupted", 90.0)
    assert by_id[talking].end_reason == "gateway stopped during the call"
    assert (by_id[done].outcome, by_id[done].ended_at) == ("missed", 60.0)
    assert store.mark_interrupted(300.0) == 0


def test_data_survives_reopen(db_path: Path) -> None:
    with Store.open(db_path) as s:
        call_id = s.call_started("in", "home", "sip:a@b", "a", "A", "", 1.0)
        s.call_answered(call_id, 2.0, "PCMU")
    with Store.open(db_path) as s:
        assert s.mark_interrupted(9.0) == 1
        (rec,) = s.recent_calls()
        assert (rec.outcome, rec.duration, rec.codec) == ("interrupted", 7.0, "PCMU")

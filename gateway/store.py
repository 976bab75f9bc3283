"""The gateway's SQLite database: schema migrations and the call log.

Not an RFC module.  One file, ``<data_dir>/linegram.db``, written by the
gateway and read by the web UI (WAL lets both run at once).  Durability over
speed: ``synchronous=FULL``, because the Pi loses power without warning.

Migrations: ``PRAGMA user_version`` holds the number of scripts in
:data:`MIGRATIONS` already applied.  Each script runs in one transaction
together with the version bump, so a crash mid-way leaves the previous
version.  Never edit a released script; append a new one.

Writes are small synchronous transactions; they are fast enough to run on the
asyncio loop (a call produces three).
"""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType
from typing import Literal, get_args

from gateway.errors import LinegramError

__all__ = [
    "MIGRATIONS",
    "CallRecord",
    "Direction",
    "Outcome",
    "Store",
    "StoreError",
]

Direction = Literal["in", "out"]
Outcome = Literal["answered", "missed", "busy", "rejected", "cancelled", "failed", "interrupted"]
DIRECTIONS: tuple[str, ...] = get_args(Direction)
OUTCOMES: tuple[str, ...] = get_args(Outcome)


class StoreError(LinegramError, RuntimeError):
    """The database cannot be opened, migrated or updated as asked."""


MIGRATIONS: tuple[str, ...] = (
    # 1: the call log.  duration = talk time (ended - answered), 0 if never answered.
    """
    CREATE TABLE calls (
        id            INTEGER PRIMARY KEY,
        direction     TEXT NOT NULL CHECK (direction IN ('in', 'out')),
        line          TEXT NOT NULL,
        remote_uri    TEXT NOT NULL DEFAULT '',
        remote_number TEXT NOT NULL DEFAULT '',
        remote_name   TEXT NOT NULL DEFAULT '',
        local_party   TEXT NOT NULL DEFAULT '',
        started_at    REAL NOT NULL,
        answered_at   REAL,
        ended_at      REAL,
        outcome       TEXT CHECK (outcome IN ('answered', 'missed', 'busy', 'rejected',
                                              'cancelled', 'failed', 'interrupted')),
        end_reason    TEXT,
        duration      REAL,
        codec         TEXT
    );
    CREATE INDEX calls_by_start ON calls (started_at);
    CREATE INDEX calls_open ON calls (ended_at) WHERE ended_at IS NULL;
    """,
)


@dataclass(frozen=True)
class CallRecord:
    """One row of the call log; times are Unix seconds."""

    id: int
    direction: Direction
    line: str
    remote_uri: str
    remote_number: str
    remote_name: str
    local_party: str
    started_at: float
    answered_at: float | None
    ended_at: float | None
    outcome: Outcome | None
    end_reason: str | None
    duration: float | None
    codec: str | None


_CALL_COLUMNS = (
    "id, direction, line, remote_uri, remote_number, remote_name, local_party,"
    " started_at, answered_at, ended_at, outcome, end_reason, duration, codec"
)


class Store:
    """An open database.  Create with :meth:`open`; close with :meth:`close`."""

    def __init__(self, conn: sqlite3.Connection, path: Path) -> None:
        self._conn = conn
        self.path = path

    @classmethod
    def open(cls, path: Path | str, *, migrations: Sequence[str] = MIGRATIONS) -> Store:
        """Open (creating if needed) and migrate the database at *path*.

        *migrations* is for tests.  **Raises** :class:`StoreError` if the file
        is not a database, a migration fails, or the schema is newer than this
        code knows.
        """
        path = Path(path)
        try:
            # isolation_level=None: we issue BEGIN/COMMIT ourselves, identically on 3.11 and 3.13.
            conn = sqlite3.connect(path, isolation_level=None)
        except sqlite3.Error as exc:
            raise StoreError(f"{path}: cannot open database: {exc}") from exc
        try:
            conn.execute("PRAGMA busy_timeout = 5000")
            mode = conn.execute("PRAGMA journal_mode = WAL").fetchone()[0]
            if mode != "wal":
                raise StoreError(f"{path}: cannot switch to WAL journal (got {mode!r})")
            conn.execute("PRAGMA synchronous = FULL")
            conn.execute("PRAGMA foreign_keys = ON")
            _migrate(conn, path, migrations)
        except sqlite3.DatabaseError as exc:
            conn.close()
            raise StoreError(f"{path}: {exc}") from exc
        except BaseException:
            conn.close()
            raise
        return cls(conn, path)

    def close(self) -> None:
        self._conn.close()

    def __enter__(self) -> Store:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    @property
    def schema_version(self) -> int:
        return int(self._conn.execute("PRAGMA user_version").fetchone()[0])

    @contextmanager
    def _transaction(self) -> Iterator[sqlite3.Connection]:
        self._conn.execute("BEGIN IMMEDIATE")
        try:
            yield self._conn
        except BaseException:
            self._conn.execute("ROLLBACK")
            raise
        self._conn.execute("COMMIT")

    # ---------------------------------------------------------------- call log

    def call_started(
        self,
        direction: Direction,
        line: str,
        remote_uri: str,
        remote_number: str,
        remote_name: str,
        local_party: str,
        started_at: float,
    ) -> int:
        """Log a new call; returns its id."""
        if direction not in DIRECTIONS:
            raise ValueError(f"direction must be 'in' or 'out', got {direction!r}")
        with self._transaction() as db:
            cur = db.execute(
                "INSERT INTO calls (direction, line, remote_uri, remote_number, remote_name,"
                " local_party, started_at) VALUES (?, ?, ?, ?, ?, ?, ?)",
                (direction, line, remote_uri, remote_number, remote_name, local_party, started_at),
            )
            assert cur.lastrowid is not None
            return cur.lastrowid

    def call_answered(self, call_id: int, at: float, codec: str | None = None) -> None:
        """Record the answer time (the first one wins) and the codec."""
        with self._transaction() as db:
            self._require(db, call_id)
            db.execute(
                "UPDATE calls SET answered_at = ?, codec = coalesce(?, codec)"
                " WHERE id = ? AND answered_at IS NULL AND ended_at IS NULL",
                (at, codec, call_id),
            )

    def call_ended(self, call_id: int, at: float, outcome: Outcome, end_reason: str) -> None:
        """Record the end, its outcome and reason; computes ``duration``.

        The first end wins: ending an ended call changes nothing.
        """
        if outcome not in OUTCOMES:
            raise ValueError(f"outcome must be one of {', '.join(OUTCOMES)}, got {outcome!r}")
        with self._transaction() as db:
            self._require(db, call_id)
            db.execute(
                "UPDATE calls SET ended_at = ?, outcome = ?, end_reason = ?,"
                " duration = CASE WHEN answered_at IS NULL THEN 0.0"
                "                 ELSE max(0.0, ? - answered_at) END"
                " WHERE id = ? AND ended_at IS NULL",
                (at, outcome, end_reason, at, call_id),
            )

    def recent_calls(self, limit: int = 50) -> list[CallRecord]:
        """The newest *limit* calls, newest first."""
        rows = self._conn.execute(
            f"SELECT {_CALL_COLUMNS} FROM calls ORDER BY started_at DESC, id DESC LIMIT ?",
            (limit,),
        ).fetchall()
        return [CallRecord(*row) for row in rows]

    def mark_interrupted(self, at: float) -> int:
        """End every call left open by a crash or power cut; returns how many.

        Run once at start-up, before any new call exists.
        """
        with self._transaction() as db:
            cur = db.execute(
                "UPDATE calls SET ended_at = ?, outcome = 'interrupted',"
                " end_reason = 'gateway stopped during the call',"
                " duration = CASE WHEN answered_at IS NULL THEN 0.0"
                "                 ELSE max(0.0, ? - answered_at) END"
                " WHERE ended_at IS NULL",
                (at, at),
            )
            return cur.rowcount

    @staticmethod
    def _require(db: sqlite3.Connection, call_id: int) -> None:
        if db.execute("SELECT 1 FROM calls WHERE id = ?", (call_id,)).fetchone() is None:
            raise StoreError(f"no call with id {call_id}")


def _migrate(conn: sqlite3.Connection, path: Path, migrations: Sequence[str]) -> None:
    version = int(conn.execute("PRAGMA user_version").fetchone()[0])
    if version > len(migrations):
        raise StoreError(
            f"{path}: database schema version {version} is newer than this Linegram"
            f" supports ({len(migrations)}); upgrade Linegram or restore a backup"
        )
    for number, script in enumerate(migrations[version:], start=version + 1):
        # executescript() would commit an open transaction first, so BEGIN and
        # COMMIT live inside the script; user_version is transactional.
        try:
            conn.executescript(
                f"BEGIN IMMEDIATE;\n{script}\n;PRAGMA user_version = {number};\nCOMMIT;"
            )
        except sqlite3.Error as exc:
            if conn.in_transaction:
                conn.execute("ROLLBACK")
            raise StoreError(f"{path}: migration {number} failed: {exc}") from exc

"""The gateway's SQLite database: schema migrations, call log, members and invitations.

Not an RFC module.  One file, ``<data_dir>/linegram.db``, written by the
gateway and read by the web UI (WAL lets both run at once).  Durability over
speed: ``synchronous=FULL``, because the Pi loses power without warning.

Migrations: ``PRAGMA user_version`` holds the number of scripts in
:data:`MIGRATIONS` already applied.  Each script runs in one transaction
together with the version bump, so a crash mid-way leaves the previous
version.  Never edit a released script; append a new one.

Writes are small synchronous transactions; they are fast enough to run on the
asyncio loop (a call produces three).  Every write validates its values first
(:class:`ValueError` naming the field) and runs in one ``BEGIN IMMEDIATE``
transaction.  Rows that must exist but do not raise :class:`NotFound`.
"""

from __future__ import annotations

import math
import re
import sqlite3
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType
from typing import Any, Literal, get_args

from gateway.errors import LinegramError

__all__ = [
    "MIGRATIONS",
    "CallRecord",
    "Direction",
    "InvitationRecord",
    "MemberRecord",
    "NotFound",
    "Outcome",
    "OutgoingMethod",
    "Store",
    "StoreError",
]

Direction = Literal["in", "out"]
Outcome = Literal["answered", "missed", "busy", "rejected", "cancelled", "failed", "interrupted"]
DIRECTIONS: tuple[str, ...] = get_args(Direction)
OUTCOMES: tuple[str, ...] = get_args(Outcome)
OutgoingMethod = Literal["invite", "callback"]
OUTGOING_METHODS: tuple[str, ...] = get_args(OutgoingMethod)

NOTE_MAX = 200  # characters of an invitation's note
_INT64 = (-(2**63), 2**63 - 1)
_TOKEN_HASH = re.compile(r"[0-9a-f]{64}")


class StoreError(LinegramError, RuntimeError):
    """The database cannot be opened, migrated or updated as asked."""


class NotFound(StoreError, LookupError):
    """The call, member or invitation named by id does not exist."""


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
    # 2: members, the lines they belong to, invitations; calls name their member.
    # Lines are kept in the order given (rowid), so the member's buttons follow it.
    """
    CREATE TABLE members (
        id                 INTEGER PRIMARY KEY,
        telegram_id        INTEGER NOT NULL UNIQUE,
        access_hash        INTEGER NOT NULL DEFAULT 0,
        name               TEXT NOT NULL DEFAULT '',
        username           TEXT NOT NULL DEFAULT '',
        owner              INTEGER NOT NULL DEFAULT 0 CHECK (owner IN (0, 1)),
        outgoing_method    TEXT NOT NULL DEFAULT 'invite'
                           CHECK (outgoing_method IN ('invite', 'callback')),
        default_line       TEXT NOT NULL DEFAULT '',
        linked_at          REAL NOT NULL,
        privacy            TEXT NOT NULL DEFAULT '',
        privacy_checked_at REAL
    );
    CREATE UNIQUE INDEX members_one_owner ON members (owner) WHERE owner = 1;
    CREATE TABLE member_lines (
        member_id INTEGER NOT NULL REFERENCES members (id) ON DELETE CASCADE,
        line      TEXT NOT NULL,
        UNIQUE (member_id, line)
    );
    CREATE INDEX member_lines_by_line ON member_lines (line);
    CREATE TABLE invitations (
        id         INTEGER PRIMARY KEY,
        token_hash TEXT NOT NULL UNIQUE,
        note       TEXT NOT NULL DEFAULT '',
        created_at REAL NOT NULL,
        expires_at REAL NOT NULL,
        used_at    REAL,
        used_by    INTEGER REFERENCES members (id) ON DELETE SET NULL,
        revoked_at REAL
    );
    CREATE TABLE invitation_lines (
        invitation_id INTEGER NOT NULL REFERENCES invitations (id) ON DELETE CASCADE,
        line          TEXT NOT NULL,
        UNIQUE (invitation_id, line)
    );
    ALTER TABLE calls ADD COLUMN member_id INTEGER REFERENCES members (id) ON DELETE SET NULL;
    ALTER TABLE calls ADD COLUMN member_name TEXT NOT NULL DEFAULT '';
    CREATE INDEX calls_by_member ON calls (member_id);
    """,
    # 3: small named values the gateway keeps (missed_seen_at: the missed-call LED was
    # cleared then); missed calls by end time, for the count of those not yet seen.
    """
    CREATE TABLE markers (
        name  TEXT PRIMARY KEY,
        value REAL NOT NULL
    );
    CREATE INDEX calls_missed ON calls (ended_at) WHERE outcome = 'missed';
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
    member_id: int | None = None  # the member who took or placed it (None: nobody, or removed)
    member_name: str = ""  # their name at the time, kept after they are removed


_CALL_COLUMNS = (
    "id, direction, line, remote_uri, remote_number, remote_name, local_party,"
    " started_at, answered_at, ended_at, outcome, end_reason, duration, codec,"
    " member_id, member_name"
)


@dataclass(frozen=True)
class MemberRecord:
    """A household member linked to the gateway."""

    id: int
    telegram_id: int
    access_hash: int  # the gateway account's hash for them; 0 = not met yet
    name: str
    username: str
    owner: bool  # the first linked member (or the oldest after the owner left)
    outgoing_method: OutgoingMethod  # default "invite"
    default_line: str  # "" = ask when several lines
    lines: tuple[str, ...]  # lines this member belongs to (rings + may dial out)
    linked_at: float
    privacy: str  # last PrivacyVerdict reason ("" = never checked)
    privacy_checked_at: float | None


_MEMBER_COLUMNS = (
    "id, telegram_id, access_hash, name, username, owner, outgoing_method, default_line,"
    " linked_at, privacy, privacy_checked_at"
)


@dataclass(frozen=True)
class InvitationRecord:
    """An invitation to link a Telegram account to some lines; usable once."""

    id: int
    token_hash: str  # sha256 hex of the token; the token itself is never stored
    lines: tuple[str, ...]
    note: str  # who it is for, as the owner typed it
    created_at: float
    expires_at: float
    used_at: float | None
    used_by: int | None  # member id (None after that member was removed)
    revoked_at: float | None


_INVITATION_COLUMNS = "id, token_hash, note, created_at, expires_at, used_at, used_by, revoked_at"


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

    def call_member(self, call_id: int, member_id: int | None, member_name: str) -> None:
        """Name the member who took or placed a call (None clears it)."""
        _check_optional_id("member_id", member_id)
        _check_str("member_name", member_name)
        with self._transaction() as db:
            self._require(db, call_id)
            if member_id is not None:
                _require_member(db, member_id)
            db.execute(
                "UPDATE calls SET member_id = ?, member_name = ? WHERE id = ?",
                (member_id, member_name, call_id),
            )

    def calls(
        self,
        *,
        line: str | None = None,
        member_id: int | None = None,
        direction: Direction | None = None,
        outcome: Outcome | None = None,
        limit: int = 50,
        offset: int = 0,
    ) -> list[CallRecord]:
        """Calls matching every filter given, newest first; *limit* and *offset* page them."""
        if isinstance(limit, bool) or not isinstance(limit, int) or limit < 1:
            raise ValueError(f"limit must be a positive integer, got {limit!r}")
        if isinstance(offset, bool) or not isinstance(offset, int) or offset < 0:
            raise ValueError(f"offset must be a non-negative integer, got {offset!r}")
        where, args = _call_filters(line, member_id, direction, outcome)
        rows = self._conn.execute(
            f"SELECT {_CALL_COLUMNS} FROM calls{where}"
            " ORDER BY started_at DESC, id DESC LIMIT ? OFFSET ?",
            (*args, limit, offset),
        ).fetchall()
        return [CallRecord(*row) for row in rows]

    def count_calls(
        self,
        *,
        line: str | None = None,
        member_id: int | None = None,
        direction: Direction | None = None,
        outcome: Outcome | None = None,
    ) -> int:
        """How many calls :meth:`calls` would page through with these filters."""
        where, args = _call_filters(line, member_id, direction, outcome)
        return int(self._conn.execute(f"SELECT count(*) FROM calls{where}", args).fetchone()[0])

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

    # ------------------------------------------------------ missed calls waiting

    def missed_seen_at(self) -> float:
        """When missed calls were last marked as seen (0.0 = never)."""
        row = self._conn.execute(
            "SELECT value FROM markers WHERE name = 'missed_seen_at'"
        ).fetchone()
        return float(row[0]) if row else 0.0

    def mark_missed_seen(self, at: float) -> None:
        """Every missed call that ended up to *at* has been seen (the LED goes off)."""
        _check_time("at", at)
        with self._transaction() as db:
            db.execute(
                "INSERT INTO markers (name, value) VALUES ('missed_seen_at', ?)"
                " ON CONFLICT (name) DO UPDATE SET value = max(value, excluded.value)",
                (at,),
            )

    def missed_waiting(self) -> int:
        """Missed incoming calls that ended after :meth:`missed_seen_at`."""
        row = self._conn.execute(
            "SELECT count(*) FROM calls WHERE outcome = 'missed' AND direction = 'in'"
            " AND ended_at > coalesce("
            "(SELECT value FROM markers WHERE name = 'missed_seen_at'), -1)"
        ).fetchone()
        return int(row[0])

    @staticmethod
    def _require(db: sqlite3.Connection, call_id: int) -> None:
        if db.execute("SELECT 1 FROM calls WHERE id = ?", (call_id,)).fetchone() is None:
            raise NotFound(f"no call with id {call_id}")

    # ----------------------------------------------------------------- members

    def add_member(
        self,
        telegram_id: int,
        access_hash: int,
        name: str,
        username: str,
        lines: Sequence[str],
        at: float,
    ) -> MemberRecord:
        """Link a Telegram account to *lines*; returns the member.

        The first member (whenever there is no owner) becomes the owner.  If
        *telegram_id* is already a member, its name, username and access hash
        are updated and *lines* added to its own (same id, same ``linked_at``).
        """
        _check_telegram_id(telegram_id)
        _check_int64("access_hash", access_hash)
        _check_str("name", name)
        _check_str("username", username)
        wanted = _check_lines("lines", lines)
        _check_time("at", at)
        with self._transaction() as db:
            row = db.execute(
                "SELECT id FROM members WHERE telegram_id = ?", (telegram_id,)
            ).fetchone()
            if row is not None:
                member_id = int(row[0])
                db.execute(
                    "UPDATE members SET access_hash = ?, name = ?, username = ? WHERE id = ?",
                    (access_hash, name, username, member_id),
                )
            else:
                has_owner = db.execute("SELECT 1 FROM members WHERE owner = 1").fetchone()
                cur = db.execute(
                    "INSERT INTO members (telegram_id, access_hash, name, username, owner,"
                    " linked_at) VALUES (?, ?, ?, ?, ?, ?)",
                    (telegram_id, access_hash, name, username, int(has_owner is None), at),
                )
                assert cur.lastrowid is not None
                member_id = cur.lastrowid
            db.executemany(
                "INSERT OR IGNORE INTO member_lines (member_id, line) VALUES (?, ?)",
                [(member_id, line) for line in wanted],
            )
            return _member(db, member_id)

    def member(self, member_id: int) -> MemberRecord | None:
        row = self._conn.execute(
            f"SELECT {_MEMBER_COLUMNS} FROM members WHERE id = ?", (member_id,)
        ).fetchone()
        return _member_from_row(self._conn, row) if row is not None else None

    def member_by_telegram(self, telegram_id: int) -> MemberRecord | None:
        row = self._conn.execute(
            f"SELECT {_MEMBER_COLUMNS} FROM members WHERE telegram_id = ?", (telegram_id,)
        ).fetchone()
        return _member_from_row(self._conn, row) if row is not None else None

    def members(self) -> list[MemberRecord]:
        """Every member, by id."""
        rows = self._conn.execute(f"SELECT {_MEMBER_COLUMNS} FROM members ORDER BY id").fetchall()
        return [_member_from_row(self._conn, row) for row in rows]

    def members_of_line(self, line: str) -> list[MemberRecord]:
        """The members a call on *line* rings, by id."""
        rows = self._conn.execute(
            f"SELECT {_MEMBER_COLUMNS} FROM members WHERE id IN"
            " (SELECT member_id FROM member_lines WHERE line = ?) ORDER BY id",
            (line,),
        ).fetchall()
        return [_member_from_row(self._conn, row) for row in rows]

    def update_member(
        self,
        member_id: int,
        *,
        name: str | None = None,
        username: str | None = None,
        access_hash: int | None = None,
        outgoing_method: OutgoingMethod | None = None,
        default_line: str | None = None,
        lines: Sequence[str] | None = None,
        privacy: str | None = None,
        privacy_checked_at: float | None = None,
    ) -> MemberRecord:
        """Change the fields given (None = unchanged); returns the member as stored.

        *lines* replaces the member's lines.  *default_line* must be "" or one
        of the member's (new) lines; a default line the member leaves is reset
        to "".  **Raises** :class:`NotFound` for an unknown member.
        """
        sets: dict[str, object] = {}
        if name is not None:
            sets["name"] = _check_str("name", name)
        if username is not None:
            sets["username"] = _check_str("username", username)
        if access_hash is not None:
            sets["access_hash"] = _check_int64("access_hash", access_hash)
        if outgoing_method is not None:
            if outgoing_method not in OUTGOING_METHODS:
                raise ValueError(
                    f"outgoing_method must be 'invite' or 'callback', got {outgoing_method!r}"
                )
            sets["outgoing_method"] = outgoing_method
        if default_line is not None:
            sets["default_line"] = _check_str("default_line", default_line)
        if privacy is not None:
            sets["privacy"] = _check_str("privacy", privacy)
        if privacy_checked_at is not None:
            sets["privacy_checked_at"] = _check_time("privacy_checked_at", privacy_checked_at)
        new_lines = _check_lines("lines", lines) if lines is not None else None
        with self._transaction() as db:
            current = _member(db, member_id)
            final_lines = new_lines if new_lines is not None else current.lines
            if default_line and default_line not in final_lines:
                raise ValueError(
                    f"default_line {default_line!r} is not one of the member's lines"
                    f" ({', '.join(final_lines) or 'none'})"
                )
            if default_line is None and current.default_line not in ("", *final_lines):
                sets["default_line"] = ""
            if sets:
                assignments = ", ".join(f"{column} = ?" for column in sets)
                db.execute(
                    f"UPDATE members SET {assignments} WHERE id = ?", (*sets.values(), member_id)
                )
            if new_lines is not None:
                db.execute("DELETE FROM member_lines WHERE member_id = ?", (member_id,))
                db.executemany(
                    "INSERT INTO member_lines (member_id, line) VALUES (?, ?)",
                    [(member_id, line) for line in new_lines],
                )
            return _member(db, member_id)

    def remove_member(self, member_id: int) -> None:
        """Unlink a member.  Ownership moves to the oldest remaining member.

        Their calls keep ``member_name``; ``member_id`` becomes None there and
        in the invitation they used.  **Raises** :class:`NotFound`.
        """
        with self._transaction() as db:
            was_owner = _member(db, member_id).owner
            db.execute("DELETE FROM members WHERE id = ?", (member_id,))
            if was_owner:
                db.execute(
                    "UPDATE members SET owner = 1 WHERE id ="
                    " (SELECT id FROM members ORDER BY linked_at, id LIMIT 1)"
                )

    # ------------------------------------------------------------- invitations

    def create_invitation(
        self,
        token_hash: str,
        lines: Sequence[str],
        note: str,
        created_at: float,
        expires_at: float,
    ) -> InvitationRecord:
        """Store a new invitation for *lines* (at least one)."""
        if not isinstance(token_hash, str) or not _TOKEN_HASH.fullmatch(token_hash):
            raise ValueError("token_hash must be 64 lowercase hex digits (a sha256)")
        wanted = _check_lines("lines", lines)
        if not wanted:
            raise ValueError("lines must name at least one line")
        _check_str("note", note)
        if len(note) > NOTE_MAX:
            raise ValueError(f"note must be at most {NOTE_MAX} characters, got {len(note)}")
        _check_time("created_at", created_at)
        _check_time("expires_at", expires_at)
        if expires_at <= created_at:
            raise ValueError(
                f"expires_at must be after created_at, got {expires_at!r} <= {created_at!r}"
            )
        with self._transaction() as db:
            if db.execute(
                "SELECT 1 FROM invitations WHERE token_hash = ?", (token_hash,)
            ).fetchone():
                raise ValueError("token_hash is already used by another invitation")
            cur = db.execute(
                "INSERT INTO invitations (token_hash, note, created_at, expires_at)"
                " VALUES (?, ?, ?, ?)",
                (token_hash, note, created_at, expires_at),
            )
            assert cur.lastrowid is not None
            invitation_id = cur.lastrowid
            db.executemany(
                "INSERT INTO invitation_lines (invitation_id, line) VALUES (?, ?)",
                [(invitation_id, line) for line in wanted],
            )
            return _invitation(db, invitation_id)

    def invitation(self, invitation_id: int) -> InvitationRecord | None:
        row = self._conn.execute(
            f"SELECT {_INVITATION_COLUMNS} FROM invitations WHERE id = ?", (invitation_id,)
        ).fetchone()
        return _invitation_from_row(self._conn, row) if row is not None else None

    def invitation_by_hash(self, token_hash: str) -> InvitationRecord | None:
        row = self._conn.execute(
            f"SELECT {_INVITATION_COLUMNS} FROM invitations WHERE token_hash = ?", (token_hash,)
        ).fetchone()
        return _invitation_from_row(self._conn, row) if row is not None else None

    def use_invitation(self, invitation_id: int, member_id: int, at: float) -> bool:
        """Mark the invitation used by *member_id*.

        Atomic: True only if it exists, was not used, not revoked and
        ``at < expires_at``; otherwise nothing changes.  **Raises**
        :class:`NotFound` for an unknown member.
        """
        _check_time("at", at)
        with self._transaction() as db:
            _require_member(db, member_id)
            cur = db.execute(
                "UPDATE invitations SET used_at = ?, used_by = ? WHERE id = ?"
                " AND used_at IS NULL AND revoked_at IS NULL AND ? < expires_at",
                (at, member_id, invitation_id, at),
            )
            return cur.rowcount == 1

    def revoke_invitation(self, invitation_id: int, at: float) -> bool:
        """Revoke an invitation.  True if this revoked it; False if it was already
        used or revoked, or does not exist.  An expired one can still be revoked."""
        _check_time("at", at)
        with self._transaction() as db:
            cur = db.execute(
                "UPDATE invitations SET revoked_at = ? WHERE id = ?"
                " AND used_at IS NULL AND revoked_at IS NULL",
                (at, invitation_id),
            )
            return cur.rowcount == 1

    def invitations(
        self, include_finished: bool = False, *, at: float | None = None
    ) -> list[InvitationRecord]:
        """Invitations, newest first.

        Without *include_finished*, only those still usable at *at* (default:
        now): not used, not revoked, not expired.
        """
        where: str = ""
        args: list[float] = []
        if not include_finished:
            now = time.time() if at is None else _check_time("at", at)
            where = " WHERE used_at IS NULL AND revoked_at IS NULL AND ? < expires_at"
            args = [now]
        rows = self._conn.execute(
            f"SELECT {_INVITATION_COLUMNS} FROM invitations{where}"
            " ORDER BY created_at DESC, id DESC",
            args,
        ).fetchall()
        return [_invitation_from_row(self._conn, row) for row in rows]


# ------------------------------------------------------------------ helpers


def _call_filters(
    line: str | None, member_id: int | None, direction: str | None, outcome: str | None
) -> tuple[str, tuple[Any, ...]]:
    clauses: list[str] = []
    args: list[Any] = []
    if line is not None:
        clauses.append("line = ?")
        args.append(_check_str("line", line))
    if member_id is not None:
        clauses.append("member_id = ?")
        args.append(_check_optional_id("member_id", member_id))
    if direction is not None:
        if direction not in DIRECTIONS:
            raise ValueError(f"direction must be 'in' or 'out', got {direction!r}")
        clauses.append("direction = ?")
        args.append(direction)
    if outcome is not None:
        if outcome not in OUTCOMES:
            raise ValueError(f"outcome must be one of {', '.join(OUTCOMES)}, got {outcome!r}")
        clauses.append("outcome = ?")
        args.append(outcome)
    return (" WHERE " + " AND ".join(clauses) if clauses else ""), tuple(args)


def _member(db: sqlite3.Connection, member_id: int) -> MemberRecord:
    row = db.execute(f"SELECT {_MEMBER_COLUMNS} FROM members WHERE id = ?", (member_id,)).fetchone()
    if row is None:
        raise NotFound(f"no member with id {member_id}")
    return _member_from_row(db, row)


def _require_member(db: sqlite3.Connection, member_id: int) -> None:
    if db.execute("SELECT 1 FROM members WHERE id = ?", (member_id,)).fetchone() is None:
        raise NotFound(f"no member with id {member_id}")


def _member_from_row(db: sqlite3.Connection, row: tuple[Any, ...]) -> MemberRecord:
    (id_, telegram_id, access_hash, name, username, owner, method, default_line) = row[:8]
    linked_at, privacy, privacy_checked_at = row[8:]
    lines = tuple(
        r[0]
        for r in db.execute(
            "SELECT line FROM member_lines WHERE member_id = ? ORDER BY rowid", (id_,)
        )
    )
    return MemberRecord(
        id=id_,
        telegram_id=telegram_id,
        access_hash=access_hash,
        name=name,
        username=username,
        owner=bool(owner),
        outgoing_method=method,
        default_line=default_line,
        lines=lines,
        linked_at=linked_at,
        privacy=privacy,
        privacy_checked_at=privacy_checked_at,
    )


def _invitation(db: sqlite3.Connection, invitation_id: int) -> InvitationRecord:
    row = db.execute(
        f"SELECT {_INVITATION_COLUMNS} FROM invitations WHERE id = ?", (invitation_id,)
    ).fetchone()
    if row is None:
        raise NotFound(f"no invitation with id {invitation_id}")
    return _invitation_from_row(db, row)


def _invitation_from_row(db: sqlite3.Connection, row: tuple[Any, ...]) -> InvitationRecord:
    id_, token_hash, note, created_at, expires_at, used_at, used_by, revoked_at = row
    lines = tuple(
        r[0]
        for r in db.execute(
            "SELECT line FROM invitation_lines WHERE invitation_id = ? ORDER BY rowid", (id_,)
        )
    )
    return InvitationRecord(
        id_, token_hash, lines, note, created_at, expires_at, used_at, used_by, revoked_at
    )


def _check_str(field: str, value: object) -> str:
    if not isinstance(value, str):
        raise ValueError(f"{field} must be a string, got {type(value).__name__}")
    return value


def _check_int64(field: str, value: object) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise ValueError(f"{field} must be an integer, got {type(value).__name__}")
    if not _INT64[0] <= value <= _INT64[1]:
        raise ValueError(f"{field} must fit in 64 bits, got {value}")
    return value


def _check_telegram_id(value: object) -> int:
    telegram_id = _check_int64("telegram_id", value)
    if telegram_id <= 0:
        raise ValueError(f"telegram_id must be positive, got {telegram_id}")
    return telegram_id


def _check_optional_id(field: str, value: object) -> int | None:
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ValueError(f"{field} must be a positive integer, got {value!r}")
    return value


def _check_time(field: str, value: object) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        raise ValueError(f"{field} must be a finite number of seconds, got {value!r}")
    return float(value)


def _check_lines(field: str, lines: object) -> tuple[str, ...]:
    """Line names, non-empty strings; duplicates dropped, order kept."""
    if isinstance(lines, str) or not isinstance(lines, Sequence):
        raise ValueError(f"{field} must be a list of line names, got {type(lines).__name__}")
    for line in lines:
        if not isinstance(line, str) or not line.strip():
            raise ValueError(f"{field} must hold non-empty line names, got {line!r}")
    return tuple(dict.fromkeys(lines))


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

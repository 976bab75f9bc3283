"""Tests for gateway/store.py migration 2: members, invitations, the call log's member."""

from __future__ import annotations

import hashlib
import sqlite3
from collections.abc import Iterator
from pathlib import Path

import pytest

from gateway.store import MIGRATIONS, InvitationRecord, MemberRecord, NotFound, Store


@pytest.fixture
def db_path(tmp_path: Path) -> Path:
    return tmp_path / "linegram.db"


@pytest.fixture
def store(db_path: Path) -> Iterator[Store]:
    s = Store.open(db_path)
    yield s
    s.close()


def token_hash(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def add(store: Store, telegram_id: int, *lines: str, at: float = 0.0) -> MemberRecord:
    return store.add_member(telegram_id, 1000 + telegram_id, f"M{telegram_id}", "", lines, at)


# ------------------------------------------------------------------ members


def test_first_member_is_owner(store: Store) -> None:
    alice = store.add_member(111, -5, "Alice", "alice", ["home", "office"], 10.0)
    bob = store.add_member(222, 0, "Bob", "", ["home"], 20.0)
    assert alice == MemberRecord(
        id=alice.id,
        telegram_id=111,
        access_hash=-5,
        name="Alice",
        username="alice",
        owner=True,
        outgoing_method="invite",
        default_line="",
        lines=("home", "office"),
        linked_at=10.0,
        privacy="",
        privacy_checked_at=None,
    )
    assert bob.owner is False
    assert store.members() == [alice, bob]
    assert store.member(bob.id) == bob
    assert store.member_by_telegram(222) == bob
    assert store.member(999) is None
    assert store.member_by_telegram(999) is None


def test_relink_keeps_id_and_adds_lines(store: Store) -> None:
    first = store.add_member(111, 1, "Alice", "", ["home"], 10.0)
    store.update_member(first.id, outgoing_method="callback", default_line="home")
    again = store.add_member(111, 2, "Alice B", "alice", ["office", "home"], 50.0)
    assert again.id == first.id
    assert (again.access_hash, again.name, again.username) == (2, "Alice B", "alice")
    assert again.lines == ("home", "office")
    # Settings and seniority survive re-linking.
    assert (again.linked_at, again.owner, again.outgoing_method, again.default_line) == (
        10.0,
        True,
        "callback",
        "home",
    )
    assert len(store.members()) == 1


def test_remove_owner_moves_ownership_to_oldest(store: Store) -> None:
    owner = add(store, 1, "home", at=10.0)
    newer = add(store, 2, "home", at=30.0)
    older = add(store, 3, "home", at=20.0)  # linked later in id order, earlier in time
    store.remove_member(owner.id)
    assert [(m.id, m.owner) for m in store.members()] == [(newer.id, False), (older.id, True)]
    store.remove_member(newer.id)  # not the owner: nothing moves
    assert [(m.id, m.owner) for m in store.members()] == [(older.id, True)]
    store.remove_member(older.id)
    assert store.members() == []
    # With nobody left, the next member is the owner again.
    assert add(store, 4, "home").owner is True
    with pytest.raises(NotFound, match="^no member with id 999$"):
        store.remove_member(999)


def test_members_of_line(store: Store) -> None:
    a = add(store, 1, "home")
    b = add(store, 2, "office")
    c = add(store, 3, "office", "home")
    assert [m.id for m in store.members_of_line("home")] == [a.id, c.id]
    assert [m.id for m in store.members_of_line("office")] == [b.id, c.id]
    assert store.members_of_line("nowhere") == []
    store.update_member(c.id, lines=["office"])
    assert [m.id for m in store.members_of_line("home")] == [a.id]
    store.remove_member(b.id)
    assert [m.id for m in store.members_of_line("office")] == [c.id]


def test_update_member(store: Store) -> None:
    m = add(store, 1, "home", "office")
    updated = store.update_member(
        m.id,
        name="New",
        username="new",
        access_hash=77,
        outgoing_method="callback",
        default_line="office",
        privacy="restricted",
        privacy_checked_at=99.5,
    )
    assert updated == store.member(m.id)
    assert (updated.name, updated.username, updated.access_hash) == ("New", "new", 77)
    assert (updated.outgoing_method, updated.default_line) == ("callback", "office")
    assert (updated.privacy, updated.privacy_checked_at) == ("restricted", 99.5)
    # Nothing given: nothing changes.
    assert store.update_member(m.id) == updated
    # Leaving the default line resets it; lines keep the order given.
    after = store.update_member(m.id, lines=["garden", "home"])
    assert (after.lines, after.default_line) == (("garden", "home"), "")
    assert store.update_member(m.id, lines=[], default_line="").lines == ()


def test_update_member_validation(store: Store) -> None:
    m = add(store, 1, "home")
    with pytest.raises(
        ValueError, match="^outgoing_method must be 'invite' or 'callback', got 'x'$"
    ):
        store.update_member(m.id, outgoing_method="x")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="^default_line 'office' is not one of the member's lines"):
        store.update_member(m.id, default_line="office")
    with pytest.raises(ValueError, match="^lines must hold non-empty line names, got ''$"):
        store.update_member(m.id, lines=["home", ""])
    with pytest.raises(ValueError, match="^lines must be a list of line names, got str$"):
        store.update_member(m.id, lines="home")
    with pytest.raises(ValueError, match="^access_hash must fit in 64 bits"):
        store.update_member(m.id, access_hash=2**63)
    with pytest.raises(ValueError, match="^privacy_checked_at must be a finite number"):
        store.update_member(m.id, privacy_checked_at=float("nan"))
    with pytest.raises(NotFound, match="^no member with id 42$"):
        store.update_member(42, name="x")
    # A default line valid together with new lines is accepted in one update.
    assert store.update_member(m.id, lines=["office"], default_line="office").lines == ("office",)
    # A failed update changed nothing.
    with pytest.raises(ValueError):
        store.update_member(m.id, name="Changed", default_line="home")
    assert store.member(m.id) == store.update_member(m.id)
    assert store.member(m.id).name == "M1"  # type: ignore[union-attr]


def test_add_member_validation(store: Store) -> None:
    with pytest.raises(ValueError, match="^telegram_id must be positive, got 0$"):
        store.add_member(0, 0, "x", "", ["home"], 0.0)
    with pytest.raises(ValueError, match="^telegram_id must be an integer, got bool$"):
        store.add_member(True, 0, "x", "", ["home"], 0.0)
    with pytest.raises(ValueError, match="^name must be a string, got NoneType$"):
        store.add_member(1, 0, None, "", ["home"], 0.0)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="^at must be a finite number of seconds"):
        store.add_member(1, 0, "x", "", ["home"], float("inf"))
    assert store.members() == []


def test_schema_allows_one_owner_only(store: Store) -> None:
    add(store, 1)
    b = add(store, 2)
    with pytest.raises(sqlite3.IntegrityError, match="UNIQUE"):
        store._conn.execute("UPDATE members SET owner = 1 WHERE id = ?", (b.id,))


# ------------------------------------------------------------------ invitations


def test_invitation_round_trip(store: Store) -> None:
    inv = store.create_invitation(token_hash("t1"), ["home", "office"], "for Bob", 100.0, 400.0)
    assert inv == InvitationRecord(
        id=inv.id,
        token_hash=token_hash("t1"),
        lines=("home", "office"),
        note="for Bob",
        created_at=100.0,
        expires_at=400.0,
        used_at=None,
        used_by=None,
        revoked_at=None,
    )
    assert store.invitation_by_hash(token_hash("t1")) == inv
    assert store.invitation(inv.id) == inv
    assert store.invitation_by_hash(token_hash("other")) is None


def test_invitation_single_use(store: Store) -> None:
    inv = store.create_invitation(token_hash("t"), ["home"], "", 0.0, 300.0)
    a, b = add(store, 1, "home"), add(store, 2, "home")
    assert store.use_invitation(inv.id, a.id, 10.0) is True
    assert store.use_invitation(inv.id, b.id, 11.0) is False
    used = store.invitation(inv.id)
    assert used is not None and (used.used_at, used.used_by) == (10.0, a.id)
    assert store.revoke_invitation(inv.id, 12.0) is False


def test_invitation_expires(store: Store) -> None:
    inv = store.create_invitation(token_hash("t"), ["home"], "", 0.0, 300.0)
    m = add(store, 1)
    assert store.use_invitation(inv.id, m.id, 300.0) is False  # at == expires_at: too late
    assert store.use_invitation(inv.id, m.id, 299.999) is True


def test_invitation_revoked(store: Store) -> None:
    inv = store.create_invitation(token_hash("t"), ["home"], "", 0.0, 300.0)
    m = add(store, 1)
    assert store.revoke_invitation(inv.id, 5.0) is True
    assert store.revoke_invitation(inv.id, 6.0) is False
    assert store.use_invitation(inv.id, m.id, 7.0) is False
    assert store.invitation(inv.id).revoked_at == 5.0  # type: ignore[union-attr]
    assert store.revoke_invitation(999, 1.0) is False
    assert store.use_invitation(999, m.id, 1.0) is False
    with pytest.raises(NotFound, match="^no member with id 77$"):
        store.use_invitation(inv.id, 77, 1.0)


def test_invitations_listing(store: Store) -> None:
    used = store.create_invitation(token_hash("a"), ["home"], "used", 1.0, 100.0)
    revoked = store.create_invitation(token_hash("b"), ["home"], "revoked", 2.0, 100.0)
    expired = store.create_invitation(token_hash("c"), ["home"], "expired", 3.0, 50.0)
    pending = store.create_invitation(token_hash("d"), ["home"], "pending", 4.0, 100.0)
    store.use_invitation(used.id, add(store, 1).id, 10.0)
    store.revoke_invitation(revoked.id, 10.0)
    assert [i.id for i in store.invitations(at=60.0)] == [pending.id]
    assert [i.id for i in store.invitations(at=40.0)] == [pending.id, expired.id]
    assert [i.id for i in store.invitations(include_finished=True)] == [
        pending.id,
        expired.id,
        revoked.id,
        used.id,
    ]


def test_removed_member_leaves_used_invitation(store: Store) -> None:
    inv = store.create_invitation(token_hash("t"), ["home"], "", 0.0, 300.0)
    m = add(store, 1)
    store.use_invitation(inv.id, m.id, 1.0)
    store.remove_member(m.id)
    after = store.invitation(inv.id)
    assert after is not None and (after.used_at, after.used_by) == (1.0, None)


def test_create_invitation_validation(store: Store) -> None:
    good = token_hash("t")
    with pytest.raises(ValueError, match="^token_hash must be 64 lowercase hex digits"):
        store.create_invitation("secret-token", ["home"], "", 0.0, 1.0)
    with pytest.raises(ValueError, match="^token_hash must be 64 lowercase hex digits"):
        store.create_invitation(good.upper(), ["home"], "", 0.0, 1.0)
    with pytest.raises(ValueError, match="^lines must name at least one line$"):
        store.create_invitation(good, [], "", 0.0, 1.0)
    with pytest.raises(ValueError, match="^note must be at most 200 characters, got 201$"):
        store.create_invitation(good, ["home"], "x" * 201, 0.0, 1.0)
    with pytest.raises(ValueError, match="^expires_at must be after created_at"):
        store.create_invitation(good, ["home"], "", 5.0, 5.0)
    store.create_invitation(good, ["home", "home"], "", 0.0, 1.0)
    with pytest.raises(ValueError, match="^token_hash is already used by another invitation$"):
        store.create_invitation(good, ["home"], "", 0.0, 1.0)
    (only,) = store.invitations(include_finished=True)
    assert only.lines == ("home",)


# ------------------------------------------------------------------ call log


def make_calls(store: Store) -> dict[str, int]:
    """Six calls at t = 0..5 across lines, members, directions and outcomes."""
    a, b = add(store, 1, "home"), add(store, 2, "office")
    plan = [
        ("c0", "in", "home", a.id, "missed"),
        ("c1", "out", "home", a.id, "answered"),
        ("c2", "in", "office", b.id, "answered"),
        ("c3", "in", "home", None, "rejected"),
        ("c4", "out", "office", b.id, "busy"),
        ("c5", "in", "home", a.id, "answered"),
    ]
    ids: dict[str, int] = {"a": a.id, "b": b.id}
    for n, (key, direction, line, member, outcome) in enumerate(plan):
        call_id = store.call_started(direction, line, "", key, "", "", float(n))  # type: ignore[arg-type]
        if member is not None:
            store.call_member(call_id, member, f"M{member}")
        store.call_ended(call_id, n + 0.5, outcome, "x")  # type: ignore[arg-type]
        ids[key] = call_id
    return ids


def test_calls_filters(store: Store) -> None:
    ids = make_calls(store)

    def numbers(**filters: object) -> list[str]:
        return [c.remote_number for c in store.calls(**filters)]  # type: ignore[arg-type]

    assert numbers() == ["c5", "c4", "c3", "c2", "c1", "c0"]
    assert numbers(line="home") == ["c5", "c3", "c1", "c0"]
    assert numbers(member_id=ids["a"]) == ["c5", "c1", "c0"]
    assert numbers(direction="out") == ["c4", "c1"]
    assert numbers(outcome="answered") == ["c5", "c2", "c1"]
    assert numbers(line="home", direction="in", outcome="answered") == ["c5"]
    assert numbers(line="office", member_id=ids["a"]) == []
    assert store.count_calls() == 6
    assert store.count_calls(line="home") == 4
    assert store.count_calls(member_id=ids["b"], direction="out") == 1
    assert store.count_calls(outcome="failed") == 0
    rec = store.calls(member_id=ids["b"], limit=1)[0]
    assert (rec.member_id, rec.member_name) == (ids["b"], f"M{ids['b']}")


def test_calls_pagination(store: Store) -> None:
    make_calls(store)
    pages = [[c.remote_number for c in store.calls(limit=4, offset=offset)] for offset in (0, 4, 8)]
    assert pages == [["c5", "c4", "c3", "c2"], ["c1", "c0"], []]
    assert [c.remote_number for c in store.calls(line="home", limit=2, offset=1)] == ["c3", "c1"]


def test_calls_validation(store: Store) -> None:
    with pytest.raises(ValueError, match="^limit must be a positive integer, got 0$"):
        store.calls(limit=0)
    with pytest.raises(ValueError, match="^offset must be a non-negative integer, got -1$"):
        store.calls(offset=-1)
    with pytest.raises(ValueError, match="^direction must be 'in' or 'out', got 'up'$"):
        store.count_calls(direction="up")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="^outcome must be one of answered,"):
        store.calls(outcome="great")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="^member_id must be a positive integer, got 0$"):
        store.calls(member_id=0)


def test_call_member_and_removal(store: Store) -> None:
    m = add(store, 1, "home")
    call_id = store.call_started("in", "home", "", "1", "", "", 1.0)
    assert store.recent_calls()[0].member_id is None
    assert store.recent_calls()[0].member_name == ""
    store.call_member(call_id, m.id, "Alice")
    (rec,) = store.recent_calls()
    assert (rec.member_id, rec.member_name) == (m.id, "Alice")
    store.remove_member(m.id)
    (rec,) = store.recent_calls()
    assert (rec.member_id, rec.member_name) == (None, "Alice")
    with pytest.raises(NotFound, match="^no call with id 99$"):
        store.call_member(99, None, "")
    with pytest.raises(NotFound, match=f"^no member with id {m.id}$"):
        store.call_member(call_id, m.id, "Alice")


# ------------------------------------------------------------------ migration


def test_migration_from_version_1_keeps_calls(db_path: Path) -> None:
    with Store.open(db_path, migrations=MIGRATIONS[:1]) as v1:
        assert v1.schema_version == 1
        first = v1.call_started("in", "home", "sip:1@x", "1", "Alice", "", 10.0)
        v1.call_answered(first, 12.0, "PCMA")
        v1.call_ended(first, 20.0, "answered", "bye")
        second = v1.call_started("out", "home", "sip:2@x", "2", "", "", 30.0)
        # This code's CallRecord needs the new columns, so read the v1 rows directly.
        before = v1._conn.execute(
            "SELECT id, remote_number, outcome, duration FROM calls ORDER BY id DESC"
        ).fetchall()
    with Store.open(db_path) as v2:
        assert v2.schema_version == len(MIGRATIONS) == 3
        after = v2.recent_calls()
        assert [(c.id, c.remote_number, c.outcome, c.duration) for c in after] == before
        assert [(c.member_id, c.member_name) for c in after] == [(None, ""), (None, "")]
        assert v2.count_calls() == 2
        # The old rows take part in the new features.
        m = v2.add_member(5, 0, "Bob", "", ["home"], 40.0)
        assert m.owner
        v2.call_member(second, m.id, "Bob")
        assert [c.id for c in v2.calls(member_id=m.id)] == [second]

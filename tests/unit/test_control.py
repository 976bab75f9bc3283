"""Tests for gateway/control.py: the control socket, its clients and the store methods."""

from __future__ import annotations

import asyncio
import enum
import hashlib
import json
import logging
import os
import socket
import stat
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from gateway.control import (
    MAX_LINE,
    ControlClient,
    ControlError,
    ControlServer,
    ControlSocketError,
    Handler,
    call_sync,
    store_methods,
    to_json,
)
from gateway.store import NotFound, Store


@pytest.fixture
def sock_path(tmp_path: Path) -> Path:
    return tmp_path / "run" / "control.sock"


async def echo(params: dict[str, Any]) -> Any:
    return params


async def fail_value(params: dict[str, Any]) -> Any:
    raise ValueError("colour must be red or blue, got 'green'")


async def fail_control(params: dict[str, Any]) -> Any:
    raise ControlError("busy", "a call is in progress")


async def fail_not_found(params: dict[str, Any]) -> Any:
    raise NotFound("no member with id 9")


async def fail_internal(params: dict[str, Any]) -> Any:
    raise RuntimeError("secret detail")


async def unencodable(params: dict[str, Any]) -> Any:
    return object()


async def fail_cancelled(params: dict[str, Any]) -> Any:
    gone: asyncio.Future[None] = asyncio.get_running_loop().create_future()
    gone.cancel()
    return await gone  # what awaiting a cancelled operation looks like


BASIC: dict[str, Handler] = {
    "echo": echo,
    "fail.value": fail_value,
    "fail.control": fail_control,
    "fail.not_found": fail_not_found,
    "fail.internal": fail_internal,
    "unencodable": unencodable,
    "fail.cancelled": fail_cancelled,
}


@pytest.fixture
async def server(sock_path: Path) -> AsyncIterator[ControlServer]:
    srv = ControlServer(sock_path, BASIC)
    await srv.start()
    yield srv
    await srv.stop()


class Raw:
    """A raw connection: send lines, read answers as parsed JSON."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.reader, self.writer = reader, writer

    @classmethod
    async def open(cls, path: Path) -> Raw:
        reader, writer = await asyncio.open_unix_connection(os.fspath(path), limit=1 << 24)
        return cls(reader, writer)

    async def send(self, data: bytes) -> None:
        self.writer.write(data)
        await self.writer.drain()

    async def request(self, obj: Any) -> None:
        await self.send(json.dumps(obj).encode() + b"\n")

    async def answer(self) -> Any:
        line = await asyncio.wait_for(self.reader.readline(), 5)
        assert line.endswith(b"\n"), line
        return json.loads(line)

    async def closed(self) -> bool:
        return await asyncio.wait_for(self.reader.read(), 5) == b""

    def close(self) -> None:
        self.writer.close()


@pytest.fixture
async def raw(server: ControlServer) -> AsyncIterator[Raw]:
    conn = await Raw.open(server.path)
    yield conn
    conn.close()


# ------------------------------------------------------------------ transport


async def test_round_trip(raw: Raw) -> None:
    await raw.request({"id": 7, "method": "echo", "params": {"a": [1, "x"], "b": None}})
    assert await raw.answer() == {"id": 7, "result": {"a": [1, "x"], "b": None}}
    await raw.request({"id": "s-1", "method": "echo"})  # params may be left out
    assert await raw.answer() == {"id": "s-1", "result": {}}
    await raw.request({"method": "echo", "params": None})  # so may the id
    assert await raw.answer() == {"id": None, "result": {}}


async def test_socket_mode_and_private_directory(server: ControlServer, sock_path: Path) -> None:
    mode = os.stat(sock_path).st_mode
    assert stat.S_ISSOCK(mode)
    assert stat.S_IMODE(mode) == 0o660
    assert stat.S_IMODE(os.stat(sock_path.parent).st_mode) == 0o700


async def test_existing_directory_mode_is_left_alone(tmp_path: Path) -> None:
    os.chmod(tmp_path, 0o750)
    srv = ControlServer(tmp_path / "c.sock", BASIC)
    await srv.start()
    try:
        assert stat.S_IMODE(os.stat(tmp_path).st_mode) == 0o750
    finally:
        await srv.stop()


async def test_stop_removes_socket_and_closes_connections(
    server: ControlServer, sock_path: Path
) -> None:
    conn = await Raw.open(sock_path)
    # One exchange first: asyncio 3.11 leaks a connection accepted in the same
    # loop iteration as Server.close() (its transport is never made).
    await conn.request({"id": 1, "method": "echo"})
    assert await conn.answer() == {"id": 1, "result": {}}
    await server.stop()
    assert not os.path.lexists(sock_path)  # noqa: ASYNC240 - a test's check
    assert await conn.closed()
    conn.close()
    await server.stop()  # twice is harmless


async def test_stale_socket_is_replaced(sock_path: Path) -> None:
    os.mkdir(sock_path.parent, 0o700)
    dead = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    dead.bind(os.fspath(sock_path))
    dead.close()  # the file stays, nobody listens: what a killed gateway leaves
    srv = ControlServer(sock_path, BASIC)
    await srv.start()
    try:
        assert await asyncio.to_thread(call_sync, sock_path, "echo", x=1) == {"x": 1}
    finally:
        await srv.stop()


async def test_live_socket_is_not_stolen(server: ControlServer, sock_path: Path) -> None:
    second = ControlServer(sock_path, BASIC)
    with pytest.raises(ControlSocketError, match="another gateway is already listening there"):
        await second.start()
    async with ControlClient(sock_path) as client:  # the first one still serves
        assert await client.call("echo") == {}


async def test_regular_file_is_not_replaced(sock_path: Path) -> None:
    os.mkdir(sock_path.parent)
    with open(sock_path, "x") as f:  # noqa: ASYNC230 - a test's set-up
        f.write("precious")
    with pytest.raises(ControlSocketError, match="exists and is not a socket"):
        await ControlServer(sock_path, BASIC).start()
    assert os.stat(sock_path).st_size == len("precious")


async def test_too_long_path(tmp_path: Path) -> None:
    with pytest.raises(ControlSocketError, match="longer than 107 bytes"):
        await ControlServer(tmp_path / ("x" * 120), BASIC).start()


# ------------------------------------------------------------------ errors


GENERIC = "failed; see the gateway log"
BAD_ID = "id must be an integer, a string or null"
ERROR_CASES: list[tuple[Any, tuple[Any, str, str]]] = [
    ({"id": 1, "method": "nope"}, (1, "unknown_method", "no method 'nope'")),
    ({"id": 2, "method": "fail.value"}, (2, "invalid", "colour must be red or blue, got 'green'")),
    ({"id": 3, "method": "fail.control"}, (3, "busy", "a call is in progress")),
    ({"id": 4, "method": "fail.not_found"}, (4, "not_found", "no member with id 9")),
    ({"id": 5, "method": "fail.internal"}, (5, "internal", f"fail.internal {GENERIC}")),
    ({"id": 6, "method": "unencodable"}, (6, "internal", f"unencodable {GENERIC}")),
    ({"id": 10, "method": "fail.cancelled"}, (10, "internal", f"fail.cancelled {GENERIC}")),
    ({"id": 7}, (7, "bad_request", "method must be a string")),
    (
        {"id": 8, "method": "echo", "params": [1]},
        (8, "bad_request", "params must be a JSON object"),
    ),
    ({"id": 9, "method": "echo", "x": 1}, (9, "bad_request", "unknown request field 'x'")),
    ({"id": 1.5, "method": "echo"}, (None, "bad_request", BAD_ID)),
    ({"id": True, "method": "echo"}, (None, "bad_request", BAD_ID)),
    ([1, 2], (None, "bad_request", "a request must be a JSON object")),
]


@pytest.mark.parametrize(("request_obj", "expected"), ERROR_CASES)
async def test_error_codes(raw: Raw, request_obj: Any, expected: tuple[Any, str, str]) -> None:
    await raw.request(request_obj)
    request_id, code, message = expected
    assert await raw.answer() == {"id": request_id, "error": {"code": code, "message": message}}


async def test_internal_error_is_logged_not_sent(
    raw: Raw, caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.ERROR, logger="gateway.control"):
        await raw.request({"id": 1, "method": "fail.internal"})
        answer = await raw.answer()
    assert "secret detail" not in json.dumps(answer)
    (record,) = caplog.records
    assert record.getMessage() == "control API: method fail.internal failed"
    assert record.exc_info is not None and "secret detail" in str(record.exc_info[1])


@pytest.mark.parametrize(
    "line",
    [b"{not json\n", b"\xff\xfe\n", b"[" * 50000 + b"\n", b'{"id": 1, "method": "echo"\n'],
)
async def test_malformed_line_keeps_connection(raw: Raw, line: bytes) -> None:
    """Documented behaviour: a bad line is answered with id null and the connection stays open."""
    await raw.send(line)
    answer = await raw.answer()
    assert answer["id"] is None
    assert answer["error"]["code"] == "bad_request"
    assert answer["error"]["message"].startswith("not a JSON line: ")
    await raw.request({"id": 2, "method": "echo", "params": {"still": "here"}})
    assert await raw.answer() == {"id": 2, "result": {"still": "here"}}


async def test_blank_lines_are_ignored(raw: Raw) -> None:
    await raw.send(b"\n  \n")
    await raw.request({"id": 1, "method": "echo"})
    assert await raw.answer() == {"id": 1, "result": {}}


async def test_too_large_closes_connection(server: ControlServer, raw: Raw) -> None:
    await raw.send(b'{"id": 1, "method": "echo", "params": {"x": "' + b"a" * MAX_LINE + b'"}}\n')
    assert await raw.answer() == {
        "id": None,
        "error": {"code": "too_large", "message": f"request line longer than {MAX_LINE} bytes"},
    }
    assert await raw.closed()
    # The server itself carries on.
    async with ControlClient(server.path) as client:
        assert await client.call("echo", ok=True) == {"ok": True}


async def test_line_of_exactly_max_length_is_accepted(raw: Raw) -> None:
    head, tail = b'{"id":1,"method":"echo","params":{"x":"', b'"}}'
    line = head + b"a" * (MAX_LINE - len(head) - len(tail)) + tail
    assert len(line) == MAX_LINE
    await raw.send(line + b"\n")
    answer = await raw.answer()
    assert len(answer["result"]["x"]) == MAX_LINE - len(head) - len(tail)


async def test_last_line_without_newline_is_answered(raw: Raw) -> None:
    await raw.send(b'{"id": 3, "method": "echo"}')
    raw.writer.write_eof()
    assert await raw.answer() == {"id": 3, "result": {}}
    assert await raw.closed()


# ------------------------------------------------------------------ concurrency


async def test_requests_on_one_connection_run_concurrently(sock_path: Path) -> None:
    released = asyncio.Event()

    async def wait(params: dict[str, Any]) -> Any:
        await released.wait()
        return "waited"

    async def release(params: dict[str, Any]) -> Any:
        released.set()
        return "released"

    srv = ControlServer(sock_path, {"wait": wait, "release": release})
    await srv.start()
    conn = await Raw.open(sock_path)
    try:
        # "wait" can only finish because "release", sent after it, runs meanwhile.
        await conn.request({"id": 1, "method": "wait"})
        await conn.request({"id": 2, "method": "release"})
        assert [await conn.answer(), await conn.answer()] == [
            {"id": 2, "result": "released"},
            {"id": 1, "result": "waited"},
        ]
    finally:
        conn.close()
        await srv.stop()


async def test_concurrent_clients(server: ControlServer) -> None:
    clients = [ControlClient(server.path) for _ in range(10)]
    try:
        results = await asyncio.gather(
            *(c.call("echo", n=n, k=k) for n, c in enumerate(clients) for k in range(5))
        )
    finally:
        for c in clients:
            await c.close()
    assert results == [{"n": n, "k": k} for n in range(10) for k in range(5)]


async def test_client_shares_one_connection(server: ControlServer) -> None:
    async with ControlClient(server.path) as client:
        results = await asyncio.gather(*(client.call("echo", i=i) for i in range(40)))
        assert results == [{"i": i} for i in range(40)]
        assert len(server._connections) == 1


# ------------------------------------------------------------------ clients


async def test_client_raises_server_errors(server: ControlServer) -> None:
    async with ControlClient(server.path) as client:
        with pytest.raises(ControlError) as info:
            await client.call("fail.control")
        assert (info.value.code, info.value.message) == ("busy", "a call is in progress")
        with pytest.raises(ControlError) as info:
            await client.call("nope")
        assert info.value.code == "unknown_method"
        assert await client.call("echo", after="errors") == {"after": "errors"}


async def test_client_without_server(sock_path: Path) -> None:
    async with ControlClient(sock_path) as client:
        with pytest.raises(ControlError) as info:
            await client.call("echo")
    assert info.value.code == "unavailable"
    assert str(sock_path) in info.value.message


async def test_client_sees_server_stop_then_reconnects(sock_path: Path) -> None:
    started = asyncio.Event()

    async def hang(params: dict[str, Any]) -> Any:
        started.set()
        await asyncio.Event().wait()

    srv = ControlServer(sock_path, {"hang": hang, "echo": echo})
    await srv.start()
    async with ControlClient(sock_path) as client:
        call = asyncio.create_task(client.call("hang"))
        await started.wait()
        await srv.stop()
        with pytest.raises(ControlError) as info:
            await call
        assert info.value.code == "unavailable"
        await srv.start()
        try:
            assert await client.call("echo", back=1) == {"back": 1}
        finally:
            await srv.stop()


async def test_client_refuses_too_large_request(server: ControlServer) -> None:
    async with ControlClient(server.path) as client:
        with pytest.raises(ControlError) as info:
            await client.call("echo", x="a" * MAX_LINE)
        assert info.value.code == "too_large"
        assert await client.call("echo") == {}


async def test_call_sync(server: ControlServer) -> None:
    assert await asyncio.to_thread(call_sync, server.path, "echo", a=1) == {"a": 1}
    with pytest.raises(ControlError) as info:
        await asyncio.to_thread(call_sync, server.path, "fail.value")
    assert (info.value.code, info.value.message) == (
        "invalid",
        "colour must be red or blue, got 'green'",
    )


def test_call_sync_without_server(sock_path: Path) -> None:
    with pytest.raises(ControlError) as info:
        call_sync(sock_path, "echo")
    assert info.value.code == "unavailable"


async def test_call_sync_timeout(sock_path: Path) -> None:
    async def hang(params: dict[str, Any]) -> Any:
        await asyncio.Event().wait()

    srv = ControlServer(sock_path, {"hang": hang})
    await srv.start()
    try:
        with pytest.raises(ControlError) as info:
            await asyncio.to_thread(call_sync, sock_path, "hang", timeout=0.2)
        assert info.value.code == "timeout"
        assert info.value.message == "no answer to hang from the gateway within 0.2 s"
    finally:
        await srv.stop()


# ------------------------------------------------------------------ to_json


class Colour(enum.Enum):
    RED = "red"


@dataclass(frozen=True)
class Inner:
    colour: Colour
    where: tuple[str, int] | None


@dataclass
class Outer:
    name: str
    inner: Inner
    items: tuple[Inner, ...]
    path: Path
    ratio: float


def test_to_json() -> None:
    obj = Outer(
        "x", Inner(Colour.RED, ("1.2.3.4", 5060)), (Inner(Colour.RED, None),), Path("/a"), 0.5
    )
    assert to_json(obj) == {
        "name": "x",
        "inner": {"colour": "red", "where": ["1.2.3.4", 5060]},
        "items": [{"colour": "red", "where": None}],
        "path": "/a",
        "ratio": 0.5,
    }
    assert to_json({"k": (1, float("nan"))}) == {"k": [1, None]}
    with pytest.raises(TypeError, match="cannot encode object as JSON"):
        to_json([object()])
    with pytest.raises(TypeError, match="cannot encode a int key as JSON"):
        to_json({1: "x"})


# ------------------------------------------------------------------ store methods


@pytest.fixture
def store(tmp_path: Path) -> Iterator[Store]:
    s = Store.open(tmp_path / "linegram.db")
    yield s
    s.close()


@pytest.fixture
async def store_client(store: Store, sock_path: Path) -> AsyncIterator[ControlClient]:
    srv = ControlServer(sock_path, store_methods(store, clock=lambda: 1000.0))
    await srv.start()
    async with ControlClient(sock_path) as client:
        yield client
    await srv.stop()


async def error_of(client: ControlClient, method: str, **params: Any) -> tuple[str, str]:
    with pytest.raises(ControlError) as info:
        await client.call(method, **params)
    return info.value.code, info.value.message


async def test_members_methods(store: Store, store_client: ControlClient) -> None:
    alice = store.add_member(111, 5, "Alice", "alice", ["home", "office"], 10.0)
    bob = store.add_member(222, 0, "Bob", "", ["home"], 20.0)
    listed = await store_client.call("members.list")
    assert listed == [to_json(alice), to_json(bob)]
    assert listed[0]["lines"] == ["home", "office"] and listed[0]["owner"] is True
    assert await store_client.call("members.get", id=bob.id) == to_json(bob)

    updated = await store_client.call(
        "members.update", id=alice.id, outgoing_method="callback", default_line="office"
    )
    assert (updated["outgoing_method"], updated["default_line"]) == ("callback", "office")
    assert store.member(alice.id) is not None
    assert store.member(alice.id).outgoing_method == "callback"  # type: ignore[union-attr]
    updated = await store_client.call("members.update", id=alice.id, lines=["home"])
    assert (updated["lines"], updated["default_line"]) == (["home"], "")

    assert await store_client.call("members.remove", id=alice.id) is None
    assert [m.id for m in store.members()] == [bob.id]
    assert store.members()[0].owner


async def test_members_errors(store: Store, store_client: ControlClient) -> None:
    m = store.add_member(111, 5, "Alice", "", ["home"], 10.0)
    c = store_client
    assert await error_of(c, "members.get", id=99) == ("not_found", "no member with id 99")
    assert await error_of(c, "members.remove", id=99) == ("not_found", "no member with id 99")
    assert await error_of(c, "members.update", id=99) == ("not_found", "no member with id 99")
    assert await error_of(c, "members.get") == ("invalid", "id is required")
    assert await error_of(c, "members.get", id="1") == (
        "invalid",
        "id must be an integer at least 1, got '1'",
    )
    assert await error_of(c, "members.get", id=1, colour="red") == (
        "invalid",
        "unknown parameter 'colour'",
    )
    assert await error_of(c, "members.list", x=1) == ("invalid", "unknown parameter 'x'")
    assert await error_of(c, "members.update", id=m.id, outgoing_method="fax") == (
        "invalid",
        "outgoing_method must be 'invite' or 'callback', got 'fax'",
    )
    assert await error_of(c, "members.update", id=m.id, lines="home") == (
        "invalid",
        "lines must be a list of line names",
    )
    code, message = await error_of(c, "members.update", id=m.id, default_line="office")
    assert (code, message.startswith("default_line 'office' is not one of")) == ("invalid", True)
    assert store.member(m.id) == m  # nothing changed


async def test_invitations_list(store: Store, store_client: ControlClient) -> None:
    def h(token: str) -> str:
        return hashlib.sha256(token.encode()).hexdigest()

    pending = store.create_invitation(h("p"), ["home"], "for Bob", 900.0, 1200.0)
    expired = store.create_invitation(h("e"), ["home"], "late", 100.0, 400.0)
    used = store.create_invitation(h("u"), ["office"], "", 50.0, 5000.0)
    store.use_invitation(used.id, store.add_member(1, 0, "A", "", ["office"], 60.0).id, 70.0)

    (only,) = await store_client.call("invitations.list")
    assert only == {
        "id": pending.id,
        "lines": ["home"],
        "note": "for Bob",
        "created_at": 900.0,
        "expires_at": 1200.0,
        "used_at": None,
        "used_by": None,
        "revoked_at": None,
        "state": "pending",
    }
    every = await store_client.call("invitations.list", include_finished=True)
    assert [(i["id"], i["state"]) for i in every] == [
        (pending.id, "pending"),
        (expired.id, "expired"),
        (used.id, "used"),
    ]
    assert all("token_hash" not in i for i in every)
    assert await error_of(store_client, "invitations.list", include_finished="yes") == (
        "invalid",
        "include_finished must be true or false, got 'yes'",
    )


async def test_calls_list(store: Store, store_client: ControlClient) -> None:
    m = store.add_member(1, 0, "A", "", ["home"], 0.0)
    for n in range(7):
        call_id = store.call_started(
            "in" if n % 2 else "out", "home" if n < 5 else "office", "", str(n), "", "", float(n)
        )
        if n in (1, 3):
            store.call_member(call_id, m.id, "A")
        store.call_ended(call_id, n + 1.0, "answered" if n % 3 == 0 else "missed", "x")

    def numbers(page: dict[str, Any]) -> list[str]:
        return [c["remote_number"] for c in page["calls"]]

    page = await store_client.call("calls.list")
    assert (numbers(page), page["total"]) == (["6", "5", "4", "3", "2", "1", "0"], 7)
    assert page["calls"][0]["member_id"] is None and "member_name" in page["calls"][0]
    page = await store_client.call("calls.list", line="home", limit=2, offset=1)
    assert (numbers(page), page["total"]) == (["3", "2"], 5)
    page = await store_client.call("calls.list", member_id=m.id)
    assert (numbers(page), page["total"]) == (["3", "1"], 2)
    page = await store_client.call("calls.list", direction="in", outcome="missed")
    assert (numbers(page), page["total"]) == (["5", "1"], 2)

    c = store_client
    assert await error_of(c, "calls.list", limit=201) == (
        "invalid",
        "limit must be an integer 1..200, got 201",
    )
    assert await error_of(c, "calls.list", limit=0) == (
        "invalid",
        "limit must be an integer 1..200, got 0",
    )
    assert await error_of(c, "calls.list", offset=-1) == (
        "invalid",
        "offset must be an integer at least 0, got -1",
    )
    assert await error_of(c, "calls.list", direction="sideways") == (
        "invalid",
        "direction must be one of in, out, got 'sideways'",
    )
    assert (await error_of(c, "calls.list", outcome="great"))[1].startswith(
        "outcome must be one of answered, "
    )
    assert await error_of(c, "calls.list", member_id=0) == (
        "invalid",
        "member_id must be an integer at least 1, got 0",
    )
    assert await error_of(c, "calls.list", page=2) == ("invalid", "unknown parameter 'page'")

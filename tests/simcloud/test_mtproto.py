"""A real Telethon TelegramClient against CloudServer over loopback TCP.

The cloud here is a `Cloud` subclass answering from a per-test table, so
these tests exercise only the MTProto server, not the RPC handlers.
"""

from __future__ import annotations

import asyncio
import datetime
import logging
import os
import random
import struct
import zlib
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any

import pytest
from telethon import TelegramClient, errors, events
from telethon.crypto import AuthKey
from telethon.network.connection import (
    ConnectionTcpAbridged,
    ConnectionTcpFull,
    ConnectionTcpIntermediate,
)
from telethon.sessions import MemorySession
from telethon.tl import functions, types
from telethon.tl.alltlobjects import LAYER

from simcloud import server as server_module
from simcloud.client import SIM_API_ID, SIM_DC_ID, make_client
from simcloud.cloud import Caller, Cloud, FloodRule, RpcError
from simcloud.server import CloudServer, SessionSink

T = 10  # seconds any single step may take
ME = types.User(id=1000, is_self=True, first_name="Me", access_hash=55)

Answer = Callable[[Caller, Any], Awaitable[Any]]


def now() -> datetime.datetime:
    return datetime.datetime.now(datetime.UTC)


def config(cloud: Cloud) -> types.Config:
    host, port = cloud.server_address  # type: ignore[attr-defined]
    return types.Config(
        date=now(),
        expires=now() + datetime.timedelta(hours=1),
        test_mode=False,
        this_dc=SIM_DC_ID,
        dc_options=[types.DcOption(id=SIM_DC_ID, ip_address=host, port=port)],
        dc_txt_domain_name="sim",
        chat_size_max=200,
        megagroup_size_max=200000,
        forwarded_count_max=100,
        online_update_period_ms=210000,
        offline_blur_timeout_ms=5000,
        offline_idle_timeout_ms=30000,
        online_cloud_timeout_ms=300000,
        notify_cloud_delay_ms=30000,
        notify_default_delay_ms=1500,
        push_chat_period_ms=60000,
        push_chat_limit=2,
        edit_time_limit=172800,
        revoke_time_limit=2147483647,
        revoke_pm_time_limit=2147483647,
        rating_e_decay=2419200,
        stickers_recent_limit=200,
        channels_read_media_period=604800,
        call_receive_timeout_ms=20000,
        call_ring_timeout_ms=90000,
        call_connect_timeout_ms=30000,
        call_packet_timeout_ms=10000,
        me_url_prefix="https://t.me/",
        caption_length_max=1024,
        message_length_max=4096,
        webfile_dc_id=SIM_DC_ID,
    )


class TableCloud(Cloud):
    """A Cloud answering from `self.answers` (request type -> async function)."""

    def __init__(self) -> None:
        super().__init__()
        self.callers: list[Caller] = []
        self.answers: dict[type, Answer] = {
            functions.help.GetConfigRequest: self._config,
            functions.users.GetUsersRequest: self._users,
            functions.updates.GetStateRequest: self._state,
            functions.updates.GetDifferenceRequest: self._difference,
        }

    async def invoke(self, caller: Caller, request: Any) -> Any:
        name = type(request).__name__
        self.request_log.append(name)
        self.callers.append(caller)
        seconds = self.faults.take_flood(name)
        if seconds is not None:
            raise RpcError(420, f"FLOOD_WAIT_{seconds}")
        answer = self.answers.get(type(request))
        if answer is None:
            raise RpcError(400, "METHOD_NOT_IMPLEMENTED_IN_TEST")
        return await answer(caller, request)

    async def _config(self, caller: Caller, req: Any) -> types.Config:
        return config(self)

    async def _users(self, caller: Caller, req: Any) -> list[types.User]:
        return [ME]

    async def _state(self, caller: Caller, req: Any) -> types.updates.State:
        return types.updates.State(pts=1, qts=0, date=now(), seq=0, unread_count=0)

    async def _difference(self, caller: Caller, req: Any) -> types.updates.DifferenceEmpty:
        return types.updates.DifferenceEmpty(date=now(), seq=0)


@pytest.fixture
def cloud() -> TableCloud:
    return TableCloud()


@pytest.fixture
async def server(cloud: TableCloud) -> AsyncIterator[CloudServer]:
    async with CloudServer(cloud) as server:
        yield server


async def connected(server: CloudServer, **kwargs: Any) -> TelegramClient:
    kwargs.setdefault("flood_sleep_threshold", 0)
    client = make_client(server, **kwargs)
    await asyncio.wait_for(client.connect(), T)
    return client


@pytest.fixture
async def client(server: CloudServer) -> AsyncIterator[TelegramClient]:
    client = await connected(server)
    yield client
    await asyncio.wait_for(client.disconnect(), T)


def sinks(cloud: Cloud) -> list[SessionSink]:
    return [s for s in cloud.sessions if isinstance(s, SessionSink)]


async def test_connect_strips_wrappers_and_records_the_caller(
    cloud: TableCloud, client: TelegramClient
) -> None:
    # connect() sends invokeWithLayer(initConnection(help.getConfig)), then get_me, getState
    # and getDifference.
    assert cloud.request_log[:4] == [
        "GetConfigRequest",
        "GetUsersRequest",
        "GetStateRequest",
        "GetDifferenceRequest",
    ]
    caller = cloud.callers[0]
    assert (caller.layer, caller.api_id, caller.no_updates) == (LAYER, SIM_API_ID, False)
    assert caller.auth_key_id == client.session.auth_key.key_id
    assert caller.session_id == client._sender._state.id
    result = await asyncio.wait_for(client(functions.help.GetConfigRequest()), T)
    assert isinstance(result, types.Config)
    assert (result.dc_options[0].ip_address, result.dc_options[0].port) == cloud.server_address  # type: ignore[attr-defined]
    assert await asyncio.wait_for(client.get_me(), T) is not None


@pytest.mark.parametrize(
    "connection", [ConnectionTcpFull, ConnectionTcpIntermediate, ConnectionTcpAbridged]
)
async def test_every_telethon_transport(
    cloud: TableCloud, server: CloudServer, connection: type
) -> None:
    client = await connected(server, connection=connection)
    try:
        assert isinstance(await client(functions.help.GetConfigRequest()), types.Config)
    finally:
        await client.disconnect()


async def test_rpc_errors_become_telethons_typed_errors(
    cloud: TableCloud, client: TelegramClient
) -> None:
    async def bad_code(caller: Caller, req: Any) -> Any:
        raise RpcError(400, "PHONE_CODE_INVALID")

    cloud.answers[functions.auth.SignInRequest] = bad_code
    with pytest.raises(errors.PhoneCodeInvalidError):
        await asyncio.wait_for(client(functions.auth.SignInRequest("+99966", "h", "1")), T)


async def test_flood_wait_becomes_flood_wait_error(
    cloud: TableCloud, client: TelegramClient
) -> None:
    cloud.faults.flood.append(FloodRule("GetConfigRequest", seconds=5))
    with pytest.raises(errors.FloodWaitError) as caught:
        await asyncio.wait_for(client(functions.help.GetConfigRequest()), T)
    assert caught.value.seconds == 5


async def test_handler_crash_is_internal_server_error(
    cloud: TableCloud, client: TelegramClient, caplog: pytest.LogCaptureFixture
) -> None:
    async def crash(caller: Caller, req: Any) -> Any:
        raise KeyError("bug in a handler")

    cloud.answers[functions.help.GetNearestDcRequest] = crash
    # The sender directly: TelegramClient would retry a 500 five times, 2 s apart.
    with pytest.raises(errors.ServerError) as caught:
        await asyncio.wait_for(client._sender.send(functions.help.GetNearestDcRequest()), T)
    assert caught.value.message == "INTERNAL_SERVER_ERROR"
    assert "bug in a handler" in caplog.text
    assert isinstance(await client(functions.help.GetConfigRequest()), types.Config)


async def test_pushed_update_reaches_a_raw_handler(
    cloud: TableCloud, client: TelegramClient
) -> None:
    got: asyncio.Queue[Any] = asyncio.Queue()

    async def on_raw(update: Any) -> None:
        await got.put(update)

    client.add_event_handler(on_raw, events.Raw(types.UpdatePhoneCallSignalingData))
    (sink,) = sinks(cloud)
    update = types.UpdatePhoneCallSignalingData(phone_call_id=7, data=b"sdp" * 300)
    sink.push(types.Updates(updates=[update], users=[], chats=[], date=now(), seq=0))
    received = await asyncio.wait_for(got.get(), T)
    assert (received.phone_call_id, received.data) == (7, b"sdp" * 300)


async def test_slow_handler_does_not_block_pings_or_other_requests(
    cloud: TableCloud, client: TelegramClient
) -> None:
    release = asyncio.Event()

    async def slow(caller: Caller, req: Any) -> Any:
        await asyncio.wait_for(release.wait(), T)
        return types.messages.BotCallbackAnswer(cache_time=0, message="done")

    cloud.answers[functions.messages.GetBotCallbackAnswerRequest] = slow
    request = functions.messages.GetBotCallbackAnswerRequest(types.InputPeerSelf(), 1)
    pending = asyncio.ensure_future(client(request))
    pong = await asyncio.wait_for(client._sender.send(functions.PingRequest(99)), T)
    assert pong.ping_id == 99
    assert isinstance(
        await asyncio.wait_for(client(functions.help.GetConfigRequest()), T), types.Config
    )
    assert not pending.done()
    release.set()
    assert (await asyncio.wait_for(pending, T)).message == "done"


async def test_many_requests_in_one_container(cloud: TableCloud, client: TelegramClient) -> None:
    results = await asyncio.wait_for(
        client([functions.help.GetConfigRequest() for _ in range(20)]), T
    )
    assert len(results) == 20 and all(isinstance(r, types.Config) for r in results)


async def test_ordered_requests_wait_for_each_other(
    cloud: TableCloud, client: TelegramClient
) -> None:
    order: list[str] = []

    async def slow(caller: Caller, req: Any) -> Any:
        await asyncio.sleep(0.3)
        order.append("slow")
        return types.messages.BotCallbackAnswer(cache_time=0)

    async def fast(caller: Caller, req: Any) -> Any:
        order.append("fast")
        return types.NearestDc("sim", SIM_DC_ID, SIM_DC_ID)

    cloud.answers[functions.messages.GetBotCallbackAnswerRequest] = slow
    cloud.answers[functions.help.GetNearestDcRequest] = fast
    slow_req = functions.messages.GetBotCallbackAnswerRequest(types.InputPeerSelf(), 1)
    await asyncio.wait_for(
        client([slow_req, functions.help.GetNearestDcRequest()], ordered=True), T
    )
    assert order == ["slow", "fast"]


async def test_dropped_connection_reconnects_with_the_same_key(
    cloud: TableCloud, server: CloudServer, client: TelegramClient
) -> None:
    key = client.session.auth_key.key
    (before,) = sinks(cloud)
    assert cloud.drop_connections() == 1
    result = await asyncio.wait_for(client(functions.help.GetConfigRequest()), T)
    assert isinstance(result, types.Config)
    (after,) = sinks(cloud)
    assert after is not before and after.session_id != before.session_id
    assert client.session.auth_key.key == key and len(cloud.auth_keys) == 1
    assert after.auth_key_id == before.auth_key_id
    # Telethon does not repeat initConnection after reconnecting; the key remembers it.
    assert (after.caller.layer, after.caller.api_id) == (LAYER, SIM_API_ID)


async def test_sqlite_session_reuses_its_key(
    cloud: TableCloud, server: CloudServer, tmp_path: Path
) -> None:
    path = tmp_path / "member.session"
    for _ in range(2):
        client = await connected(server, session=path)
        try:
            assert isinstance(await client(functions.help.GetConfigRequest()), types.Config)
        finally:
            await client.disconnect()
    assert len(cloud.auth_keys) == 1


async def test_unknown_auth_key_is_404_and_auth_key_not_found(server: CloudServer) -> None:
    session = MemorySession()
    session.auth_key = AuthKey(os.urandom(256))
    client = make_client(server, session)
    try:
        with pytest.raises(errors.AuthKeyNotFound):
            await asyncio.wait_for(client.connect(), T)
        with pytest.raises(errors.AuthKeyNotFound):
            await client.disconnected
    finally:
        await client.disconnect()


async def test_client_clock_off_is_corrected(cloud: TableCloud, server: CloudServer) -> None:
    client = await connected(server)
    try:
        await client.disconnect()
        client._sender._state.time_offset = 3600  # a client clock an hour fast
        await asyncio.wait_for(client.connect(), T)
        assert isinstance(await client(functions.help.GetConfigRequest()), types.Config)
        assert abs(client._sender._state.time_offset) <= 1
    finally:
        await client.disconnect()


async def test_receive_updates_false_means_no_updates(
    cloud: TableCloud, server: CloudServer
) -> None:
    client = await connected(server, receive_updates=False)
    try:
        (sink,) = sinks(cloud)
        assert sink.no_updates and cloud.callers[0].no_updates
    finally:
        await client.disconnect()


async def read_until_closed(reader: asyncio.StreamReader) -> bytes:
    data = b""
    while chunk := await asyncio.wait_for(reader.read(4096), T):
        data += chunk
    return data


def full_frame(payload: bytes, seq: int = 0) -> bytes:
    head = struct.pack("<ii", len(payload) + 12, seq)
    return head + payload + struct.pack("<I", zlib.crc32(head + payload))


@pytest.mark.parametrize(
    "garbage",
    [
        random.Random(1).randbytes(2000),
        b"GET / HTTP/1.1\r\nHost: x\r\n\r\n",
        full_frame(b"\0" * 20)[:-1] + b"\0",  # bad CRC
        b"\xef\x01abcd",  # a payload too short for an auth_key_id
        full_frame(struct.pack("<qqi", 0, 4, 4) + b"\xde\xad\xbe\xef"),  # unknown plain TL
        b"\xee\xee\xee\xee" + struct.pack("<i", 40) + bytes(8) + b"x" * 32,  # plain, bad length
    ],
)
async def test_garbage_closes_the_connection_and_nothing_else(
    cloud: TableCloud, server: CloudServer, client: TelegramClient, garbage: bytes
) -> None:
    reader, writer = await asyncio.open_connection(server.host, server.port)
    try:
        writer.write(garbage)
        await writer.drain()
        await read_until_closed(reader)
    finally:
        writer.close()
    assert isinstance(await client(functions.help.GetConfigRequest()), types.Config)


async def test_unknown_key_id_gets_transport_error_404(server: CloudServer) -> None:
    reader, writer = await asyncio.open_connection(server.host, server.port)
    try:
        writer.write(full_frame(struct.pack("<Q", 12345) + os.urandom(16 + 64)))
        await writer.drain()
        answer = await read_until_closed(reader)
    finally:
        writer.close()
    assert answer == full_frame(struct.pack("<i", -404))


async def test_close_cancels_running_handlers_and_drops_clients(
    cloud: TableCloud, server: CloudServer, caplog: pytest.LogCaptureFixture
) -> None:
    started = asyncio.Event()

    async def hang(caller: Caller, req: Any) -> Any:
        started.set()
        await asyncio.sleep(3600)

    cloud.answers[functions.help.GetNearestDcRequest] = hang
    client = await connected(server, auto_reconnect=False)
    try:
        pending = asyncio.ensure_future(client(functions.help.GetNearestDcRequest()))
        await asyncio.wait_for(started.wait(), T)
        with caplog.at_level(logging.ERROR):
            await asyncio.wait_for(server.close(), T)
        assert not server.tasks and server.connection_count == 0 and not cloud.sessions
        with pytest.raises((ConnectionError, EOFError, asyncio.CancelledError)):
            await asyncio.wait_for(pending, T)
    finally:
        await client.disconnect()


async def test_ping_delay_disconnect_drops_a_silent_client(
    cloud: TableCloud, client: TelegramClient
) -> None:
    (first,) = sinks(cloud)
    ping = functions.PingDelayDisconnectRequest(ping_id=5, disconnect_delay=1)
    assert (await asyncio.wait_for(client._sender.send(ping), T)).ping_id == 5
    for _ in range(int(T / 0.05)):
        if first not in cloud.sessions:
            break
        await asyncio.sleep(0.05)
    assert first not in cloud.sessions and first.closed
    # Telethon reconnects by itself.
    assert isinstance(
        await asyncio.wait_for(client(functions.help.GetConfigRequest()), T), types.Config
    )


async def test_destroy_session_of_an_earlier_connection(
    cloud: TableCloud, client: TelegramClient
) -> None:
    (old,) = sinks(cloud)
    cloud.drop_connections()
    await asyncio.wait_for(client(functions.help.GetConfigRequest()), T)
    destroy = functions.DestroySessionRequest(old.session_id)
    assert isinstance(
        await asyncio.wait_for(client._sender.send(destroy), T), types.DestroySessionOk
    )
    again = functions.DestroySessionRequest(old.session_id)
    assert isinstance(
        await asyncio.wait_for(client._sender.send(again), T), types.DestroySessionNone
    )


async def test_client_that_stops_reading_is_dropped(
    cloud: TableCloud, client: TelegramClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(server_module, "MAX_PENDING", 256 * 1024)
    (sink,) = sinks(cloud)
    client._sender._connection._reader._transport.pause_reading()
    update = types.UpdatePhoneCallSignalingData(phone_call_id=1, data=os.urandom(64 * 1024))
    pushed = 0
    # Loopback socket buffers hold a few MB; after that the writer waits in drain().
    while sink in cloud.sessions and pushed < 2000:
        sink.push(types.Updates(updates=[update], users=[], chats=[], date=now(), seq=0))
        pushed += 1
        await asyncio.sleep(0)
    assert sink not in cloud.sessions and sink.closed
    client._sender._connection._reader._transport.resume_reading()
    assert isinstance(
        await asyncio.wait_for(client(functions.help.GetConfigRequest()), T), types.Config
    )

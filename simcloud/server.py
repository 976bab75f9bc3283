"""CloudServer: the simulated DC's TCP listener, driving the sans-IO MTProto layers.

Per connection one task reads frames (`mtproto.transport`), answers the
auth-key exchange (`mtproto.handshake`) and hands encrypted messages to their
`mtproto.session.ServerSession`; another task writes what the sessions queue,
awaiting `drain()` so a slow reader pushes back.  Each RPC runs in its own
task, so a slow handler (a bot inline query waiting for the bot) never holds
up pings or other requests.  invokeWithLayer, initConnection,
invokeWithoutUpdates and invokeAfterMsg(s) are stripped here and recorded on
the session's `Caller` before `Cloud.invoke` sees the request.

Example::

    async with CloudServer(cloud) as server:
        client = make_client(server)      # simcloud.client
        await client.connect()
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from types import TracebackType
from typing import Any

from telethon.tl import functions, types

from simcloud.cloud import Caller, Cloud, RpcError
from simcloud.keys import CloudKey, cloud_key
from simcloud.mtproto.handshake import (
    Handshake,
    HandshakeError,
    auth_key_id,
    pack_plain,
    parse_object,
    unpack_plain,
)
from simcloud.mtproto.session import (
    DestroySession,
    MessageError,
    MsgIdClock,
    RpcCall,
    ServerSession,
    UnknownAuthKey,
    decrypt_client_message,
    key_id_of,
    serialize_result,
)
from simcloud.mtproto.transport import FramingError, ServerTransport, transport_error

log = logging.getLogger(__name__)

READ_CHUNK = 64 * 1024
# A client that reads nothing while updates pile up is dropped, not buffered forever.
MAX_PENDING = 32 * 1024 * 1024
AUTH_KEY_NOT_FOUND = 404


class CloudServer:
    """The cloud's MTProto endpoint on `host`:`port` (0 picks a free port)."""

    def __init__(
        self, cloud: Cloud, host: str = "127.0.0.1", port: int = 0, *, key: CloudKey | None = None
    ) -> None:
        self.cloud = cloud
        self.host = host
        self.port = port
        self.key = key or cloud_key()
        self._server: asyncio.Server | None = None
        self._connections: set[_Connection] = set()
        self.tasks: set[asyncio.Task[Any]] = set()
        # Session ids each auth key has used, for destroy_session.
        self.known_sessions: dict[int, set[int]] = {}
        # (layer, api_id) from each auth key's last initConnection: Telethon sends it once
        # per connect(), not after its automatic reconnects, and Telegram keeps it per key.
        self.key_params: dict[int, tuple[int, int]] = {}

    async def start(self) -> None:
        self._server = await asyncio.start_server(self._accept, self.host, self.port)
        self.port = self._server.sockets[0].getsockname()[1]
        self.cloud.server_address = (self.host, self.port)
        log.info("simcloud: listening on %s:%d", self.host, self.port)

    async def close(self) -> None:
        """Stop listening, drop every connection and cancel every running request."""
        if self._server is not None:
            self._server.close()
        for conn in list(self._connections):
            conn.abort()
        for task in list(self.tasks):
            task.cancel()
        if self.tasks:
            await asyncio.wait(list(self.tasks), timeout=5)
        if self._server is not None:
            await self._server.wait_closed()
            self._server = None

    async def __aenter__(self) -> CloudServer:
        await self.start()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.close()

    @property
    def connection_count(self) -> int:
        return len(self._connections)

    def spawn(self, coro: Any, name: str) -> asyncio.Task[Any]:
        task = asyncio.get_running_loop().create_task(coro, name=name)
        self.tasks.add(task)
        task.add_done_callback(self.tasks.discard)
        return task

    async def _accept(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        conn = _Connection(self, reader, writer)
        self._connections.add(conn)
        try:
            await conn.run()
        finally:
            self._connections.discard(conn)


class SessionSink:
    """A live session as the cloud sees it (`simcloud.cloud.SessionSink`)."""

    def __init__(self, conn: _Connection, session: ServerSession) -> None:
        self._conn = conn
        self._session = session
        self.auth_key_id = session.auth_key_id
        self.session_id = session.session_id
        self.caller = Caller(auth_key_id=self.auth_key_id, session=self)
        self.closed = False

    @property
    def no_updates(self) -> bool:
        """invokeWithoutUpdates was used: Telegram sends this session no updates."""
        return self.caller.no_updates

    def push(self, updates: Any) -> None:
        if self.closed or self.no_updates:
            return
        self._session.push(updates)
        self._conn.wake()
        if self._session.pending_bytes > MAX_PENDING:
            log.warning("simcloud: %s does not read its updates; dropping it", self)
            self._conn.abort()

    def close(self) -> None:
        self._conn.abort()

    def __repr__(self) -> str:
        return f"<SessionSink key={self.auth_key_id:x} session={self.session_id:x}>"


class _Connection:
    def __init__(
        self, server: CloudServer, reader: asyncio.StreamReader, writer: asyncio.StreamWriter
    ) -> None:
        self.server = server
        self.cloud = server.cloud
        self.reader = reader
        self.writer = writer
        self.peer = writer.get_extra_info("peername")
        self.transport = ServerTransport()
        self.handshake: Handshake | None = None
        self.plain_ids = MsgIdClock()
        self.sessions: dict[int, SessionSink] = {}
        self.calls: dict[int, asyncio.Task[Any]] = {}
        self._raw: list[bytes] = []  # plain replies and transport errors
        self._wake = asyncio.Event()
        self._closing = False
        self._ping_timer: asyncio.TimerHandle | None = None
        self._reader_task: asyncio.Task[Any] | None = None
        self._writer_task: asyncio.Task[Any] | None = None

    async def run(self) -> None:
        log.debug("simcloud: connection from %s", self.peer)
        self._reader_task = asyncio.current_task()
        writer_task = asyncio.get_running_loop().create_task(self._write_loop())
        self._writer_task = writer_task
        try:
            await self._read_loop()
        except asyncio.CancelledError:
            pass
        finally:
            if self._ping_timer is not None:
                self._ping_timer.cancel()
            for sink in self.sessions.values():
                if not sink.closed:
                    sink.closed = True
                    self.cloud.detach(sink)
            writer_task.cancel()
            with contextlib.suppress(asyncio.CancelledError, ConnectionError):
                await writer_task
            self.writer.transport.abort()
            log.debug("simcloud: connection from %s closed", self.peer)

    async def _read_loop(self) -> None:
        while not self._closing:
            try:
                data = await self.reader.read(READ_CHUNK)
            except ConnectionError:
                return
            if not data:
                return
            try:
                for payload in self.transport.feed(data):
                    self._on_payload(payload)
            except UnknownAuthKey as exc:
                log.info("simcloud: %s from %s; answering -404", exc, self.peer)
                self._fail(AUTH_KEY_NOT_FOUND)
            except (FramingError, MessageError, HandshakeError) as exc:
                log.info("simcloud: closing %s: %s", self.peer, exc)
                self._fail(0)
            except Exception:
                log.exception("simcloud: unexpected error on a frame from %s", self.peer)
                self._fail(0)
            if self._closing:
                # Let the writer flush the transport error, but wait no longer than a moment.
                if self._writer_task is not None:
                    await asyncio.wait([self._writer_task], timeout=1)
                return

    def _fail(self, code: int) -> None:
        """Send transport error `code` (if any), then close once it is written."""
        if code and self.transport.codec is not None:
            self._raw.append(transport_error(code))
        self._closing = True
        self.wake()

    def wake(self) -> None:
        self._wake.set()

    def abort(self) -> None:
        """Drop the TCP connection now (fault injection, shutdown, ping_delay_disconnect)."""
        self._closing = True
        self.writer.transport.abort()
        if self._reader_task is not None and self._reader_task is not asyncio.current_task():
            self._reader_task.cancel()

    async def _write_loop(self) -> None:
        while True:
            await self._wake.wait()
            self._wake.clear()
            payloads, self._raw = self._raw, []
            for sink in self.sessions.values():
                payloads += sink._session.outgoing()
            if payloads and self.transport.codec is not None:
                self.writer.write(b"".join(self.transport.encode(p) for p in payloads))
                await self.writer.drain()
            if self._closing:
                self.writer.close()
                return

    # Frames

    def _on_payload(self, payload: bytes) -> None:
        if key_id_of(payload) == 0:
            self._on_plain(payload)
            return
        env = decrypt_client_message(self.cloud.auth_keys, payload)
        sink = self.sessions.get(env.session_id)
        if sink is None:
            sink = self._open_session(env.auth_key_id, env.session_id)
        session = sink._session
        for event in session.receive(env):
            if isinstance(event, RpcCall):
                self._start_call(sink, event)
            elif isinstance(event, DestroySession):
                self._destroy_session(sink, event)
        if session.disconnect_at is not None:
            self._arm_ping_timer(session.disconnect_at)
        if session.pending_bytes > MAX_PENDING:
            log.warning("simcloud: %s reads too slowly; dropping it", self.peer)
            self.abort()
        self.wake()

    def _on_plain(self, payload: bytes) -> None:
        msg = unpack_plain(payload)
        if self.handshake is None:
            self.handshake = Handshake(self.server.key)
        reply = self.handshake.answer(parse_object(msg.body))
        if isinstance(reply, types.DhGenOk) and self.handshake.auth_key is not None:
            key = self.handshake.auth_key
            self.cloud.auth_keys[auth_key_id(key)] = key
            log.info("simcloud: new auth key %x for %s", auth_key_id(key), self.peer)
        self._raw.append(pack_plain(self.plain_ids.next(response=True), bytes(reply)))
        self.wake()

    def _open_session(self, key_id: int, session_id: int) -> SessionSink:
        session = ServerSession(
            auth_key=self.cloud.auth_keys[key_id],
            auth_key_id=key_id,
            session_id=session_id,
            server_salt=self._salt_for(key_id),
        )
        known = self.server.known_sessions.setdefault(key_id, set())
        # A session lives on across connections: no new_session_created for one we know.
        # (Telethon flushes an ack of its old session on the new connection.)
        session.created = session_id in known
        known.add(session_id)
        sink = SessionSink(self, session)
        sink.caller.layer, sink.caller.api_id = self.server.key_params.get(key_id, (0, 0))
        # Telethon starts a new session on reconnect but may flush a message of the
        # old one (an ack) first; only the newest session of a connection gets updates.
        for older in self.sessions.values():
            older.closed = True
            self.cloud.detach(older)
        self.sessions[session_id] = sink
        self.cloud.attach(sink)
        return sink

    def _salt_for(self, key_id: int) -> int:
        # Any salt is accepted (see mtproto.session); one stable value per key keeps logs readable.
        return (key_id * 0x9E3779B97F4A7C15 >> 7) % (1 << 63)

    def _destroy_session(self, sink: SessionSink, event: DestroySession) -> None:
        known = self.server.known_sessions.get(sink.auth_key_id, set())
        if event.session_id in known:
            known.discard(event.session_id)
            sink._session.send_service(types.DestroySessionOk(event.session_id))
        else:
            sink._session.send_service(types.DestroySessionNone(event.session_id))

    def _arm_ping_timer(self, at: float) -> None:
        if self._ping_timer is not None:
            self._ping_timer.cancel()
        loop = asyncio.get_running_loop()
        self._ping_timer = loop.call_later(max(0.0, at - time.time()), self.abort)

    # RPC calls

    def _start_call(self, sink: SessionSink, call: RpcCall) -> None:
        name = f"simcloud-rpc-{type(call.request).__name__}"
        task = self.server.spawn(self._run_call(sink, call), name)
        self.calls[call.msg_id] = task
        task.add_done_callback(lambda _t: self.calls.pop(call.msg_id, None))

    async def _run_call(self, sink: SessionSink, call: RpcCall) -> None:
        session = sink._session
        try:
            request = await self._unwrap(sink, call.request)
            result = await self.cloud.invoke(sink.caller, request)
            data = serialize_result(request, result)
        except RpcError as exc:
            session.answer_error(call.msg_id, exc.code, exc.message)
        except asyncio.CancelledError:
            raise
        except Exception:
            log.exception("simcloud: handler for %s failed", type(call.request).__name__)
            session.answer_error(call.msg_id, 500, "INTERNAL_SERVER_ERROR")
        else:
            session.answer(call.msg_id, data)
        self.wake()

    async def _unwrap(self, sink: SessionSink, request: Any) -> Any:
        """Strip the connection-level wrappers Telethon puts around requests."""
        caller = sink.caller
        while True:
            if isinstance(request, functions.InvokeWithLayerRequest):
                caller.layer = request.layer
                self.server.key_params[caller.auth_key_id] = (caller.layer, caller.api_id)
            elif isinstance(request, functions.InitConnectionRequest):
                caller.api_id = request.api_id
                self.server.key_params[caller.auth_key_id] = (caller.layer, caller.api_id)
            elif isinstance(request, functions.InvokeWithoutUpdatesRequest):
                caller.no_updates = True
            elif isinstance(request, functions.InvokeAfterMsgRequest):
                await self._after([request.msg_id])
            elif isinstance(request, functions.InvokeAfterMsgsRequest):
                await self._after(request.msg_ids)
            else:
                return request
            request = request.query

    async def _after(self, msg_ids: list[int]) -> None:
        """invokeAfterMsg: start only once those earlier calls have been answered."""
        current = asyncio.current_task()
        earlier = [t for i in msg_ids if (t := self.calls.get(i)) and t is not current]
        if earlier:
            await asyncio.wait(earlier)

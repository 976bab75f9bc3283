"""MTProto 2.0 encrypted sessions, server side, sans-IO.

Implements https://core.telegram.org/mtproto/description (encryption with
msg_key = SHA256 middle bits, x=0 client->server, x=8 server->client),
https://core.telegram.org/mtproto/service_messages and
https://core.telegram.org/mtproto/service_messages_about_messages: msg_id and
seq_no rules, new_session_created, msgs_ack, msg_container both ways,
gzip_packed, ping/pong, ping_delay_disconnect, get_future_salts,
destroy_session and bad_msg_notification for client clocks that are off.

`ServerSession.receive(envelope)` answers service messages itself and
returns the RPC calls for the server to run; `answer`/`answer_error`/`push`
queue replies; `outgoing()` encrypts what is queued into packets.
Deliberately left out: server salts are not checked (any salt is accepted;
new_session_created hands Telethon a salt it then uses), seq_no of client
messages is not checked, and unacknowledged server messages are not resent.
"""

from __future__ import annotations

import datetime
import hashlib
import hmac
import os
import secrets
import struct
import time
import zlib
from collections import deque
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from telethon.crypto import AES
from telethon.errors import TypeNotFoundError
from telethon.extensions import BinaryReader
from telethon.tl import TLObject, TLRequest, functions, types

MSG_CONTAINER = 0x73F1F8DC
GZIP_PACKED = 0x3072CFA1
RPC_RESULT = 0xF35C6D01
VECTOR = 0x1CB5C415
BOOL_TRUE = 0x997275B5
BOOL_FALSE = 0xBC799737

# bad_msg_notification codes (service_messages_about_messages#notice-of-ignored-error-message)
MSG_ID_TOO_LOW = 16
MSG_ID_TOO_HIGH = 17
MSG_ID_BAD_BITS = 18
# Telegram's window for client msg_id times: 300 s in the past, 30 s in the future.
MSG_TOO_OLD = 300
MSG_TOO_NEW = 30

MAX_UNZIPPED = 16 * 1024 * 1024
MAX_CONTAINER_MESSAGES = 1024
# Outgoing packets stay well under what Telethon's reader handles in one go.
MAX_PACKET_BODY = 512 * 1024
GZIP_THRESHOLD = 512
RECENT_IDS = 1000


class MessageError(ValueError):
    """An encrypted message that fails its integrity checks; the server closes the connection."""


class UnknownAuthKey(MessageError):
    """The auth_key_id is not one the cloud issued (Telegram answers with transport error -404)."""


def _aes_key_iv(auth_key: bytes, msg_key: bytes, x: int) -> tuple[bytes, bytes]:
    a = hashlib.sha256(msg_key + auth_key[x : x + 36]).digest()
    b = hashlib.sha256(auth_key[40 + x : 76 + x] + msg_key).digest()
    return a[:8] + b[8:24] + a[24:32], b[:8] + a[8:24] + b[24:32]


@dataclass(frozen=True)
class Envelope:
    """One decrypted client message (the outer one; a container's parts come later)."""

    auth_key_id: int
    salt: int
    session_id: int
    msg_id: int
    seq_no: int
    body: bytes


def key_id_of(payload: bytes) -> int:
    """auth_key_id of a transport payload (0 for plain messages)."""
    if len(payload) < 8:
        raise MessageError("payload shorter than an auth_key_id")
    value: int = struct.unpack_from("<Q", payload)[0]
    return value


def decrypt_client_message(auth_keys: Mapping[int, bytes], payload: bytes) -> Envelope:
    """Check and decrypt one client message (x=0), raising UnknownAuthKey or MessageError."""
    key_id = key_id_of(payload)
    auth_key = auth_keys.get(key_id)
    if auth_key is None:
        raise UnknownAuthKey(f"auth_key_id {key_id} unknown")
    encrypted = payload[24:]
    if len(encrypted) < 48 or len(encrypted) % 16:
        raise MessageError(f"encrypted part of {len(encrypted)} bytes")
    msg_key = payload[8:24]
    key, iv = _aes_key_iv(auth_key, msg_key, 0)
    plain = AES.decrypt_ige(encrypted, key, iv)
    expected = hashlib.sha256(auth_key[88:120] + plain).digest()[8:24]
    if not hmac.compare_digest(expected, msg_key):
        raise MessageError("msg_key mismatch")
    salt, session_id, msg_id, seq_no, length = struct.unpack_from("<qqqii", plain)
    padding = len(plain) - 32 - length
    if length < 4 or length % 4 or not 12 <= padding <= 1024:
        raise MessageError(f"message length {length} with {padding} bytes of padding")
    return Envelope(key_id, salt, session_id, msg_id, seq_no, plain[32 : 32 + length])


def encrypt_server_message(
    auth_key: bytes,
    salt: int,
    session_id: int,
    msg_id: int,
    seq_no: int,
    body: bytes,
    randbytes: Callable[[int], bytes] = os.urandom,
) -> bytes:
    """Encrypt one server message (x=8) into a transport payload."""
    plain = struct.pack("<qqqii", salt, session_id, msg_id, seq_no, len(body)) + body
    plain += randbytes(12 + (-(len(plain) + 12) % 16))
    msg_key = hashlib.sha256(auth_key[96:128] + plain).digest()[8:24]
    key, iv = _aes_key_iv(auth_key, msg_key, 8)
    key_id = hashlib.sha1(auth_key).digest()[12:20]
    encrypted: bytes = AES.encrypt_ige(plain, key, iv)
    return key_id + msg_key + encrypted


class MsgIdClock:
    """Server msg_ids: unix time << 32 plus fraction, strictly increasing,
    = 1 mod 4 for responses to client messages and 3 mod 4 otherwise."""

    def __init__(self, clock: Callable[[], float] = time.time) -> None:
        self._clock = clock
        self._last = 0

    def next(self, *, response: bool) -> int:
        now = self._clock()
        base = (int(now) << 32) | int((now % 1) * (1 << 32))
        msg_id = max(base, self._last + 1)
        msg_id += ((1 if response else 3) - msg_id) % 4
        self._last = msg_id
        return msg_id


def gunzip(data: bytes) -> bytes:
    """gzip_packed contents, refusing to inflate past MAX_UNZIPPED (a zip bomb)."""
    inflater = zlib.decompressobj(wbits=zlib.MAX_WBITS | 32)
    try:
        out = inflater.decompress(data, MAX_UNZIPPED)
    except zlib.error as exc:
        raise MessageError(f"bad gzip_packed: {exc}") from exc
    if inflater.unconsumed_tail:
        raise MessageError("gzip_packed inflates beyond the limit")
    return out


def gzip_packed(data: bytes) -> bytes:
    """gzip_packed#3072cfa1 packed_data:bytes, used when it makes the body smaller."""
    body = struct.pack("<I", GZIP_PACKED) + TLObject.serialize_bytes(zlib_gzip(data))
    return body if len(body) < len(data) else data


def zlib_gzip(data: bytes) -> bytes:
    compressor = zlib.compressobj(6, zlib.DEFLATED, zlib.MAX_WBITS | 16)
    return compressor.compress(data) + compressor.flush()


def serialize_result(request: Any, result: Any) -> bytes:
    """TL bytes of a handler's result for `request` (objects, Bool, vectors, raw bytes)."""
    if isinstance(result, bytes):
        return result  # already serialized by the handler
    if isinstance(result, bool):
        return struct.pack("<I", BOOL_TRUE if result else BOOL_FALSE)
    if isinstance(result, TLObject):
        return bytes(result)
    if isinstance(result, list):
        head = struct.pack("<Ii", VECTOR, len(result))
        if all(isinstance(x, int) and not isinstance(x, bool) for x in result):
            # Vector<int> or Vector<long>: the request's generated reader tells which.
            reader_names = getattr(type(request).read_result, "__code__", None)
            fmt = "<q" if reader_names and "read_long" in reader_names.co_names else "<i"
            return head + b"".join(struct.pack(fmt, x) for x in result)
        return head + b"".join(serialize_result(request, x) for x in result)
    if isinstance(result, int):
        return struct.pack("<i", result)
    raise TypeError(f"cannot serialize {type(result).__name__} as a TL result")


def parse_tl(body: bytes) -> Any:
    """One TL object; raises TypeNotFoundError for unknown constructors, MessageError if cut."""
    try:
        with BinaryReader(body) as reader:
            return reader.tgread_object()
    except TypeNotFoundError:
        raise
    except (BufferError, struct.error, ValueError, AssertionError, UnicodeDecodeError) as exc:
        raise MessageError(f"malformed TL object: {exc}") from exc


@dataclass(frozen=True)
class RpcCall:
    """A content-related request for the cloud; answer it with `answer`/`answer_error`."""

    msg_id: int
    request: Any


@dataclass(frozen=True)
class DestroySession:
    """destroy_session for another session of this auth key; the server knows them."""

    msg_id: int
    session_id: int


Event = RpcCall | DestroySession


@dataclass
class _Outgoing:
    msg_id: int
    seq_no: int
    body: bytes
    alone: bool = False  # never inside a container (bad_msg_notification, see _check_time)


@dataclass
class ServerSession:
    """One client session (auth key + session_id) on one connection."""

    auth_key: bytes
    auth_key_id: int
    session_id: int
    server_salt: int
    clock: Callable[[], float] = time.time
    randbytes: Callable[[int], bytes] = os.urandom
    msg_ids: MsgIdClock = field(init=False)
    # When ping_delay_disconnect asked us to close if no ping comes (clock time).
    disconnect_at: float | None = None
    # Whether new_session_created was sent (the server sets it for sessions it knows).
    created: bool = False
    _seq: int = field(default=0, init=False)
    _queue: list[_Outgoing] = field(default_factory=list, init=False)
    _pending_bytes: int = field(default=0, init=False)
    _acks: list[int] = field(default_factory=list, init=False)
    _recent: deque[int] = field(default_factory=lambda: deque(maxlen=RECENT_IDS), init=False)

    def __post_init__(self) -> None:
        self.msg_ids = MsgIdClock(self.clock)

    # Receiving

    def receive(self, env: Envelope) -> list[Event]:
        """Handle one decrypted message; returns the calls the server must run."""
        if not self._check_time(env.msg_id, env.seq_no):
            return []
        if not self.created:
            self.created = True
            self._send(
                types.NewSessionCreated(
                    first_msg_id=env.msg_id,
                    unique_id=secrets.randbits(63),
                    server_salt=self.server_salt,
                ),
                response=False,
            )
        events: list[Event] = []
        self._receive_body(env.msg_id, env.seq_no, env.body, events, in_container=False)
        return events

    def _check_time(self, msg_id: int, seq_no: int) -> bool:
        """bad_msg_notification 16/17/18 for msg_ids Telegram would refuse.

        Telethon resets its time offset from the notification's own msg_id
        and resends.  The notice goes out alone: Telethon drops a whole
        container whose msg_id is outside its own clock window.
        """
        sent = msg_id >> 32
        now = self.clock()
        code = 0
        if msg_id % 4:
            code = MSG_ID_BAD_BITS
        elif sent < now - MSG_TOO_OLD:
            code = MSG_ID_TOO_LOW
        elif sent > now + MSG_TOO_NEW:
            code = MSG_ID_TOO_HIGH
        if code:
            notice = types.BadMsgNotification(msg_id, seq_no, code)
            self._send(notice, response=True, alone=True)
        return not code

    def _receive_body(
        self, msg_id: int, seq_no: int, body: bytes, events: list[Event], *, in_container: bool
    ) -> None:
        if msg_id in self._recent:
            return  # a resend of something already handled
        self._recent.append(msg_id)
        (ctor,) = struct.unpack_from("<I", body) if len(body) >= 4 else (0,)
        if ctor == MSG_CONTAINER and not in_container:
            for part in _container_parts(body):
                self._receive_body(*part, events, in_container=True)
            return
        if ctor == GZIP_PACKED:
            with BinaryReader(body[4:]) as reader:
                try:
                    packed = reader.tgread_bytes()
                except (BufferError, struct.error) as exc:
                    raise MessageError("cut gzip_packed") from exc
            body = gunzip(packed)
        if seq_no % 2:
            self._acks.append(msg_id)
        try:
            obj = parse_tl(body)
        except TypeNotFoundError as exc:
            name = f"INPUT_METHOD_INVALID_{exc.invalid_constructor_id}"
            self.answer_error(msg_id, 400, name)
            return
        self._receive_object(msg_id, obj, events)

    def _receive_object(self, msg_id: int, obj: Any, events: list[Event]) -> None:
        if isinstance(obj, functions.PingRequest):
            self._send(types.Pong(msg_id, obj.ping_id), response=True)
        elif isinstance(obj, functions.PingDelayDisconnectRequest):
            self._send(types.Pong(msg_id, obj.ping_id), response=True)
            self.disconnect_at = self.clock() + obj.disconnect_delay
        elif isinstance(obj, functions.GetFutureSaltsRequest):
            self._send(self._future_salts(msg_id, obj.num), response=True)
        elif isinstance(obj, functions.RpcDropAnswerRequest):
            # The cloud does not cancel running handlers; the answer still comes.
            self.answer(msg_id, bytes(types.RpcAnswerUnknown()))
        elif isinstance(obj, functions.DestroySessionRequest):
            if obj.session_id == self.session_id:
                self._send(types.DestroySessionNone(obj.session_id), response=True)
            else:
                events.append(DestroySession(msg_id, obj.session_id))
        elif isinstance(obj, types.MsgsStateReq):
            # We keep no per-message history: "nothing is known about the message".
            info = "\x01" * len(obj.msg_ids)
            self._send(types.MsgsStateInfo(msg_id, info), response=True)
        elif isinstance(obj, TLRequest):
            events.append(RpcCall(msg_id, obj))
        # Anything else (msgs_ack, msgs_state_info, http_wait...) needs no answer.

    def _future_salts(self, req_msg_id: int, num: int) -> types.FutureSalts:
        now = int(self.clock())
        # Any salt is accepted; these only give a client well-formed values.
        salts = [
            types.FutureSalt(
                valid_since=_utc(now + i * 3600),
                valid_until=_utc(now + (i + 1) * 3600),
                salt=self.server_salt,
            )
            for i in range(max(1, min(num, 64)))
        ]
        return types.FutureSalts(req_msg_id=req_msg_id, now=now, salts=salts)

    # Sending

    def answer(self, req_msg_id: int, result: bytes) -> None:
        """rpc_result for the call `req_msg_id`; large results go gzip_packed inside it."""
        if len(result) > GZIP_THRESHOLD:
            result = gzip_packed(result)
        body = struct.pack("<Iq", RPC_RESULT, req_msg_id) + result
        self._queue_body(body, content=True, response=True)

    def answer_error(self, req_msg_id: int, code: int, message: str) -> None:
        self.answer(req_msg_id, bytes(types.RpcError(code, message)))

    def push(self, obj: TLObject) -> None:
        """A content-related message not answering anything (an Updates object)."""
        data = bytes(obj)
        if len(data) > GZIP_THRESHOLD:
            data = gzip_packed(data)
        self._queue_body(data, content=True, response=False)

    def send_service(self, obj: TLObject) -> None:
        """A service answer made by the server (destroy_session_ok/none)."""
        self._send(obj, response=True)

    def _send(self, obj: TLObject, *, response: bool, alone: bool = False) -> None:
        self._queue_body(bytes(obj), content=True, response=response, alone=alone)

    def _queue_body(
        self, body: bytes, *, content: bool, response: bool, alone: bool = False
    ) -> None:
        msg_id = self.msg_ids.next(response=response)
        self._queue.append(_Outgoing(msg_id, self._next_seq(content), body, alone))
        self._pending_bytes += len(body)

    def _next_seq(self, content: bool) -> int:
        """seq_no: twice the content-related messages sent before, plus one if this is one."""
        if not content:
            return self._seq * 2
        self._seq += 1
        return self._seq * 2 - 1

    @property
    def pending_bytes(self) -> int:
        """Bytes queued and not yet taken by `outgoing()` (a client not reading grows this)."""
        return self._pending_bytes

    def outgoing(self) -> list[bytes]:
        """Encrypt everything queued: one message per packet, or msg_containers."""
        if self._acks:
            ack = bytes(types.MsgsAck(self._acks))
            self._acks = []
            self._queue_body(ack, content=False, response=False)
        queue, self._queue = self._queue, []
        self._pending_bytes = 0
        packets: list[bytes] = []
        batch: list[_Outgoing] = []
        size = 0
        for msg in queue:
            if msg.alone:
                packets.append(self._encrypt(msg))
                continue
            if batch and (size + len(msg.body) > MAX_PACKET_BODY or len(batch) >= 100):
                packets.append(self._pack(batch))
                batch, size = [], 0
            batch.append(msg)
            size += len(msg.body) + 16
        if batch:
            packets.append(self._pack(batch))
        return packets

    def _pack(self, batch: list[_Outgoing]) -> bytes:
        if len(batch) == 1:
            return self._encrypt(batch[0])
        parts = b"".join(
            struct.pack("<qii", m.msg_id, m.seq_no, len(m.body)) + m.body for m in batch
        )
        body = struct.pack("<Ii", MSG_CONTAINER, len(batch)) + parts
        # The container's msg_id is made last, so it is above every inner one.
        container = _Outgoing(self.msg_ids.next(response=False), self._next_seq(False), body)
        return self._encrypt(container)

    def _encrypt(self, msg: _Outgoing) -> bytes:
        return encrypt_server_message(
            self.auth_key,
            self.server_salt,
            self.session_id,
            msg.msg_id,
            msg.seq_no,
            msg.body,
            self.randbytes,
        )


def _container_parts(body: bytes) -> list[tuple[int, int, bytes]]:
    """msg_container#73f1f8dc messages:vector<message>; each message keeps its own bytes."""
    if len(body) < 8:
        raise MessageError("cut msg_container")
    (count,) = struct.unpack_from("<i", body, 4)
    if not 0 <= count <= MAX_CONTAINER_MESSAGES:
        raise MessageError(f"msg_container of {count} messages")
    parts = []
    pos = 8
    for _ in range(count):
        if pos + 16 > len(body):
            raise MessageError("cut msg_container")
        msg_id, seq_no, length = struct.unpack_from("<qii", body, pos)
        pos += 16
        if length < 0 or pos + length > len(body):
            raise MessageError("msg_container part overruns the container")
        parts.append((msg_id, seq_no, body[pos : pos + length]))
        pos += length
    return parts


def _utc(ts: int) -> datetime.datetime:
    return datetime.datetime.fromtimestamp(ts, datetime.UTC)

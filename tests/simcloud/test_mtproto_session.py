"""Encrypted sessions (simcloud.mtproto.session) against Telethon's MTProtoState."""

from __future__ import annotations

import io
import logging
import os
import struct
import time
import zlib
from typing import Any

import pytest
from telethon.crypto import AuthKey
from telethon.extensions import BinaryReader
from telethon.network.mtprotostate import MTProtoState
from telethon.tl import TLObject, TLRequest, functions, types
from telethon.tl.core import GzipPacked, MessageContainer, RpcResult, TLMessage

from simcloud.mtproto.session import (
    DestroySession,
    Envelope,
    MessageError,
    RpcCall,
    ServerSession,
    UnknownAuthKey,
    decrypt_client_message,
    gunzip,
    serialize_result,
)


class _Loggers(dict[str, logging.Logger]):
    def __missing__(self, key: str) -> logging.Logger:
        return logging.getLogger(key)


class Pair:
    """A Telethon client state and our server session sharing one auth key."""

    def __init__(self, clock_skew: float = 0.0) -> None:
        self.key = os.urandom(256)
        self.auth_key = AuthKey(self.key)
        self.client = MTProtoState(self.auth_key, loggers=_Loggers())
        self.client.time_offset = int(clock_skew)
        self.server = ServerSession(
            auth_key=self.key,
            auth_key_id=self.auth_key.key_id,
            session_id=self.client.id,
            server_salt=777,
        )
        self.keys = {self.auth_key.key_id: self.key}

    def send(self, *objs: TLObject) -> tuple[list[int], list[Any]]:
        """Encrypt objs as Telethon would (a container if several); return msg_ids, events."""
        buf = io.BytesIO()
        ids = [
            self.client.write_data_as_message(buf, bytes(o), isinstance(o, TLRequest)) for o in objs
        ]
        data = buf.getvalue()
        if len(objs) > 1:
            inner = struct.pack("<Ii", MessageContainer.CONSTRUCTOR_ID, len(objs)) + data
            buf = io.BytesIO()
            self.client.write_data_as_message(buf, inner, False)
            data = buf.getvalue()
        return ids, self.receive(self.client.encrypt_message_data(data))

    def receive(self, payload: bytes) -> list[Any]:
        env = decrypt_client_message(self.keys, payload)
        assert env.session_id == self.client.id
        return self.server.receive(env)

    def replies(self) -> list[TLMessage]:
        """Decrypt what the server queued, flattening containers as Telethon does."""
        out = []
        for packet in self.server.outgoing():
            msg = self.client.decrypt_message_data(packet)
            assert msg is not None, "Telethon ignored a server message"
            if isinstance(msg.obj, MessageContainer):
                assert all(m.msg_id < msg.msg_id for m in msg.obj.messages)
                out += msg.obj.messages
            else:
                out.append(msg)
        return out


def objs(messages: list[TLMessage], cls: type) -> list[Any]:
    return [m.obj for m in messages if isinstance(m.obj, cls)]


def test_first_message_creates_the_session_and_ping_gets_pong() -> None:
    pair = Pair()
    (ping_id,), events = pair.send(functions.PingRequest(42))
    assert events == []
    replies = pair.replies()
    (created,) = objs(replies, types.NewSessionCreated)
    assert created.first_msg_id == ping_id and created.server_salt == 777
    (pong,) = objs(replies, types.Pong)
    assert (pong.msg_id, pong.ping_id) == (ping_id, 42)
    pair.send(functions.PingRequest(43))
    assert objs(pair.replies(), types.NewSessionCreated) == []


def test_msg_ids_and_seq_numbers() -> None:
    pair = Pair()
    (req_id,), (call,) = pair.send(functions.help.GetConfigRequest())
    pair.server.answer(req_id, serialize_result(None, True))
    pair.server.push(types.Updates([], [], [], 0, 0))
    replies = pair.replies()
    by_type = {type(m.obj): m for m in replies}
    # Responses are 1 mod 4, other server messages 3 mod 4; all increasing.
    assert by_type[RpcResult].msg_id % 4 == 1
    assert by_type[types.Updates].msg_id % 4 == 3
    assert by_type[types.NewSessionCreated].msg_id % 4 == 3
    ids = [m.msg_id for m in replies]
    assert ids == sorted(ids) and len(set(ids)) == len(ids)
    # Content-related messages get odd seq_nos 1, 3, 5...; the ack an even one.
    content = [m.seq_no for m in replies if not isinstance(m.obj, types.MsgsAck)]
    assert content == [1, 3, 5]
    (ack,) = [m for m in replies if isinstance(m.obj, types.MsgsAck)]
    assert ack.seq_no % 2 == 0 and ack.obj.msg_ids == [req_id]
    assert isinstance(call, RpcCall) and call.msg_id == req_id


def test_container_of_requests_yields_each_call() -> None:
    pair = Pair()
    reqs = [functions.help.GetConfigRequest(), functions.PingRequest(7), types.MsgsAck([1])]
    ids, events = pair.send(*reqs)
    assert [type(e) for e in events] == [RpcCall]
    assert events[0].msg_id == ids[0]
    replies = pair.replies()
    assert objs(replies, types.Pong)[0].msg_id == ids[1]
    # Content-related messages are acknowledged; msgs_ack itself never is.
    (ack,) = objs(replies, types.MsgsAck)
    assert sorted(ack.msg_ids) == sorted(ids[:2])


def test_gzip_packed_request_is_unpacked() -> None:
    pair = Pair()
    req = functions.help.GetConfigRequest()
    buf = io.BytesIO()
    msg_id = pair.client.write_data_as_message(buf, bytes(GzipPacked(bytes(req))), True)
    (call,) = pair.receive(pair.client.encrypt_message_data(buf.getvalue()))
    assert isinstance(call, RpcCall) and call.msg_id == msg_id
    assert isinstance(call.request, functions.help.GetConfigRequest)


def test_large_results_are_gzipped_inside_rpc_result() -> None:
    pair = Pair()
    (req_id,), _ = pair.send(functions.help.GetConfigRequest())
    big = types.JsonString("x" * 5000)
    pair.server.answer(req_id, bytes(big))
    (result,) = objs(pair.replies(), RpcResult)
    assert result.req_msg_id == req_id
    with BinaryReader(result.body) as reader:
        assert reader.tgread_object() == big


def test_errors_travel_as_rpc_error() -> None:
    pair = Pair()
    (req_id,), _ = pair.send(functions.help.GetConfigRequest())
    pair.server.answer_error(req_id, 400, "PHONE_CODE_INVALID")
    (result,) = objs(pair.replies(), RpcResult)
    assert (result.error.error_code, result.error.error_message) == (400, "PHONE_CODE_INVALID")


def test_unknown_constructor_answers_input_method_invalid() -> None:
    pair = Pair()
    buf = io.BytesIO()
    msg_id = pair.client.write_data_as_message(buf, struct.pack("<Ii", 0x0BADC0DE, 1), True)
    assert pair.receive(pair.client.encrypt_message_data(buf.getvalue())) == []
    (result,) = objs(pair.replies(), RpcResult)
    assert result.req_msg_id == msg_id
    assert result.error.error_message.startswith("INPUT_METHOD_INVALID")


def test_future_salts_and_destroy_session() -> None:
    pair = Pair()
    (salts_id, own_id, other_id), events = pair.send(
        functions.GetFutureSaltsRequest(3),
        functions.DestroySessionRequest(pair.client.id),
        functions.DestroySessionRequest(99),
    )
    assert events == [DestroySession(other_id, 99)]
    replies = pair.replies()
    (salts,) = objs(replies, types.FutureSalts)
    assert salts.req_msg_id == salts_id and len(salts.salts) == 3
    assert abs(salts.now - time.time()) < 5
    (none,) = objs(replies, types.DestroySessionNone)
    assert none.session_id == pair.client.id and own_id


def test_ping_delay_disconnect_sets_a_deadline() -> None:
    pair = Pair()
    pair.send(functions.PingDelayDisconnectRequest(5, disconnect_delay=75))
    assert pair.server.disconnect_at is not None
    assert 70 < pair.server.disconnect_at - time.time() <= 75


@pytest.mark.parametrize(("skew", "code"), [(3600, 17), (-3600, 16)])
def test_client_clock_off_gets_bad_msg_notification(skew: int, code: int) -> None:
    pair = Pair(clock_skew=skew)
    (req_id,), events = pair.send(functions.help.GetConfigRequest())
    assert events == []
    (packet,) = pair.server.outgoing()  # alone: no container, no new_session_created
    msg = pair.client.decrypt_message_data(packet)
    assert msg is not None and isinstance(msg.obj, types.BadMsgNotification)
    assert (msg.obj.bad_msg_id, msg.obj.error_code) == (req_id, code)
    # What Telethon then does: take the time from our msg_id and resend.
    pair.client.update_time_offset(msg.msg_id)
    assert abs(pair.client.time_offset) <= 1
    (_,), events = pair.send(functions.help.GetConfigRequest())
    assert len(events) == 1


def test_duplicate_msg_id_is_ignored() -> None:
    pair = Pair()
    buf = io.BytesIO()
    pair.client.write_data_as_message(buf, bytes(functions.help.GetConfigRequest()), True)
    payload = pair.client.encrypt_message_data(buf.getvalue())
    assert len(pair.receive(payload)) == 1
    assert pair.receive(payload) == []


def test_unknown_key_and_tampering_are_detected() -> None:
    pair = Pair()
    buf = io.BytesIO()
    pair.client.write_data_as_message(buf, bytes(functions.PingRequest(1)), True)
    payload = pair.client.encrypt_message_data(buf.getvalue())
    with pytest.raises(UnknownAuthKey):
        decrypt_client_message({}, payload)
    tampered = bytearray(payload)
    tampered[-1] ^= 1
    with pytest.raises(MessageError, match="msg_key"):
        decrypt_client_message(pair.keys, bytes(tampered))
    with pytest.raises(MessageError):
        decrypt_client_message(pair.keys, payload[:40])


def test_cut_container_is_an_error() -> None:
    pair = Pair()
    body = struct.pack("<Ii", MessageContainer.CONSTRUCTOR_ID, 2) + struct.pack("<qii", 4, 1, 400)
    env = Envelope(pair.auth_key.key_id, 0, pair.client.id, int(time.time()) << 32, 0, body)
    with pytest.raises(MessageError, match="overruns"):
        pair.server.receive(env)


def test_gzip_bomb_is_refused() -> None:
    compressor = zlib.compressobj(9, zlib.DEFLATED, zlib.MAX_WBITS | 16)
    bomb = compressor.compress(b"\0" * (17 * 1024 * 1024)) + compressor.flush()
    with pytest.raises(MessageError, match="beyond"):
        gunzip(bomb)


def test_serialize_result_matches_telethon_readers() -> None:
    ids = functions.contacts.GetContactIDsRequest(0)
    with BinaryReader(serialize_result(ids, [1, 2, 3])) as reader:
        assert ids.read_result(reader) == [1, 2, 3]
    salts = functions.messages.GetMessagesViewsRequest(types.InputPeerSelf(), [1], False)
    views = types.messages.MessageViews([types.MessageViews(views=5)], [], [])
    with BinaryReader(serialize_result(salts, views)) as reader:
        assert salts.read_result(reader) == views
    for value in (True, False):
        with BinaryReader(serialize_result(functions.auth.LogOutRequest(), value)) as reader:
            assert reader.tgread_object() is value
    users = [types.User(id=1), types.User(id=2)]
    req = functions.users.GetUsersRequest([types.InputUserSelf()])
    with BinaryReader(serialize_result(req, users)) as reader:
        assert [u.id for u in req.read_result(reader)] == [1, 2]
    with pytest.raises(TypeError):
        serialize_result(req, object())

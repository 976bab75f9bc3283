"""The auth-key exchange (simcloud.mtproto.handshake, simcloud.keys), driven by Telethon."""

from __future__ import annotations

import hashlib
import logging
import os
import time
from pathlib import Path

import pytest
import rsa
from telethon.crypto import AES, AuthKey, Factorization
from telethon.crypto import rsa as telethon_rsa
from telethon.network import authenticator
from telethon.network.connection import ConnectionTcpFull
from telethon.network.mtprotoplainsender import MTProtoPlainSender
from telethon.tl import functions, types

from simcloud import keys
from simcloud.cloud import Cloud
from simcloud.mtproto import dh
from simcloud.mtproto.handshake import (
    Handshake,
    HandshakeError,
    auth_key_id,
    int_bytes,
    pack_plain,
    parse_object,
    tmp_aes_key_iv,
    unpack_plain,
)
from simcloud.server import CloudServer


class _Loggers(dict[str, logging.Logger]):
    def __missing__(self, key: str) -> logging.Logger:
        return logging.getLogger(key)


async def test_telethon_authenticator_makes_a_key_over_tcp() -> None:
    cloud = Cloud()
    async with CloudServer(cloud) as server:
        server.key.register_with_telethon()
        conn = ConnectionTcpFull(server.host, server.port, 2, loggers=_Loggers())
        await conn.connect(timeout=5)
        try:
            sender = MTProtoPlainSender(conn, loggers=_Loggers())
            key, time_offset = await authenticator.do_authentication(sender)
        finally:
            await conn.disconnect()
    # Telethon's key is big-endian without leading zeros; ours is always 256 bytes.
    assert cloud.auth_keys[key.key_id].lstrip(b"\0") == key.key.lstrip(b"\0")
    assert abs(time_offset) <= 1


def test_fingerprint_is_telethons() -> None:
    key = keys.cloud_key()
    assert key.fingerprint == telethon_rsa._compute_fingerprint(key.public)
    key.register_with_telethon()
    data = os.urandom(96)
    assert key.decrypt_inner_data(telethon_rsa.encrypt(key.fingerprint, data)) == data


def test_rsa_pad_decrypts() -> None:
    key = keys.cloud_key()
    data = bytes(types.PQInnerDataDc(b"pq", b"p", b"q", 1, 2, 3, dc=2))
    plain = key.decrypt_inner_data(keys.rsa_pad_encrypt(key.public, data))
    assert parse_object(plain) == parse_object(data)


def test_garbage_does_not_decrypt() -> None:
    key = keys.cloud_key()
    with pytest.raises(keys.KeyDecryptError):
        key.decrypt_inner_data(os.urandom(255).rjust(256, b"\0"))
    with pytest.raises(keys.KeyDecryptError, match="not 256"):
        key.decrypt_inner_data(b"short")


def test_key_cache_file_round_trip(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(keys, "_cached", None)
    made = keys.cloud_key(tmp_path / "cloud.pem")
    assert (tmp_path / "cloud.pem").stat().st_mode & 0o777 == 0o600
    monkeypatch.setattr(keys, "_cached", None)
    loaded = keys.cloud_key(tmp_path / "cloud.pem")
    assert loaded.fingerprint == made.fingerprint
    assert rsa.PublicKey.load_pkcs1(loaded.public_pem) == made.public


class Client:
    """The client side of the exchange, step by step, as Telethon's authenticator does it."""

    def __init__(self, hs: Handshake) -> None:
        self.hs = hs
        self.nonce = int.from_bytes(os.urandom(16), "big", signed=True)
        self.new_nonce = int.from_bytes(os.urandom(32), "little", signed=True)

    def res_pq(self) -> types.ResPQ:
        res = self.hs.answer(functions.ReqPqMultiRequest(self.nonce))
        assert isinstance(res, types.ResPQ)
        return res

    def dh_params(self, res: types.ResPQ, *, rsa_pad: bool = False) -> functions.ReqDHParamsRequest:
        p, q = Factorization.factorize(int.from_bytes(res.pq, "big"))
        inner_cls = types.PQInnerDataDc if rsa_pad else types.PQInnerData
        kwargs = {"dc": 2} if rsa_pad else {}
        inner = bytes(
            inner_cls(
                pq=res.pq,
                p=int_bytes(p),
                q=int_bytes(q),
                nonce=res.nonce,
                server_nonce=res.server_nonce,
                new_nonce=self.new_nonce,
                **kwargs,
            )
        )
        fp = res.server_public_key_fingerprints[0]
        key = keys.cloud_key()
        encrypted = (
            keys.rsa_pad_encrypt(key.public, inner) if rsa_pad else telethon_rsa.encrypt(fp, inner)
        )
        return functions.ReqDHParamsRequest(
            res.nonce, res.server_nonce, int_bytes(p), int_bytes(q), fp, encrypted
        )

    def finish(self, ok: types.ServerDHParamsOk, server_nonce: int) -> tuple[bytes, object]:
        key, iv = tmp_aes_key_iv(server_nonce, self.new_nonce)
        plain = AES.decrypt_ige(ok.encrypted_answer, key, iv)
        inner = parse_object(plain[20:])
        assert isinstance(inner, types.ServerDHInnerData)
        assert (inner.g, int.from_bytes(inner.dh_prime, "big")) == (dh.G, dh.PRIME)
        assert abs(inner.server_time - time.time()) < 5
        b = int.from_bytes(os.urandom(256), "big")
        g_b = pow(dh.G, b, dh.PRIME)
        client_inner = bytes(types.ClientDHInnerData(self.nonce, server_nonce, 0, int_bytes(g_b)))
        data = hashlib.sha1(client_inner).digest() + client_inner
        data += os.urandom(-len(data) % 16)
        gen = self.hs.answer(
            functions.SetClientDHParamsRequest(
                self.nonce, server_nonce, AES.encrypt_ige(data, key, iv)
            )
        )
        auth_key = pow(int.from_bytes(inner.g_a, "big"), b, dh.PRIME).to_bytes(256, "big")
        return auth_key, gen


@pytest.mark.parametrize("rsa_pad", [False, True])
def test_full_exchange_and_new_nonce_hash(rsa_pad: bool) -> None:
    hs = Handshake(keys.cloud_key())
    client = Client(hs)
    res = client.res_pq()
    ok = hs.answer(client.dh_params(res, rsa_pad=rsa_pad))
    assert isinstance(ok, types.ServerDHParamsOk)
    auth_key, gen = client.finish(ok, res.server_nonce)
    assert isinstance(gen, types.DhGenOk)
    assert hs.auth_key == auth_key
    expected = AuthKey(auth_key).calc_new_nonce_hash(client.new_nonce, 1)
    assert gen.new_nonce_hash1 == expected
    assert auth_key_id(auth_key) == AuthKey(auth_key).key_id


def test_pq_is_a_product_of_two_primes() -> None:
    hs = Handshake(keys.cloud_key())
    for _ in range(500):
        res = Client(hs).res_pq()
        # Telethon reads pq signed: it must come out positive.
        pq = int.from_bytes(res.pq, "big", signed=True)
        p, q = Factorization.factorize(pq)
        assert 1 < p < q and p * q == pq


def test_wrong_nonce_is_refused() -> None:
    hs = Handshake(keys.cloud_key())
    client = Client(hs)
    req = client.dh_params(client.res_pq())
    req.nonce ^= 1
    with pytest.raises(HandshakeError, match="nonce mismatch"):
        hs.answer(req)


def test_wrong_factors_and_fingerprint_are_refused() -> None:
    hs = Handshake(keys.cloud_key())
    client = Client(hs)
    req = client.dh_params(client.res_pq())
    good_p = req.p
    req.p = int_bytes(7)
    with pytest.raises(HandshakeError, match="factorization"):
        hs.answer(req)
    req.p, req.public_key_fingerprint = good_p, req.public_key_fingerprint ^ 1
    with pytest.raises(HandshakeError, match="fingerprint"):
        hs.answer(req)


def test_steps_out_of_order_are_refused() -> None:
    hs = Handshake(keys.cloud_key())
    with pytest.raises(HandshakeError, match="before req_pq"):
        hs.answer(functions.SetClientDHParamsRequest(1, 2, b"\0" * 16))
    client = Client(hs)
    res = client.res_pq()
    with pytest.raises(HandshakeError, match="before req_DH_params"):
        hs.answer(functions.SetClientDHParamsRequest(res.nonce, res.server_nonce, b"\0" * 16))
    with pytest.raises(HandshakeError, match="unexpected"):
        hs.answer(functions.PingRequest(1))


def test_req_pq_restarts_the_exchange() -> None:
    hs = Handshake(keys.cloud_key())
    first = Client(hs)
    first.res_pq()
    second = Client(hs)
    res = second.res_pq()
    ok = hs.answer(second.dh_params(res))
    _, gen = second.finish(ok, res.server_nonce)
    assert isinstance(gen, types.DhGenOk)


def test_plain_message_round_trip() -> None:
    body = bytes(functions.ReqPqMultiRequest(5))
    msg = unpack_plain(pack_plain(12345 << 2, body))
    assert (msg.msg_id, msg.body) == (12345 << 2, body)
    with pytest.raises(HandshakeError):
        unpack_plain(pack_plain(1, body)[:-4])

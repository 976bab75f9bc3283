"""Server side of the auth-key exchange, sans-IO (https://core.telegram.org/mtproto/auth_key).

The client sends three unencrypted requests (auth_key_id 0):
req_pq_multi -> resPQ (a pq to factorize and our key fingerprint);
req_DH_params (p, q and RSA-encrypted p_q_inner_data) -> server_DH_params_ok
(g, Telegram's 2048-bit dh_prime and g_a, AES-IGE encrypted with a key made
from the nonces); set_client_DH_params (g_b) -> dh_gen_ok.  Both sides then
hold auth_key = g^(ab) mod dh_prime.  `Handshake.answer(request)` returns the
reply; any inconsistency raises `HandshakeError` and the server closes the
connection.
"""

from __future__ import annotations

import hashlib
import os
import secrets
import struct
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from telethon.crypto import AES
from telethon.errors import TypeNotFoundError
from telethon.extensions import BinaryReader
from telethon.tl import functions, types

from simcloud.keys import CloudKey, KeyDecryptError
from simcloud.mtproto import dh

DH_SECRET_BYTES = 32
# Telegram's p and q are both ~31-bit.  Telethon's Pollard-Brent needs ~50 ms for those
# and now and then gives up, returning (1, pq) (3 in 20,000 tries with 24-bit pairs),
# which fails the handshake.  A 16-bit p and a 31-bit q factor in 0.5 ms and never
# failed in 20,000 tries; the product (at most 47 bits) keeps its top bit clear, as
# Telethon reads pq as a *signed* number.
P_BITS, Q_BITS = 16, 31


class HandshakeError(ValueError):
    """The client's auth-key exchange message is inconsistent or out of order."""


def int_bytes(n: int) -> bytes:
    """Big-endian, no leading zeros: how pq, p, q, dh_prime, g_a and g_b travel."""
    return n.to_bytes((n.bit_length() + 7) // 8, "big")


def auth_key_id(auth_key: bytes) -> int:
    """The lower 64 bits of SHA1(auth_key), unsigned, as read from the wire (little-endian)."""
    value: int = struct.unpack("<Q", hashlib.sha1(auth_key).digest()[12:20])[0]
    return value


def new_nonce_hash(auth_key: bytes, new_nonce: int, number: int) -> int:
    """new_nonce_hash1/2/3: low 128 bits of SHA1(new_nonce + number + auth_key_aux_hash)."""
    aux_hash = hashlib.sha1(auth_key).digest()[:8]
    data = new_nonce.to_bytes(32, "little", signed=True) + bytes([number]) + aux_hash
    return int.from_bytes(hashlib.sha1(data).digest()[4:20], "little", signed=True)


def tmp_aes_key_iv(server_nonce: int, new_nonce: int) -> tuple[bytes, bytes]:
    """The AES-IGE key and IV that protect server_DH_inner_data and client_DH_inner_data."""
    sn = server_nonce.to_bytes(16, "little", signed=True)
    nn = new_nonce.to_bytes(32, "little", signed=True)
    h1 = hashlib.sha1(nn + sn).digest()
    h2 = hashlib.sha1(sn + nn).digest()
    h3 = hashlib.sha1(nn + nn).digest()
    return h1 + h2[:12], h2[12:20] + h3 + nn[:4]


# Plain (unencrypted) messages: auth_key_id=0, msg_id, length, body.


@dataclass(frozen=True)
class PlainMessage:
    msg_id: int
    body: bytes


def unpack_plain(payload: bytes) -> PlainMessage:
    if len(payload) < 20:
        raise HandshakeError("plain message shorter than its header")
    key_id, msg_id, length = struct.unpack_from("<qqi", payload)
    if key_id != 0:
        raise HandshakeError("not a plain message")
    if length <= 0 or 20 + length > len(payload):
        raise HandshakeError(f"plain message length {length} out of range")
    return PlainMessage(msg_id, payload[20 : 20 + length])


def pack_plain(msg_id: int, body: bytes) -> bytes:
    return struct.pack("<qqi", 0, msg_id, len(body)) + body


def parse_object(body: bytes) -> Any:
    """One TL object (type or function) from bytes; unknown constructors are an error."""
    try:
        with BinaryReader(body) as reader:
            return reader.tgread_object()
    except (TypeNotFoundError, BufferError, struct.error, ValueError, AssertionError) as exc:
        raise HandshakeError(f"cannot parse TL object: {exc}") from exc


# pq: a product of two primes the client factorizes (Telethon uses Pollard rho).


def _is_prime(n: int) -> bool:
    if n < 2:
        return False
    for p in (2, 3, 5, 7, 11, 13, 17, 19, 23, 29, 31, 37):
        if n % p == 0:
            return n == p
    d, s = n - 1, 0
    while d % 2 == 0:
        d, s = d // 2, s + 1
    # These witnesses make Miller-Rabin deterministic below 3.3 * 10^24.
    for a in (2, 3, 5, 7, 11, 13, 17, 19, 23, 29, 31, 37):
        x = pow(a, d, n)
        if x in (1, n - 1):
            continue
        for _ in range(s - 1):
            x = pow(x, 2, n)
            if x == n - 1:
                break
        else:
            return False
    return True


def random_prime(bits: int, randbits: Callable[[int], int] = secrets.randbits) -> int:
    while True:
        candidate = randbits(bits) | (1 << (bits - 1)) | 1
        if _is_prime(candidate):
            return candidate


@dataclass
class _Pending:
    """What the exchange remembers between its steps."""

    nonce: int
    server_nonce: int
    p: int
    q: int
    new_nonce: int = 0
    a: int = 0


class Handshake:
    """One connection's auth-key exchange; `auth_key` is set once dh_gen_ok is sent."""

    def __init__(
        self,
        key: CloudKey,
        *,
        clock: Callable[[], float] = time.time,
        randbytes: Callable[[int], bytes] = os.urandom,
    ) -> None:
        self._key = key
        self._clock = clock
        self._randbytes = randbytes
        self._pending: _Pending | None = None
        self.auth_key: bytes | None = None
        self.server_salt = 0

    def answer(self, request: Any) -> Any:
        """The reply to one plain request; raises HandshakeError for anything wrong."""
        if isinstance(request, functions.ReqPqMultiRequest | functions.ReqPqRequest):
            return self._res_pq(request.nonce)
        if isinstance(request, functions.ReqDHParamsRequest):
            return self._server_dh_params(request)
        if isinstance(request, functions.SetClientDHParamsRequest):
            return self._dh_gen(request)
        raise HandshakeError(f"unexpected plain message {type(request).__name__}")

    def _res_pq(self, nonce: int) -> types.ResPQ:
        # A new req_pq restarts the exchange: Telethon retries on the same connection.
        p, q = random_prime(P_BITS), random_prime(Q_BITS)
        server_nonce = int.from_bytes(self._randbytes(16), "little", signed=True)
        self._pending = _Pending(nonce, server_nonce, p, q)
        self.auth_key = None
        return types.ResPQ(
            nonce=nonce,
            server_nonce=server_nonce,
            pq=int_bytes(p * q),
            server_public_key_fingerprints=[self._key.fingerprint],
        )

    def _check_nonces(self, nonce: int, server_nonce: int) -> _Pending:
        st = self._pending
        if st is None:
            raise HandshakeError("DH step before req_pq")
        if nonce != st.nonce or server_nonce != st.server_nonce:
            raise HandshakeError("nonce mismatch")
        return st

    def _server_dh_params(self, req: functions.ReqDHParamsRequest) -> types.ServerDHParamsOk:
        st = self._check_nonces(req.nonce, req.server_nonce)
        if req.public_key_fingerprint != self._key.fingerprint:
            raise HandshakeError("unknown public key fingerprint")
        if req.p != int_bytes(st.p) or req.q != int_bytes(st.q):
            raise HandshakeError("wrong factorization of pq")
        try:
            inner = parse_object(self._key.decrypt_inner_data(req.encrypted_data))
        except KeyDecryptError as exc:
            raise HandshakeError(str(exc)) from exc
        inner_types = (types.PQInnerData, types.PQInnerDataDc)
        if not isinstance(inner, inner_types):
            raise HandshakeError(f"encrypted_data holds {type(inner).__name__}")
        if inner.nonce != st.nonce or inner.server_nonce != st.server_nonce:
            raise HandshakeError("nonce mismatch in p_q_inner_data")
        if (inner.pq, inner.p, inner.q) != (int_bytes(st.p * st.q), req.p, req.q):
            raise HandshakeError("p_q_inner_data disagrees with req_DH_params")
        st.new_nonce = inner.new_nonce
        g_a = 0
        while not dh.in_safe_range(g_a):
            # Telegram draws a 2048-bit `a`; 256 bits make both of our modexps 8x faster
            # and g_a is still uniform enough for a simulator (the client checks its range).
            st.a = int.from_bytes(self._randbytes(DH_SECRET_BYTES), "big")
            g_a = pow(dh.G, st.a, dh.PRIME)
        answer = bytes(
            types.ServerDHInnerData(
                nonce=st.nonce,
                server_nonce=st.server_nonce,
                g=dh.G,
                dh_prime=int_bytes(dh.PRIME),
                g_a=int_bytes(g_a),
                server_time=int(self._clock()),
            )
        )
        with_hash = hashlib.sha1(answer).digest() + answer
        with_hash += self._randbytes(-len(with_hash) % 16)
        key, iv = tmp_aes_key_iv(st.server_nonce, st.new_nonce)
        return types.ServerDHParamsOk(
            nonce=st.nonce,
            server_nonce=st.server_nonce,
            encrypted_answer=AES.encrypt_ige(with_hash, key, iv),
        )

    def _dh_gen(self, req: functions.SetClientDHParamsRequest) -> types.DhGenOk:
        st = self._check_nonces(req.nonce, req.server_nonce)
        if not st.new_nonce:
            raise HandshakeError("set_client_DH_params before req_DH_params")
        if not req.encrypted_data or len(req.encrypted_data) % 16:
            raise HandshakeError("encrypted_data is not whole AES blocks")
        key, iv = tmp_aes_key_iv(st.server_nonce, st.new_nonce)
        plain = AES.decrypt_ige(req.encrypted_data, key, iv)
        inner = parse_object(plain[20:])
        if not isinstance(inner, types.ClientDHInnerData):
            raise HandshakeError(f"encrypted_data holds {type(inner).__name__}")
        if hashlib.sha1(bytes(inner)).digest() != plain[:20]:
            raise HandshakeError("client_DH_inner_data hash mismatch")
        if inner.nonce != st.nonce or inner.server_nonce != st.server_nonce:
            raise HandshakeError("nonce mismatch in client_DH_inner_data")
        g_b = int.from_bytes(inner.g_b, "big")
        if not dh.in_safe_range(g_b):
            raise HandshakeError("g_b outside the safe range")
        # Telegram's auth key is always 256 bytes (big-endian, zero-padded).
        auth_key = pow(g_b, st.a, dh.PRIME).to_bytes(256, "big")
        nn = st.new_nonce.to_bytes(32, "little", signed=True)
        sn = st.server_nonce.to_bytes(16, "little", signed=True)
        salt = bytes(a ^ b for a, b in zip(nn[:8], sn[:8], strict=True))
        self.server_salt = struct.unpack("<q", salt)[0]
        self.auth_key = auth_key
        self._pending = None
        return types.DhGenOk(
            nonce=st.nonce,
            server_nonce=st.server_nonce,
            new_nonce_hash1=new_nonce_hash(auth_key, st.new_nonce, 1),
        )

"""The cloud's RSA key: what Telegram's DCs hold and clients pin.

Clients encrypt `p_q_inner_data` with the server's public RSA key during the
auth-key exchange (https://core.telegram.org/mtproto/auth_key, step 2) and
pick the key by its fingerprint in `resPQ`.  Telethon only encrypts for keys
it knows, so `register_with_telethon()` adds ours to `telethon.crypto.rsa`.

A 2048-bit key takes seconds to generate in pure Python, so it is made once
per process (openssl when present, else the `rsa` package) and optionally
kept in a cache file the caller names.
"""

from __future__ import annotations

import hashlib
import logging
import os
import shutil
import struct
import subprocess
from dataclasses import dataclass
from pathlib import Path

import rsa
from telethon.crypto import AES
from telethon.crypto import rsa as telethon_rsa
from telethon.tl.tlobject import TLObject

log = logging.getLogger(__name__)

KEY_BITS = 2048
# RSA_PAD: data padded to 192 bytes, 32-byte temp key, 224-byte AES part.
_RSA_PAD_DATA = 192


class KeyDecryptError(ValueError):
    """encrypted_data of req_DH_params does not decrypt to a well-formed payload."""


def _int_bytes(n: int) -> bytes:
    """Big-endian bytes with no leading zeros, as Telegram writes pq, n and e."""
    return n.to_bytes((n.bit_length() + 7) // 8, "big")


@dataclass(frozen=True)
class CloudKey:
    """The private RSA key of the simulated DC."""

    private: rsa.PrivateKey

    @property
    def public(self) -> rsa.PublicKey:
        return rsa.PublicKey(self.private.n, self.private.e)

    @property
    def public_pem(self) -> bytes:
        """PKCS#1 PEM ("BEGIN RSA PUBLIC KEY"), the form Telethon's add_key loads."""
        pem: bytes = self.public.save_pkcs1()
        return pem

    @property
    def fingerprint(self) -> int:
        """Lower 64 bits of SHA1(n as TL bytes + e as TL bytes), signed, as in Telethon."""
        n = TLObject.serialize_bytes(_int_bytes(self.private.n))
        e = TLObject.serialize_bytes(_int_bytes(self.private.e))
        value: int = struct.unpack("<q", hashlib.sha1(n + e).digest()[-8:])[0]
        return value

    def register_with_telethon(self) -> None:
        """Let Telethon encrypt for this key (it only uses keys it knows)."""
        telethon_rsa.add_key(self.public_pem.decode(), old=False)

    def _raw_decrypt(self, data: bytes) -> bytes:
        if len(data) != 256:
            raise KeyDecryptError(f"RSA block is {len(data)} bytes, not 256")
        c = int.from_bytes(data, "big")
        if c >= self.private.n:
            raise KeyDecryptError("RSA block not below the modulus")
        # Chinese remainder theorem: three times faster than pow(c, d, n).
        k = self.private
        m1, m2 = pow(c, k.exp1, k.p), pow(c, k.exp2, k.q)
        m = m2 + (k.coef * (m1 - m2) % k.p) * k.q
        return m.to_bytes(256, "big")

    def decrypt_inner_data(self, encrypted: bytes) -> bytes:
        """Decrypt req_DH_params.encrypted_data to the serialized inner data.

        Accepts RSA_PAD (current clients) and the older SHA1 + data + padding
        form (what Telethon 1.45 sends).  The result may carry trailing
        padding after the TL object; the caller parses one object from it.
        """
        m = self._raw_decrypt(encrypted)
        inner = _unpad_rsa_pad(m)
        if inner is None:
            inner = _unpad_sha1(m)
        if inner is None:
            raise KeyDecryptError("neither RSA_PAD nor SHA1-padded inner data")
        return inner


def _unpad_rsa_pad(m: bytes) -> bytes | None:
    """Undo RSA_PAD (https://core.telegram.org/mtproto/auth_key#41-rsa-paddata-server-public-key-mentioned-above-is-implemented-as-follows)."""
    temp_key_xor, aes_encrypted = m[:32], m[32:]
    digest = hashlib.sha256(aes_encrypted).digest()
    temp_key = bytes(a ^ b for a, b in zip(temp_key_xor, digest, strict=True))
    data_with_hash: bytes = AES.decrypt_ige(aes_encrypted, temp_key, bytes(32))
    data_pad_reversed, hashed = data_with_hash[:_RSA_PAD_DATA], data_with_hash[_RSA_PAD_DATA:]
    data_with_padding = data_pad_reversed[::-1]
    if hashlib.sha256(temp_key + data_with_padding).digest() != hashed:
        return None
    return data_with_padding


def _unpad_sha1(m: bytes) -> bytes | None:
    """Undo the old form: 0x00 + SHA1(data) + data + random padding to 255 bytes."""
    if m[0] != 0:
        return None
    body = m[1:]
    digest, rest = body[:20], body[20:]
    # The data length is not sent; try every length the TL object could have.
    for length in range(len(rest) - len(rest) % 4, 0, -4):
        if hashlib.sha1(rest[:length]).digest() == digest:
            return rest[:length]
    return None


def rsa_pad_encrypt(public: rsa.PublicKey, data: bytes) -> bytes:
    """RSA_PAD as a client does it; used by tests to exercise the server side."""
    if len(data) > 144:
        raise ValueError("RSA_PAD data is at most 144 bytes")
    data_with_padding = data + os.urandom(_RSA_PAD_DATA - len(data))
    while True:
        temp_key = os.urandom(32)
        data_with_hash = (
            data_with_padding[::-1] + hashlib.sha256(temp_key + data_with_padding).digest()
        )
        aes_encrypted = AES.encrypt_ige(data_with_hash, temp_key, bytes(32))
        digest = hashlib.sha256(aes_encrypted).digest()
        temp_key_xor = bytes(a ^ b for a, b in zip(temp_key, digest, strict=True))
        key_aes_encrypted = int.from_bytes(temp_key_xor + aes_encrypted, "big")
        if key_aes_encrypted < public.n:
            return pow(key_aes_encrypted, public.e, public.n).to_bytes(256, "big")


def _generate() -> rsa.PrivateKey:
    if shutil.which("openssl"):
        # openssl makes a 2048-bit key in ~0.1 s; the rsa package needs seconds.
        pem = subprocess.run(
            ["openssl", "genrsa", "-traditional", str(KEY_BITS)],
            check=True,
            capture_output=True,
            timeout=60,
        ).stdout
        key: rsa.PrivateKey = rsa.PrivateKey.load_pkcs1(pem)
        return key
    log.info("openssl not found; generating the cloud RSA key in Python")
    _, private = rsa.newkeys(KEY_BITS)
    return private


_cached: CloudKey | None = None


def cloud_key(cache_file: Path | None = None) -> CloudKey:
    """The process-wide cloud key, loaded from `cache_file` or made (and saved there)."""
    global _cached
    if _cached is not None:
        return _cached
    if cache_file is not None and cache_file.exists():
        _cached = CloudKey(rsa.PrivateKey.load_pkcs1(cache_file.read_bytes()))
        return _cached
    _cached = CloudKey(_generate())
    if cache_file is not None:
        cache_file.parent.mkdir(parents=True, exist_ok=True)
        tmp = cache_file.with_suffix(cache_file.suffix + ".tmp")
        tmp.write_bytes(_cached.private.save_pkcs1())
        tmp.chmod(0o600)
        tmp.replace(cache_file)
    return _cached

"""The server side of Telegram's two-step verification (SRP-2048, core.telegram.org/api/srp).

The client proves it knows the password without sending it: `account.getPassword`
hands out the salts, Telegram's 2048-bit prime with g = 3 and a fresh `srp_B`;
`auth.checkPassword` brings back `A` and `M1`, which the server recomputes from
the stored verifier v = g^x mod p.  The KDF is PasswordKdfAlgoSHA256SHA256-
PBKDF2HMACSHA512iter100000SHA256ModPow, written here independently of
Telethon's client side so that a test can catch a mismatch.
"""

from __future__ import annotations

import hashlib
import os
import secrets
from dataclasses import dataclass

from telethon.tl import types

from simcloud.mtproto.dh import PRIME, PRIME_BYTES, G


def _sha256(*parts: bytes) -> bytes:
    h = hashlib.sha256()
    for p in parts:
        h.update(p)
    return h.digest()


def _pad(n: int) -> bytes:
    return n.to_bytes(256, "big")


def password_hash(salt1: bytes, salt2: bytes, password: str) -> bytes:
    """PH2(password, salt1, salt2) from core.telegram.org/api/srp."""
    ph1 = _sha256(salt2, _sha256(salt1, password.encode(), salt1), salt2)
    return _sha256(salt2, hashlib.pbkdf2_hmac("sha512", ph1, salt1, 100000), salt2)


def _good_mod_exp(value: int) -> bool:
    # The client rejects g_b (and we must never produce) values too close to 0 or p.
    return value.bit_length() >= 2048 - 64 and (PRIME - value).bit_length() >= 2048 - 64


@dataclass(frozen=True)
class PasswordVerifier:
    """What the server stores of a 2FA password: salts, hint and v = g^x mod p."""

    salt1: bytes
    salt2: bytes
    verifier: int
    hint: str = ""

    @classmethod
    def create(cls, password: str, hint: str = "") -> PasswordVerifier:
        # Telegram's salt1 is 8 server bytes plus 32 the client appended when it set
        # the password; the result is the same shape.
        salt1, salt2 = os.urandom(40), os.urandom(16)
        x = int.from_bytes(password_hash(salt1, salt2, password), "big")
        return cls(salt1, salt2, pow(G, x, PRIME), hint)

    def algo(self) -> types.PasswordKdfAlgoSHA256SHA256PBKDF2HMACSHA512iter100000SHA256ModPow:
        return types.PasswordKdfAlgoSHA256SHA256PBKDF2HMACSHA512iter100000SHA256ModPow(
            salt1=self.salt1, salt2=self.salt2, g=G, p=PRIME_BYTES
        )


def new_algo() -> types.PasswordKdfAlgoSHA256SHA256PBKDF2HMACSHA512iter100000SHA256ModPow:
    """The algorithm a client would use to set a new password (8 bytes of salt1)."""
    return types.PasswordKdfAlgoSHA256SHA256PBKDF2HMACSHA512iter100000SHA256ModPow(
        salt1=os.urandom(8), salt2=os.urandom(16), g=G, p=PRIME_BYTES
    )


@dataclass(frozen=True)
class Challenge:
    """One `account.getPassword` answer: the server's secret b and public B."""

    srp_id: int
    user_id: int
    b: int
    srp_b: bytes

    @classmethod
    def create(cls, user_id: int, verifier: PasswordVerifier) -> Challenge:
        k = int.from_bytes(_sha256(PRIME_BYTES, _pad(G)), "big")
        while True:
            b = secrets.randbits(2048)
            g_b = pow(G, b, PRIME)
            if _good_mod_exp(g_b):
                break
        big_b = (k * verifier.verifier + g_b) % PRIME
        return cls(secrets.randbits(63), user_id, b, _pad(big_b))

    def accepts(self, verifier: PasswordVerifier, a_bytes: bytes, m1: bytes) -> bool:
        """True when the client's (A, M1) prove knowledge of the password."""
        a = int.from_bytes(a_bytes, "big")
        if not 0 < a < PRIME:
            return False
        a_pad = _pad(a)
        u = int.from_bytes(_sha256(a_pad, self.srp_b), "big")
        s = pow(a * pow(verifier.verifier, u, PRIME) % PRIME, self.b, PRIME)
        k_session = _sha256(_pad(s))
        h_p, h_g = _sha256(PRIME_BYTES), _sha256(_pad(G))
        expected = _sha256(
            bytes(x ^ y for x, y in zip(h_p, h_g, strict=True)),
            _sha256(verifier.salt1),
            _sha256(verifier.salt2),
            a_pad,
            self.srp_b,
            k_session,
        )
        return secrets.compare_digest(expected, m1)

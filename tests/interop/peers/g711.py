"""G.711 for the test media (ITU-T G.711; RFC 3551 §4.5.14).

The gateway's own codec (``gateway.media.g711``) is used when it imports; the
small per-sample reference below only keeps the harness usable while the
gateway package is broken or half-written.  Both are bit-exact with the classic
Sun ``g711.c``: decoding then encoding returns every A-law code, and every
µ-law code except 0x7F ("negative zero", which a standard encoder never emits).
"""

from __future__ import annotations

import importlib
import struct
from collections.abc import Callable

__all__ = [
    "DECODERS",
    "ENCODERS",
    "SILENCE",
    "SOURCE",
    "alaw_decode",
    "alaw_encode",
    "ulaw_decode",
    "ulaw_encode",
]

Codec = Callable[[bytes], bytes]


def _alaw_to_linear(code: int) -> int:
    a = code ^ 0x55
    t = (a & 0x0F) << 4
    seg = (a & 0x70) >> 4
    t = t + 8 if seg == 0 else (t + 0x108) << (seg - 1)
    return t if a & 0x80 else -t


def _ulaw_to_linear(code: int) -> int:
    u = ~code & 0xFF
    t = (((u & 0x0F) << 3) + 0x84) << ((u & 0x70) >> 4)
    return 0x84 - t if u & 0x80 else t - 0x84


def _linear_to_alaw(sample: int) -> int:
    mag, mask = (sample >> 3, 0xD5) if sample >= 0 else (~sample >> 3, 0x55)
    seg = max(mag.bit_length() - 5, 0)
    if seg >= 8:
        return 0x7F ^ mask
    mant = (mag >> 1) if seg < 2 else (mag >> seg)
    return ((seg << 4) | (mant & 0x0F)) ^ mask


def _linear_to_ulaw(sample: int) -> int:
    mag, mask = (sample >> 2, 0xFF) if sample >= 0 else (-(sample >> 2), 0x7F)
    mag = min(mag, 8159) + 33
    seg = mag.bit_length() - 6
    if seg >= 8:
        return 0x7F ^ mask
    return ((seg << 4) | ((mag >> (seg + 1)) & 0x0F)) ^ mask


def _ref_decoder(one: Callable[[int], int]) -> Codec:
    table = [struct.pack("<h", one(c)) for c in range(256)]
    return lambda codes: b"".join(table[c] for c in codes)


def _ref_encoder(one: Callable[[int], int]) -> Codec:
    def encode(pcm: bytes) -> bytes:
        return bytes(one(s) for (s,) in struct.iter_unpack("<h", pcm))

    return encode


def _pick(name: str, fallback: Codec) -> tuple[Codec, str]:
    try:
        module = importlib.import_module("gateway.media.g711")
    except ImportError:  # the harness must still run its self-tests without the gateway
        return fallback, "tests.interop.peers.g711 (reference)"
    codec: Codec = getattr(module, name)
    return codec, "gateway.media.g711"


alaw_decode, SOURCE = _pick("alaw_decode", _ref_decoder(_alaw_to_linear))
ulaw_decode, _ = _pick("ulaw_decode", _ref_decoder(_ulaw_to_linear))
alaw_encode, _ = _pick("alaw_encode", _ref_encoder(_linear_to_alaw))
ulaw_encode, _ = _pick("ulaw_encode", _ref_encoder(_linear_to_ulaw))

DECODERS: dict[int, Codec] = {0: ulaw_decode, 8: alaw_decode}
ENCODERS: dict[int, Codec] = {0: ulaw_encode, 8: alaw_encode}
SILENCE: dict[int, int] = {0: 0xFF, 8: 0xD5}

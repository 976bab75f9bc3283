"""G.711 against an independent reference built from the Recommendation's segment tables.

The reference describes each code by its decision interval [lower, lower + step)
on the uniform scale (13-bit A-law magnitude 0..4095, 14-bit µ-law magnitude
0..8159) and decodes to the interval's midpoint; encoding is a bisect over the
lower decision levels.  The module under test uses Sun-style bit arithmetic.
"""

from bisect import bisect_right
from collections.abc import Callable

import pytest

from gateway.media import g711


def _alaw_levels() -> list[tuple[int, int, int]]:
    """(lower decision level, step, 7-bit segment/mantissa) for each magnitude code."""
    levels = []
    for seg in range(8):
        step = 2 if seg == 0 else 1 << seg
        start = 0 if seg == 0 else 16 << seg
        for mant in range(16):
            levels.append((start + mant * step, step, seg << 4 | mant))
    return levels


def _ulaw_levels() -> list[tuple[int, int, int]]:
    levels = []
    for seg in range(8):
        step = 2 << seg
        # segment ends are powers of two on the biased scale (magnitude + 33);
        # the first interval is [-1, 1), centred on zero
        start = (32 << seg) - 33
        for mant in range(16):
            levels.append((start + mant * step, step, seg << 4 | mant))
    return levels


ALAW = _alaw_levels()
ULAW = _ulaw_levels()


def ref_alaw_decode(code: int) -> int:
    raw = code ^ 0x55  # even bits are inverted on the line
    lower, step, _ = ALAW[raw & 0x7F]
    value = (lower + step // 2) * 8
    return value if raw & 0x80 else -value


def ref_ulaw_decode(code: int) -> int:
    raw = code ^ 0xFF  # all bits are inverted on the line
    lower, step, _ = ULAW[raw & 0x7F]
    value = (lower + step // 2) * 4
    return -value if raw & 0x80 else value


def ref_alaw_encode(sample: int) -> int:
    positive = sample >= 0
    mag = (sample if positive else -sample - 1) >> 3
    index = bisect_right([lv for lv, _, _ in ALAW], mag) - 1
    return (ALAW[index][2] | (0x80 if positive else 0)) ^ 0x55


def ref_ulaw_encode(sample: int) -> int:
    positive = sample >= 0
    mag = min(abs(sample >> 2), 8159)
    index = bisect_right([lv for lv, _, _ in ULAW], mag) - 1
    return (ULAW[index][2] | (0 if positive else 0x80)) ^ 0xFF


def _s16(values: list[int]) -> bytes:
    return b"".join(v.to_bytes(2, "little", signed=True) for v in values)


ALL_CODES = bytes(range(256))
ALL_SAMPLES = list(range(-32768, 32768))


@pytest.mark.parametrize(
    ("decode", "code", "value"),
    [
        (g711.alaw_decode, 0xD5, 8),
        (g711.alaw_decode, 0x55, -8),
        (g711.alaw_decode, 0x2A, -32256),
        (g711.alaw_decode, 0xAA, 32256),
        (g711.alaw_decode, 0xD4, 24),
        (g711.ulaw_decode, 0xFF, 0),
        (g711.ulaw_decode, 0x7F, 0),
        (g711.ulaw_decode, 0x00, -32124),
        (g711.ulaw_decode, 0x80, 32124),
        (g711.ulaw_decode, 0xFE, 8),
        (g711.ulaw_decode, 0xEF, 132),
    ],
)
def test_hand_checked_values(decode: Callable[[bytes], bytes], code: int, value: int) -> None:
    assert decode(bytes([code])) == _s16([value])


def test_alaw_decode_table() -> None:
    assert g711.alaw_decode(ALL_CODES) == _s16([ref_alaw_decode(c) for c in range(256)])


def test_ulaw_decode_table() -> None:
    assert g711.ulaw_decode(ALL_CODES) == _s16([ref_ulaw_decode(c) for c in range(256)])


def test_alaw_encode_all_inputs() -> None:
    expected = bytes(ref_alaw_encode(s) for s in ALL_SAMPLES)
    assert g711.alaw_encode(_s16(ALL_SAMPLES)) == expected


def test_ulaw_encode_all_inputs() -> None:
    expected = bytes(ref_ulaw_encode(s) for s in ALL_SAMPLES)
    assert g711.ulaw_encode(_s16(ALL_SAMPLES)) == expected


def test_alaw_round_trip_every_code() -> None:
    assert g711.alaw_encode(g711.alaw_decode(ALL_CODES)) == ALL_CODES


def test_ulaw_round_trip_every_code_but_negative_zero() -> None:
    expected = bytearray(ALL_CODES)
    expected[0x7F] = 0xFF  # negative zero decodes to 0, which encodes as positive zero
    assert g711.ulaw_encode(g711.ulaw_decode(ALL_CODES)) == bytes(expected)


@pytest.mark.parametrize("size", [0, 2, 4, 320])
def test_encode_lengths(size: int) -> None:
    pcm = _s16([1000] * (size // 2))
    assert g711.alaw_encode(pcm) == bytes([ref_alaw_encode(1000)]) * (size // 2)
    assert g711.ulaw_encode(pcm) == bytes([ref_ulaw_encode(1000)]) * (size // 2)


def test_encode_rejects_odd_length() -> None:
    with pytest.raises(ValueError, match="PCM of 3 bytes is not a whole number of 16-bit samples"):
        g711.ulaw_encode(b"\x00\x01\x02")


def test_codec_objects() -> None:
    assert (g711.PCMU.name, g711.PCMU.payload_type) == ("PCMU", 0)
    assert (g711.PCMA.name, g711.PCMA.payload_type) == ("PCMA", 8)
    pcm = _s16([0, 100, -100, 30000])
    assert g711.PCMU.encode(pcm) == g711.ulaw_encode(pcm)
    assert g711.PCMA.encode(pcm) == g711.alaw_encode(pcm)
    assert g711.PCMU.decode(b"\x00\x80") == g711.ulaw_decode(b"\x00\x80")
    assert g711.PCMA.decode(b"\x00\x80") == g711.alaw_decode(b"\x00\x80")
    assert g711.PCMU.encode(bytes(2)) == bytes([g711.PCMU.silence_code]) == b"\xff"
    assert g711.PCMA.encode(bytes(2)) == bytes([g711.PCMA.silence_code]) == b"\xd5"
    assert g711.G711Codec("PCMA", 96).decode(b"\xd5") == _s16([8])


def test_codec_for() -> None:
    assert g711.codec_for(0) is g711.PCMU
    assert g711.codec_for(8) is g711.PCMA
    assert g711.codec_for("pcma") is g711.PCMA
    assert g711.codec_for("PCMU/8000") is g711.PCMU
    with pytest.raises(ValueError, match="payload type 18 is not a static G.711 type"):
        g711.codec_for(18)
    with pytest.raises(ValueError, match="codec 'G729' is not G.711"):
        g711.codec_for("G729")
    with pytest.raises(ValueError, match="unknown G.711 codec 'opus'"):
        g711.G711Codec("opus", 111)

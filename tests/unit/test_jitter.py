"""Jitter buffer: pacing, reordering, loss, underrun, overflow, restarts."""

import struct

import pytest

from gateway.media.jitter import JitterBuffer, JitterStats

SIL20 = bytes(320)


def frame(i: int, samples: int = 160) -> bytes:
    """A recognisable frame: sample j of frame i is i * 1000 + j (wrapped to s16)."""
    return struct.pack(
        f"<{samples}h", *(((i * 1000 + j + 32768) % 65536) - 32768 for j in range(samples))
    )


def const(value: int, samples: int = 160) -> bytes:
    return struct.pack(f"<{samples}h", *([value] * samples))


def test_clean_stream_is_byte_identical_after_initial_delay() -> None:
    jb = JitterBuffer(target_ms=60)
    out = []
    for i in range(200):
        jb.put(1000 + i, 5000 + 160 * i, frame(i))
        out.append(jb.pop())
    assert out[:3] == [SIL20] * 3
    assert out[3:] == [frame(i) for i in range(197)]
    assert jb.stats == JitterStats(received=200, depth_ms=60)


def test_clean_stream_pop_before_put() -> None:
    jb = JitterBuffer(target_ms=40)
    assert jb.pop() == SIL20  # nothing yet
    out = []
    for i in range(100):
        jb.put(i, 160 * i, frame(i))
        out.append(jb.pop())
    assert out == [SIL20, SIL20] + [frame(i) for i in range(98)]
    assert (jb.stats.lost, jb.stats.underruns, jb.stats.dropped) == (0, 0, 0)


def test_reordered_within_depth() -> None:
    jb = JitterBuffer(target_ms=60)
    order = [0, 2, 1, 3, 5, 4, 6, 7, 8, 9, 10, 11]
    out = []
    for i in order:
        jb.put(i, 160 * i, frame(i))
        out.append(jb.pop())
    assert out == [SIL20] * 3 + [frame(i) for i in range(9)]
    assert jb.stats.lost == 0


def test_duplicates_counted_and_ignored() -> None:
    jb = JitterBuffer(target_ms=20)
    jb.put(1, 160, frame(1))
    jb.put(1, 160, frame(99))
    assert [jb.pop(), jb.pop()] == [SIL20, frame(1)]
    jb.put(1, 160, frame(1))  # after playout: still a duplicate, not late
    assert (jb.stats.duplicates, jb.stats.late) == (2, 0)


def test_late_packet_dropped_and_concealed() -> None:
    jb = JitterBuffer(target_ms=20)
    jb.put(0, 0, const(1000))
    assert jb.pop() == SIL20
    assert jb.pop() == const(1000)
    jb.put(2, 320, frame(2))  # seq 1 is missing, 2 is buffered
    concealed = jb.pop()
    assert concealed == fade(const(1000, 80), 0) + fade(const(1000, 80), 1)
    assert jb.stats.lost == 1
    jb.put(1, 160, frame(1))
    assert jb.stats.late == 1
    assert jb.pop() == frame(2)


def fade(sub: bytes, k: int) -> bytes:
    """Reference fade: gain falls linearly from (6-k)/6 to (5-k)/6 across 80 samples."""
    samples = struct.unpack("<80h", sub)
    return struct.pack("<80h", *(s * ((6 - k) * 80 - i) // 480 for i, s in enumerate(samples)))


def test_fade_values() -> None:
    first = struct.unpack("<80h", fade(const(1000, 80), 0))
    assert (first[0], first[79]) == (1000, 835)


def test_underrun_conceals_then_waits_for_the_late_packet() -> None:
    jb = JitterBuffer(target_ms=20)
    last = const(-2000)
    jb.put(0, 0, frame(0))
    jb.put(1, 160, last)
    assert [jb.pop(), jb.pop(), jb.pop()] == [SIL20, frame(0), last]
    sub = last[:160]
    assert jb.pop() == fade(sub, 0) + fade(sub, 1)
    assert jb.pop() == fade(sub, 2) + fade(sub, 3)
    assert jb.pop() == fade(sub, 4) + fade(sub, 5)
    assert jb.pop() == SIL20
    assert jb.stats.underruns == 4
    # the position was held: the next packet plays at once, nothing counted lost
    jb.put(2, 320, frame(2))
    assert jb.pop() == frame(2)
    assert (jb.stats.lost, jb.stats.late) == (0, 0)


def test_sequence_and_timestamp_wraparound() -> None:
    jb = JitterBuffer(target_ms=40)
    out = []
    for i in range(20):
        jb.put((65530 + i) & 0xFFFF, (0xFFFFFD00 + 160 * i) & 0xFFFFFFFF, frame(i))
        out.append(jb.pop())
    assert out == [SIL20, SIL20] + [frame(i) for i in range(18)]
    assert jb.stats.resets == 0


def test_overflow_drops_to_target() -> None:
    jb = JitterBuffer(target_ms=60, max_ms=160)
    for i in range(20):  # a 400 ms burst after a stall
        jb.put(i, 160 * i, frame(i))
    assert jb.depth_ms == 460
    out = jb.pop()
    # playout jumps to 60 ms before the end of the burst: frames 17..19 remain
    assert out == frame(17)
    assert jb.stats.dropped == 2 * 17  # sub-frames of real audio discarded
    assert [jb.pop(), jb.pop()] == [frame(18), frame(19)]


def test_drift_shrinks_by_10ms_after_a_second_of_spare_packets() -> None:
    jb = JitterBuffer(target_ms=40)
    jb.put(0, 0, frame(0))
    jb.put(1, 160, frame(1))  # one packet ahead from the start: a whole spare packet
    out = []
    for i in range(2, 60):
        jb.put(i, 160 * i, frame(i))
        out.append(jb.pop())
    assert jb.stats.dropped == 1
    joined = b"".join(out)
    # 10 ms (160 bytes) of frame 47 was skipped at the 50th pop
    assert frame(46) + frame(47)[160:] + frame(48) in joined
    assert jb.stats.lost == 0


def test_timestamp_jump_resets() -> None:
    jb = JitterBuffer(target_ms=20)
    for i in range(3):
        jb.put(i, 160 * i, frame(i))
        jb.pop()
    jb.put(3, 10_000_000, frame(50))
    assert jb.stats.resets == 1
    assert [jb.pop(), jb.pop()] == [SIL20, frame(50)]


def test_timestamp_jump_backwards_with_newer_sequence_resets() -> None:
    jb = JitterBuffer(target_ms=20)
    jb.put(10, 800_000, frame(0))
    jb.pop()
    jb.put(11, 0, frame(1))
    assert (jb.stats.resets, jb.stats.late) == (1, 0)
    assert [jb.pop(), jb.pop()] == [SIL20, frame(1)]


def test_ssrc_change_resets() -> None:
    jb = JitterBuffer(target_ms=20)
    jb.put(1, 160, frame(1), ssrc=7)
    jb.put(2, 320, frame(2), ssrc=7)
    jb.put(500, 77_000, frame(9), ssrc=8)
    assert jb.stats.resets == 1
    assert [jb.pop(), jb.pop()] == [SIL20, frame(9)]


@pytest.mark.parametrize("packet_ms", [10, 30])
def test_packet_size_differs_from_ptime(packet_ms: int) -> None:
    samples = packet_ms * 8
    audio = b"".join(frame(i, 80) for i in range(60))  # 600 ms in 10 ms pieces
    size = samples * 2
    jb = JitterBuffer(target_ms=60, ptime=20)
    out = []
    pos = 0
    seq = 0
    for tick in range(30):  # packets are put when their time has come
        while pos < len(audio) and pos // 16 <= tick * 20:
            jb.put(seq, pos // 2, audio[pos : pos + size])
            pos += size
            seq += 1
        out.append(jb.pop())
    joined = b"".join(out)
    assert joined[: 3 * 320] == bytes(3 * 320)
    assert joined[3 * 320 :] == audio[: 27 * 320]
    assert jb.stats.lost + jb.stats.underruns + jb.stats.dropped == 0


def test_ragged_packet_is_padded() -> None:
    jb = JitterBuffer(target_ms=0, ptime=10)
    jb.put(0, 0, b"\x01\x00" * 50)  # 6.25 ms
    assert jb.pop() == b"\x01\x00" * 50 + bytes(60)


def test_bad_parameters() -> None:
    with pytest.raises(ValueError, match="jitter target 55 ms"):
        JitterBuffer(target_ms=55)
    with pytest.raises(ValueError, match="ptime 25 ms"):
        JitterBuffer(ptime=25)


def test_skip_prefill_drops_only_silence() -> None:
    jb = JitterBuffer(target_ms=60)
    jb.put(0, 0, frame(0))
    jb.put(1, 160, frame(1))
    assert jb.skip_prefill(100) == 60  # only the 60 ms of prefill exist
    assert [jb.pop(), jb.pop()] == [frame(0), frame(1)]
    assert jb.skip_prefill(100) == 0
    assert jb.stats.dropped == 0

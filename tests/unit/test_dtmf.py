"""RFC 4733 telephone-events: payload, sender packet sequences, receiver dedupe."""

import pytest

from gateway.errors import RtpError
from gateway.media.dtmf import (
    DtmfDigit,
    DtmfReceiver,
    DtmfSender,
    TelephoneEvent,
    digit_to_event,
    event_to_digit,
)
from gateway.media.rtp import RtpPacket


def fields(packets: list[RtpPacket]) -> list[tuple[int, int, bool, int, bool, int, int]]:
    """(seq, ts, marker, event, end, volume, duration) per packet."""
    out = []
    for p in packets:
        ev = TelephoneEvent.parse(p.payload)
        out.append((p.sequence, p.timestamp, p.marker, ev.event, ev.end, ev.volume, ev.duration))
    return out


def feed_all(rx: DtmfReceiver, packets: list[RtpPacket]) -> list[DtmfDigit]:
    out: list[DtmfDigit] = []
    for p in packets:
        out += rx.feed(TelephoneEvent.parse(p.payload), p.timestamp, p.marker)
    return out


# ---- payload ---------------------------------------------------------------


def test_payload_parse_and_bytes() -> None:
    data = bytes.fromhex("058a0320")
    ev = TelephoneEvent.parse(data)
    assert ev == TelephoneEvent(event=5, end=True, volume=10, duration=800)
    assert bytes(ev) == data
    assert bytes(TelephoneEvent(11, False, 63, 65535)) == bytes.fromhex("0b3fffff")
    # the reserved R bit is ignored on parse
    assert TelephoneEvent.parse(bytes.fromhex("0bc00001")) == TelephoneEvent(11, True, 0, 1)


def test_payload_errors() -> None:
    with pytest.raises(RtpError, match="telephone-event payload is 3 bytes, needs 4"):
        TelephoneEvent.parse(b"\x05\x8a\x03")
    with pytest.raises(RtpError, match="telephone-event volume 64 is outside 0..63"):
        bytes(TelephoneEvent(1, volume=64))
    with pytest.raises(RtpError, match="telephone-event duration 65536 is outside 0..65535"):
        bytes(TelephoneEvent(1, duration=65536))
    with pytest.raises(RtpError, match="telephone-event code 256 is outside 0..255"):
        bytes(TelephoneEvent(256))


def test_event_codes() -> None:
    assert [digit_to_event(d) for d in "0123456789*#ABCD"] == list(range(16))
    assert digit_to_event("a") == 12
    assert "".join(event_to_digit(e) or "?" for e in range(17)) == "0123456789*#ABCD?"
    for bad in ("E", "", "12", " "):
        with pytest.raises(ValueError, match="is not a DTMF digit"):
            digit_to_event(bad)


# ---- sender ----------------------------------------------------------------


def test_sender_100ms() -> None:
    sender = DtmfSender(payload_type=101, ssrc=0xABCD, ptime=20)
    packets = sender.packets("5", 100, timestamp=8000, sequence=7)
    assert fields(packets) == [
        (7, 8000, True, 5, False, 10, 160),
        (8, 8000, False, 5, False, 10, 320),
        (9, 8000, False, 5, False, 10, 480),
        (10, 8000, False, 5, False, 10, 640),
        (11, 8000, False, 5, True, 10, 800),
        (12, 8000, False, 5, True, 10, 800),
        (13, 8000, False, 5, True, 10, 800),
    ]
    assert {(p.payload_type, p.ssrc) for p in packets} == {(101, 0xABCD)}


def test_sender_shorter_than_ptime_and_wrap() -> None:
    sender = DtmfSender(payload_type=96, ptime=30, volume=5)
    packets = sender.packets("#", 10, timestamp=0xFFFFFFFF, sequence=65535)
    assert fields(packets) == [
        (65535, 0xFFFFFFFF, True, 11, True, 5, 80),
        (0, 0xFFFFFFFF, False, 11, True, 5, 80),
        (1, 0xFFFFFFFF, False, 11, True, 5, 80),
    ]


def test_sender_duration_not_multiple_of_ptime() -> None:
    packets = DtmfSender(101).packets("A", 50, timestamp=0)
    assert [(f[2], f[4], f[6]) for f in fields(packets)] == [
        (True, False, 160),
        (False, False, 320),
        (False, True, 400),
        (False, True, 400),
        (False, True, 400),
    ]


def test_sender_long_event_segments() -> None:
    t0 = 1000
    packets = DtmfSender(101).packets("9", 9000, timestamp=t0)  # 72000 units > 65535
    f = fields(packets)
    assert len(packets) == 452
    assert [p.sequence for p in packets] == list(range(452))
    assert sum(p.marker for p in packets) == 1 and packets[0].marker
    # first segment: updates every 160 units, then 65535 without E, three times
    assert [x[6] for x in f[:409]] == list(range(160, 65441, 160))
    assert {x[1] for x in f[:412]} == {t0}
    assert [(x[4], x[6]) for x in f[409:412]] == [(False, 65535)] * 3
    # second segment starts where the first ended; durations count from there
    assert {x[1] for x in f[412:]} == {t0 + 65535}
    assert f[412][6] == 413 * 160 - 65535
    assert [(x[4], x[6]) for x in f[449:]] == [(True, 72000 - 65535)] * 3
    assert feed_all(DtmfReceiver(), packets) == [DtmfDigit("9", 9000, t0)]


def test_sender_errors() -> None:
    with pytest.raises(ValueError, match="'x' is not a DTMF digit"):
        DtmfSender(101).packets("x", 100, 0)
    with pytest.raises(ValueError, match="DTMF duration 0 ms is not positive"):
        DtmfSender(101).packets("1", 0, 0)


# ---- receiver --------------------------------------------------------------

PRESS = DtmfSender(101).packets("7", 100, timestamp=16000)


def test_receiver_reports_once_at_first_end() -> None:
    rx = DtmfReceiver()
    results = [rx.feed(TelephoneEvent.parse(p.payload), p.timestamp, p.marker) for p in PRESS]
    assert results == [[], [], [], [], [DtmfDigit("7", 100, 16000)], [], []]


def test_receiver_retransmitted_ends_after_report() -> None:
    rx = DtmfReceiver()
    assert feed_all(rx, PRESS + PRESS[-3:] + PRESS[-1:]) == [DtmfDigit("7", 100, 16000)]


def test_receiver_lost_start() -> None:
    assert feed_all(DtmfReceiver(), PRESS[1:]) == [DtmfDigit("7", 100, 16000)]


def test_receiver_only_end_packets() -> None:
    assert feed_all(DtmfReceiver(), PRESS[-2:]) == [DtmfDigit("7", 100, 16000)]


def test_receiver_reordered_end_before_update() -> None:
    order = PRESS[:2] + [PRESS[4], PRESS[3], PRESS[2]] + PRESS[5:]
    assert feed_all(DtmfReceiver(), order) == [DtmfDigit("7", 100, 16000)]


def test_receiver_lost_ends_then_new_event() -> None:
    second = DtmfSender(101).packets("7", 60, timestamp=24000, sequence=20)
    rx = DtmfReceiver()
    assert feed_all(rx, PRESS[:4]) == []
    # the new timestamp closes the previous press with the last duration seen (640 = 80 ms)
    assert feed_all(rx, second[:1]) == [DtmfDigit("7", 80, 16000)]
    assert feed_all(rx, second[1:]) == [DtmfDigit("7", 60, 24000)]
    # a late end of the first press is not a new key press
    assert feed_all(rx, PRESS[-1:]) == []


def test_receiver_poll_timeout() -> None:
    rx = DtmfReceiver(end_timeout=0.25)
    for i, p in enumerate(PRESS[:3]):
        assert rx.feed(TelephoneEvent.parse(p.payload), p.timestamp, p.marker, now=i * 0.02) == []
    assert rx.poll(0.28) == []
    assert rx.poll(0.30) == [DtmfDigit("7", 60, 16000)]
    assert rx.poll(1.0) == []
    assert feed_all(rx, PRESS[3:]) == []


def test_receiver_same_digit_twice() -> None:
    again = DtmfSender(101).packets("7", 100, timestamp=17600, sequence=7)
    assert feed_all(DtmfReceiver(), PRESS + again) == [
        DtmfDigit("7", 100, 16000),
        DtmfDigit("7", 100, 17600),
    ]


def test_receiver_stale_event_ignored_and_reset() -> None:
    old = DtmfSender(101).packets("1", 100, timestamp=8000)
    rx = DtmfReceiver()
    assert feed_all(rx, PRESS) == [DtmfDigit("7", 100, 16000)]
    assert feed_all(rx, old[-1:]) == []  # delayed from before the last reported press
    rx.reset()
    assert feed_all(rx, old[-1:]) == [DtmfDigit("1", 100, 8000)]


def test_receiver_ignores_non_dtmf_events() -> None:
    rx = DtmfReceiver()
    assert rx.feed(TelephoneEvent(16, True, 10, 800), 100, True) == []  # flash
    assert rx.feed(TelephoneEvent(16, True, 10, 800), 100, False) == []

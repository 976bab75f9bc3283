"""The local handset on ALSA's null/file plugins, driven tick by tick (no gateway, no sleeping).

What it plays lands in ``out.raw``; its microphone reads ``in.raw``
(tests/hardware/handset_fixtures.py).  The media clock is manual, so every
period in and out is counted: one per 20 ms tick, never more, even though the
``null`` plugin would take or give any amount at once.
"""

from __future__ import annotations

import logging
import os
from pathlib import Path

import pytest

from gateway.config import ConfigInvalid, HandsetSettings, config_to_dict, parse_config
from gateway.hardware.handset import PERIOD_BYTES, Handset, HandsetLeg
from gateway.media.clock import MediaClock
from simcloud.audio import analyse
from tests.hardware.handset_fixtures import (
    MISSING_DEVICE,
    AlsaRig,
    alsa_rig,
    assert_ring_cadence,
    tone,
)

TICK = 0.020
MIC_TONE = 1000.0
CALLER_TONE = 440.0


class Rig:
    """A handset on the test's ALSA device and a clock the test turns by hand."""

    def __init__(self, alsa: AlsaRig, **settings: object) -> None:
        self.alsa = alsa
        self.clock = MediaClock(manual=True)
        self.now = 0.0
        self.handset = Handset(
            HandsetSettings(device=alsa.device, **settings),  # type: ignore[arg-type]
            self.clock,
        )

    def run(self, seconds: float, each: object = None) -> None:
        for _ in range(round(seconds / TICK)):
            self.now += TICK
            if callable(each):
                each()
            self.clock.tick(self.now)


@pytest.fixture
def rig(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Rig:
    return Rig(alsa_rig(tmp_path / "alsa", monkeypatch, tone(MIC_TONE, 10.0)))


def test_rings_with_a_double_ring_until_rejected(rig: Rig) -> None:
    handset = rig.handset
    changes: list[str] = []
    handset.on_change.append(lambda h: changes.append(h.state))
    handset.start()
    leg = handset.ring("Carol (+442079460000)")
    assert leg is not None and handset.state == "ringing" and handset.ringing
    assert rig.clock.subscribers == 1
    rig.run(3.2)
    handset.reject()
    assert leg.ended and leg.outcome == "rejected" and leg.answered_at is None
    state: str = handset.state  # (mypy narrowed it to "ringing" above)
    assert state == "idle" and not handset.ringing and handset.leg is None
    assert changes == ["ringing", "idle"]
    rig.run(0.1)
    assert rig.clock.subscribers == 0  # an idle handset costs the clock nothing
    played = rig.alsa.played()
    # Two periods of silence first, then exactly one 20 ms period per tick.
    assert len(played) == PERIOD_BYTES * (2 + round(3.2 / TICK)), len(played)
    assert_ring_cadence(played)
    # The second ring starts 3 s after the first (0.4 on, 0.2 off, 0.4 on, 2 off).
    second = played[PERIOD_BYTES * 2 + 3 * 16000 : PERIOD_BYTES * 2 + 3 * 16000 + 3200]
    assert analyse(second).voiced_frames >= 9


def test_ring_volume_scales_the_ring_and_zero_is_silent(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    levels = []
    for volume in (100, 25, 0):
        rig = Rig(alsa_rig(tmp_path / f"v{volume}", monkeypatch), ring_volume=volume)
        assert rig.handset.ring("x") is not None
        rig.run(0.4)
        rig.handset.reject()
        levels.append(analyse(rig.alsa.played(), settle_ms=0).level_dbfs)
    loud, soft, silent = levels
    assert loud is not None and soft is not None and silent is None, levels
    assert abs((loud - soft) - 12.0) < 0.5, levels  # 20 log10(100 / 25)


def test_answer_talks_both_ways_then_hangs_up(rig: Rig) -> None:
    handset = rig.handset
    leg = handset.ring("Carol")
    assert leg is not None
    states: list[HandsetLeg] = []
    leg.on_state = states.append
    rig.run(1.5)
    handset.short_press()
    assert handset.state == "talking" and leg.answered_at is not None and not leg.ended
    assert states == [leg]
    heard: list[bytes] = []
    leg.on_audio = heard.append
    caller = iter(tone(CALLER_TONE, 4.0)[i : i + 320] for i in range(0, 64000, 320))
    rig.run(4.0, each=lambda: leg.write_audio(next(caller)))
    handset.short_press()  # hangs up
    assert leg.ended and leg.outcome == "answered" and handset.state == "idle"
    assert states == [leg, leg]
    handset.short_press()  # idle: nothing
    assert handset.state == "idle"

    # The microphone: one period per tick, read from in.raw at the pace of the clock.
    assert len(heard) == round(4.0 / TICK) and {len(p) for p in heard} == {PERIOD_BYTES}
    mic = analyse(b"".join(heard))
    assert mic.frequency_hz is not None and abs(mic.frequency_hz - MIC_TONE) < 1.0, mic
    assert mic.voiced_frames == len(heard) * 2  # no gap, no repeat: in.raw from its start
    # The speaker: the ring, then the caller's tone.
    played = rig.alsa.played()
    assert_ring_cadence(played)
    talk = analyse(played[-3 * 16000 :])
    assert talk.frequency_hz is not None and abs(talk.frequency_hz - CALLER_TONE) < 1.0, talk


def test_one_call_at_a_time_and_reject_only_while_ringing(rig: Rig) -> None:
    handset = rig.handset
    first = handset.ring("a")
    assert first is not None
    assert handset.ring("b") is None  # busy: the second call rings the members only
    handset.short_press()
    handset.reject()  # talking: reject does nothing
    assert handset.state == "talking" and not first.ended
    first.hangup()  # the caller went away
    assert first.ended and handset.state == "idle"
    second = handset.ring("c")
    assert second is not None
    second.hangup("no-answer")
    assert second.outcome == "no-answer"
    handset.reject()  # idle: nothing
    handset.stop()


def test_stop_ends_a_call(rig: Rig) -> None:
    leg = rig.handset.ring("a")
    assert leg is not None
    rig.handset.short_press()
    rig.handset.stop()
    assert leg.ended and rig.handset.state == "idle" and rig.clock.subscribers == 0


def test_rings_for_its_lines_only(rig: Rig) -> None:
    assert rig.handset.rings_for("home") and rig.handset.rings_for("office")
    picky = Handset(HandsetSettings(device="x", lines=("home",)), rig.clock)
    assert picky.rings_for("home") and not picky.rings_for("office")


def test_missing_device_logs_one_error_and_never_rings(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    alsa_rig(tmp_path, monkeypatch)
    handset = Handset(HandsetSettings(device=MISSING_DEVICE), MediaClock(manual=True))
    with caplog.at_level(logging.INFO, logger="gateway.hardware.handset"):
        handset.start()
        assert handset.ring("a") is None
        assert handset.ring("b") is None
        handset.short_press()
        handset.reject()
    errors = [r for r in caplog.records if r.levelno >= logging.ERROR]
    assert len(errors) == 1, errors
    assert MISSING_DEVICE in errors[0].getMessage() and "aplay -L" in errors[0].getMessage()
    assert handset.state == "idle"


def test_a_device_that_comes_back_rings_again(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    alsa = alsa_rig(tmp_path, monkeypatch)
    config = Path(str(alsa.out)).parent / "asound.conf"
    text = config.read_text()
    config.write_text("")  # unplugged
    handset = Handset(HandsetSettings(device=alsa.device), MediaClock(manual=True))
    with caplog.at_level(logging.INFO, logger="gateway.hardware.handset"):
        handset.start()
        config.write_text(text)  # plugged in: alsa-lib re-reads a file whose mtime changed
        stamp = config.stat().st_mtime + 2  # (it compares whole seconds)
        os.utime(config, (stamp, stamp))
        leg = handset.ring("a")
    assert leg is not None
    assert any("works again" in r.getMessage() for r in caplog.records)
    handset.stop()


# -- [handset] in the settings file ------------------------------------------------------------

LINES = [
    {"name": "home", "kind": "ata", "allow": ["192.0.2.20"]},
    {"name": "office", "kind": "ata"},
]


def _parse(handset: dict[str, object]) -> HandsetSettings:
    return parse_config({"lines": LINES, "handset": handset}, base_dir=Path("/tmp")).handset


def test_config_defaults_and_round_trip() -> None:
    default = parse_config({}, base_dir=Path("/tmp")).handset
    assert default == HandsetSettings(device="", name="Home phone", lines=(), ring_volume=80)
    settings = _parse({"device": "plughw:CARD=Speaker,DEV=0", "name": "Kitchen", "lines": ["home"]})
    assert settings.lines == ("home",) and settings.name == "Kitchen"
    config = parse_config(
        {"lines": LINES, "handset": {"device": "default", "ring_volume": 0}}, base_dir=Path("/tmp")
    )
    again = parse_config(config_to_dict(config), base_dir=Path("/tmp"))
    assert again.handset == config.handset


@pytest.mark.parametrize(
    ("handset", "problem"),
    [
        ({"lines": ["home", "attic"]}, 'handset.lines[1]: no line is called "attic"'),
        ({"lines": "home"}, "handset.lines: must be an array of strings"),
        ({"ring_volume": 101}, "handset.ring_volume: must be an integer between 0 and 100"),
        ({"name": " "}, "handset.name: must not be empty"),
        ({"device": 3}, "handset.device: must be a string"),
        ({"device": "hw:1\n"}, "handset.device: must be an ALSA PCM name"),
        ({"ringtone": "x"}, "handset.ringtone: unknown key"),
    ],
)
def test_config_errors_name_the_field(handset: dict[str, object], problem: str) -> None:
    with pytest.raises(ConfigInvalid) as caught:
        _parse(handset)
    assert any(p.startswith(problem) for p in caught.value.problems), caught.value.problems

"""Tests for the [simulation] table of gateway/config.py: defaults, values, every refusal."""

from __future__ import annotations

import tomllib
import wave
from pathlib import Path
from typing import Any

import pytest
import tomli_w

from gateway.config import (
    ConfigInvalid,
    SimulatedMember,
    SimulationSettings,
    config_to_dict,
    default_config,
    load_config,
    parse_config,
    save_config,
)

LINES = [
    {"name": "demo", "kind": "ata", "allow": ["127.0.0.1"]},
    {"name": "office", "kind": "ata", "allow": ["127.0.0.2"]},
]


def wav(path: Path, *, rate: int = 8000, channels: int = 1, width: int = 2) -> Path:
    with wave.open(str(path), "wb") as w:
        w.setnchannels(channels)
        w.setsampwidth(width)
        w.setframerate(rate)
        w.writeframes(bytes(width * channels * rate // 10))
    return path


def parse(base: Path, simulation: dict[str, Any], lines: list[Any] = LINES) -> SimulationSettings:
    return parse_config({"lines": lines, "simulation": simulation}, base_dir=base).simulation


def problems(base: Path, simulation: Any, lines: list[Any] = LINES) -> list[str]:
    with pytest.raises(ConfigInvalid) as info:
        parse_config({"lines": lines, "simulation": simulation}, base_dir=base)
    return list(info.value.problems)


def one_problem(base: Path, simulation: Any) -> str:
    found = problems(base, simulation)
    assert len(found) == 1, found
    return found[0]


def member(**values: Any) -> dict[str, Any]:
    return {"simulation": {"members": [{"name": "Alice", **values}]}}["simulation"]


def test_defaults_are_off_and_not_saved(tmp_path: Path) -> None:
    config = default_config(tmp_path)
    assert config.simulation == SimulationSettings()
    assert config.simulation.enabled is False
    assert (config.simulation.listen, config.simulation.port) == ("127.0.0.1", 0)
    assert config.simulation.bot_username == "linegram_sim_bot"
    assert "simulation" not in config_to_dict(config)


def test_a_full_table(tmp_path: Path) -> None:
    wav(tmp_path / "greeting.wav", rate=48000)
    settings = parse(
        tmp_path,
        {
            "enabled": True,
            "listen": "127.0.0.3",
            "port": 44300,
            "gateway_phone": "+999 66 5555",
            "gateway_name": "Our Home",
            "gateway_username": "our_home",
            "bot_username": "our_home_bot",
            "members": [
                {
                    "name": "Alice",
                    "phone": "+44 7700 900123",
                    "username": "alice_home",
                    "lines": ["demo"],
                    "incoming": "answer",
                    "answer_after": 2,
                    "hang_up_after": 30.5,
                    "play": "greeting.wav",
                    "record": "rec/alice.wav",
                    "keypad": "12*#",
                    "keypad_after": 0.5,
                    "privacy": "contacts",
                },
                {
                    "name": "Bob",
                    "incoming": "busy",
                    "tone_hz": 440,
                    "tone_dbfs": -20,
                    "send_number": "0123",
                    "send_after": 3,
                    "call_gateway_after": 0,
                    "lines": [],
                },
                {"name": "Carol", "incoming": "ignore"},
            ],
        },
    )
    assert settings.enabled and settings.listen == "127.0.0.3" and settings.port == 44300
    assert (settings.gateway_phone, settings.gateway_name) == ("+999 66 5555", "Our Home")
    assert (settings.gateway_username, settings.bot_username) == ("our_home", "our_home_bot")
    alice, bob, carol = settings.members
    assert alice == SimulatedMember(
        name="Alice",
        phone="+44 7700 900123",
        username="alice_home",
        lines=("demo",),
        answer_after=2.0,
        hang_up_after=30.5,
        play="greeting.wav",
        record="rec/alice.wav",
        keypad="12*#",
        keypad_after=0.5,
        privacy="contacts",
    )
    assert (bob.incoming, bob.tone_hz, bob.tone_dbfs) == ("busy", 440.0, -20.0)
    assert (bob.send_number, bob.send_after, bob.call_gateway_after) == ("0123", 3.0, 0.0)
    assert bob.lines == ()  # an empty list: in no line
    assert carol.lines is None  # left out: every line
    assert carol.call_gateway_after is None
    assert [settings.member_phone(i) for i in range(3)] == [
        "+44 7700 900123",
        "+99966 1002",
        "+99966 1003",
    ]


def test_paths_count_from_the_config_file(tmp_path: Path) -> None:
    (tmp_path / "etc").mkdir()
    (tmp_path / "etc" / "sounds").mkdir()
    wav(tmp_path / "etc" / "sounds" / "hi.wav", rate=16000)
    path = tmp_path / "etc" / "linegram.toml"
    path.write_text(
        tomli_w.dumps({"simulation": {"members": [{"name": "A", "play": "sounds/hi.wav"}]}})
    )
    config = load_config(path)
    assert config.path(config.simulation.members[0].play) == tmp_path / "etc/sounds/hi.wav"
    # ... and the same file read from elsewhere fails to find it.
    with pytest.raises(ConfigInvalid, match=r"members\[0\]\.play: .*no such file"):
        parse_config(tomllib.loads(path.read_text()), base_dir=tmp_path)


def test_round_trip_through_the_file(tmp_path: Path) -> None:
    data = {
        "lines": LINES,
        "simulation": {
            "enabled": True,
            "members": [
                {"name": "Alice", "lines": ["office"], "tone_hz": 440, "record": "a.wav"},
                {"name": "Bob", "call_gateway_after": 1.5, "lines": []},
                {"name": "Carol"},
            ],
        },
    }
    config = parse_config(data, base_dir=tmp_path)
    saved = config_to_dict(config)["simulation"]
    assert saved["members"][2] == {"name": "Carol"}  # defaults are not written out
    path = tmp_path / "linegram.toml"
    save_config(config, path)
    assert load_config(path) == config


@pytest.mark.parametrize(
    ("simulation", "key", "message"),
    [
        ({"enabled": "yes"}, "enabled", 'must be true or false, got "yes"'),
        ({"listen": "localhost"}, "listen", 'must be an IPv4 or IPv6 address, got "localhost"'),
        ({"port": 70000}, "port", "must be an integer between 0 and 65535, got 70000"),
        (
            {"gateway_phone": "12"},
            "gateway_phone",
            'must be a phone number of 5 to 15 digits, got "12"',
        ),
        ({"gateway_name": " "}, "gateway_name", "must not be empty"),
        (
            {"gateway_username": "1abcde"},
            "gateway_username",
            'must be 5-32 letters, digits or _ starting with a letter, got "1abcde"',
        ),
        (
            {"bot_username": "home_helper"},
            "bot_username",
            'must end in "bot" (Telegram\'s rule for bots), got "home_helper"',
        ),
        (
            {"bot_username": "Home_Gateway_Bot", "gateway_username": "home_gateway_bot"},
            "bot_username",
            "must differ from gateway_username",
        ),
        (
            {"members": {"name": "A"}},
            "members",
            "must be an array of tables ([[simulation.members]])",
        ),
        ({"member": []}, "member", 'unknown key (did you mean "members"?)'),
        (member(name=""), "members[0].name", 'required: the member\'s first name, e.g. "Alice"'),
        (
            member(phone="call me"),
            "members[0].phone",
            'must be a phone number of 5 to 15 digits, got "call me"',
        ),
        (
            member(username="al"),
            "members[0].username",
            'must be 5-32 letters, digits or _ starting with a letter, got "al"',
        ),
        (member(lines="demo"), "members[0].lines", 'must be an array of strings, got "demo"'),
        (
            member(lines=["demo", "attic"]),
            "members[0].lines[1]",
            'no line is called "attic" (lines: "demo", "office")',
        ),
        (
            member(incoming="pick up"),
            "members[0].incoming",
            'must be one of "answer", "decline", "busy", "ignore", got "pick up"',
        ),
        (
            member(answer_after=-1),
            "members[0].answer_after",
            "must be a number of seconds >= 0, got -1",
        ),
        (
            member(hang_up_after="soon"),
            "members[0].hang_up_after",
            'must be a number of seconds >= 0, got "soon"',
        ),
        (
            member(tone_hz=0),
            "members[0].tone_hz",
            "must be a frequency in Hz, > 0 and < 4000, got 0",
        ),
        (
            member(tone_hz=4000),
            "members[0].tone_hz",
            "must be a frequency in Hz, > 0 and < 4000, got 4000",
        ),
        (
            member(tone_hz=440, tone_dbfs=3),
            "members[0].tone_dbfs",
            "must be a level in dBFS from -60 to 0, got 3",
        ),
        (member(play=""), "members[0].play", "must not be empty (leave it out for silence)"),
        (
            member(record=""),
            "members[0].record",
            "must not be empty (leave it out to record nothing)",
        ),
        (
            member(keypad="12a"),
            "members[0].keypad",
            'must be keypad digits (0-9, * and #), got "12a"',
        ),
        (
            member(keypad_after=True),
            "members[0].keypad_after",
            "must be a number of seconds >= 0, got true",
        ),
        (
            member(send_number=" "),
            "members[0].send_number",
            "must not be empty (leave it out to send nothing)",
        ),
        (
            member(send_after=-0.5),
            "members[0].send_after",
            "must be a number of seconds >= 0, got -0.5",
        ),
        (
            member(call_gateway_after=-2),
            "members[0].call_gateway_after",
            "must be a number of seconds >= 0, got -2",
        ),
        (
            member(privacy="friends"),
            "members[0].privacy",
            'must be one of "everybody", "contacts", "nobody", got "friends"',
        ),
        (
            member(answer_afer=1),
            "members[0].answer_afer",
            'unknown key (did you mean "answer_after"?)',
        ),
    ],
)
def test_each_invalid_value_is_named(
    tmp_path: Path, simulation: dict[str, Any], key: str, message: str
) -> None:
    assert one_problem(tmp_path, simulation) == f"simulation.{key}: {message}"


def test_not_a_table(tmp_path: Path) -> None:
    assert problems(tmp_path, True) == ["simulation: must be a table ([simulation]), got true"]


def test_play_must_be_a_mono_16_bit_wav_at_a_multiple_of_8_khz(tmp_path: Path) -> None:
    for rate in (8000, 16000, 48000):
        wav(tmp_path / f"ok{rate}.wav", rate=rate)
        assert parse(tmp_path, member(play=f"ok{rate}.wav")).members[0].play == f"ok{rate}.wav"
    wav(tmp_path / "stereo.wav", channels=2)
    wav(tmp_path / "8bit.wav", width=1)
    wav(tmp_path / "cd.wav", rate=44100)
    (tmp_path / "text.wav").write_text("hello")
    for name, detail in [
        ("stereo.wav", "got 2 channel(s), 16-bit, 8000 Hz"),
        ("8bit.wav", "got 1 channel(s), 8-bit, 8000 Hz"),
        ("cd.wav", "got 1 channel(s), 16-bit, 44100 Hz"),
        ("text.wav", "is not a PCM WAV file"),
        ("missing.wav", "no such file"),
    ]:
        message = one_problem(tmp_path, member(play=name))
        assert message.startswith(f"simulation.members[0].play: {tmp_path / name}"), message
        assert detail in message, message


def test_one_sound_per_member(tmp_path: Path) -> None:
    wav(tmp_path / "a.wav")
    assert one_problem(tmp_path, member(play="a.wav", tone_hz=440)) == (
        "simulation.members[0].tone_hz: cannot be used together with play (one sound per member)"
    )


def test_record_must_name_a_file(tmp_path: Path) -> None:
    (tmp_path / "rec").mkdir()
    assert one_problem(tmp_path, member(record="rec")) == (
        'simulation.members[0].record: "rec" is a directory; name a .wav file'
    )


def test_names_phones_and_usernames_are_unique(tmp_path: Path) -> None:
    found = problems(
        tmp_path,
        {
            "members": [
                {"name": "Alice", "username": "Alice_Home"},
                {"name": "Alice", "username": "alice_home"},
                {"name": "Bob", "phone": "+99966 1001"},  # Alice's generated number
                {"name": "Carol", "phone": "+999 66 0000"},  # the gateway's
                {"name": "Dave", "username": "HOME_GATEWAY"},
                {"name": "Erin", "username": "linegram_sim_bot"},
            ]
        },
    )
    assert found == [
        'simulation.members[1].name: "Alice" is already used by simulation.members[0]',
        (
            'simulation.members[1].username: "alice_home" is already used by'
            " simulation.members[0].username"
        ),
        'simulation.members[2].phone: "+99966 1001" is already used by simulation.members[0].phone',
        'simulation.members[3].phone: "+999 66 0000" is already used by simulation.gateway_phone',
        (
            'simulation.members[4].username: "HOME_GATEWAY" is already used by'
            " simulation.gateway_username"
        ),
        (
            'simulation.members[5].username: "linegram_sim_bot" is already used by'
            " simulation.bot_username"
        ),
    ]


def test_a_generated_phone_that_collides_says_so(tmp_path: Path) -> None:
    found = problems(tmp_path, {"members": [{"name": "A", "phone": "+99966 1002"}, {"name": "B"}]})
    assert found == [
        (
            'simulation.members[1].phone: "+99966 1002" is already used by'
            " simulation.members[0].phone (generated; set another phone)"
        )
    ]


def test_members_without_lines_configured(tmp_path: Path) -> None:
    with pytest.raises(ConfigInvalid, match=r'no line is called "demo" \(lines: none\)'):
        parse_config(
            {"simulation": {"members": [{"name": "A", "lines": ["demo"]}]}}, base_dir=tmp_path
        )

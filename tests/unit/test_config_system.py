"""Tests for the [calls], [leds] and [webui] tables of gateway/config.py: defaults, values,
every refusal, saving, and the commented template."""

from __future__ import annotations

import re
import tomllib
from pathlib import Path
from typing import Any

import pytest

from gateway.config import (
    CallsSettings,
    LedSettings,
    WebUiSettings,
    config_to_dict,
    default_config,
    default_config_text,
    load_config,
    parse_config,
    save_config,
)
from tests.unit.test_config import BASE, one_problem, problems


def test_defaults() -> None:
    config = parse_config({}, base_dir=BASE)
    assert config.calls == CallsSettings(default_outgoing_method="invite")
    assert config.leds == LedSettings()
    assert (config.leds.line, config.leds.rgb, config.leds.active_high) == (None, None, True)
    assert config.webui == WebUiSettings(listen="127.0.0.1", port=8080)


def test_values() -> None:
    config = parse_config(
        {
            "calls": {"default_outgoing_method": "callback"},
            "leds": {
                "line": 17,
                "telegram": 27,
                "ringing": 22,
                "call": 23,
                "missed": 24,
                "error": 0,
                "rgb": [5, 6, 13],
                "active_high": False,
            },
            "webui": {"listen": "0.0.0.0", "port": 80},
        },
        base_dir=BASE,
    )
    assert config.calls.default_outgoing_method == "callback"
    assert config.leds == LedSettings(
        line=17,
        telegram=27,
        ringing=22,
        call=23,
        missed=24,
        error=0,
        rgb=(5, 6, 13),
        active_high=False,
    )
    assert config.webui == WebUiSettings(listen="0.0.0.0", port=80)


@pytest.mark.parametrize(
    ("data", "message"),
    [
        (
            {"calls": {"default_outgoing_method": "sms"}},
            'calls.default_outgoing_method: must be one of "invite", "callback", got "sms"',
        ),
        (
            {"calls": {"default_method": "invite"}},
            'calls.default_method: unknown key (did you mean "default_outgoing_method"?)',
        ),
        ({"calls": "invite"}, 'calls: must be a table ([calls]), got "invite"'),
        (
            {"leds": {"line": 28}},
            "leds.line: must be a GPIO pin number (BCM) between 0 and 27, got 28",
        ),
        (
            {"leds": {"error": -1}},
            "leds.error: must be a GPIO pin number (BCM) between 0 and 27, got -1",
        ),
        (
            {"leds": {"call": "17"}},
            'leds.call: must be a GPIO pin number (BCM) between 0 and 27, got "17"',
        ),
        (
            {"leds": {"missed": True}},
            "leds.missed: must be a GPIO pin number (BCM) between 0 and 27, got true",
        ),
        (
            {"leds": {"rgb": [5, 6]}},
            "leds.rgb: must be an array of 3 GPIO pins [red, green, blue], got [5, 6]",
        ),
        (
            {"leds": {"rgb": 5}},
            "leds.rgb: must be an array of 3 GPIO pins [red, green, blue], got 5",
        ),
        (
            {"leds": {"rgb": [5, 40, 13]}},
            "leds.rgb[1]: must be a GPIO pin number (BCM) between 0 and 27, got 40",
        ),
        ({"leds": {"active_high": 1}}, "leds.active_high: must be true or false, got 1"),
        ({"leds": {"ring": 4}}, 'leds.ring: unknown key (did you mean "ringing"?)'),
        ({"webui": {"port": 0}}, "webui.port: must be an integer between 1 and 65535, got 0"),
        (
            {"webui": {"port": 65536}},
            "webui.port: must be an integer between 1 and 65535, got 65536",
        ),
        (
            {"webui": {"listen": "linegram.local"}},
            'webui.listen: must be an IPv4 or IPv6 address, got "linegram.local"',
        ),
        (
            {"webui": {"trusted_proxies": []}},
            "webui.trusted_proxies: unknown key",
        ),
    ],
)
def test_refusals_name_their_field(data: dict[str, Any], message: str) -> None:
    assert one_problem(data) == message


def test_a_pin_used_twice_names_both_fields() -> None:
    assert one_problem({"leds": {"line": 17, "call": 17}}) == (
        "leds.call: GPIO 17 is already used by leds.line"
    )
    assert one_problem({"leds": {"error": 6, "rgb": [5, 6, 13]}}) == (
        "leds.rgb[1]: GPIO 6 is already used by leds.error"
    )
    assert one_problem({"leds": {"rgb": [5, 13, 5]}}) == (
        "leds.rgb[2]: GPIO 5 is already used by leds.rgb[0]"
    )
    # Every clash is reported, not only the first.
    assert problems({"leds": {"line": 1, "telegram": 1, "ringing": 1}}) == [
        "leds.telegram: GPIO 1 is already used by leds.line",
        "leds.ringing: GPIO 1 is already used by leds.line",
    ]


def test_problems_of_all_three_tables_come_together() -> None:
    found = problems(
        {
            "calls": {"default_outgoing_method": ""},
            "leds": {"line": 99},
            "webui": {"port": "8080"},
        }
    )
    assert [p.split(":")[0] for p in found] == [
        "calls.default_outgoing_method",
        "leds.line",
        "webui.port",
    ]


def test_saved_and_loaded_unchanged(tmp_path: Path) -> None:
    config = parse_config(
        {
            "calls": {"default_outgoing_method": "callback"},
            "leds": {"ringing": 22, "rgb": [5, 6, 13], "active_high": False},
            "webui": {"listen": "::", "port": 8443},
        },
        base_dir=tmp_path,
    )
    data = config_to_dict(config)
    # LEDs that are not fitted are left out: TOML has no "none".
    assert data["leds"] == {"ringing": 22, "rgb": [5, 6, 13], "active_high": False}
    assert data["calls"] == {"default_outgoing_method": "callback"}
    assert data["webui"] == {"listen": "::", "port": 8443}
    path = tmp_path / "linegram.toml"
    save_config(config, path)
    assert load_config(path) == config


def test_defaults_round_trip() -> None:
    config = default_config(BASE)
    data = config_to_dict(config)
    assert data["leds"] == {"active_high": True}
    assert parse_config(data, base_dir=BASE) == config


def test_template_shows_the_defaults_and_its_led_examples_are_valid() -> None:
    text = default_config_text()
    assert parse_config(tomllib.loads(text), base_dir=BASE) == default_config(BASE)
    start = text.index("[leds]")
    section = text[start : text.index("[webui]")]
    # The commented keys ("# line = 17  # ..."), not the comment lines above them.
    uncommented = re.sub(r"(?m)^# (?=\w+ = )", "", section)
    leds = parse_config(tomllib.loads(uncommented), base_dir=BASE).leds
    assert leds == LedSettings(
        line=17, telegram=27, ringing=22, call=23, missed=24, error=25, rgb=(5, 6, 13)
    )

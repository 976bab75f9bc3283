"""Tests for gateway/config.py: validation messages, defaults, atomic saving."""

from __future__ import annotations

import ipaddress
import logging
import os
import stat
import tomllib
from pathlib import Path
from typing import Any

import pytest

from gateway import logs
from gateway.config import (
    AtaLineConfig,
    Config,
    ConfigError,
    ConfigInvalid,
    DialingSettings,
    HostPort,
    ProviderLineConfig,
    Secret,
    TelegramServer,
    config_to_dict,
    default_config,
    default_config_text,
    default_user_agent,
    load_config,
    parse_config,
    save_config,
    write_atomic,
)

BASE = Path("/srv/linegram")

PROVIDER = {
    "name": "home",
    "kind": "provider",
    "registrar": "sip.example.net:5070",
    "username": "4930123456",
    "password": "s3cret-pw",
}
ATA = {"name": "landline", "kind": "ata", "allow": ["192.168.1.20"]}
API_HASH = "0123456789abcdef0123456789ABCDEF"
BOT_TOKEN = "123456789:AAHdqTcvCH1vGWJxfSeofSAs0K5PALDsawA"
TELEGRAM = {"api_id": 12345, "api_hash": API_HASH}


def problems(data: dict[str, Any]) -> list[str]:
    with pytest.raises(ConfigInvalid) as info:
        parse_config(data, base_dir=BASE)
    return list(info.value.problems)


def one_problem(data: dict[str, Any]) -> str:
    found = problems(data)
    assert len(found) == 1, found
    return found[0]


@pytest.fixture(autouse=True)
def _forget_secrets() -> None:
    logs.clear_secrets()


# ------------------------------------------------------------------ Secret


def test_secret_hides_value_in_repr_and_str() -> None:
    secret = Secret("hunter2")
    assert repr(secret) == "Secret('***')"
    assert str(secret) == "***"
    assert f"{secret}" == "***"
    assert secret.reveal() == "hunter2"


def test_secret_equality_and_truth() -> None:
    assert Secret("a") == Secret("a")
    assert Secret("a") != Secret("b")
    assert Secret("a") != "a"
    assert hash(Secret("a")) == hash(Secret("a"))
    assert not Secret("")
    assert Secret("x")


def test_secret_hidden_inside_dataclass_repr() -> None:
    config = parse_config({"lines": [PROVIDER]}, base_dir=BASE)
    assert "s3cret-pw" not in repr(config)
    assert "Secret('***')" in repr(config.lines[0])


# ------------------------------------------------------------------ defaults


def test_empty_file_gives_defaults() -> None:
    config = parse_config({}, base_dir=BASE)
    assert config == default_config(BASE)
    assert config.gateway.data_dir == "."
    assert config.gateway.log_level == "info"
    assert config.gateway.log_format == "text"
    assert config.sip.listen == "127.0.0.1"
    assert config.sip.port == 5060
    assert config.sip.public_address is None
    assert config.sip.user_agent == default_user_agent()
    assert config.sip.user_agent.startswith("Linegram/")
    assert config.sip.rate_limit == 30.0
    assert config.sip.block_user_agents[:2] == ("friendly-scanner", "sipvicious")
    assert len(config.sip.block_user_agents) == 12
    assert config.sip.tcp is False
    assert config.media.address == ""
    assert (config.media.rtp_port_min, config.media.rtp_port_max) == (10000, 10999)
    assert config.media.rtp_timeout == 30.0
    assert config.media.jitter_buffer_ms == 60
    assert config.media.ptime == 20
    assert config.echo.extension == "600"
    assert config.echo.allow == (ipaddress.ip_network("127.0.0.1/32"),)
    assert config.lines == ()


def test_init_template_equals_defaults() -> None:
    data = tomllib.loads(default_config_text())
    assert parse_config(data, base_dir=BASE) == default_config(BASE)


def test_init_template_examples_are_valid_when_uncommented() -> None:
    text = default_config_text()
    examples = text[text.index("# [[lines]]") :]
    uncommented = "\n".join(line.removeprefix("# ") for line in examples.splitlines())
    config = parse_config(tomllib.loads(uncommented), base_dir=BASE)
    assert [(line.name, line.kind) for line in config.lines] == [
        ("home", "provider"),
        ("landline", "ata"),
    ]


def test_data_dir_is_relative_to_config_directory() -> None:
    config = parse_config({"gateway": {"data_dir": "state"}}, base_dir=BASE)
    assert config.data_dir == Path("/srv/linegram/state")
    config = parse_config({"gateway": {"data_dir": "/var/lib/linegram"}}, base_dir=BASE)
    assert config.data_dir == Path("/var/lib/linegram")
    assert default_config(BASE).data_dir == BASE


# ------------------------------------------------------------------ lines


def test_provider_line_with_derived_defaults() -> None:
    config = parse_config({"lines": [PROVIDER]}, base_dir=BASE)
    line = config.lines[0]
    assert isinstance(line, ProviderLineConfig)
    assert line.kind == "provider"
    assert line.registrar == HostPort("sip.example.net", 5070)
    assert line.domain == "sip.example.net"
    assert line.auth_username == "4930123456"
    assert line.password == Secret("s3cret-pw")
    assert (line.enabled, line.incoming, line.dtmf) == (True, "echo", "rfc4733")
    assert line.codecs == ("PCMA", "PCMU")
    assert line.allow == ()
    assert line.outbound_proxy is None
    assert (line.transport, line.register, line.expires, line.keepalive) == ("udp", True, 600, 25)
    assert config.line("home") is line
    assert config.line("nope") is None


def test_provider_line_all_keys() -> None:
    data = {
        **PROVIDER,
        "enabled": False,
        "incoming": "members",
        "dtmf": "info",
        "codecs": ["PCMU"],
        "allow": ["10.0.0.0/8", "2001:db8::1"],
        "domain": "example.net",
        "auth_username": "auth1",
        "outbound_proxy": "[2001:db8::5]:5080",
        "transport": "tcp",
        "register": False,
        "expires": 3600,
        "keepalive": 0,
    }
    line = parse_config({"lines": [data]}, base_dir=BASE).lines[0]
    assert isinstance(line, ProviderLineConfig)
    assert line.enabled is False
    assert line.incoming == "members"
    assert line.dtmf == "info"
    assert line.codecs == ("PCMU",)
    assert line.allow == (
        ipaddress.ip_network("10.0.0.0/8"),
        ipaddress.ip_network("2001:db8::1/128"),
    )
    assert line.domain == "example.net"
    assert line.auth_username == "auth1"
    assert line.outbound_proxy == HostPort("2001:db8::5", 5080)
    assert str(line.outbound_proxy) == "[2001:db8::5]:5080"
    assert (line.transport, line.register, line.expires, line.keepalive) == ("tcp", False, 3600, 0)


def test_ata_line() -> None:
    data = {**ATA, "username": "ata", "password": "ata-pw-1"}
    line = parse_config({"lines": [data]}, base_dir=BASE).lines[0]
    assert isinstance(line, AtaLineConfig)
    assert line.kind == "ata"
    assert line.username == "ata"
    assert line.password.reveal() == "ata-pw-1"
    assert line.allow == (ipaddress.ip_network("192.168.1.20/32"),)
    assert line.auth_algorithms == ("MD5",)
    both = {**data, "auth_algorithms": ["SHA-256", "MD5"]}
    line = parse_config({"lines": [both]}, base_dir=BASE).lines[0]
    assert isinstance(line, AtaLineConfig) and line.auth_algorithms == ("SHA-256", "MD5")


def test_passwords_are_registered_for_redaction() -> None:
    parse_config({"lines": [PROVIDER]}, base_dir=BASE)
    assert logs.redact("login with s3cret-pw failed") == "login with *** failed"


# ------------------------------------------------------------------ messages


@pytest.mark.parametrize(
    ("data", "message"),
    [
        (
            {"lines": [ATA, {**PROVIDER, "name": "p2", "port": 5}]},
            'lines[1].port: unknown key (did you mean "transport"?)',
        ),
        ({"sip": {"prot": 5060}}, 'sip.prot: unknown key (did you mean "port"?)'),
        ({"sipp": {}}, 'sipp: unknown key (did you mean "sip"?)'),
        ({"sip": {"zzz": 1}}, "sip.zzz: unknown key"),
        (
            {"sip": {"port": "abc"}},
            'sip.port: must be an integer between 1 and 65535, got "abc"',
        ),
        ({"sip": {"port": 0}}, "sip.port: must be an integer between 1 and 65535, got 0"),
        ({"sip": {"port": True}}, "sip.port: must be an integer between 1 and 65535, got true"),
        ({"sip": {"port": 5060.0}}, "sip.port: must be an integer between 1 and 65535, got 5060.0"),
        (
            {"sip": {"listen": "localhost"}},
            'sip.listen: must be an IPv4 or IPv6 address, got "localhost"',
        ),
        ({"sip": {"rate_limit": 0}}, "sip.rate_limit: must be a number > 0, got 0"),
        ({"sip": {"tcp": "yes"}}, 'sip.tcp: must be true or false, got "yes"'),
        (
            {"sip": {"block_user_agents": "x"}},
            'sip.block_user_agents: must be an array of strings, got "x"',
        ),
        ({"sip": {"user_agent": ""}}, "sip.user_agent: must be a non-empty single line"),
        ({"sip": {"public_address": "a b"}}, 'sip.public_address: "a b" has an invalid host'),
        ({"sip": 5}, "sip: must be a table ([sip]), got 5"),
        (
            {"gateway": {"log_level": "verbose"}},
            'gateway.log_level: must be one of "debug", "info", "warning", "error", got "verbose"',
        ),
        (
            {"gateway": {"log_format": "xml"}},
            'gateway.log_format: must be one of "text", "json", got "xml"',
        ),
        ({"gateway": {"data_dir": ""}}, "gateway.data_dir: must not be empty"),
        (
            {"media": {"rtp_port_min": 10001}},
            "media.rtp_port_min: must be even (RTP uses the even port, RTCP the next), got 10001",
        ),
        (
            {"media": {"rtp_port_max": 9000}},
            "media.rtp_port_max: must be greater than media.rtp_port_min (10000), got 9000",
        ),
        (
            {"media": {"rtp_port_min": 80}},
            "media.rtp_port_min: must be an integer between 1024 and 65535, got 80",
        ),
        ({"media": {"rtp_timeout": -1}}, "media.rtp_timeout: must be a number >= 0, got -1"),
        (
            {"media": {"jitter_buffer_ms": 10}},
            "media.jitter_buffer_ms: must be an integer between 20 and 200, got 10",
        ),
        ({"media": {"ptime": 25}}, "media.ptime: must be one of 10, 20, 30, 40, got 25"),
        ({"media": {"address": "x"}}, 'media.address: must be an IPv4 or IPv6 address, got "x"'),
        (
            {"echo": {"extension": "6 00"}},
            (
                "echo.extension: must be a SIP user part (1-32 characters, no @ : or spaces),"
                ' got "6 00"'
            ),
        ),
        (
            {"echo": {"allow": ["127.0.0.1", "localhost"]}},
            'echo.allow[1]: must be an IP address or CIDR network, got "localhost"',
        ),
        ({"lines": {"name": "x"}}, "lines: must be an array of tables ([[lines]])"),
        (
            {"lines": [{**PROVIDER, "registrar": "host:99999"}]},
            'lines[0].registrar: "host:99999" has an invalid port',
        ),
        (
            {"lines": [{**PROVIDER, "registrar": "[::1"}]},
            'lines[0].registrar: "[::1" has an unclosed [',
        ),
        (
            {"lines": [{**PROVIDER, "registrar": "1.2.3"}]},
            'lines[0].registrar: "1.2.3" has an invalid host',
        ),
        (
            {"lines": [{**PROVIDER, "outbound_proxy": "p:0"}]},
            'lines[0].outbound_proxy: "p:0" has an invalid port',
        ),
        (
            {"lines": [{k: v for k, v in PROVIDER.items() if k != "registrar"}]},
            "lines[0].registrar: required for provider lines (host[:port] of the provider)",
        ),
        (
            {"lines": [{k: v for k, v in PROVIDER.items() if k != "username"}]},
            "lines[0].username: required for provider lines",
        ),
        (
            {"lines": [{**PROVIDER, "expires": 30}]},
            "lines[0].expires: must be an integer between 60 and 86400, got 30",
        ),
        (
            {"lines": [{**PROVIDER, "keepalive": 5}]},
            "lines[0].keepalive: must be 0 (off) or an integer between 10 and 300, got 5",
        ),
        (
            {"lines": [{**PROVIDER, "transport": "tls"}]},
            'lines[0].transport: must be one of "udp", "tcp", got "tls"',
        ),
        (
            {"lines": [{**PROVIDER, "password": 1234}]},
            "lines[0].password: must be a string, got an integer",
        ),
        (
            {"lines": [{**PROVIDER, "name": "Home"}]},
            'lines[0].name: must match [a-z0-9][a-z0-9_-]{0,31}, got "Home"',
        ),
        (
            {"lines": [{**PROVIDER, "incoming": "ring"}]},
            'lines[0].incoming: must be one of "echo", "members", "reject", got "ring"',
        ),
        (
            {"lines": [{**PROVIDER, "dtmf": "inband"}]},
            'lines[0].dtmf: must be one of "rfc4733", "info", got "inband"',
        ),
        (
            {"lines": [{**PROVIDER, "codecs": []}]},
            'lines[0].codecs: must not be empty (supported: "PCMA" and "PCMU")',
        ),
        (
            {"lines": [{**PROVIDER, "codecs": ["PCMA", "G729"]}]},
            'lines[0].codecs[1]: must be one of "PCMA" and "PCMU", got "G729"',
        ),
        (
            {"lines": [{**PROVIDER, "codecs": ["PCMU", "PCMU"]}]},
            'lines[0].codecs[1]: "PCMU" is listed twice',
        ),
        (
            {"lines": [{**ATA, "registrar": "x"}]},
            'lines[0].registrar: only allowed on provider lines (this line has kind = "ata")',
        ),
        (
            {"lines": [{**ATA, "expires": 60}]},
            'lines[0].expires: only allowed on provider lines (this line has kind = "ata")',
        ),
        (
            {"lines": [{**ATA, "username": "ata"}]},
            "lines[0].password: required when username is set (the ATA registers with digest auth)",
        ),
        (
            {"lines": [{**ATA, "password": "pw"}]},
            "lines[0].username: required when password is set",
        ),
        (
            {"lines": [{**ATA, "auth_algorithms": ["MD5", "SHA-1"]}]},
            'lines[0].auth_algorithms[1]: must be "MD5" or "SHA-256", got "SHA-1"',
        ),
        (
            {"lines": [{**ATA, "auth_algorithms": []}]},
            'lines[0].auth_algorithms: must not be empty (supported: "MD5" or "SHA-256")',
        ),
        ({"lines": [{"name": "x"}]}, 'lines[0].kind: required: "provider" or "ata"'),
        ({"lines": [{"kind": "ata"}]}, 'lines[0].name: required (a short id like "home")'),
        (
            {"lines": [{"name": "x", "kind": "fxo"}]},
            'lines[0].kind: must be one of "provider", "ata", got "fxo"',
        ),
        (
            {"lines": [PROVIDER, {**ATA, "name": "home"}]},
            'lines[1].name: "home" is already used by lines[0]',
        ),
        (
            {"telegram": {"api_id": "12345", "api_hash": API_HASH}},
            'telegram.api_id: must be an integer between 0 and 2147483647, got "12345"',
        ),
        (
            {"telegram": {"api_id": -1, "api_hash": API_HASH}},
            "telegram.api_id: must be an integer between 0 and 2147483647, got -1",
        ),
        (
            {"telegram": {"api_id": 12345, "api_hash": "secret-but-wrong"}},
            "telegram.api_hash: must be 32 hexadecimal characters, got 16 characters",
        ),
        (
            {"telegram": {"api_id": 12345, "api_hash": 42}},
            "telegram.api_hash: must be a string, got an integer",
        ),
        (
            {"telegram": {"api_id": 12345}},
            "telegram.api_hash: required when api_id is set (both come from my.telegram.org)",
        ),
        (
            {"telegram": {"api_hash": API_HASH}},
            "telegram.api_id: required when api_hash is set (both come from my.telegram.org)",
        ),
        (
            {"telegram": {"api_id": 0, "api_hash": API_HASH}},
            "telegram.api_id: must not be 0 when api_hash is set (both come from my.telegram.org)",
        ),
        (
            {"telegram": {**TELEGRAM, "bot_token": "123:short-and-secret"}},
            (
                'telegram.bot_token: must be the token @BotFather gives ("123456789:" followed by'
                " 30-64 letters, digits, _ or -)"
            ),
        ),
        (
            {"telegram": {"session": "state/gateway.db"}},
            'telegram.session: must be a file name ending in ".session", got "state/gateway.db"',
        ),
        (
            {"telegram": {"ring_timeout": 5}},
            "telegram.ring_timeout: must be an integer between 10 and 120, got 5",
        ),
        ({"telegram": {"apiid": 1}}, 'telegram.apiid: unknown key (did you mean "api_id"?)'),
        ({"telegram": []}, "telegram: must be a table ([telegram]), got []"),
        (
            {"telegram": {"server": {"address": "127.0.0.1", "public_key": "k.pem"}}},
            'telegram.server.address: must include the port (host:port), got "127.0.0.1"',
        ),
        (
            {"telegram": {"server": {"address": "127.0.0.1:99999", "public_key": "k.pem"}}},
            'telegram.server.address: "127.0.0.1:99999" has an invalid port',
        ),
        (
            {"telegram": {"server": {"public_key": "k.pem"}}},
            'telegram.server.address: required: "host:port" of the MTProto server',
        ),
        (
            {"telegram": {"server": {"address": "sim:1"}}},
            "telegram.server.public_key: required: the PEM file of the server's RSA public key",
        ),
        (
            {"telegram": {"server": {"address": "sim:1", "public_key": ""}}},
            "telegram.server.public_key: must not be empty",
        ),
        (
            {"telegram": {"server": {"address": "sim:1", "public_key": "k", "publickey": "x"}}},
            'telegram.server.publickey: unknown key (did you mean "public_key"?)',
        ),
        (
            {"telegram": {"server": "sim:1"}},
            'telegram.server: must be a table ([telegram.server]), got "sim:1"',
        ),
    ],
)
def test_problem_names_the_field(data: dict[str, Any], message: str) -> None:
    assert one_problem(data) == message


def test_all_problems_are_reported_together() -> None:
    found = problems({"sip": {"port": -1, "prot": 1}, "media": {"ptime": 7}})
    assert found == [
        "sip.port: must be an integer between 1 and 65535, got -1",
        'sip.prot: unknown key (did you mean "port"?)',
        "media.ptime: must be one of 10, 20, 30, 40, got 7",
    ]


def test_config_invalid_is_a_config_error_and_value_error() -> None:
    with pytest.raises(ConfigError) as info:
        parse_config({"sip": {"port": 0}}, base_dir=BASE)
    assert isinstance(info.value, ValueError)
    assert str(info.value) == "sip.port: must be an integer between 1 and 65535, got 0"


def test_password_value_never_in_problem_text() -> None:
    found = problems({"lines": [{**PROVIDER, "password": ["pw-in-a-list"]}]})
    assert found == ["lines[0].password: must be a string, got an array"]


def test_telegram_secrets_never_in_problem_text() -> None:
    found = problems({"telegram": {"api_id": 1, "api_hash": "hash-typo-x", "bot_token": "tok:en"}})
    assert len(found) == 2
    assert not any("hash-typo-x" in p or "tok:en" in p for p in found)


# ------------------------------------------------------------------ [telegram]


def test_telegram_defaults() -> None:
    config = parse_config({}, base_dir=BASE)
    telegram = config.telegram
    assert telegram.api_id == 0
    assert telegram.api_hash == Secret("")
    assert telegram.bot_token == Secret("")
    assert telegram.session == "telegram/gateway.session"
    assert telegram.ring_timeout == 45
    assert telegram.server is None
    assert config.telegram_session == BASE / "telegram" / "gateway.session"
    assert config.telegram_bot_session == BASE / "telegram" / "gateway-bot.session"
    assert config.telegram_server_key is None


def test_telegram_all_keys() -> None:
    data = {
        "gateway": {"data_dir": "/var/lib/linegram"},
        "telegram": {
            **TELEGRAM,
            "bot_token": BOT_TOKEN,
            "session": "account.session",
            "ring_timeout": 120,
            "server": {"address": "[::1]:4430", "public_key": "sim.pem"},
        },
    }
    config = parse_config(data, base_dir=BASE)
    telegram = config.telegram
    assert telegram.api_id == 12345
    assert telegram.api_hash.reveal() == API_HASH
    assert telegram.bot_token.reveal() == BOT_TOKEN
    assert telegram.ring_timeout == 120
    assert telegram.server == TelegramServer(address=HostPort("::1", 4430), public_key="sim.pem")
    assert config.telegram_session == Path("/var/lib/linegram/account.session")
    assert config.telegram_bot_session == Path("/var/lib/linegram/account-bot.session")
    # The key file is the user's, next to the settings file, not in the state directory.
    assert config.telegram_server_key == BASE / "sim.pem"
    assert BOT_TOKEN not in repr(config) and API_HASH not in repr(config)


def test_telegram_secrets_are_registered_for_redaction() -> None:
    parse_config({"telegram": {**TELEGRAM, "bot_token": BOT_TOKEN}}, base_dir=BASE)
    assert logs.redact(f"token {BOT_TOKEN} hash {API_HASH}") == "token *** hash ***"


# ------------------------------------------------------------------ HostPort


@pytest.mark.parametrize(
    ("text", "expected", "back"),
    [
        ("sip.Example.net", HostPort("sip.example.net"), "sip.example.net"),
        ("sip.example.net:5070", HostPort("sip.example.net", 5070), "sip.example.net:5070"),
        ("192.0.2.1", HostPort("192.0.2.1"), "192.0.2.1"),
        ("192.0.2.1:5060", HostPort("192.0.2.1", 5060), "192.0.2.1:5060"),
        ("2001:db8::1", HostPort("2001:db8::1"), "[2001:db8::1]"),
        ("[2001:db8::1]", HostPort("2001:db8::1"), "[2001:db8::1]"),
        ("[::1]:5060", HostPort("::1", 5060), "[::1]:5060"),
        ("pbx", HostPort("pbx"), "pbx"),
    ],
)
def test_hostport_parse(text: str, expected: HostPort, back: str) -> None:
    assert HostPort.parse(text) == expected
    assert str(expected) == back


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("", '"" has an invalid host'),
        (":5060", '":5060" has an invalid host'),
        ("host:", '"host:" has an invalid port'),
        ("host:65536", '"host:65536" has an invalid port'),
        ("host:５", '"host:５" has an invalid port'),
        ("-bad-.net", '"-bad-.net" has an invalid host'),
        ("[::1]5060", '"[::1]5060" is not host[:port]'),
        ("[nothost]:5", '"[nothost]:5" has an invalid IPv6 address'),
        ("a:b:c", '"a:b:c" is not host[:port] (write IPv6 as [addr]:port)'),
    ],
)
def test_hostport_rejects(text: str, message: str) -> None:
    with pytest.raises(ValueError) as info:
        HostPort.parse(text)
    assert str(info.value) == message


# ------------------------------------------------------------------ round trip and files


def full_config() -> Config:
    data = {
        "gateway": {"data_dir": "state", "log_level": "debug", "log_format": "json"},
        "sip": {
            "listen": "0.0.0.0",
            "port": 5080,
            "public_address": "203.0.113.7:5080",
            "tcp": True,
        },
        "media": {"address": "0.0.0.0", "rtp_port_min": 20000, "rtp_port_max": 20100, "ptime": 30},
        "echo": {"extension": "", "allow": ["127.0.0.0/8"]},
        "telegram": {
            **TELEGRAM,
            "bot_token": BOT_TOKEN,
            "session": "tg/main.session",
            "ring_timeout": 30,
            "server": {"address": "127.0.0.1:44300", "public_key": "keys/sim.pem"},
        },
        "lines": [
            {**PROVIDER, "domain": "example.net", "outbound_proxy": "proxy.example.net"},
            {**ATA, "username": "ata", "password": 'we"ird\\pw'},
        ],
    }
    return parse_config(data, base_dir=BASE)


def test_dict_round_trip() -> None:
    config = full_config()
    data = config_to_dict(config)
    assert data["lines"][0]["password"] == "s3cret-pw"
    assert data["lines"][1]["password"] == 'we"ird\\pw'
    assert data["echo"]["allow"] == ["127.0.0.0/8"]
    assert data["lines"][1]["allow"] == ["192.168.1.20"]
    assert data["sip"]["public_address"] == "203.0.113.7:5080"
    assert "user_agent" not in data["sip"]
    assert "auth_username" not in data["lines"][0]
    assert data["lines"][0]["domain"] == "example.net"
    assert data["telegram"]["api_hash"] == API_HASH
    assert data["telegram"]["bot_token"] == BOT_TOKEN
    assert data["telegram"]["server"] == {
        "address": "127.0.0.1:44300",
        "public_key": "keys/sim.pem",
    }
    assert parse_config(data, base_dir=BASE) == config


def test_dict_without_server_has_no_server_table() -> None:
    data = config_to_dict(parse_config({"telegram": TELEGRAM}, base_dir=BASE))
    assert "server" not in data["telegram"]
    assert data["telegram"]["bot_token"] == ""


def test_derived_values_are_not_frozen_into_the_file() -> None:
    data = config_to_dict(parse_config({"lines": [PROVIDER]}, base_dir=BASE))
    assert "domain" not in data["lines"][0]
    data["lines"][0]["registrar"] = "other.example.org"
    line = parse_config(data, base_dir=BASE).lines[0]
    assert isinstance(line, ProviderLineConfig)
    assert line.domain == "other.example.org"


def test_custom_user_agent_is_saved() -> None:
    config = parse_config({"sip": {"user_agent": "HomePhone/1"}}, base_dir=BASE)
    assert config_to_dict(config)["sip"]["user_agent"] == "HomePhone/1"


def test_save_and_load(tmp_path: Path) -> None:
    config = full_config()
    path = tmp_path / "linegram.toml"
    save_config(config, path)
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    loaded = load_config(path)
    assert loaded.base_dir == tmp_path
    assert loaded.data_dir == tmp_path / "state"
    assert loaded.lines == config.lines
    assert loaded.sip == config.sip
    assert loaded.telegram == config.telegram
    assert [p.name for p in tmp_path.iterdir()] == ["linegram.toml"]


def test_write_atomic_replaces_and_leaves_no_temp_file(tmp_path: Path) -> None:
    path = tmp_path / "f.toml"
    path.write_text("old")
    path.chmod(0o644)
    write_atomic(path, b"new")
    assert path.read_bytes() == b"new"
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert sorted(p.name for p in tmp_path.iterdir()) == ["f.toml"]


def test_write_atomic_failure_keeps_old_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = tmp_path / "f.toml"
    path.write_text("old")

    def broken_replace(src: str, dst: str) -> None:
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(os, "replace", broken_replace)
    with pytest.raises(OSError, match="No space left"):
        write_atomic(path, b"new")
    assert path.read_text() == "old"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["f.toml"]


def test_load_tightens_readable_file_with_password(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    path = tmp_path / "c.toml"
    path.write_text('[[lines]]\nname = "a"\nkind = "ata"\nusername = "u"\npassword = "pw-123"\n')
    path.chmod(0o644)
    with caplog.at_level(logging.WARNING, logger="gateway.config"):
        load_config(path)
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert caplog.messages == [
        f"config file {path} holds passwords and was readable by others (mode 0644); now 0600"
    ]


def test_load_tightens_readable_file_with_telegram_secret(tmp_path: Path) -> None:
    path = tmp_path / "c.toml"
    path.write_text(f'[telegram]\napi_id = 1\napi_hash = "{API_HASH}"\n')
    path.chmod(0o640)
    load_config(path)
    assert stat.S_IMODE(path.stat().st_mode) == 0o600


def test_load_leaves_file_without_password_alone(tmp_path: Path) -> None:
    path = tmp_path / "c.toml"
    path.write_text("[sip]\nport = 5070\n")
    path.chmod(0o644)
    assert load_config(path).sip.port == 5070
    assert stat.S_IMODE(path.stat().st_mode) == 0o644


def test_load_errors_name_the_file(tmp_path: Path) -> None:
    missing = tmp_path / "missing.toml"
    with pytest.raises(ConfigError) as info:
        load_config(missing)
    assert str(info.value) == f"{missing}: no such file (create one with --init)"

    bad = tmp_path / "bad.toml"
    bad.write_text("[sip\n")
    with pytest.raises(ConfigError) as info:
        load_config(bad)
    assert str(info.value).startswith(f"{bad}: invalid TOML: ")

    invalid = tmp_path / "invalid.toml"
    invalid.write_text("[sip]\nport = 0\n")
    with pytest.raises(ConfigInvalid) as info2:
        load_config(invalid)
    assert info2.value.problems == ("sip.port: must be an integer between 1 and 65535, got 0",)
    assert str(info2.value) == f"{invalid}: sip.port: must be an integer between 1 and 65535, got 0"


# ------------------------------------------------------------------ dialling keys of a line


def test_dialing_defaults() -> None:
    for raw in (PROVIDER, ATA):
        line = parse_config({"lines": [raw]}, base_dir=BASE).lines[0]
        assert line.no_answer == "busy"
        assert line.dialing == DialingSettings()
    d = DialingSettings()
    assert (d.country_code, d.national_prefix, d.international_prefix) == ("", None, None)
    assert (d.dial_format, d.allow, d.deny, d.min_length) == (
        "national",
        ("national",),
        ("premium",),
        7,
    )
    assert not (d.extensions or d.service_codes or d.letters or d.allow_uri)


DIALING = {
    "country_code": "44",
    "national_prefix": "",
    "international_prefix": "011",
    "dial_format": "e164",
    "dial_allow": ["national", "international", "+449012345678", "emergency", "101"],
    "dial_deny": ["premium", "+447X", "*72"],
    "min_length": 5,
    "extensions": True,
    "service_codes": True,
    "letters": True,
    "allow_uri": True,
}


def test_dialing_all_keys() -> None:
    for raw in (PROVIDER, ATA):
        line = parse_config(
            {"lines": [{**raw, **DIALING, "no_answer": "reject"}]}, base_dir=BASE
        ).lines[0]
        assert line.no_answer == "reject"
        assert line.dialing == DialingSettings(
            country_code="44",
            national_prefix="",
            international_prefix="011",
            dial_format="e164",
            allow=("national", "international", "+449012345678", "emergency", "101"),
            deny=("premium", "+447X", "*72"),
            min_length=5,
            extensions=True,
            service_codes=True,
            letters=True,
            allow_uri=True,
        )


@pytest.mark.parametrize(
    ("keys", "message"),
    [
        (
            {"country_code": "4x"},
            (
                "lines[0].country_code: must be 1-3 digits (the country calling code without +,"
                ' e.g. "44"), got "4x"'
            ),
        ),
        (
            {"country_code": "+44"},
            (
                "lines[0].country_code: must be 1-3 digits (the country calling code without +,"
                ' e.g. "44"), got "+44"'
            ),
        ),
        (
            {"country_code": "440"},
            'lines[0].country_code: must be a country calling code, got "440" (did you mean "44"?)',
        ),
        (
            {"country_code": "0"},
            'lines[0].country_code: must be a country calling code (none starts with 0), got "0"',
        ),
        ({"country_code": 44}, "lines[0].country_code: must be a string, got 44"),
        (
            {"national_prefix": "o"},
            'lines[0].national_prefix: must be 0-4 digits ("" = none), got "o"',
        ),
        (
            {"national_prefix": "00000"},
            'lines[0].national_prefix: must be 0-4 digits ("" = none), got "00000"',
        ),
        ({"international_prefix": ""}, 'lines[0].international_prefix: must be 1-5 digits, got ""'),
        (
            {"international_prefix": "+"},
            'lines[0].international_prefix: must be 1-5 digits, got "+"',
        ),
        (
            {"country_code": "44", "international_prefix": "0"},
            'lines[0].international_prefix: must differ from the national prefix, got "0" for both',
        ),
        (
            {"national_prefix": "9", "international_prefix": "9"},
            'lines[0].international_prefix: must differ from the national prefix, got "9" for both',
        ),
        (
            {"dial_format": "E164"},
            (
                'lines[0].dial_format: must be one of "e164", "international", "national",'
                ' "as-typed", got "E164"'
            ),
        ),
        (
            {"dial_allow": "national"},
            'lines[0].dial_allow: must be an array of strings, got "national"',
        ),
        (
            {"dial_allow": ["national", "mobile"]},
            (
                'lines[0].dial_allow[1]: must be "national", "international", "premium",'
                ' "emergency", a number prefix like "+4420" (X = any digit) or a short number'
                ' like "118", got "mobile"'
            ),
        ),
        (
            {"dial_deny": ["+44 90"]},
            'lines[0].dial_deny[0]: must be written without spaces or dashes, got "+44 90"',
        ),
        (
            {"dial_allow": ["national", "national"]},
            'lines[0].dial_allow[1]: "national" is listed twice',
        ),
        ({"min_length": 0}, "lines[0].min_length: must be an integer between 1 and 15, got 0"),
        ({"min_length": "7"}, 'lines[0].min_length: must be an integer between 1 and 15, got "7"'),
        ({"extensions": "yes"}, 'lines[0].extensions: must be true or false, got "yes"'),
        ({"service_codes": 1}, "lines[0].service_codes: must be true or false, got 1"),
        ({"letters": "true"}, 'lines[0].letters: must be true or false, got "true"'),
        ({"allow_uri": 0}, "lines[0].allow_uri: must be true or false, got 0"),
        (
            {"no_answer": "voicemail"},
            'lines[0].no_answer: must be one of "busy", "reject", got "voicemail"',
        ),
        ({"country": "44"}, 'lines[0].country: unknown key (did you mean "country_code"?)'),
        ({"dial_alow": []}, 'lines[0].dial_alow: unknown key (did you mean "dial_allow"?)'),
    ],
)
def test_dialing_problem_names_the_field(keys: dict[str, Any], message: str) -> None:
    assert one_problem({"lines": [{**PROVIDER, **keys}]}) == message


def test_dialing_round_trip() -> None:
    config = parse_config(
        {"lines": [{**PROVIDER, **DIALING, "no_answer": "reject"}, ATA]}, base_dir=BASE
    )
    data = config_to_dict(config)
    written = data["lines"][0]
    assert {k: written[k] for k in DIALING} == DIALING
    assert written["no_answer"] == "reject"
    # Unset prefixes are not written, so they keep following country_code.
    assert "national_prefix" not in data["lines"][1]
    assert "international_prefix" not in data["lines"][1]
    assert data["lines"][1]["dial_deny"] == ["premium"]
    assert parse_config(data, base_dir=BASE) == config


def test_dialing_saved_and_loaded(tmp_path: Path) -> None:
    config = parse_config({"lines": [{**ATA, **DIALING}]}, base_dir=BASE)
    path = tmp_path / "linegram.toml"
    save_config(config, path)
    assert load_config(path).lines == config.lines


def test_init_template_example_sets_the_country() -> None:
    text = default_config_text()
    examples = text[text.index("# [[lines]]") :]
    uncommented = "\n".join(line.removeprefix("# ") for line in examples.splitlines())
    config = parse_config(tomllib.loads(uncommented), base_dir=BASE)
    assert config.lines[0].dialing.country_code == "49"

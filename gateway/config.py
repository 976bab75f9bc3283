"""The settings file: TOML, validated into frozen dataclasses, saved atomically.

Not an RFC module, but the SIP values it checks follow RFC 3261: host[:port]
as in §25.1 ``hostport`` (IPv6 references in brackets), user parts as in
§25.1 ``user``.  Every key is documented in docs/configuration.md.

Every problem names its field, the way a user would find it in the file::

    lines[1].port: must be an integer between 1 and 65535, got "abc"
    sip.prot: unknown key (did you mean "port"?)

All problems of a file are collected and raised together as one
:class:`ConfigInvalid` (a :class:`~gateway.errors.ConfigError`).  Passwords are
:class:`Secret` values: they print as ``***`` and are registered with
:func:`gateway.logs.register_secret`, so a log line never shows them.
"""

from __future__ import annotations

import difflib
import ipaddress
import json
import logging
import os
import re
import stat
import tempfile
import tomllib
import wave
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field, fields, replace
from importlib import metadata
from pathlib import Path
from typing import Any, Literal, TypeVar, cast, get_args

import tomli_w

from gateway.calls import numbering
from gateway.errors import ConfigError
from gateway.logs import register_secret

__all__ = [
    "AtaLineConfig",
    "CallsSettings",
    "Config",
    "ConfigError",
    "ConfigInvalid",
    "DialingSettings",
    "EchoSettings",
    "GatewaySettings",
    "HostPort",
    "IpNetwork",
    "LedSettings",
    "ButtonSettings",
    "LineConfig",
    "MediaSettings",
    "ProviderLineConfig",
    "Secret",
    "SimulatedMember",
    "SimulationSettings",
    "SipSettings",
    "TelegramServer",
    "TelegramSettings",
    "WebUiSettings",
    "config_to_dict",
    "default_config",
    "default_config_text",
    "default_user_agent",
    "load_config",
    "parse_config",
    "save_config",
    "write_atomic",
]

log = logging.getLogger(__name__)

IpNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network

LogLevel = Literal["debug", "info", "warning", "error"]
LogFormat = Literal["text", "json"]
Incoming = Literal["echo", "members", "reject"]
Dtmf = Literal["rfc4733", "info"]
Transport = Literal["udp", "tcp"]
DialFormat = Literal["e164", "international", "national", "as-typed"]
NoAnswer = Literal["busy", "reject"]  # 486 Busy Here | 480 Temporarily Unavailable

CODECS = ("PCMA", "PCMU")
DEFAULT_BLOCK_USER_AGENTS = (
    "friendly-scanner",
    "sipvicious",
    "sipcli",
    "sip-scan",
    "sipsak",
    "VaxSIPUserAgent",
    "iWar",
    "sundayddr",
    "PortSIP VoIP SDK",
    "pplsip",
    "SIPScan",
    "smap",
)
_LINE_NAME = re.compile(r"[a-z0-9][a-z0-9_-]{0,31}")
# RFC 3261 §25.1 user = unreserved / escaped / user-unreserved; no escapes here.
_EXTENSION = re.compile(r"[A-Za-z0-9\-_.!~*'()&=+$,;?/]{1,32}")
_HOST_LABEL = re.compile(r"[A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?")


def default_user_agent() -> str:
    """``Linegram/<installed version>``."""
    try:
        version = metadata.version("linegram")
    except metadata.PackageNotFoundError:
        version = "0"
    return f"Linegram/{version}"


class Secret:
    """A password: prints as ``***``; :meth:`reveal` gives the value.

    Equality and hashing use the value, so configs compare as expected.
    """

    __slots__ = ("_value",)

    def __init__(self, value: str = "") -> None:
        self._value = value

    def reveal(self) -> str:
        return self._value

    def __bool__(self) -> bool:
        return bool(self._value)

    def __repr__(self) -> str:
        return "Secret('***')"

    def __str__(self) -> str:
        return "***"

    def __eq__(self, other: object) -> bool:
        if isinstance(other, Secret):
            return self._value == other._value
        return NotImplemented

    def __hash__(self) -> int:
        return hash(("Secret", self._value))


@dataclass(frozen=True)
class HostPort:
    """``host[:port]``; *host* is a DNS name or an IP address (no brackets)."""

    host: str
    port: int | None = None

    def __str__(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        return host if self.port is None else f"{host}:{self.port}"

    @classmethod
    def parse(cls, text: str) -> HostPort:
        """Parse ``host``, ``host:port``, ``1.2.3.4:5060``, ``::1`` or ``[::1]:5060``.

        **Raises** :class:`ValueError` with a message that quotes *text*.
        """
        port_text: str | None = None
        if text.startswith("["):
            end = text.find("]")
            if end < 0:
                raise ValueError(f"{_quote(text)} has an unclosed [")
            host, rest = text[1:end], text[end + 1 :]
            if rest:
                if not rest.startswith(":"):
                    raise ValueError(f"{_quote(text)} is not host[:port]")
                port_text = rest[1:]
            if not _is_ip(host, version=6):
                raise ValueError(f"{_quote(text)} has an invalid IPv6 address")
        elif text.count(":") > 1:
            host = text
            if not _is_ip(host, version=6):
                raise ValueError(f"{_quote(text)} is not host[:port] (write IPv6 as [addr]:port)")
        else:
            host, sep, port_text_ = text.partition(":")
            port_text = port_text_ if sep else None
            if not _is_ip(host, version=4) and not _is_hostname(host):
                raise ValueError(f"{_quote(text)} has an invalid host")
        port: int | None = None
        if port_text is not None:
            if (
                not port_text.isascii()
                or not (port_text.isascii() and port_text.isdigit())
                or not 1 <= int(port_text) <= 65535
            ):
                raise ValueError(f"{_quote(text)} has an invalid port")
            port = int(port_text)
        return cls(host.lower(), port)


def _quote(text: str) -> str:
    return json.dumps(text, ensure_ascii=False)


def _is_ip(text: str, *, version: int) -> bool:
    try:
        return ipaddress.ip_address(text).version == version
    except ValueError:
        return False


def _is_hostname(text: str) -> bool:
    name = text[:-1] if text.endswith(".") else text
    if not name or len(name) > 253:
        return False
    labels = name.split(".")
    # A dotted all-numeric name is a mistyped IPv4 address, not a host.
    if all(label.isdigit() for label in labels):
        return False
    return all(_HOST_LABEL.fullmatch(label) for label in labels)


# --------------------------------------------------------------------------------------------
# The settings


@dataclass(frozen=True, kw_only=True)
class GatewaySettings:
    data_dir: str = "."
    log_level: LogLevel = "info"
    log_format: LogFormat = "text"


@dataclass(frozen=True, kw_only=True)
class SipSettings:
    listen: str = "127.0.0.1"
    port: int = 5060
    public_address: HostPort | None = None
    user_agent: str = field(default_factory=default_user_agent)
    rate_limit: float = 30.0
    block_user_agents: tuple[str, ...] = DEFAULT_BLOCK_USER_AGENTS
    tcp: bool = False


@dataclass(frozen=True, kw_only=True)
class MediaSettings:
    address: str = ""
    rtp_port_min: int = 10000
    rtp_port_max: int = 10999
    rtp_timeout: float = 30.0
    jitter_buffer_ms: int = 60
    ptime: int = 20


def _networks(*texts: str) -> tuple[IpNetwork, ...]:
    return tuple(ipaddress.ip_network(t, strict=False) for t in texts)


@dataclass(frozen=True, kw_only=True)
class EchoSettings:
    extension: str = "600"
    allow: tuple[IpNetwork, ...] = field(default_factory=lambda: _networks("127.0.0.1"))


@dataclass(frozen=True, kw_only=True)
class DialingSettings:
    """How a member's typed number is dialled on a line (gateway/calls/dialplan.py).

    Flat keys of ``[[lines]]``; ``allow``/``deny`` are written ``dial_allow``/``dial_deny``.
    """

    country_code: str = ""  # "44"; "" = unknown (only + numbers, all international)
    national_prefix: str | None = None  # None = the country's usual trunk prefix
    international_prefix: str | None = None  # None = the country's usual ("00", "011")
    dial_format: DialFormat = "national"
    allow: tuple[str, ...] = ("national",)
    deny: tuple[str, ...] = ("premium",)
    min_length: int = 7  # fewer digits: a short number (extension, service number)
    extensions: bool = False
    service_codes: bool = False
    letters: bool = False
    allow_uri: bool = False


@dataclass(frozen=True, kw_only=True)
class _LineBase:
    name: str
    enabled: bool = True
    incoming: Incoming = "echo"
    dtmf: Dtmf = "rfc4733"
    codecs: tuple[str, ...] = CODECS
    allow: tuple[IpNetwork, ...] = ()
    no_answer: NoAnswer = "busy"  # what a caller gets when no member answers
    dialing: DialingSettings = field(default_factory=DialingSettings)


@dataclass(frozen=True, kw_only=True)
class ProviderLineConfig(_LineBase):
    """A SIP account at a VoIP provider (or a trunk to a PBX)."""

    kind: Literal["provider"] = field(default="provider", init=False)
    registrar: HostPort
    username: str
    domain: str = ""  # parse_config fills in the registrar's host
    auth_username: str = ""  # parse_config fills in username
    password: Secret = field(default_factory=Secret)
    outbound_proxy: HostPort | None = None
    transport: Transport = "udp"
    register: bool = True
    expires: int = 600
    keepalive: int = 25


@dataclass(frozen=True, kw_only=True)
class AtaLineConfig(_LineBase):
    """An ATA on the landline that registers to us or calls us by IP."""

    kind: Literal["ata"] = field(default="ata", init=False)
    username: str = ""
    password: Secret = field(default_factory=Secret)
    # Digest algorithms the registrar challenges with, first preferred. MD5
    # alone by default: some ATAs (and baresip 1.0) give up when any
    # challenge uses an algorithm they lack.
    auth_algorithms: tuple[str, ...] = ("MD5",)


LineConfig = ProviderLineConfig | AtaLineConfig


@dataclass(frozen=True, kw_only=True)
class TelegramServer:
    """Another MTProto server instead of Telegram (the simulated cloud in demo mode)."""

    address: HostPort  # the port is always set
    public_key: str  # PEM file of the server's RSA key, as written (see Config.telegram_server_key)


@dataclass(frozen=True, kw_only=True)
class TelegramSettings:
    """The gateway's Telegram account, its companion bot and call settings."""

    api_id: int = 0  # 0 = not set yet (the web UI's login asks for it)
    api_hash: Secret = field(default_factory=Secret)
    bot_token: Secret = field(default_factory=Secret)
    session: str = "telegram/gateway.session"
    ring_timeout: int = 45
    server: TelegramServer | None = None


SimIncoming = Literal["answer", "decline", "busy", "ignore"]
SimPrivacy = Literal["everybody", "contacts", "nobody"]
SIM_PHONE_PREFIX = "+99966"  # Telegram's test numbers; generated member phones: +99966 1001...


@dataclass(frozen=True, kw_only=True)
class SimulatedMember:
    """A scripted household member of the simulated cloud (``[[simulation.members]]``).

    Paths (*play*, *record*) are as written, relative to the config file's
    directory; times are seconds.  See docs/simulation.md.
    """

    name: str
    phone: str = ""  # "" = generated (SimulationSettings.member_phone)
    username: str = ""
    lines: tuple[str, ...] | None = None  # None = every line
    incoming: SimIncoming = "answer"
    answer_after: float = 1.0  # also the delay of "decline"
    hang_up_after: float = 0.0  # after the call is up; 0 = never
    play: str = ""  # WAV file sent once the call is up (mono s16, 8000 * n Hz)
    tone_hz: float = 0.0  # instead of play: a sine tone for the whole call; 0 = silence
    tone_dbfs: float = -10.0
    record: str = ""  # WAV file (8 kHz mono s16) of what the member hears, per call
    keypad: str = ""  # digits pressed on the gateway's keypad message once a call is up
    keypad_after: float = 1.0
    send_number: str = ""  # text sent to the gateway account once it is online
    send_after: float = 1.0
    call_gateway_after: float | None = None  # call the gateway after send_number (or online)
    privacy: SimPrivacy = "everybody"  # who may call this member


@dataclass(frozen=True, kw_only=True)
class SimulationSettings:
    """``[simulation]``: run against an in-process simulated Telegram cloud."""

    enabled: bool = False
    listen: str = "127.0.0.1"  # the cloud's MTProto address
    port: int = 0  # 0 = any free port
    gateway_phone: str = "+99966 0000"
    gateway_name: str = "Home Gateway"  # first word = first name, the rest = last name
    gateway_username: str = "home_gateway"  # "" = none
    bot_username: str = "linegram_sim_bot"  # "" = no companion bot
    members: tuple[SimulatedMember, ...] = ()

    def member_phone(self, index: int) -> str:
        """The phone number of ``members[index]``: as configured, else generated."""
        return self.members[index].phone or f"{SIM_PHONE_PREFIX} {1001 + index}"


OutgoingMethod = Literal["invite", "callback"]  # = gateway.store.OutgoingMethod


@dataclass(frozen=True, kw_only=True)
class CallsSettings:
    """``[calls]``: call-layer defaults."""

    default_outgoing_method: OutgoingMethod = "invite"  # what a newly linked member gets


LED_NAMES = ("line", "telegram", "ringing", "call", "missed", "error")
GPIO_MAX = 27  # BCM GPIO 0..27: the Raspberry Pi's 40-pin header


@dataclass(frozen=True, kw_only=True)
class LedSettings:
    """``[leds]``: BCM GPIO pin of each status LED; ``None`` = that LED is not fitted."""

    line: int | None = None
    telegram: int | None = None
    ringing: int | None = None
    call: int | None = None
    missed: int | None = None
    error: int | None = None
    rgb: tuple[int, int, int] | None = None  # one RGB LED: red, green, blue pins
    active_high: bool = True  # False: the pin sinks the LED's current (on = low)

    def pins(self) -> dict[int, str]:
        """Each fitted LED's pin and its key (``leds.line``, ``leds.rgb[0]``)."""
        keys = [(f"leds.{n}", getattr(self, n)) for n in LED_NAMES]
        keys += [(f"leds.rgb[{i}]", pin) for i, pin in enumerate(self.rgb or ())]
        return {pin: key for key, pin in keys if pin is not None}


@dataclass(frozen=True, kw_only=True)
class ButtonSettings:
    """``[button]``: the push button on the box; ``pin = None`` = no button fitted."""

    pin: int | None = None  # BCM GPIO, not one of [leds]
    pull_up: bool = True  # True: the button connects the pin to ground


HANDSET_NAME = "Home phone"


@dataclass(frozen=True, kw_only=True)
class HandsetSettings:
    """``[handset]``: a local ALSA sound device that rings and takes calls like a member."""

    device: str = ""  # ALSA PCM name (`aplay -L`); "" = no handset
    name: str = HANDSET_NAME  # how members read it ("answered by Home phone") and the call log
    lines: tuple[str, ...] = ()  # lines it rings for; empty = every line
    ring_volume: int = 80  # ring tone level, percent of full scale; 0 = silent


@dataclass(frozen=True, kw_only=True)
class WebUiSettings:
    """``[webui]``: where the web UI (a separate process) listens."""

    listen: str = "127.0.0.1"
    port: int = 8080


@dataclass(frozen=True, kw_only=True)
class Config:
    """The whole settings file.  *base_dir* is the config file's directory."""

    base_dir: Path
    gateway: GatewaySettings = field(default_factory=GatewaySettings)
    sip: SipSettings = field(default_factory=SipSettings)
    media: MediaSettings = field(default_factory=MediaSettings)
    echo: EchoSettings = field(default_factory=EchoSettings)
    telegram: TelegramSettings = field(default_factory=TelegramSettings)
    lines: tuple[LineConfig, ...] = ()
    simulation: SimulationSettings = field(default_factory=SimulationSettings)
    calls: CallsSettings = field(default_factory=CallsSettings)
    leds: LedSettings = field(default_factory=LedSettings)
    button: ButtonSettings = field(default_factory=ButtonSettings)
    handset: HandsetSettings = field(default_factory=HandsetSettings)
    webui: WebUiSettings = field(default_factory=WebUiSettings)

    @property
    def data_dir(self) -> Path:
        """Absolute data directory (relative paths count from *base_dir*)."""
        return Path(os.path.abspath(self.base_dir / self.gateway.data_dir))

    def line(self, name: str) -> LineConfig | None:
        """The line called *name*, or ``None``."""
        return next((line for line in self.lines if line.name == name), None)

    @property
    def telegram_session(self) -> Path:
        """Absolute path of the gateway account's session file (under *data_dir*)."""
        return Path(os.path.abspath(self.data_dir / self.telegram.session))

    @property
    def telegram_bot_session(self) -> Path:
        """The companion bot's session file: ``<session stem>-bot.session`` beside it."""
        path = self.telegram_session
        return path.with_name(path.name.removesuffix(".session") + "-bot.session")

    def path(self, text: str) -> Path:
        """Absolute path of a file named in the settings (relative to *base_dir*)."""
        return Path(os.path.abspath(self.base_dir / text))

    @property
    def telegram_server_key(self) -> Path | None:
        """Absolute path of ``telegram.server.public_key`` (relative to *base_dir*), if set."""
        server = self.telegram.server
        if server is None:
            return None
        return Path(os.path.abspath(self.base_dir / server.public_key))


class ConfigInvalid(ConfigError):
    """One or more problems; each names its field.  ``str()`` joins them with ``; ``."""

    def __init__(self, problems: Sequence[str], source: str = "") -> None:
        self.problems = tuple(problems)
        self.source = source
        prefix = f"{source}: " if source else ""
        super().__init__(prefix + "; ".join(self.problems))


def default_config(base_dir: Path | None = None) -> Config:
    """The built-in defaults (no lines), relative to *base_dir* (default: cwd)."""
    return Config(base_dir=Path(os.path.abspath(base_dir if base_dir is not None else ".")))


# --------------------------------------------------------------------------------------------
# Validation


def _show(value: object) -> str:
    """A value as the user would have written it in TOML."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, dict):
        return "a table"
    try:
        text = json.dumps(value, ensure_ascii=False, default=str)
    except ValueError:
        text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."


def _type_name(value: object) -> str:
    names = {bool: "a boolean", int: "an integer", float: "a float", str: "a string"}
    if isinstance(value, list):
        return "an array"
    if isinstance(value, dict):
        return "a table"
    return names.get(type(value), "a date/time")


_T = TypeVar("_T")


class _Table:
    """Reads one TOML table, remembering which keys were used."""

    def __init__(self, data: Mapping[str, Any], path: str, problems: list[str]) -> None:
        self.data = data
        self.path = path
        self.problems = problems
        self.seen: set[str] = set()

    def where(self, key: str) -> str:
        return f"{self.path}.{key}" if self.path else key

    def error(self, key: str, message: str) -> None:
        self.problems.append(f"{self.where(key)}: {message}")

    def has(self, key: str) -> bool:
        return key in self.data

    def raw(self, key: str) -> Any:
        self.seen.add(key)
        return self.data.get(key)

    def get(
        self,
        key: str,
        default: _T,
        check: Callable[[Any], _T | None],
        expected: str,
        *,
        secret: bool = False,
    ) -> _T:
        """The value at *key* converted by *check* (``None`` = invalid), or *default*."""
        self.seen.add(key)
        if key not in self.data:
            return default
        value = self.data[key]
        converted = check(value)
        if converted is None:
            got = _type_name(value) if secret else _show(value)
            self.error(key, f"must be {expected}, got {got}")
            return default
        return converted

    def string(self, key: str, default: str = "", *, secret: bool = False) -> str:
        return self.get(key, default, _as_str, "a string", secret=secret)

    def choice(self, key: str, default: str, choices: Sequence[str]) -> str:
        expected = "one of " + ", ".join(json.dumps(c) for c in choices)
        return self.get(key, default, lambda v: v if v in choices else None, expected)

    def boolean(self, key: str, default: bool) -> bool:
        return self.get(key, default, lambda v: v if isinstance(v, bool) else None, "true or false")

    def integer(self, key: str, default: int, low: int, high: int) -> int:
        def check(v: Any) -> int | None:
            return v if _is_int(v) and low <= v <= high else None

        return self.get(key, default, check, f"an integer between {low} and {high}")

    def number(self, key: str, default: float, expected: str, ok: Callable[[float], bool]) -> float:
        def check(v: Any) -> float | None:
            return float(v) if _is_number(v) and ok(float(v)) else None

        return self.get(key, default, check, expected)

    def strings(self, key: str, default: tuple[str, ...]) -> tuple[str, ...]:
        def check(v: Any) -> tuple[str, ...] | None:
            if isinstance(v, list) and all(isinstance(x, str) for x in v):
                return tuple(v)
            return None

        return self.get(key, default, check, "an array of strings")

    def hostport(self, key: str) -> HostPort | None:
        text = self.string(key)
        if not text:
            return None
        try:
            return HostPort.parse(text)
        except ValueError as exc:
            self.error(key, str(exc))
            return None

    def networks(self, key: str, default: tuple[IpNetwork, ...]) -> tuple[IpNetwork, ...]:
        texts = self.strings(key, ())
        if not self.has(key):
            return default
        result: list[IpNetwork] = []
        for i, text in enumerate(texts):
            try:
                result.append(ipaddress.ip_network(text, strict=False))
            except ValueError:
                self.error(
                    f"{key}[{i}]", f"must be an IP address or CIDR network, got {_show(text)}"
                )
        return tuple(result)

    def check_unknown(self, allowed: Sequence[str], misplaced: Mapping[str, str] = {}) -> None:
        for key in self.data:
            if key in self.seen:
                continue
            if key in misplaced:
                self.error(key, misplaced[key])
                continue
            close = difflib.get_close_matches(key, list(allowed), n=1)
            hint = f" (did you mean {json.dumps(close[0])}?)" if close else ""
            self.error(key, f"unknown key{hint}")


def _as_str(value: Any) -> str | None:
    return value if isinstance(value, str) else None


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _is_number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def _subtable(parent: _Table, key: str, problems: list[str]) -> _Table:
    value = parent.raw(key)
    if value is None:
        value = {}
    elif not isinstance(value, dict):
        parent.error(key, f"must be a table ([{key}]), got {_show(value)}")
        value = {}
    return _Table(value, parent.where(key), problems)


def _parse_gateway(t: _Table) -> GatewaySettings:
    d = GatewaySettings()
    data_dir = t.string("data_dir", d.data_dir)
    if not data_dir:
        t.error("data_dir", "must not be empty")
        data_dir = d.data_dir
    result = GatewaySettings(
        data_dir=data_dir,
        log_level=cast(LogLevel, t.choice("log_level", d.log_level, get_args(LogLevel))),
        log_format=cast(LogFormat, t.choice("log_format", d.log_format, get_args(LogFormat))),
    )
    t.check_unknown(["data_dir", "log_level", "log_format"])
    return result


def _ip_address(t: _Table, key: str, default: str, *, allow_empty: bool) -> str:
    text = t.string(key, default)
    if allow_empty and text == "":
        return text
    try:
        return str(ipaddress.ip_address(text))
    except ValueError:
        t.error(key, f"must be an IPv4 or IPv6 address, got {_show(text)}")
        return default


def _parse_sip(t: _Table) -> SipSettings:
    d = SipSettings()
    user_agent = t.string("user_agent", d.user_agent)
    if not user_agent or any(c in user_agent for c in "\r\n"):
        t.error("user_agent", "must be a non-empty single line")
        user_agent = d.user_agent
    result = SipSettings(
        listen=_ip_address(t, "listen", d.listen, allow_empty=False),
        port=t.integer("port", d.port, 1, 65535),
        public_address=t.hostport("public_address"),
        user_agent=user_agent,
        rate_limit=t.number("rate_limit", d.rate_limit, "a number > 0", lambda v: v > 0),
        block_user_agents=t.strings("block_user_agents", d.block_user_agents),
        tcp=t.boolean("tcp", d.tcp),
    )
    t.check_unknown(_SIP_KEYS)
    return result


_SIP_KEYS = (
    "listen",
    "port",
    "public_address",
    "user_agent",
    "rate_limit",
    "block_user_agents",
    "tcp",
)


def _parse_media(t: _Table) -> MediaSettings:
    d = MediaSettings()
    low = t.integer("rtp_port_min", d.rtp_port_min, 1024, 65535)
    high = t.integer("rtp_port_max", d.rtp_port_max, 1024, 65535)
    if low % 2:
        t.error("rtp_port_min", f"must be even (RTP uses the even port, RTCP the next), got {low}")
    if high <= low:
        t.error("rtp_port_max", f"must be greater than media.rtp_port_min ({low}), got {high}")
    result = MediaSettings(
        address=_ip_address(t, "address", d.address, allow_empty=True),
        rtp_port_min=low,
        rtp_port_max=high,
        rtp_timeout=t.number("rtp_timeout", d.rtp_timeout, "a number >= 0", lambda v: v >= 0),
        jitter_buffer_ms=t.integer("jitter_buffer_ms", d.jitter_buffer_ms, 20, 200),
        ptime=t.get(
            "ptime",
            d.ptime,
            lambda v: v if _is_int(v) and v in (10, 20, 30, 40) else None,
            "one of 10, 20, 30, 40",
        ),
    )
    t.check_unknown(
        ["address", "rtp_port_min", "rtp_port_max", "rtp_timeout", "jitter_buffer_ms", "ptime"]
    )
    return result


def _parse_echo(t: _Table) -> EchoSettings:
    d = EchoSettings()
    extension = t.string("extension", d.extension)
    if extension and not _EXTENSION.fullmatch(extension):
        t.error(
            "extension",
            f"must be a SIP user part (1-32 characters, no @ : or spaces), got {_show(extension)}",
        )
        extension = d.extension
    result = EchoSettings(extension=extension, allow=t.networks("allow", d.allow))
    t.check_unknown(["extension", "allow"])
    return result


# my.telegram.org gives a 32-digit hex api_hash; @BotFather a "<bot id>:<35 characters>" token.
_API_HASH = re.compile(r"[0-9a-fA-F]{32}")
_BOT_TOKEN = re.compile(r"[0-9]{1,20}:[A-Za-z0-9_-]{30,64}")
_TELEGRAM_KEYS = ("api_id", "api_hash", "bot_token", "session", "ring_timeout", "server")


def _parse_telegram(t: _Table, problems: list[str]) -> TelegramSettings:
    d = TelegramSettings()
    before = len(problems)
    api_id = t.integer("api_id", d.api_id, 0, 2**31 - 1)
    api_hash = t.string("api_hash", secret=True)
    if api_hash and not _API_HASH.fullmatch(api_hash):
        # Never quote the value: it is a secret, even when mistyped.
        t.error("api_hash", f"must be 32 hexadecimal characters, got {len(api_hash)} characters")
    if len(problems) == before:
        if api_id and not api_hash:
            t.error("api_hash", "required when api_id is set (both come from my.telegram.org)")
        if api_hash and not api_id and not t.has("api_id"):
            t.error("api_id", "required when api_hash is set (both come from my.telegram.org)")
        elif api_hash and not api_id:
            t.error("api_id", "must not be 0 when api_hash is set (both come from my.telegram.org)")
    bot_token = t.string("bot_token", secret=True)
    if bot_token and not _BOT_TOKEN.fullmatch(bot_token):
        t.error(
            "bot_token",
            'must be the token @BotFather gives ("123456789:" followed by 30-64 letters,'
            " digits, _ or -)",
        )
        bot_token = ""
    session = t.string("session", d.session)
    if not session.endswith(".session") or session == ".session":
        t.error("session", f'must be a file name ending in ".session", got {_show(session)}')
        session = d.session
    server: TelegramServer | None = None
    raw_server = t.raw("server")
    if isinstance(raw_server, dict):
        server = _parse_telegram_server(_Table(raw_server, t.where("server"), problems))
    elif raw_server is not None:
        t.error("server", f"must be a table ([telegram.server]), got {_show(raw_server)}")
    result = TelegramSettings(
        api_id=api_id,
        api_hash=Secret(api_hash),
        bot_token=Secret(bot_token),
        session=session,
        ring_timeout=t.integer("ring_timeout", d.ring_timeout, 10, 120),
        server=server,
    )
    t.check_unknown(_TELEGRAM_KEYS)
    return result


def _parse_telegram_server(t: _Table) -> TelegramServer | None:
    address = t.hostport("address")
    if address is None and not t.has("address"):
        t.error("address", 'required: "host:port" of the MTProto server')
    elif address is not None and address.port is None:
        t.error("address", f"must include the port (host:port), got {_show(str(address))}")
        address = None
    public_key = t.string("public_key")
    if not public_key and not t.has("public_key"):
        t.error("public_key", "required: the PEM file of the server's RSA public key")
    elif not public_key:
        t.error("public_key", "must not be empty")
    t.check_unknown(["address", "public_key"])
    if address is None or not public_key:
        return None
    return TelegramServer(address=address, public_key=public_key)


# Telegram usernames: 5..32 letters, digits and _, starting with a letter.
_TG_USERNAME = re.compile(r"[A-Za-z][A-Za-z0-9_]{4,31}")
_SIMULATION_KEYS = (
    "enabled",
    "listen",
    "port",
    "gateway_phone",
    "gateway_name",
    "gateway_username",
    "bot_username",
    "members",
)
_SIM_MEMBER_KEYS = tuple(f.name for f in fields(SimulatedMember))
_SIM_WAV_RATES = (8000, 16000, 24000, 32000, 48000)
_KEYPAD = re.compile(r"[0-9*#]+")


def _sim_phone(t: _Table, key: str, default: str) -> str:
    phone = t.string(key, default)
    digits = re.sub(r"[+()\s-]", "", phone)
    if t.has(key) and not (digits.isascii() and digits.isdigit() and 5 <= len(digits) <= 15):
        t.error(key, f"must be a phone number of 5 to 15 digits, got {_show(phone)}")
        return default
    return phone


def _sim_username(t: _Table, key: str, default: str, *, bot: bool = False) -> str:
    name = t.string(key, default)
    if not name:
        return name
    if not _TG_USERNAME.fullmatch(name):
        t.error(key, f"must be 5-32 letters, digits or _ starting with a letter, got {_show(name)}")
        return default
    if bot and not name.lower().endswith("bot"):
        t.error(key, f'must end in "bot" (Telegram\'s rule for bots), got {_show(name)}')
        return default
    return name


def _seconds(t: _Table, key: str, default: float) -> float:
    return t.number(key, default, "a number of seconds >= 0", lambda v: 0 <= v <= 86400)


def _wav_problem(path: Path) -> str | None:
    """Why *path* is not a WAV file the simulation can play (None when it is)."""
    try:
        with wave.open(str(path), "rb") as wav:
            channels, width, rate = wav.getnchannels(), wav.getsampwidth(), wav.getframerate()
    except FileNotFoundError:
        return f"{path}: no such file"
    except (OSError, EOFError, wave.Error) as exc:
        return f"{path} is not a PCM WAV file ({exc})"
    if (channels, width) != (1, 2) or rate not in _SIM_WAV_RATES:
        rates = "/".join(str(r // 1000) for r in _SIM_WAV_RATES)
        return (
            f"{path} must be mono 16-bit PCM at {rates} kHz, got {channels} channel(s),"
            f" {8 * width}-bit, {rate} Hz"
        )
    return None


def _parse_sim_member(t: _Table, base_dir: Path) -> SimulatedMember | None:
    d = SimulatedMember(name="")
    name = t.string("name").strip()
    if not name:
        t.error("name", 'required: the member\'s first name, e.g. "Alice"')
    raw_lines = t.strings("lines", ())
    play = t.string("play")
    if play:
        problem = _wav_problem(Path(os.path.abspath(base_dir / play)))
        if problem:
            t.error("play", problem)
    elif t.has("play"):
        t.error("play", "must not be empty (leave it out for silence)")
    tone_hz = d.tone_hz
    if t.has("tone_hz"):
        tone_hz = t.number(
            "tone_hz", 0.0, "a frequency in Hz, > 0 and < 4000", lambda v: 0 < v < 4000
        )
        if play:
            t.error("tone_hz", "cannot be used together with play (one sound per member)")
    record = t.string("record")
    if record and Path(os.path.abspath(base_dir / record)).is_dir():
        t.error("record", f"{_show(record)} is a directory; name a .wav file")
    elif t.has("record") and not record:
        t.error("record", "must not be empty (leave it out to record nothing)")
    keypad = t.string("keypad")
    if keypad and not _KEYPAD.fullmatch(keypad):
        t.error("keypad", f"must be keypad digits (0-9, * and #), got {_show(keypad)}")
        keypad = ""
    send_number = t.string("send_number").strip()
    if t.has("send_number") and not send_number:
        t.error("send_number", "must not be empty (leave it out to send nothing)")
    call_gateway_after: float | None = None
    if t.has("call_gateway_after"):
        call_gateway_after = _seconds(t, "call_gateway_after", 0.0)
    member = SimulatedMember(
        name=name,
        phone=_sim_phone(t, "phone", ""),
        username=_sim_username(t, "username", ""),
        lines=raw_lines if t.has("lines") else None,
        incoming=cast(SimIncoming, t.choice("incoming", d.incoming, get_args(SimIncoming))),
        answer_after=_seconds(t, "answer_after", d.answer_after),
        hang_up_after=_seconds(t, "hang_up_after", d.hang_up_after),
        play=play,
        tone_hz=tone_hz,
        tone_dbfs=t.number(
            "tone_dbfs", d.tone_dbfs, "a level in dBFS from -60 to 0", lambda v: -60 <= v <= 0
        ),
        record=record,
        keypad=keypad,
        keypad_after=_seconds(t, "keypad_after", d.keypad_after),
        send_number=send_number,
        send_after=_seconds(t, "send_after", d.send_after),
        call_gateway_after=call_gateway_after,
        privacy=cast(SimPrivacy, t.choice("privacy", d.privacy, get_args(SimPrivacy))),
    )
    t.check_unknown(_SIM_MEMBER_KEYS)
    return member if name else None


def _parse_simulation(
    t: _Table, base_dir: Path, line_names: Sequence[str], problems: list[str]
) -> SimulationSettings:
    d = SimulationSettings()
    gateway_name = t.string("gateway_name", d.gateway_name).strip()
    if not gateway_name:
        t.error("gateway_name", "must not be empty")
        gateway_name = d.gateway_name
    settings = SimulationSettings(
        enabled=t.boolean("enabled", d.enabled),
        listen=_ip_address(t, "listen", d.listen, allow_empty=False),
        port=t.integer("port", d.port, 0, 65535),
        gateway_phone=_sim_phone(t, "gateway_phone", d.gateway_phone),
        gateway_name=gateway_name,
        gateway_username=_sim_username(t, "gateway_username", d.gateway_username),
        bot_username=_sim_username(t, "bot_username", d.bot_username, bot=True),
    )
    raw = t.raw("members")
    if raw is not None and not (isinstance(raw, list) and all(isinstance(x, dict) for x in raw)):
        t.error("members", "must be an array of tables ([[simulation.members]])")
        raw = []
    members: list[SimulatedMember] = []
    tables: list[_Table] = []
    for i, item in enumerate(raw or []):
        mt = _Table(item, t.where(f"members[{i}]"), problems)
        member = _parse_sim_member(mt, base_dir)
        if member is not None:
            members.append(member)
            tables.append(mt)
    settings = replace(settings, members=tuple(members))
    # Names, phones and usernames are unique in the cloud (usernames ignore case).
    names: dict[str, str] = {}
    phones = {re.sub(r"\D", "", settings.gateway_phone): t.where("gateway_phone")}
    usernames: dict[str, str] = {}
    if settings.gateway_username:
        usernames[settings.gateway_username.lower()] = t.where("gateway_username")
    if settings.bot_username.lower() in usernames:
        t.error("bot_username", "must differ from gateway_username")
    for i, (member, mt) in enumerate(zip(members, tables, strict=True)):
        if member.name in names:
            mt.error("name", f"{_show(member.name)} is already used by {names[member.name]}")
        names.setdefault(member.name, mt.path)
        phone = settings.member_phone(i)
        digits = re.sub(r"\D", "", phone)
        if digits in phones:
            generated = "" if member.phone else " (generated; set another phone)"
            mt.error("phone", f"{_show(phone)} is already used by {phones[digits]}{generated}")
        phones.setdefault(digits, mt.where("phone"))
        taken = usernames.get(member.username.lower()) or (
            t.where("bot_username")
            if member.username.lower() == settings.bot_username.lower()
            else None
        )
        if member.username and taken:
            mt.error("username", f"{_show(member.username)} is already used by {taken}")
        elif member.username:
            usernames[member.username.lower()] = mt.where("username")
        for j, line in enumerate(member.lines or ()):
            if line not in line_names:
                known = ", ".join(_show(n) for n in line_names) or "none"
                mt.error(f"lines[{j}]", f"no line is called {_show(line)} (lines: {known})")
    t.check_unknown(_SIMULATION_KEYS)
    return settings


def _parse_calls(t: _Table) -> CallsSettings:
    d = CallsSettings()
    method = t.choice(
        "default_outgoing_method", d.default_outgoing_method, get_args(OutgoingMethod)
    )
    t.check_unknown(["default_outgoing_method"])
    return CallsSettings(default_outgoing_method=cast(OutgoingMethod, method))


_GPIO_EXPECTED = f"a GPIO pin number (BCM) between 0 and {GPIO_MAX}"


def _gpio(value: Any) -> int | None:
    return value if _is_int(value) and 0 <= value <= GPIO_MAX else None


def _parse_leds(t: _Table) -> LedSettings:
    d = LedSettings()
    pins: dict[str, int | None] = {
        name: t.get(name, None, _gpio, _GPIO_EXPECTED) for name in LED_NAMES
    }
    rgb: tuple[int, int, int] | None = None
    raw = t.raw("rgb")
    if raw is not None:
        if not (isinstance(raw, list) and len(raw) == 3):
            t.error("rgb", f"must be an array of 3 GPIO pins [red, green, blue], got {_show(raw)}")
        else:
            good = [_gpio(v) for v in raw]
            for i, (value, pin) in enumerate(zip(raw, good, strict=True)):
                if pin is None:
                    t.error(f"rgb[{i}]", f"must be {_GPIO_EXPECTED}, got {_show(value)}")
            if None not in good:
                rgb = (raw[0], raw[1], raw[2])
    # One pin drives one LED: a second use is a wiring mistake, named at both fields.
    used: dict[int, str] = {}
    keys = [*pins.items(), *((f"rgb[{i}]", pin) for i, pin in enumerate(rgb or ()))]
    for key, pin in keys:
        if pin is None:
            continue
        if pin in used:
            t.error(key, f"GPIO {pin} is already used by {used[pin]}")
        else:
            used[pin] = t.where(key)
    result = LedSettings(
        line=pins["line"],
        telegram=pins["telegram"],
        ringing=pins["ringing"],
        call=pins["call"],
        missed=pins["missed"],
        error=pins["error"],
        rgb=rgb,
        active_high=t.boolean("active_high", d.active_high),
    )
    t.check_unknown([*LED_NAMES, "rgb", "active_high"])
    return result


def _parse_handset(t: _Table, line_names: Sequence[str]) -> HandsetSettings:
    d = HandsetSettings()
    device = t.string("device", d.device)
    if device != device.strip() or any(c in device for c in "\r\n\0"):
        t.error("device", f"must be an ALSA PCM name without spaces around it, got {_show(device)}")
    name = t.string("name", d.name)
    if not name.strip():
        t.error("name", 'must not be empty (members read it: "answered by <name>")')
    lines = t.strings("lines", d.lines)
    for i, line in enumerate(lines):
        if line not in line_names:
            known = ", ".join(_show(n) for n in line_names) or "none"
            t.error(f"lines[{i}]", f"no line is called {_show(line)} (lines: {known})")
    result = HandsetSettings(
        device=device.strip(),
        name=name.strip() or d.name,
        lines=lines,
        ring_volume=t.integer("ring_volume", d.ring_volume, 0, 100),
    )
    t.check_unknown(["device", "name", "lines", "ring_volume"])
    return result


def _parse_button(t: _Table, leds: LedSettings) -> ButtonSettings:
    d = ButtonSettings()
    pin = t.get("pin", None, _gpio, _GPIO_EXPECTED)
    # The button's pin is an input: an LED's pin cannot be one too.
    if pin is not None and pin in leds.pins():
        t.error("pin", f"GPIO {pin} is already used by {leds.pins()[pin]}")
    result = ButtonSettings(pin=pin, pull_up=t.boolean("pull_up", d.pull_up))
    t.check_unknown(["pin", "pull_up"])
    return result


def _parse_webui(t: _Table) -> WebUiSettings:
    d = WebUiSettings()
    result = WebUiSettings(
        listen=_ip_address(t, "listen", d.listen, allow_empty=False),
        port=t.integer("port", d.port, 1, 65535),
    )
    t.check_unknown(["listen", "port"])
    return result


_DIALING_KEYS = (
    "country_code",
    "national_prefix",
    "international_prefix",
    "dial_format",
    "dial_allow",
    "dial_deny",
    "min_length",
    "extensions",
    "service_codes",
    "letters",
    "allow_uri",
)
_COMMON_LINE_KEYS = (
    "name",
    "kind",
    "enabled",
    "incoming",
    "dtmf",
    "codecs",
    "allow",
    "no_answer",
    *_DIALING_KEYS,
)
_PROVIDER_KEYS = (
    "registrar",
    "domain",
    "username",
    "auth_username",
    "password",
    "outbound_proxy",
    "transport",
    "register",
    "expires",
    "keepalive",
)
_ATA_KEYS = ("username", "password", "auth_algorithms")
AUTH_ALGORITHMS = ("MD5", "SHA-256")


def _parse_codecs(t: _Table) -> tuple[str, ...]:
    codecs = t.strings("codecs", CODECS)
    if not t.has("codecs") or not isinstance(t.raw("codecs"), list):
        return codecs
    expected = " and ".join(json.dumps(c) for c in CODECS)
    if not codecs:
        t.error("codecs", f"must not be empty (supported: {expected})")
        return CODECS
    for i, codec in enumerate(codecs):
        if codec not in CODECS:
            t.error(f"codecs[{i}]", f"must be one of {expected}, got {_show(codec)}")
        elif codec in codecs[:i]:
            t.error(f"codecs[{i}]", f"{_show(codec)} is listed twice")
    return codecs


def _parse_dialing(t: _Table) -> DialingSettings:
    """The dialling keys of a line (flat in its table); see gateway/calls/dialplan.py."""
    d = DialingSettings()
    country_code = t.string("country_code")
    problem = numbering.country_code_problem(country_code) if country_code else None
    if problem:
        t.error("country_code", problem)
        country_code = ""
    national: str | None = None
    if t.has("national_prefix"):
        national = t.string("national_prefix")
        if not re.fullmatch(r"[0-9]{0,4}", national):
            t.error("national_prefix", f'must be 0-4 digits ("" = none), got {_show(national)}')
            national = None
    international: str | None = None
    if t.has("international_prefix"):
        international = t.string("international_prefix")
        if not re.fullmatch(r"[0-9]{1,5}", international):
            t.error("international_prefix", f"must be 1-5 digits, got {_show(international)}")
            international = None
    if international is not None and international == (
        national if national is not None else numbering.default_national_prefix(country_code)
    ):
        t.error(
            "international_prefix",
            f"must differ from the national prefix, got {_show(international)} for both",
        )
    return DialingSettings(
        country_code=country_code,
        national_prefix=national,
        international_prefix=international,
        dial_format=cast(DialFormat, t.choice("dial_format", d.dial_format, get_args(DialFormat))),
        allow=_dial_patterns(t, "dial_allow", d.allow),
        deny=_dial_patterns(t, "dial_deny", d.deny),
        min_length=t.integer("min_length", d.min_length, 1, 15),
        extensions=t.boolean("extensions", d.extensions),
        service_codes=t.boolean("service_codes", d.service_codes),
        letters=t.boolean("letters", d.letters),
        allow_uri=t.boolean("allow_uri", d.allow_uri),
    )


def _dial_patterns(t: _Table, key: str, default: tuple[str, ...]) -> tuple[str, ...]:
    patterns = t.strings(key, default)
    if not t.has(key) or not isinstance(t.raw(key), list):
        return patterns
    for i, pattern in enumerate(patterns):
        problem = numbering.pattern_problem(pattern)
        if problem:
            t.error(f"{key}[{i}]", problem)
        elif pattern in patterns[:i]:
            t.error(f"{key}[{i}]", f"{_show(pattern)} is listed twice")
    return patterns


def _parse_line(t: _Table, names: dict[str, int], index: int) -> LineConfig | None:
    name = t.string("name")
    if not t.has("name"):
        t.error("name", 'required (a short id like "home")')
    elif not _LINE_NAME.fullmatch(name):
        t.error("name", f"must match [a-z0-9][a-z0-9_-]{{0,31}}, got {_show(name)}")
    elif name in names:
        t.error("name", f"{_show(name)} is already used by lines[{names[name]}]")
    else:
        names[name] = index
    kind = t.choice("kind", "", ("provider", "ata"))
    if not t.has("kind"):
        t.error("kind", 'required: "provider" or "ata"')
    common: dict[str, Any] = {
        "name": name,
        "enabled": t.boolean("enabled", True),
        "incoming": t.choice("incoming", "echo", ("echo", "members", "reject")),
        "dtmf": t.choice("dtmf", "rfc4733", ("rfc4733", "info")),
        "codecs": _parse_codecs(t),
        "allow": t.networks("allow", ()),
        "no_answer": t.choice("no_answer", "busy", get_args(NoAnswer)),
        "dialing": _parse_dialing(t),
    }
    if kind == "provider":
        line: LineConfig | None = _parse_provider(t, common)
        misplaced: dict[str, str] = {}
        allowed: tuple[str, ...] = (*_COMMON_LINE_KEYS, *_PROVIDER_KEYS)
    elif kind == "ata":
        line = _parse_ata(t, common)
        only = 'only allowed on provider lines (this line has kind = "ata")'
        misplaced = {k: only for k in _PROVIDER_KEYS if k not in _ATA_KEYS}
        allowed = (*_COMMON_LINE_KEYS, *_ATA_KEYS)
    else:
        # Without a valid kind the kind-specific keys cannot be judged.
        t.seen.update(_PROVIDER_KEYS)
        line, misplaced, allowed = None, {}, (*_COMMON_LINE_KEYS, *_PROVIDER_KEYS)
    t.check_unknown(allowed, misplaced)
    return line


def _parse_provider(t: _Table, common: dict[str, Any]) -> ProviderLineConfig | None:
    registrar = t.hostport("registrar")
    if registrar is None and not t.has("registrar"):
        t.error("registrar", "required for provider lines (host[:port] of the provider)")
    username = t.string("username")
    if not username:
        t.error("username", "required for provider lines")
    password = Secret(t.string("password", secret=True))
    keepalive = t.get(
        "keepalive",
        25,
        lambda v: v if _is_int(v) and (v == 0 or 10 <= v <= 300) else None,
        "0 (off) or an integer between 10 and 300",
    )
    line_fields: dict[str, Any] = {
        "domain": t.string("domain"),
        "auth_username": t.string("auth_username"),
        "outbound_proxy": t.hostport("outbound_proxy"),
        "transport": t.choice("transport", "udp", ("udp", "tcp")),
        "register": t.boolean("register", True),
        "expires": t.integer("expires", 600, 60, 86400),
        "keepalive": keepalive,
    }
    if registrar is None:
        return None
    return ProviderLineConfig(
        **common,
        **line_fields,
        registrar=registrar,
        username=username,
        password=password,
    )


def _parse_ata(t: _Table, common: dict[str, Any]) -> AtaLineConfig:
    username = t.string("username")
    password = Secret(t.string("password", secret=True))
    if username and not password:
        t.error("password", "required when username is set (the ATA registers with digest auth)")
    if password and not username:
        t.error("username", "required when password is set")
    algorithms = t.strings("auth_algorithms", ("MD5",))
    if t.has("auth_algorithms") and isinstance(t.raw("auth_algorithms"), list):
        expected = " or ".join(_show(a) for a in AUTH_ALGORITHMS)
        if not algorithms:
            t.error("auth_algorithms", f"must not be empty (supported: {expected})")
        for i, algorithm in enumerate(algorithms):
            if algorithm not in AUTH_ALGORITHMS:
                t.error(f"auth_algorithms[{i}]", f"must be {expected}, got {_show(algorithm)}")
            elif algorithm in algorithms[:i]:
                t.error(f"auth_algorithms[{i}]", f"{_show(algorithm)} is listed twice")
    return AtaLineConfig(**common, username=username, password=password, auth_algorithms=algorithms)


def _fill_derived(line: LineConfig) -> LineConfig:
    """Defaults that depend on other keys: domain, auth_username."""
    if isinstance(line, ProviderLineConfig):
        return replace(
            line,
            domain=line.domain or line.registrar.host,
            auth_username=line.auth_username or line.username,
        )
    return line


def parse_config(data: Mapping[str, Any], *, base_dir: Path) -> Config:
    """Validate a decoded TOML document.

    **Raises** :class:`ConfigInvalid` listing every problem found.  Every
    non-empty password is registered with :func:`gateway.logs.register_secret`.
    """
    problems: list[str] = []
    top = _Table(data, "", problems)
    gateway = _parse_gateway(_subtable(top, "gateway", problems))
    sip = _parse_sip(_subtable(top, "sip", problems))
    media = _parse_media(_subtable(top, "media", problems))
    echo = _parse_echo(_subtable(top, "echo", problems))
    telegram = _parse_telegram(_subtable(top, "telegram", problems), problems)
    for secret in (telegram.api_hash, telegram.bot_token):
        register_secret(secret.reveal())
    lines: list[LineConfig] = []
    raw_lines = top.raw("lines")
    if raw_lines is not None and not (
        isinstance(raw_lines, list) and all(isinstance(x, dict) for x in raw_lines)
    ):
        top.error("lines", "must be an array of tables ([[lines]])")
        raw_lines = []
    names: dict[str, int] = {}
    for i, raw in enumerate(raw_lines or []):
        line = _parse_line(_Table(raw, f"lines[{i}]", problems), names, i)
        if line is not None:
            if line.password:
                register_secret(line.password.reveal())
            lines.append(_fill_derived(line))
    simulation = _parse_simulation(
        _subtable(top, "simulation", problems), Path(base_dir), list(names), problems
    )
    calls = _parse_calls(_subtable(top, "calls", problems))
    leds = _parse_leds(_subtable(top, "leds", problems))
    button = _parse_button(_subtable(top, "button", problems), leds)
    handset = _parse_handset(_subtable(top, "handset", problems), list(names))
    webui = _parse_webui(_subtable(top, "webui", problems))
    top.check_unknown(_TOP_KEYS)
    if problems:
        raise ConfigInvalid(problems)
    return Config(
        base_dir=Path(os.path.abspath(base_dir)),
        gateway=gateway,
        sip=sip,
        media=media,
        echo=echo,
        telegram=telegram,
        lines=tuple(lines),
        simulation=simulation,
        calls=calls,
        leds=leds,
        button=button,
        handset=handset,
        webui=webui,
    )


_TOP_KEYS = (
    "gateway",
    "sip",
    "media",
    "echo",
    "telegram",
    "lines",
    "simulation",
    "calls",
    "leds",
    "button",
    "handset",
    "webui",
)


# --------------------------------------------------------------------------------------------
# Files


def load_config(path: Path | str) -> Config:
    """Read and validate the file at *path*.

    A file that holds a password but is readable by group or others is
    tightened to 0600 (with a warning).  **Raises** :class:`ConfigError`
    (:class:`ConfigInvalid` for validation problems) with the path in the
    message.
    """
    path = Path(path)
    try:
        raw = path.read_bytes()
    except FileNotFoundError:
        raise ConfigError(f"{path}: no such file (create one with --init)") from None
    except OSError as exc:
        raise ConfigError(f"{path}: cannot read: {exc.strerror}") from None
    try:
        data = tomllib.loads(raw.decode("utf-8"))
    except UnicodeDecodeError:
        raise ConfigError(f"{path}: not UTF-8 text") from None
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{path}: invalid TOML: {exc}") from None
    try:
        config = parse_config(data, base_dir=path.parent)
    except ConfigInvalid as exc:
        raise ConfigInvalid(exc.problems, source=str(path)) from None
    telegram = config.telegram
    if any(line.password for line in config.lines) or telegram.api_hash or telegram.bot_token:
        _protect(path)
    return config


def _protect(path: Path) -> None:
    mode = stat.S_IMODE(path.stat().st_mode)
    if mode & 0o077 == 0:
        return
    try:
        os.chmod(path, 0o600)
    except OSError as exc:
        log.warning(
            "config file %s holds passwords and is readable by others (mode %04o);"
            " could not chmod 0600: %s",
            path,
            mode,
            exc.strerror,
        )
        return
    log.warning(
        "config file %s holds passwords and was readable by others (mode %04o); now 0600",
        path,
        mode,
    )


def _network_text(net: IpNetwork) -> str:
    return str(net.network_address) if net.prefixlen == net.max_prefixlen else str(net)


def config_to_dict(config: Config) -> dict[str, Any]:
    """A TOML-ready dict of *config*, passwords revealed (for saving).

    Values derived from other keys are left out when they equal the derivation
    (``domain`` = registrar host, ``auth_username`` = username, the default
    ``user_agent``), so they keep following their source after an upgrade or edit.
    """
    sip: dict[str, Any] = {
        "listen": config.sip.listen,
        "port": config.sip.port,
        "public_address": str(config.sip.public_address or ""),
        "rate_limit": config.sip.rate_limit,
        "block_user_agents": list(config.sip.block_user_agents),
        "tcp": config.sip.tcp,
    }
    if config.sip.user_agent != default_user_agent():
        sip["user_agent"] = config.sip.user_agent
    return {
        "gateway": {
            "data_dir": config.gateway.data_dir,
            "log_level": config.gateway.log_level,
            "log_format": config.gateway.log_format,
        },
        "sip": sip,
        "media": {
            "address": config.media.address,
            "rtp_port_min": config.media.rtp_port_min,
            "rtp_port_max": config.media.rtp_port_max,
            "rtp_timeout": config.media.rtp_timeout,
            "jitter_buffer_ms": config.media.jitter_buffer_ms,
            "ptime": config.media.ptime,
        },
        "echo": {
            "extension": config.echo.extension,
            "allow": [_network_text(n) for n in config.echo.allow],
        },
        "telegram": _telegram_to_dict(config.telegram),
        "calls": {"default_outgoing_method": config.calls.default_outgoing_method},
        "leds": _leds_to_dict(config.leds),
        "button": _button_to_dict(config.button),
        "handset": {
            "device": config.handset.device,
            "name": config.handset.name,
            "lines": list(config.handset.lines),
            "ring_volume": config.handset.ring_volume,
        },
        "webui": {"listen": config.webui.listen, "port": config.webui.port},
        "lines": [_line_to_dict(line) for line in config.lines],
        **_simulation_to_dict(config.simulation),
    }


def _leds_to_dict(leds: LedSettings) -> dict[str, Any]:
    """Only the fitted LEDs: TOML cannot write "none", an absent key says it."""
    out: dict[str, Any] = {
        name: getattr(leds, name) for name in LED_NAMES if getattr(leds, name) is not None
    }
    if leds.rgb is not None:
        out["rgb"] = list(leds.rgb)
    out["active_high"] = leds.active_high
    return out


def _button_to_dict(button: ButtonSettings) -> dict[str, Any]:
    """No ``pin`` key when no button is fitted (TOML has no null)."""
    out: dict[str, Any] = {"pin": button.pin} if button.pin is not None else {}
    out["pull_up"] = button.pull_up
    return out


def _simulation_to_dict(simulation: SimulationSettings) -> dict[str, Any]:
    """``{"simulation": {...}}``, or ``{}`` when it is all defaults (most files)."""
    if simulation == SimulationSettings():
        return {}
    out: dict[str, Any] = {
        f.name: getattr(simulation, f.name) for f in fields(simulation) if f.name != "members"
    }
    blank = SimulatedMember(name="")
    members: list[dict[str, Any]] = []
    for member in simulation.members:
        # Only what differs from the defaults: None (every line, no call) cannot be written.
        values = {f.name: getattr(member, f.name) for f in fields(member)}
        item = {k: v for k, v in values.items() if k == "name" or v != getattr(blank, k)}
        if member.lines is not None:
            item["lines"] = list(member.lines)
        members.append(item)
    if members:
        out["members"] = members
    return {"simulation": out}


def _telegram_to_dict(telegram: TelegramSettings) -> dict[str, Any]:
    out: dict[str, Any] = {
        "api_id": telegram.api_id,
        "api_hash": telegram.api_hash.reveal(),
        "bot_token": telegram.bot_token.reveal(),
        "session": telegram.session,
        "ring_timeout": telegram.ring_timeout,
    }
    if telegram.server is not None:
        out["server"] = {
            "address": str(telegram.server.address),
            "public_key": telegram.server.public_key,
        }
    return out


def _line_to_dict(line: LineConfig) -> dict[str, Any]:
    out: dict[str, Any] = {
        "name": line.name,
        "kind": line.kind,
        "enabled": line.enabled,
        "incoming": line.incoming,
        "dtmf": line.dtmf,
        "codecs": list(line.codecs),
        "allow": [_network_text(n) for n in line.allow],
        "no_answer": line.no_answer,
    }
    if isinstance(line, ProviderLineConfig):
        out["registrar"] = str(line.registrar)
        if line.domain != line.registrar.host:
            out["domain"] = line.domain
        out["username"] = line.username
        if line.auth_username != line.username:
            out["auth_username"] = line.auth_username
        out.update(
            password=line.password.reveal(),
            outbound_proxy=str(line.outbound_proxy or ""),
            transport=line.transport,
            register=line.register,
            expires=line.expires,
            keepalive=line.keepalive,
        )
    else:
        out.update(
            username=line.username,
            password=line.password.reveal(),
            auth_algorithms=list(line.auth_algorithms),
        )
    out.update(_dialing_to_dict(line.dialing))
    return out


def _dialing_to_dict(dialing: DialingSettings) -> dict[str, Any]:
    """The flat dialling keys; the prefixes only when set (else they follow country_code)."""
    out: dict[str, Any] = {"country_code": dialing.country_code}
    if dialing.national_prefix is not None:
        out["national_prefix"] = dialing.national_prefix
    if dialing.international_prefix is not None:
        out["international_prefix"] = dialing.international_prefix
    out.update(
        dial_format=dialing.dial_format,
        dial_allow=list(dialing.allow),
        dial_deny=list(dialing.deny),
        min_length=dialing.min_length,
        extensions=dialing.extensions,
        service_codes=dialing.service_codes,
        letters=dialing.letters,
        allow_uri=dialing.allow_uri,
    )
    return out


def write_atomic(path: Path | str, data: bytes, mode: int = 0o600) -> None:
    """Replace *path* with *data* so that a power cut leaves the old or the new file.

    Temp file in the same directory, fsync, rename, fsync the directory.
    """
    path = Path(path)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as f:
            os.fchmod(f.fileno(), mode)
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    dir_fd = os.open(path.parent, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(dir_fd)
    finally:
        os.close(dir_fd)


def save_config(config: Config, path: Path | str) -> None:
    """Write *config* to *path* atomically with mode 0600."""
    write_atomic(path, tomli_w.dumps(config_to_dict(config)).encode("utf-8"))


def default_config_text() -> str:
    """The commented settings file that ``--init`` writes (equal to the defaults)."""
    agents = ", ".join(json.dumps(a) for a in DEFAULT_BLOCK_USER_AGENTS)
    return _TEMPLATE.replace("@BLOCK_USER_AGENTS@", agents)


_TEMPLATE = """\
# Linegram settings.  Every key is optional; the values shown are the defaults.
# Reference: docs/configuration.md.  This file holds passwords: keep it mode 0600.

[gateway]
data_dir = "."            # database and state; relative to this file's directory
log_level = "info"        # debug | info | warning | error
log_format = "text"       # text | json

[sip]
listen = "127.0.0.1"      # address to bind; "0.0.0.0" to serve the LAN
port = 5060
public_address = ""       # "" = learn from received/rport; else IP or host[:port]
# user_agent = "Linegram/<version>"
rate_limit = 30.0         # requests per second per source address (burst 2x)
block_user_agents = [@BLOCK_USER_AGENTS@]
tcp = false

[media]
address = ""              # "" = same as sip.listen (or the learnt public address)
rtp_port_min = 10000      # even
rtp_port_max = 10999
rtp_timeout = 30.0        # seconds without RTP before a call is ended; 0 = off
jitter_buffer_ms = 60     # 20..200
ptime = 20                # 10 | 20 | 30 | 40

[echo]
extension = "600"         # call sip:600@<listen> to hear yourself; "" disables it
allow = ["127.0.0.1"]     # who may call the echo test directly (IPs or CIDRs)

[telegram]
api_id = 0                # from https://my.telegram.org -> API development tools; 0 = not set
api_hash = ""             # the app's api_hash from the same page (secret)
bot_token = ""            # companion bot from @BotFather (secret); "" = text commands only
session = "telegram/gateway.session"  # the account's login, under gateway.data_dir (0600)
ring_timeout = 45         # seconds a member's Telegram rings before the call counts as missed

# Advanced: use another MTProto server instead of Telegram (the simulated cloud).
# [telegram.server]
# address = "127.0.0.1:44300"
# public_key = "simcloud.pem"   # its RSA public key; relative to this file's directory

[calls]
default_outgoing_method = "invite"  # a newly linked member calls out by: invite | callback

[leds]
# BCM GPIO pin (0..27) of each status LED; leave a key out when that LED is not fitted.
# line = 17                 # lines registered (blinks: registering or failed)
# telegram = 27             # the Telegram account is connected
# ringing = 22              # a call is ringing
# call = 23                 # a call is in progress
# missed = 24               # a missed call is waiting
# error = 25                # something needs attention
# rgb = [5, 6, 13]          # one RGB LED for cases with a single light: red, green, blue
active_high = true        # false when the pin sinks the LED's current (on = low)

[button]
# pin = 16                  # BCM GPIO (0..27) of the push button, not one of [leds]
pull_up = true            # true: the button connects the pin to ground

[handset]
# A local phone: a USB speakerphone or headset that rings and takes calls like a member.
# Its ALSA PCM name from `aplay -L`, e.g. "plughw:CARD=Speakerphone,DEV=0"; "" = none.
device = ""
name = "Home phone"       # how members read it ("answered by Home phone") and the call log
lines = []                # lines it rings for (incoming = "members"); [] = every line
ring_volume = 80          # ring tone level in percent; 0 = silent

[webui]
listen = "127.0.0.1"      # the web UI's address; "0.0.0.0" to serve the LAN
port = 8080

# Lines: add one [[lines]] table per line.  Examples:
#
# [[lines]]
# name = "home"
# kind = "provider"
# registrar = "sip.example.net"
# username = "4930123456"
# password = "change me"
# country_code = "49"        # members dial national numbers; premium and abroad are off
#
# [[lines]]
# name = "landline"
# kind = "ata"
# allow = ["192.168.1.20"]   # the ATA's address, for direct-IP calls
"""

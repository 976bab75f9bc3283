"""The gateway process: lines, SIP user agent, media and call log, started and stopped together.

:class:`Gateway` turns a validated :class:`~gateway.config.Config` into
running parts: one :class:`~gateway.sip.useragent.UserAgent` on the SIP port,
a :class:`~gateway.sip.registration.Registration` per provider line, the ATA
registrar, the shared media clock and RTP port pool.  Incoming calls are
routed per line (the echo test, a rejection, or the members of the line once
the call layer joins them); every call is written to the call log.  The
Telegram side (:class:`~gateway.telegram.service.TelegramSide`) starts with it.

:meth:`Gateway.reload` applies a changed settings file while running (lines
added, removed or changed; the call layer's per-line settings); what only a
restart can change is reported.  Calls in progress keep the line context they
started on, so neither kind of change drops them.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, fields, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

from gateway.calls.api import gateway_methods
from gateway.calls.manager import CallManager
from gateway.calls.onboarding import Onboarding
from gateway.config import AtaLineConfig, Config, LineConfig, ProviderLineConfig, load_config
from gateway.control import ControlServer
from gateway.hardware.handset import Handset
from gateway.hardware.panel import FrontPanel
from gateway.logs import LEVELS, RecentLogs, install_recent_logs, recent_logs, remove_recent_logs
from gateway.media.clock import MediaClock
from gateway.media.echo import EchoTest
from gateway.media.ports import PortAllocator
from gateway.media.session import RtpSession
from gateway.sip.call import CallState, EndReason, IncomingCall, OutgoingCall, SipCall
from gateway.sip.digest import Credentials, DigestClient
from gateway.sip.line import LineContext
from gateway.sip.message import Address
from gateway.sip.registrar import AtaAccount, Registrar
from gateway.sip.registration import Registration, RegistrationState
from gateway.sip.security import SourceList, parse_networks
from gateway.sip.uri import SipUri
from gateway.sip.useragent import UserAgent
from gateway.store import Outcome, Store
from gateway.telegram.privacy import check_call_privacy
from gateway.telegram.service import TelegramSide

if TYPE_CHECKING:
    from gateway.simulation import Simulation

log = logging.getLogger(__name__)

CONTROL_SOCKET = "control.sock"  # in the data directory
ECHO_ANSWER_DELAY = 0.5  # seconds of ringing before the echo test answers
SOURCE_REFRESH = 300.0  # re-resolve provider host names this often
RESTART_DELAY = 0.2  # seconds: the control API's answer leaves before the stop closes it


@dataclass
class LineStatus:
    name: str
    kind: str
    state: str  # unregistered | registering | registered | failed | ready
    last_error: str | None = None
    public_address: tuple[str, int] | None = None
    registered_until: float | None = None


@dataclass
class ReloadResult:
    """What :meth:`Gateway.reload` did (the control method ``config.reload``)."""

    applied: list[str]  # "lines.home: added", "lines.home.incoming", "echo.allow", ...
    restart_needed: list[str]  # dotted keys that differ but are read only at start
    lines: list[LineStatus]


# Keys of a line read per call: changed in place, the line keeps registering.
_LIVE_LINE_KEYS = ("incoming", "no_answer", "dialing")
# Read at start only.  telegram.api_id, api_hash and bot_token are left out: the
# Telegram sign-in and bot methods write them to the file and apply them at once.
_RESTART_SECTIONS = (
    "gateway",
    "sip",
    "media",
    "telegram",
    "simulation",
    "leds",
    "button",
    "handset",
    "webui",
)
_LIVE_KEYS = {
    "gateway.log_level",
    "telegram.ring_timeout",
    "telegram.api_id",
    "telegram.api_hash",
    "telegram.bot_token",
}


class Gateway:
    def __init__(self, config: Config, store: Store, config_path: Path | None = None) -> None:
        self.config = config
        self.store = store
        # The settings file config.reload re-reads; None when built from a Config alone.
        self.config_path = config_path
        # Set by __main__ (python -m gateway): stop, then re-execute the process.
        # In process (tests) it may be any callable; None = gateway.restart is refused.
        self.on_restart: Callable[[], None] | None = None
        self._reload_lock = asyncio.Lock()
        self._own_logs: RecentLogs | None = None
        # [simulation]: an in-process simulated Telegram the Telegram side connects to instead.
        self.simulation: Simulation | None = None
        if config.simulation.enabled:
            from gateway.simulation import Simulation  # simcloud loads only in simulation mode

            self.simulation = Simulation(config, store)
        # The Telegram account, bot, messages and calls; idle until an API app is configured.
        self.telegram = (
            TelegramSide(config, config_path)
            if self.simulation is None
            else TelegramSide(self.simulation.config)  # never saves the simulator's app
        )
        self.lines: dict[str, LineContext] = {}
        self.registrations: dict[str, Registration] = {}
        self.registrar: Registrar | None = None
        self.clock = MediaClock()
        self.ports = PortAllocator(config.media.rtp_port_min, config.media.rtp_port_max)
        self.ua: UserAgent | None = None
        # Set by the call layer to take calls for lines whose `incoming` is "members".
        self.on_member_call: Callable[[IncomingCall], None] | None = None
        self._call_rows: dict[str, int] = {}
        # Set by the call layer: a call nobody answered is missed, not rejected.
        self._outcomes: dict[str, Outcome] = {}
        # Members, ring groups, conversations: joins the SIP calls and the Telegram leg.
        self.onboarding = Onboarding(
            store,
            self.telegram.messenger,
            bot_username=lambda: self.telegram.bot.username if self.telegram.bot else "",
            gateway_username=self._gateway_username,
            lines=lambda: list(self.lines),
            check_privacy=lambda member: check_call_privacy(self.telegram.account, member),
            outgoing_method=lambda: self.config.calls.default_outgoing_method,
        )
        # [handset]: a local ALSA phone that rings with the members (None = not configured).
        self.handset: Handset | None = (
            Handset(config.handset, self.clock) if config.handset.device else None
        )
        self.manager = CallManager(self, self.onboarding)
        # The web UI and the LEDs talk to the gateway through this socket (docs/control-api.md).
        self.control = ControlServer(Path(config.data_dir) / CONTROL_SOCKET, gateway_methods(self))
        # [leds] and [button]: the status LEDs and the button on the box (off without GPIO).
        self.panel = FrontPanel(self)
        self._tasks: set[asyncio.Task[None]] = set()

    # -- life ------------------------------------------------------------------

    async def start(self) -> None:
        if recent_logs() is None:
            # In process, without setup_logging: logs.recent shows the gateway's own records.
            self._own_logs = install_recent_logs(logging.getLogger("gateway"))
        sip, media = self.config.sip, self.config.media
        bind_ip = media.address or sip.listen

        async def open_media() -> RtpSession:
            return await RtpSession.open(
                bind_ip,
                self.ports,
                self.clock,
                timeout=media.rtp_timeout,
                jitter_ms=media.jitter_buffer_ms,
            )

        self.ua = UserAgent(
            listen=(sip.listen, sip.port),
            user_agent=sip.user_agent,
            open_media=open_media,
            rate_limit=sip.rate_limit,
            block_user_agents=list(sip.block_user_agents),
            public_address=sip.public_address.host if sip.public_address else "",
            media_address=media.address,
            echo_extension=self.config.echo.extension,
            echo_sources=SourceList(list(self.config.echo.allow)),
            ptime=media.ptime,
            rtp_timeout=media.rtp_timeout,
            tcp=sip.tcp or _needs_tcp(self.config.lines),
        )
        for line_config in _enabled(self.config.lines):
            self.lines[line_config.name] = self._line_context(line_config)
        self.ua.lines = self.lines  # the same dict: reload changes it in place
        self._serve_atas()
        self.ua.on_incoming_call = self._on_incoming
        await self.ua.start()
        for line_config in _enabled(self.config.lines):
            if isinstance(line_config, ProviderLineConfig):
                await self._start_provider(line_config)
        self._spawn(self._housekeeping())
        if self.handset is not None:
            self.handset.start()  # a device that cannot be opened is logged, never fatal
        self.manager.start()
        try:
            await self.control.start()
        except Exception as exc:  # calls still work without the web UI's socket
            log.error("control API not available: %s", exc)
        if self.simulation is not None:
            await self.simulation.start()
        await self.telegram.start()
        self.panel.start()  # the LED self-test runs in a task of its own
        log.info("gateway started with %d line(s)", len(self.lines))

    async def stop(self) -> None:
        await self.panel.stop()
        await self.control.stop()
        await self.manager.stop()
        if self.handset is not None:
            self.handset.stop()
        await self.telegram.stop()
        if self.simulation is not None:
            await self.simulation.stop()
        for registration in self.registrations.values():
            await registration.stop()
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        if self.ua is not None:
            await self.ua.stop()
        await self.clock.stop()
        log.info("gateway stopped")
        if self._own_logs is not None:
            remove_recent_logs(self._own_logs)
            self._own_logs = None

    def request_restart(self) -> None:
        """Stop and start again through :attr:`on_restart` (control method ``gateway.restart``).

        It runs a moment later, so the answer to the request leaves first.
        Calls in progress are ended by the stop.  **Raises** ``RuntimeError``
        when no restart action is set (the gateway runs in another program).
        """
        action = self.on_restart
        if action is None:
            raise RuntimeError(
                "the gateway cannot restart itself here (not run as python -m gateway)"
            )
        log.warning("restart requested: calls in progress will be ended")
        asyncio.get_running_loop().call_later(RESTART_DELAY, action)

    def _gateway_username(self) -> str:
        user = self.telegram.account.user
        return user.username if user is not None else ""

    def _spawn(self, coro: object) -> None:
        task: asyncio.Task[None] = asyncio.get_running_loop().create_task(coro)  # type: ignore[arg-type]
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    # -- lines -------------------------------------------------------------------

    def _line_context(self, config: ProviderLineConfig | AtaLineConfig) -> LineContext:
        line = LineContext(
            name=config.name,
            kind=config.kind,
            codecs=tuple(config.codecs),
            dtmf=config.dtmf,
            incoming=config.incoming,
            username=config.username,
            sources=SourceList(list(config.allow)),
        )
        if isinstance(config, ProviderLineConfig):
            line.transport = config.transport
            line.domain = config.domain or config.registrar.host
            if config.password:
                line.digest = DigestClient(
                    Credentials(config.auth_username or config.username, config.password.reveal())
                )
            if config.outbound_proxy is not None:
                line.proxy = SipUri(
                    host=config.outbound_proxy.host,
                    port=config.outbound_proxy.port,
                    params={"lr": None},
                )
            else:
                line.proxy = SipUri(host=config.registrar.host, port=config.registrar.port)
        return line

    def _serve_atas(self) -> None:
        """Give the ATA registrar the enabled ATA lines that have credentials (or drop it)."""
        assert self.ua is not None
        atas = [
            c
            for c in _enabled(self.config.lines)
            if isinstance(c, AtaLineConfig) and c.username and c.password
        ]
        accounts = [
            AtaAccount(
                self.lines[c.name], c.username, c.password.reveal(), SourceList(list(c.allow))
            )
            for c in atas
        ]
        if not accounts:
            self.registrar = None
            self.ua.on_register = None
            self.ua.authenticate_invite = None
            return
        # One registrar serves every ATA line; it challenges with the union of
        # their algorithms, in the order the lines list them.
        algorithms = tuple(dict.fromkeys(a for c in atas for a in c.auth_algorithms))
        if self.registrar is None:
            self.registrar = Registrar(
                accounts, user_agent=self.config.sip.user_agent, algorithms=algorithms
            )
        else:
            self.registrar.set_accounts(accounts, algorithms)
        self.ua.on_register = self.registrar.handle_register
        self.ua.authenticate_invite = self.registrar.authenticate_invite

    async def _start_provider(self, config: ProviderLineConfig) -> None:
        line = self.lines[config.name]
        await self._refresh_sources(config)
        if not config.register:
            return
        assert self.ua is not None
        registration = Registration(
            self.ua,
            line,
            registrar=SipUri(host=config.registrar.host, port=config.registrar.port),
            aor=SipUri(host=line.domain, user=config.username),
            expires=config.expires,
            keepalive=float(config.keepalive),
        )
        self.registrations[config.name] = registration
        registration.start()

    async def _refresh_sources(self, config: ProviderLineConfig) -> None:
        """The provider may call us from its registrar's and proxy's addresses (and `allow`).

        With SRV records (RFC 3263) that is every server they name.
        """
        assert self.ua is not None
        line = self.lines[config.name]
        peers = [config.registrar]
        if config.outbound_proxy is not None:
            peers.append(config.outbound_proxy)
        addresses: list[str] = []
        for peer in peers:
            found = await self.ua.locator.locate(peer.host, peer.port, config.transport)
            if not found:
                log.warning("line %s: cannot resolve %s", config.name, peer.host)
            addresses += [ip for ip, _port in found]
        line.sources = SourceList(list(config.allow) + parse_networks(sorted(set(addresses))))

    async def _housekeeping(self) -> None:
        while True:
            await asyncio.sleep(SOURCE_REFRESH)
            if self.registrar is not None:
                self.registrar.expire()
            if self.ua is not None:
                self.ua.forget_resolved()
            for config in self.config.lines:
                if isinstance(config, ProviderLineConfig) and config.name in self.lines:
                    await self._refresh_sources(config)

    def line_status(self, name: str) -> LineStatus:
        line = self.lines[name]
        registration = self.registrations.get(name)
        if registration is not None:
            status = registration.status
            return LineStatus(
                name,
                line.kind,
                status.state.value,
                status.last_error,
                status.public_address,
                status.registered_until,
            )
        if line.kind == "ata" and self.registrar is not None:
            binding = self.registrar.binding(name)
            if binding is not None:
                return LineStatus(
                    name,
                    line.kind,
                    RegistrationState.REGISTERED.value,
                    registered_until=binding.expires_at,
                )
        return LineStatus(name, line.kind, "ready")

    async def retry_line(self, name: str) -> LineStatus:
        """Register a provider line again now, without waiting for its back-off.

        **Raises** ``KeyError`` for an unknown or disabled line, ``ValueError``
        for an ATA line (the ATA registers itself; nothing here can make it).
        """
        config = self.config.line(name)
        if config is None or name not in self.lines:
            raise KeyError(name)
        if isinstance(config, AtaLineConfig):
            raise ValueError(
                f"line {name} is an ATA line: the ATA registers itself; restart the ATA or"
                " check its SIP account settings (server, username, password)"
            )
        await self._refresh_sources(config)  # its addresses may have changed too
        registration = self.registrations.get(name)
        if registration is not None:
            log.info("line %s: registering again now (retry)", name)
            registration.refresh_now()
        return self.line_status(name)

    # -- settings ------------------------------------------------------------------

    async def reload(self) -> ReloadResult:
        """Re-read :attr:`config_path` and apply what can change while running.

        Nothing changes when the file is invalid.  **Raises**
        :class:`~gateway.errors.ConfigError` (:class:`~gateway.config.ConfigInvalid`
        with every problem), or ``RuntimeError`` without a settings file.
        """
        if self.config_path is None or self.ua is None:
            raise RuntimeError("the gateway was not started from a settings file")
        async with self._reload_lock:
            new = load_config(self.config_path)
            old = self.config
            restart_needed = _restart_needed(old, new)
            # What runs: the new file, except the parts only a restart applies.
            self.config = replace(
                new,
                gateway=replace(old.gateway, log_level=new.gateway.log_level),
                sip=old.sip,
                media=old.media,
                telegram=replace(
                    old.telegram,
                    ring_timeout=new.telegram.ring_timeout,
                    api_id=new.telegram.api_id,
                    api_hash=new.telegram.api_hash,
                    bot_token=new.telegram.bot_token,
                ),
                simulation=old.simulation,
                leds=old.leds,
                button=old.button,
                handset=old.handset,
                webui=old.webui,
            )
            applied = await self._apply_lines(old, self.config)
            applied += self._apply_settings(old, self.config)
            if restart_needed:
                log.warning("settings need a restart to apply: %s", ", ".join(restart_needed))
            log.info("settings reloaded: %s", ", ".join(applied) or "nothing changed")
            lines = [self.line_status(name) for name in self.lines]
            return ReloadResult(applied, restart_needed, lines)

    async def _apply_lines(self, old: Config, new: Config) -> list[str]:
        assert self.ua is not None and self.ua.transport is not None
        before = {c.name: c for c in _enabled(old.lines)}
        after = {c.name: c for c in _enabled(new.lines)}
        applied: list[str] = []
        fresh: set[str] = set()  # lines that get a new context (and registration)
        for name in [n for n in before if n not in after]:
            await self._stop_line(name)
            applied.append(f"lines.{name}: {'disabled' if new.line(name) else 'removed'}")
        for name, config in after.items():
            previous = before.get(name)
            if previous is None:
                fresh.add(name)
                applied.append(f"lines.{name}: {'enabled' if old.line(name) else 'added'}")
            elif previous == config:
                continue
            elif _same_but_live_keys(previous, config):
                self.lines[name].incoming = config.incoming  # read when a call arrives
                applied += [
                    f"lines.{name}.{key}"
                    for key in _LIVE_LINE_KEYS
                    if getattr(previous, key) != getattr(config, key)
                ]
            else:
                # Calls in progress keep the old context; new ones get the new line.
                await self._stop_line(name)
                fresh.add(name)
                applied.append(f"lines.{name}: restarted")
        contexts = {
            name: self.lines[name] if name not in fresh else self._line_context(config)
            for name, config in after.items()
        }
        self.lines.clear()  # in place: the UA, the call layer and onboarding share it
        self.lines.update(contexts)
        if _needs_tcp(new.lines) and not self.ua.tcp:
            try:
                await self.ua.transport.listen_tcp()
                self.ua.tcp = True
            except OSError as exc:
                log.error("cannot listen for SIP over TCP: %s", exc)
        self._serve_atas()
        for name, config in after.items():
            if name in fresh and isinstance(config, ProviderLineConfig):
                await self._start_provider(config)
        return applied

    async def _stop_line(self, name: str) -> None:
        registration = self.registrations.pop(name, None)
        if registration is not None:
            await registration.stop()  # unregisters with the line's old account

    def _apply_settings(self, old: Config, new: Config) -> list[str]:
        """The settings outside the lines that apply while running."""
        assert self.ua is not None
        applied: list[str] = []
        if new.echo != old.echo:
            self.ua.echo_extension = new.echo.extension
            self.ua.echo_sources = SourceList(list(new.echo.allow))
            applied += [f"echo.{f}" for f in _changed(old.echo, new.echo)]
        if new.telegram.ring_timeout != old.telegram.ring_timeout:
            settings = replace(
                self.telegram.call_settings, ring_timeout=float(new.telegram.ring_timeout)
            )
            self.telegram.call_settings = settings
            if self.telegram.calls is not None:
                self.telegram.calls.settings = settings
            applied.append("telegram.ring_timeout")
        if new.calls != old.calls:
            applied += [f"calls.{f}" for f in _changed(old.calls, new.calls)]
        if new.gateway.log_level != old.gateway.log_level:
            logging.getLogger().setLevel(LEVELS[new.gateway.log_level])
            applied.append("gateway.log_level")
        # Dial plans, no-answer replies and the ring time of the call layer.
        self.manager.configure(new)
        return applied

    # -- calls -------------------------------------------------------------------

    def active_calls(self) -> list[SipCall]:
        return list(self.ua.calls.values()) if self.ua is not None else []

    async def dial(self, line_name: str, target: str) -> OutgoingCall:
        """Call ``target`` (a number, a user, or a full sip: URI) through a line."""
        assert self.ua is not None
        line = self.lines.get(line_name)
        if line is None:
            raise KeyError(f"no such line: {line_name}")
        to_uri: SipUri | None = None
        if target.startswith(("sip:", "sips:")):
            uri = SipUri.parse(target)
        elif line.kind == "provider":
            uri = SipUri(host=line.domain, user=target)
        elif line.ata_target is not None:
            # A registered ATA is reached at its Contact (RFC 3261 §10.3 retargeting);
            # the number it should ring or dial goes in To.
            uri = line.ata_target
            to_uri = SipUri(host=line.ata_target.host, port=line.ata_target.port, user=target)
        else:
            networks = line.sources.networks
            if not networks:
                raise ConnectionError(
                    f"line {line_name}: the ATA is not registered and has no address"
                )
            uri = SipUri(host=str(networks[0].network_address), user=target)
        from_user = line.username or "linegram"
        from_addr = Address(uri=SipUri(host=line.domain or self.ua.listen[0], user=from_user))
        call = await self.ua.dial(line, uri, from_addr, to_uri)
        self._log_call(call)
        return call

    def _on_incoming(self, call: IncomingCall) -> None:
        self._log_call(call)
        echo = self.config.echo.extension
        if (echo and call.dialed == echo) or call.line.incoming == "echo":
            self._spawn(self._answer_echo(call))
        elif call.line.incoming == "members" and self.on_member_call is not None:
            self.on_member_call(call)
        elif call.line.incoming == "reject":
            call.reject(603, "Decline")
        else:
            call.reject(480, "Temporarily Unavailable")

    async def _answer_echo(self, call: IncomingCall) -> None:
        call.ring()
        await asyncio.sleep(ECHO_ANSWER_DELAY)
        if call.state is CallState.ENDED or call.media is None:
            return
        echo = EchoTest(call.media)
        call.on_dtmf = lambda digit, ms: log.info("echo: dtmf digit=%s duration=%d", digit, ms)
        call.answer()
        call.on_state.append(lambda c: echo.stop() if c.state is CallState.ENDED else None)

    # -- call log ------------------------------------------------------------------

    def _log_call(self, call: SipCall) -> None:
        try:
            row = self.store.call_started(
                call.direction,
                call.line.name,
                str(call.remote.uri),
                call.remote_number,
                call.remote_name,
                getattr(call, "dialed", "") or "",
                call.started_at,
            )
        except Exception:
            log.exception("call log: cannot record call %s", call.id)
            return
        self._call_rows[call.id] = row
        call.on_state.append(self._on_call_state)

    def call_row(self, call: SipCall) -> int | None:
        """The call log's id for *call* while it is in progress."""
        return self._call_rows.get(call.id)

    def set_outcome(self, call: SipCall, outcome: Outcome) -> None:
        """Log *outcome* when *call* ends, whatever its SIP end reason says."""
        self._outcomes[call.id] = outcome

    def _on_call_state(self, call: SipCall) -> None:
        row = self._call_rows.get(call.id)
        if row is None:
            return
        try:
            if call.state is CallState.UP and call.answered_at is not None:
                self.store.call_answered(row, call.answered_at, call.codec)
            elif call.state is CallState.ENDED:
                outcome = self._outcomes.pop(call.id, None) or _outcome(call)
                self.store.call_ended(row, call.ended_at or 0.0, outcome, str(call.end_reason))
                self._call_rows.pop(call.id, None)
        except Exception:
            log.exception("call log: cannot update call %s", call.id)


def _enabled(lines: Iterable[LineConfig]) -> Iterator[LineConfig]:
    return (line for line in lines if line.enabled)


def _needs_tcp(lines: Iterable[LineConfig]) -> bool:
    """A provider reached over TCP may call back over TCP too."""
    return any(isinstance(c, ProviderLineConfig) and c.transport == "tcp" for c in _enabled(lines))


def _same_but_live_keys(old: LineConfig, new: LineConfig) -> bool:
    if type(old) is not type(new):
        return False
    live = {key: getattr(new, key) for key in _LIVE_LINE_KEYS}
    return replace(old, **live) == new


def _changed(old: Any, new: Any) -> list[str]:
    """Names of the fields that differ between two dataclasses of one type."""
    return [f.name for f in fields(old) if getattr(old, f.name) != getattr(new, f.name)]


def _restart_needed(old: Config, new: Config) -> list[str]:
    """Dotted keys that differ between *old* and *new* but are read only at start."""
    keys = [
        f"{section}.{name}"
        for section in _RESTART_SECTIONS
        for name in _changed(getattr(old, section), getattr(new, section))
    ]
    return [key for key in keys if key not in _LIVE_KEYS]


def _outcome(call: SipCall) -> Outcome:
    if call.answered_at is not None:
        return "answered"
    reason = call.end_reason
    if reason is EndReason.BUSY:
        return "busy"
    if reason in (EndReason.REJECTED, EndReason.DECLINED):
        return "rejected"
    if reason is EndReason.CANCELLED:
        return "missed" if call.direction == "in" else "cancelled"
    if reason in (EndReason.NO_ANSWER, EndReason.LOCAL_HANGUP):
        return "missed" if call.direction == "in" else "cancelled"
    return "failed"

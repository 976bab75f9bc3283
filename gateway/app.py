"""The gateway process: lines, SIP user agent, media and call log, started and stopped together.

:class:`Gateway` turns a validated :class:`~gateway.config.Config` into
running parts: one :class:`~gateway.sip.useragent.UserAgent` on the SIP port,
a :class:`~gateway.sip.registration.Registration` per provider line, the ATA
registrar, the shared media clock and RTP port pool.  Incoming calls are
routed per line (the echo test, a rejection, or the members of the line once
the call layer joins them); every call is written to the call log.  The
Telegram side (:class:`~gateway.telegram.service.TelegramSide`) starts with it.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from gateway.calls.api import gateway_methods
from gateway.calls.manager import CallManager
from gateway.calls.onboarding import Onboarding
from gateway.config import AtaLineConfig, Config, ProviderLineConfig
from gateway.control import ControlServer
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


@dataclass
class LineStatus:
    name: str
    kind: str
    state: str  # unregistered | registering | registered | failed | ready
    last_error: str | None = None
    public_address: tuple[str, int] | None = None
    registered_until: float | None = None


class Gateway:
    def __init__(self, config: Config, store: Store, config_path: Path | None = None) -> None:
        self.config = config
        self.store = store
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
        )
        self.manager = CallManager(self, self.onboarding)
        # The web UI and the LEDs talk to the gateway through this socket (docs/control-api.md).
        self.control = ControlServer(Path(config.data_dir) / CONTROL_SOCKET, gateway_methods(self))
        self._tasks: set[asyncio.Task[None]] = set()

    # -- life ------------------------------------------------------------------

    async def start(self) -> None:
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
            # A provider reached over TCP may call back over TCP too.
            tcp=sip.tcp
            or any(
                isinstance(c, ProviderLineConfig) and c.enabled and c.transport == "tcp"
                for c in self.config.lines
            ),
        )
        accounts: list[AtaAccount] = []
        for line_config in self.config.lines:
            if not line_config.enabled:
                continue
            line = self._line_context(line_config)
            self.lines[line.name] = line
            if (
                isinstance(line_config, AtaLineConfig)
                and line_config.username
                and line_config.password
            ):
                accounts.append(
                    AtaAccount(
                        line,
                        line_config.username,
                        line_config.password.reveal(),
                        SourceList(list(line.sources.networks)),
                    )
                )
        self.ua.lines = self.lines
        if accounts:
            # One registrar serves every ATA line; it challenges with the
            # union of their algorithms, in the order the lines list them.
            algorithms = tuple(
                dict.fromkeys(
                    a
                    for c in self.config.lines
                    if isinstance(c, AtaLineConfig) and c.enabled and c.username
                    for a in c.auth_algorithms
                )
            )
            self.registrar = Registrar(accounts, user_agent=sip.user_agent, algorithms=algorithms)
            self.ua.on_register = self.registrar.handle_register
            self.ua.authenticate_invite = self.registrar.authenticate_invite
        self.ua.on_incoming_call = self._on_incoming
        await self.ua.start()
        for line_config in self.config.lines:
            if isinstance(line_config, ProviderLineConfig) and line_config.enabled:
                await self._start_provider(line_config)
        self._spawn(self._housekeeping())
        self.manager.start()
        try:
            await self.control.start()
        except Exception as exc:  # calls still work without the web UI's socket
            log.error("control API not available: %s", exc)
        if self.simulation is not None:
            await self.simulation.start()
        await self.telegram.start()
        log.info("gateway started with %d line(s)", len(self.lines))

    async def stop(self) -> None:
        await self.control.stop()
        await self.manager.stop()
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

"""The user agent core: everything above the transaction layer (RFC 3261 §8, §12-§16).

It owns the transport, screens sources before a transaction exists, routes
each new request (INVITE to a line, REGISTER to the registrar, in-dialog
requests to their call, OPTIONS answered here), and gives calls what they
need from the outside: addresses to advertise, media sessions, and requests
sent with digest authentication.

Knows nothing of Telegram: a new :class:`IncomingCall` is handed to
``on_incoming_call``, which the gateway's call layer sets.
"""

from __future__ import annotations

import asyncio
import logging
import socket
from collections.abc import Awaitable, Callable, Coroutine
from typing import Any

from gateway.errors import DigestError, SipParseError, TransactionTimeout
from gateway.media.session import RtpSession
from gateway.sip.call import ALLOW, EndReason, IncomingCall, OutgoingCall, SipCall
from gateway.sip.digest import choose_challenge
from gateway.sip.line import LineContext
from gateway.sip.locate import Locator
from gateway.sip.message import (
    Address,
    SipRequest,
    SipResponse,
    Via,
    make_response,
    new_branch,
    new_tag,
)
from gateway.sip.security import RateLimiter, ScannerFilter, SourceList, is_ip
from gateway.sip.transaction import (
    AckNotReceived,
    AckReceived,
    ClientTransaction,
    Event,
    RequestReceived,
    ResponseReceived,
    ServerTransaction,
    TransactionTimedOut,
)
from gateway.sip.transport import SipTransport
from gateway.sip.uri import SipUri

log = logging.getLogger(__name__)

HostPort = tuple[str, int]


class UserAgent:
    def __init__(
        self,
        *,
        listen: HostPort,
        user_agent: str,
        open_media: Callable[[], Awaitable[RtpSession]],
        rate_limit: float,
        block_user_agents: list[str],
        public_address: str = "",
        media_address: str = "",
        echo_extension: str = "",
        echo_sources: SourceList | None = None,
        ptime: int = 20,
        rtp_timeout: float = 30.0,
        tcp: bool = False,
    ) -> None:
        self.tcp = tcp
        self.listen = listen
        self.user_agent = user_agent
        self._open_media = open_media
        self.rate = RateLimiter(rate_limit)
        self.scanners = ScannerFilter(block_user_agents)
        self.public_host = public_address
        self.media_host = media_address
        self.echo_extension = echo_extension
        self.echo_sources = echo_sources or SourceList()
        self.ptime = ptime
        self.rtp_timeout = rtp_timeout
        self.lines: dict[str, LineContext] = {}
        self.transport: SipTransport | None = None
        self.on_incoming_call: Callable[[IncomingCall], None] | None = None
        # Set by the registrar: (request, source) -> response, or None to drop.
        self.on_register: Callable[[SipRequest, HostPort], SipResponse | None] | None = None
        # Set by the registrar: authenticates an INVITE from an unknown source.
        self.authenticate_invite: (
            Callable[[SipRequest, HostPort], tuple[LineContext | None, SipResponse | None]] | None
        ) = None
        self.calls: dict[str, SipCall] = {}
        self._dialogs: dict[tuple[str, str], SipCall] = {}
        self._by_server_tx: dict[ServerTransaction, IncomingCall] = {}
        self._invite_owner: dict[ClientTransaction, OutgoingCall] = {}
        self._resolved: dict[str, str] = {}  # host name -> the address in use
        self._srv_port: dict[str, int] = {}  # host name -> port from its SRV record
        self._unreachable: dict[str, dict[HostPort, float]] = {}  # host -> server -> until
        self.locator = Locator()
        self._tasks: set[asyncio.Task[Any]] = set()
        self._loop = asyncio.get_event_loop()

    # -- life ------------------------------------------------------------------

    async def start(self) -> None:
        self._loop = asyncio.get_running_loop()
        self.transport = await SipTransport.open(self.listen, self._on_event, screen=self._screen)
        self.listen = self.transport.local_address
        if self.tcp:
            await self.transport.listen_tcp()
        log.info("SIP listening on %s:%d/%s", *self.listen, "udp+tcp" if self.tcp else "udp")

    async def stop(self) -> None:
        for call in list(self.calls.values()):
            try:
                await asyncio.wait_for(call.hang_up(), 2.0)
            except (TimeoutError, Exception):
                log.info("call %s: no clean hang-up at shutdown", call.id)
        for task in list(self._tasks):
            task.cancel()
        if self._tasks:
            await asyncio.gather(*self._tasks, return_exceptions=True)
        if self.transport is not None:
            self.transport.close()

    def spawn(self, coro: Coroutine[Any, Any, Any]) -> asyncio.Task[Any]:
        """Run ``coro`` as a task the UA owns (kept referenced, failures logged)."""
        task = self._loop.create_task(coro)
        self._tasks.add(task)
        task.add_done_callback(self._task_done)
        return task

    def _task_done(self, task: asyncio.Task[Any]) -> None:
        self._tasks.discard(task)
        if not task.cancelled() and task.exception() is not None:
            log.error("task failed", exc_info=task.exception())

    # -- addresses -------------------------------------------------------------

    def _local_host_for(self, line: LineContext | None, peer_host: str | None) -> str:
        if line is not None and line.public_address is not None:
            return line.public_address[0]
        if self.public_host:
            return self.public_host
        host = self.listen[0]
        if host not in ("0.0.0.0", "::"):
            return host
        return local_ip_for(peer_host or "192.0.2.1", ipv6=host == "::")

    def _local_port_for(self, line: LineContext | None) -> int:
        if line is not None and line.public_address is not None:
            return line.public_address[1]
        return self.listen[1]

    def via_for(
        self,
        line: LineContext | None,
        uri: SipUri,
        branch: str | None = None,
        transport: str | None = None,
    ) -> Via:
        host = self._local_host_for(line, self._resolved.get(uri.host, uri.host))
        params: dict[str, str | None] = {"rport": None}
        if branch:
            params["branch"] = branch
        name = self.transport_for(line, uri, transport).upper()
        return Via(name, _bracket(host), self._local_port_for(line), params)

    def transport_for(
        self, line: LineContext | None, uri: SipUri, transport: str | None = None
    ) -> str:
        """How a request travels: the URI transport parameter, else the call, else the line."""
        param = (uri.params.get("transport") or "").lower()
        if param in ("tcp", "udp"):
            return param
        if transport:
            return transport.lower()
        return line.transport if line is not None else "udp"

    def contact_for(
        self, line: LineContext | None, uri: SipUri, transport: str | None = None
    ) -> Address:
        host = self._local_host_for(line, self._resolved.get(uri.host, uri.host))
        user = (line.username if line is not None else "") or "linegram"
        params: dict[str, str | None] = {}
        if self.transport_for(line, uri, transport) == "tcp":
            params["transport"] = "tcp"
        contact = SipUri(
            host=_bracket(host), user=user, port=self._local_port_for(line), params=params
        )
        return Address(uri=contact)

    def media_address_for(self, line: LineContext | None, uri: SipUri) -> str:
        if self.media_host:
            return self.media_host
        return self._local_host_for(line, self._resolved.get(uri.host, uri.host)).strip("[]")

    def next_hop_for(self, line: LineContext, target: SipUri) -> SipUri:
        if line.proxy is not None:
            return line.proxy
        return target

    def routes_for(self, line: LineContext) -> list[Address]:
        if line.proxy is not None and "lr" in line.proxy.params:
            return [Address(uri=line.proxy)]
        return []

    async def resolve(self, uri: SipUri, line: LineContext | None = None) -> HostPort:
        """Where to send a request for ``uri``: SRV first for a bare name (RFC 3263).

        The first server that is not marked unreachable is used and
        remembered; addresses of the other IP family than our socket's are
        skipped.  Answers are refreshed when the gateway re-resolves its
        lines' peers, or when :meth:`mark_unreachable` drops one.
        """
        host, port = uri.host_port()
        if is_ip(host):
            return host, port
        if host not in self._resolved:
            transport = self.transport_for(line, uri)
            found = await self.locator.locate(host, uri.port, transport)
            ipv6 = ":" in self.listen[0]
            found = [t for t in found if (":" in t[0]) == ipv6] or found
            if not found:
                raise OSError(f"cannot resolve {host}")
            now = self._loop.time()
            bad = {t for t, until in self._unreachable.get(host, {}).items() if until > now}
            target = next((t for t in found if t not in bad), found[0])
            self._resolved[host] = target[0]
            if uri.port is None:
                self._srv_port[host] = target[1]
        return self._resolved[host], uri.port or self._srv_port.get(host, port)

    def mark_unreachable(self, uri: SipUri, seconds: float = 300.0) -> None:
        """The server in use for ``uri`` did not answer: try the next one (RFC 3263 §4.3)."""
        host = uri.host_port()[0]
        if host not in self._resolved:
            return
        target = self.resolve_cached(uri)
        self._unreachable.setdefault(host, {})[target] = self._loop.time() + seconds
        self._resolved.pop(host, None)
        self._srv_port.pop(host, None)

    def forget_resolved(self) -> None:
        """Drop remembered DNS answers (the next request looks them up again)."""
        self._resolved.clear()
        self._srv_port.clear()

    def resolve_cached(self, uri: SipUri) -> HostPort:
        host, port = uri.host_port()
        return self._resolved.get(host, host), uri.port or self._srv_port.get(host, port)

    async def open_media(self) -> RtpSession:
        return await self._open_media()

    # -- sending ---------------------------------------------------------------

    def respond(
        self,
        tx: ServerTransaction,
        request: SipRequest,
        status: int,
        reason: str | None = None,
        *,
        to_tag: str | None = None,
        headers: list[tuple[str, str]] | None = None,
        body: bytes = b"",
        content_type: str | None = None,
    ) -> SipResponse:
        extra = list(headers or [])
        extra.append(("User-Agent", self.user_agent))
        if content_type and body:
            extra.append(("Content-Type", content_type))
        # A 100 never carries a To tag (RFC 3261 §8.2.6.2).
        response = make_response(
            request,
            status,
            reason,
            to_tag=to_tag if status > 100 else None,
            headers=extra,
            body=body,
        )
        assert self.transport is not None
        self.transport.send_response(tx, response)
        return response

    def send_invite(self, call: OutgoingCall) -> ClientTransaction:
        assert self.transport is not None and call.invite is not None
        tx = self.transport.send_request(call.invite, self.resolve_cached(call.next_hop))
        self._invite_owner[tx] = call
        return tx

    def cancel(self, tx: ClientTransaction | None) -> None:
        if tx is not None and self.transport is not None:
            self.transport.cancel(tx)

    def send_stateless_to(self, message: SipRequest | SipResponse, next_hop: SipUri) -> None:
        assert self.transport is not None
        self.transport.send_stateless(message, self.resolve_cached(next_hop))

    async def request_with_auth(
        self,
        line: LineContext | None,
        request: SipRequest,
        next_hop: SipUri,
        timeout: float | None = None,
    ) -> SipResponse | None:
        """Send a non-dialog-creating request; answer one digest challenge. None on timeout."""
        assert self.transport is not None
        destination = await self.resolve(next_hop, line)
        try:
            response = await self.transport.request(request, destination, timeout=timeout)
            if response.status in (401, 407) and line is not None and line.digest is not None:
                header = "WWW-Authenticate" if response.status == 401 else "Proxy-Authenticate"
                challenge = choose_challenge(response.headers.get_all(header))
                value = line.digest.authorize(
                    challenge, request.method, str(request.uri), request.body
                )
                retry = _next_attempt(request)
                retry.headers.set(
                    "Authorization" if response.status == 401 else "Proxy-Authorization", value
                )
                for call in self.calls.values():
                    if call.dialog is not None and call.dialog.call_id == request.call_id:
                        call.dialog.local_seq = retry.cseq.number
                response = await self.transport.request(retry, destination, timeout=timeout)
            return response
        except (TransactionTimeout, TimeoutError):
            return None
        except DigestError as exc:
            log.warning("%s: cannot answer challenge: %s", request.method, exc)
            return None

    # -- calls -------------------------------------------------------------------

    async def dial(
        self, line: LineContext, target: SipUri, from_addr: Address, to_uri: SipUri | None = None
    ) -> OutgoingCall:
        await self.resolve(self.next_hop_for(line, target), line)
        call = OutgoingCall(self, line, target, from_addr, to_uri)
        self.calls[call.id] = call
        try:
            await call.start()
        except Exception:
            call._finish(EndReason.FAILED)
            raise
        return call

    def bind_dialog(self, call: SipCall) -> None:
        assert call.dialog is not None
        self._dialogs[(call.dialog.call_id, call.dialog.local_tag)] = call

    def forget(self, call: SipCall) -> None:
        """The call ended: drop it from the active set.

        Transaction and dialog entries stay a while so that a late 2xx can
        still be ACKed and answered with BYE, and a crossing BYE gets 200.
        """
        self.calls.pop(call.id, None)

        def drop() -> None:
            if call.dialog is not None:
                self._dialogs.pop((call.dialog.call_id, call.dialog.local_tag), None)
            for server_tx in [k for k, v in self._by_server_tx.items() if v is call]:
                del self._by_server_tx[server_tx]
            for client_tx in [k for k, v in self._invite_owner.items() if v is call]:
                del self._invite_owner[client_tx]

        self._loop.call_later(40.0, drop)

    # -- screening ------------------------------------------------------------

    def _line_for_source(self, host: str) -> LineContext | None:
        for line in self.lines.values():
            if host in line.sources:
                return line
        return None

    def _known_dialog(self, request: SipRequest, host: str) -> bool:
        """An in-dialog request from the party of a call in progress.

        A call keeps the line it started on; after the settings were reloaded
        that line may be gone from :attr:`lines` (or replaced), yet its party
        must still be able to hang up or re-INVITE.
        """
        try:
            tag = request.to_addr.tag
            call = self._dialogs.get((request.call_id, tag)) if tag else None
        except SipParseError:
            return False
        if call is None:
            return False
        if isinstance(call, IncomingCall) and call.source[0] == host:
            return True
        return host in call.line.sources

    def _screen(self, message: SipRequest | SipResponse, source: HostPort) -> bool:
        host = source[0]
        if not self.rate.allow(host, self._loop.time()):
            return False
        if isinstance(message, SipResponse):
            return True  # only matching transactions will take it
        if self.scanners.is_scanner(message.headers.get("User-Agent")):
            return False
        if self._line_for_source(host) is not None or host in self.echo_sources:
            return True
        if self._known_dialog(message, host):
            return True
        # Unknown sources may only try to authenticate (the ATA registrar's digest).
        return self.on_register is not None and message.method in (
            "REGISTER",
            "INVITE",
            "ACK",
            "CANCEL",
            "BYE",
        )

    # -- events ----------------------------------------------------------------

    def _on_event(self, event: Event) -> None:
        if isinstance(event, RequestReceived):
            self._on_request(event)
        elif isinstance(event, ResponseReceived):
            call = self._invite_owner.get(event.transaction)
            if call is not None:
                call.on_response(event.response, event.transaction)
        elif isinstance(event, AckReceived):
            self._on_ack(event.request)
        elif isinstance(event, TransactionTimedOut):
            owner = self._invite_owner.get(event.transaction)  # type: ignore[arg-type]
            if owner is not None:
                owner.on_timeout()
        elif isinstance(event, AckNotReceived):
            incoming = self._by_server_tx.get(event.transaction)
            if incoming is not None:
                incoming.on_ack_timeout()

    def _on_ack(self, request: SipRequest) -> None:
        try:
            key = (request.call_id, request.to_addr.tag or "")
        except SipParseError:
            return
        call = self._dialogs.get(key)
        if call is not None:
            call.handle_ack(request)

    def _on_request(self, event: RequestReceived) -> None:
        request, source, tx = event.request, event.source, event.transaction
        method = request.method
        if method == "CANCEL":
            self._on_cancel(event)
            return
        required = [o.strip() for o in request.headers.get_list("Require") if o.strip()]
        if required and method != "ACK":
            # No extension is supported (100rel, timer...): RFC 3261 §8.2.2.3.
            self.respond(tx, request, 420, headers=[("Unsupported", ", ".join(required))])
            return
        to_tag = request.to_addr.tag
        if to_tag:
            call = self._dialogs.get((request.call_id, to_tag))
            if call is None:
                self.respond(tx, request, 481)
            else:
                call.handle_in_dialog(request, tx)
            return
        if method == "INVITE":
            self._on_invite(request, source, tx)
        elif method == "REGISTER":
            response = self.on_register(request, source) if self.on_register else None
            if response is None:
                self.respond(tx, request, 405, headers=[("Allow", ALLOW)])
            else:
                assert self.transport is not None
                self.transport.send_response(tx, response)
        elif method == "OPTIONS":
            self.respond(
                tx,
                request,
                200,
                headers=[("Allow", ALLOW), ("Accept", "application/sdp, application/dtmf-relay")],
            )
        elif method in ("BYE", "INFO", "UPDATE", "PRACK"):
            self.respond(tx, request, 481)
        else:
            self.respond(tx, request, 405, headers=[("Allow", ALLOW)])

    def _on_cancel(self, event: RequestReceived) -> None:
        request, tx = event.request, event.transaction
        cancelled = getattr(event, "cancelled", None)
        if cancelled is None:
            self.respond(tx, request, 481)
            return
        self.respond(tx, request, 200)
        call = self._by_server_tx.get(cancelled)
        if call is not None:
            call.on_cancel()

    def _on_invite(self, request: SipRequest, source: HostPort, tx: ServerTransaction) -> None:
        host = source[0]
        line = self._line_for_source(host)
        if line is None and host not in self.echo_sources:
            if self.authenticate_invite is None:
                return
            line, challenge = self.authenticate_invite(request, source)
            if challenge is not None:
                assert self.transport is not None
                self.transport.send_response(tx, challenge)
                return
            if line is None:
                return
        if not request.headers.get_list("Contact"):
            # Without a Contact there is no target for BYE or re-INVITE (§8.1.1.8).
            self.respond(tx, request, 400, "Missing Contact", to_tag=new_tag())
            return
        if line is None:
            # An echo-test-only source: only the echo extension answers.
            if not self.echo_extension or request.uri.user != self.echo_extension:
                self.respond(tx, request, 404, to_tag=new_tag())
                return
            line = LineContext(name="echo", kind="echo", incoming="echo")
        self.respond(tx, request, 100)
        call = IncomingCall(self, line, request, tx, source)
        self.calls[call.id] = call
        self._by_server_tx[tx] = call
        log.info(
            "call %s: incoming on line=%s from=%s to=%s",
            call.id,
            line.name,
            call.remote.uri,
            request.uri.user,
        )
        self.spawn(self._setup_incoming(call))

    async def _setup_incoming(self, call: IncomingCall) -> None:
        try:
            status = await call.prepare()
        except Exception:
            log.exception("call %s: cannot set up media", call.id)
            call.reject(503, "Service Unavailable")
            return
        if status is not None:
            call.reject(status)
            return
        if call.state.value == "ended":
            return  # CANCEL arrived while we prepared
        if self.on_incoming_call is None:
            call.reject(480)
            return
        self.on_incoming_call(call)


def _next_attempt(request: SipRequest) -> SipRequest:
    """The same request with a new branch and CSeq + 1 (RFC 3261 §22.2)."""
    headers = request.headers.copy()
    via = Via.parse(headers.get_list("Via")[0])
    via.params["branch"] = new_branch()
    vias = headers.get_list("Via")
    headers.remove("Via")
    headers.add("Via", str(via))
    for value in vias[1:]:
        headers.add("Via", value)
    cseq = request.cseq
    headers.set("CSeq", f"{cseq.number + 1} {cseq.method}")
    return SipRequest(request.method, request.uri, headers, request.body)


def _bracket(host: str) -> str:
    return f"[{host}]" if ":" in host and not host.startswith("[") else host


def local_ip_for(peer: str, *, ipv6: bool = False) -> str:
    """The local address the kernel would use towards ``peer`` (no packet is sent).

    ``peer`` must be an address: a host name here would block the loop on DNS.
    """
    if not is_ip(peer):
        peer = "192.0.2.1"  # unresolved yet: the default route's address
    family = socket.AF_INET6 if ipv6 or ":" in peer else socket.AF_INET
    with socket.socket(family, socket.SOCK_DGRAM) as probe:
        try:
            probe.connect((peer.strip("[]"), 9))
            return str(probe.getsockname()[0])
        except OSError:
            return "::1" if family == socket.AF_INET6 else "127.0.0.1"


__all__ = ["LineContext", "UserAgent", "local_ip_for"]

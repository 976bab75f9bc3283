"""Registering a provider line (RFC 3261 §10, RFC 3581, RFC 5626 keep-alive).

One :class:`Registration` per provider line keeps the binding alive: it
REGISTERs, answers digest challenges (401 and 407, nonce refresh), honours
423 Min-Expires, refreshes before expiry, learns the public address the
provider sees from ``received``/``rport`` (and re-registers with it as the
Contact), backs off after failures, and sends CRLF keep-alives so a NAT
keeps the mapping the provider's INVITEs need.  Its status is what the
dashboard and the LEDs show.
"""

from __future__ import annotations

import asyncio
import enum
import logging
import random
import time
from collections.abc import Callable
from dataclasses import dataclass

from gateway.errors import DigestError, SipParseError
from gateway.sip.call import ALLOW
from gateway.sip.digest import Challenge, choose_challenge
from gateway.sip.line import LineContext
from gateway.sip.message import (
    Address,
    CSeq,
    Headers,
    SipRequest,
    SipResponse,
    new_branch,
    new_call_id,
    new_tag,
)
from gateway.sip.uri import SipUri
from gateway.sip.useragent import UserAgent, local_ip_for

log = logging.getLogger(__name__)

BACKOFF = (5.0, 15.0, 30.0, 60.0, 120.0, 300.0)  # seconds after 1, 2, 3... consecutive failures


class RegistrationState(enum.StrEnum):
    UNREGISTERED = "unregistered"
    REGISTERING = "registering"
    REGISTERED = "registered"
    FAILED = "failed"


@dataclass
class RegistrationStatus:
    state: RegistrationState = RegistrationState.UNREGISTERED
    last_error: str | None = None
    registered_until: float | None = None  # wall-clock time the binding expires
    expires: int | None = None  # seconds granted by the registrar
    public_address: tuple[str, int] | None = None
    failures: int = 0


def refresh_delay(expires: int) -> float:
    """When to refresh a binding granted for ``expires`` seconds.

    Half-way for short bindings, a minute early for long ones, so one lost
    REGISTER and its retransmissions (32 s) still fit before expiry.
    """
    return max(expires / 2, expires - 60.0)


def backoff_delay(failures: int, rng: random.Random | None = None) -> float:
    base = BACKOFF[min(failures, len(BACKOFF)) - 1] if failures > 0 else 0.0
    jitter = (rng or random).uniform(0.9, 1.1)
    return base * jitter


class Registration:
    def __init__(
        self,
        ua: UserAgent,
        line: LineContext,
        *,
        registrar: SipUri,
        aor: SipUri,
        expires: int,
        keepalive: float,
        request_timeout: float | None = None,
    ) -> None:
        self.ua = ua
        self.line = line
        self.registrar = registrar  # Request-URI: sip:domain-or-registrar
        self.aor = aor
        self.requested_expires = expires
        self.expires = expires
        self.keepalive = keepalive
        self.request_timeout = request_timeout
        self.status = RegistrationStatus()
        self.on_change: list[Callable[[RegistrationStatus], None]] = []
        self.register_count = 0
        self._call_id = new_call_id()
        self._tag = new_tag()
        self._cseq = random.randint(1, 10_000)
        self._task: asyncio.Task[None] | None = None
        self._keepalive_task: asyncio.Task[None] | None = None
        self._wake = asyncio.Event()
        self._local_ip: str | None = None
        self._challenge: tuple[str, Challenge] | None = None  # the last one answered

    # -- life ------------------------------------------------------------------

    def start(self) -> None:
        self._task = asyncio.get_running_loop().create_task(
            self._run(), name=f"register-{self.line.name}"
        )
        if self.keepalive > 0:
            self._keepalive_task = asyncio.get_running_loop().create_task(
                self._keepalive_loop(), name=f"keepalive-{self.line.name}"
            )

    async def stop(self, unregister: bool = True) -> None:
        for task in (self._task, self._keepalive_task):
            if task is not None:
                task.cancel()
        for task in (self._task, self._keepalive_task):
            if task is not None:
                try:
                    await task
                except asyncio.CancelledError:
                    pass
        if unregister and self.status.state is RegistrationState.REGISTERED:
            try:
                await asyncio.wait_for(self._register_once(expires=0), 2.0)
            except Exception as exc:  # best effort: the binding expires anyway
                log.info("line %s: unregister not confirmed: %s", self.line.name, exc)
        self._set(RegistrationState.UNREGISTERED, None)

    def refresh_now(self) -> None:
        """Re-register at once (network change, user pressed "retry")."""
        self._wake.set()

    # -- the loop ---------------------------------------------------------------

    async def _run(self) -> None:
        while True:
            self._wake.clear()
            delay: float
            try:
                granted = await self._register_once(expires=self.expires)
            except Exception as exc:  # never let the loop die: report and back off
                log.exception("line %s: registration error", self.line.name)
                granted = None
                self._fail(f"internal error: {exc}")
            if granted:
                delay = refresh_delay(granted)
            else:
                delay = backoff_delay(self.status.failures)
                log.info("line %s: next REGISTER attempt in %.0f s", self.line.name, delay)
            try:
                await asyncio.wait_for(self._wake.wait(), delay)
            except TimeoutError:
                pass

    async def _register_once(self, expires: int) -> int | None:
        """One REGISTER exchange (challenges, 423, Contact relearning); returns the expiry."""
        if expires and self.status.state is not RegistrationState.REGISTERED:
            self._set(RegistrationState.REGISTERING, self.status.last_error)
        # Refreshes answer the last challenge again (nc counts up), which
        # saves a round trip; a registrar that wants a new nonce says so.
        auth = self._reauthorize()
        preemptive = auth is not None
        attempts = 0
        relearned = False
        while attempts < 6:
            attempts += 1
            try:
                # Locate the registrar with the line's transport (SRV, RFC 3263)
                # first: the answer is remembered, and our Via and Contact are
                # chosen for the address it gives.
                await self.ua.resolve(self._next_hop(), self.line)
                request = self._build(expires, auth)
                self.register_count += 1
                response = await self.ua.request_with_auth(
                    None, request, self._next_hop(), self.request_timeout
                )
            except OSError as exc:
                self._fail(f"cannot reach registrar: {exc}")
                return None
            if response is None:
                # With several servers (SRV), the next attempt goes to another one.
                self.ua.mark_unreachable(self._next_hop())
                self._fail("no response from registrar")
                return None
            status = response.status
            if status in (401, 407):
                header = "WWW-Authenticate" if status == 401 else "Proxy-Authenticate"
                digest = self.line.digest
                if digest is None:
                    self._fail(f"{status} {response.reason}: the line has no password")
                    return None
                try:
                    challenge = choose_challenge(response.headers.get_all(header))
                except DigestError as exc:
                    self._fail(f"unusable challenge: {exc}")
                    return None
                if auth is not None and not preemptive and not digest.is_stale_retry(challenge):
                    self._challenge = None
                    self._fail(f"{status} {response.reason}: wrong username or password")
                    return None
                preemptive = False
                value = digest.authorize(challenge, "REGISTER", str(self.registrar))
                name = "Authorization" if status == 401 else "Proxy-Authorization"
                auth = (name, value)
                self._challenge = (name, challenge)
                continue
            if status == 423:
                minimum = response.headers.get_int("Min-Expires")
                if minimum is None or minimum <= self.expires:
                    self._fail("423 Interval Too Brief without a usable Min-Expires")
                    return None
                log.info("line %s: registrar wants expires >= %d", self.line.name, minimum)
                self.expires = minimum
                expires = minimum
                auth = self._reauthorize()  # a new request: nc must move on
                preemptive = auth is not None
                continue
            if 200 <= status < 300:
                if expires == 0:
                    return 0
                if not relearned and self._learn_public_address(response):
                    relearned = True
                    # Register again with the Contact the provider can reach.
                    auth = self._reauthorize()
                    preemptive = auth is not None
                    continue
                granted = self._granted(response, expires)
                self.status.expires = granted
                self.status.registered_until = time.time() + granted
                self.status.failures = 0
                self._set(RegistrationState.REGISTERED, None)
                log.info("line %s: registered expires=%d", self.line.name, granted)
                return granted
            self._fail(f"{status} {response.reason}")
            return None
        self._fail("too many authentication rounds")
        return None

    def _reauthorize(self) -> tuple[str, str] | None:
        """Credentials for a new REGISTER, answering the last challenge with the next nc."""
        if self._challenge is None or self.line.digest is None:
            return None
        header, challenge = self._challenge
        return header, self.line.digest.authorize(challenge, "REGISTER", str(self.registrar))

    def _next_hop(self) -> SipUri:
        return self.line.proxy or self.registrar

    def _build(self, expires: int, auth: tuple[str, str] | None) -> SipRequest:
        self._cseq += 1
        contact = self.ua.contact_for(self.line, self._next_hop())
        headers = Headers()
        headers.add("Via", str(self.ua.via_for(self.line, self._next_hop(), branch=new_branch())))
        headers.add("Max-Forwards", "70")
        headers.add("From", str(Address(uri=self.aor, params={"tag": self._tag})))
        headers.add("To", str(Address(uri=self.aor)))
        headers.add("Call-ID", self._call_id)
        headers.add("CSeq", str(CSeq(self._cseq, "REGISTER")))
        for route in self.ua.routes_for(self.line):
            headers.add("Route", str(route))
        headers.add("Contact", str(contact))
        headers.add("Expires", str(expires))
        headers.add("Allow", ALLOW)
        headers.add("User-Agent", self.ua.user_agent)
        if auth is not None:
            headers.add(*auth)
        self._contact = contact
        return SipRequest("REGISTER", self.registrar, headers)

    def _learn_public_address(self, response: SipResponse) -> bool:
        """Take ``received``/``rport`` from the 2xx; True if our Contact must change.

        Not over TCP: there the provider answers on our connection, and rport
        names that connection's ephemeral port, not a NAT mapping to publish.
        """
        if self.line.transport == "tcp":
            return False
        try:
            via = response.top_via
        except SipParseError:
            return False
        host = via.received
        port = via.rport
        if host is None and port is None:
            return False
        contact_uri = self._contact.uri
        seen = (host or contact_uri.host.strip("[]"), port or (contact_uri.port or 5060))
        if seen == (contact_uri.host.strip("[]"), contact_uri.port or 5060):
            return False
        if self.line.public_address == seen:
            return False
        log.info("line %s: provider sees us at %s:%d; using it as Contact", self.line.name, *seen)
        self.line.public_address = seen
        self.status.public_address = seen
        return True

    def _granted(self, response: SipResponse, asked: int) -> int:
        ours = self._contact.uri
        for value in response.headers.get_list("Contact"):
            try:
                address = Address.parse(value)
            except SipParseError:
                continue
            same = (address.uri.host, address.uri.port or 5060, address.uri.user) == (
                ours.host,
                ours.port or 5060,
                ours.user,
            )
            expires_param = address.params.get("expires")
            if same and expires_param and expires_param.isascii() and expires_param.isdigit():
                return max(int(expires_param), 1)
        header = response.headers.get_int("Expires")
        return max(header, 1) if header is not None else asked

    def _fail(self, error: str) -> None:
        self.status.failures += 1
        self.status.registered_until = None
        log.warning("line %s: registration failed: %s", self.line.name, error)
        self._set(RegistrationState.FAILED, error)

    def _set(self, state: RegistrationState, error: str | None) -> None:
        changed = (state, error) != (self.status.state, self.status.last_error)
        self.status.state = state
        self.status.last_error = error
        if changed:
            for callback in list(self.on_change):
                try:
                    callback(self.status)
                except Exception:
                    log.exception("registration status callback failed")

    # -- keep-alive --------------------------------------------------------------

    async def _keepalive_loop(self) -> None:
        """CRLF keep-alives hold the NAT binding; a new local address triggers re-registration."""
        while True:
            await asyncio.sleep(self.keepalive)
            try:
                destination = await self.ua.resolve(self._next_hop(), self.line)
            except OSError:
                continue
            assert self.ua.transport is not None
            self.ua.transport.send_raw(b"\r\n\r\n", destination)
            local = local_ip_for(destination[0])
            if self._local_ip is not None and local != self._local_ip:
                log.info(
                    "line %s: local address changed %s -> %s", self.line.name, self._local_ip, local
                )
                self.line.public_address = None
                self.refresh_now()
            self._local_ip = local

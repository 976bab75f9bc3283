"""A small registrar for ATAs that register to the gateway (RFC 3261 §10.3).

A Grandstream-style ATA on the landline registers to the Pi with a
username and password from an ATA line's configuration.  Only that user
can bind; the digest challenge (SHA-256 and MD5, qop=auth, stateless
HMAC nonces) is the same for every username, so a scanner (svwar) learns
nothing from the responses.  A binding tells the gateway where to send
calls for the ATA line, and which address the ATA's own INVITEs come from.
Bindings live in memory: an ATA re-registers within its expiry anyway.
"""

from __future__ import annotations

import logging
import secrets
import time
from collections.abc import Callable
from dataclasses import dataclass

from gateway.errors import DigestError, SipParseError
from gateway.sip.digest import Authorization, DigestServer, VerifyStatus
from gateway.sip.line import LineContext
from gateway.sip.message import Address, SipRequest, SipResponse, make_response
from gateway.sip.security import SourceList, parse_networks
from gateway.sip.uri import SipUri

log = logging.getLogger(__name__)

MIN_EXPIRES = 60
MAX_EXPIRES = 3600
DEFAULT_EXPIRES = 600


@dataclass
class Binding:
    line: str
    contact: SipUri  # as the ATA sent it
    source: tuple[str, int]  # where its REGISTER came from: where we send its calls
    expires_at: float  # wall clock


@dataclass
class AtaAccount:
    line: LineContext
    username: str
    password: str
    allow: SourceList  # configured direct-IP sources, kept apart from learnt ones


class Registrar:
    def __init__(
        self,
        accounts: list[AtaAccount],
        *,
        user_agent: str,
        realm: str = "linegram",
        algorithms: tuple[str, ...] = ("MD5", "SHA-256"),
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.accounts = {a.username: a for a in accounts}
        self.user_agent = user_agent
        self._key = secrets.token_bytes(32)
        # The order is the preference (RFC 8760 §2.4); see AtaLineConfig.auth_algorithms.
        self.digest = DigestServer(realm, self._key, algorithms=algorithms)
        self.bindings: dict[str, Binding] = {}
        self.clock = clock

    def set_accounts(self, accounts: list[AtaAccount], algorithms: tuple[str, ...]) -> None:
        """Serve *accounts* from now on (the settings were reloaded).

        A binding stays when its line keeps its username (the device need not
        register again) and is pointed at the account's line context, which may
        be new; the others are dropped.  Nonces already sent stay valid.
        """
        before = {a.line.name: a.username for a in self.accounts.values()}
        self.accounts = {a.username: a for a in accounts}
        after = {a.line.name: a.username for a in accounts}
        for name in list(self.bindings):
            if after.get(name) is None or after.get(name) != before.get(name):
                del self.bindings[name]
                log.info("line %s: ATA binding dropped (the line changed)", name)
        # Same key: nonces stay ours.  A new server only when the algorithms
        # changed, since it forgets the nc values seen (replay protection).
        candidate = DigestServer(self.digest.realm, self._key, algorithms=algorithms)
        if candidate.algorithms != self.digest.algorithms:
            self.digest = candidate
        for account in accounts:
            self._apply(account)

    # -- REGISTER ----------------------------------------------------------------

    def handle_register(self, request: SipRequest, source: tuple[str, int]) -> SipResponse:
        now = self.clock()
        auth_header = request.headers.get("Authorization")
        if auth_header is None:
            return self._challenge(request, now)
        try:
            auth = Authorization.parse(auth_header)
        except DigestError:
            return self._reply(request, 400, "Bad Authorization")
        result = self.digest.verify(auth, "REGISTER", self._password, now, request.body)
        if result.status is VerifyStatus.STALE:
            return self._challenge(request, now, stale=True)
        if result.status is VerifyStatus.BAD_NONCE:
            return self._challenge(request, now)
        if not result.ok:
            log.warning(
                "REGISTER from %s:%d refused: %s", *source, result.reason or result.status.value
            )
            return self._reply(request, 403)
        account = self.accounts[auth.username]
        try:
            to_user = request.to_addr.uri.user
        except SipParseError:
            return self._reply(request, 400)
        if to_user != account.username:
            # Credentials of one account may not bind another address of record.
            return self._reply(request, 403)
        return self._bind(request, source, account, now)

    def _bind(
        self, request: SipRequest, source: tuple[str, int], account: AtaAccount, now: float
    ) -> SipResponse:
        contacts = request.headers.get_list("Contact")
        default = request.headers.get_int("Expires")
        name = account.line.name
        if not contacts:
            return self._ok(request, name, now)  # a query: list the bindings
        try:
            addresses = [Address.parse(c) for c in contacts]
        except SipParseError:
            return self._reply(request, 400, "Bad Contact")
        if any(a.is_wildcard for a in addresses):
            if len(addresses) != 1 or default != 0:
                return self._reply(request, 400, "Wildcard Contact needs Expires: 0")
            self._unbind(name)
            return self._ok(request, name, now)
        address = addresses[0]  # one device per ATA line
        if not address.uri.is_sip:
            return self._reply(request, 400, "Contact must be a SIP URI")
        param = address.params.get("expires")
        expires = int(param) if param and param.isascii() and param.isdigit() else default
        if expires is None:
            expires = DEFAULT_EXPIRES
        if expires == 0:
            self._unbind(name)
            return self._ok(request, name, now)
        if expires < MIN_EXPIRES:
            return self._reply(request, 423, headers=[("Min-Expires", str(MIN_EXPIRES))])
        expires = min(expires, MAX_EXPIRES)
        previous = self.bindings.get(name)
        self.bindings[name] = Binding(name, address.uri, source, now + expires)
        self._apply(account)
        if previous is None or previous.source != source:
            log.info("line %s: ATA registered from %s:%d", name, *source)
        return self._ok(request, name, now)

    def _unbind(self, name: str) -> None:
        if self.bindings.pop(name, None) is not None:
            log.info("line %s: ATA unregistered", name)
        account = next((a for a in self.accounts.values() if a.line.name == name), None)
        if account is not None:
            self._apply(account)

    def _apply(self, account: AtaAccount) -> None:
        """Point the line at the live binding (or back at its configured address)."""
        line = account.line
        binding = self.binding(line.name)
        networks = list(account.allow.networks)
        if binding is not None:
            networks += parse_networks([binding.source[0]])
            contact = binding.contact
            # Calls go where the REGISTER came from: right even if the ATA put a
            # private address in its Contact behind a second router.
            line.ata_target = SipUri(
                host=binding.source[0],
                user=contact.user,
                port=binding.source[1],
                params=dict(contact.params),
            )
        else:
            line.ata_target = None
        line.sources = SourceList(networks)

    def binding(self, line_name: str) -> Binding | None:
        binding = self.bindings.get(line_name)
        if binding is not None and binding.expires_at <= self.clock():
            del self.bindings[line_name]
            log.info("line %s: ATA registration expired", line_name)
            return None
        return binding

    def expire(self) -> None:
        """Drop expired bindings (called periodically)."""
        for name in list(self.bindings):
            if self.binding(name) is None:
                account = next((a for a in self.accounts.values() if a.line.name == name), None)
                if account is not None:
                    self._apply(account)

    # -- INVITE from an address we do not know ----------------------------------------

    def authenticate_invite(
        self, request: SipRequest, source: tuple[str, int]
    ) -> tuple[LineContext | None, SipResponse | None]:
        """(line, None): valid credentials; (None, 407): challenge; (None, None): drop."""
        now = self.clock()
        value = request.headers.get("Proxy-Authorization")
        if value is None:
            return None, self._challenge(request, now, proxy=True)
        try:
            auth = Authorization.parse(value)
        except DigestError:
            return None, None
        result = self.digest.verify(auth, "INVITE", self._password, now, request.body)
        if result.status in (VerifyStatus.STALE, VerifyStatus.BAD_NONCE):
            return None, self._challenge(
                request, now, proxy=True, stale=result.status is VerifyStatus.STALE
            )
        if not result.ok:
            log.warning(
                "INVITE from %s:%d refused: %s", *source, result.reason or result.status.value
            )
            return None, self._reply(request, 403)
        return self.accounts[auth.username].line, None

    # -- helpers ----------------------------------------------------------------

    def _password(self, username: str) -> str | None:
        account = self.accounts.get(username)
        return account.password if account is not None else None

    def _challenge(
        self, request: SipRequest, now: float, *, stale: bool = False, proxy: bool = False
    ) -> SipResponse:
        name = "Proxy-Authenticate" if proxy else "WWW-Authenticate"
        headers = [(name, value) for value in self.digest.challenge_headers(now, stale=stale)]
        return self._reply(request, 407 if proxy else 401, headers=headers)

    def _ok(self, request: SipRequest, line_name: str, now: float) -> SipResponse:
        headers: list[tuple[str, str]] = []
        binding = self.binding(line_name)
        if binding is not None:
            remaining = max(int(binding.expires_at - now), 0)
            headers.append(("Contact", f"{Address(uri=binding.contact)};expires={remaining}"))
        headers.append(("Date", time.strftime("%a, %d %b %Y %H:%M:%S GMT", time.gmtime(now))))
        return self._reply(request, 200, headers=headers)

    def _reply(
        self,
        request: SipRequest,
        status: int,
        reason: str | None = None,
        headers: list[tuple[str, str]] | None = None,
    ) -> SipResponse:
        extra = list(headers or []) + [("User-Agent", self.user_agent)]
        tag = secrets.token_hex(4) if status > 100 else None
        return make_response(request, status, reason, to_tag=tag, headers=extra)

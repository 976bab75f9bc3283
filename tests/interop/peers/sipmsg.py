"""A tiny SIP UDP client for probes: OPTIONS (RFC 3261 §11) and digest REGISTER (RFC 8760).

Not gateway code, and deliberately independent of it: the readiness probe must
work while the gateway's own parser is broken, and the Kamailio SHA-256 variant
must be checked by something other than the code under test (sipp 3.6.1 only
computes MD5 digests).
"""

from __future__ import annotations

import asyncio
import hashlib
import re
import secrets
from dataclasses import dataclass, field
from typing import cast

from tests.interop.peers.procs import ManagedProcess, wait_until


@dataclass(frozen=True)
class Response:
    status: int
    reason: str
    headers: list[tuple[str, str]] = field(default_factory=list)
    raw: bytes = b""

    def header(self, name: str) -> str | None:
        for key, value in self.headers:
            if key.lower() == name.lower():
                return value
        return None

    @classmethod
    def parse(cls, data: bytes) -> Response:
        head = data.split(b"\r\n\r\n", 1)[0].decode("utf-8", "replace")
        lines = head.split("\r\n")
        m = re.match(r"SIP/2\.0 (\d{3}) ?(.*)", lines[0])
        if not m:
            raise ValueError(f"not a SIP response: {lines[0][:80]!r}")
        headers = []
        for line in lines[1:]:
            if ":" in line:
                key, value = line.split(":", 1)
                headers.append((key.strip(), value.strip()))
        return cls(int(m.group(1)), m.group(2), headers, data)


class _Collector(asyncio.DatagramProtocol):
    def __init__(self) -> None:
        self.responses: list[Response] = []
        self.transport: asyncio.DatagramTransport | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        # Python 3.11's selector transport does not subclass DatagramTransport.
        self.transport = cast(asyncio.DatagramTransport, transport)

    def datagram_received(self, data: bytes, addr: tuple[str | object, int]) -> None:
        try:
            self.responses.append(Response.parse(data))
        except ValueError:
            pass


class SipProbe:
    """One UDP socket on *local_ip* that sends requests and collects responses."""

    def __init__(self, local_ip: str, user_agent: str = "linegram-interop-probe") -> None:
        self.local_ip = local_ip
        self.user_agent = user_agent
        self._collector = _Collector()
        self.port = 0

    async def __aenter__(self) -> SipProbe:
        loop = asyncio.get_running_loop()
        await loop.create_datagram_endpoint(lambda: self._collector, local_addr=(self.local_ip, 0))
        assert self._collector.transport is not None
        self.port = self._collector.transport.get_extra_info("sockname")[1]
        return self

    async def __aexit__(self, *exc: object) -> None:
        if self._collector.transport is not None:
            self._collector.transport.close()

    def _request(
        self, method: str, uri: str, to: str, cseq: int, call_id: str, extra: list[str]
    ) -> tuple[bytes, str]:
        branch = "z9hG4bK" + secrets.token_hex(8)
        own_contact = f"Contact: <sip:probe@{self.local_ip}:{self.port}>"
        contact = [] if any(e.lower().startswith("contact:") for e in extra) else [own_contact]
        lines = [
            f"{method} {uri} SIP/2.0",
            f"Via: SIP/2.0/UDP {self.local_ip}:{self.port};rport;branch={branch}",
            "Max-Forwards: 70",
            f"From: <sip:probe@{self.local_ip}:{self.port}>;tag={secrets.token_hex(4)}",
            f"To: <{to}>",
            f"Call-ID: {call_id}",
            f"CSeq: {cseq} {method}",
            *contact,
            f"User-Agent: {self.user_agent}",
            *extra,
            "Content-Length: 0",
            "",
            "",
        ]
        return "\r\n".join(lines).encode(), branch

    async def request(
        self,
        method: str,
        uri: str,
        target: tuple[str, int],
        *,
        to: str | None = None,
        cseq: int = 1,
        call_id: str | None = None,
        extra: list[str] | None = None,
        within: float = 2.0,
    ) -> Response | None:
        """Send one request (retransmitted every 0.5 s); the final response or ``None``."""
        assert self._collector.transport is not None, "use 'async with SipProbe(...)'"
        data, branch = self._request(
            method, uri, to or uri, cseq, call_id or secrets.token_hex(8), extra or []
        )
        loop = asyncio.get_running_loop()
        deadline = loop.time() + within

        def final() -> Response | None:
            for r in self._collector.responses:
                via = r.header("Via") or r.header("v") or ""
                if r.status >= 200 and branch in via:
                    return r
            return None

        while loop.time() < deadline:
            self._collector.transport.sendto(data, target)
            try:
                await wait_until(lambda: final() is not None, min(0.5, deadline - loop.time()), "")
            except TimeoutError:
                continue
            return final()
        return None

    async def options(self, target: tuple[str, int], within: float = 2.0) -> Response | None:
        uri = f"sip:{target[0]}:{target[1]}"
        return await self.request("OPTIONS", uri, target, within=within)

    async def register(
        self,
        registrar: tuple[str, int],
        user: str,
        password: str,
        expires: int = 60,
        within: float = 3.0,
        contact: str | None = None,
    ) -> tuple[Response | None, Response | None]:
        """REGISTER, answer one 401 with a digest (MD5 or SHA-256, qop=auth); both responses.

        *contact* replaces the probe's own address as the binding (``sip:user@host:port``).
        """
        uri = f"sip:{registrar[0]}:{registrar[1]}"
        aor = f"sip:{user}@{registrar[0]}:{registrar[1]}"
        call_id = secrets.token_hex(8)
        extra = [f"Expires: {expires}"]
        if contact is not None:
            extra.append(f"Contact: <{contact}>")
        first = await self.request(
            "REGISTER", uri, registrar, to=aor, call_id=call_id, extra=extra, within=within
        )
        if first is None or first.status != 401:
            return first, None
        challenge = first.header("WWW-Authenticate") or ""
        auth = digest_authorization(challenge, "REGISTER", uri, user, password)
        second = await self.request(
            "REGISTER",
            uri,
            registrar,
            to=aor,
            cseq=2,
            call_id=call_id,
            extra=[*extra, f"Authorization: {auth}"],
            within=within,
        )
        return first, second


_HASHES = {"MD5": hashlib.md5, "SHA-256": hashlib.sha256}


def digest_authorization(challenge: str, method: str, uri: str, user: str, password: str) -> str:
    """An RFC 8760 / RFC 7616 ``Authorization`` value for a ``Digest`` challenge (qop=auth)."""
    values = {key: quoted or token for key, (quoted, token) in _pairs(challenge)}
    algorithm = values.get("algorithm", "MD5").upper()
    if algorithm not in _HASHES:
        raise ValueError(f"unsupported digest algorithm {algorithm}")

    def h(text: str) -> str:
        return _HASHES[algorithm](text.encode()).hexdigest()

    realm, nonce = values["realm"], values["nonce"]
    ha1, ha2 = h(f"{user}:{realm}:{password}"), h(f"{method}:{uri}")
    parts = [f'username="{user}"', f'realm="{realm}"', f'nonce="{nonce}"', f'uri="{uri}"']
    if "auth" in values.get("qop", "").split(","):
        nc, cnonce = "00000001", secrets.token_hex(8)
        response = h(f"{ha1}:{nonce}:{nc}:{cnonce}:auth:{ha2}")
        parts += [f'response="{response}"', "qop=auth", f"nc={nc}", f'cnonce="{cnonce}"']
    else:
        parts.append(f'response="{h(f"{ha1}:{nonce}:{ha2}")}"')
    parts.append(f"algorithm={algorithm}")
    if "opaque" in values:
        parts.append(f'opaque="{values["opaque"]}"')
    return "Digest " + ", ".join(parts)


def _pairs(challenge: str) -> list[tuple[str, tuple[str, str]]]:
    body = challenge.split(" ", 1)[1] if challenge.lower().startswith("digest ") else challenge
    pairs = re.findall(r'(\w+)=(?:"([^"]*)"|([^,\s]+))', body)
    return [(key.lower(), (quoted, token)) for key, quoted, token in pairs]


async def wait_answering(
    target: tuple[str, int],
    source_ip: str,
    within: float,
    process: ManagedProcess | None = None,
    name: str = "peer",
) -> Response:
    """Send OPTIONS to *target* until it answers 200; fail early if *process* died.

    Any final response other than 200 is reported in the error, so a gateway
    that answers 403 (source not allowed) is told apart from one that is silent.
    """
    loop = asyncio.get_running_loop()
    deadline = loop.time() + within
    last: Response | None = None
    async with SipProbe(source_ip) as probe:
        while True:
            response = await probe.options(target, within=0.5)
            if response is not None:
                last = response
                if response.status == 200:
                    return response
            if process is not None and not process.alive:
                raise RuntimeError(
                    f"{name} exited with {process.returncode} before answering OPTIONS"
                )
            if loop.time() >= deadline:
                seen = f"last answer {last.status} {last.reason}" if last else "no answer at all"
                raise TimeoutError(
                    f"{name} at {target[0]}:{target[1]} did not answer OPTIONS with 200 "
                    f"within {within:g} s ({seen})"
                )
            await asyncio.sleep(0.1)

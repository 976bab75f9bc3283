"""Locating a provider's SIP servers (RFC 3263 §4.2, RFC 2782).

``sip.example.net`` without a port may stand for several servers: DNS SRV
records ``_sip._udp.sip.example.net`` (or ``_tcp``) name them, with
priorities and weights.  A name with a port, or without SRV records, is an
ordinary host (A/AAAA, port 5060).  SRV records come from dnspython; host
addresses from the system resolver (so /etc/hosts and mDNS names work).
NAPTR is skipped: household providers publish SRV, and the transport is
configured per line.
"""

from __future__ import annotations

import asyncio
import logging
import random
import socket
from collections.abc import Sequence
from dataclasses import dataclass

import dns.asyncresolver
import dns.exception
import dns.rdtypes.IN.SRV
import dns.resolver

from gateway.sip.security import is_ip

log = logging.getLogger(__name__)

DEFAULT_PORT = 5060
DNS_LIFETIME = 3.0  # seconds for one SRV lookup, retries included


@dataclass(frozen=True)
class SrvRecord:
    priority: int
    weight: int
    port: int
    target: str  # host name, without the trailing dot


def order_srv(records: Sequence[SrvRecord], rng: random.Random | None = None) -> list[SrvRecord]:
    """RFC 2782 order: lowest priority first; within one, weighted random (weight 0 last)."""
    rng = rng or random.Random()
    ordered: list[SrvRecord] = []
    for priority in sorted({r.priority for r in records}):
        group = [r for r in records if r.priority == priority]
        # Zero weights first in the list so they are chosen only when nothing else is left.
        group.sort(key=lambda r: r.weight != 0)
        while group:
            total = sum(r.weight for r in group)
            pick = rng.randint(0, total) if total else 0
            running = 0
            for index, record in enumerate(group):
                running += record.weight
                if running >= pick:
                    ordered.append(group.pop(index))
                    break
    return ordered


class Locator:
    """Turns a host (and an optional port) into the addresses to try, in order."""

    def __init__(
        self, resolver: dns.asyncresolver.Resolver | None = None, rng: random.Random | None = None
    ) -> None:
        self._resolver = resolver
        self._rng = rng

    async def locate(
        self, host: str, port: int | None, transport: str = "udp"
    ) -> list[tuple[str, int]]:
        """[(ip, port), ...] for ``host``; empty when nothing resolves."""
        bare = host.strip("[]")
        if is_ip(bare):
            return [(bare, port or DEFAULT_PORT)]
        if port is None:
            records = await self.srv(f"_sip._{transport.lower()}.{host}")
            if records:
                found: list[tuple[str, int]] = []
                for record in order_srv(records, self._rng):
                    found += [(ip, record.port) for ip in await self.addresses(record.target)]
                if found:
                    return found
        return [(ip, port or DEFAULT_PORT) for ip in await self.addresses(host)]

    async def srv(self, name: str) -> list[SrvRecord]:
        resolver = self._resolver
        if resolver is None:
            try:
                resolver = self._resolver = dns.asyncresolver.Resolver()
            except dns.exception.DNSException as exc:  # no usable resolv.conf
                log.info("no DNS resolver for SRV lookups: %s", exc)
                return []
        try:
            answer = await resolver.resolve(name, "SRV", lifetime=DNS_LIFETIME)
        except (dns.resolver.NXDOMAIN, dns.resolver.NoAnswer):
            return []
        except dns.exception.DNSException as exc:
            log.info("SRV lookup for %s failed: %s", name, exc)
            return []
        records = []
        for rdata in answer:
            if isinstance(rdata, dns.rdtypes.IN.SRV.SRV) and str(rdata.target) != ".":
                target = str(rdata.target).rstrip(".")
                records.append(SrvRecord(rdata.priority, rdata.weight, rdata.port, target))
        return records

    async def addresses(self, host: str) -> list[str]:
        try:
            infos = await asyncio.get_running_loop().getaddrinfo(host, None, type=socket.SOCK_DGRAM)
        except OSError as exc:
            log.info("cannot resolve %s: %s", host, exc)
            return []
        return list(dict.fromkeys(str(info[4][0]) for info in infos))

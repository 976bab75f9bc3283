"""Who may talk to the gateway's SIP port.

Exposed SIP ports are scanned all day (sipvicious' svmap/svwar, "friendly-scanner")
and toll fraud is the classic loss.  Every datagram passes here before a
transaction exists:

* a per-source token bucket drops floods (one source cannot starve others);
* a request whose User-Agent matches a known scanner is dropped silently, so the
  scanner learns nothing, not even that something listens;
* which sources may reach a call is decided by :class:`SourceList` (the
  provider's addresses, allow-listed ATAs, registered ATA contacts), not here.
"""

from __future__ import annotations

import ipaddress
import logging
from collections.abc import Iterable
from dataclasses import dataclass, field

log = logging.getLogger(__name__)

IpNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network
IpAddress = ipaddress.IPv4Address | ipaddress.IPv6Address


def parse_networks(items: Iterable[str]) -> list[IpNetwork]:
    """``["192.168.1.50", "10.0.0.0/8"]`` -> networks (a bare address is a /32 or /128)."""
    return [ipaddress.ip_network(item, strict=False) for item in items]


def is_ip(host: str) -> bool:
    """True for an IPv4 or IPv6 address (IPv6 with or without brackets), not a name."""
    return parse_ip(host) is not None


def parse_ip(host: str) -> IpAddress | None:
    try:
        return ipaddress.ip_address(host.strip("[]"))
    except ValueError:
        return None


@dataclass
class SourceList:
    """A set of networks that may be replaced as DNS answers change."""

    networks: list[IpNetwork] = field(default_factory=list)

    def __contains__(self, host: object) -> bool:
        if not isinstance(host, str):
            return False
        ip = parse_ip(host)
        if ip is None:
            return False
        return any(ip.version == net.version and ip in net for net in self.networks)


@dataclass
class _Bucket:
    tokens: float
    stamp: float


class RateLimiter:
    """Token bucket per source IP: ``rate`` per second, bursts up to ``burst``.

    The table is bounded; when full, the stalest buckets are forgotten (a
    forgotten source simply starts with a full bucket again).
    """

    def __init__(self, rate: float, burst: float | None = None, max_sources: int = 4096) -> None:
        self.rate = rate
        self.burst = burst if burst is not None else 2 * rate
        self.max_sources = max_sources
        self._buckets: dict[str, _Bucket] = {}
        self.dropped = 0

    def allow(self, host: str, now: float) -> bool:
        bucket = self._buckets.get(host)
        if bucket is None:
            if len(self._buckets) >= self.max_sources:
                self._evict(now)
            bucket = self._buckets[host] = _Bucket(self.burst, now)
        else:
            bucket.tokens = min(self.burst, bucket.tokens + (now - bucket.stamp) * self.rate)
            bucket.stamp = now
        if bucket.tokens >= 1.0:
            bucket.tokens -= 1.0
            return True
        self.dropped += 1
        return False

    def _evict(self, now: float) -> None:
        # Buckets idle long enough to be full again carry no information.
        full_after = self.burst / self.rate if self.rate > 0 else 0.0
        stale = [h for h, b in self._buckets.items() if now - b.stamp >= full_after]
        for host in (
            stale
            or sorted(self._buckets, key=lambda h: self._buckets[h].stamp)[
                : len(self._buckets) // 4 + 1
            ]
        ):
            del self._buckets[host]


class ScannerFilter:
    """Recognises known SIP scanners by their User-Agent (case-insensitive substring)."""

    def __init__(self, patterns: Iterable[str]) -> None:
        self.patterns = [p.lower() for p in patterns if p]
        self.dropped = 0

    def is_scanner(self, user_agent: str | None) -> bool:
        if not user_agent:
            return False
        ua = user_agent.lower()
        if any(p in ua for p in self.patterns):
            self.dropped += 1
            return True
        return False

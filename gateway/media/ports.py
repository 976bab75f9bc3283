"""RTP/RTCP port pairs (RFC 3550 §11: RTP on an even port, RTCP on the next one).

Ports are handed out round-robin so a port just released is not reused at
once (stray packets of the previous call would land in the next one), and a
pair is only returned once both sockets are bound, so ports held by other
programs are skipped without a race.
"""

from __future__ import annotations

import errno
import logging
import socket
from dataclasses import dataclass

__all__ = ["PortAllocator", "PortPair"]

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class PortPair:
    """Two bound, non-blocking UDP sockets; the caller owns and closes them."""

    port: int  # the RTP port; RTCP is port + 1
    rtp: socket.socket
    rtcp: socket.socket


class PortAllocator:
    """Allocates even RTP ports (and the odd RTCP port above) in [min_port, max_port].

    Example::

        ports = PortAllocator(10000, 10099)
        pair = ports.allocate("127.0.0.1")   # e.g. PortPair(port=10000, ...)
        ...
        pair.rtp.close(); pair.rtcp.close(); ports.release(pair.port)
    """

    def __init__(self, min_port: int, max_port: int) -> None:
        first = min_port + (min_port & 1)
        if not 1024 <= min_port <= max_port <= 65535 or first + 1 > max_port:
            raise ValueError(f"RTP port range {min_port}-{max_port} holds no even/odd port pair")
        self.min_port = first
        self.max_port = max_port
        self._ports = list(range(first, max_port, 2))  # RTP ports whose RTCP port fits
        self._next = 0
        self._in_use: set[int] = set()

    @property
    def in_use(self) -> frozenset[int]:
        return frozenset(self._in_use)

    def allocate(self, host: str) -> PortPair:
        """Bind the next free pair on ``host``.

        Raises:
            OSError: every pair in the range is taken (``EADDRINUSE``), or
                ``host`` cannot be bound at all.
        """
        family = socket.AF_INET6 if ":" in host else socket.AF_INET
        for _ in range(len(self._ports)):
            port = self._ports[self._next]
            self._next = (self._next + 1) % len(self._ports)
            if port in self._in_use:
                continue
            pair = _bind_pair(family, host, port)
            if pair is not None:
                self._in_use.add(port)
                return pair
        raise OSError(
            errno.EADDRINUSE, f"no free RTP port pair in {self.min_port}-{self.max_port} on {host}"
        )

    def release(self, port: int) -> None:
        """Return a port to the pool (unknown ports are ignored)."""
        self._in_use.discard(port)


def _bind_pair(family: int, host: str, port: int) -> PortPair | None:
    socks: list[socket.socket] = []
    try:
        for p in (port, port + 1):
            sock = socket.socket(family, socket.SOCK_DGRAM)
            socks.append(sock)
            sock.setblocking(False)
            sock.bind((host, p))
    except OSError as exc:
        for sock in socks:
            sock.close()
        if exc.errno in (errno.EADDRINUSE, errno.EACCES):
            log.debug("RTP port %d or %d busy on %s, skipping", port, port + 1, host)
            return None
        raise
    return PortPair(port, socks[0], socks[1])

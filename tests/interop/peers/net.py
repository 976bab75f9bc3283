"""Loopback addresses and free ports for the interop peers.

Not an RFC module.  Each peer gets its own 127.0.0.x address so a packet
capture or a log line says who sent what; ports are picked free at run time
because other test runs may share the machine.
"""

from __future__ import annotations

import random
import socket

GATEWAY_IP = "127.0.0.10"
SIPP_IP = "127.0.0.11"
KAMAILIO_IP = "127.0.0.12"
BARESIP_IP = "127.0.0.13"
HOSTILE_IP = "127.0.0.14"  # garbage senders and scanners in test_hostile
PEER_IP = "127.0.0.15"  # the second sipp in the harness self-tests

# sipp advertises [media_port+10] and plays its pcaps from that port; sipp itself only
# binds media_port and media_port+2, so a capture socket can own the advertised port.
SIPP_MEDIA_OFFSET = 10


def port_is_free(ip: str, port: int, kind: int = socket.SOCK_DGRAM) -> bool:
    """True when *port* can be bound on *ip* right now (UDP by default)."""
    with socket.socket(socket.AF_INET, kind) as sock:
        try:
            sock.bind((ip, port))
        except OSError:
            return False
    return True


def free_port(ip: str, kind: int = socket.SOCK_DGRAM) -> int:
    """A port the kernel considers free on *ip* (it may be taken again before use)."""
    with socket.socket(socket.AF_INET, kind) as sock:
        sock.bind((ip, 0))
        port: int = sock.getsockname()[1]
    return port


def free_port_pair(ip: str) -> int:
    """A port free for both UDP and TCP (sipp, Kamailio and baresip bind both kinds)."""
    for _ in range(50):
        port = free_port(ip)
        if port_is_free(ip, port, socket.SOCK_STREAM):
            return port
    raise RuntimeError(f"no port free for UDP and TCP on {ip}")


def free_port_block(ip: str, size: int, low: int = 20000, high: int = 30000) -> int:
    """An even base port such that base..base+size-1 are all free UDP ports on *ip*."""
    rng = random.Random()
    for _ in range(200):
        base = rng.randrange(low, high - size) & ~1
        if all(port_is_free(ip, p) for p in range(base, base + size)):
            return base
    raise RuntimeError(f"no block of {size} free UDP ports on {ip}")

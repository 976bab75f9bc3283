"""Is this process inside the private network namespace that tools/in-netns.sh makes?

Media tests carry real ntgcalls (WebRTC) traffic. WebRTC ignores the loopback
adapter, so it needs a non-loopback interface, and the network rule says no test
packet may leave the machine: hence the namespace with a veth pair. Media tests
FAIL (not skip) outside it, so a CI run that forgot the wrapper is visible.
"""

from __future__ import annotations

import fcntl
import os
import socket
import struct

HINT = "run via tools/in-netns.sh (make telegram)"
VETH_ADDRESSES = ("10.77.0.1", "10.77.0.2")
_SIOCGIFFLAGS = 0x8913
_IFF_UP = 0x1


def interfaces_up() -> list[str]:
    """Names of the interfaces of *this* network namespace that are up.

    Asked through the kernel (if_nameindex + SIOCGIFFLAGS) rather than /sys/class/net,
    which shows the namespace of whoever mounted /sys.
    """
    up = []
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        for _index, name in socket.if_nameindex():
            request = struct.pack("16sH14x", name.encode()[:15], 0)
            try:
                reply = fcntl.ioctl(sock.fileno(), _SIOCGIFFLAGS, request)
            except OSError:
                continue
            (flags,) = struct.unpack_from("H", reply, 16)
            if flags & _IFF_UP:
                up.append(name)
    return up


def _address_is_local(address: str) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        try:
            sock.bind((address, 0))
        except OSError:
            return False
    return True


def private_netns_ready() -> str | None:
    """None when media tests may run here, else the reason they may not."""
    marker = os.environ.get("LINEGRAM_NETNS")
    if not marker:
        return f"not in a private network namespace; {HINT}"
    try:
        current = os.readlink("/proc/self/ns/net")
    except OSError as exc:
        return f"cannot read the network namespace ({exc}); {HINT}"
    if marker != current:
        return f"LINEGRAM_NETNS={marker} but this process is in {current}; {HINT}"
    if not [name for name in interfaces_up() if name != "lo"]:
        return f"no non-loopback interface is up in the namespace; {HINT}"
    if not all(_address_is_local(a) for a in VETH_ADDRESSES):
        return f"the veth pair lg0/lg1 ({', '.join(VETH_ADDRESSES)}) is missing; {HINT}"
    return None

"""A line as the SIP core sees it at run time.

The configuration says what a line is; :class:`LineContext` holds what the
SIP core needs while it runs: codecs and DTMF mode, our credentials towards
a provider, where its requests go, which sources may send on it, and what
was learnt (the public address a provider sees, an ATA's live binding).
"""

from __future__ import annotations

from dataclasses import dataclass, field

from gateway.sip.digest import DigestClient
from gateway.sip.security import SourceList
from gateway.sip.uri import SipUri

HostPort = tuple[str, int]


@dataclass
class LineContext:
    """What the SIP core needs to know about one line at run time."""

    name: str
    kind: str  # "provider" | "ata"
    codecs: tuple[str, ...] = ("PCMA", "PCMU")
    dtmf: str = "rfc4733"
    transport: str = "udp"  # "udp" | "tcp": how requests we originate on this line travel
    incoming: str = "echo"
    username: str = ""
    domain: str = ""  # provider: AOR domain
    digest: DigestClient | None = None  # provider: our credentials towards it
    proxy: SipUri | None = None  # provider: where requests go (outbound proxy or registrar)
    sources: SourceList = field(default_factory=SourceList)  # who may send us requests
    public_address: HostPort | None = None  # learnt from received/rport
    ata_target: SipUri | None = (
        None  # ATA: where calls to the ATA go (binding or allow-listed address)
    )

"""A Telethon client pointed at a CloudServer instead of Telegram.

Telethon needs two things to talk to the sim: our RSA key among the keys it
encrypts for, and the session's DC set to the server's address.  Everything
else (transport, handshake, encryption) is Telethon's own unmodified code.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Protocol

from telethon import TelegramClient
from telethon.sessions import Session

from simcloud.keys import CloudKey

# The sim is a single DC, advertised as DC 2 by help.getConfig.
SIM_DC_ID = 2
# A made-up app for tests; the cloud accepts it only if the test registers it.
SIM_API_ID = 100001
SIM_API_HASH = "5ca1ab1e" * 4


class ServesCloud(Protocol):
    host: str
    port: int
    key: CloudKey


def make_client(
    server: ServesCloud,
    session: str | Path | Session | None = None,
    *,
    api_id: int = SIM_API_ID,
    api_hash: str = SIM_API_HASH,
    **kwargs: Any,
) -> TelegramClient:
    """A TelegramClient for `server`; `session` is None (memory), a file path or a Session.

    Extra keyword arguments go to TelegramClient (e.g. `flood_sleep_threshold=0`
    to see FloodWaitError instead of Telethon sleeping, `request_retries=1`).

    Example::

        async with CloudServer(cloud) as server:
            client = make_client(server)
            await client.connect()
            config = await client(functions.help.GetConfigRequest())
    """
    server.key.register_with_telethon()
    if isinstance(session, Path):
        session = str(session)
    client = TelegramClient(session, api_id, api_hash, **kwargs)
    client.session.set_dc(SIM_DC_ID, server.host, server.port)
    return client

"""build_cloud(): a whole simulated Telegram, ready for a CloudServer.

    cloud = build_cloud()
    cloud.state.add_app(SIM_API_ID, SIM_API_HASH)          # simcloud.client's test app
    alice = cloud.state.add_user(phone="+99966 1001", first_name="Alice")
    async with CloudServer(cloud, "127.0.0.1", 0) as server:
        client = make_client(server)

Subsystems hang off the Cloud: `cloud.state` (accounts, State), `cloud.updates`
(pts and pushes, UpdateHub), `cloud.history` (message boxes, History),
`cloud.bot_queries` (pending inline and callback queries) and, when
`simcloud.phone` exists, `cloud.phone`.  Importing the handler modules registers
their RPC handlers with `simcloud.cloud.handler`.
"""

from __future__ import annotations

import importlib
import importlib.util
import time
from collections.abc import Callable
from typing import Any

from simcloud import auth, bots, help, messages, updates, users  # noqa: F401  (handlers)
from simcloud.bots import BotQueries
from simcloud.cloud import Cloud
from simcloud.history import History
from simcloud.state import State
from simcloud.updates import UpdateHub

OPTIONAL_MODULES = ("simcloud.phone",)


def _attach_optional(cloud: Cloud) -> None:
    """Import modules other helpers own, if present, and let them attach themselves."""
    for name in OPTIONAL_MODULES:
        if importlib.util.find_spec(name) is None:
            continue
        module = importlib.import_module(name)
        attach: Callable[[Cloud], Any] | None = getattr(module, "attach", None)
        if attach is not None:
            attach(cloud)


def build_cloud(clock: Callable[[], float] = time.time) -> Cloud:
    """A Cloud with state, updates, message history and every handler module attached.

    `clock` (unix seconds) drives message dates and login-code expiry.
    """
    cloud = Cloud()
    state = State(clock=clock)
    hub = UpdateHub(cloud, state)
    history = History(state, hub)
    vars(cloud).update(state=state, updates=hub, history=history, bot_queries=BotQueries())
    _attach_optional(cloud)
    return cloud

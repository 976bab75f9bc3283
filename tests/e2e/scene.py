"""A household for the end-to-end tests: gateway, simulated Telegram, members, SIP peers.

Not an RFC module.  :class:`Scene` starts a simulated Telegram cloud on
127.0.0.1, the gateway in this event loop (signed in to that cloud through its
own login, with the companion bot), and on demand household members
(:class:`~simcloud.member.SimMember`: real Telethon, real ntgcalls media) linked
to lines in the gateway's store, and SIP peers from the interop harness
(baresip registered as the ATA of line ``home``, sipp).
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

from telethon.tl.custom import Message

from gateway.app import Gateway
from gateway.calls.manager import CallManager
from gateway.store import MemberRecord
from gateway.telegram.login import LoginStep
from simcloud.client import SIM_API_HASH, SIM_API_ID
from simcloud.cloud import Cloud
from simcloud.member import SimMember
from simcloud.server import CloudServer
from simcloud.state import SimUser
from simcloud.world import build_cloud
from tests.interop.peers.baresip import Baresip
from tests.interop.peers.gateway import ATA_PASSWORD, InProcessGateway, gateway_config
from tests.interop.peers.harness import Peers
from tests.interop.peers.net import BARESIP_IP, SIPP_IP

GATEWAY_PHONE = "+99966 0000"
GATEWAY_USERNAME = "home_gateway"
BOT_USERNAME = "linegram_home_bot"
ATA_USER = "ht801"
OFFICE_USER = "ht813"
OFFICE_PASSWORD = "ht813-pass-5529"
STEP = 15.0  # seconds any single step may take

T = TypeVar("T")


def home_line(**extra: Any) -> dict[str, Any]:
    """The ATA line ``home``: baresip registers to it; sipp may call it from SIPP_IP."""
    line = {
        "name": "home",
        "kind": "ata",
        "allow": [BARESIP_IP, SIPP_IP],
        "username": ATA_USER,
        "password": ATA_PASSWORD,
        "incoming": "members",
        "country_code": "44",
    }
    line.update(extra)
    return line


def office_line(**extra: Any) -> dict[str, Any]:
    """A second ATA line, ``office``, for a second baresip."""
    return home_line(name="office", username=OFFICE_USER, password=OFFICE_PASSWORD, **extra)


async def eventually(
    check: Callable[[], Awaitable[T | None] | T | None],
    within: float = STEP,
    what: str = "condition",
) -> T:
    """Poll *check* until it returns something truthy."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + within
    while True:
        result = check()
        if asyncio.iscoroutine(result):
            result = await result
        if result:
            return result  # type: ignore[return-value]
        if loop.time() >= deadline:
            raise TimeoutError(f"{what} not reached within {within:g} s")
        await asyncio.sleep(0.05)


@dataclass
class Scene:
    cloud: Cloud
    server: CloudServer
    tmp: Path
    peers: Peers
    key_file: Path
    gateway_user: SimUser
    bot_token: str
    members: dict[str, SimMember] = field(default_factory=dict)
    records: dict[str, MemberRecord] = field(default_factory=dict)
    gateway: InProcessGateway | None = None
    _phones: Any = field(default_factory=lambda: itertools.count(1001))

    @classmethod
    @contextlib.asynccontextmanager
    async def build(cls, tmp: Path, peers: Peers) -> AsyncIterator[Scene]:
        cloud = build_cloud()
        state = vars(cloud)["state"]
        state.add_app(SIM_API_ID, SIM_API_HASH)
        gateway_user = state.add_user(
            phone=GATEWAY_PHONE, first_name="Home", last_name="Gateway", username=GATEWAY_USERNAME
        )
        _bot, token = state.add_bot(BOT_USERNAME, owner=gateway_user, inline_feedback=True)
        async with CloudServer(cloud, "127.0.0.1", 0) as server:
            key_file = tmp / "sim.pem"
            key_file.write_bytes(server.key.public_pem)
            scene = cls(cloud, server, tmp, peers, key_file, gateway_user, token)
            try:
                yield scene
            finally:
                for member in reversed(list(scene.members.values())):
                    with contextlib.suppress(Exception):
                        await asyncio.wait_for(member.close(), 10)
                if scene.gateway is not None:
                    with contextlib.suppress(Exception):
                        await scene.gateway.stop()

    @property
    def state(self) -> Any:
        return vars(self.cloud)["state"]

    @property
    def gw(self) -> Gateway:
        assert self.gateway is not None and self.gateway.gw is not None
        gw: Gateway = self.gateway.gw
        return gw

    @property
    def manager(self) -> CallManager:
        return self.gw.manager

    # -- the gateway -------------------------------------------------------------------------

    def config(self, lines: list[dict[str, Any]] | None = None) -> dict[str, Any]:
        config = gateway_config(self.tmp / "data", [home_line()] if lines is None else lines)
        config["telegram"] = {
            "api_id": SIM_API_ID,
            "api_hash": SIM_API_HASH,
            "bot_token": self.bot_token,
            "ring_timeout": 20,
            "server": {
                "address": f"{self.server.host}:{self.server.port}",
                "public_key": str(self.key_file),
            },
        }
        return config

    async def start(
        self,
        lines: list[dict[str, Any]] | None = None,
        *,
        settings_file: Path | None = None,
        signed_in: bool = True,
    ) -> Gateway:
        """The gateway, started; signed in with the companion bot unless *signed_in* is False.

        Not signed in = a fresh installation: no API app, no bot token (the web UI's
        wizard sets them).  *settings_file*: the settings live in that file, as installed.
        """
        config = self.config(lines)
        if not signed_in:
            config["telegram"] = {"ring_timeout": 20, "server": config["telegram"]["server"]}
        self.gateway = await self.peers.gateway_in_process(config, settings_file)
        gw = self.gw
        if not signed_in:
            return gw
        login = gw.telegram.login
        view = await login.submit_phone(GATEWAY_PHONE)
        assert view.step is LoginStep.NEED_CODE, view
        view = await login.submit_code(self.state.last_code(GATEWAY_PHONE))
        assert view.step is LoginStep.LOGGED_IN, view
        await eventually(lambda: gw.telegram.calls is not None, what="telegram calls ready")
        await eventually(lambda: gw.telegram.messenger.bot_ready, what="companion bot ready")
        return gw

    # -- household members ---------------------------------------------------------------------

    async def phone(self, name: str, **behaviour: Any) -> SimMember:
        """A Telegram user's phone, a mutual contact of the gateway, not linked to anything."""
        sim = await SimMember.create(
            self.cloud,
            self.server,
            phone=f"+99966 {next(self._phones)}",
            first_name=name,
            username=f"{name.lower()}_phone",
            **behaviour,
        )
        self.members[name] = sim
        # The simulator has no relays: peer-to-peer media needs mutual contacts.
        self.state.add_contact(self.gateway_user, sim.user)
        self.state.add_contact(sim.user, self.gateway_user)
        return sim

    async def member(
        self, name: str, lines: tuple[str, ...] = ("home",), **behaviour: Any
    ) -> SimMember:
        """A member's phone, a mutual contact of the gateway, linked to *lines*."""
        sim = await self.phone(name, **behaviour)
        record = self.gw.store.add_member(
            sim.id,
            self.state.access_hash(self.gateway_user, sim.user),
            name,
            sim.user.username or "",
            lines,
            time.time(),
        )
        self.records[name] = record
        return sim

    async def messages(
        self, sim: SimMember, limit: int = 10, chat: str = GATEWAY_USERNAME
    ) -> list[Message]:
        """The newest messages in the member's chat with *chat* (the gateway), newest first."""
        result: list[Message] = await sim.client.get_messages(chat, limit=limit)
        return result

    async def message_with(
        self, sim: SimMember, text: str, within: float = STEP, chat: str = GATEWAY_USERNAME
    ) -> Message:
        """The newest message in *chat* (the gateway's by default) containing *text*."""

        async def find() -> Message | None:
            for message in await self.messages(sim, chat=chat):
                if text in (message.message or ""):
                    return message
            return None

        return await eventually(find, within, f"{sim.user.first_name}: a message with {text!r}")

    async def press(
        self, sim: SimMember, message: Message, label: str, chat: str = GATEWAY_USERNAME
    ) -> None:
        """Press the button labelled *label* on *message* as the member."""
        fresh = await sim.client.get_messages(chat, ids=message.id)
        assert fresh is not None and fresh.buttons, f"no buttons on {message.message!r}"
        for row in fresh.buttons:
            for button in row:
                if button.text == label:
                    with contextlib.suppress(Exception):  # the bot's answer may come late
                        await asyncio.wait_for(button.click(), STEP)
                    return
        labels = [b.text for row in fresh.buttons for b in row]
        raise AssertionError(f"no button {label!r} on {fresh.message!r}: {labels}")

    async def say(self, sim: SimMember, text: str) -> None:
        await sim.client.send_message(GATEWAY_USERNAME, text)

    def dial_uri(self, user: str = "100") -> str:
        """What a SIP peer dials to reach the gateway."""
        host, port = self.gateway.address if self.gateway else ("", 0)
        return f"sip:{user}@{host}:{port}"

    def gateway_id(self) -> int:
        return int(self.gateway_user.id)

    # -- SIP peers ---------------------------------------------------------------------------------

    async def ata(self, source_pcm: bytes, line: str = "home") -> Baresip:
        """baresip as the ATA of *line* (registered to the gateway, auto-answering)."""
        host, port = self.gateway.address if self.gateway else ("", 0)
        user, password = (
            (ATA_USER, ATA_PASSWORD) if line == "home" else (OFFICE_USER, OFFICE_PASSWORD)
        )
        baresip = await self.peers.baresip(source_pcm, register=(user, f"{host}:{port}", password))
        await eventually(
            lambda: self.gw.line_status(line).state == "registered",
            what=f"ATA of {line} registered",
        )
        return baresip

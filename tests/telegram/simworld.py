"""Helpers for gateway/telegram tests against the simulated cloud (loopback only).

``world`` starts a whole simulated Telegram on 127.0.0.1 with a random port.
The gateway's parts connect to it exactly as the product would in demo mode:
``[telegram.server]`` with the cloud's address and a PEM file of its key.
Members are plain Telethon clients signed in as other simulated users.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

from telethon import TelegramClient
from telethon.tl import types

from gateway.config import HostPort, Secret, TelegramServer, TelegramSettings
from gateway.telegram.account import AccountStatus, ConnectionState, TelegramAccount
from gateway.telegram.bot import CompanionBot
from gateway.telegram.login import Login, LoginStep
from gateway.telegram.messages import InboundEvent, Member, Messenger
from simcloud.client import SIM_API_HASH, SIM_API_ID, make_client
from simcloud.cloud import Cloud
from simcloud.server import CloudServer
from simcloud.state import SimUser

GATEWAY_PHONE = "+99966 0000"
FAST = {"backoff": (0.05, 0.1, 0.2), "watch_interval": 0.05}

T = TypeVar("T")


async def eventually(check: Callable[[], T], timeout: float = 5.0, step: float = 0.02) -> T:
    """Poll *check* until it returns something truthy; fail after *timeout*."""
    async with asyncio.timeout(timeout):
        while True:
            value = check()
            if value:
                return value
            await asyncio.sleep(step)


async def eventually_async(
    check: Callable[[], Awaitable[T]], timeout: float = 10.0, step: float = 0.05
) -> T:
    """Like :func:`eventually` for a coroutine function."""
    async with asyncio.timeout(timeout):
        while True:
            value = await check()
            if value:
                return value
            await asyncio.sleep(step)


@dataclass
class World:
    cloud: Cloud
    server: CloudServer
    tmp: Path
    key_file: Path
    gateway_user: SimUser
    closers: list[Callable[[], Awaitable[Any] | None]] = field(default_factory=list)

    @property
    def state(self) -> Any:
        return vars(self.cloud)["state"]

    def settings(self, **changes: Any) -> TelegramSettings:
        values: dict[str, Any] = {
            "api_id": SIM_API_ID,
            "api_hash": Secret(SIM_API_HASH),
            "server": TelegramServer(
                address=HostPort(self.server.host, self.server.port), public_key="sim.pem"
            ),
        }
        values.update(changes)
        return TelegramSettings(**values)

    @property
    def session_path(self) -> Path:
        return self.tmp / "state" / "telegram" / "gateway.session"

    def account(self, **changes: Any) -> TelegramAccount:
        options = {**FAST, **changes.pop("options", {})}
        account = TelegramAccount(
            self.settings(**changes), self.session_path, server_key=self.key_file, **options
        )
        self.closers.append(account.stop)
        return account

    async def signed_in_account(self, **changes: Any) -> TelegramAccount:
        account = self.account(**changes)
        await account.start()
        login = Login(account)
        view = await login.submit_phone(GATEWAY_PHONE)
        assert view.step is LoginStep.NEED_CODE, view
        view = await login.submit_code(self.state.last_code(GATEWAY_PHONE))
        assert view.step is LoginStep.LOGGED_IN, view
        return account

    async def bot(
        self, username: str = "linegram_test_bot", inline_feedback: bool = True
    ) -> tuple[CompanionBot, SimUser]:
        """The companion bot, set up as the product asks (BOT_SETUP: inline feedback on)."""
        sim_bot, token = self.state.add_bot(
            username, owner=self.gateway_user, inline_feedback=inline_feedback
        )
        bot = CompanionBot(
            self.settings(bot_token=Secret(token)),
            self.tmp / "state" / "telegram" / "gateway-bot.session",
            server_key=self.key_file,
            **FAST,
        )
        self.closers.append(bot.stop)
        await bot.start()
        await bot.wait_for(ConnectionState.CONNECTED, timeout=10)
        return bot, sim_bot

    async def member(
        self, phone: str, first_name: str, username: str | None = None, **extra: Any
    ) -> tuple[TelegramClient, SimUser]:
        """A household member's phone: a plain Telethon client signed in as a new sim user."""
        user = self.state.add_user(phone=phone, first_name=first_name, username=username, **extra)
        client = make_client(self.server)
        await client.connect()
        self.closers.append(client.disconnect)
        sent = await client.send_code_request(phone)
        assert sent.phone_code_hash
        await client.sign_in(phone, self.state.last_code(phone))
        return client, user

    async def household(self, bot: CompanionBot | None = None) -> Household:
        """Alice on her phone, and the signed-in gateway account's Messenger (with *bot*)."""
        alice, sim_alice = await self.member("+999 66 1001", "Alice", "alice_home")
        account = await self.signed_in_account()
        messenger = Messenger(account, bot)
        messenger.start()
        self.closers.append(messenger.stop)
        events: list[InboundEvent] = []
        messenger.subscribe(events.append)
        return Household(
            account,
            messenger,
            events,
            alice,
            sim_alice,
            Member(sim_alice.id, self.state.access_hash(self.gateway_user, sim_alice), "Alice"),
            await alice.get_input_entity(self.gateway_user.username),
        )


@dataclass
class Household:
    account: TelegramAccount
    messenger: Messenger
    events: list[InboundEvent]  # everything the Messenger heard
    alice: TelegramClient
    sim_alice: SimUser
    member: Member  # Alice as the product stores her: id and the *gateway's* access hash
    gateway_peer: Any  # the gateway account in Alice's app


def record(account: Any) -> list[AccountStatus]:
    """Every status *account* publishes from now on."""
    seen: list[AccountStatus] = []
    account.subscribe(seen.append)
    return seen


async def peer_of(client: TelegramClient, user: SimUser) -> Any:
    """The member client's input peer for *user* (found by username or via a message)."""
    entity = await client.get_input_entity(user.username) if user.username else None
    assert isinstance(entity, types.InputPeerUser)
    return entity

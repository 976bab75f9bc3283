"""`python -m gateway --telegram-login` against the simulated cloud, as a person would type it."""

from __future__ import annotations

import asyncio
import os
import stat
import sys
from pathlib import Path

from gateway.config import load_config
from simcloud.client import SIM_API_HASH, SIM_API_ID
from tests.telegram.simworld import GATEWAY_PHONE, World

ROOT = Path(__file__).resolve().parents[2]


def write_config(world: World) -> Path:
    path = world.tmp / "linegram.toml"
    path.write_text(
        f"""
[gateway]
data_dir = "data"

[telegram.server]
address = "{world.server.host}:{world.server.port}"
public_key = "sim.pem"
"""
    )
    return path


class Terminal:
    """A login session driven line by line, answering each prompt as it appears."""

    def __init__(self, proc: asyncio.subprocess.Process) -> None:
        self.proc = proc
        self.transcript = ""

    async def expect(self, text: str, timeout: float = 20) -> None:
        assert self.proc.stdout is not None
        async with asyncio.timeout(timeout):
            while text not in self.transcript:
                chunk = await self.proc.stdout.read(256)
                if not chunk:
                    raise AssertionError(f"ended before {text!r}:\n{self.transcript}")
                self.transcript += chunk.decode()

    async def type(self, line: str) -> None:
        assert self.proc.stdin is not None
        self.proc.stdin.write(line.encode() + b"\n")
        await self.proc.stdin.drain()

    async def finish(self, timeout: float = 30) -> int:
        assert self.proc.stdout is not None
        rest = await asyncio.wait_for(self.proc.stdout.read(), timeout)
        self.transcript += rest.decode()
        return await asyncio.wait_for(self.proc.wait(), timeout)


async def start(config: Path) -> Terminal:
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "gateway",
        "--config",
        str(config),
        "--telegram-login",
        stdin=asyncio.subprocess.PIPE,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT,
        cwd=ROOT,
    )
    return Terminal(proc)


async def test_first_login_from_the_terminal_with_2fa(world: World) -> None:
    world.state.set_password(world.gateway_user, "correct horse", hint="horse")
    config = write_config(world)
    term = await start(config)
    await term.expect("api_id: ")
    await term.type(str(SIM_API_ID))
    await term.expect("api_hash: ")
    await term.type(SIM_API_HASH)
    await term.expect("Phone number")
    await term.type(GATEWAY_PHONE)
    await term.expect("Code")
    await term.type("00000")
    await term.expect("! ")  # Telegram's complaint about the wrong code, as a sentence
    await term.expect("Code")
    await term.type(world.state.last_code(GATEWAY_PHONE))
    await term.expect("(hint: horse): ")
    await term.type("battery staple")
    await term.expect("Two-step verification password (hint: horse): ")
    await term.type("correct horse")
    assert await term.finish() == 0, term.transcript
    assert "Signed in as Home Gateway." in term.transcript
    assert "correct horse" not in term.transcript and SIM_API_HASH not in term.transcript
    # The app is in the settings file (0600); the session file is private.
    saved = load_config(config)
    assert saved.telegram.api_id == SIM_API_ID
    assert saved.telegram.api_hash.reveal() == SIM_API_HASH
    assert stat.S_IMODE(os.stat(config).st_mode) == 0o600
    assert stat.S_IMODE(os.stat(saved.telegram_session).st_mode) == 0o600

    # A second run finds the session signed in and asks nothing.
    again = await start(config)
    assert await again.finish() == 0, again.transcript
    assert "Signed in as Home Gateway." in again.transcript
    assert "Phone number" not in again.transcript


async def test_input_ending_early_is_not_a_login(world: World) -> None:
    config = write_config(world)
    term = await start(config)
    await term.expect("api_id: ")
    assert term.proc.stdin is not None
    term.proc.stdin.close()
    assert await term.finish() == 1
    assert "not signed in" in term.transcript

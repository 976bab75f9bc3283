"""`python -m gateway --config PATH --telegram-login`: the login state machine on a terminal.

The web UI (issue 5) is the household's way in; this is the same `Login`
for a developer or an SSH session: it prompts for what the current step
needs, prints Telegram's complaint when there is one and stops at LOGGED_IN.
The API app is saved into the settings file once Telegram accepts it.
"""

from __future__ import annotations

import asyncio
import contextlib
import sys
import termios
from collections.abc import Iterator
from pathlib import Path
from typing import TextIO

from gateway.config import load_config
from gateway.telegram.account import ConnectionState, TelegramAccount
from gateway.telegram.login import Login, LoginStep, LoginView, save_app_to_config

MAX_PROMPTS = 20  # a script that keeps sending wrong answers ends, too


class _Lines:
    """Lines from stdin read on the event loop (no thread), echo off on request."""

    def __init__(self, stream: TextIO) -> None:
        self._stream = stream
        # Asked now: the pipe transport closes the stream at end of input.
        self._tty = stream.isatty()
        self._reader: asyncio.StreamReader | None = None

    async def read(self, prompt: str, out: TextIO, *, secret: bool = False) -> str | None:
        out.write(prompt)
        out.flush()
        if self._reader is None:
            loop = asyncio.get_running_loop()
            self._reader = asyncio.StreamReader()
            protocol = asyncio.StreamReaderProtocol(self._reader)
            await loop.connect_read_pipe(lambda: protocol, self._stream)
        with self._no_echo() if secret else contextlib.nullcontext():
            line = await self._reader.readline()
        if secret:
            out.write("\n")
        if not line:
            return None
        return line.decode("utf-8", "replace").strip()

    @contextlib.contextmanager
    def _no_echo(self) -> Iterator[None]:
        if not self._tty:
            yield
            return
        fd = self._stream.fileno()
        old = termios.tcgetattr(fd)
        new = list(old)
        new[3] &= ~termios.ECHO
        termios.tcsetattr(fd, termios.TCSADRAIN, new)
        try:
            yield
        finally:
            termios.tcsetattr(fd, termios.TCSADRAIN, old)


async def _step(login: Login, view: LoginView, lines: _Lines, out: TextIO) -> LoginView | None:
    if view.step is LoginStep.NEED_APP:
        api_id = await lines.read("api_id: ", out)
        api_hash = await lines.read("api_hash: ", out, secret=True)
        if api_id is None or api_hash is None:
            return None
        return await login.submit_app(api_id, api_hash)
    if view.step is LoginStep.NEED_PHONE:
        phone = await lines.read("Phone number of the gateway account (+country...): ", out)
        return None if phone is None else await login.submit_phone(phone)
    if view.step is LoginStep.NEED_CODE:
        via = f" ({view.code_via.value})" if view.code_via else ""
        code = await lines.read(f"Code{via}, or empty for a new one: ", out)
        if code is None:
            return None
        return await (login.submit_code(code) if code else login.resend_code())
    if view.step is LoginStep.NEED_PASSWORD:
        hint = f" (hint: {view.password_hint})" if view.password_hint else ""
        password = await lines.read(f"Two-step verification password{hint}: ", out, secret=True)
        return None if password is None else await login.submit_password(password)
    return view


async def run_login(
    config_path: Path, stdin: TextIO = sys.stdin, out: TextIO = sys.stdout, wait: float = 30.0
) -> int:
    """Prompt until the account is signed in; 0 when it is, 1 when input ran out."""
    config = load_config(config_path)
    account = TelegramAccount.from_config(config)
    login = Login(account, save_app=save_app_to_config(config_path))
    lines = _Lines(stdin)
    await account.start()
    try:
        if account.has_app:
            # Learn whether the session is already signed in before asking anything.
            settled = (ConnectionState.CONNECTED, ConnectionState.NEEDS_LOGIN)
            with contextlib.suppress(TimeoutError):
                await account.wait_for(*settled, ConnectionState.LOGGED_OUT, timeout=wait)
        view = login.view
        for _ in range(MAX_PROMPTS):
            if view.step is LoginStep.LOGGED_IN:
                name = view.user.name if view.user else "the gateway account"
                out.write(f"Signed in as {name}.\n")
                return 0
            if view.step is LoginStep.NEED_APP:
                out.write(view.instructions + "\n")
            if view.message:
                out.write(f"! {view.message}\n")
            next_view = await _step(login, view, lines, out)
            if next_view is None:
                out.write("Input ended; not signed in.\n")
                return 1
            view = next_view
        out.write("Too many attempts; not signed in.\n")
        return 1
    finally:
        await asyncio.wait_for(account.stop(), wait)

"""Telegram failures as sentences a household can act on.

Telethon raises one class per RPC error (``PhoneCodeInvalidError``,
``FloodWaitError``...), network trouble as ``ConnectionError``/``OSError``.
:func:`describe` turns any of them into one user-facing sentence; the web UI
and the logs show that, never a Telethon class name.  :func:`describe` never
includes codes, passwords or tokens: RPC errors carry only Telegram's message.
"""

from __future__ import annotations

import asyncio

from telethon import errors as tg

from gateway.errors import LinegramError

__all__ = [
    "FloodWait",
    "NotReady",
    "TelegramError",
    "describe",
    "format_wait",
    "wrap",
]


class TelegramError(LinegramError):
    """A Telegram action failed; ``str()`` is the message for the user."""


class FloodWait(TelegramError):
    """Telegram asked to wait *seconds* before repeating the request."""

    def __init__(self, seconds: int) -> None:
        super().__init__(f"Telegram asks to wait {format_wait(seconds)} before trying again.")
        self.seconds = seconds


class NotReady(TelegramError):
    """There is no Telegram client yet (no API app configured) or it is stopped."""


def format_wait(seconds: int) -> str:
    """``"45 s"``, ``"2 min 5 s"``, ``"1 h 3 min"`` (seconds dropped from an hour on)."""
    seconds = max(0, int(seconds))
    hours, rest = divmod(seconds, 3600)
    minutes, secs = divmod(rest, 60)
    if hours:
        return f"{hours} h {minutes} min" if minutes else f"{hours} h"
    if minutes:
        return f"{minutes} min {secs} s" if secs else f"{minutes} min"
    return f"{secs} s"


_FLOOD_WAITS = (tg.FloodWaitError, tg.FloodPremiumWaitError, tg.FloodTestPhoneWaitError)
_FIXED: tuple[tuple[type[BaseException], str], ...] = (
    (
        tg.PhoneNumberInvalidError,
        "That phone number is not valid. Enter it in international format, e.g. +49 170 1234567.",
    ),
    (tg.PhoneCodeInvalidError, "That code is not right. Check the code Telegram sent you."),
    (tg.PhoneCodeEmptyError, "Enter the code Telegram sent you."),
    (tg.PhoneCodeExpiredError, "That code has expired. Ask for a new code."),
    (tg.PasswordHashInvalidError, "That password is not right."),
    (
        tg.ApiIdInvalidError,
        (
            "Telegram does not accept this api_id and api_hash. Copy both again from"
            " https://my.telegram.org → API development tools."
        ),
    ),
    (
        tg.ApiIdPublishedFloodError,
        (
            "This api_id was published and may no longer be used. Create your own app at"
            " https://my.telegram.org → API development tools."
        ),
    ),
    (
        tg.PhoneNumberBannedError,
        (
            "Telegram has banned this phone number. Only Telegram support can lift that"
            " (recover@telegram.org)."
        ),
    ),
    (
        tg.PhoneNumberUnoccupiedError,
        (
            "There is no Telegram account for this number. Create the account in a Telegram app"
            " first (other apps cannot sign up), then log in here."
        ),
    ),
    (
        tg.PhoneNumberFloodError,
        "Too many login codes were requested for this number. Try again later.",
    ),
    (tg.PhonePasswordFloodError, "Too many wrong passwords. Try again later."),
    (tg.AuthRestartError, "Telegram asks to start the login again. Enter the phone number."),
    (
        tg.SessionRevokedError,
        "The gateway account was logged out (from another device). Log in again.",
    ),
    (
        tg.AuthKeyUnregisteredError,
        "The gateway account is not logged in (or was logged out from another device).",
    ),
    (tg.UserDeactivatedBanError, "Telegram has banned the gateway account."),
    (tg.UserDeactivatedError, "The gateway account was deleted."),
    (
        tg.AccessTokenInvalidError,
        "Telegram does not accept the bot token. Copy it again from @BotFather.",
    ),
    (tg.AccessTokenExpiredError, "The bot token was revoked. Get a new one from @BotFather."),
    (
        tg.BotInlineDisabledError,
        "The bot's inline mode is off. Turn it on with /setinline in @BotFather.",
    ),
)


def describe(exc: BaseException) -> str:
    """One sentence for the user about *exc* (a Telethon, network or our own error)."""
    if isinstance(exc, (TelegramError, *_FLOOD_WAITS)):
        return str(wrap(exc))
    for kind, text in _FIXED:
        if isinstance(exc, kind):
            return text
    if isinstance(exc, tg.RPCError):
        return f"Telegram refused the request ({exc.message})."
    if isinstance(exc, EOFError):  # asyncio.IncompleteReadError: the peer closed the socket
        return "Cannot reach Telegram (the connection was closed). Check the internet connection."
    if isinstance(exc, asyncio.TimeoutError | TimeoutError):
        return "Telegram did not answer in time. Check the internet connection."
    if isinstance(exc, ConnectionError | OSError):
        detail = str(exc) or type(exc).__name__
        return f"Cannot reach Telegram ({detail}). Check the internet connection."
    return f"Unexpected error: {type(exc).__name__}: {exc}"


def wrap(exc: BaseException) -> TelegramError:
    """*exc* as a :class:`TelegramError` (a :class:`FloodWait` for flood waits)."""
    if isinstance(exc, TelegramError):
        return exc
    if isinstance(exc, _FLOOD_WAITS):
        return FloodWait(int(exc.seconds))
    return TelegramError(describe(exc))

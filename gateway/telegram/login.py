"""Signing the gateway account in: a small state machine the web UI drives.

Telegram's user login (https://core.telegram.org/api/auth): ``auth.sendCode``
to the phone number, ``auth.signIn`` with the code, and for accounts with
two-step verification ``auth.checkPassword`` (SRP, computed by Telethon).
Before any of that the gateway needs an *API app* (api_id, api_hash) from
my.telegram.org.

Steps and what moves between them::

    NEED_APP ──submit_app──► NEED_PHONE ──submit_phone──► NEED_CODE ──submit_code──► LOGGED_IN
        ▲  API_ID_INVALID        ▲  code expired,            │ 2FA         ▲
        └────────────────────────┘  restart()                ▼             │
                                                        NEED_PASSWORD ─submit_password

Every failure leaves the machine where the user can fix it and puts one
sentence in :attr:`LoginView.message`: a wrong code stays at NEED_CODE, an
expired one goes back to NEED_PHONE with the number kept (``resend_code``),
a wrong password stays at NEED_PASSWORD with the hint.  Codes and passwords
are never logged; phone numbers are logged masked.
"""

from __future__ import annotations

import asyncio
import enum
import logging
import re
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from telethon import errors as tg
from telethon.tl import functions, types

from gateway.config import Secret, load_config, save_config
from gateway.logs import kv
from gateway.telegram.account import AccountUser, ConnectionState, TelegramAccount
from gateway.telegram.errors import TelegramError, describe

__all__ = [
    "APP_INSTRUCTIONS",
    "CodeDelivery",
    "Login",
    "LoginStep",
    "LoginView",
    "SaveApp",
    "mask_phone",
    "save_app_to_config",
]

log = logging.getLogger(__name__)

CONNECT_WAIT = 20.0  # seconds a submit waits for the connection to Telegram
REQUEST_TIMEOUT = 60.0  # one login request, flood sleeps included

APP_INSTRUCTIONS = (
    "Telegram lets programs sign in only with an API app of their own. Open"
    " https://my.telegram.org and log in with the gateway account's phone number, choose"
    " API development tools and create an app (any title and short name; platform: Other)."
    " Copy its api_id (a number) and api_hash (32 letters and digits) here."
)
_API_HASH = re.compile(r"[0-9a-fA-F]{32}")


class LoginStep(enum.Enum):
    NEED_APP = "need_app"
    NEED_PHONE = "need_phone"
    NEED_CODE = "need_code"
    NEED_PASSWORD = "need_password"
    LOGGED_IN = "logged_in"


class CodeDelivery(enum.Enum):
    """Where Telegram sent the login code."""

    APP = "app"  # a message from "Telegram" in the account's other apps
    SMS = "sms"
    CALL = "call"  # a phone call that reads the code
    FLASH_CALL = "flash_call"  # the code is in the calling number
    MISSED_CALL = "missed_call"  # the last digits of the calling number
    EMAIL = "email"
    FRAGMENT = "fragment"  # an anonymous Fragment number's SMS
    OTHER = "other"


_SENT_TYPES: dict[type, CodeDelivery] = {
    types.auth.SentCodeTypeApp: CodeDelivery.APP,
    types.auth.SentCodeTypeSms: CodeDelivery.SMS,
    types.auth.SentCodeTypeSmsWord: CodeDelivery.SMS,
    types.auth.SentCodeTypeSmsPhrase: CodeDelivery.SMS,
    types.auth.SentCodeTypeFirebaseSms: CodeDelivery.SMS,
    types.auth.SentCodeTypeCall: CodeDelivery.CALL,
    types.auth.SentCodeTypeFlashCall: CodeDelivery.FLASH_CALL,
    types.auth.SentCodeTypeMissedCall: CodeDelivery.MISSED_CALL,
    types.auth.SentCodeTypeEmailCode: CodeDelivery.EMAIL,
    types.auth.SentCodeTypeFragmentSms: CodeDelivery.FRAGMENT,
}
_NEXT_TYPES: dict[type, CodeDelivery] = {
    types.auth.CodeTypeSms: CodeDelivery.SMS,
    types.auth.CodeTypeCall: CodeDelivery.CALL,
    types.auth.CodeTypeFlashCall: CodeDelivery.FLASH_CALL,
    types.auth.CodeTypeMissedCall: CodeDelivery.MISSED_CALL,
    types.auth.CodeTypeFragmentSms: CodeDelivery.FRAGMENT,
}
_WHERE = {
    CodeDelivery.APP: "as a message from “Telegram” in the Telegram app on the account's other"
    " devices",
    CodeDelivery.SMS: "by SMS to {phone}",
    CodeDelivery.CALL: "by a phone call to {phone}",
    CodeDelivery.FLASH_CALL: "as the number of a short call to {phone}",
    CodeDelivery.MISSED_CALL: "as the last digits of the number of a missed call to {phone}",
    CodeDelivery.EMAIL: "by e-mail to the address of the account",
    CodeDelivery.FRAGMENT: "to the account's number on fragment.com",
    CodeDelivery.OTHER: "to {phone}",
}


@dataclass(frozen=True)
class LoginView:
    """What the login page shows.  Nothing secret is in here."""

    step: LoginStep
    instructions: str
    message: str | None = None  # the last problem, for the user
    phone: str = ""  # as Telegram normalised it (digits, no +)
    code_via: CodeDelivery | None = None
    code_length: int | None = None
    next_via: CodeDelivery | None = None  # what resend_code() would use
    resend_after: int | None = None  # seconds Telegram wants before a resend
    password_hint: str = ""
    user: AccountUser | None = None  # LOGGED_IN: who

    @property
    def can_resend(self) -> bool:
        """A new code can be asked for (NEED_CODE, or NEED_PHONE after an expired code)."""
        return bool(self.phone) and self.step in (LoginStep.NEED_CODE, LoginStep.NEED_PHONE)


SaveApp = Callable[[int, Secret], Awaitable[None]]


def save_app_to_config(path: Path) -> SaveApp:
    """A :data:`SaveApp` that writes api_id and api_hash into the settings file at *path*."""

    async def save(api_id: int, api_hash: Secret) -> None:
        config = load_config(path)
        telegram = replace(config.telegram, api_id=api_id, api_hash=api_hash)
        save_config(replace(config, telegram=telegram), path)

    return save


def mask_phone(phone: str) -> str:
    """``+49*******67``: enough to tell numbers apart in a log."""
    digits = re.sub(r"\D", "", phone)
    if len(digits) <= 4:
        return "+" + "*" * len(digits)
    return "+" + digits[:2] + "*" * (len(digits) - 4) + digits[-2:]


class Login:
    """The login of one :class:`~gateway.telegram.account.TelegramAccount`.

    Each ``submit_*`` returns the new :class:`LoginView`; they run one at a
    time.  *save_app* is called once Telegram accepted a new API app (on the
    first code sent), so a mistyped app is never written to the settings.
    """

    def __init__(
        self,
        account: TelegramAccount,
        *,
        save_app: SaveApp | None = None,
        connect_wait: float = CONNECT_WAIT,
    ) -> None:
        self.account = account
        self._save_app = save_app
        self._connect_wait = connect_wait
        self._lock = asyncio.Lock()
        self._phone = ""
        self._phone_code_hash = ""
        self._sent: Any = None
        self._hint = ""
        self._message: str | None = None
        self._step = self._initial_step()

    # -- reading ----------------------------------------------------------------------

    @property
    def step(self) -> LoginStep:
        self._sync_with_account()
        return self._step

    @property
    def view(self) -> LoginView:
        self._sync_with_account()
        step, phone = self._step, self._phone
        display = f"+{phone}" if phone else ""
        if step is LoginStep.NEED_APP:
            return LoginView(step, APP_INSTRUCTIONS, self._message)
        if step is LoginStep.NEED_PHONE:
            return LoginView(
                step,
                "Enter the phone number of the Telegram account the gateway will use, in"
                " international format (+49 170 1234567). Best use an account of its own:"
                " the gateway answers all of its calls and messages.",
                self._message,
                phone=phone,
            )
        if step is LoginStep.NEED_CODE:
            sent = self._sent
            via = _SENT_TYPES.get(type(sent.type), CodeDelivery.OTHER)
            length = getattr(sent.type, "length", None)
            next_via = _NEXT_TYPES.get(type(sent.next_type)) if sent.next_type else None
            where = _WHERE[via].format(phone=display)
            digits = f"{length}-digit " if length else ""
            return LoginView(
                step,
                f"Telegram sent a {digits}login code {where}. Enter it here. Do not send the"
                " code to anyone in Telegram: Telegram then blocks it.",
                self._message,
                phone=phone,
                code_via=via,
                code_length=length,
                next_via=next_via,
                resend_after=sent.timeout,
            )
        if step is LoginStep.NEED_PASSWORD:
            hint = f" (hint: {self._hint})" if self._hint else ""
            return LoginView(
                step,
                "This account has two-step verification. Enter its password" + hint + ".",
                self._message,
                phone=phone,
                password_hint=self._hint,
            )
        user = self.account.user
        who = user.name if user else "the gateway account"
        number = f" (+{user.phone})" if user and user.phone else ""
        return LoginView(step, f"Logged in as {who}{number}.", self._message, user=user)

    # -- steps ------------------------------------------------------------------------

    async def submit_app(self, api_id: int | str, api_hash: str) -> LoginView:
        """NEED_APP: check the format, then use the app (Telegram checks it with the code)."""
        async with self._lock:
            text = str(api_id).strip()
            if not text.isascii() or not text.isdigit() or not 0 < int(text) < 2**31:
                return self._fail("The api_id is the number shown on my.telegram.org.")
            api_hash = api_hash.strip()
            if not _API_HASH.fullmatch(api_hash):
                return self._fail(
                    "The api_hash has 32 letters and digits; copy it from my.telegram.org."
                )
            await self.account.set_app(int(text), Secret(api_hash))
            log.info("telegram login: API app set", extra=kv(api_id=int(text)))
            return self._go(LoginStep.NEED_PHONE)

    async def change_app(self) -> LoginView:
        """Go back to NEED_APP (not while logged in)."""
        async with self._lock:
            if self.step is LoginStep.LOGGED_IN:
                return self._fail("Log out first to use another API app.")
            return self._go(LoginStep.NEED_APP)

    async def submit_phone(self, phone: str) -> LoginView:
        """NEED_PHONE: send a login code to *phone*."""
        async with self._lock:
            if self.step is LoginStep.LOGGED_IN:
                return self._fail("The gateway account is already logged in. Log out first.")
            if self._step is LoginStep.NEED_APP:
                return self._fail(APP_INSTRUCTIONS)
            digits = re.sub(r"[\s().\-]", "", phone.strip()).removeprefix("+")
            if not digits.isascii() or not digits.isdigit() or not 5 <= len(digits) <= 15:
                return self._fail(
                    "Enter the number in international format, e.g. +49 170 1234567.",
                    step=LoginStep.NEED_PHONE,
                )
            self._phone = digits
            return await self._send_code(resend=False)

    async def resend_code(self) -> LoginView:
        """NEED_CODE (or NEED_PHONE after an expired code): send the code again."""
        async with self._lock:
            if not self._phone or self.step not in (LoginStep.NEED_CODE, LoginStep.NEED_PHONE):
                return self._fail("Enter the phone number first.", step=LoginStep.NEED_PHONE)
            return await self._send_code(resend=self._step is LoginStep.NEED_CODE)

    async def submit_code(self, code: str) -> LoginView:
        """NEED_CODE: sign in with the code; may lead to NEED_PASSWORD."""
        async with self._lock:
            if self.step is not LoginStep.NEED_CODE:
                return self._fail("Ask for a code first.")
            digits = re.sub(r"[\s\-]", "", code)
            if not digits:
                return self._fail("Enter the code Telegram sent you.")
            try:
                client = await self._client()
                async with asyncio.timeout(REQUEST_TIMEOUT):
                    user = await client.sign_in(
                        phone=self._phone, code=digits, phone_code_hash=self._phone_code_hash
                    )
            except tg.SessionPasswordNeededError:
                return await self._need_password()
            except tg.PhoneCodeExpiredError as exc:
                self._sent = None
                return self._fail(describe(exc), step=LoginStep.NEED_PHONE)
            except (tg.PhoneNumberUnoccupiedError, tg.PhoneNumberInvalidError) as exc:
                self._sent = None
                return self._fail(describe(exc), step=LoginStep.NEED_PHONE)
            except tg.PhoneCodeHashEmptyError:
                return self._fail("Ask for a new code.", step=LoginStep.NEED_PHONE)
            except tg.AuthRestartError as exc:
                return self._fail(describe(exc), step=LoginStep.NEED_PHONE)
            except Exception as exc:
                return self._fail(describe(exc))  # wrong code, flood, network: stay
            return self._logged_in(user)

    async def submit_password(self, password: str) -> LoginView:
        """NEED_PASSWORD: finish a two-step-verification login."""
        async with self._lock:
            if self.step is not LoginStep.NEED_PASSWORD:
                return self._fail("The password is asked for after the code.")
            if not password:
                return self._fail("Enter the two-step verification password.")
            try:
                client = await self._client()
                async with asyncio.timeout(REQUEST_TIMEOUT):
                    user = await client.sign_in(password=password)
            except tg.PasswordHashInvalidError as exc:
                return self._fail(describe(exc) + self._hint_suffix())
            except tg.SrpIdInvalidError:
                # The SRP parameters changed under us; the next try fetches new ones.
                return self._fail("Telegram asked to try the password again.")
            except tg.AuthRestartError as exc:
                return self._fail(describe(exc), step=LoginStep.NEED_PHONE)
            except Exception as exc:
                return self._fail(describe(exc))
            return self._logged_in(user)

    async def restart(self) -> LoginView:
        """Start over from the phone number (or the API app when none is set)."""
        async with self._lock:
            if self.step is LoginStep.LOGGED_IN:
                return self._fail("The gateway account is logged in. Log out to start over.")
            self._sent = None
            self._phone_code_hash = ""
            step = LoginStep.NEED_PHONE if self.account.has_app else LoginStep.NEED_APP
            return self._go(step)

    async def log_out(self) -> LoginView:
        """Sign the gateway account out and delete its session; back to NEED_PHONE."""
        async with self._lock:
            await self.account.log_out()
            self._phone, self._phone_code_hash, self._sent, self._hint = "", "", None, ""
            step = LoginStep.NEED_PHONE if self.account.has_app else LoginStep.NEED_APP
            return self._go(step)

    # -- internals --------------------------------------------------------------------

    def _initial_step(self) -> LoginStep:
        if not self.account.has_app:
            return LoginStep.NEED_APP
        if self.account.user is not None:
            return LoginStep.LOGGED_IN
        return LoginStep.NEED_PHONE

    def _sync_with_account(self) -> None:
        """Follow what happened outside: a session loaded at start, or revoked remotely."""
        state = self.account.state
        if self.account.user is not None and state is ConnectionState.CONNECTED:
            if self._step is not LoginStep.LOGGED_IN:
                self._step, self._message = LoginStep.LOGGED_IN, None
        elif self._step is LoginStep.LOGGED_IN and state is ConnectionState.LOGGED_OUT:
            self._step = LoginStep.NEED_PHONE if self.account.has_app else LoginStep.NEED_APP
            self._message = self.account.status.error

    async def _client(self) -> Any:
        """The account's client once connected.

        **Raises** :class:`TelegramError` (no connection in time) or the error with
        which Telegram refused the connection (e.g. ``ApiIdInvalidError``).
        """
        await self.account.ensure_client()
        online = (
            ConnectionState.CONNECTED,
            ConnectionState.NEEDS_LOGIN,
            ConnectionState.LOGGED_OUT,
        )
        try:
            status = await self.account.wait_until(
                lambda s: s.state in online or s.refused, timeout=self._connect_wait
            )
        except TimeoutError:
            error = self.account.status.error  # already a sentence, e.g. "Cannot reach..."
            raise TelegramError(
                error or "Cannot reach Telegram yet. Check the internet connection."
            ) from None
        if status.refused:
            raise self.account.refusal or TelegramError(status.error or "Telegram refused.")
        return self.account.client

    async def _send_code(self, *, resend: bool) -> LoginView:
        try:
            client = await self._client()
            async with asyncio.timeout(REQUEST_TIMEOUT):
                if resend and self._phone_code_hash:
                    sent = await client(
                        functions.auth.ResendCodeRequest(self._phone, self._phone_code_hash)
                    )
                else:
                    sent = await client(
                        functions.auth.SendCodeRequest(
                            self._phone,
                            client.api_id,
                            client.api_hash,
                            types.CodeSettings(),
                        )
                    )
        except (tg.ApiIdInvalidError, tg.ApiIdPublishedFloodError) as exc:
            return self._fail(describe(exc), step=LoginStep.NEED_APP)
        except tg.PhoneCodeExpiredError:
            # A resend of an expired code: ask for a fresh one instead.
            self._phone_code_hash = ""
            return await self._send_code(resend=False)
        except Exception as exc:  # invalid/banned number, flood wait, network
            self._sent = None
            return self._fail(describe(exc), step=LoginStep.NEED_PHONE)
        if isinstance(sent, types.auth.SentCodeSuccess):
            return self._logged_in(sent.authorization.user)
        if isinstance(sent.type, types.auth.SentCodeTypeSetUpEmailRequired):
            return self._fail(
                "Telegram wants a login e-mail set up first. Log in once in a Telegram app,"
                " then try again here.",
                step=LoginStep.NEED_PHONE,
            )
        self._sent = sent
        self._phone_code_hash = sent.phone_code_hash
        log.info(
            "telegram login: code sent",
            extra=kv(
                phone=mask_phone(self._phone),
                via=_SENT_TYPES.get(type(sent.type), CodeDelivery.OTHER).value,
            ),
        )
        await self._app_accepted()
        return self._go(LoginStep.NEED_CODE)

    async def _app_accepted(self) -> None:
        settings = self.account.settings
        if self._save_app is None:
            return
        try:
            await self._save_app(settings.api_id, settings.api_hash)
        except Exception:
            # The login goes on; the app must be entered again after a restart.
            log.exception("telegram login: could not save the API app to the settings")

    async def _need_password(self) -> LoginView:
        self._hint = ""
        try:
            client = await self._client()
            async with asyncio.timeout(REQUEST_TIMEOUT):
                password = await client(functions.account.GetPasswordRequest())
            self._hint = password.hint or ""
        except Exception as exc:
            log.warning("telegram login: no password hint: %s", describe(exc))
        log.info("telegram login: two-step verification password needed")
        return self._go(LoginStep.NEED_PASSWORD)

    def _hint_suffix(self) -> str:
        return f" Hint: {self._hint}" if self._hint else ""

    def _logged_in(self, user: Any) -> LoginView:
        self._sent, self._phone_code_hash, self._hint = None, "", ""
        self.account.signed_in(user)
        return self._go(LoginStep.LOGGED_IN)

    def _go(self, step: LoginStep) -> LoginView:
        self._step, self._message = step, None
        return self.view

    def _fail(self, message: str, *, step: LoginStep | None = None) -> LoginView:
        if step is not None:
            self._step = step
        self._message = message
        log.info("telegram login: %s", message, extra=kv(step=self._step.value))
        return self.view

"""Signing in: login codes, two-step verification, bot tokens and logging out.

The flow Telethon drives (core.telegram.org/api/auth):

    auth.sendCode(phone, api_id, api_hash)  -> auth.SentCode(type app|sms, phone_code_hash)
    auth.signIn(phone, hash, code)          -> auth.Authorization
                                               | auth.AuthorizationSignUpRequired (no account)
                                               | 401 SESSION_PASSWORD_NEEDED (2FA on)
    account.getPassword                     -> account.Password(current_algo, srp_B, srp_id)
    auth.checkPassword(InputCheckPasswordSRP) -> auth.Authorization | PASSWORD_HASH_INVALID
    auth.importBotAuthorization(token)      -> auth.Authorization | ACCESS_TOKEN_INVALID/EXPIRED
    auth.logOut                             -> auth.LoggedOut (the key is signed out)

A code goes to the account's other signed-in devices as a message from 777000
("Telegram") when it has any (SentCodeTypeApp), otherwise by "SMS" (only
readable through `cloud.state.last_code`).
"""

from __future__ import annotations

import os
from typing import Any

from telethon.tl import functions, types

from simcloud.cloud import Caller, Cloud, RpcError, bad_request, handler
from simcloud.history import history_of
from simcloud.srp import Challenge, new_algo
from simcloud.state import CODE_LENGTH, SERVICE_USER_ID, SimUser, State, normalize_phone, state_of

LOGIN_CODE_TEXT = (
    "Login code: {code}. Do not give this code to anyone, even if they say they are "
    "from Telegram!\n\nThis code can be used to log in to your Telegram account. "
    "We never ask it for anything else.\n\nIf you didn't request this code by trying "
    "to log in on another device, simply ignore this message."
)


def _phone(raw: str) -> str:
    digits = normalize_phone(raw)
    if digits is None:
        raise bad_request("PHONE_NUMBER_INVALID")
    return digits


def _authorization(state: State, caller: Caller, user: SimUser) -> types.auth.Authorization:
    state.authorize(caller.auth_key_id, user)
    return types.auth.Authorization(user=state.user_view(user, user))


def _deliver_code(cloud: Cloud, user: SimUser | None, caller: Caller, code: str) -> Any:
    """Send the code in-app when the account has another signed-in device, else by SMS."""
    state = state_of(cloud)
    if user is None or not [k for k in state.keys_of(user.id) if k != caller.auth_key_id]:
        return types.auth.SentCodeTypeSms(length=CODE_LENGTH)
    text = LOGIN_CODE_TEXT.format(code=code)
    bold = types.MessageEntityBold(offset=text.index(code), length=len(code))
    history_of(cloud).send(state.user(SERVICE_USER_ID), user, text, entities=[bold])
    return types.auth.SentCodeTypeApp(length=CODE_LENGTH)


@handler(functions.auth.SendCodeRequest)
async def send_code(
    cloud: Cloud, caller: Caller, req: functions.auth.SendCodeRequest
) -> types.auth.SentCode:
    state = state_of(cloud)
    state.require_app(req.api_id, req.api_hash)
    phone = _phone(req.phone_number)
    sent = state.issue_code(phone)
    code_type = _deliver_code(cloud, state.by_phone(phone), caller, sent.code)
    return types.auth.SentCode(
        type=code_type,
        phone_code_hash=sent.phone_code_hash,
        next_type=types.auth.CodeTypeSms()
        if isinstance(code_type, types.auth.SentCodeTypeApp)
        else None,
        timeout=None,
    )


@handler(functions.auth.ResendCodeRequest)
async def resend_code(
    cloud: Cloud, caller: Caller, req: functions.auth.ResendCodeRequest
) -> types.auth.SentCode:
    state = state_of(cloud)
    phone = _phone(req.phone_number)
    old = state.codes.get(req.phone_code_hash)
    if old is None or old.phone != phone or state.code_expired(old):
        raise bad_request("PHONE_CODE_EXPIRED")
    # The next type is SMS; the hash stays, with a fresh code.
    fresh = state.issue_code(phone, old.phone_code_hash)
    return types.auth.SentCode(
        type=types.auth.SentCodeTypeSms(length=CODE_LENGTH),
        phone_code_hash=fresh.phone_code_hash,
    )


@handler(functions.auth.CancelCodeRequest)
async def cancel_code(cloud: Cloud, caller: Caller, req: functions.auth.CancelCodeRequest) -> bool:
    state_of(cloud).codes.pop(req.phone_code_hash, None)
    return True


@handler(functions.auth.SignInRequest)
async def sign_in(cloud: Cloud, caller: Caller, req: functions.auth.SignInRequest) -> Any:
    state = state_of(cloud)
    phone = _phone(req.phone_number)
    if not req.phone_code_hash:
        raise bad_request("PHONE_CODE_HASH_EMPTY")
    if not req.phone_code:
        raise bad_request("PHONE_CODE_EMPTY")
    sent = state.codes.get(req.phone_code_hash)
    if sent is None or sent.phone != phone:
        raise bad_request("PHONE_CODE_EXPIRED")
    if state.code_expired(sent):
        del state.codes[sent.phone_code_hash]
        raise bad_request("PHONE_CODE_EXPIRED")
    if req.phone_code != sent.code:
        raise bad_request("PHONE_CODE_INVALID")
    user = state.by_phone(phone)
    if user is None:
        # The code stays valid for auth.signUp, which third-party apps may not call.
        return types.auth.AuthorizationSignUpRequired()
    del state.codes[sent.phone_code_hash]
    if user.password is not None:
        state.pending_password[caller.auth_key_id] = user.id
        raise RpcError(401, "SESSION_PASSWORD_NEEDED")
    return _authorization(state, caller, user)


def _password_owner(state: State, caller: Caller) -> SimUser:
    """The account whose password this key may ask for: signed in, or halfway through 2FA."""
    user = state.user_of(caller)
    if user is None:
        pending = state.pending_password.get(caller.auth_key_id)
        if pending is None:
            raise RpcError(401, "AUTH_KEY_UNREGISTERED")
        user = state.user(pending)
    return user


@handler(functions.account.GetPasswordRequest)
async def get_password(
    cloud: Cloud, caller: Caller, req: functions.account.GetPasswordRequest
) -> types.account.Password:
    state = state_of(cloud)
    user = _password_owner(state, caller)
    common: dict[str, Any] = dict(
        new_algo=new_algo(),
        new_secure_algo=types.SecurePasswordKdfAlgoSHA512(salt=os.urandom(8)),
        secure_random=os.urandom(32),
    )
    if user.password is None:
        return types.account.Password(has_password=False, **common)
    challenge = Challenge.create(user.id, user.password)
    state.srp_challenges[challenge.srp_id] = challenge
    return types.account.Password(
        has_password=True,
        current_algo=user.password.algo(),
        srp_B=challenge.srp_b,
        srp_id=challenge.srp_id,
        hint=user.password.hint or None,
        **common,
    )


def check_password(state: State, user: SimUser, check: Any) -> None:
    """Verify an InputCheckPasswordSRP for `user` (also used by password-protected buttons)."""
    if user.password is None or not isinstance(check, types.InputCheckPasswordSRP):
        raise bad_request("PASSWORD_HASH_INVALID")
    challenge = state.srp_challenges.pop(check.srp_id, None)
    if challenge is None or challenge.user_id != user.id:
        raise bad_request("SRP_ID_INVALID")
    if not challenge.accepts(user.password, check.A, check.M1):
        raise bad_request("PASSWORD_HASH_INVALID")


@handler(functions.auth.CheckPasswordRequest)
async def check_password_request(
    cloud: Cloud, caller: Caller, req: functions.auth.CheckPasswordRequest
) -> types.auth.Authorization:
    state = state_of(cloud)
    user = _password_owner(state, caller)
    check_password(state, user, req.password)
    return _authorization(state, caller, user)


@handler(functions.auth.ImportBotAuthorizationRequest)
async def import_bot_authorization(
    cloud: Cloud, caller: Caller, req: functions.auth.ImportBotAuthorizationRequest
) -> types.auth.Authorization:
    state = state_of(cloud)
    state.require_app(req.api_id, req.api_hash)
    bot_id, _, secret = req.bot_auth_token.partition(":")
    bot = state.users.get(int(bot_id)) if bot_id.isdigit() else None
    if bot is None or not bot.bot:
        raise bad_request("ACCESS_TOKEN_INVALID")
    if secret in bot.revoked_secrets:
        raise bad_request("ACCESS_TOKEN_EXPIRED")
    if secret != bot.bot_secret:
        raise bad_request("ACCESS_TOKEN_INVALID")
    return _authorization(state, caller, bot)


@handler(functions.auth.LogOutRequest)
async def log_out(cloud: Cloud, caller: Caller, req: functions.auth.LogOutRequest) -> Any:
    state = state_of(cloud)
    state.require_user(caller)
    state.log_out(caller.auth_key_id)
    return types.auth.LoggedOut()

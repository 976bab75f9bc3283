"""Who exists in the simulated Telegram: accounts, phones, usernames, contacts, blocks,
privacy rules, 2FA passwords, bots, registered apps, login codes and signed-in keys.

Everything here is synchronous bookkeeping; the RPC handlers (`auth`, `users`,
`messages`, `bots`, `phone`) read and change it.  Tests set the world up with
`add_user`, `add_bot`, `add_app` and read login codes with `last_code`.

Access hashes are per viewer, as in Telegram: the `access_hash` a user sees for
another user is derived from (cloud secret, viewer id, target id), so a hash
learnt by one account is useless to another.
"""

from __future__ import annotations

import hashlib
import os
import re
import secrets
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Literal, cast

from telethon.tl import types

from simcloud.cloud import Caller, RpcError, bad_request
from simcloud.srp import Challenge, PasswordVerifier

if TYPE_CHECKING:
    from simcloud.cloud import Cloud

SERVICE_USER_ID = 777000  # "Telegram": sends login codes and service notices
FIRST_USER_ID = 100_000_001  # below 2**31: legacy inline message ids pack it in 32 bits
CODE_LENGTH = 5

RuleKind = Literal[
    "allow_all",
    "allow_contacts",
    "allow_users",
    "disallow_all",
    "disallow_contacts",
    "disallow_users",
]
_RULE_CLASSES: dict[RuleKind, str] = {
    "allow_all": "AllowAll",
    "allow_contacts": "AllowContacts",
    "allow_users": "AllowUsers",
    "disallow_all": "DisallowAll",
    "disallow_contacts": "DisallowContacts",
    "disallow_users": "DisallowUsers",
}
_USERNAME = re.compile(r"[A-Za-z][A-Za-z0-9_]{3,31}")
PHONE_CALL = "PhoneCall"  # privacy key names: the TL class name without the prefix
PHONE_P2P = "PhoneP2P"


@dataclass(frozen=True)
class PrivacyRule:
    """One privacy rule, e.g. PrivacyRule("allow_users", frozenset({42}))."""

    kind: RuleKind
    users: frozenset[int] = frozenset()

    def to_tl(self) -> Any:
        cls = getattr(types, "PrivacyValue" + _RULE_CLASSES[self.kind])
        return cls(sorted(self.users)) if self.kind.endswith("_users") else cls()


# Telegram's defaults: everybody may call; peer-to-peer only with contacts
# (help.getConfig says so with default_p2p_contacts).
DEFAULT_PRIVACY: dict[str, tuple[PrivacyRule, ...]] = {
    PHONE_CALL: (PrivacyRule("allow_all"),),
    PHONE_P2P: (PrivacyRule("allow_contacts"), PrivacyRule("disallow_all")),
}


@dataclass(frozen=True)
class ContactName:
    first_name: str
    last_name: str = ""


@dataclass(eq=False)
class SimUser:
    """An account: a person (with a phone) or a bot (with a token)."""

    id: int
    first_name: str
    last_name: str = ""
    username: str | None = None
    phone: str | None = None  # digits only, as Telegram shows it
    bot: bool = False
    service: bool = False
    password: PasswordVerifier | None = None
    contacts: dict[int, ContactName] = field(default_factory=dict)
    blocked: set[int] = field(default_factory=set)
    privacy: dict[str, tuple[PrivacyRule, ...]] = field(default_factory=dict)
    # bots only
    bot_secret: str = ""
    revoked_secrets: set[str] = field(default_factory=set)
    bot_inline: bool = False
    bot_inline_placeholder: str = ""
    bot_inline_feedback: bool = False  # @BotFather /setinlinefeedback (always, not a share)
    bot_owner_id: int | None = None
    bot_commands: list[types.BotCommand] = field(default_factory=list)

    @property
    def token(self) -> str:
        """The bot token "id:secret" (empty for people)."""
        return f"{self.id}:{self.bot_secret}" if self.bot else ""

    def __repr__(self) -> str:
        kind = "bot" if self.bot else "user"
        return f"<SimUser {kind} {self.id} {self.username or self.first_name!r}>"


@dataclass
class LoginCode:
    """A code sent by auth.sendCode; valid until used or `State.code_lifetime` passes."""

    phone: str
    code: str
    phone_code_hash: str
    sent_at: float


def normalize_phone(phone: str) -> str | None:
    """Digits of a phone number as Telethon sends them, or None when malformed."""
    digits = re.sub(r"[+()\s-]", "", phone)
    if not digits.isdigit() or not 5 <= len(digits) <= 15:
        return None
    return digits


def privacy_key_name(key: Any) -> str:
    """ "PhoneCall" for InputPrivacyKeyPhoneCall / PrivacyKeyPhoneCall / "PhoneCall"."""
    if isinstance(key, str):
        return key
    name = type(key).__name__
    for prefix in ("InputPrivacyKey", "PrivacyKey"):
        if name.startswith(prefix):
            return name[len(prefix) :]
    raise bad_request("PRIVACY_KEY_INVALID")


class State:
    """The accounts of the simulated cloud and everything attached to them."""

    def __init__(self, clock: Callable[[], float] = time.time) -> None:
        self.clock = clock
        self.users: dict[int, SimUser] = {}
        self.apps: dict[int, str] = {}
        # auth_key_id -> user_id of the signed-in account on that key
        self.authorizations: dict[int, int] = {}
        # auth_key_id -> user_id that passed the code but still owes its 2FA password
        self.pending_password: dict[int, int] = {}
        self.srp_challenges: dict[int, Challenge] = {}
        self.codes: dict[str, LoginCode] = {}  # by phone_code_hash
        self.code_lifetime = 300.0
        # How long getInlineBotResults / getBotCallbackAnswer wait for the bot.
        self.bot_response_timeout = 10.0
        # (user, bot) pairs where the user opened the bot's chat: the bot may write
        self.bot_chats: set[tuple[int, int]] = set()
        # (viewer, target) pairs that have met; bots may use access_hash 0 for them
        self.met: set[tuple[int, int]] = set()
        self._next_id = FIRST_USER_ID
        self._secret = os.urandom(16)
        self.add_user(first_name="Telegram", user_id=SERVICE_USER_ID, service=True)

    # -- accounts ------------------------------------------------------------------

    def add_user(
        self,
        phone: str | None = None,
        first_name: str = "User",
        last_name: str = "",
        username: str | None = None,
        password: str | None = None,
        hint: str = "",
        bot: bool = False,
        *,
        user_id: int | None = None,
        service: bool = False,
    ) -> SimUser:
        """Register an account; `phone` like "+999 66 1234" (people) or None (bots)."""
        digits = None
        if phone is not None:
            digits = normalize_phone(phone)
            if digits is None:
                raise ValueError(f"malformed phone number {phone!r}")
            if self.by_phone(digits) is not None:
                raise ValueError(f"phone {phone} is taken")
        if username is not None:
            if not _USERNAME.fullmatch(username):
                raise ValueError(f"invalid username {username!r}")
            if self.by_username(username) is not None:
                raise ValueError(f"username {username} is taken")
        if user_id is None:
            user_id = self._next_id
            self._next_id += 1
        user = SimUser(
            id=user_id,
            first_name=first_name,
            last_name=last_name,
            username=username,
            phone=digits,
            bot=bot,
            service=service,
        )
        if password is not None:
            user.password = PasswordVerifier.create(password, hint)
        self.users[user.id] = user
        return user

    def add_bot(
        self,
        username: str,
        owner: SimUser | None = None,
        first_name: str | None = None,
        inline: bool = True,
        inline_placeholder: str = "Search...",
        inline_feedback: bool = False,
    ) -> tuple[SimUser, str]:
        """Create a bot as @BotFather would; returns (bot, token "id:secret").

        `inline_feedback` (off by default, as on Telegram) makes the cloud tell the
        bot about every inline result a user sends (UpdateBotInlineSend).
        """
        if not username.lower().endswith("bot"):
            raise ValueError("bot usernames end in 'bot'")
        bot = self.add_user(first_name=first_name or username, username=username, bot=True)
        bot.bot_secret = secrets.token_urlsafe(26)[:35]
        bot.bot_inline = inline
        bot.bot_inline_placeholder = inline_placeholder if inline else ""
        bot.bot_inline_feedback = inline_feedback
        bot.bot_owner_id = owner.id if owner else None
        return bot, bot.token

    def revoke_bot_token(self, bot: SimUser) -> str:
        """/revoke at @BotFather: the old token answers ACCESS_TOKEN_EXPIRED."""
        bot.revoked_secrets.add(bot.bot_secret)
        bot.bot_secret = secrets.token_urlsafe(26)[:35]
        for key, uid in list(self.authorizations.items()):
            if uid == bot.id:
                del self.authorizations[key]
        return bot.token

    def add_app(self, api_id: int, api_hash: str) -> None:
        """Register an app (my.telegram.org); sendCode from other apps gets API_ID_INVALID."""
        self.apps[api_id] = api_hash

    def app_valid(self, api_id: int, api_hash: str) -> bool:
        return self.apps.get(api_id) == api_hash

    def require_app(self, api_id: int, api_hash: str) -> None:
        """Refuse sign-ins from apps that were never registered (API_ID_INVALID)."""
        if not self.app_valid(api_id, api_hash):
            raise bad_request("API_ID_INVALID")

    def set_password(self, user: SimUser, password: str | None, hint: str = "") -> None:
        """Enable (or with None disable) two-step verification."""
        user.password = PasswordVerifier.create(password, hint) if password is not None else None

    def user(self, user_id: int) -> SimUser:
        return self.users[user_id]

    def by_phone(self, phone: str) -> SimUser | None:
        digits = normalize_phone(phone)
        return next((u for u in self.users.values() if u.phone and u.phone == digits), None)

    def by_username(self, username: str) -> SimUser | None:
        name = username.lower()
        return next(
            (u for u in self.users.values() if u.username and u.username.lower() == name), None
        )

    def now(self) -> int:
        return int(self.clock())

    # -- sign-in -------------------------------------------------------------------

    def user_of(self, caller: Caller) -> SimUser | None:
        uid = self.authorizations.get(caller.auth_key_id)
        return self.users.get(uid) if uid is not None else None

    def require_user(self, caller: Caller) -> SimUser:
        user = self.user_of(caller)
        if user is None:
            raise RpcError(401, "AUTH_KEY_UNREGISTERED")
        return user

    def require_person(self, caller: Caller) -> SimUser:
        """The signed-in account, which must not be a bot (BOT_METHOD_INVALID)."""
        user = self.require_user(caller)
        if user.bot:
            raise bad_request("BOT_METHOD_INVALID")
        return user

    def require_bot(self, caller: Caller) -> SimUser:
        """The signed-in account, which must be a bot (USER_BOT_REQUIRED)."""
        user = self.require_user(caller)
        if not user.bot:
            raise bad_request("USER_BOT_REQUIRED")
        return user

    def authorize(self, auth_key_id: int, user: SimUser) -> None:
        self.pending_password.pop(auth_key_id, None)
        self.authorizations[auth_key_id] = user.id

    def log_out(self, auth_key_id: int) -> bool:
        return self.authorizations.pop(auth_key_id, None) is not None

    def keys_of(self, user_id: int) -> list[int]:
        """Auth keys signed in as `user_id` (its "devices")."""
        return [key for key, uid in self.authorizations.items() if uid == user_id]

    def issue_code(self, phone: str, phone_code_hash: str | None = None) -> LoginCode:
        """A fresh login code for `phone` (under a new hash unless resending)."""
        digits = normalize_phone(phone)
        if digits is None:
            raise bad_request("PHONE_NUMBER_INVALID")
        code = "".join(secrets.choice("0123456789") for _ in range(CODE_LENGTH))
        sent = LoginCode(digits, code, phone_code_hash or secrets.token_hex(9), self.clock())
        self.codes[sent.phone_code_hash] = sent
        return sent

    def last_code(self, phone: str) -> str:
        """The most recent login code sent to `phone` (KeyError if none was sent)."""
        digits = normalize_phone(phone)
        sent = [c for c in self.codes.values() if c.phone == digits]
        if not sent:
            raise KeyError(f"no login code was sent to {phone}")
        return max(sent, key=lambda c: c.sent_at).code

    def code_expired(self, sent: LoginCode) -> bool:
        return self.clock() - sent.sent_at > self.code_lifetime

    # -- what one account sees of another -----------------------------------------

    def access_hash(self, viewer: SimUser, target: SimUser) -> int:
        digest = hashlib.sha256(
            self._secret + viewer.id.to_bytes(8, "big") + target.id.to_bytes(8, "big")
        ).digest()
        return int.from_bytes(digest[:8], "big", signed=True) or 1

    def hash_ok(self, viewer: SimUser, target: SimUser, access_hash: int) -> bool:
        if access_hash == self.access_hash(viewer, target):
            return True
        # Bots may leave the hash out for users they have talked to.
        return viewer.bot and access_hash == 0 and (viewer.id, target.id) in self.met

    def meet(self, a: SimUser, b: SimUser) -> None:
        self.met.add((a.id, b.id))
        self.met.add((b.id, a.id))

    def user_view(self, target: SimUser, viewer: SimUser) -> types.User:
        """`target` as a types.User for `viewer` (its access hash, contact name, phone)."""
        is_self = target is viewer
        contact = viewer.contacts.get(target.id)
        phone_visible = is_self or viewer.id in target.contacts or contact is not None
        return types.User(
            id=target.id,
            is_self=is_self,
            contact=contact is not None,
            mutual_contact=contact is not None and viewer.id in target.contacts,
            bot=target.bot,
            bot_nochats=target.bot or None,
            bot_info_version=1 if target.bot else None,
            bot_inline_placeholder=target.bot_inline_placeholder if target.bot_inline else None,
            verified=target.service or None,
            support=target.service or None,
            access_hash=self.access_hash(viewer, target),
            first_name=contact.first_name if contact else target.first_name,
            last_name=(contact.last_name if contact else target.last_name) or None,
            username=target.username,
            phone=target.phone if phone_visible and not target.bot else None,
            status=None if target.bot else types.UserStatusRecently(),
        )

    def views(self, viewer: SimUser, targets: Iterable[SimUser]) -> list[types.User]:
        seen: dict[int, types.User] = {}
        for t in targets:
            seen.setdefault(t.id, self.user_view(t, viewer))
        return list(seen.values())

    def resolve_user(self, viewer: SimUser, ref: Any, error: str = "USER_ID_INVALID") -> SimUser:
        """The account an InputUser / InputPeer names, checking `viewer`'s access hash."""
        if isinstance(ref, (types.InputUserSelf, types.InputPeerSelf)):
            return viewer
        if isinstance(ref, (types.InputUser, types.InputPeerUser)):
            target = self.users.get(ref.user_id)
            if target is not None and self.hash_ok(viewer, target, ref.access_hash):
                return target
        raise bad_request(error)

    def resolve_bot(self, viewer: SimUser, ref: Any) -> SimUser:
        """Like resolve_user for arguments that must name a bot (BOT_INVALID)."""
        bot = self.resolve_user(viewer, ref, "BOT_INVALID")
        if not bot.bot:
            raise bad_request("BOT_INVALID")
        return bot

    def resolve_peer(self, viewer: SimUser, ref: Any) -> SimUser:
        """Like resolve_user for InputPeer arguments (PEER_ID_INVALID); only private chats."""
        return self.resolve_user(viewer, ref, "PEER_ID_INVALID")

    # -- contacts, blocks, privacy ------------------------------------------------

    def add_contact(
        self, owner: SimUser, target: SimUser, first_name: str | None = None, last_name: str = ""
    ) -> None:
        owner.contacts[target.id] = ContactName(first_name or target.first_name, last_name)
        self.meet(owner, target)

    def remove_contact(self, owner: SimUser, target: SimUser) -> None:
        owner.contacts.pop(target.id, None)

    def is_contact(self, owner: SimUser, target: SimUser) -> bool:
        """True when `target` is in `owner`'s contact list."""
        return target.id in owner.contacts

    def block(self, by: SimUser, whom: SimUser) -> None:
        by.blocked.add(whom.id)

    def unblock(self, by: SimUser, whom: SimUser) -> None:
        by.blocked.discard(whom.id)

    def is_blocked(self, by: SimUser, whom: SimUser) -> bool:
        """True when `by` has blocked `whom`."""
        return whom.id in by.blocked

    def privacy_rules(self, user: SimUser, key: Any) -> tuple[PrivacyRule, ...]:
        name = privacy_key_name(key)
        return user.privacy.get(name, DEFAULT_PRIVACY.get(name, (PrivacyRule("allow_all"),)))

    def set_privacy(self, user: SimUser, key: Any, rules: Iterable[PrivacyRule]) -> None:
        """account.setPrivacy, e.g. set_privacy(u, "PhoneCall", [PrivacyRule("disallow_all")])."""
        user.privacy[privacy_key_name(key)] = tuple(rules)

    def allows(self, owner: SimUser, key: Any, viewer: SimUser) -> bool:
        """Whether `owner`'s privacy rules for `key` let `viewer` through.

        Rules naming users win over the general ones (disallow before allow), as
        in Telegram's apps where "always/never share with" are exceptions; then
        the general rules apply in order; no matching rule means no.
        """
        if owner is viewer:
            return True
        rules = self.privacy_rules(owner, key)
        for kind in ("disallow_users", "allow_users"):
            if any(r.kind == kind and viewer.id in r.users for r in rules):
                return kind == "allow_users"
        is_contact = viewer.id in owner.contacts
        for rule in rules:
            if rule.kind == "allow_all":
                return True
            if rule.kind == "disallow_all":
                return False
            if rule.kind in ("allow_contacts", "disallow_contacts") and is_contact:
                return rule.kind == "allow_contacts"
        return False

    def may_call(self, caller: SimUser, callee: SimUser) -> bool:
        """phone.requestCall from `caller` to `callee` passes block and call privacy."""
        if callee.bot or caller.bot or callee.service or callee is caller:
            return False
        if self.is_blocked(callee, caller):
            return False
        return self.allows(callee, PHONE_CALL, caller)

    def may_p2p(self, a: SimUser, b: SimUser) -> bool:
        """Both sides' peer-to-peer privacy allow a direct media path."""
        return self.allows(a, PHONE_P2P, b) and self.allows(b, PHONE_P2P, a)

    def rules_from_input(self, viewer: SimUser, rules: Iterable[Any]) -> list[PrivacyRule]:
        """InputPrivacyValue* (account.setPrivacy) -> PrivacyRule; unknown kinds refused."""
        by_class = {v: k for k, v in _RULE_CLASSES.items()}
        out: list[PrivacyRule] = []
        for rule in rules:
            kind = by_class.get(type(rule).__name__.removeprefix("InputPrivacyValue"))
            if kind is None:
                raise bad_request("PRIVACY_VALUE_INVALID")
            users: frozenset[int] = frozenset()
            if kind.endswith("_users"):
                users = frozenset(self.resolve_user(viewer, u).id for u in rule.users)
            out.append(PrivacyRule(kind, users))
        return out


def state_of(cloud: Cloud) -> State:
    """The cloud's State (attached by simcloud.world.build_cloud)."""
    return cast(State, vars(cloud)["state"])

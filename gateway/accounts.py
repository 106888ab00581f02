"""Console admin accounts: who may use the console and the admin API, and what they may see.

Does: create the first account (`scimgate admin create`), invite further ones (invite -> accept ->
confirm, as members go; the invitation e-mail is an `admin_invitation` outbox message), hash
passwords with Argon2id, check logins with throttling per client address and account (failed
attempts are `admin.login_failed` events, so every web node sees them; Argon2 runs outside any
transaction), keep the record of console sessions (only a SHA-256 of each
session id; a session ends at sign-out, at a password change and with its account), issue and
revoke admin API keys, and answer "which organizations may this account see" (`Principal`).
Does not: speak HTTP (cookies and CSRF are gateway.admin's) nor send mail (the outbox worker does).
"""

from __future__ import annotations

import base64
import hashlib
import json
import re
import secrets
import threading
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError
from cryptography.fernet import Fernet, InvalidToken
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.kdf.hkdf import HKDF
from itsdangerous import BadSignature, URLSafeSerializer
from sqlalchemy import delete, func, select, text, update
from sqlalchemy.orm import Session

from gateway.errors import Conflict, GatewayError, InvalidInput, InvalidTransition, NotFound
from gateway.outbox.queue import enqueue
from gateway.store import Database
from gateway.store.models import (
    ADMIN_ROLES,
    ApiToken,
    ConsoleAdmin,
    ConsoleAdminOrg,
    ConsoleSession,
    Event,
    Organization,
    utcnow,
)
from gateway.tokens import IssuedToken, issue_token, revoke_token, verify_token

ROLE_LABELS = {
    "provider_admin": "Provider admin",
    "service_user": "Service user",
    "org_admin": "Org admin",
}
ADMIN_STATUSES = ("invited", "accepted", "confirmed")
MIN_PASSWORD_LENGTH = 12
# Five wrong passwords for an account from one address within fifteen minutes lock that address
# out of that account until the window passes (LoginLimits; the console takes them from config).
THROTTLE_WINDOW = timedelta(minutes=15)
THROTTLE_LIMIT = 5
# Argon2 runs of logins at once in one process, and how long a login waits for a turn before it
# is told to retry. A flood from many addresses then costs the machine at most one core per web
# process, and holds at most one thread each: SCIM keeps the rest. (Argon2 releases the GIL.)
_ARGON2_SLOTS = threading.BoundedSemaphore(1)
ARGON2_WAIT_SECONDS = 0.25
# PostgreSQL advisory lock space of the login throttle (pg_advisory_xact_lock's two-key form).
_LOGIN_LOCK_SPACE = 0x5C1A
# A console session's last_seen_at is written at most this often, so every page is not a write.
SESSION_SEEN_RESOLUTION = timedelta(minutes=1)
_EMAIL = re.compile(r"^[^@\s]+@[^@\s]+\.[^@\s]+$")
# Argon2id with the library's defaults (RFC 9106's second recommended profile).
_hasher = PasswordHasher()
# Verified when the e-mail is unknown, so a wrong address costs as long as a wrong password.
_DUMMY_HASH = _hasher.hash("scimgate: no such account")


class Forbidden(GatewayError):
    """The account is signed in but its role does not allow this."""


class LoginThrottled(GatewayError):
    """Too many failed logins from this client address (for this account, or at all) lately."""

    def __init__(
        self, message: str, *, retry_after: int = int(THROTTLE_WINDOW.total_seconds())
    ) -> None:
        super().__init__(message)
        self.retry_after = retry_after  # seconds


class LoginBusy(LoginThrottled):
    """Every password-checking slot of this process is taken (a login flood): retry soon."""


@dataclass(frozen=True)
class Principal:
    """A signed-in console account as the rest of the console sees it."""

    admin_id: str
    email: str
    role: str
    org_ids: frozenset[str] = field(default_factory=frozenset)

    @property
    def actor(self) -> str:
        return f"admin:{self.admin_id}"

    @property
    def sees_every_org(self) -> bool:
        return self.role in ("provider_admin", "service_user")

    @property
    def manages_accounts(self) -> bool:
        return self.role == "provider_admin"

    def may_see(self, org_id: str) -> bool:
        return self.sees_every_org or org_id in self.org_ids

    def org(self, session: Session, org_id: str) -> Organization:
        """The organization, if this account may see it. One that exists but is not theirs gets
        the same answer as one that does not exist, so ids of other clients reveal nothing."""
        org = session.get(Organization, org_id) if self.may_see(org_id) else None
        if org is None:
            raise NotFound(f"no organization with id {org_id!r}")
        return org

    def require_accounts(self) -> None:
        if not self.manages_accounts:
            raise Forbidden("only a provider admin manages console accounts")

    def require_provider(self) -> None:
        if not self.sees_every_org:
            raise Forbidden("only provider admins and service users do this")


def principal_of(session: Session, admin: ConsoleAdmin) -> Principal:
    org_ids = frozenset(
        session.scalars(select(ConsoleAdminOrg.org_id).where(ConsoleAdminOrg.admin_id == admin.id))
    )
    return Principal(admin.id, admin.email, admin.role, org_ids)


# --- passwords ------------------------------------------------------------------------------------


def check_password_strength(password: str) -> None:
    if len(password) < MIN_PASSWORD_LENGTH:
        raise InvalidInput(f"the password needs at least {MIN_PASSWORD_LENGTH} characters")
    if len(password) > 1024:
        raise InvalidInput("the password is longer than 1024 characters")


def hash_password(password: str) -> str:
    check_password_strength(password)
    return _hasher.hash(password)


def _password_matches(stored: str | None, password: str) -> bool:
    try:
        return _hasher.verify(stored or _DUMMY_HASH, password) and stored is not None
    except (VerificationError, InvalidHashError):
        return False


# --- creating and inviting ------------------------------------------------------------------------


def _clean_email(email: str) -> str:
    email = (email or "").strip()
    if not _EMAIL.match(email) or len(email) > 320:
        raise InvalidInput(f"{email!r} is not an e-mail address")
    return email


def _check_role(role: str) -> None:
    if role not in ADMIN_ROLES:
        raise InvalidInput(f"role must be one of {', '.join(ADMIN_ROLES)}, not {role!r}")


def _event(session: Session, actor: str, type_: str, admin: ConsoleAdmin, **detail: object) -> None:
    session.add(
        Event(
            org_id=None,
            actor=actor,
            type=type_,
            target_type="console_admin",
            target_id=admin.id,
            detail={"email": admin.email, **detail},
        )
    )


def _new_admin(
    session: Session, email: str, role: str, name: str | None, org_ids: Iterable[str]
) -> ConsoleAdmin:
    email = _clean_email(email)
    _check_role(role)
    if session.scalar(select(ConsoleAdmin.id).where(ConsoleAdmin.email_lower == email.lower())):
        raise Conflict(f"a console account for {email} exists already")
    admin = ConsoleAdmin(email=email, email_lower=email.lower(), name=name or None, role=role)
    session.add(admin)
    session.flush()
    set_admin_orgs(session, admin, org_ids)
    return admin


def set_admin_orgs(session: Session, admin: ConsoleAdmin, org_ids: Iterable[str]) -> None:
    """The organizations an org admin manages (other roles see every organization)."""
    wanted = set(org_ids)
    if admin.role != "org_admin":
        wanted = set()
    elif not wanted:
        raise InvalidInput("an org admin needs at least one organization")
    known = set(session.scalars(select(Organization.id).where(Organization.id.in_(wanted))))
    if wanted - known:
        raise InvalidInput(f"no organization with id {sorted(wanted - known)[0]!r}")
    session.execute(delete(ConsoleAdminOrg).where(ConsoleAdminOrg.admin_id == admin.id))
    session.add_all(ConsoleAdminOrg(admin_id=admin.id, org_id=org_id) for org_id in sorted(wanted))


def create_admin(
    session: Session,
    email: str,
    *,
    role: str,
    password: str,
    name: str | None = None,
    org_ids: Iterable[str] = (),
    actor: str = "admin:cli",
) -> ConsoleAdmin:
    """A confirmed account with a password: the first provider admin, made on the command line."""
    password_hash = hash_password(password)
    admin = _new_admin(session, email, role, name, org_ids)
    admin.password_hash = password_hash
    admin.status = "confirmed"
    _event(session, actor, "admin.created", admin, role=role)
    return admin


def invite_admin(
    session: Session,
    email: str,
    *,
    role: str,
    actor: str,
    name: str | None = None,
    org_ids: Iterable[str] = (),
) -> ConsoleAdmin:
    """An invited account; the invitation e-mail goes out through the outbox."""
    admin = _new_admin(session, email, role, name, org_ids)
    admin.status = "invited"
    _queue_invitation(session, admin)
    _event(session, actor, "admin.invited", admin, role=role)
    return admin


def resend_admin_invitation(session: Session, admin_id: str, *, actor: str) -> ConsoleAdmin:
    admin = get_admin(session, admin_id)
    if admin.status != "invited":
        raise InvalidTransition(f"{admin.email} is {admin.status}; only invited accounts get one")
    _queue_invitation(session, admin)
    _event(session, actor, "admin.invitation_resent", admin)
    return admin


def _queue_invitation(session: Session, admin: ConsoleAdmin) -> None:
    enqueue(
        session,
        "admin_invitation",
        {"admin_id": admin.id, "email": admin.email, "role": admin.role},
        org_id=None,
    )


def invitation_token(secret_key: str, admin_id: str, expires: datetime) -> str:
    """The signed part of the invitation link: the account and when the link stops working."""
    serializer = URLSafeSerializer(secret_key, salt="scimgate.admin-invitation")
    return serializer.dumps({"admin": admin_id, "exp": int(expires.timestamp())})


def read_invitation(session: Session, secret_key: str, token: str) -> ConsoleAdmin:
    """The invited account behind a link; InvalidInput if it is forged, expired or used."""
    serializer = URLSafeSerializer(secret_key, salt="scimgate.admin-invitation")
    try:
        data = serializer.loads(token)
    except BadSignature:
        raise InvalidInput("this invitation link is not valid") from None
    if not isinstance(data, dict) or data.get("exp", 0) < utcnow().timestamp():
        raise InvalidInput("this invitation link has expired: ask a provider admin to resend it")
    admin = session.get(ConsoleAdmin, str(data.get("admin")))
    if admin is None or admin.status != "invited":
        raise InvalidInput("this invitation was used already or withdrawn")
    return admin


def accept_invitation(
    session: Session, secret_key: str, token: str, *, password_hash: str, name: str | None = None
) -> ConsoleAdmin:
    """invited -> accepted: the new admin chose a password (hashed by `hash_password` before
    the transaction, so Argon2 holds no lock); a provider admin confirms next."""
    admin = read_invitation(session, secret_key, token)
    admin.password_hash = password_hash
    if name:
        admin.name = name.strip()[:200]
    admin.status = "accepted"
    _event(session, f"admin:{admin.id}", "admin.accepted", admin)
    return admin


def confirm_admin(session: Session, admin_id: str, *, actor: str) -> ConsoleAdmin:
    """accepted -> confirmed: from now on the account can sign in."""
    admin = get_admin(session, admin_id)
    if admin.status != "accepted":
        raise InvalidTransition(
            f"{admin.email} is {admin.status}; only accounts that accepted their invitation "
            "are confirmed"
        )
    admin.status = "confirmed"
    _event(session, actor, "admin.confirmed", admin)
    return admin


def remove_admin(session: Session, admin_id: str, *, actor: str) -> None:
    admin = get_admin(session, admin_id)
    if actor == f"admin:{admin.id}":
        raise InvalidInput("you cannot remove your own account")
    if admin.role == "provider_admin" and admin.status == "confirmed":
        others = session.scalar(
            select(func.count())
            .select_from(ConsoleAdmin)
            .where(
                ConsoleAdmin.role == "provider_admin",
                ConsoleAdmin.status == "confirmed",
                ConsoleAdmin.id != admin.id,
            )
        )
        if not others:
            raise InvalidInput("this is the last provider admin; confirm another one first")
    _event(session, actor, "admin.removed", admin)
    session.delete(admin)


def get_admin(session: Session, admin_id: str) -> ConsoleAdmin:
    admin = session.get(ConsoleAdmin, admin_id)
    if admin is None:
        raise NotFound(f"no console account with id {admin_id!r}")
    return admin


def list_admins(session: Session) -> list[tuple[ConsoleAdmin, list[str]]]:
    admins = list(session.scalars(select(ConsoleAdmin).order_by(ConsoleAdmin.email_lower)))
    orgs: dict[str, list[str]] = {}
    for admin_id, org_id in session.execute(
        select(ConsoleAdminOrg.admin_id, ConsoleAdminOrg.org_id)
    ):
        orgs.setdefault(admin_id, []).append(org_id)
    return [(a, sorted(orgs.get(a.id, []))) for a in admins]


# --- signing in -----------------------------------------------------------------------------------


@dataclass(frozen=True)
class LoginLimits:
    """Wrong passwords allowed within `window` before the client must wait: per client address
    and account (a stranger locks out only their own address, never the account for its owner
    elsewhere), and per client address across accounts (one address spraying many)."""

    per_account: int = THROTTLE_LIMIT
    per_address: int = 20
    window: timedelta = THROTTLE_WINDOW


def _throttle_key(address: str, email: str) -> str:
    return hashlib.sha256(f"{address}\n{email.strip().lower()}".encode()).hexdigest()


def _client(address: str) -> str:
    return f"client:{address}"


def _failures(session: Session, since: datetime, *conditions: Any) -> int:
    return int(
        session.scalar(
            select(func.count())
            .select_from(Event)
            .where(
                Event.org_id.is_(None),
                Event.type == "admin.login_failed",
                Event.at > since,
                *conditions,
            )
        )
        or 0
    )


def _serialise_address(session: Session, address: str) -> None:
    """Checks and claims of one address run one at a time, so parallel attempts cannot all read
    "under the limit" before any of them is counted. SQLite: the write transaction is the
    database's one writer already. PostgreSQL: a transaction-scoped advisory lock (two-key
    form, its own space beside the connectors' one-key locks), released at commit."""
    if session.get_bind().dialect.name != "postgresql":
        return
    key = int.from_bytes(hashlib.sha256(address.encode()).digest()[:4], "big", signed=True)
    session.execute(
        text("select pg_advisory_xact_lock(:space, :key)"), {"space": _LOGIN_LOCK_SPACE, "key": key}
    )


@dataclass(frozen=True)
class _Claim:
    """A counted attempt and the account row it is about, read in the claim's transaction."""

    event_id: int
    admin_id: str | None
    password_hash: str | None
    status: str | None


def _claim_attempt(session: Session, email: str, address: str, limits: LoginLimits) -> _Claim:
    """Count this attempt as a failure before its password is checked (the check clears it),
    unless the address is over a limit: then LoginThrottled, and no password is checked."""
    _serialise_address(session, address)
    since = utcnow() - limits.window
    pair = _throttle_key(address, email)
    if (
        _failures(session, since, Event.target_id == pair) >= limits.per_account
        or _failures(session, since, Event.actor == _client(address)) >= limits.per_address
    ):
        minutes = int(limits.window.total_seconds() // 60)
        raise LoginThrottled(
            f"too many failed sign-ins from your address; try again in {minutes} minutes",
            retry_after=int(limits.window.total_seconds()),
        )
    attempt = Event(
        org_id=None,
        actor=_client(address),
        type="admin.login_failed",
        target_type="admin_login",
        target_id=pair,
        detail={"reason": "being checked"},
    )
    session.add(attempt)
    session.flush()
    row = session.execute(
        select(ConsoleAdmin.id, ConsoleAdmin.password_hash, ConsoleAdmin.status).where(
            ConsoleAdmin.email_lower == email.strip().lower()
        )
    ).first()
    if row is None:
        return _Claim(attempt.id, None, None, None)
    return _Claim(attempt.id, row.id, row.password_hash, row.status)


def login(
    db: Database,
    email: str,
    password: str,
    *,
    address: str,
    limits: LoginLimits = LoginLimits(),
    on_success: Callable[[Session, ConsoleAdmin], object] | None = None,
) -> ConsoleAdmin | None:
    """The confirmed account these credentials belong to, or None (the failure is recorded).
    Raises LoginThrottled while `address` is over a limit, and LoginBusy when this process's
    password-checking slot stays taken (a flood) for ARGON2_WAIT_SECONDS.

    Three steps, so that Argon2 (tens of milliseconds of CPU, on purpose) never runs inside a
    transaction or under SQLite's write lock, where it would hold up every SCIM write: a short
    write claims the attempt (check and count, atomically), the password is checked with no
    database connection held, and a short write records the outcome (and runs `on_success`,
    e.g. opening the console session, in that same transaction)."""
    address = address or "unknown"
    with db.transaction() as session:
        claim = _claim_attempt(session, email, address, limits)
    if not _ARGON2_SLOTS.acquire(timeout=ARGON2_WAIT_SECONDS):
        with db.transaction() as session:  # no password was checked: not a failure
            session.execute(delete(Event).where(Event.id == claim.event_id))
        raise LoginBusy("sign-ins are busy right now; retry in a second", retry_after=1)
    try:
        matches = _password_matches(claim.password_hash, password)
        new_hash = (
            _hasher.hash(password)
            if matches and _hasher.check_needs_rehash(claim.password_hash or "")
            else None
        )
    finally:
        _ARGON2_SLOTS.release()
    with db.transaction() as session:
        attempt = session.get(Event, claim.event_id)
        admin = session.get(ConsoleAdmin, claim.admin_id) if claim.admin_id else None
        # The row may have changed while the password was checked (a new password, removed).
        if (
            admin is None
            or not matches
            or admin.password_hash != claim.password_hash
            or admin.status != "confirmed"
        ):
            if attempt is not None:
                reason = "not confirmed" if matches else "wrong e-mail or password"
                attempt.detail = {"reason": reason}
            return None
        if attempt is not None:
            session.delete(attempt)  # the right password: not a failure after all
        if new_hash is not None:
            admin.password_hash = new_hash
        admin.last_login_at = utcnow()
        _event(session, f"admin:{admin.id}", "admin.login", admin, address=address)
        if on_success is not None:
            on_success(session, admin)
        return admin


def signed_in_admin(session: Session, admin_id: str | None) -> ConsoleAdmin | None:
    """The account behind a session, while it still exists and is confirmed."""
    if not admin_id:
        return None
    admin = session.get(ConsoleAdmin, admin_id)
    return admin if admin is not None and admin.status == "confirmed" else None


def change_password(
    db: Database,
    admin_id: str,
    current: str,
    new: str,
    *,
    on_success: Callable[[Session, ConsoleAdmin], object] | None = None,
) -> None:
    """A new password; every session of the account ends (`on_success`, e.g. a new session
    for this browser, runs in the same transaction). Both Argon2 runs (check the current
    password, hash the new one) happen between two short transactions, holding nothing."""
    with db.read() as session:
        stored = get_admin(session, admin_id).password_hash
    if not _password_matches(stored, current):
        raise InvalidInput("the current password is wrong")
    new_hash = hash_password(new)
    with db.transaction() as session:
        admin = get_admin(session, admin_id)
        if admin.password_hash != stored:
            raise InvalidInput("the password was changed meanwhile; sign in again")
        admin.password_hash = new_hash
        end_console_sessions(session, admin.id)
        _event(session, f"admin:{admin.id}", "admin.password_changed", admin)
        if on_success is not None:
            on_success(session, admin)


# --- console sessions -----------------------------------------------------------------------------


def _session_key(raw: str) -> str:
    return hashlib.sha256(raw.encode()).hexdigest()


def open_console_session(session: Session, admin: ConsoleAdmin, *, idle_limit: timedelta) -> str:
    """A new console session for `admin`: the session id for the cookie (256 random bits; only
    its SHA-256 is stored). This account's sessions idle for longer than `idle_limit` (whose
    cookies have expired) are deleted on the way."""
    now = utcnow()
    session.execute(
        delete(ConsoleSession).where(
            ConsoleSession.admin_id == admin.id,
            ConsoleSession.last_seen_at < now - idle_limit - SESSION_SEEN_RESOLUTION,
        )
    )
    raw = secrets.token_urlsafe(32)
    session.add(
        ConsoleSession(id=_session_key(raw), admin_id=admin.id, created_at=now, last_seen_at=now)
    )
    return raw


def admin_for_console_session(
    session: Session, raw: str
) -> tuple[ConsoleAdmin, ConsoleSession] | None:
    """The confirmed account a live (not ended) console session belongs to, or None."""
    # Found by the SHA-256 of the id, which a caller cannot steer byte by byte, so the lookup's
    # timing says nothing useful about the ids stored.
    record = session.get(ConsoleSession, _session_key(raw)) if raw else None
    if record is None or record.ended_at is not None:
        return None
    admin = signed_in_admin(session, record.admin_id)
    return (admin, record) if admin is not None else None


def console_session_needs_touch(record: ConsoleSession) -> bool:
    return utcnow() - record.last_seen_at > SESSION_SEEN_RESOLUTION


def touch_console_session(session: Session, record_id: str) -> None:
    """Record a use; callers do it in a short transaction of its own, only when
    `console_session_needs_touch`."""
    session.execute(
        update(ConsoleSession).where(ConsoleSession.id == record_id).values(last_seen_at=utcnow())
    )


def end_console_session(session: Session, raw: str) -> None:
    """Sign-out: the session stops working for every copy of its cookie."""
    record = session.get(ConsoleSession, _session_key(raw)) if raw else None
    if record is None or record.ended_at is not None:
        return
    record.ended_at = utcnow()
    admin = get_admin(session, record.admin_id)
    _event(session, f"admin:{admin.id}", "admin.logout", admin)


def _shown_once_key(raw: str) -> Fernet:
    key = HKDF(
        algorithm=hashes.SHA256(), length=32, salt=b"scimgate", info=b"console shown once"
    ).derive(raw.encode())
    return Fernet(base64.urlsafe_b64encode(key))


def keep_shown_once(session: Session, raw: str, value: dict[str, str]) -> None:
    """Keep `value` (a new secret and what it is) for the next page of this console session
    only. It is encrypted with a key derived from the raw session id, which only the cookie
    holds: the database alone cannot read it. A later one replaces an unshown one."""
    sealed = _shown_once_key(raw).encrypt(json.dumps(value).encode()).decode()
    session.execute(
        update(ConsoleSession)
        .where(ConsoleSession.id == _session_key(raw), ConsoleSession.ended_at.is_(None))
        .values(shown_once=sealed)
    )


def take_shown_once(session: Session, raw: str) -> dict[str, str] | None:
    """What `keep_shown_once` kept for this session, cleared as it is read: shown once."""
    record = session.get(ConsoleSession, _session_key(raw), with_for_update=True) if raw else None
    if record is None or record.shown_once is None:
        return None
    sealed, record.shown_once = record.shown_once, None
    try:
        return json.loads(_shown_once_key(raw).decrypt(sealed.encode()))
    except InvalidToken:
        return None


def end_console_sessions(session: Session, admin_id: str) -> None:
    """Every session of the account ends (its password changed)."""
    session.execute(
        update(ConsoleSession)
        .where(ConsoleSession.admin_id == admin_id, ConsoleSession.ended_at.is_(None))
        .values(ended_at=utcnow())
    )


# --- admin API keys -------------------------------------------------------------------------------


def issue_api_key(session: Session, admin_id: str, *, description: str | None) -> IssuedToken:
    """An API key acting as this account (same role, same organizations); shown once."""
    admin = get_admin(session, admin_id)
    return issue_token(
        session, kind="admin", admin_id=admin.id, description=description, actor=f"admin:{admin.id}"
    )


def list_api_keys(session: Session, admin_id: str) -> list[ApiToken]:
    return list(
        session.scalars(
            select(ApiToken)
            .where(ApiToken.kind == "admin", ApiToken.admin_id == admin_id)
            .order_by(ApiToken.created_at)
        )
    )


def get_api_key(session: Session, admin_id: str, key_id: str) -> ApiToken:
    token = session.get(ApiToken, key_id)
    if token is None or token.kind != "admin" or token.admin_id != admin_id:
        raise NotFound(f"you have no API key with id {key_id!r}")
    return token


def revoke_api_key(session: Session, admin_id: str, key_id: str) -> ApiToken:
    return revoke_token(
        session, get_api_key(session, admin_id, key_id).id, actor=f"admin:{admin_id}"
    )


def admin_for_api_key(session: Session, raw: str) -> tuple[ConsoleAdmin, ApiToken]:
    """The confirmed account an API key belongs to, or gateway.errors.Unauthorized."""
    from gateway.errors import Unauthorized

    token = verify_token(session, raw, kind="admin")
    admin = signed_in_admin(session, token.admin_id)
    if admin is None:
        raise Unauthorized("the bearer token is not valid")
    return admin, token

"""Bearer tokens: SCIM tokens (one organization each) and admin API keys.

A token reads `sgt_<id>_<secret>`: the recognizable prefix lets secret scanners and people spot
it, the id finds the row without touching the secret, and only a SHA-256 of the whole token is
stored. Tokens carry 256 bits of randomness, so a fast hash is enough (no password KDF needed);
the comparison is constant-time. Does not: decide what a token may do (the callers do).
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
import threading
import time
import weakref
from dataclasses import dataclass
from datetime import timedelta

from sqlalchemy import event, select, update
from sqlalchemy.orm import Session

from gateway.errors import NotFound, Unauthorized
from gateway.events import record_event
from gateway.store.models import ApiToken, Organization, utcnow

TOKEN_PREFIX = {"scim": "sgt", "admin": "sga"}
# last_used_at is written at most this often per token, so every SCIM request is not a write.
LAST_USED_RESOLUTION = timedelta(minutes=1)


@dataclass(frozen=True)
class IssuedToken:
    token: ApiToken
    secret: str  # the whole token; shown once, never stored


def _digest(raw: str) -> str:
    return hashlib.sha256(raw.encode()).hexdigest()


def issue_token(
    session: Session,
    *,
    kind: str = "scim",
    org: Organization | None = None,
    admin_id: str | None = None,
    description: str | None = None,
    actor: str = "system",
) -> IssuedToken:
    token_id = secrets.token_hex(8)
    raw = f"{TOKEN_PREFIX[kind]}_{token_id}_{secrets.token_urlsafe(32)}"
    token = ApiToken(
        id=token_id,
        kind=kind,
        org_id=org.id if org else None,
        admin_id=admin_id,
        description=description,
        prefix=raw[: len(TOKEN_PREFIX[kind]) + 1 + len(token_id)],
        token_hash=_digest(raw),
    )
    session.add(token)
    record_event(
        session,
        org_id=token.org_id,
        actor=actor,
        type="token.created",
        target_type="token",
        target_id=token_id,
        detail={"kind": kind, "prefix": token.prefix},
    )
    session.flush()
    return IssuedToken(token, raw)


def verify_token(session: Session, raw: str, *, kind: str) -> ApiToken:
    """The live token `raw` stands for, or Unauthorized. Every failure looks the same."""
    parts = raw.strip().split("_", 2)
    fail = Unauthorized("the bearer token is not valid")
    if len(parts) != 3 or parts[0] != TOKEN_PREFIX[kind]:
        raise fail
    token = session.get(ApiToken, parts[1])
    # Compare even when no row was found, so timing does not tell which ids exist.
    expected = token.token_hash if token is not None else _digest("")
    matches = hmac.compare_digest(expected, _digest(raw.strip()))
    if token is None or not matches or token.kind != kind or token.revoked_at is not None:
        raise fail
    return token


def needs_touch(token: ApiToken) -> bool:
    return token.last_used_at is None or utcnow() - token.last_used_at > LAST_USED_RESOLUTION


def touch_token(session: Session, token_id: str) -> None:
    """Record a use; callers do it in a short transaction of its own, only when `needs_touch`."""
    session.execute(update(ApiToken).where(ApiToken.id == token_id).values(last_used_at=utcnow()))


class TokenCache:
    """Tokens this process checked against the database in the last `ttl` seconds, keyed by the
    SHA-256 of the whole token (the raw token is not kept), so most requests skip the lookup.
    Revoking a token in this process drops it at once (`forget_all`); another process's cache
    keeps it for at most `ttl` seconds. A `ttl` of 0 turns the cache off."""

    MAX_ENTRIES = 10_000

    def __init__(self, ttl: float) -> None:
        self.ttl = ttl
        self._entries: dict[str, tuple[str, str | None, float]] = {}
        self._lock = threading.Lock()

    def get(self, raw: str) -> tuple[str, str | None] | None:
        """(token id, org id) of a token checked recently, else None."""
        if not self.ttl:
            return None
        # The lookup compares SHA-256 digests, which a caller cannot steer byte by byte, so its
        # timing says nothing useful about stored tokens (the database check is constant-time).
        entry = self._entries.get(_digest(raw.strip()))
        if entry is None or entry[2] < time.monotonic():
            return None
        return entry[0], entry[1]

    def put(self, raw: str, token: ApiToken) -> None:
        if not self.ttl:
            return
        with self._lock:
            if len(self._entries) >= self.MAX_ENTRIES:
                self._entries.clear()  # many distinct live tokens: start over, stay bounded
            self._entries[_digest(raw.strip())] = (
                token.id,
                token.org_id,
                time.monotonic() + self.ttl,
            )

    def forget_all(self) -> None:
        with self._lock:
            self._entries.clear()


# Every cache in this process, so a revocation here reaches all of them at once.
_CACHES: weakref.WeakSet[TokenCache] = weakref.WeakSet()


def token_cache(ttl: float) -> TokenCache:
    cache = TokenCache(ttl)
    _CACHES.add(cache)
    return cache


def _forget_everywhere(_session: Session) -> None:
    for cache in list(_CACHES):
        cache.forget_all()


def list_tokens(
    session: Session, *, org: Organization | None = None, kind: str = "scim"
) -> list[ApiToken]:
    query = select(ApiToken).where(ApiToken.kind == kind).order_by(ApiToken.created_at)
    if org is not None:
        query = query.where(ApiToken.org_id == org.id)
    return list(session.scalars(query))


def revoke_token(session: Session, token_id: str, *, actor: str = "system") -> ApiToken:
    token = session.get(ApiToken, token_id.strip())
    if token is None:
        raise NotFound(f"no token with id {token_id!r} (see `scimgate token list`)")
    if token.revoked_at is None:
        token.revoked_at = utcnow()
        # Once the revocation commits (not before: a request meanwhile would cache it again).
        event.listen(session, "after_commit", _forget_everywhere, once=True)
        record_event(
            session,
            org_id=token.org_id,
            actor=actor,
            type="token.revoked",
            target_type="token",
            target_id=token.id,
            detail={"prefix": token.prefix},
        )
    return token

"""What the console and the admin API share at the HTTP edge: who is asking (a console session or
an admin API key), CSRF tokens for the console's forms, and input that no database accepts.

Does: sign in and out (a fresh session each time, recorded in the database so signing out ends
it for every copy of the cookie, and bound to the password so a password change ends other
sessions), keep a new secret with the session for the one page after a form's redirect, check
the CSRF token of every state-changing console request, resolve the admin API key of an API
request. Does not: decide what an account may do (gateway.accounts'
Principal does) nor render anything.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
from typing import Any

from flask import abort, current_app, g, request, session
from sqlalchemy.orm import Session

from gateway.accounts import (
    Principal,
    admin_for_api_key,
    admin_for_console_session,
    console_session_needs_touch,
    end_console_session,
    keep_shown_once,
    open_console_session,
    principal_of,
    take_shown_once,
    touch_console_session,
)
from gateway.app import gateway
from gateway.errors import InvalidInput, Unauthorized
from gateway.store.models import ConsoleAdmin
from gateway.tokens import needs_touch, touch_token

UNSAFE_METHODS = frozenset({"POST", "PUT", "PATCH", "DELETE"})


def principal() -> Principal:
    return g.principal


def _stamp(admin: ConsoleAdmin) -> str:
    return hashlib.sha256((admin.password_hash or "").encode()).hexdigest()[:16]


def start_session(store: Session, admin: ConsoleAdmin) -> None:
    """A new session for `admin`, recorded in `store`'s transaction: nothing from the one this
    browser had (or its CSRF token) survives."""
    end_console_session(store, session.get("session_id", ""))
    session_id = open_console_session(
        store, admin, idle_limit=current_app.permanent_session_lifetime
    )
    session.clear()
    session.permanent = True
    session["session_id"] = session_id
    session["admin_id"] = admin.id
    session["stamp"] = _stamp(admin)
    session["csrf"] = secrets.token_urlsafe(32)


def end_session(store: Session) -> None:
    """Sign out: the session ends in `store`'s transaction too, so no copy of the cookie works."""
    end_console_session(store, session.get("session_id", ""))
    session.clear()


def _cookie_matches(admin: ConsoleAdmin) -> bool:
    """The cookie names this account, and the password it signed in with is still the one."""
    return session.get("admin_id") == admin.id and hmac.compare_digest(
        str(session.get("stamp", "")).encode(), _stamp(admin).encode()
    )


def load_session_principal() -> Principal | None:
    if not session.get("admin_id"):
        return None
    db = gateway().db
    with db.read() as s:
        found = admin_for_console_session(s, session.get("session_id", ""))
        if found is None or not _cookie_matches(found[0]):
            session.clear()
            return None
        admin, record = found
        signed_in = principal_of(s, admin)
        stale = console_session_needs_touch(record)
    if stale:
        with db.transaction() as s:
            touch_console_session(s, record.id)
    return signed_in


def show_once(store: Session, value: dict[str, str]) -> None:
    """Keep a new secret for the page the form redirects to (and no other): stored with this
    console session on the server, in `store`'s transaction, never in the cookie."""
    keep_shown_once(store, session.get("session_id", ""), value)
    session["shown_once"] = True  # so only the page after it asks the database


def take_shown() -> dict[str, str] | None:
    """The secret kept by `show_once`, once: a reload of the page no longer shows it."""
    if not session.pop("shown_once", None):
        return None
    with gateway().db.transaction() as store:
        return take_shown_once(store, session.get("session_id", ""))


def csrf_token() -> str:
    token = session.get("csrf")
    if not token:
        token = session["csrf"] = secrets.token_urlsafe(32)
    return token


def check_csrf() -> None:
    if request.method not in UNSAFE_METHODS:
        return
    sent = request.form.get("csrf_token") or request.headers.get("X-CSRF-Token") or ""
    expected = session.get("csrf") or ""
    # Compared as bytes: compare_digest refuses str with non-ASCII characters (TypeError),
    # and a forged form may send any.
    if not expected or not hmac.compare_digest(sent.encode(), expected.encode()):
        abort(400, description="the form expired or did not come from this site: reload and retry")


def load_api_principal() -> Principal:
    header = request.headers.get("Authorization", "").strip()
    raw = header[7:].strip() if header[:7].lower() == "bearer " else ""
    if not raw:
        raise Unauthorized("an admin API key is required: Authorization: Bearer sga_...")
    db = gateway().db
    with db.read() as s:
        admin, token = admin_for_api_key(s, raw)
        found = principal_of(s, admin)
        stale = needs_touch(token)
    if stale:
        with db.transaction() as s:
            touch_token(s, token.id)
    return found


def _has_nul(value: Any) -> bool:
    if isinstance(value, str):
        return "\x00" in value
    if isinstance(value, dict):
        return any(_has_nul(k) or _has_nul(v) for k, v in value.items())
    if isinstance(value, list):
        return any(_has_nul(v) for v in value)
    return False


def reject_nul_characters(body: Any = None) -> None:
    """No text column stores NUL (PostgreSQL refuses it): say so instead of failing later."""
    values = [request.path, *request.args.values(), *request.form.values(), body]
    if any(_has_nul(v) for v in values):
        raise InvalidInput("text must not contain NUL characters")

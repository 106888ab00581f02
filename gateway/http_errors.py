"""Every error at the HTTP edge, mapped once: one status per error family, and the body in the
language of the part of the gateway that was asked (a SCIM error under /scim, the admin API's
JSON error under /api, a plain page under /console and elsewhere).

Does: the status table of the gateway's own error families (`status_of`), the app-level
handlers for those families, for HTTP errors, for an unreachable database (503 with
Retry-After, one log line, no traceback) and for anything unexpected (500 with the right body,
one traceback in the log). Does not: decide when a request is wrong (the services raise), nor
render console pages (the console's own handler flashes and redirects form posts, with the status
from here).
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass

from flask import Flask, Response, jsonify, request
from markupsafe import escape
from werkzeug.exceptions import HTTPException

from connectors.ldap.connection import LdapError
from connectors.ldap.schedule import ConnectorBusy
from connectors.ldap.sync import SyncFailed
from gateway.accounts import Forbidden, LoginThrottled
from gateway.errors import (
    Conflict,
    GatewayError,
    InvalidInput,
    InvalidTransition,
    Misconfigured,
    NotFound,
    SeatLimitReached,
    Unauthorized,
    database_unavailable,
)
from gateway.lifecycle.webhooks import SecretUnreadable

log = logging.getLogger("gateway.errors")
SCIM_ERROR = "urn:ietf:params:scim:api:messages:2.0:Error"
# IdPs retry a 503 (and a 429) after this many seconds; a database restart or failover takes
# about that long.
RETRY_AFTER_SECONDS = 5


@dataclass(frozen=True)
class Family:
    """How one kind of gateway error answers over HTTP."""

    status: int
    kind: str  # the admin API's error type
    scim_type: str | None = None  # RFC 7644 §3.12, where one fits


# Most specific first: the first family the error is an instance of answers.
FAMILIES: tuple[tuple[type[Exception], Family], ...] = (
    (NotFound, Family(404, "not_found")),
    (Forbidden, Family(403, "forbidden")),
    (Unauthorized, Family(401, "unauthorized")),
    (LoginThrottled, Family(429, "too_many_requests")),
    (Conflict, Family(409, "conflict", "uniqueness")),
    (InvalidTransition, Family(409, "invalid_transition")),
    (SeatLimitReached, Family(409, "seat_limit_reached")),
    (ConnectorBusy, Family(409, "busy")),
    # The directory server failed, not the request: a bad gateway.
    (LdapError, Family(502, "ldap_failed")),
    (SyncFailed, Family(502, "sync_failed")),
    # Stored with another GATEWAY_SECRET_KEY: the operator's to fix.
    (SecretUnreadable, Family(500, "server_misconfigured")),
    # A stored mapping this release refuses: the operator's to fix; IdPs retry a 5xx.
    (Misconfigured, Family(500, "server_misconfigured")),
    (InvalidInput, Family(400, "invalid_input", "invalidValue")),
)
_DEFAULT = Family(400, "invalid_input", "invalidValue")


def status_of(exc: GatewayError) -> Family:
    """The family `exc` belongs to (an unlisted GatewayError is the client's mistake: 400)."""
    return next((family for kind, family in FAMILIES if isinstance(exc, kind)), _DEFAULT)


def _surface() -> str:
    path = request.path
    if path.startswith("/scim/"):
        return "scim"
    if path.startswith("/api/"):
        return "api"
    return "page"


def error_response(
    status: int,
    message: str,
    *,
    kind: str = "error",
    scim_type: str | None = None,
    fields: object = None,
    retry_after: int | None = None,
) -> Response:
    """The error in the language of the surface that was asked (`fields`: the admin API's
    per-field messages)."""
    surface = _surface()
    if surface == "scim":
        body: dict = {"schemas": [SCIM_ERROR], "status": str(status), "detail": message}
        if scim_type:
            body["scimType"] = scim_type
        response = Response(json.dumps(body), status=status, content_type="application/scim+json")
        realm = "scimgate"
    elif surface == "api":
        detail: dict = {"type": kind, "message": message}
        if fields:
            detail["fields"] = fields
        response = jsonify(error=detail)
        response.status_code = status
        realm = "scimgate admin API"
    else:
        # A page that needs nothing: no template, no session, no database.
        html = (
            f"<!doctype html><meta charset=utf-8><title>{status}</title>"
            f"<h1>{status}</h1><p>{escape(message)}</p>"
        )
        response = Response(html, status=status, content_type="text/html; charset=utf-8")
        realm = ""
    if status == 401 and realm:
        response.headers["WWW-Authenticate"] = f'Bearer realm="{realm}"'
    if status in (429, 503):
        response.headers["Retry-After"] = str(retry_after or RETRY_AFTER_SECONDS)
    response.headers["Cache-Control"] = "no-store"
    return response


def gateway_error(exc: GatewayError) -> Response:
    family = status_of(exc)
    if family.status >= 500:
        # Not the client's doing and not a bug: one line, no traceback.
        log.error("%s: %s", exc.__class__.__name__, exc)
    return error_response(
        family.status,
        str(exc),
        kind=family.kind,
        scim_type=family.scim_type,
        retry_after=getattr(exc, "retry_after", None),
    )


def _http_error(exc: HTTPException) -> Response | HTTPException:
    if _surface() == "page":
        return exc  # werkzeug's own page, or the console's handler
    name = (exc.name or "error").lower().replace(" ", "_")
    return error_response(exc.code or 500, exc.description or exc.name, kind=name)


def _unexpected(exc: Exception) -> Response | HTTPException:
    if isinstance(exc, HTTPException):
        return _http_error(exc)
    if database_unavailable(exc):
        # One line per request, no traceback: the cause is outside the code, and a traceback
        # per request would bury the log while the database is away.
        orig = getattr(exc, "orig", None) or exc
        first_line = (str(orig).strip().splitlines() or [""])[0][:300]
        log.warning(
            "database unavailable, answering 503: %s: %s", orig.__class__.__name__, first_line
        )
        return error_response(
            503,
            "the database is unavailable; retry later",
            kind="database_unavailable",
        )
    log.exception("request failed")
    return error_response(500, "internal error", kind="internal_error")


def register(app: Flask) -> None:
    """The app-level handlers; a blueprint's own (the console's form posts, SCIM's ScimError)
    answer first where they exist."""
    app.register_error_handler(GatewayError, gateway_error)
    app.register_error_handler(HTTPException, _http_error)
    app.register_error_handler(Exception, _unexpected)

"""The web console and the admin JSON API for the people who run scimgate: MSP staff (provider
admins, service users) and org admins.

Does: HTML pages under `/console` (server-rendered, every action a plain form post with a CSRF
token), the JSON API under `/api/v1` (admin API keys, OpenAPI at `/api/v1/openapi.json`), and
`scimgate admin ...` / `scimgate doctor`. Console and API call the same service functions (one
module per area: clients, members, groups, held, mapping, scim_settings, connectors, deliveries,
events, readiness), which call the engine, the lifecycle and the connectors. Does not: hold
provisioning, lifecycle or LDAP logic of its own, nor account rules (gateway.accounts).
"""

from __future__ import annotations

from datetime import timedelta

from flask import Flask, Request
from flask.sessions import SecureCookieSessionInterface, SessionMixin

# Only the console keeps a login session; SCIM, the API, probes and metrics authenticate every
# request by its own header and never read the cookie (so they skip decoding it).
_SESSIONLESS = ("/scim/", "/api/", "/metrics", "/healthz", "/readyz")


class _ConsoleSessions(SecureCookieSessionInterface):
    def open_session(self, app: Flask, request: Request) -> SessionMixin | None:
        if request.path.startswith(_SESSIONLESS):
            return self.make_null_session(app)
        return super().open_session(app, request)


def register(app: Flask) -> None:
    """Mount the console and the admin API on `app` and register the admin-invitation mailer."""
    from gateway.admin import invitations  # noqa: F401  registers the outbox handler
    from gateway.admin.api import api
    from gateway.admin.console import console

    config = app.extensions["scimgate"].config
    app.config.update(
        SESSION_COOKIE_NAME="scimgate_session",
        SESSION_COOKIE_HTTPONLY=True,
        SESSION_COOKIE_SAMESITE="Lax",
        SESSION_COOKIE_SECURE=config.public_url.startswith("https://"),
        PERMANENT_SESSION_LIFETIME=timedelta(hours=12),
    )
    app.session_interface = _ConsoleSessions()
    app.register_blueprint(console)
    app.register_blueprint(api)

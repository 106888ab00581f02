"""The Flask application factory: settings, database, blueprints, error handlers, request ids and
access logs."""

from __future__ import annotations

import itertools
import logging
import os
import re
import secrets
import threading
import time
from dataclasses import dataclass

from flask import Flask, current_app, g, jsonify, redirect, request, url_for
from werkzeug.middleware.proxy_fix import ProxyFix

from gateway import metrics
from gateway.config import Config
from gateway.logs import configure_logging
from gateway.provisioning.queue import Drainer
from gateway.store import Database, SchemaState
from gateway.tokens import TokenCache, token_cache

log = logging.getLogger("gateway.access")
_REQUEST_ID = re.compile(r"^[A-Za-z0-9._-]{1,64}$")


@dataclass
class Gateway:
    """What every request needs: the settings and the database."""

    config: Config
    db: Database
    tokens: TokenCache
    drainer: Drainer  # applies queued SCIM changes (GATEWAY_SCIM_APPLY=queued)


_ids = threading.local()


def _new_request_id() -> str:
    """32 hex digits, unique without a system call per request: 64 random bits drawn once per
    process and thread (after a fork too), then a counter."""
    state = getattr(_ids, "state", None)
    if state is None or state[0] != os.getpid():
        state = _ids.state = (os.getpid(), secrets.token_hex(8), itertools.count())
    return f"{state[1]}{next(state[2]):016x}"


def gateway() -> Gateway:
    return current_app.extensions["scimgate"]


def create_app(config: Config | None = None, *, database: Database | None = None) -> Flask:
    config = config or Config.from_env()
    configure_logging(config.log_format, config.log_level)
    db = database or Database(
        config.database_url,
        pool_size=config.db_pool_size,
        statement_timeout_ms=config.db_statement_timeout_ms,
    )
    app = Flask(__name__)
    app.config.update(
        SECRET_KEY=config.secret_key,
        # Every body is bounded (a login form cannot fill the disk); SCIM checks its own, lower
        # limit first so that it answers with a SCIM error body.
        MAX_CONTENT_LENGTH=max(config.scim_max_payload, 256 * 1024) + 64 * 1024,
        JSON_SORT_KEYS=False,
    )
    app.json.sort_keys = False
    app.extensions["scimgate"] = Gateway(
        config, db, token_cache(config.token_cache_seconds), Drainer(db)
    )
    if config.trust_proxy:
        n = config.trust_proxy
        app.wsgi_app = ProxyFix(app.wsgi_app, x_for=n, x_proto=n, x_host=n, x_port=n, x_prefix=n)  # type: ignore[method-assign]

    @app.before_request
    def _start() -> None:
        incoming = request.headers.get("X-Request-Id", "")
        g.request_id = incoming if _REQUEST_ID.match(incoming) else _new_request_id()
        g.started = time.perf_counter()

    @app.after_request
    def _finish(response):  # type: ignore[no-untyped-def]
        request_id = g.get("request_id", "-")
        response.headers["X-Request-Id"] = request_id
        duration = (time.perf_counter() - g.get("started", time.perf_counter())) * 1000
        rule = request.url_rule
        status = response.status_code
        method = request.method
        metrics.observe_request(rule.rule if rule else None, method, status, duration / 1000)
        if not log.isEnabledFor(logging.INFO):
            return response
        path = request.path
        if rule is not None and "<token>" in rule.rule:
            path = rule.rule  # invitation links are credentials
        # Path only: query strings carry filters with personal data, and headers carry tokens.
        # The record is made and handed over directly: Logger.info would also walk the stack
        # for the caller's file and line, a third of the line's cost on every request.
        log.handle(
            log.makeRecord(
                log.name,
                logging.INFO,
                __file__,
                0,
                "%s %s %s %.1fms",
                (method, path, status, duration),
                None,
                extra={
                    "request_id": request_id,
                    "method": method,
                    "path": path,
                    "status": status,
                    "duration_ms": round(duration, 2),
                    "org_id": g.get("org_id"),
                    "remote_addr": request.remote_addr,
                },
            )
        )
        return response

    @app.get("/healthz")
    def healthz():  # type: ignore[no-untyped-def]
        return jsonify(status="ok")

    @app.get("/readyz")
    def readyz():  # type: ignore[no-untyped-def]
        try:
            state = db.schema_state()
        except Exception as exc:  # the point of the check: any database failure means not ready
            log.warning("readiness: database unreachable: %s", exc.__class__.__name__)
            return jsonify(status="unavailable", database="unreachable"), 503
        if state is not SchemaState.CURRENT:
            return jsonify(status="unavailable", database="reachable", schema=state.value), 503
        return jsonify(status="ok", database="reachable", schema="current")

    from gateway import http_errors
    from gateway.admin import register as register_admin
    from gateway.lifecycle.routes import invite
    from gateway.scim.routes import scim

    metrics.register(app, db)
    http_errors.register(app)
    app.register_blueprint(scim)
    app.register_blueprint(invite)
    register_admin(app)

    @app.get("/")
    def index():  # type: ignore[no-untyped-def]
        return redirect(url_for("console.clients"))

    return app

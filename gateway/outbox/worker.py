"""The worker loop: deliver due outbox messages, then run what else is due, until stopped.

Handlers are registered per message kind; a handler raises to say "try again later".
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from datetime import timedelta

from gateway.config import Config
from gateway.outbox.queue import claim, renew, settle_failed, settle_sent
from gateway.store import Database
from gateway.store.models import OutboxMessage

log = logging.getLogger(__name__)

Handler = Callable[[Database, Config, OutboxMessage], None]
HANDLERS: dict[str, Handler] = {}
# Periodic duties (LDAP connectors that are due, expired invitations, ...): called every round.
DUTIES: list[Callable[[Database, Config], None]] = []


def handler(kind: str) -> Callable[[Handler], Handler]:
    def register(fn: Handler) -> Handler:
        HANDLERS[kind] = fn
        return fn

    return register


def deliver_due(db: Database, config: Config, *, limit: int = 20) -> int:
    """Deliver one batch of due messages; return how many were attempted."""
    lease = timedelta(seconds=config.outbox_lease_seconds)
    messages = claim(db, limit=limit, lease=lease)
    for message in messages:
        # A slow batch can outlive its lease; a message whose claim lapsed may be another
        # worker's now, so this one is skipped rather than sent twice.
        if not renew(db, message, lease):
            continue
        fn = HANDLERS.get(message.kind)
        try:
            if fn is None:
                raise LookupError(f"no handler for outbox messages of kind {message.kind!r}")
            fn(db, config, message)
        except Exception as exc:  # any failure is retried later; the message is not lost
            final = settle_failed(
                db,
                message.id,
                f"{exc.__class__.__name__}: {exc}",
                max_attempts=config.outbox_max_attempts,
            )
            log.warning(
                "outbox message %s (%s) failed%s: %s",
                message.id,
                message.kind,
                " for the last time" if final else "",
                exc,
            )
        else:
            settle_sent(db, message.id)
    return len(messages)


def run_round(db: Database, config: Config) -> int:
    done = 0
    while True:
        n = deliver_due(db, config)
        done += n
        if n == 0:
            break
    for duty in DUTIES:
        try:
            duty(db, config)
        except Exception:
            log.exception("worker duty %s failed", getattr(duty, "__name__", duty))
    return done


def run_forever(db: Database, config: Config, stop: threading.Event) -> None:
    load_handlers()
    log.info("worker started")
    while not stop.is_set():
        try:
            run_round(db, config)
        except Exception:
            log.exception("worker round failed; retrying")
        stop.wait(config.worker_poll_seconds)
    log.info("worker stopped")


def load_handlers() -> None:
    """Bring in the modules that register handlers, and the periodic duties."""
    import gateway.admin.invitations
    import gateway.outbox.webhooks  # noqa: F401  (registers the webhook handler)
    from connectors.ldap.schedule import run_due_connectors
    from gateway.lifecycle.invitations import release_waiting_seats, resend_expired
    from gateway.provisioning.queue import apply_queued

    for duty in (apply_queued, run_due_connectors, release_waiting_seats, resend_expired):
        if duty not in DUTIES:
            DUTIES.append(duty)

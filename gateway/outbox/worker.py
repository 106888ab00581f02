"""The worker: deliver due outbox messages on a pool of threads, and run the periodic duties on a
thread of their own, until stopped.

Handlers are registered per message kind; a handler raises to say "try again later". A kind
whose messages go to receivers the organizations choose (webhooks) names the payload field that
identifies the receiver; those deliveries get a bounded part of the pool
(GATEWAY_WEBHOOK_CONCURRENCY), each receiver a share of it (GATEWAY_WEBHOOK_PER_RECEIVER) and each
organization one for all its receivers (GATEWAY_WEBHOOK_PER_ORG), so receivers that stall hold
their share until their deadline and nothing more: e-mail and other receivers proceed. Messages
are claimed only when a thread is free for them, so a lease never ticks while a message waits in
memory.

Does: claim, deliver, settle, schedule. Does not: decide what a message says or where it goes
(the handlers: gateway.lifecycle.invitations, gateway.outbox.webhooks, ...).
"""

from __future__ import annotations

import logging
import threading
from collections import Counter
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from contextlib import closing
from datetime import timedelta

from gateway.config import Config
from gateway.outbox.queue import Busy, claim, release, renew, settle_failed, settle_sent
from gateway.store import Database
from gateway.store.models import OutboxMessage

log = logging.getLogger(__name__)

Handler = Callable[[Database, Config, OutboxMessage], None]
HANDLERS: dict[str, Handler] = {}
# kind -> the payload field naming the receiver its messages go to (webhooks: the endpoint)
RECEIVERS: dict[str, str] = {}
# Periodic duties (LDAP connectors that are due, expired invitations, ...): called every round.
DUTIES: list[Callable[[Database, Config], None]] = []


def handler(kind: str, *, receiver: str | None = None) -> Callable[[Handler], Handler]:
    """Register the handler of `kind`; `receiver` names the payload field that says which
    organization-chosen receiver a message goes to (those share the pool, see above)."""

    def register(fn: Handler) -> Handler:
        HANDLERS[kind] = fn
        if receiver is not None:
            RECEIVERS[kind] = receiver
        return fn

    return register


class Dispatcher:
    """Claims due messages as threads are free for them and delivers each on the pool."""

    def __init__(self, db: Database, config: Config) -> None:
        self.db = db
        self.config = config
        self.lease = timedelta(seconds=config.outbox_lease_seconds)
        self.pool = ThreadPoolExecutor(config.outbox_concurrency, thread_name_prefix="outbox")
        self.freed = threading.Event()  # set whenever a delivery ends
        self._lock = threading.Lock()
        self._running = 0
        self._to_receivers = 0
        self._per_receiver: Counter[tuple[str, str]] = Counter()
        self._per_org: Counter[tuple[str, str]] = Counter()

    def start_due(self, limit: int | None = None) -> int:
        """Claim and start as many due messages as there is room for (at most `limit`); return
        how many started."""
        started = 0
        while limit is None or started < limit:
            with self._lock:
                room = self.config.outbox_concurrency - self._running
                busy = self._busy()
            if limit is not None:
                room = min(room, limit - started)
            if room <= 0:
                break
            messages = claim(self.db, limit=room, lease=self.lease, busy=busy)
            if not messages:
                break
            # Several of one batch may go to one receiver: those past its share go back.
            later = [m for m in messages if not self._admit(m)]
            release(self.db, later)
            started += len(messages) - len(later)
            if len(later) == len(messages):  # none could start: claiming again would spin
                break
        return started

    def _busy(self) -> Busy:
        kinds = frozenset(RECEIVERS) if self._full() else frozenset()
        receivers = _at_share(self._per_receiver, self.config.webhook_per_receiver)
        orgs = _at_share(self._per_org, self.config.webhook_per_org)
        return Busy(
            kinds,
            {kind: (RECEIVERS[kind], receivers.get(kind, frozenset())) for kind in RECEIVERS},
            orgs,
        )

    def _full(self) -> bool:
        return self._to_receivers >= self.config.webhook_concurrency

    def _admit(self, message: OutboxMessage) -> bool:
        key = RECEIVERS.get(message.kind)
        receiver = org = None
        if key is not None:
            receiver = (message.kind, str(message.payload.get(key)))
            org = (message.kind, str(message.org_id))
        with self._lock:
            if receiver is not None and org is not None:
                if (
                    self._full()
                    or self._per_receiver[receiver] >= self.config.webhook_per_receiver
                    or self._per_org[org] >= self.config.webhook_per_org
                ):
                    return False
                self._per_receiver[receiver] += 1
                self._per_org[org] += 1
                self._to_receivers += 1
            self._running += 1
        self.pool.submit(self._deliver, message, receiver, org)
        return True

    def _deliver(
        self,
        message: OutboxMessage,
        receiver: tuple[str, str] | None,
        org: tuple[str, str] | None,
    ) -> None:
        try:
            deliver(self.db, self.config, message, self.lease)
        except Exception:  # the database, most likely: the lease runs out, the message is retried
            log.exception("outbox message %s could not be settled", message.id)
        finally:
            with self._lock:
                self._running -= 1
                if receiver is not None and org is not None:
                    self._to_receivers -= 1
                    self._per_receiver -= Counter({receiver: 1})  # drops it at zero
                    self._per_org -= Counter({org: 1})
            self.freed.set()

    def drain(self) -> int:
        """Deliver until nothing due is left and nothing is in flight; return how many were
        attempted."""
        attempted = 0
        while True:
            self.freed.clear()
            # Read before claiming: with nothing in flight then, nothing was held back, and an
            # empty claim means nothing is due. (Read after, a delivery ending meanwhile would
            # end the drain with its receiver's next message still due.)
            was_running = self._running
            started = self.start_due()
            attempted += started
            if started == 0 and was_running == 0:
                return attempted
            self.freed.wait(1.0)

    def wait_idle(self) -> None:
        while self._running:
            self.freed.clear()
            if self._running:
                self.freed.wait(1.0)

    def close(self) -> None:
        self.pool.shutdown(wait=True)  # deliveries in flight end within their deadline


def _at_share(counts: Counter[tuple[str, str]], share: int) -> dict[str, frozenset[str]]:
    """kind -> the keys (receivers, organizations) with `share` deliveries in flight."""
    full: dict[str, set[str]] = {}
    for (kind, key), n in counts.items():
        if n >= share:
            full.setdefault(kind, set()).add(key)
    return {kind: frozenset(keys) for kind, keys in full.items()}


def deliver(db: Database, config: Config, message: OutboxMessage, lease: timedelta) -> None:
    """One attempt at one claimed message, settled as sent or failed."""
    # The claim may have lapsed while the message waited (a slow claim, a paused process); it
    # may be another worker's now, so it is skipped rather than sent twice.
    if not renew(db, message, lease):
        return
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


def deliver_due(db: Database, config: Config, *, limit: int = 20) -> int:
    """Deliver one batch of due messages (at most `limit`); return how many were attempted."""
    with closing(Dispatcher(db, config)) as dispatcher:
        started = dispatcher.start_due(limit)
        dispatcher.wait_idle()
    return started


def run_duties(db: Database, config: Config) -> None:
    for duty in DUTIES:
        try:
            duty(db, config)
        except Exception:
            log.exception("worker duty %s failed", getattr(duty, "__name__", duty))


def run_round(db: Database, config: Config) -> int:
    """Deliver everything due, then run the duties once: what `scimgate worker` does over time,
    at once (tests, one-shot commands). Returns how many deliveries were attempted."""
    with closing(Dispatcher(db, config)) as dispatcher:
        done = dispatcher.drain()
    run_duties(db, config)
    return done


def run_forever(db: Database, config: Config, stop: threading.Event) -> None:
    load_handlers()
    log.info(
        "worker started: %d deliveries at once, at most %d of them webhooks, %d per receiver",
        config.outbox_concurrency,
        config.webhook_concurrency,
        config.webhook_per_receiver,
    )
    # The duties have a thread of their own: slow deliveries cannot delay them, nor they
    # the deliveries.
    duties = threading.Thread(
        target=_run_duties_until, args=(db, config, stop), name="worker-duties", daemon=True
    )
    duties.start()
    with closing(Dispatcher(db, config)) as dispatcher:
        while not stop.is_set():
            dispatcher.freed.clear()
            try:
                dispatcher.start_due()
            except Exception:
                log.exception("claiming due outbox messages failed; retrying")
            # A delivery ending frees a thread: look again at once; otherwise at the next poll.
            dispatcher.freed.wait(config.worker_poll_seconds)
    duties.join()
    log.info("worker stopped")


def _run_duties_until(db: Database, config: Config, stop: threading.Event) -> None:
    while not stop.is_set():
        run_duties(db, config)
        stop.wait(config.worker_poll_seconds)


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

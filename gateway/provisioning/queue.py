"""Queued engine runs for SCIM writes (GATEWAY_SCIM_APPLY=queued).

Does: write a directory change down as a `PendingChange` in the SCIM write's own transaction
(`queue_change`); apply an organization's pending changes in batches (`drain_org`: one incremental
reconcile over everything the batch reached, its events and outbox messages, and the deletion of
the batch, in one transaction); do that for every organization with work (`drain`), from a thread
of each web process woken when a queued write commits (`Drainer`) and from every worker round.

Why a batch is the same as its changes one by one: the reconcile compares what the directory
wants now with the org layer now, for the users a change reached. The union of several changes'
users, reconciled against the latest directory state, gives what the last of them would have
given; the states in between were never seen by anyone (the org layer only moves in these
transactions), and a change committed while a batch runs stays pending for the next batch.

Does not: lose a change. A change is deleted only by the transaction that applied it; a batch
that fails rolls back whole and is retried on the next wake-up or round.
"""

from __future__ import annotations

import itertools
import logging
import os
import threading
import time
from collections.abc import Callable

from sqlalchemy import delete, event, insert, select
from sqlalchemy.orm import Session

from gateway.provisioning.engine import apply_delta, change_delta
from gateway.provisioning.entry import DirectoryChange, lock_org
from gateway.provisioning.reconcile import DirectoryDelta
from gateway.store import Database
from gateway.store.models import PendingChange

log = logging.getLogger(__name__)

# Changes applied per transaction: large enough that a burst costs a few reconciles, small enough
# that the transaction (which holds SQLite's write lock) stays short beside the SCIM writes.
BATCH = 200
_WAKE = "provisioning.queue.wake"
_INSERT = insert(PendingChange.__table__)


def queue_change(session: Session, change: DirectoryChange, wake: Callable[[], None]) -> None:
    delta = change_delta(session, change)
    # One statement, no unit of work: this runs for every queued SCIM write.
    session.connection().execute(
        _INSERT,
        {
            "org_id": change.org_id,
            "actor": change.actor,
            "user_ids": sorted(delta.user_ids),
            "orphaned_member_ids": sorted(delta.orphaned_member_ids),
            "users_below_deleted": sorted(delta.users_below_deleted),
            "group_ids": None if delta.group_ids is None else sorted(delta.group_ids),
        },
    )
    session.info[_WAKE] = wake


@event.listens_for(Session, "after_commit")
def _wake_after_commit(session: Session) -> None:
    wake = session.info.pop(_WAKE, None)
    if wake is not None:
        wake()


@event.listens_for(Session, "after_soft_rollback")
def _forget_wake(session: Session, previous_transaction) -> None:  # type: ignore[no-untyped-def]
    if previous_transaction.parent is None:  # the whole transaction, not a savepoint
        session.info.pop(_WAKE, None)


def drain_org(session: Session, org_id: str, *, batch: int = BATCH) -> int:
    """Apply up to `batch` of the organization's pending changes, oldest first; return how many.
    0 when none wait or, on PostgreSQL, when another process is applying this organization's
    changes right now (it will come back for these)."""
    # SKIP LOCKED: a second drainer leaves the organization to the first instead of queueing
    # behind it.
    org = lock_org(session, org_id, skip_locked=True)
    if org is None:
        return 0
    rows = session.execute(
        select(
            PendingChange.id,
            PendingChange.actor,
            PendingChange.user_ids,
            PendingChange.orphaned_member_ids,
            PendingChange.users_below_deleted,
            PendingChange.group_ids,
        )
        .where(PendingChange.org_id == org_id)
        .order_by(PendingChange.id)
        .limit(batch)
    ).all()
    if not rows:
        return 0
    # One actor per batch (events name it): the leading run of changes by the first actor.
    actor = rows[0].actor
    ids = []
    delta = DirectoryDelta()
    for row in rows:
        if row.actor != actor:
            break
        ids.append(row.id)
        delta.user_ids.update(row.user_ids)
        delta.orphaned_member_ids.update(row.orphaned_member_ids)
        delta.users_below_deleted.update(row.users_below_deleted)
        if row.group_ids is None or delta.group_ids is None:
            delta.group_ids = None  # one change that cannot name its groups: compare them all
        else:
            delta.group_ids.update(row.group_ids)
    apply_delta(session, org, delta, actor, window=True)
    session.execute(delete(PendingChange).where(PendingChange.id.in_(ids)))
    return len(ids)


def drain(db: Database, *, batch: int = BATCH, rounds: int | None = None) -> int:
    """Apply pending changes of every organization until none are left (or the rest belong to
    organizations another process is applying), or for `rounds` batches per organization;
    return how many were applied. An organization whose batch fails is logged and left for the
    next call."""
    applied = 0
    failed: set[str] = set()
    for _ in itertools.count() if rounds is None else range(rounds):
        with db.read() as session:
            org_ids = [o for o in session.scalars(select(PendingChange.org_id).distinct())]
        progress = 0
        for org_id in org_ids:
            if org_id in failed:
                continue
            try:
                progress += db.run(lambda s, o=org_id: drain_org(s, o, batch=batch))
            except Exception:
                failed.add(org_id)
                log.exception(
                    "applying queued SCIM changes of organization %s failed; they stay queued",
                    org_id,
                )
        applied += progress
        if not progress:
            break
    return applied


def apply_queued(db: Database, config: object) -> None:
    """The worker's duty: what web processes left pending (one that died, say)."""
    drain(db)


class Drainer:
    """A thread per web process that applies pending changes: woken when a queued write
    commits, and every `idle_seconds` in case another process died with changes pending.
    Started on the first wake-up (after gunicorn forked the process).

    During a burst of writes (an IdP's initial push) it stays out of the requests' way: it
    applies everything once no queued write has committed in this process for `quiet` seconds,
    and meanwhile one small batch per organization every `max_wait` seconds, so the backlog never
    waits long and each of its transactions holds SQLite's write lock only briefly."""

    def __init__(
        self,
        db: Database,
        *,
        idle_seconds: float = 2.0,
        quiet: float = 0.2,
        max_wait: float = 2.0,
        burst_batch: int = 50,
    ) -> None:
        self.db = db
        self.idle_seconds = idle_seconds
        self.quiet = quiet
        self.max_wait = max_wait
        self.burst_batch = burst_batch
        self._event = threading.Event()
        self._lock = threading.Lock()
        self._thread: threading.Thread | None = None
        self._pid = 0
        self._last_write = 0.0
        self._stopped = False

    def wake(self) -> None:
        self._last_write = time.monotonic()
        if self._stopped:
            return
        if self._thread is None or self._pid != os.getpid() or not self._thread.is_alive():
            self._start()
        self._event.set()

    def _start(self) -> None:
        with self._lock:
            if self._thread is not None and self._pid == os.getpid() and self._thread.is_alive():
                return
            self._pid = os.getpid()
            self._event = threading.Event()
            self._thread = threading.Thread(
                target=self._run, name="scimgate-apply-queued", daemon=True
            )
            self._thread.start()

    def stop(self) -> None:
        """End the thread (after the batch it may be applying); a later wake-up starts none."""
        self._stopped = True
        self._event.set()
        if self._thread is not None and self._thread.is_alive():
            self._thread.join(timeout=30)

    def _run(self) -> None:
        while True:
            self._event.wait(self.idle_seconds)
            self._event.clear()
            if self._stopped:
                return
            try:
                self._apply()
            except Exception:  # the database is away: try again on the next wake-up
                log.exception("applying queued SCIM changes failed; retrying")

    def _apply(self) -> None:
        waiting_since = time.monotonic()
        while True:
            now = time.monotonic()
            quiet_for = now - self._last_write
            if quiet_for >= self.quiet:
                drain(self.db)
                return
            if now - waiting_since >= self.max_wait:
                drain(self.db, batch=self.burst_batch, rounds=1)
                waiting_since = time.monotonic()
            time.sleep(self.quiet - quiet_for)

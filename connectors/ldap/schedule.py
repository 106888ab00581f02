"""Running LDAP connectors on their schedule, one run per connector at a time across processes.

Does: `connector_lock` (a PostgreSQL advisory lock held on its own connection, or an exclusive
file lock beside the SQLite file), and `run_due_connectors(db, config)`, which a worker loop calls
every few seconds: every connector whose `interval` has passed since its last run is run (a
delta, or a full sync when one is due) under its lock; a connector whose lock another process
holds is skipped. Does not: loop, sleep or fork (the worker process does).
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import logging
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path

from sqlalchemy import func, select, text

from connectors.ldap.config import SETTINGS_KEY, org_connectors
from connectors.ldap.sync import SyncFailed, SyncResult, sync_connector
from gateway.errors import GatewayError
from gateway.provisioning.settings import stored_mapping
from gateway.store import Database
from gateway.store.batches import chunks
from gateway.store.models import Organization, OrgMapping, SyncRun, utcnow

log = logging.getLogger(__name__)


class ConnectorBusy(GatewayError):
    """Another process is running this connector now."""


def _lock_key(org_id: str, name: str) -> int:
    digest = hashlib.sha256(f"scimgate:ldap:{org_id}:{name}".encode()).digest()
    return int.from_bytes(digest[:8], "big", signed=True)


def _lock_dir(db: Database) -> Path:
    path = Path(db.engine.url.database or ".").resolve().parent / "locks"
    path.mkdir(parents=True, exist_ok=True)
    return path


@contextlib.contextmanager
def connector_lock(db: Database, org_id: str, name: str) -> Iterator[None]:
    """Held for the whole run; raises ConnectorBusy at once if another process holds it."""
    busy = ConnectorBusy(f"LDAP connector {name} is being synced by another process; try later")
    if db.dialect == "postgresql":
        key = _lock_key(org_id, name)
        with db.engine.connect() as conn:
            if not conn.execute(text("select pg_try_advisory_lock(:k)"), {"k": key}).scalar():
                raise busy
            conn.commit()
            try:
                yield
            finally:
                conn.execute(text("select pg_advisory_unlock(:k)"), {"k": key})
                conn.commit()
        return
    safe = hashlib.sha256(f"{org_id}:{name}".encode()).hexdigest()[:24]
    with open(_lock_dir(db) / f"ldap-{safe}.lock", "a+") as handle:
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise busy from None
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


@dataclass
class Outcome:
    org_id: str
    connector: str
    result: SyncResult | None = None
    error: str | None = None
    skipped: str | None = None


def run_due_connectors(
    db: Database, config: object | None = None, *, now: datetime | None = None
) -> list[Outcome]:
    """Run every connector that is due; returns what happened to each one considered.
    `config` (the gateway Config) is accepted for the worker's convenience and not needed yet."""
    now = now or utcnow()
    with db.read() as session:
        orgs = [
            (org.id, org.name, org.settings)
            for org in session.scalars(select(Organization))
            if (org.settings or {}).get(SETTINGS_KEY)
        ]
        # Each organization's mapping: its LDAP e-mail rules apply to its connectors.
        mapping_texts = {
            org_id: mapping_text
            for ids in chunks(org_id for org_id, _, _ in orgs)
            for org_id, mapping_text in session.execute(
                select(OrgMapping.org_id, OrgMapping.text).where(OrgMapping.org_id.in_(ids))
            )
        }
        last_started = {
            (org_id, name): started
            for org_id, name, started in session.execute(
                select(SyncRun.org_id, SyncRun.connector, func.max(SyncRun.started_at)).group_by(
                    SyncRun.org_id, SyncRun.connector
                )
            )
        }
    outcomes: list[Outcome] = []
    for org_id, org_name, settings in orgs:
        try:
            mapping = stored_mapping(mapping_texts.get(org_id))
            connectors = org_connectors(settings, mapping)
        except GatewayError as exc:
            log.error("organization %s: its LDAP connectors cannot run: %s", org_name, exc)
            continue
        for cfg in connectors.values():
            started = last_started.get((org_id, cfg.name))
            if started is not None and now - started < timedelta(seconds=cfg.interval):
                continue
            outcome = Outcome(org_id, cfg.name)
            try:
                with connector_lock(db, org_id, cfg.name):
                    outcome.result = sync_connector(db, org_id, cfg)
            except ConnectorBusy as exc:
                outcome.skipped = str(exc)
            except SyncFailed as exc:
                outcome.error = str(exc)
                cause = exc.__cause__
                log.warning(
                    "LDAP connector %s of %s: the run failed: %s",
                    cfg.name,
                    org_name,
                    exc,
                    # A bug, not the directory: its traceback belongs in the log.
                    exc_info=None if isinstance(cause, GatewayError) else cause,
                )
            except GatewayError as exc:  # e.g. the password variable is missing
                outcome.error = str(exc)
                log.error("LDAP connector %s of %s: %s", cfg.name, org_name, exc)
            if outcome.result is not None and outcome.result.held:
                log.warning(
                    "LDAP connector %s of %s: %d change(s) held by the guard: %s",
                    cfg.name,
                    org_name,
                    outcome.result.held,
                    outcome.result.hold_reason,
                )
            outcomes.append(outcome)
    return outcomes

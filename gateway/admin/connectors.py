"""LDAP connectors of one organization in the console: list, test, dry run, run now, history.

Does: find the organization's connector by name and call the connector package (diagnose,
sync_connector under the connector's lock). Does not: talk LDAP or write the directory layer
itself (connectors/ldap does), nor schedule runs (the worker does).
"""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import select
from sqlalchemy.orm import Session

from connectors.ldap.config import ConnectorConfig, org_connectors
from connectors.ldap.diagnose import Report, diagnose
from connectors.ldap.schedule import connector_lock
from connectors.ldap.sync import SyncResult, sync_connector
from gateway.errors import GatewayError, NotFound
from gateway.store import Database
from gateway.store.models import Organization, SyncRun


@dataclass(frozen=True)
class ConnectorList:
    connectors: list[ConnectorConfig]
    problem: str | None  # the stored configuration no longer loads


def list_connectors(org: Organization) -> ConnectorList:
    try:
        return ConnectorList(list(org_connectors(org.settings).values()), None)
    except GatewayError as exc:
        return ConnectorList([], str(exc))


def find_connector(org: Organization, name: str) -> ConnectorConfig:
    found = {c.name: c for c in list_connectors(org).connectors}
    if name not in found:
        raise NotFound(f"{org.name} has no LDAP connector named {name!r}")
    return found[name]


def test_connector(org: Organization, name: str) -> Report:
    return diagnose(find_connector(org, name), sample=3)


def sync_now(
    db: Database, org: Organization, name: str, *, dry_run: bool, full: bool = False
) -> SyncResult:
    """One sync (or its dry run) under the connector's lock; SyncFailed / ConnectorBusy on error."""
    cfg = find_connector(org, name)
    with connector_lock(db, org.id, cfg.name):
        return sync_connector(db, org.id, cfg, kind="full" if full else "auto", dry_run=dry_run)


def sync_history(session: Session, org: Organization, *, limit: int = 50) -> list[SyncRun]:
    return list(
        session.scalars(
            select(SyncRun)
            .where(SyncRun.org_id == org.id)
            .order_by(SyncRun.started_at.desc(), SyncRun.id.desc())
            .limit(limit)
        )
    )

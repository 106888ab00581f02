"""Admin actions that apply a Plan while the engine is applying another to the same organization
(PostgreSQL, where writers run side by side): the admin's action waits for the organization's
reconcile lock and plans from what the other committed, instead of planning the same new group
and failing on it."""

from __future__ import annotations

import threading
import time

import pytest
from sqlalchemy import create_engine, text
from sqlalchemy.pool import NullPool
from test_provisioning_rules import access, members, org_groups
from test_scim_queued import queue_writes

from gateway.provisioning import queue
from gateway.provisioning.apply import apply
from gateway.provisioning.engine import plan_org, set_mapping
from gateway.store.models import Organization

MAPPING = """
collections:
  - {group: Sales, collections: [Pipeline], permission: edit}
"""


def plan_and_apply(session, org_id: str):  # type: ignore[no-untyped-def]
    org, plan = plan_org(session, org_id, to_apply=True)
    apply(session, org, plan, "admin:test")
    return plan


def set_the_mapping(session, org_id: str):  # type: ignore[no-untyped-def]
    org = session.get(Organization, org_id)
    return set_mapping(session, org, MAPPING, "admin:test", apply_now=True).plan


def wait_for_a_lock_wait(url: str) -> None:
    """Until a backend of this database waits for a lock (the admin's transaction, queued
    behind the batch)."""
    watcher = create_engine(url, poolclass=NullPool, isolation_level="AUTOCOMMIT")
    deadline = time.monotonic() + 30
    try:
        with watcher.connect() as conn:
            query = text(
                "select count(*) from pg_stat_activity"
                " where datname = current_database() and wait_event_type = 'Lock'"
            )
            while not conn.execute(query).scalar():
                assert time.monotonic() < deadline, "the admin's action never waited"
                time.sleep(0.02)
    finally:
        watcher.dispose()


@pytest.mark.parametrize("action", [plan_and_apply, set_the_mapping], ids=["plan", "mapping"])
def test_an_admin_action_during_a_batch_waits_for_it_and_plans_from_it(
    database, new_org, db_kind, action
):
    if db_kind != "postgresql":
        pytest.skip("SQLite writers run one at a time")
    org_id, _ = new_org("Busy")
    # The directory has ana and bob in Sales; the engine has not applied it yet.
    queue_writes(database, org_id, ["ana", "bob"], group="Sales")
    applying, release = threading.Event(), threading.Event()
    outcome: dict[str, object] = {}

    def batch() -> None:
        with database.transaction() as session:
            outcome["batch"] = queue.drain_org(session, org_id)
            applying.set()  # org group Sales created, not committed yet
            release.wait(30)

    def admin() -> None:
        try:
            with database.transaction() as session:
                outcome["plan"] = action(session, org_id)
        except BaseException as exc:
            outcome["error"] = exc

    batch_thread = threading.Thread(target=batch)
    batch_thread.start()
    assert applying.wait(30)
    admin_thread = threading.Thread(target=admin)
    admin_thread.start()
    try:
        wait_for_a_lock_wait(database.url)
    finally:
        release.set()
        batch_thread.join(30)
        admin_thread.join(60)

    assert outcome["batch"] == 3
    assert "error" not in outcome, outcome.get("error")
    # Planned after the batch committed: Sales existed, so it was not planned again.
    planned = {c.kind for c in outcome["plan"].changes}  # type: ignore[attr-defined]
    assert "group.create" not in planned
    assert org_groups(database, org_id) == {"Sales"}
    found = members(database, org_id)
    assert {e: (m["status"], m["groups"]) for e, m in found.items()} == {
        "ana@acme.com": ("invited", {"Sales"}),
        "bob@acme.com": ("invited", {"Sales"}),
    }
    if action is set_the_mapping:
        assert access(database, org_id) == {("Sales", "Pipeline"): "edit"}

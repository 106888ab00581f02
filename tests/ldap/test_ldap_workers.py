"""Connector runs across several `scimgate worker` processes on one PostgreSQL: one run per
connector at a time, and a worker killed mid-run is followed by another with nothing lost."""

from __future__ import annotations

import itertools
import os
import signal
import time
from pathlib import Path

import pytest
from conftest import DirectoryState, configure, openldap_connector
from gateway_processes import Served
from ldap_servers import Slapd
from sqlalchemy import select

from gateway.store.models import SyncRun


def _runs(db, org_id: str) -> list[SyncRun]:
    with db.read() as session:
        return list(
            session.scalars(
                select(SyncRun).where(SyncRun.org_id == org_id).order_by(SyncRun.started_at)
            )
        )


def _worker(db, tmp_path: Path, name: str) -> Served:
    env = {
        "GATEWAY_DATABASE_URL": db.url,
        "GATEWAY_WORKER_POLL_SECONDS": "1",
        "SCIMGATE_TEST_SLAPD_PW": Slapd.root_pw,
    }
    return Served(tmp_path / name, command="worker", env=env)


def _wait(condition, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return
        time.sleep(0.05)
    raise AssertionError("timed out")


def test_two_workers_never_run_one_connector_at_the_same_time(
    postgresql_database, slapd, openldap, tmp_path: Path
) -> None:
    db = postgresql_database
    people = f"ou=people,{openldap.base}"
    for i in range(30):
        openldap.user(f"w{i}", people)
    org_id = configure(
        db,
        {"main": openldap_connector(slapd, openldap.base, interval="1s", full_sync_interval="1s")},
    )
    workers = [_worker(db, tmp_path, f"w{i}") for i in range(2)]
    try:
        _wait(lambda: sum(r.status == "succeeded" for r in _runs(db, org_id)) >= 4)
    finally:
        for w in workers:
            w.stop()
    runs = [r for r in _runs(db, org_id) if r.finished_at is not None]
    assert all(r.status == "succeeded" for r in runs), [(r.status, r.error) for r in runs]
    for earlier, later in itertools.pairwise(runs):
        assert later.started_at >= earlier.finished_at, "two runs of one connector overlapped"
    assert len(DirectoryState(db, org_id).users) == 30


def test_a_worker_killed_mid_run_is_followed_by_another_and_nothing_is_lost(
    postgresql_database, slapd, openldap, tmp_path: Path
) -> None:
    db = postgresql_database
    people = f"ou=people,{openldap.base}"
    for i in range(1500):
        openldap.user(f"k{i}", people)
    org_id = configure(
        db, {"main": openldap_connector(slapd, openldap.base, interval="1s", page_size=10)}
    )
    first = _worker(db, tmp_path, "first")
    try:
        _wait(lambda: any(r.status == "running" for r in _runs(db, org_id)))
        os.kill(first.proc.pid, signal.SIGKILL)
        first.proc.wait(timeout=10)
    finally:
        first.stop()
    killed = [r for r in _runs(db, org_id) if r.status == "running"]
    if not killed:
        pytest.skip("the run finished before the worker could be killed")

    second = _worker(db, tmp_path, "second")
    try:
        _wait(lambda: any(r.status == "succeeded" for r in _runs(db, org_id)), timeout=120)
    finally:
        second.stop()
    runs = {r.id: r for r in _runs(db, org_id)}
    assert runs[killed[0].id].status == "failed"
    assert runs[killed[0].id].error.startswith("interrupted")
    assert len(DirectoryState(db, org_id).users) == 1500

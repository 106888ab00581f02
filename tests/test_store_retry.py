"""Transactions that lose a race are run again (Database.run)."""

from __future__ import annotations

import threading
import time

import pytest
from sqlalchemy import select, text

from gateway.orgs import create_org
from gateway.store.models import Organization


def test_deadlocked_transactions_are_retried_and_both_commit(database, db_kind) -> None:
    if db_kind != "postgresql":
        pytest.skip(
            "SQLite takes the write lock up front (BEGIN IMMEDIATE): writers never deadlock"
        )
    with database.transaction() as session:
        a = create_org(session, "A").id
        b = create_org(session, "B").id
    barrier = threading.Barrier(2, timeout=10)
    attempts = {"ab": 0, "ba": 0}

    def lock_both(first: str, second: str, key: str) -> None:
        def work(session) -> None:
            attempts[key] += 1
            session.execute(
                text("update organizations set seats = seats + 1 where id = :id"), {"id": first}
            )
            if attempts[key] == 1:
                barrier.wait()  # both hold their first row: the second update deadlocks
            session.execute(
                text("update organizations set seats = seats + 1 where id = :id"), {"id": second}
            )

        database.run(work)

    threads = [
        threading.Thread(target=lock_both, args=(a, b, "ab")),
        threading.Thread(target=lock_both, args=(b, a, "ba")),
    ]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=30)
    assert sorted(attempts.values()) == [1, 2], "exactly one side lost the deadlock and ran again"
    with database.read() as session:
        seats = dict(session.execute(select(Organization.name, Organization.seats)).all())
    assert seats == {"A": 2, "B": 2}


def test_connections_the_server_closed_are_replaced_without_an_error(scim, database, db_kind):
    """A PostgreSQL restart or failover closes every pooled connection; the next requests get
    new ones instead of a 500 (the pool checks each connection's socket as it hands it out)."""
    if db_kind != "postgresql":
        pytest.skip("SQLite has no server to close connections")
    created = scim.post(
        "/Users", {"schemas": ["urn:ietf:params:scim:schemas:core:2.0:User"], "userName": "ana"}
    )
    assert created.status_code == 201
    user_id = created.get_json()["id"]
    # Several connections in each pool (writes, and the short reads of SCIM GETs), all idle.
    held = [engine.connect() for engine in (database.engine, database.lookup_engine) for _ in "abc"]
    for conn in held:
        conn.execute(text("select 1"))
    for conn in held:
        conn.close()
    with database.engine.connect() as conn:
        pid = conn.execute(text("select pg_backend_pid()")).scalar()
    killer = create_engine_for(database.url)
    with killer.connect() as conn:
        others = (
            "from pg_stat_activity where datname = current_database() and pid <> pg_backend_pid()"
        )
        killed = conn.execute(text(f"select count(pg_terminate_backend(pid)) {others}")).scalar()
        # pg_terminate_backend only signals; as after a restart, the backends are gone (and
        # their goodbye is in our sockets) before the next request.
        deadline = time.monotonic() + 10
        while conn.execute(text(f"select count(*) {others}")).scalar():
            assert time.monotonic() < deadline, "terminated backends did not exit"
            time.sleep(0.02)
    killer.dispose()
    assert killed >= 1 and pid is not None
    for _ in range(5):  # more requests than there were pooled connections
        got = scim.get(f"/Users/{user_id}")
        assert got.status_code == 200, got.get_data(as_text=True)
        assert got.get_json()["userName"] == "ana"
    renamed = scim.patch(
        f"/Users/{user_id}",
        {
            "schemas": ["urn:ietf:params:scim:api:messages:2.0:PatchOp"],
            "Operations": [{"op": "replace", "path": "userName", "value": "ana.b"}],
        },
    )
    assert renamed.status_code == 200
    assert renamed.get_json()["userName"] == "ana.b"


def create_engine_for(url: str):
    from sqlalchemy import create_engine
    from sqlalchemy.pool import NullPool

    # Autocommit: pg_stat_activity is a snapshot taken once per transaction.
    return create_engine(url, poolclass=NullPool, isolation_level="AUTOCOMMIT")


def test_sqlite_writers_of_different_processes_take_turns(tmp_path, db_kind):
    """The writers of every process on one SQLite file queue on one lock (a file lock beside
    the database): a process that wants to write while another holds it waits, then writes."""
    if db_kind != "sqlite":
        pytest.skip("PostgreSQL writers run side by side")
    import subprocess
    import sys

    from gateway.store import Database

    url = f"sqlite:///{tmp_path / 'shared.db'}"
    holder = Database(url)
    holder.upgrade()
    script = (
        "import sys, time\n"
        "from gateway.store import Database\n"
        "from gateway.orgs import create_org\n"
        "db = Database(sys.argv[1])\n"
        "print('ready', flush=True)\n"
        "t = time.monotonic()\n"
        "with db.transaction() as s:\n"
        "    create_org(s, 'Second')\n"
        "print(round(time.monotonic() - t, 3), flush=True)\n"
    )
    with holder.transaction() as session:
        create_org(session, "First")
        session.flush()
        other = subprocess.Popen(
            [sys.executable, "-c", script, url], stdout=subprocess.PIPE, text=True
        )
        assert other.stdout.readline().strip() == "ready"
        time.sleep(0.6)  # the other process is waiting for us now
    waited = float(other.stdout.readline())
    assert other.wait(timeout=30) == 0
    assert waited >= 0.4
    with holder.read() as session:
        names = set(session.scalars(select(Organization.name)))
    assert names == {"First", "Second"}
    holder.dispose()

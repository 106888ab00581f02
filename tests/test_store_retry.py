"""Transactions that lose a race are run again (Database.run)."""

from __future__ import annotations

import threading

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

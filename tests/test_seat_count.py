"""The kept seat count (organizations.seats_used) always equals the members in a seat status:
across invitations, accept/confirm, revoke/restore, removal, rolled-back transactions and
savepoints that roll back (a console bulk action where one member fails), on both databases."""

from __future__ import annotations

import contextlib
import random

import pytest
from sqlalchemy import func, select

from gateway import lifecycle, orgs
from gateway.errors import GatewayError
from gateway.orgs import create_org, list_orgs
from gateway.store.models import Member, Organization
from gateway.store.seat_count import used_seats


def counted(session, org_id: str) -> int:
    return session.scalar(
        select(func.count())
        .select_from(Member)
        .where(Member.org_id == org_id, Member.status.in_(orgs.SEAT_STATUSES))
    )


def stored(database, org_id: str) -> int:
    with database.read() as session:
        return session.get(Organization, org_id).seats_used


def step(session, org: Organization, rng: random.Random, n: int) -> None:
    members = list(session.scalars(select(Member).where(Member.org_id == org.id)))
    action = rng.choice(["new", "new", "accept", "confirm", "revoke", "restore", "remove"])
    seats = lifecycle.Seats.load(session, org) if rng.random() < 0.5 else None
    if action == "new" or not members:
        lifecycle.new_member(session, org, email=f"m{n}@acme.example", actor="t", seats=seats)
        return
    member = rng.choice(members)
    if action == "accept":
        lifecycle.accept(session, member, public_key=None)
    elif action == "confirm":
        lifecycle.confirm(session, member, "t")
    elif action == "revoke":
        lifecycle.revoke(session, member, "t", seats=seats)
    elif action == "restore":
        lifecycle.restore(session, org, member, "t", seats=seats)
    else:
        lifecycle.remove(session, member, "t", seats=seats)


def test_the_kept_count_matches_the_members_through_any_sequence(database):
    rng = random.Random(20261122)
    with database.transaction() as session:
        org_id = create_org(session, "Acme", seats=3, seat_limit=12).id
    for n in range(120):
        kind = rng.choice(["commit", "commit", "rollback", "savepoint"])
        try:
            with database.transaction() as session:
                org = session.get(Organization, org_id)
                for i in range(rng.randint(1, 4)):
                    if kind == "savepoint":
                        try:
                            with session.begin_nested():
                                step(session, org, rng, n * 10 + i)
                                session.flush()
                                if rng.random() < 0.5:
                                    raise GatewayError("this member fails")
                        except GatewayError:
                            pass
                    else:
                        # A transition that does not apply to this member is refused.
                        with contextlib.suppress(GatewayError):
                            step(session, org, rng, n * 10 + i)
                    # What the transaction sees agrees with a count at every point.
                    assert used_seats(session, org_id) == counted(session, org_id)
                if kind == "rollback":
                    raise RuntimeError("roll back")
        except RuntimeError:
            pass
        with database.read() as session:
            assert stored(database, org_id) == counted(session, org_id), f"step {n} ({kind})"
    with database.read() as session:
        assert counted(session, org_id) > 0  # the sequence did fill seats


def test_org_list_shows_the_used_seats_as_members_come_and_go(database):
    with database.transaction() as session:
        org = create_org(session, "Globex", seats=0)
        ann = lifecycle.new_member(session, org, email="ann@globex.example", actor="t")
        lifecycle.new_member(session, org, email="bob@globex.example", actor="t")
        org_id, ann_id = org.id, ann.id
    with database.read() as session:
        [(org, figures)] = [(o, f) for o, f in list_orgs(session) if o.id == org_id]
        assert (figures.assigned, figures.used) == (2, 2)
    with database.transaction() as session:
        lifecycle.revoke(session, session.get(Member, ann_id), "t")
    with database.read() as session:
        [figures] = [f for o, f in list_orgs(session) if o.id == org_id]
        assert figures.used == 1


@pytest.mark.parametrize("outcome", ["commit", "rollback"])
def test_two_organizations_keep_their_own_counts(database, outcome):
    with database.transaction() as session:
        a = create_org(session, "A org")
        b = create_org(session, "B org")
        a_id, b_id = a.id, b.id
    try:
        with database.transaction() as session:
            a, b = session.get(Organization, a_id), session.get(Organization, b_id)
            for i in range(3):
                lifecycle.new_member(session, a, email=f"a{i}@a.example", actor="t")
            lifecycle.new_member(session, b, email="b@b.example", actor="t")
            assert (used_seats(session, a_id), used_seats(session, b_id)) == (3, 1)
            if outcome == "rollback":
                raise RuntimeError
    except RuntimeError:
        pass
    expected = (3, 1) if outcome == "commit" else (0, 0)
    assert (stored(database, a_id), stored(database, b_id)) == expected


def test_the_count_taken_under_the_reconcile_lock_is_the_latest_committed_one(database):
    """On PostgreSQL the engine takes the stored count from the organization row it read under
    its lock instead of reading it again: that row must be the latest, even when this
    transaction had read the organization before another one invited someone."""
    from gateway.provisioning.entry import lock_org

    if database.dialect != "postgresql":
        pytest.skip("SQLite writers run one at a time: no other one can commit meanwhile")
    with database.transaction() as session:
        org_id = create_org(session, "Acme", seats=10).id
        lifecycle.new_member(
            session, session.get(Organization, org_id), email="a@x.example", actor="t"
        )
    with database.transaction() as session:
        early = session.get(Organization, org_id)  # read before the other transaction commits
        assert early.seats_used == 1
        with database.transaction() as other:
            lifecycle.new_member(
                other, other.get(Organization, org_id), email="b@x.example", actor="t"
            )
        org = lock_org(session, org_id)
        assert org is early  # one row per session
        assert used_seats(session, org_id) == counted(session, org_id) == 2
        lifecycle.new_member(session, org, email="c@x.example", actor="t")
        session.flush()
        assert used_seats(session, org_id) == counted(session, org_id) == 3
    assert stored(database, org_id) == 3


def test_a_savepoint_released_under_the_lock_is_counted_once(database):
    """Releasing a savepoint writes the count it changed (the SCIM writes' unique checks use
    savepoints); the row read under the lock must not then be taken for the stored count."""
    from gateway.provisioning.entry import lock_org

    if database.dialect != "postgresql":
        pytest.skip("the count is taken from the locked row on PostgreSQL only")
    with database.transaction() as session:
        org_id = create_org(session, "Acme", seats=10).id
    with database.transaction() as session:
        org = lock_org(session, org_id)
        with session.begin_nested():
            lifecycle.new_member(session, org, email="a@x.example", actor="t")
        assert used_seats(session, org_id) == counted(session, org_id) == 1
        lifecycle.new_member(session, org, email="b@x.example", actor="t")
        session.flush()
        assert used_seats(session, org_id) == counted(session, org_id) == 2
        lock_org(session, org_id)  # again, as a second engine run in one transaction would
        assert used_seats(session, org_id) == counted(session, org_id) == 2
    assert stored(database, org_id) == 2

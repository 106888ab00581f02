"""A worker whose claim lapsed does not deliver: the message may be another worker's by then."""

from __future__ import annotations

from datetime import timedelta

from gateway.outbox.queue import claim, enqueue, renew
from gateway.store.models import OutboxMessage, utcnow


def test_a_lapsed_claim_taken_by_another_worker_is_not_renewed(database, new_org) -> None:
    org_id, _ = new_org("Acme")
    with database.transaction() as session:
        enqueue(session, "invitation", {"n": 1}, org_id=org_id)
    lease = timedelta(seconds=30)
    (mine,) = claim(database, lease=lease)
    # my lease runs out; another worker claims the message
    (theirs,) = claim(database, lease=lease, now=utcnow() + timedelta(seconds=31))
    assert theirs.id == mine.id
    assert renew(database, mine, lease) is False
    assert renew(database, theirs, lease) is True
    with database.read() as session:
        assert session.get(OutboxMessage, mine.id).claimed_until == theirs.claimed_until


def test_a_live_claim_is_renewed(database, new_org) -> None:
    org_id, _ = new_org("Acme")
    with database.transaction() as session:
        enqueue(session, "invitation", {"n": 1}, org_id=org_id)
    (mine,) = claim(database, lease=timedelta(seconds=30))
    before = mine.claimed_until
    assert renew(database, mine, timedelta(seconds=300)) is True
    assert mine.claimed_until > before

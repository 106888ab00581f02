"""The seat count each organization keeps in organizations.seats_used: its members in a seat
status (invited, accepted, confirmed).

Counting an organization's members on every write costs O(members); this keeps the count
instead, exactly: every flush notes how it changed members' seat statuses, and just before the
transaction commits one UPDATE per organization adds the change to the stored count, so the
count commits or rolls back with the rows it counts. A savepoint that rolls back takes its own
changes with it. Every write of a member goes through the ORM (nothing issues Core INSERT,
UPDATE or DELETE on members), which is what keeps the count true; migration 0004 counted the
members that existed before it.

`used_seats` is the count as this transaction sees it: the stored figure plus its own changes.
"""

from __future__ import annotations

from collections import Counter

from sqlalchemy import event, inspect, select, update
from sqlalchemy.orm import Session, SessionTransaction

from gateway.store.models import Member, Organization

SEAT_STATUSES = ("invited", "accepted", "confirmed")
_PENDING = "seat_count.pending"  # session.info: {transaction: Counter(org_id -> change)}
_ROLLED_BACK = "seat_count.rolled_back"  # session.info: savepoints that rolled back
_LOCKED = "seat_count.locked"  # session.info: {org id: Organization read under its row lock}


def _original_status(member: Member) -> str | None:
    history = inspect(member).attrs.status.history
    return history.deleted[0] if history.deleted else member.status


@event.listens_for(Session, "after_flush")
def _note_flush(session: Session, _context: object) -> None:
    change: Counter[str] = Counter()
    for obj in session.new:
        if isinstance(obj, Member) and obj.status in SEAT_STATUSES:
            change[obj.org_id] += 1
    for obj in session.dirty:
        if isinstance(obj, Member):
            before = _original_status(obj) in SEAT_STATUSES
            change[obj.org_id] += (obj.status in SEAT_STATUSES) - before
    for obj in session.deleted:
        if isinstance(obj, Member) and _original_status(obj) in SEAT_STATUSES:
            change[obj.org_id] -= 1
    change = Counter({org: n for org, n in change.items() if n})
    if change:
        trans = session.get_nested_transaction() or session.get_transaction()
        session.info.setdefault(_PENDING, {}).setdefault(trans, Counter()).update(change)


def _live(session: Session, trans: SessionTransaction | None) -> bool:
    """False when `trans` or a savepoint around it rolled back."""
    rolled_back = session.info.get(_ROLLED_BACK, ())
    while trans is not None:
        if trans in rolled_back:
            return False
        trans = trans.parent
    return True


def _pending(session: Session) -> Counter[str]:
    total: Counter[str] = Counter()
    for trans, change in session.info.get(_PENDING, {}).items():
        if _live(session, trans):
            total.update(change)
    return total


@event.listens_for(Session, "after_soft_rollback")
def _forget_rolled_back(session: Session, previous: SessionTransaction) -> None:
    if previous.nested:
        session.info.setdefault(_ROLLED_BACK, set()).add(previous)
    else:
        _clear(session)


@event.listens_for(Session, "after_transaction_end")
def _transaction_end(session: Session, trans: SessionTransaction) -> None:
    if trans.parent is None:
        _clear(session)


def _clear(session: Session) -> None:
    session.info.pop(_PENDING, None)
    session.info.pop(_ROLLED_BACK, None)
    session.info.pop(_LOCKED, None)


@event.listens_for(Session, "before_commit")
def _store(session: Session) -> None:
    if _PENDING not in session.info and not (session.new or session.dirty or session.deleted):
        return
    session.flush()  # commit's own flush comes after this hook; count what it would write now
    for org_id, change in sorted(_pending(session).items()):
        if change:
            session.execute(
                update(Organization)
                .where(Organization.id == org_id)
                .values(seats_used=Organization.seats_used + change)
                .execution_options(synchronize_session=False)
            )
    _clear(session)


def note_locked(session: Session, org: Organization) -> None:
    """`org` was just read under its row lock (FOR NO KEY UPDATE) by this session's top-level
    transaction. Until that transaction ends nobody else can commit a new count (their UPDATE
    waits for the lock), so `used_seats` takes the stored count from the row instead of reading
    it again. This transaction writes its own changes with `_store` (at commit, and when a
    savepoint is released: SQLAlchemy calls before_commit then too), and `_clear` there forgets
    the noted row, whose `seats_used` no longer says what is stored: the next `used_seats`
    reads it. Not inside a savepoint: rolling one back gives its row locks back."""
    if not session.in_nested_transaction():
        session.info.setdefault(_LOCKED, {})[org.id] = org


def used_seats(session: Session, org_id: str) -> int:
    """Members of the organization in a seat status, as this transaction sees them."""
    locked = session.info.get(_LOCKED, {}).get(org_id)
    if locked is not None:
        stored = locked.seats_used
    else:
        stored = session.scalar(select(Organization.seats_used).where(Organization.id == org_id))
    return int(stored or 0) + _pending(session)[org_id]

"""The outbox table as a queue: enqueue in the caller's transaction, claim with a lease, settle."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from sqlalchemy import ColumnElement, Update, or_, select, update
from sqlalchemy.orm import Session

from gateway.store import Database
from gateway.store.models import OutboxMessage, utcnow

# A claimed message is someone's for this long; a worker killed mid-delivery loses its claim
# when the lease runs out and another worker delivers the message.
LEASE = timedelta(minutes=2)


def enqueue(session: Session, kind: str, payload: dict, *, org_id: str | None) -> OutboxMessage:
    message = OutboxMessage(kind=kind, payload=payload, org_id=org_id)
    session.add(message)
    session.flush()
    return message


def backoff(attempts: int) -> timedelta:
    """30 s, 1 min, 2 min, 4 min, ... capped at one hour."""
    return timedelta(seconds=min(30 * 2 ** max(attempts - 1, 0), 3600))


@dataclass(frozen=True)
class Busy:
    """What a claim leaves alone because the claimer has no room for it now: every message of
    `kinds`; the messages of a kind whose payload field `receivers[kind][0]` is one of
    `receivers[kind][1]` (a webhook endpoint at its share); those of a kind whose organization
    is one of `orgs[kind]` (an organization at its share). They stay due for other workers."""

    kinds: frozenset[str] = frozenset()
    receivers: Mapping[str, tuple[str, frozenset[str]]] = field(default_factory=dict)
    orgs: Mapping[str, frozenset[str]] = field(default_factory=dict)

    def conditions(self) -> list[ColumnElement[bool]]:
        where: list[ColumnElement[bool]] = []
        if self.kinds:
            where.append(OutboxMessage.kind.not_in(self.kinds))
        for kind, (key, values) in self.receivers.items():
            if kind in self.kinds or not values:
                continue
            receiver = OutboxMessage.payload[key].as_string()
            where.append(
                or_(OutboxMessage.kind != kind, receiver.is_(None), receiver.not_in(values))
            )
        for kind, org_ids in self.orgs.items():
            if kind in self.kinds or not org_ids:
                continue
            org = OutboxMessage.org_id
            where.append(or_(OutboxMessage.kind != kind, org.is_(None), org.not_in(org_ids)))
        return where


def claim(
    db: Database,
    *,
    limit: int = 20,
    now: datetime | None = None,
    lease: timedelta = LEASE,
    busy: Busy = Busy(),
) -> list[OutboxMessage]:
    """Due messages, oldest first, now ours for `lease`; none that `busy` names."""
    now = now or utcnow()
    with db.transaction() as session:
        query = (
            select(OutboxMessage)
            .where(
                OutboxMessage.status == "pending",
                OutboxMessage.next_attempt_at <= now,
                or_(OutboxMessage.claimed_until.is_(None), OutboxMessage.claimed_until < now),
                *busy.conditions(),
            )
            .order_by(OutboxMessage.next_attempt_at, OutboxMessage.id)
            .limit(limit)
        )
        if db.dialect == "postgresql":
            query = query.with_for_update(skip_locked=True)
        messages = list(session.scalars(query))
        for message in messages:
            message.claimed_until = now + lease
    return messages


def renew(db: Database, message: OutboxMessage, lease: timedelta) -> bool:
    """Extend our claim on `message` just before delivering it; False when the claim lapsed and
    another worker may own it now (then we leave it alone: no second delivery from us)."""
    until = utcnow() + lease
    with db.transaction() as session:
        owned = session.execute(_ours(message).values(claimed_until=until)).rowcount
    if owned:
        message.claimed_until = until
    return bool(owned)


def release(db: Database, messages: list[OutboxMessage]) -> None:
    """Give up our claim on messages we will not deliver now (no room for their receiver): due
    again at once, for us later or for another worker, with no attempt counted."""
    if not messages:
        return
    with db.transaction() as session:
        for message in messages:
            session.execute(_ours(message).values(claimed_until=None))


def _ours(message: OutboxMessage) -> Update:
    """An update of `message` that changes nothing unless our claim on it still holds."""
    return update(OutboxMessage).where(
        OutboxMessage.id == message.id,
        OutboxMessage.status == "pending",
        OutboxMessage.claimed_until == message.claimed_until,
    )


def settle_sent(db: Database, message_id: int) -> None:
    with db.transaction() as session:
        session.execute(
            update(OutboxMessage)
            .where(OutboxMessage.id == message_id, OutboxMessage.status == "pending")
            .values(
                status="sent",
                sent_at=utcnow(),
                attempts=OutboxMessage.attempts + 1,
                claimed_until=None,
                last_error=None,
            )
        )


def settle_failed(db: Database, message_id: int, error: str, *, max_attempts: int) -> bool:
    """Record a failed attempt; True when that was the last one and the message is now failed."""
    with db.transaction() as session:
        message = session.get(OutboxMessage, message_id)
        if message is None or message.status != "pending":
            return False
        message.attempts += 1
        message.last_error = error[:2000]
        message.claimed_until = None
        if message.attempts >= max_attempts:
            message.status = "failed"
            return True
        message.next_attempt_at = utcnow() + backoff(message.attempts)
        return False


def retry(session: Session, message_id: int) -> OutboxMessage | None:
    """Put a failed message back in the queue (an admin's 'resend')."""
    message = session.get(OutboxMessage, message_id)
    if message is None:
        return None
    message.status = "pending"
    message.next_attempt_at = utcnow()
    message.claimed_until = None
    return message

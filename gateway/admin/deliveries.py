"""Outgoing messages of one organization (invitation e-mails and webhooks) and their delivery
state: pending, sent, failed with the last error; failed ones can be sent again.

Does: read the outbox and put a failed message back in the queue. Does not: deliver (the outbox
worker does) nor configure webhook endpoints.
"""

from __future__ import annotations

from sqlalchemy import select
from sqlalchemy.orm import Session

from gateway.errors import InvalidInput, NotFound
from gateway.events import record_event
from gateway.outbox.queue import retry
from gateway.store.models import Organization, OutboxMessage

_MAX_ID = 2**63 - 1


def deliveries(
    session: Session, org: Organization, *, kind: str | None = None, limit: int = 100
) -> list[OutboxMessage]:
    query = select(OutboxMessage).where(OutboxMessage.org_id == org.id)
    if kind:
        query = query.where(OutboxMessage.kind == kind)
    return list(session.scalars(query.order_by(OutboxMessage.id.desc()).limit(limit)))


def redeliver(session: Session, org: Organization, message_id: int, actor: str) -> OutboxMessage:
    message = session.get(OutboxMessage, message_id) if 0 < message_id <= _MAX_ID else None
    if message is None or message.org_id != org.id:
        raise NotFound(f"{org.name} has no outgoing message {message_id}")
    if message.status != "failed":
        raise InvalidInput(f"message {message_id} is {message.status}; only failed ones are resent")
    retry(session, message.id)
    record_event(
        session,
        org_id=org.id,
        actor=actor,
        type="outbox.resent",
        target_type="outbox",
        target_id=str(message.id),
        detail={"kind": message.kind},
    )
    return message

"""Recording events: the audit-log row and, in the same transaction, one `webhook` outbox message
per endpoint of the organization that subscribed to the event's type.

Does: `record_event` (one event) and `record_events` (many, as the engine writes them in bulk);
match event types against endpoint subscriptions ("member.*", "member.confirmed", or all).
Does not: deliver (gateway.outbox.webhooks does), nor manage endpoints (gateway.lifecycle.webhooks).
Events about webhooks themselves (`webhook.*`) are never sent to webhooks: a failing endpoint
would otherwise feed itself.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterable, Sequence
from datetime import datetime
from urllib.parse import urlsplit

from sqlalchemy import insert, select
from sqlalchemy.orm import Session

from gateway.store.models import Event, OutboxMessage, WebhookEndpoint, utcnow

_CACHE = "scimgate.webhook_endpoints"


def record_event(
    session: Session,
    *,
    org_id: str | None,
    actor: str,
    type: str,
    target_type: str | None = None,
    target_id: str | None = None,
    detail: dict | None = None,
    at: datetime | None = None,
) -> Event:
    """Add one event to the caller's transaction, with its webhook messages."""
    event = Event(
        org_id=org_id,
        actor=actor,
        type=type,
        target_type=target_type,
        target_id=target_id,
        detail=detail or {},
        at=at or utcnow(),
    )
    session.add(event)
    for message in _webhook_messages(session, [_row(event)]):
        session.add(OutboxMessage(**message))
    return event


def record_events(session: Session, rows: Sequence[dict]) -> None:
    """Bulk form: `rows` are Event column dicts (org_id, actor, type, at, target_type,
    target_id, detail), inserted 2,000 at a time with their webhook messages."""
    for i in range(0, len(rows), 2000):
        chunk = [
            {**r, "at": r.get("at") or utcnow(), "detail": r.get("detail") or {}}
            for r in rows[i : i + 2000]
        ]
        session.execute(insert(Event), chunk)
        messages = _webhook_messages(session, chunk)
        if messages:
            session.execute(insert(OutboxMessage), messages)


def forget_endpoints(session: Session, org_id: str) -> None:
    """Endpoints of `org_id` changed in this session: look them up again for the next event.
    Flushes them first: the lookup does not autoflush (see `_endpoints`)."""
    session.flush()
    session.info.get(_CACHE, {}).pop(org_id, None)


def subscribed(patterns: Iterable[str], event_type: str) -> bool:
    patterns = list(patterns)
    if not patterns:
        return True
    for pattern in patterns:
        if pattern in ("*", event_type):
            return True
        if pattern.endswith(".*") and event_type.startswith(pattern[:-1]):
            return True
    return False


def display_url(url: str) -> str:
    """The endpoint without query string or credentials, for lists and logs."""
    parts = urlsplit(url)
    host = parts.hostname or ""
    if ":" in host:  # an IPv6 address keeps its brackets
        host = f"[{host}]"
    if parts.port:
        host = f"{host}:{parts.port}"
    return f"{parts.scheme}://{host}{parts.path}"


def _row(event: Event) -> dict:
    return {
        "org_id": event.org_id,
        "actor": event.actor,
        "type": event.type,
        "at": event.at,
        "target_type": event.target_type,
        "target_id": event.target_id,
        "detail": event.detail,
    }


def _endpoints(session: Session, org_id: str) -> list[tuple[str, str, list[str]]]:
    cache: dict = session.info.setdefault(_CACHE, {})
    if org_id not in cache:
        # No autoflush: the endpoints do not depend on what the transaction has pending, and
        # a flush here would write a new member before the same transaction invites it (an
        # INSERT, then an UPDATE) instead of once, with the events together.
        with session.no_autoflush:
            cache[org_id] = [
                (e.id, display_url(e.url), list(e.events or []))
                for e in session.scalars(
                    select(WebhookEndpoint)
                    .where(WebhookEndpoint.org_id == org_id)
                    .order_by(WebhookEndpoint.created_at)
                )
            ]
    return cache[org_id]


def _webhook_messages(session: Session, rows: Iterable[dict]) -> list[dict]:
    messages = []
    for row in rows:
        if not row.get("org_id") or row["type"].startswith("webhook."):
            continue
        endpoints = _endpoints(session, row["org_id"])
        if not endpoints:
            continue
        body = {
            "id": f"evt_{uuid.uuid4().hex}",
            "type": row["type"],
            "occurred_at": row["at"].isoformat(),
            "organization_id": row["org_id"],
            "actor": row["actor"],
            "target": {"type": row.get("target_type"), "id": row.get("target_id")},
            "detail": row.get("detail") or {},
        }
        for endpoint_id, url, patterns in endpoints:
            if subscribed(patterns, row["type"]):
                messages.append(
                    {
                        "org_id": row["org_id"],
                        "kind": "webhook",
                        "payload": {"endpoint_id": endpoint_id, "url": url, "event": body},
                    }
                )
    return messages

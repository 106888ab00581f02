"""The event log of one organization: filter, page (newest first) and export as CSV.

Does: read events. Does not: write them (every service writes its own beside its change).
"""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import select
from sqlalchemy.orm import Session

from gateway.store.models import Event, Organization

CSV_COLUMNS = ("id", "at", "actor", "type", "target_type", "target_id", "detail")
_MAX_ID = 2**63 - 1


@dataclass(frozen=True)
class EventFilter:
    type: str | None = None  # exact, or a prefix ending in "." (e.g. "member.")
    actor: str | None = None
    target_id: str | None = None
    since: datetime | None = None
    until: datetime | None = None
    before_id: int | None = None  # paging: events older than this one
    limit: int = 100


def _query(org: Organization, f: EventFilter):  # type: ignore[no-untyped-def]
    query = select(Event).where(Event.org_id == org.id)
    if f.type:
        if f.type.endswith("."):
            query = query.where(Event.type.startswith(f.type, autoescape=True))
        else:
            query = query.where(Event.type == f.type)
    if f.actor:
        query = query.where(Event.actor == f.actor)
    if f.target_id:
        query = query.where(Event.target_id == f.target_id)
    if f.since:
        query = query.where(Event.at >= f.since)
    if f.until:
        query = query.where(Event.at < f.until)
    if f.before_id is not None:
        query = query.where(Event.id < min(f.before_id, _MAX_ID))
    return query.order_by(Event.id.desc())


def find_events(session: Session, org: Organization, f: EventFilter) -> list[Event]:
    return list(session.scalars(_query(org, f).limit(min(max(f.limit, 1), 1000))))


def events_csv(session: Session, org: Organization, f: EventFilter) -> Iterator[str]:
    """Every matching event (no page limit), one CSV line at a time, oldest last."""
    buffer = io.StringIO()
    writer = csv.writer(buffer)

    def line(values) -> str:  # type: ignore[no-untyped-def]
        buffer.seek(0)
        buffer.truncate()
        writer.writerow(values)
        return buffer.getvalue()

    yield line(CSV_COLUMNS)
    for e in session.scalars(_query(org, f).execution_options(yield_per=500)):
        yield line(
            _cell(v)
            for v in (
                e.id,
                e.at.isoformat(),
                e.actor,
                e.type,
                e.target_type or "",
                e.target_id or "",
                json.dumps(e.detail, sort_keys=True, default=str),
            )
        )


def _cell(value: object) -> object:
    """Spreadsheets run a cell that starts with = + - @ as a formula; such text gets a quote."""
    if isinstance(value, str) and value[:1] in ("=", "+", "-", "@"):
        return "'" + value
    return value


def event_types(session: Session, org: Organization) -> list[str]:
    return sorted(
        session.scalars(select(Event.type).where(Event.org_id == org.id).group_by(Event.type))
    )

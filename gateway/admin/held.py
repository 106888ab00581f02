"""Held changes of one organization: list, approve, drop, one at a time or in bulk by filter.

Does: scope each held change to the organization in the URL, read a filter from a form, then call
the engine. Does not: decide what is held or apply anything itself (gateway.provisioning does both).
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import UTC, datetime

from sqlalchemy.orm import Session

from gateway.errors import InvalidInput, NotFound
from gateway.provisioning import guard
from gateway.provisioning.engine import HeldDecisions, approve_held, decide_held, drop_held
from gateway.provisioning.guard import HeldFilter
from gateway.store.models import HeldChange, Member, Organization

# Ids come from URLs; beyond a BIGINT they cannot name a row (and PostgreSQL would refuse them).
_MAX_ID = 2**63 - 1
FILTER_FIELDS = ("kind", "group", "created_before", "created_after", "email_prefix", "through_id")


def pending_held(session: Session, org: Organization) -> list[tuple[HeldChange, Member | None]]:
    return [
        (h, session.get(Member, h.member_id) if h.member_id else None)
        for h in guard.list_held(session, org.id)
    ]


def _held_of(session: Session, org: Organization, held_id: int) -> HeldChange:
    held = session.get(HeldChange, held_id) if 0 < held_id <= _MAX_ID else None
    if held is None or held.org_id != org.id:
        raise NotFound(f"no held change {held_id} in {org.name}")
    return held


def approve(session: Session, org: Organization, held_id: int, actor: str) -> str:
    """ "approved", or "dropped" when the directory no longer asks for the change."""
    held = _held_of(session, org, held_id)
    return approve_held(session, held.id, actor)


def drop(session: Session, org: Organization, held_id: int, actor: str) -> None:
    held = _held_of(session, org, held_id)
    drop_held(session, held.id, actor)


def parse_filter(values: Mapping[str, str | None]) -> HeldFilter:
    """A filter from text fields (a form, a query string): dates as YYYY-MM-DD[ HH:MM], UTC."""
    found: dict[str, object] = {}
    for name in FILTER_FIELDS:
        text = (values.get(name) or "").strip()
        if not text:
            continue
        if name == "through_id":
            if not text.isdigit() or int(text) > _MAX_ID:
                raise InvalidInput(f"through_id: {text!r} is not a held change id")
            found[name] = int(text)
        elif name.startswith("created_"):
            try:
                found[name] = datetime.fromisoformat(text).replace(tzinfo=UTC)
            except ValueError:
                raise InvalidInput(
                    f"{name.replace('_', ' ')}: {text!r} is not a date (YYYY-MM-DD or "
                    "YYYY-MM-DD HH:MM, UTC)"
                ) from None
        else:
            found[name] = text
    return HeldFilter(**found)  # type: ignore[arg-type]


def matching(session: Session, org: Organization, wanted: HeldFilter) -> list[HeldChange]:
    return guard.select_held(session, org.id, wanted)


def decide_matching(
    session: Session, org: Organization, wanted: HeldFilter, decision: str, actor: str
) -> HeldDecisions:
    """Approve or drop every pending held change `wanted` takes, in the caller's transaction."""
    return decide_held(session, org, wanted, decision, actor)

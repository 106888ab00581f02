"""Held deprovisions of one organization: list, approve, drop.

Does: scope each held change to the organization in the URL, then call the engine. Does not:
decide what is held or apply anything itself (gateway.provisioning does both).
"""

from __future__ import annotations

from sqlalchemy.orm import Session

from gateway.errors import NotFound
from gateway.provisioning import guard
from gateway.provisioning.engine import approve_held, drop_held
from gateway.store.models import HeldChange, Member, Organization

# Ids come from URLs; beyond a BIGINT they cannot name a row (and PostgreSQL would refuse them).
_MAX_ID = 2**63 - 1


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
    outcome, _ = approve_held(session, held.id, actor)
    return outcome


def drop(session: Session, org: Organization, held_id: int, actor: str) -> None:
    held = _held_of(session, org, held_id)
    drop_held(session, held.id, actor)

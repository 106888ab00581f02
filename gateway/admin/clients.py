"""The clients overview and creating a client organization.

Does: one row per organization the account may see, with the provider portal's seat figures
(assigned / used / remaining) and what needs attention (pending confirmations, held
deprovisions, the last sync). Does not: change seats or members (gateway.orgs and the engine do).
"""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from gateway.accounts import Principal
from gateway.orgs import SeatFigures, create_org, list_orgs
from gateway.store.models import HeldChange, Member, Organization, SyncRun


@dataclass(frozen=True)
class ClientRow:
    org: Organization
    seats: SeatFigures
    pending_confirmations: int
    held_deprovisions: int
    last_sync: SyncRun | None


def _counts(session: Session, column, *conditions) -> dict[str, int]:  # type: ignore[no-untyped-def]
    query = select(column, func.count()).where(*conditions).group_by(column)
    return {org_id: int(n) for org_id, n in session.execute(query)}


def client_rows(session: Session, principal: Principal) -> list[ClientRow]:
    rows = [(o, s) for o, s in list_orgs(session) if principal.may_see(o.id)]
    pending = _counts(session, Member.org_id, Member.status == "accepted")
    held = _counts(session, HeldChange.org_id, HeldChange.status == "pending")
    latest = (
        select(SyncRun.org_id, func.max(SyncRun.id).label("id")).group_by(SyncRun.org_id).subquery()
    )
    last = {
        run.org_id: run
        for run in session.scalars(select(SyncRun).join(latest, latest.c.id == SyncRun.id))
    }
    return [
        ClientRow(org, seats, pending.get(org.id, 0), held.get(org.id, 0), last.get(org.id))
        for org, seats in rows
    ]


def create_client(
    session: Session,
    principal: Principal,
    *,
    name: str,
    plan: str = "teams",
    seats: int = 0,
    seat_limit: int | None = None,
    billing_email: str | None = None,
    owner_email: str | None = None,
) -> Organization:
    principal.require_provider()
    return create_org(
        session,
        name,
        plan=plan,
        seats=seats,
        seat_limit=seat_limit,
        billing_email=billing_email or None,
        owner_email=owner_email or None,
        actor=principal.actor,
    )

"""Client organizations: create, find (by id or name), list with their seat figures.

Does: the organization records the provider manages. Does not: members, SCIM or provisioning.
"""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import or_, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from gateway.errors import Conflict, InvalidInput, NotFound
from gateway.events import record_event
from gateway.store.models import ORG_PLANS, Organization

# The statuses that occupy a seat (design.md: invited, accepted and confirmed).
from gateway.store.seat_count import SEAT_STATUSES as SEAT_STATUSES


@dataclass(frozen=True)
class SeatFigures:
    assigned: int
    used: int

    @property
    def remaining(self) -> int:
        return max(self.assigned - self.used, 0)


def create_org(
    session: Session,
    name: str,
    *,
    plan: str = "teams",
    seats: int = 0,
    seat_limit: int | None = None,
    billing_email: str | None = None,
    owner_email: str | None = None,
    actor: str = "system",
) -> Organization:
    name = name.strip()
    if not name:
        raise InvalidInput("the organization needs a name")
    if plan not in ORG_PLANS:
        raise InvalidInput(f"plan must be one of {', '.join(ORG_PLANS)}, not {plan!r}")
    if seats < 0:
        raise InvalidInput("seats cannot be negative")
    if seat_limit is not None and seat_limit < seats:
        raise InvalidInput(f"the seat limit ({seat_limit}) is below the assigned seats ({seats})")
    if session.scalar(select(Organization.id).where(Organization.name_lower == name.lower())):
        raise Conflict(f"an organization named {name!r} exists already")
    org = Organization(
        name=name,
        name_lower=name.lower(),
        plan=plan,
        seats=seats,
        seat_limit=seat_limit,
        billing_email=billing_email,
        owner_email=owner_email,
        settings={},
    )
    session.add(org)
    try:
        session.flush()
    except IntegrityError:
        raise Conflict(f"an organization named {name!r} exists already") from None
    record_event(
        session,
        org_id=org.id,
        actor=actor,
        type="organization.created",
        target_type="organization",
        target_id=org.id,
        detail={"name": name, "plan": plan, "seats": seats, "seat_limit": seat_limit},
    )
    return org


def find_org(session: Session, id_or_name: str) -> Organization:
    """The organization with this id, or else this name (case-insensitive)."""
    key = id_or_name.strip()
    org = session.scalar(
        select(Organization).where(
            or_(Organization.id == key, Organization.name_lower == key.lower())
        )
    )
    if org is None:
        raise NotFound(f"no organization with id or name {key!r} (see `scimgate org list`)")
    return org


def list_orgs(session: Session) -> list[tuple[Organization, SeatFigures]]:
    orgs = session.scalars(select(Organization).order_by(Organization.name_lower))
    return [(org, SeatFigures(org.seats, org.seats_used)) for org in orgs]

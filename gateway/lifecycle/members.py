"""Member status transitions: `staged -> invited -> accepted -> confirmed`, `revoked` from any of
them, and back with restore."""

from __future__ import annotations

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from gateway.errors import InvalidTransition
from gateway.orgs import SEAT_STATUSES
from gateway.store.models import Event, Member, Organization, OutboxMessage, new_id, utcnow


class Seats:
    """The organization's seat count for one unit of work: counted once, then kept up to date by
    the transitions that use it (so a Plan of 50,000 invitations does not count 50,000 times)."""

    def __init__(self, org: Organization, used: int) -> None:
        self.org = org
        self.used = used

    @classmethod
    def load(cls, session: Session, org: Organization) -> Seats:
        used = session.scalar(
            select(func.count())
            .select_from(Member)
            .where(Member.org_id == org.id, Member.status.in_(SEAT_STATUSES))
        )
        return cls(org, int(used or 0))

    def take(self, session: Session, actor: str) -> bool:
        """Use one seat, growing the assigned seats up to the limit; False when none is left."""
        org = self.org
        if self.used >= org.seats:
            if org.seat_limit is not None and org.seats >= org.seat_limit:
                return False
            before = org.seats
            org.seats = self.used + 1
            _event(
                session,
                org.id,
                actor,
                "organization.seats_grown",
                "organization",
                org.id,
                {"from": before, "to": org.seats, "seat_limit": org.seat_limit},
            )
        self.used += 1
        return True

    def free(self) -> None:
        self.used = max(self.used - 1, 0)


def _event(
    session: Session,
    org_id: str,
    actor: str,
    type_: str,
    target_type: str,
    target_id: str,
    detail: dict,
) -> None:
    session.add(
        Event(
            org_id=org_id,
            actor=actor,
            type=type_,
            target_type=target_type,
            target_id=target_id,
            detail=detail,
            at=utcnow(),
        )
    )


def _member_event(
    session: Session, member: Member, actor: str, type_: str, **detail: object
) -> None:
    _event(
        session,
        member.org_id,
        actor,
        type_,
        "member",
        member.id,
        {"email": member.email, **{k: v for k, v in detail.items() if v is not None}},
    )


def staged_mode(org: Organization) -> bool:
    return bool((org.settings or {}).get("staged_mode", False))


def new_member(
    session: Session,
    org: Organization,
    *,
    email: str,
    actor: str,
    name: str | None = None,
    external_id: str | None = None,
    role: str = "user",
    source: str | None = None,
    directory_user_id: str | None = None,
    seats: Seats | None = None,
) -> Member:
    """A new member: invited, or staged in staged mode or when no seat is left."""
    now = utcnow()
    member = Member(
        id=new_id(),
        org_id=org.id,
        email=email,
        email_lower=email.lower(),
        name=name,
        external_id=external_id,
        role=role,
        status="staged",
        source=source,
        directory_user_id=directory_user_id,
        waiting_for_seat=False,
        created_at=now,
        updated_at=now,
    )
    session.add(member)
    if staged_mode(org):
        stage(session, member, actor)
    else:
        invite(session, org, member, actor, seats=seats)
    return member


def stage(session: Session, member: Member, actor: str, *, reason: str | None = None) -> None:
    """Record a new member as staged: known, not yet invited."""
    member.status = "staged"
    _member_event(session, member, actor, "member.staged", reason=reason)


def invite(
    session: Session, org: Organization, member: Member, actor: str, *, seats: Seats | None = None
) -> None:
    """staged -> invited, with the invitation queued in the outbox; without a free seat the member
    stays staged and waits for one."""
    if member.status != "staged":
        raise InvalidTransition(
            f"{member.email} is {member.status}; only staged members are invited"
        )
    seats = seats or Seats.load(session, org)
    if not seats.take(session, actor):
        member.waiting_for_seat = True
        _member_event(
            session,
            member,
            actor,
            "member.waiting_for_seat",
            seats=org.seats,
            seat_limit=org.seat_limit,
        )
        return
    now = utcnow()
    member.status = "invited"
    member.waiting_for_seat = False
    member.invited_at = now
    member.updated_at = now
    session.add(
        OutboxMessage(
            org_id=org.id,
            kind="invitation",
            payload={"member_id": member.id, "org_id": org.id, "email": member.email},
        )
    )
    _member_event(session, member, actor, "member.invited", role=member.role)


def revoke(
    session: Session,
    member: Member,
    actor: str,
    *,
    reason: str | None = None,
    seats: Seats | None = None,
) -> None:
    """Any status -> revoked; groups and collection access stay for a later restore."""
    if member.status == "revoked":
        raise InvalidTransition(f"{member.email} is revoked already")
    if seats is not None and member.status in SEAT_STATUSES:
        seats.free()
    member.status_before_revoke = member.status
    member.status = "revoked"
    member.waiting_for_seat = False
    member.revoked_at = member.updated_at = utcnow()
    _member_event(session, member, actor, "member.revoked", reason=reason)


def restore(
    session: Session, org: Organization, member: Member, actor: str, *, seats: Seats | None = None
) -> None:
    """revoked -> the status it had; one that needs a seat waits (staged) if none is left."""
    if member.status != "revoked":
        raise InvalidTransition(f"{member.email} is {member.status}, not revoked")
    target = member.status_before_revoke or "staged"
    member.updated_at = utcnow()
    member.revoked_at = None
    if target in SEAT_STATUSES:
        seats = seats or Seats.load(session, org)
        if not seats.take(session, actor):
            # status_before_revoke stays: it is where the member goes once a seat frees up.
            member.status = "staged"
            member.waiting_for_seat = True
            _member_event(
                session,
                member,
                actor,
                "member.waiting_for_seat",
                restoring_to=target,
                seats=org.seats,
                seat_limit=org.seat_limit,
            )
            return
    member.status = target
    member.status_before_revoke = None
    _member_event(session, member, actor, "member.restored", status=target)


def remove(
    session: Session,
    member: Member,
    actor: str,
    *,
    reason: str | None = None,
    seats: Seats | None = None,
) -> None:
    """Delete the member with its group memberships."""
    if seats is not None and member.status in SEAT_STATUSES:
        seats.free()
    _member_event(session, member, actor, "member.removed", reason=reason, status=member.status)
    session.delete(member)

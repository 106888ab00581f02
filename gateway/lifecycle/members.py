"""Member status transitions: `staged -> invited -> accepted -> confirmed`, `revoked` from any of
them, and back with restore; invitation re-sends and seat releases."""

from __future__ import annotations

import secrets

from sqlalchemy import func, select
from sqlalchemy.orm import Session

# The module, not the name: gateway.orgs may record events through gateway.events.
from gateway import orgs
from gateway.errors import InvalidTransition
from gateway.events import record_event
from gateway.store.models import Member, Organization, OutboxMessage, new_id, utcnow
from gateway.store.seat_count import used_seats


class Seats:
    """The organization's seat count for one unit of work: counted once, then kept up to date by
    the transitions that use it (so a Plan of 50,000 invitations does not count 50,000 times)."""

    def __init__(self, org: Organization, used: int) -> None:
        self.org = org
        self.used = used

    @classmethod
    def load(cls, session: Session, org: Organization) -> Seats:
        return cls(org, used_seats(session, org.id))

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

    def available(self) -> bool:
        """Would `take` succeed?"""
        limit = self.org.seat_limit
        return self.used < self.org.seats or limit is None or self.org.seats < limit

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
    record_event(
        session,
        org_id=org_id,
        actor=actor,
        type=type_,
        target_type=target_type,
        target_id=target_id,
        detail=detail,
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
    member.invitation_resends = 0
    _queue_invitation(session, org, member)
    _member_event(session, member, actor, "member.invited", role=member.role)


def _queue_invitation(session: Session, org: Organization, member: Member) -> None:
    """A fresh link (new nonce: earlier links stop working) and its mail in the outbox."""
    member.invitation_nonce = secrets.token_hex(16)
    member.invitation_expires_at = None  # set when the mail is handed over
    member.invitation_expired = False
    session.add(
        OutboxMessage(
            org_id=org.id,
            kind="invitation",
            payload={
                "member_id": member.id,
                "org_id": org.id,
                "email": member.email,
                "nonce": member.invitation_nonce,
            },
        )
    )


def resend_invitation(
    session: Session,
    org: Organization,
    member: Member,
    actor: str,
    *,
    automatic: bool = False,
    reason: str | None = None,
) -> None:
    """A new invitation for an invited member; the previous link stops working. `automatic` is
    the worker's re-send of an expired one, counted against the organization's allowance;
    `reason` says why when it is neither that nor an admin's request (a changed address)."""
    if member.status != "invited":
        raise InvalidTransition(
            f"{member.email} is {member.status}; only invited members get an invitation again"
        )
    if automatic:
        member.invitation_resends = (member.invitation_resends or 0) + 1
    member.updated_at = utcnow()
    _queue_invitation(session, org, member)
    _member_event(
        session,
        member,
        actor,
        "member.invitation_resent",
        reason="expired" if automatic else (reason or "asked by an admin"),
        resend=member.invitation_resends if automatic else None,
    )


def expire_invitation(session: Session, member: Member) -> None:
    """The last automatic re-send expired too: the member shows as 'invitation expired'."""
    member.invitation_expired = True
    member.invitation_nonce = None
    member.updated_at = utcnow()
    _member_event(
        session, member, "system", "member.invitation_expired", resends=member.invitation_resends
    )


def accept(session: Session, member: Member, *, public_key: str | None) -> None:
    """invited -> accepted, recording the account's public key (gateway.lifecycle.invitations
    checks the link first)."""
    if member.status != "invited":
        raise InvalidTransition(f"{member.email} is {member.status}; only invited members accept")
    now = utcnow()
    member.status = "accepted"
    member.accepted_at = member.updated_at = now
    member.public_key = public_key or None
    member.invitation_nonce = None
    member.invitation_expires_at = None
    member.invitation_expired = False
    _member_event(
        session, member, f"member:{member.id}", "member.accepted", public_key=bool(public_key)
    )


def confirm(session: Session, member: Member, actor: str, *, rule: str | None = None) -> None:
    """accepted -> confirmed, by an admin or by the auto-confirm rule named `rule`."""
    if member.status != "accepted":
        raise InvalidTransition(
            f"{member.email} is {member.status}; only members who accepted their invitation "
            "are confirmed"
        )
    now = utcnow()
    member.status = "confirmed"
    member.confirmed_at = member.updated_at = now
    member.confirmed_by = f"rule:{rule}" if rule else actor
    _member_event(session, member, actor, "member.confirmed", rule=rule)


def _keep_last_owner(session: Session, member: Member, what: str) -> None:
    """An organization always keeps a confirmed owner, whoever asks (engine, console, API)."""
    if member.role != "owner" or member.status != "confirmed":
        return
    others = session.scalar(
        select(func.count())
        .select_from(Member)
        .where(
            Member.org_id == member.org_id,
            Member.role == "owner",
            Member.status == "confirmed",
            Member.id != member.id,
        )
    )
    if not others:
        raise InvalidTransition(
            f"{member.email} is the last confirmed owner and cannot be {what}; "
            "confirm another owner first"
        )


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
    _keep_last_owner(session, member, "revoked")
    if seats is not None and member.status in orgs.SEAT_STATUSES:
        seats.free()
    member.status_before_revoke = member.status
    member.status = "revoked"
    member.waiting_for_seat = False
    member.revoked_at = member.updated_at = utcnow()
    _member_event(session, member, actor, "member.revoked", reason=reason)


def restore(
    session: Session,
    org: Organization,
    member: Member,
    actor: str,
    *,
    reason: str | None = None,
    seats: Seats | None = None,
) -> None:
    """revoked -> the status it had (a confirmed member comes back confirmed, not invited); one
    that needs a seat waits (staged) if none is left. `reason` says why, in the event."""
    reason = reason or f"restored by {actor}"
    if member.status != "revoked":
        raise InvalidTransition(f"{member.email} is {member.status}, not revoked")
    target = member.status_before_revoke or "staged"
    member.updated_at = utcnow()
    member.revoked_at = None
    if target in orgs.SEAT_STATUSES:
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
                reason=reason,
                seats=org.seats,
                seat_limit=org.seat_limit,
            )
            return
    member.status = target
    member.status_before_revoke = None
    _member_event(session, member, actor, "member.restored", status=target, reason=reason)


def remove(
    session: Session,
    member: Member,
    actor: str,
    *,
    reason: str | None = None,
    seats: Seats | None = None,
) -> None:
    """Delete the member with its group memberships."""
    _keep_last_owner(session, member, "removed")
    if seats is not None and member.status in orgs.SEAT_STATUSES:
        seats.free()
    _member_event(session, member, actor, "member.removed", reason=reason, status=member.status)
    session.delete(member)


def release_seats(
    session: Session, org: Organization, actor: str = "system", *, seats: Seats | None = None
) -> list[Member]:
    """Give free seats to members waiting for one, oldest first: a new member is invited, a
    restored one returns to the status it had. Returns those who got a seat."""
    seats = seats or Seats.load(session, org)
    admitted: list[Member] = []
    waiting = session.scalars(
        select(Member)
        .where(Member.org_id == org.id, Member.waiting_for_seat.is_(True))
        .order_by(Member.created_at, Member.id)
    )
    for member in waiting:
        if member.status != "staged":  # revoked meanwhile: it no longer waits
            member.waiting_for_seat = False
            continue
        if not seats.available():
            break
        target = member.status_before_revoke
        if target:
            seats.take(session, actor)
            member.status = target
            member.status_before_revoke = None
            member.waiting_for_seat = False
            member.updated_at = utcnow()
            _member_event(
                session,
                member,
                actor,
                "member.restored",
                status=target,
                reason="a seat became free for a restored member",
            )
        else:
            invite(session, org, member, actor, seats=seats)
        admitted.append(member)
    return admitted

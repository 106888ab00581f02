"""The mass-deprovisioning guard: when a Plan (or, for SCIM, the last hour) revokes or removes more
members than both `guard_count` and `guard_share` of the organization allow, every deprovisioning
of that Plan is held, not only the excess: a read that lost half the directory looks exactly like
a Plan over the threshold, and which of its revocations are real cannot be told from inside it
(the IdPs' own accidental-deletion thresholds stop the whole cycle the same way). The members
stay as they are, a `guard.held` event (and its webhook) says why, and an admin approves or drops
the held changes. Group removals that take collection access away are guarded the same way (per
group and per Plan): a read that empties groups costs nobody their access.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from datetime import timedelta

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from gateway.errors import Conflict, NotFound
from gateway.events import record_event
from gateway.provisioning.plan import HOLDABLE, Change, Plan, RemoveMembership, change_from_json
from gateway.provisioning.settings import OrgSettings
from gateway.store.batches import chunks
from gateway.store.models import (
    Event,
    Group,
    GroupCollectionAccess,
    HeldChange,
    Member,
    MemberGroup,
    Organization,
    utcnow,
)

WINDOW = timedelta(hours=1)
DEPROVISION_EVENTS = ("member.revoked", "member.removed")
HELD_EVENT = "guard.held"
# Exit status of a command that applied a Plan but had changes held (`sync run`,
# `plan --apply`, `mapping set --apply`): a scheduler tells it from success (0) and failure (1).
EXIT_HELD = 3


@dataclass(frozen=True)
class GuardVerdict:
    allowed: list[Change]
    held: list[Change]
    reason: str | None


def judge(
    session: Session, org: Organization, plan: Plan, actor: str, *, window: bool
) -> GuardVerdict:
    """What of the Plan to hold: all its deprovisionings when they exceed the guard, and all its
    group removals that take collection access away when those exceed theirs."""
    settings = OrgSettings.of(org)
    people = _judge_deprovisionings(session, org, plan, actor, settings, window=window)
    access = _judge_access_removals(session, org, plan, settings)
    reasons = [v.reason for v in (people, access) if v.reason]
    return GuardVerdict(
        people.allowed + access.allowed,
        people.held + access.held,
        "; ".join(reasons) if reasons else None,
    )


def _judge_access_removals(
    session: Session, org: Organization, plan: Plan, settings: OrgSettings
) -> GuardVerdict:
    """Per group: more than `guard_group_count` and `guard_group_share` of its members; per
    Plan: more than `guard_membership_count` and `guard_membership_share` of the memberships
    that grant access. A read glitch that empties groups is held, not applied."""
    removals = plan.of_kind(RemoveMembership)
    if len(removals) <= min(settings.guard_group_count, settings.guard_membership_count):
        return GuardVerdict([], [], None)  # nothing can exceed: no query on every SCIM write
    granting = (
        select(GroupCollectionAccess.group_id)
        .join(Group, Group.id == GroupCollectionAccess.group_id)
        .where(Group.org_id == org.id)
    )
    names = {c.group.lower() for c in removals}  # type: ignore[attr-defined]
    sizes: dict[str, int] = {}
    for part in chunks(names):
        sizes.update(
            session.execute(
                select(Group.name_lower, func.count(MemberGroup.member_id))
                .outerjoin(MemberGroup, MemberGroup.group_id == Group.id)
                .where(
                    Group.org_id == org.id,
                    Group.name_lower.in_(part),
                    Group.id.in_(granting),
                )
                .group_by(Group.id, Group.name_lower)
            ).all()
        )
    counted = [c for c in removals if c.group.lower() in sizes]  # type: ignore[attr-defined]
    per_group: dict[str, int] = {}
    shown: dict[str, str] = {}
    for c in counted:
        name = c.group.lower()  # type: ignore[attr-defined]
        per_group[name] = per_group.get(name, 0) + 1
        shown.setdefault(name, c.group)  # type: ignore[attr-defined]
    over = [
        f"{shown[name]} loses {n} of {sizes[name]} members"
        for name, n in sorted(per_group.items())
        if n > max(settings.guard_group_count, math.floor(settings.guard_group_share * sizes[name]))
    ]
    if len(counted) > settings.guard_membership_count:
        total = int(
            session.scalar(
                select(func.count())
                .select_from(MemberGroup)
                .where(MemberGroup.group_id.in_(granting))
            )
            or 0
        )
        allowed = max(
            settings.guard_membership_count,
            math.floor(settings.guard_membership_share * total),
        )
        if len(counted) > allowed:
            over.insert(0, f"{len(counted)} of {total} memberships that grant access")
    if not over:
        return GuardVerdict(counted, [], None)
    reason = (
        f"group removals that take collection access away exceed the guard in one plan "
        f"({', '.join(over)}); all {len(counted)} held for approval"
    )
    return GuardVerdict([], counted, reason)


def _judge_deprovisionings(
    session: Session,
    org: Organization,
    plan: Plan,
    actor: str,
    settings: OrgSettings,
    *,
    window: bool,
) -> GuardVerdict:
    wanted = plan.deprovisionings
    if not wanted:
        return GuardVerdict([], [], None)
    active = int(
        session.scalar(
            select(func.count())
            .select_from(Member)
            .where(Member.org_id == org.id, Member.status != "revoked")
        )
        or 0
    )
    recent = 0
    if window:
        recent = int(
            session.scalar(
                select(func.count())
                .select_from(Event)
                .where(
                    Event.org_id == org.id,
                    Event.type.in_(DEPROVISION_EVENTS),
                    Event.actor == actor,
                    Event.at >= utcnow() - WINDOW,
                )
            )
            or 0
        )
    # The organization's size before these deprovisionings began.
    base = active + recent
    allowed_total = max(settings.guard_count, math.floor(settings.guard_share * base))
    room = max(allowed_total - recent, 0)
    if len(wanted) <= room:
        return GuardVerdict(list(wanted), [], None)
    total = recent + len(wanted)
    scope = "within an hour" if window else "in one plan"
    reason = (
        f"{total} deprovisionings {scope} exceed both {settings.guard_count} and "
        f"{settings.guard_share:.0%} of {base} members; all {len(wanted)} of this plan "
        "held for approval"
    )
    return GuardVerdict([], list(wanted), reason)


def hold(
    session: Session, org: Organization, changes: list[Change], reason: str, actor: str
) -> list[HeldChange]:
    rows = [
        HeldChange(
            org_id=org.id,
            member_id=getattr(c, "member_id", None),
            kind=c.kind,
            change=c.to_json(),
            reason=reason,
            actor=actor,
            status="pending",
            created_at=utcnow(),
        )
        for c in changes
    ]
    session.add_all(rows)
    session.flush()
    counts: dict[str, int] = {}
    for c in changes:
        counts[c.kind] = counts.get(c.kind, 0) + 1
    record_event(
        session,
        org_id=org.id,
        actor=actor,
        type=HELD_EVENT,
        target_type="organization",
        target_id=org.id,
        detail={
            "reason": reason,
            "held_count": len(rows),
            "counts": counts,
            "held": [r.id for r in rows],
            "members": [c.email for c in changes],  # type: ignore[attr-defined]
            "review": f"scimgate held --org {org.name}",
        },
    )
    return rows


def held_notice(held: int, reason: str | None, org_key: str, *, pending: int = 0) -> str:
    """What a command prints when the guard held part of what it applied (`held`, `reason`), or
    when changes held earlier still wait for a decision (`pending`)."""
    if held:
        head = f"HELD {held} change(s) for approval; none of them was applied. {reason}."
    else:
        head = f"{pending} change(s) held by the guard earlier still wait for a decision."
    return (
        f"{head}\n"
        f"  Review them: scimgate held --org {org_key}\n"
        "  Approve one: scimgate held approve ID   (drop one: scimgate held drop ID)\n"
        "  If the directory read was wrong, fix it and sync again: the holds are dropped."
    )


def pending_count(session: Session, org_id: str) -> int:
    """Held changes of the organization still waiting for a decision."""
    return int(
        session.scalar(
            select(func.count())
            .select_from(HeldChange)
            .where(HeldChange.org_id == org_id, HeldChange.status == "pending")
        )
        or 0
    )


def list_held(session: Session, org_id: str, *, include_decided: bool = False) -> list[HeldChange]:
    query = select(HeldChange).where(HeldChange.org_id == org_id)
    if not include_decided:
        query = query.where(HeldChange.status == "pending")
    return list(session.scalars(query.order_by(HeldChange.id)))


def find_held(session: Session, held_id: int) -> HeldChange:
    held = session.get(HeldChange, held_id)
    if held is None:
        raise NotFound(f"no held change {held_id} (see `scimgate held --org ORG`)")
    if held.status != "pending":
        raise Conflict(f"held change {held_id} was {held.status} already")
    return held


def decide(
    session: Session, held: HeldChange, status: str, actor: str, note: str | None = None
) -> None:
    held.status = status
    held.decided_at = utcnow()
    held.decided_by = actor
    record_event(
        session,
        org_id=held.org_id,
        actor=actor,
        type=f"provisioning.held_{status}",
        target_type="member",
        target_id=held.member_id,
        detail={"held_id": held.id, "change": held.change, **({"note": note} if note else {})},
    )


def held_change(held: HeldChange) -> Change:
    change = change_from_json(held.change)
    assert isinstance(change, HOLDABLE)
    return change

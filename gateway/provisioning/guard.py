"""The mass-deprovisioning guard: when a Plan (or, for SCIM, the last hour) revokes or removes more
members than both `guard_count` and `guard_share` of the organization allow, every deprovisioning
of that Plan is held, not only the excess: a read that lost half the directory looks exactly like
a Plan over the threshold, and which of its revocations are real cannot be told from inside it
(the IdPs' own accidental-deletion thresholds stop the whole cycle the same way). The members
stay as they are, a `guard.held` event (and its webhook) says why, and an admin approves or drops
the held changes, one by one or in bulk by filter (`HeldFilter`). Group removals and group
deletions that take collection access away are guarded the same way (per group and per Plan; for
SCIM over the same sliding hour): a read that empties or loses groups costs nobody their access.
A drop by an admin sticks until the directory says something new about the member (`decide`).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from gateway.errors import Conflict, InvalidInput, NotFound
from gateway.events import record_event, record_events
from gateway.provisioning.plan import (
    DEPROVISIONING,
    HOLDABLE,
    Change,
    DeleteGroup,
    Plan,
    RemoveMember,
    RemoveMembership,
    RevokeMember,
    change_from_json,
)
from gateway.provisioning.settings import OrgSettings
from gateway.store.batches import chunks
from gateway.store.models import (
    DirectoryUser,
    Event,
    Group,
    GroupCollectionAccess,
    HeldChange,
    Member,
    MemberGroup,
    Organization,
    ProvisionedGroup,
    utcnow,
)

WINDOW = timedelta(hours=1)
DEPROVISION_EVENTS = ("member.revoked", "member.removed")
HELD_EVENT = "guard.held"
# Exit status of a command that applied a Plan but had changes held (`sync run`,
# `plan --apply`, `mapping set --apply`): a scheduler tells it from success (0) and failure (1).
EXIT_HELD = 3
NO_LONGER_WANTED = "no longer wanted: the directory changed"


@dataclass(frozen=True)
class GuardVerdict:
    allowed: list[Change]
    held: list[Change]
    reason: str | None


def judge(
    session: Session, org: Organization, plan: Plan, actor: str, *, window: bool
) -> GuardVerdict:
    """What of the Plan to hold: all its deprovisionings when they exceed the guard, and all its
    group removals and deletions that take collection access away when those exceed theirs.
    `window`: count the actor's changes of the last hour too (SCIM, one request at a time)."""
    settings = OrgSettings.of(org)
    people = _judge_deprovisionings(session, org, plan, actor, settings, window=window)
    access = _judge_access_removals(session, org, plan, actor, settings, window=window)
    reasons = [v.reason for v in (people, access) if v.reason]
    return GuardVerdict(
        people.allowed + access.allowed,
        people.held + access.held,
        "; ".join(reasons) if reasons else None,
    )


def _since(org: Organization, actor: str, types: tuple[str, ...]):  # type: ignore[no-untyped-def]
    """The actor's events of these types within the sliding hour."""
    return select(Event).where(
        Event.org_id == org.id,
        Event.type.in_(types),
        Event.actor == actor,
        Event.at >= utcnow() - WINDOW,
    )


def _held_since(org: Organization, actor: str, kinds: tuple[str, ...]):  # type: ignore[no-untyped-def]
    """The actor's changes of these kinds held within the sliding hour and still pending: they
    arrived too, and count."""
    return select(HeldChange).where(
        HeldChange.org_id == org.id,
        HeldChange.kind.in_(kinds),
        HeldChange.actor == actor,
        HeldChange.status == "pending",
        HeldChange.created_at >= utcnow() - WINDOW,
    )


def _judge_access_removals(
    session: Session,
    org: Organization,
    plan: Plan,
    actor: str,
    settings: OrgSettings,
    *,
    window: bool,
) -> GuardVerdict:
    """Per group: more than `guard_group_count` and `guard_group_share` of its members; per
    Plan (for SCIM: per hour): more than `guard_membership_count` and `guard_membership_share`
    of the memberships that grant access. Deleting a group that grants access takes it from all
    its members. A read glitch that empties or deletes groups is held, not applied."""
    removals = plan.of_kind(RemoveMembership)
    deletions = plan.of_kind(DeleteGroup)
    if not deletions and (
        not removals
        or (
            not window
            and len(removals) <= min(settings.guard_group_count, settings.guard_membership_count)
        )
    ):
        return GuardVerdict([], [], None)  # nothing can exceed: no query on every SCIM write
    granting = (
        select(GroupCollectionAccess.group_id)
        .join(Group, Group.id == GroupCollectionAccess.group_id)
        .where(Group.org_id == org.id)
    )
    sizes: dict[str, tuple[str, int]] = {}  # lower-cased name -> (group id, members)
    names = {c.group.lower() for c in removals}  # type: ignore[attr-defined]
    deleted_ids = {c.group_id for c in deletions}  # type: ignore[attr-defined]
    for part, column in [(p, Group.name_lower) for p in chunks(names)] + [
        (p, Group.id) for p in chunks(deleted_ids)
    ]:
        for group_id, name, size in session.execute(
            select(Group.id, Group.name_lower, func.count(MemberGroup.member_id))
            .outerjoin(MemberGroup, MemberGroup.group_id == Group.id)
            .where(Group.org_id == org.id, column.in_(part), Group.id.in_(granting))
            .group_by(Group.id, Group.name_lower)
        ):
            sizes[name] = (group_id, int(size))
    counted: list[Change] = [c for c in removals if c.group.lower() in sizes]  # type: ignore[attr-defined]
    counted += [c for c in deletions if c.name.lower() in sizes]  # type: ignore[attr-defined]
    if not counted:
        return GuardVerdict([], [], None)
    lost: dict[str, int] = {}  # lower-cased name -> members who lose access through this Plan
    shown: dict[str, str] = {}
    for c in counted:
        if isinstance(c, RemoveMembership):
            name, n, label = c.group.lower(), 1, c.group
        else:
            assert isinstance(c, DeleteGroup)
            name = c.name.lower()
            n, label = sizes[name][1], f"{c.name} (deleted)"
        lost[name] = lost.get(name, 0) + n
        shown.setdefault(name, label)
    applied, held = (
        _recent_access_losses(session, org, actor, sizes, granting) if window else ({}, {})
    )
    over = []
    for name, n in sorted(lost.items()):
        earlier = applied.get(name, 0) + held.get(name, 0)
        size = sizes[name][1] + applied.get(name, 0)  # the group before these removals began
        if n + earlier > max(
            settings.guard_group_count, math.floor(settings.guard_group_share * size)
        ):
            hour = f", {n + earlier} of {size} within an hour" if earlier else ""
            over.append(f"{shown[name]} loses {n} of {sizes[name][1]} members{hour}")
    losses = sum(lost.values()) + applied.get("", 0) + held.get("", 0)
    if losses > settings.guard_membership_count:
        total = int(
            session.scalar(
                select(func.count())
                .select_from(MemberGroup)
                .where(MemberGroup.group_id.in_(granting))
            )
            or 0
        ) + applied.get("", 0)
        allowed = max(
            settings.guard_membership_count,
            math.floor(settings.guard_membership_share * total),
        )
        if losses > allowed:
            scope = "within an hour" if window else "in one plan"
            over.insert(0, f"{losses} of {total} memberships that grant access {scope}")
    if not over:
        return GuardVerdict(counted, [], None)
    scope = "within an hour" if window else "in one plan"
    reason = (
        f"group removals and deletions that take collection access away exceed the guard "
        f"{scope} ({', '.join(over)}); all {len(counted)} of this plan held for approval"
    )
    return GuardVerdict([], counted, reason)


def _recent_access_losses(
    session: Session,
    org: Organization,
    actor: str,
    sizes: dict[str, tuple[str, int]],
    granting,  # type: ignore[no-untyped-def]
) -> tuple[dict[str, int], dict[str, int]]:
    """Memberships that grant access the actor took away within the hour (removed or deleted
    with their group), and its removals held within the hour and still pending: per lower-cased
    group name of this Plan, and in all under ""."""
    names = {group_id: name for name, (group_id, _) in sizes.items()}
    applied: dict[str, int] = {"": 0}
    removed = (
        _since(org, actor, ("group.member_removed",))
        .with_only_columns(Event.target_id, func.count())
        .where(Event.target_id.in_(granting))
        .group_by(Event.target_id)
    )
    for group_id, n in session.execute(removed):
        applied[""] += n
        if group_id in names:
            applied[names[group_id]] = n
    deleted = _since(org, actor, ("group.deleted",)).with_only_columns(Event.detail)
    applied[""] += sum(int((d or {}).get("lost_access", 0)) for d in session.scalars(deleted))
    held: dict[str, int] = {"": 0}
    for change in session.scalars(
        _held_since(org, actor, (RemoveMembership.KIND,)).with_only_columns(HeldChange.change)
    ):
        name = str(change.get("group", "")).lower()
        held[""] += 1
        if name in sizes:
            held[name] = held.get(name, 0) + 1
    return applied, held


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
    recent = held_before = 0
    if window:
        recent = int(
            session.scalar(_since(org, actor, DEPROVISION_EVENTS).with_only_columns(func.count()))
            or 0
        )
        # Held earlier within the hour and not decided yet: they arrived too, and count.
        held_before = int(
            session.scalar(
                _held_since(org, actor, tuple(t.KIND for t in DEPROVISIONING)).with_only_columns(
                    func.count()
                )
            )
            or 0
        )
    # The organization's size before these deprovisionings began.
    base = active + recent
    allowed_total = max(settings.guard_count, math.floor(settings.guard_share * base))
    room = max(allowed_total - recent - held_before, 0)
    if len(wanted) <= room:
        return GuardVerdict(list(wanted), [], None)
    total = recent + held_before + len(wanted)
    limits = f"exceed both {settings.guard_count} and {settings.guard_share:.0%} of {base} members"
    if window:
        reason = (
            f"{total} deprovisionings within an hour {limits}: {recent} applied, "
            f"{held_before + len(wanted)} held for approval ({len(wanted)} of them now)"
        )
    else:
        reason = (
            f"{total} deprovisionings in one plan {limits}; all {total} of this plan held "
            "for approval"
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
            "members": [e for c in changes if (e := getattr(c, "email", None))],
            **(
                {"groups": [c.name for c in changes if isinstance(c, DeleteGroup)]}
                if any(isinstance(c, DeleteGroup) for c in changes)
                else {}
            ),
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
        f"  Approve all: scimgate held approve --org {org_key} --all   (or --kind, --group, ...)\n"
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
    session: Session,
    helds: list[HeldChange],
    status: str,
    actor: str,
    note: str | None = None,
    *,
    keep: bool = False,
) -> None:
    """Record the decision on `helds` (one event each, written in bulk). `keep`: an admin's drop,
    which sticks while each member's directory user stays what it is now (re-plans skip it), and
    a dropped group deletion leaves the group to the admins (provisioning lets go of it)."""
    now = utcnow()
    links: dict[str, tuple[str | None, datetime | None]] = {}
    if keep:
        for part in chunks({h.member_id for h in helds if h.member_id}):
            for member_id, user_id, modified in session.execute(
                select(Member.id, Member.directory_user_id, DirectoryUser.last_modified)
                .outerjoin(DirectoryUser, DirectoryUser.id == Member.directory_user_id)
                .where(Member.id.in_(part))
            ):
                links[member_id] = (user_id, modified)
        let_go = [h.change["group_id"] for h in helds if h.kind == DeleteGroup.KIND]
        for part in chunks(let_go):
            session.execute(
                ProvisionedGroup.__table__.delete().where(ProvisionedGroup.group_id.in_(part))
            )
    events = []
    for held in helds:
        held.status, held.decided_at, held.decided_by = status, now, actor
        if keep and held.member_id in links:
            held.kept = True
            held.kept_user_id, held.kept_modified = links[held.member_id]
        events.append(
            {
                "org_id": held.org_id,
                "actor": actor,
                "type": f"provisioning.held_{status}",
                "at": now,
                "target_type": "member" if held.member_id else "group",
                "target_id": held.member_id or held.change.get("group_id"),
                "detail": {
                    "held_id": held.id,
                    "change": held.change,
                    **({"note": note} if note else {}),
                },
            }
        )
    session.flush()
    record_events(session, events)


# What `held approve|drop --kind` names: the word an admin types -> the held kinds it covers.
KIND_FILTERS: dict[str, tuple[str, ...]] = {
    "deprovision": tuple(t.KIND for t in DEPROVISIONING),
    "revoke": (RevokeMember.KIND,),
    "remove": (RemoveMember.KIND,),
    "group-removal": (RemoveMembership.KIND,),
    "group-deletion": (DeleteGroup.KIND,),
}


@dataclass(frozen=True)
class HeldFilter:
    """Which pending held changes a bulk decision takes; every field None: all of them."""

    kind: str | None = None
    group: str | None = None
    created_before: datetime | None = None
    created_after: datetime | None = None
    email_prefix: str | None = None
    # The newest held change the admin was shown: what the guard holds after that is not taken.
    through_id: int | None = None

    def __post_init__(self) -> None:
        if self.kind is not None and self.kind not in KIND_FILTERS:
            raise InvalidInput(f"unknown kind {self.kind!r}: use one of {', '.join(KIND_FILTERS)}")

    @property
    def everything(self) -> bool:
        return all(v in (None, "") for k, v in self.__dict__.items() if k != "through_id")

    def describe(self) -> str:
        """The filter in words, for a confirmation ("held revokes in group Finance ...")."""
        words = [f"kind {self.kind}"] if self.kind else []
        if self.group:
            words.append(f"group {self.group}")
        if self.email_prefix:
            words.append(f"member e-mail starting {self.email_prefix!r}")
        if self.created_after:
            words.append(f"held after {self.created_after:%Y-%m-%d %H:%M} UTC")
        if self.created_before:
            words.append(f"held before {self.created_before:%Y-%m-%d %H:%M} UTC")
        return ", ".join(words) if words else "all"

    def matches(self, held: HeldChange) -> bool:
        change = held.change or {}
        if self.group:
            group = change.get("group") or change.get("name") or ""
            if held.kind not in (RemoveMembership.KIND, DeleteGroup.KIND):
                return False
            if group.lower() != self.group.lower():
                return False
        if self.email_prefix:
            email = str(change.get("email") or "").lower()
            if not email.startswith(self.email_prefix.lower()):
                return False
        return True


def select_held(session: Session, org_id: str, wanted: HeldFilter) -> list[HeldChange]:
    """The organization's pending held changes `wanted` takes, oldest first."""
    query = select(HeldChange).where(HeldChange.org_id == org_id, HeldChange.status == "pending")
    if wanted.kind:
        query = query.where(HeldChange.kind.in_(KIND_FILTERS[wanted.kind]))
    if wanted.created_before:
        query = query.where(HeldChange.created_at < wanted.created_before)
    if wanted.created_after:
        query = query.where(HeldChange.created_at >= wanted.created_after)
    if wanted.through_id is not None:
        query = query.where(HeldChange.id <= wanted.through_id)
    return [h for h in session.scalars(query.order_by(HeldChange.id)) if wanted.matches(h)]


def held_change(held: HeldChange) -> Change:
    change = change_from_json(held.change)
    assert isinstance(change, HOLDABLE)
    return change

"""The engine's operations, each inside the caller's transaction: react to a directory change,
plan and apply a whole organization, set its mapping, approve or drop held changes."""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import event, select
from sqlalchemy.engine import Connection
from sqlalchemy.orm import Mapper, Session, object_session

from gateway.errors import InvalidInput, NotFound
from gateway.events import record_event
from gateway.orgs import find_org
from gateway.provisioning import guard
from gateway.provisioning.apply import ApplyResult, apply
from gateway.provisioning.entry import DirectoryChange, lock_org
from gateway.provisioning.plan import Plan
from gateway.provisioning.reconcile import (
    DirectoryDelta,
    reconcile_delta,
    reconcile_full,
    reconcile_users,
)
from gateway.provisioning.settings import parse_mapping, store_mapping
from gateway.provisioning.summary import PlanSummary, summarize
from gateway.store.batches import chunks
from gateway.store.models import (
    DirectoryGroup,
    DirectoryGroupMember,
    DirectoryUser,
    HeldChange,
    Member,
    Organization,
)

# Deletions cascade in the database, so what a deleted row reached is read just before it goes
# and kept in session.info until the engine runs for the change.
_ORPHANS = "provisioning.orphaned_members"
_BELOW = "provisioning.users_below_deleted_groups"
_CHILDREN = "provisioning.children_of_deleted_groups"  # deleted group id -> its direct children


@event.listens_for(DirectoryUser, "before_delete")
def _user_deleted(mapper: Mapper, connection: Connection, target: DirectoryUser) -> None:
    session = object_session(target)
    if session is None:
        return
    ids = connection.execute(
        select(Member.id).where(Member.directory_user_id == target.id)
    ).scalars()
    session.info.setdefault(_ORPHANS, {}).update(dict.fromkeys(ids, target.id))


@event.listens_for(DirectoryGroup, "before_delete")
def _group_deleted(mapper: Mapper, connection: Connection, target: DirectoryGroup) -> None:
    session = object_session(target)
    if session is None:
        return
    seen, todo, users = {target.id}, [target.id], set()
    children: set[str] = set()
    while todo:
        parent = todo.pop()
        rows = connection.execute(
            select(DirectoryGroupMember.user_id, DirectoryGroupMember.child_group_id).where(
                DirectoryGroupMember.group_id == parent
            )
        )
        for user_id, child_id in rows:
            if user_id:
                users.add(user_id)
            elif child_id and child_id not in seen:
                seen.add(child_id)
                todo.append(child_id)
                if parent == target.id:
                    children.add(child_id)
    session.info.setdefault(_BELOW, set()).update(users)
    session.info.setdefault(_CHILDREN, {})[target.id] = children


def change_delta(session: Session, change: DirectoryChange) -> DirectoryDelta:
    """What `change` reached, in terms the incremental reconcile loads; read in the change's own
    transaction (deleted rows are only known there)."""
    lost: dict[str, str] = session.info.pop(_ORPHANS, {})  # member id -> its user's row id
    orphans = set(lost)
    if change.deleted_user_ids and not orphans:
        # Deleted without the ORM (a bulk DELETE): the members whose link just went are the
        # managed ones left without a directory user and not yet deprovisioned.
        orphans = set(
            session.scalars(
                select(Member.id).where(
                    Member.org_id == change.org_id,
                    Member.directory_user_id.is_(None),
                    Member.source.is_not(None),
                    Member.status != "revoked",
                )
            )
        )
    children: dict[str, set[str]] = session.info.pop(_CHILDREN, {})
    group_ids: set[str] | None = set(change.group_ids) | set(change.deleted_group_ids)
    if change.source != "scim" or not set(change.deleted_group_ids) <= set(children):
        # An LDAP poll reads the whole directory anyway; a group deleted without the hook left
        # no trace of the groups below it: compare every group, as the full reconcile does.
        group_ids = None
    else:
        for deleted in change.deleted_group_ids:
            group_ids |= children[deleted]  # they lost a parent
    return DirectoryDelta(
        user_ids=set(change.user_ids),
        orphaned_member_ids=orphans,
        orphan_reasons={
            member: change.departure_reasons[user]
            for member, user in lost.items()
            if user in change.departure_reasons
        },
        users_below_deleted=session.info.pop(_BELOW, set()),
        group_ids=group_ids,
    )


def on_directory_change(
    session: Session, change: DirectoryChange, org: Organization | None
) -> ApplyResult:
    """The incremental reconcile after a source wrote the directory layer; `org`: the
    organization as `lock_org` read it (None: there is none)."""
    if org is None:
        raise NotFound(f"organization {change.org_id} not found")
    delta = change_delta(session, change)
    return apply_delta(session, org, delta, change.actor, window=change.source == "scim")


def apply_delta(
    session: Session, org: Organization, delta: DirectoryDelta, actor: str, *, window: bool
) -> ApplyResult:
    plan = reconcile_delta(session, org, delta)
    return apply(session, org, plan, actor, window=window)


def plan_org(
    session: Session,
    org_key: str,
    *,
    to_apply: bool = False,
    change: DirectoryChange | None = None,
) -> tuple[Organization, Plan]:
    """The full reconcile's Plan; `to_apply`: the caller applies it in this transaction, so it is
    planned under the organization's reconcile lock; `change`: the directory change a dry run
    just wrote (its departures keep the reasons the source gave)."""
    org = find_org(session, org_key)
    if to_apply:
        lock_org(session, org.id)
    reasons = change_delta(session, change).orphan_reasons if change is not None else None
    return org, reconcile_full(session, org, orphan_reasons=reasons)


def plan_summary(
    session: Session,
    org: Organization,
    plan: Plan,
    actor: str,
    *,
    applied: ApplyResult | None = None,
    window: bool = False,
) -> PlanSummary:
    """`plan`'s summary: with `applied`, what apply held of it; otherwise (a dry run) what the
    guard would hold if `actor` applied it now."""
    if applied is not None:
        held = [guard.held_change(h) for h in applied.held]
        reason = applied.hold_reason
    else:
        verdict = guard.judge(session, org, plan, actor, window=window)
        held, reason = verdict.held, verdict.reason
    earlier = guard.pending_count(session, org.id) - (len(applied.held) if applied else 0)
    return summarize(plan, org.name, held=held, hold_reason=reason, pending_holds=earlier)


@dataclass
class MappingOutcome:
    plan: Plan
    applied: ApplyResult | None


def set_mapping(
    session: Session, org: Organization, text: str, actor: str, *, apply_now: bool
) -> MappingOutcome:
    """The Plan a new mapping causes; with `apply_now`, store the mapping and apply the Plan."""
    mapping = parse_mapping(text)
    if apply_now:
        lock_org(session, org.id)
    plan = reconcile_full(session, org, mapping=mapping)
    if not apply_now:
        return MappingOutcome(plan, None)
    store_mapping(session, org.id, text, actor)
    record_event(
        session,
        org_id=org.id,
        actor=actor,
        type="mapping.set",
        target_type="organization",
        target_id=org.id,
        detail={"changes": plan.counts()},
    )
    return MappingOutcome(plan, apply(session, org, plan, actor))


@dataclass
class HeldDecisions:
    """What a decision on held changes did: applied, or dropped because the directory no longer
    asks for them (`gone`), or dropped by the admin (`dropped`)."""

    approved: int = 0
    gone: int = 0
    dropped: int = 0

    def to_json(self) -> dict[str, int]:
        return {"approved": self.approved, "gone": self.gone, "dropped": self.dropped}


def approve_many(
    session: Session, org: Organization, helds: list[HeldChange], actor: str
) -> HeldDecisions:
    """Apply the held changes the directory still asks for and drop the others; in the caller's
    transaction, a chunk of members at a time (one reconcile and one apply per chunk)."""
    lock_org(session, org.id)
    out = HeldDecisions()
    by_member = [h for h in helds if h.member_id]
    for part in chunks({h.member_id for h in by_member}):  # type: ignore[misc]
        ids = set(part)
        _approve_checked(
            session,
            org,
            [h for h in by_member if h.member_id in ids],
            reconcile_users(session, org, ids),
            actor,
            out,
        )
    deletions = [h for h in helds if not h.member_id]
    if deletions:
        # A held group deletion is still wanted when no directory group feeds the group.
        everything = reconcile_delta(session, org, DirectoryDelta(group_ids=None))
        _approve_checked(session, org, deletions, everything, actor, out)
    return out


def _approve_checked(
    session: Session,
    org: Organization,
    helds: list[HeldChange],
    plan: Plan,
    actor: str,
    out: HeldDecisions,
) -> None:
    wanted = {c.member_key: c for c, _ in plan.skipped if c.member_key is not None}
    still, gone, changes = [], [], []
    for held in helds:
        change = wanted.get(guard.held_change(held).member_key)
        if change is None:
            gone.append(held)
        else:
            still.append(held)
            changes.append(change)
    if gone:
        guard.decide(session, gone, "dropped", actor, note=guard.NO_LONGER_WANTED)
    if still:
        guard.decide(session, still, "approved", actor)
        apply(session, org, Plan(org_id=org.id, changes=changes), actor, guarded=False)
    out.approved += len(still)
    out.gone += len(gone)


def drop_many(
    session: Session, org: Organization, helds: list[HeldChange], actor: str
) -> HeldDecisions:
    """Drop held changes: the members stay as they are until the directory says something new
    about them."""
    lock_org(session, org.id)
    for part in chunks({str(h.id) for h in helds}):
        ids = {int(i) for i in part}
        guard.decide(session, [h for h in helds if h.id in ids], "dropped", actor, keep=True)
    return HeldDecisions(dropped=len(helds))


def decide_held(
    session: Session, org: Organization, wanted: guard.HeldFilter, decision: str, actor: str
) -> HeldDecisions:
    """Approve or drop every pending held change of `org` that `wanted` takes, read under the
    organization's lock (a decision running beside it cannot take the same ones twice)."""
    if decision not in ("approve", "drop"):
        raise InvalidInput(f"no decision {decision!r}: approve or drop")
    lock_org(session, org.id)
    rows = guard.select_held(session, org.id, wanted)
    if decision == "approve":
        return approve_many(session, org, rows, actor)
    return drop_many(session, org, rows, actor)


def approve_held(session: Session, held_id: int, actor: str) -> str:
    """Apply a held change if the directory still wants it ("approved"); otherwise drop it
    ("dropped")."""
    held = guard.find_held(session, held_id)
    org = session.get(Organization, held.org_id)
    assert org is not None
    done = approve_many(session, org, [held], actor)
    return "approved" if done.approved else "dropped"


def drop_held(session: Session, held_id: int, actor: str) -> None:
    held = guard.find_held(session, held_id)
    org = session.get(Organization, held.org_id)
    assert org is not None
    drop_many(session, org, [held], actor)

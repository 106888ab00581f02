"""The engine's operations, each inside the caller's transaction: react to a directory change,
plan and apply a whole organization, set its mapping, approve or drop held changes."""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import event, select
from sqlalchemy.engine import Connection
from sqlalchemy.orm import Mapper, Session, object_session

from gateway.errors import NotFound
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
from gateway.store.models import (
    DirectoryGroup,
    DirectoryGroupMember,
    DirectoryUser,
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


def approve_held(session: Session, held_id: int, actor: str) -> tuple[str, ApplyResult | None]:
    """Apply a held deprovisioning if the directory still wants it; otherwise drop it."""
    held = guard.find_held(session, held_id)
    org = session.get(Organization, held.org_id)
    assert org is not None
    lock_org(session, org.id)
    wanted = guard.held_change(held)
    plan = reconcile_users(session, org, [held.member_id] if held.member_id else [])
    still = [c for c, _ in plan.skipped if c.member_key == wanted.member_key]
    if not still:
        guard.decide(
            session, held, "dropped", actor, note="no longer wanted: the directory changed"
        )
        return "dropped", None
    guard.decide(session, held, "approved", actor)
    return "approved", apply(session, org, Plan(org_id=org.id, changes=still), actor, guarded=False)


def drop_held(session: Session, held_id: int, actor: str) -> None:
    held = guard.find_held(session, held_id)
    guard.decide(session, held, "dropped", actor)

"""Apply a Plan: org-layer rows, one Event per applied change and outbox messages, all in the
caller's transaction. Deprovisionings pass the guard first; what it holds is recorded, not done."""

from __future__ import annotations

from dataclasses import dataclass, field

from sqlalchemy import delete, func, insert, select, update
from sqlalchemy.orm import Session

from gateway import lifecycle
from gateway.events import record_events
from gateway.provisioning import guard
from gateway.provisioning.plan import (
    AddMembership,
    AdoptGroup,
    Change,
    ChangeAccess,
    ChangeRole,
    CreateCollection,
    CreateGroup,
    DeleteGroup,
    GrantAccess,
    InviteMember,
    Plan,
    RemoveMember,
    RemoveMembership,
    RenameGroup,
    ResendInvitation,
    RestoreMember,
    RevokeAccess,
    RevokeMember,
    UpdateMember,
)
from gateway.store.batches import CHUNK, chunks
from gateway.store.models import (
    Collection,
    DirectoryGroupDigest,
    Group,
    GroupCollectionAccess,
    HeldChange,
    Member,
    MemberGroup,
    Organization,
    ProvisionedGroup,
    new_id,
    utcnow,
)

FLUSH_EVERY = 500


@dataclass
class ApplyResult:
    applied: int = 0
    held: list[HeldChange] = field(default_factory=list)
    hold_reason: str | None = None
    plan: Plan | None = None  # what was applied, with what was held (for its summary)


class _ByName(dict):
    """Lower-cased name -> id of an organization's groups or collections, read on demand."""

    def __init__(self, session: Session, model: type[Group] | type[Collection], org_id: str):
        super().__init__()
        self.session, self.model, self.org_id = session, model, org_id
        self._asked: set[str] = set()

    def load(self, names: set[str]) -> None:
        todo = names - self._asked - set(self)
        self._asked |= todo
        for part in chunks(todo):
            for row_id, name in self.session.execute(
                select(self.model.id, self.model.name).where(
                    self.model.org_id == self.org_id, self.model.name_lower.in_(part)
                )
            ):
                self.setdefault(name.lower(), row_id)

    def __missing__(self, name: str) -> str:
        self._asked.discard(name)
        self.load({name})
        if name not in self:
            raise KeyError(name)
        return self[name]


class _Applier:
    def __init__(self, session: Session, org: Organization, actor: str) -> None:
        self.session = session
        self.org = org
        self.actor = actor
        self.now = utcnow()
        self.events: list[dict] = []
        self.seats = lifecycle.Seats.load(session, org)
        self.members: dict[str, Member] = {}
        self.new_members: dict[str, str] = {}  # e-mail -> id of members this Plan invites
        # The organization's groups and collections by lower-cased name, read as far as the
        # Plan names them (a write in an organization of 10,000 groups reads the few it needs);
        # every change that creates, renames or deletes one updates the map right after.
        self.groups = _ByName(session, Group, org.id)
        self.collections = _ByName(session, Collection, org.id)

    def load_names(self, changes: list[Change]) -> None:
        """The org groups and collections the Plan's changes name, in a few statements; whatever
        else a change needs is looked up by name when it asks (`_ByName`)."""
        groups = {g.lower() for c in changes if isinstance(g := getattr(c, "group", None), str)}
        collections = {getattr(c, "collection", "").lower() for c in changes}
        self.groups.load(groups)
        self.collections.load(collections - {""})

    def event(self, type_: str, target_type: str, target_id: str | None, **detail: object) -> None:
        self.events.append(
            {
                "org_id": self.org.id,
                "actor": self.actor,
                "type": type_,
                "at": self.now,
                "target_type": target_type,
                "target_id": target_id,
                "detail": detail,
            }
        )

    def flush_events(self) -> None:
        record_events(self.session, self.events)  # with their webhook messages
        self.events = []

    def load_members(self, changes: list[Change]) -> None:
        ids = sorted({c.member_id for c in changes if getattr(c, "member_id", None)})  # type: ignore[attr-defined]
        for i in range(0, len(ids), CHUNK):
            for member in self.session.scalars(
                select(Member).where(Member.id.in_(ids[i : i + CHUNK]))
            ):
                self.members[member.id] = member

    def member_id(self, change: AddMembership | RemoveMembership) -> str:
        return change.member_id or self.new_members[change.email]

    # One method per change kind ------------------------------------------------------------

    def create_collection(self, c: CreateCollection) -> None:
        row = Collection(
            id=new_id(),
            org_id=self.org.id,
            name=c.name,
            name_lower=c.name.lower(),
            created_at=self.now,
        )
        self.session.add(row)
        self.collections[c.name.lower()] = row.id
        self.event("collection.created", "collection", row.id, name=c.name)

    def rename_group(self, c: RenameGroup) -> None:
        self.session.execute(
            update(Group)
            .where(Group.id == c.group_id)
            .values(name=c.name, name_lower=c.name.lower())
        )
        self.groups.pop(c.old_name.lower(), None)
        self.groups[c.name.lower()] = c.group_id
        self.event("group.renamed", "group", c.group_id, old_name=c.old_name, name=c.name)

    def adopt_group(self, c: AdoptGroup) -> None:
        self.session.add(ProvisionedGroup(group_id=c.group_id, org_id=self.org.id, origin=c.origin))
        self.event("group.adopted", "group", c.group_id, name=c.name)

    def create_group(self, c: CreateGroup) -> None:
        row = Group(
            id=new_id(),
            org_id=self.org.id,
            name=c.name,
            name_lower=c.name.lower(),
            created_at=self.now,
        )
        self.session.add(row)
        self.session.add(ProvisionedGroup(group_id=row.id, org_id=self.org.id, origin=c.origin))
        self.groups[c.name.lower()] = row.id
        self.event("group.created", "group", row.id, name=c.name)

    def update_member(self, c: UpdateMember) -> None:
        member = self.members[c.member_id]
        detail = {}
        for name, old, new in c.values:
            setattr(member, name, new)
            if name == "email":
                member.email_lower = str(new).lower()
            detail[name] = {"old": old, "new": new}
        member.updated_at = self.now
        if any(name in ("email", "external_id") for name, _, _ in c.values):
            # Unique per organization: write now, in Plan order, so a freed value is free.
            self.session.flush()
        self.event("member.updated", "member", member.id, email=member.email, changes=detail)

    def resend_invitation(self, c: ResendInvitation) -> None:
        member = self.members[c.member_id]
        if member.status == "invited":  # planned from what it was; accepted since: nothing to do
            lifecycle.resend_invitation(self.session, self.org, member, self.actor, reason=c.reason)

    def restore_member(self, c: RestoreMember) -> None:
        lifecycle.restore(
            self.session,
            self.org,
            self.members[c.member_id],
            self.actor,
            reason=c.reason,
            seats=self.seats,
        )

    def invite_member(self, c: InviteMember) -> None:
        member = lifecycle.new_member(
            self.session,
            self.org,
            email=c.email,
            actor=self.actor,
            name=c.name,
            external_id=c.external_id,
            role=c.role,
            source=c.source,
            directory_user_id=c.directory_user_id,
            seats=self.seats,
        )
        self.new_members[c.email] = member.id

    def change_role(self, c: ChangeRole) -> None:
        member = self.members[c.member_id]
        member.role = c.new
        member.updated_at = self.now
        self.event(
            "member.role_changed", "member", member.id, email=member.email, old=c.old, new=c.new
        )

    def add_memberships(self, changes: list[AddMembership]) -> None:
        rows = [
            {"member_id": self.member_id(c), "group_id": self.groups[c.group.lower()]}
            for c in changes
        ]
        for i in range(0, len(rows), 2000):
            self.session.execute(insert(MemberGroup), rows[i : i + 2000])
        for c, row in zip(changes, rows, strict=True):
            self.event(
                "group.member_added",
                "group",
                row["group_id"],
                group=c.group,
                member_id=row["member_id"],
                email=c.email,
            )

    def remove_membership(self, c: RemoveMembership) -> None:
        group_id = self.groups[c.group.lower()]
        self.session.execute(
            delete(MemberGroup).where(
                MemberGroup.member_id == c.member_id, MemberGroup.group_id == group_id
            )
        )
        self.event(
            "group.member_removed",
            "group",
            group_id,
            group=c.group,
            member_id=c.member_id,
            email=c.email,
        )

    def grant_access(self, c: GrantAccess) -> None:
        group_id, collection_id = (
            self.groups[c.group.lower()],
            self.collections[c.collection.lower()],
        )
        self.session.add(
            GroupCollectionAccess(
                group_id=group_id, collection_id=collection_id, permission=c.permission
            )
        )
        self.event(
            "access.granted",
            "group",
            group_id,
            group=c.group,
            collection=c.collection,
            permission=c.permission,
        )

    def change_access(self, c: ChangeAccess) -> None:
        group_id, collection_id = (
            self.groups[c.group.lower()],
            self.collections[c.collection.lower()],
        )
        self.session.execute(
            update(GroupCollectionAccess)
            .where(
                GroupCollectionAccess.group_id == group_id,
                GroupCollectionAccess.collection_id == collection_id,
            )
            .values(permission=c.new)
        )
        self.event(
            "access.changed",
            "group",
            group_id,
            group=c.group,
            collection=c.collection,
            old=c.old,
            new=c.new,
        )

    def revoke_access(self, c: RevokeAccess) -> None:
        group_id, collection_id = (
            self.groups[c.group.lower()],
            self.collections[c.collection.lower()],
        )
        self.session.execute(
            delete(GroupCollectionAccess).where(
                GroupCollectionAccess.group_id == group_id,
                GroupCollectionAccess.collection_id == collection_id,
            )
        )
        self.event(
            "access.revoked",
            "group",
            group_id,
            group=c.group,
            collection=c.collection,
            permission=c.permission,
        )

    def revoke_member(self, c: RevokeMember) -> None:
        lifecycle.revoke(
            self.session, self.members[c.member_id], self.actor, reason=c.reason, seats=self.seats
        )

    def remove_member(self, c: RemoveMember) -> None:
        lifecycle.remove(
            self.session, self.members[c.member_id], self.actor, reason=c.reason, seats=self.seats
        )

    def delete_group(self, c: DeleteGroup) -> None:
        # Its members lose the group's collection access: the guard's sliding hour counts them.
        granted = self.session.scalar(
            select(func.count(MemberGroup.member_id)).where(
                MemberGroup.group_id == c.group_id,
                select(GroupCollectionAccess.group_id)
                .where(GroupCollectionAccess.group_id == c.group_id)
                .exists(),
            )
        )
        self.session.execute(delete(Group).where(Group.id == c.group_id))
        self.groups.pop(c.name.lower(), None)
        self.event("group.deleted", "group", c.group_id, name=c.name, lost_access=granted or 0)


_ONE_BY_ONE = {
    CreateCollection: _Applier.create_collection,
    RenameGroup: _Applier.rename_group,
    AdoptGroup: _Applier.adopt_group,
    CreateGroup: _Applier.create_group,
    UpdateMember: _Applier.update_member,
    RestoreMember: _Applier.restore_member,
    ResendInvitation: _Applier.resend_invitation,
    InviteMember: _Applier.invite_member,
    ChangeRole: _Applier.change_role,
    RemoveMembership: _Applier.remove_membership,
    GrantAccess: _Applier.grant_access,
    ChangeAccess: _Applier.change_access,
    RevokeAccess: _Applier.revoke_access,
    RevokeMember: _Applier.revoke_member,
    RemoveMember: _Applier.remove_member,
    DeleteGroup: _Applier.delete_group,
}


def apply(
    session: Session,
    org: Organization,
    plan: Plan,
    actor: str,
    *,
    guarded: bool = True,
    window: bool = False,
) -> ApplyResult:
    """Apply `plan` as `actor` (scim, ldap:<connector>, admin:<id>, system). With `guarded`, the
    deprovisioning guard may hold some changes back; `window` counts the actor's deprovisionings
    of the last hour too (SCIM, whose changes arrive one request at a time)."""
    result = ApplyResult(plan=plan)
    changes = list(plan.changes)
    if guarded:
        verdict = guard.judge(session, org, plan, actor, window=window)
        if verdict.held:
            assert verdict.reason is not None
            held_ids = {id(c) for c in verdict.held}
            changes = [c for c in changes if id(c) not in held_ids]
            result.held = guard.hold(session, org, verdict.held, verdict.reason, actor)
            result.hold_reason = verdict.reason
    applier = _Applier(session, org, actor)
    applier.load_members(changes)
    applier.load_names(changes)
    for change, reason in plan.skipped:
        if reason.startswith("the last confirmed owner"):
            applier.event(
                "member.owner_protected",
                "member",
                getattr(change, "member_id", None),
                change=change.to_json(),
                reason=reason,
            )
    additions: list[AddMembership] = []
    for n, change in enumerate(changes, 1):
        if isinstance(change, AddMembership):
            additions.append(change)
            continue
        if additions and change.PHASE > AddMembership.PHASE:
            session.flush()
            applier.add_memberships(additions)
            additions = []
        _ONE_BY_ONE[type(change)](applier, change)
        if n % FLUSH_EVERY == 0:
            # An invitation adds a member, its mail and its event to the session; written now,
            # they can be let go (a first sync of 20,000 members otherwise holds 60,000
            # pending objects, 170 MB, until the end).
            session.flush()
    if additions:
        session.flush()
        applier.add_memberships(additions)
    _bookkeeping(session, org, plan, actor)
    applier.flush_events()
    session.flush()
    result.applied = len(changes)
    return result


def _bookkeeping(session: Session, org: Organization, plan: Plan, actor: str) -> None:
    for group_id, origin in plan.group_origins.items():
        session.execute(
            update(ProvisionedGroup)
            .where(ProvisionedGroup.group_id == group_id)
            .values(origin=origin)
        )
    gone = sorted(plan.gone_group_ids | set(plan.group_digests))
    for i in range(0, len(gone), CHUNK):
        session.execute(
            delete(DirectoryGroupDigest).where(
                DirectoryGroupDigest.directory_group_id.in_(gone[i : i + CHUNK])
            )
        )
    rows = [
        {
            "directory_group_id": gid,
            "org_id": org.id,
            "digest": digest,
            "target": target,
            "target_lower": target.lower() if target is not None else None,
        }
        for gid, (digest, target) in sorted(plan.group_digests.items())
    ]
    for i in range(0, len(rows), 2000):
        session.execute(insert(DirectoryGroupDigest), rows[i : i + 2000])
    superseded = [
        held
        for held_id in sorted(plan.superseded_holds)
        if (held := session.get(HeldChange, held_id)) is not None and held.status == "pending"
    ]
    if superseded:
        guard.decide(session, superseded, "dropped", actor, note=guard.NO_LONGER_WANTED)
    for part in chunks({str(i) for i in plan.released_drops}):
        session.execute(
            update(HeldChange).where(HeldChange.id.in_([int(i) for i in part])).values(kept=False)
        )

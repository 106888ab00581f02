"""Desired org state vs. current org state -> Plan. Pure: both sides come in as values.

Identity: a directory user keeps the member it is linked to; otherwise it takes over an unlinked
member with its externalId, then one with its e-mail (case-insensitive), so a rename or a move
from LDAP to SCIM updates the member instead of inviting them again. A member linked to another
directory user is never taken. Members no source manages (made by hand) are only touched when a
directory user takes them over this way.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field

from gateway.provisioning.entry import DELETED
from gateway.provisioning.plan import (
    MAIL_CHANGED,
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
from mappings import DesiredGroup, DesiredMember


@dataclass(frozen=True)
class MemberRow:
    id: str
    email: str
    email_lower: str
    name: str | None
    external_id: str | None
    role: str
    status: str
    directory_user_id: str | None
    source: str | None

    @property
    def managed(self) -> bool:
        return self.source is not None and (
            self.source == "scim" or self.source.startswith("ldap:")
        )


@dataclass(frozen=True)
class GroupRow:
    id: str
    name: str
    origin: str | None  # None: made by hand, not provisioned


@dataclass
class OrgState:
    """The part of the org layer a reconcile looks at (all of it, or the affected members)."""

    members: dict[str, MemberRow] = field(default_factory=dict)
    memberships: dict[str, set[str]] = field(default_factory=dict)  # member id -> group ids
    groups: dict[str, GroupRow] = field(default_factory=dict)
    collections: dict[str, str] = field(default_factory=dict)  # collection id -> name
    access: dict[str, dict[str, str]] = field(default_factory=dict)  # group id -> {coll id: perm}
    confirmed_owners: int = 0
    # Change.member_key of a pending hold -> its id
    holds: dict[tuple[str, ...], int] = field(default_factory=dict)
    # Change.member_key of a change an admin dropped, while the directory says nothing new about
    # the member -> its id and why it is not planned ("kept: dropped by admin:... on 2026-12-04")
    kept: dict[tuple[str, ...], tuple[int, str]] = field(default_factory=dict)


@dataclass
class GroupOutcome:
    changes: list[Change]
    resolved: dict[str, str | None]  # desired group key -> org group id (None: created)
    managed: set[str]  # org group ids provisioning manages after the Plan
    deleted: set[str]
    origins: dict[str, str]
    adopted: set[str]
    names: dict[str, str] = field(default_factory=dict)  # org group id -> name after the Plan


def diff_groups(desired: dict[str, DesiredGroup], state: OrgState) -> GroupOutcome:
    changes: list[Change] = []
    resolved: dict[str, str | None] = {}
    origins: dict[str, str] = {}
    adopted: set[str] = set()
    used: set[str] = set()
    by_name = {g.name.lower(): g for g in state.groups.values()}
    for key in sorted(desired):
        want = desired[key]
        row = by_name.get(key)
        if row is None:
            continue
        resolved[key] = row.id
        used.add(row.id)
        if row.origin is None:
            changes.append(AdoptGroup(group_id=row.id, name=want.name, origin=want.origin))
            adopted.add(row.id)
        elif row.origin != want.origin:
            origins[row.id] = want.origin
        if row.name != want.name:
            changes.append(RenameGroup(group_id=row.id, old_name=row.name, name=want.name))
    by_origin: dict[str, GroupRow] = {}
    for row in sorted(state.groups.values(), key=lambda g: g.id):
        if row.origin is not None and row.id not in used:
            by_origin.setdefault(row.origin, row)
    for key in sorted(desired):
        if key in resolved:
            continue
        want = desired[key]
        row = by_origin.get(want.origin)
        if row is not None and row.id not in used:
            used.add(row.id)
            resolved[key] = row.id
            changes.append(RenameGroup(group_id=row.id, old_name=row.name, name=want.name))
        else:
            resolved[key] = None
            changes.append(CreateGroup(name=want.name, origin=want.origin))
    deleted = {g.id for g in state.groups.values() if g.origin is not None and g.id not in used}
    changes += [DeleteGroup(group_id=g, name=state.groups[g].name) for g in sorted(deleted)]
    changes += _diff_access(desired, resolved, state)
    managed = {gid for gid in resolved.values() if gid is not None}
    names = {gid: desired[key].name for key, gid in resolved.items() if gid is not None}
    return GroupOutcome(changes, resolved, managed, deleted, origins, adopted, names)


def _diff_access(
    desired: dict[str, DesiredGroup], resolved: dict[str, str | None], state: OrgState
) -> list[Change]:
    changes: list[Change] = []
    collections = {name.lower(): name for name in state.collections.values()}
    created: set[str] = set()
    for key in sorted(desired):
        want = desired[key]
        group_id = resolved[key]
        current = {
            state.collections[cid].lower(): (state.collections[cid], perm)
            for cid, perm in (state.access.get(group_id, {}) if group_id else {}).items()
            if cid in state.collections
        }
        for collection, permission in sorted(want.access.items()):
            ckey = collection.lower()
            if ckey not in collections and ckey not in created:
                created.add(ckey)
                changes.append(CreateCollection(name=collection))
            name = collections.get(ckey, collection)
            have = current.pop(ckey, None)
            if have is None:
                changes.append(GrantAccess(group=want.name, collection=name, permission=permission))
            elif have[1] != permission:
                changes.append(
                    ChangeAccess(group=want.name, collection=name, old=have[1], new=permission)
                )
        for _, (name, permission) in sorted(current.items()):
            changes.append(RevokeAccess(group=want.name, collection=name, permission=permission))
    return changes


@dataclass
class MemberOutcome:
    changes: list[Change]
    problems: list[str]
    skipped: list[tuple[Change, str]]
    evaluated: set[str]  # member ids whose whole fate this diff decided
    freed_emails: set[str]
    freed_external_ids: set[str]


def diff_members(
    desired: Iterable[DesiredMember],
    state: OrgState,
    groups: dict[str, DesiredGroup],
    outcome: GroupOutcome,
    *,
    deprovision: str,
    orphans_considered: bool | set[str] = True,
    orphan_reasons: dict[str, str] | None = None,
) -> MemberOutcome:
    """`orphans_considered`: True to deprovision every loaded managed member no directory user
    has (full reconcile), or the member ids the caller knows lost their user (incremental);
    `orphan_reasons`: why, per member id, as the source told it (else "deleted from the
    directory")."""
    orphan_reasons = orphan_reasons or {}
    wanted = sorted(desired, key=lambda d: d.directory_user_id)
    members = state.members
    by_link = {m.directory_user_id: m for m in members.values() if m.directory_user_id}
    by_ext = {m.external_id: m for m in members.values() if m.external_id is not None}
    by_email = {m.email_lower: m for m in members.values()}
    match: dict[str, MemberRow] = {}
    claimed: set[str] = set()
    for d in wanted:
        m = by_link.get(d.directory_user_id)
        if m is not None:
            match[d.directory_user_id] = m
            claimed.add(m.id)
    for lookup, attr in ((by_ext, "external_id"), (by_email, "email")):
        for d in wanted:
            key = getattr(d, attr)
            if d.directory_user_id in match or not d.provision or key is None:
                continue
            m = lookup.get(key)
            if m is not None and m.id not in claimed and m.directory_user_id is None:
                match[d.directory_user_id] = m
                claimed.add(m.id)

    out = MemberOutcome([], [], [], set(claimed), set(), set())
    taken_email = {m.email_lower: m.id for m in members.values()}
    taken_ext = {m.external_id: m.id for m in members.values() if m.external_id is not None}
    owners_left = state.confirmed_owners

    def protect(m: MemberRow, change: Change) -> bool:
        nonlocal owners_left
        if m.role == "owner" and m.status == "confirmed":
            if owners_left <= 1:
                out.skipped.append((change, "the last confirmed owner is never demoted or removed"))
                return False
            owners_left -= 1
        return True

    # Which matched members move to their wanted e-mail and externalId. One may take what
    # another gives up in this same Plan whichever of the two comes first, so repeat until no
    # more moves (a swap of two members' values stays a problem: neither is ever free).
    moves = [
        (d, m) for d in wanted if d.provision and (m := match.get(d.directory_user_id)) is not None
    ]
    email_moves: set[str] = set()
    ext_moves: set[str] = set()
    moved = True
    while moved:
        moved = False
        for d, m in moves:
            if m.id not in email_moves and d.email != m.email_lower:
                owner = taken_email.get(d.email)  # type: ignore[arg-type]
                if owner is None or owner == m.id:
                    taken_email.pop(m.email_lower, None)
                    taken_email[d.email] = m.id  # type: ignore[index]
                    email_moves.add(m.id)
                    moved = True
            if m.id not in ext_moves and d.external_id != m.external_id:
                owner = taken_ext.get(d.external_id) if d.external_id is not None else None
                if owner is None or owner == m.id:
                    if m.external_id is not None:
                        taken_ext.pop(m.external_id, None)
                    if d.external_id is not None:
                        taken_ext[d.external_id] = m.id
                    ext_moves.add(m.id)
                    moved = True

    def deprovision_member(m: MemberRow, reason: str) -> None:
        if deprovision == "remove":
            change: Change = RemoveMember(member_id=m.id, email=m.email, reason=reason)
        elif m.status != "revoked":
            change = RevokeMember(member_id=m.id, email=m.email, reason=reason)
        else:
            return
        if protect(m, change):
            out.changes.append(change)

    for d in wanted:
        if d.problem:
            out.problems.append(d.problem)
        m = match.get(d.directory_user_id)
        if m is None:
            continue
        if not d.provision:
            if d.reason is not None:
                deprovision_member(m, d.reason)
            continue
        values: list[tuple[str, object, object]] = []
        if d.email != m.email_lower:
            if m.id not in email_moves:
                out.problems.append(f"{d.email}: e-mail already belongs to another member")
            else:
                values.append(("email", m.email, d.email))
                out.freed_emails.add(m.email_lower)
        if d.name != m.name:
            values.append(("name", m.name, d.name))
        if d.external_id != m.external_id:
            if m.id not in ext_moves:
                out.problems.append(
                    f"{d.email}: externalId {d.external_id!r} already belongs to another member"
                )
            else:
                values.append(("external_id", m.external_id, d.external_id))
                if m.external_id is not None:
                    out.freed_external_ids.add(m.external_id)
        if d.directory_user_id != m.directory_user_id:
            values.append(("directory_user_id", m.directory_user_id, d.directory_user_id))
        if d.source != m.source:
            values.append(("source", m.source, d.source))
        mail_moved = any(v[0] == "email" for v in values)
        email = d.email if mail_moved else m.email
        if values:
            out.changes.append(UpdateMember(member_id=m.id, email=m.email, values=tuple(values)))
        if mail_moved and m.status == "invited":
            # The link went to the old address: whoever holds it must not accept for them.
            out.changes.append(ResendInvitation(member_id=m.id, email=email, reason=MAIL_CHANGED))
        if m.status == "revoked":
            out.changes.append(RestoreMember(member_id=m.id, email=email))
        if d.role is not None and d.role != m.role:
            change = ChangeRole(member_id=m.id, email=email, old=m.role, new=d.role)
            if d.role == "owner" or protect(m, change):
                out.changes.append(change)
        current = state.memberships.get(m.id, set()) & outcome.managed
        _diff_memberships(out, m.id, email, d.groups, current, groups, outcome, state)

    for d in wanted:
        if not d.provision or d.directory_user_id in match:
            continue
        assert d.email is not None
        if d.email in taken_email:
            out.problems.append(f"{d.email}: e-mail already belongs to another member")
            continue
        external_id = d.external_id
        if external_id is not None and external_id in taken_ext:
            out.problems.append(
                f"{d.email}: externalId {external_id!r} already belongs to another member"
            )
            external_id = None
        taken_email[d.email] = "new"
        if external_id is not None:
            taken_ext[external_id] = "new"
        out.changes.append(
            InviteMember(
                email=d.email,
                name=d.name,
                external_id=external_id,
                role=d.role or "user",
                directory_user_id=d.directory_user_id,
                source=d.source,
            )
        )
        _diff_memberships(out, None, d.email, d.groups, set(), groups, outcome, state)

    for m in sorted(members.values(), key=lambda r: r.id):
        if m.id in claimed or not m.managed or m.directory_user_id is not None:
            continue
        if orphans_considered is True or (
            isinstance(orphans_considered, set) and m.id in orphans_considered
        ):
            out.evaluated.add(m.id)
            out.freed_emails.add(m.email_lower)
            if m.external_id is not None:
                out.freed_external_ids.add(m.external_id)
            deprovision_member(m, orphan_reasons.get(m.id, DELETED))
    return out


def _diff_memberships(
    out: MemberOutcome,
    member_id: str | None,
    email: str,
    wanted_names: Iterable[str],
    current: set[str],
    groups: dict[str, DesiredGroup],
    outcome: GroupOutcome,
    state: OrgState,
) -> None:
    wanted_ids: set[str] = set()
    for name in wanted_names:
        key = name.lower()
        group_id = outcome.resolved.get(key)
        if group_id is not None:
            wanted_ids.add(group_id)
        if group_id is None or group_id not in current:
            out.changes.append(
                AddMembership(member_id=member_id, email=email, group=groups[key].name)
            )
    for group_id in sorted(current - wanted_ids):
        name = outcome.names.get(group_id) or state.groups[group_id].name
        out.changes.append(RemoveMembership(member_id=member_id or "", email=email, group=name))


def assemble(org_id: str, groups: GroupOutcome, members: MemberOutcome, state: OrgState) -> Plan:
    """One Plan from both halves; changes the guard holds already are listed, not repeated."""
    changes: list[Change] = []
    skipped = list(members.skipped)
    produced: set[tuple[str, ...]] = set()
    for change in groups.changes + members.changes:
        key = change.member_key
        if key is not None:
            produced.add(key)
            if key in state.holds:
                skipped.append((change, f"held by the guard (held change {state.holds[key]})"))
                continue
            if key in state.kept:
                skipped.append((change, state.kept[key][1]))
                continue
        changes.append(change)
    # A membership hold is judged only where this Plan compared the group's members.
    compared = {
        (groups.names.get(gid) or state.groups[gid].name).lower()
        for gid in groups.managed
        if gid in groups.names or gid in state.groups
    }

    def settled(key: tuple[str, ...]) -> bool:
        """This Plan looked at what the key names and no longer produces the change."""
        return key not in produced and (
            (key[0] == DeleteGroup.KIND and key[1] in state.groups)
            or (key[1] in members.evaluated and (len(key) == 2 or key[2] in compared))
        )

    plan = Plan(
        org_id=org_id,
        changes=changes,
        problems=sorted(set(members.problems)),
        skipped=skipped,
        group_origins=dict(groups.origins),
        superseded_holds={held_id for key, held_id in state.holds.items() if settled(key)},
        # A kept drop whose change the directory no longer asks for has done its work: the next
        # time the directory asks for it, it is planned (and guarded) again.
        released_drops={held_id for key, (held_id, _) in state.kept.items() if settled(key)},
    )
    return plan

"""Load the directory and the org layer, and reconcile them into a Plan: the whole organization
(`reconcile_full`) or only what one directory change touched (`reconcile_delta`).

Incremental cost is O(what the change reaches), whatever the size of the organization: it reads
users and members only for the users the change names, plus every user below a group whose rules
or nesting changed (a group's digest, kept in `directory_group_digests`, says when); and directory
and org groups only for the groups the change names, the groups of the users it reconciles, the
groups above those and the org groups they feed (gateway.provisioning.graph). A 50,000-member
group gaining one member reads one user; a POST /Users in an organization of 10,000 nested groups
reads the same rows as in one of 10. A change that cannot name the groups it touched (an LDAP
poll) compares every group, as the full reconcile does.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass, field

from sqlalchemy import String, bindparam, cast, func, literal, null, or_, select, union_all
from sqlalchemy.orm import Session

from gateway.provisioning.diff import (
    GroupRow,
    MemberRow,
    OrgState,
    assemble,
    diff_groups,
    diff_members,
)
from gateway.provisioning.graph import (
    Digest,
    GroupGraph,
    OrgGroupScope,
    groups_below,
    stored_targets,
)
from gateway.provisioning.plan import (
    AdoptGroup,
    DeleteGroup,
    Plan,
    RemoveMembership,
    change_from_json,
)
from gateway.provisioning.settings import OrgSettings, org_mapping
from gateway.scim.filter import compile_filter
from gateway.scim.schema import USER_TYPE
from gateway.store.batches import CHUNK, chunks
from gateway.store.models import (
    Collection,
    DirectoryGroup,
    DirectoryGroupDigest,
    DirectoryGroupMember,
    DirectoryUser,
    Group,
    GroupCollectionAccess,
    HeldChange,
    Member,
    MemberGroup,
    Organization,
    ProvisionedGroup,
)
from mappings import (
    DesiredGroup,
    DesiredMember,
    DirGroup,
    DirUser,
    GroupIndex,
    Mapping,
    desire_groups,
    desire_user,
)

MAX_ROUNDS = 4


# --- loading the directory ------------------------------------------------------------------


_TEXT, _NONE, _ORG = String(), null(), bindparam("org_id")
# The organization's directory groups with their parents and each group's stored (digest,
# target): one statement, a tagged UNION of text rows, built once.
_DIRECTORY_GROUP_LAYER = union_all(
    select(
        literal("edge", _TEXT),
        DirectoryGroupMember.child_group_id,
        DirectoryGroupMember.group_id,
        _NONE,
        _NONE,
    )
    .join(DirectoryGroup, DirectoryGroup.id == DirectoryGroupMember.group_id)
    .where(DirectoryGroup.org_id == _ORG, DirectoryGroupMember.child_group_id.is_not(None)),
    select(
        literal("group", _TEXT),
        DirectoryGroup.id,
        DirectoryGroup.source,
        DirectoryGroup.display_name,
        DirectoryGroup.external_id,
    ).where(DirectoryGroup.org_id == _ORG),
    select(
        literal("digest", _TEXT),
        DirectoryGroupDigest.directory_group_id,
        DirectoryGroupDigest.digest,
        DirectoryGroupDigest.target,
        _NONE,
    ).where(DirectoryGroupDigest.org_id == _ORG),
)


def load_group_index(
    session: Session, org_id: str, mapping: Mapping
) -> tuple[GroupIndex, dict[str, tuple[str, str | None]]]:
    """The organization's directory groups with their parents, as `mapping` sees them, and
    each group's (digest, target) as the last reconcile stored it; one round trip for what were
    three, under the organization's lock on every inline SCIM write."""
    parents: dict[str, set[str]] = {}
    found = []
    stored: dict[str, tuple[str, str | None]] = {}
    for tag, a, b, c, d in session.execute(_DIRECTORY_GROUP_LAYER, {"org_id": org_id}):
        if tag == "edge":
            parents.setdefault(a, set()).add(b)
        elif tag == "group":
            found.append((a, b, c, d))
        else:
            stored[a] = (b, c)
    groups = [
        DirGroup(id=i, source=s, name=n, external_id=x, parent_ids=frozenset(parents.get(i, ())))
        for i, s, n, x in found
    ]
    return GroupIndex(mapping, groups), stored


_USER_COLUMNS = (
    DirectoryUser.id,
    DirectoryUser.source,
    DirectoryUser.user_name,
    DirectoryUser.external_id,
    DirectoryUser.active,
    DirectoryUser.resource,
)


def _filter_hits(
    session: Session, org_id: str, mapping: Mapping, ids: list[str] | None
) -> set[str]:
    assert mapping.scope.filter
    query = select(DirectoryUser.id).where(
        DirectoryUser.org_id == org_id, compile_filter(mapping.scope.filter, USER_TYPE)
    )
    if ids is not None:
        query = query.where(DirectoryUser.id.in_(ids))
    return set(session.scalars(query))


def _desire(
    index: GroupIndex, rows: Iterable, direct: dict[str, list[str]], hits: set[str] | None
) -> list[DesiredMember]:
    out = []
    for user_id, source, user_name, external_id, active, resource in rows:
        user = DirUser(
            id=user_id,
            source=source,
            user_name=user_name,
            external_id=external_id,
            active=bool(active),
            resource=resource or {},
            in_filter=hits is None or user_id in hits,
        )
        out.append(desire_user(index, user, direct.get(user_id, ())))
    return out


def desire_all_users(session: Session, org_id: str, index: GroupIndex) -> list[DesiredMember]:
    """Every directory user of the organization, streamed: resources are dropped as soon as the
    rules have read them, so memory follows the number of users, not their size."""
    direct: dict[str, list[str]] = {}
    rows = session.execute(
        select(DirectoryGroupMember.user_id, DirectoryGroupMember.group_id)
        .join(DirectoryGroup, DirectoryGroup.id == DirectoryGroupMember.group_id)
        .where(DirectoryGroup.org_id == org_id, DirectoryGroupMember.user_id.is_not(None))
    )
    for user_id, group_id in rows:
        direct.setdefault(user_id, []).append(group_id)
    hits = (
        _filter_hits(session, org_id, index.mapping, None) if index.mapping.scope.filter else None
    )
    result = session.execute(
        select(*_USER_COLUMNS)
        .where(DirectoryUser.org_id == org_id)
        .execution_options(yield_per=2000)
    )
    desired: list[DesiredMember] = []
    for partition in result.partitions():
        desired += _desire(index, partition, direct, hits)
    return desired


def desire_users(
    session: Session,
    org_id: str,
    index: GroupIndex,
    user_ids: set[str],
    reach: Callable[[set[str]], None] | None = None,
) -> list[DesiredMember]:
    """These directory users as the rules want them; `reach` reads their direct groups (and
    every group above them) into `index` when it holds only part of the organization's."""
    desired: list[DesiredMember] = []
    for ids in chunks(user_ids):
        direct: dict[str, list[str]] = {}
        for user_id, group_id in session.execute(
            select(DirectoryGroupMember.user_id, DirectoryGroupMember.group_id).where(
                DirectoryGroupMember.user_id.in_(ids)
            )
        ):
            direct.setdefault(user_id, []).append(group_id)
        if reach is not None:
            reach({g for groups in direct.values() for g in groups})
        hits = (
            _filter_hits(session, org_id, index.mapping, ids)
            if index.mapping.scope.filter
            else None
        )
        rows = session.execute(
            select(*_USER_COLUMNS).where(DirectoryUser.org_id == org_id, DirectoryUser.id.in_(ids))
        )
        desired += _desire(index, rows, direct, hits)
    return desired


def users_below(session: Session, org_id: str, group_ids: set[str]) -> set[str]:
    """Every user in these groups or in groups nested inside them."""
    users: set[str] = set()
    for ids in chunks(groups_below(session, org_id, group_ids)):
        users |= set(
            session.scalars(
                select(DirectoryGroupMember.user_id).where(
                    DirectoryGroupMember.group_id.in_(ids),
                    DirectoryGroupMember.user_id.is_not(None),
                )
            )
        )
    return users


# --- loading the org layer --------------------------------------------------------------------

_MEMBER_COLUMNS = (
    Member.id,
    Member.email,
    Member.email_lower,
    Member.name,
    Member.external_id,
    Member.role,
    Member.status,
    Member.directory_user_id,
    Member.source,
)


# The organization's confirmed owners and pending holds (what every reconcile reads whole).
_OWNERS_AND_HOLDS = (
    select(literal("owners", _TEXT), cast(func.count(), _TEXT), _NONE, _NONE)
    .select_from(Member)
    .where(Member.org_id == _ORG, Member.role == "owner", Member.status == "confirmed"),
    select(
        literal("hold", _TEXT), cast(HeldChange.id, _TEXT), HeldChange.kind, HeldChange.member_id
    ).where(HeldChange.org_id == _ORG, HeldChange.status == "pending"),
    # Drops that stick: the member's directory user is the one it was, unchanged since.
    select(
        literal("kept", _TEXT), cast(HeldChange.id, _TEXT), HeldChange.kind, HeldChange.member_id
    )
    .join(Member, Member.id == HeldChange.member_id)
    .outerjoin(DirectoryUser, DirectoryUser.id == Member.directory_user_id)
    .where(
        HeldChange.org_id == _ORG,
        HeldChange.status == "dropped",
        HeldChange.kept.is_(True),
        Member.directory_user_id.is_not_distinct_from(HeldChange.kept_user_id),
        DirectoryUser.last_modified.is_not_distinct_from(HeldChange.kept_modified),
    ),
)
_ORG_WATCH = union_all(*_OWNERS_AND_HOLDS)
# The organization's groups, collections, group access, confirmed owners and pending holds: one
# statement, a tagged UNION of text rows, built once.
_ORG_GROUP_LAYER = union_all(
    select(literal("group", _TEXT), Group.id, Group.name, ProvisionedGroup.origin)
    .outerjoin(ProvisionedGroup, ProvisionedGroup.group_id == Group.id)
    .where(Group.org_id == _ORG),
    select(literal("collection", _TEXT), Collection.id, Collection.name, _NONE).where(
        Collection.org_id == _ORG
    ),
    select(
        literal("access", _TEXT),
        GroupCollectionAccess.group_id,
        GroupCollectionAccess.collection_id,
        GroupCollectionAccess.permission,
    )
    .join(Group, Group.id == GroupCollectionAccess.group_id)
    .where(Group.org_id == _ORG),
    *_OWNERS_AND_HOLDS,
)


def load_group_layer(session: Session, org_id: str, state: OrgState, *, whole: bool = True) -> None:
    """The organization's groups, collections, group access (`whole`; otherwise none of them:
    an `OrgGroupScope` reads the ones a change reaches), confirmed owners and pending holds; one
    round trip, under the organization's lock on every inline SCIM write."""
    state.groups, state.collections, state.access, state.holds = {}, {}, {}, {}
    state.kept = {}
    state.confirmed_owners = 0
    by_change: dict[str, list[int]] = {"hold": [], "kept": []}
    statement = _ORG_GROUP_LAYER if whole else _ORG_WATCH
    for tag, a, b, c in session.execute(statement, {"org_id": org_id}):
        if tag == "group":
            state.groups[a] = GroupRow(a, b, c)
        elif tag == "collection":
            state.collections[a] = b
        elif tag == "access":
            state.access.setdefault(a, {})[b] = c
        elif tag == "owners":
            state.confirmed_owners = int(a or 0)
        elif tag == "kept" or b in _KEYED_BY_CHANGE:
            by_change[tag].append(int(a))
        elif c:  # a hold on a member
            state.holds[(b, c)] = int(a)
    if by_change["hold"] or by_change["kept"]:
        _key_by_change(session, state, by_change)


# Held changes known by more than their member: a group removal by its member and group, a
# group deletion by its group (both live in the held change).
_KEYED_BY_CHANGE = (RemoveMembership.KIND, DeleteGroup.KIND)


def _key_by_change(session: Session, state: OrgState, ids: dict[str, list[int]]) -> None:
    """Read only when there are some: they are rare."""
    kept = set(ids["kept"])
    columns = (HeldChange.id, HeldChange.change, HeldChange.decided_by, HeldChange.decided_at)
    for held_id, change, decided_by, decided_at in session.execute(
        select(*columns).where(HeldChange.id.in_(sorted(kept | set(ids["hold"]))))
    ):
        key = change_from_json(change).member_key
        assert key is not None
        if held_id in kept:
            state.kept[key] = (held_id, f"kept: dropped by {decided_by} on {decided_at:%Y-%m-%d}")
        else:
            state.holds[key] = held_id


def _add_members(session: Session, state: OrgState, condition) -> None:  # type: ignore[no-untyped-def]
    new_ids = []
    for row in session.execute(select(*_MEMBER_COLUMNS).where(condition)):
        if row[0] not in state.members:
            state.members[row[0]] = MemberRow(*row)
            new_ids.append(row[0])
    for ids in chunks(new_ids):
        for member_id, group_id in session.execute(
            select(MemberGroup.member_id, MemberGroup.group_id).where(
                MemberGroup.member_id.in_(ids)
            )
        ):
            state.memberships.setdefault(member_id, set()).add(group_id)


def load_all_members(session: Session, org_id: str, state: OrgState) -> None:
    for row in session.execute(select(*_MEMBER_COLUMNS).where(Member.org_id == org_id)):
        state.members[row[0]] = MemberRow(*row)
    rows = session.execute(
        select(MemberGroup.member_id, MemberGroup.group_id)
        .join(Member, Member.id == MemberGroup.member_id)
        .where(Member.org_id == org_id)
    )
    for member_id, group_id in rows:
        state.memberships.setdefault(member_id, set()).add(group_id)


def load_members_for(
    session: Session,
    org_id: str,
    state: OrgState,
    desired: list[DesiredMember],
    member_ids: set[str],
) -> None:
    """The members these directory users may be (linked, same externalId, same e-mail)."""
    org = Member.org_id == org_id
    keys = (
        (Member.directory_user_id, {d.directory_user_id for d in desired}),
        (Member.external_id, {d.external_id for d in desired if d.external_id is not None}),
        (Member.email_lower, {d.email for d in desired if d.email is not None}),
        (Member.id, member_ids),
    )
    one_trip = session.get_bind().dialect.name == "postgresql"
    if one_trip and all(len(values) <= CHUNK for _, values in keys):
        # A few users (every SCIM write) on PostgreSQL: one round trip, each key on its own
        # index (BitmapOr). SQLite, where a statement costs no round trip, scans the
        # organization for such an OR unless ANALYZE has run: it keeps one lookup per key.
        wanted = [column.in_(sorted(values)) for column, values in keys if values]
        if wanted:
            _add_members(session, state, org & or_(*wanted))
        return
    for column, values in keys:
        for ids in chunks(values):
            _add_members(session, state, org & column.in_(ids))


def claimers(session: Session, org_id: str, emails: set[str], external_ids: set[str]) -> set[str]:
    """Directory users who may want members with these e-mails or externalIds: the ones whose
    claim waited while another user held them."""
    found: set[str] = set()
    base = DirectoryUser.org_id == org_id
    for ids in chunks(external_ids):
        found |= set(
            session.scalars(
                select(DirectoryUser.id).where(base, DirectoryUser.external_id.in_(ids))
            )
        )
    for ids in chunks(emails, 50):
        found |= set(
            session.scalars(
                select(DirectoryUser.id).where(base, DirectoryUser.user_name_lower.in_(ids))
            )
        )
        quoted = [e.replace("\\", "\\\\").replace('"', '\\"') for e in ids]
        expression = " or ".join(f'emails.value eq "{e}"' for e in quoted)
        found |= set(
            session.scalars(
                select(DirectoryUser.id).where(base, compile_filter(expression, USER_TYPE))
            )
        )
    return found


# --- reconcile ----------------------------------------------------------------------------------


@dataclass
class DirectoryDelta:
    """What one directory change touched, in terms the engine can load."""

    user_ids: set[str] = field(default_factory=set)
    # Members whose directory user was deleted (their link is already gone).
    orphaned_member_ids: set[str] = field(default_factory=set)
    # Why, per orphaned member id, as the source told it (left the sync scope, deleted, ...).
    orphan_reasons: dict[str, str] = field(default_factory=dict)
    # Users that were below groups deleted in this change.
    users_below_deleted: set[str] = field(default_factory=set)
    # Directory groups the change wrote, deleted, or gave or took a parent (the groups below a
    # deleted group included). None: the change cannot say, so every group of the organization
    # is compared with what the last reconcile stored.
    group_ids: set[str] | None = field(default_factory=set)


def _current_digests(index: GroupIndex) -> dict[str, Digest]:
    return {gid: (index.digest(gid), index.target(gid)) for gid in index.groups}


def reconcile_full(
    session: Session,
    org: Organization,
    *,
    mapping: Mapping | None = None,
    orphan_reasons: dict[str, str] | None = None,
) -> Plan:
    """The whole organization: every directory user of every source against every member."""
    mapping = mapping if mapping is not None else org_mapping(session, org.id)
    settings = OrgSettings.of(org)
    index, stored = load_group_index(session, org.id, mapping)
    desired_groups = desire_groups(index)
    desired = desire_all_users(session, org.id, index)
    state = OrgState()
    load_group_layer(session, org.id, state)
    load_all_members(session, org.id, state)
    groups = diff_groups(desired_groups, state)
    members = diff_members(
        desired,
        state,
        desired_groups,
        groups,
        deprovision=settings.deprovision,
        orphan_reasons=orphan_reasons,
    )
    plan = assemble(org.id, groups, members, state)
    current = _current_digests(index)
    plan.group_digests = {g: v for g, v in current.items() if stored.get(g) != v}
    plan.gone_group_ids = set(stored) - set(current)
    return plan


class _WholeGraph:
    """Every directory group and org group of the organization, each directory group compared
    with its stored digest: for a change that cannot name the groups it touched (an LDAP poll,
    which reads the whole directory anyway; a delete no hook saw; a change queued before
    revision 0007)."""

    def __init__(self, session: Session, org_id: str, mapping: Mapping) -> None:
        self.index, stored = load_group_index(session, org_id, mapping)
        current = _current_digests(self.index)
        self.changed = {g for g, v in current.items() if stored.get(g) != v}
        self.digests = {g: current[g] for g in self.changed}
        self.gone = {g: stored[g][1] for g in set(stored) - set(current)}
        self.desired = desire_groups(self.index)
        self.reach = None
        self.session, self.org_id = session, org_id

    def load_state(self, state: OrgState) -> None:
        load_group_layer(self.session, self.org_id, state)

    def cover(self, state: OrgState, desired: list[DesiredMember]) -> dict[str, DesiredGroup]:
        return self.desired


class _ReachedGraph:
    """Only what the change reaches: the groups it names, compared with their stored digests;
    the groups of the users it reconciles (those below a changed group among them); each with
    every group above it; and the org groups an `OrgGroupScope` finds for them."""

    def __init__(self, session: Session, org_id: str, mapping: Mapping, group_ids: set[str]):
        graph = GroupGraph(session, org_id, mapping)
        graph.reach(group_ids)
        # The groups below a changed one keep their digests (their own parents did not move);
        # their users are reconciled all the same (`users_below`).
        changed = graph.changed(group_ids)
        self.index = graph.index
        self.changed = changed
        self.digests = {g: graph.digest(g) for g in changed}
        deleted = set(group_ids) - set(graph.index.groups)
        self.gone = stored_targets(session, deleted)
        self.scope = OrgGroupScope(session, org_id, graph, changed, self.gone)
        self.reach = graph.reach
        self.session, self.org_id = session, org_id

    def load_state(self, state: OrgState) -> None:
        load_group_layer(self.session, self.org_id, state, whole=False)

    def cover(self, state: OrgState, desired: list[DesiredMember]) -> dict[str, DesiredGroup]:
        return self.scope.cover(state, desired)


def reconcile_delta(session: Session, org: Organization, delta: DirectoryDelta) -> Plan:
    """Only the users and members `delta` reaches, plus every user below a directory group whose
    meaning (org group, scope, role, nesting) changed since the last reconcile."""
    mapping = org_mapping(session, org.id)
    settings = OrgSettings.of(org)
    graph: _WholeGraph | _ReachedGraph = (
        _WholeGraph(session, org.id, mapping)
        if delta.group_ids is None
        else _ReachedGraph(session, org.id, mapping, delta.group_ids)
    )
    state = OrgState()
    graph.load_state(state)
    user_ids = set(delta.user_ids) | delta.users_below_deleted
    user_ids |= users_below(session, org.id, graph.changed)
    member_ids = set(delta.orphaned_member_ids)
    # A deleted group that no hook reported (a bulk delete): its org group's members.
    for target in {t.lower() for t in graph.gone.values() if t}:
        member_ids |= set(
            session.scalars(
                select(MemberGroup.member_id)
                .join(Group, Group.id == MemberGroup.group_id)
                .where(Group.org_id == org.id, Group.name_lower == target)
            )
        )
    orphans = set(delta.orphaned_member_ids)
    desired: list[DesiredMember] = []
    seen_users: set[str] = set()
    plan = Plan(org_id=org.id)
    for _ in range(MAX_ROUNDS):
        for ids in chunks(member_ids - set(state.members)):
            _add_members(session, state, (Member.org_id == org.id) & Member.id.in_(ids))
        user_ids |= {
            m.directory_user_id
            for m in state.members.values()
            if m.id in member_ids and m.directory_user_id
        }
        desired += desire_users(session, org.id, graph.index, user_ids - seen_users, graph.reach)
        seen_users |= user_ids
        load_members_for(session, org.id, state, desired, set())
        desired_groups = graph.cover(state, desired)
        groups = diff_groups(desired_groups, state)
        members = diff_members(
            desired,
            state,
            desired_groups,
            groups,
            deprovision=settings.deprovision,
            orphans_considered=orphans,
            orphan_reasons=delta.orphan_reasons,
        )
        plan = assemble(org.id, groups, members, state)
        # Who else this Plan reaches: members of groups it takes over, and users waiting for an
        # e-mail or externalId it frees.
        for change in plan.of_kind(AdoptGroup):
            member_ids |= set(
                session.scalars(
                    select(MemberGroup.member_id).where(
                        MemberGroup.group_id == change.group_id  # type: ignore[attr-defined]
                    )
                )
            )
        user_ids |= claimers(session, org.id, members.freed_emails, members.freed_external_ids)
        if user_ids <= seen_users and member_ids <= set(state.members):
            break
    plan.group_digests = graph.digests
    plan.gone_group_ids = set(graph.gone)
    return plan


def reconcile_users(session: Session, org: Organization, member_ids: Iterable[str]) -> Plan:
    """A Plan for a few members (used to re-check a held change before applying it)."""
    rows = session.execute(
        select(Member.id, Member.directory_user_id).where(
            Member.org_id == org.id, Member.id.in_(list(member_ids))
        )
    ).all()
    delta = DirectoryDelta(
        user_ids={u for _, u in rows if u},
        orphaned_member_ids={m for m, u in rows if not u},
    )
    return reconcile_delta(session, org, delta)

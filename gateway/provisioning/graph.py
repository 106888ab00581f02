"""The part of the group graph one directory change reaches, read as far as the change needs it.

Why: a write's cost must not grow with the organization's groups (issue #16). A user write needs
that user's groups and the groups above them; a group write needs the group, the groups above it
and, only when what the group means changed (its org group, scope, role or parents), the groups
below it. Both walks visit a group once (a cycle ends the walk): a recursive statement on
SQLite, one indexed statement per level on PostgreSQL (see `walk`).

On the org side, `OrgGroupScope` finds the org groups such a change can touch through the stored
digests (`directory_group_digests.target_lower`: which directory groups feed one org group) and
the indexed names and origins of the org groups, so the group diff sees the same rows and the same
desired groups for those keys as a diff of the whole organization would.

Does not: decide anything. The rules are mappings/ (`GroupIndex` over the groups read here), the
diff is gateway.provisioning.diff.
"""

from __future__ import annotations

from collections.abc import Iterable

from sqlalchemy import String, bindparam, func, literal, null, select, union_all
from sqlalchemy.orm import Session

from gateway.provisioning.diff import GroupRow, OrgState
from gateway.store.batches import chunks
from gateway.store.models import (
    Collection,
    DirectoryGroup,
    DirectoryGroupDigest,
    DirectoryGroupMember,
    Group,
    GroupCollectionAccess,
    ProvisionedGroup,
)
from mappings import DesiredGroup, DesiredMember, DirGroup, GroupIndex, Mapping
from mappings.rules import desired_groups_named

Digest = tuple[str, str | None]  # (digest, target) of a directory group


_TEXT, _NONE, _IDS = String(), null(), bindparam("ids", expanding=True)
# Groups by id with their stored digests: one statement.
_GROUPS_BY_ID = union_all(
    select(
        literal("group", _TEXT),
        DirectoryGroup.id,
        DirectoryGroup.source,
        DirectoryGroup.display_name,
        DirectoryGroup.external_id,
    ).where(DirectoryGroup.org_id == bindparam("org_id"), DirectoryGroup.id.in_(_IDS)),
    select(
        literal("digest", _TEXT),
        DirectoryGroupDigest.directory_group_id,
        DirectoryGroupDigest.digest,
        DirectoryGroupDigest.target,
        _NONE,
    ).where(DirectoryGroupDigest.directory_group_id.in_(_IDS)),
)


def _recursive(*, up: bool):  # type: ignore[no-untyped-def]
    """The groups `ids` and every group above (`up`) or below them, as one recursive statement;
    UNION, not UNION ALL, so a group is visited once and a cycle ends the walk."""
    edge = DirectoryGroupMember
    start = select(DirectoryGroup.id.label("id")).where(DirectoryGroup.id.in_(_IDS))
    found = start.cte("walk", recursive=True)
    step = (
        select(edge.group_id).join(found, edge.child_group_id == found.c.id)
        if up
        else select(edge.child_group_id)
        .join(found, edge.group_id == found.c.id)
        .where(edge.child_group_id.is_not(None))
    )
    found = found.union(step)
    return select(found.c.id)


_UP, _DOWN = _recursive(up=True), _recursive(up=False)


def walk(
    session: Session, group_ids: Iterable[str], *, up: bool
) -> tuple[set[str], list[tuple[str, str]]]:
    """These groups and every group above (`up`) or below them, with the (child, parent) edges
    between them; a group is visited once, so a cycle ends the walk.

    SQLite: one recursive statement, then the edges (a chain 300 deep is two statements, not
    300). PostgreSQL plans a recursive CTE's step once, and without fresh statistics as a hash
    join over every membership row of the database, so there: one indexed statement per level."""
    edge = DirectoryGroupMember
    seen = set(group_ids)
    edges: list[tuple[str, str]] = []

    def edges_of(part: list[str]):  # type: ignore[no-untyped-def]
        query = select(edge.child_group_id, edge.group_id)
        if up:
            return session.execute(query.where(edge.child_group_id.in_(part)))
        return session.execute(
            query.where(edge.group_id.in_(part), edge.child_group_id.is_not(None))
        )

    if session.get_bind().dialect.name != "postgresql":
        for part in chunks(seen):
            seen = seen | set(session.scalars(_UP if up else _DOWN, {"ids": part}))
        for part in chunks(seen):
            edges += [(child, parent) for child, parent in edges_of(part)]
        return seen, edges
    frontier = set(seen)
    while frontier:
        found: set[str] = set()
        for part in chunks(frontier):
            for child, parent in edges_of(part):
                edges.append((child, parent))
                found.add(parent if up else child)
        frontier = found - seen
        seen |= found
    return seen, edges


def groups_below(session: Session, org_id: str, group_ids: Iterable[str]) -> set[str]:
    """These groups and every group nested in them, however deep."""
    return walk(session, group_ids, up=False)[0]


class GroupGraph:
    """Directory groups as `mapping` sees them, each read with every group above it (so its
    digest and its users' effective groups are exact), and what the last reconcile stored."""

    def __init__(self, session: Session, org_id: str, mapping: Mapping) -> None:
        self.session = session
        self.org_id = org_id
        self.index = GroupIndex(mapping, ())
        self.stored: dict[str, Digest] = {}
        self._asked: set[str] = set()

    def reach(self, group_ids: Iterable[str]) -> None:
        todo = set(group_ids) - self._asked - set(self.index.groups)
        if not todo:
            return
        self._asked |= todo
        seen, edges = walk(self.session, todo, up=True)
        parents: dict[str, set[str]] = {}
        for child, parent in edges:
            parents.setdefault(child, set()).add(parent)
        found = []
        for ids in chunks(seen - set(self.index.groups)):
            for tag, a, b, c, d in self.session.execute(
                _GROUPS_BY_ID, {"org_id": self.org_id, "ids": ids}
            ):
                if tag == "group":
                    found.append((a, b, c, d))
                else:
                    self.stored[a] = (b, c)
        self.index.add(
            DirGroup(
                id=i, source=s, name=n, external_id=x, parent_ids=frozenset(parents.get(i, ()))
            )
            for i, s, n, x in found
        )

    def digest(self, group_id: str) -> Digest:
        return self.index.digest(group_id), self.index.target(group_id)

    def changed(self, group_ids: Iterable[str]) -> set[str]:
        """Those of these (read) groups whose meaning differs from what the last reconcile
        stored, or that it never saw."""
        return {
            g for g in group_ids if g in self.index.groups and self.stored.get(g) != self.digest(g)
        }


def stored_targets(session: Session, group_ids: Iterable[str]) -> dict[str, str | None]:
    """What the last reconcile stored as these directory groups' org group names."""
    found: dict[str, str | None] = {}
    for ids in chunks(group_ids):
        for gid, target in session.execute(
            select(DirectoryGroupDigest.directory_group_id, DirectoryGroupDigest.target).where(
                DirectoryGroupDigest.directory_group_id.in_(ids)
            )
        ):
            found[gid] = target
    return found


class OrgGroupScope:
    """The org groups a change can touch, for the group diff: the desired group of every key the
    change reaches (what its changed and deleted directory groups fed and feed now, and every
    group of the users it reconciles) and, in the OrgState, every org group row that such a key
    names, that one of their origins feeds, or that a loaded member is in; then, until nothing
    new turns up, the keys those rows belong to. In a settled organization the diff of the whole
    organization changes nothing outside these keys, so it and this one agree."""

    def __init__(
        self,
        session: Session,
        org_id: str,
        graph: GroupGraph,
        changed: set[str],
        gone: dict[str, str | None],
    ) -> None:
        self.session = session
        self.org_id = org_id
        self.graph = graph
        self.changed = changed
        self.gone = gone
        self.desired: dict[str, DesiredGroup] = {}
        targets = [graph.index.target(g) for g in changed]
        targets += [graph.stored.get(g, ("", None))[1] for g in changed]
        targets += list(gone.values())
        self._base_keys = {t.lower() for t in targets if t}
        self._keys: set[str] = set()
        self._origins: set[str] = set()
        self._row_ids: set[str] = set()
        self._collection_keys: set[str] = set()
        self._postgresql = session.get_bind().dialect.name == "postgresql"

    def cover(self, state: OrgState, desired: Iterable[DesiredMember]) -> dict[str, DesiredGroup]:
        keys = self._base_keys | {name.lower() for d in desired for name in d.groups}
        row_ids = {gid for groups in state.memberships.values() for gid in groups}
        origins = set(self.changed) | set(self.gone)
        new_rows: list[str] = []
        while True:
            new_keys = keys - self._keys
            self._keys |= new_keys
            for key, group in self._desire(new_keys).items():
                self.desired[key] = group
                origins.add(group.origin)
            new_origins = origins - self._origins
            self._origins |= new_origins
            rows = self._load_rows(state, new_keys, new_origins, row_ids - self._row_ids)
            if not rows and not new_keys:
                break
            new_rows += [r.id for r in rows]
            keys |= {r.name.lower() for r in rows}
            keys |= self._target_keys({r.origin for r in rows if r.origin})
        self._load_access(state, new_rows)
        return self.desired

    def _desire(self, keys: set[str]) -> dict[str, DesiredGroup]:
        """Exactly the desired groups the whole organization's rules give for `keys`: each fed by
        the directory groups whose org group it is (stored for unchanged groups, read now for
        changed ones), named and identified by the smallest of them."""
        if not keys:
            return {}
        feeders: dict[str, list[tuple[str, str]]] = {}
        stale = self.changed | set(self.gone)
        digest = DirectoryGroupDigest
        # The smallest stored feeder of each key, compared byte by byte as Python compares ids
        # (PostgreSQL's default collation may not): one row per key however many groups merge
        # into it. Only when that one changed are all of the key's feeders read.
        group_id = digest.directory_group_id
        smallest = func.min(group_id.collate("C") if self._postgresql else group_id)
        again: set[str] = set()
        for part in chunks(keys):
            firsts = (
                select(smallest)
                .where(digest.org_id == self.org_id, digest.target_lower.in_(part))
                .group_by(digest.target_lower)
            )
            for found, target, key in self.session.execute(
                select(group_id, digest.target, digest.target_lower).where(group_id.in_(firsts))
            ):
                if found in stale:
                    again.add(key)
                else:
                    feeders.setdefault(key, []).append((found, target))
        for part in chunks(again):
            for found, target, key in self.session.execute(
                select(group_id, digest.target, digest.target_lower).where(
                    digest.org_id == self.org_id, digest.target_lower.in_(part)
                )
            ):
                if found not in stale:
                    feeders.setdefault(key, []).append((found, target))
        for gid in self.changed:
            target = self.graph.index.target(gid)
            if target is not None and target.lower() in keys:
                feeders.setdefault(target.lower(), []).append((gid, target))
        origins = {}
        for key, found in feeders.items():
            gid, target = min(found)
            origins[key] = (target, gid)
        return desired_groups_named(self.graph.index.mapping, origins)

    def _target_keys(self, group_ids: set[str]) -> set[str]:
        """The keys of the org groups these directory groups feed now."""
        out: set[str] = set()
        rest = set()
        for gid in group_ids:
            if gid in self.graph.index.groups:
                target = self.graph.index.target(gid)
            elif gid in self.gone:
                target = self.gone[gid]
            else:
                rest.add(gid)
                continue
            if target:
                out.add(target.lower())
        # Unread groups are unchanged: what the last reconcile stored is what they feed now.
        out |= {t.lower() for t in stored_targets(self.session, rest).values() if t}
        return out

    def _load_rows(
        self, state: OrgState, keys: set[str], origins: set[str], ids: set[str]
    ) -> list[GroupRow]:
        base = select(Group.id, Group.name, ProvisionedGroup.origin).outerjoin(
            ProvisionedGroup, ProvisionedGroup.group_id == Group.id
        )
        org = Group.org_id == self.org_id
        # The ids first, each lookup on its own index: SQLite, without ANALYZE, would otherwise
        # walk the organization's groups for an IN (subquery).
        for part in chunks(origins):
            ids = ids | set(
                self.session.scalars(
                    select(ProvisionedGroup.group_id).where(
                        ProvisionedGroup.org_id == self.org_id, ProvisionedGroup.origin.in_(part)
                    )
                )
            )
        ids -= set(state.groups)
        conditions = [Group.name_lower.in_(part) for part in chunks(keys)]
        conditions += [Group.id.in_(part) for part in chunks(ids)]
        found = []
        for condition in conditions:
            for gid, name, origin in self.session.execute(base.where(org, condition)):
                if gid not in state.groups:
                    state.groups[gid] = row = GroupRow(gid, name, origin)
                    found.append(row)
        self._row_ids |= ids | {r.id for r in found}
        return found

    def _load_access(self, state: OrgState, group_ids: list[str]) -> None:
        """Access of the newly read org groups, and the collections it and the desired groups
        name (a collection is created only when no collection of that name exists)."""
        collection_ids: set[str] = set()
        for part in chunks(group_ids):
            for gid, cid, permission in self.session.execute(
                select(
                    GroupCollectionAccess.group_id,
                    GroupCollectionAccess.collection_id,
                    GroupCollectionAccess.permission,
                ).where(GroupCollectionAccess.group_id.in_(part))
            ):
                state.access.setdefault(gid, {})[cid] = permission
                collection_ids.add(cid)
        names = {c.lower() for d in self.desired.values() for c in d.access} - self._collection_keys
        self._collection_keys |= names
        collection_ids -= set(state.collections)
        org = Collection.org_id == self.org_id
        conditions = [Collection.name_lower.in_(part) for part in chunks(names)]
        conditions += [Collection.id.in_(part) for part in chunks(collection_ids)]
        for condition in conditions:
            for cid, name in self.session.execute(
                select(Collection.id, Collection.name).where(org, condition)
            ):
                state.collections[cid] = name

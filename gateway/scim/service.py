"""SCIM operations on the directory layer of one organization (RFC 7644 §3.3-3.6).

Does: create, read, list/search, replace, patch and delete Users and Groups as the `scim` source,
enforce uniqueness and preconditions, build representations with `meta`, and hand every write to
the provisioning engine in the same transaction. Does not: parse HTTP (routes.py does) or commit
(the caller's unit of work does).
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import bindparam, delete, func, insert, or_, select, update
from sqlalchemy.dialects import postgresql
from sqlalchemy.engine import Connection
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from gateway.provisioning import DirectoryChange, directory_changed
from gateway.scim import resources
from gateway.scim.errors import (
    InvalidValue,
    NotFound,
    PreconditionFailed,
    Uniqueness,
)
from gateway.scim.filter import compile_filter, sort_column
from gateway.scim.limits import MAX_FILTER_LENGTH, MAX_START_INDEX
from gateway.scim.patch import apply_patch
from gateway.scim.schema import GROUP_TYPE, USER_TYPE, ResourceType
from gateway.store.batches import chunks
from gateway.store.models import (
    DirectoryGroup,
    DirectoryGroupMember,
    DirectoryUser,
    new_id,
    utcnow,
)
from gateway.store.prebuilt import PrebuiltSelect

SOURCE = "scim"
LIST_SCHEMA = "urn:ietf:params:scim:api:messages:2.0:ListResponse"
# Ids per statement when a membership change names many: PostgreSQL takes at most 65,535 bound
# parameters in one statement and SQLite 32,766, and a removal binds each id twice.
ID_CHUNK = 5_000


def _groups_column(dialect: str):  # type: ignore[no-untyped-def]
    """A user's groups as one JSON array of [id, displayName] pairs, in the same statement as
    the user (a correlated subquery: one round trip per read instead of two)."""
    if dialect == "postgresql":
        pairs = func.json_agg(func.json_build_array(DirectoryGroup.id, DirectoryGroup.display_name))
    else:
        pairs = func.json_group_array(
            func.json_array(DirectoryGroup.id, DirectoryGroup.display_name)
        )
    return (
        select(pairs)
        .select_from(DirectoryGroupMember)
        .join(DirectoryGroup, DirectoryGroup.id == DirectoryGroupMember.group_id)
        .where(DirectoryGroupMember.user_id == DirectoryUser.id)
        .scalar_subquery()
        .label("groups")
    )


def _read_columns(model, groups: str | None = None):  # type: ignore[no-untyped-def]
    """What a read answers with, as plain rows (no ORM objects to build for a GET); with
    `groups` (a dialect name), a user's groups too."""
    columns = [model.id, model.resource, model.created_at, model.last_modified, model.version]
    if groups and model is DirectoryUser:
        columns.append(_groups_column(groups))
    return select(*columns)


_USER_INSERT = insert(DirectoryUser.__table__)
_USER_INSERT_PG = (
    postgresql.insert(DirectoryUser.__table__)
    .on_conflict_do_nothing()
    .returning(DirectoryUser.__table__.c.id)
)
_USER_INSERT_COLUMNS = list(DirectoryUser.__table__.columns)

_USER_GROUPS = (
    select(DirectoryGroupMember.user_id, DirectoryGroup.id, DirectoryGroup.display_name)
    .join(DirectoryGroup, DirectoryGroup.id == DirectoryGroupMember.group_id)
    .where(DirectoryGroupMember.user_id.in_(bindparam("user_ids", expanding=True)))
    .order_by(DirectoryGroup.display_name_lower)
)

# `userName eq "..."`: the lookup every IdP makes before it creates a user (and the same on
# externalId, id, and a group's displayName). On these attributes the answer is one row of a
# unique index, so a prebuilt statement answers it (built once: building a statement costs more
# than running it), as it answers GET by id; any other filter goes through the full grammar
# (gateway.scim.filter), and tests check both give the same answers.
_EQ_LOOKUP = re.compile(r'^\s*([A-Za-z]+)\s+eq\s+("(?:[^"\\]|\\.)*")\s*$', re.IGNORECASE)
_LOOKUP_COLUMNS = {
    (DirectoryUser, "username"): (DirectoryUser.user_name_lower, True),
    (DirectoryUser, "externalid"): (DirectoryUser.external_id, False),
    (DirectoryUser, "id"): (DirectoryUser.id, False),
    (DirectoryGroup, "displayname"): (DirectoryGroup.display_name_lower, True),
    (DirectoryGroup, "externalid"): (DirectoryGroup.external_id, False),
    (DirectoryGroup, "id"): (DirectoryGroup.id, False),
}
_LOOKUPS = {
    (model, name, groups): (
        PrebuiltSelect(
            _read_columns(model, groups).where(
                model.org_id == bindparam("org_id"),
                model.source == SOURCE,
                column == bindparam("value"),
            )
        ),
        lowered,
    )
    for (model, name), (column, lowered) in _LOOKUP_COLUMNS.items()
    for groups in (None, "sqlite", "postgresql")
}


def iso(value: datetime) -> str:
    # Full precision: a client that filters `meta.lastModified gt <what it was shown>` must not
    # get the same resource back because the shown value was rounded down.
    return value.isoformat(timespec="microseconds").replace("+00:00", "Z")


def etag(row: DirectoryUser | DirectoryGroup) -> str:
    return f'W/"{row.version}"'


@dataclass(frozen=True)
class Query:
    filter: str | None = None
    sort_by: str | None = None
    sort_order: str = "ascending"
    start_index: int = 1
    count: int | None = None
    attributes: tuple[str, ...] = ()
    excluded: tuple[str, ...] = ()


@dataclass
class Outcome:
    row: DirectoryUser | DirectoryGroup
    document: dict[str, Any] | None  # None: answer 204

    @property
    def etag(self) -> str:
        return etag(self.row)


class ScimService:
    def __init__(
        self,
        session: Session | Connection,  # a Core connection serves the reads (Database.lookup)
        org_id: str,
        base_url: str,
        *,
        default_count: int = 100,
        max_results: int = 1000,
        queued: Callable[[], None] | None = None,
    ) -> None:
        """`queued`: queue the engine's runs (GATEWAY_SCIM_APPLY=queued) and call this after each
        write commits; None runs the engine in the write's transaction."""
        self.session = session
        self.queued = queued
        self.org_id = org_id
        self.base_url = base_url
        self.default_count = default_count
        self.max_results = max_results

    # --- reading ---------------------------------------------------------------------------

    def _sql(self) -> Connection:
        """Where reads run: the session's connection, or the connection a read was given."""
        return self.session.connection() if isinstance(self.session, Session) else self.session

    def _model(self, rtype: ResourceType) -> type[DirectoryUser] | type[DirectoryGroup]:
        return DirectoryUser if rtype is USER_TYPE else DirectoryGroup

    def _scope(self, rtype: ResourceType):  # type: ignore[no-untyped-def]
        model = self._model(rtype)
        return (model.org_id == self.org_id) & (model.source == SOURCE)

    def load(self, rtype: ResourceType, resource_id: str, *, for_update: bool = False):  # type: ignore[no-untyped-def]
        model = self._model(rtype)
        if not resources.storable(resource_id):
            raise NotFound(f"{rtype.name} not found")
        query = select(model).where(self._scope(rtype), model.id == resource_id)
        if for_update:
            query = query.with_for_update()
        row = self.session.scalar(query)
        if row is None:
            # The same answer for "never existed" and "belongs to another organization".
            raise NotFound(f"{rtype.name} {resource_id} not found")
        return row

    def _groups_in_row(self, rtype: ResourceType, query: Query) -> str | None:
        """The dialect to read a user's groups with in the same statement, or None when the
        answer leaves them out (or the resource is a group)."""
        if rtype is not USER_TYPE:
            return None
        if not resources.wants("groups", attributes=query.attributes, excluded=query.excluded):
            return None
        return self._sql().dialect.name

    def get(self, rtype: ResourceType, resource_id: str, query: Query = Query()) -> Outcome:
        if not resources.storable(resource_id):
            raise NotFound(f"{rtype.name} not found")
        statement, _ = _LOOKUPS[(self._model(rtype), "id", self._groups_in_row(rtype, query))]
        rows = statement.rows(self._sql(), {"org_id": self.org_id, "value": resource_id})
        if not rows:
            raise NotFound(f"{rtype.name} {resource_id} not found")
        return Outcome(rows[0], self.represent(rows, rtype, query)[0])

    def search(self, rtype: ResourceType, query: Query) -> dict[str, Any]:
        start = max(query.start_index, 1)
        count = self.default_count if query.count is None else max(query.count, 0)
        count = min(count, self.max_results)
        rows = self._unique_lookup(rtype, query) if start == 1 and count > 0 else None
        if rows is not None:
            total = len(rows)
        else:
            rows, total = self._page(rtype, query, start, count)
        return {
            "schemas": [LIST_SCHEMA],
            "totalResults": total,
            "startIndex": start,
            "itemsPerPage": len(rows),
            "Resources": self.represent(rows, rtype, query),
        }

    def _page(self, rtype: ResourceType, query: Query, start: int, count: int) -> tuple[list, int]:
        """One page of a general search, and the number of matches."""
        model = self._model(rtype)
        condition = self._scope(rtype)
        if query.filter:
            condition = condition & compile_filter(query.filter, rtype)
        order = []
        if query.sort_by:  # checked even when nothing matches: a bad sortBy is always a 400
            column = sort_column(query.sort_by, rtype)
            descending = query.sort_order.lower() == "descending"
            order.append(column.desc() if descending else column.asc())
        order += [model.created_at, model.id]
        rows: list = []
        # RFC 7644 §3.4.2.4: an index past the end answers an empty page with the total; one
        # past any organization's size is not sent to the database (OFFSET overflows at 2^63).
        if count > 0 and start <= MAX_START_INDEX:
            rows = list(
                self._sql().execute(
                    # A page reads its users' groups in one query for all of them afterwards
                    # (a correlated subquery per row costs more there).
                    _read_columns(model)
                    .where(condition)
                    .order_by(*order)
                    .offset(start - 1)
                    .limit(count)
                )
            )
            if start == 1 and len(rows) < count:
                return rows, len(rows)  # the first page holds everything: no COUNT needed
        total = self._sql().scalar(select(func.count()).select_from(model).where(condition))
        return rows, total or 0

    def _unique_lookup(self, rtype: ResourceType, query: Query) -> list | None:
        """The matching rows of an `attribute eq "value"` filter on a unique attribute, or None
        when the filter is anything else."""
        if len(query.filter or "") > MAX_FILTER_LENGTH:
            return None  # the full parser refuses it
        match = _EQ_LOOKUP.match(query.filter or "")
        if match is None or query.sort_by:
            return None
        key = (self._model(rtype), match[1].lower(), self._groups_in_row(rtype, query))
        found = _LOOKUPS.get(key)
        if found is None:
            return None
        try:
            value = json.loads(match[2], strict=False)
        except ValueError:
            return None  # the full parser says what is wrong with it
        if not resources.storable(value):
            return None  # the same: the lexer refuses NUL and unpaired surrogates
        statement, lowered = found
        params = {"org_id": self.org_id, "value": value.lower() if lowered else value}
        return statement.rows(self._sql(), params)

    def represent(
        self, rows: list, rtype: ResourceType, query: Query = Query(), *, new: bool = False
    ) -> list[dict]:
        """SCIM documents of `rows`; `new`: users created just now, in no group yet (a group
        names its members by the user's id, which did not exist before)."""
        attributes, excluded = list(query.attributes), list(query.excluded)
        related: dict[str, list[dict]] = {}
        name = "groups" if rtype is USER_TYPE else "members"
        fresh_users = new and rtype is USER_TYPE
        if (
            rows
            and not fresh_users
            and resources.wants(name, attributes=attributes, excluded=excluded)
        ):
            ids = [r.id for r in rows]
            if rtype is not USER_TYPE:
                related = self._group_members(ids)
            elif "groups" in getattr(rows[0], "_fields", ()):  # read with the user
                related = {r.id: self._group_refs(r.groups) for r in rows}
            else:
                related = self._user_groups(ids)
        docs = []
        for row in rows:
            doc = dict(row.resource)
            doc["id"] = row.id
            if related.get(row.id):
                doc[name] = related[row.id]
            doc["meta"] = {
                "resourceType": rtype.name,
                "created": iso(row.created_at),
                "lastModified": iso(row.last_modified),
                "location": f"{self.base_url}{rtype.endpoint}/{row.id}",
                "version": etag(row),
            }
            doc = resources.canonical_key_order(doc, rtype)
            docs.append(resources.project(doc, rtype, attributes=attributes, excluded=excluded))
        return docs

    def _group_ref(self, group_id: str, display: str | None) -> dict:
        return {
            "value": group_id,
            "$ref": f"{self.base_url}/Groups/{group_id}",
            "display": display,
            "type": "direct",
        }

    def _group_refs(self, pairs: Any) -> list[dict]:
        """A user's groups read with the user: [id, displayName] pairs, by displayName."""
        if isinstance(pairs, str):  # SQLite hands JSON over as text
            pairs = json.loads(pairs)
        ordered = sorted(pairs or (), key=lambda p: (p[1] or "").lower())
        return [self._group_ref(group_id, display) for group_id, display in ordered]

    def _user_groups(self, user_ids: list[str]) -> dict[str, list[dict]]:
        """The groups of many users in one query (a page), by displayName."""
        rows = self._sql().execute(_USER_GROUPS, {"user_ids": user_ids})
        out: dict[str, list[dict]] = {}
        for user_id, group_id, display in rows:
            out.setdefault(user_id, []).append(self._group_ref(group_id, display))
        return out

    def _group_members(self, group_ids: list[str]) -> dict[str, list[dict]]:
        out: dict[str, list[dict]] = {}
        kinds = (
            ("User", DirectoryUser.id, DirectoryUser.user_name, DirectoryGroupMember.user_id),
            (
                "Group",
                DirectoryGroup.id,
                DirectoryGroup.display_name,
                DirectoryGroupMember.child_group_id,
            ),
        )
        for kind, id_column, display_column, link in kinds:
            rows = self._sql().execute(
                select(DirectoryGroupMember.group_id, id_column, display_column)
                .join(id_column.table, id_column == link)
                .where(DirectoryGroupMember.group_id.in_(group_ids))
                .order_by(DirectoryGroupMember.id)
            )
            for group_id, member_id, display in rows:
                out.setdefault(group_id, []).append(
                    {
                        "value": member_id,
                        "$ref": f"{self.base_url}/{kind}s/{member_id}",
                        "display": display,
                        "type": kind,
                    }
                )
        return out

    # --- writing -----------------------------------------------------------------------------

    def create(self, rtype: ResourceType, body: Any, query: Query = Query()) -> Outcome:
        members = _members_of(body) if rtype is GROUP_TYPE else None
        resource = resources.normalize(body, rtype)
        resource.pop("members", None)
        model = self._model(rtype)
        now = utcnow()
        row = model(
            org_id=self.org_id, source=SOURCE, resource=resource, created_at=now, last_modified=now
        )
        self._set_columns(row, resource)
        if rtype is USER_TYPE:
            self._insert_user(row)
        else:
            self._insert_unique(rtype, row)
        change = self._change()
        if rtype is USER_TYPE:
            change.user_ids.add(row.id)
        else:
            change.group_ids.add(row.id)
            if members:
                self._add_members(row, members, change)
        directory_changed(self.session, change, queued=self.queued)
        return Outcome(row, self.represent([row], rtype, query, new=True)[0])

    def replace(
        self,
        rtype: ResourceType,
        resource_id: str,
        body: Any,
        *,
        if_match: str | None = None,
        query: Query = Query(),
    ) -> Outcome:
        row = self.load(rtype, resource_id, for_update=True)
        check_precondition(row, if_match)
        members = _members_of(body) if rtype is GROUP_TYPE else None
        resource = resources.normalize(body, rtype, resource_id=resource_id)
        resource.pop("members", None)
        change = self._change()
        changed = resource != row.resource
        if changed:
            self._update(rtype, row, resource)
        if rtype is GROUP_TYPE:
            # PUT replaces the member list (RFC 7644 §3.5.1); an absent list means none.
            changed |= self._replace_members(row, members or [], change)
            change.group_ids.add(row.id)
        else:
            change.user_ids.add(row.id)
        if changed:
            self._touch(row)
            self._flush_unique(rtype, row)
            directory_changed(self.session, change, queued=self.queued)
        return Outcome(row, self.represent([row], rtype, query)[0])

    def patch(
        self,
        rtype: ResourceType,
        resource_id: str,
        body: Any,
        *,
        if_match: str | None = None,
        query: Query = Query(),
        want_body: bool = True,
    ) -> Outcome:
        row = self.load(rtype, resource_id, for_update=True)
        check_precondition(row, if_match)
        result = apply_patch(dict(row.resource), body, rtype)
        resource = resources.normalize(
            {
                **result.resource,
                "schemas": result.resource.get("schemas") or list(rtype.schema_ids),
            },
            rtype,
            resource_id=resource_id,
        )
        resource.pop("members", None)
        change = self._change()
        changed = resource != row.resource
        if changed:
            self._update(rtype, row, resource)
        if rtype is GROUP_TYPE:
            changed |= self._apply_members_change(row, result.members, change)
            change.group_ids.add(row.id)
        else:
            change.user_ids.add(row.id)
        if changed:
            self._touch(row)
            self._flush_unique(rtype, row)
            directory_changed(self.session, change, queued=self.queued)
        document = self.represent([row], rtype, query)[0] if want_body else None
        return Outcome(row, document)

    def delete(self, rtype: ResourceType, resource_id: str, *, if_match: str | None = None) -> None:
        row = self.load(rtype, resource_id, for_update=True)
        check_precondition(row, if_match)
        change = self._change()
        # Groups that listed the resource change too: their version moves on.
        column = (
            DirectoryGroupMember.user_id
            if rtype is USER_TYPE
            else DirectoryGroupMember.child_group_id
        )
        parents = select(DirectoryGroupMember.group_id).where(column == row.id).scalar_subquery()
        parent_ids = set(
            self.session.scalars(select(DirectoryGroup.id).where(DirectoryGroup.id.in_(parents)))
        )
        if parent_ids:
            self.session.execute(
                update(DirectoryGroup)
                .where(DirectoryGroup.id.in_(parent_ids))
                .values(version=DirectoryGroup.version + 1, last_modified=utcnow())
            )
        self.session.delete(row)
        self.session.flush()
        change.group_ids |= parent_ids
        if rtype is USER_TYPE:
            change.deleted_user_ids.add(resource_id)
        else:
            change.deleted_group_ids.add(resource_id)
        directory_changed(self.session, change, queued=self.queued)

    # --- helpers ---------------------------------------------------------------------------------

    def _change(self) -> DirectoryChange:
        return DirectoryChange(org_id=self.org_id, source=SOURCE, actor="scim")

    def _update(
        self, rtype: ResourceType, row: DirectoryUser | DirectoryGroup, resource: dict
    ) -> None:
        """Give `row` its new representation, after checking it clashes with no other (the
        check must not flush the half-changed row: the unique index would speak first)."""
        with self.session.no_autoflush:
            row.resource = resource
            self._set_columns(row, resource)
            self._check_unique(rtype, row)

    @staticmethod
    def _set_columns(row: DirectoryUser | DirectoryGroup, resource: dict) -> None:
        row.external_id = resource.get("externalId")
        if isinstance(row, DirectoryUser):
            row.user_name = resource["userName"]
            row.user_name_lower = row.user_name.lower()
            row.display_name = resource.get("displayName")
            row.active = resource.get("active", True)
        else:
            row.display_name = resource["displayName"]
            row.display_name_lower = row.display_name.lower()

    @staticmethod
    def _touch(row: DirectoryUser | DirectoryGroup) -> None:
        row.version = (row.version or 0) + 1
        row.last_modified = utcnow()

    def _check_unique(self, rtype: ResourceType, row: DirectoryUser | DirectoryGroup) -> None:
        """A clear 409 before the insert; the unique indexes catch the concurrent case."""
        model = self._model(rtype)
        name_col, name_value, label = (
            (DirectoryUser.user_name_lower, row.user_name_lower, "userName")
            if isinstance(row, DirectoryUser)
            else (DirectoryGroup.display_name_lower, row.display_name_lower, "displayName")
        )
        conditions = [name_col == name_value]
        if row.external_id is not None:
            conditions.append(model.external_id == row.external_id)
        query = select(model.id, name_col, model.external_id).where(
            self._scope(rtype), or_(*conditions)
        )
        if row.id is not None:
            query = query.where(model.id != row.id)
        clash = self.session.execute(query.limit(1)).first()
        if clash is None:
            return
        if clash[1] == name_value:
            raise Uniqueness(
                f"{label} {getattr(row, 'user_name', None) or row.display_name!r} "
                "is already taken in this organization"
            )
        raise Uniqueness(f"externalId {row.external_id!r} is already taken in this organization")

    def _insert_user(self, row: DirectoryUser) -> None:
        """A new user as one INSERT statement, without the ORM's unit of work (POST /Users is
        the hottest write an IdP makes); `row` stays outside the session and carries the values
        the answer is made of. A clash is found by the unique indexes, as in `_insert_unique`:
        SQLite refuses only the statement; on PostgreSQL, where a refused statement would end
        the transaction, the INSERT skips a clashing row (ON CONFLICT DO NOTHING) and says so by
        returning nothing, which costs no savepoint round trips."""
        row.id, row.version = new_id(), 1
        values = {c.key: getattr(row, c.key) for c in _USER_INSERT_COLUMNS}
        connection = self.session.connection()
        if connection.dialect.name == "postgresql":
            clash = connection.execute(_USER_INSERT_PG, values).first() is None
        else:
            try:
                connection.execute(_USER_INSERT, values)
                clash = False
            except IntegrityError:
                clash = True
        if clash:
            self._check_unique(USER_TYPE, row)
            raise Uniqueness("userName or externalId is already taken in this organization")

    def _insert_unique(self, rtype: ResourceType, row: DirectoryUser | DirectoryGroup) -> None:
        """Insert a new resource and let the unique indexes find a clash (no SELECT ahead of
        every insert); when they do, the savepoint rolls back and `_check_unique` says which
        attribute clashed."""
        try:
            self._flush_unique(rtype, row, add=True)
        except Uniqueness:
            self._check_unique(rtype, row)
            self._flush_unique(rtype, row, add=True)  # the clash went away meanwhile: again

    def _flush_unique(self, rtype: ResourceType, row: Any, *, add: bool = False) -> None:
        try:
            with self.session.begin_nested():
                if add:
                    self.session.add(row)
                self.session.flush()
        except IntegrityError:
            label = "userName" if rtype is USER_TYPE else "displayName"
            raise Uniqueness(
                f"{label} or externalId is already taken in this organization"
            ) from None

    # --- group members: one row per member, so one change writes O(1) rows -------------------

    def _resolve_members(self, entries: Iterable[dict]) -> tuple[set[str], set[str]]:
        """Split member ids into (user ids, group ids) of this organization; unknown -> 400."""
        wanted = {str(e["value"]) for e in entries if e.get("value") not in (None, "")}
        if not wanted:
            return set(), set()
        # An id no database can hold names no resource (and PostgreSQL would refuse the query).
        candidates = {v for v in wanted if resources.storable(v)}
        users: set[str] = set()
        for chunk in chunks(candidates, ID_CHUNK):
            users.update(
                self.session.scalars(
                    select(DirectoryUser.id).where(
                        self._scope(USER_TYPE), DirectoryUser.id.in_(chunk)
                    )
                )
            )
        groups: set[str] = set()
        for chunk in chunks(candidates - users, ID_CHUNK):
            groups.update(
                self.session.scalars(
                    select(DirectoryGroup.id).where(
                        self._scope(GROUP_TYPE), DirectoryGroup.id.in_(chunk)
                    )
                )
            )
        unknown = wanted - users - groups
        if unknown:
            raise InvalidValue(
                "members must be Users or Groups of this organization; unknown: "
                + ", ".join(repr(v)[:40] for v in sorted(unknown)[:5])
            )
        return users, groups

    def _add_members(
        self, group: DirectoryGroup, entries: list[dict], change: DirectoryChange
    ) -> bool:
        users, groups = self._resolve_members(entries)
        if group.id in groups:
            raise InvalidValue("a group cannot be a member of itself")
        if not users and not groups:
            return False
        present: set[str] = set()
        for chunk in chunks(users | groups, ID_CHUNK):
            # Ids are unique across users and groups (new_id), so one list serves both columns.
            present.update(
                self.session.scalars(
                    select(
                        func.coalesce(
                            DirectoryGroupMember.user_id, DirectoryGroupMember.child_group_id
                        )
                    ).where(
                        DirectoryGroupMember.group_id == group.id,
                        or_(
                            DirectoryGroupMember.user_id.in_(chunk),
                            DirectoryGroupMember.child_group_id.in_(chunk),
                        ),
                    )
                )
            )
        new_users, new_groups = users - present, groups - present
        for user_id in sorted(new_users):
            self.session.add(DirectoryGroupMember(group_id=group.id, user_id=user_id))
        for child_id in sorted(new_groups):
            self.session.add(DirectoryGroupMember(group_id=group.id, child_group_id=child_id))
        change.user_ids |= new_users
        change.group_ids |= new_groups
        return bool(new_users or new_groups)

    def _remove_members(
        self, group: DirectoryGroup, ids: set[str], change: DirectoryChange
    ) -> bool:
        if not ids:
            return False
        removed = []
        for chunk in chunks(ids, ID_CHUNK):
            removed += self.session.execute(
                delete(DirectoryGroupMember)
                .where(
                    DirectoryGroupMember.group_id == group.id,
                    or_(
                        DirectoryGroupMember.user_id.in_(chunk),
                        DirectoryGroupMember.child_group_id.in_(chunk),
                    ),
                )
                .returning(DirectoryGroupMember.user_id, DirectoryGroupMember.child_group_id)
            ).all()
        for user_id, child_id in removed:
            if user_id:
                change.user_ids.add(user_id)
            if child_id:
                change.group_ids.add(child_id)
        return bool(removed)

    def _current_member_ids(self, group: DirectoryGroup) -> set[str]:
        return set(
            self.session.scalars(
                select(
                    func.coalesce(DirectoryGroupMember.user_id, DirectoryGroupMember.child_group_id)
                ).where(DirectoryGroupMember.group_id == group.id)
            )
        )

    def _replace_members(
        self, group: DirectoryGroup, entries: list[dict], change: DirectoryChange
    ) -> bool:
        wanted = {str(e["value"]) for e in entries if e.get("value") not in (None, "")}
        current = self._current_member_ids(group)
        removed = self._remove_members(group, current - wanted, change)
        added = self._add_members(group, [{"value": v} for v in wanted - current], change)
        return removed or added

    def _apply_members_change(
        self, group: DirectoryGroup, members: Any, change: DirectoryChange
    ) -> bool:
        changed = False
        if members.remove_all:
            changed |= self._remove_members(group, self._current_member_ids(group), change)
        if members.replace is not None:
            changed |= self._replace_members(group, members.replace, change)
        changed |= self._remove_members(group, set(members.remove), change)
        changed |= self._add_members(group, members.add, change)
        return changed


def _members_of(body: Any) -> list[dict]:
    """The `members` of a Group body, checked for shape (normalize drops it from the resource)."""
    if not isinstance(body, dict):
        return []
    value = next((v for k, v in body.items() if k.lower() == "members"), None)
    if value in (None, ""):
        return []
    if not isinstance(value, list):
        raise InvalidValue('members must be a list of {"value": id} objects')
    out = []
    for i, item in enumerate(value):
        if isinstance(item, str):
            item = {"value": item}
        if not isinstance(item, dict) or not isinstance(item.get("value"), str | int):
            raise InvalidValue(f'members[{i}] must be an object with a "value" id')
        out.append({"value": str(item["value"]), "type": item.get("type")})
    return out


def check_precondition(row: DirectoryUser | DirectoryGroup, if_match: str | None) -> None:
    """RFC 7644 §3.14: If-Match with another version fails with 412 and changes nothing."""
    if not if_match:
        return
    tags = [t.strip() for t in if_match.split(",")]
    if "*" in tags:
        return
    current = etag(row)
    if not any(t == current or t == current.removeprefix("W/") for t in tags):
        raise PreconditionFailed(f"the resource has changed: its version is now {current}")

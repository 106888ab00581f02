"""Writing what an LDAP read found into the directory layer of one organization, as a diff.

Does: compare the records of a read with the rows of `source = "ldap:<name>"` and insert, update
and delete users, groups and memberships (a full read deletes whatever it did not find; a delta
read the departures its identity enumeration found, each user with the reason why); rows whose
content did not change are not touched, so a change that matters to nothing the engine uses (a
login bumping uSNChanged) produces an empty `DirectoryChange`. Returns the change and a readable
summary.
Does not: read LDAP, commit, or call the engine (sync.py does both in one transaction).
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass, field

from sqlalchemy import delete, insert, select, update
from sqlalchemy.orm import Session

from connectors.ldap.reader import GroupRecord, Memberships, UserRecord
from gateway.provisioning import DirectoryChange
from gateway.scim.schema import GROUP_SCHEMA
from gateway.store.models import (
    DirectoryGroup,
    DirectoryGroupMember,
    DirectoryUser,
    new_id,
    utcnow,
)

CHUNK = 500


@dataclass
class ReadResult:
    """What one run read. `complete`: a full read, so whatever is missing is gone; otherwise
    only the `departed_*` entries are (those the scope no longer holds)."""

    users: dict[str, UserRecord]
    groups: dict[str, GroupRecord] | None
    memberships: Memberships | None
    complete: bool
    warnings: list[str] = field(default_factory=list)
    departed_users: dict[str, str] = field(default_factory=dict)  # external id -> why
    departed_groups: set[str] = field(default_factory=set)

    def release(self) -> None:
        """Let go of the records once the directory layer holds them, so that the engine, which
        runs next in the same transaction, provisions a large first sync without them in memory
        (the counts are taken before)."""
        self.users = {}
        self.groups = {} if self.groups is not None else None
        self.memberships = None


@dataclass
class Summary:
    users_added: list[str] = field(default_factory=list)
    users_updated: list[tuple[str, list[str]]] = field(default_factory=list)
    users_removed: list[str] = field(default_factory=list)
    groups_added: list[str] = field(default_factory=list)
    groups_updated: list[tuple[str, list[str]]] = field(default_factory=list)
    groups_removed: list[str] = field(default_factory=list)
    members_added: dict[str, int] = field(default_factory=dict)
    members_removed: dict[str, int] = field(default_factory=dict)
    warnings: list[str] = field(default_factory=list)

    def counts(self) -> dict[str, int]:
        return {
            "users_added": len(self.users_added),
            "users_updated": len(self.users_updated),
            "users_removed": len(self.users_removed),
            "groups_added": len(self.groups_added),
            "groups_updated": len(self.groups_updated),
            "groups_removed": len(self.groups_removed),
            "memberships_added": sum(self.members_added.values()),
            "memberships_removed": sum(self.members_removed.values()),
        }

    def __bool__(self) -> bool:
        return any(self.counts().values())


def _chunks(items: list, size: int = CHUNK) -> Iterable[list]:
    for i in range(0, len(items), size):
        yield items[i : i + size]


def _removed(rows: dict, records: dict, complete: bool, departed: Iterable[str]) -> list[str]:
    """The stored external ids a read says are gone: after a full read, all it did not find;
    after a delta, the departures it found that it did not read again."""
    if complete:
        return [ext for ext in rows if ext not in records]
    return [ext for ext in rows if ext in departed and ext not in records]


def _changed_fields(old: dict, new: dict) -> list[str]:
    return sorted(k for k in set(old) | set(new) if old.get(k) != new.get(k))


class DirectoryWriter:
    def __init__(self, session: Session, org_id: str, source: str, actor: str) -> None:
        self.session = session
        self.org_id = org_id
        self.source = source
        self.change = DirectoryChange(org_id=org_id, source=source, actor=actor)
        self.summary = Summary()

    def write(self, read: ReadResult) -> tuple[DirectoryChange, Summary]:
        self.summary.warnings.extend(read.warnings)
        user_ids = self._write_users(read.users, read.complete, read.departed_users)
        group_ids = (
            self._write_groups(read.groups, read.complete, read.departed_groups)
            if read.groups is not None or read.departed_groups
            else None
        )
        if read.memberships is not None:
            if group_ids is None:
                group_ids = self._ids(DirectoryGroup)
            self._write_memberships(read.memberships, user_ids, group_ids)
        self.change.user_ids -= self.change.deleted_user_ids
        self.change.group_ids -= self.change.deleted_group_ids
        return self.change, self.summary

    # --- users --------------------------------------------------------------------------------

    def _scope(self, model: type[DirectoryUser] | type[DirectoryGroup]):  # type: ignore[no-untyped-def]
        return (model.org_id == self.org_id) & (model.source == self.source)

    def _owner(self) -> dict[str, str]:
        return {"org_id": self.org_id, "source": self.source}

    def _ids(self, model: type[DirectoryUser] | type[DirectoryGroup]) -> dict[str, str]:
        return dict(
            list(
                self.session.execute(select(model.external_id, model.id).where(self._scope(model)))
            )
        )

    def _write_users(
        self, records: dict[str, UserRecord], complete: bool, departed: dict[str, str]
    ) -> dict[str, str]:
        """Returns external id -> row id of every user row after the write."""
        rows = {
            ext: (row_id, name, resource)
            for row_id, ext, name, resource in self.session.execute(
                select(
                    DirectoryUser.id,
                    DirectoryUser.external_id,
                    DirectoryUser.user_name_lower,
                    DirectoryUser.resource,
                ).where(self._scope(DirectoryUser))
            )
        }
        removed = _removed(rows, records, complete, departed)
        records = self._unique_names(
            records,
            {ext: v[1] for ext, v in rows.items() if ext not in removed},
            "user",
            lambda r: r.user_name,
        )
        now = utcnow()
        if removed:
            ids = [rows[ext][0] for ext in removed]
            self.summary.users_removed = sorted(
                rows[ext][2].get("userName", ext) for ext in removed
            )
            self.change.deleted_user_ids |= set(ids)
            self.change.departure_reasons |= {
                rows[ext][0]: departed[ext] for ext in removed if ext in departed
            }
            self._parents_change(DirectoryGroupMember.user_id, ids)
            self._delete_rows(DirectoryUser, ids)
        updates, renames, inserts = [], [], []
        for ext, record in records.items():
            existing = rows.get(ext)
            if existing is None:
                inserts.append(
                    {**self._user_values(record, new_id(), now, version=1), **self._owner()}
                )
                self.summary.users_added.append(record.user_name)
                continue
            row_id, name_lower, resource = existing
            if resource == record.resource:
                continue
            values = self._user_values(record, row_id, now)
            if name_lower != record.user_name.lower():
                renames.append(row_id)
            updates.append(values)
            self.summary.users_updated.append(
                (record.user_name, _changed_fields(resource, record.resource))
            )
        self._apply(DirectoryUser, "user_name_lower", updates, renames, inserts)
        self.change.user_ids |= {v["id"] for v in updates} | {v["id"] for v in inserts}
        result = {ext: v[0] for ext, v in rows.items() if ext not in set(removed)}
        result.update({v["external_id"]: v["id"] for v in inserts})
        return result

    @staticmethod
    def _user_values(record: UserRecord, row_id: str, now, version: int | None = None) -> dict:  # type: ignore[no-untyped-def]
        values = {
            "id": row_id,
            "user_name": record.user_name,
            "user_name_lower": record.user_name.lower(),
            "external_id": record.external_id,
            "display_name": record.resource.get("displayName"),
            "active": record.active,
            "resource": record.resource,
            "last_modified": now,
        }
        if version is not None:
            values["version"] = version
        return values

    def _unique_names(
        self, records: dict, existing_names: dict[str, str], kind: str, name_of
    ) -> dict:  # type: ignore[no-untyped-def]
        """Two entries with one name (two users with one e-mail, two groups called Sales in two
        OUs) cannot both be kept: the one already stored keeps it, else the lowest id; the other
        is left out with a warning rather than failing the whole run."""
        holder = {name: ext for ext, name in existing_names.items()}
        wanted: dict[str, list[str]] = defaultdict(list)
        for ext, record in records.items():
            wanted[name_of(record).lower()].append(ext)
        kept = dict(records)
        for name, exts in wanted.items():
            current = holder.get(name)
            if current is not None and current not in records and current not in exts:
                # Held by a row this (partial) read did not cover: it keeps the name.
                losers = exts
            elif len(exts) > 1:
                winner = current if current in exts else min(exts)
                losers = [e for e in exts if e != winner]
            else:
                continue
            for ext in losers:
                kept.pop(ext, None)
                self.summary.warnings.append(
                    f"skipped {kind} {records[ext].dn}: its name {name_of(records[ext])!r} "
                    "is taken by another entry"
                )
        return kept

    def _apply(
        self, model, name_column: str, updates: list[dict], renames: list[str], inserts: list[dict]
    ) -> None:  # type: ignore[no-untyped-def]
        # A swap of names between two rows would trip the unique index half way: move the
        # renamed rows to a placeholder name first.
        for chunk in _chunks(renames):
            self.session.execute(
                update(model)
                .where(model.id.in_(chunk))
                .values({name_column: "#renaming#" + model.id}),
                execution_options={"synchronize_session": False},
            )
        for chunk in _chunks(updates):
            self._bulk_update(model, chunk)
        for chunk in _chunks(inserts, 1000):
            self.session.execute(insert(model.__table__), chunk)  # Core: no ORM bulk overhead

    def _bulk_update(self, model, chunk: list[dict]) -> None:  # type: ignore[no-untyped-def]
        # ORM bulk UPDATE by primary key; the version moves on by one.
        versions = dict(
            list(
                self.session.execute(
                    select(model.id, model.version).where(model.id.in_([v["id"] for v in chunk]))
                )
            )
        )
        self.session.execute(
            update(model), [{**v, "version": versions[v["id"]] + 1} for v in chunk]
        )

    def _delete_rows(self, model, ids: list[str]) -> None:  # type: ignore[no-untyped-def]
        """Deleted through the ORM, one by one: the engine's before_delete hooks note what each
        row reached (its member, the users below a group) before the database cascades."""
        for chunk in _chunks(ids):
            for row in self.session.scalars(select(model).where(model.id.in_(chunk))):
                self.session.delete(row)
        self.session.flush()

    def _parents_change(self, column, ids: list[str]) -> None:  # type: ignore[no-untyped-def]
        """Groups that listed a deleted user or group change too."""
        for chunk in _chunks(ids):
            parents = set(
                self.session.scalars(select(DirectoryGroupMember.group_id).where(column.in_(chunk)))
            )
            self.change.group_ids |= parents

    # --- groups -------------------------------------------------------------------------------

    def _write_groups(
        self, records: dict[str, GroupRecord] | None, complete: bool, departed: set[str]
    ) -> dict[str, str]:
        records = records if records is not None else {}  # a delta that read no group
        rows = {
            ext: (row_id, name_lower, resource)
            for row_id, ext, name_lower, resource in self.session.execute(
                select(
                    DirectoryGroup.id,
                    DirectoryGroup.external_id,
                    DirectoryGroup.display_name_lower,
                    DirectoryGroup.resource,
                ).where(self._scope(DirectoryGroup))
            )
        }
        removed = _removed(rows, records, complete, departed)
        records = self._unique_names(
            records,
            {ext: v[1] for ext, v in rows.items() if ext not in removed},
            "group",
            lambda r: r.name,
        )
        now = utcnow()
        if removed:
            ids = [rows[ext][0] for ext in removed]
            self.summary.groups_removed = sorted(
                rows[ext][2].get("displayName", ext) for ext in removed
            )
            self.change.deleted_group_ids |= set(ids)
            self._parents_change(DirectoryGroupMember.child_group_id, ids)
            self._delete_rows(DirectoryGroup, ids)
        updates, renames, inserts = [], [], []
        for ext, record in records.items():
            resource = {"schemas": [GROUP_SCHEMA], "displayName": record.name, "externalId": ext}
            values = {
                "display_name": record.name,
                "display_name_lower": record.name.lower(),
                "external_id": ext,
                "resource": resource,
                "last_modified": now,
            }
            existing = rows.get(ext)
            if existing is None:
                inserts.append({**values, "id": new_id(), "version": 1, **self._owner()})
                self.summary.groups_added.append(record.name)
                continue
            row_id, name_lower, old = existing
            if old == resource:
                continue
            if name_lower != record.name.lower():
                renames.append(row_id)
            updates.append({**values, "id": row_id})
            self.summary.groups_updated.append((record.name, _changed_fields(old, resource)))
        self._apply(DirectoryGroup, "display_name_lower", updates, renames, inserts)
        self.change.group_ids |= {v["id"] for v in updates} | {v["id"] for v in inserts}
        result = {ext: v[0] for ext, v in rows.items() if ext not in set(removed)}
        result.update({v["external_id"]: v["id"] for v in inserts})
        return result

    # --- memberships --------------------------------------------------------------------------

    def _write_memberships(
        self, memberships: Memberships, user_ids: dict[str, str], group_ids: dict[str, str]
    ) -> None:
        names = dict(
            list(
                self.session.execute(
                    select(DirectoryGroup.id, DirectoryGroup.display_name).where(
                        self._scope(DirectoryGroup)
                    )
                )
            )
        )
        current: dict[tuple[str, str, str], int] = {}
        in_scope = set(group_ids.values())
        for row_id, group_id, user_id, child_id in self.session.execute(
            select(
                DirectoryGroupMember.id,
                DirectoryGroupMember.group_id,
                DirectoryGroupMember.user_id,
                DirectoryGroupMember.child_group_id,
            )
            .join(DirectoryGroup, DirectoryGroup.id == DirectoryGroupMember.group_id)
            .where(self._scope(DirectoryGroup))
        ):
            if group_id in in_scope:
                current[(group_id, "u" if user_id else "g", user_id or child_id)] = row_id
        wanted: set[tuple[str, str, str]] = set()
        for ext, users in memberships.users.items():
            group_id = group_ids.get(ext)
            if group_id is None:
                continue  # left out (name taken) or not stored
            wanted |= {(group_id, "u", user_ids[u]) for u in users if u in user_ids}
            for child in memberships.children.get(ext, ()):
                child_id = group_ids.get(child)
                if child_id is not None and child_id != group_id:
                    wanted.add((group_id, "g", child_id))
        stale = [key for key in current if key not in wanted]
        fresh = [key for key in wanted if key not in current]
        for chunk in _chunks([current[k] for k in stale]):
            self.session.execute(
                delete(DirectoryGroupMember).where(DirectoryGroupMember.id.in_(chunk)),
                execution_options={"synchronize_session": False},
            )
        for chunk in _chunks(fresh, 1000):
            self.session.execute(
                insert(DirectoryGroupMember.__table__),
                [
                    {
                        "group_id": g,
                        "user_id": m if kind == "u" else None,
                        "child_group_id": m if kind == "g" else None,
                    }
                    for g, kind, m in chunk
                ],
            )
        touched: set[str] = set()
        for keys, tally in (
            (stale, self.summary.members_removed),
            (fresh, self.summary.members_added),
        ):
            for group_id, kind, member_id in keys:
                touched.add(group_id)
                name = names.get(group_id, group_id)
                tally[name] = tally.get(name, 0) + 1
                (self.change.user_ids if kind == "u" else self.change.group_ids).add(member_id)
        self.change.group_ids |= touched
        # A group whose members changed is a changed resource: its version moves on.
        for chunk in _chunks(sorted(touched)):
            self.session.execute(
                update(DirectoryGroup)
                .where(DirectoryGroup.id.in_(chunk))
                .values(version=DirectoryGroup.version + 1, last_modified=utcnow()),
                execution_options={"synchronize_session": False},
            )

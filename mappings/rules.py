"""The rule engine: what each directory user and group should become in the organization.

Nested directory groups are flattened: a user belongs to every group above its direct groups,
however deep, and a cycle (A in B in A) ends the walk instead of looping.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from collections.abc import Mapping as MappingType
from dataclasses import dataclass

from mappings.model import (
    PERMISSION_ORDER,
    ROLE_ORDER,
    DesiredGroup,
    DesiredMember,
    DirGroup,
    DirUser,
    GroupSelector,
    Mapping,
)

ENTERPRISE = "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User"
_EMAIL = re.compile(r"^[^@\s]+@[^@\s]+\.[^@\s]+$")


@dataclass(frozen=True)
class GroupFacts:
    """What one directory group contributes on its own (not counting the groups above it)."""

    target: str | None  # the org group it feeds, None if ignored
    in_scope: bool  # named by scope.groups
    role: str | None  # highest role its role rules give

    def digest(self, parents: Iterable[str]) -> str:
        """A fingerprint of what this group gives its users on its own and of where it hangs.
        The groups directly above it, not all of them: when a group further up changes, its own
        digest changes, and every user below it is reconciled from there; so a group moved
        under another parent changes one digest, not one per group below it."""
        return "|".join(
            [self.target or "", "1" if self.in_scope else "0", self.role or "", *sorted(parents)]
        )


class GroupIndex:
    """Directory groups of an organization with their rules resolved once: all of them, or the
    ones one change reaches with every group above them (`add` grows it the same way)."""

    def __init__(self, mapping: Mapping, groups: Iterable[DirGroup]) -> None:
        self.mapping = mapping
        self.groups: dict[str, DirGroup] = {g.id: g for g in groups}
        self.facts: dict[str, GroupFacts] = {g.id: _facts(mapping, g) for g in self.groups.values()}
        self._above: dict[str, frozenset[str]] = {}

    def add(self, groups: Iterable[DirGroup]) -> None:
        """More groups, with every group above them: what `above` answered stays true."""
        for group in groups:
            if group.id not in self.groups:
                self.groups[group.id] = group
                self.facts[group.id] = _facts(self.mapping, group)

    def above(self, group_id: str) -> frozenset[str]:
        """The group and every group it is nested in, directly or not (cycles are safe)."""
        cached = self._above.get(group_id)
        if cached is not None:
            return cached
        seen = {group_id}
        todo = [group_id]
        while todo:
            group = self.groups.get(todo.pop())
            if group is None:
                continue
            for parent in group.parent_ids:
                if parent not in seen:
                    seen.add(parent)
                    todo.append(parent)
        result = frozenset(g for g in seen if g in self.groups)
        self._above[group_id] = result
        return result

    def effective(self, direct_group_ids: Iterable[str]) -> set[str]:
        out: set[str] = set()
        for group_id in direct_group_ids:
            out |= self.above(group_id)
        return out

    def digest(self, group_id: str) -> str:
        return self.facts[group_id].digest(self.groups[group_id].parent_ids)

    def target(self, group_id: str) -> str | None:
        return self.facts[group_id].target


def _selected(selectors: Iterable[GroupSelector], group: DirGroup) -> bool:
    return any(s.matches(group) for s in selectors)


def _facts(mapping: Mapping, group: DirGroup) -> GroupFacts:
    target: str | None = group.name
    for rule in mapping.groups:
        if rule.select.matches(group):
            if rule.ignore:
                target = None
            elif rule.rename:
                target = rule.rename.replace("{name}", group.name).strip() or group.name
            break
    role = None
    for rule in mapping.roles:
        if _selected(rule.groups, group) and (
            role is None or ROLE_ORDER[rule.role] > ROLE_ORDER[role]
        ):
            role = rule.role
    return GroupFacts(target=target, in_scope=_selected(mapping.scope.groups, group), role=role)


# --- groups -----------------------------------------------------------------------------------


def desire_groups(index: GroupIndex) -> dict[str, DesiredGroup]:
    """Org groups keyed by lower-cased name: one per target name (merges collapse), each with the
    collection access the mapping grants it (the highest permission wins)."""
    origins: dict[str, tuple[str, str]] = {}  # lower name -> (spelling, smallest origin id)
    for group_id in sorted(index.groups):
        target = index.target(group_id)
        if target is None:
            continue
        key = target.lower()
        if key not in origins:
            origins[key] = (target, group_id)
    return desired_groups_named(index.mapping, origins)


def desired_groups_named(
    mapping: Mapping, origins: MappingType[str, tuple[str, str]]
) -> dict[str, DesiredGroup]:
    """The org groups for these keys (lower-cased name -> (spelling, smallest directory group id
    feeding it)), with the collection access the mapping grants each."""
    access: dict[str, dict[str, str]] = {}
    for rule in mapping.collections:
        grants = access.setdefault(rule.group.lower(), {})
        for collection in rule.collections:
            old = next((c for c in grants if c.lower() == collection.lower()), None)
            if old is None:
                grants[collection] = rule.permission
            elif PERMISSION_ORDER[rule.permission] > PERMISSION_ORDER[grants[old]]:
                grants[old] = rule.permission
    return {
        key: DesiredGroup(name=name, origin=origin, access=access.get(key, {}))
        for key, (name, origin) in origins.items()
    }


# --- users ------------------------------------------------------------------------------------


def desire_user(index: GroupIndex, user: DirUser, direct_group_ids: Iterable[str]) -> DesiredMember:
    mapping = index.mapping
    effective = index.effective(direct_group_ids)
    email = user_email(mapping, user)
    name = _user_name(mapping, user)
    external_id = _external_id(mapping, user)
    role: str | None = None
    if mapping.manages_roles:
        role = "user"
        for group_id in effective:
            candidate = index.facts[group_id].role
            if candidate and ROLE_ORDER[candidate] > ROLE_ORDER[role]:
                role = candidate
    groups = frozenset(t for g in effective if (t := index.target(g)) is not None)
    reason = None
    if not user.active:
        reason = "deactivated in the directory"
    elif mapping.scope.groups and not any(index.facts[g].in_scope for g in effective):
        reason = "not in a scope group"
    elif not user.in_filter:
        reason = "does not match the scope filter"
    problem = None
    if email is None:
        problem = f"{user.user_name}: no usable e-mail address (not provisioned)"
    return DesiredMember(
        directory_user_id=user.id,
        source=user.source,
        provision=reason is None and email is not None,
        email=email,
        name=name,
        external_id=external_id,
        role=role,
        groups=groups,
        reason=reason,
        problem=problem,
    )


def clean_email(value: object) -> str | None:
    if not isinstance(value, str):
        return None
    value = value.strip().lower()
    return value if _EMAIL.match(value) else None


def _emails(resource: MappingType) -> list[dict]:
    emails = resource.get("emails")
    return [e for e in emails if isinstance(e, dict)] if isinstance(emails, list) else []


def user_email(mapping: Mapping, user: DirUser) -> str | None:
    """The member's e-mail in the configured order over SCIM attributes; trimmed and
    lower-cased; None if nothing usable. (The mapping's `attributes.ldap` rules act earlier: an
    LDAP connector reads the e-mail with them, connectors.ldap.config.with_mapping_email.)"""
    rules = mapping.attributes
    resource = user.resource
    emails = _emails(resource)
    for source in rules.email:
        if source == "primary":
            candidates = [e.get("value") for e in emails if e.get("primary") is True]
        elif source == "userName":
            candidates = [user.user_name]
        elif source == "work":
            candidates = [
                e.get("value") for e in emails if str(e.get("type", "")).lower() == "work"
            ]
        else:  # first
            candidates = [e.get("value") for e in emails[:1]]
        for candidate in candidates:
            found = clean_email(candidate)
            if found:
                return found
    return None


def _text(value: object) -> str | None:
    return value.strip() or None if isinstance(value, str) else None


def _user_name(mapping: Mapping, user: DirUser) -> str | None:
    resource = user.resource
    name = resource.get("name") if isinstance(resource.get("name"), dict) else {}
    for source in mapping.attributes.name:
        if source == "displayName":
            found = _text(resource.get("displayName"))
        elif source == "formatted":
            found = _text(name.get("formatted"))
        elif source == "givenFamily":
            parts = [_text(name.get("givenName")), _text(name.get("familyName"))]
            found = " ".join(p for p in parts if p) or None
        else:
            found = _text(user.user_name)
        if found:
            return found
    return None


def _external_id(mapping: Mapping, user: DirUser) -> str | None:
    source = mapping.attributes.external_id
    if source == "externalId":
        return user.external_id
    if source == "userName":
        return user.user_name
    if source == "employeeNumber":
        ext = user.resource.get(ENTERPRISE)
        return _text(ext.get("employeeNumber")) if isinstance(ext, dict) else None
    return None


def desired_state(
    mapping: Mapping,
    users: Iterable[DirUser],
    groups: Iterable[DirGroup],
    user_groups: MappingType[str, Iterable[str]],
) -> tuple[list[DesiredMember], dict[str, DesiredGroup]]:
    """The whole desired organization from a directory snapshot (`user_groups`: user id -> ids
    of its direct groups)."""
    index = GroupIndex(mapping, groups)
    members = [desire_user(index, u, user_groups.get(u.id, ())) for u in users]
    members.sort(key=lambda m: m.directory_user_id)
    return members, desire_groups(index)

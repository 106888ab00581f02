"""The data the rule engine reads and returns: the mapping's rules, directory users and groups as
plain values, and the desired members and groups."""

from __future__ import annotations

import fnmatch
from dataclasses import dataclass, field
from typing import Any

ROLES = ("owner", "admin", "custom", "user")
# "The highest wins": a higher number beats a lower one.
ROLE_ORDER = {"user": 0, "custom": 1, "admin": 2, "owner": 3}
PERMISSIONS = ("view", "view-except-passwords", "edit", "edit-except-passwords", "manage")
PERMISSION_ORDER = {
    "view-except-passwords": 0,
    "view": 1,
    "edit-except-passwords": 2,
    "edit": 3,
    "manage": 4,
}
EMAIL_SOURCES = ("primary", "userName", "work", "first")
NAME_SOURCES = ("displayName", "formatted", "givenFamily", "userName")
EXTERNAL_ID_SOURCES = ("externalId", "userName", "employeeNumber", "none")
DEFAULT_EMAIL_ORDER = EMAIL_SOURCES
DEFAULT_NAME_ORDER = ("displayName", "formatted", "givenFamily")


@dataclass(frozen=True)
class GroupSelector:
    """Picks directory groups: by name (a case-insensitive glob such as `Sales*`) or externalId."""

    name: str | None = None
    external_id: str | None = None

    def matches(self, group: DirGroup) -> bool:
        if self.external_id is not None:
            return group.external_id == self.external_id
        return self.name is not None and fnmatch.fnmatchcase(group.name.lower(), self.name.lower())


@dataclass(frozen=True)
class Scope:
    groups: tuple[GroupSelector, ...] = ()
    filter: str | None = None


@dataclass(frozen=True)
class Attributes:
    email: tuple[str, ...] = DEFAULT_EMAIL_ORDER
    # For LDAP users: read with the entry by the connector (connectors.ldap.config).
    ldap_email_attribute: str | None = None
    ldap_email_prefix_attribute: str | None = None
    ldap_email_suffix: str | None = None
    name: tuple[str, ...] = DEFAULT_NAME_ORDER
    external_id: str = "externalId"


@dataclass(frozen=True)
class GroupRule:
    select: GroupSelector
    rename: str | None = None  # may use {name}; several groups renamed alike merge
    ignore: bool = False


@dataclass(frozen=True)
class CollectionRule:
    group: str  # org group name, after renames
    collections: tuple[str, ...]
    permission: str


@dataclass(frozen=True)
class RoleRule:
    groups: tuple[GroupSelector, ...]
    role: str


@dataclass(frozen=True)
class Mapping:
    scope: Scope = field(default_factory=Scope)
    attributes: Attributes = field(default_factory=Attributes)
    groups: tuple[GroupRule, ...] = ()
    collections: tuple[CollectionRule, ...] = ()
    roles: tuple[RoleRule, ...] = ()

    @property
    def manages_roles(self) -> bool:
        """Without role rules, roles are left to admins: new members get `user`, nothing more."""
        return bool(self.roles)


# --- directory data in ----------------------------------------------------------------------


@dataclass(frozen=True)
class DirUser:
    id: str
    source: str
    user_name: str
    external_id: str | None
    active: bool
    resource: dict[str, Any]
    # Whether the mapping's scope filter matched (evaluated by the caller, in SQL).
    in_filter: bool = True


@dataclass(frozen=True)
class DirGroup:
    id: str
    source: str
    name: str
    external_id: str | None = None
    # Ids of the directory groups this group is a direct member of.
    parent_ids: frozenset[str] = frozenset()


# --- desired state out ----------------------------------------------------------------------


@dataclass(frozen=True)
class DesiredMember:
    directory_user_id: str
    source: str
    provision: bool  # False: deactivated or out of scope, so deprovision any member
    email: str | None  # None: no usable e-mail (then `problem` says so)
    name: str | None
    external_id: str | None
    role: str | None  # None when the mapping leaves roles alone
    groups: frozenset[str]  # org group names (case as the mapping / directory spells them)
    reason: str | None = None  # why not provisioned
    problem: str | None = None


@dataclass(frozen=True)
class DesiredGroup:
    name: str
    # The smallest directory group id mapped here: follows a directory rename.
    origin: str
    # collection name -> permission
    access: dict[str, str] = field(default_factory=dict)

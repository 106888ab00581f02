"""Per-organization provisioning settings and the stored mapping file.

Settings live in `Organization.settings` (JSON): `deprovision` ("revoke" or "remove"),
`guard_count` (5), `guard_share` (0.10), `staged_mode` (false), and the guard on group removals
that take collection access away: per Plan `guard_membership_count` (10) and
`guard_membership_share` (0.10 of the memberships that grant access), per group
`guard_group_count` (3) and `guard_group_share` (0.5 of the group's members). The mapping
file's YAML text lives in the `org_mappings` table, one row per organization; no row means the
defaults.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass

from sqlalchemy import select
from sqlalchemy.orm import Session

from gateway.errors import InvalidInput, Misconfigured
from gateway.scim.errors import ScimError
from gateway.scim.filter import compile_filter
from gateway.scim.schema import USER_TYPE
from gateway.store.models import Organization, OrgMapping, utcnow
from mappings import Mapping, MappingError, load_mapping

DEPROVISION_MODES = ("revoke", "remove")
# The guard on group removals that take collection access away: setting -> its type.
MEMBERSHIP_GUARD: dict[str, type] = {
    "guard_membership_count": int,
    "guard_membership_share": float,
    "guard_group_count": int,
    "guard_group_share": float,
}


@dataclass(frozen=True)
class OrgSettings:
    deprovision: str = "revoke"
    guard_count: int = 5
    guard_share: float = 0.10
    staged_mode: bool = False
    guard_membership_count: int = 10
    guard_membership_share: float = 0.10
    guard_group_count: int = 3
    guard_group_share: float = 0.5

    @classmethod
    def of(cls, org: Organization) -> OrgSettings:
        raw = org.settings or {}
        defaults = cls()
        mode = raw.get("deprovision", defaults.deprovision)
        return cls(
            deprovision=mode if mode in DEPROVISION_MODES else defaults.deprovision,
            guard_count=int(raw.get("guard_count", defaults.guard_count)),
            guard_share=float(raw.get("guard_share", defaults.guard_share)),
            staged_mode=bool(raw.get("staged_mode", defaults.staged_mode)),
            **{
                key: kind(raw.get(key, getattr(defaults, key)))
                for key, kind in MEMBERSHIP_GUARD.items()
            },
        )


def update_settings(org: Organization, **values: object) -> OrgSettings:
    """Set some of the keys above (None leaves a key as it is), checking each value."""
    raw = dict(org.settings or {})
    for key, value in values.items():
        if value is None:
            continue
        if key == "deprovision" and value not in DEPROVISION_MODES:
            raise InvalidInput(f"deprovision must be revoke or remove, not {value!r}")
        counts = {"guard_count", "guard_membership_count", "guard_group_count"}
        shares = {"guard_share", "guard_membership_share", "guard_group_share"}
        if key in counts and (not isinstance(value, int) or value < 0):
            raise InvalidInput(f"{key} must be a whole number, 0 or more")
        if key in shares and (not isinstance(value, float | int) or not 0 <= value <= 1):
            raise InvalidInput(f"{key} must be a fraction between 0 and 1, e.g. 0.1")
        if key not in {"deprovision", "staged_mode", *counts, *shares}:
            raise InvalidInput(f"unknown provisioning setting {key!r}")
        raw[key] = value
    org.settings = raw  # a new dict, so the JSON column is written
    return OrgSettings.of(org)


def check_filter(expression: str) -> str | None:
    """The SCIM endpoint's own filter compiler judges the scope filter."""
    try:
        compile_filter(expression, USER_TYPE)
    except ScimError as exc:
        return exc.detail
    return None


def parse_mapping(text: str) -> Mapping:
    return load_mapping(text, check_filter=check_filter)


def mapping_text(session: Session, org_id: str) -> str | None:
    return session.scalar(select(OrgMapping.text).where(OrgMapping.org_id == org_id))


# Every write reads its organization's mapping; parsing the YAML cost more than the rest of a
# write with twenty rules. Keyed by the text, so a new mapping is parsed once, in every process.
_parsed_mapping = functools.lru_cache(maxsize=1024)(parse_mapping)


def org_mapping(session: Session, org_id: str) -> Mapping:
    return stored_mapping(mapping_text(session, org_id))


def stored_mapping(text: str | None) -> Mapping:
    """A stored mapping's text (None: no mapping) parsed, once per text in each process."""
    if text is None:
        return Mapping()
    try:
        return _parsed_mapping(text)
    except MappingError as exc:  # stored mappings were checked; a newer rule may reject one
        raise Misconfigured(
            f"the stored mapping no longer loads: {exc}; check it with `scimgate mapping check`"
        ) from None


def store_mapping(session: Session, org_id: str, text: str, actor: str) -> None:
    row = session.get(OrgMapping, org_id)
    if row is None:
        session.add(OrgMapping(org_id=org_id, text=text, updated_by=actor, updated_at=utcnow()))
    else:
        row.text, row.updated_by, row.updated_at = text, actor, utcnow()

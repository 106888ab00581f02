"""Per-organization lifecycle settings, kept in `Organization.settings` (JSON) beside the
provisioning ones (`staged_mode` among them, see gateway.provisioning.settings):

- `invite_resends` (2): automatic re-sends of an expired invitation before it shows as expired.
- `auto_confirm` ([]): rules, each `{"name", "source", "email_domain", "group"}` with at least one
  condition; a member who accepts is confirmed at once when every condition of one rule holds.
  `source` is `scim`, `ldap:<connector>` or `ldap:*`; `email_domain` the part after @; `group` the
  display name of a directory group the member's directory user is in (directly).

Does: read, check and change these keys; match a member against the rules. Does not: confirm
(gateway.lifecycle.members does, recording the rule).
"""

from __future__ import annotations

import re
from dataclasses import asdict, dataclass, field

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from gateway.errors import Conflict, InvalidInput, NotFound
from gateway.events import record_event
from gateway.store.models import (
    DirectoryGroup,
    DirectoryGroupMember,
    Member,
    Organization,
)

DEFAULT_INVITE_RESENDS = 2
_RULE_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$")


@dataclass(frozen=True)
class AutoConfirmRule:
    name: str
    source: str | None = None
    email_domain: str | None = None
    group: str | None = None

    def conditions(self) -> dict[str, str]:
        return {k: v for k, v in asdict(self).items() if k != "name" and v}

    def describe(self) -> str:
        return f"{self.name} (" + ", ".join(f"{k}={v}" for k, v in self.conditions().items()) + ")"


@dataclass(frozen=True)
class LifecycleSettings:
    invite_resends: int = DEFAULT_INVITE_RESENDS
    auto_confirm: tuple[AutoConfirmRule, ...] = field(default_factory=tuple)

    @classmethod
    def of(cls, org: Organization) -> LifecycleSettings:
        raw = org.settings or {}
        rules = tuple(
            AutoConfirmRule(
                name=str(r.get("name")),
                source=r.get("source") or None,
                email_domain=r.get("email_domain") or None,
                group=r.get("group") or None,
            )
            for r in raw.get("auto_confirm") or ()
            if isinstance(r, dict) and r.get("name")
        )
        resends = raw.get("invite_resends", DEFAULT_INVITE_RESENDS)
        return cls(
            invite_resends=resends if isinstance(resends, int) and resends >= 0 else 2,
            auto_confirm=rules,
        )

    def to_json(self) -> dict:
        return {
            "invite_resends": self.invite_resends,
            "auto_confirm": [asdict(r) for r in self.auto_confirm],
        }


def _store(org: Organization, **values: object) -> None:
    raw = dict(org.settings or {})
    raw.update(values)
    org.settings = raw  # a new dict, so the JSON column is written


def _settings_event(session: Session, org: Organization, actor: str, **detail: object) -> None:
    record_event(
        session,
        org_id=org.id,
        actor=actor,
        type="lifecycle.settings_changed",
        target_type="organization",
        target_id=org.id,
        detail=detail,
    )


def set_invite_resends(session: Session, org: Organization, resends: int, *, actor: str) -> None:
    if not isinstance(resends, int) or not 0 <= resends <= 20:
        raise InvalidInput("invite_resends must be a whole number from 0 to 20")
    _store(org, invite_resends=resends)
    _settings_event(session, org, actor, invite_resends=resends)


def add_rule(
    session: Session,
    org: Organization,
    name: str,
    *,
    actor: str,
    source: str | None = None,
    email_domain: str | None = None,
    group: str | None = None,
) -> AutoConfirmRule:
    name = (name or "").strip()
    if not _RULE_NAME.match(name):
        raise InvalidInput(
            "a rule name is 1-64 letters, digits, '.', '_' or '-', starting with a letter or digit"
        )
    domain = (email_domain or "").strip().lstrip("@").lower() or None
    rule = AutoConfirmRule(
        name=name,
        source=(source or "").strip() or None,
        email_domain=domain,
        group=(group or "").strip() or None,
    )
    if not rule.conditions():
        raise InvalidInput("an auto-confirm rule needs a source, an e-mail domain or a group")
    if rule.source and not (rule.source == "scim" or rule.source.startswith("ldap:")):
        raise InvalidInput("source must be scim, ldap:<connector> or ldap:*")
    current = LifecycleSettings.of(org).auto_confirm
    if any(r.name == name for r in current):
        raise Conflict(f"{org.name} has an auto-confirm rule named {name!r} already")
    _store(org, auto_confirm=[asdict(r) for r in (*current, rule)])
    _settings_event(session, org, actor, auto_confirm_added=asdict(rule))
    return rule


def remove_rule(session: Session, org: Organization, name: str, *, actor: str) -> None:
    current = LifecycleSettings.of(org).auto_confirm
    if not any(r.name == name for r in current):
        raise NotFound(f"{org.name} has no auto-confirm rule named {name!r}")
    _store(org, auto_confirm=[asdict(r) for r in current if r.name != name])
    _settings_event(session, org, actor, auto_confirm_removed=name)


def matching_rule(session: Session, org: Organization, member: Member) -> AutoConfirmRule | None:
    """The first rule whose every condition holds for `member`, or None."""
    groups: set[str] | None = None
    for rule in LifecycleSettings.of(org).auto_confirm:
        if rule.source and not _source_matches(rule.source, member.source):
            continue
        if rule.email_domain and member.email_lower.rpartition("@")[2] != rule.email_domain:
            continue
        if rule.group:
            if groups is None:
                groups = _directory_groups(session, member)
            if rule.group.lower() not in groups:
                continue
        return rule
    return None


def _source_matches(pattern: str, source: str | None) -> bool:
    if not source:
        return False
    if pattern.endswith("*"):
        return source.startswith(pattern[:-1])
    return source == pattern


def _directory_groups(session: Session, member: Member) -> set[str]:
    if not member.directory_user_id:
        return set()
    return set(
        session.scalars(
            select(func.lower(DirectoryGroup.display_name))
            .join(DirectoryGroupMember, DirectoryGroupMember.group_id == DirectoryGroup.id)
            .where(DirectoryGroupMember.user_id == member.directory_user_id)
        )
    )

"""The one door from the sources into the engine: a source that changed the directory layer calls
`directory_changed` inside the same transaction. Inline, the engine runs there and then, so the
org layer never lags behind a commit; queued (SCIM with GATEWAY_SCIM_APPLY=queued), the change is
written down in that transaction and applied by gateway.provisioning.queue soon after."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from sqlalchemy import select
from sqlalchemy.orm import Session

from gateway.store.models import Organization
from gateway.store.seat_count import note_locked

if TYPE_CHECKING:
    from gateway.provisioning.apply import ApplyResult


# Why a directory user went, as a source tells it (the member's revoke or removal says so).
DELETED = "deleted from the directory"
LEFT_SCOPE = "left the sync scope"
GONE = "no longer in the sync scope (the directory did not say whether moved or deleted)"
NO_EMAIL = "no e-mail address in the directory"


@dataclass
class DirectoryChange:
    org_id: str
    source: str  # "scim" or "ldap:<connector>"
    actor: str  # who to name in events: scim, ldap:<connector>, admin:<id>
    user_ids: set[str] = field(default_factory=set)
    group_ids: set[str] = field(default_factory=set)
    # Users deleted from the directory layer; their rows are gone by the time the engine runs.
    deleted_user_ids: set[str] = field(default_factory=set)
    deleted_group_ids: set[str] = field(default_factory=set)
    # Deleted user row id -> why it went (DELETED, LEFT_SCOPE, GONE, NO_EMAIL); DELETED when
    # not said.
    departure_reasons: dict[str, str] = field(default_factory=dict)

    def __bool__(self) -> bool:
        return bool(
            self.user_ids or self.group_ids or self.deleted_user_ids or self.deleted_group_ids
        )


def directory_changed(
    session: Session, change: DirectoryChange, *, queued: Callable[[], None] | None = None
) -> ApplyResult | None:
    """Run the incremental reconcile for `change` in the caller's transaction and return what
    it applied and held; with `queued`, record it as a pending change instead and call `queued`
    once the transaction commits (it wakes whoever applies pending changes); None then."""
    if not change:
        return None
    if queued is not None:
        from gateway.provisioning.queue import queue_change

        queue_change(session, change, queued)
        return None
    from gateway.provisioning.engine import on_directory_change

    return on_directory_change(session, change, lock_org(session, change.org_id))


def lock_org(session: Session, org_id: str, *, skip_locked: bool = False) -> Organization | None:
    """Take the organization's reconcile lock for the rest of the transaction; every path that
    plans and applies changes to an organization's members and groups (a source's change, the
    queue, a new mapping, an approved hold, `plan --apply`) takes it before it reads what it
    plans from. Two at once would each plan from what the other has not committed yet: create
    the same org group twice, take the same last seat, fail on a unique index.

    On PostgreSQL a row lock on the organization. NO KEY UPDATE: rows being inserted hold KEY
    SHARE on the organization through their foreign keys and must not deadlock with it. With
    `skip_locked`, returns None instead of waiting when another transaction holds it. SQLite
    writers are already one at a time (BEGIN IMMEDIATE): nothing to take there.

    Returns the organization (None when there is none), read under the lock: what follows plans
    from it, and `session.get` finds it without another round trip while the caller holds it
    (the session keeps only weak references to unchanged rows)."""
    if session.get_bind().dialect.name != "postgresql":
        return session.get(Organization, org_id)
    statement = (
        select(Organization)
        .where(Organization.id == org_id)
        .with_for_update(key_share=True, skip_locked=skip_locked)
        .execution_options(populate_existing=True)
    )
    org = session.scalars(statement).first()
    if org is not None:
        note_locked(session, org)
    return org

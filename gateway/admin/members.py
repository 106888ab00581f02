"""Members of one organization as the console lists them, and the bulk actions on them.

Does: filter (status, role, source), search (e-mail or name), paginate; run one action (confirm,
resend invitation, invite a staged member, revoke, restore, remove) on many members in one
transaction, reporting which ones it skipped and why; the confirmation queue with fingerprint
phrases. Does not: define the transitions themselves (gateway.lifecycle does; every action here
is one call into it).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass, field

from sqlalchemy import func, or_, select
from sqlalchemy.orm import Session

from gateway import lifecycle
from gateway.errors import GatewayError, InvalidInput
from gateway.lifecycle.fingerprint import fingerprint_phrase
from gateway.store.batches import chunks
from gateway.store.models import Member, Organization

PAGE_SIZES = (25, 50, 100, 200)


@dataclass(frozen=True)
class MemberFilter:
    status: str | None = None
    role: str | None = None
    source: str | None = None  # "scim", "ldap:<name>", or "manual" for members without a source
    q: str | None = None
    page: int = 1
    per_page: int = 50


@dataclass(frozen=True)
class MemberPage:
    members: list[Member]
    total: int
    page: int
    per_page: int

    @property
    def pages(self) -> int:
        return max((self.total + self.per_page - 1) // self.per_page, 1)


def find_members(session: Session, org: Organization, f: MemberFilter) -> MemberPage:
    conditions = [Member.org_id == org.id]
    if f.status:
        conditions.append(Member.status == f.status)
    if f.role:
        conditions.append(Member.role == f.role)
    if f.source == "manual":
        conditions.append(Member.source.is_(None))
    elif f.source:
        conditions.append(Member.source == f.source)
    if f.q and f.q.strip():
        needle = "%" + f.q.strip().lower().replace("\\", "\\\\").replace("%", "\\%") + "%"
        conditions.append(
            or_(
                Member.email_lower.like(needle, escape="\\"),
                func.lower(Member.name).like(needle, escape="\\"),
            )
        )
    per_page = min(max(f.per_page, 1), max(PAGE_SIZES))
    page = max(f.page, 1)
    total = int(session.scalar(select(func.count()).select_from(Member).where(*conditions)) or 0)
    members = list(
        session.scalars(
            select(Member)
            .where(*conditions)
            .order_by(Member.email_lower, Member.id)
            .limit(per_page)
            .offset((page - 1) * per_page)
        )
    )
    return MemberPage(members, total, page, per_page)


def member_sources(session: Session, org: Organization) -> list[str]:
    sources = session.scalars(
        select(Member.source).where(Member.org_id == org.id).group_by(Member.source)
    )
    return sorted(s or "manual" for s in sources)


@dataclass
class ActionReport:
    action: str
    done: list[str] = field(default_factory=list)
    skipped: list[tuple[str, str]] = field(default_factory=list)

    def summary(self) -> str:
        text = f"{self.action}: {len(self.done)} done"
        if self.skipped:
            text += (
                f", {len(self.skipped)} skipped ("
                + "; ".join(f"{email}: {why}" for email, why in self.skipped[:5])
                + ("; ..." if len(self.skipped) > 5 else "")
                + ")"
            )
        return text


Action = Callable[[Session, Organization, Member, str, "lifecycle.Seats"], None]


def _revoke(session: Session, org: Organization, m: Member, actor: str, seats) -> None:  # type: ignore[no-untyped-def]
    lifecycle.revoke(session, m, actor, reason="revoked by an admin", seats=seats)


def _restore(session: Session, org: Organization, m: Member, actor: str, seats) -> None:  # type: ignore[no-untyped-def]
    lifecycle.restore(session, org, m, actor, seats=seats)


def _remove(session: Session, org: Organization, m: Member, actor: str, seats) -> None:  # type: ignore[no-untyped-def]
    lifecycle.remove(session, m, actor, reason="removed by an admin", seats=seats)


def _confirm(session: Session, org: Organization, m: Member, actor: str, seats) -> None:  # type: ignore[no-untyped-def]
    lifecycle.confirm(session, m, actor)


def _resend(session: Session, org: Organization, m: Member, actor: str, seats) -> None:  # type: ignore[no-untyped-def]
    lifecycle.resend_invitation(session, org, m, actor)


def _invite(session: Session, org: Organization, m: Member, actor: str, seats) -> None:  # type: ignore[no-untyped-def]
    if m.waiting_for_seat:
        raise InvalidInput("waits for a seat already; it is invited when one frees up")
    # Without a free seat the member waits for one (the list shows it), like a new member.
    lifecycle.invite(session, org, m, actor, seats=seats)


ACTIONS: dict[str, Action] = {
    "confirm": _confirm,
    "resend": _resend,
    "invite": _invite,
    "revoke": _revoke,
    "restore": _restore,
    "remove": _remove,
}


def selected_members(
    session: Session, org: Organization, member_ids: Iterable[str]
) -> list[Member]:
    """The members of `org` among `member_ids` (an id of another organization is not found)."""
    ids = list(dict.fromkeys(member_ids))
    if not ids:
        raise InvalidInput("select at least one member")
    found: list[Member] = []
    for part in chunks(ids):
        found.extend(
            session.scalars(select(Member).where(Member.org_id == org.id, Member.id.in_(part)))
        )
    return sorted(found, key=lambda m: (m.email_lower, m.id))


@dataclass(frozen=True)
class ActionPreview:
    """What a destructive action (or a confirmation without a key) would do, for the admin to
    confirm first: the members it changes, the ones it skips, and whether it needs asking."""

    action: str
    members: list[Member]
    skipped: list[Member]
    unchecked: list[Member]  # to confirm without a key recorded: no phrase to compare

    @property
    def needs_confirmation(self) -> bool:
        return self.action in DESTRUCTIVE or bool(self.unchecked)


DESTRUCTIVE = ("revoke", "remove")


def preview_action(
    session: Session, org: Organization, action: str, member_ids: Iterable[str]
) -> ActionPreview:
    members = selected_members(session, org, member_ids)
    if action == "revoke":
        return ActionPreview(
            action,
            [m for m in members if m.status != "revoked"],
            [m for m in members if m.status == "revoked"],
            [],
        )
    if action == "confirm":
        waiting = [m for m in members if m.status == "accepted"]
        return ActionPreview(
            action,
            waiting,
            [m for m in members if m.status != "accepted"],
            [m for m in waiting if not m.public_key],
        )
    return ActionPreview(action, members, [], [])


def act_on_members(
    session: Session, org: Organization, action: str, member_ids: Iterable[str], actor: str
) -> ActionReport:
    """Run `action` on each member; one whose status does not allow it is skipped, not fatal."""
    run = ACTIONS.get(action)
    if run is None:
        raise InvalidInput(f"action must be one of {', '.join(ACTIONS)}, not {action!r}")
    ids = list(dict.fromkeys(member_ids))
    members = selected_members(session, org, ids)
    report = ActionReport(action)
    found = {m.id for m in members}
    report.skipped.extend((i, "no such member in this organization") for i in ids if i not in found)
    seats = lifecycle.Seats.load(session, org)
    for member in members:
        email = member.email
        try:
            with session.begin_nested():
                run(session, org, member, actor, seats)
        except GatewayError as exc:
            report.skipped.append((email, str(exc)))
        else:
            report.done.append(email)
    return report


def confirmation_queue(session: Session, org: Organization) -> list[tuple[Member, str | None]]:
    """Members who accepted their invitation and wait for an admin to confirm them, each with
    the fingerprint phrase of the key they accepted with (None when no key was recorded)."""
    queue = session.scalars(
        select(Member)
        .where(Member.org_id == org.id, Member.status == "accepted")
        .order_by(Member.accepted_at, Member.email_lower)
    )
    return [(m, fingerprint_phrase(m.public_key)) for m in queue]

"""What a Plan amounts to, per organization: counts by category (invites, updates, revokes,
restores, group adds and removes, collection grants and revocations, held), then the changes
grouped by category, with the guard's reason for what it held.

Does: sort a Plan's changes into categories beside what the guard held (or would hold), and lay
that out for people (`render`: a table with one column per organization, then the details,
capped per category) and scripts (`PlanSummary.to_json`: everything, uncapped). Every command
that shows a Plan (`sync plan`, `sync run`, `scimgate plan`, `mapping set`) and the `sync.*`
events use it. Does not: compute or judge Plans (reconcile, guard), nor print.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from gateway.provisioning.plan import (
    AddMembership,
    AdoptGroup,
    Change,
    ChangeAccess,
    ChangeRole,
    CreateCollection,
    CreateGroup,
    DeleteGroup,
    GrantAccess,
    InviteMember,
    Plan,
    RemoveMember,
    RemoveMembership,
    RenameGroup,
    ResendInvitation,
    RestoreMember,
    RevokeAccess,
    RevokeMember,
    UpdateMember,
)
from gateway.tables import table_lines

# (JSON key, label, the change types counted under it), in the order the table shows them.
CATEGORIES: tuple[tuple[str, str, tuple[type[Change], ...]], ...] = (
    ("invites", "invites", (InviteMember,)),
    ("updates", "updates", (UpdateMember, ChangeRole, ResendInvitation)),
    ("revokes", "revokes", (RevokeMember, RemoveMember)),
    ("restores", "restores", (RestoreMember,)),
    ("group_adds", "group adds", (AddMembership,)),
    ("group_removes", "group removes", (RemoveMembership,)),
    ("collection_grants", "collection grants", (GrantAccess, ChangeAccess)),
    ("collection_revocations", "collection revocations", (RevokeAccess,)),
    (
        "groups_and_collections",
        "groups and collections",
        (CreateCollection, CreateGroup, RenameGroup, AdoptGroup, DeleteGroup),
    ),
)
HELD = "held"
KEYS = (*(key for key, _, _ in CATEGORIES), HELD)
_CATEGORY_OF = {t: key for key, _, types in CATEGORIES for t in types}
DEFAULT_LIMIT = 20  # details shown per category unless --limit / --all


@dataclass
class PlanSummary:
    """One organization's Plan: the changes applied (or to apply) by category, and those the
    guard held (or would hold) instead."""

    org_id: str
    org: str  # the name shown
    changes: dict[str, list[Change]]
    held: list[Change] = field(default_factory=list)
    hold_reason: str | None = None
    pending_holds: int = 0  # held by earlier runs, still waiting for a decision
    problems: list[str] = field(default_factory=list)
    skipped: list[tuple[Change, str]] = field(default_factory=list)

    def counts(self) -> dict[str, int]:
        return {**{k: len(self.changes.get(k, ())) for k, _, _ in CATEGORIES}, HELD: len(self.held)}

    def __bool__(self) -> bool:
        return bool(self.held) or any(self.changes.values())

    def to_json(self) -> dict[str, Any]:
        return {
            "org_id": self.org_id,
            "org": self.org,
            "counts": self.counts(),
            "changes": {
                key: [c.to_json() for c in self.changes.get(key, ())] for key, _, _ in CATEGORIES
            },
            "held": {
                "count": len(self.held),
                "reason": self.hold_reason,
                "changes": [c.to_json() for c in self.held],
            },
            "pending_holds": self.pending_holds,
            "problems": list(self.problems),
            "skipped": [{"change": c.to_json(), "reason": r} for c, r in self.skipped],
        }


def summarize(
    plan: Plan,
    org: str,
    *,
    held: Sequence[Change] = (),
    hold_reason: str | None = None,
    pending_holds: int = 0,
) -> PlanSummary:
    """`plan` split into what is (or would be) applied, by category, and `held`: the changes of
    it the guard holds (matched by value: a held change read back from its row is equal)."""
    held_set = set(held)
    changes: dict[str, list[Change]] = {key: [] for key, _, _ in CATEGORIES}
    for change in plan.changes:
        if change not in held_set:
            changes[_CATEGORY_OF[type(change)]].append(change)
    return PlanSummary(
        org_id=plan.org_id,
        org=org,
        changes=changes,
        held=list(held),
        hold_reason=hold_reason,
        pending_holds=pending_holds,
        problems=list(plan.problems),
        skipped=list(plan.skipped),
    )


def render(
    summaries: Sequence[PlanSummary], *, limit: int | None = DEFAULT_LIMIT, applied: bool
) -> list[str]:
    """The summary table (one column per organization), then each category's changes, at most
    `limit` of each (None: all). `applied`: say what happened, not what would."""
    lines: list[str] = []
    if not any(summaries):
        lines.append("No changes: the organization matches its directory and mapping.")
    else:
        lines += table_lines(
            ["Changes", *(s.org for s in summaries)],
            [
                [label, *(s.counts()[key] for s in summaries)]
                for key, label in (*((k, label) for k, label, _ in CATEGORIES), (HELD, HELD))
            ],
            right=range(1, len(summaries) + 1),
        )
    for s in summaries:
        lines += _details(s, limit, applied=applied, named=len(summaries) > 1)
    return lines


def _details(s: PlanSummary, limit: int | None, *, applied: bool, named: bool) -> list[str]:
    """Each category's changes under a title `Label (count):` (the held ones with the guard's
    reason after it), one alignment for all rows shown, as one table would have them."""
    sections: list[tuple[str, str, list[tuple[str, ...]]]] = [
        (label.capitalize(), "", [(c.kind, c.target(), c.detail()) for c in s.changes.get(key, ())])
        for key, label, _ in CATEGORIES
    ]
    held = "Held, not applied" if applied else "Held if applied (the guard)"
    sections += [
        (held, s.hold_reason or "", [(c.kind, c.target(), c.detail()) for c in s.held]),
        (
            "Skipped",
            "",
            [(c.kind, f"{c.target()} {c.detail()}".rstrip(), reason) for c, reason in s.skipped],
        ),
        ("Problems", "", [("problem", p, "") for p in s.problems]),
    ]
    shown = [
        (title, note, rows, rows if limit is None else rows[:limit])
        for title, note, rows in sections
    ]
    aligned = iter(table_lines(["", "", ""], [r for *_, part in shown for r in part])[1:])
    lines: list[str] = []
    for title, note, rows, part in shown:
        if not rows:
            continue
        where = f" in {s.org}" if named else ""
        lines.append(f"{title}{where} ({len(rows)}):{f' {note}' if note else ''}")
        lines += [f"  {next(aligned)}" for _ in part]
        if len(rows) > len(part):
            lines.append(f"  ... {len(rows) - len(part)} more (use --all)")
    return lines

"""The Plan: typed changes to the org layer, in one deterministic order, for people (a table) and
scripts (JSON). Groups and collections are named (new ones have no id yet); members by id, or by
e-mail when the Plan invites them."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field, fields
from typing import Any, ClassVar


@dataclass(frozen=True)
class Change:
    KIND: ClassVar[str] = ""
    # Apply order: groups and collections first, members next, access, then deprovisioning and
    # group deletions last (so a failure half way never leaves people with less than before).
    PHASE: ClassVar[int] = 0

    @property
    def kind(self) -> str:
        return self.KIND

    def sort_key(self) -> tuple:
        return (self.PHASE, self.target().lower(), self.detail().lower())

    def target(self) -> str:
        raise NotImplementedError

    def detail(self) -> str:
        return ""

    def to_json(self) -> dict[str, Any]:
        return {"kind": self.KIND, **asdict(self)}

    @property
    def member_key(self) -> tuple[str, ...] | None:
        """What a hold of this change is known by: (kind, member id[, group]); None for
        changes never held."""
        member_id = getattr(self, "member_id", None)
        return (self.KIND, member_id) if member_id else None


@dataclass(frozen=True)
class CreateCollection(Change):
    KIND: ClassVar[str] = "collection.create"
    PHASE: ClassVar[int] = 0
    name: str

    def target(self) -> str:
        return f"collection {self.name}"


@dataclass(frozen=True)
class RenameGroup(Change):
    KIND: ClassVar[str] = "group.rename"
    PHASE: ClassVar[int] = 1
    group_id: str
    old_name: str
    name: str

    def target(self) -> str:
        return f"group {self.old_name}"

    def detail(self) -> str:
        return f"-> {self.name}"


@dataclass(frozen=True)
class AdoptGroup(Change):
    """An org group made by hand whose name the mapping produces: provisioning takes it over."""

    KIND: ClassVar[str] = "group.adopt"
    PHASE: ClassVar[int] = 2
    group_id: str
    name: str
    origin: str

    def target(self) -> str:
        return f"group {self.name}"

    def detail(self) -> str:
        return "managed by provisioning from now on"


@dataclass(frozen=True)
class CreateGroup(Change):
    KIND: ClassVar[str] = "group.create"
    PHASE: ClassVar[int] = 2
    name: str
    origin: str

    def target(self) -> str:
        return f"group {self.name}"


@dataclass(frozen=True)
class UpdateMember(Change):
    KIND: ClassVar[str] = "member.update"
    PHASE: ClassVar[int] = 3
    member_id: str
    email: str
    # ((field, old, new), ...) for email, name, external_id, directory_user_id, source
    values: tuple[tuple[str, Any, Any], ...]

    def target(self) -> str:
        return f"member {self.email}"

    def detail(self) -> str:
        return ", ".join(f"{f}: {old!s} -> {new!s}" for f, old, new in self.values)

    def to_json(self) -> dict[str, Any]:
        return {
            "kind": self.KIND,
            "member_id": self.member_id,
            "email": self.email,
            "values": {f: {"old": old, "new": new} for f, old, new in self.values},
        }


RESTORE_REASON = "the directory lists this user again"


@dataclass(frozen=True)
class RestoreMember(Change):
    KIND: ClassVar[str] = "member.restore"
    PHASE: ClassVar[int] = 4
    member_id: str
    email: str
    reason: str = RESTORE_REASON

    def target(self) -> str:
        return f"member {self.email}"

    def detail(self) -> str:
        return f"{self.reason}: back to the status before the revoke"


MAIL_CHANGED = "the e-mail address changed in the directory"


@dataclass(frozen=True)
class _MemberBecause(Change):
    """A change to one member whose detail is why."""

    member_id: str
    email: str
    reason: str

    def target(self) -> str:
        return f"member {self.email}"

    def detail(self) -> str:
        return self.reason


@dataclass(frozen=True)
class ResendInvitation(_MemberBecause):
    """A fresh invitation to an invited member's new address; the old link stops working."""

    KIND: ClassVar[str] = "member.resend_invitation"
    PHASE: ClassVar[int] = 4  # after the UpdateMember that moved the address


@dataclass(frozen=True)
class InviteMember(Change):
    KIND: ClassVar[str] = "member.invite"
    PHASE: ClassVar[int] = 5
    email: str
    name: str | None
    external_id: str | None
    role: str
    directory_user_id: str
    source: str

    def target(self) -> str:
        return f"member {self.email}"

    def detail(self) -> str:
        return f"role {self.role}"


@dataclass(frozen=True)
class ChangeRole(Change):
    KIND: ClassVar[str] = "member.role"
    PHASE: ClassVar[int] = 6
    member_id: str
    email: str
    old: str
    new: str

    def target(self) -> str:
        return f"member {self.email}"

    def detail(self) -> str:
        return f"{self.old} -> {self.new}"


@dataclass(frozen=True)
class AddMembership(Change):
    KIND: ClassVar[str] = "group.add_member"
    PHASE: ClassVar[int] = 7
    member_id: str | None  # None: the member this Plan invites (by e-mail)
    email: str
    group: str

    def target(self) -> str:
        return f"group {self.group}"

    def detail(self) -> str:
        return f"+ {self.email}"

    @property
    def member_key(self) -> None:
        return None


@dataclass(frozen=True)
class GrantAccess(Change):
    KIND: ClassVar[str] = "access.grant"
    PHASE: ClassVar[int] = 8
    group: str
    collection: str
    permission: str

    def target(self) -> str:
        return f"group {self.group}"

    def detail(self) -> str:
        return f"{self.collection}: {self.permission}"


@dataclass(frozen=True)
class ChangeAccess(Change):
    KIND: ClassVar[str] = "access.change"
    PHASE: ClassVar[int] = 8
    group: str
    collection: str
    old: str
    new: str

    def target(self) -> str:
        return f"group {self.group}"

    def detail(self) -> str:
        return f"{self.collection}: {self.old} -> {self.new}"


@dataclass(frozen=True)
class RevokeAccess(Change):
    KIND: ClassVar[str] = "access.revoke"
    PHASE: ClassVar[int] = 9
    group: str
    collection: str
    permission: str

    def target(self) -> str:
        return f"group {self.group}"

    def detail(self) -> str:
        return f"{self.collection}: {self.permission} removed"


@dataclass(frozen=True)
class RemoveMembership(Change):
    KIND: ClassVar[str] = "group.remove_member"
    PHASE: ClassVar[int] = 9
    member_id: str
    email: str
    group: str

    def target(self) -> str:
        return f"group {self.group}"

    def detail(self) -> str:
        return f"- {self.email}"

    @property
    def member_key(self) -> tuple[str, ...] | None:
        # The guard holds removals that take collection access away, one per member and group.
        return (self.KIND, self.member_id, self.group.lower()) if self.member_id else None


@dataclass(frozen=True)
class RevokeMember(_MemberBecause):
    KIND: ClassVar[str] = "member.revoke"
    PHASE: ClassVar[int] = 10


@dataclass(frozen=True)
class RemoveMember(_MemberBecause):
    KIND: ClassVar[str] = "member.remove"
    PHASE: ClassVar[int] = 10


@dataclass(frozen=True)
class DeleteGroup(Change):
    KIND: ClassVar[str] = "group.delete"
    PHASE: ClassVar[int] = 11
    group_id: str
    name: str

    def target(self) -> str:
        return f"group {self.name}"

    @property
    def member_key(self) -> tuple[str, ...]:
        # The guard holds deletions of groups that grant collection access, one per group.
        return (self.KIND, self.group_id)


CHANGE_TYPES: dict[str, type[Change]] = {
    t.KIND: t
    for t in (
        CreateCollection,
        RenameGroup,
        AdoptGroup,
        CreateGroup,
        UpdateMember,
        RestoreMember,
        ResendInvitation,
        InviteMember,
        ChangeRole,
        AddMembership,
        GrantAccess,
        ChangeAccess,
        RevokeAccess,
        RemoveMembership,
        RevokeMember,
        RemoveMember,
        DeleteGroup,
    )
}
DEPROVISIONING = (RevokeMember, RemoveMember)
# What the guard may hold: deprovisionings, and group removals and deletions that take collection
# access away.
HOLDABLE = (*DEPROVISIONING, RemoveMembership, DeleteGroup)


def change_from_json(data: dict[str, Any]) -> Change:
    cls = CHANGE_TYPES[data["kind"]]
    if cls is UpdateMember:
        values = tuple((f, v["old"], v["new"]) for f, v in sorted(data["values"].items()))
        return UpdateMember(member_id=data["member_id"], email=data["email"], values=values)
    names = {f.name for f in fields(cls)}
    return cls(**{k: v for k, v in data.items() if k in names})


@dataclass
class Plan:
    org_id: str
    changes: list[Change] = field(default_factory=list)
    # Users the rules cannot provision as they stand (no e-mail, e-mail taken, ...).
    problems: list[str] = field(default_factory=list)
    # Changes left out on purpose: the last confirmed owner, or already held by the guard.
    skipped: list[tuple[Change, str]] = field(default_factory=list)
    # Bookkeeping written by apply beside the changes (not shown as changes).
    group_digests: dict[str, tuple[str, str | None]] = field(default_factory=dict)
    gone_group_ids: set[str] = field(default_factory=set)
    group_origins: dict[str, str] = field(default_factory=dict)  # org group id -> origin
    superseded_holds: set[int] = field(default_factory=set)
    released_drops: set[int] = field(default_factory=set)

    def __post_init__(self) -> None:
        self.sort()

    def sort(self) -> None:
        self.changes.sort(key=lambda c: c.sort_key())
        self.problems.sort()

    def __bool__(self) -> bool:
        return bool(self.changes)

    def __len__(self) -> int:
        return len(self.changes)

    def of_kind(self, *types: type[Change]) -> list[Change]:
        return [c for c in self.changes if isinstance(c, types)]

    @property
    def invitations(self) -> list[Change]:
        return self.of_kind(InviteMember)

    @property
    def deprovisionings(self) -> list[Change]:
        return self.of_kind(*DEPROVISIONING)

    def counts(self) -> dict[str, int]:
        out: dict[str, int] = {}
        for change in self.changes:
            out[change.kind] = out.get(change.kind, 0) + 1
        return out

    def to_json(self) -> dict[str, Any]:
        return {
            "org_id": self.org_id,
            "counts": self.counts(),
            "changes": [c.to_json() for c in self.changes],
            "problems": list(self.problems),
            "skipped": [{"change": c.to_json(), "reason": r} for c, r in self.skipped],
        }

    def rows(self) -> list[tuple[str, str, str]]:
        return [(c.kind, c.target(), c.detail()) for c in self.changes]

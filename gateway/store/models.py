"""SQLAlchemy models of both layers in design.md.

Directory layer (`DirectoryUser`, `DirectoryGroup`, `DirectoryGroupMember`): exactly what each
source said, so an IdP reads back what it wrote. Org layer (`Organization`, `Member`, `Group`,
`Collection`, access and membership rows): derived by the provisioning engine. Plus the operational
tables: events, outbox, sync runs, API tokens, console admins and their sessions.

Does not: hold protocol rules (SCIM) or business rules (provisioning); those live in their packages.
"""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    CheckConstraint,
    DateTime,
    ForeignKey,
    Index,
    Integer,
    MetaData,
    String,
    Text,
    false,
)
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column, relationship
from sqlalchemy.types import TypeDecorator

# Constraint names are stable across SQLite and PostgreSQL, so migrations can refer to them.
NAMING = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}

JsonDoc = JSON().with_variant(JSONB(), "postgresql")


class UtcDateTime(TypeDecorator):
    """Timezone-aware UTC datetimes on both databases (SQLite keeps no zone of its own)."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Any) -> datetime | None:
        if value is not None and value.tzinfo is None:
            raise ValueError("naive datetime given to a UTC column")
        return value.astimezone(UTC) if value is not None else None

    def process_result_value(self, value: datetime | None, dialect: Any) -> datetime | None:
        if value is not None and value.tzinfo is None:
            return value.replace(tzinfo=UTC)
        return value


def utcnow() -> datetime:
    return datetime.now(UTC)


def new_id() -> str:
    return str(uuid.uuid4())


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING)


# --- provider and client organizations -------------------------------------------------------


class Provider(Base):
    """The MSP that runs this gateway; its console users manage every client organization."""

    __tablename__ = "providers"
    id: Mapped[str] = mapped_column(String(36), primary_key=True, default=new_id)
    name: Mapped[str] = mapped_column(String(200))
    created_at: Mapped[datetime] = mapped_column(UtcDateTime, default=utcnow)


ORG_PLANS = ("teams", "enterprise")


class Organization(Base):
    __tablename__ = "organizations"
    __table_args__ = (
        CheckConstraint("plan in ('teams', 'enterprise')", name="plan"),
        CheckConstraint("seats >= 0", name="seats"),
        CheckConstraint("seat_limit is null or seat_limit >= seats", name="seat_limit"),
        Index("uq_organizations_name_lower", "name_lower", unique=True),
    )
    id: Mapped[str] = mapped_column(String(36), primary_key=True, default=new_id)
    provider_id: Mapped[str | None] = mapped_column(ForeignKey("providers.id", ondelete="SET NULL"))
    name: Mapped[str] = mapped_column(String(200))
    name_lower: Mapped[str] = mapped_column(String(200))
    plan: Mapped[str] = mapped_column(String(20), default="teams")
    # Seats the provider has assigned to this client; grows up to seat_limit when members arrive.
    seats: Mapped[int] = mapped_column(Integer, default=0)
    seat_limit: Mapped[int | None] = mapped_column(Integer)
    # Members in a seat status, kept by gateway.store.seat_count at every commit (read it with
    # seat_count.used_seats, which adds this transaction's own changes).
    seats_used: Mapped[int] = mapped_column(Integer, default=0, server_default="0")
    billing_email: Mapped[str | None] = mapped_column(String(320))
    owner_email: Mapped[str | None] = mapped_column(String(320))
    settings: Mapped[dict] = mapped_column(JsonDoc, default=dict)
    created_at: Mapped[datetime] = mapped_column(UtcDateTime, default=utcnow)


# --- directory layer: what the sources said ---------------------------------------------------


class DirectoryUser(Base):
    """A user as one source (SCIM, or one LDAP connector) described it. `resource` keeps the SCIM
    representation without id, meta, groups and password; the columns beside it are indexed copies
    of the attributes SCIM clients look up by."""

    __tablename__ = "directory_users"
    __table_args__ = (
        Index("uq_directory_users_user_name", "org_id", "source", "user_name_lower", unique=True),
        Index("uq_directory_users_external_id", "org_id", "source", "external_id", unique=True),
        Index("ix_directory_users_last_modified", "org_id", "source", "last_modified"),
        Index("ix_directory_users_created", "org_id", "source", "created_at", "id"),
    )
    id: Mapped[str] = mapped_column(String(36), primary_key=True, default=new_id)
    org_id: Mapped[str] = mapped_column(ForeignKey("organizations.id", ondelete="CASCADE"))
    # "scim" or "ldap:<connector name>"
    source: Mapped[str] = mapped_column(String(100))
    user_name: Mapped[str] = mapped_column(String(400))
    user_name_lower: Mapped[str] = mapped_column(String(400))
    external_id: Mapped[str | None] = mapped_column(String(400))
    display_name: Mapped[str | None] = mapped_column(String(400))
    active: Mapped[bool] = mapped_column(Boolean, default=True)
    resource: Mapped[dict] = mapped_column(JsonDoc, default=dict)
    version: Mapped[int] = mapped_column(Integer, default=1)
    created_at: Mapped[datetime] = mapped_column(UtcDateTime, default=utcnow)
    last_modified: Mapped[datetime] = mapped_column(UtcDateTime, default=utcnow)


class DirectoryGroup(Base):
    __tablename__ = "directory_groups"
    __table_args__ = (
        Index(
            "uq_directory_groups_display_name",
            "org_id",
            "source",
            "display_name_lower",
            unique=True,
        ),
        Index("uq_directory_groups_external_id", "org_id", "source", "external_id", unique=True),
        Index("ix_directory_groups_last_modified", "org_id", "source", "last_modified"),
        Index("ix_directory_groups_created", "org_id", "source", "created_at", "id"),
    )
    id: Mapped[str] = mapped_column(String(36), primary_key=True, default=new_id)
    org_id: Mapped[str] = mapped_column(ForeignKey("organizations.id", ondelete="CASCADE"))
    source: Mapped[str] = mapped_column(String(100))
    display_name: Mapped[str] = mapped_column(String(400))
    display_name_lower: Mapped[str] = mapped_column(String(400))
    external_id: Mapped[str | None] = mapped_column(String(400))
    resource: Mapped[dict] = mapped_column(JsonDoc, default=dict)
    version: Mapped[int] = mapped_column(Integer, default=1)
    created_at: Mapped[datetime] = mapped_column(UtcDateTime, default=utcnow)
    last_modified: Mapped[datetime] = mapped_column(UtcDateTime, default=utcnow)


class DirectoryGroupMember(Base):
    """One member of a directory group: a user or a nested group. One row per membership, so
    adding or removing one member of a 50,000-member group writes one row."""

    __tablename__ = "directory_group_members"
    __table_args__ = (
        CheckConstraint("(user_id is null) <> (child_group_id is null)", name="exactly_one_member"),
        Index("uq_directory_group_members_user", "group_id", "user_id", unique=True),
        Index("uq_directory_group_members_group", "group_id", "child_group_id", unique=True),
        Index("ix_directory_group_members_user_id", "user_id"),
        Index("ix_directory_group_members_child_group_id", "child_group_id"),
    )
    id: Mapped[int] = mapped_column(
        BigInteger().with_variant(Integer, "sqlite"), primary_key=True, autoincrement=True
    )
    group_id: Mapped[str] = mapped_column(ForeignKey("directory_groups.id", ondelete="CASCADE"))
    user_id: Mapped[str | None] = mapped_column(
        ForeignKey("directory_users.id", ondelete="CASCADE")
    )
    child_group_id: Mapped[str | None] = mapped_column(
        ForeignKey("directory_groups.id", ondelete="CASCADE")
    )


# --- org layer: derived by the provisioning engine --------------------------------------------

MEMBER_ROLES = ("owner", "admin", "user", "custom")
MEMBER_STATUSES = ("staged", "invited", "accepted", "confirmed", "revoked")
PERMISSIONS = ("view", "view-except-passwords", "edit", "edit-except-passwords", "manage")


class Member(Base):
    __tablename__ = "members"
    __table_args__ = (
        CheckConstraint("role in ('owner', 'admin', 'user', 'custom')", name="role"),
        CheckConstraint(
            "status in ('staged', 'invited', 'accepted', 'confirmed', 'revoked')", name="status"
        ),
        Index("uq_members_email", "org_id", "email_lower", unique=True),
        Index("uq_members_external_id", "org_id", "external_id", unique=True),
        Index("ix_members_status", "org_id", "status"),
        Index("ix_members_directory_user_id", "directory_user_id"),
        Index("ix_members_org_directory_user", "org_id", "directory_user_id"),
        Index("ix_members_role", "org_id", "role", "status"),
        Index("ix_members_waiting", "waiting_for_seat", "org_id"),
        Index("ix_members_invitation_expiry", "status", "invitation_expires_at"),
    )
    id: Mapped[str] = mapped_column(String(36), primary_key=True, default=new_id)
    org_id: Mapped[str] = mapped_column(ForeignKey("organizations.id", ondelete="CASCADE"))
    email: Mapped[str] = mapped_column(String(320))
    email_lower: Mapped[str] = mapped_column(String(320))
    name: Mapped[str | None] = mapped_column(String(400))
    external_id: Mapped[str | None] = mapped_column(String(400))
    role: Mapped[str] = mapped_column(String(20), default="user")
    status: Mapped[str] = mapped_column(String(20), default="staged")
    # The status a revoked member returns to when restored.
    status_before_revoke: Mapped[str | None] = mapped_column(String(20))
    directory_user_id: Mapped[str | None] = mapped_column(
        ForeignKey("directory_users.id", ondelete="SET NULL")
    )
    source: Mapped[str | None] = mapped_column(String(100))
    public_key: Mapped[str | None] = mapped_column(Text)
    waiting_for_seat: Mapped[bool] = mapped_column(Boolean, default=False)
    invited_at: Mapped[datetime | None] = mapped_column(UtcDateTime)
    accepted_at: Mapped[datetime | None] = mapped_column(UtcDateTime)
    confirmed_at: Mapped[datetime | None] = mapped_column(UtcDateTime)
    revoked_at: Mapped[datetime | None] = mapped_column(UtcDateTime)
    created_at: Mapped[datetime] = mapped_column(UtcDateTime, default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(UtcDateTime, default=utcnow)
    # Invitations (revision 0003). The nonce is in the signed link: a new invitation replaces it
    # and accepting clears it, so every link works once and only the latest one works.
    invitation_nonce: Mapped[str | None] = mapped_column(String(32))
    # Set when the mail is handed over, so a day of SMTP outage does not eat the link's lifetime.
    invitation_expires_at: Mapped[datetime | None] = mapped_column(UtcDateTime)
    invitation_resends: Mapped[int] = mapped_column(Integer, default=0)
    # The automatic re-sends are used up and the last link expired: an admin has to resend.
    invitation_expired: Mapped[bool] = mapped_column(Boolean, default=False)
    # admin:<id>, or rule:<name> for an automatic confirmation.
    confirmed_by: Mapped[str | None] = mapped_column(String(200))


class Group(Base):
    __tablename__ = "groups"
    __table_args__ = (
        Index("uq_groups_name", "org_id", "name_lower", unique=True),
        Index("uq_groups_external_id", "org_id", "external_id", unique=True),
    )
    id: Mapped[str] = mapped_column(String(36), primary_key=True, default=new_id)
    org_id: Mapped[str] = mapped_column(ForeignKey("organizations.id", ondelete="CASCADE"))
    name: Mapped[str] = mapped_column(String(400))
    name_lower: Mapped[str] = mapped_column(String(400))
    external_id: Mapped[str | None] = mapped_column(String(400))
    created_at: Mapped[datetime] = mapped_column(UtcDateTime, default=utcnow)


class MemberGroup(Base):
    __tablename__ = "member_groups"
    __table_args__ = (Index("ix_member_groups_group_id", "group_id"),)
    member_id: Mapped[str] = mapped_column(
        ForeignKey("members.id", ondelete="CASCADE"), primary_key=True
    )
    group_id: Mapped[str] = mapped_column(
        ForeignKey("groups.id", ondelete="CASCADE"), primary_key=True
    )


class Collection(Base):
    __tablename__ = "collections"
    __table_args__ = (Index("uq_collections_name", "org_id", "name_lower", unique=True),)
    id: Mapped[str] = mapped_column(String(36), primary_key=True, default=new_id)
    org_id: Mapped[str] = mapped_column(ForeignKey("organizations.id", ondelete="CASCADE"))
    name: Mapped[str] = mapped_column(String(400))
    name_lower: Mapped[str] = mapped_column(String(400))
    external_id: Mapped[str | None] = mapped_column(String(400))
    created_at: Mapped[datetime] = mapped_column(UtcDateTime, default=utcnow)


class GroupCollectionAccess(Base):
    __tablename__ = "group_collection_access"
    __table_args__ = (
        CheckConstraint(
            "permission in ('view', 'view-except-passwords', 'edit', 'edit-except-passwords',"
            " 'manage')",
            name="permission",
        ),
        Index("ix_group_collection_access_collection_id", "collection_id"),
    )
    group_id: Mapped[str] = mapped_column(
        ForeignKey("groups.id", ondelete="CASCADE"), primary_key=True
    )
    collection_id: Mapped[str] = mapped_column(
        ForeignKey("collections.id", ondelete="CASCADE"), primary_key=True
    )
    permission: Mapped[str] = mapped_column(String(30))


# --- operations ---------------------------------------------------------------------------------


class Event(Base):
    """The audit log: every change, who made it, when, to what."""

    __tablename__ = "events"
    __table_args__ = (
        Index("ix_events_org_at", "org_id", "at"),
        Index("ix_events_org_type", "org_id", "type"),
    )
    id: Mapped[int] = mapped_column(
        BigInteger().with_variant(Integer, "sqlite"), primary_key=True, autoincrement=True
    )
    org_id: Mapped[str | None] = mapped_column(ForeignKey("organizations.id", ondelete="CASCADE"))
    at: Mapped[datetime] = mapped_column(UtcDateTime, default=utcnow)
    # scim, ldap:<connector>, admin:<id>, system
    actor: Mapped[str] = mapped_column(String(200))
    type: Mapped[str] = mapped_column(String(100))
    target_type: Mapped[str | None] = mapped_column(String(50))
    target_id: Mapped[str | None] = mapped_column(String(64))
    detail: Mapped[dict] = mapped_column(JsonDoc, default=dict)


class OutboxMessage(Base):
    """A message to deliver (invitation e-mail, webhook), written in the same transaction as the
    change that caused it and delivered at least once by the outbox worker."""

    __tablename__ = "outbox"
    __table_args__ = (
        CheckConstraint("status in ('pending', 'sent', 'failed')", name="status"),
        Index("ix_outbox_due", "status", "next_attempt_at"),
    )
    id: Mapped[int] = mapped_column(
        BigInteger().with_variant(Integer, "sqlite"), primary_key=True, autoincrement=True
    )
    org_id: Mapped[str | None] = mapped_column(ForeignKey("organizations.id", ondelete="CASCADE"))
    kind: Mapped[str] = mapped_column(String(30))
    payload: Mapped[dict] = mapped_column(JsonDoc, default=dict)
    message_id: Mapped[str] = mapped_column(
        String(200), default=lambda: f"<{uuid.uuid4()}@scimgate>"
    )
    status: Mapped[str] = mapped_column(String(20), default="pending")
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    next_attempt_at: Mapped[datetime] = mapped_column(UtcDateTime, default=utcnow)
    claimed_until: Mapped[datetime | None] = mapped_column(UtcDateTime)
    last_error: Mapped[str | None] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(UtcDateTime, default=utcnow)
    sent_at: Mapped[datetime | None] = mapped_column(UtcDateTime)


class PendingChange(Base):
    """A SCIM write whose engine run is queued (`GATEWAY_SCIM_APPLY=queued`): what the
    incremental reconcile needs to find what the write reached, written in the same transaction
    as the directory rows and deleted in the transaction that applies it."""

    __tablename__ = "pending_changes"
    __table_args__ = (Index("ix_pending_changes_org", "org_id", "id"),)
    id: Mapped[int] = mapped_column(
        BigInteger().with_variant(Integer, "sqlite"), primary_key=True, autoincrement=True
    )
    org_id: Mapped[str] = mapped_column(ForeignKey("organizations.id", ondelete="CASCADE"))
    actor: Mapped[str] = mapped_column(String(200))
    user_ids: Mapped[list] = mapped_column(JsonDoc, default=list)
    orphaned_member_ids: Mapped[list] = mapped_column(JsonDoc, default=list)
    users_below_deleted: Mapped[list] = mapped_column(JsonDoc, default=list)
    # Directory groups the write touched, deleted or left without a parent; None: compare every
    # group of the organization (rows queued before revision 0007).
    group_ids: Mapped[list | None] = mapped_column(JsonDoc)
    created_at: Mapped[datetime] = mapped_column(UtcDateTime, default=utcnow)


class SyncRun(Base):
    __tablename__ = "sync_runs"
    __table_args__ = (
        CheckConstraint("status in ('running', 'succeeded', 'failed')", name="status"),
        Index("ix_sync_runs_org_started", "org_id", "connector", "started_at"),
    )
    id: Mapped[int] = mapped_column(
        BigInteger().with_variant(Integer, "sqlite"), primary_key=True, autoincrement=True
    )
    org_id: Mapped[str] = mapped_column(ForeignKey("organizations.id", ondelete="CASCADE"))
    connector: Mapped[str] = mapped_column(String(100))
    kind: Mapped[str] = mapped_column(String(20))  # full or delta
    status: Mapped[str] = mapped_column(String(20), default="running")
    started_at: Mapped[datetime] = mapped_column(UtcDateTime, default=utcnow)
    finished_at: Mapped[datetime | None] = mapped_column(UtcDateTime)
    counts: Mapped[dict] = mapped_column(JsonDoc, default=dict)
    error: Mapped[str | None] = mapped_column(Text)
    # Where a delta sync resumes (uSNChanged / modifyTimestamp, DC invocationId, ...).
    cursor: Mapped[dict] = mapped_column(JsonDoc, default=dict)


class ApiToken(Base):
    """A bearer token: SCIM tokens belong to one organization, admin API keys to a console admin.
    Only a SHA-256 of the token is kept; the token is shown once when created."""

    __tablename__ = "api_tokens"
    __table_args__ = (
        CheckConstraint("kind in ('scim', 'admin')", name="kind"),
        Index("ix_api_tokens_org", "org_id", "kind"),
    )
    # The public part of the token; lets verification find the row without using the secret.
    id: Mapped[str] = mapped_column(String(32), primary_key=True)
    kind: Mapped[str] = mapped_column(String(10), default="scim")
    org_id: Mapped[str | None] = mapped_column(ForeignKey("organizations.id", ondelete="CASCADE"))
    admin_id: Mapped[str | None] = mapped_column(
        ForeignKey("console_admins.id", ondelete="CASCADE")
    )
    description: Mapped[str | None] = mapped_column(String(200))
    prefix: Mapped[str] = mapped_column(String(40))
    token_hash: Mapped[str] = mapped_column(String(64))
    created_at: Mapped[datetime] = mapped_column(UtcDateTime, default=utcnow)
    last_used_at: Mapped[datetime | None] = mapped_column(UtcDateTime)
    revoked_at: Mapped[datetime | None] = mapped_column(UtcDateTime)

    organization: Mapped[Organization | None] = relationship()


ADMIN_ROLES = ("provider_admin", "service_user", "org_admin")


class ConsoleAdmin(Base):
    __tablename__ = "console_admins"
    __table_args__ = (
        CheckConstraint("role in ('provider_admin', 'service_user', 'org_admin')", name="role"),
        Index("uq_console_admins_email", "email_lower", unique=True),
    )
    id: Mapped[str] = mapped_column(String(36), primary_key=True, default=new_id)
    email: Mapped[str] = mapped_column(String(320))
    email_lower: Mapped[str] = mapped_column(String(320))
    name: Mapped[str | None] = mapped_column(String(200))
    role: Mapped[str] = mapped_column(String(20))
    status: Mapped[str] = mapped_column(String(20), default="confirmed")
    password_hash: Mapped[str | None] = mapped_column(String(200))
    created_at: Mapped[datetime] = mapped_column(UtcDateTime, default=utcnow)
    last_login_at: Mapped[datetime | None] = mapped_column(UtcDateTime)


class ConsoleSession(Base):
    """A console sign-in, so signing out ends it for every copy of the cookie, not only in the
    browser that signed out. Only a SHA-256 of the session id in the cookie is kept."""

    __tablename__ = "console_sessions"
    __table_args__ = (Index("ix_console_sessions_admin", "admin_id"),)
    # SHA-256 (hex) of the random session id the cookie carries; the raw id is never stored.
    id: Mapped[str] = mapped_column(String(64), primary_key=True)
    admin_id: Mapped[str] = mapped_column(ForeignKey("console_admins.id", ondelete="CASCADE"))
    created_at: Mapped[datetime] = mapped_column(UtcDateTime, default=utcnow)
    # Written at most once a minute (gateway.accounts.SESSION_SEEN_RESOLUTION).
    last_seen_at: Mapped[datetime] = mapped_column(UtcDateTime, default=utcnow)
    ended_at: Mapped[datetime | None] = mapped_column(UtcDateTime)
    # A secret to show once on the page a form redirects to (a new token or key), encrypted with
    # a key derived from the raw session id, which only the cookie holds; cleared when shown.
    shown_once: Mapped[str | None] = mapped_column(Text)


class ConsoleAdminOrg(Base):
    """Which organizations an org admin may manage."""

    __tablename__ = "console_admin_orgs"
    admin_id: Mapped[str] = mapped_column(
        ForeignKey("console_admins.id", ondelete="CASCADE"), primary_key=True
    )
    org_id: Mapped[str] = mapped_column(
        ForeignKey("organizations.id", ondelete="CASCADE"), primary_key=True
    )


# --- provisioning bookkeeping (revision 0002) ---------------------------------------------------


class OrgMapping(Base):
    """The organization's mapping file (YAML, see mappings/); no row means the defaults."""

    __tablename__ = "org_mappings"
    org_id: Mapped[str] = mapped_column(
        ForeignKey("organizations.id", ondelete="CASCADE"), primary_key=True
    )
    text: Mapped[str] = mapped_column(Text)
    updated_at: Mapped[datetime] = mapped_column(UtcDateTime, default=utcnow)
    updated_by: Mapped[str] = mapped_column(String(200))


class ProvisionedGroup(Base):
    """Marks an org group as the engine's (reconcile manages its members, access and existence;
    groups without this row were made by hand and are left alone). `origin` is the smallest
    directory group id feeding it, so a directory rename renames the org group."""

    __tablename__ = "provisioned_groups"
    __table_args__ = (Index("ix_provisioned_groups_org", "org_id", "origin"),)
    group_id: Mapped[str] = mapped_column(
        ForeignKey("groups.id", ondelete="CASCADE"), primary_key=True
    )
    org_id: Mapped[str] = mapped_column(ForeignKey("organizations.id", ondelete="CASCADE"))
    origin: Mapped[str] = mapped_column(String(36))


class DirectoryGroupDigest(Base):
    """What the rules made of each directory group at the last reconcile (its org group, scope
    and role and the groups directly above it). The incremental reconcile compares it with
    today's to know when a group change reaches every user below the group and when only the
    listed ones.
    No foreign key: the row outlives its group so a deletion can still be traced."""

    __tablename__ = "directory_group_digests"
    __table_args__ = (
        Index("ix_directory_group_digests_org", "org_id"),
        Index("ix_directory_group_digests_target", "org_id", "target_lower"),
    )
    directory_group_id: Mapped[str] = mapped_column(String(36), primary_key=True)
    org_id: Mapped[str] = mapped_column(ForeignKey("organizations.id", ondelete="CASCADE"))
    digest: Mapped[str] = mapped_column(Text)
    target: Mapped[str | None] = mapped_column(String(400))
    # The org group's key (lower-cased in Python): which directory groups feed one org group.
    target_lower: Mapped[str | None] = mapped_column(String(400))


HELD_STATUSES = ("pending", "approved", "dropped")


class HeldChange(Base):
    """A deprovisioning the mass-deprovision guard held back until an admin approves or drops it."""

    __tablename__ = "held_changes"
    __table_args__ = (
        CheckConstraint("status in ('pending', 'approved', 'dropped')", name="status"),
        Index("ix_held_changes_org_status", "org_id", "status"),
        Index("ix_held_changes_member", "member_id"),
    )
    id: Mapped[int] = mapped_column(
        BigInteger().with_variant(Integer, "sqlite"), primary_key=True, autoincrement=True
    )
    org_id: Mapped[str] = mapped_column(ForeignKey("organizations.id", ondelete="CASCADE"))
    member_id: Mapped[str | None] = mapped_column(ForeignKey("members.id", ondelete="CASCADE"))
    kind: Mapped[str] = mapped_column(String(40))
    change: Mapped[dict] = mapped_column(JsonDoc, default=dict)
    reason: Mapped[str] = mapped_column(Text)
    actor: Mapped[str] = mapped_column(String(200))
    status: Mapped[str] = mapped_column(String(20), default="pending")
    created_at: Mapped[datetime] = mapped_column(UtcDateTime, default=utcnow)
    decided_at: Mapped[datetime | None] = mapped_column(UtcDateTime)
    decided_by: Mapped[str | None] = mapped_column(String(200))
    # Revision 0009. Dropped by an admin: the member is kept as they are while their directory
    # user stays what it was then (the link and its last change); re-plans skip the change.
    kept: Mapped[bool] = mapped_column(Boolean, default=False, server_default=false())
    kept_user_id: Mapped[str | None] = mapped_column(String(36))
    kept_modified: Mapped[datetime | None] = mapped_column(UtcDateTime)


# --- lifecycle (revision 0003) ------------------------------------------------------------------


class WebhookEndpoint(Base):
    """Where an organization's events are POSTed. The signing secret is kept encrypted (Fernet,
    key derived from GATEWAY_SECRET_KEY): the worker needs it back to sign, so no hash here."""

    __tablename__ = "webhook_endpoints"
    __table_args__ = (Index("ix_webhook_endpoints_org", "org_id"),)
    id: Mapped[str] = mapped_column(String(36), primary_key=True, default=new_id)
    org_id: Mapped[str] = mapped_column(ForeignKey("organizations.id", ondelete="CASCADE"))
    url: Mapped[str] = mapped_column(String(2000))
    # Event types or prefixes ("member.*"); empty means every event.
    events: Mapped[list] = mapped_column(JsonDoc, default=list)
    secret_encrypted: Mapped[str] = mapped_column(Text)
    description: Mapped[str | None] = mapped_column(String(200))
    created_at: Mapped[datetime] = mapped_column(UtcDateTime, default=utcnow)
    created_by: Mapped[str] = mapped_column(String(200))

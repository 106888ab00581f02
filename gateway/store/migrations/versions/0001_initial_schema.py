"""Initial schema: both layers of design.md plus events, outbox, sync runs, tokens and admins.

Revision ID: 0001
Revises: (none)
Create Date: 2026-11-21
"""

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None


def upgrade() -> None:

    op.create_table(
        "console_admins",
        sa.Column("id", sa.String(length=36), nullable=False),
        sa.Column("email", sa.String(length=320), nullable=False),
        sa.Column("email_lower", sa.String(length=320), nullable=False),
        sa.Column("name", sa.String(length=200), nullable=True),
        sa.Column("role", sa.String(length=20), nullable=False),
        sa.Column("status", sa.String(length=20), nullable=False),
        sa.Column("password_hash", sa.String(length=200), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("last_login_at", sa.DateTime(timezone=True), nullable=True),
        sa.CheckConstraint(
            "role in ('provider_admin', 'service_user', 'org_admin')",
            name=op.f("ck_console_admins_role"),
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_console_admins")),
    )
    with op.batch_alter_table("console_admins", schema=None) as batch_op:
        batch_op.create_index("uq_console_admins_email", ["email_lower"], unique=True)

    op.create_table(
        "providers",
        sa.Column("id", sa.String(length=36), nullable=False),
        sa.Column("name", sa.String(length=200), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_providers")),
    )
    op.create_table(
        "organizations",
        sa.Column("id", sa.String(length=36), nullable=False),
        sa.Column("provider_id", sa.String(length=36), nullable=True),
        sa.Column("name", sa.String(length=200), nullable=False),
        sa.Column("name_lower", sa.String(length=200), nullable=False),
        sa.Column("plan", sa.String(length=20), nullable=False),
        sa.Column("seats", sa.Integer(), nullable=False),
        sa.Column("seat_limit", sa.Integer(), nullable=True),
        sa.Column("billing_email", sa.String(length=320), nullable=True),
        sa.Column("owner_email", sa.String(length=320), nullable=True),
        sa.Column(
            "settings",
            sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), "postgresql"),
            nullable=False,
        ),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.CheckConstraint("plan in ('teams', 'enterprise')", name=op.f("ck_organizations_plan")),
        sa.CheckConstraint(
            "seat_limit is null or seat_limit >= seats", name=op.f("ck_organizations_seat_limit")
        ),
        sa.CheckConstraint("seats >= 0", name=op.f("ck_organizations_seats")),
        sa.ForeignKeyConstraint(
            ["provider_id"],
            ["providers.id"],
            name=op.f("fk_organizations_provider_id_providers"),
            ondelete="SET NULL",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_organizations")),
    )
    with op.batch_alter_table("organizations", schema=None) as batch_op:
        batch_op.create_index("uq_organizations_name_lower", ["name_lower"], unique=True)

    op.create_table(
        "api_tokens",
        sa.Column("id", sa.String(length=32), nullable=False),
        sa.Column("kind", sa.String(length=10), nullable=False),
        sa.Column("org_id", sa.String(length=36), nullable=True),
        sa.Column("admin_id", sa.String(length=36), nullable=True),
        sa.Column("description", sa.String(length=200), nullable=True),
        sa.Column("prefix", sa.String(length=40), nullable=False),
        sa.Column("token_hash", sa.String(length=64), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("last_used_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("revoked_at", sa.DateTime(timezone=True), nullable=True),
        sa.CheckConstraint("kind in ('scim', 'admin')", name=op.f("ck_api_tokens_kind")),
        sa.ForeignKeyConstraint(
            ["admin_id"],
            ["console_admins.id"],
            name=op.f("fk_api_tokens_admin_id_console_admins"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["org_id"],
            ["organizations.id"],
            name=op.f("fk_api_tokens_org_id_organizations"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_api_tokens")),
    )
    with op.batch_alter_table("api_tokens", schema=None) as batch_op:
        batch_op.create_index("ix_api_tokens_org", ["org_id", "kind"], unique=False)

    op.create_table(
        "collections",
        sa.Column("id", sa.String(length=36), nullable=False),
        sa.Column("org_id", sa.String(length=36), nullable=False),
        sa.Column("name", sa.String(length=400), nullable=False),
        sa.Column("name_lower", sa.String(length=400), nullable=False),
        sa.Column("external_id", sa.String(length=400), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["org_id"],
            ["organizations.id"],
            name=op.f("fk_collections_org_id_organizations"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_collections")),
    )
    with op.batch_alter_table("collections", schema=None) as batch_op:
        batch_op.create_index("uq_collections_name", ["org_id", "name_lower"], unique=True)

    op.create_table(
        "console_admin_orgs",
        sa.Column("admin_id", sa.String(length=36), nullable=False),
        sa.Column("org_id", sa.String(length=36), nullable=False),
        sa.ForeignKeyConstraint(
            ["admin_id"],
            ["console_admins.id"],
            name=op.f("fk_console_admin_orgs_admin_id_console_admins"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["org_id"],
            ["organizations.id"],
            name=op.f("fk_console_admin_orgs_org_id_organizations"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("admin_id", "org_id", name=op.f("pk_console_admin_orgs")),
    )
    op.create_table(
        "directory_groups",
        sa.Column("id", sa.String(length=36), nullable=False),
        sa.Column("org_id", sa.String(length=36), nullable=False),
        sa.Column("source", sa.String(length=100), nullable=False),
        sa.Column("display_name", sa.String(length=400), nullable=False),
        sa.Column("display_name_lower", sa.String(length=400), nullable=False),
        sa.Column("external_id", sa.String(length=400), nullable=True),
        sa.Column(
            "resource",
            sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), "postgresql"),
            nullable=False,
        ),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("last_modified", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["org_id"],
            ["organizations.id"],
            name=op.f("fk_directory_groups_org_id_organizations"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_directory_groups")),
    )
    with op.batch_alter_table("directory_groups", schema=None) as batch_op:
        batch_op.create_index(
            "ix_directory_groups_created", ["org_id", "source", "created_at", "id"], unique=False
        )
        batch_op.create_index(
            "ix_directory_groups_last_modified", ["org_id", "source", "last_modified"], unique=False
        )
        batch_op.create_index(
            "uq_directory_groups_display_name",
            ["org_id", "source", "display_name_lower"],
            unique=True,
        )
        batch_op.create_index(
            "uq_directory_groups_external_id", ["org_id", "source", "external_id"], unique=True
        )

    op.create_table(
        "directory_users",
        sa.Column("id", sa.String(length=36), nullable=False),
        sa.Column("org_id", sa.String(length=36), nullable=False),
        sa.Column("source", sa.String(length=100), nullable=False),
        sa.Column("user_name", sa.String(length=400), nullable=False),
        sa.Column("user_name_lower", sa.String(length=400), nullable=False),
        sa.Column("external_id", sa.String(length=400), nullable=True),
        sa.Column("display_name", sa.String(length=400), nullable=True),
        sa.Column("active", sa.Boolean(), nullable=False),
        sa.Column(
            "resource",
            sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), "postgresql"),
            nullable=False,
        ),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("last_modified", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["org_id"],
            ["organizations.id"],
            name=op.f("fk_directory_users_org_id_organizations"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_directory_users")),
    )
    with op.batch_alter_table("directory_users", schema=None) as batch_op:
        batch_op.create_index(
            "ix_directory_users_created", ["org_id", "source", "created_at", "id"], unique=False
        )
        batch_op.create_index(
            "ix_directory_users_last_modified", ["org_id", "source", "last_modified"], unique=False
        )
        batch_op.create_index(
            "uq_directory_users_external_id", ["org_id", "source", "external_id"], unique=True
        )
        batch_op.create_index(
            "uq_directory_users_user_name", ["org_id", "source", "user_name_lower"], unique=True
        )

    op.create_table(
        "events",
        sa.Column(
            "id",
            sa.BigInteger().with_variant(sa.Integer(), "sqlite"),
            autoincrement=True,
            nullable=False,
        ),
        sa.Column("org_id", sa.String(length=36), nullable=True),
        sa.Column("at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("actor", sa.String(length=200), nullable=False),
        sa.Column("type", sa.String(length=100), nullable=False),
        sa.Column("target_type", sa.String(length=50), nullable=True),
        sa.Column("target_id", sa.String(length=64), nullable=True),
        sa.Column(
            "detail",
            sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), "postgresql"),
            nullable=False,
        ),
        sa.ForeignKeyConstraint(
            ["org_id"],
            ["organizations.id"],
            name=op.f("fk_events_org_id_organizations"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_events")),
    )
    with op.batch_alter_table("events", schema=None) as batch_op:
        batch_op.create_index("ix_events_org_at", ["org_id", "at"], unique=False)
        batch_op.create_index("ix_events_org_type", ["org_id", "type"], unique=False)

    op.create_table(
        "groups",
        sa.Column("id", sa.String(length=36), nullable=False),
        sa.Column("org_id", sa.String(length=36), nullable=False),
        sa.Column("name", sa.String(length=400), nullable=False),
        sa.Column("name_lower", sa.String(length=400), nullable=False),
        sa.Column("external_id", sa.String(length=400), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["org_id"],
            ["organizations.id"],
            name=op.f("fk_groups_org_id_organizations"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_groups")),
    )
    with op.batch_alter_table("groups", schema=None) as batch_op:
        batch_op.create_index("uq_groups_external_id", ["org_id", "external_id"], unique=True)
        batch_op.create_index("uq_groups_name", ["org_id", "name_lower"], unique=True)

    op.create_table(
        "outbox",
        sa.Column(
            "id",
            sa.BigInteger().with_variant(sa.Integer(), "sqlite"),
            autoincrement=True,
            nullable=False,
        ),
        sa.Column("org_id", sa.String(length=36), nullable=True),
        sa.Column("kind", sa.String(length=30), nullable=False),
        sa.Column(
            "payload",
            sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), "postgresql"),
            nullable=False,
        ),
        sa.Column("message_id", sa.String(length=200), nullable=False),
        sa.Column("status", sa.String(length=20), nullable=False),
        sa.Column("attempts", sa.Integer(), nullable=False),
        sa.Column("next_attempt_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("claimed_until", sa.DateTime(timezone=True), nullable=True),
        sa.Column("last_error", sa.Text(), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("sent_at", sa.DateTime(timezone=True), nullable=True),
        sa.CheckConstraint(
            "status in ('pending', 'sent', 'failed')", name=op.f("ck_outbox_status")
        ),
        sa.ForeignKeyConstraint(
            ["org_id"],
            ["organizations.id"],
            name=op.f("fk_outbox_org_id_organizations"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_outbox")),
    )
    with op.batch_alter_table("outbox", schema=None) as batch_op:
        batch_op.create_index("ix_outbox_due", ["status", "next_attempt_at"], unique=False)

    op.create_table(
        "sync_runs",
        sa.Column(
            "id",
            sa.BigInteger().with_variant(sa.Integer(), "sqlite"),
            autoincrement=True,
            nullable=False,
        ),
        sa.Column("org_id", sa.String(length=36), nullable=False),
        sa.Column("connector", sa.String(length=100), nullable=False),
        sa.Column("kind", sa.String(length=20), nullable=False),
        sa.Column("status", sa.String(length=20), nullable=False),
        sa.Column("started_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("finished_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column(
            "counts",
            sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), "postgresql"),
            nullable=False,
        ),
        sa.Column("error", sa.Text(), nullable=True),
        sa.Column(
            "cursor",
            sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), "postgresql"),
            nullable=False,
        ),
        sa.CheckConstraint(
            "status in ('running', 'succeeded', 'failed')", name=op.f("ck_sync_runs_status")
        ),
        sa.ForeignKeyConstraint(
            ["org_id"],
            ["organizations.id"],
            name=op.f("fk_sync_runs_org_id_organizations"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_sync_runs")),
    )
    with op.batch_alter_table("sync_runs", schema=None) as batch_op:
        batch_op.create_index(
            "ix_sync_runs_org_started", ["org_id", "connector", "started_at"], unique=False
        )

    op.create_table(
        "directory_group_members",
        sa.Column(
            "id",
            sa.BigInteger().with_variant(sa.Integer(), "sqlite"),
            autoincrement=True,
            nullable=False,
        ),
        sa.Column("group_id", sa.String(length=36), nullable=False),
        sa.Column("user_id", sa.String(length=36), nullable=True),
        sa.Column("child_group_id", sa.String(length=36), nullable=True),
        sa.CheckConstraint(
            "(user_id is null) <> (child_group_id is null)",
            name=op.f("ck_directory_group_members_exactly_one_member"),
        ),
        sa.ForeignKeyConstraint(
            ["child_group_id"],
            ["directory_groups.id"],
            name=op.f("fk_directory_group_members_child_group_id_directory_groups"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["group_id"],
            ["directory_groups.id"],
            name=op.f("fk_directory_group_members_group_id_directory_groups"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["user_id"],
            ["directory_users.id"],
            name=op.f("fk_directory_group_members_user_id_directory_users"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_directory_group_members")),
    )
    with op.batch_alter_table("directory_group_members", schema=None) as batch_op:
        batch_op.create_index(
            "ix_directory_group_members_child_group_id", ["child_group_id"], unique=False
        )
        batch_op.create_index("ix_directory_group_members_user_id", ["user_id"], unique=False)
        batch_op.create_index(
            "uq_directory_group_members_group", ["group_id", "child_group_id"], unique=True
        )
        batch_op.create_index(
            "uq_directory_group_members_user", ["group_id", "user_id"], unique=True
        )

    op.create_table(
        "group_collection_access",
        sa.Column("group_id", sa.String(length=36), nullable=False),
        sa.Column("collection_id", sa.String(length=36), nullable=False),
        sa.Column("permission", sa.String(length=30), nullable=False),
        sa.CheckConstraint(
            "permission in ('view', 'view-except-passwords', 'edit', 'edit-except-passwords',"
            " 'manage')",
            name=op.f("ck_group_collection_access_permission"),
        ),
        sa.ForeignKeyConstraint(
            ["collection_id"],
            ["collections.id"],
            name=op.f("fk_group_collection_access_collection_id_collections"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["group_id"],
            ["groups.id"],
            name=op.f("fk_group_collection_access_group_id_groups"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint(
            "group_id", "collection_id", name=op.f("pk_group_collection_access")
        ),
    )
    with op.batch_alter_table("group_collection_access", schema=None) as batch_op:
        batch_op.create_index(
            "ix_group_collection_access_collection_id", ["collection_id"], unique=False
        )

    op.create_table(
        "members",
        sa.Column("id", sa.String(length=36), nullable=False),
        sa.Column("org_id", sa.String(length=36), nullable=False),
        sa.Column("email", sa.String(length=320), nullable=False),
        sa.Column("email_lower", sa.String(length=320), nullable=False),
        sa.Column("name", sa.String(length=400), nullable=True),
        sa.Column("external_id", sa.String(length=400), nullable=True),
        sa.Column("role", sa.String(length=20), nullable=False),
        sa.Column("status", sa.String(length=20), nullable=False),
        sa.Column("status_before_revoke", sa.String(length=20), nullable=True),
        sa.Column("directory_user_id", sa.String(length=36), nullable=True),
        sa.Column("source", sa.String(length=100), nullable=True),
        sa.Column("public_key", sa.Text(), nullable=True),
        sa.Column("waiting_for_seat", sa.Boolean(), nullable=False),
        sa.Column("invited_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("accepted_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("confirmed_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("revoked_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.CheckConstraint(
            "role in ('owner', 'admin', 'user', 'custom')", name=op.f("ck_members_role")
        ),
        sa.CheckConstraint(
            "status in ('staged', 'invited', 'accepted', 'confirmed', 'revoked')",
            name=op.f("ck_members_status"),
        ),
        sa.ForeignKeyConstraint(
            ["directory_user_id"],
            ["directory_users.id"],
            name=op.f("fk_members_directory_user_id_directory_users"),
            ondelete="SET NULL",
        ),
        sa.ForeignKeyConstraint(
            ["org_id"],
            ["organizations.id"],
            name=op.f("fk_members_org_id_organizations"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_members")),
    )
    with op.batch_alter_table("members", schema=None) as batch_op:
        batch_op.create_index("ix_members_directory_user_id", ["directory_user_id"], unique=False)
        batch_op.create_index("ix_members_status", ["org_id", "status"], unique=False)
        batch_op.create_index("uq_members_email", ["org_id", "email_lower"], unique=True)
        batch_op.create_index("uq_members_external_id", ["org_id", "external_id"], unique=True)

    op.create_table(
        "member_groups",
        sa.Column("member_id", sa.String(length=36), nullable=False),
        sa.Column("group_id", sa.String(length=36), nullable=False),
        sa.ForeignKeyConstraint(
            ["group_id"],
            ["groups.id"],
            name=op.f("fk_member_groups_group_id_groups"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["member_id"],
            ["members.id"],
            name=op.f("fk_member_groups_member_id_members"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("member_id", "group_id", name=op.f("pk_member_groups")),
    )
    with op.batch_alter_table("member_groups", schema=None) as batch_op:
        batch_op.create_index("ix_member_groups_group_id", ["group_id"], unique=False)


def downgrade() -> None:

    with op.batch_alter_table("member_groups", schema=None) as batch_op:
        batch_op.drop_index("ix_member_groups_group_id")

    op.drop_table("member_groups")
    with op.batch_alter_table("members", schema=None) as batch_op:
        batch_op.drop_index("uq_members_external_id")
        batch_op.drop_index("uq_members_email")
        batch_op.drop_index("ix_members_status")
        batch_op.drop_index("ix_members_directory_user_id")

    op.drop_table("members")
    with op.batch_alter_table("group_collection_access", schema=None) as batch_op:
        batch_op.drop_index("ix_group_collection_access_collection_id")

    op.drop_table("group_collection_access")
    with op.batch_alter_table("directory_group_members", schema=None) as batch_op:
        batch_op.drop_index("uq_directory_group_members_user")
        batch_op.drop_index("uq_directory_group_members_group")
        batch_op.drop_index("ix_directory_group_members_user_id")
        batch_op.drop_index("ix_directory_group_members_child_group_id")

    op.drop_table("directory_group_members")
    with op.batch_alter_table("sync_runs", schema=None) as batch_op:
        batch_op.drop_index("ix_sync_runs_org_started")

    op.drop_table("sync_runs")
    with op.batch_alter_table("outbox", schema=None) as batch_op:
        batch_op.drop_index("ix_outbox_due")

    op.drop_table("outbox")
    with op.batch_alter_table("groups", schema=None) as batch_op:
        batch_op.drop_index("uq_groups_name")
        batch_op.drop_index("uq_groups_external_id")

    op.drop_table("groups")
    with op.batch_alter_table("events", schema=None) as batch_op:
        batch_op.drop_index("ix_events_org_type")
        batch_op.drop_index("ix_events_org_at")

    op.drop_table("events")
    with op.batch_alter_table("directory_users", schema=None) as batch_op:
        batch_op.drop_index("uq_directory_users_user_name")
        batch_op.drop_index("uq_directory_users_external_id")
        batch_op.drop_index("ix_directory_users_last_modified")
        batch_op.drop_index("ix_directory_users_created")

    op.drop_table("directory_users")
    with op.batch_alter_table("directory_groups", schema=None) as batch_op:
        batch_op.drop_index("uq_directory_groups_external_id")
        batch_op.drop_index("uq_directory_groups_display_name")
        batch_op.drop_index("ix_directory_groups_last_modified")
        batch_op.drop_index("ix_directory_groups_created")

    op.drop_table("directory_groups")
    op.drop_table("console_admin_orgs")
    with op.batch_alter_table("collections", schema=None) as batch_op:
        batch_op.drop_index("uq_collections_name")

    op.drop_table("collections")
    with op.batch_alter_table("api_tokens", schema=None) as batch_op:
        batch_op.drop_index("ix_api_tokens_org")

    op.drop_table("api_tokens")
    with op.batch_alter_table("organizations", schema=None) as batch_op:
        batch_op.drop_index("uq_organizations_name_lower")

    op.drop_table("organizations")
    op.drop_table("providers")
    with op.batch_alter_table("console_admins", schema=None) as batch_op:
        batch_op.drop_index("uq_console_admins_email")

    op.drop_table("console_admins")

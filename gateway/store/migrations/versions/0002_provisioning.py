"""Provisioning bookkeeping: mapping files, provisioned groups, directory group digests and
changes held by the mass-deprovision guard.

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-21
"""

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None

JSON_DOC = sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), "postgresql")


def upgrade() -> None:
    op.create_table(
        "org_mappings",
        sa.Column("org_id", sa.String(length=36), nullable=False),
        sa.Column("text", sa.Text(), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("updated_by", sa.String(length=200), nullable=False),
        sa.ForeignKeyConstraint(
            ["org_id"],
            ["organizations.id"],
            name=op.f("fk_org_mappings_org_id_organizations"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("org_id", name=op.f("pk_org_mappings")),
    )
    op.create_table(
        "provisioned_groups",
        sa.Column("group_id", sa.String(length=36), nullable=False),
        sa.Column("org_id", sa.String(length=36), nullable=False),
        sa.Column("origin", sa.String(length=36), nullable=False),
        sa.ForeignKeyConstraint(
            ["group_id"],
            ["groups.id"],
            name=op.f("fk_provisioned_groups_group_id_groups"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["org_id"],
            ["organizations.id"],
            name=op.f("fk_provisioned_groups_org_id_organizations"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("group_id", name=op.f("pk_provisioned_groups")),
    )
    op.create_index("ix_provisioned_groups_org", "provisioned_groups", ["org_id", "origin"])
    op.create_table(
        "directory_group_digests",
        sa.Column("directory_group_id", sa.String(length=36), nullable=False),
        sa.Column("org_id", sa.String(length=36), nullable=False),
        sa.Column("digest", sa.Text(), nullable=False),
        sa.Column("target", sa.String(length=400), nullable=True),
        sa.ForeignKeyConstraint(
            ["org_id"],
            ["organizations.id"],
            name=op.f("fk_directory_group_digests_org_id_organizations"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("directory_group_id", name=op.f("pk_directory_group_digests")),
    )
    op.create_index("ix_directory_group_digests_org", "directory_group_digests", ["org_id"])
    op.create_table(
        "held_changes",
        sa.Column(
            "id",
            sa.BigInteger().with_variant(sa.Integer(), "sqlite"),
            autoincrement=True,
            nullable=False,
        ),
        sa.Column("org_id", sa.String(length=36), nullable=False),
        sa.Column("member_id", sa.String(length=36), nullable=True),
        sa.Column("kind", sa.String(length=40), nullable=False),
        sa.Column("change", JSON_DOC, nullable=False),
        sa.Column("reason", sa.Text(), nullable=False),
        sa.Column("actor", sa.String(length=200), nullable=False),
        sa.Column("status", sa.String(length=20), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("decided_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("decided_by", sa.String(length=200), nullable=True),
        sa.CheckConstraint(
            "status in ('pending', 'approved', 'dropped')", name=op.f("ck_held_changes_status")
        ),
        sa.ForeignKeyConstraint(
            ["member_id"],
            ["members.id"],
            name=op.f("fk_held_changes_member_id_members"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["org_id"],
            ["organizations.id"],
            name=op.f("fk_held_changes_org_id_organizations"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_held_changes")),
    )
    op.create_index("ix_held_changes_org_status", "held_changes", ["org_id", "status"])
    op.create_index("ix_held_changes_member", "held_changes", ["member_id"])


def downgrade() -> None:
    op.drop_index("ix_held_changes_member", table_name="held_changes")
    op.drop_index("ix_held_changes_org_status", table_name="held_changes")
    op.drop_table("held_changes")
    op.drop_index("ix_directory_group_digests_org", table_name="directory_group_digests")
    op.drop_table("directory_group_digests")
    op.drop_index("ix_provisioned_groups_org", table_name="provisioned_groups")
    op.drop_table("provisioned_groups")
    op.drop_table("org_mappings")

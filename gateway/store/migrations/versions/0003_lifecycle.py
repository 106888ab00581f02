"""Member lifecycle: invitation links (nonce, expiry, automatic re-sends), who confirmed a member,
seat-waiting and expiry indexes, and per-organization webhook endpoints.

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-28
"""

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None

JSON_DOC = sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), "postgresql")


def upgrade() -> None:
    with op.batch_alter_table("members") as batch:
        batch.add_column(sa.Column("invitation_nonce", sa.String(length=32), nullable=True))
        batch.add_column(
            sa.Column("invitation_expires_at", sa.DateTime(timezone=True), nullable=True)
        )
        batch.add_column(
            sa.Column("invitation_resends", sa.Integer(), nullable=False, server_default="0")
        )
        batch.add_column(
            sa.Column("invitation_expired", sa.Boolean(), nullable=False, server_default=sa.false())
        )
        batch.add_column(sa.Column("confirmed_by", sa.String(length=200), nullable=True))
    op.create_index("ix_members_waiting", "members", ["waiting_for_seat", "org_id"])
    op.create_index("ix_members_invitation_expiry", "members", ["status", "invitation_expires_at"])
    op.create_table(
        "webhook_endpoints",
        sa.Column("id", sa.String(length=36), nullable=False),
        sa.Column("org_id", sa.String(length=36), nullable=False),
        sa.Column("url", sa.String(length=2000), nullable=False),
        sa.Column("events", JSON_DOC, nullable=False),
        sa.Column("secret_encrypted", sa.Text(), nullable=False),
        sa.Column("description", sa.String(length=200), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("created_by", sa.String(length=200), nullable=False),
        sa.ForeignKeyConstraint(
            ["org_id"],
            ["organizations.id"],
            name=op.f("fk_webhook_endpoints_org_id_organizations"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_webhook_endpoints")),
    )
    op.create_index("ix_webhook_endpoints_org", "webhook_endpoints", ["org_id"])


def downgrade() -> None:
    op.drop_index("ix_webhook_endpoints_org", table_name="webhook_endpoints")
    op.drop_table("webhook_endpoints")
    op.drop_index("ix_members_invitation_expiry", table_name="members")
    op.drop_index("ix_members_waiting", table_name="members")
    with op.batch_alter_table("members") as batch:
        batch.drop_column("confirmed_by")
        batch.drop_column("invitation_expired")
        batch.drop_column("invitation_resends")
        batch.drop_column("invitation_expires_at")
        batch.drop_column("invitation_nonce")

"""Write-path indexes and a kept seat count: organizations.seats_used (kept by
gateway.store.seat_count at every commit), members by (org_id, role, status) for the owner checks
and by (org_id, directory_user_id) for the engine's identity lookups.

Revision ID: 0004
Revises: 0003
Create Date: 2026-11-22
"""

import sqlalchemy as sa
from alembic import op

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("organizations") as batch:
        batch.add_column(sa.Column("seats_used", sa.Integer(), nullable=False, server_default="0"))
    op.execute(
        "update organizations set seats_used = (select count(*) from members"
        " where members.org_id = organizations.id"
        " and members.status in ('invited', 'accepted', 'confirmed'))"
    )
    op.create_index("ix_members_role", "members", ["org_id", "role", "status"])
    op.create_index("ix_members_org_directory_user", "members", ["org_id", "directory_user_id"])


def downgrade() -> None:
    op.drop_index("ix_members_org_directory_user", table_name="members")
    op.drop_index("ix_members_role", table_name="members")
    with op.batch_alter_table("organizations") as batch:
        batch.drop_column("seats_used")

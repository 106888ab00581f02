"""A held change an admin dropped stays dropped (issue #19): held_changes.kept, and the member's
directory user as it was at the drop (kept_user_id, kept_modified). Re-plans skip the change
while the directory user is the same and unchanged; rows before this revision keep nothing.

Revision ID: 0009
Revises: 0008
Create Date: 2026-12-04
"""

import sqlalchemy as sa
from alembic import op

revision = "0009"
down_revision = "0008"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("held_changes") as batch:
        batch.add_column(sa.Column("kept", sa.Boolean(), nullable=False, server_default=sa.false()))
        batch.add_column(sa.Column("kept_user_id", sa.String(length=36), nullable=True))
        batch.add_column(sa.Column("kept_modified", sa.DateTime(timezone=True), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("held_changes") as batch:
        batch.drop_column("kept_modified")
        batch.drop_column("kept_user_id")
        batch.drop_column("kept")

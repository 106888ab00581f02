"""Console sessions kept on the server: console_sessions, so signing out ends a session for every
copy of its cookie. Cookies from before this revision carry no session id: after the upgrade
everyone signs in to the console again.

Revision ID: 0006
Revises: 0005
Create Date: 2026-11-22
"""

import sqlalchemy as sa
from alembic import op

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "console_sessions",
        sa.Column("id", sa.String(length=64), nullable=False),
        sa.Column("admin_id", sa.String(length=36), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("last_seen_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("ended_at", sa.DateTime(timezone=True), nullable=True),
        sa.ForeignKeyConstraint(
            ["admin_id"],
            ["console_admins.id"],
            name=op.f("fk_console_sessions_admin_id_console_admins"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_console_sessions")),
    )
    op.create_index("ix_console_sessions_admin", "console_sessions", ["admin_id"])


def downgrade() -> None:
    op.drop_index("ix_console_sessions_admin", table_name="console_sessions")
    op.drop_table("console_sessions")

"""Post/redirect/get in the console (issue #19): console_sessions.shown_once keeps a new token or
key, encrypted with a key only the session's cookie holds, until the page after the redirect
shows it once.

Revision ID: 0008
Revises: 0007
Create Date: 2026-12-04
"""

import sqlalchemy as sa
from alembic import op

revision = "0008"
down_revision = "0007"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("console_sessions") as batch:
        batch.add_column(sa.Column("shown_once", sa.Text(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("console_sessions") as batch:
        batch.drop_column("shown_once")

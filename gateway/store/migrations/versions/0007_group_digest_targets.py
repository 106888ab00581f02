"""Per-write cost independent of the group graph (issue #16): directory_group_digests.target_lower
with an index, so the engine finds the directory groups feeding one org group without reading
every group; pending_changes.group_ids, the directory groups a queued write touched (NULL, as on
rows queued before this revision: compare every group, as before).

Revision ID: 0007
Revises: 0006
Create Date: 2026-12-04
"""

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision = "0007"
down_revision = "0006"
branch_labels = None
depends_on = None


def upgrade() -> None:
    json = sa.JSON().with_variant(postgresql.JSONB(), "postgresql")
    op.add_column("pending_changes", sa.Column("group_ids", json, nullable=True))
    op.add_column(
        "directory_group_digests", sa.Column("target_lower", sa.String(length=400), nullable=True)
    )
    # Lower-cased in Python, as the engine compares names (SQL lower() differs beyond ASCII).
    digests = sa.table(
        "directory_group_digests",
        sa.column("directory_group_id", sa.String),
        sa.column("target", sa.String),
        sa.column("target_lower", sa.String),
    )
    connection = op.get_bind()
    rows = connection.execute(
        sa.select(digests.c.directory_group_id, digests.c.target).where(
            digests.c.target.is_not(None)
        )
    ).all()
    for group_id, target in rows:
        connection.execute(
            digests.update()
            .where(digests.c.directory_group_id == group_id)
            .values(target_lower=target.lower())
        )
    op.create_index(
        "ix_directory_group_digests_target",
        "directory_group_digests",
        ["org_id", "target_lower"],
    )


def downgrade() -> None:
    op.drop_index("ix_directory_group_digests_target", table_name="directory_group_digests")
    op.drop_column("directory_group_digests", "target_lower")
    op.drop_column("pending_changes", "group_ids")

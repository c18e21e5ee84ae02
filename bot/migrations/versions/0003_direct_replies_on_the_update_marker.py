"""direct replies kept on the update's dedupe marker

Revision ID: 0003
Revises: 0002

Runs on SQLite and PostgreSQL alike (see 0002).
"""
from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = '0003'
down_revision: str | Sequence[str] | None = '0002'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    # idempotent: a database adopted from the pre-migration `create_all` may have the columns already
    have = {c["name"] for c in sa.inspect(op.get_bind()).get_columns("processed_updates")}
    with op.batch_alter_table("processed_updates") as batch:
        if "replies" not in have:
            batch.add_column(sa.Column("replies", sa.JSON(), nullable=True))
        if "chat_id" not in have:
            batch.add_column(sa.Column("chat_id", sa.BigInteger(), nullable=True))
    op.create_index("ix_processed_updates_chat_id", "processed_updates", ["chat_id"], if_not_exists=True)


def downgrade() -> None:
    op.drop_index("ix_processed_updates_chat_id", table_name="processed_updates", if_exists=True)
    with op.batch_alter_table("processed_updates") as batch:
        batch.drop_column("chat_id")
        batch.drop_column("replies")

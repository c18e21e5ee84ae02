"""leads index for the weighted pipeline

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-23 05:08:49.280182

Runs on SQLite and PostgreSQL alike: keep `op.batch_alter_table` for ALTERs (SQLite rebuilds the table;
foreign keys are off while migrations run, see bot/db/migrate.py) and never import application models.
"""
from __future__ import annotations

from collections.abc import Sequence

from alembic import op

# revision identifiers, used by Alembic.
revision: str = '0002'
down_revision: str | Sequence[str] | None = '0001'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    # idempotent: a database adopted from the pre-migration `create_all` may already have either index
    op.drop_index("ix_leads_stage_created", table_name="leads", if_exists=True)
    op.create_index("ix_leads_stage_created_amount", "leads", ["stage", "created_at", "amount"], unique=False,
                    if_not_exists=True)


def downgrade() -> None:
    op.drop_index("ix_leads_stage_created_amount", table_name="leads", if_exists=True)
    op.create_index("ix_leads_stage_created", "leads", ["stage", "created_at"], unique=False, if_not_exists=True)

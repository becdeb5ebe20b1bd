"""source_state gains yield_baseline (a shrinking auto page warns) and failing_since (dormancy).

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-26
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision: str | None = "0001"
branch_labels: str | None = None
depends_on: str | None = None


def upgrade() -> None:
    with op.batch_alter_table("source_state") as batch:
        batch.add_column(sa.Column("yield_baseline", sa.Float(), nullable=True))
        batch.add_column(sa.Column("failing_since", sa.DateTime(timezone=True), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("source_state") as batch:
        batch.drop_column("failing_since")
        batch.drop_column("yield_baseline")

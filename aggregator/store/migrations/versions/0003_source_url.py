"""source_state gains source_url: the address the cached validators belong to.

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-26

A source whose URL is edited while the daemon is stopped must not send the old
address's ETag, body hash or discovered feed to the new one.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0003"
down_revision: str | None = "0002"
branch_labels: str | None = None
depends_on: str | None = None


def upgrade() -> None:
    with op.batch_alter_table("source_state") as batch:
        batch.add_column(sa.Column("source_url", sa.Text(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("source_state") as batch:
        batch.drop_column("source_url")

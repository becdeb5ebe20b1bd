"""records gain their de-duplication keys: canonical link and title key, with the rules' version.

Revision ID: 0004
Revises: 0003
Create Date: 2026-11-27

A publish used to compute (or look up in its render cache) every item's keys; stored
with the row, they are computed once per record version. Rows written before this
revision have none (NULL rules): the next publish computes and saves them.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0004"
down_revision: str | None = "0003"
branch_labels: str | None = None
depends_on: str | None = None


def upgrade() -> None:
    with op.batch_alter_table("records") as batch:
        batch.add_column(sa.Column("match_rules", sa.Integer(), nullable=True))
        batch.add_column(sa.Column("match_link", sa.Text(), nullable=True))
        batch.add_column(sa.Column("match_title", sa.BigInteger(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("records") as batch:
        batch.drop_column("match_title")
        batch.drop_column("match_link")
        batch.drop_column("match_rules")

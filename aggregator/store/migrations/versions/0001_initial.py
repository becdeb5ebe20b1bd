"""Initial schema: records, record_tags, source_state (with lease columns), meta.

Revision ID: 0001
Revises:
Create Date: 2026-11-26

A frozen copy of the DDL, deliberately not importing ``aggregator.store.schema``: later
revisions change that module, and this one must keep creating what 0001 created.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0001"
down_revision: str | None = None
branch_labels: str | None = None
depends_on: str | None = None


def _when(name: str, nullable: bool = True) -> sa.Column[object]:
    return sa.Column(name, sa.DateTime(timezone=True), nullable=nullable)


def upgrade() -> None:
    op.create_table(
        "records",
        sa.Column("source", sa.String(200), nullable=False),
        sa.Column("kind", sa.String(10), nullable=False),
        sa.Column("key", sa.Text, nullable=False),
        _when("sort_at", nullable=False),
        _when("ends_at"),
        sa.Column("recurring", sa.Boolean, nullable=False),
        sa.Column("content_hash", sa.String(64), nullable=False),
        sa.Column("payload", sa.Text, nullable=False),
        sa.Column("sequence", sa.Integer, nullable=False),
        _when("first_seen", nullable=False),
        _when("changed_at", nullable=False),
        sa.PrimaryKeyConstraint("source", "kind", "key", name="pk_records"),
    )
    op.create_index("ix_records_kind_sort_at", "records", ["kind", "sort_at"])
    op.create_index("ix_records_kind_ends_at", "records", ["kind", "ends_at"])
    op.create_table(
        "record_tags",
        sa.Column("source", sa.String(200), nullable=False),
        sa.Column("kind", sa.String(10), nullable=False),
        sa.Column("key", sa.Text, nullable=False),
        sa.Column("tag", sa.Text, nullable=False),
        sa.PrimaryKeyConstraint("source", "kind", "key", "tag", name="pk_record_tags"),
    )
    op.create_index("ix_record_tags_tag", "record_tags", ["tag"])
    op.create_table(
        "source_state",
        sa.Column("name", sa.String(200), nullable=False),
        sa.Column("etag", sa.Text),
        sa.Column("last_modified", sa.Text),
        sa.Column("body_hash", sa.String(128)),
        _when("last_attempt"),
        _when("last_success"),
        sa.Column("last_error", sa.Text),
        sa.Column("consecutive_failures", sa.Integer, nullable=False),
        sa.Column("items", sa.Integer, nullable=False),
        sa.Column("last_yield", sa.Integer),
        _when("next_run"),
        sa.Column("dormant", sa.Boolean, nullable=False),
        sa.Column("redirected_to", sa.Text),
        sa.Column("discovered_url", sa.Text),
        sa.Column("lease_owner", sa.String(200)),
        _when("lease_until"),
        sa.PrimaryKeyConstraint("name", name="pk_source_state"),
    )
    meta = op.create_table(
        "meta",
        sa.Column("name", sa.String(50), nullable=False),
        sa.Column("value", sa.BigInteger, nullable=False),
        sa.PrimaryKeyConstraint("name", name="pk_meta"),
    )
    op.bulk_insert(meta, [{"name": "generation", "value": 0}])


def downgrade() -> None:
    op.drop_table("meta")
    op.drop_table("source_state")
    op.drop_index("ix_record_tags_tag", table_name="record_tags")
    op.drop_table("record_tags")
    op.drop_index("ix_records_kind_ends_at", table_name="records")
    op.drop_index("ix_records_kind_sort_at", table_name="records")
    op.drop_table("records")

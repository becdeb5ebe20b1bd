"""Alembic environment: always runs on the connection ``open_store`` passes in.

``open_store`` opens a transaction (and, on PostgreSQL, takes an advisory lock so two
workers starting together do not migrate twice), puts the connection in
``config.attributes["connection"]`` and calls ``alembic.command.upgrade``. There is no
alembic.ini and no URL here: the store owns the engine.
"""

from __future__ import annotations

from alembic import context
from sqlalchemy.engine import Connection

connection = context.config.attributes.get("connection")
if not isinstance(connection, Connection):
    raise RuntimeError("run migrations through aggregator.store.open_store, which supplies the connection")

context.configure(connection=connection, target_metadata=None, render_as_batch=connection.dialect.name == "sqlite")
with context.begin_transaction():
    context.run_migrations()

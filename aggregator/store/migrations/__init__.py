"""Alembic migrations for the store, applied by ``open_store`` (see ``env.py``)."""

"""Storage: the ``Store`` Protocol and its SQLAlchemy implementation (SQLite, PostgreSQL)."""

from aggregator.store.base import Store, StoredEvent, StoredNews, UpsertSummary
from aggregator.store.sqlalchemy_store import SqlStore, open_store

__all__ = ["SqlStore", "Store", "StoredEvent", "StoredNews", "UpsertSummary", "open_store"]

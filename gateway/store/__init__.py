"""The store: SQLAlchemy models, engine and sessions, and Alembic migrations.

Does: persistence of both layers, schema versioning, the unit of work around each transaction.
Does not: decide anything about SCIM, provisioning or members; callers bring the rules.
"""

from gateway.store import seat_count  # noqa: F401  (registers the seat count's session hooks)
from gateway.store.db import Database, SchemaState

__all__ = ["Database", "SchemaState"]

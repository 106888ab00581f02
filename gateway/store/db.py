"""Engine, sessions and schema state: SQLite (WAL, foreign keys on) and PostgreSQL (psycopg 3)."""

from __future__ import annotations

import contextlib
import enum
import fcntl
import functools
import logging
import os
import random
import select
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TypeVar

from alembic import command
from alembic.config import Config as AlembicConfig
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import Connection, Engine, create_engine, event, inspect, text
from sqlalchemy.exc import DBAPIError, DisconnectionError
from sqlalchemy.orm import Session, sessionmaker

MIGRATIONS = Path(__file__).parent / "migrations"
log = logging.getLogger(__name__)
T = TypeVar("T")


class SchemaState(enum.Enum):
    EMPTY = "empty"  # no tables at all: a fresh install
    CURRENT = "current"
    OUTDATED = "outdated"  # migrations are waiting: `scimgate db upgrade`
    UNKNOWN = "unknown"  # a revision this code does not know (newer code wrote it?)


def _unicode_lower(value: object) -> object:
    return value.lower() if isinstance(value, str) else value


def make_engine(
    url: str, *, pool_size: int = 5, statement_timeout_ms: int = 0, autocommit: bool = False
) -> Engine:
    """`autocommit`: every statement commits on its own and no BEGIN is sent (short reads)."""
    if url.startswith("sqlite"):
        Path(url.removeprefix("sqlite:///")).parent.mkdir(parents=True, exist_ok=True)
        # hide_parameters: error messages (and so logs) never carry request values.
        engine = create_engine(url, connect_args={"timeout": 30}, hide_parameters=True)

        @event.listens_for(engine, "connect")
        def _sqlite_pragmas(dbapi_conn, _record):  # type: ignore[no-untyped-def]
            # Let SQLAlchemy own transactions: the driver's implicit BEGIN would hide ours.
            dbapi_conn.isolation_level = None
            # SQLite's own lower() folds ASCII only; SCIM says userName, emails and displayName
            # compare case-insensitively in any script, as PostgreSQL's lower() does.
            dbapi_conn.create_function("lower", 1, _unicode_lower, deterministic=True)
            cur = dbapi_conn.cursor()
            cur.execute("PRAGMA journal_mode=WAL")
            cur.execute("PRAGMA foreign_keys=ON")
            cur.execute("PRAGMA synchronous=NORMAL")
            cur.execute("PRAGMA busy_timeout=30000")
            cur.close()

        @event.listens_for(engine, "begin")
        def _sqlite_begin(conn):  # type: ignore[no-untyped-def]
            # A writing transaction takes the write lock up front (IMMEDIATE), so two writers
            # queue on busy_timeout instead of one failing with "database is locked" half way
            # through; reads stay DEFERRED and run beside writers under WAL.
            # (Straight to the driver: this runs for every transaction.)
            if autocommit:
                return  # the driver's own mode: each statement is its own transaction
            raw = conn.connection.driver_connection
            raw.execute(
                "BEGIN" if conn.get_execution_options().get("read_only") else "BEGIN IMMEDIATE"
            )

        return engine

    options = f"-c statement_timeout={statement_timeout_ms}" if statement_timeout_ms else ""
    engine = create_engine(
        url,
        pool_size=pool_size,
        max_overflow=pool_size,
        hide_parameters=True,
        pool_recycle=1800,
        connect_args={"options": options} if options else {},
        # Set once on each new connection, not switched at every checkout and back.
        **({"isolation_level": "AUTOCOMMIT"} if autocommit else {}),
    )
    event.listen(engine, "checkout", _closed_by_server)
    return engine


def _closed_by_server(dbapi_conn, _record, _proxy) -> None:  # type: ignore[no-untyped-def]
    """Hand out no pooled connection the server has closed (a restart, a failover,
    pg_terminate_backend, an idle timeout), without a round trip: an idle connection has
    nothing to read, so a readable socket means the server sent its goodbye (or EOF). Raising
    DisconnectionError makes the pool drop it and check out another. `pool_pre_ping` does the
    same with a query, which cost every request a round trip."""
    poller = select.poll()
    try:
        poller.register(dbapi_conn.fileno(), select.POLLIN)
    except Exception as exc:  # closed already: no descriptor
        raise DisconnectionError("connection closed") from exc
    if poller.poll(0):
        raise DisconnectionError("the server closed the connection")


def _in_memory(engine: Engine) -> bool:
    """An in-memory SQLite database, which lives in its one connection."""
    url = engine.url
    return url.get_backend_name() == "sqlite" and (
        url.database in (None, "", ":memory:") or url.query.get("mode") == "memory"
    )


def alembic_config(engine: Engine) -> AlembicConfig:
    cfg = AlembicConfig()
    cfg.set_main_option("script_location", str(MIGRATIONS))
    cfg.attributes["engine"] = engine
    return cfg


def _sqlstate(exc: DBAPIError) -> str | None:
    return getattr(exc.orig, "sqlstate", None)


def _is_retryable(exc: DBAPIError) -> bool:
    # 40001 serialization_failure, 40P01 deadlock_detected
    if _sqlstate(exc) in {"40001", "40P01"}:
        return True
    return "database is locked" in str(exc.orig)


@functools.cache
def _script_revisions() -> tuple[str, frozenset[str]]:
    """The head and every revision the code ships (read once: /readyz asks on every probe)."""
    script = ScriptDirectory(str(MIGRATIONS))
    return str(script.get_current_head()), frozenset(r.revision for r in script.walk_revisions())


class _SqliteWriters:
    """The writers of every process on one SQLite file, one at a time: an RLock for the threads
    of this process, and for the outermost holder an exclusive flock of `path`, which the kernel
    hands to the next waiting process as soon as it is released. Reopened after a fork (a lock
    on an inherited descriptor would be shared with the parent)."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._threads = threading.RLock()
        self._depth = 0
        self._fd: int | None = None
        self._pid = 0

    def __enter__(self) -> None:
        self._threads.acquire()
        try:
            if self._depth == 0:
                if self._fd is None or self._pid != os.getpid():
                    self._fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o600)
                    self._pid = os.getpid()
                fcntl.flock(self._fd, fcntl.LOCK_EX)
            self._depth += 1
        except BaseException:
            self._threads.release()
            raise

    def __exit__(self, *_exc: object) -> None:
        self._depth -= 1
        try:
            if self._depth == 0 and self._fd is not None:
                fcntl.flock(self._fd, fcntl.LOCK_UN)
        finally:
            self._threads.release()


class Database:
    """One engine and its session factory; `transaction()` is the unit of work."""

    def __init__(self, url: str, *, pool_size: int = 5, statement_timeout_ms: int = 0) -> None:
        self.url = url
        self.engine = make_engine(
            url, pool_size=pool_size, statement_timeout_ms=statement_timeout_ms
        )
        self.sessions = sessionmaker(self.engine, expire_on_commit=False)
        # SQLite has one write lock, and a writer that finds it taken sleeps in growing steps
        # (SQLite's busy handler: 1, 2, 5, 10 ... ms) before it looks again. Writers queue on a
        # lock of ours instead, where the next one starts the moment the lock is free: threads
        # of a process on an RLock, processes (gunicorn workers, the worker, the CLI) on a file
        # lock beside the database. PostgreSQL locks rows, so writers run together.
        in_memory = _in_memory(self.engine)
        self._writer: contextlib.AbstractContextManager = contextlib.nullcontext()
        if self.dialect == "sqlite":
            self._writer = (
                threading.RLock()
                if in_memory
                else _SqliteWriters(Path(str(self.engine.url.database) + ".writer"))
            )
        reading = self.engine.execution_options(read_only=True)
        self.read_sessions = sessionmaker(reading, expire_on_commit=False)
        # Short reads (a SCIM GET) run on connections of their own in autocommit: no
        # BEGIN/ROLLBACK around them. Each statement reads one snapshot, as it does inside a
        # READ COMMITTED transaction; reads that need one snapshot for several statements, or
        # stream, use `read()`. An in-memory SQLite database lives in its one connection.
        self._own_lookup_engine = not in_memory
        self.lookup_engine = (
            make_engine(
                url,
                pool_size=pool_size,
                statement_timeout_ms=statement_timeout_ms,
                autocommit=True,
            )
            if self._own_lookup_engine
            else reading
        )

    @property
    def dialect(self) -> str:
        return self.engine.dialect.name

    @contextmanager
    def transaction(self) -> Iterator[Session]:
        """Everything inside commits together or not at all."""
        with self._writer, self.sessions() as session, session.begin():
            yield session

    def run(self, work: Callable[[Session], T], *, attempts: int = 4) -> T:
        """`work` in a transaction of its own, run again from the start when the database
        says the transaction lost a race it may win next time (PostgreSQL serialization
        failure or deadlock, SQLite still locked after its busy timeout). `work` must do
        nothing outside the database that it cannot repeat."""
        for attempt in range(1, attempts + 1):
            try:
                with self.transaction() as session:
                    return work(session)
            except DBAPIError as exc:
                if attempt == attempts or not _is_retryable(exc):
                    raise
                log.info("transaction retried (%s), attempt %d", _sqlstate(exc), attempt + 1)
                time.sleep(random.uniform(0.01, 0.05) * attempt)
        raise AssertionError("unreachable")

    @contextmanager
    def read(self) -> Iterator[Session]:
        """A session for reading; on SQLite it does not take the write lock."""
        with self.read_sessions() as session:
            yield session

    @contextmanager
    def lookup(self) -> Iterator[Connection]:
        """A Core connection for a short read of a few statements that does not stream its
        results (a SCIM GET): like `read()` without the ORM session, in autocommit (no BEGIN
        and ROLLBACK), from a pool of its own."""
        with self.lookup_engine.connect() as connection:
            yield connection

    # --- schema ---------------------------------------------------------------------------

    def head_revision(self) -> str:
        return _script_revisions()[0]

    def current_revision(self) -> str | None:
        with self.engine.connect() as conn:
            return MigrationContext.configure(conn).get_current_revision()

    def schema_state(self) -> SchemaState:
        current = self.current_revision()
        if current is None:
            tables = set(inspect(self.engine).get_table_names()) - {"alembic_version"}
            return SchemaState.EMPTY if not tables else SchemaState.UNKNOWN
        head, known = _script_revisions()
        if current == head:
            return SchemaState.CURRENT
        return SchemaState.OUTDATED if current in known else SchemaState.UNKNOWN

    def upgrade(self, revision: str = "head") -> None:
        command.upgrade(alembic_config(self.engine), revision)

    def downgrade(self, revision: str) -> None:
        command.downgrade(alembic_config(self.engine), revision)

    def ping(self) -> None:
        with self.engine.connect() as conn:
            conn.execute(text("select 1"))

    def dispose(self) -> None:
        self.engine.dispose()
        if self._own_lookup_engine:
            self.lookup_engine.dispose()

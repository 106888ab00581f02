"""Shared fixtures.

Databases: every test that asks for `database` (or anything built on it: `app`, `client`, `scim`)
runs once per database in --databases (default: sqlite and postgresql). PostgreSQL tests use a
database of their own, created for this run and dropped at its end, so nothing is left behind for
the next run; if the server cannot be reached they are skipped with the reason shown.
"""

from __future__ import annotations

import os
import shutil
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import create_engine, text

from gateway.store import Database
from gateway.store.models import Base

PG_ADMIN_URL = os.environ.get(
    "SCIMGATE_TEST_PG_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/test"
)


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addoption(
        "--databases",
        default=os.environ.get("SCIMGATE_TEST_DATABASES", "sqlite,postgresql"),
        help="comma-separated databases to run the database tests on (sqlite, postgresql)",
    )


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    if "db_kind" in metafunc.fixturenames:
        kinds = [k.strip() for k in metafunc.config.getoption("databases").split(",") if k.strip()]
        metafunc.parametrize("db_kind", kinds, scope="session")


class _PgServer:
    """One throwaway PostgreSQL database per test run (and per xdist worker)."""

    def __init__(self) -> None:
        self.error: str | None = None
        self.name = f"scimgate_test_{uuid.uuid4().hex[:12]}"
        self.admin = create_engine(PG_ADMIN_URL, isolation_level="AUTOCOMMIT")
        try:
            with self.admin.connect() as conn:
                conn.execute(text(f'create database "{self.name}"'))
        except Exception as exc:  # server absent: the tests say so and skip
            self.error = f"PostgreSQL at {PG_ADMIN_URL} not reachable: {exc.__class__.__name__}"
        self.url = PG_ADMIN_URL.rsplit("/", 1)[0] + "/" + self.name

    def create_database(self, suffix: str) -> str:
        name = f"{self.name}_{suffix}"
        with self.admin.connect() as conn:
            conn.execute(text(f'create database "{name}"'))
        return PG_ADMIN_URL.rsplit("/", 1)[0] + "/" + name

    def drop_all(self) -> None:
        if self.error:
            return
        with self.admin.connect() as conn:
            names = conn.execute(
                text("select datname from pg_database where datname like :p"),
                {"p": self.name + "%"},
            ).scalars()
            for name in list(names):
                conn.execute(text(f'drop database if exists "{name}" with (force)'))
        self.admin.dispose()


@pytest.fixture(scope="session")
def pg_server() -> Iterator[_PgServer]:
    server = _PgServer()
    yield server
    server.drop_all()


@pytest.fixture(scope="session")
def migrated_database(
    db_kind: str, tmp_path_factory: pytest.TempPathFactory, request
) -> Iterator[Database]:
    """The schema built once per database kind by running every migration from empty."""
    if db_kind == "sqlite":
        path = tmp_path_factory.mktemp("sqlite") / "template.db"
        db = Database(f"sqlite:///{path}")
    elif db_kind == "postgresql":
        server: _PgServer = request.getfixturevalue("pg_server")
        if server.error:
            pytest.skip(server.error)
        db = Database(server.url)
    else:
        raise pytest.UsageError(f"unknown database kind {db_kind!r}")
    db.upgrade()
    yield db
    db.dispose()


def _clean(db: Database) -> None:
    tables = [t.name for t in reversed(Base.metadata.sorted_tables)]
    with db.engine.begin() as conn:
        if db.dialect == "postgresql":
            conn.execute(text("truncate " + ", ".join(f'"{t}"' for t in tables) + " cascade"))
        else:
            for table in tables:
                conn.execute(text(f'delete from "{table}"'))


@pytest.fixture
def database(migrated_database: Database) -> Iterator[Database]:
    """A migrated, empty database for one test."""
    _clean(migrated_database)
    yield migrated_database


@pytest.fixture
def sqlite_path(tmp_path: Path) -> Path:
    return tmp_path / "scimgate.db"


@pytest.fixture
def data_dir(tmp_path: Path) -> Iterator[Path]:
    path = tmp_path / "data"
    path.mkdir()
    yield path
    shutil.rmtree(path, ignore_errors=True)


# --- the application ----------------------------------------------------------------------------


@pytest.fixture
def config(database: Database, tmp_path: Path):
    from gateway.config import Config

    return Config.from_env(
        {
            "GATEWAY_DATA_DIR": str(tmp_path / "data"),
            "GATEWAY_DATABASE_URL": database.url,
            "GATEWAY_PUBLIC_URL": "https://scim.example.test",
            "GATEWAY_SECRET_KEY": "test-secret-key-0123456789",
        }
    )


@pytest.fixture
def app(config, database: Database):
    from gateway.app import create_app

    application = create_app(config, database=database)
    application.testing = True
    return application


@pytest.fixture
def client(app):
    return app.test_client()


class ScimClient:
    """A Flask test client speaking SCIM for one organization with its bearer token."""

    def __init__(self, client, org_id: str, token: str) -> None:
        self.client = client
        self.org_id = org_id
        self.token = token
        self.base = f"/scim/v2/{org_id}"
        self.content_type = "application/scim+json"

    def headers(self, extra: dict | None = None) -> dict:
        headers = {"Authorization": f"Bearer {self.token}"}
        headers.update(extra or {})
        return headers

    def request(self, method: str, path: str, json=None, headers=None, **kw):
        url = path if path.startswith("/scim/") else self.base + path
        kwargs = dict(headers=self.headers(headers), **kw)
        if json is not None:
            import json as jsonlib

            kwargs["data"] = jsonlib.dumps(json)
            kwargs["content_type"] = self.content_type
        return self.client.open(url, method=method, **kwargs)

    def get(self, path, **kw):
        return self.request("GET", path, **kw)

    def post(self, path, json=None, **kw):
        return self.request("POST", path, json=json, **kw)

    def put(self, path, json=None, **kw):
        return self.request("PUT", path, json=json, **kw)

    def patch(self, path, json=None, **kw):
        return self.request("PATCH", path, json=json, **kw)

    def delete(self, path, **kw):
        return self.request("DELETE", path, **kw)


def make_org(database: Database, name: str = "Acme", **kw):
    """An organization and a SCIM token for it: (org id, raw token)."""
    from gateway.orgs import create_org
    from gateway.tokens import issue_token

    with database.transaction() as session:
        org = create_org(session, name, **kw)
        issued = issue_token(session, org=org)
        return org.id, issued.secret


@pytest.fixture
def new_org(database: Database):
    """Make another organization with a token: new_org("Globex") -> (org id, raw token)."""

    def make(name: str, **kw):
        return make_org(database, name, **kw)

    return make


@pytest.fixture
def scim(client, database: Database) -> ScimClient:
    org_id, token = make_org(database)
    return ScimClient(client, org_id, token)


@pytest.fixture
def smtp():
    """A real SMTP server (aiosmtpd) on loopback that keeps what it receives."""
    from test_lifecycle_servers import MailServer

    server = MailServer().start()
    yield server
    server.stop()

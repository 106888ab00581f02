"""The ground floor: migrations, configuration, organizations, tokens, health and readiness."""

from __future__ import annotations

import json
import logging
import sqlite3
import uuid
from pathlib import Path

import pytest
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from click.testing import CliRunner
from sqlalchemy import inspect, text

from gateway.cli import main
from gateway.config import Config, ConfigError
from gateway.logs import JsonFormatter, redact
from gateway.store import Database, SchemaState
from gateway.store.models import Base

# --- migrations ------------------------------------------------------------------------------


@pytest.fixture
def empty_database(db_kind: str, tmp_path: Path, request) -> Database:
    if db_kind == "sqlite":
        return Database(f"sqlite:///{tmp_path / 'empty.db'}")
    server = request.getfixturevalue("pg_server")
    if server.error:
        pytest.skip(server.error)
    return Database(server.create_database(tmp_path.name[-20:].lower().replace("-", "_")))


def test_migrations_from_empty_build_exactly_the_models(empty_database: Database) -> None:
    db = empty_database
    assert db.schema_state() is SchemaState.EMPTY
    db.upgrade()
    assert db.schema_state() is SchemaState.CURRENT
    with db.engine.connect() as conn:
        diff = compare_metadata(MigrationContext.configure(conn), Base.metadata)
    assert diff == [], f"models and migrations disagree: {diff}"
    tables = set(inspect(db.engine).get_table_names())
    assert {"organizations", "members", "directory_users", "outbox", "api_tokens"} <= tables
    db.dispose()


def test_migrations_downgrade_to_empty_and_up_again(empty_database: Database) -> None:
    db = empty_database
    db.upgrade()
    db.downgrade("base")
    assert db.schema_state() is SchemaState.EMPTY
    db.upgrade()
    assert db.schema_state() is SchemaState.CURRENT
    db.dispose()


def test_sqlite_runs_in_wal_mode_with_foreign_keys(tmp_path: Path) -> None:
    db = Database(f"sqlite:///{tmp_path / 'x.db'}")
    with db.engine.connect() as conn:
        assert conn.execute(text("pragma journal_mode")).scalar() == "wal"
        assert conn.execute(text("pragma foreign_keys")).scalar() == 1


def test_unknown_revision_is_reported_not_guessed(empty_database: Database) -> None:
    db = empty_database
    db.upgrade()
    with db.engine.begin() as conn:
        conn.execute(text("update alembic_version set version_num = 'ffff'"))
    assert db.schema_state() is SchemaState.UNKNOWN
    db.dispose()


# --- configuration ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("name", "value", "expected"),
    [
        (
            "GATEWAY_WEB_WORKERS",
            "many",
            "GATEWAY_WEB_WORKERS='many' is not valid: expected a whole number",
        ),
        ("GATEWAY_WEB_WORKERS", "0", "expected a whole number of at least 1"),
        (
            "GATEWAY_PUBLIC_URL",
            "scim.example.com",
            "GATEWAY_PUBLIC_URL='scim.example.com' is not valid: expected an absolute",
        ),
        (
            "GATEWAY_DATABASE_URL",
            "mysql://x/y",
            "GATEWAY_DATABASE_URL='mysql://x/y' is not valid: "
            "expected sqlite:///PATH or postgresql",
        ),
        ("GATEWAY_LOG_FORMAT", "xml", "expected one of text, json"),
        ("GATEWAY_BIND", "8080", "expected HOST:PORT"),
        ("GATEWAY_SECRET_KEY", "short", "GATEWAY_SECRET_KEY is too short"),
    ],
)
def test_invalid_setting_names_the_variable_and_what_is_expected(
    tmp_path: Path, name: str, value: str, expected: str
) -> None:
    with pytest.raises(ConfigError) as err:
        Config.from_env({"GATEWAY_DATA_DIR": str(tmp_path), name: value})
    assert expected in str(err.value)


def test_invalid_setting_stops_the_cli_with_the_message(tmp_path: Path) -> None:
    result = CliRunner().invoke(
        main, ["org", "list"], env={"GATEWAY_DATA_DIR": str(tmp_path), "GATEWAY_WEB_WORKERS": "-3"}
    )
    assert result.exit_code == 1
    assert "GATEWAY_WEB_WORKERS='-3' is not valid" in result.output
    assert "Traceback" not in result.output


def test_defaults_put_sqlite_and_a_private_secret_key_in_the_data_dir(tmp_path: Path) -> None:
    config = Config.from_env({"GATEWAY_DATA_DIR": str(tmp_path / "d")})
    assert config.database_url == f"sqlite:///{tmp_path / 'd' / 'scimgate.db'}"
    key_file = tmp_path / "d" / "secret_key"
    assert key_file.stat().st_mode & 0o777 == 0o600
    assert (
        Config.from_env({"GATEWAY_DATA_DIR": str(tmp_path / "d")}).secret_key == config.secret_key
    )


def test_plain_postgresql_url_uses_psycopg3(tmp_path: Path) -> None:
    config = Config.from_env(
        {"GATEWAY_DATA_DIR": str(tmp_path), "GATEWAY_DATABASE_URL": "postgresql://u@h:5432/db"}
    )
    assert config.database_url == "postgresql+psycopg://u@h:5432/db"


def test_config_markdown_lists_every_setting() -> None:
    result = CliRunner().invoke(main, ["config", "--markdown"])
    assert result.exit_code == 0
    assert "`GATEWAY_DATABASE_URL`" in result.output and "`GATEWAY_PUBLIC_URL`" in result.output


# --- organizations and tokens through the CLI ---------------------------------------------------


@pytest.fixture
def cli(database: Database, tmp_path: Path):
    env = {
        "GATEWAY_DATA_DIR": str(tmp_path / "data"),
        "GATEWAY_DATABASE_URL": database.url,
        "GATEWAY_PUBLIC_URL": "https://gw.example.test",
    }
    runner = CliRunner()

    def run(*args: str, ok: bool = True):
        result = runner.invoke(main, list(args), env=env)
        if ok:
            assert result.exit_code == 0, result.output
        return result

    return run


def test_org_create_prints_id_and_scim_base_url(cli) -> None:
    out = json.loads(
        cli("org", "create", "Acme Corp", "--plan", "enterprise", "--seats", "25", "--json").output
    )
    assert out["name"] == "Acme Corp" and out["plan"] == "enterprise" and out["seats"] == 25
    assert out["scim_base_url"] == f"https://gw.example.test/scim/v2/{out['id']}"
    text_out = cli("org", "create", "Globex").output
    assert "SCIM base URL: https://gw.example.test/scim/v2/" in text_out


def test_org_list_shows_the_clients_table(cli, database: Database) -> None:
    from gateway.store.models import Member

    acme = json.loads(cli("org", "create", "Acme", "--seats", "10", "--json").output)
    cli("org", "create", "Globex", "--plan", "enterprise", "--seats", "3", "--seat-limit", "5")
    with database.transaction() as session:
        for i, status in enumerate(["invited", "accepted", "confirmed", "revoked", "staged"]):
            session.add(
                Member(
                    org_id=acme["id"],
                    email=f"u{i}@acme.test",
                    email_lower=f"u{i}@acme.test",
                    status=status,
                )
            )
    lines = cli("org", "list").output.splitlines()
    assert lines[0].split() == ["Client", "Plan", "Assigned", "Used", "Remaining", "Id"]
    assert lines[1].split()[:5] == ["Acme", "Teams", "10", "3", "7"]
    assert lines[2].split()[:5] == ["Globex", "Enterprise", "3", "0", "3"]
    rows = json.loads(cli("org", "list", "--json").output)
    assert [(r["name"], r["used"], r["remaining"], r["seat_limit"]) for r in rows] == [
        ("Acme", 3, 7, None),
        ("Globex", 0, 3, 5),
    ]


def test_org_create_rejects_duplicates_and_bad_limits(cli) -> None:
    cli("org", "create", "Acme")
    dup = cli("org", "create", "ACME", ok=False)
    assert dup.exit_code == 1 and "an organization named 'ACME' exists already" in dup.output
    bad = cli("org", "create", "Initech", "--seats", "10", "--seat-limit", "5", ok=False)
    assert bad.exit_code == 1 and "seat limit (5) is below the assigned seats (10)" in bad.output


def test_token_create_list_revoke_by_org_name_or_id(cli, database: Database, client) -> None:
    org = json.loads(cli("org", "create", "Acme", "--json").output)
    issued = json.loads(cli("token", "create", "--org", "acme", "--json").output)
    assert issued["token"].startswith("sgt_") and issued["org_id"] == org["id"]
    by_id = json.loads(cli("token", "create", "--org", org["id"], "--json").output)
    assert by_id["token"] != issued["token"]

    auth = {"Authorization": f"Bearer {issued['token']}"}
    assert (
        client.get(f"/scim/v2/{org['id']}/ServiceProviderConfig", headers=auth).status_code == 200
    )

    listing = json.loads(cli("token", "list", "--org", "Acme", "--json").output)
    assert {t["id"] for t in listing} == {issued["id"], by_id["id"]}
    assert all(issued["token"] not in json.dumps(t) for t in listing)
    used = next(t for t in listing if t["id"] == issued["id"])
    assert used["last_used"] is not None and used["prefix"] == issued["prefix"]
    assert issued["token"] not in cli("token", "list").output

    assert "Revoked token" in cli("token", "revoke", issued["id"]).output
    assert (
        client.get(f"/scim/v2/{org['id']}/ServiceProviderConfig", headers=auth).status_code == 401
    )
    other = {"Authorization": f"Bearer {by_id['token']}"}
    assert (
        client.get(f"/scim/v2/{org['id']}/ServiceProviderConfig", headers=other).status_code == 200
    )


def test_token_for_unknown_org_says_how_to_find_one(cli) -> None:
    result = cli("token", "create", "--org", "nope", ok=False)
    assert result.exit_code == 1
    assert "no organization with id or name 'nope' (see `scimgate org list`)" in result.output


def test_raw_token_is_not_in_the_database_file(tmp_path: Path) -> None:
    env = {"GATEWAY_DATA_DIR": str(tmp_path)}
    runner = CliRunner()
    assert runner.invoke(main, ["db", "upgrade"], env=env).exit_code == 0
    org = json.loads(runner.invoke(main, ["org", "create", "Acme", "--json"], env=env).output)
    token = json.loads(
        runner.invoke(main, ["token", "create", "--org", org["id"], "--json"], env=env).output
    )
    conn = sqlite3.connect(tmp_path / "scimgate.db")
    conn.execute("pragma wal_checkpoint(truncate)")
    conn.close()
    secret = token["token"].split("_", 2)[2]
    for path in tmp_path.glob("scimgate.db*"):
        content = path.read_bytes()
        assert token["token"].encode() not in content and secret.encode() not in content


def test_wrong_and_foreign_tokens_are_rejected_alike(client, new_org) -> None:
    acme, acme_token = new_org("Acme")
    globex, globex_token = new_org("Globex")
    url = f"/scim/v2/{acme}/Users"
    answers = []
    for header in (
        None,
        "Bearer sgt_0000000000000000_nottherightsecret",
        f"Bearer {acme_token[:-2]}xx",
        f"Bearer {globex_token}",
        "Basic dXNlcjpwYXNz",
    ):
        response = client.get(url, headers={"Authorization": header} if header else {})
        answers.append((response.status_code, response.get_json()["detail"]))
        assert response.headers["WWW-Authenticate"].startswith("Bearer")
    assert {a[0] for a in answers} == {401}
    # the foreign token's answer is word for word a wrong token's
    assert answers[1] == answers[3]
    # the bare token without "Bearer" is accepted, as some IdPs send it
    assert client.get(url, headers={"Authorization": acme_token}).status_code == 200
    assert (
        client.get(
            f"/scim/v2/{globex}/Users", headers={"Authorization": f"Bearer {globex_token}"}
        ).status_code
        == 200
    )


@pytest.fixture
def new_database_url(db_kind: str, tmp_path: Path, request) -> str:
    """A database with nothing in it yet, as a fresh install has: a new SQLite file, or an
    empty PostgreSQL database."""
    if db_kind == "sqlite":
        return f"sqlite:///{tmp_path / 'new' / 'scimgate.db'}"
    server = request.getfixturevalue("pg_server")
    if server.error:
        pytest.skip(server.error)
    return server.create_database(f"new_{uuid.uuid4().hex[:8]}")


def _cli(url: str, tmp_path: Path, *args: str):  # type: ignore[no-untyped-def]
    env = {"GATEWAY_DATABASE_URL": url, "GATEWAY_DATA_DIR": str(tmp_path / "data")}
    return CliRunner().invoke(main, list(args), env=env)


def test_cli_creates_the_schema_of_a_new_database_on_first_use(
    new_database_url: str, tmp_path: Path
) -> None:
    created = _cli(new_database_url, tmp_path, "org", "create", "Acme")
    assert created.exit_code == 0, created.output
    assert "note: the database was empty: created the scimgate schema in it" in created.output
    listed = _cli(new_database_url, tmp_path, "org", "list")
    assert listed.exit_code == 0 and "Acme" in listed.output
    assert "note:" not in listed.output  # once only
    db = Database(new_database_url)
    try:
        assert db.schema_state() is SchemaState.CURRENT
    finally:
        db.dispose()


def test_cli_refuses_an_outdated_database_and_names_the_command(
    new_database_url: str, tmp_path: Path
) -> None:
    db = Database(new_database_url)
    try:
        db.upgrade("0001")
    finally:
        db.dispose()
    result = _cli(new_database_url, tmp_path, "org", "list")
    assert result.exit_code == 1
    assert "the database schema is out of date: run `scimgate db upgrade`" in result.output
    db = Database(new_database_url)
    try:
        assert db.current_revision() == "0001"  # left for the operator to migrate
    finally:
        db.dispose()


# --- health and readiness --------------------------------------------------------------------


def test_healthz_and_readyz_answer_200_on_a_current_schema(client) -> None:
    assert client.get("/healthz").get_json() == {"status": "ok"}
    ready = client.get("/readyz")
    assert ready.status_code == 200 and ready.get_json()["schema"] == "current"


def test_readyz_is_503_when_the_database_is_gone(db_kind: str, tmp_path: Path, request) -> None:
    from gateway.app import create_app

    if db_kind == "sqlite":
        db = Database(f"sqlite:///{tmp_path / 'gone' / 'db.sqlite'}")
        db.upgrade()
        app = create_app(Config.from_env({"GATEWAY_DATA_DIR": str(tmp_path)}), database=db)
        assert app.test_client().get("/readyz").status_code == 200
        db.dispose()
        for path in (tmp_path / "gone").iterdir():
            path.unlink()
        (tmp_path / "gone").rmdir()
    else:
        server = request.getfixturevalue("pg_server")
        if server.error:
            pytest.skip(server.error)
        url = server.create_database("gone")
        db = Database(url)
        db.upgrade()
        app = create_app(Config.from_env({"GATEWAY_DATA_DIR": str(tmp_path)}), database=db)
        assert app.test_client().get("/readyz").status_code == 200
        db.dispose()
        with server.admin.connect() as conn:
            conn.execute(text(f'drop database "{url.rsplit("/", 1)[1]}" with (force)'))
    response = app.test_client().get("/readyz")
    assert response.status_code == 503
    assert response.get_json()["status"] == "unavailable"


def test_requests_get_an_id_and_the_token_never_reaches_the_log(scim, caplog) -> None:
    caplog.set_level(logging.INFO, logger="gateway.access")
    response = scim.get("/Users?filter=userName%20eq%20%22secret%40x.test%22")
    assert response.status_code == 200
    request_id = response.headers["X-Request-Id"]
    assert len(request_id) == 32
    logged = "\n".join(JsonFormatter().format(r) for r in caplog.records)
    assert f"/scim/v2/{scim.org_id}/Users" in logged
    assert scim.token not in logged and "secret%40x.test" not in logged
    assert client_request_id_is_kept(scim)


def client_request_id_is_kept(scim) -> bool:
    response = scim.get("/ServiceProviderConfig", headers={"X-Request-Id": "idp-abc.123"})
    return response.headers["X-Request-Id"] == "idp-abc.123"


def test_redact_scrubs_tokens_and_bearer_values() -> None:
    line = "auth failed for Bearer abc.def and sgt_0123456789abcdef_SECRETsecret-_x"
    assert redact(line) == "auth failed for Bearer [redacted] and sgt_[redacted]"


def test_invitation_links_are_not_written_to_the_access_log(client, caplog) -> None:
    caplog.set_level(logging.INFO, logger="gateway.access")
    client.get("/invite/.eJwSECRETtokenvalue.Signature")
    logged = "\n".join(JsonFormatter().format(r) for r in caplog.records)
    assert "SECRETtokenvalue" not in logged
    assert "/invite/<token>" in logged

"""Prebuilt SELECTs on the driver's cursor (gateway.store.prebuilt): the same rows as
SQLAlchemy's own execution, and a dropped connection leaves the pool as it would there."""

from __future__ import annotations

import time
from datetime import UTC, datetime

import psycopg
import pytest
from sqlalchemy import bindparam, select, text
from sqlalchemy.exc import DBAPIError
from test_store_retry import create_engine_for

from gateway.store.models import DirectoryUser
from gateway.store.prebuilt import PrebuiltSelect

USER = "urn:ietf:params:scim:schemas:core:2.0:User"

BY_ORG = select(
    DirectoryUser.id,
    DirectoryUser.user_name,
    DirectoryUser.external_id,  # NULL unless the IdP sent one
    DirectoryUser.resource,
    DirectoryUser.created_at,
    DirectoryUser.version,
).where(DirectoryUser.org_id == bindparam("org_id"), DirectoryUser.source == "scim")


def test_rows_are_those_sqlalchemy_returns(scim, database, new_org):
    for name in ("ana", "Bjørn", 'quote"d'):
        body = {"schemas": [USER], "userName": name}
        if name == "ana":
            body["externalId"] = "00u-ana"
        assert scim.post("/Users", body).status_code == 201
    prebuilt = PrebuiltSelect(BY_ORG.order_by(DirectoryUser.user_name))
    with database.lookup() as connection:
        ours = prebuilt.rows(connection, {"org_id": scim.org_id})
        theirs = list(connection.execute(prebuilt.statement, {"org_id": scim.org_id}))
    assert [tuple(r) for r in ours] == [tuple(r) for r in theirs]
    assert [r.user_name for r in ours] == sorted(["ana", "Bjørn", 'quote"d'])
    first = ours[0]
    # Converted as the columns' types say: JSON decoded, timestamps aware and in UTC.
    assert first.resource["userName"] == first.user_name
    assert first.created_at.utcoffset() == UTC.utcoffset(None)
    assert abs((datetime.now(UTC) - first.created_at).total_seconds()) < 60
    assert first.version == 1
    assert {r.user_name: r.external_id for r in ours}["ana"] == "00u-ana"
    assert {r.user_name: r.external_id for r in ours}["Bjørn"] is None
    # Another organization's rows are not returned, and nothing matches gives no rows.
    other, _ = new_org("Globex")
    with database.lookup() as connection:
        assert prebuilt.rows(connection, {"org_id": other}) == []
        # Autocommit: the read leaves no transaction open on the driver's connection.
        assert not _in_transaction(connection.connection.driver_connection)


def _in_transaction(driver) -> bool:  # type: ignore[no-untyped-def]
    if isinstance(driver, psycopg.Connection):
        return driver.info.transaction_status != psycopg.pq.TransactionStatus.IDLE
    return driver.in_transaction  # sqlite3


def test_a_missing_parameter_is_an_error_not_a_null(database):
    with database.lookup() as connection, pytest.raises(ValueError, match="org_id"):
        PrebuiltSelect(BY_ORG).rows(connection, {})


def test_parameters_it_cannot_bind_as_sqlalchemy_would_are_refused(database):
    since = select(DirectoryUser.id).where(DirectoryUser.created_at > bindparam("since"))
    listed = select(DirectoryUser.id).where(DirectoryUser.id.in_(bindparam("ids", expanding=True)))
    for statement, params in ((since, {"since": datetime.now(UTC)}), (listed, {"ids": ["x"]})):
        with database.lookup() as connection, pytest.raises(ValueError, match=next(iter(params))):
            PrebuiltSelect(statement).rows(connection, params)


def test_runs_inside_a_write_transaction(scim, database):
    """On a session's connection it sees the transaction's own uncommitted rows."""
    assert scim.post("/Users", {"schemas": [USER], "userName": "x"}).status_code == 201
    prebuilt = PrebuiltSelect(BY_ORG)
    with database.transaction() as session:
        session.execute(
            text("update directory_users set version = 9 where org_id = :o"), {"o": scim.org_id}
        )
        rows = prebuilt.rows(session.connection(), {"org_id": scim.org_id})
        assert [r.version for r in rows] == [9]
        session.rollback()
    with database.lookup() as connection:
        assert [r.version for r in prebuilt.rows(connection, {"org_id": scim.org_id})] == [1]


def test_a_connection_the_server_dropped_mid_request_is_discarded(scim, database, db_kind):
    if db_kind != "postgresql":
        pytest.skip("SQLite has no server to drop connections")
    assert scim.post("/Users", {"schemas": [USER], "userName": "ana"}).status_code == 201
    prebuilt = PrebuiltSelect(BY_ORG)
    with database.lookup() as connection:
        pid = connection.exec_driver_sql("select pg_backend_pid()").scalar()
        killer = create_engine_for(database.url)
        with killer.connect() as conn:
            conn.execute(text("select pg_terminate_backend(:p)"), {"p": pid})
            deadline = time.monotonic() + 10
            while conn.execute(
                text("select 1 from pg_stat_activity where pid = :p"), {"p": pid}
            ).first():
                assert time.monotonic() < deadline, "terminated backend did not exit"
                time.sleep(0.02)
        killer.dispose()
        with pytest.raises(DBAPIError) as raised:
            prebuilt.rows(connection, {"org_id": scim.org_id})
        assert raised.value.connection_invalidated
        assert isinstance(raised.value.orig, psycopg.OperationalError)
        assert connection.invalidated
    # The next read gets a live connection.
    with database.lookup() as connection:
        assert [r.user_name for r in prebuilt.rows(connection, {"org_id": scim.org_id})] == ["ana"]

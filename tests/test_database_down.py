"""The database away: a served gateway (real gunicorn, real PostgreSQL) answers 503 with
Retry-After in each surface's own form (SCIM error, API JSON, plain console page), writes one log
line per request and no traceback, and serves again as soon as the database is back, without a
restart."""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path

import pytest
import requests
from gateway_processes import Served
from sqlalchemy import text

from gateway.accounts import create_admin, issue_api_key
from gateway.orgs import create_org
from gateway.store import Database
from gateway.tokens import issue_token

USER = "urn:ietf:params:scim:schemas:core:2.0:User"
BULK = "urn:ietf:params:scim:api:messages:2.0:BulkRequest"
SCIM_ERROR = "urn:ietf:params:scim:api:messages:2.0:Error"
PASSWORD = "correct horse battery staple"


@pytest.fixture
def pg_url(pg_server, tmp_path: Path) -> str:
    if pg_server.error:
        pytest.skip(pg_server.error)
    url = pg_server.create_database("down" + tmp_path.name[-8:].replace("-", "_").lower())
    db = Database(url)
    db.upgrade()
    db.dispose()
    return url


@pytest.fixture
def node(pg_url: str, tmp_path: Path) -> Iterator[Served]:
    env = {
        "GATEWAY_DATABASE_URL": pg_url,
        "GATEWAY_WEB_WORKERS": "1",
        # The SCIM token stays trusted, so requests get past authentication to the database.
        "GATEWAY_TOKEN_CACHE_SECONDS": "3600",
    }
    served = Served(tmp_path / "node", "--no-worker", "--no-demo", env=env)
    try:
        served.wait_ready()
        yield served
    finally:
        served.stop()


def _bulk(n: int) -> dict:
    return {
        "schemas": [BULK],
        "Operations": [
            {
                "method": "POST",
                "path": "/Users",
                "bulkId": "b",
                "data": {"schemas": [USER], "userName": f"bulk{n}@acme.example"},
            }
        ],
    }


def test_database_down_answers_503_everywhere_and_recovers_without_restart(
    node: Served, pg_url: str, pg_server
) -> None:
    db = Database(pg_url)
    with db.transaction() as session:
        org = create_org(session, "Acme")
        scim_token = issue_token(session, org=org).secret
        admin = create_admin(session, "ops@msp.example", role="provider_admin", password=PASSWORD)
        api_token = issue_api_key(session, admin.id, description="tests").secret
        org_id = org.id
    db.dispose()
    scim = requests.Session()
    scim.headers.update(
        {"Authorization": f"Bearer {scim_token}", "Content-Type": "application/scim+json"}
    )
    base = f"{node.url}/scim/v2/{org_id}"
    api = requests.Session()
    api.headers["Authorization"] = f"Bearer {api_token}"
    browser = requests.Session()
    page = browser.get(node.url + "/console/login", timeout=10).text
    csrf = re.search(r'name="csrf_token" value="([^"]+)"', page).group(1)
    signed_in = browser.post(
        node.url + "/console/login",
        data={"csrf_token": csrf, "email": "ops@msp.example", "password": PASSWORD},
        allow_redirects=False,
        timeout=10,
    )
    assert signed_in.status_code == 302
    assert scim.get(base + "/Users", timeout=10).status_code == 200  # the token is cached now

    name = pg_url.rsplit("/", 1)[1]
    with pg_server.admin.connect() as conn:
        conn.execute(text(f'alter database "{name}" allow_connections false'))
        conn.execute(
            text("select pg_terminate_backend(pid) from pg_stat_activity where datname = :n"),
            {"n": name},
        )
    try:
        answers = {
            "scim get": scim.get(base + "/Users", timeout=30),
            "scim post": scim.post(
                base + "/Users", json={"schemas": [USER], "userName": "a@acme.example"}, timeout=30
            ),
            "scim bulk": scim.post(base + "/Bulk", json=_bulk(1), timeout=30),
            "api": api.get(node.url + "/api/v1/orgs", timeout=30),
            "console": browser.get(node.url + "/console/", timeout=30),
        }
        for what, response in answers.items():
            assert response.status_code == 503, (what, response.text[:300])
            assert response.headers["Retry-After"] == "5", what
        for what in ("scim get", "scim post", "scim bulk"):
            body = answers[what].json()
            assert answers[what].headers["Content-Type"] == "application/scim+json"
            assert body["schemas"] == [SCIM_ERROR] and body["status"] == "503", what
            assert "database is unavailable" in body["detail"]
        assert answers["api"].json() == {
            "error": {
                "type": "database_unavailable",
                "message": "the database is unavailable; retry later",
            }
        }
        assert answers["console"].headers["Content-Type"].startswith("text/html")
        assert "the database is unavailable" in answers["console"].text
    finally:
        with pg_server.admin.connect() as conn:
            conn.execute(text(f'alter database "{name}" allow_connections true'))

    # Back, with the same processes.
    assert scim.get(base + "/Users", timeout=30).status_code == 200
    created = scim.post(
        base + "/Users", json={"schemas": [USER], "userName": "b@acme.example"}, timeout=30
    )
    assert created.status_code == 201
    assert scim.post(base + "/Bulk", json=_bulk(2), timeout=30).status_code == 200
    assert api.get(node.url + "/api/v1/orgs", timeout=30).status_code == 200
    assert browser.get(node.url + "/console/", timeout=30).status_code == 200

    log = node.stop()
    unavailable = [line for line in log.splitlines() if "database unavailable" in line]
    assert len(unavailable) == 5, unavailable
    assert "Traceback" not in log


def test_a_database_nobody_listens_on_answers_503(tmp_path: Path) -> None:
    from gateway.app import create_app
    from gateway.config import Config

    config = Config.from_env(
        {
            "GATEWAY_DATA_DIR": str(tmp_path / "data"),
            # A real PostgreSQL URL on a port where nothing listens.
            "GATEWAY_DATABASE_URL": "postgresql+psycopg://postgres@127.0.0.1:9/scimgate",
            "GATEWAY_SECRET_KEY": "test-secret-key-0123456789",
        }
    )
    client = create_app(config).test_client()
    response = client.get(
        "/scim/v2/some-org/Users", headers={"Authorization": "Bearer sgt_0123456789abcdef_secret"}
    )
    assert response.status_code == 503
    assert response.headers["Retry-After"] == "5"
    assert response.json["schemas"] == [SCIM_ERROR]
    api = client.get(
        "/api/v1/orgs", headers={"Authorization": "Bearer sga_0123456789abcdef_secret"}
    )
    assert api.status_code == 503
    assert api.json["error"]["type"] == "database_unavailable"
    assert client.get("/readyz").status_code == 503

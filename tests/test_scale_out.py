"""Several gateway processes on one PostgreSQL: web nodes agree, and a node that loses its
database says so on /readyz."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from pathlib import Path

import pytest
import requests
from gateway_processes import Served
from sqlalchemy import text

from gateway.orgs import create_org
from gateway.store import Database
from gateway.tokens import issue_token

USER = "urn:ietf:params:scim:schemas:core:2.0:User"


@pytest.fixture
def pg_url(pg_server, tmp_path: Path) -> str:
    if pg_server.error:
        pytest.skip(pg_server.error)
    url = pg_server.create_database("scale" + tmp_path.name[-8:].replace("-", "_").lower())
    db = Database(url)
    db.upgrade()
    db.dispose()
    return url


@pytest.fixture
def org(pg_url: str) -> tuple[str, str]:
    db = Database(pg_url)
    with db.transaction() as session:
        created = create_org(session, "Acme", seats=100)
        token = issue_token(session, org=created).secret
        org_id = created.id
    db.dispose()
    return org_id, token


@pytest.fixture
def two_nodes(pg_url: str, tmp_path: Path) -> Iterator[list[Served]]:
    env = {"GATEWAY_DATABASE_URL": pg_url, "GATEWAY_WEB_WORKERS": "1"}
    nodes = [Served(tmp_path / f"node{i}", "--no-worker", "--no-demo", env=env) for i in range(2)]
    try:
        for node in nodes:
            node.wait_ready()
        yield nodes
    finally:
        for node in nodes:
            node.stop()


def test_two_web_nodes_share_one_organization(two_nodes: list[Served], org) -> None:
    org_id, token = org
    auth = {"Authorization": f"Bearer {token}"}
    bases = [f"{n.url}/scim/v2/{org_id}" for n in two_nodes]
    ids = []
    for i in range(10):
        created = requests.post(
            bases[i % 2] + "/Users",
            json={"schemas": [USER], "userName": f"user{i}@acme.test"},
            headers=auth,
            timeout=10,
        )
        assert created.status_code == 201, created.text
        ids.append(created.json()["id"])
    # whatever node wrote it, either node reads it back
    for i, user_id in enumerate(ids):
        got = requests.get(f"{bases[(i + 1) % 2]}/Users/{user_id}", headers=auth, timeout=10)
        assert got.status_code == 200 and got.json()["userName"] == f"user{i}@acme.test"
    listed = requests.get(bases[1] + "/Users?count=0", headers=auth, timeout=10).json()
    assert listed["totalResults"] == 10


def test_same_user_name_posted_to_both_nodes_at_once_is_created_once(
    two_nodes: list[Served], org
) -> None:
    org_id, token = org
    auth = {"Authorization": f"Bearer {token}"}
    barrier = threading.Barrier(2)
    statuses: list[int] = []

    def post(node: Served) -> None:
        barrier.wait()
        response = requests.post(
            f"{node.url}/scim/v2/{org_id}/Users",
            json={"schemas": [USER], "userName": "Twice@acme.test"},
            headers=auth,
            timeout=10,
        )
        statuses.append(response.status_code)

    threads = [threading.Thread(target=post, args=(n,)) for n in two_nodes]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sorted(statuses) == [201, 409]


def test_readyz_reports_a_node_that_lost_its_database(
    two_nodes: list[Served], pg_url: str, pg_server
) -> None:
    node = two_nodes[0]
    assert requests.get(node.url + "/readyz", timeout=10).status_code == 200
    with pg_server.admin.connect() as conn:
        conn.execute(text(f'drop database "{pg_url.rsplit("/", 1)[1]}" with (force)'))
    response = requests.get(node.url + "/readyz", timeout=15)
    assert response.status_code == 503
    assert response.json() == {"status": "unavailable", "database": "unreachable"}
    assert requests.get(node.url + "/healthz", timeout=10).status_code == 200

"""`scimgate serve` as the README runs it: a real gunicorn on loopback with SQLite."""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path

import pytest
import requests
from gateway_processes import Served
from prometheus_client.parser import text_string_to_metric_families

from gateway.store import Database


@pytest.fixture
def served(tmp_path: Path) -> Iterator[Served]:
    server = Served(tmp_path / "data")
    yield server
    server.stop()


def test_serve_on_empty_database_prints_demo_org_once_and_serves_scim(tmp_path: Path) -> None:
    server = Served(tmp_path / "data")
    try:
        server.wait_ready()
        # the banner is printed before gunicorn starts, so it is in the pipe by now
        banner, base, token = server.demo_settings()
        # stdout is a pipe here, as under a service manager: the token is in a file, not the log
        token_file = tmp_path / "data" / "demo-token"
        assert f"Bearer token:  in {token_file} (readable only by this user)" in banner
        assert "Organization:  Demo" in banner
        assert base.startswith(server.url + "/scim/v2/")
        auth = {"Authorization": f"Bearer {token}"}
        spc = requests.get(base + "/ServiceProviderConfig", headers=auth, timeout=5)
        assert spc.status_code == 200
        assert spc.headers["Content-Type"] == "application/scim+json"
        created = requests.post(
            base + "/Users",
            json={
                "schemas": ["urn:ietf:params:scim:schemas:core:2.0:User"],
                "userName": "ada@example.test",
            },
            headers=auth,
            timeout=5,
        )
        assert created.status_code == 201, created.text
        assert created.headers["Location"] == created.json()["meta"]["location"]
        assert created.headers["Location"].startswith(base + "/Users/")
        assert requests.get(base + "/Users", timeout=5).status_code == 401
        # /metrics adds up what both gunicorn workers counted
        for _ in range(4):
            requests.get(base + "/ServiceProviderConfig", headers=auth, timeout=5)
        counted = {
            (s.labels["route"], s.labels["method"], s.labels["status"]): s.value
            for family in text_string_to_metric_families(
                requests.get(server.url + "/metrics", timeout=5).text
            )
            if family.name == "scimgate_http_requests"
            for s in family.samples
            if s.name == "scimgate_http_requests_total"
        }
        assert counted[("/scim/v2/<org_id>/ServiceProviderConfig", "GET", "200")] == 5
        assert counted[("/scim/v2/<org_id>/<endpoint>", "POST", "201")] == 1
    finally:
        output = server.stop()
    assert token not in banner + output, "the token is not written to the log"
    # every request's access line was written by the time the workers stopped (the log
    # writer runs in a thread of each worker: the last lines are flushed on the way out)
    path = base.removeprefix(server.url)
    assert output.count(f"GET {path}/ServiceProviderConfig 200") == 5
    assert re.search(rf"POST {re.escape(path)}/Users 201 ", output)
    assert output.count(f"GET {path}/Users 401") == 1

    again = Served(tmp_path / "data")
    try:
        again.wait_ready()
    finally:
        second = again.stop()
    assert "Bearer token:" not in second


def test_serve_refuses_an_outdated_schema_and_says_what_to_run(tmp_path: Path) -> None:
    db = Database(f"sqlite:///{tmp_path / 'data' / 'scimgate.db'}")
    db.upgrade("0001")
    if db.head_revision() == "0001":
        pytest.skip("only one migration exists: no outdated state to show")
    db.dispose()
    server = Served(tmp_path / "data")
    assert server.proc.wait(timeout=30) == 1
    output = server.stop()
    assert "the database schema is out of date: run `scimgate db upgrade`" in output

    upgraded = Served(tmp_path / "data", "--upgrade")
    try:
        upgraded.wait_ready()
    finally:
        upgraded.stop()

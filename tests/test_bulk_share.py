"""One organization's parallel Bulks cannot take every app thread of a real `scimgate serve`
worker: past its share they get 429 with Retry-After, and another organization is answered
while the admitted Bulks still run (issue #16, item 3)."""

from __future__ import annotations

import json
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import requests
from gateway_processes import Served

from gateway.orgs import create_org
from gateway.store import Database
from gateway.tokens import issue_token

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "bench"))
from bench_hostile_groups import bulk_of_groups, user_body

SCIM_JSON = "application/scim+json"


@pytest.fixture
def served(db_kind: str, pg_server, tmp_path: Path) -> Iterator[tuple[Served, dict]]:
    """One web worker with its 4 app threads (so every connection meets the same threads),
    and organizations A and B with a token each."""
    data_dir = tmp_path / "data"
    if db_kind == "postgresql":
        if pg_server.error:
            pytest.skip(pg_server.error)
        url = pg_server.create_database("bulkshare" + tmp_path.name[-8:].lower())
    else:
        data_dir.mkdir()
        url = f"sqlite:///{data_dir / 'scimgate.db'}"
    db = Database(url)
    db.upgrade()
    orgs = {}
    with db.transaction() as session:
        for name in ("A", "B"):
            org = create_org(session, f"Org {name}")
            orgs[name] = (org.id, issue_token(session, org=org).secret)
    db.dispose()
    env = {"GATEWAY_WEB_WORKERS": "1", "GATEWAY_DATABASE_URL": url}
    server = Served(data_dir, "--no-demo", "--threads", "4", env=env)
    try:
        server.wait_ready()
        yield server, orgs
    finally:
        server.stop()


def _post(server: Served, org: tuple[str, str], path: str, body: dict) -> requests.Response:
    org_id, token = org
    return requests.post(
        f"{server.url}/scim/v2/{org_id}{path}",
        data=json.dumps(body),
        headers={"Authorization": f"Bearer {token}", "Content-Type": SCIM_JSON},
        timeout=300,
    )


def test_org_b_is_served_while_org_a_sends_more_bulks_than_its_share(served) -> None:
    server, orgs = served
    answers: list[tuple[float, requests.Response]] = []

    def bulk(n: int) -> None:
        response = _post(server, orgs["A"], "/Bulk", bulk_of_groups(f"a{n}"))
        answers.append((time.monotonic(), response))

    # As many Bulks as the worker has app threads: before the share, they held all four.
    clients = [threading.Thread(target=bulk, args=(n,), daemon=True) for n in range(4)]
    for client in clients:
        client.start()
    time.sleep(1.5)  # every Bulk has arrived and runs (or was refused)

    response = _post(server, orgs["B"], "/Users", user_body("b"))
    b_answered = time.monotonic()
    assert response.status_code == 201, response.text

    # Org B was answered before any admitted Bulk of org A finished: it did not wait for a
    # thread to come free.
    finished = [at for at, r in answers if r.status_code == 200]
    assert not finished or b_answered < min(finished)
    refused = [r for _, r in answers if r.status_code == 429]
    assert len(refused) == 2
    for r in refused:
        assert r.headers["Retry-After"].isdigit()
        assert r.headers["Content-Type"].startswith(SCIM_JSON)
        assert r.json()["status"] == "429"
        assert "Bulk" in r.json()["detail"]

    for client in clients:
        client.join(timeout=300)
    ok = [r for _, r in answers if r.status_code == 200]
    assert len(ok) == 2
    assert all(op["status"] == "201" for r in ok for op in r.json()["Operations"])


def test_an_organizations_bulk_share_follows_the_workers_app_threads(app):
    """`scimgate serve --threads 6` gives an organization 3 Bulks at once per worker, not the
    default's 2: the web worker tells the app how many threads it has."""
    from gateway.scim.bulk_share import bulks_per_org
    from gateway.serve import WsgiBridge
    from gateway.serve_limits import ServeLimits

    assert bulks_per_org(app.config) == 2  # the default 4 threads, before any worker wraps it
    WsgiBridge(app, ServeLimits(threads=6))
    assert bulks_per_org(app.config) == 3
    WsgiBridge(app, ServeLimits(threads=1))
    assert bulks_per_org(app.config) == 1

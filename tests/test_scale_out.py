"""Several gateway processes on one PostgreSQL: web nodes agree, a node that loses its database
says so on /readyz, workers share the outbox and a killed worker loses nothing."""

from __future__ import annotations

import asyncio
import os
import signal
import threading
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
import requests
from gateway_processes import Served
from sqlalchemy import select, text
from test_lifecycle_servers import MailServer

from gateway.app import create_app
from gateway.config import Config
from gateway.orgs import create_org
from gateway.store import Database
from gateway.store.models import OutboxMessage
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


# --- workers: the outbox is shared, claimed with SKIP LOCKED, and survives a killed worker ----


class HangingMailServer(MailServer):
    """Real SMTP that keeps the first message's DATA waiting and never accepts it, so the worker
    sending it is caught mid-delivery."""

    def __init__(self) -> None:
        super().__init__()
        self.hung = 0

    async def handle_DATA(self, server, session, envelope):  # type: ignore[no-untyped-def]
        if self.hung == 0:
            self.hung += 1
            await asyncio.sleep(60)
            return "451 4.3.0 gave up"
        return await super().handle_DATA(server, session, envelope)


def _invite(pg_url: str, org_id: str, token: str, tmp_path: Path, n: int) -> None:
    """n SCIM users through the gateway app: each one becomes an invitation in the outbox."""
    db = Database(pg_url)
    config = Config.from_env(
        {"GATEWAY_DATA_DIR": str(tmp_path / "app"), "GATEWAY_DATABASE_URL": pg_url}
    )
    client = create_app(config, database=db).test_client()
    for i in range(n):
        response = client.post(
            f"/scim/v2/{org_id}/Users",
            json={"schemas": [USER], "userName": f"u{i}-{uuid.uuid4().hex[:6]}@acme.test"},
            headers={"Authorization": f"Bearer {token}"},
        )
        assert response.status_code == 201, response.get_data(as_text=True)
    db.dispose()


def _outbox(pg_url: str) -> list[OutboxMessage]:
    db = Database(pg_url)
    with db.read() as session:
        rows = list(
            session.scalars(select(OutboxMessage).where(OutboxMessage.kind == "invitation"))
        )
    db.dispose()
    return rows


def _workers(pg_url: str, mail: MailServer, tmp_path: Path, *names: str) -> list[Served]:
    env = {
        "GATEWAY_DATABASE_URL": pg_url,
        "GATEWAY_WORKER_POLL_SECONDS": "1",
        "GATEWAY_OUTBOX_LEASE_SECONDS": "3",
        "GATEWAY_SMTP_DEADLINE_SECONDS": "2",
        "GATEWAY_WEBHOOK_DEADLINE_SECONDS": "2",
        **mail.env(),
    }
    return [Served(tmp_path / name, command="worker", env=env) for name in names]


def _wait(condition, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return
        time.sleep(0.1)
    raise AssertionError("timed out")


def test_two_workers_deliver_each_invitation_exactly_once(pg_url, org, tmp_path: Path) -> None:
    org_id, token = org
    mail = MailServer().start()
    workers = _workers(pg_url, mail, tmp_path, "a", "b")
    try:
        _invite(pg_url, org_id, token, tmp_path, 24)
        _wait(lambda: all(m.status == "sent" for m in _outbox(pg_url)))
    finally:
        for w in workers:
            w.stop()
        mail.stop()
    ids = [m["Message-ID"] for m in mail.messages]
    assert len(ids) == 24 and len(set(ids)) == 24
    assert {m.message_id for m in _outbox(pg_url)} == set(ids)


def test_a_worker_killed_mid_delivery_loses_nothing(pg_url, org, tmp_path: Path) -> None:
    org_id, token = org
    mail = HangingMailServer().start()
    try:
        _invite(pg_url, org_id, token, tmp_path, 1)
        (first,) = _workers(pg_url, mail, tmp_path, "first")
        try:
            _wait(lambda: mail.hung == 1)  # the first worker is inside the SMTP conversation
            os.kill(first.proc.pid, signal.SIGKILL)
            first.proc.wait(timeout=10)
        finally:
            first.stop()
        assert _outbox(pg_url)[0].status == "pending"
        (second,) = _workers(pg_url, mail, tmp_path, "second")
        try:
            _wait(lambda: _outbox(pg_url)[0].status == "sent")
        finally:
            second.stop()
    finally:
        mail.stop()
    (message,) = _outbox(pg_url)
    assert [m["Message-ID"] for m in mail.messages] == [message.message_id]
    assert message.attempts == 1

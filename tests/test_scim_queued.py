"""GATEWAY_SCIM_APPLY=queued: a SCIM write commits what the IdP sent and a pending change; the
engine applies pending changes in batches (a thread of the web process, every worker round).

What a user relies on: the answer to the IdP is the same as inline; every write is applied, once,
soon after; a failed batch loses nothing; the organization ends where a full reconcile says it
should, and where the inline engine takes it.
"""

from __future__ import annotations

import dataclasses
import random
import threading
import time

import pytest
from hypothesis import given
from hypothesis import strategies as st
from sqlalchemy import func, select
from test_metrics import samples
from test_provisioning_properties import PROPERTY_SETTINGS, World
from test_provisioning_rules import (
    GROUP,
    USER,
    another_org,
    configure,
    full_plan,
    members,
    org_groups,
)

from gateway.outbox import worker
from gateway.provisioning import queue
from gateway.scim.errors import Uniqueness
from gateway.scim.schema import GROUP_TYPE, USER_TYPE
from gateway.scim.service import ScimService
from gateway.store.models import DirectoryUser, Member, OutboxMessage, PendingChange


@pytest.fixture
def queued_app(config, database):
    from gateway.app import create_app

    application = create_app(dataclasses.replace(config, scim_apply="queued"), database=database)
    application.testing = True
    yield application
    application.extensions["scimgate"].drainer.stop()


@pytest.fixture
def queued(queued_app, scim, database):
    """A SCIM client of the queued app, for an organization of its own."""
    return another_org(type(scim)(queued_app.test_client(), "", ""), database, "Queued")


def pending(database) -> int:
    with database.read() as session:
        return session.scalar(select(func.count()).select_from(PendingChange))


def settle(database, timeout: float = 20) -> None:
    """Until nothing is pending (the web process's thread may be applying a batch right now:
    its rows go only when it commits)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        queue.drain(database)
        if pending(database) == 0:
            return
        time.sleep(0.05)
    raise AssertionError(f"{pending(database)} changes still pending after {timeout}s")


def user(name: str, active: bool = True) -> dict:
    return {
        "schemas": [USER],
        "userName": f"{name}@acme.com",
        "name": {"givenName": name.title(), "familyName": "Test"},
        "active": active,
    }


def queue_writes(database, org_id: str, names: list[str], group: str | None = None) -> list[str]:
    """SCIM writes in queued mode with nobody applying them (as if the process died after
    answering): the service as the routes call it, without a drainer."""
    with database.transaction() as session:
        service = ScimService(session, org_id, "https://scim.example.test", queued=lambda: None)
        ids = [service.create(USER_TYPE, user(n)).row.id for n in names]
        if group:
            service.create(
                GROUP_TYPE,
                {
                    "schemas": [GROUP],
                    "displayName": group,
                    "members": [{"value": i} for i in ids],
                },
            )
    return ids


def invitations(database, org_id: str) -> list[str]:
    with database.read() as session:
        return [
            p["email"]
            for p in session.scalars(
                select(OutboxMessage.payload).where(
                    OutboxMessage.org_id == org_id, OutboxMessage.kind == "invitation"
                )
            )
        ]


def test_queued_write_answers_as_inline_and_the_member_follows(queued, scim, database):
    inline = scim.post("/Users", json=user("ana"))
    answered = queued.post("/Users", json=user("ana"))
    assert answered.status_code == inline.status_code == 201
    body, expected = answered.get_json(), inline.get_json()
    for doc in (body, expected):
        doc.pop("id")
        doc.pop("meta")
    assert body == expected
    group = queued.post(
        "/Groups",
        json={
            "schemas": [GROUP],
            "displayName": "Sales",
            "members": [{"value": answered.get_json()["id"]}],
        },
    )
    assert group.status_code == 201
    settle(database)
    assert members(database, queued.org_id)["ana@acme.com"]["status"] == "invited"
    assert members(database, queued.org_id)["ana@acme.com"]["groups"] == {"Sales"}
    assert invitations(database, queued.org_id) == ["ana@acme.com"]
    # A deactivation goes the same way: the member is revoked once it is applied.
    queued.patch(
        f"/Users/{answered.get_json()['id']}",
        json={
            "schemas": ["urn:ietf:params:scim:api:messages:2.0:PatchOp"],
            "Operations": [{"op": "replace", "path": "active", "value": False}],
        },
    )
    settle(database)
    assert members(database, queued.org_id)["ana@acme.com"]["status"] == "revoked"


def test_a_queued_user_that_clashes_writes_neither_user_nor_change(database, new_org):
    """A POST whose userName or externalId is taken is refused (409) and has written no
    directory user and queued no change, and the transaction goes on (on PostgreSQL the clashing
    INSERT skips its row instead of ending the transaction); whoever applies is woken once."""
    org_id, _ = new_org("Clash")
    woken: list[int] = []
    with database.transaction() as session:
        service = ScimService(
            session, org_id, "https://scim.example.test", queued=lambda: woken.append(1)
        )
        service.create(USER_TYPE, {**user("ana"), "externalId": "00u-ana"})
        clashes = [
            ({**user("ANA"), "externalId": "00u-other"}, "userName"),
            ({**user("bob"), "externalId": "00u-ana"}, "externalId"),
        ]
        for body, attribute in clashes:
            with pytest.raises(Uniqueness, match=attribute):
                service.create(USER_TYPE, body)
            # Still usable: nothing of the refused write is in the transaction.
            assert session.scalar(select(func.count()).select_from(PendingChange)) == 1
            assert session.scalar(select(func.count()).select_from(DirectoryUser)) == 1
        created = service.create(USER_TYPE, user("carol"))
        assert created.document["userName"] == "carol@acme.com"
        assert session.scalar(select(func.count()).select_from(PendingChange)) == 2
        assert woken == []  # whoever applies is woken once the changes are committed
    assert woken == [1]
    settle(database)
    assert set(members(database, org_id)) == {"ana@acme.com", "carol@acme.com"}


def test_queued_changes_wait_in_the_database_until_applied(database, new_org):
    org_id, _ = new_org("Durable")
    queue_writes(database, org_id, ["ana", "bob", "cy"], group="Sales")
    # Committed: the directory has them, the org layer not yet.
    assert pending(database) == 4
    assert members(database, org_id) == {}
    assert queue.drain(database) == 4
    assert pending(database) == 0
    got = members(database, org_id)
    assert {e: (m["status"], m["groups"]) for e, m in got.items()} == {
        f"{n}@acme.com": ("invited", {"Sales"}) for n in ("ana", "bob", "cy")
    }
    assert sorted(invitations(database, org_id)) == [f"{n}@acme.com" for n in ("ana", "bob", "cy")]
    assert queue.drain(database) == 0  # applied once


def test_a_failed_batch_keeps_its_changes_for_the_next_try(database, new_org, monkeypatch):
    org_id, _ = new_org("Flaky")
    queue_writes(database, org_id, ["ana", "bob"])
    real = queue.apply_delta

    def broken(*args, **kwargs):
        real(*args, **kwargs)  # everything written, then the transaction fails
        raise RuntimeError("the database went away")

    monkeypatch.setattr(queue, "apply_delta", broken)
    assert queue.drain(database) == 0
    assert pending(database) == 2
    assert members(database, org_id) == {}
    assert invitations(database, org_id) == []
    monkeypatch.setattr(queue, "apply_delta", real)
    assert queue.drain(database) == 2
    assert set(members(database, org_id)) == {"ana@acme.com", "bob@acme.com"}
    assert len(invitations(database, org_id)) == 2


def test_the_worker_applies_what_web_processes_left_pending(database, new_org, config):
    org_id, _ = new_org("Orphaned")
    queue_writes(database, org_id, ["ana"])
    worker.load_handlers()
    worker.run_round(database, config)
    assert pending(database) == 0
    assert members(database, org_id)["ana@acme.com"]["status"] == "invited"


def test_metrics_show_the_queued_changes(database, new_org, client):
    org_id, _ = new_org("Counted")
    queue_writes(database, org_id, ["ana", "bob"])
    assert samples(client)[("scimgate_queued_scim_changes", ())] == 2
    queue.drain(database)
    assert samples(client)[("scimgate_queued_scim_changes", ())] == 0


def test_concurrent_drainers_apply_each_change_once(database, new_org, db_kind):
    org_ids = [new_org(f"Org {i}")[0] for i in range(3)]
    for org_id in org_ids:
        for chunk in range(4):
            queue_writes(database, org_id, [f"u{chunk}-{i}" for i in range(25)])
    assert pending(database) == 3 * 4 * 25
    errors: list[BaseException] = []

    def drain() -> None:
        try:
            queue.drain(database, batch=30)
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=drain) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=120)
    assert not errors
    settle(database)
    for org_id in org_ids:
        with database.read() as session:
            count = session.scalar(
                select(func.count()).select_from(Member).where(Member.org_id == org_id)
            )
        assert count == 100
        sent = invitations(database, org_id)
        assert len(sent) == len(set(sent)) == 100


@PROPERTY_SETTINGS
@given(data=st.data())
def test_after_queued_changes_are_applied_a_full_reconcile_finds_nothing(queued, database, data):
    world = World(queued, database)
    world.seed(data)
    for _ in range(data.draw(st.integers(min_value=3, max_value=10))):
        world.step(data)
    settle(database)
    plan = full_plan(database, world.scim.org_id)
    assert not plan, plan.rows()


class Twin:
    """Sends every request to an inline organization and to a queued one, with the queued
    organization's own ids; answers with the inline answer."""

    def __init__(self, inline, queued) -> None:
        self.inline, self.queued = inline, queued
        self.ids: dict[str, str] = {}

    def _translate(self, text: str) -> str:
        for mine, theirs in self.ids.items():
            text = text.replace(mine, theirs)
        return text

    def request(self, method: str, path: str, body: dict | None = None):
        import json

        answer = self.inline.request(method, path, json=body)
        other_body = json.loads(self._translate(json.dumps(body))) if body else None
        other = self.queued.request(method, self._translate(path), json=other_body)
        assert other.status_code == answer.status_code, (path, other.get_json())
        if method == "POST" and answer.status_code == 201:
            self.ids[answer.get_json()["id"]] = other.get_json()["id"]
        return answer


def effective(database, org_id: str) -> dict:
    """What the organization grants: members not revoked, with role and groups."""
    return {
        email: (m["status"], m["role"], m["name"], sorted(m["groups"]))
        for email, m in members(database, org_id).items()
        if m["status"] != "revoked"
    }


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_queued_and_inline_engines_end_in_the_same_organization(scim, queued, database, seed):
    rng = random.Random(seed)
    for client in (scim, queued):
        configure(database, client.org_id, guard_count=10_000)
    twin = Twin(scim, queued)
    users: dict[str, str] = {}
    groups: dict[str, str] = {}
    patch_op = "urn:ietf:params:scim:api:messages:2.0:PatchOp"
    for step in range(60):
        op = rng.choice(["user", "user", "active", "rename", "delete", "group", "add", "remove"])
        if op == "user" or not users:
            name = f"p{step}"
            users[name] = twin.request("POST", "/Users", user(name, rng.random() > 0.2)).get_json()[
                "id"
            ]
        elif op == "active":
            twin.request(
                "PATCH",
                f"/Users/{users[rng.choice(sorted(users))]}",
                {
                    "schemas": [patch_op],
                    "Operations": [
                        {"op": "replace", "path": "active", "value": rng.random() > 0.4}
                    ],
                },
            )
        elif op == "rename":
            name = rng.choice(sorted(users))
            twin.request(
                "PATCH",
                f"/Users/{users[name]}",
                {
                    "schemas": [patch_op],
                    "Operations": [
                        {"op": "replace", "path": "name.givenName", "value": f"G{step}"}
                    ],
                },
            )
        elif op == "delete":
            twin.request("DELETE", f"/Users/{users.pop(rng.choice(sorted(users)))}")
        elif op == "group" or not groups:
            name = f"team{len(groups)}"
            picked = rng.sample(sorted(users), k=min(len(users), rng.randint(0, 3)))
            groups[name] = twin.request(
                "POST",
                "/Groups",
                {
                    "schemas": [GROUP],
                    "displayName": name,
                    "members": [{"value": users[p]} for p in picked],
                },
            ).get_json()["id"]
        elif op in ("add", "remove"):
            group_id = groups[rng.choice(sorted(groups))]
            member = users[rng.choice(sorted(users))]
            operation = {"op": "add", "path": "members", "value": [{"value": member}]}
            if op == "remove":
                operation = {"op": "remove", "path": f'members[value eq "{member}"]'}
            twin.request(
                "PATCH", f"/Groups/{group_id}", {"schemas": [patch_op], "Operations": [operation]}
            )
    settle(database)
    assert effective(database, queued.org_id) == effective(database, scim.org_id)
    assert org_groups(database, queued.org_id) == org_groups(database, scim.org_id)
    assert not full_plan(database, queued.org_id)


def test_an_organization_deleted_with_changes_pending_takes_them_along(database, new_org):
    from gateway.store.models import Organization

    org_id, _ = new_org("Gone")
    queue_writes(database, org_id, ["ana"])
    with database.transaction() as session:
        session.delete(session.get(Organization, org_id))
    assert pending(database) == 0
    assert queue.drain(database) == 0

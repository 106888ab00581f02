"""Webhooks with a real HTTP receiver: every event POSTed as JSON with a unique event id and an
HMAC-SHA256 signature that verifies; failures retried with backoff, then marked failed and
listed; the signing secret is stored encrypted and shown once."""

from __future__ import annotations

import json
import time

import pytest
from sqlalchemy import select, text
from test_lifecycle_servers import Receiver, cli, make_config, make_due, work
from test_provisioning_rules import create_user

from gateway.lifecycle.webhooks import add_endpoint
from gateway.outbox.webhooks import signature, verify_signature
from gateway.store.models import Organization, OutboxMessage, utcnow


@pytest.fixture
def receiver():
    server = Receiver().start()
    yield server
    server.stop()


def add(database, config, org_id: str, url: str, events=()) -> str:
    with database.transaction() as session:
        org = session.get(Organization, org_id)
        return add_endpoint(
            session,
            org,
            url,
            secret_key=make_secret(),
            actor="admin:test",
            events=list(events),
            allow_private=config.webhook_allow_private,
        ).secret


def make_secret() -> str:
    from test_lifecycle_servers import SECRET_KEY

    return SECRET_KEY


def test_events_arrive_signed_with_unique_ids_and_the_signature_verifies(
    scim, database, tmp_path, receiver
):
    config = make_config(database, tmp_path, **receiver.env())
    secret = add(database, config, scim.org_id, receiver.url)
    create_user(scim, "ann@acme.example")
    work(database, config)

    types = [json.loads(r.body)["type"] for r in receiver.requests]
    assert types == ["organization.seats_grown", "member.invited"]  # Acme had no seat to spare
    request = receiver.requests[1]
    assert request.path == "/hooks/scimgate?token=abc"
    headers = request.headers
    assert headers["Content-Type"] == "application/json"
    assert verify_signature(
        secret, request.body, headers["X-Scimgate-Timestamp"], headers["X-Scimgate-Signature"]
    )
    assert not verify_signature(
        "whsec_wrong",
        request.body,
        headers["X-Scimgate-Timestamp"],
        headers["X-Scimgate-Signature"],
    )
    assert not verify_signature(  # an old timestamp is a replay
        secret,
        request.body,
        headers["X-Scimgate-Timestamp"],
        headers["X-Scimgate-Signature"],
        now=time.time() + 3600,
    )
    event = json.loads(request.body)
    assert event["id"] == headers["X-Scimgate-Event-Id"] and event["id"].startswith("evt_")
    assert event["organization_id"] == scim.org_id and event["actor"] == "scim"
    assert event["detail"]["email"] == "ann@acme.example"
    assert headers["X-Scimgate-Delivery"].startswith("<")

    create_user(scim, "bob@acme.example")
    work(database, config)
    ids = [r.headers["X-Scimgate-Event-Id"] for r in receiver.requests]
    assert len(ids) == len(set(ids)) == 4


def test_subscriptions_choose_event_types_and_a_removed_endpoint_gets_nothing(
    scim, database, tmp_path, receiver
):
    config = make_config(database, tmp_path, **receiver.env())
    add(database, config, scim.org_id, receiver.url, events=["member.accepted", "organization.*"])
    create_user(scim, "ann@acme.example")
    work(database, config)
    assert [json.loads(r.body)["type"] for r in receiver.requests] == ["organization.seats_grown"]

    listed = cli(database, tmp_path, "webhooks", "list", "--json")
    (endpoint,) = json.loads(listed.output)
    assert endpoint["url"] == receiver.url.split("?")[0]  # no query string shown
    create_user(scim, "bob@acme.example")  # queued for the endpoint ...
    removed = cli(database, tmp_path, "webhooks", "remove", endpoint["id"])
    assert removed.exit_code == 0, removed.output
    create_user(scim, "cy@acme.example")  # ... and after the removal, nothing is queued
    work(database, config)
    assert len(receiver.requests) == 1
    with database.read() as session:
        webhook_rows = session.scalars(
            select(OutboxMessage.status).where(OutboxMessage.kind == "webhook")
        ).all()
    assert webhook_rows == ["sent", "sent"]  # the first one, and the one dropped with its endpoint


def test_failures_are_retried_with_backoff_then_marked_failed_and_listed(
    scim, database, tmp_path, receiver
):
    config = make_config(database, tmp_path, GATEWAY_OUTBOX_MAX_ATTEMPTS="3", **receiver.env())
    add(database, config, scim.org_id, receiver.url, events=["member.invited"])
    receiver.status = 500
    create_user(scim, "ann@acme.example")
    work(database, config)
    with database.read() as session:
        message = session.scalar(select(OutboxMessage).where(OutboxMessage.kind == "webhook"))
    assert (message.status, message.attempts) == ("pending", 1)
    assert "answered HTTP 500" in message.last_error
    assert 25 <= (message.next_attempt_at - utcnow()).total_seconds() <= 31
    for _ in range(2):
        make_due(database)
        work(database, config)
    assert len(receiver.requests) == 3
    event_ids = {r.headers["X-Scimgate-Event-Id"] for r in receiver.requests}
    assert len(event_ids) == 1  # the same event on every attempt

    failed = cli(database, tmp_path, "webhooks", "deliveries", "--org", "Acme", "--failed")
    assert failed.exit_code == 0, failed.output
    assert "member.invited" in failed.output and "failed" in failed.output
    assert "answered HTTP 500" in failed.output
    rows = json.loads(
        cli(database, tmp_path, "webhooks", "deliveries", "--org", "Acme", "--json").output
    )
    assert [(r["status"], r["attempts"]) for r in rows] == [("failed", 3)]


def test_the_secret_is_shown_once_and_stored_encrypted(scim, database, tmp_path, receiver):
    added = cli(database, tmp_path, "webhooks", "add", "--org", "Acme", receiver.url,
                "--events", "member.*,group.created", env=receiver.env())  # fmt: skip
    assert added.exit_code == 0, added.output
    secret = added.output.split("shown only this once): ")[1].split()[0]
    assert secret.startswith("whsec_")
    with database.read() as session:
        stored = session.execute(text("select secret_encrypted, events from webhook_endpoints"))
        encrypted, events = stored.one()
    assert secret not in encrypted and secret not in json.dumps(events)
    assert secret not in cli(database, tmp_path, "webhooks", "list").output
    # The worker decrypts it to sign: the receiver can check what it gets.
    config = make_config(database, tmp_path, **receiver.env())
    create_user(scim, "ann@acme.example")
    work(database, config)
    (request,) = receiver.requests  # member.invited (not organization.seats_grown)
    ts = request.headers["X-Scimgate-Timestamp"]
    assert request.headers["X-Scimgate-Signature"] == signature(secret, ts, request.body)


def test_webhook_endpoints_through_the_admin_api(app, scim, database):
    from gateway.accounts import create_admin, issue_api_key

    with database.transaction() as session:
        admin = create_admin(
            session, "ops@msp.example", role="provider_admin", password="correct horse battery"
        )
        key = issue_api_key(session, admin.id, description="t").secret
    headers = {"Authorization": f"Bearer {key}"}
    client = app.test_client()
    base = f"/api/v1/orgs/{scim.org_id}/webhooks"
    bad = client.post(base, headers=headers, json={"url": "ftp://x"})
    assert bad.status_code == 400 and "http://" in bad.json["error"]["message"]
    made = client.post(
        base, headers=headers, json={"url": "https://hooks.example/x?k=1", "events": ["member.*"]}
    )
    assert made.status_code == 201, made.json
    assert made.json["secret"].startswith("whsec_")
    (listed,) = client.get(base, headers=headers).json
    assert listed["url"] == "https://hooks.example/x" and "secret" not in listed
    assert client.delete(f"{base}/{listed['id']}", headers=headers).status_code == 204
    assert client.get(base, headers=headers).json == []

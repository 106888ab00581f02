"""`scimgate events` (table, --json, --csv, --type, --since) and `record_event(s)`: every event
written through them gets its webhook messages in the same transaction, or none if it rolls back."""

from __future__ import annotations

import csv
import io
import json
from datetime import timedelta

import pytest
from sqlalchemy import func, select
from test_lifecycle_servers import SECRET_KEY, cli
from test_provisioning_rules import create_user

from gateway.events import record_event, record_events, subscribed
from gateway.lifecycle.webhooks import add_endpoint
from gateway.store.models import Event, Organization, OutboxMessage, utcnow


def test_events_cli_filters_by_type_and_time_and_prints_json_or_csv(scim, database, tmp_path):
    create_user(scim, "ann@acme.example")
    create_user(scim, "bob@acme.example")
    with database.transaction() as session:
        record_event(
            session,
            org_id=scim.org_id,
            actor="system",
            type="member.old_news",
            at=utcnow() - timedelta(days=3),
        )

    table = cli(database, tmp_path, "events", "--org", "Acme")
    assert table.exit_code == 0, table.output
    lines = table.output.splitlines()
    assert lines[0].split()[:4] == ["Id", "At", "Actor", "Type"]
    assert "member.old_news" in lines[1]  # latest written first
    assert "member.invited" in lines[2] and "bob@acme.example" in lines[2]

    rows = json.loads(
        cli(database, tmp_path, "events", "--org", "Acme", "--type", "member.*", "--json").output
    )
    assert [r["type"] for r in rows] == ["member.old_news", "member.invited", "member.invited"]
    recent = json.loads(
        cli(database, tmp_path, "events", "--org", "Acme", "--type", "member.*", "--since", "1d",
            "--json").output
    )  # fmt: skip
    assert [r["detail"]["email"] for r in recent] == ["bob@acme.example", "ann@acme.example"]
    exact = json.loads(
        cli(database, tmp_path, "events", "--org", "Acme", "--type", "organization.created",
            "--json").output
    )  # fmt: skip
    assert len(exact) == 1

    exported = cli(database, tmp_path, "events", "--org", "Acme", "--csv", "--since", "2026-01-01")
    parsed = list(csv.DictReader(io.StringIO(exported.output)))
    assert {"member.invited", "organization.created"} <= {r["type"] for r in parsed}

    bad = cli(database, tmp_path, "events", "--org", "Acme", "--since", "last week")
    assert bad.exit_code == 2 and "expected a duration ago" in bad.output


def test_record_events_fans_out_to_subscribed_endpoints_in_the_same_transaction(scim, database):
    with database.transaction() as session:
        org = session.get(Organization, scim.org_id)
        add_endpoint(session, org, "https://a.example/h", secret_key=SECRET_KEY, actor="t")
        add_endpoint(
            session, org, "https://b.example/h", secret_key=SECRET_KEY, actor="t",
            events=["group.*"],
        )  # fmt: skip
    rows = [
        {"org_id": scim.org_id, "actor": "scim", "type": t, "target_type": "group",
         "target_id": str(i), "detail": {"name": f"g{i}"}}
        for i, t in enumerate(["group.created", "access.granted", "webhook.added"])
    ]  # fmt: skip
    with database.transaction() as session:
        record_events(session, rows)
    with database.read() as session:
        sent = session.scalars(
            select(OutboxMessage).where(OutboxMessage.kind == "webhook").order_by(OutboxMessage.id)
        ).all()
    got = [(m.payload["url"], m.payload["event"]["type"]) for m in sent]
    assert got == [
        ("https://a.example/h", "group.created"),
        ("https://b.example/h", "group.created"),
        ("https://a.example/h", "access.granted"),
    ]  # webhook.* events never go to webhooks
    assert len({m.message_id for m in sent}) == 3
    assert sent[0].payload["event"]["id"] == sent[1].payload["event"]["id"]

    with pytest.raises(RuntimeError), database.transaction() as session:
        record_event(session, org_id=scim.org_id, actor="scim", type="group.created")
        raise RuntimeError("the change rolls back")
    with database.read() as session:
        assert session.scalar(select(func.count()).select_from(OutboxMessage)) == 3
        assert session.scalar(select(func.count()).select_from(Event).where(
            Event.type == "group.created")) == 1  # fmt: skip


def test_subscription_patterns():
    assert subscribed([], "member.invited")
    assert subscribed(["member.*"], "member.invited")
    assert not subscribed(["member.*"], "membership.added")
    assert subscribed(["group.created", "*"], "access.granted")
    assert not subscribed(["member.confirmed"], "member.invited")

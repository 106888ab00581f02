"""/metrics: requests and latencies by route; outbox backlog and sync runs from the database."""

from __future__ import annotations

from prometheus_client.parser import text_string_to_metric_families

from gateway.outbox.queue import enqueue
from gateway.store.models import SyncRun, utcnow


def samples(client) -> dict[tuple[str, tuple], float]:
    text = client.get("/metrics").get_data(as_text=True)
    out = {}
    for family in text_string_to_metric_families(text):
        for s in family.samples:
            out[(s.name, tuple(sorted(s.labels.items())))] = s.value
    return out


def test_metrics_count_requests_by_route_template_not_by_id(scim, client) -> None:
    before = samples(client)
    key = (
        "scimgate_http_requests_total",
        (("method", "GET"), ("route", "/scim/v2/<org_id>/<endpoint>"), ("status", "200")),
    )
    for _ in range(3):
        assert scim.get("/Users").status_code == 200
    after = samples(client)
    assert after[key] - before.get(key, 0) == 3
    assert not any(scim.org_id in str(labels) for _, labels in after)
    latency = (
        "scimgate_http_request_duration_seconds_count",
        (("method", "GET"), ("route", "/scim/v2/<org_id>/<endpoint>")),
    )
    assert after[latency] - before.get(latency, 0) == 3


def test_metrics_show_outbox_backlog_and_sync_runs(scim, client, database) -> None:
    with database.transaction() as session:
        enqueue(session, "invitation", {"x": 1}, org_id=scim.org_id)
        enqueue(session, "invitation", {"x": 2}, org_id=scim.org_id)
        session.add(
            SyncRun(
                org_id=scim.org_id,
                connector="ad",
                kind="full",
                status="failed",
                finished_at=utcnow(),
                error="boom",
            )
        )
    found = samples(client)
    assert found[("scimgate_outbox_messages", (("kind", "invitation"), ("status", "pending")))] == 2
    assert found[("scimgate_sync_runs", (("status", "failed"),))] == 1


def test_metrics_count_held_deprovisionings_waiting_for_a_decision(scim, client, database) -> None:
    from gateway.store.models import HeldChange, Member

    with database.transaction() as session:
        member = Member(org_id=scim.org_id, email="a@x.test", email_lower="a@x.test")
        session.add(member)
        session.flush()
        for status in ("pending", "pending", "approved", "dropped"):
            session.add(
                HeldChange(
                    org_id=scim.org_id,
                    member_id=member.id,
                    status=status,
                    kind="member.revoke",
                    change={"kind": "member.revoke"},
                    reason="over the guard's limit",
                    actor="scim",
                )
            )
    assert samples(client)[("scimgate_held_deprovisions", ())] == 2


def test_random_methods_and_paths_add_no_metric_series(client) -> None:
    """Label values come from fixed sets: a client inventing methods and paths cannot grow
    /metrics (each series is kept, and scraped, for the life of the process)."""
    import secrets

    from gateway.metrics import METHODS

    def hostile(n: int) -> None:
        for _ in range(n):
            method = "X" + secrets.token_hex(4).upper()
            client.open(f"/{secrets.token_hex(6)}", method=method)
            client.open("/healthz", method=method)
            client.open(f"/scim/v2/{secrets.token_hex(6)}/Users", method=method)

    hostile(50)
    samples(client)  # the scrape's own series
    series = set(samples(client))
    size = len(client.get("/metrics").get_data())
    hostile(200)
    assert set(samples(client)) == series
    assert len(client.get("/metrics").get_data()) < size + 2_000  # counts grow a digit or two
    methods = {dict(labels).get("method") for _, labels in series} - {None}
    assert methods <= METHODS | {"other"}
    assert "other" in methods

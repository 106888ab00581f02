"""Prometheus metrics at `/metrics`.

Request counts and latencies are counted in each process; under gunicorn every worker writes
them to PROMETHEUS_MULTIPROC_DIR (set by `scimgate serve`) and a scrape adds them up. Queue and
sync figures are read from the database at scrape time, so every node reports the same numbers.
Does not: log, or expose anything about organizations beyond counts.
"""

from __future__ import annotations

import os

from flask import Flask, Response
from prometheus_client import (
    CONTENT_TYPE_LATEST,
    CollectorRegistry,
    Counter,
    Histogram,
    generate_latest,
    multiprocess,
    values,
)
from prometheus_client.core import GaugeMetricFamily
from sqlalchemy import func, select

from gateway.store import Database
from gateway.store.models import HeldChange, OutboxMessage, PendingChange, SyncRun

REQUESTS = Counter(
    "scimgate_http_requests_total", "HTTP requests answered", ["route", "method", "status"]
)
LATENCY = Histogram(
    "scimgate_http_request_duration_seconds",
    "Time to answer an HTTP request",
    ["route", "method"],
    buckets=(0.002, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10),
)


SYNC_DURATION = Histogram(
    "scimgate_sync_run_duration_seconds",
    "Duration of LDAP sync runs (dry runs not counted), by kind (full, delta) and status "
    "(succeeded, held: the guard held changes, failed)",
    ["kind", "status"],
    buckets=(0.1, 0.5, 1, 2, 5, 10, 30, 60, 120, 300, 600, 1800),
)
SYNC_KINDS = frozenset({"full", "delta"})
SYNC_STATUSES = frozenset({"succeeded", "held", "failed"})


class DatabaseCollector:
    """Outbox backlog, sync runs, held deprovisions and queued SCIM changes, straight from the
    database."""

    def __init__(self, db: Database) -> None:
        self.db = db

    def collect(self):  # type: ignore[no-untyped-def]
        backlog = GaugeMetricFamily(
            "scimgate_outbox_messages",
            "Outbox messages not yet delivered, by kind and status",
            labels=["kind", "status"],
        )
        runs = GaugeMetricFamily(
            "scimgate_sync_runs", "LDAP sync runs recorded, by result", labels=["status"]
        )
        held = GaugeMetricFamily("scimgate_held_deprovisions", "Deprovisionings held by the guard")
        queued = GaugeMetricFamily(
            "scimgate_queued_scim_changes",
            "SCIM writes whose engine run is still queued (GATEWAY_SCIM_APPLY=queued)",
        )
        try:
            with self.db.read() as session:
                for kind, status, n in session.execute(
                    select(OutboxMessage.kind, OutboxMessage.status, func.count())
                    .where(OutboxMessage.status != "sent")
                    .group_by(OutboxMessage.kind, OutboxMessage.status)
                ):
                    backlog.add_metric([kind, status], n)
                for status, n in session.execute(
                    select(SyncRun.status, func.count()).group_by(SyncRun.status)
                ):
                    runs.add_metric([status], n)
                held.add_metric(
                    [],
                    session.scalar(
                        select(func.count())
                        .select_from(HeldChange)
                        .where(HeldChange.status == "pending")
                    )
                    or 0,
                )
                queued.add_metric(
                    [], session.scalar(select(func.count()).select_from(PendingChange)) or 0
                )
        except Exception:  # a scrape must not fail because the database is away
            return
        yield from (backlog, runs, held, queued)


# Label values come from fixed sets only, whatever a client sends: every series is one a
# scrape has to carry forever (per process, under gunicorn).
METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"})
UNMATCHED_ROUTE = "unmatched"
_children: dict[tuple[str, str, int], tuple] = {}


def observe_request(route: str | None, method: str, status: int, seconds: float) -> None:
    """Count one answered request (called by the app's after-request hook, which times it).
    `route` is the URL rule that matched (a finite set: the app's routes) or None; a method
    outside METHODS counts as `other`, a status outside 100-599 as 0."""
    route = route or UNMATCHED_ROUTE
    method = method if method in METHODS else "other"
    status = status if 100 <= status <= 599 else 0
    key = (route, method, status)
    children = _children.get(key)
    if children is None:  # a race here only builds the same pair twice
        children = _children[key] = (
            REQUESTS.labels(route, method, str(status)),
            LATENCY.labels(route, method),
        )
    children[0].inc()
    children[1].observe(seconds)


def count_into_files() -> None:
    """From now on, series count into PROMETHEUS_MULTIPROC_DIR. prometheus_client chooses how a
    series keeps its value once, when it is imported, and the CLI imports it (through the
    commands that observe runs) before `serve` has set the directory; every series here has
    labels, so each one is made on first use, after this."""
    values.ValueClass = values.get_value_class()


def observe_sync_run(kind: str, status: str, seconds: float) -> None:
    """One finished sync run, observed by the process that ran it (under `scimgate serve` the
    worker writes to PROMETHEUS_MULTIPROC_DIR, so /metrics adds it in). Labels outside
    SYNC_KINDS / SYNC_STATUSES count as `other`: the series stay a fixed set."""
    SYNC_DURATION.labels(
        kind if kind in SYNC_KINDS else "other", status if status in SYNC_STATUSES else "other"
    ).observe(seconds)


def register(app: Flask, db: Database) -> None:
    registry = CollectorRegistry()
    if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        multiprocess.MultiProcessCollector(registry)
    else:
        for metric in (REQUESTS, LATENCY, SYNC_DURATION):
            registry.register(metric)
    registry.register(DatabaseCollector(db))

    @app.get("/metrics")
    def metrics() -> Response:
        return Response(generate_latest(registry), content_type=CONTENT_TYPE_LATEST)

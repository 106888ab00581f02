"""One organization's slow receiver does not hold the outbox for the others (issue #16, item 2).

Every delivery has a total deadline, whatever the peer trickles: a webhook receiver that sends its
status line and then one header every few seconds, an SMTP server whose greeting never ends. The
worker delivers on a pool of threads; a receiver holds at most its share of it, so another
organization's invitation arrives while the slow receiver is still being waited for, and the
periodic duties (queued SCIM writes) run all along. Real peers throughout: socket servers that
trickle, aiosmtpd, SQLite and PostgreSQL; the worker is `run_forever`, as `scimgate worker` runs.
"""

from __future__ import annotations

import json
import threading
import time
from collections import Counter

import pytest
from sqlalchemy import select
from test_lifecycle_servers import MailServer, Receiver, TricklingServer, make_config, work
from test_provisioning_rules import another_org, create_user
from test_scim_queued import queue_writes
from test_webhooks import add

from gateway.config import Config, ConfigError
from gateway.outbox.worker import run_forever
from gateway.store.models import OutboxMessage

ALLOW_LOOPBACK = {"GATEWAY_WEBHOOK_ALLOW_PRIVATE": "127.0.0.1/32"}


@pytest.fixture
def healthy_receiver():
    server = Receiver().start()
    yield server
    server.stop()


@pytest.fixture
def trickling_receiver():
    server = TricklingServer.http(interval=1.0).start()
    yield server
    server.stop()


def in_thread(fn, *args) -> threading.Thread:
    thread = threading.Thread(target=fn, args=args, daemon=True)
    thread.start()
    return thread


def outbox(database, kind: str) -> list[OutboxMessage]:
    with database.read() as session:
        return list(session.scalars(select(OutboxMessage).where(OutboxMessage.kind == kind)))


def test_a_receiver_trickling_its_headers_is_cut_at_the_deadline_and_retried(
    scim, database, tmp_path, trickling_receiver
):
    config = make_config(database, tmp_path, GATEWAY_WEBHOOK_DEADLINE_SECONDS="3", **ALLOW_LOOPBACK)
    add(database, config, scim.org_id, trickling_receiver.url, events=["member.invited"])
    create_user(scim, "ann@acme.example")

    started = time.monotonic()
    worker = in_thread(work, database, config)
    worker.join(60)  # the old worker waited for the headers' end: for ever
    assert not worker.is_alive(), "the delivery outlived its deadline"
    assert time.monotonic() - started < 30  # 3 s deadline; the margin is for a loaded machine
    (message,) = outbox(database, "webhook")
    assert (message.status, message.attempts) == ("pending", 1)
    assert "no complete answer within the 3 s deadline" in message.last_error
    assert trickling_receiver.connections == 1


def test_an_smtp_server_trickling_its_greeting_is_cut_at_the_deadline_and_retried(
    scim, database, tmp_path
):
    server = TricklingServer.smtp(interval=1.0).start()
    try:
        config = make_config(
            database,
            tmp_path,
            GATEWAY_SMTP_HOST="127.0.0.1",
            GATEWAY_SMTP_PORT=str(server.port),
            GATEWAY_SMTP_SECURITY="none",
            GATEWAY_SMTP_DEADLINE_SECONDS="3",
        )
        create_user(scim, "ann@acme.example")
        worker = in_thread(work, database, config)
        worker.join(60)  # the old worker read greeting lines for ever
        assert not worker.is_alive(), "the SMTP delivery outlived its deadline"
    finally:
        server.stop()
    (message,) = outbox(database, "invitation")
    assert (message.status, message.attempts) == ("pending", 1)
    assert "SMTP 127.0.0.1" in message.last_error
    assert "no complete answer within the 3 s deadline" in message.last_error


def test_a_trickling_receiver_of_one_org_does_not_delay_another_orgs_invitation(
    scim, database, tmp_path, smtp, trickling_receiver, healthy_receiver
):
    config = make_config(
        database,
        tmp_path,
        GATEWAY_WORKER_POLL_SECONDS="1",
        GATEWAY_WEBHOOK_DEADLINE_SECONDS="10",
        GATEWAY_WEBHOOK_PER_RECEIVER="2",
        **ALLOW_LOOPBACK,
        **smtp.env(),
    )
    # Acme's receiver stalls; a dozen of its events are due before anything of Globex's.
    add(database, config, scim.org_id, trickling_receiver.url)
    for name in ("ann", "bob", "cy", "dan", "eve", "fay"):
        create_user(scim, f"{name}@acme.example")
    globex = another_org(scim, database, "Globex")
    add(database, config, globex.org_id, healthy_receiver.url, events=["member.invited"])
    create_user(globex, "gil@globex.example")
    # ... and a write a web process left pending: only the worker's duty applies it.
    queue_writes(database, globex.org_id, ["hal"])
    assert len(outbox(database, "webhook")) >= 12

    stop = threading.Event()
    started = time.monotonic()
    worker = in_thread(run_forever, database, config, stop)
    try:
        wanted = {"gil@globex.example", "hal@acme.com"}
        while time.monotonic() - started < 30 and not wanted <= recipients(smtp):
            time.sleep(0.1)
        waited = time.monotonic() - started
        # The bound; on the old serial worker neither mail came in 9 minutes.
        assert wanted <= recipients(smtp), f"Globex's invitations not delivered in {waited:.0f} s"
        assert {f"{n}@acme.example" for n in ("ann", "bob", "cy")} <= recipients(smtp)
        # Globex's own receiver is not kept waiting behind Acme's either.
        while time.monotonic() - started < 30 and len(healthy_receiver.requests) < 2:
            time.sleep(0.1)
        told = {json.loads(r.body)["detail"]["email"] for r in healthy_receiver.requests}
        assert told == wanted
        assert trickling_receiver.most_open <= 2  # the receiver's share, no more
    finally:
        stop.set()
        worker.join(60)  # deliveries in flight end at their deadline
        trickling_receiver.stop()
    assert not worker.is_alive()
    counts = Counter(m["Message-ID"] for m in smtp.messages)
    assert set(counts.values()) == {1}


def test_one_orgs_many_stalled_endpoints_hold_only_the_orgs_share(
    scim, database, tmp_path, trickling_receiver, healthy_receiver
):
    config = make_config(
        database,
        tmp_path,
        GATEWAY_WORKER_POLL_SECONDS="1",
        GATEWAY_WEBHOOK_DEADLINE_SECONDS="30",
        GATEWAY_WEBHOOK_PER_ORG="2",
        **ALLOW_LOOPBACK,
    )
    for path in ("a", "b", "c", "d"):  # four endpoints, one stalled host
        add(database, config, scim.org_id, f"{trickling_receiver.url}/{path}")
    create_user(scim, "ann@acme.example")
    globex = another_org(scim, database, "Globex")
    add(database, config, globex.org_id, healthy_receiver.url, events=["member.invited"])
    create_user(globex, "gil@globex.example")

    stop = threading.Event()
    started = time.monotonic()
    worker = in_thread(run_forever, database, config, stop)
    try:
        # Looked at well before the 30 s deadline cuts (and replaces) any of the connections.
        while time.monotonic() - started < 20 and not (
            healthy_receiver.requests and trickling_receiver.most_open >= 2
        ):
            time.sleep(0.1)
        assert len(healthy_receiver.requests) == 1  # Globex is served meanwhile
        assert trickling_receiver.most_open == 2  # Acme's share, not the 4 webhook threads
    finally:
        stop.set()
        trickling_receiver.stop()  # ends the deliveries it holds
        worker.join(60)
    assert not worker.is_alive()


def recipients(smtp: MailServer) -> set[str]:
    return {m["To"].addresses[0].addr_spec for m in list(smtp.messages)}


def test_two_workers_with_many_threads_deliver_each_message_once(scim, database, tmp_path, smtp):
    config = make_config(database, tmp_path, GATEWAY_OUTBOX_CONCURRENCY="6", **smtp.env())
    for i in range(30):
        create_user(scim, f"user{i}@acme.example")
    workers = [in_thread(work, database, config) for _ in range(2)]
    for worker in workers:
        worker.join(120)
    assert not any(w.is_alive() for w in workers)
    rows = outbox(database, "invitation")
    assert {(m.status, m.attempts) for m in rows} == {("sent", 1)}
    assert Counter(m["Message-ID"] for m in smtp.messages) == Counter(
        {m.message_id: 1 for m in rows}
    )


@pytest.mark.parametrize(
    ("env", "said"),
    [
        (
            {"GATEWAY_OUTBOX_LEASE_SECONDS": "30"},
            "GATEWAY_SMTP_DEADLINE_SECONDS must be lower than GATEWAY_OUTBOX_LEASE_SECONDS",
        ),
        (
            {"GATEWAY_WEBHOOK_DEADLINE_SECONDS": "120"},
            "GATEWAY_WEBHOOK_DEADLINE_SECONDS must be lower than GATEWAY_OUTBOX_LEASE_SECONDS",
        ),
        (
            {"GATEWAY_OUTBOX_CONCURRENCY": "4"},
            "GATEWAY_WEBHOOK_CONCURRENCY must be lower than GATEWAY_OUTBOX_CONCURRENCY",
        ),
    ],
)
def test_settings_that_let_a_delivery_outlive_its_lease_or_webhooks_take_every_thread_are_refused(
    tmp_path, env, said
):
    with pytest.raises(ConfigError, match=said):
        Config.from_env({"GATEWAY_DATA_DIR": str(tmp_path), **env})

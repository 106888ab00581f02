"""Benchmark (not a test): invitation mail while webhook receivers stall (issue #16, item 2).

For 0, 1, 5 and 20 stalled receivers (each a socket server on loopback that answers its status
line, then one header every 2 s, never finishing), each the endpoint of an organization with
`--events` member events queued ahead of everything else, `--mails` invitations of other
organizations are queued behind them. The worker (`run_forever`, as `scimgate worker` runs it,
default settings unless given) then starts, and the bench reports when the last of those mails
reached a real SMTP server (aiosmtpd on loopback), and the mails per second. The row with no
stalled receiver is the delivery throughput. Each scenario runs on a fresh SQLite file (or a fresh
PostgreSQL database with --pg) and is cut off after --max-seconds.

    .venv/bin/python bench/bench_hostile_webhooks.py [--mails 100] [--events 5] [--pg]
        [--smtp-latency-ms 50] [--set GATEWAY_OUTBOX_CONCURRENCY=16]
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import os
import platform
import sys
import tempfile
import threading
import time
import uuid
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "tests"))  # the real peers the tests use

from sqlalchemy import create_engine, text  # noqa: E402
from test_lifecycle_servers import MailServer, TricklingServer  # noqa: E402

from gateway.app import create_app  # noqa: E402
from gateway.config import Config, Networks  # noqa: E402
from gateway.lifecycle.webhooks import add_endpoint  # noqa: E402
from gateway.orgs import create_org  # noqa: E402
from gateway.outbox.worker import run_forever  # noqa: E402
from gateway.store import Database  # noqa: E402
from gateway.store.models import Organization  # noqa: E402
from gateway.tokens import issue_token  # noqa: E402

USER = "urn:ietf:params:scim:schemas:core:2.0:User"
PG_ADMIN = os.environ.get(
    "SCIMGATE_TEST_PG_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/test"
)


class RelayWithLatency(MailServer):
    """aiosmtpd that answers DATA after `latency` seconds, as a relay across a network does."""

    def __init__(self, latency: float) -> None:
        super().__init__()
        self.latency = latency

    async def handle_DATA(self, server, session, envelope):  # type: ignore[no-untyped-def]
        await asyncio.sleep(self.latency)
        return await super().handle_DATA(server, session, envelope)


class Scenario:
    """A fresh database with `stalled` organizations whose receivers trickle, their events
    queued first, then `mails` invitations of healthy organizations."""

    def __init__(self, args: argparse.Namespace, stalled: int, workdir: Path) -> None:
        self.args, self.stalled = args, stalled
        self.pg_name: str | None = None
        if args.pg:
            self.pg_name = f"scimgate_bench_{uuid.uuid4().hex[:10]}"
            with create_engine(PG_ADMIN, isolation_level="AUTOCOMMIT").connect() as conn:
                conn.execute(text(f'create database "{self.pg_name}"'))
            url = PG_ADMIN.rsplit("/", 1)[0] + "/" + self.pg_name
        else:
            url = f"sqlite:///{workdir / 'bench.db'}"
        self.smtp = RelayWithLatency(args.smtp_latency_ms / 1000).start()
        self.receivers = [TricklingServer.http(interval=2.0).start() for _ in range(stalled)]
        env = {
            "GATEWAY_DATA_DIR": str(workdir / "data"),
            "GATEWAY_DATABASE_URL": url,
            "GATEWAY_PUBLIC_URL": "https://scim.example.test",
            "GATEWAY_SECRET_KEY": "bench-secret-key-0123456789",
            "GATEWAY_WEBHOOK_ALLOW_PRIVATE": "127.0.0.1/32",
            "GATEWAY_WORKER_POLL_SECONDS": "1",
            **self.smtp.env(),
            **{k: v for k, v in args.setting},
        }
        self.config = Config.from_env(env)
        self.db = Database(url)
        self.db.upgrade()
        self.client = create_app(self.config, database=self.db).test_client()

    def org(self, name: str) -> tuple[str, str]:
        with self.db.transaction() as session:
            org = create_org(session, name)
            return org.id, issue_token(session, org=org).secret

    def invite(self, org_id: str, token: str, email: str) -> None:
        response = self.client.post(
            f"/scim/v2/{org_id}/Users",
            json={"schemas": [USER], "userName": email},
            headers={"Authorization": f"Bearer {token}"},
        )
        assert response.status_code == 201, response.get_data(as_text=True)

    def seed(self) -> set[str]:
        """The stalled organizations' events first, then the healthy ones' invitations; returns
        the addresses the bench waits for."""
        for i, receiver in enumerate(self.receivers):
            org_id, token = self.org(f"Stalled {i}")
            with self.db.transaction() as session:
                add_endpoint(
                    session,
                    session.get(Organization, org_id),
                    receiver.url,
                    secret_key=self.config.secret_key,
                    actor="admin:bench",
                    events=["member.invited"],
                    allow_private=Networks.parse("127.0.0.1/32"),
                )
            for n in range(self.args.events):
                self.invite(org_id, token, f"user{n}@stalled{i}.example")
        wanted = set()
        orgs = [self.org(f"Healthy {i}") for i in range(10)]
        for n in range(self.args.mails):
            org_id, token = orgs[n % len(orgs)]
            email = f"user{n}@healthy.example"
            self.invite(org_id, token, email)
            wanted.add(email)
        return wanted

    def run(self) -> tuple[float | None, int]:
        """Seconds until every wanted mail arrived (None: cut off), and how many arrived."""
        wanted = self.seed()
        stop = threading.Event()
        started = time.monotonic()
        worker = threading.Thread(target=run_forever, args=(self.db, self.config, stop))
        worker.start()
        arrived: set[str] = set()
        try:
            while time.monotonic() - started < self.args.max_seconds:
                arrived = {m["To"].addresses[0].addr_spec for m in list(self.smtp.messages)}
                if wanted <= arrived:
                    return time.monotonic() - started, len(wanted)
                time.sleep(0.02)
            return None, len(wanted & arrived)
        finally:
            stop.set()
            for receiver in self.receivers:  # ends the deliveries still waiting on them
                receiver.stop()
            worker.join()

    def close(self) -> None:
        self.smtp.stop()
        self.db.dispose()
        if self.pg_name:
            with create_engine(PG_ADMIN, isolation_level="AUTOCOMMIT").connect() as conn:
                conn.execute(text(f'drop database if exists "{self.pg_name}" with (force)'))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--mails", type=int, default=100)
    parser.add_argument("--events", type=int, default=5, help="queued per stalled receiver")
    parser.add_argument("--stalled", default="0,1,5,20")
    parser.add_argument("--max-seconds", type=float, default=300)
    parser.add_argument(
        "--smtp-latency-ms", type=float, default=0, help="the SMTP server's delay before its 250"
    )
    parser.add_argument("--pg", action="store_true", help="PostgreSQL at SCIMGATE_TEST_PG_URL")
    parser.add_argument(
        "--set",
        dest="setting",
        action="append",
        default=[],
        type=lambda s: tuple(s.split("=", 1)),
        help="a GATEWAY_* setting for the worker, e.g. --set GATEWAY_OUTBOX_CONCURRENCY=16",
    )
    args = parser.parse_args()
    logging.disable(logging.INFO)  # a log line per mail would be part of what is measured
    rows = []
    for stalled in [int(s) for s in args.stalled.split(",")]:
        with tempfile.TemporaryDirectory(prefix="scimgate-bench-") as workdir:
            scenario = Scenario(args, stalled, Path(workdir))
            try:
                seconds, arrived = scenario.run()
            finally:
                scenario.close()
        rows.append((stalled, seconds, arrived))
        shown = f"{seconds:.2f} s" if seconds is not None else f"> {args.max_seconds:g} s"
        print(f"{stalled} stalled: {shown} ({arrived}/{args.mails})", file=sys.stderr)

    settings = ", ".join(
        f"{name}={getattr(scenario.config, name, '-')}"
        for name in (
            "outbox_concurrency",
            "webhook_concurrency",
            "webhook_per_receiver",
            "webhook_deadline_seconds",
        )
    )
    print(
        f"\n{args.mails} invitation mails of 10 healthy organizations, queued behind each "
        f"stalled organization's {args.events} invitation mails and {args.events} webhook "
        f"events; SMTP answering after {args.smtp_latency_ms:g} ms; "
        f"{'PostgreSQL' if args.pg else 'SQLite'}; worker: {settings}; "
        f"{platform.machine()}, {os.cpu_count()} cores, Python {platform.python_version()}\n"
    )
    print("| stalled receivers | queued ahead | all healthy mails delivered after | mails/s |")
    print("| ---: | ---: | ---: | ---: |")
    for stalled, seconds, arrived in rows:
        ahead = f"{stalled * args.events} mails + {stalled * args.events} webhooks"
        if seconds is None:
            print(f"| {stalled} | {ahead} | > {args.max_seconds:g} s ({arrived} arrived) | - |")
        else:
            print(f"| {stalled} | {ahead} | {seconds:.2f} s | {arrived / seconds:.0f} |")


if __name__ == "__main__":
    main()

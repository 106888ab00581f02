"""SCIM POST latency while the console login is flooded (issue #16, item 4).

Starts `scimgate serve --no-worker --no-demo` (gunicorn, 2 web workers) on SQLite or on a
throwaway PostgreSQL database, then measures one client's SCIM POST /Users latency:

- quiet: nothing else runs;
- right passwords: `--login-threads` threads, each from an address of its own
  (X-Forwarded-For, with GATEWAY_TRUST_PROXY=1), sign in with the right password as fast as
  they can (a fresh browser session each time, so Argon2 runs on every attempt and no throttle
  applies: the pure cost of password hashing beside SCIM writes);
- wrong passwords: the same threads send wrong passwords for the admin from one address (the
  throttle's case: once the address is over its limit, no password is checked).

Prints a Markdown table (median, p95, max of the SCIM POSTs; logins answered per second and how
many were refused with 429). Runs against whatever code is checked out, so the same command
gives the before and after figures. Only loopback traffic.

    .venv/bin/python bench/bench_hostile_logins.py [--database postgresql] [--posts 150]
"""

from __future__ import annotations

import argparse
import os
import re
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from pathlib import Path

import requests

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))
from load_servers import PG_ADMIN, free_port, wait_ready  # noqa: E402

USER = "urn:ietf:params:scim:schemas:core:2.0:User"
PASSWORD = "correct horse battery staple"  # noqa: S105 (the bench's own throwaway admin)
_CSRF = re.compile(r'name="csrf_token" value="([^"]+)"')


def _seed(url: str) -> tuple[str, str]:
    from gateway.accounts import create_admin
    from gateway.orgs import create_org
    from gateway.store import Database
    from gateway.tokens import issue_token

    db = Database(url)
    db.upgrade()
    with db.transaction() as session:
        org = create_org(session, "Acme", seats=100_000)
        token = issue_token(session, org=org).secret
        create_admin(session, "ops@msp.example", role="provider_admin", password=PASSWORD)
        org_id = org.id
    db.dispose()
    return org_id, token


def _login(base: str, password: str, address: str) -> int:
    browser = requests.Session()
    browser.headers["X-Forwarded-For"] = address  # the gateway trusts one proxy hop here
    page = browser.get(base + "/console/login", timeout=60).text
    found = _CSRF.search(page)
    form = {
        "csrf_token": found.group(1) if found else "",
        "email": "ops@msp.example",
        "password": password,
    }
    return browser.post(
        base + "/console/login", data=form, allow_redirects=False, timeout=60
    ).status_code


def _posts(base: str, org_id: str, token: str, n: int, tag: str) -> list[float]:
    scim = requests.Session()
    scim.headers.update(
        {"Authorization": f"Bearer {token}", "Content-Type": "application/scim+json"}
    )
    url = f"{base}/scim/v2/{org_id}/Users"
    times = []
    for i in range(n):
        body = {"schemas": [USER], "userName": f"{tag}-{i}-{uuid.uuid4().hex[:6]}@acme.example"}
        start = time.perf_counter()
        response = scim.post(url, json=body, timeout=120)
        times.append(time.perf_counter() - start)
        if response.status_code != 201:
            raise SystemExit(f"SCIM POST answered {response.status_code}: {response.text[:300]}")
    return times


def _phase(
    base: str, org_id: str, token: str, posts: int, threads: int, password: str | None
) -> dict:
    stop = threading.Event()
    statuses: list[int] = []

    def flood(address: str) -> None:
        while not stop.is_set():
            statuses.append(_login(base, password or "", address))

    # Right passwords: each thread a client of its own address. Wrong ones: all from one.
    workers = [
        threading.Thread(
            target=flood, args=("203.0.113.66" if password != PASSWORD else f"198.51.100.{i}",)
        )
        for i in range(threads if password else 0)
    ]
    for worker in workers:
        worker.start()
    time.sleep(1 if workers else 0)  # the flood under way
    started = time.perf_counter()
    times = _posts(base, org_id, token, posts, uuid.uuid4().hex[:6])
    elapsed = time.perf_counter() - started
    stop.set()
    for worker in workers:
        worker.join()
    times.sort()
    return {
        "median_ms": statistics.median(times) * 1000,
        "p95_ms": times[int(len(times) * 0.95) - 1] * 1000,
        "max_ms": times[-1] * 1000,
        "logins_per_s": len(statuses) / elapsed if workers else 0.0,
        "refused": statuses.count(429),
        "logins": len(statuses),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--database", choices=("sqlite", "postgresql"), default="sqlite")
    parser.add_argument("--posts", type=int, default=150, help="SCIM POSTs per phase")
    parser.add_argument("--login-threads", type=int, default=12)
    args = parser.parse_args()

    workdir = Path(tempfile.mkdtemp(prefix="bench-hostile-logins-"))
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    env = {k: v for k, v in os.environ.items() if not k.startswith("GATEWAY_")}
    env.update(
        GATEWAY_DATA_DIR=str(workdir),
        GATEWAY_BIND=f"127.0.0.1:{port}",
        GATEWAY_PUBLIC_URL=base,
        GATEWAY_WEB_WORKERS="2",
        GATEWAY_LOG_LEVEL="warning",
        GATEWAY_TRUST_PROXY="1",  # so that X-Forwarded-For gives each flood thread its address
    )
    pg_name = None
    admin = None
    if args.database == "postgresql":
        from sqlalchemy import create_engine, text

        pg_name = f"bench_logins_{uuid.uuid4().hex[:8]}"
        admin = create_engine(PG_ADMIN, isolation_level="AUTOCOMMIT")
        with admin.connect() as conn:
            conn.execute(text(f'create database "{pg_name}"'))
        env["GATEWAY_DATABASE_URL"] = PG_ADMIN.rsplit("/", 1)[0] + "/" + pg_name
    url = env.get("GATEWAY_DATABASE_URL") or f"sqlite:///{workdir / 'scimgate.db'}"
    proc = None
    try:
        org_id, token = _seed(url)
        log = workdir / "serve.log"
        with log.open("w") as out:
            proc = subprocess.Popen(
                [str(ROOT / ".venv" / "bin" / "scimgate"), "serve", "--no-worker", "--no-demo"],
                env=env,
                stdout=out,
                stderr=subprocess.STDOUT,
            )
        wait_ready(base + "/healthz", [proc], log, 60)
        _posts(base, org_id, token, 10, "warmup")
        rows = [
            ("quiet", _phase(base, org_id, token, args.posts, 0, None)),
            (
                f"{args.login_threads} threads, right password",
                _phase(base, org_id, token, args.posts, args.login_threads, PASSWORD),
            ),
            (
                f"{args.login_threads} threads, wrong password, one address",
                _phase(base, org_id, token, args.posts, args.login_threads, "not the password"),
            ),
        ]
    finally:
        if proc is not None and proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
            proc.wait(timeout=30)
        if admin is not None and pg_name:
            from sqlalchemy import text

            with admin.connect() as conn:
                conn.execute(text(f'drop database if exists "{pg_name}" with (force)'))
            admin.dispose()
        shutil.rmtree(workdir, ignore_errors=True)

    print(f"SCIM POST /Users latency, scimgate on {args.database}, {args.posts} POSTs a phase\n")
    print("| login flood | median ms | p95 ms | max ms | logins/s | of them 429 |")
    print("| --- | ---: | ---: | ---: | ---: | ---: |")
    for name, row in rows:
        refused = f"{row['refused']} of {row['logins']}" if row["logins"] else "-"
        print(
            f"| {name} | {row['median_ms']:.1f} | {row['p95_ms']:.1f} | {row['max_ms']:.1f} "
            f"| {row['logins_per_s']:.1f} | {refused} |"
        )


if __name__ == "__main__":
    main()

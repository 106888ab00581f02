"""Does one organization's Bulk load move another organization's write latency? (issue #16,
item 3, last requirement; not a test.)

Runs a real `scimgate serve` (its gunicorn workers and its background worker, as deployed) on a
free loopback port with its own data directory, on SQLite and on a throwaway PostgreSQL database
(127.0.0.1:5432, created and dropped here). Two organizations with a token each are made through
the `scimgate` CLI. Then org B's POST /Users latency, sequential requests from one client:

  alone:   nothing else running;
  during:  while client processes each send org A one Bulk of 300 nested groups after another
           (bench_hostile_groups.bulk_of_groups), for the same number of seconds.

Unlike part 2 of bench_hostile_groups.py (threads in one process, one GIL), the clients here are
separate processes and the server is the product's own, so the figures show isolation as an IdP
would see it.

    .venv/bin/python bench/bench_hostile_isolation.py                      # both DBs, 30 s each
    .venv/bin/python bench/bench_hostile_isolation.py --seconds 20 --clients 6 --databases sqlite
"""

from __future__ import annotations

import argparse
import contextlib
import json
import multiprocessing
import os
import queue
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import requests

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_hostile_groups import bulk_of_groups, user_body
from load_servers import (
    VENV_BIN,
    Server,
    _cli,
    create_pg_database,
    free_port,
    wait_ready,
)

SCIM_JSON = "application/scim+json"


def start(database: str, extra_env: dict[str, str]) -> tuple[Server, dict[str, tuple[str, str]]]:
    """`scimgate serve` (with its worker, without the demo org) and orgs A and B: for each, its
    SCIM base URL and a bearer token."""
    workdir = Path(tempfile.mkdtemp(prefix="bench-isolation-"))
    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("GATEWAY_")}
    env.update(
        GATEWAY_DATA_DIR=str(workdir),
        GATEWAY_BIND=f"127.0.0.1:{port}",
        GATEWAY_PUBLIC_URL=f"http://127.0.0.1:{port}",
        **extra_env,
    )
    server = Server(f"scimgate-{database}", [], "", workdir=workdir)
    if database == "postgresql":
        server.pg_database, env["GATEWAY_DATABASE_URL"] = create_pg_database()
    orgs = {}
    try:
        _cli(env, "db", "upgrade")
        for name in ("A", "B"):
            org = json.loads(_cli(env, "org", "create", f"Org {name}", "--json"))
            token = json.loads(_cli(env, "token", "create", "--org", org["id"], "--json"))
            orgs[name] = (f"http://127.0.0.1:{port}/scim/v2/{org['id']}", token["token"])
        log = workdir / "serve.log"
        with log.open("wb") as out:
            server.procs.append(
                subprocess.Popen(
                    [str(VENV_BIN / "scimgate"), "serve", "--no-demo"],
                    env=env,
                    stdout=out,
                    stderr=subprocess.STDOUT,
                    start_new_session=True,
                )
            )
        wait_ready(f"http://127.0.0.1:{port}/readyz", server.procs, log, 60)
    except BaseException:
        server.stop()
        raise
    return server, orgs


def org_b_posts(base: str, token: str, seconds: float) -> tuple[list[float], dict[int, int]]:
    """Sequential POST /Users for `seconds`: each request's milliseconds, and status counts."""
    session = requests.Session()
    session.headers.update({"Authorization": f"Bearer {token}", "Content-Type": SCIM_JSON})
    samples: list[float] = []
    statuses: dict[int, int] = {}
    deadline = time.monotonic() + seconds
    i = 0
    while time.monotonic() < deadline:
        body = json.dumps(user_body(f"b{i}"))
        started = time.perf_counter()
        status = session.post(f"{base}/Users", data=body, timeout=120).status_code
        samples.append((time.perf_counter() - started) * 1000)
        statuses[status] = statuses.get(status, 0) + 1
        i += 1
    return samples, statuses


def org_a_bulks(n: int, base: str, token: str, until: float, results) -> None:  # type: ignore[no-untyped-def]
    """One client process: Bulks of 300 nested groups, one after another, until `until`
    (time.time()); each answer's status and seconds go to `results`."""
    session = requests.Session()
    session.headers.update({"Authorization": f"Bearer {token}", "Content-Type": SCIM_JSON})
    round_ = 0
    while time.time() < until:
        body = json.dumps(bulk_of_groups(f"p{os.getpid()}c{n}r{round_}"))
        started = time.perf_counter()
        retry_after = 0.0
        try:
            response = session.post(f"{base}/Bulk", data=body, timeout=300)
            status = response.status_code
            if status in (429, 503):  # as an IdP does: wait as told, then send it again
                retry_after = float(response.headers.get("Retry-After", "1"))
        except requests.RequestException:
            status = 0
        results.put((status, time.perf_counter() - started))
        if retry_after:
            time.sleep(max(0.0, min(retry_after, until - time.time())))
        else:
            round_ += 1


def percentiles(samples: list[float]) -> tuple[float, float, float]:
    ordered = sorted(samples)

    def at(q: float) -> float:
        return ordered[min(len(ordered) - 1, int(len(ordered) * q))]

    return statistics.median(ordered), at(0.95), at(0.99)


def measure(database: str, seconds: float, clients: int, env: dict[str, str]) -> list[tuple]:
    server, orgs = start(database, env)
    try:
        a_base, a_token = orgs["A"]
        b_base, b_token = orgs["B"]
        org_b_posts(b_base, b_token, 2)  # warm-up: connections, caches
        alone, alone_statuses = org_b_posts(b_base, b_token, seconds)
        results: multiprocessing.Queue = multiprocessing.Queue()
        warmup = 3.0  # the Bulks are under way before org B's first timed request
        until = time.time() + warmup + seconds
        procs = [
            multiprocessing.Process(target=org_a_bulks, args=(n, a_base, a_token, until, results))
            for n in range(clients)
        ]
        for proc in procs:
            proc.start()
        time.sleep(warmup)
        during, during_statuses = org_b_posts(b_base, b_token, seconds)
        bulks = []
        for proc in procs:
            while proc.is_alive() or not results.empty():
                with contextlib.suppress(queue.Empty):  # the client is still in a Bulk
                    bulks.append(results.get(timeout=1))
            proc.join()
        done = [s for status, s in bulks if status == 200]
        refused = {}
        for status, _ in bulks:
            if status != 200:
                refused[status] = refused.get(status, 0) + 1
        bulk_note = (
            f"{len(done)} Bulks done (median {statistics.median(done):.1f} s)"
            if done
            else "0 Bulks done"
        )
        if refused:
            bulk_note += ", other answers " + ", ".join(f"{k}: {v}" for k, v in refused.items())
        return [
            (database, "alone", len(alone), *percentiles(alone), alone_statuses, ""),
            (
                database,
                f"during {clients} clients' Bulks to org A",
                len(during),
                *percentiles(during),
                during_statuses,
                bulk_note,
            ),
        ]
    finally:
        server.stop()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--seconds", type=float, default=30, help="per phase (alone, during)")
    parser.add_argument("--clients", type=int, default=6, help="org A's Bulk client processes")
    parser.add_argument("--databases", default="sqlite,postgresql")
    args = parser.parse_args()
    # GATEWAY_* settings of the caller's environment (e.g. GATEWAY_WEB_WORKERS) reach the server.
    env = {k: v for k, v in os.environ.items() if k.startswith("GATEWAY_")}
    env.pop("GATEWAY_DATABASE_URL", None)
    env.pop("GATEWAY_DATA_DIR", None)
    rows = []
    for database in (d.strip() for d in args.databases.split(",")):
        rows += measure(database, args.seconds, args.clients, env)
    print(
        f"\nOrg B's POST /Users, sequential, {args.seconds:g} s per phase, real `scimgate serve` "
        f"on loopback ({os.cpu_count()} cores); org A: {args.clients} client processes each "
        "sending Bulks of 300 nested groups"
    )
    print(
        f"{'database':<11} {'org B':<34} {'POSTs':>6} {'p50 ms':>8} {'p95 ms':>8} {'p99 ms':>8}"
        "  answers / org A"
    )
    for database, label, n, p50, p95, p99, statuses, note in rows:
        answers = " ".join(f"{k}x{v}" for k, v in sorted(statuses.items()))
        print(
            f"{database:<11} {label:<34} {n:>6} {p50:>8.1f} {p95:>8.1f} {p99:>8.1f}"
            f"  {answers}  {note}"
        )


if __name__ == "__main__":
    main()

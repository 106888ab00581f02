"""SCIM load over HTTP: scimgate under gunicorn against the python-scim reference and bare Flask.

Starts each server under gunicorn on loopback (2 worker processes, 4 threads each: scimgate as
`scimgate serve` runs it, the others with the gthread worker), drives it from separate
load-generator processes over keep-alive connections, and prints Markdown tables: per workload
throughput and p50/p99 latency, then the ratios against the targets of issue #8. Workloads, per
size (--users):

1. Entra initial cycle: per user, GET /Users?filter=userName eq "x" (absent), then POST /Users.
2. Okta group push: POST groups (one per 1,000 users plus "Everyone"), then PATCH members in
   batches of 100 ids.
3. Steady state: GET /Users/{id} and GET filter userName eq, half each, closed loop (three
   rounds, the median one reported); then the same reads at a fixed 100 requests/s, p99
   counted from each request's scheduled time.

    .venv/bin/python bench/bench_load.py                    # 10,000 and 100,000 users
    .venv/bin/python bench/bench_load.py --quick            # smoke run, 1,000 users
    .venv/bin/python bench/bench_load.py --users 10000 --servers scimgate-sqlite,reference

See bench/README.md for what is compared and how fair it is.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import random
import shlex
import signal
import subprocess
import sys
import tempfile
import time
import urllib.request
from dataclasses import asdict, dataclass
from pathlib import Path

from load_apps import user_document
from load_client import filter_path, shard_of
from load_servers import VENV_BIN, Server, start_bare, start_reference, start_scimgate

BENCH = Path(__file__).resolve().parent
# scimgate as configured by default (GATEWAY_SCIM_APPLY=inline) and with queued engine runs.
SCIMGATE_KINDS = (
    "scimgate-sqlite",
    "scimgate-sqlite-queued",
    "scimgate-postgresql",
    "scimgate-postgresql-queued",
)
ALL_SERVERS = (*SCIMGATE_KINDS, "reference", "bare")
TARGETS = {
    "reads_vs_reference": 1.5,
    "reads_vs_bare": 0.5,
    "writes_vs_reference": 1.0,
    "p99_fixed_ms": 50.0,
    "rss_mb": 150.0,
}


@dataclass
class Row:
    users: int
    server: str
    workload: str
    requests: int
    seconds: float
    rps: float
    p50: float
    p99: float
    errors: int


def percentile(values: list[float], q: float) -> float:
    if not values:
        return float("nan")
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, round(q * len(ordered)) - 1))]


def log(message: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)


class LoadRun:
    """One job spread over `clients` processes of `threads` connections each, started together."""

    def __init__(self, args: argparse.Namespace, workdir: Path) -> None:
        self.args = args
        self.workdir = workdir
        self.count = 0

    def run(self, server: Server, job: str, items: list, **extra: object) -> dict:
        clients = self.args.clients
        procs, outs = [], []
        start_at = time.time() + 1.5  # every process has imported and connected by then
        for c in range(clients):
            self.count += 1
            spec_path = self.workdir / f"spec-{self.count}.json"
            out_path = self.workdir / f"out-{self.count}.json"
            spec = {
                "job": job,
                "bases": server.bases,
                "token": server.token,
                "threads": self.args.threads,
                "items": items[c::clients],
                "start_at": start_at,
                "max_seconds": self.args.max_seconds,
                "reconnect_every": self.args.reconnect_every,
                **extra,
            }
            spec_path.write_text(json.dumps(spec))
            procs.append(
                subprocess.Popen(
                    [
                        str(VENV_BIN / "python"),
                        str(BENCH / "load_client.py"),
                        str(spec_path),
                        str(out_path),
                    ]
                )
            )
            outs.append(out_path)
        for proc in procs:
            try:
                proc.wait(timeout=self.args.max_seconds + 120)
            except subprocess.TimeoutExpired:
                proc.kill()  # our own child, by its handle
                proc.wait()
        results = [json.loads(p.read_text()) for p in outs if p.exists()]
        if len(results) != clients:
            raise SystemExit(f"{job} on {server.name}: a load process failed")
        merged: dict = {"latencies": {}, "errors": {}, "samples": [], "created": {}}
        for r in results:
            for tag, values in r["latencies"].items():
                merged["latencies"].setdefault(tag, []).extend(values)
            for tag, n in r["errors"].items():
                merged["errors"][tag] = merged["errors"].get(tag, 0) + n
            merged["samples"] += r["error_samples"]
            merged["created"].update(r["created"])
            merged["timed_out"] = merged.get("timed_out", False) or r["timed_out"]
        merged["seconds"] = max(r["ended"] for r in results) - min(r["started"] for r in results)
        if merged["samples"]:
            log(f"  errors in {job} on {server.name}: {merged['samples'][:3]}")
        if merged["timed_out"]:
            log(f"  {job} on {server.name} stopped at --max-seconds {self.args.max_seconds}")
        return merged


def rows_of(
    users: int,
    server: str,
    workload: str,
    merged: dict,
    tags: list[str] | None = None,
    split: bool = False,
) -> list[Row]:
    """One row for the tags together (throughput over the job's wall time), and with `split` one
    more per tag."""
    tags = tags or list(merged["latencies"])
    seconds = merged["seconds"]

    def row(label: str, chosen: list[str]) -> Row:
        values = [v for t in chosen for v in merged["latencies"].get(t, [])]
        errors = sum(merged["errors"].get(t, 0) for t in chosen)
        return Row(
            users,
            server,
            label,
            len(values),
            round(seconds, 1),
            len(values) / seconds if seconds else 0.0,
            percentile(values, 0.50),
            percentile(values, 0.99),
            errors,
        )

    out = [row(workload, tags)]
    if split:
        out += [row(f"{workload}: {t}", [t]) for t in tags]
    return out


def median_round(rounds: list[dict]) -> dict:
    """The round of a repeated job whose throughput is the median (the lower middle one of an
    even number): one short run on a shared VM can be 30% off either way."""
    slowest_first = sorted(rounds, key=lambda r: r["seconds"], reverse=True)
    return slowest_first[(len(slowest_first) - 1) // 2]


def until_applied(row: Row, waited: float, label: str) -> Row:
    """A queued server's job counted until its last engine run was applied: the throughput of
    the whole work (the requests' latencies are the job's own)."""
    seconds = row.seconds + waited
    return Row(
        row.users,
        row.server,
        label,
        row.requests,
        round(seconds, 1),
        row.requests / seconds if seconds else 0.0,
        row.p50,
        row.p99,
        row.errors,
    )


def warm_up(server: Server) -> None:
    """A few requests per worker so that imports and first connections are not measured."""
    for base in server.bases:
        for k in range(20):
            request = urllib.request.Request(  # noqa: S310 (loopback, http only)
                base + filter_path(f"warmup{k}@bench.example"),
                headers={"Authorization": f"Bearer {server.token}"},
            )
            with urllib.request.urlopen(request, timeout=30) as response:  # noqa: S310 (loopback)
                response.read()


def okta_plan(users: list[list], shards: int, group_size: int) -> list[list]:
    """Groups per shard: departments of `group_size` users, and an Everyone group of the shard."""
    plan = []
    for shard in range(shards):
        mine = sorted((u for u in users if u[0] == shard), key=lambda u: u[2])
        ids = [u[1] for u in mine]
        for k in range(0, len(ids), group_size):
            plan.append([shard, f"dept-{shard}-{k // group_size:04d}", ids[k : k + group_size]])
        plan.append([shard, f"Everyone-{shard}", ids])
    return plan


def http_count(n: int, args: argparse.Namespace) -> int:
    """Users the Entra cycle creates over HTTP: all of them up to --http-seed, else --http-tail."""
    return n if n <= args.http_seed else min(n, args.http_tail)


def bench_server(kind: str, n: int, args: argparse.Namespace, load: LoadRun) -> tuple:
    through_http = http_count(n, args)
    preseed = range(0, n - through_http)
    through_http = range(n - through_http, n)
    rows: list[Row] = []
    log(f"{kind}, {n} users: starting")
    if kind.startswith("scimgate-"):
        database, _, mode = kind.removeprefix("scimgate-").partition("-")
        server = start_scimgate(database, preseed, seats=2 * n + 1000, apply=mode or "inline")
    elif kind == "reference":
        server = start_reference(preseed)
    else:
        server = start_bare()
    try:
        if server.seed_note:
            log(f"  {server.seed_note}")
        warm_up(server)
        if kind != "bare":
            log(f"  Entra cycle for {len(through_http)} users")
            merged = load.run(server, "entra", list(through_http))
            rows += rows_of(
                n,
                kind,
                "Entra cycle (GET filter + POST)",
                merged,
                ["filter (absent)", "POST /Users"],
                split=True,
            )
            if kind.endswith("-queued"):
                waited = server.wait_applied()
                log(f"  engine runs applied {waited:.1f}s after the last response")
                rows.append(until_applied(rows[-3], waited, "Entra cycle, until applied"))
            server.analyze()
            shards = len(server.bases)
            for i, user_id in merged["created"].items():
                name = user_document(int(i))["userName"]
                server.users.append([shard_of(name, shards), user_id, int(i)])
            plan = okta_plan(server.users, shards, args.group_size)
            log(f"  Okta push: {len(plan)} groups")
            merged = load.run(server, "groups", [[s, name] for s, name, _ in plan])
            rows += rows_of(n, kind, "Okta: POST /Groups", merged)
            batches = [
                [shard, merged["created"][name], ids[k : k + args.batch]]
                for shard, name, ids in plan
                if name in merged["created"]
                for k in range(0, len(ids), args.batch)
            ]
            random.Random(8).shuffle(batches)
            log(f"  Okta push: {len(batches)} PATCHes of up to {args.batch} members")
            merged = load.run(server, "patch", batches)
            rows += rows_of(n, kind, f"Okta: PATCH +{args.batch} members", merged)
            if kind.endswith("-queued"):
                waited = server.wait_applied()
                log(f"  engine runs applied {waited:.1f}s after the last response")
                rows.append(until_applied(rows[-1], waited, "Okta PATCH, until applied"))
            server.analyze()
        else:
            server.users = [[0, f"u{i}", i] for i in range(n)]
        users_file = load.workdir / f"users-{kind}-{n}.json"
        users_file.write_text(json.dumps(server.users))
        log(f"  steady reads: {args.read_rounds} rounds of {args.reads} requests")
        rounds = [
            load.run(server, "reads", list(range(args.reads)), users_file=str(users_file))
            for _ in range(args.read_rounds)
        ]
        merged = median_round(rounds)
        log(
            "  reads req/s by round: "
            + ", ".join(f"{args.reads / r['seconds']:,.0f}" for r in rounds)
        )
        rows += rows_of(
            n,
            kind,
            "Steady reads (closed loop)",
            merged,
            ["GET /Users/{id}", "filter userName eq"],
            split=True,
        )
        total = int(args.rate * args.rate_seconds)
        log(f"  fixed rate: {args.rate:g} req/s for {args.rate_seconds:g}s")
        merged = load.run(
            server, "fixed", list(range(total)), users_file=str(users_file), rate=args.rate
        )
        rows += rows_of(n, kind, f"Steady reads at {args.rate:g} req/s", merged)
        rss = server.worker_rss()
        cpu = server.worker_cpu_seconds()
        log(f"  RSS per worker (MB): {[round(r) for r in rss]}; CPU s: {[round(c) for c in cpu]}")
        return rows, rss, server.seed_note
    finally:
        server.stop()


def machine() -> str:
    model = next(
        (
            line.split(":", 1)[1].strip()
            for line in Path("/proc/cpuinfo").read_text().splitlines()
            if line.startswith("model name")
        ),
        platform.processor() or "unknown",
    )
    mem_kb = next(
        int(line.split()[1])
        for line in Path("/proc/meminfo").read_text().splitlines()
        if line.startswith("MemTotal:")
    )
    return (
        f"{os.cpu_count()} CPUs ({model}), {mem_kb / 1024 / 1024:.1f} GiB RAM, "
        f"Linux {platform.release()}, Python {platform.python_version()}"
    )


def fmt(value: float, digits: int = 1) -> str:
    return "n/a" if value != value else f"{value:,.{digits}f}"  # NaN check


def ratio_rows(n: int, rows: list[Row], rss: dict[str, list[float]]) -> list[list[str]]:
    def get(server: str, workload: str) -> Row | None:
        return next((r for r in rows if r.server == server and r.workload == workload), None)

    def ratio(a: Row | None, b: Row | None) -> float:
        return a.rps / b.rps if a and b and b.rps else float("nan")

    out = []
    for kind in SCIMGATE_KINDS:
        if not any(r.server == kind for r in rows):
            continue
        reads = get(kind, "Steady reads (closed loop)")
        fixed = next((r for r in rows if r.server == kind and " req/s" in r.workload), None)
        checks = [
            (
                "reads vs reference (req/s)",
                ratio(reads, get("reference", reads.workload) if reads else None),
                TARGETS["reads_vs_reference"],
                ">=",
                "x",
            ),
            (
                "reads vs bare Flask ceiling",
                ratio(reads, get("bare", reads.workload) if reads else None),
                TARGETS["reads_vs_bare"],
                ">=",
                "x",
            ),
            (
                "durable writes vs reference: Entra cycle",
                ratio(
                    get(kind, "Entra cycle (GET filter + POST)"),
                    get("reference", "Entra cycle (GET filter + POST)"),
                ),
                TARGETS["writes_vs_reference"],
                ">=",
                "x",
            ),
            (
                "durable writes vs reference: Okta PATCH",
                ratio(
                    next((r for r in rows if r.server == kind and "PATCH" in r.workload), None),
                    next(
                        (r for r in rows if r.server == "reference" and "PATCH" in r.workload), None
                    ),
                ),
                TARGETS["writes_vs_reference"],
                ">=",
                "x",
            ),
            (
                "p99 at 100 req/s (ms)",
                fixed.p99 if fixed else float("nan"),
                TARGETS["p99_fixed_ms"],
                "<",
                " ms",
            ),
            (
                "RSS per worker, largest (MB)",
                max(rss.get(kind) or [float("nan")]),
                TARGETS["rss_mb"],
                "<",
                " MB",
            ),
        ]
        for label, value, target, op, unit in checks:
            if value != value:
                verdict = "not measured"
            else:
                met = value >= target if op == ">=" else value < target
                verdict = "met" if met else "**missed**"
            digits = 2 if unit == "x" else 1
            shown = fmt(value, digits) + unit if value == value else "n/a"
            out.append([f"{n:,}", kind, label, shown, f"{op} {target:g}{unit}", verdict])
    return out


def table(header: list[str], body: list[list[str]]) -> str:
    lines = ["| " + " | ".join(header) + " |", "|" + "|".join(" --- " for _ in header) + "|"]
    lines += ["| " + " | ".join(cells) + " |" for cells in body]
    return "\n".join(lines)


def report(
    args: argparse.Namespace,
    rows: list[Row],
    rss: dict,
    notes: list[str],
    loads: list[str],
    elapsed: float,
) -> str:
    command = " ".join(
        shlex.quote(a) for a in [".venv/bin/python", "bench/bench_load.py", *sys.argv[1:]]
    )
    parts = [
        "## SCIM load benchmark",
        "",
        f"Machine: {machine()}. Loopback only; the load generator "
        f"({args.clients} processes x {args.threads} keep-alive connections) shares the CPUs "
        f"with the servers. Run took {elapsed / 60:.1f} min.",
        "",
        f"Command: `{command}`",
        "",
        "Servers, each under gunicorn: scimgate "
        "(`scimgate serve --no-worker --no-demo`, 2 asyncio workers of 4 app threads) on SQLite "
        "and on PostgreSQL 15; under gthread (4 threads per worker), the python-scim reference "
        "(scim2-server, in-memory) as 2 gunicorn instances of 1 worker, "
        "the load generator sending each user's requests to the instance holding it "
        "(crc32(userName) % 2); bare Flask returning one stored document (2 workers).",
        "",
    ]
    parts += [f"- {note}" for note in notes]
    parts.append(
        "- 1-minute load average of the machine before -> after each server's run (above "
        f"{os.cpu_count()}: other work was competing for the CPUs): " + "; ".join(loads)
    )
    parts += [
        "",
        table(
            ["Users", "Server", "Workload", "Requests", "req/s", "p50 ms", "p99 ms", "Errors"],
            [
                [
                    f"{r.users:,}",
                    r.server,
                    r.workload,
                    f"{r.requests:,}",
                    fmt(r.rps, 0),
                    fmt(r.p50, 2),
                    fmt(r.p99, 2),
                    str(r.errors),
                ]
                for r in rows
            ],
        ),
        "",
        table(
            ["Users", "Server", "RSS per gunicorn worker at the end (MB)"],
            [
                [f"{n:,}", s, ", ".join(f"{v:.0f}" for v in values)]
                for (n, s), values in rss.items()
            ],
        ),
        "",
        table(
            ["Users", "scimgate on", "Measure", "Value", "Target", "Verdict"],
            [
                cells
                for n in sorted({r.users for r in rows})
                for cells in ratio_rows(
                    n,
                    [r for r in rows if r.users == n],
                    {s: v for (m, s), v in rss.items() if m == n},
                )
            ],
        ),
    ]
    return "\n".join(parts)


def _stop(signum: int, _frame: object) -> None:
    # SIGTERM unwinds like Ctrl-C, so every started server is stopped by its `finally`.
    raise KeyboardInterrupt(f"signal {signum}")


def main() -> None:
    signal.signal(signal.SIGTERM, _stop)
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--users", default="10000,100000", help="sizes, comma-separated")
    parser.add_argument("--servers", default=",".join(ALL_SERVERS))
    parser.add_argument("--quick", action="store_true", help="smoke run: 1,000 users, short runs")
    parser.add_argument("--clients", type=int, default=2, help="load-generator processes")
    parser.add_argument("--threads", type=int, default=4, help="connections per process")
    parser.add_argument(
        "--reconnect-every",
        type=int,
        default=200,
        help="open a new connection after this many requests (0: never)",
    )
    parser.add_argument("--reads", type=int, default=10000, help="closed-loop read requests")
    parser.add_argument(
        "--read-rounds",
        type=int,
        default=3,
        help="run the closed-loop reads this many times and report the median round",
    )
    parser.add_argument("--rate", type=float, default=100.0, help="fixed-rate requests/s")
    parser.add_argument("--rate-seconds", type=float, default=20.0)
    parser.add_argument(
        "--http-seed",
        type=int,
        default=10000,
        help="sizes up to this are created entirely over HTTP by the Entra cycle",
    )
    parser.add_argument(
        "--http-tail",
        type=int,
        default=5000,
        help="for larger sizes, users the Entra cycle creates over HTTP after "
        "the rest were pre-seeded directly",
    )
    parser.add_argument("--group-size", type=int, default=1000)
    parser.add_argument("--batch", type=int, default=100, help="member ids per PATCH")
    parser.add_argument("--max-seconds", type=float, default=900.0, help="cap per load job")
    parser.add_argument("--json", help="also write the rows as JSON to this file")
    args = parser.parse_args()
    if args.read_rounds < 1:
        parser.error("--read-rounds must be at least 1")
    if args.quick:
        args.users, args.reads, args.rate_seconds = "1000", 2000, 5.0
    sizes = [int(s.replace("_", "")) for s in args.users.split(",")]
    servers = [s.strip() for s in args.servers.split(",")]
    unknown = set(servers) - set(ALL_SERVERS)
    if unknown:
        parser.error(f"unknown servers {sorted(unknown)}; choose from {', '.join(ALL_SERVERS)}")
    started = time.monotonic()
    rows: list[Row] = []
    rss: dict[tuple[int, str], list[float]] = {}
    notes: list[str] = []
    loads: list[str] = []
    with tempfile.TemporaryDirectory(prefix="bench-load-") as tmp:
        load = LoadRun(args, Path(tmp))
        for n in sizes:
            over_http = http_count(n, args)
            if over_http < n:
                notes.append(
                    f"{n:,} users: users 1-{n - over_http:,} pre-seeded directly, since HTTP "
                    "seeding takes too long (scimgate: directory users inserted in batches of "
                    "1,000, each batch handed to the provisioning engine as SCIM does; "
                    "reference: created in its storage at start through the validation POST "
                    f"uses); the Entra cycle creates the last {over_http:,} over "
                    "HTTP"
                )
            else:
                notes.append(f"{n:,} users: all created over HTTP by the Entra cycle")
            for kind in servers:
                before = os.getloadavg()[0]
                server_rows, worker_rss, _ = bench_server(kind, n, args, load)
                rows += server_rows
                rss[(n, kind)] = worker_rss
                loads.append(f"{kind} {n:,}: {before:.1f} -> {os.getloadavg()[0]:.1f}")
                # What is done so far, in case a long run is stopped before the end.
                partial = report(args, rows, rss, notes, loads, time.monotonic() - started)
                print(partial, file=sys.stderr, flush=True)
    output = report(args, rows, rss, notes, loads, time.monotonic() - started)
    print(output)
    if args.json:
        Path(args.json).write_text(
            json.dumps(
                {
                    "rows": [asdict(r) for r in rows],
                    "rss": {f"{n}:{s}": v for (n, s), v in rss.items()},
                },
                indent=1,
            )
        )


if __name__ == "__main__":
    main()

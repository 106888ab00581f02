"""The servers of bench_load.py: start each under gunicorn on loopback, seed it, stop it.

Does: scimgate through its own CLI (`db upgrade`, `org create`, `token create`, `serve`) on SQLite
or on a throwaway PostgreSQL database; the scim2-server reference as two single-worker gunicorn
shards; the bare Flask ceiling; pre-seeding users straight into the database (scimgate) or
into the in-memory storage at start (reference); RSS of each gunicorn worker from /proc. Does
not: generate load (load_client.py) nor print results (bench_load.py).
"""

from __future__ import annotations

import json
import os
import secrets
import shutil
import signal
import socket
import subprocess
import tempfile
import time
import urllib.request
import uuid
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

from load_apps import user_document
from load_client import shard_of

BENCH = Path(__file__).resolve().parent
ROOT = BENCH.parent
VENV_BIN = ROOT / ".venv" / "bin"
PG_ADMIN = "postgresql+psycopg://postgres@127.0.0.1:5432/test"
# The reference and bare servers run under gunicorn's gthread worker with 4 threads, the model
# `scimgate serve` used before its asyncio workers (gateway/serve.py), so that the ratios stay
# comparable with the figures measured before.
GUNICORN_COMMON = ["--worker-class", "gthread", "--threads", "4", "--graceful-timeout", "20"]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_ready(url: str, procs: list[subprocess.Popen], log: Path, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        for proc in procs:
            if proc.poll() is not None:
                raise SystemExit(
                    f"server exited with {proc.returncode}; see {log}:\n" + log.read_text()[-2000:]
                )
        try:
            with urllib.request.urlopen(url, timeout=2) as response:  # noqa: S310 (loopback)
                if response.status < 500:
                    return
        except OSError as exc:
            if getattr(exc, "code", None) and exc.code < 500:  # type: ignore[attr-defined]
                return
        time.sleep(0.2)
    raise SystemExit(f"server at {url} not ready after {timeout:.0f}s; see {log}")


def worker_pids(master: int) -> list[int]:
    out = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
        except OSError:
            continue
        # Field 4 (after the parenthesised name, which may contain spaces) is the parent pid.
        if int(stat.rsplit(")", 1)[1].split()[1]) == master:
            out.append(int(entry.name))
    return sorted(out)


def rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return 0.0


@dataclass
class Server:
    name: str
    bases: list[str]  # one SCIM base URL per shard
    token: str
    procs: list[subprocess.Popen] = field(default_factory=list)
    workdir: Path | None = None
    pg_database: str | None = None
    users: list[list] = field(default_factory=list)  # [shard, id, i] of every seeded user
    seed_note: str = ""
    database_url: str | None = None  # scimgate's, to watch its queue of engine runs

    def wait_applied(self, timeout: float = 900) -> float:
        """GATEWAY_SCIM_APPLY=queued: seconds until every SCIM write's engine run is applied."""
        from sqlalchemy import create_engine, text
        from sqlalchemy.pool import NullPool

        if not self.database_url:
            return 0.0
        engine = create_engine(self.database_url, poolclass=NullPool)
        started = time.monotonic()
        try:
            while time.monotonic() - started < timeout:
                with engine.connect() as conn:
                    if not conn.execute(text("select count(*) from pending_changes")).scalar():
                        return time.monotonic() - started
                time.sleep(0.1)
            raise SystemExit(f"{self.name}: engine runs still queued after {timeout:g}s")
        finally:
            engine.dispose()

    def analyze(self) -> None:
        """PostgreSQL: refresh the planner's statistics after a phase that wrote many rows, as
        autovacuum would (the PostgreSQL on our bench machine runs with autovacuum off)."""
        if self.pg_database:
            _pg_admin_exec("analyze", self.pg_database)

    def worker_rss(self) -> list[float]:
        return [rss_mb(pid) for proc in self.procs for pid in worker_pids(proc.pid)]

    def worker_cpu_seconds(self) -> list[float]:
        ticks = os.sysconf("SC_CLK_TCK")
        out = []
        for proc in self.procs:
            for pid in worker_pids(proc.pid):
                fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
                out.append((int(fields[11]) + int(fields[12])) / ticks)
        return out

    def stop(self) -> None:
        for proc in self.procs:
            if proc.poll() is None:
                proc.send_signal(signal.SIGTERM)  # gunicorn: graceful stop of its workers
        for proc in self.procs:
            try:
                proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)  # its own session: only this server
                proc.wait(timeout=10)
        if self.pg_database:
            drop_pg_database(self.pg_database)
        if self.workdir:
            shutil.rmtree(self.workdir, ignore_errors=True)


# --- PostgreSQL -----------------------------------------------------------------------------------


def _pg_admin_exec(sql: str, database: str | None = None) -> None:
    from sqlalchemy import create_engine, text

    url = PG_ADMIN if database is None else PG_ADMIN.rsplit("/", 1)[0] + "/" + database
    engine = create_engine(url, isolation_level="AUTOCOMMIT")
    try:
        with engine.connect() as conn:
            conn.execute(text(sql))
    finally:
        engine.dispose()


def create_pg_database() -> tuple[str, str]:
    name = f"scimgate_load_{uuid.uuid4().hex[:8]}"
    _pg_admin_exec(f'create database "{name}"')
    return name, PG_ADMIN.rsplit("/", 1)[0] + "/" + name


def drop_pg_database(name: str) -> None:
    _pg_admin_exec(f'drop database if exists "{name}" with (force)')


# --- scimgate -------------------------------------------------------------------------------------


def _cli(env: dict, *args: str) -> str:
    result = subprocess.run(
        [str(VENV_BIN / "scimgate"), *args], env=env, capture_output=True, text=True, check=False
    )
    if result.returncode != 0:
        raise SystemExit(f"scimgate {' '.join(args)} failed:\n{result.stdout}{result.stderr}")
    return result.stdout


def seed_scimgate(url: str, org_id: str, indices: range) -> list[list]:
    """Directory users inserted in batches, each batch handed to the provisioning engine in its
    transaction as SCIM would (`directory_changed`): the engine writes the members, events and
    outbox messages POST /Users leaves, so the seed follows the product as it changes. For sizes
    where seeding over HTTP takes too long."""
    from sqlalchemy import insert, text

    from gateway.provisioning import DirectoryChange, directory_changed
    from gateway.store import Database
    from gateway.store.models import DirectoryUser

    db = Database(url)
    users = []
    now = datetime.now(UTC)
    batch: list[dict] = []

    def flush() -> None:
        with db.transaction() as session:
            session.execute(insert(DirectoryUser), batch)
            change = DirectoryChange(org_id=org_id, source="scim", actor="scim")
            change.user_ids |= {row["id"] for row in batch}
            directory_changed(session, change)
        batch.clear()

    for i in indices:
        doc = user_document(i)
        user_id, user_name = str(uuid.uuid4()), doc["userName"]
        users.append([0, user_id, i])
        batch.append(
            {
                "id": user_id,
                "org_id": org_id,
                "source": "scim",
                "user_name": user_name,
                "user_name_lower": user_name.lower(),
                "external_id": doc["externalId"],
                "display_name": doc["displayName"],
                "active": True,
                "resource": doc,
                "version": 1,
                "created_at": now,
                "last_modified": now,
            }
        )
        if len(batch) == 1000:
            flush()
    if batch:
        flush()
    if db.dialect == "postgresql":
        with db.engine.connect() as conn:
            conn.execute(text("analyze"))  # what autovacuum would have done after a bulk load
            conn.commit()
    db.dispose()
    return users


def start_scimgate(database: str, preseed: range, seats: int, apply: str = "inline") -> Server:
    workdir = Path(tempfile.mkdtemp(prefix="bench-load-scimgate-"))
    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("GATEWAY_")}
    env.update(
        GATEWAY_DATA_DIR=str(workdir),
        GATEWAY_BIND=f"127.0.0.1:{port}",
        GATEWAY_PUBLIC_URL=f"http://127.0.0.1:{port}",
        GATEWAY_WEB_WORKERS="2",
        GATEWAY_SCIM_APPLY=apply,
    )
    pg_name = None
    if database == "postgresql":
        pg_name, url = create_pg_database()
        env["GATEWAY_DATABASE_URL"] = url
    else:
        url = f"sqlite:///{workdir / 'scimgate.db'}"
    name = f"scimgate-{database}" + ("-queued" if apply == "queued" else "")
    server = Server(name, [], "", workdir=workdir, pg_database=pg_name, database_url=url)
    try:
        _cli(env, "db", "upgrade")
        org = json.loads(
            _cli(
                env,
                "org",
                "create",
                "Bench",
                "--plan",
                "enterprise",
                "--seats",
                str(seats),
                "--seat-limit",
                str(seats),
                "--json",
            )
        )
        token = json.loads(_cli(env, "token", "create", "--org", org["id"], "--json"))
        server.token = token["token"]
        server.bases = [f"http://127.0.0.1:{port}/scim/v2/{org['id']}"]
        if len(preseed):
            started = time.monotonic()
            server.users = seed_scimgate(url, org["id"], preseed)
            server.seed_note = (
                f"{len(preseed)} users inserted into the database directly, through the "
                "provisioning engine "
                f"({time.monotonic() - started:.0f}s)"
            )
        log = workdir / "serve.log"
        with log.open("wb") as out:
            proc = subprocess.Popen(
                [str(VENV_BIN / "scimgate"), "serve", "--no-worker", "--no-demo"],
                env=env,
                stdout=out,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        server.procs.append(proc)
        wait_ready(f"http://127.0.0.1:{port}/readyz", server.procs, log, 60)
    except BaseException:
        server.stop()
        raise
    return server


# --- the reference server and the bare ceiling ----------------------------------------------------


def _gunicorn(app: str, port: int, workers: int, env: dict, log: Path, timeout: int = 60):  # type: ignore[no-untyped-def]
    with log.open("ab") as out:
        return subprocess.Popen(
            [
                str(VENV_BIN / "gunicorn"),
                "--bind",
                f"127.0.0.1:{port}",
                "--workers",
                str(workers),
                *GUNICORN_COMMON,
                "--timeout",
                str(timeout),
                "--chdir",
                str(BENCH),
                app,
            ],
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )


def start_reference(preseed: range, shards: int = 2) -> Server:
    """scim2-server keeps its data in the memory of its process, so two gunicorn workers would
    hold two different directories. We run `shards` gunicorn instances of one worker each (the
    same worker and thread count as scimgate) and the load generator sends every request for a
    user to the instance that holds it (crc32(userName) % shards)."""
    workdir = Path(tempfile.mkdtemp(prefix="bench-load-reference-"))
    token = secrets.token_urlsafe(24)
    server = Server("reference", [], token, workdir=workdir)
    try:
        seeds: list[list[int]] = [[] for _ in range(shards)]
        for i in preseed:
            seeds[shard_of(user_document(i)["userName"], shards)].append(i)
        started = time.monotonic()
        log = workdir / "gunicorn.log"
        ports = []
        for shard in range(shards):
            env = dict(os.environ, BENCH_TOKEN=token)
            if seeds[shard]:
                seed_file = workdir / f"seed-{shard}.jsonl"
                with seed_file.open("w") as f:
                    for i in seeds[shard]:
                        f.write(json.dumps(user_document(i)) + "\n")
                env["BENCH_SEED_FILE"] = str(seed_file)
            port = free_port()
            ports.append(port)
            # A long timeout only so that a worker loading a large seed is not killed at boot.
            server.procs.append(_gunicorn("load_apps:reference_app()", port, 1, env, log, 900))
            server.bases.append(f"http://127.0.0.1:{port}/v2")
        for port in ports:
            wait_ready(f"http://127.0.0.1:{port}/v2/ServiceProviderConfig", server.procs, log, 900)
        for shard in range(shards):
            ids_file = workdir / f"seed-{shard}.jsonl.ids"
            if ids_file.exists():
                ids = json.loads(ids_file.read_text())
                server.users += [[shard, uid, i] for uid, i in zip(ids, seeds[shard], strict=True)]
        if len(preseed):
            server.seed_note = (
                f"{len(preseed)} users created in the in-memory storage at start, through "
                f"the same validation as POST ({time.monotonic() - started:.0f}s)"
            )
    except BaseException:
        server.stop()
        raise
    return server


def start_bare() -> Server:
    workdir = Path(tempfile.mkdtemp(prefix="bench-load-bare-"))
    token = secrets.token_urlsafe(24)
    port = free_port()
    server = Server(
        "bare-flask", [f"http://127.0.0.1:{port}/scim/v2/bench"], token, workdir=workdir
    )
    log = workdir / "gunicorn.log"
    try:
        env = dict(os.environ, BENCH_TOKEN=token)
        server.procs.append(_gunicorn("load_apps:bare_app()", port, 2, env, log))
        wait_ready(f"http://127.0.0.1:{port}/scim/v2/bench/Users/x", server.procs, log, 60)
    except BaseException:
        server.stop()
        raise
    return server

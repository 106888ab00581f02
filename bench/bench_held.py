"""Benchmark (not a test): deciding the guard's held changes, one by one against in bulk.

Seeds an organization of HELD SCIM users, provisions them, then deactivates all of them in the
directory: the full reconcile's Plan revokes everyone, over the guard, so all HELD revokes are
held (as after a bad directory read). Prints:

- `scimgate held approve ID`, one process per held change (what an admin had before bulk);
- the same approval in-process, one transaction per id (the engine's cost without the process);
- one bulk approve of all the rest (one transaction, chunked by gateway/store/batches.py);
- one bulk drop of all HELD in a second organization seeded the same way.

    .venv/bin/python bench/bench_held.py [--held 2000] [--database-url URL]
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from sqlalchemy import insert, select, update

from gateway.orgs import create_org
from gateway.provisioning.apply import apply
from gateway.provisioning.engine import approve_held
from gateway.provisioning.guard import HeldFilter
from gateway.provisioning.reconcile import reconcile_full
from gateway.store import Database
from gateway.store.models import DirectoryUser, HeldChange, Member, Organization, new_id, utcnow

ROOT = Path(__file__).resolve().parent.parent


def seed(db: Database, name: str, users: int) -> str:
    """An organization of `users` provisioned members whose directory users all went inactive,
    and the full reconcile applied: every revoke held."""
    now = utcnow()
    with db.transaction() as session:
        org_id = create_org(session, name, plan="enterprise").id
    with db.engine.begin() as conn:
        conn.execute(
            insert(DirectoryUser),
            [
                {
                    "id": new_id(),
                    "org_id": org_id,
                    "source": "scim",
                    "user_name": f"user{i:06}@{name}.example",
                    "user_name_lower": f"user{i:06}@{name}.example",
                    "external_id": f"ext-{i}",
                    "active": True,
                    "version": 1,
                    "created_at": now,
                    "last_modified": now,
                    "resource": {"userName": f"user{i:06}@{name}.example", "active": True},
                }
                for i in range(users)
            ],
        )
    for step in ("provision", "deactivate"):
        if step == "deactivate":
            with db.engine.begin() as conn:
                conn.execute(
                    update(DirectoryUser)
                    .where(DirectoryUser.org_id == org_id)
                    .values(active=False, last_modified=utcnow())
                )
        with db.transaction() as session:
            org = session.get(Organization, org_id)
            apply(session, org, reconcile_full(session, org), "scim")
    return org_id


def held_ids(db: Database, org_id: str) -> list[int]:
    with db.read() as session:
        return list(
            session.scalars(
                select(HeldChange.id)
                .where(HeldChange.org_id == org_id, HeldChange.status == "pending")
                .order_by(HeldChange.id)
            )
        )


def bulk(db: Database, org_id: str, decision: str) -> tuple[float, float, str]:
    from gateway.admin import held

    start, cpu = time.perf_counter(), time.process_time()
    with db.transaction() as session:
        org = session.get(Organization, org_id)
        done = held.decide_matching(session, org, HeldFilter(), decision, "admin:bench")
    return time.perf_counter() - start, time.process_time() - cpu, str(done.to_json())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--held", type=int, default=2_000)
    parser.add_argument("--one-by-one", type=int, default=20, help="ids approved one by one")
    parser.add_argument("--database-url", help="default: a SQLite file in a temporary directory")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        url = args.database_url or f"sqlite:///{tmp}/bench.db"
        db = Database(url)
        db.upgrade()
        start = time.perf_counter()
        run = f"{time.time():.0f}"  # a database given again gets organizations of its own
        org_id = seed(db, f"approve-{run}", args.held)
        drop_org = seed(db, f"drop-{run}", args.held)
        ids = held_ids(db, org_id)
        print(
            f"database: {db.dialect}; {len(ids):,} + {len(held_ids(db, drop_org)):,} revokes "
            f"held in {time.perf_counter() - start:.1f} s"
        )
        rows = []
        env = {**os.environ, "GATEWAY_DATABASE_URL": url, "GATEWAY_DATA_DIR": f"{tmp}/data"}
        cli = [str(Path(sys.executable).parent / "scimgate"), "held", "approve"]
        start = time.perf_counter()
        for held_id in ids[:3]:
            subprocess.run([*cli, str(held_id)], env=env, check=True, capture_output=True)
        per = (time.perf_counter() - start) / 3
        rows.append(("`scimgate held approve ID`, one process each", per, None, 1, per * len(ids)))
        sample = ids[3 : 3 + args.one_by_one]
        start, cpu = time.perf_counter(), time.process_time()
        for held_id in sample:
            with db.transaction() as session:
                approve_held(session, held_id, "admin:bench")
        per = (time.perf_counter() - start) / len(sample)
        per_cpu = (time.process_time() - cpu) / len(sample)
        rows.append(
            ("approve by id in-process, one transaction each", per, per_cpu, 1, per * len(ids))
        )
        rest = len(ids) - 3 - len(sample)
        elapsed, cpu_s, detail = bulk(db, org_id, "approve")
        rows.append((f"bulk approve, one call ({detail})", elapsed, cpu_s, rest, elapsed))
        elapsed, cpu_s, detail = bulk(db, drop_org, "drop")
        rows.append((f"bulk drop, one call ({detail})", elapsed, cpu_s, args.held, elapsed))
        with db.read() as session:
            revoked = session.scalar(
                select(Member.id).where(Member.org_id == org_id, Member.status != "revoked")
            )
        assert revoked is None, "every approved revoke is applied"
        width = max(len(r[0]) for r in rows)
        # CPU time beside wall time: on a shared machine the wall time is mostly waiting.
        head = f"{'how'.ljust(width)}  {'time':>9}  {'cpu':>8}  {'changes':>7}"
        print(f"{head}  {f'for {len(ids):,}':>10}")
        for name, elapsed, cpu_s, n, whole in rows:
            shown = f"{cpu_s:7.3f}s" if cpu_s is not None else f"{'-':>8}"
            print(f"{name.ljust(width)}  {elapsed:8.3f}s  {shown}  {n:7,}  {whole:9.1f}s")


if __name__ == "__main__":
    main()

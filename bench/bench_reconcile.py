"""Benchmark (not a test): full reconcile of a large organization.

Seeds one organization's directory layer with USERS users and GROUPS groups (every user in three
groups, one "Everyone" group with all of them, a few nested groups), then prints:

- the full reconcile (Plan) of the unprovisioned organization: time and peak memory (target:
  under 10 s and 500 MB for 50,000 users and 2,000 groups);
- applying that Plan (invitations, memberships, events, outbox);
- the steady-state full reconcile right after (must be empty);
- one incremental reconcile: a new user joins the 50,000-member "Everyone" group.

    .venv/bin/python bench/bench_reconcile.py [--users 50000] [--groups 2000] [--database-url URL]

Peak memory is the process's peak resident set size (ru_maxrss), measured in a child process per
phase so that seeding does not count.
"""

from __future__ import annotations

import argparse
import multiprocessing as mp
import random
import resource
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from sqlalchemy import insert, select

from gateway.orgs import create_org
from gateway.store import Database
from gateway.store.models import (
    DirectoryGroup,
    DirectoryGroupMember,
    DirectoryUser,
    Organization,
    new_id,
    utcnow,
)

MAPPING = """
roles:
  - {groups: [Admins], role: admin}
collections:
  - {group: group-0001, collections: [Finance], permission: edit}
  - {group: group-0002, collections: [Finance, Shared], permission: view}
"""


def seed(db: Database, users: int, groups: int) -> str:
    rng = random.Random(7)
    now = utcnow()
    with db.transaction() as session:
        org = create_org(session, "Bench", plan="enterprise")
        org_id = org.id
        from gateway.provisioning.settings import store_mapping

        store_mapping(session, org_id, MAPPING, "system")
    group_ids = [new_id() for _ in range(groups)]
    names = [f"group-{i:04}" for i in range(groups - 2)] + ["Admins", "Everyone"]
    with db.engine.begin() as conn:
        conn.execute(
            insert(DirectoryGroup),
            [
                {
                    "id": gid,
                    "org_id": org_id,
                    "source": "scim",
                    "display_name": name,
                    "display_name_lower": name.lower(),
                    "resource": {"displayName": name},
                    "created_at": now,
                    "last_modified": now,
                    "version": 1,
                }
                for gid, name in zip(group_ids, names, strict=True)
            ],
        )
        # A few nested groups: group N in group N + half.
        conn.execute(
            insert(DirectoryGroupMember),
            [
                {"group_id": group_ids[groups // 2 + i], "child_group_id": group_ids[i]}
                for i in range(50)
            ],
        )
        everyone = group_ids[-1]
        for start in range(0, users, 5000):
            batch, links = [], []
            for i in range(start, min(start + 5000, users)):
                uid = new_id()
                user_name = f"user{i:06}@example.com"
                batch.append(
                    {
                        "id": uid,
                        "org_id": org_id,
                        "source": "scim",
                        "user_name": user_name,
                        "user_name_lower": user_name,
                        "external_id": f"ext-{i}",
                        "active": i % 50 != 0,
                        "display_name": f"User {i}",
                        "version": 1,
                        "created_at": now,
                        "last_modified": now,
                        "resource": {
                            "userName": user_name,
                            "externalId": f"ext-{i}",
                            "active": i % 50 != 0,
                            "displayName": f"User {i}",
                            "name": {"givenName": "User", "familyName": str(i)},
                            "emails": [{"value": user_name, "type": "work", "primary": True}],
                        },
                    }
                )
                for gid in rng.sample(group_ids[:-2], 3):
                    links.append({"group_id": gid, "user_id": uid})
                links.append({"group_id": everyone, "user_id": uid})
                if i % 500 == 0:
                    links.append({"group_id": group_ids[-2], "user_id": uid})
            conn.execute(insert(DirectoryUser), batch)
            conn.execute(insert(DirectoryGroupMember), links)
    return org_id


def _phase(url: str, org_id: str, name: str, queue: mp.Queue) -> None:
    db = Database(url)
    from gateway.provisioning.apply import apply
    from gateway.provisioning.reconcile import reconcile_full

    start = time.perf_counter()
    detail = ""
    if name == "plan":
        with db.read() as session:
            plan = reconcile_full(session, session.get(Organization, org_id))
        detail = f"{len(plan.changes):,} changes, {len(plan.problems)} problems"
    elif name == "apply":
        with db.transaction() as session:
            org = session.get(Organization, org_id)
            plan = reconcile_full(session, org)
            planned = time.perf_counter()
            result = apply(session, org, plan, "system", guarded=False)
        applying = time.perf_counter() - planned
        detail = f"{result.applied:,} changes applied ({applying:.1f} s of it applying)"
    elif name == "incremental":
        from gateway.provisioning import DirectoryChange, directory_changed

        with db.transaction() as session:
            everyone = session.scalar(
                select(DirectoryGroup.id).where(DirectoryGroup.display_name == "Everyone")
            )
            user = DirectoryUser(
                org_id=org_id,
                source="scim",
                user_name="newcomer@example.com",
                user_name_lower="newcomer@example.com",
                resource={"userName": "newcomer@example.com"},
            )
            session.add(user)
            session.flush()
            session.add(DirectoryGroupMember(group_id=everyone, user_id=user.id))
            session.flush()
            start = time.perf_counter()
            directory_changed(
                session,
                DirectoryChange(org_id, "scim", "scim", user_ids={user.id}, group_ids={everyone}),
            )
        detail = "one user joins the 50,000-member group"
    elapsed = time.perf_counter() - start
    peak_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    queue.put((elapsed, peak_mb, detail))


def run_phase(url: str, org_id: str, name: str) -> tuple[float, float, str]:
    queue: mp.Queue = mp.Queue()
    process = mp.get_context("fork").Process(target=_phase, args=(url, org_id, name, queue))
    process.start()
    result = queue.get()
    process.join()
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--users", type=int, default=50_000)
    parser.add_argument("--groups", type=int, default=2_000)
    parser.add_argument("--database-url", help="default: a SQLite file in a temporary directory")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        url = args.database_url or f"sqlite:///{tmp}/bench.db"
        db = Database(url)
        db.upgrade()
        start = time.perf_counter()
        org_id = seed(db, args.users, args.groups)
        db.dispose()
        print(
            f"database: {db.dialect}; seeded {args.users:,} users, {args.groups:,} groups "
            f"in {time.perf_counter() - start:.1f} s"
        )
        rows = [
            ("full reconcile (plan), unprovisioned org", *run_phase(url, org_id, "plan")),
            ("full reconcile + apply, unprovisioned org", *run_phase(url, org_id, "apply")),
            ("full reconcile (plan), right after apply", *run_phase(url, org_id, "plan")),
            ("incremental reconcile + apply", *run_phase(url, org_id, "incremental")),
        ]
        width = max(len(r[0]) for r in rows)
        print(f"{'phase'.ljust(width)}  {'time':>8}  {'peak RSS':>9}  detail")
        for name, elapsed, peak, detail in rows:
            print(f"{name.ljust(width)}  {elapsed:7.2f}s  {peak:6.0f} MB  {detail}")


if __name__ == "__main__":
    main()

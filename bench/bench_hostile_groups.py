"""A write's cost against the size of the organization's group graph (issue #16, item 3; not a
test).

Part 1: one organization with 10, 1,000 and 10,000 nested directory groups (a tree eight wide and
as deep as it takes, some groups under two parents, users in three groups each, a mapping that
gives twenty groups collections and one a role), provisioned by a full reconcile; then, through
the Flask test client (in-process, no network), the median and p99 of POST /Users, PUT
/Users/{id} and PATCH /Groups/{id} adding a member.

Part 2: a plain organization's POST /Users latency alone, then while threads post Bulk requests
of 300 nested groups to another organization (threads of one process: they also share the GIL).

Part 3: Bulks of 300 nested groups one after another into one organization, each timed.

    .venv/bin/python bench/bench_hostile_groups.py                       # both parts, both DBs
    .venv/bin/python bench/bench_hostile_groups.py --groups 10,1000 --repeat 50 --databases sqlite

GATEWAY_SCIM_APPLY (inline by default) picks when the engine runs, as in the product.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import random
import statistics
import tempfile
import threading
import time
import uuid
from datetime import UTC, datetime
from pathlib import Path

from sqlalchemy import create_engine, insert, text

from gateway.app import create_app
from gateway.config import Config
from gateway.orgs import create_org
from gateway.provisioning.apply import apply
from gateway.provisioning.engine import plan_org
from gateway.provisioning.settings import store_mapping
from gateway.store import Database
from gateway.store.models import DirectoryGroup, DirectoryGroupMember, DirectoryUser
from gateway.tokens import issue_token

USER_URN = "urn:ietf:params:scim:schemas:core:2.0:User"
GROUP_URN = "urn:ietf:params:scim:schemas:core:2.0:Group"
PATCH_URN = "urn:ietf:params:scim:api:messages:2.0:PatchOp"
BULK_URN = "urn:ietf:params:scim:api:messages:2.0:BulkRequest"
PG_ADMIN = "postgresql+psycopg://postgres@127.0.0.1:5432/test"
WIDTH = 8  # children per group
USERS = 2000
MAPPING = "roles:\n  - {groups: [g00001], role: admin}\ncollections:\n" + "".join(
    f"  - {{group: g{i:05d}, collections: [Vault {i}], permission: edit}}\n" for i in range(20)
)


def _user(org_id: str, i: int, now: datetime) -> dict:
    name = f"user{i:06d}@bench.example"
    return {
        "id": str(uuid.uuid4()),
        "org_id": org_id,
        "source": "scim",
        "user_name": name,
        "user_name_lower": name,
        "external_id": f"ext-{i}",
        "display_name": f"User {i}",
        "active": True,
        "resource": {
            "schemas": [USER_URN],
            "userName": name,
            "externalId": f"ext-{i}",
            "displayName": f"User {i}",
            "emails": [{"value": name, "type": "work", "primary": True}],
            "active": True,
        },
        "version": 1,
        "created_at": now,
        "last_modified": now,
    }


def seed(db: Database, org_id: str, n_groups: int) -> tuple[list[str], list[str]]:
    """The directory rows as SCIM would have written them, then one full reconcile."""
    rng = random.Random(n_groups)
    now = datetime.now(UTC)
    groups = [
        {
            "id": str(uuid.uuid4()),
            "org_id": org_id,
            "source": "scim",
            "display_name": f"g{i:05d}",
            "display_name_lower": f"g{i:05d}",
            "external_id": None,
            "resource": {"schemas": [GROUP_URN], "displayName": f"g{i:05d}"},
            "version": 1,
            "created_at": now,
            "last_modified": now,
        }
        for i in range(n_groups)
    ]
    group_ids = [g["id"] for g in groups]
    edges = []
    for i in range(1, n_groups):
        parent = (i - 1) // WIDTH
        edges.append({"group_id": group_ids[parent], "child_group_id": group_ids[i]})
        if i > WIDTH and rng.random() < 0.05:  # a second parent, earlier in the tree (no cycle)
            other = rng.randrange(0, i)
            if other != parent:
                edges.append({"group_id": group_ids[other], "child_group_id": group_ids[i]})
    users = [_user(org_id, i, now) for i in range(USERS)]
    user_ids = [u["id"] for u in users]
    for uid in user_ids:
        for gid in rng.sample(group_ids, min(3, n_groups)):
            edges.append({"group_id": gid, "user_id": uid})
    with db.transaction() as session:
        session.execute(insert(DirectoryGroup), groups)
        session.execute(insert(DirectoryUser), users)
        for i in range(0, len(edges), 5000):
            session.execute(insert(DirectoryGroupMember), edges[i : i + 5000])
        store_mapping(session, org_id, MAPPING, "system")
    with db.transaction() as session:
        org, plan = plan_org(session, org_id, to_apply=True)
        apply(session, org, plan, "system", guarded=False)
    return user_ids, group_ids


def percentiles(samples: list[float]) -> tuple[float, float]:
    samples = sorted(samples)
    return statistics.median(samples), samples[min(len(samples) - 1, int(len(samples) * 0.99))]


def new_database(kind: str, tmp: Path) -> tuple[Database, str, object]:
    if kind == "sqlite":
        url = f"sqlite:///{tmp / 'bench.db'}"
        admin = None
    else:
        name = f"scimgate_bench_{uuid.uuid4().hex[:8]}"
        admin = create_engine(PG_ADMIN, isolation_level="AUTOCOMMIT")
        with admin.connect() as conn:
            conn.execute(text(f'create database "{name}"'))
        url = PG_ADMIN.rsplit("/", 1)[0] + "/" + name
    db = Database(url)
    db.upgrade()
    return db, url, admin


def drop_database(db: Database, url: str, admin) -> None:  # type: ignore[no-untyped-def]
    db.dispose()
    if admin is not None:
        with admin.connect() as conn:
            conn.execute(text(f'drop database "{url.rsplit("/", 1)[1]}" with (force)'))
        admin.dispose()


def client_for(db: Database, url: str, tmp: Path):  # type: ignore[no-untyped-def]
    config = Config.from_env(
        {
            "GATEWAY_DATA_DIR": str(tmp),
            "GATEWAY_DATABASE_URL": url,
            "GATEWAY_SCIM_APPLY": os.environ.get("GATEWAY_SCIM_APPLY", "inline"),
        }
    )
    return create_app(config, database=db)


def make_org(db: Database, name: str) -> tuple[str, dict]:
    with db.transaction() as session:
        org = create_org(session, name)
        token = issue_token(session, org=org).secret
        org_id = org.id
    return org_id, {"Authorization": f"Bearer {token}", "Content-Type": "application/scim+json"}


def check(response, status: int = 200) -> dict:  # type: ignore[no-untyped-def]
    if response.status_code != status:
        raise SystemExit(f"{response.status_code}: {response.get_data(as_text=True)[:300]}")
    return response.get_json() or {}


def user_body(tag: str) -> dict:
    name = f"{tag}-{uuid.uuid4().hex[:8]}@bench.example"
    return {
        "schemas": [USER_URN],
        "userName": name,
        "displayName": tag,
        "emails": [{"value": name, "type": "work", "primary": True}],
        "active": True,
    }


def part_one(kind: str, n_groups: int, repeat: int) -> list[tuple]:
    tmp = Path(tempfile.mkdtemp(prefix="bench-groups-"))
    db, url, admin = new_database(kind, tmp)
    org_id, headers = make_org(db, "Nested")
    t0 = time.perf_counter()
    user_ids, group_ids = seed(db, org_id, n_groups)
    seeded = time.perf_counter() - t0
    if kind == "postgresql":
        with db.engine.connect() as conn:
            conn.execute(text("analyze"))
            conn.commit()
    client = client_for(db, url, tmp).test_client()
    base = f"/scim/v2/{org_id}"
    rng = random.Random(11)

    def post(i: int) -> None:
        check(
            client.post(f"{base}/Users", data=json.dumps(user_body(f"n{i}")), headers=headers), 201
        )

    def put(i: int) -> None:
        uid = rng.choice(user_ids)
        body = _user(org_id, user_ids.index(uid), datetime.now(UTC))["resource"]
        body["displayName"] = f"Renamed {i}"
        check(client.put(f"{base}/Users/{uid}", data=json.dumps(body), headers=headers))

    def add_member(i: int) -> None:
        gid, uid = rng.choice(group_ids), rng.choice(user_ids)
        body = {
            "schemas": [PATCH_URN],
            "Operations": [{"op": "add", "path": "members", "value": [{"value": uid}]}],
        }
        response = client.patch(f"{base}/Groups/{gid}", data=json.dumps(body), headers=headers)
        if response.status_code not in (200, 204):
            check(response)

    rows = []
    for label, fn in [
        ("POST /Users", post),
        ("PUT /Users/{id}", put),
        ("PATCH /Groups/{id} add member", add_member),
    ]:
        fn(-1)  # warm-up
        samples = []
        for i in range(repeat):
            start = time.perf_counter()
            fn(i)
            samples.append((time.perf_counter() - start) * 1000)
        rows.append((kind, n_groups, label, *percentiles(samples)))
    print(f"# {kind}: {n_groups} groups seeded and provisioned in {seeded:.1f}s", flush=True)
    drop_database(db, url, admin)
    return rows


def bulk_of_groups(tag: str, n: int = 300) -> dict:
    """n groups, each nested in the one before it (bulkId references), so a chain n deep."""
    operations = []
    for i in range(n):
        body: dict = {"schemas": [GROUP_URN], "displayName": f"{tag}-{i:03d}"}
        if i + 1 < n:
            body["members"] = [{"value": f"bulkId:{tag}-{i + 1}", "type": "Group"}]
        operations.append(
            {"method": "POST", "path": "/Groups", "bulkId": f"{tag}-{i}", "data": body}
        )
    # Children first: a member must exist when its parent is created.
    return {"schemas": [BULK_URN], "Operations": operations[::-1]}


def part_two(kind: str, threads: int, repeat: int) -> list[tuple]:
    tmp = Path(tempfile.mkdtemp(prefix="bench-groups-"))
    db, url, admin = new_database(kind, tmp)
    hostile_id, hostile_headers = make_org(db, "Hostile")
    quiet_id, quiet_headers = make_org(db, "Quiet")
    app = client_for(db, url, tmp)
    client = app.test_client()
    quiet = f"/scim/v2/{quiet_id}/Users"

    def quiet_posts() -> list[float]:
        samples = []
        for i in range(repeat):
            start = time.perf_counter()
            check(
                client.post(quiet, data=json.dumps(user_body(f"q{i}")), headers=quiet_headers), 201
            )
            samples.append((time.perf_counter() - start) * 1000)
        return samples

    quiet_posts()  # warm-up
    rows = [(kind, "alone", *percentiles(quiet_posts()))]
    stop = threading.Event()
    bulks: list[float] = []  # seconds each finished Bulk took

    def hostile(n: int) -> None:
        own = app.test_client()
        round_ = 0
        while not stop.is_set():
            body = bulk_of_groups(f"t{n}r{round_}")
            start = time.perf_counter()
            response = own.post(
                f"/scim/v2/{hostile_id}/Bulk", data=json.dumps(body), headers=hostile_headers
            )
            if response.status_code != 200:
                print(f"# bulk answered {response.status_code}", flush=True)
            bulks.append(time.perf_counter() - start)
            round_ += 1

    workers = [threading.Thread(target=hostile, args=(n,), daemon=True) for n in range(threads)]
    for worker in workers:
        worker.start()
    time.sleep(2.0)  # let the org's group graph grow a little first
    samples = quiet_posts()
    stop.set()
    for worker in workers:
        worker.join()
    label = f"during {threads} Bulk threads"
    rows.append((kind, label, *percentiles(samples)))
    print(
        f"# {kind}: {len(bulks)} Bulks of 300 groups, median {statistics.median(bulks):.1f} s each",
        flush=True,
    )
    drop_database(db, url, admin)
    return rows


def part_three(kind: str, bulks: int) -> list[tuple]:
    """Bulks of 300 nested groups one after another into one organization: how long each takes
    as the organization's group graph grows."""
    tmp = Path(tempfile.mkdtemp(prefix="bench-groups-"))
    db, url, admin = new_database(kind, tmp)
    org_id, headers = make_org(db, "Growing")
    client = client_for(db, url, tmp).test_client()
    rows = []
    for n in range(bulks):
        start = time.perf_counter()
        body = json.dumps(bulk_of_groups(f"b{n}"))
        check(client.post(f"/scim/v2/{org_id}/Bulk", data=body, headers=headers))
        rows.append((kind, n * 300, time.perf_counter() - start))
    drop_database(db, url, admin)
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--groups", default="10,1000,10000")
    parser.add_argument("--repeat", type=int, default=100)
    parser.add_argument("--databases", default="sqlite,postgresql")
    parser.add_argument("--threads", type=int, default=6, help="Bulk threads in part 2 (0: skip)")
    parser.add_argument("--quiet-repeat", type=int, default=40)
    parser.add_argument("--skip-part-one", action="store_true")
    parser.add_argument("--bulks", type=int, default=4, help="Bulks in part 3 (0: skip)")
    args = parser.parse_args()
    logging.getLogger("gateway").setLevel(logging.WARNING)  # no access line per request
    kinds = [k.strip() for k in args.databases.split(",")]
    rows = []
    if not args.skip_part_one:
        for kind in kinds:
            for n in (int(g) for g in args.groups.split(",")):
                rows += part_one(kind, n, args.repeat)
        print(
            f"\nPart 1: one write in an organization with N nested groups, {USERS} users in 3 "
            f"groups each; {args.repeat} requests per operation, in-process "
            f"(GATEWAY_SCIM_APPLY={os.environ.get('GATEWAY_SCIM_APPLY', 'inline')})"
        )
        print(f"{'database':<11} {'groups':>7} {'operation':<30} {'median ms':>10} {'p99 ms':>8}")
        for kind, n, label, median, p99 in rows:
            print(f"{kind:<11} {n:>7} {label:<30} {median:>10.2f} {p99:>8.2f}")
    if args.threads:
        rows2 = []
        for kind in kinds:
            rows2 += part_two(kind, args.threads, args.quiet_repeat)
        print(
            f"\nPart 2: another organization's POST /Users ({args.quiet_repeat} requests) while "
            "threads post Bulks of 300 nested groups"
        )
        print(f"{'database':<11} {'while':<38} {'median ms':>10} {'p99 ms':>9}")
        for kind, label, median, p99 in rows2:
            print(f"{kind:<11} {label:<38} {median:>10.2f} {p99:>9.2f}")
    if args.bulks:
        rows3 = []
        for kind in kinds:
            rows3 += part_three(kind, args.bulks)
        print("\nPart 3: one Bulk of 300 nested groups after another, into one organization")
        print(f"{'database':<11} {'groups before':>13} {'Bulk seconds':>13}")
        for kind, before, seconds in rows3:
            print(f"{kind:<11} {before:>13} {seconds:>13.2f}")


if __name__ == "__main__":
    main()

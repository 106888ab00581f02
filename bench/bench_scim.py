"""SCIM request latency in-process, for one organization with many users (not a test).

Seeds N users straight into the directory layer (the same rows POST writes), then times requests
through the Flask app (no network, no gunicorn): GET by id, filter `userName eq`, a page of 100,
POST and PATCH. Prints median and p99 per operation and database.

    .venv/bin/python bench/bench_scim.py --users 100000 --databases sqlite,postgresql
"""

from __future__ import annotations

import argparse
import cProfile
import json
import os
import pstats
import random
import statistics
import tempfile
import time
import uuid
from datetime import UTC, datetime
from pathlib import Path

from sqlalchemy import create_engine, insert, text, update

from gateway.app import create_app
from gateway.config import Config
from gateway.orgs import create_org
from gateway.store import Database
from gateway.store.models import DirectoryUser, Member, Organization
from gateway.tokens import issue_token

USER_URN = "urn:ietf:params:scim:schemas:core:2.0:User"
PG_ADMIN = "postgresql+psycopg://postgres@127.0.0.1:5432/test"


def seed(db: Database, org_id: str, n: int) -> list[str]:
    """n users as SCIM wrote them, each already a confirmed member (a provisioned organization:
    the seat count and identity lookups of every write run over all of them)."""
    ids = []
    now = datetime.now(UTC)
    batch = []
    members = []
    for i in range(n):
        uid = str(uuid.uuid4())
        ids.append(uid)
        user_name = f"user{i:06d}@bench.example"
        members.append(
            {
                "id": str(uuid.uuid4()),
                "org_id": org_id,
                "email": user_name,
                "email_lower": user_name,
                "name": f"User {i}",
                "external_id": f"ext-{i}",
                "role": "user",
                "status": "confirmed",
                "directory_user_id": uid,
                "source": "scim",
                "created_at": now,
                "updated_at": now,
            }
        )
        batch.append(
            {
                "id": uid,
                "org_id": org_id,
                "source": "scim",
                "user_name": user_name,
                "user_name_lower": user_name,
                "external_id": f"ext-{i}",
                "display_name": f"User {i}",
                "active": True,
                "resource": {
                    "schemas": [USER_URN],
                    "userName": user_name,
                    "externalId": f"ext-{i}",
                    "name": {"givenName": "User", "familyName": str(i)},
                    "displayName": f"User {i}",
                    "emails": [{"value": user_name, "type": "work", "primary": True}],
                    "active": True,
                },
                "version": 1,
                "created_at": now,
                "last_modified": now,
            }
        )
        if len(batch) == 5000 or i == n - 1:
            with db.transaction() as session:
                session.execute(insert(DirectoryUser), batch)
                session.execute(insert(Member), members)
            batch, members = [], []
    with db.transaction() as session:
        session.execute(
            update(Organization).where(Organization.id == org_id).values(seats=n, seats_used=n)
        )
    return ids


def timed(fn, repeat: int) -> tuple[float, float]:
    samples = []
    for i in range(repeat):
        start = time.perf_counter()
        fn(i)
        samples.append((time.perf_counter() - start) * 1000)
    samples.sort()
    return statistics.median(samples), samples[min(len(samples) - 1, int(len(samples) * 0.99))]


def run(
    kind: str, n: int, repeat: int, profile: str | None = None
) -> list[tuple[str, str, float, float]]:
    tmp = Path(tempfile.mkdtemp(prefix="bench-scim-"))
    admin = None
    if kind == "sqlite":
        url = f"sqlite:///{tmp / 'bench.db'}"
    else:
        name = f"scimgate_bench_{uuid.uuid4().hex[:8]}"
        admin = create_engine(PG_ADMIN, isolation_level="AUTOCOMMIT")
        with admin.connect() as conn:
            conn.execute(text(f'create database "{name}"'))
        url = PG_ADMIN.rsplit("/", 1)[0] + "/" + name
    db = Database(url)
    db.upgrade()
    with db.transaction() as session:
        org = create_org(session, "Bench")
        token = issue_token(session, org=org).secret
        org_id = org.id
    t0 = time.perf_counter()
    ids = seed(db, org_id, n)
    seeded = time.perf_counter() - t0
    if kind == "postgresql":
        with db.engine.connect() as conn:
            conn.execute(text("analyze"))
            conn.commit()
    config = Config.from_env(
        {
            "GATEWAY_DATA_DIR": str(tmp),
            "GATEWAY_DATABASE_URL": url,
            "GATEWAY_SCIM_APPLY": os.environ.get("GATEWAY_SCIM_APPLY", "inline"),
        }
    )
    app = create_app(config, database=db)
    client = app.test_client()
    headers = {"Authorization": f"Bearer {token}", "Content-Type": "application/scim+json"}
    base = f"/scim/v2/{org_id}"
    rng = random.Random(7)

    def check(response, status=200):
        if response.status_code != status:
            raise SystemExit(f"{response.status_code}: {response.get_data(as_text=True)[:300]}")

    results = []

    def get_by_id(_i):
        check(client.get(f"{base}/Users/{rng.choice(ids)}", headers=headers))

    def filter_user_name(_i):
        j = rng.randrange(n)
        check(
            client.get(
                f'{base}/Users?filter=userName eq "USER{j:06d}@bench.example"', headers=headers
            )
        )

    def page(_i):
        start = rng.randrange(1, max(n - 100, 2))
        check(client.get(f"{base}/Users?startIndex={start}&count=100", headers=headers))

    created = []

    def post(i):
        body = {
            "schemas": [USER_URN],
            "userName": f"new{i}-{uuid.uuid4().hex[:6]}@bench.example",
            "name": {"givenName": "New", "familyName": str(i)},
            "emails": [{"value": f"new{i}@bench.example", "type": "work", "primary": True}],
            "active": True,
        }
        response = client.post(f"{base}/Users", data=json.dumps(body), headers=headers)
        check(response, 201)
        created.append(response.get_json()["id"])

    def patch(i):
        body = {
            "schemas": ["urn:ietf:params:scim:api:messages:2.0:PatchOp"],
            "Operations": [{"op": "replace", "path": "displayName", "value": f"Renamed {i}"}],
        }
        check(
            client.patch(f"{base}/Users/{rng.choice(ids)}", data=json.dumps(body), headers=headers)
        )

    for label, fn in [
        ("GET /Users/{id}", get_by_id),
        ("GET filter userName eq", filter_user_name),
        ("GET page of 100", page),
        ("POST /Users", post),
        ("PATCH /Users/{id}", patch),
    ]:
        fn(0)  # warm-up
        if profile and profile.lower() in label.lower():
            profiler = cProfile.Profile()
            profiler.enable()
            median, p99 = timed(fn, repeat)
            profiler.disable()
            pstats.Stats(profiler).sort_stats("cumulative").print_stats(
                int(os.environ.get("PROFILE_LINES", "45"))
            )
        else:
            median, p99 = timed(fn, repeat)
        results.append((kind, label, median, p99))
    print(f"# {kind}: seeded {n} users in {seeded:.1f}s", flush=True)
    db.dispose()
    if admin is not None:
        with admin.connect() as conn:
            conn.execute(text(f'drop database "{url.rsplit("/", 1)[1]}" with (force)'))
        admin.dispose()
    return results


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--users", type=int, default=100_000)
    parser.add_argument("--repeat", type=int, default=300)
    parser.add_argument("--databases", default="sqlite,postgresql")
    parser.add_argument("--profile", help="profile the operation whose label contains this")
    args = parser.parse_args()
    rows = []
    for kind in args.databases.split(","):
        rows += run(kind.strip(), args.users, args.repeat, args.profile)
    print(
        f"\n{args.users} users, {args.repeat} requests per operation, "
        "in-process (Flask test client)"
    )
    print(f"{'database':<11} {'operation':<26} {'median ms':>10} {'p99 ms':>8}")
    for kind, label, median, p99 in rows:
        print(f"{kind:<11} {label:<26} {median:>10.2f} {p99:>8.2f}")


if __name__ == "__main__":
    main()

"""The load generator of bench_load.py: one process, a few threads, one keep-alive connection each.

Run as `python bench/load_client.py SPEC.json OUT.json`; bench_load.py starts several at once and
merges what they write. SPEC names the job (entra, groups, patch, reads, fixed), the servers (one
base URL per shard), the token, this process's share of the work and a wall-clock start time so
the processes begin together. OUT gets per-request latencies (ms), error counts, the start and end
times and, for the jobs that create resources, the ids the servers gave.

Does not: start servers, seed databases or compute the table (bench_load.py does).
"""

from __future__ import annotations

import contextlib
import http.client
import json
import random
import sys
import threading
import time
import zlib
from typing import Any
from urllib.parse import quote, urlsplit

from load_apps import user_document

SCIM_JSON = "application/scim+json"
PATCH_URN = "urn:ietf:params:scim:api:messages:2.0:PatchOp"
GROUP_URN = "urn:ietf:params:scim:schemas:core:2.0:Group"


def shard_of(user_name: str, shards: int) -> int:
    """Which server of a sharded deployment holds a user (the reference server runs sharded)."""
    return zlib.crc32(user_name.encode()) % shards


class Connection:
    """A keep-alive HTTP/1.1 connection to one server, reopened if the server closed it."""

    def __init__(self, base: str, token: str, reconnect_every: int = 0) -> None:
        parts = urlsplit(base)
        self.reconnect_every, self.sent = reconnect_every, 0
        self.host, self.port, self.prefix = parts.hostname, parts.port, parts.path.rstrip("/")
        self.headers = {"Authorization": f"Bearer {token}", "Accept": SCIM_JSON}
        self.conn = http.client.HTTPConnection(self.host, self.port, timeout=120)

    def request(self, method: str, path: str, body: Any = None) -> tuple[int, bytes]:
        headers = dict(self.headers)
        data = None
        if body is not None:
            data = json.dumps(body).encode()
            headers["Content-Type"] = SCIM_JSON
        self.sent += 1
        if self.reconnect_every and self.sent % self.reconnect_every == 0:
            # A new connection now and then: gunicorn pins a keep-alive connection to the worker
            # that accepted it, and a few long-lived connections can land unevenly.
            self.conn.close()
        for attempt in (1, 2):
            try:
                self.conn.request(method, self.prefix + path, body=data, headers=headers)
                response = self.conn.getresponse()
                return response.status, response.read()
            except (http.client.RemoteDisconnected, BrokenPipeError, ConnectionResetError):
                # The server closed an idle keep-alive connection before this request reached
                # it: nothing was processed, so sending it again is safe.
                self.conn.close()
                if attempt == 2:
                    raise
        raise AssertionError("unreachable")


class Recorder:
    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.latencies: dict[str, list[float]] = {}
        self.errors: dict[str, int] = {}
        self.samples: list[str] = []
        self.created: dict[str, str] = {}

    def add(self, tag: str, ms: float, ok: bool, detail: str = "") -> None:
        with self.lock:
            self.latencies.setdefault(tag, []).append(round(ms, 3))
            if not ok:
                self.errors[tag] = self.errors.get(tag, 0) + 1
                if len(self.samples) < 5:
                    self.samples.append(f"{tag}: {detail[:300]}")


def timed(
    conn: Connection,
    rec: Recorder,
    tag: str,
    method: str,
    path: str,
    body: Any = None,
    expect: int = 200,
    scheduled: float | None = None,
) -> bytes:
    start = time.perf_counter() if scheduled is None else scheduled
    status, data = conn.request(method, path, body)
    ms = (time.perf_counter() - start) * 1000
    ok = status == expect
    rec.add(tag, ms, ok, f"{status} {data[:200]!r}")
    return data


def filter_path(user_name: str) -> str:
    return "/Users?filter=" + quote(f'userName eq "{user_name}"')


# --- jobs: each takes (spec, conns, rec, items, deadline) and works through its items ------------


def entra(spec: dict, conns: list[Connection], rec: Recorder, items: list, deadline: float) -> None:
    """Microsoft Entra's first cycle: look the user up by userName, then create it."""
    shards = len(conns)
    for i in items:
        if time.monotonic() > deadline:
            return
        doc = user_document(i, spec.get("prefix", "user"))
        conn = conns[shard_of(doc["userName"], shards)]
        data = timed(conn, rec, "filter (absent)", "GET", filter_path(doc["userName"]))
        if b'"totalResults": 0' not in data and b'"totalResults":0' not in data:
            rec.add("filter (absent)", 0.0, False, f"user {i} already there: {data[:200]!r}")
        data = timed(conn, rec, "POST /Users", "POST", "/Users", doc, expect=201)
        with contextlib.suppress(ValueError, KeyError):
            rec.created[str(i)] = json.loads(data)["id"]


def groups(
    spec: dict, conns: list[Connection], rec: Recorder, items: list, deadline: float
) -> None:
    """Okta pushes a group: POST it with no members (members follow in PATCHes)."""
    for shard, name in items:
        if time.monotonic() > deadline:
            return
        body = {"schemas": [GROUP_URN], "displayName": name, "members": []}
        data = timed(conns[shard], rec, "POST /Groups", "POST", "/Groups", body, expect=201)
        with contextlib.suppress(ValueError, KeyError):
            rec.created[name] = json.loads(data)["id"]


def patch(spec: dict, conns: list[Connection], rec: Recorder, items: list, deadline: float) -> None:
    """Okta group push: add members to a group, a batch of ids per PATCH."""
    for shard, group_id, ids in items:
        if time.monotonic() > deadline:
            return
        body = {
            "schemas": [PATCH_URN],
            "Operations": [{"op": "add", "path": "members", "value": [{"value": v} for v in ids]}],
        }
        # RFC 7644 §3.5.2: 200 with the group or 204 without; both are success.
        status_ok = (200, 204)
        start = time.perf_counter()
        status, data = conns[shard].request("PATCH", f"/Groups/{group_id}", body)
        rec.add(
            "PATCH /Groups",
            (time.perf_counter() - start) * 1000,
            status in status_ok,
            f"{status} {data[:200]!r}",
        )


def _read_one(
    conns: list[Connection],
    rec: Recorder,
    rng: random.Random,
    users: list,
    scheduled: float | None = None,
) -> None:
    shard, user_id, i = users[rng.randrange(len(users))]
    if rng.random() < 0.5:
        timed(conns[shard], rec, "GET /Users/{id}", "GET", f"/Users/{user_id}", scheduled=scheduled)
    else:
        user_name = user_document(i)["userName"]
        timed(
            conns[shard],
            rec,
            "filter userName eq",
            "GET",
            filter_path(user_name),
            scheduled=scheduled,
        )


def reads(spec: dict, conns: list[Connection], rec: Recorder, items: list, deadline: float) -> None:
    """Steady state: GET by id and filter userName eq, half each, on random known users."""
    users, rng = spec["users"], random.Random(items[0] if items else 0)
    for _ in items:
        if time.monotonic() > deadline:
            return
        _read_one(conns, rec, rng, users)


def fixed(spec: dict, conns: list[Connection], rec: Recorder, items: list, deadline: float) -> None:
    """Steady-state reads sent on a fixed schedule; latency counts from the scheduled time, so a
    server that falls behind is charged for the queue (no coordinated omission)."""
    users, rng = spec["users"], random.Random(items[0] if items else 0)
    t0 = spec["t0_perf"]
    for k in items:
        scheduled = t0 + k / spec["rate"]
        wait = scheduled - time.perf_counter()
        if wait > 0:
            time.sleep(wait)
        if time.monotonic() > deadline:
            return
        _read_one(conns, rec, rng, users, scheduled=scheduled)


JOBS = {"entra": entra, "groups": groups, "patch": patch, "reads": reads, "fixed": fixed}


def main() -> None:
    spec_path, out_path = sys.argv[1], sys.argv[2]
    with open(spec_path) as f:
        spec = json.load(f)
    if spec["job"] in ("reads", "fixed"):
        with open(spec["users_file"]) as f:
            spec["users"] = json.load(f)
    job = JOBS[spec["job"]]
    threads = spec["threads"]
    items = spec["items"]
    rec = Recorder()
    # Each thread gets its own connection to every shard, opened before the start signal.
    conns = [
        [Connection(b, spec["token"], spec.get("reconnect_every", 0)) for b in spec["bases"]]
        for _ in range(threads)
    ]
    for row in conns:
        for conn in row:
            conn.conn.connect()
    delay = spec["start_at"] - time.time()
    if delay > 0:
        time.sleep(delay)
    started = time.time()
    # The fixed-rate schedule runs on this process's perf_counter, anchored at the start time.
    spec["t0_perf"] = time.perf_counter()
    deadline = time.monotonic() + spec["max_seconds"]
    workers = [
        threading.Thread(
            target=job, args=(spec, conns[t], rec, items[t::threads], deadline), daemon=True
        )
        for t in range(threads)
    ]
    for w in workers:
        w.start()
    for w in workers:
        w.join()
    ended = time.time()
    for row in conns:
        for conn in row:
            conn.conn.close()
    with open(out_path, "w") as f:
        json.dump(
            {
                "started": started,
                "ended": ended,
                "latencies": rec.latencies,
                "errors": rec.errors,
                "error_samples": rec.samples,
                "created": rec.created,
                "timed_out": time.monotonic() > deadline,
            },
            f,
        )


if __name__ == "__main__":
    main()

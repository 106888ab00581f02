"""Benchmark (not a test): LDAP full sync, no-change delta and peak memory against a real slapd.

Loads USERS users and GROUPS groups (each user in two groups) into a throwaway slapd, then prints
the time of `ldapsearch` paging out the same entries and attributes, the connector's full sync into
a fresh SQLite database, a no-change delta, and the process's peak RSS.
Targets (issue #6): full sync within 2x of ldapsearch, no-change delta under 2 s, under 300 MB.

With --departures, the no-change delta is also run without the identity enumeration that finds
departures (as before issue #18: the ids "found" are the stored ones, no LDAP search), best of
--repeat runs each, and the enumeration of the users' scope is timed on its own.
Target (issue #18): under 2 s added at 100,000 users.

    .venv/bin/python bench/bench_ldap_sync.py [--users 20000] [--groups 500] [--no-engine]
        [--departures] [--repeat 3]
"""

from __future__ import annotations

import argparse
import importlib.util
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))


def _servers():  # type: ignore[no-untyped-def]
    spec = importlib.util.spec_from_file_location(
        "ldap_servers", ROOT / "tests/ldap/ldap_servers.py"
    )
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def ldif(base: str, users: int, groups: int, suffix: str) -> str:
    out = [
        f"dn: {suffix}\nobjectClass: dcObject\nobjectClass: organization\no: X\ndc: example\n",
        f"dn: {base}\nobjectClass: organizationalUnit\nou: bench\n",
        f"dn: ou=people,{base}\nobjectClass: organizationalUnit\nou: people\n",
        f"dn: ou=groups,{base}\nobjectClass: organizationalUnit\nou: groups\n",
    ]
    for i in range(users):
        out.append(
            f"dn: uid=user{i:05d},ou=people,{base}\nobjectClass: inetOrgPerson\nuid: user{i:05d}\n"
            f"cn: User {i}\ngivenName: User\nsn: Number{i}\nmail: user{i:05d}@example.org\n"
        )
    members: dict[int, list[int]] = {g: [] for g in range(groups)}
    for i in range(users):
        members[i % groups].append(i)
        members[(i * 7 + 3) % groups].append(i)
    for g in range(groups):
        lines = "".join(
            f"member: uid=user{i:05d},ou=people,{base}\n" for i in sorted(set(members[g]))
        )
        out.append(
            f"dn: cn=group{g:03d},ou=groups,{base}\nobjectClass: groupOfNames\n"
            f"cn: group{g:03d}\n{lines}"
        )
    return "\n".join(out)


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--users", type=int, default=20000)
    parser.add_argument("--groups", type=int, default=500)
    parser.add_argument("--no-engine", action="store_true", help="measure the connector alone")
    parser.add_argument("--profile", action="store_true", help="print a cProfile of the full sync")
    parser.add_argument(
        "--departures",
        action="store_true",
        help="also time the no-change delta without the identity enumeration (before/after)",
    )
    parser.add_argument("--repeat", type=int, default=3, help="runs per --departures figure")
    args = parser.parse_args()

    servers = _servers()
    missing = servers.slapd_missing()
    if missing:
        sys.exit(missing)
    work = Path(tempfile.mkdtemp(prefix="bench-ldap-"))
    slapd = servers.Slapd(work / "slapd")
    slapd.load_offline(ldif(f"ou=bench,{slapd.suffix}", args.users, args.groups, slapd.suffix))
    slapd.start()
    try:
        run(slapd, work, args)
    finally:
        slapd.stop()
        servers.remove(work)


def run(slapd, work: Path, args: argparse.Namespace) -> None:  # type: ignore[no-untyped-def]
    from connectors.ldap import sync as sync_module
    from connectors.ldap.config import SETTINGS_KEY, parse_document
    from gateway.orgs import create_org
    from gateway.store import Database

    base = f"ou=bench,{slapd.suffix}"
    print(f"slapd holds {args.users:,} users and {args.groups} groups (loaded with slapadd)")

    attrs = ["entryUUID", "mail", "givenName", "sn", "cn", "uid"]
    t = time.perf_counter()
    for flt, wanted in (
        ("(objectClass=inetOrgPerson)", attrs),
        ("(objectClass=groupOfNames)", ["entryUUID", "cn", "member"]),
    ):
        subprocess.run(
            [
                "ldapsearch",
                "-x",
                "-LLL",
                "-H",
                slapd.url,
                "-D",
                slapd.root_dn,
                "-w",
                slapd.root_pw,
                "-b",
                base,
                "-E",
                "pr=500/noprompt",
                flt,
                *wanted,
            ],
            check=True,
            stdout=subprocess.DEVNULL,
        )
    ldapsearch = time.perf_counter() - t

    os.environ["BENCH_LDAP_PW"] = slapd.root_pw
    db = Database(f"sqlite:///{work / 'bench.db'}")
    db.upgrade()
    document = {
        "connectors": {
            "bench": {
                "preset": "openldap",
                "servers": [slapd.url],
                "base_dn": base,
                "bind": {"user": slapd.root_dn, "password_env": "BENCH_LDAP_PW"},
                "user_base": "ou=people",
                "group_base": "ou=groups",
                "page_size": 500,
                "clock_skew": 1,
            }
        }
    }
    cfg = parse_document(document)["bench"]
    with db.transaction() as session:
        org = create_org(session, "Bench")
        org.settings = {SETTINGS_KEY: document}
        org_id = org.id
    if args.no_engine:
        sync_module.directory_changed = lambda session, change: None

    time.sleep(1.1)  # the load's modifyTimestamps fall before the delta cursor (clock_skew: 1 s)
    profiler = None
    if args.profile:
        import cProfile

        profiler = cProfile.Profile()
        profiler.enable()
    t = time.perf_counter()
    full = sync_module.sync_connector(db, org_id, cfg)
    full_time = time.perf_counter() - t
    if profiler is not None:
        import pstats

        profiler.disable()
        pstats.Stats(profiler).sort_stats("cumulative").print_stats(25)
    time.sleep(2.1)
    t = time.perf_counter()
    delta = sync_module.sync_connector(db, org_id, cfg)
    delta_time = time.perf_counter() - t
    peak_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024

    engine = "connector only (--no-engine)" if args.no_engine else "connector + engine"
    print(f"ldapsearch, same entries and attributes:  {ldapsearch:6.2f} s")
    print(
        f"full sync ({engine}):  {full_time:6.2f} s  ({full_time / ldapsearch:.1f}x ldapsearch; "
        f"{full.counts['users_added']:,} users, {full.counts['groups_added']} groups, "
        f"{full.counts['memberships_added']:,} memberships)"
    )
    print(
        f"no-change delta:                          {delta_time:6.2f} s  ({delta.kind}, "
        f"{delta.counts['users_read']} entries read, change: {bool(delta.change)})"
    )
    print(f"peak memory (RSS of this process):        {peak_mb:6.0f} MB")
    if args.departures:
        departures(db, org_id, cfg, args.repeat, slapd.proc.pid)
    db.dispose()


def _cpu_seconds(pid: int) -> float:
    """User + system CPU time of a process so far (from /proc)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def departures(db, org_id: str, cfg, repeat: int, slapd_pid: int) -> None:  # type: ignore[no-untyped-def]
    """The no-change delta with and without the identity enumeration, best of `repeat` each;
    and the enumeration alone, in wall time and in CPU time of this process and of slapd (CPU
    time is what a busy machine does not inflate)."""
    from sqlalchemy import select

    from connectors.ldap import sync as sync_module
    from connectors.ldap.connection import connect
    from connectors.ldap.reader import Reader
    from gateway.store.models import DirectoryGroup, DirectoryUser

    with db.read() as session:
        stored = {
            "users": set(session.scalars(select(DirectoryUser.external_id))),
            "groups": set(session.scalars(select(DirectoryGroup.external_id))),
        }
    enumerate_scope = Reader.identities

    def stored_ids(self, kind: str) -> set[str]:  # what a delta saw before: no search at all
        return set(stored[kind])

    timings: dict[str, list[float]] = {"without": [], "with": []}
    for _ in range(repeat):
        for label in ("without", "with"):
            Reader.identities = stored_ids if label == "without" else enumerate_scope
            t = time.perf_counter()
            result = sync_module.sync_connector(db, org_id, cfg)
            timings[label].append(time.perf_counter() - t)
            assert result.kind == "delta" and not result.change, result.counts
    Reader.identities = enumerate_scope
    bound = connect(cfg)
    try:
        reader = Reader(bound.connection, cfg)
        alone, client_cpu, server_cpu = [], [], []
        for _ in range(repeat):
            t, c, s = time.perf_counter(), time.process_time(), _cpu_seconds(slapd_pid)
            found = reader.identities("users")
            alone.append(time.perf_counter() - t)
            client_cpu.append(time.process_time() - c)
            server_cpu.append(_cpu_seconds(slapd_pid) - s)
    finally:
        bound.close()
    before, after = min(timings["without"]), min(timings["with"])
    print(f"no-change delta, no identity enumeration (before #18): {before:6.2f} s")
    print(f"no-change delta, with identity enumeration (after):   {after:6.2f} s")
    print(f"  added by the enumeration:                            {after - before:6.2f} s")
    print(
        f"identity enumeration of the users alone:              {min(alone):6.2f} s  "
        f"({len(found):,} ids, page_size {cfg.page_size}; best of {repeat})"
    )
    print(
        f"  its CPU time: this process {min(client_cpu):.2f} s, slapd {min(server_cpu):.2f} s "
        f"(load average now {os.getloadavg()[0]:.1f})"
    )


if __name__ == "__main__":
    main()

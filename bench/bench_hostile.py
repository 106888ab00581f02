"""The hostile-load benchmark (issue #16): every part, one after another, each printing its table.

Parts (each is also a script of its own, with its own options):
  slow-clients  bench_hostile_slow_clients.py  /healthz and SCIM GET beside slowloris sockets
  webhooks      bench_hostile_webhooks.py      other orgs' invitation mail behind stalled receivers
  groups        bench_hostile_groups.py        one write's cost against the org's group graph
  isolation     bench_hostile_isolation.py     another org's writes while one org sends Bulks
  logins        bench_hostile_logins.py        SCIM POST latency beside a console login flood
  filters       bench_filter_cost.py           what an oversized SCIM filter costs to refuse

Everything runs on loopback against servers the parts start themselves, bounded in time.
Not a test: it prints figures for the README.

    .venv/bin/python bench/bench_hostile.py                 # all parts
    .venv/bin/python bench/bench_hostile.py --only groups,logins
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent

PARTS: dict[str, list[str]] = {
    "slow-clients": ["bench_hostile_slow_clients.py"],
    "webhooks": ["bench_hostile_webhooks.py", "--smtp-latency-ms", "50"],
    "groups": ["bench_hostile_groups.py"],
    "isolation": ["bench_hostile_isolation.py", "--seconds", "20"],
    "logins": ["bench_hostile_logins.py", "--posts", "100"],
    "filters": ["bench_filter_cost.py"],
}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--only", default=",".join(PARTS), help="comma-separated parts")
    args = parser.parse_args()
    wanted = [p.strip() for p in args.only.split(",") if p.strip()]
    unknown = sorted(set(wanted) - set(PARTS))
    if unknown:
        parser.error(f"unknown part(s) {', '.join(unknown)}; choose from {', '.join(PARTS)}")
    failed = []
    for name in wanted:
        script, *options = PARTS[name]
        print(f"\n## {name}: {script} {' '.join(options)}".rstrip(), flush=True)
        started = time.monotonic()
        done = subprocess.run([sys.executable, str(HERE / script), *options], check=False)
        print(f"({name} took {time.monotonic() - started:.0f} s, exit {done.returncode})")
        if done.returncode != 0:
            failed.append(name)
    if failed:
        print(f"parts that failed: {', '.join(failed)}", file=sys.stderr)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())

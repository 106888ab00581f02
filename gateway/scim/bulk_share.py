"""How many SCIM Bulk requests of one organization run at once in one web process.

A Bulk of a few hundred operations holds an app thread for seconds; a web worker has a few app
threads (`scimgate serve --threads`, 4 by default). Without a cap, one organization's parallel
Bulks took every thread of a worker, and another organization's POST waiting on that worker was
answered when a Bulk ended (26 s, bench/bench_hostile_isolation.py). So an organization's Bulks
take at most half of a worker's threads; one past that is answered at once with 429 and
Retry-After (RFC 6585), which IdPs retry, and the other threads stay for everyone else.

Does: count this process's running Bulks per organization. Does not: limit single-resource
requests (each holds a thread for milliseconds and waits its turn in the worker's queue), nor
count across processes (each worker has threads of its own to protect).
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager

from gateway.scim.errors import ScimError
from gateway.serve_limits import APP_THREADS_KEY, ServeLimits

RETRY_AFTER_SECONDS = 10  # about how long a Bulk of a few hundred operations runs


class TooManyBulks(ScimError):
    status = 429
    retry_after = RETRY_AFTER_SECONDS


def bulks_per_org(app_config: dict) -> int:
    """Half the app threads of this process's web worker (`serve --threads`, else the default),
    and at least one."""
    return max(1, int(app_config.get(APP_THREADS_KEY, ServeLimits().threads)) // 2)


class BulkShare:
    """Running Bulks per organization in this process, at most `per_org` each."""

    def __init__(self, per_org: int) -> None:
        self.per_org = per_org
        self._lock = threading.Lock()
        self._running: dict[str, int] = {}

    @contextmanager
    def slot(self, org_id: str) -> Iterator[None]:
        """Hold one of the organization's slots while the Bulk runs; TooManyBulks if none is
        free."""
        with self._lock:
            running = self._running.get(org_id, 0)
            if running >= self.per_org:
                raise TooManyBulks(
                    f"this organization already has {running} Bulk requests running here; "
                    f"retry in {RETRY_AFTER_SECONDS} seconds or send them one after another"
                )
            self._running[org_id] = running + 1
        try:
            yield
        finally:
            with self._lock:
                left = self._running[org_id] - 1
                if left:
                    self._running[org_id] = left
                else:
                    del self._running[org_id]

"""What one web worker gives a peer, and for how long: the limits of `scimgate serve`.

A leaf module (no imports of the server) so that the CLI can show the defaults without loading
gunicorn and uvicorn for every command.
"""

from __future__ import annotations

from dataclasses import dataclass

# Where the web worker tells the app how many app threads it has (read by the SCIM Bulk share).
APP_THREADS_KEY = "GATEWAY_APP_THREADS"


@dataclass(frozen=True)
class ServeLimits:
    """How much a peer may take from one worker process, and for how long."""

    threads: int = 4  # app threads per worker: requests that have fully arrived
    header_timeout: float = 10.0  # from connection (or first byte of a request) to its last header
    body_timeout: float = 30.0  # from the last header to the last byte of the body
    keep_alive: float = 5.0  # idle time between requests on one connection
    max_connections: int = 2000  # per worker; past it, new requests get 503
    max_header_bytes: int = 64 * 1024  # request line and headers; past it, 431

"""Slow clients against a served gateway: /healthz and SCIM GET latency while they trickle.

For each N (default 50, 200, 1000) opens N slow-header connections (a request line, then one
header line every 2 s) and N slow-body connections (full headers with Content-Length: 100000,
then one body byte every 2 s), waits 2 s, then times `--requests` GET /healthz and as many SCIM
GET /Users?filter=userName eq "..." from another client, each bounded by `--timeout` seconds
(a request not answered by then counts as failed and as `--timeout` in the percentiles). Then it
closes them and goes on to the next N.

Two worker models are measured on the same seeded SQLite gateway, one after the other:

- `serve`: `scimgate serve --no-worker --no-demo` as this version ships it (asyncio workers,
  header/body deadlines, gateway/serve.py);
- `gthread`: the model before it, gunicorn's gthread worker with 4 threads per worker (what
  `scimgate serve` ran until issue #16), `gunicorn -w 2 --worker-class gthread --threads 4
  wsgi:app` on the same data.

    .venv/bin/python bench/bench_hostile_slow_clients.py
    .venv/bin/python bench/bench_hostile_slow_clients.py --sizes 50,200 --models serve

Loopback only. Every phase is bounded: opening connections (each connect within 5 s), the 2 s
settle, and 2 x `--requests` requests of at most `--timeout` s each; a run of the three sizes and
both models takes about 3 minutes, most of it the gthread model's timeouts. The client raises its
own open-file limit to its hard limit; sizes that would not fit are cut down and say so.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import resource
import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.parse
from dataclasses import dataclass
from pathlib import Path

import requests
from load_apps import user_document
from load_servers import ROOT, VENV_BIN, Server, start_scimgate, wait_ready

INTERVAL = 2.0


class SlowPeers:
    """N slow-header and N slow-body connections, kept trickling by one thread."""

    def __init__(self, host: str, port: int, path: str, n: int) -> None:
        self.socks: list[socket.socket] = []
        self.failed = 0
        self.header_socks = self._open_many(host, port, n, f"GET {path} HTTP/1.1\r\n".encode())
        body_head = (
            f"POST {path} HTTP/1.1\r\nHost: {host}\r\nContent-Type: application/scim+json\r\n"
            "Content-Length: 100000\r\n\r\n{"
        ).encode()
        self.body_socks = self._open_many(host, port, n, body_head)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._trickle, daemon=True)
        self._thread.start()

    def _open_many(self, host: str, port: int, n: int, first: bytes) -> list[socket.socket]:
        opened = []
        for _ in range(n):
            try:
                sock = socket.create_connection((host, port), timeout=5)
                sock.sendall(first)
            except OSError:
                self.failed += 1
                continue
            sock.setblocking(False)
            opened.append(sock)
        self.socks += opened
        return opened

    def _trickle(self) -> None:
        n = 0
        while not self._stop.wait(INTERVAL):
            n += 1
            line = f"X-Slow-{n}: aaaaaaaaaa\r\n".encode()
            for sock in self.header_socks:
                with contextlib.suppress(OSError):
                    sock.send(line)
            for sock in self.body_socks:
                with contextlib.suppress(OSError):
                    sock.send(b" ")

    def close(self) -> None:
        self._stop.set()
        self._thread.join()
        for sock in self.socks:
            sock.close()


@dataclass
class Timing:
    p50: float
    p99: float
    failed: int


def timed_gets(url: str, headers: dict, count: int, timeout: float) -> Timing:
    took, failed = [], 0
    for _ in range(count):
        started = time.monotonic()
        try:
            # a fresh connection each time, as a new client (an IdP, a load balancer) would open
            ok = requests.get(url, headers=headers, timeout=timeout).status_code == 200
        except requests.RequestException:
            ok = False
        elapsed = time.monotonic() - started
        if not ok:
            failed += 1
            elapsed = max(elapsed, timeout)
        took.append(elapsed * 1000)
    took.sort()
    return Timing(took[len(took) // 2], took[min(len(took) - 1, round(0.99 * len(took)))], failed)


def start_gthread(server: Server) -> None:
    """Replace `scimgate serve` by the former worker model on the same data and port."""
    for proc in server.procs:
        proc.send_signal(signal.SIGTERM)
        proc.wait(timeout=30)
    server.procs.clear()
    parts = urllib.parse.urlsplit(server.bases[0])
    env = {k: v for k, v in os.environ.items() if not k.startswith("GATEWAY_")}
    env.update(
        GATEWAY_DATA_DIR=str(server.workdir),
        GATEWAY_BIND=parts.netloc,
        GATEWAY_PUBLIC_URL=f"http://{parts.netloc}",
    )
    log = Path(str(server.workdir)) / "gthread.log"
    with log.open("wb") as out:
        server.procs.append(
            subprocess.Popen(
                [
                    str(VENV_BIN / "gunicorn"),
                    *("--bind", parts.netloc, "--workers", "2", "--worker-class", "gthread"),
                    *("--threads", "4", "--graceful-timeout", "5", "--chdir", str(ROOT)),
                    "wsgi:app",
                ],
                env=env,
                stdout=out,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        )
    wait_ready(f"http://{parts.netloc}/readyz", server.procs, log, 60)


def raise_fd_limit() -> int:
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if hard != resource.RLIM_INFINITY and soft < hard:
        resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
        soft = hard
    return soft


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--sizes", default="50,200,1000", help="N per phase, comma-separated")
    parser.add_argument("--models", default="serve,gthread")
    parser.add_argument("--requests", type=int, default=20, help="of each kind per phase")
    parser.add_argument("--timeout", type=float, default=2.0, help="seconds per request")
    args = parser.parse_args()

    fd_limit = raise_fd_limit()
    sizes = []
    for n in (int(s) for s in args.sizes.split(",")):
        fit = (fd_limit - 64) // 2
        if n > fit:
            print(
                f"N={n} does not fit the open-file limit {fd_limit}: using {fit}", file=sys.stderr
            )
            n = fit
        sizes.append(n)

    server = start_scimgate("sqlite", range(1), seats=10)
    rows = []
    try:
        base = server.bases[0]
        parts = urllib.parse.urlsplit(base)
        host, port = parts.hostname or "127.0.0.1", parts.port or 80
        auth = {"Authorization": f"Bearer {server.token}"}
        user_name = user_document(0)["userName"]
        scim_url = base + "/Users?filter=" + urllib.parse.quote(f'userName eq "{user_name}"')
        health_url = f"http://{parts.netloc}/healthz"
        assert requests.get(scim_url, headers=auth, timeout=10).json()["totalResults"] == 1
        for model in args.models.split(","):
            if model == "gthread":
                start_gthread(server)
            for n in sizes:
                print(f"{model}: {n} slow-header + {n} slow-body connections", file=sys.stderr)
                peers = SlowPeers(host, port, parts.path + "/Users", n)
                try:
                    time.sleep(INTERVAL)
                    health = timed_gets(health_url, {}, args.requests, args.timeout)
                    scim = timed_gets(scim_url, auth, args.requests, args.timeout)
                finally:
                    peers.close()
                rows.append((model, n, len(peers.socks), peers.failed, health, scim))
                time.sleep(1)  # let the server notice the closed connections
    finally:
        server.stop()

    print(
        f"\nSlow clients: {args.requests} requests of each kind per row, sequential, each "
        f"bounded by {args.timeout:g} s (a failed one counts as {args.timeout:g} s).\n"
    )
    print(
        "| Worker model | N (slow headers + slow bodies) | Open | Refused "
        "| /healthz p50 / p99 (ms) | /healthz failed | SCIM GET p50 / p99 (ms) | SCIM GET failed |"
    )
    print("| --- | --- | --- | --- | --- | --- | --- | --- |")
    names = {"serve": "scimgate serve (asyncio workers)", "gthread": "gthread, 4 threads (before)"}
    for model, n, opened, refused, health, scim in rows:
        print(
            f"| {names.get(model, model)} | {n} + {n} | {opened} | {refused} "
            f"| {health.p50:.1f} / {health.p99:.1f} | {health.failed}/{args.requests} "
            f"| {scim.p50:.1f} / {scim.p99:.1f} | {scim.failed}/{args.requests} |"
        )


if __name__ == "__main__":
    main()

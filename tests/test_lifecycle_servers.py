"""Real servers for the lifecycle tests (no tests of its own): an SMTP server (aiosmtpd) that can
be told to refuse with 451 ("SMTP down"), an HTTP receiver that records webhook requests, a peer
that trickles its answer (a stalled webhook receiver or SMTP server), and helpers that drive the
outbox worker and the CLI the way production does."""

from __future__ import annotations

import email
import re
import socket
import threading
from dataclasses import dataclass, field
from email.message import EmailMessage
from email.policy import default as default_policy
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from click.testing import CliRunner
from sqlalchemy import update

from gateway.config import Config
from gateway.outbox.worker import load_handlers, run_round
from gateway.store.models import OutboxMessage, utcnow

SECRET_KEY = "test-secret-key-0123456789"
LINK = re.compile(r"https?://\S+/invite/[A-Za-z0-9._-]+")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class MailServer:
    """aiosmtpd on 127.0.0.1; with `refuse` set it answers every message with 451."""

    def __init__(self) -> None:
        from aiosmtpd.controller import Controller

        self.messages: list[EmailMessage] = []
        self.refuse = False
        self.refused = 0
        self.port = free_port()
        self.controller = Controller(self, hostname="127.0.0.1", port=self.port)

    async def handle_DATA(self, server, session, envelope):  # type: ignore[no-untyped-def]
        if self.refuse:
            self.refused += 1
            return "451 4.3.0 Mail server temporarily unavailable, try again later"
        message = email.message_from_bytes(envelope.content, policy=default_policy)
        self.messages.append(message)  # type: ignore[arg-type]
        return "250 OK"

    def start(self) -> MailServer:
        self.controller.start()
        return self

    def stop(self) -> None:
        self.controller.stop()

    def env(self) -> dict[str, str]:
        return {
            "GATEWAY_SMTP_HOST": "127.0.0.1",
            "GATEWAY_SMTP_PORT": str(self.port),
            "GATEWAY_SMTP_SECURITY": "none",
            "GATEWAY_MAIL_FROM": "Acme IT <it@msp.example>",
        }

    def links(self) -> list[str]:
        return [LINK.search(body(m)).group(0) for m in self.messages]  # type: ignore[union-attr]


def body(message: EmailMessage, subtype: str = "plain") -> str:
    part = message.get_body(preferencelist=(subtype,))
    assert part is not None, f"no text/{subtype} part"
    return part.get_content()


@dataclass
class Received:
    path: str
    headers: dict[str, str]
    body: bytes


@dataclass
class Receiver:
    """A threading HTTP server on 127.0.0.1 that records every request and answers `status`."""

    status: int = 200
    requests: list[Received] = field(default_factory=list)

    def start(self) -> Receiver:
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                length = int(self.headers.get("Content-Length", 0))
                data = self.rfile.read(length)
                receiver.requests.append(Received(self.path, dict(self.headers.items()), data))
                self.send_response(receiver.status)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, *args) -> None:  # type: ignore[no-untyped-def]
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_port}/hooks/scimgate?token=abc"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()
        return self

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()
        self.thread.join(5)

    def env(self) -> dict[str, str]:
        """The operator setting that lets webhooks go to this receiver, on a loopback address."""
        return {"GATEWAY_WEBHOOK_ALLOW_PRIVATE": "127.0.0.1/32"}


class TricklingServer:
    """A hostile peer on 127.0.0.1: for each connection it (optionally) reads the request, sends
    `first`, then one more line every `interval` seconds, never finishing, until the client
    hangs up or the server stops. `connections` counts connections, `most_open` the most open
    at once."""

    def __init__(self, first: bytes, line: bytes, *, interval: float, read_first: bool) -> None:
        self.first, self.line, self.interval, self.read_first = first, line, interval, read_first
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.listener.settimeout(0.2)
        self.port = self.listener.getsockname()[1]
        self.stopped = threading.Event()
        self.lock = threading.Lock()
        self.connections = self.open = self.most_open = 0

    @classmethod
    def http(cls, interval: float = 2.0) -> TricklingServer:
        """A webhook receiver that answers its status line, then one header every `interval`."""
        return cls(
            b"HTTP/1.1 200 OK\r\n", b"X-Wait: a moment\r\n", interval=interval, read_first=True
        )

    @classmethod
    def smtp(cls, interval: float = 2.0) -> TricklingServer:
        """An SMTP server whose greeting is one continuation line every `interval`."""
        return cls(
            b"220-slow.example ESMTP\r\n",
            b"220-still here\r\n",
            interval=interval,
            read_first=False,
        )

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/hooks/slow"

    def start(self) -> TricklingServer:
        threading.Thread(target=self._accept, daemon=True).start()
        return self

    def stop(self) -> None:
        self.stopped.set()
        self.listener.close()

    def _accept(self) -> None:
        while not self.stopped.is_set():
            try:
                conn, _ = self.listener.accept()
            except TimeoutError:
                continue
            except OSError:
                return
            threading.Thread(target=self._trickle, args=(conn,), daemon=True).start()

    def _trickle(self, conn: socket.socket) -> None:
        with self.lock:
            self.connections += 1
            self.open += 1
            self.most_open = max(self.most_open, self.open)
        try:
            conn.settimeout(10)
            if self.read_first:
                conn.recv(65536)
            conn.sendall(self.first)
            while not self.stopped.wait(self.interval):
                conn.sendall(self.line)
        except OSError:  # the client cut the connection
            pass
        finally:
            conn.close()
            with self.lock:
                self.open -= 1


def make_config(database, tmp_path, **env: str) -> Config:
    return Config.from_env(
        {
            "GATEWAY_DATA_DIR": str(tmp_path / "data"),
            "GATEWAY_DATABASE_URL": database.url,
            "GATEWAY_PUBLIC_URL": "https://scim.example.test",
            "GATEWAY_SECRET_KEY": SECRET_KEY,
            **env,
        }
    )


def work(database, config: Config) -> int:
    """One round of the worker, as `scimgate worker` runs it."""
    load_handlers()
    return run_round(database, config)


def make_due(database) -> None:
    """Let time pass: every pending message (waiting out its backoff) is due now."""
    with database.transaction() as session:
        session.execute(
            update(OutboxMessage)
            .where(OutboxMessage.status == "pending")
            .values(next_attempt_at=utcnow())
        )


def cli(database, tmp_path, *args: str, env: dict | None = None):
    from gateway.cli import main

    base = {
        "GATEWAY_DATABASE_URL": database.url,
        "GATEWAY_DATA_DIR": str(tmp_path / "data"),
        "GATEWAY_SECRET_KEY": SECRET_KEY,
        "GATEWAY_PUBLIC_URL": "https://scim.example.test",
    }
    return CliRunner().invoke(main, list(args), env={**base, **(env or {})})

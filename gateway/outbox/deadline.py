"""A total time budget for one delivery, enforced on its sockets.

A socket timeout bounds each wait for bytes, not the exchange: a peer that sends one byte (a
status line, a header, an SMTP continuation line) just before each timeout holds the caller for
as long as it likes. A `Deadline` keeps a duplicate of every socket the delivery opens and, when
the budget is spent, shuts the connection down from a timer thread; whatever read or write the
delivery is blocked in returns at once with an error, whichever library (urllib3, ssl, smtplib)
made it. The duplicate also survives `ssl.wrap_socket` detaching the original (STARTTLS).

Does: time the budget, cut the connections at its end, tell the caller how much is left. Does
not: retry, or decide what a delivery is (gateway.outbox.webhooks, gateway.outbox.mail).
"""

from __future__ import annotations

import contextlib
import socket
import threading
import time
from types import TracebackType


class Deadline:
    """`with Deadline(20) as deadline:` ... `deadline.watch(sock)` for each connection made."""

    def __init__(self, seconds: float) -> None:
        self.seconds = seconds
        self.at = time.monotonic() + seconds
        self.expired = False
        self._lock = threading.Lock()
        self._sockets: list[socket.socket] = []
        self._timer = threading.Timer(seconds, self._expire)
        self._timer.daemon = True

    def remaining(self) -> float:
        """Seconds left, never below a small positive floor (a zero socket timeout would mean
        'non-blocking', not 'expired')."""
        return max(self.at - time.monotonic(), 0.01)

    def watch(self, sock: socket.socket) -> None:
        """Cut `sock`'s connection when the budget ends (at once if it has ended already)."""
        duplicate = sock.dup()
        with self._lock:
            self._sockets.append(duplicate)
            expired = self.expired
        if expired:
            _cut(duplicate)

    def _expire(self) -> None:
        with self._lock:
            self.expired = True
            sockets = list(self._sockets)
        for sock in sockets:
            _cut(sock)

    def __enter__(self) -> Deadline:
        self._timer.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self._timer.cancel()
        with self._lock:
            sockets, self._sockets = self._sockets, []
        for sock in sockets:
            sock.close()  # the duplicate only: the connection closes with its last descriptor


def _cut(sock: socket.socket) -> None:
    with contextlib.suppress(OSError):  # closed already by its owner, or never connected
        sock.shutdown(socket.SHUT_RDWR)

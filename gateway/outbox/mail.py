"""Sending one e-mail: SMTP (none / STARTTLS / implicit TLS) when configured, otherwise an .eml
file under `<data dir>/mail` so the gateway works with nothing else installed.

Each SMTP delivery has a total deadline (GATEWAY_SMTP_DEADLINE_SECONDS, gateway.outbox.deadline):
a server that trickles its replies cannot hold a worker thread longer. `header_text` cleans
user-given text for headers. Does not: build the messages (their handlers do) nor retry.
"""

from __future__ import annotations

import logging
import os
import re
import smtplib
import socket
import ssl
from collections.abc import Iterator
from contextlib import contextmanager
from email.message import EmailMessage
from pathlib import Path

from gateway.config import Config
from gateway.outbox.deadline import Deadline

log = logging.getLogger(__name__)


class MailError(Exception):
    """The message could not be handed over; the outbox retries it."""


class _SMTP(smtplib.SMTP):
    """smtplib's client, whose connection a Deadline watches from the moment it is made (the
    greeting is read inside `connect`, so watching after it would be too late)."""

    deadline: Deadline | None = None

    def _get_socket(self, host: str, port: int, timeout: float) -> socket.socket:
        sock = super()._get_socket(host, port, timeout)
        if self.deadline is not None:
            self.deadline.watch(sock)  # the plain socket: before any TLS handshake
        return sock


class _SMTPOverTLS(smtplib.SMTP_SSL, _SMTP):
    pass


@contextmanager
def smtp_session(
    config: Config, *, timeout: float = 30, login: bool = True, deadline: Deadline | None = None
) -> Iterator[smtplib.SMTP]:
    """A connected SMTP client, TLS as GATEWAY_SMTP_SECURITY says, logged in when configured;
    with `deadline`, its connection is cut when the deadline passes. Raises OSError or
    smtplib.SMTPException when the server cannot be reached, refuses, or is cut off."""
    assert config.smtp_host
    if deadline is not None:
        timeout = min(timeout, deadline.remaining())
    client: _SMTP
    if config.smtp_security == "tls":
        client = _SMTPOverTLS(timeout=timeout, context=ssl.create_default_context())
    else:
        client = _SMTP(timeout=timeout)
    client.deadline = deadline
    with client:
        client.connect(config.smtp_host, config.smtp_port)
        if config.smtp_security == "starttls":
            client.starttls(context=ssl.create_default_context())
        if login and config.smtp_username:
            client.login(config.smtp_username, config.smtp_password or "")
        yield client


def send_mail(config: Config, message: EmailMessage) -> str:
    """Deliver `message` within GATEWAY_SMTP_DEADLINE_SECONDS; return where it went (for logs)."""
    if not config.smtp_host:
        return _drop(config, message)
    where = f"SMTP {config.smtp_host}:{config.smtp_port}"
    with Deadline(config.smtp_deadline_seconds) as deadline:
        try:
            with smtp_session(config, deadline=deadline) as client:
                client.send_message(message)
        except (OSError, smtplib.SMTPException) as exc:
            if deadline.expired:
                raise MailError(
                    f"{where}: no complete answer within the {deadline.seconds:g} s deadline "
                    "(GATEWAY_SMTP_DEADLINE_SECONDS)"
                ) from exc
            raise MailError(f"{where}: {exc}") from exc
    return f"smtp://{config.smtp_host}:{config.smtp_port}"


_CONTROL = re.compile(r"[\x00-\x1f\x7f\u0085\u2028\u2029]+")


def header_text(value: str) -> str:
    """`value` made safe for a mail header: every run of control characters (CR, LF, tab, NUL,
    the Unicode line separators) becomes one space. Names and organization names come from
    IdPs and admins; a line break in one must neither fail the mail nor add a header."""
    return " ".join(_CONTROL.sub(" ", value).split())


def _drop(config: Config, message: EmailMessage) -> str:
    folder = config.data_dir / "mail"
    folder.mkdir(parents=True, exist_ok=True)
    name = message["Message-ID"].strip("<>").replace("@", "_").replace("/", "_") + ".eml"
    path = Path(folder / name)
    # Written under another name and renamed: whoever lists the folder (a reader following the
    # README, a test, a script) never sees half a mail, now that several deliveries run at once.
    partial = path.with_name(f".{name}.partial")
    partial.write_bytes(bytes(message))
    os.replace(partial, path)
    log.info("no SMTP server configured (GATEWAY_SMTP_HOST): wrote the mail to %s", path)
    return str(path)

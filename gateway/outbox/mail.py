"""Sending one e-mail: SMTP (none / STARTTLS / implicit TLS) when configured, otherwise an .eml
file under `<data dir>/mail` so the gateway works with nothing else installed."""

from __future__ import annotations

import logging
import smtplib
import ssl
from collections.abc import Iterator
from contextlib import contextmanager
from email.message import EmailMessage
from pathlib import Path

from gateway.config import Config

log = logging.getLogger(__name__)


class MailError(Exception):
    """The message could not be handed over; the outbox retries it."""


@contextmanager
def smtp_session(
    config: Config, *, timeout: float = 30, login: bool = True
) -> Iterator[smtplib.SMTP]:
    """A connected SMTP client, TLS as GATEWAY_SMTP_SECURITY says, logged in when configured.
    Raises OSError or smtplib.SMTPException when the server cannot be reached or refuses."""
    assert config.smtp_host
    if config.smtp_security == "tls":
        client: smtplib.SMTP = smtplib.SMTP_SSL(
            config.smtp_host,
            config.smtp_port,
            timeout=timeout,
            context=ssl.create_default_context(),
        )
    else:
        client = smtplib.SMTP(config.smtp_host, config.smtp_port, timeout=timeout)
    with client:
        if config.smtp_security == "starttls":
            client.starttls(context=ssl.create_default_context())
        if login and config.smtp_username:
            client.login(config.smtp_username, config.smtp_password or "")
        yield client


def send_mail(config: Config, message: EmailMessage) -> str:
    """Deliver `message`; return where it went (for logs)."""
    if not config.smtp_host:
        return _drop(config, message)
    try:
        with smtp_session(config) as client:
            client.send_message(message)
    except (OSError, smtplib.SMTPException) as exc:
        raise MailError(f"SMTP {config.smtp_host}:{config.smtp_port}: {exc}") from exc
    return f"smtp://{config.smtp_host}:{config.smtp_port}"


def _drop(config: Config, message: EmailMessage) -> str:
    folder = config.data_dir / "mail"
    folder.mkdir(parents=True, exist_ok=True)
    name = message["Message-ID"].strip("<>").replace("@", "_").replace("/", "_") + ".eml"
    path = Path(folder / name)
    path.write_bytes(bytes(message))
    log.info("no SMTP server configured (GATEWAY_SMTP_HOST): wrote the mail to %s", path)
    return str(path)

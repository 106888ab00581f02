"""The `admin_invitation` outbox handler: the e-mail that invites a new console account.

Does: build the message (a signed link, valid GATEWAY_INVITE_TTL_HOURS from sending) and hand it
to gateway.outbox.mail. Does not: create accounts (gateway.accounts) nor retry (the worker does).
"""

from __future__ import annotations

from datetime import timedelta
from email.message import EmailMessage

from gateway.accounts import ROLE_LABELS, invitation_token
from gateway.config import Config
from gateway.outbox.mail import send_mail
from gateway.outbox.worker import handler
from gateway.store import Database
from gateway.store.models import ConsoleAdmin, OutboxMessage, utcnow


def accept_url(config: Config, admin_id: str) -> str:
    expires = utcnow() + timedelta(hours=config.invite_ttl_hours)
    token = invitation_token(config.secret_key, admin_id, expires)
    return f"{config.public_url}/console/accept/{token}"


@handler("admin_invitation")
def send_admin_invitation(db: Database, config: Config, message: OutboxMessage) -> None:
    with db.read() as session:
        admin = session.get(ConsoleAdmin, message.payload.get("admin_id"))
        if admin is None or admin.status != "invited":
            return  # withdrawn or accepted meanwhile: nothing to send
        email, role = admin.email, ROLE_LABELS.get(admin.role, admin.role)
    mail = EmailMessage()
    mail["From"] = config.mail_from
    mail["To"] = email
    mail["Subject"] = "You are invited to the scimgate console"
    mail["Message-ID"] = message.message_id
    days = config.invite_ttl_hours / 24
    mail.set_content(
        f"You have been invited to the scimgate console as {role}.\n\n"
        f"Choose your password here (the link works for {days:g} days):\n"
        f"{accept_url(config, admin.id)}\n\n"
        "A provider admin confirms your account after that; then you can sign in.\n"
    )
    send_mail(config, mail)

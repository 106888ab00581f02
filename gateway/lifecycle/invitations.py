"""Member invitations: the signed link, the e-mail (Jinja2, plain text and HTML), accepting, and
the worker's re-sends of expired links.

A link is `<public url>/invite/<token>`; the token is signed (itsdangerous, as console admin
invitations are) and carries the member, the invitation's nonce and when it expires. The nonce is
on the member row: accepting clears it and a re-send replaces it, so each link works once and only
the newest works. The expiry is counted from when the mail is handed over, not from when it was
queued, so an SMTP outage does not eat the link's lifetime.

Does: the `invitation` outbox handler, `read_invitation` / `accept_invitation` (with auto-confirm
rules), `resend_expired` and `release_waiting_seats` (worker duties). Does not: HTTP
(gateway.lifecycle.routes) nor SMTP (gateway.outbox.mail).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import datetime, timedelta
from email.message import EmailMessage
from email.utils import formataddr
from pathlib import Path

from itsdangerous import BadSignature, URLSafeSerializer
from jinja2 import Environment, FileSystemLoader, select_autoescape
from sqlalchemy import select
from sqlalchemy.orm import Session

from gateway.config import Config
from gateway.errors import GatewayError, InvalidInput
from gateway.lifecycle import members
from gateway.lifecycle.fingerprint import key_bytes
from gateway.lifecycle.settings import LifecycleSettings, matching_rule
from gateway.outbox.mail import header_text, send_mail
from gateway.outbox.worker import handler
from gateway.store import Database
from gateway.store.models import Member, Organization, OutboxMessage, utcnow

log = logging.getLogger(__name__)

_SALT = "scimgate.member-invitation"
MAX_PUBLIC_KEY = 8000
_mail_templates = Environment(
    loader=FileSystemLoader(Path(__file__).parent / "templates"),
    autoescape=select_autoescape(["html"]),
    keep_trailing_newline=True,
)


class InvitationUnusable(GatewayError):
    """A link that is forged, expired, used or replaced; `reason` says which."""

    def __init__(self, reason: str, message: str) -> None:
        super().__init__(message)
        self.reason = reason


@dataclass(frozen=True)
class Accepted:
    member: Member
    org: Organization
    rule: str | None  # the auto-confirm rule that confirmed the member at once


# --- the link -------------------------------------------------------------------------------------


def invitation_token(secret_key: str, member_id: str, nonce: str, expires: datetime) -> str:
    serializer = URLSafeSerializer(secret_key, salt=_SALT)
    return serializer.dumps({"m": member_id, "n": nonce, "exp": int(expires.timestamp())})


def accept_url(config: Config, token: str) -> str:
    return f"{config.public_url}/invite/{token}"


def read_invitation(
    session: Session, secret_key: str, token: str, *, lock: bool = False
) -> tuple[Member, Organization]:
    """The invited member behind a link, or InvitationUnusable saying why not. `lock` holds the
    member row (PostgreSQL) so two clicks on one link cannot both accept."""
    try:
        data = URLSafeSerializer(secret_key, salt=_SALT).loads(token)
    except BadSignature:
        data = None
    if not isinstance(data, dict) or not {"m", "n", "exp"} <= data.keys():
        raise InvitationUnusable(
            "invalid", "This invitation link is not valid. Check that you copied all of it."
        )
    member = session.get(Member, str(data["m"]), with_for_update=lock or None)
    org = session.get(Organization, member.org_id) if member is not None else None
    if member is None or org is None:
        raise InvitationUnusable("withdrawn", "This invitation was withdrawn.")
    if member.status != "invited":
        raise InvitationUnusable(
            "used", f"This invitation was used already: {member.email} is {member.status}."
        )
    if member.invitation_nonce != data["n"]:
        raise InvitationUnusable(
            "replaced",
            "A newer invitation replaced this one: use the link in the latest e-mail.",
        )
    if data["exp"] < utcnow().timestamp():
        raise InvitationUnusable(
            "expired",
            f"This invitation has expired. A new one is sent automatically, or ask an "
            f"administrator of {org.name} to resend it.",
        )
    return member, org


def check_public_key(public_key: str | None) -> str | None:
    """A key as pasted (base64 or PEM), or None when left empty."""
    key = (public_key or "").strip()
    if not key:
        return None
    if len(key) > MAX_PUBLIC_KEY:
        raise InvalidInput(f"the public key is longer than {MAX_PUBLIC_KEY} characters")
    if key_bytes(key) == key.encode():
        raise InvalidInput("the public key should be base64 or PEM, as your app shows it")
    return key


def accept_invitation(
    session: Session, secret_key: str, token: str, *, public_key: str | None
) -> Accepted:
    """invited -> accepted; confirmed at once when an auto-confirm rule of the organization
    holds for the member (the event names the rule)."""
    member, org = read_invitation(session, secret_key, token, lock=True)
    members.accept(session, member, public_key=check_public_key(public_key))
    rule = matching_rule(session, org, member)
    if rule is not None:
        members.confirm(session, member, "system", rule=rule.name)
    return Accepted(member, org, rule.name if rule else None)


# --- the e-mail -----------------------------------------------------------------------------------


def _lifetime(hours: int) -> str:
    if hours % 24 == 0:
        days = hours // 24
        return f"{days} day" + ("s" if days != 1 else "")
    return f"{hours} hour" + ("s" if hours != 1 else "")


def invitation_mail(
    config: Config, message: OutboxMessage, member: Member, org: Organization, link: str
) -> EmailMessage:
    context = {
        "name": member.name,
        "email": member.email,
        "org_name": org.name,
        "accept_url": link,
        "days": _lifetime(config.invite_ttl_hours),
    }
    mail = EmailMessage()
    mail["From"] = config.mail_from
    # Names come from IdPs and admins: a line break in one must not fail the mail (or add a
    # header), so each run of control characters becomes a space.
    mail["To"] = formataddr((header_text(member.name or ""), header_text(member.email)))
    mail["Subject"] = f"{header_text(org.name)} invites you to its password manager organization"
    # Stable across retries: a receiving server or the recipient can drop duplicates.
    mail["Message-ID"] = message.message_id
    mail.set_content(_mail_templates.get_template("invitation_mail.txt").render(context))
    mail.add_alternative(
        _mail_templates.get_template("invitation_mail.html").render(context), subtype="html"
    )
    return mail


@handler("invitation")
def send_invitation(db: Database, config: Config, message: OutboxMessage) -> None:
    nonce = message.payload.get("nonce")
    with db.read() as session:
        member = session.get(Member, message.payload.get("member_id"))
        org = session.get(Organization, member.org_id) if member is not None else None
        if member is None or org is None or member.status != "invited":
            return  # removed, revoked or accepted meanwhile: nothing to send
        if nonce is not None and member.invitation_nonce != nonce:
            return  # a newer invitation replaced this one
        nonce = member.invitation_nonce
    if nonce is None:
        return
    expires = utcnow() + timedelta(hours=config.invite_ttl_hours)
    link = accept_url(config, invitation_token(config.secret_key, member.id, nonce, expires))
    where = send_mail(config, invitation_mail(config, message, member, org, link))
    log.info("invitation %s for member %s handed over (%s)", message.id, member.id, where)
    with db.transaction() as session:
        current = session.get(Member, member.id)
        if current is not None and current.invitation_nonce == nonce:
            current.invitation_expires_at = expires


# --- expiry ---------------------------------------------------------------------------------------


def resend_expired(db: Database, config: Config, *, now: datetime | None = None) -> int:
    """Worker duty: re-send expired invitations while the organization's allowance lasts, then
    mark them expired (an admin can resend). Returns how many members it handled."""
    now = now or utcnow()
    expired = (
        Member.status == "invited",
        Member.invitation_expires_at < now,
        Member.invitation_expired.is_(False),
    )
    with db.read() as session:  # most rounds find nothing: no write lock for that
        if session.scalar(select(Member.id).where(*expired).limit(1)) is None:
            return 0
    with db.transaction() as session:
        due = list(
            session.scalars(
                select(Member).where(*expired).order_by(Member.invitation_expires_at).limit(500)
            )
        )
        orgs: dict[str, Organization] = {}
        for member in due:
            org = orgs.get(member.org_id) or session.get(Organization, member.org_id)
            assert org is not None
            orgs[org.id] = org
            if (member.invitation_resends or 0) < LifecycleSettings.of(org).invite_resends:
                members.resend_invitation(session, org, member, "system", automatic=True)
            else:
                members.expire_invitation(session, member)
    return len(due)


def release_waiting_seats(db: Database, config: Config) -> int:
    """Worker duty: members waiting for a seat get one, oldest first, once seats free up or the
    limit rises. Returns how many got one."""
    with db.read() as session:
        org_ids = list(
            session.scalars(
                select(Member.org_id)
                .where(Member.waiting_for_seat.is_(True))
                .group_by(Member.org_id)
            )
        )
        org_ids = [
            org_id
            for org_id in org_ids
            if members.Seats.load(session, session.get(Organization, org_id)).available()  # type: ignore[arg-type]
        ]
    admitted = 0
    for org_id in org_ids:
        with db.transaction() as session:
            org = session.get(Organization, org_id, with_for_update=db.dialect == "postgresql")
            if org is not None:
                admitted += len(members.release_seats(session, org, "system"))
    return admitted

"""Webhook endpoints of an organization: add (the signing secret is shown once), list, remove,
and the deliveries made to them.

Does: keep each endpoint's signing secret encrypted with Fernet under a key derived (HKDF-SHA256)
from GATEWAY_SECRET_KEY, and decrypt it for the worker that signs. Does not: deliver or sign
(gateway.outbox.webhooks), nor decide which events go where (gateway.events).
Changing GATEWAY_SECRET_KEY makes stored secrets unreadable: remove and add the endpoints again.
"""

from __future__ import annotations

import base64
import secrets
from dataclasses import dataclass
from urllib.parse import urlsplit

from cryptography.fernet import Fernet, InvalidToken
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.kdf.hkdf import HKDF
from sqlalchemy import select
from sqlalchemy.orm import Session

from gateway.errors import GatewayError, InvalidInput, NotFound
from gateway.events import display_url, forget_endpoints, record_event
from gateway.store.models import Organization, OutboxMessage, WebhookEndpoint

SECRET_PREFIX = "whsec_"  # noqa: S105  (a prefix, not a secret)
MAX_ENDPOINTS = 10


class SecretUnreadable(GatewayError):
    """The endpoint's secret was encrypted under another GATEWAY_SECRET_KEY."""


@dataclass(frozen=True)
class AddedEndpoint:
    endpoint: WebhookEndpoint
    secret: str  # shown once, never stored in clear


def _fernet(secret_key: str) -> Fernet:
    key = HKDF(
        algorithm=hashes.SHA256(), length=32, salt=b"scimgate", info=b"webhook signing secrets"
    ).derive(secret_key.encode())
    return Fernet(base64.urlsafe_b64encode(key))


def encrypt_secret(secret_key: str, secret: str) -> str:
    return _fernet(secret_key).encrypt(secret.encode()).decode()


def decrypt_secret(secret_key: str, endpoint: WebhookEndpoint) -> str:
    try:
        return _fernet(secret_key).decrypt(endpoint.secret_encrypted.encode()).decode()
    except InvalidToken:
        raise SecretUnreadable(
            f"the signing secret of webhook {endpoint.id} cannot be decrypted: was "
            "GATEWAY_SECRET_KEY changed? Remove the endpoint and add it again."
        ) from None


def _check_url(url: str) -> str:
    url = (url or "").strip()
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise InvalidInput(f"{url!r} is not an http:// or https:// URL")
    if len(url) > 2000:
        raise InvalidInput("the URL is longer than 2000 characters")
    return url


def _check_events(events: list[str] | tuple[str, ...] | None) -> list[str]:
    cleaned = sorted({e.strip() for e in events or () if e and e.strip()})
    for pattern in cleaned:
        body = pattern[:-2] if pattern.endswith(".*") else pattern
        if pattern != "*" and (not body or not all(p.isidentifier() for p in body.split("."))):
            raise InvalidInput(
                f"{pattern!r} is not an event type or pattern (e.g. member.confirmed, member.*)"
            )
    return cleaned


def add_endpoint(
    session: Session,
    org: Organization,
    url: str,
    *,
    secret_key: str,
    actor: str,
    events: list[str] | tuple[str, ...] | None = None,
    description: str | None = None,
) -> AddedEndpoint:
    url = _check_url(url)
    patterns = _check_events(events)
    count = len(list_endpoints(session, org))
    if count >= MAX_ENDPOINTS:
        raise InvalidInput(f"an organization has at most {MAX_ENDPOINTS} webhook endpoints")
    secret = SECRET_PREFIX + secrets.token_urlsafe(32)
    endpoint = WebhookEndpoint(
        org_id=org.id,
        url=url,
        events=patterns,
        secret_encrypted=encrypt_secret(secret_key, secret),
        description=(description or "").strip()[:200] or None,
        created_by=actor,
    )
    session.add(endpoint)
    session.flush()
    forget_endpoints(session, org.id)
    record_event(
        session,
        org_id=org.id,
        actor=actor,
        type="webhook.added",
        target_type="webhook",
        target_id=endpoint.id,
        detail={"url": display_url(url), "events": patterns},
    )
    return AddedEndpoint(endpoint, secret)


def list_endpoints(session: Session, org: Organization) -> list[WebhookEndpoint]:
    return list(
        session.scalars(
            select(WebhookEndpoint)
            .where(WebhookEndpoint.org_id == org.id)
            .order_by(WebhookEndpoint.created_at, WebhookEndpoint.id)
        )
    )


def get_endpoint(session: Session, org: Organization, endpoint_id: str) -> WebhookEndpoint:
    endpoint = session.get(WebhookEndpoint, endpoint_id)
    if endpoint is None or endpoint.org_id != org.id:
        raise NotFound(f"{org.name} has no webhook endpoint {endpoint_id!r}")
    return endpoint


def remove_endpoint(session: Session, org: Organization, endpoint_id: str, *, actor: str) -> None:
    """Remove the endpoint; messages still queued for it are dropped by the worker."""
    endpoint = get_endpoint(session, org, endpoint_id)
    record_event(
        session,
        org_id=org.id,
        actor=actor,
        type="webhook.removed",
        target_type="webhook",
        target_id=endpoint.id,
        detail={"url": display_url(endpoint.url)},
    )
    session.delete(endpoint)
    session.flush()
    forget_endpoints(session, org.id)


def webhook_deliveries(
    session: Session, org: Organization, *, failed: bool = False, limit: int = 100
) -> list[OutboxMessage]:
    """The organization's webhook messages, newest first (only the failed ones with `failed`)."""
    query = select(OutboxMessage).where(
        OutboxMessage.org_id == org.id, OutboxMessage.kind == "webhook"
    )
    if failed:
        query = query.where(OutboxMessage.status == "failed")
    return list(session.scalars(query.order_by(OutboxMessage.id.desc()).limit(limit)))

"""Webhook endpoints of an organization: add (the signing secret is shown once), list, remove,
and the deliveries made to them.

Does: keep each endpoint's signing secret encrypted with Fernet under a key derived (HKDF-SHA256)
from GATEWAY_SECRET_KEY, and decrypt it for the worker that signs; say which addresses a webhook
may go to (public ones, plus the networks in GATEWAY_WEBHOOK_ALLOW_PRIVATE: one gateway serves many
organizations, and none of them may make it POST into the gateway's own network) and refuse
endpoints whose host is a literal address or `localhost` outside them. Host names are not resolved
here: DNS can change after registration, so the worker checks what a name resolves to at every
delivery. Does not: deliver or sign (gateway.outbox.webhooks), nor decide which events go where
(gateway.events).
Changing GATEWAY_SECRET_KEY makes stored secrets unreadable: remove and add the endpoints again.
"""

from __future__ import annotations

import base64
import secrets
import socket
from dataclasses import dataclass
from ipaddress import IPv4Address, IPv4Network, IPv6Address, IPv6Network, ip_address
from urllib.parse import urlsplit

from cryptography.fernet import Fernet, InvalidToken
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.kdf.hkdf import HKDF
from sqlalchemy import select
from sqlalchemy.orm import Session

from gateway.config import Networks
from gateway.errors import GatewayError, InvalidInput, NotFound
from gateway.events import display_url, forget_endpoints, record_event
from gateway.store.models import Organization, OutboxMessage, WebhookEndpoint

SECRET_PREFIX = "whsec_"  # noqa: S105  (a prefix, not a secret)
MAX_ENDPOINTS = 10
ALLOW_SETTING = "GATEWAY_WEBHOOK_ALLOW_PRIVATE"
PUBLIC_ONLY = Networks()  # the default of ALLOW_SETTING: no internal network allowed

IPAddress = IPv4Address | IPv6Address
_PRIVATE = tuple(map(IPv4Network, ("10.0.0.0/8", "172.16.0.0/12", "192.168.0.0/16")))
_UNIQUE_LOCAL = IPv6Network("fc00::/7")
_SHARED = IPv4Network("100.64.0.0/10")  # carrier-grade NAT (RFC 6598)
_NAT64 = IPv6Network("64:ff9b::/96")  # RFC 6052: the last 32 bits are the IPv4 destination
_LOCALHOST = (IPv4Address("127.0.0.1"), IPv6Address("::1"))  # what `localhost` names


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


def _ipv4_inside(address: IPAddress) -> IPv4Address | None:
    """The IPv4 address an IPv6 one carries and is delivered to (mapped, 6to4, NAT64), if any."""
    if not isinstance(address, IPv6Address):
        return None
    inner = address.ipv4_mapped or address.sixtofour
    if inner is None and address in _NAT64:
        inner = IPv4Address(int(address) & 0xFFFFFFFF)
    return inner


def _internal_kind(address: IPAddress) -> str | None:
    """What makes `address` internal ("a loopback address", ...), or None for a public one."""
    if address.is_unspecified:
        return "an unspecified address"
    if address.is_loopback:
        return "a loopback address"
    if address.is_link_local:
        return "a link-local address"
    if address.is_multicast:
        return "a multicast address"
    if any(address in network for network in _PRIVATE) or address in _UNIQUE_LOCAL:
        return "a private address"
    if address in _SHARED:
        return "a carrier-grade NAT address"
    if isinstance(address, IPv6Address) and address.is_site_local:
        return "a site-local address"
    if address.is_private or address.is_reserved or not address.is_global:
        return "a special-purpose address"
    return None


def refused_kind(address: IPAddress, allow_private: Networks) -> str | None:
    """Why a webhook may not go to `address` ("a private address"), or None when it may: the
    address is public, or in a network the operator allowed (GATEWAY_WEBHOOK_ALLOW_PRIVATE)."""
    inner = _ipv4_inside(address)
    if address in allow_private or (inner is not None and inner in allow_private):
        return None
    return _internal_kind(inner) if inner is not None else _internal_kind(address)


def allow_hint(addresses: tuple[IPAddress, ...], allow_private: Networks) -> str:
    """What the operator does to let webhooks go to `addresses`, one host network each: "set
    GATEWAY_WEBHOOK_ALLOW_PRIVATE=10.0.0.5/32" (or "add ... to" when it already has networks;
    those are not repeated, as organization admins read this too)."""
    hosts = ",".join(f"{_host(a)}/{_host(a).max_prefixlen}" for a in addresses)
    if allow_private:
        return f"add {hosts} to {ALLOW_SETTING}"
    return f"set {ALLOW_SETTING}={hosts}"


def _host(address: IPAddress) -> IPAddress:
    """The address to allow: the IPv4 one inside (mapped, ...), and without an IPv6 zone."""
    inner = _ipv4_inside(address)
    return inner if inner is not None else type(address)(int(address))


def _literal_address(host: str) -> IPAddress | None:
    """`host` as an address when it is one, including the forms the resolver also reads as IPv4
    (`127.1`, `2130706433`, `0x7f.0.0.1`); None for a name."""
    try:
        return ip_address(host)
    except ValueError:
        pass
    try:
        return IPv4Address(socket.inet_aton(host))
    except OSError:
        return None


def _check_destination(host: str, shown: str, allow_private: Networks) -> None:
    """Refuse a literal internal address or `localhost` (RFC 6761: always the loopback); other
    names are checked when delivered to, against what they resolve to then."""
    name = host.rstrip(".").lower()
    if name == "localhost" or name.endswith(".localhost"):
        if any(address in allow_private for address in _LOCALHOST):
            return
        kind, addresses = "a loopback name", _LOCALHOST
    else:
        address = _literal_address(host)
        kind = refused_kind(address, allow_private) if address is not None else None
        if address is None or kind is None:
            return
        addresses = (address,)
    raise InvalidInput(
        f"{shown} is {kind}: webhooks go to public addresses only, so that no organization can "
        "make the gateway post into its own network. Use a public URL, or ask the gateway's "
        f"operator to {allow_hint(addresses, allow_private)}."
    )


def _check_url(url: str, allow_private: Networks) -> str:
    url = (url or "").strip()
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise InvalidInput(f"{url!r} is not an http:// or https:// URL")
    if len(url) > 2000:
        raise InvalidInput("the URL is longer than 2000 characters")
    try:
        parts.port  # noqa: B018  (raises on a port that is not a number from 0 to 65535)
    except ValueError:
        raise InvalidInput(f"{url!r} has an invalid port") from None
    _check_destination(parts.hostname, display_url(url), allow_private)
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
    allow_private: Networks = PUBLIC_ONLY,
) -> AddedEndpoint:
    """Add an endpoint. `allow_private` is the operator's GATEWAY_WEBHOOK_ALLOW_PRIVATE
    (`config.webhook_allow_private`); without it only public destinations are accepted."""
    url = _check_url(url, allow_private)
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

"""The `webhook` outbox handler: POST one event as JSON to one endpoint, signed.

Headers: `X-Scimgate-Event-Id` (the event's unique id: the same on every retry and every endpoint),
`X-Scimgate-Delivery` (the outbox message's Message-ID), `X-Scimgate-Timestamp` (Unix seconds of
this attempt) and `X-Scimgate-Signature: sha256=<hex>`, an HMAC-SHA256 with the endpoint's secret
over `<timestamp>.<raw body>`. A receiver recomputes it, compares in constant time and refuses
timestamps older than a few minutes (replay). Any 2xx answer is a delivery; anything else (a
redirect too: it is not followed), or no complete answer within GATEWAY_WEBHOOK_DEADLINE_SECONDS
(connect, TLS, request, status line, headers and answer together: gateway.outbox.deadline), raises
so the worker retries with backoff and finally marks it failed.

Before each attempt the endpoint's host name is resolved and every address it resolves to must be
one webhooks may go to (gateway.lifecycle.webhooks.refused_kind: public, or allowed by
GATEWAY_WEBHOOK_ALLOW_PRIVATE); the connection then goes to those vetted addresses and is never
resolved a second time, so a name that answers differently a moment later (DNS rebinding) cannot
turn the request inward. The host name still goes in the Host header, the TLS SNI and the
certificate check. Proxies from the environment are not used: a proxy would resolve the name
itself, past the check.

Does: check the destination, sign, send, `verify_signature` for receivers written in Python.
Does not: choose which events go to which endpoint (gateway.events) nor store endpoints
(gateway.lifecycle.webhooks).
"""

from __future__ import annotations

import hashlib
import hmac
import json
import logging
import socket
import sys
import time
from ipaddress import ip_address
from typing import Any
from urllib.parse import urlsplit

import requests
from requests.adapters import HTTPAdapter
from urllib3 import HTTPConnectionPool, HTTPSConnectionPool, PoolManager
from urllib3.connection import HTTPConnection, HTTPSConnection
from urllib3.exceptions import ConnectTimeoutError, NewConnectionError
from urllib3.util.connection import create_connection

from gateway.config import Config, Networks
from gateway.lifecycle.webhooks import allow_hint, decrypt_secret, refused_kind
from gateway.outbox.deadline import Deadline
from gateway.outbox.worker import handler
from gateway.store import Database
from gateway.store.models import OutboxMessage, WebhookEndpoint

log = logging.getLogger(__name__)

TIMEOUT_SECONDS = 10
SIGNATURE_HEADER = "X-Scimgate-Signature"
TIMESTAMP_HEADER = "X-Scimgate-Timestamp"
EVENT_ID_HEADER = "X-Scimgate-Event-Id"
DELIVERY_HEADER = "X-Scimgate-Delivery"
REPLAY_WINDOW_SECONDS = 300


class WebhookRefused(Exception):
    """The delivery did not happen (no 2xx answer, no answer, or a destination that is not
    allowed); the outbox retries with backoff, then marks the message failed."""


class DestinationNotAllowed(WebhookRefused):
    """The endpoint's host resolves to an address webhooks may not go to. Retried like any other
    failure, each attempt checking again (DNS or GATEWAY_WEBHOOK_ALLOW_PRIVATE may change); after
    GATEWAY_OUTBOX_MAX_ATTEMPTS the message is failed."""


def signature(secret: str, timestamp: int | str, body: bytes) -> str:
    mac = hmac.new(secret.encode(), f"{timestamp}.".encode() + body, hashlib.sha256)
    return "sha256=" + mac.hexdigest()


def verify_signature(
    secret: str,
    body: bytes,
    timestamp: str,
    header: str,
    *,
    now: float | None = None,
    window: int = REPLAY_WINDOW_SECONDS,
) -> bool:
    """What a receiver does: the signature matches and the timestamp is recent."""
    try:
        age = (now if now is not None else time.time()) - int(timestamp)
    except ValueError:
        return False
    if abs(age) > window:
        return False
    return hmac.compare_digest(signature(secret, timestamp, body), header)


def encode_body(event: dict) -> bytes:
    return json.dumps(event, separators=(",", ":"), sort_keys=True).encode()


def vetted_addresses(url: str, allow_private: Networks, *, shown: str) -> tuple[str, ...]:
    """Every address `url`'s host resolves to, in the resolver's order; raises
    DestinationNotAllowed when any of them is not one a webhook may go to, WebhookRefused when
    the name does not resolve. `shown` is the URL as messages show it (no query string)."""
    parts = urlsplit(url)
    try:
        port = parts.port or (443 if parts.scheme == "https" else 80)
        infos = socket.getaddrinfo(parts.hostname, port, type=socket.SOCK_STREAM)
    except (ValueError, OSError) as exc:
        raise WebhookRefused(f"{shown}: {parts.hostname} cannot be resolved ({exc})") from None
    addresses = tuple(dict.fromkeys(str(info[4][0]) for info in infos))
    for address in map(ip_address, addresses):
        kind = refused_kind(address, allow_private)
        if kind is not None:
            # The address and the hint go to the worker's log only: organization admins read
            # delivery errors, and must not learn what internal names resolve to.
            log.warning(
                "webhook to %s refused: it resolves to %s, %s; %s to allow it",
                shown,
                address,
                kind,
                allow_hint((address,), allow_private),
            )
            raise DestinationNotAllowed(
                f"{shown} resolves to {kind}, where webhooks may not go; the gateway's operator "
                "can allow it (GATEWAY_WEBHOOK_ALLOW_PRIVATE; the worker's log names the address)"
            )
    return addresses


class _PinnedConnection(HTTPConnection):
    """Connects to addresses vetted beforehand instead of resolving its host name again; the
    name stays `host`, so it is still what the Host header, TLS SNI and certificate check use.
    (urllib3's own SOCKS connection overrides `_new_conn` the same way.)"""

    def __init__(
        self, *args: Any, addresses: tuple[str, ...], deadline: Deadline, **kwargs: Any
    ) -> None:
        super().__init__(*args, **kwargs)
        self.addresses = addresses
        self.deadline = deadline

    def _new_conn(self) -> socket.socket:
        error: OSError | None = None
        for address in self.addresses:  # each in turn, as a resolving connect would
            try:
                sock = create_connection(
                    (address, self.port),
                    min(self.timeout, self.deadline.remaining()),  # type: ignore[type-var]
                    source_address=self.source_address,
                    socket_options=self.socket_options,
                )
            except OSError as exc:
                error = exc
                continue
            # Watched before TLS and before the request: the deadline covers everything after.
            self.deadline.watch(sock)
            sys.audit("http.client.connect", self, self.host, self.port)
            return sock
        if isinstance(error, TimeoutError):
            raise ConnectTimeoutError(
                self, f"Connection to {self.host} timed out. (connect timeout={self.timeout})"
            ) from error
        raise NewConnectionError(self, f"Failed to establish a new connection: {error}") from error


class _PinnedHTTPSConnection(_PinnedConnection, HTTPSConnection):
    pass


class _PinnedHTTPConnectionPool(HTTPConnectionPool):
    ConnectionCls = _PinnedConnection


class _PinnedHTTPSConnectionPool(HTTPSConnectionPool):
    ConnectionCls = _PinnedHTTPSConnection


class _PinnedPoolManager(PoolManager):
    """Pools whose connections go to `addresses`, whatever the URL's host resolves to now, and
    are cut when `deadline` passes."""

    def __init__(self, addresses: tuple[str, ...], deadline: Deadline, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.addresses = addresses
        self.deadline = deadline
        self.pool_classes_by_scheme = {
            "http": _PinnedHTTPConnectionPool,
            "https": _PinnedHTTPSConnectionPool,
        }

    def _new_pool(  # urllib3: "intended to be overridden for customization"
        self,
        scheme: str,
        host: str,
        port: int,
        request_context: dict[str, Any] | None = None,
    ) -> HTTPConnectionPool:
        context = dict(self.connection_pool_kw if request_context is None else request_context)
        context["addresses"] = self.addresses  # handed on to each connection
        context["deadline"] = self.deadline
        return super()._new_pool(scheme, host, port, context)


class _PinnedAdapter(HTTPAdapter):
    def __init__(self, addresses: tuple[str, ...], deadline: Deadline) -> None:
        self.addresses = addresses
        self.deadline = deadline
        super().__init__()

    def init_poolmanager(
        self, connections: int, maxsize: int, block: bool = False, **pool_kwargs: Any
    ) -> None:
        super().init_poolmanager(connections, maxsize, block, **pool_kwargs)
        self.poolmanager = _PinnedPoolManager(
            self.addresses,
            self.deadline,
            num_pools=connections,
            maxsize=maxsize,
            block=block,
            **pool_kwargs,
        )

    def send(self, request: requests.PreparedRequest, **kwargs: Any) -> requests.Response:
        kwargs["proxies"] = None  # a proxy would resolve the host name itself, past the check
        return super().send(request, **kwargs)


def pinned_session(addresses: tuple[str, ...], deadline: Deadline) -> requests.Session:
    """A requests session whose connections, whatever their URL, go to `addresses` only, and are
    cut when `deadline` passes."""
    session = requests.Session()
    adapter = _PinnedAdapter(addresses, deadline)
    session.mount("http://", adapter)
    session.mount("https://", adapter)
    return session


@handler("webhook", receiver="endpoint_id")
def send_webhook(db: Database, config: Config, message: OutboxMessage) -> None:
    payload = message.payload
    shown = payload.get("url", "")
    with db.read() as session:
        endpoint = session.get(WebhookEndpoint, payload.get("endpoint_id"))
        if endpoint is None:
            log.info("webhook %s: its endpoint was removed; not sent", message.id)
            return
        url, secret = endpoint.url, decrypt_secret(config.secret_key, endpoint)
    # requests' timeout bounds each socket wait, not the exchange: a receiver trickling its
    # status line and headers would hold the delivery for ever. The deadline covers the whole
    # exchange (the name lookup cannot be interrupted, but counts against it).
    with Deadline(config.webhook_deadline_seconds) as deadline:
        addresses = vetted_addresses(url, config.webhook_allow_private, shown=shown)
        body = encode_body(payload["event"])
        timestamp = str(int(time.time()))
        headers = {
            "Content-Type": "application/json",
            "User-Agent": "scimgate-webhooks/1",
            EVENT_ID_HEADER: payload["event"]["id"],
            DELIVERY_HEADER: message.message_id,
            TIMESTAMP_HEADER: timestamp,
            SIGNATURE_HEADER: signature(secret, timestamp, body),
        }
        try:
            wait = min(TIMEOUT_SECONDS, deadline.remaining())
            with (
                pinned_session(addresses, deadline) as session,
                session.post(
                    url,
                    data=body,
                    headers=headers,
                    timeout=(wait, wait),
                    allow_redirects=False,
                    stream=True,
                ) as response,
            ):
                read = 0  # at most a few KB of the answer are read: only its status matters
                for chunk in response.iter_content(1024):
                    read += len(chunk)
                    if read >= 8192:
                        break
        except requests.RequestException as exc:
            if not deadline.expired:
                raise WebhookRefused(f"{shown}: {exc.__class__.__name__}") from None
        # Checked even when no error was raised: http.client takes a connection cut in the
        # middle of the headers for their end, so a cut exchange can look like a 200.
        if deadline.expired:
            raise WebhookRefused(
                f"{shown}: no complete answer within the {deadline.seconds:g} s deadline "
                "(GATEWAY_WEBHOOK_DEADLINE_SECONDS)"
            )
    if 300 <= response.status_code < 400:
        raise WebhookRefused(
            f"{shown} answered HTTP {response.status_code}: redirects are not "
            "followed, register the URL it redirects to"
        )
    if not 200 <= response.status_code < 300:
        raise WebhookRefused(f"{shown} answered HTTP {response.status_code}")

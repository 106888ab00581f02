"""The `webhook` outbox handler: POST one event as JSON to one endpoint, signed.

Headers: `X-Scimgate-Event-Id` (the event's unique id: the same on every retry and every endpoint),
`X-Scimgate-Delivery` (the outbox message's Message-ID), `X-Scimgate-Timestamp` (Unix seconds of
this attempt) and `X-Scimgate-Signature: sha256=<hex>`, an HMAC-SHA256 with the endpoint's secret
over `<timestamp>.<raw body>`. A receiver recomputes it, compares in constant time and refuses
timestamps older than a few minutes (replay). Any 2xx answer is a delivery; anything else, or no
answer within the timeout, raises so the worker retries with backoff and finally marks it failed.

Does: sign, send, `verify_signature` for receivers written in Python. Does not: choose which
events go to which endpoint (gateway.events) nor store endpoints
(gateway.lifecycle.webhooks).
"""

from __future__ import annotations

import hashlib
import hmac
import json
import logging
import time

import requests

from gateway.config import Config
from gateway.lifecycle.webhooks import decrypt_secret
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
    """The endpoint answered, but not with 2xx; the outbox retries."""


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


@handler("webhook")
def send_webhook(db: Database, config: Config, message: OutboxMessage) -> None:
    payload = message.payload
    with db.read() as session:
        endpoint = session.get(WebhookEndpoint, payload.get("endpoint_id"))
        if endpoint is None:
            log.info("webhook %s: its endpoint was removed; not sent", message.id)
            return
        url, secret = endpoint.url, decrypt_secret(config.secret_key, endpoint)
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
    # requests' timeout bounds each socket wait, not the exchange: a receiver trickling its
    # answer would hold the worker (and every other organization's mail) for ever. The answer
    # is streamed, at most a few KB are read, and the whole exchange has a deadline.
    deadline = time.monotonic() + 2 * TIMEOUT_SECONDS
    try:
        with requests.post(
            url,
            data=body,
            headers=headers,
            timeout=TIMEOUT_SECONDS,
            allow_redirects=False,
            stream=True,
        ) as response:
            read = 0
            for chunk in response.iter_content(1024):
                read += len(chunk)
                if read >= 8192 or time.monotonic() > deadline:
                    break
    except requests.RequestException as exc:
        raise WebhookRefused(f"{payload.get('url')}: {exc.__class__.__name__}") from None
    if not 200 <= response.status_code < 300:
        raise WebhookRefused(f"{payload.get('url')} answered HTTP {response.status_code}")

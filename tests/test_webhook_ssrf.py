"""Webhooks cannot be pointed into the gateway's own network: literal internal addresses and
`localhost` are refused when an endpoint is added, and every delivery resolves the host name,
refuses when any address is internal (unless GATEWAY_WEBHOOK_ALLOW_PRIVATE allows it), connects to
the address it checked (no second lookup: DNS rebinding), keeps the name for TLS, and does not
follow redirects.

There is no DNS server here: `dns` answers for a few names at socket.getaddrinfo, the resolver
the gateway and urllib3 call, and passes every other lookup to the real one."""

from __future__ import annotations

import datetime
import json
import socket
import ssl
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
from sqlalchemy import select
from test_lifecycle_servers import Receiver, cli, make_config, make_due, work
from test_provisioning_rules import create_user

from gateway.config import Config, ConfigError, Networks
from gateway.errors import InvalidInput
from gateway.lifecycle.webhooks import add_endpoint, list_endpoints
from gateway.store.models import Organization, OutboxMessage

ALLOW_LOOPBACK = {"GATEWAY_WEBHOOK_ALLOW_PRIVATE": "127.0.0.1/32"}
ONE_ATTEMPT = {"GATEWAY_OUTBOX_MAX_ATTEMPTS": "1"}


@pytest.fixture
def receiver():
    server = Receiver().start()
    yield server
    server.stop()


class FakeDns:
    """Answers for the names in `answers` (one list of addresses per lookup, the last one
    repeated) and counts the lookups; other names go to the real resolver."""

    def __init__(self, real) -> None:
        self.real = real
        self.answers: dict[str, list[list[str]]] = {}
        self.lookups: dict[str, int] = {}

    def __call__(self, host, port, family=0, type=0, proto=0, flags=0):
        name = host.decode() if isinstance(host, bytes) else host
        if name not in self.answers:
            return self.real(host, port, family, type, proto, flags)
        self.lookups[name] = self.lookups.get(name, 0) + 1
        answers = self.answers[name]
        addresses = answers[min(self.lookups[name], len(answers)) - 1]
        return [
            (socket.AF_INET6, socket.SOCK_STREAM, 6, "", (a, port, 0, 0))
            if ":" in a
            else (socket.AF_INET, socket.SOCK_STREAM, 6, "", (a, port))
            for a in addresses
        ]


@pytest.fixture
def dns(monkeypatch):
    fake = FakeDns(socket.getaddrinfo)
    monkeypatch.setattr(socket, "getaddrinfo", fake)
    return fake


def add(database, org_id: str, url: str, allow: str = "") -> None:
    with database.transaction() as session:
        add_endpoint(
            session,
            session.get(Organization, org_id),
            url,
            secret_key="test-secret-key-0123456789",
            actor="admin:test",
            events=["member.invited"],
            allow_private=Networks.parse(allow),
        )


def deliveries(database, tmp_path) -> list[dict]:
    """`scimgate webhooks deliveries --json`: what an operator reads."""
    result = cli(database, tmp_path, "webhooks", "deliveries", "--org", "Acme", "--json")
    assert result.exit_code == 0, result.output
    return json.loads(result.output)


def on_host(url: str, host: str) -> str:
    return url.replace("127.0.0.1", host, 1)


# --- when an endpoint is added ------------------------------------------------------------------


@pytest.fixture
def admin_api(app, database):
    from gateway.accounts import create_admin, issue_api_key

    with database.transaction() as session:
        admin = create_admin(
            session, "ops@msp.example", role="provider_admin", password="correct horse battery"
        )
        key = issue_api_key(session, admin.id, description="t").secret
    client = app.test_client()

    def post(org_id: str, url: str):
        return client.post(
            f"/api/v1/orgs/{org_id}/webhooks",
            headers={"Authorization": f"Bearer {key}"},
            json={"url": url},
        )

    return post


@pytest.mark.parametrize(
    ("url", "said"),
    [
        ("http://127.0.0.1/hook", "is a loopback address"),
        ("http://169.254.169.254/latest/meta-data/", "is a link-local address"),
        ("http://[::1]/", "is a loopback address"),
        ("http://10.1.2.3/hook", "is a private address"),
        ("https://localhost:8443/hook", "is a loopback name"),
        ("http://[::ffff:127.0.0.1]/hook", "is a loopback address"),
        ("http://127.1/hook", "is a loopback address"),
        ("http://0.0.0.0/hook", "is an unspecified address"),
        ("http://100.64.0.1/hook", "is a carrier-grade NAT address"),
        ("http://[fe80::1]/hook", "is a link-local address"),
    ],
)
def test_adding_an_internal_address_is_refused_and_says_what_to_do(
    admin_api, scim, database, url, said
):
    answer = admin_api(scim.org_id, url + "?token=secret")
    assert answer.status_code == 400, answer.json
    message = answer.json["error"]["message"]
    assert message.startswith(url.split("?")[0] + " " + said)  # the URL as given, brackets too
    assert "webhooks go to public addresses only" in message
    assert "ask the gateway's operator to set GATEWAY_WEBHOOK_ALLOW_PRIVATE=" in message
    assert "token=secret" not in message  # the query string can carry the receiver's secret
    with database.read() as session:
        assert list_endpoints(session, session.get(Organization, scim.org_id)) == []


def test_the_message_names_the_network_to_allow(admin_api, scim):
    answer = admin_api(scim.org_id, "http://10.1.2.3/hook")
    assert answer.json["error"]["message"] == (
        "http://10.1.2.3/hook is a private address: webhooks go to public addresses only, so "
        "that no organization can make the gateway post into its own network. Use a public URL, "
        "or ask the gateway's operator to set GATEWAY_WEBHOOK_ALLOW_PRIVATE=10.1.2.3/32."
    )


def test_names_and_allowed_networks_are_accepted_without_resolving(scim, database, dns):
    dns.answers["hooks.acme.test"] = [["10.9.9.9"]]
    add(database, scim.org_id, "https://hooks.acme.test/in")  # checked when delivered to
    add(database, scim.org_id, "http://10.1.2.3/hook", allow="10.0.0.0/8")
    add(database, scim.org_id, "http://localhost:8080/hook", allow="127.0.0.1/32")
    add(database, scim.org_id, "https://93.184.216.34/hook")
    assert dns.lookups == {}
    with pytest.raises(InvalidInput) as refused:  # another network allowed: this one is added
        add(database, scim.org_id, "http://10.1.2.3/hook", allow="192.168.0.0/16")
    assert "operator to add 10.1.2.3/32 to GATEWAY_WEBHOOK_ALLOW_PRIVATE." in str(refused.value)


# --- when a webhook is delivered ----------------------------------------------------------------


def test_a_name_resolving_to_loopback_is_refused_at_delivery_and_nothing_is_sent(
    scim, database, tmp_path, receiver, dns, caplog
):
    caplog.set_level("WARNING", logger="gateway.outbox.webhooks")
    dns.answers["hooks.acme.test"] = [["127.0.0.1"]]
    url = on_host(receiver.url, "hooks.acme.test")
    add(database, scim.org_id, url)
    create_user(scim, "ann@acme.example")
    work(database, make_config(database, tmp_path, **ONE_ATTEMPT))

    assert receiver.requests == []
    (delivery,) = deliveries(database, tmp_path)
    assert (delivery["status"], delivery["attempts"]) == ("failed", 1)
    shown = url.split("?")[0]
    # What the organization's admins see names the kind of address, not the address.
    assert delivery["last_error"] == (
        f"DestinationNotAllowed: {shown} resolves to a loopback address, where webhooks may not "
        "go; the gateway's operator can allow it (GATEWAY_WEBHOOK_ALLOW_PRIVATE; the worker's "
        "log names the address)"
    )
    # The operator's log says which address and what to set.
    assert (
        f"webhook to {shown} refused: it resolves to 127.0.0.1, a loopback address; "
        "set GATEWAY_WEBHOOK_ALLOW_PRIVATE=127.0.0.1/32 to allow it"
    ) in caplog.messages


def test_localhost_is_refused_at_delivery_once_the_operator_no_longer_allows_it(
    scim, database, tmp_path, receiver
):
    add(database, scim.org_id, on_host(receiver.url, "localhost"), allow="127.0.0.1/32")
    create_user(scim, "ann@acme.example")
    work(database, make_config(database, tmp_path, **ONE_ATTEMPT))

    assert receiver.requests == []
    (delivery,) = deliveries(database, tmp_path)
    assert delivery["status"] == "failed"
    assert "resolves to a loopback address, where webhooks may not go" in delivery["last_error"]


def test_one_internal_address_among_public_ones_is_enough_to_refuse(scim, database, tmp_path, dns):
    dns.answers["hooks.acme.test"] = [["93.184.216.34", "10.0.0.5"]]
    add(database, scim.org_id, "https://hooks.acme.test/in?token=abc")
    create_user(scim, "ann@acme.example")
    work(database, make_config(database, tmp_path, **ONE_ATTEMPT))

    (delivery,) = deliveries(database, tmp_path)
    assert delivery["status"] == "failed"
    assert delivery["last_error"].startswith(
        "DestinationNotAllowed: https://hooks.acme.test/in resolves to a private address,"
    )
    assert "10.0.0.5" not in delivery["last_error"]


def test_a_refused_delivery_is_retried_with_backoff_then_failed_like_any_other(
    scim, database, tmp_path, receiver, dns
):
    dns.answers["hooks.acme.test"] = [["169.254.169.254"]]
    add(database, scim.org_id, on_host(receiver.url, "hooks.acme.test"))
    create_user(scim, "ann@acme.example")
    config = make_config(database, tmp_path, GATEWAY_OUTBOX_MAX_ATTEMPTS="2")
    work(database, config)
    (delivery,) = deliveries(database, tmp_path)
    assert (delivery["status"], delivery["attempts"]) == ("pending", 1)
    assert "a link-local address" in delivery["last_error"]

    make_due(database)
    work(database, config)
    (delivery,) = deliveries(database, tmp_path)
    assert (delivery["status"], delivery["attempts"]) == ("failed", 2)
    assert dns.lookups["hooks.acme.test"] == 2  # checked again on each attempt
    assert receiver.requests == []


def test_with_loopback_allowed_the_same_delivery_arrives(scim, database, tmp_path, receiver, dns):
    dns.answers["hooks.acme.test"] = [["127.0.0.1"]]
    add(database, scim.org_id, on_host(receiver.url, "hooks.acme.test"))
    create_user(scim, "ann@acme.example")
    work(database, make_config(database, tmp_path, **ALLOW_LOOPBACK))

    (request,) = receiver.requests
    assert json.loads(request.body)["type"] == "member.invited"
    assert request.headers["Host"] == f"hooks.acme.test:{receiver.server.server_port}"
    assert [d["status"] for d in deliveries(database, tmp_path)] == ["sent"]


def test_the_connection_goes_to_the_checked_address_not_to_a_second_lookup(
    scim, database, tmp_path, receiver, dns
):
    # DNS rebinding: the name answers the allowed address to the check, then another one.
    dns.answers["hooks.acme.test"] = [["127.0.0.1"], ["127.0.0.2"]]
    add(database, scim.org_id, on_host(receiver.url, "hooks.acme.test"))
    create_user(scim, "ann@acme.example")
    work(database, make_config(database, tmp_path, **ALLOW_LOOPBACK, **ONE_ATTEMPT))

    assert dns.lookups["hooks.acme.test"] == 1
    assert len(receiver.requests) == 1
    assert [d["status"] for d in deliveries(database, tmp_path)] == ["sent"]


class Redirector:
    """An HTTP server on 127.0.0.1 that answers every POST with 307 to `location` (307 keeps
    the method and body, so a client that followed it would POST there)."""

    def __init__(self, location: str) -> None:
        self.hits = 0
        redirector = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                redirector.hits += 1
                self.rfile.read(int(self.headers.get("Content-Length", 0)))
                self.send_response(307)
                self.send_header("Location", location)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, *args) -> None:  # type: ignore[no-untyped-def]
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_port}/hook"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()


def test_a_redirect_is_not_followed_and_the_delivery_fails(scim, database, tmp_path, receiver):
    redirector = Redirector(location=receiver.url)
    try:
        add(database, scim.org_id, redirector.url, allow="127.0.0.1/32")
        create_user(scim, "ann@acme.example")
        work(database, make_config(database, tmp_path, **ALLOW_LOOPBACK, **ONE_ATTEMPT))
    finally:
        redirector.stop()

    assert redirector.hits == 1
    assert receiver.requests == []
    (delivery,) = deliveries(database, tmp_path)
    assert delivery["status"] == "failed"
    assert delivery["last_error"] == (
        f"WebhookRefused: {redirector.url} answered HTTP 307: redirects are not followed, "
        "register the URL it redirects to"
    )


# --- TLS to a checked address -------------------------------------------------------------------


def self_signed(tmp_path, name: str) -> tuple[str, str]:
    """A certificate for `name` and its key, as PEM files: (cert path, key path)."""
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name)])
    now = datetime.datetime.now(datetime.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(hours=1))
        .add_extension(x509.SubjectAlternativeName([x509.DNSName(name)]), critical=False)
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
        .sign(key, hashes.SHA256())
    )
    cert_path, key_path = tmp_path / f"{name}.crt", tmp_path / f"{name}.key"
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    return str(cert_path), str(key_path)


@pytest.fixture
def tls_receiver(tmp_path, receiver):
    """The receiver behind TLS with a certificate for hooks.acme.test, trusted through
    REQUESTS_CA_BUNDLE; `server_names` records the SNI of each handshake."""
    cert, key = self_signed(tmp_path, "hooks.acme.test")
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(cert, key)
    server_names: list[str | None] = []
    context.sni_callback = lambda sock, name, ctx: server_names.append(name)
    receiver.server.socket = context.wrap_socket(receiver.server.socket, server_side=True)
    receiver.server_names = server_names
    receiver.ca_bundle = cert
    return receiver


def test_https_to_the_checked_address_keeps_the_name_for_sni_and_the_certificate(
    scim, database, tmp_path, tls_receiver, dns, monkeypatch
):
    monkeypatch.setenv("REQUESTS_CA_BUNDLE", tls_receiver.ca_bundle)
    dns.answers["hooks.acme.test"] = [["127.0.0.1"]]
    dns.answers["other.acme.test"] = [["127.0.0.1"]]
    port = tls_receiver.server.server_port
    add(database, scim.org_id, f"https://hooks.acme.test:{port}/in")
    add(database, scim.org_id, f"https://other.acme.test:{port}/in")  # not the certificate's
    create_user(scim, "ann@acme.example")
    work(database, make_config(database, tmp_path, **ALLOW_LOOPBACK, **ONE_ATTEMPT))

    assert "hooks.acme.test" in tls_receiver.server_names
    assert len(tls_receiver.requests) == 1
    assert tls_receiver.requests[0].headers["Host"] == f"hooks.acme.test:{port}"
    with database.read() as session:
        outcome = {
            m.payload["url"]: (m.status, m.last_error)
            for m in session.scalars(select(OutboxMessage).where(OutboxMessage.kind == "webhook"))
        }
    assert outcome[f"https://hooks.acme.test:{port}/in"] == ("sent", None)
    status, error = outcome[f"https://other.acme.test:{port}/in"]
    assert status == "failed" and "SSLError" in error


# --- the setting --------------------------------------------------------------------------------


def test_the_allow_setting_reads_comma_separated_networks_and_names_a_bad_one(tmp_path):
    env = {"GATEWAY_DATA_DIR": str(tmp_path)}
    assert not Config.from_env(env).webhook_allow_private
    config = Config.from_env({**env, "GATEWAY_WEBHOOK_ALLOW_PRIVATE": "10.0.0.0/8, ::1/128"})
    assert str(config.webhook_allow_private) == "10.0.0.0/8,::1/128"
    with pytest.raises(ConfigError) as err:
        Config.from_env({**env, "GATEWAY_WEBHOOK_ALLOW_PRIVATE": "10.0.0.5/8"})
    assert "GATEWAY_WEBHOOK_ALLOW_PRIVATE='10.0.0.5/8' is not valid" in str(err.value)
    assert "10.0.0.0/8,127.0.0.1/32" in str(err.value)

"""Opening a bound LDAP connection: failover over the configured servers, LDAPS or StartTLS with
certificate and host name verification, simple bind with a DN, UPN or DOMAIN\\user.

Does: connect step by step (DNS, TCP, TLS, bind) so that a failure says which step failed and what
to fix. Does not: search (reader.py) or decide what to sync.
"""

from __future__ import annotations

import contextlib
import ipaddress
import logging
import socket
import ssl
from dataclasses import dataclass
from urllib.parse import urlsplit

from ldap3 import NONE, SIMPLE, Connection, Server, Tls
from ldap3.core.exceptions import LDAPException
from ldap3.utils.conv import to_unicode

from connectors.ldap.config import ConnectorConfig
from gateway.errors import GatewayError

log = logging.getLogger(__name__)

CONNECT_TIMEOUT = 10


class LdapError(GatewayError):
    """Reading the directory failed; `stage` says where: dns, tcp, tls, bind, base_dn, filter,
    search (a search that did not complete), config."""

    def __init__(self, stage: str, message: str) -> None:
        super().__init__(message)
        self.stage = stage


@dataclass
class Bound:
    connection: Connection
    url: str

    def close(self) -> None:
        with contextlib.suppress(LDAPException):  # already gone: nothing to release
            self.connection.unbind()


def _endpoint(url: str) -> tuple[str, int, bool]:
    parts = urlsplit(url)
    secure = parts.scheme == "ldaps"
    host = parts.hostname or ""
    return host, parts.port or (636 if secure else 389), secure


def _tls(cfg: ConnectorConfig) -> Tls:
    if not cfg.tls_verify:
        log.warning(
            "LDAP connector %s: TLS certificate verification is OFF (tls.verify: false); "
            "the directory server's identity is not checked",
            cfg.name,
        )
    return Tls(
        validate=ssl.CERT_REQUIRED if cfg.tls_verify else ssl.CERT_NONE,
        ca_certs_file=cfg.ca_file,
        local_certificate_file=cfg.client_cert,
        local_private_key_file=cfg.client_key,
        # ldap3's own host name check refuses IP addresses: "*" turns it off, _check_host_name
        # below does it instead.
        valid_names=["*"],
        sni=cfg.tls_server_name,
    )


def _check_host_name(sock: ssl.SSLSocket, host: str, cfg: ConnectorConfig) -> None:
    """The certificate must name the host we connected to (or tls.server_name). ldap3's own check
    does not accept IP addresses, so this one is done here, the way browsers do it."""
    if not cfg.tls_verify:
        return
    cert = sock.getpeercert() or {}
    wanted = (cfg.tls_server_name or host).lower()
    names = [v.lower() for k, v in cert.get("subjectAltName", ()) if k == "DNS"]
    ips = [v for k, v in cert.get("subjectAltName", ()) if k == "IP Address"]
    try:
        wanted_ip = ipaddress.ip_address(wanted)
    except ValueError:
        wanted_ip = None
    if wanted_ip is not None:
        if any(ipaddress.ip_address(ip.strip()) == wanted_ip for ip in ips):
            return
    else:
        if not names:  # old certificates: the subject CN
            names = [
                v.lower() for rdn in cert.get("subject", ()) for k, v in rdn if k == "commonName"
            ]
        for name in names:
            if name == wanted or (
                name.startswith("*.") and "." in wanted and wanted.split(".", 1)[1] == name[2:]
            ):
                return
    shown = ", ".join(names + ips) or "no names"
    raise LdapError(
        "tls",
        f"TLS: the certificate of {host} is not valid for {wanted!r} (it names {shown}); connect "
        "by a name the certificate lists, or set tls.server_name",
    )


def _tls_message(url: str, exc: BaseException, cfg: ConnectorConfig) -> str:
    text = str(exc)
    cause = exc
    while cause.__cause__ or cause.__context__:
        cause = cause.__cause__ or cause.__context__  # type: ignore[assignment]
        if isinstance(cause, ssl.SSLCertVerificationError):
            text = cause.verify_message or str(cause)
    hint = (
        f"check that tls.ca_file ({cfg.ca_file}) is the CA that signed the server's certificate"
        if cfg.ca_file
        else "set tls.ca_file to the CA that signed the server's certificate"
    )
    if (
        "certificate verify failed" in text
        or "unable to get local issuer" in text
        or ("self-signed" in text or "self signed" in text)
    ):
        return f"TLS: the certificate of {url} is not trusted ({_short(text)}); {hint}"
    return f"TLS: the handshake with {url} failed ({_short(text)})"


def _short(text: str) -> str:
    for marker in ("certificate verify failed: ", "socket ssl wrapping error: "):
        if marker in text:
            text = text.split(marker, 1)[1]
    return text.strip().rstrip(")").strip()[:300]


def _is_tls_error(exc: BaseException) -> bool:
    text = str(exc).lower()
    return "ssl" in text or "certificate" in text or "tls" in text


def open_one(cfg: ConnectorConfig, url: str, password: str, receive_timeout: int) -> Bound:
    host, port, secure = _endpoint(url)
    # DNS and TCP first, so that their failures are named as such.
    try:
        socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except socket.gaierror as exc:
        raise LdapError("dns", f"DNS: cannot resolve {host!r} ({exc.strerror})") from None
    try:
        with socket.create_connection((host, port), timeout=CONNECT_TIMEOUT):
            pass
    except TimeoutError:
        raise LdapError(
            "tcp", f"TCP: no answer from {host}:{port} within {CONNECT_TIMEOUT} s (firewall?)"
        ) from None
    except OSError as exc:
        raise LdapError("tcp", f"TCP: cannot connect to {host}:{port} ({exc.strerror})") from None

    server = Server(
        host,
        port=port,
        use_ssl=secure,
        tls=_tls(cfg) if (secure or cfg.start_tls) else None,
        get_info=NONE,
        connect_timeout=CONNECT_TIMEOUT,
    )
    conn = Connection(
        server,
        user=cfg.bind_user,
        password=password,
        authentication=SIMPLE,
        auto_bind=False,
        raise_exceptions=False,
        read_only=True,
        auto_range=False,  # ranged retrieval is done by the reader, which checks every step
        auto_referrals=False,
        receive_timeout=receive_timeout,
        return_empty_attributes=False,
        # We read raw_attributes only; without this ldap3 also formats every value of every
        # entry by the schema's syntax (there is no schema: get_info=NONE), a third of decoding.
        check_names=False,
    )
    _decode_entries_raw(conn)
    try:
        conn.open()
    except LDAPException as exc:
        if secure and _is_tls_error(exc):
            raise LdapError("tls", _tls_message(url, exc, cfg)) from None
        raise LdapError("tcp", f"TCP: cannot open {url} ({exc})") from None
    try:
        if cfg.start_tls and not secure:
            try:
                started = conn.start_tls()
            except LDAPException as exc:
                raise LdapError("tls", _tls_message(url, exc, cfg)) from None
            if not started:
                raise LdapError(
                    "tls",
                    f"TLS: {url} refused StartTLS ({conn.result.get('message') or conn.result})",
                )
        if secure or cfg.start_tls:
            _check_host_name(conn.socket, host, cfg)
        if not conn.bind():
            raise LdapError("bind", _bind_message(cfg, url, conn.result))
    except LdapError:
        Bound(conn, url).close()
        raise
    except LDAPException as exc:
        Bound(conn, url).close()
        raise LdapError("bind", f"bind: {url} failed during bind ({exc})") from None
    return Bound(conn, url)


_SEARCH_RESULT_ENTRY = 4  # protocolOp of a searchResEntry (RFC 4511 4.5.2)


def _decode_entries_raw(conn: Connection) -> None:
    """Turn each searchResEntry into just its DN and raw values, keyed by the lower-cased
    attribute name, which is all the reader uses. ldap3 builds two dictionaries per entry (every
    value once as bytes, once decoded to text, each decode asking its configuration four times)
    and case-insensitive ones: two fifths of reading a directory. Other replies (bind, search
    done, paging controls, extended) are decoded by ldap3 as before."""
    decode = conn.strategy.decode_response_fast

    def decode_raw(message: dict) -> dict:
        if message["protocolOp"] != _SEARCH_RESULT_ENTRY:
            return decode(message)
        dn, attributes = message["payload"][0][3], message["payload"][1][3]
        raw = {}
        for attribute in attributes:
            name, values = attribute[3][0][3], attribute[3][1][3]
            raw[_text(name).lower()] = [bytes(value[3]) for value in values]
        return {"type": "searchResEntry", "dn": _text(dn), "raw_attributes": raw}

    conn.strategy.decode_response_fast = decode_raw


def _text(value: bytes) -> str:
    try:
        return value.decode("utf-8")
    except UnicodeDecodeError:  # AD may send a DN in another encoding; ldap3 knows which
        return str(to_unicode(value, from_server=True))


def _bind_message(cfg: ConnectorConfig, url: str, result: dict) -> str:
    code = result.get("result")
    detail = (result.get("message") or result.get("description") or "").strip()
    if code == 49:
        return (
            f"bind: {url} refused the credentials of {cfg.bind_user!r} (invalid credentials"
            f"{': ' + detail if detail else ''}); check bind.user and the password in "
            f"{(cfg.password_env and '$' + cfg.password_env) or cfg.password_file}"
        )
    if code == 8:
        return (
            f"bind: {url} requires a protected connection for a simple bind "
            "(strongerAuthRequired): use ldaps:// or start_tls: true"
        )
    return (
        f"bind: {url} refused the bind of {cfg.bind_user!r}: {result.get('description')} {detail}"
    )


def connect(cfg: ConnectorConfig, *, only: str | None = None) -> Bound:
    """A bound connection to the first server that answers (in the configured order); `only`
    pins one server (a delta sync continues on the DC it read from). Bind and TLS failures are not
    retried on the next server: the next one would refuse the same way."""
    password = cfg.password()
    errors: list[str] = []
    urls = [only] if only else list(cfg.servers)
    for url in urls:
        try:
            return open_one(cfg, url, password, receive_timeout=cfg.time_limit + 30)
        except LdapError as exc:
            if exc.stage not in ("dns", "tcp") or len(urls) == 1:
                raise
            log.warning("LDAP connector %s: %s; trying the next server", cfg.name, exc)
            errors.append(str(exc))
    raise LdapError("tcp", "no directory server answered:\n  " + "\n  ".join(errors))

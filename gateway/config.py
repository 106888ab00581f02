"""Settings: every knob is an environment variable `GATEWAY_*`, read and checked in one place.

Does: parse, default and validate settings; derive the database URL and the secret key.
Does not: open connections or touch the database (see `gateway.store`).
"""

from __future__ import annotations

import os
import secrets
from collections.abc import Callable, Mapping
from dataclasses import dataclass, fields
from ipaddress import IPv4Address, IPv4Network, IPv6Address, IPv6Network, ip_network
from pathlib import Path
from urllib.parse import urlsplit


class ConfigError(Exception):
    """A setting has a value the gateway cannot use; the message names the variable."""


def _bool(raw: str) -> bool:
    value = raw.strip().lower()
    if value in {"1", "true", "yes", "on"}:
        return True
    if value in {"0", "false", "no", "off"}:
        return False
    raise ValueError("expected true or false")


def _positive_int(raw: str) -> int:
    value = int(raw)
    if value < 1:
        raise ValueError("expected a whole number of at least 1")
    return value


def _non_negative_int(raw: str) -> int:
    value = int(raw)
    if value < 0:
        raise ValueError("expected a whole number of at least 0")
    return value


def _choice(*options: str) -> Callable[[str], str]:
    def parse(raw: str) -> str:
        value = raw.strip().lower()
        if value not in options:
            raise ValueError("expected one of " + ", ".join(options))
        return value

    return parse


def _url(raw: str) -> str:
    parts = urlsplit(raw.strip())
    if parts.scheme not in {"http", "https"} or not parts.netloc:
        raise ValueError(
            "expected an absolute http:// or https:// URL, e.g. https://scim.example.com"
        )
    return raw.strip().rstrip("/")


def _database_url(raw: str) -> str:
    value = raw.strip()
    if value.startswith("postgresql://") or value.startswith("postgres://"):
        # psycopg 3 is the driver we ship; the bare scheme would ask SQLAlchemy for psycopg2.
        value = "postgresql+psycopg://" + value.split("://", 1)[1]
    if not (value.startswith("sqlite:///") or value.startswith("postgresql+psycopg://")):
        raise ValueError("expected sqlite:///PATH or postgresql+psycopg://USER@HOST:PORT/DATABASE")
    return value


def _bind(raw: str) -> str:
    host, sep, port = raw.strip().rpartition(":")
    if not sep or not host or not port.isdigit() or not 0 < int(port) < 65536:
        raise ValueError("expected HOST:PORT, e.g. 127.0.0.1:8080")
    return raw.strip()


@dataclass(frozen=True)
class Networks:
    """IP networks, written as comma-separated CIDR (`10.0.0.0/8,127.0.0.1/32`); `address in
    networks` says whether one of them holds the address."""

    networks: tuple[IPv4Network | IPv6Network, ...] = ()

    @classmethod
    def parse(cls, raw: str) -> Networks:
        try:
            return cls(tuple(ip_network(part.strip()) for part in raw.split(",") if part.strip()))
        except ValueError as exc:
            raise ValueError(
                f"expected comma-separated networks such as 10.0.0.0/8,127.0.0.1/32 ({exc})"
            ) from None

    def __contains__(self, address: object) -> bool:
        if not isinstance(address, IPv4Address | IPv6Address):
            return False
        return any(address in network for network in self.networks)  # False across versions

    def __bool__(self) -> bool:
        return bool(self.networks)

    def __str__(self) -> str:
        return ",".join(str(network) for network in self.networks)


@dataclass(frozen=True)
class Setting:
    name: str
    parse: Callable[[str], object]
    default: str | None
    help: str


# The reference table in the README is generated from this list (`scimgate config`), so the two
# cannot drift apart.
SETTINGS: tuple[Setting, ...] = (
    Setting(
        "GATEWAY_DATA_DIR",
        str,
        "./data",
        "Directory for the SQLite file, the generated secret key and mail drops.",
    ),
    Setting(
        "GATEWAY_DATABASE_URL",
        _database_url,
        None,
        "Database; default `sqlite:///<data dir>/scimgate.db`. PostgreSQL: `postgresql+psycopg://user@host:5432/db`.",
    ),
    Setting(
        "GATEWAY_PUBLIC_URL",
        _url,
        None,
        "URL clients reach the gateway at; used in SCIM base URLs, `meta.location` and "
        "invitation links. Default: `http://` + GATEWAY_BIND.",
    ),
    Setting("GATEWAY_BIND", _bind, "127.0.0.1:8080", "Address `scimgate serve` listens on."),
    Setting(
        "GATEWAY_WEB_WORKERS",
        _positive_int,
        "2",
        "gunicorn worker processes started by `scimgate serve`.",
    ),
    Setting(
        "GATEWAY_SECRET_KEY",
        str,
        None,
        "Key that signs sessions and invitation links; default: generated once into "
        "`<data dir>/secret_key`.",
    ),
    Setting(
        "GATEWAY_LOG_FORMAT",
        _choice("text", "json"),
        "text",
        "`text` for people, `json` (one object per line) for log collectors.",
    ),
    Setting(
        "GATEWAY_LOG_LEVEL",
        _choice("debug", "info", "warning", "error"),
        "info",
        "Lowest level that is logged.",
    ),
    Setting(
        "GATEWAY_TRUST_PROXY",
        _non_negative_int,
        "0",
        "Number of reverse proxies in front whose X-Forwarded-For/-Proto/-Host/-Prefix "
        "headers are trusted (0: none).",
    ),
    Setting(
        "GATEWAY_SCIM_DEFAULT_COUNT",
        _positive_int,
        "100",
        "Page size of a SCIM list when the client sends no `count`.",
    ),
    Setting(
        "GATEWAY_SCIM_MAX_RESULTS",
        _positive_int,
        "1000",
        "Largest SCIM page (`filter.maxResults`); a larger `count` is lowered to it.",
    ),
    Setting(
        "GATEWAY_SCIM_MAX_PAYLOAD",
        _positive_int,
        "1048576",
        "Largest SCIM request body in bytes (`bulk.maxPayloadSize`); larger bodies get 413.",
    ),
    Setting(
        "GATEWAY_TOKEN_CACHE_SECONDS",
        _non_negative_int,
        "5",
        "How long a web process trusts a SCIM token it has checked before asking the database "
        "again (0: every request). A token revoked in another process stops working within "
        "this time; in the same process at once.",
    ),
    Setting(
        "GATEWAY_SCIM_APPLY",
        _choice("inline", "queued"),
        "inline",
        "When the engine turns a SCIM write into member, group and access changes. `inline`: "
        "in the request's transaction (the org layer never lags behind a response). `queued`: "
        "the request commits what the IdP sent and a pending change; a background thread of "
        "each web process (and every worker) applies pending changes in batches, usually "
        "within a second. Several times the write throughput, for large IdP pushes.",
    ),
    Setting(
        "GATEWAY_SCIM_BULK_MAX_OPERATIONS",
        _positive_int,
        "1000",
        "Most operations in one SCIM Bulk request (`bulk.maxOperations`).",
    ),
    Setting(
        "GATEWAY_DB_POOL_SIZE",
        _positive_int,
        "5",
        "Connections kept open per process for writes (PostgreSQL), and as many for SCIM reads; "
        "each pool opens up to as many again in a burst, so a process uses at most 4x this.",
    ),
    Setting(
        "GATEWAY_DB_STATEMENT_TIMEOUT_MS",
        _non_negative_int,
        "15000",
        "PostgreSQL statement timeout in milliseconds (0: none).",
    ),
    Setting(
        "GATEWAY_SMTP_HOST",
        str,
        None,
        "SMTP server for invitations; unset: mails are written as .eml files under "
        "`<data dir>/mail`.",
    ),
    Setting("GATEWAY_SMTP_PORT", _positive_int, "587", "SMTP port."),
    Setting(
        "GATEWAY_SMTP_SECURITY",
        _choice("none", "starttls", "tls"),
        "starttls",
        "`starttls`, `tls` (implicit TLS, usually port 465) or `none`.",
    ),
    Setting("GATEWAY_SMTP_USERNAME", str, None, "SMTP login, if the server wants one."),
    Setting("GATEWAY_SMTP_PASSWORD", str, None, "SMTP password (never logged)."),
    Setting(
        "GATEWAY_MAIL_FROM", str, "scimgate <noreply@localhost>", "Sender of invitation mails."
    ),
    Setting(
        "GATEWAY_INVITE_TTL_HOURS",
        _positive_int,
        "120",
        "How long an invitation link stays valid (default 5 days).",
    ),
    Setting(
        "GATEWAY_OUTBOX_MAX_ATTEMPTS",
        _positive_int,
        "8",
        "Delivery attempts (with exponential backoff) before a message is marked failed.",
    ),
    Setting(
        "GATEWAY_WORKER_POLL_SECONDS",
        _positive_int,
        "2",
        "How often an idle worker looks for due messages and connector runs.",
    ),
    Setting(
        "GATEWAY_OUTBOX_LEASE_SECONDS",
        _positive_int,
        "120",
        "How long a worker owns a message it is delivering; a worker that dies mid-delivery "
        "hands it to another after this.",
    ),
    Setting(
        "GATEWAY_OUTBOX_CONCURRENCY",
        _positive_int,
        "8",
        "Deliveries (e-mails, webhooks) in flight at once in each worker process, on as many "
        "threads; one slow delivery holds one of them, never the whole worker.",
    ),
    Setting(
        "GATEWAY_WEBHOOK_CONCURRENCY",
        _positive_int,
        "4",
        "Of those, the most that may be webhooks, so receivers that stall leave the rest for "
        "e-mail. Lower than GATEWAY_OUTBOX_CONCURRENCY.",
    ),
    Setting(
        "GATEWAY_WEBHOOK_PER_RECEIVER",
        _positive_int,
        "1",
        "Most webhook deliveries in flight to one endpoint in each worker process: a slow "
        "receiver's further messages wait while other receivers' proceed. With 1, an endpoint "
        "gets its events in order (unless a failed one is retried later); more may reorder them.",
    ),
    Setting(
        "GATEWAY_WEBHOOK_PER_ORG",
        _positive_int,
        "2",
        "Most webhook deliveries in flight for one organization's endpoints together, in each "
        "worker process: many endpoints of one organization cannot take every webhook thread.",
    ),
    Setting(
        "GATEWAY_WEBHOOK_DEADLINE_SECONDS",
        _positive_int,
        "20",
        "Total time one webhook delivery may take (connect, TLS, request, status line, headers, "
        "answer); at the deadline the connection is cut and the delivery retried later.",
    ),
    Setting(
        "GATEWAY_SMTP_DEADLINE_SECONDS",
        _positive_int,
        "60",
        "Total time one SMTP delivery may take (connect, TLS, login, message); at the deadline "
        "the connection is cut and the mail retried later.",
    ),
    Setting(
        "GATEWAY_LOGIN_ATTEMPTS_PER_ACCOUNT",
        _positive_int,
        "5",
        "Wrong passwords for one console account from one client address within 15 minutes "
        "before that address must wait for that account. The same account from another "
        "address still signs in.",
    ),
    Setting(
        "GATEWAY_LOGIN_ATTEMPTS_PER_ADDRESS",
        _positive_int,
        "20",
        "Wrong passwords from one client address within 15 minutes, whatever the accounts, "
        "before that address must wait (behind a proxy, set GATEWAY_TRUST_PROXY so the "
        "client's address is the one counted).",
    ),
    Setting(
        "GATEWAY_WEBHOOK_ALLOW_PRIVATE",
        Networks.parse,
        "",
        "Networks webhooks may go to besides public addresses, comma-separated CIDR (e.g. "
        "`10.0.0.0/8,127.0.0.1/32`), for a gateway that delivers to internal services. Empty: "
        "loopback, private, link-local (cloud metadata), CGNAT, multicast and reserved "
        "addresses are refused, when an endpoint is added as a literal address and on every "
        "delivery for whatever its host name resolves to.",
    ),
)


@dataclass(frozen=True)
class Config:
    data_dir: Path
    database_url: str
    public_url: str
    bind: str
    web_workers: int
    secret_key: str
    log_format: str
    log_level: str
    trust_proxy: int
    scim_default_count: int
    scim_max_results: int
    scim_max_payload: int
    scim_bulk_max_operations: int
    db_pool_size: int
    db_statement_timeout_ms: int
    smtp_host: str | None = None
    smtp_port: int = 587
    smtp_security: str = "starttls"
    smtp_username: str | None = None
    smtp_password: str | None = None
    mail_from: str = "scimgate <noreply@localhost>"
    invite_ttl_hours: int = 120
    outbox_max_attempts: int = 8
    worker_poll_seconds: int = 2
    outbox_lease_seconds: int = 120
    token_cache_seconds: int = 5
    scim_apply: str = "inline"
    webhook_allow_private: Networks = Networks()
    outbox_concurrency: int = 8
    webhook_concurrency: int = 4
    webhook_per_receiver: int = 1
    webhook_per_org: int = 2
    webhook_deadline_seconds: int = 20
    smtp_deadline_seconds: int = 60
    login_attempts_per_account: int = 5
    login_attempts_per_address: int = 20

    @property
    def is_sqlite(self) -> bool:
        return self.database_url.startswith("sqlite")

    def scim_base_url(self, org_id: str) -> str:
        return f"{self.public_url}/scim/v2/{org_id}"

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None, *, create_dirs: bool = True) -> Config:
        """Read settings from `env` (default: the process environment); raise ConfigError on any
        bad value, naming the variable and what it expects."""
        env = os.environ if env is None else env
        values: dict[str, object] = {}
        for setting in SETTINGS:
            raw = env.get(setting.name)
            if raw is None or raw.strip() == "":
                raw = setting.default
            if raw is None:
                values[setting.name] = None
                continue
            try:
                values[setting.name] = setting.parse(raw)
            except ValueError as exc:
                reason = (
                    str(exc)
                    if not str(exc).startswith("invalid literal")
                    else "expected a whole number"
                )
                raise ConfigError(f"{setting.name}={raw!r} is not valid: {reason}.") from None

        data_dir = Path(str(values["GATEWAY_DATA_DIR"])).expanduser().resolve()
        if create_dirs:
            try:
                # Only this user: it holds the database, the secret key and mail drops with
                # live invitation links.
                data_dir.mkdir(mode=0o700, parents=True, exist_ok=True)
            except OSError as exc:
                raise ConfigError(
                    f"GATEWAY_DATA_DIR={str(values['GATEWAY_DATA_DIR'])!r} cannot be created: "
                    f"{exc.strerror}."
                ) from None
        database_url = values["GATEWAY_DATABASE_URL"] or f"sqlite:///{data_dir / 'scimgate.db'}"
        if values["GATEWAY_PUBLIC_URL"] is None:
            host, _, port = str(values["GATEWAY_BIND"]).rpartition(":")
            host = "127.0.0.1" if host in {"0.0.0.0", "::", "[::]"} else host  # noqa: S104
            values["GATEWAY_PUBLIC_URL"] = f"http://{host}:{port}"
        secret_key = values["GATEWAY_SECRET_KEY"] or _stored_secret_key(data_dir, create_dirs)
        if len(str(secret_key)) < 16:
            raise ConfigError("GATEWAY_SECRET_KEY is too short: use at least 16 random characters.")

        names = {f.name for f in fields(cls)}
        kwargs = {
            name.removeprefix("GATEWAY_").lower(): value
            for name, value in values.items()
            if name.removeprefix("GATEWAY_").lower() in names
        }
        kwargs.update(data_dir=data_dir, database_url=database_url, secret_key=secret_key)
        config = cls(**kwargs)
        if config.scim_default_count > config.scim_max_results:
            raise ConfigError(
                "GATEWAY_SCIM_DEFAULT_COUNT must not be larger than GATEWAY_SCIM_MAX_RESULTS."
            )
        if config.webhook_concurrency >= config.outbox_concurrency:
            raise ConfigError(
                "GATEWAY_WEBHOOK_CONCURRENCY must be lower than GATEWAY_OUTBOX_CONCURRENCY: the "
                "rest is what e-mail keeps when webhook receivers stall."
            )
        for name in ("GATEWAY_WEBHOOK_DEADLINE_SECONDS", "GATEWAY_SMTP_DEADLINE_SECONDS"):
            # A delivery that outlived its lease could be claimed and sent by another worker.
            deadline = getattr(config, name.removeprefix("GATEWAY_").lower())
            if deadline >= config.outbox_lease_seconds:
                raise ConfigError(
                    f"{name} must be lower than GATEWAY_OUTBOX_LEASE_SECONDS, or a delivery "
                    "still running could be sent a second time by another worker."
                )
        return config


def _stored_secret_key(data_dir: Path, create: bool) -> str:
    """The key generated on first start, kept beside the database so restarts keep sessions and
    invitation links valid."""
    path = data_dir / "secret_key"
    if path.exists():
        return path.read_text().strip()
    if not create:
        return secrets.token_urlsafe(48)
    key = secrets.token_urlsafe(48)
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:  # another process wrote it first: use theirs
        return path.read_text().strip()
    with os.fdopen(fd, "w") as fh:
        fh.write(key + "\n")
    return key

"""Readiness: the checks `scimgate doctor` prints and the console's Readiness page shows.

Does: check the database and its migrations, the SMTP server, the public URL, that every LDAP
connector binds, that every stored mapping loads, that there are two provider admins for
failover, that SCIM tokens are in use, and which organizations have deprovisionings held by the
guard waiting for a decision; each check says what to do when it is not ok.
Does not: fix anything.
"""

from __future__ import annotations

import shlex
import smtplib
from collections.abc import Callable
from dataclasses import dataclass
from datetime import timedelta

from sqlalchemy import func, select

from gateway.config import SETTINGS, Config
from gateway.outbox.mail import smtp_session
from gateway.store import Database, SchemaState
from gateway.store.models import (
    ApiToken,
    ConsoleAdmin,
    HeldChange,
    Organization,
    OrgMapping,
    utcnow,
)

OK, WARN, FAIL = "ok", "warn", "fail"
STALE_TOKEN = timedelta(days=90)


@dataclass(frozen=True)
class Check:
    name: str
    status: str  # ok, warn or fail
    detail: str


def check_database(db: Database, config: Config) -> list[Check]:
    try:
        state = db.schema_state()
    except Exception as exc:  # any failure to reach the database is the answer
        return [Check("database", FAIL, f"cannot connect: {exc.__class__.__name__}: {exc}")]
    url = db.engine.url.render_as_string(hide_password=True)
    if state is SchemaState.CURRENT:
        return [Check("database", OK, f"{url}, schema current ({db.current_revision()})")]
    if state in (SchemaState.EMPTY, SchemaState.OUTDATED):
        return [Check("database", FAIL, f"{url}: schema {state.value}; run `scimgate db upgrade`")]
    return [
        Check("database", FAIL, f"{url}: unknown schema revision; is a newer scimgate using it?")
    ]


def check_smtp(db: Database, config: Config) -> list[Check]:
    if not config.smtp_host:
        return [
            Check(
                "smtp",
                WARN,
                f"GATEWAY_SMTP_HOST is not set: mails are written to {config.data_dir / 'mail'}",
            )
        ]
    where = f"{config.smtp_host}:{config.smtp_port}"
    try:
        with smtp_session(config, timeout=5, login=False) as client:
            client.noop()
    except (TimeoutError, OSError, smtplib.SMTPException) as exc:
        return [Check("smtp", FAIL, f"{where} not reachable: {exc}")]
    return [Check("smtp", OK, f"{where} reachable ({config.smtp_security})")]


def check_public_url(db: Database, config: Config) -> list[Check]:
    default = next(s.default for s in SETTINGS if s.name == "GATEWAY_PUBLIC_URL")
    if config.public_url == default:
        return [
            Check(
                "public url",
                WARN,
                f"GATEWAY_PUBLIC_URL is the default {default}: identity providers and invitation "
                "links need the address clients really use",
            )
        ]
    if not config.public_url.startswith("https://"):
        return [Check("public url", WARN, f"{config.public_url} is not https")]
    return [Check("public url", OK, config.public_url)]


def check_connectors(db: Database, config: Config) -> list[Check]:
    from connectors.ldap.config import SETTINGS_KEY, org_connectors
    from connectors.ldap.diagnose import diagnose
    from gateway.errors import GatewayError

    with db.read() as session:
        orgs = [
            (o.name, o.settings)
            for o in session.scalars(select(Organization).order_by(Organization.name_lower))
            if (o.settings or {}).get(SETTINGS_KEY)
        ]
    if not orgs:
        return [Check("ldap connectors", OK, "no LDAP connector configured")]
    checks = []
    for name, settings in orgs:
        try:
            connectors = org_connectors(settings)
        except GatewayError as exc:
            checks.append(Check(f"ldap {name}", FAIL, f"configuration invalid: {exc}"))
            continue
        for cfg in connectors.values():
            report = diagnose(cfg, sample=0)
            label = f"ldap {name}/{cfg.name}"
            if report.ok:
                checks.append(
                    Check(label, OK, f"binds; {report.users} users, {report.groups} groups")
                )
            else:
                checks.append(Check(label, FAIL, report.failure() or "failed"))
    return checks


def check_mappings(db: Database, config: Config) -> list[Check]:
    from gateway.provisioning.settings import parse_mapping
    from mappings import MappingError

    with db.read() as session:
        rows = session.execute(
            select(Organization.name, OrgMapping.text).join(
                OrgMapping, OrgMapping.org_id == Organization.id
            )
        ).all()
    bad = []
    for name, text in rows:
        try:
            parse_mapping(text)
        except (MappingError, ValueError) as exc:
            bad.append(f"{name}: {exc}")
    if bad:
        return [Check("mappings", FAIL, "; ".join(bad))]
    return [Check("mappings", OK, f"{len(rows)} custom mapping(s) load; the rest use the defaults")]


def check_provider_admins(db: Database, config: Config) -> list[Check]:
    with db.read() as session:
        n = int(
            session.scalar(
                select(func.count())
                .select_from(ConsoleAdmin)
                .where(ConsoleAdmin.role == "provider_admin", ConsoleAdmin.status == "confirmed")
            )
            or 0
        )
    if n >= 2:
        return [Check("provider admins", OK, f"{n} confirmed provider admins")]
    if n == 1:
        return [
            Check("provider admins", WARN, "only one provider admin: invite a second for failover")
        ]
    return [
        Check(
            "provider admins",
            FAIL,
            "no provider admin: run `scimgate admin create EMAIL --role provider_admin`",
        )
    ]


def check_tokens(db: Database, config: Config) -> list[Check]:
    from connectors.ldap.config import SETTINGS_KEY

    now = utcnow()
    with db.read() as session:
        orgs = list(session.scalars(select(Organization).order_by(Organization.name_lower)))
        tokens = list(
            session.scalars(
                select(ApiToken).where(ApiToken.kind == "scim", ApiToken.revoked_at.is_(None))
            )
        )
    by_org: dict[str, list[ApiToken]] = {}
    for t in tokens:
        by_org.setdefault(t.org_id or "", []).append(t)
    idle, stale = [], []
    for org in orgs:
        live = by_org.get(org.id, [])
        if not live and not (org.settings or {}).get(SETTINGS_KEY):
            idle.append(org.name)
        stale += [
            f"{org.name} {t.prefix}…"
            for t in live
            if (t.last_used_at or t.created_at) < now - STALE_TOKEN
        ]
    checks = []
    if idle:
        checks.append(
            Check("sources", WARN, "no SCIM token and no LDAP connector: " + ", ".join(idle))
        )
    if stale:
        checks.append(
            Check(
                "tokens in use",
                WARN,
                f"unused for {STALE_TOKEN.days} days, revoke them: " + ", ".join(stale),
            )
        )
    if not checks:
        checks.append(Check("tokens in use", OK, f"{len(tokens)} live SCIM token(s), all in use"))
    return checks


def check_held(db: Database, config: Config) -> list[Check]:
    """Held changes are a decision nobody has made yet: a warning per organization."""
    with db.read() as session:
        rows = session.execute(
            select(Organization.name, func.count(HeldChange.id))
            .join(HeldChange, HeldChange.org_id == Organization.id)
            .where(HeldChange.status == "pending")
            .group_by(Organization.id, Organization.name)
            .order_by(Organization.name)
        ).all()
    if not rows:
        return [Check("held changes", OK, "no held change is waiting for approval")]
    return [
        Check(
            f"held changes ({name})",
            WARN,
            f"{n} change(s) held by the guard: review them with "
            f"`scimgate held --org {shlex.quote(name)}` and approve or drop each",
        )
        for name, n in rows
    ]


CHECKS: tuple[Callable[[Database, Config], list[Check]], ...] = (
    check_database,
    check_smtp,
    check_public_url,
    check_connectors,
    check_mappings,
    check_provider_admins,
    check_tokens,
    check_held,
)


def run_checks(db: Database, config: Config) -> list[Check]:
    """Every check; once the database fails, the checks that need it are not run."""
    results = check_database(db, config)
    database_ok = results[0].status == OK
    for check in CHECKS[1:]:
        if not database_ok and check not in (check_smtp, check_public_url):
            continue
        try:
            results += check(db, config)
        except Exception as exc:  # a check that breaks is reported, not fatal for the others
            results.append(Check(check.__name__.removeprefix("check_"), FAIL, f"{exc!r}"))
    return results

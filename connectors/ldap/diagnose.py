"""`ldap test`: check a connector step by step and say precisely what is wrong.

Does: read the password, then for every server DNS, TCP, TLS (certificate and host name) and
bind; then on the first server that bound, the base DNs and both filters, with counts and a
sample; and warn about what works today but is risky: a failover server that does not answer
(degraded, not failed: syncs use the others), a password sent in clear, no rule for disabled
accounts. Does not: write anything.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from itertools import islice

from ldap3 import BASE

from connectors.ldap.config import ConnectorConfig, configuration_warnings
from connectors.ldap.connection import Bound, LdapError, open_one
from connectors.ldap.reader import Reader
from gateway.errors import GatewayError


@dataclass
class Step:
    name: str
    ok: bool
    detail: str
    # A failover server that does not answer while another one works: shown, not a failure.
    down: bool = False


@dataclass
class Report:
    steps: list[Step] = field(default_factory=list)
    users: int = 0
    groups: int = 0
    sample: list[str] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return bool(self.steps) and all(s.ok or s.down for s in self.steps)

    @property
    def down(self) -> list[str]:
        return [s.name for s in self.steps if s.down]

    def failure(self) -> str | None:
        return next((s.detail for s in self.steps if not s.ok), None)


def diagnose(cfg: ConnectorConfig, *, sample: int = 3) -> Report:
    report = Report(warnings=configuration_warnings(cfg))
    try:
        password = cfg.password()
    except GatewayError as exc:
        report.steps.append(Step("password", False, str(exc)))
        return report
    bound: Bound | None = None
    unreachable: list[Step] = []
    for url in cfg.servers:
        try:
            connection = open_one(cfg, url, password, receive_timeout=cfg.time_limit + 30)
        except LdapError as exc:
            report.steps.append(Step(f"{url}", False, str(exc)))
            if exc.stage in ("dns", "tcp"):  # a sync fails over to the next server
                unreachable.append(report.steps[-1])
            continue
        tls = "LDAPS" if url.startswith("ldaps") else "StartTLS" if cfg.start_tls else "no TLS"
        report.steps.append(Step(url, True, f"DNS, TCP, {tls}, bind as {cfg.bind_user!r}: ok"))
        if bound is None:
            bound = connection
        else:
            connection.close()
    if bound is None:
        return report
    for step in unreachable:
        step.down = True
    report.warnings[:0] = [  # first: the one an admin acts on today
        f"degraded: {step.name} is down ({step.detail}); syncs use {bound.url} meanwhile, "
        "with one server fewer to fail over to"
        for step in unreachable
    ]
    try:
        reader = Reader(bound.connection, cfg)
        for label, base in [
            ("base DN", cfg.base_dn),
            *(("user base", base) for base in cfg.user_base),
            *(("group base", base) for base in cfg.group_base),
        ]:
            try:
                list(reader.search(label, base, "(objectClass=*)", [], scope=BASE))
                report.steps.append(Step(label, True, f"{base} exists"))
            except LdapError as exc:
                report.steps.append(Step(label, False, str(exc)))
                return report
        try:
            users = reader.users()
            shown = list(islice(users, sample))
            report.users = len(shown) + sum(1 for _ in users)
            report.steps.append(
                Step("user filter", True, f"{cfg.user_filter}: {report.users} users")
            )
            report.sample += [
                f"user {u.user_name} ({'active' if u.active else 'disabled'}), id {u.external_id}"
                for u in shown
            ]
        except LdapError as exc:
            report.steps.append(Step("user filter", False, str(exc)))
            return report
        try:
            groups = reader.groups()
            shown_groups = list(islice(groups, sample))
            report.groups = len(shown_groups) + sum(1 for _ in groups)
            report.steps.append(
                Step("group filter", True, f"{cfg.group_filter}: {report.groups} groups")
            )
            report.sample += [
                f"group {g.name} ({len(g.member_dns) + len(g.member_uids)} direct members), "
                f"id {g.external_id}"
                for g in shown_groups
            ]
        except LdapError as exc:
            report.steps.append(Step("group filter", False, str(exc)))
        report.warnings += reader.warnings
    finally:
        bound.close()
    return report

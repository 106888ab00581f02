"""One sync run of one LDAP connector: read everything (full) or what changed (delta), then write
the difference into the directory layer and hand it to the engine, in one transaction.

Does: choose full or delta (a full sync when there is no cursor, when the DC changed or was
restored, when the connector now reads differently: a new search base, filter or e-mail rule,
and every `full_sync_interval`), keep the delta cursor (AD: highestCommittedUSN of the
DC it read from and that DC's invocationId; OpenLDAP: modifyTimestamp), record the run in
`sync_runs` and as a `sync.completed` / `sync.failed` event (with its duration in /metrics), and
run a dry run (`plan`) whose writes are rolled back. Reading completes before
anything is written: any error, time limit, size limit or partial result fails the run, nothing is
deprovisioned, the failure is recorded and the next run retries.
Does not: schedule runs or take locks (schedule.py), nor decide what a change means for members
(the engine behind `directory_changed`).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from sqlalchemy import select, update
from sqlalchemy.orm import Session

from connectors.ldap.config import ConnectorConfig
from connectors.ldap.connection import Bound, LdapError, connect
from connectors.ldap.directory import DirectoryWriter, ReadResult, Summary
from connectors.ldap.reader import (
    GroupRecord,
    Memberships,
    Reader,
    RootInfo,
    UserIndex,
    UserRecord,
    direct_users,
    generalized_time,
    resolve_memberships,
    unknown_member_dns,
)
from gateway.errors import GatewayError
from gateway.events import record_event
from gateway.metrics import observe_sync_run
from gateway.provisioning import (
    DELETED,
    GONE,
    LEFT_SCOPE,
    NO_EMAIL,
    DirectoryChange,
    directory_changed,
)
from gateway.provisioning.apply import ApplyResult
from gateway.provisioning.engine import plan_summary
from gateway.provisioning.plan import Plan
from gateway.provisioning.summary import PlanSummary
from gateway.store import Database
from gateway.store.models import DirectoryGroup, DirectoryUser, Organization, SyncRun, utcnow

log = logging.getLogger(__name__)

Progress = Callable[[str, int], None]


class SyncFailed(GatewayError):
    """The run failed and changed nothing; `run_id` is its row in sync_runs (None in a dry run)."""

    def __init__(self, message: str, run_id: int | None = None) -> None:
        super().__init__(message)
        self.run_id = run_id


@dataclass
class SyncResult:
    connector: str
    kind: str
    dry_run: bool
    summary: Summary
    change: DirectoryChange
    counts: dict
    run_id: int | None = None
    cursor: dict = field(default_factory=dict)
    plan: object | None = None  # the engine's Plan, when it offers a dry run
    held: int = 0  # changes the guard held in this run instead of applying
    hold_reason: str | None = None
    pending_holds: int = 0  # the organization's held changes waiting for a decision after it
    # What the run applied and held (a dry run: would apply and would hold), by category.
    plan_summary: PlanSummary | None = None


# --- choosing full or delta -------------------------------------------------------------------


def last_success(
    session: Session, org_id: str, name: str, kind: str | None = None
) -> SyncRun | None:
    query = select(SyncRun).where(
        SyncRun.org_id == org_id, SyncRun.connector == name, SyncRun.status == "succeeded"
    )
    if kind:
        query = query.where(SyncRun.kind == kind)
    return session.scalar(query.order_by(SyncRun.started_at.desc(), SyncRun.id.desc()).limit(1))


def choose_kind(
    session: Session, org_id: str, cfg: ConnectorConfig, now: datetime
) -> tuple[str, dict]:
    """("full" | "delta", the cursor a delta continues from)."""
    if cfg.delta == "none":
        return "full", {}
    previous = last_success(session, org_id, cfg.name)
    if previous is None or not previous.cursor or previous.cursor.get("mode") != cfg.delta:
        return "full", {}
    if previous.cursor.get("read") != cfg.read_fingerprint():  # new bases, filters, rules
        return "full", {}
    last_full = last_success(session, org_id, cfg.name, "full")
    if last_full is None or now - last_full.started_at >= timedelta(seconds=cfg.full_sync_interval):
        return "full", {}
    return "delta", dict(previous.cursor)


# --- reading ----------------------------------------------------------------------------------


def _memberships(
    reader: Reader,
    cfg: ConnectorConfig,
    groups: dict[str, GroupRecord],
    index: UserIndex,
    is_ad: bool,
) -> Memberships:
    if cfg.nested_groups == "none":
        return Memberships(
            {ext: direct_users(g, index) for ext, g in groups.items()},
            {ext: set() for ext in groups},
        )
    in_chain = None
    outside: dict[str, GroupRecord] = {}
    if cfg.nested_groups == "in_chain" and is_ad:
        in_chain = {ext: reader.in_chain_users(g.dn) for ext, g in groups.items()}
    else:
        # Groups outside the group base or filter can still carry members into in-scope groups.
        group_dns = {g.dn for g in groups.values()}
        pending = unknown_member_dns(groups.values(), index)
        seen = set(pending)
        while pending:
            dn = pending.pop()
            found = reader.outside_group(dn)
            if found is None:
                continue
            outside[dn] = found
            for member in found.member_dns:
                if member not in seen and member not in index.by_dn and member not in group_dns:
                    seen.add(member)
                    pending.add(member)
    return resolve_memberships(groups.values(), index, outside=outside, in_chain=in_chain)


def _read_groups(reader: Reader) -> dict[str, GroupRecord]:
    groups: dict[str, GroupRecord] = {}
    for group in reader.groups():
        if group.external_id in groups:
            reader.warnings.append(
                f"skipped group {group.dn}: its id is also {groups[group.external_id].dn}'s"
            )
            continue
        groups[group.external_id] = group
    return groups


@dataclass
class Known:
    """The external ids the directory layer holds for this connector before the run."""

    users: set[str] = field(default_factory=set)
    groups: set[str] = field(default_factory=set)


def departure_reasons(reader: Reader, departed: set[str], root: RootInfo) -> dict[str, str]:
    """Why each departed user went, as the member's revoke will say it."""
    where = reader.whereabouts(departed, root)
    if where.unknown_because:
        reader.warnings.append(
            f"could not tell whether {len(departed - where.deleted)} user(s) that left the "
            f"sync scope were moved or deleted: {where.unknown_because}"
        )
    return {
        ext: DELETED if ext in where.deleted else LEFT_SCOPE if ext in where.elsewhere else GONE
        for ext in departed
    }


def read_full(reader: Reader, cfg: ConnectorConfig, root: RootInfo, known: Known) -> ReadResult:
    users: dict[str, UserRecord] = {}
    index = UserIndex()
    for record in reader.users():
        if record.external_id in users:
            reader.warnings.append(
                f"skipped user {record.dn}: its id is also {users[record.external_id].dn}'s"
            )
            continue
        users[record.external_id] = record
        index.add(record.external_id, record.dn, record.uid, record.primary_group)
    groups = _read_groups(reader)
    memberships = _memberships(reader, cfg, groups, index, root.is_ad)
    # Whatever this read did not find is gone: say where it went (an entry still in scope
    # without an e-mail address went nowhere).
    unmailed = known.users & reader.without_email
    departed = departure_reasons(reader, known.users - set(users) - unmailed, root)
    departed |= dict.fromkeys(unmailed, NO_EMAIL)
    return ReadResult(
        users,
        groups,
        memberships,
        complete=True,
        warnings=reader.warnings,
        departed_users=departed,
    )


def read_delta(
    reader: Reader, cfg: ConnectorConfig, since: str, known: Known, root: RootInfo
) -> ReadResult:
    """Changed users, and when any group changed (or left the scope, or a new user may sit in a
    primary group or a posixGroup) every group's members again: a member added to a nested group
    changes only that group, yet every group above it.

    Departures no change filter sees (an entry moved out of the search base, deleted, or no
    longer matching the filter) are found by enumerating the ids of everything in scope and
    comparing them with what the directory layer holds. That enumeration is a read like any
    other: when it fails, the run fails and nobody is deprovisioned."""
    users = {record.external_id: record for record in reader.users(since)}
    changed_groups = next(iter(reader.groups(since)), None) is not None
    departed_groups = known.groups - reader.identities("groups")
    new_users = any(ext not in known.users for ext in users)
    index: UserIndex | None = None
    groups = memberships = None
    if (
        changed_groups
        or departed_groups
        or (new_users and (cfg.primary_group or cfg.attributes.member_uid))
    ):
        index = reader.user_index()
        groups = _read_groups(reader)
        memberships = _memberships(reader, cfg, groups, index, root.is_ad)
        departed_groups = known.groups - set(groups)
    in_scope = set(index.by_dn.values()) if index is not None else reader.identities("users")
    departed = departure_reasons(reader, known.users - in_scope - set(users), root)
    return ReadResult(
        users,
        groups,
        memberships,
        complete=False,
        warnings=reader.warnings,
        departed_users=departed,
        departed_groups=departed_groups,
    )


def _since_filter(cfg: ConnectorConfig, cursor: dict) -> str:
    if cfg.delta == "usn":
        return f"(uSNChanged>={int(cursor['usn']) + 1})"
    return f"(modifyTimestamp>={cursor['timestamp']})"


def _next_timestamp(cfg: ConnectorConfig, started: datetime) -> str:
    """The modifyTimestamp the next delta starts from: clock_skew before this read started.
    Whatever changed before that was visible to this read; whatever changed after it (also while
    this read was paging) the next delta reads, at the cost of reading again the few entries
    changed within clock_skew of the start."""
    return generalized_time(started - timedelta(seconds=cfg.clock_skew))


def read_directory(
    cfg: ConnectorConfig, kind: str, cursor: dict, known: Known, progress: Progress | None
) -> tuple[str, ReadResult, dict]:
    """(kind actually run, what was read, the next cursor). Raises LdapError on any failure."""
    bound: Bound | None = None
    pinned = cursor.get("server") if kind == "delta" and cfg.delta == "usn" else None
    try:
        if pinned:
            try:
                bound = connect(cfg, only=pinned)
            except LdapError as exc:
                if exc.stage not in ("dns", "tcp"):
                    raise
                log.warning(
                    "LDAP connector %s: %s unreachable; full sync on another server",
                    cfg.name,
                    pinned,
                )
                kind, cursor = "full", {}
        if bound is None:
            bound = connect(cfg)
        reader = Reader(bound.connection, cfg, progress)
        started = utcnow()
        root = reader.root_info()
        next_cursor: dict = {"mode": cfg.delta, "server": bound.url, "read": cfg.read_fingerprint()}
        if cfg.delta == "usn":
            if root.highest_usn is None:
                raise LdapError(
                    "search",
                    f"{bound.url} has no highestCommittedUSN: set delta: none or modify_timestamp",
                )
            next_cursor |= {"usn": root.highest_usn, "invocation_id": root.invocation_id}
            if kind == "delta" and (
                cursor.get("server") != bound.url
                or cursor.get("invocation_id") != root.invocation_id
            ):
                log.info("LDAP connector %s: the DC changed or was restored; full sync", cfg.name)
                kind = "full"
        started = root.server_time or started
        if kind == "delta":
            read = read_delta(reader, cfg, _since_filter(cfg, cursor), known, root)
        else:
            read = read_full(reader, cfg, root, known)
        if cfg.delta == "modify_timestamp":
            next_cursor["timestamp"] = _next_timestamp(cfg, started)
        if cfg.delta == "none":
            next_cursor = {}
        return kind, read, next_cursor
    finally:
        if bound is not None:
            bound.close()


# --- the run ----------------------------------------------------------------------------------


def _pending_holds(session, org_id: str) -> int:  # type: ignore[no-untyped-def]
    """Held changes waiting for a decision (imported late, as the engine's dry run is)."""
    from gateway.provisioning.guard import pending_count

    return pending_count(session, org_id)


def _engine_plan():  # type: ignore[no-untyped-def]
    """The engine's dry run, when it offers one: plan_org(session, org) -> (org, Plan)."""
    try:
        from gateway.provisioning.engine import plan_org
    except ImportError:
        return None
    return plan_org


def sync_connector(
    db: Database,
    org_id: str,
    cfg: ConnectorConfig,
    *,
    kind: str = "auto",
    dry_run: bool = False,
    progress: Progress | None = None,
) -> SyncResult:
    """Run one sync. The caller holds the connector's lock (schedule.connector_lock). A run
    that changes something (not a dry run) records a `sync.completed` or `sync.failed` event
    and its duration in /metrics; a failure raises SyncFailed, for the caller to report."""
    now = utcnow()
    clock = time.monotonic()
    with db.read() as session:
        chosen, cursor = choose_kind(session, org_id, cfg, now)
        known = Known(
            *(
                set(
                    session.scalars(
                        select(model.external_id).where(
                            model.org_id == org_id, model.source == cfg.source
                        )
                    )
                )
                for model in (DirectoryUser, DirectoryGroup)
            )
        )
    if kind == "full":
        chosen, cursor = "full", {}
    run_id = None
    if not dry_run:
        with db.transaction() as session:
            session.execute(
                update(SyncRun)
                .where(
                    SyncRun.org_id == org_id,
                    SyncRun.connector == cfg.name,
                    SyncRun.status == "running",
                )
                .values(
                    status="failed",
                    finished_at=now,
                    error="interrupted: the process stopped before the run finished",
                )
            )
            run = SyncRun(
                org_id=org_id,
                connector=cfg.name,
                kind=chosen,
                status="running",
                started_at=now,
                counts={},
                cursor={},
            )
            session.add(run)
            session.flush()
            run_id = run.id
    try:
        ran, read, next_cursor = read_directory(cfg, chosen, cursor, known, progress)
        result = _write(db, org_id, cfg, read, ran, next_cursor, run_id, dry_run, now)
    except Exception as exc:
        # Not logged here: the caller reports it once (the scheduler logs it, the CLI prints it).
        message = str(exc) if isinstance(exc, GatewayError) else f"{exc.__class__.__name__}: {exc}"
        if run_id is not None:
            finished = utcnow()
            with db.transaction() as session:
                session.execute(
                    update(SyncRun)
                    .where(SyncRun.id == run_id)
                    .values(status="failed", finished_at=finished, error=message[:4000])
                )
                _record_run(
                    session,
                    org_id,
                    cfg,
                    "sync.failed",
                    run_id,
                    chosen,
                    now,
                    finished,
                    {"error": message[:4000]},
                )
            observe_sync_run(chosen, "failed", time.monotonic() - clock)
        raise SyncFailed(message, run_id) from exc
    if run_id is not None:
        observe_sync_run(ran, "held" if result.held else "succeeded", time.monotonic() - clock)
    return result


def _record_run(
    session,  # type: ignore[no-untyped-def]
    org_id: str,
    cfg: ConnectorConfig,
    type_: str,
    run_id: int,
    kind: str,
    started: datetime,
    finished: datetime,
    detail: dict,
) -> None:
    """The run's own event (`sync.completed` / `sync.failed`), beside its sync_runs row."""
    record_event(
        session,
        org_id=org_id,
        actor=cfg.source,
        type=type_,
        target_type="connector",
        target_id=cfg.name,
        detail={
            "run_id": run_id,
            "connector": cfg.name,
            "kind": kind,
            "started_at": started.isoformat(),
            "finished_at": finished.isoformat(),
            "duration_seconds": round((finished - started).total_seconds(), 3),
            **detail,
        },
        at=finished,
    )


def _write(
    db: Database,
    org_id: str,
    cfg: ConnectorConfig,
    read: ReadResult,
    kind: str,
    next_cursor: dict,
    run_id: int | None,
    dry_run: bool,
    started: datetime,
) -> SyncResult:
    summary_of_plan: PlanSummary | None = None
    with db.sessions() as session:
        session.begin()
        try:
            writer = DirectoryWriter(session, org_id, cfg.source, actor=cfg.source)
            change, summary = writer.write(read)
            counts = {
                "users_read": len(read.users),
                "groups_read": len(read.groups) if read.groups is not None else None,
                **summary.counts(),
                "warnings": len(summary.warnings),
            }
            if summary.warnings:
                counts["first_warnings"] = summary.warnings[:20]
            read.release()
            plan = None
            held, hold_reason, pending = 0, None, 0
            if dry_run:
                planner = _engine_plan()
                if planner is not None:
                    # The whole organization's Plan against the directory layer as this run
                    # would leave it, and what the guard would hold of it; then everything
                    # rolls back.
                    org, plan = planner(session, org_id, change=change)
                    summary_of_plan = plan_summary(session, org, plan, cfg.source)
                session.rollback()
            else:
                # Nothing changed in the directory layer: nothing applied, an empty Plan.
                applied = directory_changed(session, change) or ApplyResult(plan=Plan(org_id))
                if applied.held:
                    held, hold_reason = len(applied.held), applied.hold_reason
                    counts["held"] = held
                    counts["hold_reason"] = hold_reason
                pending = _pending_holds(session, org_id)
                if pending:
                    counts["pending_holds"] = pending
                org = session.get(Organization, org_id)
                assert org is not None and applied.plan is not None
                plan = applied.plan
                summary_of_plan = plan_summary(session, org, plan, cfg.source, applied=applied)
                counts["plan"] = summary_of_plan.counts()
                finished = utcnow()
                session.execute(
                    update(SyncRun)
                    .where(SyncRun.id == run_id)
                    .values(
                        status="succeeded",
                        kind=kind,
                        finished_at=finished,
                        counts=counts,
                        cursor=next_cursor,
                    )
                )
                assert run_id is not None
                _record_run(
                    session,
                    org_id,
                    cfg,
                    "sync.completed",
                    run_id,
                    kind,
                    started,
                    finished,
                    {
                        "counts": counts["plan"],
                        "directory": {k: v for k, v in summary.counts().items() if v},
                        "users_read": counts["users_read"],
                        "held": held,
                        "hold_reason": hold_reason,
                        "pending_holds": pending,
                        "warnings": summary.warnings[:20],
                        "warning_count": len(summary.warnings),
                    },
                )
                session.commit()
        except BaseException:
            session.rollback()
            raise
    return SyncResult(
        cfg.name,
        kind,
        dry_run,
        summary,
        change,
        counts,
        run_id,
        next_cursor,
        plan,
        held,
        hold_reason,
        pending,
        summary_of_plan,
    )

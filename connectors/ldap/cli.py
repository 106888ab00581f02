"""`scimgate ldap ...` and `scimgate sync ...`: configure, test and run an organization's LDAP
connectors from the command line.

Does: store the validated YAML (`ldap set`), show it (`ldap show`), check a connection step by
step (`ldap test`), dry-run and run a sync (`sync plan`, `sync run`: the Plan's summary by kind
from gateway.provisioning.summary, then the details), list past runs and their warnings (`sync
history`). Does not: hold sync logic (sync.py) or formatting helpers (gateway.cli's are used).
Registered on the `scimgate` group by `register(main)`.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import click
from sqlalchemy import select

from gateway.cli_context import (
    CliContext,
    handle_errors,
    json_option,
    limit_options,
    pass_ctx,
    print_json,
    print_table,
)
from gateway.events import record_event
from gateway.provisioning.guard import EXIT_HELD, held_notice
from gateway.provisioning.summary import render


def register(main: click.Group) -> None:
    main.add_command(ldap)
    main.add_command(sync)


org_option = click.option("--org", "org_key", required=True, help="Organization id or name.")
connector_option = click.option(
    "--connector", "connector_name", help="Only this connector (default: all)."
)


def _connectors(ctx: CliContext, org_key: str, name: str | None):  # type: ignore[no-untyped-def]
    from connectors.ldap.config import org_connectors, pick
    from gateway.orgs import find_org
    from gateway.provisioning.settings import org_mapping

    with ctx.current_db().read() as session:
        org = find_org(session, org_key)
        connectors = org_connectors(org.settings, org_mapping(session, org.id))
        return org.id, org.name, pick(connectors, name, org.name)


class _Progress:
    """A one-line counter on a terminal; silent otherwise (logs and pipes stay clean)."""

    def __init__(self, label: str) -> None:
        self.label = label
        self.enabled = sys.stderr.isatty()
        self.shown = False

    def __call__(self, stage: str, n: int) -> None:
        if self.enabled:
            click.echo(f"\r{self.label}: read {n:,} {stage}   ", nl=False, err=True)
            self.shown = True

    def done(self) -> None:
        if self.shown:
            click.echo("", err=True)


# --- ldap ---------------------------------------------------------------------------------------


@click.group()
def ldap() -> None:
    """LDAP / Active Directory connectors of an organization."""


@ldap.command("set")
@org_option
@click.argument("file", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@pass_ctx
@handle_errors
def ldap_set(ctx: CliContext, org_key: str, file: Path) -> None:
    """Validate FILE (YAML) and store it as the organization's LDAP configuration."""
    from connectors.ldap.config import SETTINGS_KEY, configuration_warnings, load_yaml
    from gateway.orgs import find_org

    document, connectors = load_yaml(file.read_text())
    with ctx.current_db().transaction() as session:
        org = find_org(session, org_key)
        org.settings = {**(org.settings or {}), SETTINGS_KEY: document}
        record_event(
            session,
            org_id=org.id,
            actor="admin:cli",
            type="ldap.configured",
            target_type="organization",
            target_id=org.id,
            detail={"connectors": sorted(connectors)},
        )
        name = org.name
    for cfg in connectors.values():
        for warning in configuration_warnings(cfg):
            click.echo(f"warning: connector {cfg.name}: {warning}", err=True)
    click.echo(
        f"Stored {len(connectors)} LDAP connector(s) for {name}: {', '.join(sorted(connectors))}"
    )


@ldap.command("show")
@org_option
@json_option
@pass_ctx
@handle_errors
def ldap_show(ctx: CliContext, org_key: str, as_json: bool) -> None:
    """Print the organization's LDAP configuration (it holds no passwords)."""
    import yaml

    from connectors.ldap.config import SETTINGS_KEY
    from gateway.orgs import find_org

    with ctx.current_db().read() as session:
        org = find_org(session, org_key)
        document = (org.settings or {}).get(SETTINGS_KEY)
    if not document:
        raise click.ClickException(
            f"{org.name} has no LDAP connector: add one with `scimgate ldap set`"
        )
    if as_json:
        print_json(document)
    else:
        click.echo(yaml.safe_dump(document, sort_keys=False).rstrip())


@ldap.command("test")
@org_option
@connector_option
@click.option("--sample", default=3, show_default=True, help="How many users and groups to show.")
@pass_ctx
@handle_errors
def ldap_test(ctx: CliContext, org_key: str, connector_name: str | None, sample: int) -> None:
    """Connect, bind and count users and groups; on failure, say which step failed and why.

    Exit status: 0 works (also when degraded: a failover server is down but another one
    answers, said with a warning), 1 a step failed."""
    from connectors.ldap.diagnose import diagnose

    _, _, connectors = _connectors(ctx, org_key, connector_name)
    failed = False
    for cfg in connectors:
        click.echo(f"Connector {cfg.name} ({', '.join(cfg.servers)})")
        report = diagnose(cfg, sample=sample)
        for step in report.steps:
            status = "ok  " if step.ok else "DOWN" if step.down else "FAIL"
            click.echo(f"  {status} {step.name}: {step.detail}")
        if report.ok:
            click.echo(f"  users: {report.users}  groups: {report.groups}")
            for line in report.sample:
                click.echo(f"    {line}")
        shown = 10
        for warning in report.warnings[:shown]:
            click.echo(f"  warning: {warning}")
        if len(report.warnings) > shown:
            click.echo(f"  ... {len(report.warnings) - shown} more warning(s)")
        if report.ok and report.down:
            click.echo(
                f"  result: degraded: {len(report.down)} of {len(cfg.servers)} servers down "
                f"({', '.join(report.down)}); syncs work on the others"
            )
        failed |= not report.ok
    if failed:
        sys.exit(1)


# --- sync ---------------------------------------------------------------------------------------


@click.group()
def sync() -> None:
    """Directory syncs of LDAP connectors: dry run, run, history."""


def _print_summary(result: Any, limit: int | None) -> None:
    """The Plan's summary table and its changes by kind, then what the directory layer took in
    (each list at most `limit` long; None: all)."""
    s = result.summary
    click.echo(
        f"Connector {result.connector}: {result.kind} sync{' (dry run)' if result.dry_run else ''}"
    )
    if result.plan_summary is not None:
        for line in render([result.plan_summary], limit=limit, applied=not result.dry_run):
            click.echo(f"  {line}")
    click.echo("  Directory layer:")
    sections = [
        ("users to add" if result.dry_run else "users added", s.users_added),
        (
            "users to update" if result.dry_run else "users updated",
            [f"{n} ({', '.join(f)})" for n, f in s.users_updated],
        ),
        ("users to remove" if result.dry_run else "users removed", s.users_removed),
        ("groups to add" if result.dry_run else "groups added", s.groups_added),
        (
            "groups to update" if result.dry_run else "groups updated",
            [f"{n} ({', '.join(f)})" for n, f in s.groups_updated],
        ),
        ("groups to remove" if result.dry_run else "groups removed", s.groups_removed),
        ("members added to", [f"{g}: +{n}" for g, n in sorted(s.members_added.items())]),
        ("members removed from", [f"{g}: -{n}" for g, n in sorted(s.members_removed.items())]),
        ("warnings", s.warnings),
    ]
    if not s:
        click.echo("    no changes")
    for title, items in sections:
        if items:
            click.echo(f"    {title} ({len(items)}):")
            shown = items if limit is None else items[:limit]
            for item in shown:
                click.echo(f"      {item}")
            if len(items) > len(shown):
                click.echo(f"      ... {len(items) - len(shown)} more (use --all)")


def _run(
    ctx: CliContext,
    org_key: str,
    connector_name: str | None,
    full: bool,
    dry_run: bool,
    as_json: bool,
    limit: int | None,
) -> None:
    from connectors.ldap.schedule import connector_lock
    from connectors.ldap.sync import SyncFailed, sync_connector

    org_id, _, connectors = _connectors(ctx, org_key, connector_name)
    failed = held = False
    for cfg in connectors:
        progress = _Progress(cfg.name)
        try:
            with connector_lock(ctx.db, org_id, cfg.name):
                result = sync_connector(
                    ctx.db,
                    org_id,
                    cfg,
                    kind="full" if full else "auto",
                    dry_run=dry_run,
                    progress=progress,
                )
        except SyncFailed as exc:
            progress.done()
            failed = True
            if as_json:
                print_json(
                    {
                        "connector": cfg.name,
                        "status": "failed",
                        "error": str(exc),
                        "run_id": exc.run_id,
                    }
                )
            else:
                click.echo(
                    f"Connector {cfg.name}: the sync failed and changed nothing: {exc}", err=True
                )
            continue
        progress.done()
        if as_json:
            print_json(
                {
                    "connector": cfg.name,
                    "kind": result.kind,
                    "dry_run": dry_run,
                    "status": "succeeded",
                    "run_id": result.run_id,
                    "counts": result.counts,
                    "held": result.held,
                    "hold_reason": result.hold_reason,
                    "pending_holds": result.pending_holds,
                    "summary": (
                        result.plan_summary.to_json() if result.plan_summary is not None else None
                    ),
                    "warnings": result.summary.warnings,
                }
            )
        else:
            _print_summary(result, limit)
            if dry_run:
                click.echo("  (dry run: nothing was changed)")
        if result.held or result.pending_holds:
            # Until an admin decides, every run says so: a scheduler sees 3, not a quiet 0.
            held = True
            if not as_json:
                notice = held_notice(
                    result.held, result.hold_reason, org_key, pending=result.pending_holds
                )
                click.echo(f"Connector {result.connector}: {notice}", err=True)
    if failed:
        sys.exit(1)
    if held:
        sys.exit(EXIT_HELD)


@sync.command("plan")
@org_option
@connector_option
@click.option("--full", is_flag=True, help="Read everything, as the periodic full sync does.")
@limit_options
@json_option
@pass_ctx
@handle_errors
def sync_plan(
    ctx: CliContext,
    org_key: str,
    connector_name: str | None,
    full: bool,
    as_json: bool,
    limit: int | None,
) -> None:
    """Dry run: read the directory and print what a sync would change, starting with a summary
    by kind (and what the guard would hold); change nothing."""
    _run(ctx, org_key, connector_name, full, True, as_json, limit)


@sync.command("run")
@org_option
@connector_option
@click.option("--full", is_flag=True, help="A full sync (finds deleted users and groups).")
@limit_options
@json_option
@pass_ctx
@handle_errors
def sync_run(
    ctx: CliContext,
    org_key: str,
    connector_name: str | None,
    full: bool,
    as_json: bool,
    limit: int | None,
) -> None:
    """Sync now and apply the result (the mass-deprovisioning guard applies); then print a
    summary of what was applied and what was held, and why.

    Exit status: 0 applied, 1 a sync failed, 3 the guard held changes in this run or earlier
    ones still wait for a decision (review with `scimgate held --org ORG`)."""
    _run(ctx, org_key, connector_name, full, False, as_json, limit)


@sync.command("history")
@org_option
@connector_option
@click.option("--limit", default=20, show_default=True)
@json_option
@pass_ctx
@handle_errors
def sync_history(
    ctx: CliContext, org_key: str, connector_name: str | None, limit: int, as_json: bool
) -> None:
    """Past runs: start, end, kind, counts, result and error."""
    from gateway.orgs import find_org
    from gateway.store.models import SyncRun

    with ctx.current_db().read() as session:
        org = find_org(session, org_key)
        query = select(SyncRun).where(SyncRun.org_id == org.id)
        if connector_name:
            query = query.where(SyncRun.connector == connector_name)
        runs = list(
            session.scalars(
                query.order_by(SyncRun.started_at.desc(), SyncRun.id.desc()).limit(limit)
            )
        )
    if as_json:
        print_json(
            [
                {
                    "id": r.id,
                    "connector": r.connector,
                    "kind": r.kind,
                    "status": r.status,
                    "started_at": r.started_at,
                    "finished_at": r.finished_at,
                    "counts": r.counts,
                    "error": r.error,
                    "warnings": (r.counts or {}).get("first_warnings", []),
                }
                for r in runs
            ]
        )
        return
    if not runs:
        click.echo(f"No sync runs yet for {org.name}.")
        return
    print_table(
        ["Id", "Connector", "Kind", "Started", "Finished", "Result", "Counts", "Warnings", "Error"],
        [
            (
                r.id,
                r.connector,
                r.kind,
                _when(r.started_at),
                _when(r.finished_at),
                r.status,
                _counts(r.counts),
                (r.counts or {}).get("warnings") or "",
                (r.error or "").splitlines()[0][:100] if r.error else "",
            )
            for r in runs
        ],
    )
    for r in runs:
        counts = r.counts or {}
        if counts.get("warnings"):
            click.echo(f"\nRun {r.id} ({r.connector}, {_when(r.started_at)}): warnings")
            for warning in counts.get("first_warnings", [])[:WARNINGS_SHOWN]:
                click.echo(f"  {warning}")
            if counts["warnings"] > WARNINGS_SHOWN:
                more = counts["warnings"] - WARNINGS_SHOWN
                click.echo(f"  ... {more} more (the run's first 20: sync history --json)")


WARNINGS_SHOWN = 5  # per run in `sync history`


def _when(value: Any) -> str:
    return value.strftime("%Y-%m-%d %H:%M:%S") if value else ""


def _counts(counts: dict | None) -> str:
    if not counts:
        return ""
    short = {
        "users_added": "+u",
        "users_updated": "~u",
        "users_removed": "-u",
        "groups_added": "+g",
        "groups_updated": "~g",
        "groups_removed": "-g",
        "memberships_added": "+m",
        "memberships_removed": "-m",
        "held": "held ",
    }
    parts = [f"read {counts.get('users_read', 0)}u"]
    parts += [f"{label}{counts[k]}" for k, label in short.items() if counts.get(k)]
    return " ".join(parts)

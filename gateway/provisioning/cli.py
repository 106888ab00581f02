"""`scimgate mapping ...`, `scimgate plan` and `scimgate held ...`: the engine from a shell.

Register on the main command with `register(main)` (see gateway/cli.py).
"""

from __future__ import annotations

import dataclasses
import sys
from pathlib import Path

import click

from gateway.cli_context import (
    CliContext,
    handle_errors,
    json_option,
    limit_options,
    pass_ctx,
    print_json,
    print_table,
)
from gateway.errors import InvalidInput
from gateway.events import record_event
from gateway.provisioning.guard import EXIT_HELD, KIND_FILTERS, held_notice
from gateway.provisioning.plan import Plan
from gateway.provisioning.summary import PlanSummary, render
from mappings import MappingError, dump_mapping
from mappings.schema import DEFAULT_TEXT

ADMIN = "admin:cli"


def _read(path: str) -> str:
    try:
        return Path(path).read_text(encoding="utf-8")
    except OSError as exc:
        raise click.ClickException(f"cannot read {path}: {exc.strerror}") from None


def _parse(text: str, path: str):  # type: ignore[no-untyped-def]
    from gateway.provisioning.settings import parse_mapping

    try:
        return parse_mapping(text)
    except MappingError as exc:
        raise click.ClickException(f"{path}: " + str(exc)) from None


def echo_plan(
    plan: Plan,
    summary: PlanSummary,
    *,
    as_json: bool,
    limit: int | None,
    applied: bool | None = None,
    extra: dict | None = None,
) -> None:
    """The Plan's summary table and its changes by kind (at most `limit` of each), or all of it
    as JSON."""
    if as_json:
        print_json(
            {
                **plan.to_json(),
                "summary": summary.to_json(),
                **({"applied": applied} if applied is not None else {}),
                **(extra or {}),
            }
        )
        return
    for line in render([summary], limit=limit, applied=bool(applied)):
        click.echo(line)


# --- mapping ------------------------------------------------------------------------------------


@click.group()
def mapping() -> None:
    """The organization's mapping file: check, show, set."""


@mapping.command("check")
@click.argument("file", type=click.Path(dir_okay=False))
@json_option
@handle_errors
def mapping_check(file: str, as_json: bool) -> None:
    """Validate a mapping file; every problem names its key, line and what is expected."""
    loaded = _parse(_read(file), file)
    if as_json:
        print_json({"valid": True, "mapping": dump_mapping(loaded)})
    else:
        click.echo(f"{file}: the mapping is valid.")


@mapping.command("show")
@click.option("--org", "org_key", required=True, help="Organization id or name.")
@json_option
@pass_ctx
@handle_errors
def mapping_show(ctx: CliContext, org_key: str, as_json: bool) -> None:
    """Print the organization's mapping (or the defaults it runs on)."""
    from gateway.orgs import find_org
    from gateway.provisioning.settings import OrgSettings, mapping_text, org_mapping

    with ctx.current_db().read() as session:
        org = find_org(session, org_key)
        text = mapping_text(session, org.id)
        loaded = org_mapping(session, org.id)
        settings = OrgSettings.of(org)
    if as_json:
        print_json(
            {
                "org_id": org.id,
                "text": text,
                "default": text is None,
                "mapping": dump_mapping(loaded),
                "settings": settings.__dict__,
            }
        )
        return
    click.echo((text if text is not None else DEFAULT_TEXT).rstrip())
    click.echo(
        f"# settings: deprovision={settings.deprovision} guard_count={settings.guard_count} "
        f"guard_share={settings.guard_share} staged_mode={str(settings.staged_mode).lower()}"
    )


@mapping.command("set")
@click.option("--org", "org_key", required=True, help="Organization id or name.")
@click.argument("file", type=click.Path(dir_okay=False))
@click.option("--apply", "apply_now", is_flag=True, help="Store the mapping and apply its Plan.")
@limit_options
@json_option
@pass_ctx
@handle_errors
def mapping_set(
    ctx: CliContext, org_key: str, file: str, apply_now: bool, as_json: bool, limit: int | None
) -> None:
    """Print the Plan a new mapping would cause; store it and apply the Plan only with --apply."""
    from gateway.orgs import find_org
    from gateway.provisioning.engine import plan_summary, set_mapping

    text = _read(file)
    _parse(text, file)
    db = ctx.current_db()
    with db.transaction() as session:
        org = find_org(session, org_key)
        outcome = set_mapping(session, org, text, ADMIN, apply_now=apply_now)
        summary = plan_summary(session, org, outcome.plan, ADMIN, applied=outcome.applied)
    held = outcome.applied.held if outcome.applied else []
    echo_plan(
        outcome.plan,
        summary,
        as_json=as_json,
        limit=limit,
        applied=apply_now,
        extra={"held": [h.id for h in held]} if as_json else None,
    )
    if not as_json and not apply_now:
        click.echo(
            "Dry run: nothing changed. Run again with --apply to store the mapping and apply."
        )
    elif not as_json:
        click.echo("Stored the mapping and applied the Plan.")
        if held:
            assert outcome.applied is not None
            click.echo(held_notice(len(held), outcome.applied.hold_reason, org_key), err=True)
    if held:
        sys.exit(EXIT_HELD)


@mapping.command("settings")
@click.option("--org", "org_key", required=True, help="Organization id or name.")
@click.option(
    "--deprovision",
    type=click.Choice(["revoke", "remove"]),
    help="What happens to members whose directory user goes away.",
)
@click.option("--guard-count", type=click.IntRange(min=0), help="Guard: deprovisionings allowed.")
@click.option(
    "--guard-share", type=click.FloatRange(0, 1), help="Guard: share of members, e.g. 0.1."
)
@click.option(
    "--guard-membership-count",
    type=click.IntRange(min=0),
    help="Guard: group removals taking collection access allowed per Plan.",
)
@click.option(
    "--guard-membership-share",
    type=click.FloatRange(0, 1),
    help="Guard: share of the memberships that grant access, e.g. 0.1.",
)
@click.option(
    "--guard-group-count",
    type=click.IntRange(min=0),
    help="Guard: removals from one group that grants access allowed per Plan.",
)
@click.option(
    "--guard-group-share",
    type=click.FloatRange(0, 1),
    help="Guard: share of one such group's members, e.g. 0.5.",
)
@click.option(
    "--staged-mode/--no-staged-mode", default=None, help="Stage new members, do not invite."
)
@json_option
@pass_ctx
@handle_errors
def mapping_settings(
    ctx: CliContext,
    org_key: str,
    deprovision: str | None,
    guard_count: int | None,
    guard_share: float | None,
    guard_membership_count: int | None,
    guard_membership_share: float | None,
    guard_group_count: int | None,
    guard_group_share: float | None,
    staged_mode: bool | None,
    as_json: bool,
) -> None:
    """Show or change the organization's provisioning settings. A Plan whose deprovisionings
    exceed both guard_count and guard_share of the members, or whose group removals that take
    collection access away exceed the membership or group limits, is held whole."""
    from gateway.orgs import find_org
    from gateway.provisioning.settings import update_settings

    with ctx.current_db().transaction() as session:
        org = find_org(session, org_key)
        changes = {
            "deprovision": deprovision,
            "guard_count": guard_count,
            "guard_share": guard_share,
            "guard_membership_count": guard_membership_count,
            "guard_membership_share": guard_membership_share,
            "guard_group_count": guard_group_count,
            "guard_group_share": guard_group_share,
            "staged_mode": staged_mode,
        }
        settings = update_settings(org, **changes)
        if any(v is not None for v in changes.values()):
            record_event(
                session,
                org_id=org.id,
                actor=ADMIN,
                type="provisioning.settings_changed",
                target_type="organization",
                target_id=org.id,
                detail={k: v for k, v in changes.items() if v is not None},
            )
    if as_json:
        print_json(settings.__dict__)
    else:
        for key, value in settings.__dict__.items():
            click.echo(f"{key}: {value}")


# --- plan ---------------------------------------------------------------------------------------


@click.command("plan")
@click.option("--org", "org_key", required=True, help="Organization id or name.")
@click.option("--apply", "apply_now", is_flag=True, help="Apply the Plan (as admin:cli).")
@limit_options
@json_option
@pass_ctx
@handle_errors
def plan(ctx: CliContext, org_key: str, apply_now: bool, as_json: bool, limit: int | None) -> None:
    """Full reconcile: what the organization should change to match its directory and mapping.

    With --apply, exit status 3 when the guard held changes (none of them was
    applied; review them with `scimgate held --org ORG`)."""
    from gateway.provisioning.apply import apply
    from gateway.provisioning.engine import plan_org, plan_summary

    db = ctx.current_db()
    with db.transaction() if apply_now else db.read() as session:
        org, computed = plan_org(session, org_key, to_apply=apply_now)
        result = apply(session, org, computed, ADMIN) if apply_now else None
        summary = plan_summary(session, org, computed, ADMIN, applied=result)
    echo_plan(
        computed,
        summary,
        as_json=as_json,
        limit=limit,
        applied=apply_now if apply_now else None,
        extra={"held": [h.id for h in result.held]} if as_json and result else None,
    )
    if result and not as_json:
        click.echo(f"Applied {result.applied} changes.")
        if result.held:
            click.echo(held_notice(len(result.held), result.hold_reason, org_key), err=True)
    if result and result.held:
        sys.exit(EXIT_HELD)


# --- held changes -------------------------------------------------------------------------------


@click.group(invoke_without_command=True)
@click.option("--org", "org_key", help="Organization id or name.")
@click.option("--all", "include_decided", is_flag=True, help="Also approved and dropped ones.")
@json_option
@click.pass_context
@handle_errors
def held(
    click_ctx: click.Context, org_key: str | None, include_decided: bool, as_json: bool
) -> None:
    """Changes held by the guard (deprovisionings, group removals and deletions that take
    collection access away): list them (--org), approve or drop one, or many at once
    (`held approve --org ORG --all`, or by --kind, --group, --before, --after, --email-prefix)."""
    if click_ctx.invoked_subcommand is not None:
        return
    if not org_key:
        raise InvalidInput("say which organization: scimgate held --org ORG")
    from gateway.orgs import find_org
    from gateway.provisioning.guard import list_held

    ctx = click_ctx.ensure_object(CliContext)
    with ctx.current_db().read() as session:
        org = find_org(session, org_key)
        rows = list_held(session, org.id, include_decided=include_decided)
        data = [
            {
                "id": h.id,
                "status": h.status,
                "kind": h.kind,
                "member_id": h.member_id,
                "email": h.change.get("email"),
                "group": h.change.get("group") or h.change.get("name"),
                "reason": h.reason,
                "actor": h.actor,
                "created": h.created_at,
                "decided": h.decided_at,
                "decided_by": h.decided_by,
            }
            for h in rows
        ]
    if as_json:
        print_json(data)
        return
    if not data:
        click.echo("Nothing held.")
        return
    print_table(
        ["Id", "Status", "Change", "Member", "Held", "By", "Why"],
        [
            (
                d["id"],
                d["status"],
                f"{d['kind']} {d['group']}" if d["group"] else d["kind"],
                d["email"],
                d["created"].strftime("%Y-%m-%d %H:%M"),
                d["actor"],
                d["reason"],
            )
            for d in data
        ],
    )


def _bulk_options(command):  # type: ignore[no-untyped-def]
    """What `held approve` and `held drop` take to decide many held changes at once."""
    options = [
        click.argument("held_id", type=int, required=False),
        click.option("--org", "org_key", help="Organization id or name (with a filter)."),
        click.option("--all", "everything", is_flag=True, help="Every pending held change."),
        click.option(
            "--kind",
            type=click.Choice(list(KIND_FILTERS)),
            help="Only this kind: revokes, removals, group removals or group deletions.",
        ),
        click.option("--group", help="Only removals from (or the deletion of) this group."),
        click.option(
            "--before", "created_before", help="Only changes held before (YYYY-MM-DD[ HH:MM], UTC)."
        ),
        click.option("--after", "created_after", help="Only changes held since (UTC)."),
        click.option("--email-prefix", help="Only members whose e-mail starts with this."),
        click.option("--yes", "-y", "assume_yes", is_flag=True, help="Do not ask to confirm."),
        pass_ctx,
        handle_errors,
    ]
    for option in reversed(options):
        command = option(command)
    return command


def _decide(ctx: CliContext, decision: str, held_id: int | None, bulk: dict) -> None:
    """One held change by id, or every one a filter takes (with a count and a confirmation)."""
    from gateway.admin import held as held_changes
    from gateway.orgs import find_org
    from gateway.provisioning.engine import approve_held, drop_held

    org_key, everything, assume_yes = (
        bulk.pop("org_key"),
        bulk.pop("everything"),
        bulk.pop("assume_yes"),
    )
    wanted = held_changes.parse_filter(bulk)
    db = ctx.current_db()
    if held_id is not None:
        if org_key or everything or not wanted.everything:
            raise InvalidInput("give a held change id or a filter (--org ORG --all ...), not both")
        with db.transaction() as session:
            if decision == "drop":
                drop_held(session, held_id, ADMIN)
                outcome = "dropped"
            else:
                outcome = approve_held(session, held_id, ADMIN)
        if outcome == "approved":
            click.echo(f"Approved and applied held change {held_id}.")
        elif decision == "approve":
            click.echo(f"Held change {held_id} is no longer wanted by the directory: dropped it.")
        else:
            click.echo(f"Dropped held change {held_id}; the member stays as they are.")
        return
    if not org_key or (wanted.everything and not everything):
        raise InvalidInput(
            f"say which held changes: scimgate held {decision} ID, or "
            f"scimgate held {decision} --org ORG --all (or a filter: --kind, --group, --before, "
            "--after, --email-prefix)"
        )
    with db.read() as session:
        org = find_org(session, org_key)
        shown = held_changes.matching(session, org, wanted)
        count = len(shown)
    if not count:
        click.echo(f"No pending held change of {org.name} matches ({wanted.describe()}).")
        return
    what = (
        "apply them (each only if the directory still asks for it)"
        if decision == "approve"
        else "drop them: the members stay as they are until the directory changes them"
    )
    click.echo(f"{count} pending held change(s) of {org.name} match ({wanted.describe()}).")
    if not assume_yes:
        click.confirm(f"{decision.capitalize()} all {count}: {what}?", abort=True)
    # What was counted and confirmed: changes held meanwhile wait for a decision of their own.
    wanted = dataclasses.replace(wanted, through_id=shown[-1].id)
    with db.transaction() as session:
        org = find_org(session, org_key)
        done = held_changes.decide_matching(session, org, wanted, decision, ADMIN)
    if decision == "approve":
        click.echo(
            f"Approved and applied {done.approved} held change(s); dropped {done.gone} the "
            "directory no longer asks for."
        )
    else:
        click.echo(f"Dropped {done.dropped} held change(s); the members stay as they are.")


@held.command("approve")
@_bulk_options
def held_approve(ctx: CliContext, held_id: int | None, **bulk: object) -> None:
    """Apply a held change, or all that a filter takes (--org ORG --all, --kind, --group,
    --before, --after, --email-prefix); each is dropped instead if the directory no longer
    wants it. Asks to confirm a bulk decision unless --yes."""
    _decide(ctx, "approve", held_id, bulk)


@held.command("drop")
@_bulk_options
def held_drop(ctx: CliContext, held_id: int | None, **bulk: object) -> None:
    """Drop a held change, or all that a filter takes: the members stay as they are until the
    directory says something new about them. Asks to confirm a bulk decision unless --yes."""
    _decide(ctx, "drop", held_id, bulk)


def register(main: click.Group) -> None:
    for command in (mapping, plan, held):
        main.add_command(command)

"""The `scimgate` command: run the gateway, migrate the database, manage organizations and tokens.

Every listing command (and `org create` / `token create`) takes `--json` for scripts. Errors end
with exit code 1 (2 for usage) and a message that says what to fix.
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import threading
from typing import Any

import click

from gateway import metrics
from gateway.cli_context import (
    CliContext,
    handle_errors,
    json_option,
    pass_ctx,
    print_json,
    print_table,
    schema_message,
)
from gateway.config import SETTINGS, Config, ConfigError
from gateway.serve_limits import ServeLimits
from gateway.store import SchemaState


@click.group()
def main() -> None:
    """scimgate: SCIM 2.0 and LDAP provisioning gateway."""


def run() -> None:
    """The `scimgate` program."""
    # What scimgate writes (the SQLite file, mail drops with live invitation links, tokens,
    # metrics) is for this user only; gunicorn's workers and the background worker inherit it.
    # Here, not in the command group, so that tests invoking commands in-process keep theirs.
    os.umask(0o077)
    main()


# --- serve ----------------------------------------------------------------------------------


def _check_bind(_ctx: click.Context, _param: click.Parameter, value: str | None) -> str | None:
    if value is not None:
        try:
            _BIND.parse(value)
        except ValueError as exc:
            raise click.BadParameter(str(exc)) from None
    return value


_BIND = next(s for s in SETTINGS if s.name == "GATEWAY_BIND")


def _limit_option(flag: str, field: str, kind: click.ParamType, text: str) -> Any:
    """An option of `serve` for one of ServeLimits, with its default."""
    default = getattr(ServeLimits(), field)
    return click.option(flag, field, type=kind, default=default, show_default=True, help=text)


@main.command()
@click.option(
    "--bind",
    callback=_check_bind,
    help="HOST:PORT to listen on (default: GATEWAY_BIND). URLs the gateway prints and answers "
    "with follow it unless GATEWAY_PUBLIC_URL is set.",
)
@click.option("--workers", type=int, help="gunicorn workers (default: GATEWAY_WEB_WORKERS).")
@_limit_option(
    "--threads",
    "threads",
    click.IntRange(min=1),
    "App threads per worker (requests that have fully arrived).",
)
@_limit_option(
    "--header-timeout",
    "header_timeout",
    click.FloatRange(min=0.1),
    "Seconds a client has to send a request's line and headers (408 and close after).",
)
@_limit_option(
    "--body-timeout",
    "body_timeout",
    click.FloatRange(min=0.1),
    "Seconds a client has to send a request's body once its headers are in (408 after).",
)
@_limit_option(
    "--max-connections",
    "max_connections",
    click.IntRange(min=1),
    "Open connections per worker; past it, requests get 503.",
)
@click.option("--upgrade", is_flag=True, help="Apply pending database migrations first.")
@click.option(
    "--no-demo", is_flag=True, help="Do not create a demo organization on an empty database."
)
@click.option("--no-worker", is_flag=True, help="Serve HTTP only; run `scimgate worker` elsewhere.")
@pass_ctx
@handle_errors
def serve(
    ctx: CliContext,
    bind: str | None,
    workers: int | None,
    threads: int,
    header_timeout: float,
    body_timeout: float,
    max_connections: int,
    upgrade: bool,
    no_demo: bool,
    no_worker: bool,
) -> None:
    """Run the gateway (gunicorn) on GATEWAY_BIND, with a worker process beside it."""
    if bind:
        # Through the environment, so that the public URL derived from it (SCIM base URLs,
        # meta.location, invitation links) is the same here, in gunicorn's workers and in the
        # background worker process.
        os.environ["GATEWAY_BIND"] = bind
    config = ctx.config
    db = ctx.db
    state = db.schema_state()
    # A fresh install gets its schema without asking; an existing database is only migrated
    # when the operator says so, since a migration may want a backup first.
    if state is SchemaState.EMPTY or (state is SchemaState.OUTDATED and upgrade):
        db.upgrade()
    elif state is not SchemaState.CURRENT:
        raise click.ClickException(schema_message(state))
    if not no_demo:
        _create_demo_org(ctx)
    db.dispose()  # gunicorn forks: each worker opens its own connections
    # Each gunicorn worker (and the background worker) counts into files here; /metrics adds
    # them up. Emptied at start: counts from a previous run are not this run's.
    metrics_dir = config.data_dir / "metrics"
    shutil.rmtree(metrics_dir, ignore_errors=True)
    metrics_dir.mkdir(parents=True)
    os.environ.setdefault("PROMETHEUS_MULTIPROC_DIR", str(metrics_dir))
    metrics.count_into_files()

    from gateway.serve import run_gunicorn

    limits = ServeLimits(
        threads=threads,
        header_timeout=header_timeout,
        body_timeout=body_timeout,
        max_connections=max_connections,
    )
    background = None
    if not no_worker:
        background = subprocess.Popen([sys.executable, "-m", "gateway.cli", "worker"])
    try:
        run_gunicorn(
            config,
            bind=config.bind,
            workers=workers or config.web_workers,
            limits=limits,
        )
    finally:
        if background is not None:
            background.terminate()
            try:
                background.wait(timeout=20)
            except subprocess.TimeoutExpired:
                background.kill()


@main.command()
@pass_ctx
@handle_errors
def worker(ctx: CliContext) -> None:
    """Deliver invitations and webhooks and run what is due, until stopped (SIGTERM/SIGINT)."""
    from gateway.logs import configure_logging
    from gateway.outbox.worker import run_forever

    configure_logging(ctx.config.log_format, ctx.config.log_level)
    db = ctx.current_db()
    stop = threading.Event()
    for signum in (signal.SIGTERM, signal.SIGINT):
        signal.signal(signum, lambda *_: stop.set())
    run_forever(db, ctx.config, stop)


def _create_demo_org(ctx: CliContext) -> None:
    from sqlalchemy import func, select

    from gateway.orgs import create_org
    from gateway.store.models import Organization
    from gateway.tokens import issue_token

    with ctx.db.transaction() as session:
        if session.scalar(select(func.count()).select_from(Organization)):
            return
        org = create_org(session, "Demo", plan="enterprise", seats=10)
        issued = issue_token(session, org=org, description="demo token created by serve")
        base = ctx.config.scim_base_url(org.id)
        name = org.name
    if sys.stdout.isatty():
        token_line = f"  Bearer token:  {issued.secret}  (shown only this once)"
    else:
        # Not a person at a terminal: a service log would keep the token for anyone who reads
        # the logs. It goes to a file only this user can read.
        path = ctx.config.data_dir / DEMO_TOKEN_FILE
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w") as fh:
            fh.write(issued.secret + "\n")
        token_line = f"  Bearer token:  in {path} (readable only by this user)"
    click.echo(
        "Created the demo organization. Its SCIM settings:\n"
        f"  Organization:  {name} (for the CLI: --org {name})\n"
        f"  SCIM base URL: {base}\n"
        f"{token_line}\n"
    )


DEMO_TOKEN_FILE = "demo-token"  # noqa: S105  (a file name, not a secret)


# --- db -------------------------------------------------------------------------------------


@main.group()
def db() -> None:
    """Database schema migrations."""


@db.command("upgrade")
@pass_ctx
@handle_errors
def db_upgrade(ctx: CliContext) -> None:
    """Apply every pending migration."""
    before = ctx.db.current_revision()
    ctx.db.upgrade()
    after = ctx.db.current_revision()
    if before == after:
        click.echo(f"The schema is current (revision {after}).")
    else:
        click.echo(f"Upgraded the schema from {before or 'empty'} to {after}.")


@db.command("status")
@json_option
@pass_ctx
@handle_errors
def db_status(ctx: CliContext, as_json: bool) -> None:
    """Show the schema revision and whether migrations are pending."""
    state = ctx.db.schema_state()
    data = {
        "database": ctx.db.engine.url.render_as_string(hide_password=True),
        "revision": ctx.db.current_revision(),
        "head": ctx.db.head_revision(),
        "state": state.value,
    }
    if as_json:
        print_json(data)
    else:
        for key, value in data.items():
            click.echo(f"{key}: {value}")
    if state is not SchemaState.CURRENT:
        sys.exit(1)


# --- organizations ----------------------------------------------------------------------------


@main.group()
def org() -> None:
    """Client organizations."""


@org.command("create")
@click.argument("name")
@click.option(
    "--plan", type=click.Choice(["teams", "enterprise"]), default="teams", show_default=True
)
@click.option(
    "--seats", type=click.IntRange(min=0), default=0, show_default=True, help="Seats assigned now."
)
@click.option("--seat-limit", type=click.IntRange(min=0), help="Most seats it may grow to.")
@click.option("--billing-email")
@click.option("--owner-email")
@json_option
@pass_ctx
@handle_errors
def org_create(
    ctx: CliContext,
    name: str,
    plan: str,
    seats: int,
    seat_limit: int | None,
    billing_email: str | None,
    owner_email: str | None,
    as_json: bool,
) -> None:
    """Create a client organization and print its id and SCIM base URL."""
    from gateway.orgs import create_org

    with ctx.current_db().transaction() as session:
        created = create_org(
            session,
            name,
            plan=plan,
            seats=seats,
            seat_limit=seat_limit,
            billing_email=billing_email,
            owner_email=owner_email,
            actor="admin:cli",
        )
    base = ctx.config.scim_base_url(created.id)
    if as_json:
        print_json(
            {
                "id": created.id,
                "name": created.name,
                "plan": created.plan,
                "seats": created.seats,
                "seat_limit": created.seat_limit,
                "scim_base_url": base,
            }
        )
    else:
        click.echo(f"Created organization {created.name}")
        click.echo(f"  id:            {created.id}")
        click.echo(f"  SCIM base URL: {base}")
        click.echo(f"Next: scimgate token create --org {created.id}")


@org.command("list")
@json_option
@pass_ctx
@handle_errors
def org_list(ctx: CliContext, as_json: bool) -> None:
    """The clients table: plan and assigned / used / remaining seats."""
    from gateway.orgs import list_orgs

    with ctx.current_db().read() as session:
        rows = list_orgs(session)
    if as_json:
        print_json(
            [
                {
                    "id": o.id,
                    "name": o.name,
                    "plan": o.plan,
                    "assigned": s.assigned,
                    "used": s.used,
                    "remaining": s.remaining,
                    "seat_limit": o.seat_limit,
                    "scim_base_url": ctx.config.scim_base_url(o.id),
                }
                for o, s in rows
            ]
        )
        return
    print_table(
        ["Client", "Plan", "Assigned", "Used", "Remaining", "Id"],
        [(o.name, o.plan.title(), s.assigned, s.used, s.remaining, o.id) for o, s in rows],
    )


# --- tokens -----------------------------------------------------------------------------------


@main.group()
def token() -> None:
    """SCIM bearer tokens."""


@token.command("create")
@click.option("--org", "org_key", required=True, help="Organization id or name.")
@click.option("--description", help="What the token is for, e.g. 'Okta production'.")
@json_option
@pass_ctx
@handle_errors
def token_create(ctx: CliContext, org_key: str, description: str | None, as_json: bool) -> None:
    """Create a SCIM token; it is printed once and only its hash is kept."""
    from gateway.orgs import find_org
    from gateway.tokens import issue_token

    with ctx.current_db().transaction() as session:
        organization = find_org(session, org_key)
        issued = issue_token(session, org=organization, description=description, actor="admin:cli")
        base = ctx.config.scim_base_url(organization.id)
    if as_json:
        print_json(
            {
                "id": issued.token.id,
                "org_id": organization.id,
                "token": issued.secret,
                "prefix": issued.token.prefix,
                "scim_base_url": base,
            }
        )
    else:
        click.echo(
            f"SCIM token for {organization.name} (shown only this once; store it in your IdP):"
        )
        click.echo(f"  {issued.secret}")
        click.echo(f"  SCIM base URL: {base}")


@token.command("list")
@click.option("--org", "org_key", help="Only this organization (id or name).")
@json_option
@pass_ctx
@handle_errors
def token_list(ctx: CliContext, org_key: str | None, as_json: bool) -> None:
    """Tokens with their id, prefix, creation and last use (never the token itself)."""
    from gateway.orgs import find_org
    from gateway.tokens import list_tokens

    with ctx.current_db().read() as session:
        organization = find_org(session, org_key) if org_key else None
        tokens = list_tokens(session, org=organization)
        rows = [
            {
                "id": t.id,
                "org_id": t.org_id,
                "organization": t.organization.name if t.organization else None,
                "prefix": t.prefix,
                "description": t.description,
                "created": t.created_at,
                "last_used": t.last_used_at,
                "revoked": t.revoked_at,
            }
            for t in tokens
        ]
    if as_json:
        print_json(rows)
        return
    print_table(
        ["Id", "Organization", "Prefix", "Created", "Last used", "Revoked", "Description"],
        [
            (
                r["id"],
                r["organization"],
                r["prefix"] + "…",
                _when(r["created"]),
                _when(r["last_used"]) or "never",
                _when(r["revoked"]),
                r["description"],
            )
            for r in rows
        ],
    )


def _when(value: Any) -> str | None:
    return value.strftime("%Y-%m-%d %H:%M") if value else None


@token.command("revoke")
@click.argument("token_id")
@pass_ctx
@handle_errors
def token_revoke(ctx: CliContext, token_id: str) -> None:
    """Revoke a token: requests with it fail from now on."""
    from gateway.tokens import revoke_token

    with ctx.current_db().transaction() as session:
        revoked = revoke_token(session, token_id, actor="admin:cli")
    click.echo(f"Revoked token {revoked.id} ({revoked.prefix}…).")


# --- configuration ------------------------------------------------------------------------------


@main.command("config")
@click.option("--markdown", is_flag=True, help="Print the reference table in Markdown.")
def config_cmd(markdown: bool) -> None:
    """Check the settings and print them (secrets hidden), or the reference table."""
    if markdown:
        click.echo("| Variable | Default | Meaning |\n| --- | --- | --- |")
        for s in SETTINGS:
            click.echo(f"| `{s.name}` | {f'`{s.default}`' if s.default else '—'} | {s.help} |")
        return
    try:
        config = Config.from_env(create_dirs=False)
    except ConfigError as exc:
        raise click.ClickException(str(exc)) from None
    for s in SETTINGS:
        key = s.name.removeprefix("GATEWAY_").lower()
        value = getattr(config, key)
        if key in {"secret_key", "smtp_password"} and value:
            value = "(set)"
        click.echo(f"{s.name}={value}")


def _register_areas() -> None:
    """Each area brings its own commands; they import from this module, so they come last."""
    from connectors.ldap.cli import register as register_ldap
    from gateway.admin.cli import register as register_admin
    from gateway.lifecycle.cli import register as register_lifecycle
    from gateway.provisioning.cli import register as register_provisioning

    register_provisioning(main)
    register_ldap(main)
    register_admin(main)
    register_lifecycle(main)


_register_areas()
if __name__ == "__main__":  # pragma: no cover
    run()

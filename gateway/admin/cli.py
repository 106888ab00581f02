"""`scimgate admin ...` (console accounts and their API keys) and `scimgate doctor` (the
readiness checks). Registered on the `scimgate` group by `register(main)`.

Does: parse options, call gateway.accounts and gateway.admin.readiness, print. Does not: hold
account rules or checks of its own.
"""

from __future__ import annotations

import sys

import click

from gateway.cli_context import (
    CliContext,
    handle_errors,
    json_option,
    pass_ctx,
    print_json,
    print_table,
)
from gateway.store.models import ADMIN_ROLES


def register(main: click.Group) -> None:
    main.add_command(admin)
    main.add_command(doctor)


@click.group()
def admin() -> None:
    """Console accounts: provider admins, service users, org admins."""


@admin.command("create")
@click.argument("email")
@click.option("--role", type=click.Choice(ADMIN_ROLES), default="provider_admin", show_default=True)
@click.option("--name", help="The person's name.")
@click.option("--org", "org_keys", multiple=True, help="Organization id or name (org admins).")
@click.option(
    "--password-stdin",
    is_flag=True,
    help="Read the password from standard input (scripts); implied when stdin is not a terminal.",
)
@pass_ctx
@handle_errors
def admin_create(
    ctx: CliContext,
    email: str,
    role: str,
    name: str | None,
    org_keys: tuple[str, ...],
    password_stdin: bool,
) -> None:
    """Create a confirmed console account with a password (the first provider admin)."""
    from gateway.accounts import create_admin
    from gateway.orgs import find_org

    # A piped password is read as one line, as with --password-stdin: getpass would warn that
    # it cannot hide what is not typed, then want the password twice.
    if password_stdin or not sys.stdin.isatty():
        password = sys.stdin.readline().rstrip("\r\n")
    else:
        password = click.prompt("Password", hide_input=True, confirmation_prompt=True)
    with ctx.current_db().transaction() as session:
        org_ids = [find_org(session, key).id for key in org_keys]
        created = create_admin(
            session, email, role=role, password=password, name=name, org_ids=org_ids
        )
        email = created.email
    console = f"{ctx.config.public_url}/console/"
    click.echo(f"Created {role} {email}. Sign in at {console}")


@admin.command("list")
@json_option
@pass_ctx
@handle_errors
def admin_list(ctx: CliContext, as_json: bool) -> None:
    """Every console account with its role, status and organizations."""
    from gateway.accounts import list_admins

    with ctx.current_db().read() as session:
        rows = list_admins(session)
    data = [
        {
            "id": a.id,
            "email": a.email,
            "role": a.role,
            "status": a.status,
            "org_ids": orgs,
            "last_login_at": a.last_login_at,
        }
        for a, orgs in rows
    ]
    if as_json:
        print_json(data)
        return
    print_table(
        ["E-mail", "Role", "Status", "Organizations", "Id"],
        [(d["email"], d["role"], d["status"], ", ".join(d["org_ids"]), d["id"]) for d in data],
    )


@admin.command("confirm")
@click.argument("email")
@pass_ctx
@handle_errors
def admin_confirm(ctx: CliContext, email: str) -> None:
    """Confirm an account that accepted its invitation."""
    from sqlalchemy import select

    from gateway.accounts import confirm_admin
    from gateway.errors import NotFound
    from gateway.store.models import ConsoleAdmin

    with ctx.current_db().transaction() as session:
        admin_id = session.scalar(
            select(ConsoleAdmin.id).where(ConsoleAdmin.email_lower == email.strip().lower())
        )
        if admin_id is None:
            raise NotFound(f"no console account for {email} (see `scimgate admin list`)")
        confirm_admin(session, admin_id, actor="admin:cli")
    click.echo(f"Confirmed {email}: they can sign in now.")


@admin.command("key")
@click.argument("email")
@click.option("--description", help="What the key is for.")
@pass_ctx
@handle_errors
def admin_key(ctx: CliContext, email: str, description: str | None) -> None:
    """Create an admin API key for an account; it is printed once."""
    from sqlalchemy import select

    from gateway.accounts import issue_api_key
    from gateway.errors import NotFound
    from gateway.store.models import ConsoleAdmin

    with ctx.current_db().transaction() as session:
        admin_id = session.scalar(
            select(ConsoleAdmin.id).where(ConsoleAdmin.email_lower == email.strip().lower())
        )
        if admin_id is None:
            raise NotFound(f"no console account for {email} (see `scimgate admin list`)")
        issued = issue_api_key(session, admin_id, description=description)
    click.echo(issued.secret)


@click.command()
@json_option
@pass_ctx
@handle_errors
def doctor(ctx: CliContext, as_json: bool) -> None:
    """Check that this gateway is ready: database, SMTP, public URL, LDAP, mappings, admins,
    tokens. Exit code 1 when a check fails."""
    from gateway.admin.readiness import FAIL, run_checks

    checks = run_checks(ctx.db, ctx.config)
    if as_json:
        print_json([{"name": c.name, "status": c.status, "detail": c.detail} for c in checks])
    else:
        marks = {"ok": "ok  ", "warn": "warn", "fail": "FAIL"}
        for c in checks:
            click.echo(f"{marks[c.status]}  {c.name}: {c.detail}")
    if any(c.status == FAIL for c in checks):
        sys.exit(1)

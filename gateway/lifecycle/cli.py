"""`scimgate members ...`, `scimgate events` and `scimgate webhooks ...`. Registered on the
`scimgate` group by `register(main)`.

Does: parse options, call the same service functions as the console and the admin API (member
actions go through gateway.admin.members.act_on_members), print tables, JSON or CSV. Does not:
hold lifecycle rules of its own.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from datetime import UTC, datetime, timedelta

import click

from gateway.cli_context import (
    CliContext,
    handle_errors,
    json_option,
    pass_ctx,
    print_json,
    print_table,
)
from gateway.errors import InvalidInput
from gateway.store.models import MEMBER_STATUSES

ADMIN = "admin:cli"
org_option = click.option("--org", "org_key", required=True, help="Organization id or name.")


def register(main: click.Group) -> None:
    main.add_command(members)
    main.add_command(events)
    main.add_command(webhooks)


def _when(value: datetime | None) -> str:
    return value.strftime("%Y-%m-%d %H:%M") if value else ""


def _status(member) -> str:  # type: ignore[no-untyped-def]
    if member.waiting_for_seat:
        return f"{member.status} (waiting for a seat)"
    if member.status == "invited" and member.invitation_expired:
        return "invited (invitation expired)"
    return member.status


# --- members --------------------------------------------------------------------------------------


@click.group()
def members() -> None:
    """Members of an organization: list, invite, resend, confirm; auto-confirm rules."""


@members.command("list")
@org_option
@click.option("--status", type=click.Choice(MEMBER_STATUSES), help="Only members in this status.")
@json_option
@pass_ctx
@handle_errors
def members_list(ctx: CliContext, org_key: str, status: str | None, as_json: bool) -> None:
    """Members with their status; accepted ones with their fingerprint phrase."""
    from gateway.admin.members import MemberFilter, find_members
    from gateway.lifecycle.fingerprint import fingerprint_phrase
    from gateway.orgs import find_org

    rows = []
    with ctx.current_db().read() as session:
        org = find_org(session, org_key)
        page = 1
        while True:
            found = find_members(session, org, MemberFilter(status=status, page=page, per_page=200))
            for m in found.members:
                rows.append(
                    {
                        "id": m.id,
                        "email": m.email,
                        "name": m.name,
                        "role": m.role,
                        "status": m.status,
                        "waiting_for_seat": m.waiting_for_seat,
                        "invitation_expired": m.invitation_expired,
                        "source": m.source,
                        "invited_at": m.invited_at,
                        "accepted_at": m.accepted_at,
                        "confirmed_at": m.confirmed_at,
                        "confirmed_by": m.confirmed_by,
                        "fingerprint_phrase": fingerprint_phrase(m.public_key)
                        if m.status == "accepted"
                        else None,
                        "_shown": _status(m),
                    }
                )
            if page >= found.pages:
                break
            page += 1
    if as_json:
        print_json([{k: v for k, v in r.items() if k != "_shown"} for r in rows])
        return
    if status == "accepted":
        print_table(
            ("E-mail", "Name", "Accepted", "Fingerprint phrase"),
            [
                (r["email"], r["name"], _when(r["accepted_at"]), r["fingerprint_phrase"] or "-")
                for r in rows
            ],
        )
    else:
        print_table(
            ("E-mail", "Name", "Role", "Status", "Source"),
            [
                (r["email"], r["name"], r["role"], r["_shown"], r["source"] or "manual")
                for r in rows
            ],
        )


def _act(ctx: CliContext, org_key: str, action: str, emails: Iterable[str], *, every: str | None):
    """Run an admin member action on members given by e-mail (or every one in status `every`)."""
    from sqlalchemy import select

    from gateway.admin.members import act_on_members
    from gateway.orgs import find_org
    from gateway.store.models import Member

    emails = list(emails)
    if bool(emails) == bool(every):
        raise click.UsageError(f"name the members by e-mail, or use --all ({every or 'all'})")
    with ctx.current_db().transaction() as session:
        org = find_org(session, org_key)
        query = select(Member.id, Member.email_lower).where(Member.org_id == org.id)
        if every:
            ids = list(
                session.scalars(query.with_only_columns(Member.id).where(Member.status == every))
            )
            if not ids:
                click.echo(f"No {every} members in {org.name}.")
                return
        else:
            wanted = {e.strip().lower() for e in emails}
            found = dict(
                (email, member_id)
                for member_id, email in session.execute(query.where(Member.email_lower.in_(wanted)))
            )
            missing = sorted(wanted - found.keys())
            if missing:
                raise InvalidInput(f"{org.name} has no member {', '.join(missing)}")
            ids = list(found.values())
        report = act_on_members(session, org, action, ids, ADMIN)
    click.echo(report.summary())
    if report.skipped and not report.done:
        raise SystemExit(1)


@members.command("confirm")
@org_option
@click.argument("emails", nargs=-1)
@click.option("--all", "every", is_flag=True, help="Every accepted member.")
@pass_ctx
@handle_errors
def members_confirm(ctx: CliContext, org_key: str, emails: tuple[str, ...], every: bool) -> None:
    """Confirm members who accepted their invitation (compare fingerprint phrases first)."""
    _act(ctx, org_key, "confirm", emails, every="accepted" if every else None)


@members.command("invite")
@org_option
@click.argument("emails", nargs=-1)
@click.option("--all", "every", is_flag=True, help="Every staged member.")
@pass_ctx
@handle_errors
def members_invite(ctx: CliContext, org_key: str, emails: tuple[str, ...], every: bool) -> None:
    """Invite staged members (staged mode, or waiting for a seat)."""
    _act(ctx, org_key, "invite", emails, every="staged" if every else None)


@members.command("resend")
@org_option
@click.argument("emails", nargs=-1)
@click.option("--all", "every", is_flag=True, help="Every invited member.")
@pass_ctx
@handle_errors
def members_resend(ctx: CliContext, org_key: str, emails: tuple[str, ...], every: bool) -> None:
    """Send invited members a new invitation (earlier links stop working)."""
    _act(ctx, org_key, "resend", emails, every="invited" if every else None)


@members.command("settings")
@org_option
@click.option(
    "--invite-resends",
    type=click.IntRange(0, 20),
    help="Automatic re-sends of an expired invitation (default 2).",
)
@json_option
@pass_ctx
@handle_errors
def members_settings(
    ctx: CliContext, org_key: str, invite_resends: int | None, as_json: bool
) -> None:
    """Show or change the lifecycle settings; `mapping settings --staged-mode` stages members."""
    from gateway.lifecycle.settings import LifecycleSettings, set_invite_resends
    from gateway.orgs import find_org

    with ctx.current_db().transaction() as session:
        org = find_org(session, org_key)
        if invite_resends is not None:
            set_invite_resends(session, org, invite_resends, actor=ADMIN)
        settings = LifecycleSettings.of(org)
        staged = bool((org.settings or {}).get("staged_mode", False))
    if as_json:
        print_json({**settings.to_json(), "staged_mode": staged})
        return
    click.echo(f"invite_resends: {settings.invite_resends}")
    click.echo(f"staged_mode: {str(staged).lower()}")
    click.echo("auto_confirm: " + ("; ".join(r.describe() for r in settings.auto_confirm) or "off"))


@members.group("rules", invoke_without_command=True)
@click.option("--org", "org_key", help="Organization id or name.")
@json_option
@click.pass_context
def rules(click_ctx: click.Context, org_key: str | None, as_json: bool) -> None:
    """Auto-confirm rules (off unless some exist): list them, `add`, `remove`."""
    if click_ctx.invoked_subcommand is not None:
        return
    if not org_key:
        raise click.UsageError("--org is required to list the rules")
    click_ctx.invoke(_rules_list, org_key=org_key, as_json=as_json)


@pass_ctx
@handle_errors
def _rules_list(ctx: CliContext, org_key: str, as_json: bool) -> None:
    from gateway.lifecycle.settings import LifecycleSettings
    from gateway.orgs import find_org

    with ctx.current_db().read() as session:
        settings = LifecycleSettings.of(find_org(session, org_key))
    if as_json:
        print_json(settings.to_json()["auto_confirm"])
        return
    if not settings.auto_confirm:
        click.echo("No auto-confirm rules: every accepted member waits for an admin.")
        return
    print_table(
        ("Rule", "Source", "E-mail domain", "Group"),
        [(r.name, r.source, r.email_domain, r.group) for r in settings.auto_confirm],
    )


@rules.command("add")
@org_option
@click.argument("name")
@click.option("--source", help="scim, ldap:<connector> or ldap:*")
@click.option("--domain", "email_domain", help="E-mail domain, e.g. acme.example")
@click.option("--group", help="Directory group the member's directory user is in.")
@pass_ctx
@handle_errors
def rules_add(
    ctx: CliContext,
    org_key: str,
    name: str,
    source: str | None,
    email_domain: str | None,
    group: str | None,
) -> None:
    """Confirm accepting members at once when every given condition holds."""
    from gateway.lifecycle.settings import add_rule
    from gateway.orgs import find_org

    with ctx.current_db().transaction() as session:
        org = find_org(session, org_key)
        rule = add_rule(
            session, org, name, actor=ADMIN, source=source, email_domain=email_domain, group=group
        )
    click.echo(f"Added auto-confirm rule {rule.describe()}")


@rules.command("remove")
@org_option
@click.argument("name")
@pass_ctx
@handle_errors
def rules_remove(ctx: CliContext, org_key: str, name: str) -> None:
    """Remove an auto-confirm rule."""
    from gateway.lifecycle.settings import remove_rule
    from gateway.orgs import find_org

    with ctx.current_db().transaction() as session:
        remove_rule(session, find_org(session, org_key), name, actor=ADMIN)
    click.echo(f"Removed auto-confirm rule {name}")


# --- events ---------------------------------------------------------------------------------------

_AGO = re.compile(r"^(\d+)\s*([mhdw])$")
_UNITS = {"m": "minutes", "h": "hours", "d": "days", "w": "weeks"}


def parse_since(raw: str, *, now: datetime | None = None) -> datetime:
    """`30m`, `24h`, `7d`, `2w` ago, or an ISO date / date-time (UTC unless it says)."""
    raw = raw.strip()
    ago = _AGO.match(raw)
    if ago:
        return (now or datetime.now(UTC)) - timedelta(**{_UNITS[ago.group(2)]: int(ago.group(1))})
    try:
        value = datetime.fromisoformat(raw.replace("Z", "+00:00"))
    except ValueError:
        raise click.BadParameter(
            "expected a duration ago (30m, 24h, 7d, 2w) or an ISO date such as 2026-11-01",
            param_hint="--since",
        ) from None
    return value if value.tzinfo else value.replace(tzinfo=UTC)


@click.command("events")
@org_option
@click.option("--since", help="From this time: 24h, 7d, or an ISO date / date-time.")
@click.option("--type", "type_", help="An event type (member.confirmed) or prefix (member.*).")
@click.option("--limit", type=click.IntRange(1, 1000), default=100, show_default=True)
@click.option("--json", "as_json", is_flag=True, help="Print JSON for scripts.")
@click.option("--csv", "as_csv", is_flag=True, help="Every matching event as CSV (no limit).")
@pass_ctx
@handle_errors
def events(
    ctx: CliContext,
    org_key: str,
    since: str | None,
    type_: str | None,
    limit: int,
    as_json: bool,
    as_csv: bool,
) -> None:
    """The organization's event log, newest first."""
    from gateway.admin.events import EventFilter, events_csv, find_events
    from gateway.orgs import find_org

    if as_json and as_csv:
        raise click.UsageError("choose one of --json and --csv")
    if type_ and type_.endswith("*"):
        type_ = type_.rstrip("*")
        type_ = type_ if type_.endswith(".") else type_ + "."
    f = EventFilter(type=type_, since=parse_since(since) if since else None, limit=limit)
    with ctx.current_db().read() as session:
        org = find_org(session, org_key)
        if as_csv:
            for line in events_csv(session, org, f):
                click.echo(line, nl=False)
            return
        found = find_events(session, org, f)
        rows = [
            {
                "id": e.id,
                "at": e.at.isoformat(),
                "actor": e.actor,
                "type": e.type,
                "target_type": e.target_type,
                "target_id": e.target_id,
                "detail": e.detail,
            }
            for e in found
        ]
    if as_json:
        print_json(rows)
        return
    print_table(
        ("Id", "At", "Actor", "Type", "Target", "Detail"),
        [
            (
                r["id"],
                r["at"][:19].replace("T", " "),
                r["actor"],
                r["type"],
                (r["detail"] or {}).get("email") or r["target_id"] or "",
                _brief(r["detail"]),
            )
            for r in rows
        ],
    )


def _brief(detail: dict | None) -> str:
    text = ", ".join(f"{k}={v}" for k, v in (detail or {}).items() if k != "email")
    return text if len(text) <= 60 else text[:59] + "…"


# --- webhooks -------------------------------------------------------------------------------------


@click.group()
def webhooks() -> None:
    """Webhook endpoints: every event POSTed as signed JSON, retried with backoff."""


@webhooks.command("add")
@org_option
@click.argument("url")
@click.option(
    "--events",
    "event_types",
    multiple=True,
    help="Event type or prefix (member.*); repeat or separate with commas. Default: all.",
)
@click.option("--description", help="What the endpoint is.")
@json_option
@pass_ctx
@handle_errors
def webhooks_add(
    ctx: CliContext,
    org_key: str,
    url: str,
    event_types: tuple[str, ...],
    description: str | None,
    as_json: bool,
) -> None:
    """Add an endpoint; its signing secret is printed only this once."""
    from gateway.events import display_url
    from gateway.lifecycle.webhooks import add_endpoint
    from gateway.orgs import find_org

    patterns = [p for value in event_types for p in value.replace(",", " ").split()]
    with ctx.current_db().transaction() as session:
        org = find_org(session, org_key)
        added = add_endpoint(
            session,
            org,
            url,
            secret_key=ctx.config.secret_key,
            allow_private=ctx.config.webhook_allow_private,
            actor=ADMIN,
            events=patterns,
            description=description,
        )
        endpoint_id, events_ = added.endpoint.id, list(added.endpoint.events)
    if as_json:
        print_json(
            {"id": endpoint_id, "url": display_url(url), "events": events_, "secret": added.secret}
        )
        return
    click.echo(f"Added webhook {endpoint_id} -> {display_url(url)}")
    click.echo(f"  events: {', '.join(events_) or 'all'}")
    click.echo(f"  signing secret (shown only this once): {added.secret}")
    click.echo(
        "  receivers check X-Scimgate-Signature = sha256=HMAC-SHA256(secret, "
        "X-Scimgate-Timestamp + '.' + body)"
    )


@webhooks.command("list")
@click.option("--org", "org_key", help="Organization id or name (default: every organization).")
@json_option
@pass_ctx
@handle_errors
def webhooks_list(ctx: CliContext, org_key: str | None, as_json: bool) -> None:
    """Webhook endpoints (secrets are never shown again)."""
    from sqlalchemy import select

    from gateway.events import display_url
    from gateway.orgs import find_org
    from gateway.store.models import Organization, WebhookEndpoint

    with ctx.current_db().read() as session:
        query = select(WebhookEndpoint, Organization.name).join(
            Organization, Organization.id == WebhookEndpoint.org_id
        )
        if org_key:
            query = query.where(WebhookEndpoint.org_id == find_org(session, org_key).id)
        rows = [
            {
                "id": e.id,
                "organization": name,
                "url": display_url(e.url),
                "events": list(e.events or []),
                "description": e.description,
                "created_at": e.created_at.isoformat(),
            }
            for e, name in session.execute(
                query.order_by(Organization.name_lower, WebhookEndpoint.created_at)
            )
        ]
    if as_json:
        print_json(rows)
        return
    print_table(
        ("Id", "Organization", "URL", "Events", "Description"),
        [
            (
                r["id"],
                r["organization"],
                r["url"],
                ", ".join(r["events"]) or "all",
                r["description"],
            )
            for r in rows
        ],
    )


@webhooks.command("remove")
@click.argument("endpoint_id")
@pass_ctx
@handle_errors
def webhooks_remove(ctx: CliContext, endpoint_id: str) -> None:
    """Remove an endpoint; messages still queued for it are not sent."""
    from gateway.errors import NotFound
    from gateway.lifecycle.webhooks import remove_endpoint
    from gateway.store.models import Organization, WebhookEndpoint

    with ctx.current_db().transaction() as session:
        endpoint = session.get(WebhookEndpoint, endpoint_id)
        if endpoint is None:
            raise NotFound(f"no webhook endpoint {endpoint_id!r} (see `scimgate webhooks list`)")
        org = session.get(Organization, endpoint.org_id)
        assert org is not None
        remove_endpoint(session, org, endpoint_id, actor=ADMIN)
    click.echo(f"Removed webhook {endpoint_id}")


@webhooks.command("deliveries")
@org_option
@click.option("--failed", is_flag=True, help="Only deliveries that gave up after the last attempt.")
@click.option("--limit", type=click.IntRange(1, 1000), default=100, show_default=True)
@json_option
@pass_ctx
@handle_errors
def webhooks_deliveries(
    ctx: CliContext, org_key: str, failed: bool, limit: int, as_json: bool
) -> None:
    """Webhook deliveries, newest first: state, attempts, last error."""
    from gateway.lifecycle.webhooks import webhook_deliveries
    from gateway.orgs import find_org

    with ctx.current_db().read() as session:
        org = find_org(session, org_key)
        rows = [
            {
                "id": m.id,
                "event_id": m.payload.get("event", {}).get("id"),
                "type": m.payload.get("event", {}).get("type"),
                "endpoint_id": m.payload.get("endpoint_id"),
                "url": m.payload.get("url"),
                "status": m.status,
                "attempts": m.attempts,
                "created_at": m.created_at.isoformat(),
                "sent_at": m.sent_at.isoformat() if m.sent_at else None,
                "next_attempt_at": m.next_attempt_at.isoformat(),
                "last_error": m.last_error,
            }
            for m in webhook_deliveries(session, org, failed=failed, limit=limit)
        ]
    if as_json:
        print_json(rows)
        return
    print_table(
        ("Id", "Event", "URL", "State", "Attempts", "Last error"),
        [
            (r["id"], r["type"], r["url"], r["status"], r["attempts"], r["last_error"] or "")
            for r in rows
        ],
    )

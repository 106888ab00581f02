"""The admin JSON API under `/api/v1`: everything the console does, for scripts, authenticated by
admin API keys (`Authorization: Bearer sga_...`, made on the console's "My account" page or with
`scimgate admin key`). An API key acts as its account: same role, same organizations.

Does: routing; each route declares its query, body and response schemas once (`@operation`),
which both parses/dumps the request and feeds the OpenAPI document at `/api/v1/openapi.json`;
errors as `{"error": {"type", "message"}}` with one status per error kind. Does not: hold rules
(the same service functions as the console do the work).
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

from flask import Blueprint, Response, g, jsonify, request
from marshmallow import Schema, ValidationError
from sqlalchemy.orm import Session

from gateway import accounts
from gateway.admin import (
    clients,
    connectors,
    deliveries,
    events,
    groups,
    held,
    mapping,
    members,
    readiness,
    scim_settings,
)
from gateway.admin import schemas as s
from gateway.admin.web import load_api_principal, principal, reject_nul_characters
from gateway.app import gateway
from gateway.errors import InvalidInput
from gateway.events import display_url
from gateway.http_errors import error_response
from gateway.lifecycle import webhooks
from gateway.provisioning.guard import HeldFilter

api = Blueprint("admin_api", __name__, url_prefix="/api/v1")


@dataclass
class Operation:
    path: str  # OpenAPI form: /orgs/{org_id}
    method: str
    summary: str
    tag: str
    query: type[Schema] | None = None
    body: type[Schema] | None = None
    response: type[Schema] | None = None
    many: bool = False
    status: int = 200
    path_types: dict[str, str] = field(default_factory=dict)


OPERATIONS: list[Operation] = []


@api.errorhandler(ValidationError)
def _invalid(exc: ValidationError) -> Response:
    return error_response(
        422, "the request is not valid", kind="invalid_input", fields=exc.messages
    )


# The gateway's own error families, HTTP errors and an unreachable database are answered by
# gateway.http_errors (app-level) in this API's JSON error form.


@api.before_request
def _authenticate() -> None:
    if request.endpoint == "admin_api.openapi_json":
        return
    g.principal = load_api_principal()


def _flask_rule(path: str, path_types: dict[str, str]) -> str:
    for name, kind in path_types.items():
        path = path.replace("{" + name + "}", f"<{kind}:{name}>")
    return path.replace("{", "<").replace("}", ">")


def operation(
    path: str,
    method: str,
    summary: str,
    *,
    tag: str,
    query: type[Schema] | None = None,
    body: type[Schema] | None = None,
    response: type[Schema] | None = None,
    many: bool = False,
    status: int = 200,
    path_types: dict[str, str] | None = None,
) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
    """Register a route: the view gets `query=` / `body=` loaded by their schemas and returns
    data that `response` dumps (or a Response of its own)."""
    op = Operation(
        path, method, summary, tag, query, body, response, many, status, path_types or {}
    )
    OPERATIONS.append(op)

    def decorate(view: Callable[..., Any]) -> Callable[..., Any]:
        @functools.wraps(view)
        def wrapper(**kwargs: Any) -> Any:
            if op.query is not None:
                kwargs["query"] = op.query().load(request.args.to_dict())
            data = None
            if op.body is not None:
                data = _json_body()
                if not isinstance(data, dict):
                    raise InvalidInput("the body must be a JSON object")
            reject_nul_characters(data)
            if op.body is not None:
                kwargs["body"] = op.body().load(data)
            result = view(**kwargs)
            if isinstance(result, Response):
                return result
            if op.status == 204:
                return Response(status=204)
            dumped = op.response(many=op.many).dump(result) if op.response else result
            out = jsonify(dumped)
            out.status_code = op.status
            return out

        api.add_url_rule(
            _flask_rule(path, op.path_types),
            endpoint=f"{view.__name__}",
            view_func=wrapper,
            methods=[method.upper()],
        )
        return wrapper

    return decorate


# Deeper than any body of this API; the parser and every walk over the body stay far from
# Python's recursion limit.
MAX_JSON_DEPTH = 32


def _json_body() -> Any:
    """The request's JSON body, or None if it is not JSON; InvalidInput if nested too deeply."""
    try:
        data = request.get_json(silent=True)
    except RecursionError:
        raise InvalidInput(f"the body is nested deeper than {MAX_JSON_DEPTH} levels") from None
    stack = [(data, 1)]
    while stack:
        value, depth = stack.pop()
        if isinstance(value, dict | list):
            if depth > MAX_JSON_DEPTH:
                raise InvalidInput(f"the body is nested deeper than {MAX_JSON_DEPTH} levels")
            children = value.values() if isinstance(value, dict) else value
            stack.extend((child, depth + 1) for child in children)
    return data


@contextmanager
def _write() -> Iterator[Session]:
    with gateway().db.transaction() as session:
        yield session


@contextmanager
def _read() -> Iterator[Session]:
    with gateway().db.read() as session:
        yield session


# --- shaping domain objects for the schemas -------------------------------------------------------


def _plan(plan: Any, digest: str | None = None) -> dict[str, Any]:
    data = plan.to_json()
    return {
        "counts": data["counts"],
        "changes": [{"kind": k, "target": t, "detail": d} for k, t, d in plan.rows()],
        "problems": data["problems"],
        "skipped": data["skipped"],
        "digest": digest,
    }


def _client(row: clients.ClientRow) -> dict[str, Any]:
    return {
        "id": row.org.id,
        "name": row.org.name,
        "plan": row.org.plan,
        "seats": {
            "assigned": row.seats.assigned,
            "used": row.seats.used,
            "remaining": row.seats.remaining,
            "limit": row.org.seat_limit,
        },
        "pending_confirmations": row.pending_confirmations,
        "held_deprovisions": row.held_deprovisions,
        "last_sync": row.last_sync,
        "scim_base_url": gateway().config.scim_base_url(row.org.id),
    }


# --- the OpenAPI document -------------------------------------------------------------------------


@api.get("/openapi.json")
def openapi_json() -> Response:
    from gateway.admin.openapi import openapi_document

    return jsonify(openapi_document())


# --- clients --------------------------------------------------------------------------------------


@operation("/orgs", "get", "The clients table", tag="clients", response=s.Client, many=True)
def list_clients() -> Any:
    with _read() as session:
        return [_client(r) for r in clients.client_rows(session, principal())]


@operation(
    "/orgs",
    "post",
    "Create a client organization",
    tag="clients",
    body=s.ClientCreate,
    response=s.Client,
    status=201,
)
def create_client(body: dict) -> Any:
    with _write() as session:
        org = clients.create_client(session, principal(), **body)
        org_id = org.id
    return _one_client(org_id)


def _one_client(org_id: str) -> dict[str, Any]:
    with _read() as session:
        principal().org(session, org_id)
        row = next(r for r in clients.client_rows(session, principal()) if r.org.id == org_id)
        return _client(row)


@operation("/orgs/{org_id}", "get", "One client", tag="clients", response=s.Client)
def get_client(org_id: str) -> Any:
    return _one_client(org_id)


# --- members --------------------------------------------------------------------------------------


@operation(
    "/orgs/{org_id}/members",
    "get",
    "Members: filter, search, page",
    tag="members",
    query=s.MemberQuery,
    response=s.MemberPage,
)
def list_members(org_id: str, query: dict) -> Any:
    with _read() as session:
        org = principal().org(session, org_id)
        page = members.find_members(session, org, members.MemberFilter(**query))
        return {
            "members": page.members,
            "total": page.total,
            "page": page.page,
            "per_page": page.per_page,
            "pages": page.pages,
        }


@operation(
    "/orgs/{org_id}/members/actions",
    "post",
    "Run one action on many members",
    tag="members",
    body=s.MemberAction,
    response=s.ActionReport,
)
def member_actions(org_id: str, body: dict) -> Any:
    with _write() as session:
        org = principal().org(session, org_id)
        report = members.act_on_members(
            session, org, body["action"], body["member_ids"], principal().actor
        )
    return {
        "action": report.action,
        "done": report.done,
        "skipped": [{"member": m, "reason": r} for m, r in report.skipped],
    }


@operation(
    "/orgs/{org_id}/confirmations",
    "get",
    "The confirmation queue",
    tag="members",
    response=s.Confirmation,
    many=True,
)
def list_confirmations(org_id: str) -> Any:
    with _read() as session:
        org = principal().org(session, org_id)
        return [
            {"member": m, "fingerprint_phrase": p}
            for m, p in members.confirmation_queue(session, org)
        ]


# --- groups and collections -----------------------------------------------------------------------


@operation(
    "/orgs/{org_id}/groups",
    "get",
    "Groups with members and collection access",
    tag="groups",
    response=s.GroupOut,
    many=True,
)
def list_groups(org_id: str) -> Any:
    with _read() as session:
        org = principal().org(session, org_id)
        return [
            {
                "id": v.group.id,
                "name": v.group.name,
                "external_id": v.group.external_id,
                "provisioned": v.provisioned,
                "members": v.members,
                "access": [
                    {"collection_id": c.id, "collection": c.name, "permission": p}
                    for c, p in v.access
                ],
            }
            for v in groups.groups_overview(session, org)
        ]


@operation(
    "/orgs/{org_id}/collections",
    "get",
    "Collections and the groups that reach them",
    tag="groups",
    response=s.CollectionOut,
    many=True,
)
def list_collections(org_id: str) -> Any:
    with _read() as session:
        org = principal().org(session, org_id)
        return [
            {
                "id": v.collection.id,
                "name": v.collection.name,
                "access": [
                    {"group_id": g.id, "group": g.name, "permission": p} for g, p in v.access
                ],
            }
            for v in groups.collections_overview(session, org)
        ]


# --- held deprovisions ----------------------------------------------------------------------------


@operation(
    "/orgs/{org_id}/held", "get", "Held deprovisions", tag="held", response=s.HeldOut, many=True
)
def list_held(org_id: str) -> Any:
    with _read() as session:
        org = principal().org(session, org_id)
        return [
            {
                "id": h.id,
                "kind": h.kind,
                "member_id": h.member_id,
                "email": m.email if m else (h.change or {}).get("email"),
                "reason": h.reason,
                "actor": h.actor,
                "created_at": h.created_at,
                "change": h.change,
            }
            for h, m in held.pending_held(session, org)
        ]


@operation(
    "/orgs/{org_id}/held/{held_id}/approve",
    "post",
    "Approve a held deprovision",
    tag="held",
    response=s.HeldDecision,
    path_types={"held_id": "int"},
)
def approve_held(org_id: str, held_id: int) -> Any:
    with _write() as session:
        org = principal().org(session, org_id)
        outcome = held.approve(session, org, held_id, principal().actor)
    return {"id": held_id, "outcome": outcome}


@operation(
    "/orgs/{org_id}/held/{held_id}/drop",
    "post",
    "Drop a held deprovision",
    tag="held",
    response=s.HeldDecision,
    path_types={"held_id": "int"},
)
def drop_held(org_id: str, held_id: int) -> Any:
    with _write() as session:
        org = principal().org(session, org_id)
        held.drop(session, org, held_id, principal().actor)
    return {"id": held_id, "outcome": "dropped"}


def _decide_held(org_id: str, body: dict, decision: str) -> dict:
    body.pop("all")
    wanted = HeldFilter(**body)
    with _write() as session:
        org = principal().org(session, org_id)
        done = held.decide_matching(session, org, wanted, decision, principal().actor)
    return {"matched": done.approved + done.gone + done.dropped, **done.to_json()}


@operation(
    "/orgs/{org_id}/held/approve",
    "post",
    "Approve held changes in bulk: all, or by kind, group, date, member e-mail prefix",
    tag="held",
    body=s.HeldBulk,
    response=s.HeldBulkOut,
)
def approve_held_bulk(org_id: str, body: dict) -> Any:
    return _decide_held(org_id, body, "approve")


@operation(
    "/orgs/{org_id}/held/drop",
    "post",
    "Drop held changes in bulk (the members stay as they are until the directory changes them)",
    tag="held",
    body=s.HeldBulk,
    response=s.HeldBulkOut,
)
def drop_held_bulk(org_id: str, body: dict) -> Any:
    return _decide_held(org_id, body, "drop")


# --- mapping --------------------------------------------------------------------------------------


@operation(
    "/orgs/{org_id}/mapping", "get", "The mapping (YAML)", tag="mapping", response=s.MappingOut
)
def get_mapping(org_id: str) -> Any:
    with _read() as session:
        text, custom = mapping.current_mapping(session, principal().org(session, org_id))
    return {"text": text, "custom": custom}


@operation(
    "/orgs/{org_id}/mapping/plan",
    "post",
    "The Plan a new mapping causes (changes nothing)",
    tag="mapping",
    body=s.MappingText,
    response=s.PlanOut,
)
def plan_mapping(org_id: str, body: dict) -> Any:
    with _read() as session:
        org = principal().org(session, org_id)
        preview = mapping.preview_mapping(session, org, body["text"], principal().actor)
        return _plan(preview.plan, preview.digest)


@operation(
    "/orgs/{org_id}/mapping",
    "put",
    "Store a mapping and apply its Plan",
    tag="mapping",
    body=s.MappingApply,
    response=s.MappingApplied,
)
def apply_mapping(org_id: str, body: dict) -> Any:
    with _write() as session:
        org = principal().org(session, org_id)
        done = mapping.apply_mapping(
            session, org, body["text"], body["plan_digest"], principal().actor
        )
        return {"applied": done.applied, "held": done.held, "plan": _plan(done.plan)}


# --- SCIM settings --------------------------------------------------------------------------------


@operation(
    "/orgs/{org_id}/scim", "get", "SCIM base URL and tokens", tag="scim", response=s.ScimSettings
)
def get_scim(org_id: str) -> Any:
    with _read() as session:
        org = principal().org(session, org_id)
        return {
            "base_url": gateway().config.scim_base_url(org.id),
            "tokens": scim_settings.scim_tokens(session, org),
        }


@operation(
    "/orgs/{org_id}/scim/tokens",
    "post",
    "Create a SCIM token (shown once)",
    tag="scim",
    body=s.TokenCreate,
    response=s.IssuedTokenOut,
    status=201,
)
def create_scim_token(org_id: str, body: dict) -> Any:
    with _write() as session:
        org = principal().org(session, org_id)
        issued = scim_settings.create_scim_token(
            session, org, body["description"], principal().actor
        )
        return {"token": issued.token, "secret": issued.secret}


@operation(
    "/orgs/{org_id}/scim/tokens/{token_id}/rotate",
    "post",
    "Rotate a SCIM token: a new one (shown once), the old one revoked",
    tag="scim",
    response=s.IssuedTokenOut,
    status=201,
)
def rotate_scim_token(org_id: str, token_id: str) -> Any:
    with _write() as session:
        org = principal().org(session, org_id)
        issued = scim_settings.rotate_scim_token(session, org, token_id, principal().actor)
        return {"token": issued.token, "secret": issued.secret}


@operation(
    "/orgs/{org_id}/scim/tokens/{token_id}",
    "delete",
    "Revoke a SCIM token",
    tag="scim",
    response=s.TokenOut,
)
def revoke_scim_token(org_id: str, token_id: str) -> Any:
    with _write() as session:
        org = principal().org(session, org_id)
        return scim_settings.revoke_scim_token(session, org, token_id, principal().actor)


# --- LDAP connectors ------------------------------------------------------------------------------


@operation("/orgs/{org_id}/ldap", "get", "LDAP connectors", tag="ldap", response=s.Connectors)
def list_ldap(org_id: str) -> Any:
    with _read() as session:
        org = principal().org(session, org_id)
    found = connectors.list_connectors(org)
    return {"connectors": found.connectors, "problem": found.problem}


@operation(
    "/orgs/{org_id}/ldap/{name}/test",
    "post",
    "Test a connector step by step",
    tag="ldap",
    response=s.TestReport,
)
def test_ldap(org_id: str, name: str) -> Any:
    with _read() as session:
        org = principal().org(session, org_id)
    report = connectors.test_connector(org, name)
    return {
        "ok": report.ok,
        "steps": report.steps,
        "users": report.users,
        "groups": report.groups,
        "sample": report.sample,
        "warnings": report.warnings,
    }


def _sync(org_id: str, name: str, body: dict, *, dry_run: bool) -> Any:
    with _read() as session:
        org = principal().org(session, org_id)
    # A failed run (SyncFailed) answers 502 through gateway.http_errors.
    result = connectors.sync_now(gateway().db, org, name, dry_run=dry_run, full=body["full"])
    return {
        "connector": result.connector,
        "kind": result.kind,
        "dry_run": result.dry_run,
        "run_id": result.run_id,
        "counts": result.counts,
        "plan": _plan(result.plan) if result.plan is not None else None,
    }


@operation(
    "/orgs/{org_id}/ldap/{name}/plan",
    "post",
    "Dry run: what a sync would change",
    tag="ldap",
    body=s.SyncRequest,
    response=s.SyncOut,
)
def plan_ldap(org_id: str, name: str, body: dict) -> Any:
    return _sync(org_id, name, body, dry_run=True)


@operation(
    "/orgs/{org_id}/ldap/{name}/run",
    "post",
    "Sync now",
    tag="ldap",
    body=s.SyncRequest,
    response=s.SyncOut,
)
def run_ldap(org_id: str, name: str, body: dict) -> Any:
    return _sync(org_id, name, body, dry_run=False)


@operation(
    "/orgs/{org_id}/ldap/runs",
    "get",
    "Sync history with errors",
    tag="ldap",
    response=s.SyncRunOut,
    many=True,
)
def ldap_runs(org_id: str) -> Any:
    with _read() as session:
        return connectors.sync_history(session, principal().org(session, org_id))


# --- webhooks -------------------------------------------------------------------------------------


def _webhook(endpoint: Any, secret: str | None = None) -> dict[str, Any]:
    data = {
        "id": endpoint.id,
        "url": display_url(endpoint.url),
        "events": list(endpoint.events or []),
        "description": endpoint.description,
        "created_at": endpoint.created_at,
        "created_by": endpoint.created_by,
    }
    if secret is not None:
        data["secret"] = secret
    return data


@operation(
    "/orgs/{org_id}/webhooks",
    "get",
    "Webhook endpoints",
    tag="webhooks",
    response=s.WebhookOut,
    many=True,
)
def list_webhooks(org_id: str) -> Any:
    with _read() as session:
        org = principal().org(session, org_id)
        return [_webhook(e) for e in webhooks.list_endpoints(session, org)]


@operation(
    "/orgs/{org_id}/webhooks",
    "post",
    "Add a webhook endpoint (its signing secret is in this answer only)",
    tag="webhooks",
    body=s.WebhookCreate,
    response=s.WebhookCreated,
    status=201,
)
def create_webhook(org_id: str, body: dict) -> Any:
    with _write() as session:
        org = principal().org(session, org_id)
        added = webhooks.add_endpoint(
            session,
            org,
            body["url"],
            secret_key=gateway().config.secret_key,
            allow_private=gateway().config.webhook_allow_private,
            actor=principal().actor,
            events=body["events"],
            description=body["description"],
        )
        return _webhook(added.endpoint, added.secret)


@operation(
    "/orgs/{org_id}/webhooks/{webhook_id}",
    "delete",
    "Remove a webhook endpoint",
    tag="webhooks",
    status=204,
)
def delete_webhook(org_id: str, webhook_id: str) -> Any:
    with _write() as session:
        org = principal().org(session, org_id)
        webhooks.remove_endpoint(session, org, webhook_id, actor=principal().actor)


# --- deliveries and events ------------------------------------------------------------------------


@operation(
    "/orgs/{org_id}/deliveries",
    "get",
    "Outgoing e-mails and webhooks",
    tag="deliveries",
    query=s.DeliveryQuery,
    response=s.DeliveryOut,
    many=True,
)
def list_deliveries(org_id: str, query: dict) -> Any:
    with _read() as session:
        org = principal().org(session, org_id)
        return deliveries.deliveries(session, org, kind=query.get("kind"))


@operation(
    "/orgs/{org_id}/deliveries/{message_id}/resend",
    "post",
    "Queue a failed message again",
    tag="deliveries",
    response=s.DeliveryOut,
    path_types={"message_id": "int"},
)
def resend_delivery(org_id: str, message_id: int) -> Any:
    with _write() as session:
        org = principal().org(session, org_id)
        return deliveries.redeliver(session, org, message_id, principal().actor)


def _event_filter(query: dict, limit: int) -> events.EventFilter:
    return events.EventFilter(
        type=query.get("type"),
        actor=query.get("actor"),
        target_id=query.get("target_id"),
        since=query.get("since"),
        until=query.get("until"),
        before_id=query.get("before_id"),
        limit=limit,
    )


@operation(
    "/orgs/{org_id}/events",
    "get",
    "The event log, newest first",
    tag="events",
    query=s.EventQuery,
    response=s.EventOut,
    many=True,
)
def list_events(org_id: str, query: dict) -> Any:
    with _read() as session:
        org = principal().org(session, org_id)
        return events.find_events(session, org, _event_filter(query, query["limit"]))


@operation(
    "/orgs/{org_id}/events.csv",
    "get",
    "The event log as CSV (every match)",
    tag="events",
    query=s.EventQuery,
)
def export_events(org_id: str, query: dict) -> Any:
    with _read() as session:
        org = principal().org(session, org_id)
        text = "".join(events.events_csv(session, org, _event_filter(query, 0)))
    return Response(text, mimetype="text/csv")


# --- readiness and accounts -----------------------------------------------------------------------


@operation(
    "/readiness", "get", "The `scimgate doctor` checks", tag="readiness", response=s.Readiness
)
def get_readiness() -> Any:
    principal().require_provider()
    gw = gateway()
    checks = readiness.run_checks(gw.db, gw.config)
    return {"ok": all(c.status != readiness.FAIL for c in checks), "checks": checks}


def _admin(a: Any, org_ids: list[str]) -> dict[str, Any]:
    return {
        "id": a.id,
        "email": a.email,
        "name": a.name,
        "role": a.role,
        "status": a.status,
        "org_ids": org_ids,
        "created_at": a.created_at,
        "last_login_at": a.last_login_at,
    }


@operation("/admins", "get", "Console accounts", tag="accounts", response=s.AdminOut, many=True)
def list_admins() -> Any:
    principal().require_accounts()
    with _read() as session:
        return [_admin(a, o) for a, o in accounts.list_admins(session)]


@operation(
    "/admins",
    "post",
    "Invite a console account",
    tag="accounts",
    body=s.AdminInvite,
    response=s.AdminOut,
    status=201,
)
def invite_admin(body: dict) -> Any:
    principal().require_accounts()
    with _write() as session:
        a = accounts.invite_admin(
            session,
            body["email"],
            role=body["role"],
            name=body["name"],
            org_ids=body["org_ids"],
            actor=principal().actor,
        )
        return _admin(a, sorted(set(body["org_ids"])) if a.role == "org_admin" else [])


@operation(
    "/admins/{admin_id}/confirm",
    "post",
    "Confirm an account that accepted",
    tag="accounts",
    response=s.AdminOut,
)
def confirm_admin(admin_id: str) -> Any:
    principal().require_accounts()
    with _write() as session:
        a = accounts.confirm_admin(session, admin_id, actor=principal().actor)
        org_ids = dict(accounts.list_admins(session)).get(a, [])
        return _admin(a, org_ids)


@operation("/admins/{admin_id}", "delete", "Remove an account", tag="accounts", status=204)
def remove_admin(admin_id: str) -> Any:
    principal().require_accounts()
    with _write() as session:
        accounts.remove_admin(session, admin_id, actor=principal().actor)
    return None

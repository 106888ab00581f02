"""marshmallow schemas of the admin API: what each endpoint reads and returns. The OpenAPI
document is generated from these same schemas, so it cannot drift from what the API does.

Does: shapes, types and limits (lengths fit the columns, numbers fit the integers). Does not:
domain rules (the service functions check those).
"""

from __future__ import annotations

from datetime import UTC

from marshmallow import Schema, ValidationError, fields, validate, validates_schema

from gateway.admin.members import ACTIONS, PAGE_SIZES
from gateway.provisioning.guard import KIND_FILTERS
from gateway.store.models import ADMIN_ROLES, MEMBER_ROLES, MEMBER_STATUSES, ORG_PLANS

SEAT_RANGE = validate.Range(min=0, max=10_000_000)
ID = {"validate": validate.Length(min=1, max=64)}


class _Strict(Schema):
    class Meta:
        ordered = True


# --- errors ---------------------------------------------------------------------------------------


class ErrorDetail(_Strict):
    type = fields.String(required=True, metadata={"example": "not_found"})
    message = fields.String(required=True)
    field_errors = fields.Dict(keys=fields.String(), values=fields.Raw(), data_key="fields")


class Error(_Strict):
    error = fields.Nested(ErrorDetail, required=True)


# --- clients --------------------------------------------------------------------------------------


class Seats(_Strict):
    assigned = fields.Integer(required=True)
    used = fields.Integer(required=True)
    remaining = fields.Integer(required=True)
    limit = fields.Integer(allow_none=True)


class SyncRunOut(_Strict):
    id = fields.Integer(required=True)
    connector = fields.String(required=True)
    kind = fields.String(required=True)
    status = fields.String(required=True)
    started_at = fields.DateTime(required=True)
    finished_at = fields.DateTime(allow_none=True)
    counts = fields.Dict(keys=fields.String(), values=fields.Raw())
    error = fields.String(allow_none=True)


class Client(_Strict):
    id = fields.String(required=True)
    name = fields.String(required=True)
    plan = fields.String(required=True)
    seats = fields.Nested(Seats, required=True)
    pending_confirmations = fields.Integer(required=True)
    held_deprovisions = fields.Integer(required=True)
    last_sync = fields.Nested(SyncRunOut, allow_none=True)
    scim_base_url = fields.String(required=True)


class ClientCreate(_Strict):
    name = fields.String(required=True, validate=validate.Length(min=1, max=200))
    plan = fields.String(load_default="teams", validate=validate.OneOf(ORG_PLANS))
    seats = fields.Integer(load_default=0, validate=SEAT_RANGE)
    seat_limit = fields.Integer(load_default=None, allow_none=True, validate=SEAT_RANGE)
    billing_email = fields.Email(
        load_default=None, allow_none=True, validate=validate.Length(max=320)
    )
    owner_email = fields.Email(
        load_default=None, allow_none=True, validate=validate.Length(max=320)
    )


# --- members --------------------------------------------------------------------------------------


class MemberOut(_Strict):
    id = fields.String(required=True)
    email = fields.String(required=True)
    name = fields.String(allow_none=True)
    external_id = fields.String(allow_none=True)
    role = fields.String(required=True)
    status = fields.String(required=True)
    source = fields.String(allow_none=True)
    waiting_for_seat = fields.Boolean(required=True)
    invitation_expired = fields.Boolean(required=True)
    invited_at = fields.DateTime(allow_none=True)
    invitation_expires_at = fields.DateTime(allow_none=True)
    accepted_at = fields.DateTime(allow_none=True)
    confirmed_at = fields.DateTime(allow_none=True)
    confirmed_by = fields.String(allow_none=True)
    revoked_at = fields.DateTime(allow_none=True)
    created_at = fields.DateTime(required=True)


class MemberQuery(_Strict):
    status = fields.String(validate=validate.OneOf(MEMBER_STATUSES))
    role = fields.String(validate=validate.OneOf(MEMBER_ROLES))
    source = fields.String(validate=validate.Length(max=100))
    q = fields.String(validate=validate.Length(max=320))
    page = fields.Integer(load_default=1, validate=validate.Range(min=1, max=1_000_000))
    per_page = fields.Integer(load_default=50, validate=validate.Range(min=1, max=max(PAGE_SIZES)))


class MemberPage(_Strict):
    members = fields.List(fields.Nested(MemberOut), required=True)
    total = fields.Integer(required=True)
    page = fields.Integer(required=True)
    per_page = fields.Integer(required=True)
    pages = fields.Integer(required=True)


class MemberAction(_Strict):
    action = fields.String(required=True, validate=validate.OneOf(list(ACTIONS)))
    member_ids = fields.List(
        fields.String(**ID), required=True, validate=validate.Length(min=1, max=1000)
    )


class Skipped(_Strict):
    member = fields.String(required=True)
    reason = fields.String(required=True)


class ActionReport(_Strict):
    action = fields.String(required=True)
    done = fields.List(fields.String(), required=True)
    skipped = fields.List(fields.Nested(Skipped), required=True)


class Confirmation(_Strict):
    member = fields.Nested(MemberOut, required=True)
    fingerprint_phrase = fields.String(allow_none=True)


# --- groups and collections -----------------------------------------------------------------------


class MemberRef(_Strict):
    id = fields.String(required=True)
    email = fields.String(required=True)


class CollectionAccess(_Strict):
    collection_id = fields.String(required=True)
    collection = fields.String(required=True)
    permission = fields.String(required=True)


class GroupOut(_Strict):
    id = fields.String(required=True)
    name = fields.String(required=True)
    external_id = fields.String(allow_none=True)
    provisioned = fields.Boolean(required=True)
    members = fields.List(fields.Nested(MemberRef), required=True)
    access = fields.List(fields.Nested(CollectionAccess), required=True)


class GroupAccess(_Strict):
    group_id = fields.String(required=True)
    group = fields.String(required=True)
    permission = fields.String(required=True)


class CollectionOut(_Strict):
    id = fields.String(required=True)
    name = fields.String(required=True)
    access = fields.List(fields.Nested(GroupAccess), required=True)


# --- held deprovisions ----------------------------------------------------------------------------


class HeldOut(_Strict):
    id = fields.Integer(required=True)
    kind = fields.String(required=True)
    member_id = fields.String(allow_none=True)
    email = fields.String(allow_none=True)
    reason = fields.String(required=True)
    actor = fields.String(required=True)
    created_at = fields.DateTime(required=True)
    change = fields.Dict(keys=fields.String(), values=fields.Raw())


class HeldDecision(_Strict):
    id = fields.Integer(required=True)
    outcome = fields.String(required=True, validate=validate.OneOf(["approved", "dropped"]))


class HeldBulk(_Strict):
    """Which pending held changes to decide: `all`, or a filter (the fields combine with AND)."""

    all = fields.Boolean(load_default=False, metadata={"description": "every pending one"})
    kind = fields.String(
        validate=validate.OneOf(list(KIND_FILTERS)),
        metadata={"description": "deprovision, revoke, remove, group-removal, group-deletion"},
    )
    group = fields.String(validate=validate.Length(min=1, max=400))
    created_before = fields.AwareDateTime(default_timezone=UTC)
    created_after = fields.AwareDateTime(default_timezone=UTC)
    email_prefix = fields.String(validate=validate.Length(min=1, max=320))

    @validates_schema
    def _says_which(self, data: dict, **kwargs: object) -> None:
        if not data.get("all") and len(data) <= 1:
            raise ValidationError("say which held changes: all: true, or a filter")


class HeldBulkOut(_Strict):
    matched = fields.Integer(
        required=True, metadata={"description": "pending ones the filter took"}
    )
    approved = fields.Integer(required=True, metadata={"description": "applied"})
    gone = fields.Integer(
        required=True, metadata={"description": "dropped: the directory no longer asks for them"}
    )
    dropped = fields.Integer(required=True, metadata={"description": "dropped by this call"})


# --- mapping --------------------------------------------------------------------------------------


class MappingOut(_Strict):
    text = fields.String(required=True)
    custom = fields.Boolean(required=True, metadata={"description": "false: the defaults"})


class MappingText(_Strict):
    text = fields.String(required=True, validate=validate.Length(min=1, max=256 * 1024))


class MappingApply(MappingText):
    plan_digest = fields.String(
        required=True,
        validate=validate.Length(equal=64),
        metadata={"description": "the `digest` of the Plan you read (POST .../mapping/plan)"},
    )


class PlanChange(_Strict):
    kind = fields.String(required=True)
    target = fields.String(required=True)
    detail = fields.String(required=True)


class PlanOut(_Strict):
    counts = fields.Dict(keys=fields.String(), values=fields.Integer(), required=True)
    changes = fields.List(fields.Nested(PlanChange), required=True)
    problems = fields.List(fields.String(), required=True)
    skipped = fields.List(fields.Dict(keys=fields.String(), values=fields.Raw()), required=True)
    digest = fields.String(allow_none=True)


class MappingApplied(_Strict):
    applied = fields.Integer(required=True)
    held = fields.Integer(required=True)
    plan = fields.Nested(PlanOut, required=True)


# --- SCIM settings and API keys -------------------------------------------------------------------


class TokenOut(_Strict):
    id = fields.String(required=True)
    prefix = fields.String(required=True)
    description = fields.String(allow_none=True)
    created_at = fields.DateTime(required=True)
    last_used_at = fields.DateTime(allow_none=True)
    revoked_at = fields.DateTime(allow_none=True)


class TokenCreate(_Strict):
    description = fields.String(
        load_default=None, allow_none=True, validate=validate.Length(max=200)
    )


class IssuedTokenOut(_Strict):
    token = fields.Nested(TokenOut, required=True)
    secret = fields.String(required=True, metadata={"description": "shown only this once"})


class ScimSettings(_Strict):
    base_url = fields.String(required=True)
    tokens = fields.List(fields.Nested(TokenOut), required=True)


# --- LDAP connectors ------------------------------------------------------------------------------


class ConnectorOut(_Strict):
    name = fields.String(required=True)
    servers = fields.List(fields.String(), required=True)
    base_dn = fields.String(required=True)
    interval = fields.Integer(required=True)
    delta = fields.String(required=True)


class Connectors(_Strict):
    connectors = fields.List(fields.Nested(ConnectorOut), required=True)
    problem = fields.String(allow_none=True)


class TestStep(_Strict):
    name = fields.String(required=True)
    ok = fields.Boolean(required=True)
    detail = fields.String(required=True)


class TestReport(_Strict):
    ok = fields.Boolean(required=True)
    steps = fields.List(fields.Nested(TestStep), required=True)
    users = fields.Integer(required=True)
    groups = fields.Integer(required=True)
    sample = fields.List(fields.String(), required=True)
    warnings = fields.List(fields.String(), required=True)


class SyncRequest(_Strict):
    full = fields.Boolean(load_default=False)


class SyncOut(_Strict):
    connector = fields.String(required=True)
    kind = fields.String(required=True)
    dry_run = fields.Boolean(required=True)
    run_id = fields.Integer(allow_none=True)
    counts = fields.Dict(keys=fields.String(), values=fields.Raw(), required=True)
    plan = fields.Nested(PlanOut, allow_none=True)


# --- webhooks -------------------------------------------------------------------------------------


class WebhookOut(_Strict):
    id = fields.String(required=True)
    url = fields.String(required=True)
    events = fields.List(fields.String(), required=True)
    description = fields.String(allow_none=True)
    created_at = fields.DateTime(required=True)
    created_by = fields.String(required=True)


class WebhookCreate(_Strict):
    url = fields.String(required=True, validate=validate.Length(min=1, max=2000))
    events = fields.List(
        fields.String(validate=validate.Length(min=1, max=100)),
        load_default=list,
        validate=validate.Length(max=50),
    )
    description = fields.String(
        load_default=None, allow_none=True, validate=validate.Length(max=200)
    )


class WebhookCreated(WebhookOut):
    secret = fields.String(
        required=True, metadata={"description": "The signing secret; shown only this once."}
    )


# --- deliveries and events ------------------------------------------------------------------------


class DeliveryQuery(_Strict):
    kind = fields.String(validate=validate.Length(max=30))


class DeliveryOut(_Strict):
    id = fields.Integer(required=True)
    kind = fields.String(required=True)
    message_id = fields.String(required=True)
    status = fields.String(required=True)
    attempts = fields.Integer(required=True)
    created_at = fields.DateTime(required=True)
    next_attempt_at = fields.DateTime(required=True)
    sent_at = fields.DateTime(allow_none=True)
    last_error = fields.String(allow_none=True)


class EventQuery(_Strict):
    type = fields.String(validate=validate.Length(max=100))
    actor = fields.String(validate=validate.Length(max=200))
    target_id = fields.String(validate=validate.Length(max=64))
    since = fields.AwareDateTime(default_timezone=None)
    until = fields.AwareDateTime(default_timezone=None)
    before_id = fields.Integer(validate=validate.Range(min=1, max=2**63 - 1))
    limit = fields.Integer(load_default=100, validate=validate.Range(min=1, max=1000))


class EventOut(_Strict):
    id = fields.Integer(required=True)
    at = fields.DateTime(required=True)
    actor = fields.String(required=True)
    type = fields.String(required=True)
    target_type = fields.String(allow_none=True)
    target_id = fields.String(allow_none=True)
    detail = fields.Dict(keys=fields.String(), values=fields.Raw(), required=True)


# --- readiness and accounts -----------------------------------------------------------------------


class CheckOut(_Strict):
    name = fields.String(required=True)
    status = fields.String(required=True, validate=validate.OneOf(["ok", "warn", "fail"]))
    detail = fields.String(required=True)


class Readiness(_Strict):
    ok = fields.Boolean(required=True, metadata={"description": "no check failed"})
    checks = fields.List(fields.Nested(CheckOut), required=True)


class AdminOut(_Strict):
    id = fields.String(required=True)
    email = fields.String(required=True)
    name = fields.String(allow_none=True)
    role = fields.String(required=True)
    status = fields.String(required=True)
    org_ids = fields.List(fields.String(), required=True)
    created_at = fields.DateTime(required=True)
    last_login_at = fields.DateTime(allow_none=True)


class AdminInvite(_Strict):
    email = fields.Email(required=True, validate=validate.Length(max=320))
    role = fields.String(required=True, validate=validate.OneOf(ADMIN_ROLES))
    name = fields.String(load_default=None, allow_none=True, validate=validate.Length(max=200))
    org_ids = fields.List(
        fields.String(**ID), load_default=list, validate=validate.Length(max=1000)
    )

"""SCIM 2.0 over HTTP under `/scim/v2/<org id>/` (RFC 7644): routing, bearer auth per
organization, bodies and query parameters in, SCIM JSON and headers out, every error as a SCIM
error body. The operations themselves live in service.py, Bulk in bulk.py.
"""

from __future__ import annotations

import json
import logging
import re
from typing import Any

from flask import Blueprint, Response, current_app, g, request
from werkzeug.exceptions import HTTPException

from gateway.app import gateway
from gateway.errors import Unauthorized as TokenRejected
from gateway.scim import discovery
from gateway.scim.bulk import run_bulk
from gateway.scim.bulk_share import BulkShare, bulks_per_org
from gateway.scim.errors import (
    InvalidFilter,
    InvalidSyntax,
    InvalidValue,
    MethodNotAllowed,
    NotFound,
    PayloadTooLarge,
    ScimError,
    Unauthorized,
    UnsupportedMediaType,
)
from gateway.scim.limits import ACCEPTED_CONTENT_TYPES, MAX_JSON_DEPTH, shorten
from gateway.scim.resources import parse_attribute_list
from gateway.scim.schema import RESOURCE_TYPES, SCHEMAS, ResourceType
from gateway.scim.service import Query, ScimService
from gateway.tokens import needs_touch, touch_token, verify_token

log = logging.getLogger(__name__)
scim = Blueprint("scim", __name__, url_prefix="/scim/v2/<org_id>")
SCIM_JSON = "application/scim+json"
SEARCH_SCHEMA = "urn:ietf:params:scim:api:messages:2.0:SearchRequest"
ENDPOINTS = {rt.endpoint.strip("/"): rt for rt in RESOURCE_TYPES.values()}


def scim_response(body: Any, status: int = 200, headers: dict[str, str] | None = None) -> Response:
    data = "" if body is None else json.dumps(body)
    response = Response(data, status=status, content_type=SCIM_JSON)
    for key, value in (headers or {}).items():
        response.headers[key] = value
    return response


@scim.errorhandler(ScimError)
def _scim_error(exc: ScimError) -> Response:
    if exc.scim_type == "invalidFilter":
        # The detail quotes at most a short piece of the filter; the filter itself, cut short
        # (it may be 20,000 characters and carry personal data), only at debug level.
        log.debug("filter refused: %s: %s", exc.detail, shorten(request.args.get("filter", "")))
    headers = {}
    if exc.status == 401:
        headers["WWW-Authenticate"] = 'Bearer realm="scimgate"'
    retry_after = getattr(exc, "retry_after", None)
    if retry_after:
        headers["Retry-After"] = str(retry_after)
    return scim_response(exc.body(), exc.status, headers)


# Routing failures happen before a blueprint is chosen, so these handlers sit on the app and
# answer in SCIM only below /scim/.
@scim.app_errorhandler(404)
def _not_found(exc: HTTPException) -> Response | HTTPException:
    if not request.path.startswith("/scim/"):
        return exc
    return _scim_error(NotFound("no such SCIM endpoint"))


@scim.app_errorhandler(405)
def _not_allowed(exc: HTTPException) -> Response | HTTPException:
    if not request.path.startswith("/scim/"):
        return exc
    return _scim_error(MethodNotAllowed(f"{request.method} is not supported on this endpoint"))


# Every other error (the gateway's own families, HTTP errors such as 413, the database being
# away, bugs) is answered by the app-level handlers of gateway.http_errors, with a SCIM body.


# --- authentication ----------------------------------------------------------------------------


@scim.url_value_preprocessor
def _org_from_url(_endpoint: str | None, values: dict[str, Any] | None) -> None:
    g.org_id = (values or {}).pop("org_id", None)


@scim.before_request
def _authenticate() -> None:
    header = request.headers.get("Authorization", "").strip()
    # Some IdPs send the bare token without the word Bearer.
    raw = header[7:].strip() if header[:7].lower() == "bearer " else header
    if not raw:
        raise Unauthorized("a bearer token is required: Authorization: Bearer <token>")
    gw = gateway()
    checked = gw.tokens.get(raw)
    if checked is None:
        checked = _check_token(gw, raw)
    # A token of another organization gets the same answer as a wrong one: nothing about the
    # organization in the URL is revealed.
    if checked[1] != g.org_id:
        raise Unauthorized("the bearer token is not valid")


def _check_token(gw, raw: str) -> tuple[str, str | None]:  # type: ignore[no-untyped-def]
    """Look the token up in the database (and note its use at most once a minute)."""
    try:
        with gw.db.read() as session:
            token = verify_token(session, raw, kind="scim")
            stale = needs_touch(token)
    except TokenRejected:
        raise Unauthorized("the bearer token is not valid") from None
    if stale:
        with gw.db.transaction() as session:
            touch_token(session, token.id)
    gw.tokens.put(raw, token)
    return token.id, token.org_id


# --- request helpers ----------------------------------------------------------------------------


def base_url() -> str:
    gw = gateway()
    # Behind trusted proxies the URL the client used (X-Forwarded-* through ProxyFix) wins.
    root = request.url_root.rstrip("/") if gw.config.trust_proxy else gw.config.public_url
    return f"{root}/scim/v2/{g.org_id}"


_JSON_STRING = re.compile(rb'"(?:[^"\\]|\\.)*"')
_JSON_BRACKET = re.compile(rb"[\[\]{}]")


def _nests_deeper(raw: bytes, limit: int) -> bool:
    """Whether the JSON text nests arrays/objects deeper than `limit`, found without parsing:
    json.loads itself would build (or overflow the stack on) a million-deep document, and every
    walk over the parsed value after it recurses."""
    if raw.count(b"[") + raw.count(b"{") <= limit:
        return False
    depth = 0
    for match in _JSON_BRACKET.finditer(_JSON_STRING.sub(b'""', raw)):
        if match[0] in (b"[", b"{"):
            depth += 1
            if depth > limit:
                return True
        else:
            depth -= 1
    return False


def _no_constant(name: str) -> Any:
    raise ValueError(f"{name} is not JSON (RFC 8259 has no NaN or Infinity)")


def _check_content_type() -> None:
    """RFC 7644 §3.1: bodies are application/scim+json; application/json is accepted too (Okta
    and Entra ID send one or the other), each with any parameters such as charset."""
    if request.mimetype not in ACCEPTED_CONTENT_TYPES:
        sent = request.headers.get("Content-Type") or "no Content-Type"
        accepted = " or ".join(ACCEPTED_CONTENT_TYPES)
        raise UnsupportedMediaType(f"the body must be sent as {accepted}, not {shorten(sent, 80)}")


def json_body() -> Any:
    _check_content_type()
    limit = gateway().config.scim_max_payload
    if request.content_length is not None and request.content_length > limit:
        raise PayloadTooLarge(f"the request body is larger than {limit} bytes")
    raw = request.get_data(cache=False)
    if len(raw) > limit:
        raise PayloadTooLarge(f"the request body is larger than {limit} bytes")
    if not raw.strip():
        raise InvalidSyntax("the request needs a JSON body")
    if _nests_deeper(raw, MAX_JSON_DEPTH):
        raise InvalidSyntax(
            f"the body nests arrays and objects deeper than {MAX_JSON_DEPTH} levels"
        )
    try:
        return json.loads(raw, parse_constant=_no_constant)
    except (ValueError, UnicodeDecodeError, RecursionError) as exc:
        raise InvalidSyntax(f"the body is not valid JSON: {shorten(str(exc), 200)}") from None


def _int_param(params: dict, name: str, default: int | None) -> int | None:
    value = params.get(name)
    if value in (None, ""):
        return default
    if isinstance(value, bool):
        raise InvalidValue(f"{name} must be an integer, got {value!r}")
    try:
        return int(value)
    except (TypeError, ValueError, OverflowError):
        raise InvalidValue(f"{name} must be an integer, got {shorten(repr(value), 40)}") from None


_NO_QUERY = Query()


def _text_param(params: dict, name: str) -> str | None:
    """A string parameter (a SearchRequest body may carry anything in it)."""
    value = params.get(name)
    if value in (None, ""):
        return None
    if not isinstance(value, str):
        raise InvalidValue(f"{name} must be a string")
    return value


def query_from(params: dict) -> Query:
    if not params:  # a GET by id, most writes
        return _NO_QUERY
    sort_order = _text_param(params, "sortOrder") or "ascending"
    if sort_order.lower() not in {"ascending", "descending"}:
        raise InvalidValue("sortOrder must be ascending or descending")
    filter_text = params.get("filter")
    if filter_text not in (None, "") and not isinstance(filter_text, str):
        raise InvalidFilter("filter must be a string")
    attributes, excluded = params.get("attributes"), params.get("excludedAttributes")
    if not all(isinstance(v, str | list | None) for v in (attributes, excluded)):
        raise InvalidValue("attributes and excludedAttributes are lists of attribute names")
    # RFC 7644 §3.4.2.4: a startIndex below 1 is taken as 1; a count below 0 as 0, and one above
    # maxResults as maxResults (the service clamps both).
    return Query(
        filter=filter_text or None,
        sort_by=_text_param(params, "sortBy"),
        sort_order=sort_order,
        start_index=max(_int_param(params, "startIndex", 1) or 1, 1),
        count=_int_param(params, "count", None),
        attributes=tuple(parse_attribute_list(attributes)),
        excluded=tuple(parse_attribute_list(excluded)),
    )


def service(session) -> ScimService:  # type: ignore[no-untyped-def]
    gw = gateway()
    config = gw.config
    return ScimService(
        session,
        g.org_id,
        base_url(),
        default_count=config.scim_default_count,
        max_results=config.scim_max_results,
        queued=gw.drainer.wake if config.scim_apply == "queued" else None,
    )


def resource_type(endpoint: str) -> ResourceType:
    rtype = ENDPOINTS.get(endpoint)
    if rtype is None:
        raise NotFound(f"no SCIM endpoint /{endpoint}")
    return rtype


def wants_body() -> bool:
    return "attributes" in request.args or "excludedAttributes" in request.args


# --- discovery (RFC 7644 §4) ----------------------------------------------------------------------


@scim.route("/ServiceProviderConfig", methods=["GET", "POST", "PUT", "PATCH", "DELETE"])
def service_provider_config() -> Response:
    _only_get()
    return scim_response(discovery.service_provider_config(gateway().config, base_url()))


@scim.route("/ResourceTypes", methods=["GET", "POST", "PUT", "PATCH", "DELETE"])
def resource_types() -> Response:
    _only_get()
    items = discovery.resource_types(base_url())
    return scim_response(_list(items))


@scim.route("/ResourceTypes/<name>", methods=["GET", "POST", "PUT", "PATCH", "DELETE"])
def resource_type_by_id(name: str) -> Response:
    _only_get()
    for item in discovery.resource_types(base_url()):
        if item["id"] == name:
            return scim_response(item)
    raise NotFound(f"no resource type {name}")


@scim.route("/Schemas", methods=["GET", "POST", "PUT", "PATCH", "DELETE"])
def schemas() -> Response:
    _only_get()
    return scim_response(_list(discovery.schemas(base_url())))


@scim.route("/Schemas/<path:schema_id>", methods=["GET", "POST", "PUT", "PATCH", "DELETE"])
def schema_by_id(schema_id: str) -> Response:
    _only_get()
    if schema_id not in SCHEMAS:
        raise NotFound(f"no schema {schema_id}")
    return scim_response(SCHEMAS[schema_id].to_scim(f"{base_url()}/Schemas/{schema_id}"))


def _only_get() -> None:
    if request.method != "GET":
        raise MethodNotAllowed(f"{request.path.rsplit('/', 1)[-1]} is read-only")


def _list(items: list[dict]) -> dict:
    return {
        "schemas": ["urn:ietf:params:scim:api:messages:2.0:ListResponse"],
        "totalResults": len(items),
        "startIndex": 1,
        "itemsPerPage": len(items),
        "Resources": items,
    }


# --- Users and Groups ---------------------------------------------------------------------------


@scim.get("/<endpoint>")
def list_resources(endpoint: str) -> Response:
    rtype = resource_type(endpoint)
    query = query_from(request.args)
    with gateway().db.lookup() as connection:
        return scim_response(service(connection).search(rtype, query))


@scim.post("/.search")
def search_root() -> Response:
    # RFC 7644 §3.4.3 lets a server search every resource type at once; we do not (one page
    # over two tables with one sort order), and §3.12 says to answer 501 for that.
    raise ScimError(
        "search at the root is not supported: POST /Users/.search or /Groups/.search",
        status=501,
    )


@scim.post("/<endpoint>/.search")
def search_resources(endpoint: str) -> Response:
    rtype = resource_type(endpoint)
    body = json_body()
    if not isinstance(body, dict):
        raise InvalidSyntax("a SearchRequest must be a JSON object")
    if SEARCH_SCHEMA not in (body.get("schemas") or []):
        raise InvalidSyntax(f'a SearchRequest needs "schemas": ["{SEARCH_SCHEMA}"]')
    params = {k: v for k, v in body.items() if k != "schemas"}
    for key in ("attributes", "excludedAttributes"):
        if isinstance(params.get(key), list):
            params[key] = ",".join(str(v) for v in params[key])
    query = query_from(params)
    with gateway().db.lookup() as connection:
        return scim_response(service(connection).search(rtype, query))


@scim.post("/<endpoint>")
def create_resource(endpoint: str) -> Response:
    rtype = resource_type(endpoint)
    body = json_body()
    query = query_from(request.args)
    outcome = gateway().db.run(lambda session: service(session).create(rtype, body, query))
    location = f"{base_url()}{rtype.endpoint}/{outcome.row.id}"
    return scim_response(outcome.document, 201, {"Location": location, "ETag": outcome.etag})


@scim.get("/<endpoint>/<resource_id>")
def get_resource(endpoint: str, resource_id: str) -> Response:
    rtype = resource_type(endpoint)
    query = query_from(request.args)
    with gateway().db.lookup() as connection:
        outcome = service(connection).get(rtype, resource_id, query)
    if_none_match = request.headers.get("If-None-Match")
    if if_none_match and outcome.etag in {t.strip() for t in if_none_match.split(",")}:
        return Response(status=304, headers={"ETag": outcome.etag})
    return scim_response(outcome.document, 200, {"ETag": outcome.etag})


@scim.put("/<endpoint>/<resource_id>")
def replace_resource(endpoint: str, resource_id: str) -> Response:
    rtype = resource_type(endpoint)
    body = json_body()
    query = query_from(request.args)
    if_match = request.headers.get("If-Match")
    outcome = gateway().db.run(
        lambda session: service(session).replace(
            rtype, resource_id, body, if_match=if_match, query=query
        )
    )
    return scim_response(outcome.document, 200, {"ETag": outcome.etag})


@scim.patch("/<endpoint>/<resource_id>")
def patch_resource(endpoint: str, resource_id: str) -> Response:
    rtype = resource_type(endpoint)
    body = json_body()
    query = query_from(request.args)
    # Users answer with the resource; Groups with 204 unless asked for attributes, so a change
    # to one member of a huge group never reads the whole member list (RFC 7644 §3.5.2).
    want = rtype.name == "User" or wants_body()
    if_match = request.headers.get("If-Match")
    outcome = gateway().db.run(
        lambda session: service(session).patch(
            rtype, resource_id, body, if_match=if_match, query=query, want_body=want
        )
    )
    if outcome.document is None:
        return Response(status=204, headers={"ETag": outcome.etag})
    return scim_response(outcome.document, 200, {"ETag": outcome.etag})


@scim.delete("/<endpoint>/<resource_id>")
def delete_resource(endpoint: str, resource_id: str) -> Response:
    rtype = resource_type(endpoint)
    if_match = request.headers.get("If-Match")
    gateway().db.run(lambda session: service(session).delete(rtype, resource_id, if_match=if_match))
    return Response(status=204)


# --- Bulk (RFC 7644 §3.7) -------------------------------------------------------------------------


@scim.post("/Bulk")
def bulk() -> Response:
    body = json_body()
    config = gateway().config
    # One per process (made on first use, after gunicorn's fork): the threads it protects are
    # this process's.
    share: BulkShare | None = current_app.extensions.get("scim_bulk_share")
    if share is None:
        share = current_app.extensions.setdefault(
            "scim_bulk_share", BulkShare(bulks_per_org(current_app.config))
        )
    with share.slot(g.org_id):
        result = run_bulk(
            body,
            db=gateway().db,
            make_service=service,
            max_operations=config.scim_bulk_max_operations,
        )
    return scim_response(result, 200)

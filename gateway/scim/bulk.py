"""SCIM Bulk (RFC 7644 §3.7): many operations in one request, each in a transaction of its own,
with `bulkId` references between them, `failOnErrors`, and the advertised limits enforced.

Does: run the operations through the same ScimService as single requests. Does not: parse HTTP.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Callable
from typing import Any

from gateway.errors import database_unavailable
from gateway.scim.errors import InvalidSyntax, InvalidValue, NotFound, PayloadTooLarge, ScimError
from gateway.scim.schema import RESOURCE_TYPES
from gateway.store import Database

log = logging.getLogger(__name__)
BULK_REQUEST = "urn:ietf:params:scim:api:messages:2.0:BulkRequest"
BULK_RESPONSE = "urn:ietf:params:scim:api:messages:2.0:BulkResponse"
_BULK_REF = re.compile(r"^bulkId:(.+)$")
_ENDPOINTS = {rt.endpoint.strip("/"): rt for rt in RESOURCE_TYPES.values()}


class _Unresolved(Exception):
    """An operation refers to a bulkId whose operation has not run (yet)."""


def _substitute(value: Any, ids: dict[str, str]) -> Any:
    """Replace "bulkId:x" strings by the id the operation with bulkId x created."""
    if isinstance(value, str):
        match = _BULK_REF.match(value)
        if match:
            if match.group(1) not in ids:
                raise _Unresolved(match.group(1))
            return ids[match.group(1)]
        return value
    if isinstance(value, list):
        return [_substitute(v, ids) for v in value]
    if isinstance(value, dict):
        return {k: _substitute(v, ids) for k, v in value.items()}
    return value


def _check(body: Any, max_operations: int) -> list[dict]:
    if not isinstance(body, dict) or BULK_REQUEST not in (body.get("schemas") or []):
        raise InvalidSyntax(f'a BulkRequest needs "schemas": ["{BULK_REQUEST}"]')
    operations = body.get("Operations")
    if not isinstance(operations, list) or not operations:
        raise InvalidSyntax('a BulkRequest needs a non-empty "Operations" list')
    if len(operations) > max_operations:
        raise PayloadTooLarge(
            f"the request has {len(operations)} operations; at most {max_operations} are allowed"
        )
    for i, op in enumerate(operations):
        if not isinstance(op, dict):
            raise InvalidSyntax(f"Operations[{i}] must be an object")
        method = str(op.get("method", "")).upper()
        if method not in {"POST", "PUT", "PATCH", "DELETE"}:
            raise InvalidValue(f"Operations[{i}].method must be POST, PUT, PATCH or DELETE")
        if not isinstance(op.get("path"), str) or not op["path"].startswith("/"):
            raise InvalidValue(f'Operations[{i}].path must be a path such as "/Users"')
        if method == "POST" and not op.get("bulkId"):
            raise InvalidValue(f"Operations[{i}] is a POST and needs a bulkId")
        if "bulkId" in op and not (isinstance(op["bulkId"], str) and op["bulkId"]):
            raise InvalidValue(f"Operations[{i}].bulkId must be a non-empty string")
    return operations


def run_bulk(
    body: Any,
    *,
    db: Database,
    make_service: Callable[[Any], Any],
    max_operations: int,
) -> dict:
    operations = _check(body, max_operations)
    fail_on_errors = body.get("failOnErrors")
    if fail_on_errors is not None and (not isinstance(fail_on_errors, int) or fail_on_errors < 1):
        raise InvalidValue("failOnErrors must be a whole number of at least 1")
    ids: dict[str, str] = {}
    results: list[dict | None] = [None] * len(operations)
    pending = list(range(len(operations)))
    errors = 0
    # Operations may refer to bulkIds of later ones (RFC 7644 §3.7.2): run what can run, again
    # and again, until nothing more resolves.
    while pending and (fail_on_errors is None or errors < fail_on_errors):
        deferred = []
        for index in pending:
            if fail_on_errors is not None and errors >= fail_on_errors:
                break
            op = operations[index]
            try:
                results[index] = _run_one(op, ids, db, make_service)
            except _Unresolved:
                deferred.append(index)
                continue
            if int(results[index]["status"]) >= 400:
                errors += 1
        if len(deferred) == len(pending):
            for index in deferred:
                op = operations[index]
                error = InvalidValue("this operation refers to a bulkId no operation created")
                error.status = 409
                results[index] = _error_result(op, error)
                errors += 1
            break
        pending = deferred
    return {
        "schemas": [BULK_RESPONSE],
        "Operations": [r for r in results if r is not None],
    }


def _run_one(
    op: dict, ids: dict[str, str], db: Database, make_service: Callable[[Any], Any]
) -> dict:
    method = op["method"].upper()
    path = _substitute(op["path"], ids)
    data = _substitute(op.get("data"), ids)
    parts = path.strip("/").split("/")
    result: dict[str, Any] = {"method": method}
    if op.get("bulkId"):
        result["bulkId"] = op["bulkId"]
    try:
        rtype = _ENDPOINTS.get(parts[0])
        if rtype is None or len(parts) > 2 or (method == "POST") != (len(parts) == 1):
            raise NotFound(f"no bulk target {path}")

        def work(session: Any) -> tuple[Any, str]:
            svc = make_service(session)
            if method == "POST":
                done = svc.create(rtype, data)
            elif method == "PUT":
                done = svc.replace(rtype, parts[1], data, if_match=op.get("version"))
            elif method == "PATCH":
                done = svc.patch(rtype, parts[1], data, if_match=op.get("version"), want_body=False)
            else:
                svc.delete(rtype, parts[1], if_match=op.get("version"))
                done = None
            return done, f"{svc.base_url}{rtype.endpoint}/{done.row.id if done else parts[1]}"

        outcome, location = db.run(work)
    except ScimError as exc:
        return _error_result(op, exc)
    except Exception as exc:
        if database_unavailable(exc):
            raise  # the whole Bulk answers 503 (gateway.http_errors) and the IdP retries it
        # This operation rolled back; earlier ones committed and the client must learn which.
        log.exception("bulk operation failed")
        return _error_result(op, ScimError("internal error", status=500))
    if method == "POST" and outcome is not None:
        ids[op["bulkId"]] = outcome.row.id
    result["location"] = location
    if outcome is not None:
        result["version"] = outcome.etag
    result["status"] = {"POST": "201", "DELETE": "204"}.get(method, "200")
    return result


def _error_result(op: dict, exc: ScimError) -> dict:
    result: dict[str, Any] = {"method": str(op.get("method", "")).upper()}
    if op.get("bulkId"):
        result["bulkId"] = op["bulkId"]
    result["status"] = str(exc.status)
    result["response"] = exc.body()
    return result

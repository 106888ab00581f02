"""Property: whatever a client sends to the SCIM app, the answer is never a 5xx, and every error
is a SCIM error body (RFC 7644 §3.12) with its status, and a scimType for a 400 (issue 17).

Hypothesis drives the real Flask app on SQLite and PostgreSQL with: filters built from the
grammar (attribute paths, operators, values of every JSON type, and/or/not, value filters) and
arbitrary text; PATCH bodies (ops, paths, value shapes); query parameters (startIndex, count,
attributes, excludedAttributes, sortBy, sortOrder); and JSON documents of any shape (deep
nesting, huge numbers, NUL, unpaired surrogates) as create, PATCH, .search and Bulk bodies.
Derandomized, so CI runs the same examples each time; PROP_EXAMPLES sets how many, PROP_RANDOM=1
draws new ones.
"""

from __future__ import annotations

import json
import os
from urllib.parse import quote

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.test_scim_protocol import (
    BULK_REQUEST,
    ERROR,
    GROUP,
    PATCH_OP,
    SEARCH,
    USER,
    create_group,
    create_user,
)

SETTINGS = settings(
    max_examples=int(os.environ.get("PROP_EXAMPLES", "60")),
    deadline=None,
    derandomize=not os.environ.get("PROP_RANDOM"),  # PROP_RANDOM=1: new examples each run
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)

ENTERPRISE = "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User"


def encoded(query: dict[str, str]) -> str:
    """A query string as a client writes it: UTF-8, percent-encoded, unpaired surrogates as the
    bytes a careless encoder makes of them (surrogatepass)."""
    return "&".join(
        f"{name}={quote(value.encode('utf-8', 'surrogatepass'), safe='')}"
        for name, value in query.items()
    )


def assert_answered(response) -> None:
    """Not a server error; an error is a SCIM error body, with scimType when it is a 400."""
    assert response.status_code < 500, response.data[:500]
    if response.status_code >= 400:
        body = response.get_json()
        assert body["schemas"] == [ERROR], body
        assert body["status"] == str(response.status_code), body
        assert body.get("detail"), body
        if response.status_code == 400:
            assert body.get("scimType"), body


@pytest.fixture
def world(scim):
    """A user with e-mails and a group holding it, for requests to aim at."""
    user = create_user(
        scim,
        emails=[{"value": "a@example.com", "type": "work", "primary": True}],
        title="Engineer",
    )
    group = create_group(scim, members=[user["id"]])
    return scim, user["id"], group["id"]


# --- strategies ---------------------------------------------------------------------------------

# Text a database cannot hold (NUL, unpaired surrogates) among ordinary and awkward characters.
ODD_TEXT = st.text(
    alphabet=st.sampled_from(["\x00", "\ud800", "\udfff", "a", "Z", " ", "é", "😀", '"', "\\"]),
    min_size=1,
    max_size=6,
) | st.text(alphabet=st.characters(codec=None, exclude_categories=()), max_size=8)
PATHS = st.sampled_from(
    [
        "userName",
        "UserName",
        "displayName",
        "externalId",
        "id",
        "title",
        "active",
        "name.givenName",
        "name",
        "emails",
        "emails.value",
        "emails.type",
        "emails.primary",
        "phoneNumbers.value",
        "meta.created",
        "meta.lastModified",
        "meta.resourceType",
        "meta.version",
        "members",
        "members.value",
        "groups",
        "groups.display",
        "schemas",
        f"{ENTERPRISE}:department",
        f"{ENTERPRISE}:manager.value",
        f"{ENTERPRISE}:manager",
        "password",
        "nosuch",
        "x.y.z",
    ]
)
OPERATORS = st.sampled_from(["eq", "ne", "co", "sw", "ew", "gt", "ge", "lt", "le", "EQ", "Gt"])
DATES = st.sampled_from(
    [
        "2024-05-01T00:00:00Z",
        "0001-01-01T00:00:00+14:00",
        "9999-12-31T23:59:59-14:00",
        "2024-13-45T99:00:00Z",
        "2024-05-01",
        "",
    ]
)
VALUES = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-(2**70), max_value=2**70),
    st.floats(allow_nan=False, allow_infinity=False),
    DATES,
    st.text(max_size=8),
    ODD_TEXT,
)


def _quoted(value: object) -> str:
    # ensure_ascii keeps NUL and surrogates as \u escapes, as a client would send them.
    return json.dumps(value, ensure_ascii=True)


def _comparison() -> st.SearchStrategy[str]:
    compare = st.builds(
        lambda path, op, value: f"{path} {op} {_quoted(value)}", PATHS, OPERATORS, VALUES
    )
    present = st.builds(lambda path: f"{path} pr", PATHS)
    # Shapes that reach particular code: the `attr eq "..."` lookup on a unique attribute (its
    # own fast path), and date-times at the edges of what a datetime can hold.
    lookup = st.builds(
        lambda path, value: f"{path} eq {_quoted(value)}",
        st.sampled_from(["userName", "externalId", "id", "displayName"]),
        ODD_TEXT,
    )
    dated = st.builds(
        lambda path, op, value: f"{path} {op} {_quoted(value)}",
        st.sampled_from(["meta.created", "meta.lastModified"]),
        OPERATORS,
        DATES,
    )
    return st.one_of(compare, present, lookup, dated)


FILTERS = st.recursive(
    _comparison(),
    lambda inner: st.one_of(
        st.builds(lambda a, op, b: f"{a} {op} {b}", inner, st.sampled_from(["and", "or"]), inner),
        st.builds(lambda a: f"not ({a})", inner),
        st.builds(lambda a: f"({a})", inner),
        st.builds(
            lambda attr, a: f"{attr}[{a}]", st.sampled_from(["emails", "members", "name"]), inner
        ),
    ),
    max_leaves=12,
)
ANY_FILTER = st.one_of(
    FILTERS,
    st.text(max_size=40),
    ODD_TEXT,
    st.builds(
        lambda n: " or ".join(['title eq "x"'] * n), st.sampled_from([2, 199, 201, 1001, 3000])
    ),
    st.builds(lambda n: "(" * n + 'id eq "a"' + ")" * n, st.sampled_from([1, 32, 33, 500])),
    st.sampled_from([f"title eq {'9' * 5000}", f"{'a' * 15_000} pr", 'userName eq "\\ud800"']),
)
NUMBERS_AS_TEXT = st.one_of(
    st.integers(min_value=-(2**80), max_value=2**80).map(str),
    st.sampled_from([2**31, 2**63 - 1, 2**63 + 1, 10**20, -(2**63) - 1]).map(str),
    st.sampled_from(["", "abc", "1e3", "1.5", " 7", "0x10", "NaN", "-0", "9" * 30]),
)
ATTRIBUTE_LISTS = st.lists(PATHS, max_size=3).map(",".join) | st.text(max_size=20)
QUERIES = st.fixed_dictionaries(
    {},
    optional={
        "filter": ANY_FILTER,
        "startIndex": NUMBERS_AS_TEXT,
        "count": NUMBERS_AS_TEXT,
        "attributes": ATTRIBUTE_LISTS,
        "excludedAttributes": ATTRIBUTE_LISTS,
        "sortBy": PATHS | st.text(max_size=10),
        "sortOrder": st.sampled_from(["ascending", "descending", "DESCENDING", "up", ""]),
    },
)
JSON_LEAVES = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-(2**80), max_value=2**80),
    st.floats(allow_nan=False, allow_infinity=False),
    st.text(max_size=10),
    ODD_TEXT,
)
JSON_VALUES = st.recursive(
    JSON_LEAVES,
    lambda inner: (
        st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=6), inner, max_size=4)
    ),
    max_leaves=15,
)
PATCH_PATHS = st.one_of(
    PATHS,
    st.builds(
        lambda attr, f, sub: f"{attr}[{f}]{sub}",
        st.sampled_from(["emails", "members", "addresses", "name"]),
        FILTERS,
        st.sampled_from(["", ".value", ".type", ".primary", ".nosuch"]),
    ),
    st.text(max_size=20),
)
OPERATIONS = st.fixed_dictionaries(
    {"op": st.sampled_from(["add", "replace", "remove", "Add", "Replace", "Remove", "move", ""])},
    optional={"path": PATCH_PATHS, "value": JSON_VALUES},
)
PATCH_BODIES = st.one_of(
    st.builds(
        lambda ops: {"schemas": [PATCH_OP], "Operations": ops}, st.lists(OPERATIONS, max_size=4)
    ),
    JSON_VALUES,
)


def deep(depth: int, kind: str) -> str:
    return ("[" * depth + "]" * depth) if kind == "[" else ('{"a":' * depth + "1" + "}" * depth)


RAW_BODIES = st.one_of(
    JSON_VALUES.map(lambda v: json.dumps(v, ensure_ascii=True)),
    st.builds(deep, st.sampled_from([1, 32, 33, 1000, 100_000]), st.sampled_from(["[", "{"])),
    st.sampled_from(["", "{", "NaN", "1e999999", "9" * 5000, '{"a": Infinity}', "\ufeff{}"]),
    st.binary(max_size=40).map(lambda b: b.decode("latin-1")),
)


# --- properties ---------------------------------------------------------------------------------


@SETTINGS
@given(query=QUERIES, endpoint=st.sampled_from(["Users", "Groups"]))
def test_any_list_query_is_answered(world, query, endpoint) -> None:
    scim, _, _ = world
    assert_answered(scim.get(f"/{endpoint}?{encoded(query)}"))


@SETTINGS
@given(
    query=QUERIES,
    endpoint=st.sampled_from(["Users", "Groups"]),
    field=st.sampled_from(
        ["filter", "startIndex", "count", "attributes", "excludedAttributes", "sortBy", "sortOrder"]
    ),
    value=JSON_VALUES,
)
def test_any_search_request_is_answered(world, query, endpoint, field, value) -> None:
    scim, _, _ = world
    body = {"schemas": [SEARCH], **query, field: value}
    assert_answered(scim.post(f"/{endpoint}/.search", json=body))


@SETTINGS
@given(body=PATCH_BODIES, target=st.sampled_from(["user", "group"]))
def test_any_patch_is_answered(world, body, target) -> None:
    scim, user_id, group_id = world
    path = f"/Users/{user_id}" if target == "user" else f"/Groups/{group_id}"
    assert_answered(scim.patch(path, json=body))


@SETTINGS
@given(
    raw=RAW_BODIES,
    where=st.sampled_from(
        [
            ("POST", "/Users"),
            ("POST", "/Groups"),
            ("POST", "/Users/.search"),
            ("POST", "/Bulk"),
            ("PATCH", "/Users/{user}"),
            ("PUT", "/Groups/{group}"),
        ]
    ),
)
def test_any_json_text_as_a_body_is_answered(world, raw, where) -> None:
    scim, user_id, group_id = world
    method, path = where
    headers = {**scim.headers(), "Content-Type": "application/scim+json"}
    response = scim.client.open(
        scim.base + path.format(user=user_id, group=group_id),
        method=method,
        data=raw.encode("utf-8", "surrogatepass"),
        headers=headers,
    )
    assert_answered(response)


@SETTINGS
@given(
    fields=st.dictionaries(
        st.sampled_from(
            ["userName", "displayName", "externalId", "title", "emails", "name", "active",
             "members", "id", "meta", ENTERPRISE, "schemas", "groups"]
        ),
        JSON_VALUES,
        max_size=5,
    ),
    kind=st.sampled_from(["Users", "Groups", "Bulk"]),
)  # fmt: skip
def test_any_resource_shape_is_answered(world, fields, kind) -> None:
    scim, _, _ = world
    if kind == "Bulk":
        data = {"schemas": [USER], "userName": "bulk", **fields}
        operation = {"method": "POST", "path": "/Users", "bulkId": "b", "data": data}
        body: dict = {"schemas": [BULK_REQUEST], "Operations": [operation]}
        response = scim.post("/Bulk", json=body)
        assert_answered(response)
        for result in response.get_json().get("Operations", []):
            assert int(result["status"]) < 500, result
        return
    schema = USER if kind == "Users" else GROUP
    body = {"schemas": [schema], "userName": "u", "displayName": "g", **fields}
    assert_answered(scim.post(f"/{kind}", json=body))


@SETTINGS
@given(
    resource_id=st.one_of(ODD_TEXT, st.text(max_size=40)),
    endpoint=st.sampled_from(["Users", "Groups"]),
    method=st.sampled_from(["GET", "PUT", "PATCH", "DELETE"]),
)
def test_any_resource_id_is_answered(world, resource_id, endpoint, method) -> None:
    scim, _, _ = world
    body = None
    if method == "PUT":
        body = {"schemas": [USER if endpoint == "Users" else GROUP], "userName": "u"}
    elif method == "PATCH":
        body = {"schemas": [PATCH_OP], "Operations": [{"op": "remove", "path": "title"}]}
    quoted = quote(resource_id.encode("utf-8", "surrogatepass"), safe="")
    assert_answered(scim.request(method, f"/{endpoint}/{quoted}", json=body))

"""Hostile and odd inputs at the SCIM edge (issue 17): each answers a SCIM error with the right
status and scimType, never a 500, on SQLite and PostgreSQL; and the RFC 7644 behaviours the
gateway used to bend (PATCH replace without a match, blank userName, Content-Type).
"""

from __future__ import annotations

import json

import pytest

from gateway.scim.limits import (
    MAX_FILTER_COMPARISONS,
    MAX_FILTER_DEPTH,
    MAX_FILTER_LENGTH,
    MAX_JSON_DEPTH,
)
from tests.test_scim_protocol import (
    BULK_REQUEST,
    GROUP,
    PATCH_OP,
    SCIM_JSON,
    SEARCH,
    USER,
    app_with,
    assert_scim_error,
    create_group,
    create_user,
    insert_members,
    insert_users,
    patch,
    user_body,
)


def send(scim, method: str, path: str, data: str | bytes, content_type: str | None = SCIM_JSON):
    """A request with a raw body and the given Content-Type (None: no header)."""
    headers = scim.headers()
    if content_type is not None:
        headers["Content-Type"] = content_type
    return scim.client.open(scim.base + path, method=method, data=data, headers=headers)


# --- filters past the limits ---------------------------------------------------------------------


def or_chain(terms: int) -> str:
    return " or ".join(f'userName eq "user{i}@example.com"' for i in range(terms))


@pytest.mark.parametrize("terms", [1_001, 30_000])
def test_filter_with_thousands_of_or_terms_is_invalid_filter(scim, terms) -> None:
    create_user(scim, "user1@example.com")

    response = scim.get("/Users", query_string={"filter": or_chain(terms)})

    body = assert_scim_error(response, 400, "invalidFilter")
    assert len(body["detail"]) < 300


def test_filter_with_more_comparisons_than_the_limit_is_refused_before_the_parser(scim) -> None:
    short = " or ".join(f'id eq "{i}"' for i in range(MAX_FILTER_COMPARISONS + 1))
    assert len(short) < MAX_FILTER_LENGTH

    body = assert_scim_error(
        scim.get("/Groups", query_string={"filter": short}), 400, "invalidFilter"
    )
    assert str(MAX_FILTER_COMPARISONS) in body["detail"]


def test_many_negated_groups_of_terms_are_invalid_filter(scim) -> None:
    inner = " or ".join(f'title eq "t{i}"' for i in range(30))
    expensive = " and ".join(f"not ({inner})" for _ in range(100))

    assert_scim_error(scim.get("/Users", query_string={"filter": expensive}), 400, "invalidFilter")


def test_filter_within_the_term_limit_but_too_costly_is_invalid_filter(scim) -> None:
    # 150 comparisons, each walking the e-mails of every user: under the term limit, over cost.
    costly = " or ".join(f'emails[type eq "t{i}" and value co "x"]' for i in range(75))

    body = assert_scim_error(
        scim.get("/Users", query_string={"filter": costly}), 400, "invalidFilter"
    )
    assert "cost" in body["detail"]


def test_filter_longer_than_the_limit_is_invalid_filter(scim) -> None:
    long = f'userName eq "{"a" * MAX_FILTER_LENGTH}"'

    body = assert_scim_error(
        scim.get("/Users", query_string={"filter": long}), 400, "invalidFilter"
    )
    assert len(body["detail"]) < 300


@pytest.mark.parametrize(
    "expression",
    [f"{'a' * 15_000} eq 1", f'userName eq "{"x" * 15_000}', f"title eq {'9' * 15_000}"],
    ids=["long-name", "unclosed-string", "long-number"],
)
def test_refused_filter_detail_quotes_little_of_it(scim, expression) -> None:
    body = assert_scim_error(
        scim.get("/Users", query_string={"filter": expression}), 400, "invalidFilter"
    )
    assert len(body["detail"]) <= 600


def test_filter_nested_deeper_than_the_limit_is_invalid_filter(scim) -> None:
    deep = "(" * (MAX_FILTER_DEPTH + 1) + 'userName eq "a"' + ")" * (MAX_FILTER_DEPTH + 1)

    assert_scim_error(scim.get("/Users", query_string={"filter": deep}), 400, "invalidFilter")


def test_search_request_with_an_oversized_filter_is_invalid_filter(scim) -> None:
    response = scim.post("/Users/.search", json={"schemas": [SEARCH], "filter": or_chain(1_001)})

    assert_scim_error(response, 400, "invalidFilter")


# --- deeply nested JSON bodies -------------------------------------------------------------------


def nested(depth: int) -> str:
    return "[" * depth + "]" * depth


HOLE = "@@"  # where a test puts raw JSON text into a body


def fill(body: dict, text: str) -> str:
    return json.dumps(body).replace(json.dumps(HOLE), text)


@pytest.mark.parametrize("depth", [MAX_JSON_DEPTH + 1, 100_000])
@pytest.mark.parametrize(
    "method, path, body",
    [
        ("POST", "/Users", {"schemas": [USER], "userName": "a", "title": HOLE}),
        ("POST", "/Users/.search", {"schemas": [SEARCH], "filter": HOLE}),
        (
            "POST",
            "/Bulk",
            {
                "schemas": [BULK_REQUEST],
                "Operations": [
                    {
                        "method": "POST",
                        "path": "/Users",
                        "bulkId": "a",
                        "data": {"schemas": [USER], "userName": "a", "title": HOLE},
                    }
                ],
            },
        ),
        ("PATCH", "/Users/{id}", {"schemas": [PATCH_OP], "Operations": HOLE}),
        ("PUT", "/Users/{id}", {"schemas": [USER], "userName": "a", "title": HOLE}),
    ],
    ids=["create", "search", "bulk", "patch", "replace"],
)
def test_deeply_nested_json_body_is_invalid_syntax(scim, method, path, body, depth) -> None:
    created = create_user(scim)

    response = send(scim, method, path.format(id=created["id"]), fill(body, nested(depth)))

    assert_scim_error(response, 400, "invalidSyntax")


def test_body_nested_within_the_limit_is_read(scim) -> None:
    # Brackets inside strings do not count: "[[[[..." is a title, not nesting.
    response = scim.post("/Users", json=user_body(title="[" * (MAX_JSON_DEPTH + 5)))

    assert response.status_code == 201
    assert response.get_json()["title"] == "[" * (MAX_JSON_DEPTH + 5)


@pytest.mark.parametrize("constant", ["NaN", "Infinity", "-Infinity"])
def test_nan_and_infinity_are_not_json(scim, constant) -> None:
    data = fill({"schemas": [SEARCH], "startIndex": HOLE}, constant)

    assert_scim_error(send(scim, "POST", "/Users/.search", data), 400, "invalidSyntax")


# --- NUL characters and unpaired surrogates ------------------------------------------------------


@pytest.mark.parametrize(
    "endpoint, attribute",
    [
        ("Users", "userName"),
        ("Users", "externalId"),
        ("Users", "id"),
        ("Groups", "displayName"),
        ("Groups", "externalId"),
    ],
)
@pytest.mark.parametrize("escape", ["\\ud800", "\\u0000", "a\\udfffb", "\\u0000\\ud800"])
def test_eq_filter_with_nul_or_lone_surrogate_is_invalid_filter(
    scim, endpoint, attribute, escape
) -> None:
    response = scim.get(f"/{endpoint}", query_string={"filter": f'{attribute} eq "{escape}"'})

    assert_scim_error(response, 400, "invalidFilter")


@pytest.mark.parametrize("method", ["GET", "PUT", "PATCH", "DELETE"])
@pytest.mark.parametrize("endpoint", ["Users", "Groups"])
@pytest.mark.parametrize("resource_id", ["a%00b", "%ED%A0%80", "%00"])
def test_id_with_nul_or_surrogate_is_not_found(scim, method, endpoint, resource_id) -> None:
    body = None
    if method == "PUT":
        body = user_body() if endpoint == "Users" else {"schemas": [GROUP], "displayName": "x"}
    if method == "PATCH":
        body = patch({"op": "replace", "path": "externalId", "value": "x"})

    response = scim.request(method, f"/{endpoint}/{resource_id}", json=body)

    assert_scim_error(response, 404)


@pytest.mark.parametrize("escape", ["\\u0000", "\\ud800", "x\\udc00"])
@pytest.mark.parametrize(
    "endpoint, body",
    [
        ("Users", {"schemas": [USER], "userName": HOLE}),
        ("Users", {"schemas": [USER], "userName": "ab", "displayName": HOLE}),
        ("Users", {"schemas": [USER], "userName": "ab", "externalId": HOLE}),
        ("Users", {"schemas": [USER], "userName": "ab", "emails": [{"value": HOLE}]}),
        ("Groups", {"schemas": [GROUP], "displayName": HOLE}),
        ("Groups", {"schemas": [GROUP], "displayName": "g", "members": [{"value": HOLE}]}),
    ],
    ids=["userName", "displayName", "externalId", "email", "group", "member"],
)
def test_body_string_with_nul_or_lone_surrogate_is_invalid_value(
    scim, endpoint, body, escape
) -> None:
    response = send(scim, "POST", f"/{endpoint}", fill(body, f'"a{escape}b"'))

    assert_scim_error(response, 400, "invalidValue")


def test_patch_adding_a_member_id_with_nul_is_invalid_value(scim) -> None:
    group = create_group(scim)
    data = json.dumps(patch({"op": "add", "path": "members", "value": [{"value": "a\0b"}]}))

    response = send(scim, "PATCH", f"/Groups/{group['id']}", data)

    assert_scim_error(response, 400, "invalidValue")


# --- dates ---------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "expression",
    [
        'meta.created gt "0001-01-01T00:00:00+14:00"',
        'meta.lastModified lt "9999-12-31T23:59:59-14:00"',
        'meta.created eq "0001-01-01T00:00:00+00:01"',
    ],
)
def test_date_outside_the_representable_range_is_invalid_filter(scim, expression) -> None:
    create_user(scim)

    assert_scim_error(scim.get("/Users", query_string={"filter": expression}), 400, "invalidFilter")


def test_date_with_an_offset_compares_in_utc(scim) -> None:
    create_user(scim)

    response = scim.get(
        "/Users", query_string={"filter": 'meta.created gt "2000-01-01T10:00:00+14:00"'}
    )

    assert response.status_code == 200
    assert response.get_json()["totalResults"] == 1


# --- paging (RFC 7644 §3.4.2.4) -------------------------------------------------------------------


@pytest.mark.parametrize(
    "start", ["99999999999999999999", str(2**63 + 1), str(2**63 - 1), "2147483649"]
)
def test_start_index_past_the_end_answers_an_empty_page_with_the_total(scim, start) -> None:
    create_user(scim)
    create_user(scim)

    response = scim.get("/Users", query_string={"startIndex": start})

    assert response.status_code == 200
    body = response.get_json()
    assert body["totalResults"] == 2
    assert body["itemsPerPage"] == 0
    assert body["Resources"] == []
    assert body["startIndex"] == int(start)


def test_start_index_past_the_end_in_a_search_request(scim) -> None:
    create_user(scim)

    response = scim.post(
        "/Users/.search", json={"schemas": [SEARCH], "startIndex": 2**64, "count": 10}
    )

    assert response.status_code == 200
    assert response.get_json()["totalResults"] == 1
    assert response.get_json()["Resources"] == []


@pytest.mark.parametrize("start", ["0", "-5", "-99999999999999999999"])
def test_start_index_below_one_is_one(scim, start) -> None:
    create_user(scim)

    body = scim.get("/Users", query_string={"startIndex": start}).get_json()

    assert body["startIndex"] == 1
    assert body["itemsPerPage"] == 1


@pytest.mark.parametrize("count", ["99999999999999999999", str(2**63 + 1)])
def test_huge_count_is_lowered_to_max_results(scim, database, config, count) -> None:
    small_pages = app_with(database, config, scim_max_results=2)
    client = type(scim)(small_pages.test_client(), scim.org_id, scim.token)
    for _ in range(3):
        create_user(client)

    body = client.get("/Users", query_string={"count": count}).get_json()

    assert body["totalResults"] == 3
    assert body["itemsPerPage"] == 2


def test_negative_count_answers_only_the_total(scim) -> None:
    create_user(scim)

    body = scim.get("/Users", query_string={"count": "-99999999999999999999"}).get_json()

    assert body["totalResults"] == 1
    assert body["Resources"] == []


@pytest.mark.parametrize(
    "field, value",
    [
        ("startIndex", True),
        ("count", "many"),
        ("sortOrder", 5),
        ("sortBy", ["a"]),
        ("attributes", 7),
    ],
)
def test_search_request_with_parameters_of_the_wrong_type_is_invalid_value(
    scim, field, value
) -> None:
    response = scim.post("/Users/.search", json={"schemas": [SEARCH], field: value})

    assert_scim_error(response, 400, "invalidValue")


def test_search_request_with_a_filter_that_is_not_a_string_is_invalid_filter(scim) -> None:
    response = scim.post("/Users/.search", json={"schemas": [SEARCH], "filter": {"a": 1}})

    assert_scim_error(response, 400, "invalidFilter")


# --- large membership changes (PostgreSQL takes at most 65,535 parameters per statement) ----------

MANY = 40_000


@pytest.fixture
def roomy(scim, database, config):
    """The same organization on an app that takes a body naming 40,000 members and queues the
    engine's work (GATEWAY_SCIM_APPLY=queued) with nobody applying it: what is tested is the
    directory write; inviting 40,000 new members inline takes the engine a minute."""
    app = app_with(database, config, scim_max_payload=8 * 1024 * 1024, scim_apply="queued")
    app.extensions["scimgate"].drainer.stop()
    return type(scim)(app.test_client(), scim.org_id, scim.token)


@pytest.fixture
def big_group(roomy, database) -> tuple[str, list[str]]:
    group = create_group(roomy, "Everyone")
    user_ids = insert_users(database, roomy.org_id, MANY, "many")
    return group["id"], user_ids


def member_ids(scim, group_id: str) -> set[str]:
    body = scim.get(f"/Groups/{group_id}", query_string={"attributes": "members"}).get_json()
    return {m["value"] for m in body.get("members", [])}


def test_patch_removing_40000_members_removes_them(roomy, database, big_group) -> None:
    group_id, user_ids = big_group
    insert_members(database, group_id, user_ids)

    response = roomy.patch(f"/Groups/{group_id}", json=patch({"op": "remove", "path": "members"}))

    assert response.status_code == 204
    assert member_ids(roomy, group_id) == set()


def test_patch_removing_40000_listed_members_removes_them(roomy, database, big_group) -> None:
    group_id, user_ids = big_group
    insert_members(database, group_id, user_ids)
    listed = [{"value": u} for u in user_ids[1:]]

    response = roomy.patch(
        f"/Groups/{group_id}", json=patch({"op": "remove", "path": "members", "value": listed})
    )

    assert response.status_code == 204
    assert member_ids(roomy, group_id) == {user_ids[0]}


def test_patch_adding_40000_members_adds_them(roomy, big_group) -> None:
    group_id, user_ids = big_group
    operation = {"op": "add", "path": "members", "value": [{"value": u} for u in user_ids]}

    response = roomy.patch(f"/Groups/{group_id}", json=patch(operation))

    assert response.status_code == 204
    assert member_ids(roomy, group_id) == set(user_ids)


def test_put_with_40000_members_replaces_them(roomy, database, big_group) -> None:
    group_id, user_ids = big_group
    insert_members(database, group_id, user_ids[: MANY // 2])
    body = {
        "schemas": [GROUP],
        "displayName": "Everyone",
        "members": [{"value": u} for u in user_ids[MANY // 4 :]],
    }

    response = roomy.put(f"/Groups/{group_id}", json=body)

    assert response.status_code == 200, response.get_json()
    assert member_ids(roomy, group_id) == set(user_ids[MANY // 4 :])


# --- RFC 7644 behaviours --------------------------------------------------------------------------


def test_patch_replace_with_a_value_filter_matching_nothing_is_no_target(scim) -> None:
    # RFC 7644 §3.5.2.3: "... no record match was made, the service provider SHALL indicate
    # failure by returning HTTP status code 400 and a "scimType" error code of "noTarget"."
    created = create_user(scim, emails=[{"value": "a@example.com", "type": "work"}])
    operation = {"op": "replace", "path": 'emails[type eq "nomatch"].value', "value": "b@x.org"}

    response = scim.patch(f"/Users/{created['id']}", json=patch(operation))

    assert_scim_error(response, 400, "noTarget")
    assert scim.get(f"/Users/{created['id']}").get_json()["emails"] == created["emails"]


def test_patch_add_with_a_value_filter_matching_nothing_creates_the_element(scim) -> None:
    created = create_user(scim, emails=[{"value": "a@example.com", "type": "work"}])
    operation = {"op": "add", "path": 'emails[type eq "home"].value', "value": "b@x.org"}

    response = scim.patch(f"/Users/{created['id']}", json=patch(operation))

    assert response.status_code == 200
    assert {"type": "home", "value": "b@x.org"} in response.get_json()["emails"]


@pytest.mark.parametrize("blank", [" ", "   ", "\t \n"])
def test_blank_user_name_is_invalid_value(scim, blank) -> None:
    created = create_user(scim)

    assert_scim_error(scim.post("/Users", json=user_body(blank)), 400, "invalidValue")
    assert_scim_error(
        scim.put(f"/Users/{created['id']}", json=user_body(blank)), 400, "invalidValue"
    )
    operation = {"op": "replace", "path": "userName", "value": blank}
    assert_scim_error(
        scim.patch(f"/Users/{created['id']}", json=patch(operation)), 400, "invalidValue"
    )
    assert scim.get(f"/Users/{created['id']}").get_json()["userName"] == created["userName"]


def test_blank_group_display_name_is_invalid_value(scim) -> None:
    response = scim.post("/Groups", json={"schemas": [GROUP], "displayName": "  "})

    assert_scim_error(response, 400, "invalidValue")


@pytest.mark.parametrize(
    "content_type",
    [
        "application/scim+json",
        "application/json",
        "application/scim+json; charset=utf-8",
        "application/json; charset=UTF-8",
        "Application/SCIM+JSON",
    ],
)
def test_scim_and_plain_json_bodies_are_accepted(scim, content_type) -> None:
    response = send(scim, "POST", "/Users", json.dumps(user_body()), content_type)

    assert response.status_code == 201


@pytest.mark.parametrize(
    "content_type", ["text/plain", "application/x-www-form-urlencoded", "application/xml", None]
)
@pytest.mark.parametrize(
    "method, path",
    [
        ("POST", "/Users"),
        ("PUT", "/Users/{id}"),
        ("PATCH", "/Users/{id}"),
        ("POST", "/Users/.search"),
        ("POST", "/Bulk"),
    ],
)
def test_other_content_types_are_415(scim, method, path, content_type) -> None:
    created = create_user(scim)
    data = json.dumps(user_body())

    response = send(scim, method, path.format(id=created["id"]), data, content_type)

    body = assert_scim_error(response, 415)
    assert "application/scim+json" in body["detail"]
    assert scim.get(f"/Users/{created['id']}").get_json() == created

"""RFC 7644 behaviour of the SCIM endpoint, as a client sees it: discovery, projections,
pagination, sorting, meta and versions, preconditions, search, filters, uniqueness (also under
concurrency), request errors that write nothing, isolation between organizations, media types,
Bulk, proxies, and the cost of changing one member of a large group.
"""

from __future__ import annotations

import dataclasses
import json
import threading
import time
import uuid
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from datetime import UTC, datetime

import pytest
from sqlalchemy import event, func, insert, select

from gateway.orgs import create_org
from gateway.store.models import DirectoryGroup, DirectoryGroupMember, DirectoryUser, utcnow
from gateway.tokens import issue_token

USER = "urn:ietf:params:scim:schemas:core:2.0:User"
ENTERPRISE = "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User"
GROUP = "urn:ietf:params:scim:schemas:core:2.0:Group"
PATCH_OP = "urn:ietf:params:scim:api:messages:2.0:PatchOp"
LIST = "urn:ietf:params:scim:api:messages:2.0:ListResponse"
ERROR = "urn:ietf:params:scim:api:messages:2.0:Error"
SEARCH = "urn:ietf:params:scim:api:messages:2.0:SearchRequest"
BULK_REQUEST = "urn:ietf:params:scim:api:messages:2.0:BulkRequest"
BULK_RESPONSE = "urn:ietf:params:scim:api:messages:2.0:BulkResponse"
SCIM_JSON = "application/scim+json"
PUBLIC_URL = "https://scim.example.test"


# --- helpers --------------------------------------------------------------------------------------


def user_body(user_name: str | None = None, **extra) -> dict:
    user_name = user_name or f"{uuid.uuid4().hex[:12]}@example.com"
    body = {"schemas": [USER], "userName": user_name, "name": {"givenName": "Test"}}
    body.update(extra)
    return body


def create_user(scim, user_name: str | None = None, **extra) -> dict:
    response = scim.post("/Users", json=user_body(user_name, **extra))
    assert response.status_code == 201, response.get_json()
    return response.get_json()


def create_group(scim, display_name: str | None = None, members=(), **extra) -> dict:
    body = {
        "schemas": [GROUP],
        "displayName": display_name or f"Group {uuid.uuid4().hex[:8]}",
        "members": [{"value": m} for m in members],
        **extra,
    }
    response = scim.post("/Groups", json=body)
    assert response.status_code == 201, response.get_json()
    return response.get_json()


def patch(*operations: dict) -> dict:
    return {"schemas": [PATCH_OP], "Operations": list(operations)}


def ids(body: dict) -> list[str]:
    return [r["id"] for r in body.get("Resources", [])]


def user_names(body: dict) -> list[str]:
    return [r["userName"] for r in body.get("Resources", [])]


def assert_scim_error(response, status: int, scim_type: str | None = None) -> dict:
    assert response.status_code == status, response.data
    assert response.mimetype == SCIM_JSON
    body = response.get_json()
    assert body["schemas"] == [ERROR]
    assert body["status"] == str(status)
    assert body.get("detail")
    if scim_type is not None:
        assert body.get("scimType") == scim_type, body
    return body


def row_counts(database) -> tuple[int, int, int]:
    with database.read() as session:
        return tuple(
            session.scalar(select(func.count()).select_from(model))
            for model in (DirectoryUser, DirectoryGroup, DirectoryGroupMember)
        )


def app_with(database, config, **settings):
    """An application like the `app` fixture, with some settings changed."""
    from gateway.app import create_app

    application = create_app(dataclasses.replace(config, **settings), database=database)
    application.testing = True
    return application


@pytest.fixture
def scim_for(scim, database):
    """SCIM clients like `scim`, each for a new organization of its own, on `app` if given
    (else on the test application)."""

    def make(name: str, app=None):
        with database.transaction() as session:
            org = create_org(session, name)
            org_id, token = org.id, issue_token(session, org=org).secret
        return type(scim)(app.test_client() if app is not None else scim.client, org_id, token)

    return make


@contextmanager
def statements(engine) -> Iterator[list[str]]:
    """The SQL statements the engine runs inside the block."""
    seen: list[str] = []

    def record(conn, cursor, statement, parameters, context, executemany) -> None:
        seen.append(statement)

    event.listen(engine, "before_cursor_execute", record)
    try:
        yield seen
    finally:
        event.remove(engine, "before_cursor_execute", record)


def parse_time(text: str) -> datetime:
    assert text.endswith("Z"), text
    return datetime.fromisoformat(text.replace("Z", "+00:00"))


# --- discovery (RFC 7644 §4) ----------------------------------------------------------------------


def test_service_provider_config_says_honestly_what_is_supported(scim) -> None:
    response = scim.get("/ServiceProviderConfig")

    assert response.status_code == 200
    assert response.mimetype == SCIM_JSON
    body = response.get_json()
    assert body["schemas"] == ["urn:ietf:params:scim:schemas:core:2.0:ServiceProviderConfig"]
    assert body["patch"] == {"supported": True}
    assert body["bulk"] == {"supported": True, "maxOperations": 1000, "maxPayloadSize": 1048576}
    assert body["filter"] == {"supported": True, "maxResults": 1000}
    assert body["sort"] == {"supported": True}
    assert body["etag"] == {"supported": True}
    assert body["changePassword"] == {"supported": False}
    assert [s["type"] for s in body["authenticationSchemes"]] == ["oauthbearertoken"]
    assert body["meta"]["location"] == (f"{PUBLIC_URL}/scim/v2/{scim.org_id}/ServiceProviderConfig")


def test_service_provider_config_follows_the_configured_limits(database, config, scim_for) -> None:
    app = app_with(
        database, config, scim_max_results=50, scim_max_payload=4096, scim_bulk_max_operations=7
    )
    client = scim_for("Limits", app)

    body = client.get("/ServiceProviderConfig").get_json()

    assert body["filter"]["maxResults"] == 50
    assert body["bulk"]["maxOperations"] == 7
    assert body["bulk"]["maxPayloadSize"] == 4096


def test_resource_types_list_users_and_groups(scim) -> None:
    response = scim.get("/ResourceTypes")

    assert response.status_code == 200
    body = response.get_json()
    assert body["schemas"] == [LIST]
    assert body["totalResults"] == 2
    by_id = {r["id"]: r for r in body["Resources"]}
    assert by_id["User"]["endpoint"] == "/Users"
    assert by_id["User"]["schema"] == USER
    assert by_id["User"]["schemaExtensions"] == [{"schema": ENTERPRISE, "required": False}]
    assert by_id["Group"]["endpoint"] == "/Groups"
    assert by_id["Group"]["schema"] == GROUP
    base = f"{PUBLIC_URL}/scim/v2/{scim.org_id}"
    assert by_id["User"]["meta"]["location"] == f"{base}/ResourceTypes/User"
    for name, resource_type in by_id.items():
        single = scim.get(f"/ResourceTypes/{name}")
        assert single.status_code == 200
        assert single.get_json() == resource_type
    assert_scim_error(scim.get("/ResourceTypes/Device"), 404)


def test_schemas_list_and_each_schema_by_its_urn(scim) -> None:
    response = scim.get("/Schemas")

    assert response.status_code == 200
    body = response.get_json()
    assert body["schemas"] == [LIST]
    by_id = {s["id"]: s for s in body["Resources"]}
    assert set(by_id) == {USER, ENTERPRISE, GROUP}
    for urn, schema in by_id.items():
        single = scim.get(f"/Schemas/{urn}")
        assert single.status_code == 200
        assert single.get_json() == schema
    user_attributes = {a["name"]: a for a in by_id[USER]["attributes"]}
    assert user_attributes["userName"]["required"] is True
    assert user_attributes["userName"]["uniqueness"] == "server"
    assert user_attributes["userName"]["caseExact"] is False
    assert user_attributes["password"]["returned"] == "never"
    assert user_attributes["password"]["mutability"] == "writeOnly"
    assert user_attributes["groups"]["mutability"] == "readOnly"
    group_attributes = {a["name"] for a in by_id[GROUP]["attributes"]}
    assert {"displayName", "members"} <= group_attributes
    assert_scim_error(scim.get("/Schemas/urn:example:no:such:schema"), 404)


DISCOVERY_PATHS = [
    "/ServiceProviderConfig",
    "/ResourceTypes",
    "/ResourceTypes/User",
    "/Schemas",
    f"/Schemas/{USER}",
]


@pytest.mark.parametrize("path", DISCOVERY_PATHS)
def test_discovery_endpoints_refuse_writes_with_405(scim, path: str) -> None:
    for method in ("POST", "PUT", "PATCH", "DELETE"):
        response = scim.request(method, path, json={"schemas": [USER]})

        assert_scim_error(response, 405)


def test_unsupported_method_on_a_resource_collection_is_a_scim_405(scim) -> None:
    # DELETE /Users and PUT /Users match no route; the answer must still be a SCIM error.
    for method in ("DELETE", "PUT", "PATCH"):
        assert_scim_error(scim.request(method, "/Users", json={}), 405)


def test_unknown_path_below_the_scim_base_is_a_scim_404(scim) -> None:
    assert_scim_error(scim.get("/Devices"), 404)
    assert_scim_error(scim.get("/Users/some-id/extra"), 404)


# --- attributes / excludedAttributes (RFC 7644 §3.4.2.5) ------------------------------------------


@pytest.fixture
def ada(scim) -> dict:
    return create_user(
        scim,
        "ada@example.com",
        externalId="ext-ada",
        name={"givenName": "Ada", "familyName": "Lovelace"},
        title="Engineer",
        emails=[{"value": "ada@example.com", "type": "work", "primary": True}],
        **{ENTERPRISE: {"employeeNumber": "1", "department": "R&D"}},
        schemas=[USER, ENTERPRISE],
    )


def test_attributes_on_get_returns_those_plus_id_and_schemas(scim, ada) -> None:
    response = scim.get(f"/Users/{ada['id']}?attributes=userName,name.givenName")

    assert response.status_code == 200
    assert response.get_json() == {
        "schemas": ada["schemas"],
        "id": ada["id"],
        "userName": "ada@example.com",
        "name": {"givenName": "Ada"},
    }


def test_attributes_on_list_applies_to_every_resource(scim, ada) -> None:
    create_user(scim, title="Other")

    body = scim.get("/Users?attributes=title").get_json()

    assert body["totalResults"] == 2
    for resource in body["Resources"]:
        assert set(resource) == {"schemas", "id", "title"}


def test_attributes_with_urn_qualified_enterprise_attribute(scim, ada) -> None:
    response = scim.get(f"/Users/{ada['id']}?attributes={ENTERPRISE}:department")

    body = response.get_json()
    assert body[ENTERPRISE] == {"department": "R&D"}
    assert "userName" not in body


def test_excluded_attributes_on_get_and_list_leave_those_out(scim, ada) -> None:
    single = scim.get(f"/Users/{ada['id']}?excludedAttributes=emails,name.familyName").get_json()
    listed = scim.get("/Users?excludedAttributes=emails,name.familyName").get_json()

    for body in (single, listed["Resources"][0]):
        assert "emails" not in body
        assert body["name"] == {"givenName": "Ada"}
        assert body["userName"] == "ada@example.com"
        assert body["meta"]["resourceType"] == "User"


def test_excluded_attributes_cannot_remove_id_or_schemas(scim, ada) -> None:
    body = scim.get(f"/Users/{ada['id']}?excludedAttributes=id,schemas").get_json()

    assert body["id"] == ada["id"]
    assert body["schemas"] == ada["schemas"]


def test_excluded_members_leaves_the_members_key_out(scim, ada) -> None:
    group = create_group(scim, members=[ada["id"]])

    single = scim.get(f"/Groups/{group['id']}?excludedAttributes=members").get_json()
    listed = scim.get("/Groups?excludedAttributes=members").get_json()

    assert "members" not in single
    assert "members" not in listed["Resources"][0]
    assert single["displayName"] == group["displayName"]
    assert [m["value"] for m in scim.get(f"/Groups/{group['id']}").get_json()["members"]] == [
        ada["id"]
    ]


def test_attributes_on_create_shapes_the_201_body(scim) -> None:
    response = scim.post("/Users?attributes=userName", json=user_body("shape@example.com"))

    assert response.status_code == 201
    assert set(response.get_json()) == {"schemas", "id", "userName"}
    assert response.headers["Location"].endswith(f"/Users/{response.get_json()['id']}")


# --- pagination (RFC 7644 §3.4.2.4) ---------------------------------------------------------------


@pytest.fixture
def five_users(scim) -> list[dict]:
    return [create_user(scim, f"user{i}@example.com") for i in range(1, 6)]


def test_pagination_is_one_based_and_walks_every_resource_once(scim, five_users) -> None:
    pages = [scim.get(f"/Users?startIndex={start}&count=2").get_json() for start in (1, 3, 5)]

    assert [p["startIndex"] for p in pages] == [1, 3, 5]
    assert [p["itemsPerPage"] for p in pages] == [2, 2, 1]
    assert all(p["totalResults"] == 5 for p in pages)
    walked = [resource_id for page in pages for resource_id in ids(page)]
    assert walked == [u["id"] for u in five_users]  # stable order: creation order


def test_pagination_order_is_stable_between_requests(scim, five_users) -> None:
    first = ids(scim.get("/Users?startIndex=2&count=3").get_json())
    again = ids(scim.get("/Users?startIndex=2&count=3").get_json())

    assert first == again == [u["id"] for u in five_users[1:4]]


def test_start_index_below_one_is_read_as_one(scim, five_users) -> None:
    body = scim.get("/Users?startIndex=0&count=1").get_json()

    assert body["startIndex"] == 1
    assert ids(body) == [five_users[0]["id"]]


def test_start_index_past_the_end_is_an_empty_page_with_the_total(scim, five_users) -> None:
    body = scim.get("/Users?startIndex=10&count=5").get_json()

    assert body["totalResults"] == 5
    assert body["itemsPerPage"] == 0
    assert body.get("Resources", []) == []


def test_count_zero_gives_the_total_only(scim, five_users) -> None:
    body = scim.get("/Users?count=0").get_json()

    assert body["totalResults"] == 5
    assert body["itemsPerPage"] == 0
    assert body.get("Resources", []) == []


def test_negative_count_is_read_as_zero(scim, five_users) -> None:
    body = scim.get("/Users?count=-3").get_json()

    assert body["totalResults"] == 5
    assert body.get("Resources", []) == []


def test_count_that_is_not_a_number_is_invalid_value(scim) -> None:
    assert_scim_error(scim.get("/Users?count=lots"), 400, "invalidValue")


def test_count_defaults_to_the_configured_page_size_and_is_capped(
    database, config, scim_for
) -> None:
    app = app_with(database, config, scim_default_count=2, scim_max_results=3)
    client = scim_for("Paging", app)
    for i in range(5):
        create_user(client, f"page{i}@example.com")

    default = client.get("/Users").get_json()
    capped = client.get("/Users?count=500").get_json()

    assert default["itemsPerPage"] == 2
    assert capped["itemsPerPage"] == 3
    assert default["totalResults"] == capped["totalResults"] == 5


# --- sorting (RFC 7644 §3.4.2.3) ------------------------------------------------------------------


@pytest.fixture
def mixed_case_users(scim) -> list[dict]:
    return [
        create_user(scim, "carol@example.com", name={"familyName": "Alvarez"}),
        create_user(scim, "alice@example.com", name={"familyName": "Chen"}),
        create_user(scim, "Bob@example.com", name={"familyName": "Baker"}),
    ]


def test_sort_by_user_name_ascending_ignores_case(scim, mixed_case_users) -> None:
    body = scim.get("/Users?sortBy=userName").get_json()

    assert user_names(body) == ["alice@example.com", "Bob@example.com", "carol@example.com"]


def test_sort_by_user_name_descending(scim, mixed_case_users) -> None:
    body = scim.get("/Users?sortBy=userName&sortOrder=descending").get_json()

    assert user_names(body) == ["carol@example.com", "Bob@example.com", "alice@example.com"]


def test_sort_by_sub_attribute_with_pagination(scim, mixed_case_users) -> None:
    body = scim.get("/Users?sortBy=name.familyName&startIndex=2&count=1").get_json()

    assert body["totalResults"] == 3
    assert user_names(body) == ["Bob@example.com"]


def test_sort_combined_with_filter(scim, mixed_case_users) -> None:
    body = scim.get(
        '/Users?filter=userName ne "alice@example.com"&sortBy=userName&sortOrder=descending'
    ).get_json()

    assert user_names(body) == ["carol@example.com", "Bob@example.com"]


def test_sort_order_other_than_ascending_or_descending_is_invalid_value(scim) -> None:
    assert_scim_error(scim.get("/Users?sortBy=userName&sortOrder=sideways"), 400, "invalidValue")


def test_sort_by_unknown_attribute_is_invalid_value_whether_or_not_anything_matches(scim) -> None:
    assert_scim_error(scim.get("/Users?sortBy=shoeSize"), 400, "invalidValue")
    create_user(scim)
    assert_scim_error(scim.get("/Users?sortBy=shoeSize"), 400, "invalidValue")


# --- meta, Location and versions (RFC 7643 §3.1, RFC 7644 §3.14) ----------------------------------


def test_meta_of_a_created_user(scim) -> None:
    response = scim.post("/Users", json=user_body())

    body = response.get_json()
    meta = body["meta"]
    assert meta["resourceType"] == "User"
    assert meta["location"] == f"{PUBLIC_URL}/scim/v2/{scim.org_id}/Users/{body['id']}"
    assert response.headers["Location"] == meta["location"]
    created, modified = parse_time(meta["created"]), parse_time(meta["lastModified"])
    assert abs((datetime.now(UTC) - created).total_seconds()) < 60
    assert modified >= created
    assert meta["version"].startswith('W/"')
    assert response.headers["ETag"] == meta["version"]


def test_meta_of_a_created_group(scim) -> None:
    response = scim.post("/Groups", json={"schemas": [GROUP], "displayName": "Meta"})

    body = response.get_json()
    assert body["meta"]["resourceType"] == "Group"
    assert body["meta"]["location"] == f"{PUBLIC_URL}/scim/v2/{scim.org_id}/Groups/{body['id']}"
    assert response.headers["Location"] == body["meta"]["location"]
    assert response.headers["ETag"] == body["meta"]["version"]


def test_a_change_moves_version_and_last_modified_but_not_created(scim) -> None:
    created = create_user(scim)
    time.sleep(0.01)

    body = scim.patch(
        f"/Users/{created['id']}", json=patch({"op": "replace", "path": "title", "value": "New"})
    ).get_json()

    assert body["meta"]["version"] != created["meta"]["version"]
    assert body["meta"]["created"] == created["meta"]["created"]
    assert parse_time(body["meta"]["lastModified"]) > parse_time(created["meta"]["lastModified"])


def test_etag_header_on_every_resource_response(scim) -> None:
    user = scim.post("/Users", json=user_body())
    user_id = user.get_json()["id"]
    group = scim.post("/Groups", json={"schemas": [GROUP], "displayName": "Tagged"})
    group_id = group.get_json()["id"]

    responses = {
        "POST user": user,
        "GET user": scim.get(f"/Users/{user_id}"),
        "PUT user": scim.put(f"/Users/{user_id}", json=user_body(title="x")),
        "PATCH user": scim.patch(
            f"/Users/{user_id}", json=patch({"op": "replace", "path": "title", "value": "y"})
        ),
        "POST group": group,
        "GET group": scim.get(f"/Groups/{group_id}"),
        "PUT group": scim.put(
            f"/Groups/{group_id}", json={"schemas": [GROUP], "displayName": "Tagged 2"}
        ),
        "PATCH group": scim.patch(
            f"/Groups/{group_id}",
            json=patch({"op": "add", "path": "members", "value": [{"value": user_id}]}),
        ),
    }

    for name, response in responses.items():
        assert response.status_code in (200, 201, 204), name
        etag = response.headers.get("ETag")
        assert etag and etag.startswith('W/"'), name
        if response.status_code != 204:
            assert etag == response.get_json()["meta"]["version"], name
    final_group = scim.get(f"/Groups/{group_id}")
    assert final_group.headers["ETag"] == responses["PATCH group"].headers["ETag"]


def test_put_with_stale_if_match_is_412_and_changes_nothing(scim) -> None:
    created = create_user(scim)

    response = scim.put(
        f"/Users/{created['id']}",
        json=user_body(created["userName"], title="stale write"),
        headers={"If-Match": 'W/"999"'},
    )

    assert_scim_error(response, 412)
    assert scim.get(f"/Users/{created['id']}").get_json() == created


def test_patch_with_stale_if_match_is_412_and_changes_nothing(scim) -> None:
    created = create_user(scim)

    response = scim.patch(
        f"/Users/{created['id']}",
        json=patch({"op": "replace", "path": "title", "value": "stale write"}),
        headers={"If-Match": 'W/"999"'},
    )

    assert_scim_error(response, 412)
    assert scim.get(f"/Users/{created['id']}").get_json() == created


def test_delete_with_stale_if_match_is_412_and_keeps_the_resource(scim) -> None:
    group = create_group(scim)

    response = scim.delete(f"/Groups/{group['id']}", headers={"If-Match": 'W/"999"'})

    assert_scim_error(response, 412)
    assert scim.get(f"/Groups/{group['id']}").status_code == 200


def test_if_match_with_the_current_version_or_star_succeeds(scim) -> None:
    created = create_user(scim)

    first = scim.patch(
        f"/Users/{created['id']}",
        json=patch({"op": "replace", "path": "title", "value": "one"}),
        headers={"If-Match": created["meta"]["version"]},
    )
    second = scim.patch(
        f"/Users/{created['id']}",
        json=patch({"op": "replace", "path": "title", "value": "two"}),
        headers={"If-Match": "*"},
    )

    assert first.status_code == 200
    assert second.status_code == 200
    assert second.get_json()["title"] == "two"


def test_if_none_match_with_the_current_version_is_304(scim) -> None:
    created = create_user(scim)

    response = scim.get(
        f"/Users/{created['id']}", headers={"If-None-Match": created["meta"]["version"]}
    )

    assert response.status_code == 304
    assert response.data == b""
    assert response.headers["ETag"] == created["meta"]["version"]


def test_if_none_match_with_an_old_version_returns_the_resource(scim) -> None:
    created = create_user(scim)
    scim.patch(
        f"/Users/{created['id']}", json=patch({"op": "replace", "path": "title", "value": "v2"})
    )

    response = scim.get(
        f"/Users/{created['id']}", headers={"If-None-Match": created["meta"]["version"]}
    )

    assert response.status_code == 200
    assert response.get_json()["title"] == "v2"


# --- POST .search (RFC 7644 §3.4.3) -------------------------------------------------------------


def test_post_search_filters_projects_sorts_and_pages(scim, mixed_case_users) -> None:
    response = scim.post(
        "/Users/.search",
        json={
            "schemas": [SEARCH],
            "filter": 'userName ne "carol@example.com"',
            "attributes": ["userName"],
            "sortBy": "userName",
            "sortOrder": "descending",
            "startIndex": 1,
            "count": 10,
        },
    )

    assert response.status_code == 200
    assert response.mimetype == SCIM_JSON
    body = response.get_json()
    assert body["schemas"] == [LIST]
    assert body["totalResults"] == 2
    assert user_names(body) == ["Bob@example.com", "alice@example.com"]
    assert all(set(r) == {"schemas", "id", "userName"} for r in body["Resources"])


def test_post_search_on_groups_with_excluded_attributes(scim) -> None:
    user = create_user(scim)
    group = create_group(scim, "Searched", members=[user["id"]])

    body = scim.post(
        "/Groups/.search",
        json={
            "schemas": [SEARCH],
            "filter": 'displayName eq "searched"',
            "excludedAttributes": ["members"],
        },
    ).get_json()

    assert ids(body) == [group["id"]]
    assert "members" not in body["Resources"][0]


def test_post_search_at_the_root_is_answered_or_declined_with_501(scim) -> None:
    # RFC 7644 §3.4.3 lets clients search every resource type at once with POST /.search; a
    # server that does not offer it says 501 Not Implemented (§3.12), not "no such endpoint".
    create_user(scim)

    response = scim.post("/.search", json={"schemas": [SEARCH], "filter": "userName pr"})

    if response.status_code == 200:
        assert response.get_json()["totalResults"] == 1
    else:
        assert_scim_error(response, 501)


def test_post_search_without_search_request_schema_is_invalid_syntax(scim) -> None:
    response = scim.post("/Users/.search", json={"filter": "userName pr"})

    assert_scim_error(response, 400, "invalidSyntax")


def test_post_search_with_a_bad_filter_is_invalid_filter(scim) -> None:
    response = scim.post("/Users/.search", json={"schemas": [SEARCH], "filter": "userName eq"})

    assert_scim_error(response, 400, "invalidFilter")


# --- filters (RFC 7644 §3.4.2.2) -----------------------------------------------------------------


@pytest.fixture
def population(scim) -> dict[str, dict]:
    users = {
        "ada": create_user(
            scim,
            "ada@example.com",
            externalId="ext-ada",
            name={"givenName": "Ada", "familyName": "Lovelace"},
            title="Engineer",
            emails=[{"value": "ada@example.com", "type": "work", "primary": True}],
            schemas=[USER, ENTERPRISE],
            **{ENTERPRISE: {"employeeNumber": "1", "department": "R&D"}},
        ),
        "bob": create_user(
            scim,
            "bob@example.com",
            name={"givenName": "Bob", "familyName": "Builder"},
            emails=[{"value": "bob@home.example", "type": "home"}],
            active=False,
            schemas=[USER, ENTERPRISE],
            **{ENTERPRISE: {"employeeNumber": "2", "department": "Sales"}},
        ),
        "carol": create_user(
            scim,
            "carol@example.org",
            title="Senior Engineer",
            emails=[
                {"value": "carol@example.org", "type": "work"},
                {"value": "carol@home.example", "type": "home"},
            ],
            active=True,
        ),
        "dave": create_user(scim, "Dave@Example.com", active=True),
    }
    return users


USER_FILTERS = [
    ('userName eq "ADA@EXAMPLE.COM"', {"ada"}),
    ('userName eq "dave@example.com"', {"dave"}),
    ('USERNAME Eq "bob@example.com"', {"bob"}),
    ('userName sw "B"', {"bob"}),
    ('userName ew ".org"', {"carol"}),
    ('userName co "AROL"', {"carol"}),
    ('userName ne "ada@example.com"', {"bob", "carol", "dave"}),
    ('userName gt "c"', {"carol", "dave"}),
    ('userName le "bob@example.com"', {"ada", "bob"}),
    ("title pr", {"ada", "carol"}),
    ("not (title pr)", {"bob", "dave"}),
    ('title eq "engineer"', {"ada"}),
    ('title co "Engineer"', {"ada", "carol"}),
    ("active eq false", {"bob"}),
    ("active eq true and title pr", {"ada", "carol"}),
    ('title eq "Engineer" or userName eq "dave@example.com"', {"ada", "dave"}),
    (
        f'(title co "engineer" and active eq true) or {ENTERPRISE}:department eq "Sales"',
        {"ada", "bob", "carol"},
    ),
    ('emails[type eq "work" and value co "ada"]', {"ada"}),
    ('emails[type eq "home"]', {"bob", "carol"}),
    ("emails[primary eq true]", {"ada"}),
    ('emails.type eq "home"', {"bob", "carol"}),
    ('emails.value ew "home.example"', {"bob", "carol"}),
    ("emails pr", {"ada", "bob", "carol"}),
    ('name.familyName eq "lovelace"', {"ada"}),
    (f'{ENTERPRISE}:department eq "Sales"', {"bob"}),
    (f'{ENTERPRISE}:employeeNumber eq "1"', {"ada"}),
    (f'{USER}:userName eq "bob@example.com"', {"bob"}),
    ('externalId eq "ext-ada"', {"ada"}),
    ('meta.resourceType eq "User"', {"ada", "bob", "carol", "dave"}),
]


def test_user_filters_return_exactly_the_matching_users(scim, population) -> None:
    by_id = {u["id"]: name for name, u in population.items()}
    wrong = {}

    for expression, expected in USER_FILTERS:
        response = scim.get("/Users", query_string={"filter": expression})
        body = response.get_json()
        if response.status_code != 200:
            wrong[expression] = (response.status_code, body.get("detail"))
            continue
        found = {by_id[i] for i in ids(body)}
        if found != expected or body["totalResults"] != len(expected):
            wrong[expression] = {"expected": sorted(expected), "got": sorted(found)}

    assert wrong == {}


def test_filter_by_id(scim, population) -> None:
    target = population["carol"]["id"]

    body = scim.get("/Users", query_string={"filter": f'id eq "{target}"'}).get_json()

    assert ids(body) == [target]


def test_filter_on_last_modified_finds_what_changed_since(scim) -> None:
    before = create_user(scim)
    time.sleep(0.02)
    since = datetime.now(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")
    time.sleep(0.02)
    after = create_user(scim)

    newer = scim.get("/Users", query_string={"filter": f'meta.lastModified gt "{since}"'})
    older = scim.get("/Users", query_string={"filter": f'meta.lastModified lt "{since}"'})

    assert ids(newer.get_json()) == [after["id"]]
    assert ids(older.get_json()) == [before["id"]]


def test_filter_last_modified_gt_a_returned_timestamp_excludes_that_resource(scim) -> None:
    # An IdP doing delta reads asks for "changed after the lastModified I last saw": the
    # resource that carried that very timestamp has not changed since and must not come back.
    seen = create_user(scim)
    stamp = seen["meta"]["lastModified"]

    gt = scim.get("/Users", query_string={"filter": f'meta.lastModified gt "{stamp}"'})
    ge = scim.get("/Users", query_string={"filter": f'meta.lastModified ge "{stamp}"'})

    assert ids(gt.get_json()) == []
    assert ids(ge.get_json()) == [seen["id"]]


def test_group_filters_on_display_name_and_members(scim, population) -> None:
    ada, bob, carol = (population[n]["id"] for n in ("ada", "bob", "carol"))
    engineering = create_group(scim, "Engineering", members=[ada, carol])
    sales = create_group(scim, "Sales", members=[bob])
    empty = create_group(scim, "Empty")
    cases = [
        ('displayName eq "engineering"', [engineering]),
        (f'members[value eq "{bob}"]', [sales]),
        (f'members.value eq "{ada}"', [engineering]),
        ("members pr", [engineering, sales]),
        ("not (members pr)", [empty]),
        ('displayName sw "e"', [engineering, empty]),
    ]

    for expression, expected in cases:
        body = scim.get("/Groups", query_string={"filter": expression}).get_json()
        assert sorted(ids(body)) == sorted(g["id"] for g in expected), expression


def test_user_filter_on_group_membership(scim, population) -> None:
    engineering = create_group(
        scim, "Engineering", members=[population["ada"]["id"], population["carol"]["id"]]
    )

    body = scim.get(
        "/Users", query_string={"filter": f'groups.value eq "{engineering["id"]}"'}
    ).get_json()

    assert sorted(ids(body)) == sorted([population["ada"]["id"], population["carol"]["id"]])


BAD_FILTERS = [
    "userName eq",
    'userName zz "x"',
    '(userName eq "a"',
    'userName eq "unterminated',
    'emails[type eq "work"',
    'userName eq "a" and',
    "active gt true",
    'meta.lastModified gt "not a date"',
    'shoeSize eq "38"',
]


def test_bad_filters_are_400_invalid_filter(scim) -> None:
    for expression in BAD_FILTERS:
        response = scim.get("/Users", query_string={"filter": expression})

        assert_scim_error(response, 400, "invalidFilter")


# --- uniqueness (RFC 7644 §3.3, §3.12) ------------------------------------------------------------


def test_duplicate_user_name_in_other_case_is_409_uniqueness(scim, database) -> None:
    create_user(scim, "Grace@Example.com")
    before = row_counts(database)

    response = scim.post("/Users", json=user_body("grace@example.COM"))

    assert_scim_error(response, 409, "uniqueness")
    assert "userName 'grace@example.COM' is already taken" in response.get_json()["detail"]
    assert row_counts(database) == before


def test_duplicate_user_external_id_is_409_uniqueness(scim, database) -> None:
    create_user(scim, externalId="ext-1")
    before = row_counts(database)

    response = scim.post("/Users", json=user_body(externalId="ext-1"))

    assert_scim_error(response, 409, "uniqueness")
    assert "externalId 'ext-1' is already taken" in response.get_json()["detail"]
    assert row_counts(database) == before


def test_duplicate_group_display_name_is_409_uniqueness(scim, database) -> None:
    create_group(scim, "Engineering")
    before = row_counts(database)

    response = scim.post("/Groups", json={"schemas": [GROUP], "displayName": "ENGINEERING"})

    assert_scim_error(response, 409, "uniqueness")
    assert row_counts(database) == before


def test_duplicate_group_external_id_is_409_uniqueness(scim, database) -> None:
    create_group(scim, "One", externalId="grp-1")
    before = row_counts(database)

    response = scim.post(
        "/Groups", json={"schemas": [GROUP], "displayName": "Two", "externalId": "grp-1"}
    )

    assert_scim_error(response, 409, "uniqueness")
    assert row_counts(database) == before


def test_renaming_to_a_taken_user_name_is_409_and_changes_nothing(scim) -> None:
    create_user(scim, "taken@example.com")
    other = create_user(scim)

    by_put = scim.put(f"/Users/{other['id']}", json=user_body("TAKEN@example.com"))
    by_patch = scim.patch(
        f"/Users/{other['id']}",
        json=patch({"op": "replace", "path": "userName", "value": "taken@example.com"}),
    )

    assert_scim_error(by_put, 409, "uniqueness")
    assert_scim_error(by_patch, 409, "uniqueness")
    assert scim.get(f"/Users/{other['id']}").get_json() == other


def test_renaming_a_group_to_a_taken_display_name_is_409(scim) -> None:
    create_group(scim, "Taken")
    other = create_group(scim, "Free")

    response = scim.patch(
        f"/Groups/{other['id']}",
        json=patch({"op": "replace", "path": "displayName", "value": "taken"}),
    )

    assert_scim_error(response, 409, "uniqueness")
    assert scim.get(f"/Groups/{other['id']}").get_json()["displayName"] == "Free"


def test_same_user_name_in_another_organization_is_allowed(scim, scim_for) -> None:
    create_user(scim, "shared@example.com")
    other = scim_for("Other")

    response = other.post("/Users", json=user_body("shared@example.com"))

    assert response.status_code == 201


def race_to_create(app, scim, user_names: list[str]) -> list[int]:
    """POST each user name from a thread of its own, each with its own test client, all released
    at the same moment; the statuses in order."""
    barrier = threading.Barrier(len(user_names))

    def create(user_name: str) -> int:
        client = type(scim)(app.test_client(), scim.org_id, scim.token)
        barrier.wait(timeout=30)
        return client.post("/Users", json=user_body(user_name)).status_code

    with ThreadPoolExecutor(max_workers=len(user_names)) as pool:
        return list(pool.map(create, user_names))


def test_concurrent_creates_of_one_user_name_give_one_201_and_one_409(app, scim, database) -> None:
    same = race_to_create(app, scim, ["race-a@example.com", "race-a@example.com"])
    other_case = race_to_create(app, scim, ["Race-B@example.com", "race-b@EXAMPLE.com"])

    assert sorted(same) == [201, 409]
    assert sorted(other_case) == [201, 409]
    with database.read() as session:
        names = session.scalars(
            select(DirectoryUser.user_name_lower).where(DirectoryUser.org_id == scim.org_id)
        ).all()
    assert sorted(names) == ["race-a@example.com", "race-b@example.com"]


# --- request errors write nothing (RFC 7644 §3.12) ------------------------------------------------


@pytest.mark.parametrize("raw", [b"{not json", b'{"schemas": [', b"", b"   "])
def test_malformed_json_is_400_invalid_syntax_and_writes_nothing(
    scim, database, raw: bytes
) -> None:
    created = create_user(scim)
    group = create_group(scim)
    before = row_counts(database)

    responses = [
        scim.request("POST", "/Users", data=raw, content_type=SCIM_JSON),
        scim.request("PUT", f"/Users/{created['id']}", data=raw, content_type=SCIM_JSON),
        scim.request("PATCH", f"/Groups/{group['id']}", data=raw, content_type=SCIM_JSON),
        scim.request("POST", "/Bulk", data=raw, content_type=SCIM_JSON),
    ]

    for response in responses:
        assert_scim_error(response, 400, "invalidSyntax")
    assert row_counts(database) == before
    assert scim.get(f"/Users/{created['id']}").get_json() == created


def test_json_that_is_not_an_object_is_400_and_writes_nothing(scim, database) -> None:
    before = row_counts(database)

    response = scim.post("/Users", json=[user_body()])

    assert_scim_error(response, 400)
    assert row_counts(database) == before


WRONG_TYPES = [
    {"userName": {"first": "ada"}},
    {"userName": True},
    {"userName": ["ada@example.com"]},
    {"active": "maybe"},
    {"active": 1},
    {"name": "Ada Lovelace"},
    {"emails": [{"value": "a@example.com", "primary": "sometimes"}]},
    {"title": {"text": "Engineer"}},
]


def test_wrong_attribute_types_are_400_invalid_value_and_write_nothing(scim, database) -> None:
    for change in WRONG_TYPES:
        response = scim.post("/Users", json={**user_body(), **change})

        body = assert_scim_error(response, 400, "invalidValue")
        assert next(iter(change)) in body["detail"], (change, body)
    assert row_counts(database) == (0, 0, 0)


def test_missing_user_name_is_400_invalid_value(scim, database) -> None:
    response = scim.post("/Users", json={"schemas": [USER], "name": {"givenName": "Nameless"}})

    assert_scim_error(response, 400, "invalidValue")
    assert row_counts(database) == (0, 0, 0)


def test_missing_or_wrong_schemas_is_400(scim, database) -> None:
    for body in (
        {"userName": "noschemas@example.com"},
        {"schemas": [GROUP], "userName": "wrongschema@example.com"},
    ):
        assert_scim_error(scim.post("/Users", json=body), 400)
    assert row_counts(database) == (0, 0, 0)


def test_id_in_a_post_body_is_400_mutability_and_writes_nothing(scim, database) -> None:
    response = scim.post("/Users", json=user_body(id=str(uuid.uuid4())))

    assert_scim_error(response, 400, "mutability")
    assert row_counts(database) == (0, 0, 0)


def test_put_with_an_id_other_than_the_url_is_400_mutability(scim) -> None:
    created = create_user(scim)

    response = scim.put(
        f"/Users/{created['id']}", json=user_body(created["userName"], id=str(uuid.uuid4()))
    )

    assert_scim_error(response, 400, "mutability")
    assert scim.get(f"/Users/{created['id']}").get_json() == created


def test_patch_of_the_whole_extension_object_ignores_a_schemas_key_inside_it(scim) -> None:
    # Clients built on scim2-models serialise an extension object with its own "schemas" list.
    created = create_user(scim)

    response = scim.patch(
        f"/Users/{created['id']}",
        json=patch(
            {
                "op": "add",
                "path": ENTERPRISE,
                "value": {"schemas": [ENTERPRISE], "department": "R&D", "costCenter": "42"},
            }
        ),
    )

    assert response.status_code == 200, response.get_json()
    assert response.get_json()[ENTERPRISE] == {"department": "R&D", "costCenter": "42"}
    assert ENTERPRISE in response.get_json()["schemas"]


def test_patch_of_a_read_only_attribute_is_400_mutability(scim) -> None:
    created = create_user(scim)

    response = scim.patch(
        f"/Users/{created['id']}",
        json=patch({"op": "replace", "path": "id", "value": str(uuid.uuid4())}),
    )

    assert_scim_error(response, 400, "mutability")
    assert scim.get(f"/Users/{created['id']}").get_json() == created


def test_put_patch_delete_of_unknown_id_is_404(scim) -> None:
    missing = str(uuid.uuid4())

    assert_scim_error(scim.get(f"/Users/{missing}"), 404)
    assert_scim_error(scim.put(f"/Users/{missing}", json=user_body()), 404)
    assert_scim_error(
        scim.patch(
            f"/Users/{missing}", json=patch({"op": "replace", "path": "title", "value": "x"})
        ),
        404,
    )
    assert_scim_error(scim.delete(f"/Groups/{missing}"), 404)


def test_body_over_the_payload_limit_is_413_and_writes_nothing(database, config, scim_for) -> None:
    app = app_with(database, config, scim_max_payload=1024)
    client = scim_for("Small bodies", app)
    existing = create_user(client)
    before = row_counts(database)
    padding = "x" * 2000

    responses = [
        client.post("/Users", json=user_body(title=padding)),
        client.put(f"/Users/{existing['id']}", json=user_body(title=padding)),
        client.patch(
            f"/Users/{existing['id']}",
            json=patch({"op": "replace", "path": "title", "value": padding}),
        ),
        client.post(
            "/Bulk",
            json={
                "schemas": [BULK_REQUEST],
                "Operations": [
                    {
                        "method": "POST",
                        "path": "/Users",
                        "bulkId": "a",
                        "data": user_body(title=padding),
                    }
                ],
            },
        ),
    ]

    for response in responses:
        assert_scim_error(response, 413)
    assert row_counts(database) == before
    assert client.get(f"/Users/{existing['id']}").get_json() == existing
    # A body under the limit still goes through on the same application.
    assert client.post("/Users", json=user_body()).status_code == 201


# --- organizations are isolated -----------------------------------------------------------------


@pytest.fixture
def other_org(scim_for):
    return scim_for("Other Org")


def test_another_orgs_token_is_401_like_a_wrong_token(scim, other_org) -> None:
    foreign = scim.client.get(
        f"{scim.base}/Users", headers={"Authorization": f"Bearer {other_org.token}"}
    )
    wrong = scim.client.get(f"{scim.base}/Users", headers={"Authorization": "Bearer nonsense"})
    missing = scim.client.get(f"{scim.base}/Users")

    assert_scim_error(foreign, 401)
    assert foreign.get_json() == wrong.get_json()
    assert foreign.headers["WWW-Authenticate"].startswith("Bearer")
    assert_scim_error(missing, 401)
    assert missing.headers["WWW-Authenticate"].startswith("Bearer")


def test_another_orgs_token_cannot_write(scim, other_org, database) -> None:
    created = create_user(scim)
    before = row_counts(database)
    headers = {"Authorization": f"Bearer {other_org.token}"}

    responses = [
        scim.client.post(
            f"{scim.base}/Users",
            data=json.dumps(user_body()),
            headers=headers,
            content_type=SCIM_JSON,
        ),
        scim.client.delete(f"{scim.base}/Users/{created['id']}", headers=headers),
    ]

    for response in responses:
        assert_scim_error(response, 401)
    assert row_counts(database) == before


def test_another_orgs_resource_id_is_404_like_an_unknown_id(scim, other_org) -> None:
    theirs = create_user(other_org, "theirs@example.com")
    their_group = create_group(other_org, "Their group")
    unknown = str(uuid.uuid4())

    foreign = scim.get(f"/Users/{theirs['id']}")
    missing = scim.get(f"/Users/{unknown}")

    assert_scim_error(foreign, 404)
    assert foreign.get_json()["detail"] == missing.get_json()["detail"].replace(
        unknown, theirs["id"]
    )
    assert "theirs@example.com" not in foreign.get_data(as_text=True)
    assert_scim_error(scim.put(f"/Users/{theirs['id']}", json=user_body("mine@example.com")), 404)
    assert_scim_error(
        scim.patch(
            f"/Users/{theirs['id']}", json=patch({"op": "replace", "path": "title", "value": "x"})
        ),
        404,
    )
    assert_scim_error(scim.delete(f"/Users/{theirs['id']}"), 404)
    assert_scim_error(scim.get(f"/Groups/{their_group['id']}"), 404)
    assert_scim_error(scim.delete(f"/Groups/{their_group['id']}"), 404)
    assert other_org.get(f"/Users/{theirs['id']}").get_json() == theirs
    assert other_org.get(f"/Groups/{their_group['id']}").status_code == 200


def test_another_orgs_users_are_not_listed_found_or_addable(scim, other_org) -> None:
    theirs = create_user(other_org, "theirs@example.com")
    mine = create_group(scim, "Mine")

    listed = scim.get("/Users").get_json()
    filtered = scim.get('/Users?filter=userName eq "theirs@example.com"').get_json()
    added = scim.patch(
        f"/Groups/{mine['id']}",
        json=patch({"op": "add", "path": "members", "value": [{"value": theirs["id"]}]}),
    )

    assert listed["totalResults"] == 0
    assert filtered["totalResults"] == 0
    assert_scim_error(added, 400, "invalidValue")
    assert "theirs@example.com" not in added.get_data(as_text=True)
    assert "members" not in scim.get(f"/Groups/{mine['id']}").get_json()


# --- media types (RFC 7644 §3.1, §8.1) ------------------------------------------------------------


@pytest.mark.parametrize(
    "content_type",
    ["application/scim+json", "application/json", "application/scim+json; charset=utf-8"],
)
def test_scim_json_and_plain_json_requests_are_accepted(scim, content_type: str) -> None:
    scim.content_type = content_type

    created = scim.post("/Users", json=user_body())
    user_id = created.get_json()["id"]
    replaced = scim.put(f"/Users/{user_id}", json=user_body(title="PUT"))
    patched = scim.patch(
        f"/Users/{user_id}", json=patch({"op": "replace", "path": "title", "value": "PATCH"})
    )
    searched = scim.post("/Users/.search", json={"schemas": [SEARCH], "filter": "title pr"})

    assert [r.status_code for r in (created, replaced, patched, searched)] == [201, 200, 200, 200]
    for response in (created, replaced, patched, searched):
        assert response.mimetype == SCIM_JSON


def test_every_response_body_is_scim_json(scim) -> None:
    created = create_user(scim)
    responses = [
        scim.get("/Users"),
        scim.get(f"/Users/{created['id']}"),
        scim.get("/ServiceProviderConfig"),
        scim.get("/Schemas"),
        scim.get(f"/Users/{uuid.uuid4()}"),
        scim.get("/Users?filter=bad filter"),
        scim.client.get(f"{scim.base}/Users"),
    ]

    for response in responses:
        assert response.mimetype == SCIM_JSON, (response.status_code, response.data[:100])


# --- Bulk (RFC 7644 §3.7) -------------------------------------------------------------------------


def bulk(*operations: dict, fail_on_errors: int | None = None) -> dict:
    body: dict = {"schemas": [BULK_REQUEST], "Operations": list(operations)}
    if fail_on_errors is not None:
        body["failOnErrors"] = fail_on_errors
    return body


def bulk_post_user(bulk_id: str, user_name: str | None = None) -> dict:
    return {"method": "POST", "path": "/Users", "bulkId": bulk_id, "data": user_body(user_name)}


def test_bulk_creates_user_and_group_referencing_it_by_bulk_id(scim) -> None:
    response = scim.post(
        "/Bulk",
        json=bulk(
            bulk_post_user("u1", "bulk.user@example.com"),
            {
                "method": "POST",
                "path": "/Groups",
                "bulkId": "g1",
                "data": {
                    "schemas": [GROUP],
                    "displayName": "Bulk group",
                    "members": [{"type": "User", "value": "bulkId:u1"}],
                },
            },
        ),
    )

    assert response.status_code == 200
    assert response.mimetype == SCIM_JSON
    body = response.get_json()
    assert body["schemas"] == [BULK_RESPONSE]
    results = {op["bulkId"]: op for op in body["Operations"]}
    assert results["u1"]["status"] == "201"
    assert results["g1"]["status"] == "201"
    assert results["u1"]["method"] == "POST"
    user_id = results["u1"]["location"].rsplit("/", 1)[1]
    assert results["u1"]["location"] == f"{PUBLIC_URL}/scim/v2/{scim.org_id}/Users/{user_id}"
    group = scim.get(results["g1"]["location"].removeprefix(PUBLIC_URL)).get_json()
    assert [m["value"] for m in group["members"]] == [user_id]
    assert results["g1"]["version"] == group["meta"]["version"]


def test_bulk_resolves_a_reference_to_a_later_operation(scim) -> None:
    response = scim.post(
        "/Bulk",
        json=bulk(
            {
                "method": "POST",
                "path": "/Groups",
                "bulkId": "g1",
                "data": {
                    "schemas": [GROUP],
                    "displayName": "Forward",
                    "members": [{"value": "bulkId:u1"}],
                },
            },
            bulk_post_user("u1"),
        ),
    )

    results = {op["bulkId"]: op for op in response.get_json()["Operations"]}
    assert results["g1"]["status"] == results["u1"]["status"] == "201"
    group_path = results["g1"]["location"].removeprefix(PUBLIC_URL)
    user_id = results["u1"]["location"].rsplit("/", 1)[1]
    assert [m["value"] for m in scim.get(group_path).get_json()["members"]] == [user_id]


def test_bulk_patch_put_and_delete(scim) -> None:
    user = create_user(scim)
    group = create_group(scim, "Bulk edits")

    response = scim.post(
        "/Bulk",
        json=bulk(
            {
                "method": "PATCH",
                "path": f"/Groups/{group['id']}",
                "data": patch({"op": "add", "path": "members", "value": [{"value": user["id"]}]}),
            },
            {"method": "PUT", "path": f"/Users/{user['id']}", "data": user_body(title="Bulked")},
            {"method": "DELETE", "path": f"/Groups/{uuid.uuid4()}"},
        ),
    )

    statuses = [op["status"] for op in response.get_json()["Operations"]]
    assert statuses == ["200", "200", "404"]
    assert [m["value"] for m in scim.get(f"/Groups/{group['id']}").get_json()["members"]] == [
        user["id"]
    ]
    assert scim.get(f"/Users/{user['id']}").get_json()["title"] == "Bulked"


def test_bulk_fail_on_errors_stops_after_that_many_errors(scim, database) -> None:
    create_user(scim, "taken@example.com")

    response = scim.post(
        "/Bulk",
        json=bulk(
            bulk_post_user("ok1", "ok1@example.com"),
            bulk_post_user("dup1", "taken@example.com"),
            bulk_post_user("ok2", "ok2@example.com"),
            bulk_post_user("dup2", "TAKEN@example.com"),
            bulk_post_user("ok3", "ok3@example.com"),
            bulk_post_user("ok4", "ok4@example.com"),
            fail_on_errors=2,
        ),
    )

    assert response.status_code == 200
    results = response.get_json()["Operations"]
    assert [(r["bulkId"], r["status"]) for r in results] == [
        ("ok1", "201"),
        ("dup1", "409"),
        ("ok2", "201"),
        ("dup2", "409"),
    ]
    assert results[1]["response"]["scimType"] == "uniqueness"
    with database.read() as session:
        names = set(session.scalars(select(DirectoryUser.user_name)))
    assert names == {"taken@example.com", "ok1@example.com", "ok2@example.com"}


def test_bulk_without_fail_on_errors_runs_every_operation(scim) -> None:
    create_user(scim, "taken@example.com")

    response = scim.post(
        "/Bulk",
        json=bulk(
            bulk_post_user("dup1", "taken@example.com"),
            bulk_post_user("dup2", "taken@example.com"),
            bulk_post_user("ok1", "ok1@example.com"),
        ),
    )

    statuses = [r["status"] for r in response.get_json()["Operations"]]
    assert statuses == ["409", "409", "201"]


def test_bulk_over_max_operations_is_413_and_writes_nothing(database, config, scim_for) -> None:
    app = app_with(database, config, scim_bulk_max_operations=2)
    client = scim_for("Bulk limits", app)

    response = client.post(
        "/Bulk", json=bulk(bulk_post_user("a"), bulk_post_user("b"), bulk_post_user("c"))
    )

    assert_scim_error(response, 413)
    assert row_counts(database) == (0, 0, 0)
    ok = client.post("/Bulk", json=bulk(bulk_post_user("a"), bulk_post_user("b")))
    assert [r["status"] for r in ok.get_json()["Operations"]] == ["201", "201"]


def test_bulk_without_bulk_request_schema_is_invalid_syntax(scim, database) -> None:
    response = scim.post("/Bulk", json={"Operations": [bulk_post_user("a")]})

    assert_scim_error(response, 400, "invalidSyntax")
    assert row_counts(database) == (0, 0, 0)


# --- reverse proxies ------------------------------------------------------------------------------

FORWARDED = {
    "X-Forwarded-Proto": "https",
    "X-Forwarded-Host": "idm.customer.example",
    "X-Forwarded-Prefix": "/gateway",
}


def test_forwarded_headers_are_honoured_when_the_proxy_is_trusted(
    database, config, scim_for
) -> None:
    app = app_with(database, config, trust_proxy=1)
    client = scim_for("Proxied", app)

    response = client.post("/Users", json=user_body(), headers=FORWARDED)

    body = response.get_json()
    expected = f"https://idm.customer.example/gateway/scim/v2/{client.org_id}/Users/{body['id']}"
    assert response.status_code == 201
    assert response.headers["Location"] == expected
    assert body["meta"]["location"] == expected


def test_forwarded_headers_are_ignored_without_a_trusted_proxy(scim) -> None:
    response = scim.post("/Users", json=user_body(), headers=FORWARDED)

    body = response.get_json()
    expected = f"{PUBLIC_URL}/scim/v2/{scim.org_id}/Users/{body['id']}"
    assert response.headers["Location"] == expected
    assert body["meta"]["location"] == expected
    listed = scim.get("/Users", headers=FORWARDED).get_json()
    assert listed["Resources"][0]["meta"]["location"] == expected


# --- large groups -------------------------------------------------------------------------------


def insert_users(database, org_id: str, count: int, prefix: str) -> list[str]:
    """Users written straight into the directory table: POSTing thousands would be slow."""
    now = utcnow()
    rows = [
        {
            "id": str(uuid.uuid4()),
            "org_id": org_id,
            "source": "scim",
            "user_name": f"{prefix}{i}@example.com",
            "user_name_lower": f"{prefix}{i}@example.com",
            "resource": {"schemas": [USER], "userName": f"{prefix}{i}@example.com"},
            "active": True,
            "version": 1,
            "created_at": now,
            "last_modified": now,
        }
        for i in range(count)
    ]
    with database.transaction() as session:
        session.execute(insert(DirectoryUser), rows)
    return [row["id"] for row in rows]


def insert_members(database, group_id: str, user_ids: list[str]) -> None:
    with database.transaction() as session:
        session.execute(
            insert(DirectoryGroupMember), [{"group_id": group_id, "user_id": u} for u in user_ids]
        )


def member_count(database, group_id: str) -> int:
    with database.read() as session:
        return session.scalar(
            select(func.count())
            .select_from(DirectoryGroupMember)
            .where(DirectoryGroupMember.group_id == group_id)
        )


def test_adding_one_member_to_a_large_group_runs_a_constant_number_of_statements(
    scim, database
) -> None:
    large = create_group(scim, "Large")
    small = create_group(scim, "Small")
    insert_members(database, large["id"], insert_users(database, scim.org_id, 2_000, "large"))
    insert_members(database, small["id"], insert_users(database, scim.org_id, 3, "small"))
    newcomer_large, newcomer_small = (create_user(scim)["id"] for _ in range(2))

    def add(group_id: str, user_id: str) -> list[str]:
        with statements(database.engine) as seen:
            response = scim.patch(
                f"/Groups/{group_id}",
                json=patch({"op": "add", "path": "members", "value": [{"value": user_id}]}),
            )
        assert response.status_code == 204
        assert response.data == b""
        return seen

    on_small = add(small["id"], newcomer_small)
    on_large = add(large["id"], newcomer_large)

    assert member_count(database, large["id"]) == 2_001
    assert member_count(database, small["id"]) == 4
    assert len(on_large) == len(on_small), (on_small, on_large)
    assert len(on_large) <= 40, on_large


def test_removing_one_member_of_a_large_group_runs_a_constant_number_of_statements(
    scim, database
) -> None:
    large = create_group(scim, "Large")
    small = create_group(scim, "Small")
    large_members = insert_users(database, scim.org_id, 2_000, "large")
    small_members = insert_users(database, scim.org_id, 3, "small")
    insert_members(database, large["id"], large_members)
    insert_members(database, small["id"], small_members)

    def remove(group_id: str, user_id: str) -> list[str]:
        with statements(database.engine) as seen:
            response = scim.patch(
                f"/Groups/{group_id}",
                json=patch({"op": "remove", "path": f'members[value eq "{user_id}"]'}),
            )
        assert response.status_code == 204
        return seen

    on_small = remove(small["id"], small_members[0])
    on_large = remove(large["id"], large_members[0])

    assert member_count(database, large["id"]) == 1_999
    assert len(on_large) == len(on_small), (on_small, on_large)
    assert len(on_large) <= 40, on_large
    large_view = scim.get(f"/Groups/{large['id']}?excludedAttributes=members").get_json()
    assert large_view["meta"]["version"] != large["meta"]["version"]


def test_concurrent_group_creation_creates_every_org_group(app, scim) -> None:
    """Eight IdP connections creating groups at once: every POST is a 201 and every directory
    group has its org group (two reconciles must not both create the same org group)."""
    import threading

    from sqlalchemy import func, select

    from gateway.store.models import Group

    barrier = threading.Barrier(8)
    statuses: list[int] = []

    def post(i: int) -> None:
        client = app.test_client()
        barrier.wait()
        for j in range(3):
            response = client.post(
                f"{scim.base}/Groups",
                json={"schemas": [GROUP], "displayName": f"Team {i}-{j}"},
                headers=scim.headers(),
            )
            statuses.append(response.status_code)

    threads = [threading.Thread(target=post, args=(i,)) for i in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert statuses == [201] * 24
    with gateway_db(app).read() as session:
        count = session.scalar(select(func.count()).select_from(Group))
    assert count == 24


def gateway_db(app):
    return app.extensions["scimgate"].db


@pytest.mark.parametrize("bad", ["a\u0000b@x.test", "a\ud800@x.test"])
def test_nul_or_unpaired_surrogate_is_invalid_value_and_writes_nothing(scim, bad) -> None:
    import json as jsonlib

    response = scim.client.post(
        f"{scim.base}/Users",
        data=jsonlib.dumps({"schemas": [USER], "userName": bad}),
        content_type="application/scim+json",
        headers=scim.headers(),
    )
    assert response.status_code == 400
    assert response.get_json()["scimType"] == "invalidValue"
    assert scim.get("/Users?count=0").get_json()["totalResults"] == 0


def test_bulk_id_must_be_a_string_and_nothing_is_written(scim) -> None:
    response = scim.post(
        "/Bulk",
        json={
            "schemas": ["urn:ietf:params:scim:api:messages:2.0:BulkRequest"],
            "Operations": [
                {
                    "method": "POST",
                    "bulkId": {"x": 1},
                    "path": "/Users",
                    "data": {"schemas": [USER], "userName": "b@x.test"},
                }
            ],
        },
    )
    assert response.status_code == 400
    assert "bulkId must be a non-empty string" in response.get_json()["detail"]
    assert scim.get("/Users?count=0").get_json()["totalResults"] == 0


# --- a user's groups (readOnly, filled by the server) ----------------------------------------


def test_a_user_reads_back_their_groups_on_every_kind_of_read(scim) -> None:
    ann = scim.post("/Users", json={"schemas": [USER], "userName": "ann@acme.example"}).json["id"]
    bob = scim.post("/Users", json={"schemas": [USER], "userName": "bob@acme.example"}).json["id"]
    groups = {}
    for name in ("beta", "Alpha", "gamma"):
        body = {"schemas": [GROUP], "displayName": name, "members": [{"value": ann}]}
        groups[name] = scim.post("/Groups", json=body).json["id"]
    expected = [
        {
            "value": groups[name],
            "$ref": f"https://scim.example.test{scim.base}/Groups/{groups[name]}",
            "display": name,
            "type": "direct",
        }
        for name in ("Alpha", "beta", "gamma")  # by displayName, any case
    ]
    by_name = {"filter": 'userName eq "ann@acme.example"'}
    reads = [
        scim.get(f"/Users/{ann}").json,
        scim.get("/Users", query_string=by_name).json["Resources"][0],
        scim.get("/Users", query_string={"filter": 'userName sw "ann"'}).json["Resources"][0],
        next(r for r in scim.get("/Users").json["Resources"] if r["id"] == ann),
    ]
    for resource in reads:
        assert resource["groups"] == expected
    assert "groups" not in scim.get(f"/Users/{bob}").json  # no groups: no key
    only = scim.get(f"/Users/{ann}", query_string={"attributes": "groups"}).json
    assert only["groups"] == expected and "userName" not in only
    without = scim.get(f"/Users/{ann}", query_string={"excludedAttributes": "groups"}).json
    assert "groups" not in without and without["userName"] == "ann@acme.example"

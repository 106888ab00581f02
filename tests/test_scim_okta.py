"""Okta's SCIM 2.0 provisioning flow, replayed against the SCIM endpoint.

The requests follow Okta's developer documentation ("SCIM 2.0 protocol reference" and "Build a
SCIM provisioning integration"): requests in `application/json`; a user lookup by userName with
startIndex=1&count=100 before each create; a create carrying `"groups": []` and a password;
deactivation by a path-less replace of `active`; profile updates by full PUT; group push with a
path-less rename that repeats the group's own id, membership by remove-and-add in one PATCH or by
replacing `members`; group lookup by displayName.
"""

from __future__ import annotations

import json
import uuid

import pytest
from sqlalchemy import MetaData, select

from gateway.store.models import DirectoryUser

USER = "urn:ietf:params:scim:schemas:core:2.0:User"
GROUP = "urn:ietf:params:scim:schemas:core:2.0:Group"
PATCH_OP = "urn:ietf:params:scim:api:messages:2.0:PatchOp"
LIST = "urn:ietf:params:scim:api:messages:2.0:ListResponse"
SCIM_JSON = "application/scim+json"
PASSWORD = "t1meMa$heen-Okta-7f3c"


@pytest.fixture
def okta(scim):
    """The SCIM client speaking the way Okta does: plain application/json bodies."""
    scim.content_type = "application/json"
    return scim


def okta_user(user_name: str | None = None, **extra) -> dict:
    user_name = user_name or f"{uuid.uuid4().hex[:10]}@atko.com"
    body = {
        "schemas": [USER],
        "userName": user_name,
        "name": {"givenName": "Test", "familyName": "User"},
        "emails": [{"primary": True, "value": user_name, "type": "work"}],
        "displayName": "Test User",
        "locale": "en-US",
        "externalId": f"00u{uuid.uuid4().hex[:17]}",
        "groups": [],
        "password": PASSWORD,
        "active": True,
    }
    body.update(extra)
    return body


def patch(*operations: dict) -> dict:
    return {"schemas": [PATCH_OP], "Operations": list(operations)}


def create_user(okta, **extra) -> dict:
    response = okta.post("/Users", json=okta_user(**extra))
    assert response.status_code == 201, response.get_json()
    return response.get_json()


def create_group(okta, display_name: str | None = None, members: list[dict] = ()) -> dict:
    response = okta.post(
        "/Groups",
        json={
            "schemas": [GROUP],
            "displayName": display_name or f"Okta {uuid.uuid4().hex[:8]}",
            "members": list(members),
        },
    )
    assert response.status_code == 201, response.get_json()
    return response.get_json()


def member_ids(okta, group_id: str) -> set[str]:
    response = okta.get(f"/Groups/{group_id}")
    assert response.status_code == 200
    return {m["value"] for m in response.get_json().get("members", [])}


def lookup(okta, user_name: str) -> dict:
    response = okta.get(f'/Users?filter=userName eq "{user_name}"&startIndex=1&count=100')
    assert response.status_code == 200
    assert response.mimetype == SCIM_JSON
    return response.get_json()


def stored_rows_mentioning(database, needle: str) -> list[str]:
    """Every table row (as text) anywhere in the database that contains `needle`."""
    metadata = MetaData()
    metadata.reflect(database.engine)
    found = []
    with database.engine.connect() as conn:
        for table in metadata.sorted_tables:
            for row in conn.execute(select(table)):
                text = json.dumps([str(v) for v in row], default=str)
                if needle in text:
                    found.append(f"{table.name}: {text[:200]}")
    return found


# --- users ---------------------------------------------------------------------------------------


def test_okta_lookup_of_unknown_user_with_paging_is_an_empty_list(okta) -> None:
    body = lookup(okta, "nobody@atko.com")

    assert body["schemas"] == [LIST]
    assert body["totalResults"] == 0
    assert body["startIndex"] == 1
    assert body["itemsPerPage"] == 0
    assert body.get("Resources", []) == []


def test_okta_create_user_with_password_and_empty_groups_is_201(okta) -> None:
    request = okta_user()

    response = okta.post("/Users", json=request)

    assert response.status_code == 201
    assert response.mimetype == SCIM_JSON
    body = response.get_json()
    assert body["userName"] == request["userName"]
    assert body["externalId"] == request["externalId"]
    assert body["name"] == request["name"]
    assert body["emails"] == request["emails"]
    assert body["displayName"] == "Test User"
    assert body["locale"] == "en-US"
    assert body["active"] is True
    assert "password" not in body
    assert "groups" not in body  # no memberships yet; groups is read-only anyway
    assert response.headers["Location"] == body["meta"]["location"]


def test_okta_lookup_after_create_finds_the_user(okta) -> None:
    created = create_user(okta)

    body = lookup(okta, created["userName"])

    assert body["totalResults"] == 1
    assert body["itemsPerPage"] == 1
    assert body["Resources"][0]["id"] == created["id"]
    assert "password" not in body["Resources"][0]


def test_okta_password_is_never_returned_nor_stored(okta, database) -> None:
    created = create_user(okta)

    assert "password" not in okta.get(f"/Users/{created['id']}").get_json()
    assert "password" not in okta.get("/Users?attributes=password").get_json()["Resources"][0]
    with database.read() as session:
        row = session.get(DirectoryUser, created["id"])
        assert "password" not in row.resource
        row_text = json.dumps(
            {attr.key: getattr(row, attr.key) for attr in DirectoryUser.__mapper__.column_attrs},
            default=str,
        )
    assert PASSWORD not in row_text
    assert stored_rows_mentioning(database, PASSWORD) == []


def test_okta_password_change_by_patch_is_accepted_and_not_stored(okta, database) -> None:
    created = create_user(okta)
    new_password = "n3w-Pa$$word-Okta-91ab"

    response = okta.patch(
        f"/Users/{created['id']}",
        json=patch({"op": "replace", "value": {"password": new_password}}),
    )

    assert response.status_code == 200
    assert "password" not in response.get_json()
    assert stored_rows_mentioning(database, new_password) == []


def test_okta_deactivate_with_pathless_replace_of_active(okta) -> None:
    created = create_user(okta)

    response = okta.patch(
        f"/Users/{created['id']}",
        json=patch({"op": "replace", "value": {"active": False}}),
    )

    assert response.status_code == 200
    body = response.get_json()
    assert body["active"] is False
    assert body["userName"] == created["userName"]  # nothing else changed
    assert body["name"] == created["name"]
    assert lookup(okta, created["userName"])["Resources"][0]["active"] is False


def test_okta_reactivate_with_pathless_replace_of_active(okta) -> None:
    created = create_user(okta, active=False)
    assert created["active"] is False

    response = okta.patch(
        f"/Users/{created['id']}",
        json=patch({"op": "replace", "value": {"active": True}}),
    )

    assert response.status_code == 200
    assert response.get_json()["active"] is True


def test_okta_full_put_replaces_the_user(okta, database) -> None:
    created = create_user(okta, title="Engineer", nickName="Testy")
    replacement = {
        "schemas": [USER],
        "id": created["id"],
        "userName": created["userName"],
        "name": {"givenName": "Another", "familyName": "Name"},
        "emails": [{"primary": True, "value": "another@atko.com", "type": "work"}],
        "displayName": "Another Name",
        "locale": "fr-FR",
        "externalId": created["externalId"],
        "groups": [],
        "password": PASSWORD,
        "active": True,
    }

    response = okta.put(f"/Users/{created['id']}", json=replacement)

    assert response.status_code == 200
    assert response.mimetype == SCIM_JSON
    body = response.get_json()
    assert body["id"] == created["id"]
    assert body["name"] == {"givenName": "Another", "familyName": "Name"}
    assert body["emails"] == replacement["emails"]
    assert body["displayName"] == "Another Name"
    assert body["locale"] == "fr-FR"
    assert "title" not in body  # PUT replaces: what was not sent is gone
    assert "nickName" not in body
    assert "password" not in body
    assert body["meta"]["created"] == created["meta"]["created"]
    assert body["meta"]["version"] != created["meta"]["version"]
    assert response.headers["ETag"] == body["meta"]["version"]
    assert okta.get(f"/Users/{created['id']}").get_json() == body
    assert stored_rows_mentioning(database, PASSWORD) == []


def test_okta_put_of_a_user_in_a_group_answers_with_the_groups(okta) -> None:
    created = create_user(okta)
    group = create_group(okta, "Engineering", members=[{"value": created["id"]}])
    replacement = okta_user(created["userName"], title="Lead")

    response = okta.put(f"/Users/{created['id']}", json=replacement)

    assert response.status_code == 200
    body = response.get_json()
    assert body["title"] == "Lead"
    assert [(g["value"], g["display"]) for g in body["groups"]] == [(group["id"], "Engineering")]
    assert okta.get(f"/Users/{created['id']}").get_json() == body


def test_okta_put_of_unchanged_user_keeps_its_version(okta) -> None:
    created = create_user(okta)
    request = okta_user(
        user_name=created["userName"], externalId=created["externalId"], id=created["id"]
    )

    response = okta.put(f"/Users/{created['id']}", json=request)

    assert response.status_code == 200
    assert response.get_json()["meta"]["version"] == created["meta"]["version"]


# --- group push --------------------------------------------------------------------------------


def test_okta_push_group_create_with_empty_members(okta) -> None:
    response = okta.post(
        "/Groups", json={"schemas": [GROUP], "displayName": "Test SCIMv2", "members": []}
    )

    assert response.status_code == 201
    assert response.mimetype == SCIM_JSON
    body = response.get_json()
    assert body["displayName"] == "Test SCIMv2"
    assert body.get("members", []) == []
    assert response.headers["Location"] == body["meta"]["location"]


def test_okta_push_group_create_with_members_lists_them(okta) -> None:
    users = [create_user(okta) for _ in range(2)]

    group = create_group(
        okta, members=[{"value": u["id"], "display": u["userName"]} for u in users]
    )

    assert {m["value"] for m in group["members"]} == {u["id"] for u in users}
    assert {m["display"] for m in group["members"]} == {u["userName"] for u in users}


def test_okta_rename_group_with_pathless_replace_repeating_its_id(okta) -> None:
    group = create_group(okta, display_name="Test SCIMv2")

    response = okta.patch(
        f"/Groups/{group['id']}",
        json=patch({"op": "replace", "value": {"id": group["id"], "displayName": "New Name"}}),
    )

    assert response.status_code == 204
    assert response.headers["ETag"]
    body = okta.get(f"/Groups/{group['id']}").get_json()
    assert body["id"] == group["id"]
    assert body["displayName"] == "New Name"
    assert body["meta"]["version"] == response.headers["ETag"]


def test_okta_membership_patch_removes_and_adds_in_one_request(okta) -> None:
    first, second, third = (create_user(okta) for _ in range(3))
    group = create_group(okta, members=[{"value": first["id"]}, {"value": second["id"]}])

    response = okta.patch(
        f"/Groups/{group['id']}",
        json=patch(
            {"op": "remove", "path": f'members[value eq "{first["id"]}"]'},
            {
                "op": "add",
                "path": "members",
                "value": [{"value": third["id"], "display": third["userName"]}],
            },
        ),
    )

    assert response.status_code == 204
    assert member_ids(okta, group["id"]) == {second["id"], third["id"]}


def test_okta_replace_members_sets_exactly_the_given_list(okta) -> None:
    first, second, third = (create_user(okta) for _ in range(3))
    group = create_group(okta, members=[{"value": first["id"]}, {"value": second["id"]}])

    response = okta.patch(
        f"/Groups/{group['id']}",
        json=patch(
            {
                "op": "replace",
                "path": "members",
                "value": [
                    {"value": second["id"], "display": second["userName"]},
                    {"value": third["id"], "display": third["userName"]},
                ],
            }
        ),
    )

    assert response.status_code == 204
    assert member_ids(okta, group["id"]) == {second["id"], third["id"]}
    assert "groups" not in okta.get(f"/Users/{first['id']}").get_json()


def test_okta_replace_members_with_empty_list_empties_the_group(okta) -> None:
    user = create_user(okta)
    group = create_group(okta, members=[{"value": user["id"]}])

    response = okta.patch(
        f"/Groups/{group['id']}",
        json=patch({"op": "replace", "path": "members", "value": []}),
    )

    assert response.status_code == 204
    assert member_ids(okta, group["id"]) == set()


def test_okta_patch_with_attributes_query_answers_with_the_group(okta) -> None:
    user = create_user(okta)
    group = create_group(okta)

    response = okta.patch(
        f"/Groups/{group['id']}?attributes=members",
        json=patch({"op": "add", "path": "members", "value": [{"value": user["id"]}]}),
    )

    assert response.status_code == 200
    assert [m["value"] for m in response.get_json()["members"]] == [user["id"]]


def test_okta_group_lookup_by_display_name(okta) -> None:
    group = create_group(okta, display_name="Okta Admins")
    create_group(okta, display_name="Okta Users")

    response = okta.get('/Groups?filter=displayName eq "Okta Admins"&startIndex=1&count=100')

    assert response.status_code == 200
    body = response.get_json()
    assert body["totalResults"] == 1
    assert body["Resources"][0]["id"] == group["id"]
    assert body["Resources"][0]["displayName"] == "Okta Admins"


def test_okta_group_lookup_by_display_name_ignores_case(okta) -> None:
    group = create_group(okta, display_name="Okta Admins")

    body = okta.get('/Groups?filter=displayName eq "okta admins"').get_json()

    assert [r["id"] for r in body["Resources"]] == [group["id"]]


def test_okta_list_groups_with_paging(okta) -> None:
    ids = [create_group(okta)["id"] for _ in range(3)]

    first = okta.get("/Groups?startIndex=1&count=2").get_json()
    rest = okta.get("/Groups?startIndex=3&count=2").get_json()

    assert first["totalResults"] == rest["totalResults"] == 3
    assert first["itemsPerPage"] == 2
    assert rest["itemsPerPage"] == 1
    assert [r["id"] for r in first["Resources"] + rest["Resources"]] == ids


def test_okta_delete_pushed_group_is_204_and_members_stay(okta) -> None:
    user = create_user(okta)
    group = create_group(okta, members=[{"value": user["id"]}])

    response = okta.delete(f"/Groups/{group['id']}")

    assert response.status_code == 204
    assert okta.get(f"/Groups/{group['id']}").status_code == 404
    assert okta.get(f"/Users/{user['id']}").status_code == 200

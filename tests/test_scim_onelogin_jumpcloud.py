"""The loose dialects of OneLogin, JumpCloud and similar identity providers: booleans as strings,
explicit nulls for "no value", empty strings, and extension schemas of their own that we do not
serve. They are read the way they were meant; what we do not know is neither stored nor echoed.
"""

from __future__ import annotations

import json
import uuid

import pytest
from sqlalchemy import func, select

from gateway.store.models import DirectoryGroup, DirectoryUser

USER = "urn:ietf:params:scim:schemas:core:2.0:User"
ENTERPRISE = "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User"
GROUP = "urn:ietf:params:scim:schemas:core:2.0:Group"
PATCH_OP = "urn:ietf:params:scim:api:messages:2.0:PatchOp"
CUSTOM = "urn:ietf:params:scim:schemas:extension:jumpcloud:2.0:User"
ONELOGIN = "urn:ietf:params:scim:schemas:extension:onelogin:custom:2.0:User"


def user_body(**extra) -> dict:
    user_name = f"{uuid.uuid4().hex[:10]}@example.com"
    body = {
        "schemas": [USER],
        "userName": user_name,
        "name": {"givenName": "Grace", "familyName": "Hopper"},
        "emails": [{"value": user_name, "type": "work", "primary": True}],
        "active": True,
    }
    body.update(extra)
    return body


def create_user(scim, **extra) -> dict:
    response = scim.post("/Users", json=user_body(**extra))
    assert response.status_code == 201, response.get_json()
    return response.get_json()


def patch(*operations: dict) -> dict:
    return {"schemas": [PATCH_OP], "Operations": list(operations)}


def stored_resource(database, model, resource_id: str) -> dict:
    with database.read() as session:
        return session.get(model, resource_id).resource


def row_count(database, model) -> int:
    with database.read() as session:
        return session.scalar(select(func.count()).select_from(model))


# --- booleans as strings --------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("sent", "meant"), [("true", True), ("True", True), ("false", False), ("FALSE", False)]
)
def test_string_boolean_active_in_post_is_a_boolean(scim, sent: str, meant: bool) -> None:
    created = create_user(scim, active=sent)

    assert created["active"] is meant
    assert scim.get(f"/Users/{created['id']}").get_json()["active"] is meant
    found = scim.get(f"/Users?filter=active eq {json.dumps(meant)}").get_json()
    assert [r["id"] for r in found["Resources"]] == [created["id"]]


def test_string_boolean_primary_in_post_is_a_boolean(scim) -> None:
    created = create_user(
        scim, emails=[{"value": "g@example.com", "type": "work", "primary": "true"}]
    )

    assert created["emails"] == [{"value": "g@example.com", "type": "work", "primary": True}]


def test_string_boolean_in_put_is_a_boolean(scim) -> None:
    created = create_user(scim)

    response = scim.put(
        f"/Users/{created['id']}", json=user_body(userName=created["userName"], active="false")
    )

    assert response.status_code == 200
    assert response.get_json()["active"] is False


def test_string_boolean_in_pathless_patch_is_a_boolean(scim) -> None:
    created = create_user(scim)

    response = scim.patch(
        f"/Users/{created['id']}", json=patch({"op": "replace", "value": {"active": "false"}})
    )

    assert response.status_code == 200
    assert response.get_json()["active"] is False


def test_boolean_that_is_neither_true_nor_false_is_invalid_value(scim, database) -> None:
    before = row_count(database, DirectoryUser)

    response = scim.post("/Users", json=user_body(active="yes please"))

    assert response.status_code == 400
    assert response.get_json()["scimType"] == "invalidValue"
    assert "active" in response.get_json()["detail"]
    assert row_count(database, DirectoryUser) == before


# --- explicit nulls -------------------------------------------------------------------------------


def test_explicit_nulls_in_post_are_absent_attributes(scim, database) -> None:
    created = create_user(
        scim,
        displayName=None,
        title=None,
        name={"givenName": "Grace", "familyName": "Hopper", "middleName": None},
        phoneNumbers=None,
        externalId=None,
    )

    for name in ("displayName", "title", "phoneNumbers", "externalId"):
        assert name not in created
    assert created["name"] == {"givenName": "Grace", "familyName": "Hopper"}
    stored = stored_resource(database, DirectoryUser, created["id"])
    assert None not in stored.values()
    assert "middleName" not in stored["name"]


def test_explicit_null_in_put_removes_the_attribute(scim) -> None:
    created = create_user(scim, title="Rear Admiral", nickName="Amazing Grace")

    response = scim.put(
        f"/Users/{created['id']}",
        json=user_body(userName=created["userName"], title=None, nickName=None),
    )

    assert response.status_code == 200
    body = response.get_json()
    assert "title" not in body
    assert "nickName" not in body


@pytest.mark.parametrize(
    "operation",
    [
        {"op": "replace", "path": "title", "value": None},
        {"op": "replace", "value": {"title": None}},
        {"op": "add", "path": "title", "value": None},
    ],
    ids=["replace-path", "replace-pathless", "add-path"],
)
def test_explicit_null_in_patch_removes_the_attribute(scim, operation: dict) -> None:
    created = create_user(scim, title="Rear Admiral")

    response = scim.patch(f"/Users/{created['id']}", json=patch(operation))

    assert response.status_code == 200
    assert "title" not in response.get_json()
    assert "title" not in scim.get(f"/Users/{created['id']}").get_json()


def test_explicit_null_sub_attribute_in_patch_removes_only_it(scim) -> None:
    created = create_user(scim)

    response = scim.patch(
        f"/Users/{created['id']}",
        json=patch({"op": "replace", "value": {"name": {"familyName": None}}}),
    )

    assert response.status_code == 200
    assert response.get_json()["name"] == {"givenName": "Grace"}


def test_explicit_null_for_the_required_user_name_is_invalid_value(scim) -> None:
    created = create_user(scim)

    response = scim.patch(
        f"/Users/{created['id']}", json=patch({"op": "replace", "path": "userName", "value": None})
    )

    assert response.status_code == 400
    assert response.get_json()["scimType"] == "invalidValue"
    assert scim.get(f"/Users/{created['id']}").get_json() == created


def test_explicit_null_members_on_group_create_is_an_empty_group(scim) -> None:
    response = scim.post(
        "/Groups", json={"schemas": [GROUP], "displayName": "Nulls", "members": None}
    )

    assert response.status_code == 201
    assert response.get_json().get("members", []) == []


# --- empty strings ----------------------------------------------------------------------------


def test_empty_strings_in_post_are_absent_attributes(scim, database) -> None:
    created = create_user(
        scim,
        title="",
        nickName="",
        name={"givenName": "Grace", "familyName": "Hopper", "middleName": ""},
        **{ENTERPRISE: {"department": "", "employeeNumber": ""}},
    )

    assert "title" not in created
    assert "nickName" not in created
    assert created["name"] == {"givenName": "Grace", "familyName": "Hopper"}
    assert ENTERPRISE not in created
    stored = stored_resource(database, DirectoryUser, created["id"])
    assert "" not in stored.values()


def test_empty_string_in_patch_unassigns_the_attribute(scim) -> None:
    created = create_user(scim, title="Rear Admiral")

    response = scim.patch(
        f"/Users/{created['id']}", json=patch({"op": "replace", "path": "title", "value": ""})
    )

    assert response.status_code == 200
    assert "title" not in response.get_json()


def test_empty_user_name_is_invalid_value_and_writes_nothing(scim, database) -> None:
    before = row_count(database, DirectoryUser)

    response = scim.post("/Users", json=user_body(userName=""))

    assert response.status_code == 400
    body = response.get_json()
    assert body["scimType"] == "invalidValue"
    assert "userName" in body["detail"]
    assert row_count(database, DirectoryUser) == before


def test_empty_group_display_name_is_invalid_value(scim, database) -> None:
    response = scim.post("/Groups", json={"schemas": [GROUP], "displayName": ""})

    assert response.status_code == 400
    assert response.get_json()["scimType"] == "invalidValue"
    assert row_count(database, DirectoryGroup) == 0


# --- unknown schemas and attributes -------------------------------------------------------------


def test_unknown_extension_and_attributes_in_post_are_tolerated_not_echoed(scim, database) -> None:
    request = user_body(
        schemas=[USER, ENTERPRISE, CUSTOM],
        favouriteColour="teal",
        **{
            CUSTOM: {"costCode": "J-42", "badge": {"number": 7}},
            f"{ONELOGIN}:shoeSize": "38",
            ENTERPRISE: {"department": "Navy", "clearance": "top"},
        },
    )
    request["name"]["nickname"] = "Amazing"  # unknown sub-attribute

    response = scim.post("/Users", json=request)

    assert response.status_code == 201
    body = response.get_json()
    assert body["schemas"] == [USER, ENTERPRISE]
    assert body[ENTERPRISE] == {"department": "Navy"}
    assert body["name"] == {"givenName": "Grace", "familyName": "Hopper"}
    text = json.dumps(body)
    for unknown in ("favouriteColour", CUSTOM, ONELOGIN, "J-42", "clearance", "nickname"):
        assert unknown not in text
    assert scim.get(f"/Users/{body['id']}").get_json() == body
    stored = json.dumps(stored_resource(database, DirectoryUser, body["id"]))
    for unknown in ("favouriteColour", CUSTOM, ONELOGIN, "J-42", "clearance", "nickname"):
        assert unknown not in stored


def test_unknown_extension_and_attributes_in_put_are_tolerated_not_echoed(scim) -> None:
    created = create_user(scim)

    response = scim.put(
        f"/Users/{created['id']}",
        json=user_body(
            userName=created["userName"],
            schemas=[USER, CUSTOM],
            title="Rear Admiral",
            favouriteColour="teal",
            **{CUSTOM: {"costCode": "J-42"}},
        ),
    )

    assert response.status_code == 200
    body = response.get_json()
    assert body["title"] == "Rear Admiral"
    assert body["schemas"] == [USER]
    assert "favouriteColour" not in body
    assert CUSTOM not in json.dumps(body)


def test_unknown_schema_and_attributes_on_group_create_are_tolerated(scim) -> None:
    response = scim.post(
        "/Groups",
        json={
            "schemas": [GROUP, "urn:ietf:params:scim:schemas:extension:jumpcloud:2.0:Group"],
            "displayName": "JumpCloud Admins",
            "description": "not a Group attribute",
        },
    )

    assert response.status_code == 201
    body = response.get_json()
    assert body["schemas"] == [GROUP]
    assert "description" not in body


def test_read_only_attributes_sent_by_the_idp_are_ignored(scim) -> None:
    created = create_user(
        scim,
        meta={"resourceType": "User", "created": "2001-01-01T00:00:00Z", "version": 'W/"x"'},
        groups=[{"value": str(uuid.uuid4()), "display": "Admins"}],
    )

    assert created["meta"]["created"] != "2001-01-01T00:00:00Z"
    assert created["meta"]["version"] != 'W/"x"'
    assert "groups" not in created


def test_unknown_attribute_in_patch_path_is_invalid_path_and_changes_nothing(scim) -> None:
    # PATCH names exactly what to change, so an unknown target is reported (RFC 7644 §3.5.2,
    # invalidPath) rather than silently dropped the way unknown members of a whole body are.
    created = create_user(scim)

    response = scim.patch(
        f"/Users/{created['id']}",
        json=patch({"op": "replace", "path": f"{CUSTOM}:costCode", "value": "J-42"}),
    )

    assert response.status_code == 400
    assert response.get_json()["scimType"] == "invalidPath"
    assert scim.get(f"/Users/{created['id']}").get_json() == created

"""Microsoft Entra ID's provisioning requests, replayed against the SCIM endpoint.

The request shapes follow Microsoft's "Tutorial: Develop and plan provisioning for a SCIM endpoint
in Microsoft Entra ID" (user and group request/response examples) and "Known issues and
resolutions with SCIM 2.0 protocol compliance of the Microsoft Entra user provisioning service"
(capitalised ops, string booleans, path-less replace with dotted and URN-qualified keys, the
manager forms, member removal with a value list). Every test asserts what Entra would see.
"""

from __future__ import annotations

import uuid

USER = "urn:ietf:params:scim:schemas:core:2.0:User"
ENTERPRISE = "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User"
GROUP = "urn:ietf:params:scim:schemas:core:2.0:Group"
MS_GROUP = "http://schemas.microsoft.com/2006/11/ResourceManagement/ADSCIM/2.0/Group"
PATCH_OP = "urn:ietf:params:scim:api:messages:2.0:PatchOp"
LIST = "urn:ietf:params:scim:api:messages:2.0:ListResponse"
ERROR = "urn:ietf:params:scim:api:messages:2.0:Error"
SCIM_JSON = "application/scim+json"


def entra_user(user_name: str | None = None, **extra) -> dict:
    """A create request the way Entra sends it: enterprise schema listed, meta and an empty
    roles list included, the work e-mail marked primary."""
    user_name = user_name or f"Test_User_{uuid.uuid4()}@testuser.com"
    body = {
        "schemas": [USER, ENTERPRISE],
        "externalId": str(uuid.uuid4()),
        "userName": user_name,
        "active": True,
        "emails": [{"primary": True, "type": "work", "value": user_name}],
        "meta": {"resourceType": "User"},
        "name": {"formatted": "Ada Lovelace", "familyName": "Lovelace", "givenName": "Ada"},
        "roles": [],
        ENTERPRISE: {"employeeNumber": "701984", "department": "Analytical Engines"},
    }
    body.update(extra)
    return body


def patch(*operations: dict) -> dict:
    return {"schemas": [PATCH_OP], "Operations": list(operations)}


def create_user(scim, **extra) -> dict:
    response = scim.post("/Users", json=entra_user(**extra))
    assert response.status_code == 201, response.get_json()
    return response.get_json()


def create_group(scim, display_name: str | None = None, members: list[str] = ()) -> dict:
    body = {
        "schemas": [GROUP, MS_GROUP],
        "externalId": str(uuid.uuid4()),
        "displayName": display_name or f"Group {uuid.uuid4()}",
        "meta": {"resourceType": "Group"},
        "members": [{"value": m} for m in members],
    }
    response = scim.post("/Groups", json=body)
    assert response.status_code == 201, response.get_json()
    return response.get_json()


def member_ids(scim, group_id: str) -> list[str]:
    response = scim.get(f"/Groups/{group_id}")
    assert response.status_code == 200
    return [m["value"] for m in response.get_json().get("members", [])]


def get_user(scim, user_id: str) -> dict:
    response = scim.get(f"/Users/{user_id}")
    assert response.status_code == 200, response.get_json()
    return response.get_json()


# --- Test Connection and matching ---------------------------------------------------------------


def test_entra_test_connection_query_for_random_guid_is_an_empty_list(scim) -> None:
    response = scim.get(f'/Users?filter=userName eq "{uuid.uuid4()}"')

    assert response.status_code == 200
    assert response.mimetype == SCIM_JSON
    body = response.get_json()
    assert body["schemas"] == [LIST]
    assert body["totalResults"] == 0
    assert body["startIndex"] == 1
    assert body["itemsPerPage"] == 0
    assert body.get("Resources", []) == []


def test_entra_get_user_by_query_finds_the_created_user(scim) -> None:
    created = create_user(scim)

    response = scim.get(f'/Users?filter=userName eq "{created["userName"]}"')

    assert response.status_code == 200
    body = response.get_json()
    assert body["totalResults"] == 1
    assert [r["id"] for r in body["Resources"]] == [created["id"]]
    assert body["Resources"][0]["userName"] == created["userName"]


def test_entra_get_user_by_query_matches_user_name_case_insensitively(scim) -> None:
    created = create_user(scim, user_name="Ada.Lovelace@Contoso.com")

    response = scim.get('/Users?filter=userName eq "ada.lovelace@contoso.com"')

    assert [r["id"] for r in response.get_json()["Resources"]] == [created["id"]]


def test_entra_get_user_by_external_id_query(scim) -> None:
    created = create_user(scim)

    response = scim.get(f'/Users?filter=externalId eq "{created["externalId"]}"')

    assert [r["id"] for r in response.get_json()["Resources"]] == [created["id"]]


def test_entra_get_user_by_id_returns_the_user(scim) -> None:
    created = create_user(scim)

    response = scim.get(f"/Users/{created['id']}")

    assert response.status_code == 200
    assert response.mimetype == SCIM_JSON
    assert response.get_json() == created


# --- create -------------------------------------------------------------------------------------


def test_entra_create_user_returns_201_with_the_user_and_its_location(scim) -> None:
    request = entra_user()

    response = scim.post("/Users", json=request)

    assert response.status_code == 201
    assert response.mimetype == SCIM_JSON
    body = response.get_json()
    assert body["id"]
    assert body["schemas"] == [USER, ENTERPRISE]
    assert body["userName"] == request["userName"]
    assert body["externalId"] == request["externalId"]
    assert body["active"] is True
    assert body["emails"] == [{"primary": True, "type": "work", "value": request["userName"]}]
    assert body["name"] == request["name"]
    assert body[ENTERPRISE] == {"employeeNumber": "701984", "department": "Analytical Engines"}
    assert "roles" not in body  # an empty list is an unassigned attribute (RFC 7643 §2.4)
    assert body["meta"]["resourceType"] == "User"
    assert response.headers["Location"] == body["meta"]["location"]
    assert body["meta"]["location"].endswith(f"/Users/{body['id']}")


def test_entra_create_user_with_string_boolean_active(scim) -> None:
    active = create_user(scim, active="True")
    inactive = create_user(scim, active="False")

    assert active["active"] is True
    assert inactive["active"] is False
    assert get_user(scim, inactive["id"])["active"] is False


def test_entra_create_user_with_string_boolean_primary_email(scim) -> None:
    user_name = f"{uuid.uuid4()}@contoso.com"
    created = create_user(
        scim,
        user_name=user_name,
        emails=[{"primary": "True", "type": "work", "value": user_name}],
    )

    assert created["emails"] == [{"primary": True, "type": "work", "value": user_name}]


def test_entra_create_user_twice_is_a_409_uniqueness_conflict(scim) -> None:
    created = create_user(scim)

    response = scim.post("/Users", json=entra_user(user_name=created["userName"]))

    assert response.status_code == 409
    body = response.get_json()
    assert body["schemas"] == [ERROR]
    assert body["status"] == "409"
    assert body["scimType"] == "uniqueness"


# --- update user ----------------------------------------------------------------------------------


def test_entra_replace_work_email_value_and_family_name_with_capital_op(scim) -> None:
    created = create_user(scim)

    response = scim.patch(
        f"/Users/{created['id']}",
        json=patch(
            {
                "op": "Replace",
                "path": 'emails[type eq "work"].value',
                "value": "updated@contoso.com",
            },
            {"op": "Replace", "path": "name.familyName", "value": "King"},
        ),
    )

    assert response.status_code == 200
    body = response.get_json()
    assert body["emails"] == [{"primary": True, "type": "work", "value": "updated@contoso.com"}]
    assert body["name"]["familyName"] == "King"
    assert body["name"]["givenName"] == "Ada"
    assert get_user(scim, created["id"]) == body


def test_entra_add_on_existing_work_email_updates_it_without_a_second_email(scim) -> None:
    created = create_user(scim)

    response = scim.patch(
        f"/Users/{created['id']}",
        json=patch(
            {"op": "Add", "path": 'emails[type eq "work"].value', "value": "new@contoso.com"}
        ),
    )

    assert response.status_code == 200
    assert response.get_json()["emails"] == [
        {"primary": True, "type": "work", "value": "new@contoso.com"}
    ]


def test_entra_add_work_email_to_user_without_emails_creates_it(scim) -> None:
    created = create_user(scim, emails=[])
    assert "emails" not in created

    response = scim.patch(
        f"/Users/{created['id']}",
        json=patch({"op": "Add", "path": 'emails[type eq "work"].value', "value": "a@contoso.com"}),
    )

    assert response.status_code == 200
    assert response.get_json()["emails"] == [{"type": "work", "value": "a@contoso.com"}]


def test_entra_replace_user_name(scim) -> None:
    created = create_user(scim)
    new_name = f"{uuid.uuid4()}@testuser.com"

    response = scim.patch(
        f"/Users/{created['id']}",
        json=patch({"op": "Replace", "path": "userName", "value": new_name}),
    )

    assert response.status_code == 200
    assert response.get_json()["userName"] == new_name
    found = scim.get(f'/Users?filter=userName eq "{new_name}"').get_json()
    assert [r["id"] for r in found["Resources"]] == [created["id"]]


def test_entra_string_booleans_in_patch_are_stored_as_booleans(scim) -> None:
    created = create_user(scim)

    response = scim.patch(
        f"/Users/{created['id']}",
        json=patch({"op": "Replace", "path": "active", "value": "False"}),
    )
    assert response.status_code == 200
    assert response.get_json()["active"] is False

    response = scim.patch(
        f"/Users/{created['id']}",
        json=patch({"op": "Replace", "path": "active", "value": "True"}),
    )
    assert response.status_code == 200
    assert response.get_json()["active"] is True
    assert get_user(scim, created["id"])["active"] is True


def test_entra_string_boolean_primary_through_value_filter(scim) -> None:
    user_name = f"{uuid.uuid4()}@contoso.com"
    created = create_user(
        scim,
        user_name=user_name,
        emails=[
            {"type": "work", "value": user_name, "primary": True},
            {"type": "home", "value": "home@example.com"},
        ],
    )

    response = scim.patch(
        f"/Users/{created['id']}",
        json=patch({"op": "Replace", "path": 'emails[type eq "home"].primary', "value": "True"}),
    )

    assert response.status_code == 200
    emails = {e["type"]: e for e in response.get_json()["emails"]}
    assert emails["home"]["primary"] is True
    assert emails["work"].get("primary") is False  # at most one primary (RFC 7643 §2.4)


def test_entra_pathless_replace_with_dotted_and_urn_qualified_keys(scim) -> None:
    created = create_user(scim, **{ENTERPRISE: None}, schemas=[USER])
    assert ENTERPRISE not in created

    response = scim.patch(
        f"/Users/{created['id']}",
        json=patch(
            {
                "op": "Replace",
                "value": {
                    "displayName": "Augusta Ada King",
                    "name.givenName": "Augusta",
                    "name.familyName": "King",
                    f"{ENTERPRISE}:employeeNumber": "1815",
                    f"{ENTERPRISE}:department": "Mathematics",
                },
            }
        ),
    )

    assert response.status_code == 200
    body = response.get_json()
    assert body["displayName"] == "Augusta Ada King"
    assert body["name"]["givenName"] == "Augusta"
    assert body["name"]["familyName"] == "King"
    assert body["name"]["formatted"] == "Ada Lovelace"  # untouched sibling
    assert body[ENTERPRISE] == {"employeeNumber": "1815", "department": "Mathematics"}
    assert ENTERPRISE in body["schemas"]
    assert get_user(scim, created["id"]) == body


def test_entra_replace_urn_qualified_enterprise_attribute_by_path(scim) -> None:
    created = create_user(scim)

    response = scim.patch(
        f"/Users/{created['id']}",
        json=patch({"op": "Replace", "path": f"{ENTERPRISE}:employeeNumber", "value": "42"}),
    )

    assert response.status_code == 200
    assert response.get_json()[ENTERPRISE] == {
        "employeeNumber": "42",
        "department": "Analytical Engines",
    }


def test_entra_manager_add_as_ref_value_list_then_remove_with_empty_value(scim) -> None:
    manager = create_user(scim)
    report = create_user(scim)

    response = scim.patch(
        f"/Users/{report['id']}",
        json=patch(
            {"op": "Add", "path": "manager", "value": [{"$ref": None, "value": manager["id"]}]}
        ),
    )
    assert response.status_code == 200
    assert response.get_json()[ENTERPRISE]["manager"] == {"value": manager["id"]}
    assert get_user(scim, report["id"])[ENTERPRISE]["manager"]["value"] == manager["id"]

    response = scim.patch(
        f"/Users/{report['id']}",
        json=patch({"op": "Remove", "path": "manager", "value": ""}),
    )
    assert response.status_code == 200
    body = response.get_json()
    assert "manager" not in body[ENTERPRISE]
    assert body[ENTERPRISE]["employeeNumber"] == "701984"  # the rest of the extension stays
    assert "manager" not in get_user(scim, report["id"])[ENTERPRISE]


def test_entra_manager_by_urn_qualified_path_with_bare_id(scim) -> None:
    manager = create_user(scim)
    report = create_user(scim)

    response = scim.patch(
        f"/Users/{report['id']}",
        json=patch({"op": "add", "path": f"{ENTERPRISE}:manager", "value": manager["id"]}),
    )

    assert response.status_code == 200
    assert response.get_json()[ENTERPRISE]["manager"] == {"value": manager["id"]}


def test_entra_removing_the_manager_of_a_user_with_only_a_manager_drops_the_extension(
    scim,
) -> None:
    manager = create_user(scim)
    report = create_user(scim, **{ENTERPRISE: {"manager": {"value": manager["id"]}}})
    assert report[ENTERPRISE] == {"manager": {"value": manager["id"]}}

    response = scim.patch(
        f"/Users/{report['id']}",
        json=patch({"op": "Remove", "path": "manager", "value": ""}),
    )

    assert response.status_code == 200
    body = response.get_json()
    assert ENTERPRISE not in body
    assert body["schemas"] == [USER]


def test_entra_disable_user_with_active_false(scim) -> None:
    created = create_user(scim)

    response = scim.patch(
        f"/Users/{created['id']}",
        json=patch({"op": "Replace", "path": "active", "value": False}),
    )

    assert response.status_code == 200
    assert response.get_json()["active"] is False
    assert get_user(scim, created["id"])["active"] is False
    found = scim.get(f'/Users?filter=userName eq "{created["userName"]}"').get_json()
    assert found["Resources"][0]["active"] is False


def test_entra_several_operations_in_one_patch_apply_together(scim) -> None:
    created = create_user(scim)

    response = scim.patch(
        f"/Users/{created['id']}",
        json=patch(
            {"op": "Replace", "path": "title", "value": "Analyst"},
            {"op": "Add", "path": 'emails[type eq "work"].value', "value": "w@contoso.com"},
            {"op": "Replace", "path": "active", "value": "False"},
            {"op": "Remove", "path": f"{ENTERPRISE}:department"},
        ),
    )

    assert response.status_code == 200
    body = response.get_json()
    assert body["title"] == "Analyst"
    assert body["emails"][0]["value"] == "w@contoso.com"
    assert body["active"] is False
    assert body[ENTERPRISE] == {"employeeNumber": "701984"}


def test_entra_failed_operation_applies_none_of_the_patch(scim) -> None:
    created = create_user(scim)

    response = scim.patch(
        f"/Users/{created['id']}",
        json=patch(
            {"op": "Replace", "path": "title", "value": "Analyst"},
            {"op": "Replace", "path": "active", "value": "maybe"},
        ),
    )

    assert response.status_code == 400
    assert response.get_json()["scimType"] == "invalidValue"
    assert get_user(scim, created["id"]) == created


# --- delete user ----------------------------------------------------------------------------------


def test_entra_delete_user_is_204_then_404_and_leaves_its_groups(scim) -> None:
    user = create_user(scim)
    other = create_user(scim)
    group = create_group(scim, members=[user["id"], other["id"]])

    response = scim.delete(f"/Users/{user['id']}")

    assert response.status_code == 204
    assert response.data == b""
    gone = scim.get(f"/Users/{user['id']}")
    assert gone.status_code == 404
    assert gone.get_json()["schemas"] == [ERROR]
    assert gone.get_json()["status"] == "404"
    assert member_ids(scim, group["id"]) == [other["id"]]
    assert scim.delete(f"/Users/{user['id']}").status_code == 404


# --- groups -------------------------------------------------------------------------------------


def test_entra_create_group_with_microsoft_schema_uri(scim) -> None:
    display_name = f"Group {uuid.uuid4()}"
    external_id = str(uuid.uuid4())

    response = scim.post(
        "/Groups",
        json={
            "schemas": [GROUP, MS_GROUP],
            "externalId": external_id,
            "displayName": display_name,
            "meta": {"resourceType": "Group"},
        },
    )

    assert response.status_code == 201
    body = response.get_json()
    assert body["id"]
    assert body["schemas"] == [GROUP]  # the Microsoft URI names no schema we serve
    assert body["displayName"] == display_name
    assert body["externalId"] == external_id
    assert body.get("members", []) == []
    assert body["meta"]["resourceType"] == "Group"
    assert response.headers["Location"] == body["meta"]["location"]


def test_entra_get_group_with_excluded_members_leaves_the_key_out(scim) -> None:
    user = create_user(scim)
    group = create_group(scim, members=[user["id"]])

    response = scim.get(f"/Groups/{group['id']}?excludedAttributes=members")

    assert response.status_code == 200
    body = response.get_json()
    assert "members" not in body
    assert body["id"] == group["id"]
    assert body["displayName"] == group["displayName"]


def test_entra_get_group_by_display_name_query_with_excluded_members(scim) -> None:
    user = create_user(scim)
    group = create_group(scim, members=[user["id"]])

    response = scim.get(
        f'/Groups?excludedAttributes=members&filter=displayName eq "{group["displayName"]}"'
    )

    assert response.status_code == 200
    body = response.get_json()
    assert body["totalResults"] == 1
    assert body["Resources"][0]["id"] == group["id"]
    assert "members" not in body["Resources"][0]


def test_entra_rename_group_is_204(scim) -> None:
    group = create_group(scim)

    response = scim.patch(
        f"/Groups/{group['id']}",
        json=patch({"op": "Replace", "path": "displayName", "value": "Renamed by Entra"}),
    )

    assert response.status_code == 204
    assert response.data == b""
    assert scim.get(f"/Groups/{group['id']}").get_json()["displayName"] == "Renamed by Entra"


def test_entra_add_member_is_204_and_lists_the_member(scim) -> None:
    user = create_user(scim)
    group = create_group(scim)

    response = scim.patch(
        f"/Groups/{group['id']}",
        json=patch(
            {"op": "Add", "path": "members", "value": [{"$ref": None, "value": user["id"]}]}
        ),
    )

    assert response.status_code == 204
    members = scim.get(f"/Groups/{group['id']}").get_json()["members"]
    assert len(members) == 1
    assert members[0]["value"] == user["id"]
    assert members[0]["display"] == user["userName"]
    assert members[0]["$ref"] == user["meta"]["location"]
    groups = get_user(scim, user["id"])["groups"]
    assert [(g["value"], g["display"]) for g in groups] == [(group["id"], group["displayName"])]


def test_entra_remove_member_by_value_filter_path_keeps_others(scim) -> None:
    keep, drop = create_user(scim), create_user(scim)
    group = create_group(scim, members=[keep["id"], drop["id"]])

    response = scim.patch(
        f"/Groups/{group['id']}",
        json=patch({"op": "Remove", "path": f'members[value eq "{drop["id"]}"]'}),
    )

    assert response.status_code == 204
    assert member_ids(scim, group["id"]) == [keep["id"]]


def test_entra_remove_member_by_value_list_keeps_others(scim) -> None:
    users = [create_user(scim) for _ in range(4)]
    group = create_group(scim, members=[u["id"] for u in users])

    response = scim.patch(
        f"/Groups/{group['id']}",
        json=patch(
            {
                "op": "Remove",
                "path": "members",
                "value": [{"value": users[0]["id"]}, {"value": users[2]["id"]}],
            }
        ),
    )

    assert response.status_code == 204
    assert sorted(member_ids(scim, group["id"])) == sorted([users[1]["id"], users[3]["id"]])


def test_entra_resent_add_of_an_existing_member_is_harmless(scim) -> None:
    user = create_user(scim)
    group = create_group(scim, members=[user["id"]])
    before = scim.get(f"/Groups/{group['id']}")

    response = scim.patch(
        f"/Groups/{group['id']}",
        json=patch({"op": "Add", "path": "members", "value": [{"value": user["id"]}]}),
    )

    assert response.status_code in (200, 204)
    after = scim.get(f"/Groups/{group['id']}")
    assert member_ids(scim, group["id"]) == [user["id"]]
    # Nothing changed, so the version did not move either: Entra's retries are no-ops.
    assert after.headers["ETag"] == before.headers["ETag"]


def test_entra_removing_a_member_that_is_not_there_is_harmless(scim) -> None:
    user, stranger = create_user(scim), create_user(scim)
    group = create_group(scim, members=[user["id"]])

    response = scim.patch(
        f"/Groups/{group['id']}",
        json=patch({"op": "Remove", "path": "members", "value": [{"value": stranger["id"]}]}),
    )

    assert response.status_code in (200, 204)
    assert member_ids(scim, group["id"]) == [user["id"]]


def test_entra_add_member_of_unknown_id_is_400_and_changes_nothing(scim) -> None:
    user = create_user(scim)
    group = create_group(scim, members=[user["id"]])

    response = scim.patch(
        f"/Groups/{group['id']}",
        json=patch({"op": "Add", "path": "members", "value": [{"value": str(uuid.uuid4())}]}),
    )

    assert response.status_code == 400
    assert response.get_json()["scimType"] == "invalidValue"
    assert member_ids(scim, group["id"]) == [user["id"]]


def test_entra_delete_group_is_204_then_404_and_users_stay(scim) -> None:
    user = create_user(scim)
    group = create_group(scim, members=[user["id"]])

    response = scim.delete(f"/Groups/{group['id']}")

    assert response.status_code == 204
    assert scim.get(f"/Groups/{group['id']}").status_code == 404
    remaining = get_user(scim, user["id"])
    assert "groups" not in remaining

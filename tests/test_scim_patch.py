"""The SCIM PATCH engine (gateway.scim.patch): pure unit tests, no database, no HTTP."""

from __future__ import annotations

import copy

import pytest

from gateway.scim.errors import (
    InvalidFilter,
    InvalidPath,
    InvalidSyntax,
    InvalidValue,
    Mutability,
    NoTarget,
)
from gateway.scim.patch import PATCH_OP_SCHEMA, MembersChange, PatchResult, apply_patch
from gateway.scim.schema import ENTERPRISE_SCHEMA, GROUP_SCHEMA, GROUP_TYPE, USER_SCHEMA, USER_TYPE

ENTERPRISE = ENTERPRISE_SCHEMA


def user() -> dict:
    return {
        "schemas": [USER_SCHEMA],
        "userName": "ada@example.com",
        "name": {"givenName": "Ada", "familyName": "Lovelace"},
        "emails": [{"value": "ada@example.com", "type": "work", "primary": True}],
        "active": True,
    }


def group() -> dict:
    return {"schemas": [GROUP_SCHEMA], "displayName": "Engineering"}


def body(*operations: dict) -> dict:
    return {"schemas": [PATCH_OP_SCHEMA], "Operations": list(operations)}


def patch_user(*operations: dict, resource: dict | None = None) -> PatchResult:
    return apply_patch(user() if resource is None else resource, body(*operations), USER_TYPE)


def patch_group(*operations: dict) -> PatchResult:
    return apply_patch(group(), body(*operations), GROUP_TYPE)


# --- the request body -------------------------------------------------------------------------


def test_body_without_schemas_is_tolerated() -> None:
    result = apply_patch(
        user(), {"Operations": [{"op": "replace", "path": "title", "value": "CTO"}]}, USER_TYPE
    )
    assert result.resource["title"] == "CTO"


def test_body_with_other_schemas_is_invalid_syntax() -> None:
    request = {
        "schemas": [USER_SCHEMA],
        "Operations": [{"op": "add", "path": "title", "value": "x"}],
    }
    with pytest.raises(InvalidSyntax, match="PatchOp"):
        apply_patch(user(), request, USER_TYPE)


def test_operations_key_is_case_insensitive() -> None:
    request = {
        "schemas": [PATCH_OP_SCHEMA],
        "operations": [{"op": "add", "path": "title", "value": "CTO"}],
    }
    assert apply_patch(user(), request, USER_TYPE).resource["title"] == "CTO"


@pytest.mark.parametrize(
    "request_body",
    [
        {"schemas": [PATCH_OP_SCHEMA]},
        {"schemas": [PATCH_OP_SCHEMA], "Operations": []},
        {"schemas": [PATCH_OP_SCHEMA], "Operations": {"op": "add"}},
        {"schemas": [PATCH_OP_SCHEMA], "Operations": ["add"]},
        ["not", "an", "object"],
    ],
)
def test_body_without_a_list_of_operations_is_invalid_syntax(request_body: object) -> None:
    with pytest.raises(InvalidSyntax):
        apply_patch(user(), request_body, USER_TYPE)  # type: ignore[arg-type]


def test_unknown_op_is_invalid_syntax() -> None:
    with pytest.raises(InvalidSyntax, match="'move'"):
        patch_user({"op": "move", "path": "title", "value": "x"})


def test_add_without_value_is_invalid_syntax() -> None:
    with pytest.raises(InvalidSyntax, match="needs a 'value'"):
        patch_user({"op": "add", "path": "title"})


def test_entra_capitalised_op_names_are_accepted() -> None:
    result = patch_user(
        {"op": "Replace", "path": "title", "value": "CTO"},
        {"op": "Add", "path": "nickName", "value": "Ada"},
        {"op": "Remove", "path": "active"},
    )
    expected = {**user(), "title": "CTO", "nickName": "Ada"}
    del expected["active"]
    assert result.resource == expected


def test_patch_failure_leaves_resource_untouched() -> None:
    original = user()
    snapshot = copy.deepcopy(original)
    with pytest.raises(InvalidPath, match=r"Operations\[1\]"):
        apply_patch(
            original,
            body(
                {"op": "replace", "path": "name.givenName", "value": "Augusta"},
                {"op": "replace", "path": "favouriteColour", "value": "green"},
            ),
            USER_TYPE,
        )
    assert original == snapshot


def test_patch_does_not_mutate_its_input_on_success() -> None:
    original = user()
    snapshot = copy.deepcopy(original)
    patch_user({"op": "replace", "path": "emails", "value": []}, resource=original)
    assert original == snapshot


# --- paths --------------------------------------------------------------------------------------


def test_replace_simple_attribute() -> None:
    result = patch_user({"op": "replace", "path": "title", "value": "CTO"})
    assert result.resource == {**user(), "title": "CTO"}
    assert result.changed is True
    assert result.members == MembersChange()


def test_replace_sub_attribute_keeps_siblings() -> None:
    result = patch_user({"op": "replace", "path": "name.givenName", "value": "Augusta"})
    assert result.resource["name"] == {"givenName": "Augusta", "familyName": "Lovelace"}


def test_urn_qualified_extension_attribute_adds_extension_schema() -> None:
    result = patch_user(
        {"op": "add", "path": f"{ENTERPRISE}:employeeNumber", "value": "701984"},
    )
    assert result.resource == {
        **user(),
        "schemas": [USER_SCHEMA, ENTERPRISE],
        ENTERPRISE: {"employeeNumber": "701984"},
    }


def test_urn_qualified_manager_sub_attribute_sets_manager() -> None:
    result = patch_user({"op": "replace", "path": f"{ENTERPRISE}:manager.value", "value": "m-1"})
    assert result.resource[ENTERPRISE] == {"manager": {"value": "m-1"}}


def test_unqualified_extension_attribute_is_stored_in_extension() -> None:
    result = patch_user({"op": "replace", "path": "department", "value": "Research"})
    assert result.resource[ENTERPRISE] == {"department": "Research"}
    assert result.resource["schemas"] == [USER_SCHEMA, ENTERPRISE]


def test_path_is_case_insensitive_and_stored_canonical() -> None:
    result = patch_user({"op": "replace", "path": "NAME.GIVENNAME", "value": "Augusta"})
    assert result.resource["name"] == {"givenName": "Augusta", "familyName": "Lovelace"}


def test_unknown_attribute_is_invalid_path() -> None:
    with pytest.raises(InvalidPath, match="favouriteColour") as error:
        patch_user({"op": "replace", "path": "favouriteColour", "value": "green"})
    assert error.value.body()["scimType"] == "invalidPath"
    assert error.value.status == 400


@pytest.mark.parametrize(
    "path",
    [
        "name.",
        "name.givenName.first",
        'emails[type eq "work"',
        "emails[]",
        'emails[type eq "work"]value',
        'emails[type eq "work"].',
        'name[givenName eq "Ada"]',
        'emails[type eq "work"].colour',
        "urn:example:unknown:attr",
        "emails work",
    ],
)
def test_malformed_path_is_invalid_path(path: str) -> None:
    with pytest.raises(InvalidPath):
        patch_user({"op": "replace", "path": path, "value": "x"})


# --- path-less add / replace (RFC 7644 §3.5.2.1, §3.5.2.3) ---------------------------------------


def test_pathless_replace_accepts_dotted_urn_qualified_and_extension_keys() -> None:
    result = patch_user(
        {
            "op": "replace",
            "value": {
                "name.givenName": "Augusta",
                f"{ENTERPRISE}:employeeNumber": "701984",
                ENTERPRISE: {"department": "Research", "manager": {"value": "m-1"}},
                "title": "Countess",
            },
        }
    )
    assert result.resource == {
        "schemas": [USER_SCHEMA, ENTERPRISE],
        "userName": "ada@example.com",
        "name": {"givenName": "Augusta", "familyName": "Lovelace"},
        "emails": [{"value": "ada@example.com", "type": "work", "primary": True}],
        "active": True,
        "title": "Countess",
        ENTERPRISE: {
            "employeeNumber": "701984",
            "department": "Research",
            "manager": {"value": "m-1"},
        },
    }


def test_pathless_keys_are_case_insensitive_and_stored_canonical() -> None:
    result = patch_user({"op": "replace", "value": {"DisplayName": "Ada L.", "USERNAME": "ada"}})
    assert result.resource["displayName"] == "Ada L."
    assert result.resource["userName"] == "ada"
    assert "DisplayName" not in result.resource and "USERNAME" not in result.resource


def test_pathless_add_merges_complex_and_appends_multi_valued() -> None:
    result = patch_user(
        {
            "op": "add",
            "value": {
                "name": {"middleName": "King"},
                "emails": [{"value": "ada@home.example", "type": "home"}],
            },
        }
    )
    assert result.resource["name"] == {
        "givenName": "Ada",
        "familyName": "Lovelace",
        "middleName": "King",
    }
    assert result.resource["emails"] == [
        {"value": "ada@example.com", "type": "work", "primary": True},
        {"value": "ada@home.example", "type": "home"},
    ]


def test_pathless_replace_replaces_named_attributes_only() -> None:
    result = patch_user(
        {"op": "replace", "value": {"emails": [{"value": "new@example.com", "type": "work"}]}}
    )
    assert result.resource == {**user(), "emails": [{"value": "new@example.com", "type": "work"}]}


def test_pathless_value_must_be_an_object() -> None:
    with pytest.raises(InvalidValue):
        patch_user({"op": "replace", "value": "Ada"})


def test_pathless_unknown_key_is_invalid_path() -> None:
    with pytest.raises(InvalidPath, match="shoeSize"):
        patch_user({"op": "replace", "value": {"shoeSize": 38}})


def test_removing_last_extension_attribute_drops_extension_and_its_schema() -> None:
    resource = {
        **user(),
        "schemas": [USER_SCHEMA, ENTERPRISE],
        ENTERPRISE: {"department": "Research"},
    }
    result = patch_user({"op": "remove", "path": "department"}, resource=resource)
    assert result.resource == user()


def test_remove_extension_urn_path_drops_the_extension() -> None:
    resource = {
        **user(),
        "schemas": [USER_SCHEMA, ENTERPRISE],
        ENTERPRISE: {"department": "Research", "employeeNumber": "7"},
    }
    result = patch_user({"op": "remove", "path": ENTERPRISE}, resource=resource)
    assert result.resource == user()


# --- add / replace / remove semantics -------------------------------------------------------------


def test_add_multi_valued_appends_and_skips_exact_duplicates() -> None:
    result = patch_user(
        {
            "op": "add",
            "path": "emails",
            "value": [
                {"value": "ada@example.com", "type": "work", "primary": True},
                {"value": "ada@home.example", "type": "home"},
            ],
        }
    )
    assert result.resource["emails"] == [
        {"value": "ada@example.com", "type": "work", "primary": True},
        {"value": "ada@home.example", "type": "home"},
    ]


def test_replace_multi_valued_replaces_all_values() -> None:
    result = patch_user(
        {"op": "replace", "path": "emails", "value": [{"value": "b@example.com", "type": "home"}]}
    )
    assert result.resource["emails"] == [{"value": "b@example.com", "type": "home"}]


def test_replace_multi_valued_with_empty_list_unassigns_it() -> None:
    result = patch_user({"op": "replace", "path": "emails", "value": []})
    assert "emails" not in result.resource


def test_add_to_filtered_sub_attribute_without_match_creates_element_from_filter() -> None:
    result = patch_user(
        {"op": "add", "path": 'phoneNumbers[type eq "mobile"].value', "value": "+44 20 7946 0000"}
    )
    assert result.resource["phoneNumbers"] == [{"type": "mobile", "value": "+44 20 7946 0000"}]


def test_replace_filtered_value_without_match_is_no_target() -> None:
    # RFC 7644 §3.5.2.3: replace with a value filter that matches nothing fails with noTarget
    # (add creates the element: Entra ID sends add for an e-mail the user does not have yet).
    resource = {**user(), "emails": [{"value": "ada@home.example", "type": "home"}]}
    with pytest.raises(NoTarget) as error:
        patch_user(
            {"op": "Replace", "path": 'emails[type eq "work"].value', "value": "ada@example.org"},
            resource=resource,
        )
    assert error.value.body()["scimType"] == "noTarget"


def test_filter_with_and_conditions_seeds_every_condition() -> None:
    resource = {**user(), "emails": []}
    result = patch_user(
        {
            "op": "add",
            "path": 'emails[type eq "work" and primary eq true].value',
            "value": "ada@example.org",
        },
        resource=resource,
    )
    assert result.resource["emails"] == [
        {"type": "work", "primary": True, "value": "ada@example.org"}
    ]


def test_replace_filtered_value_updates_only_matching_elements() -> None:
    resource = {
        **user(),
        "emails": [
            {"value": "ada@example.com", "type": "work", "primary": True},
            {"value": "ada@home.example", "type": "home"},
        ],
    }
    result = patch_user(
        {"op": "replace", "path": 'emails[type eq "work"].value', "value": "ada@example.org"},
        resource=resource,
    )
    assert result.resource["emails"] == [
        {"value": "ada@example.org", "type": "work", "primary": True},
        {"value": "ada@home.example", "type": "home"},
    ]


def test_add_to_filtered_sub_attribute_with_match_sets_it_without_duplicating() -> None:
    result = patch_user(
        {"op": "add", "path": 'emails[type eq "work"].value', "value": "ada@example.org"}
    )
    assert result.resource["emails"] == [
        {"value": "ada@example.org", "type": "work", "primary": True}
    ]


def test_replace_filtered_element_replaces_the_whole_element() -> None:
    result = patch_user(
        {
            "op": "replace",
            "path": 'emails[type eq "work"]',
            "value": {"value": "ada@example.org", "type": "work"},
        }
    )
    assert result.resource["emails"] == [{"value": "ada@example.org", "type": "work"}]


def test_add_filtered_element_merges_into_the_match() -> None:
    result = patch_user(
        {"op": "add", "path": 'emails[type eq "work"]', "value": {"display": "Ada at work"}}
    )
    assert result.resource["emails"] == [
        {"value": "ada@example.com", "type": "work", "primary": True, "display": "Ada at work"}
    ]


def test_entra_address_sub_attribute_by_filter_creates_address() -> None:
    result = patch_user(
        {
            "op": "Add",
            "path": 'addresses[type eq "work"].streetAddress',
            "value": "12 St James's Square",
        },
        {"op": "Add", "path": 'addresses[type eq "work"].locality', "value": "London"},
    )
    assert result.resource["addresses"] == [
        {"type": "work", "streetAddress": "12 St James's Square", "locality": "London"}
    ]


def test_filter_that_cannot_describe_an_element_is_no_target() -> None:
    with pytest.raises(NoTarget):
        patch_user(
            {
                "op": "replace",
                "path": 'emails[type eq "home" or type eq "other"].value',
                "value": "x@example.com",
            }
        )


def test_remove_with_filter_removes_matching_elements() -> None:
    resource = {
        **user(),
        "emails": [
            {"value": "ada@example.com", "type": "work", "primary": True},
            {"value": "ada@home.example", "type": "home"},
        ],
    }
    result = patch_user({"op": "remove", "path": 'emails[type eq "work"]'}, resource=resource)
    assert result.resource["emails"] == [{"value": "ada@home.example", "type": "home"}]


def test_remove_with_filter_of_the_last_element_unassigns_attribute() -> None:
    result = patch_user({"op": "remove", "path": 'emails[type eq "work"]'})
    assert "emails" not in result.resource


def test_remove_with_filter_matching_nothing_is_a_no_op() -> None:
    result = patch_user({"op": "remove", "path": 'emails[type eq "home"]'})
    assert result.resource == user()
    assert result.changed is False


def test_remove_filtered_value_sub_attribute_drops_the_element() -> None:
    resource = {
        **user(),
        "phoneNumbers": [{"value": "1", "type": "work"}, {"value": "2", "type": "mobile"}],
    }
    result = patch_user(
        {"op": "remove", "path": 'phoneNumbers[type eq "work"].value'}, resource=resource
    )
    assert result.resource["phoneNumbers"] == [{"value": "2", "type": "mobile"}]


def test_remove_filtered_other_sub_attribute_keeps_the_element() -> None:
    result = patch_user({"op": "remove", "path": 'emails[type eq "work"].primary'})
    assert result.resource["emails"] == [{"value": "ada@example.com", "type": "work"}]


def test_remove_listed_values_of_multi_valued_attribute_keeps_others() -> None:
    resource = {**user(), "roles": [{"value": "admin"}, {"value": "auditor"}]}
    result = patch_user(
        {"op": "remove", "path": "roles", "value": [{"value": "ADMIN"}]}, resource=resource
    )
    assert result.resource["roles"] == [{"value": "auditor"}]


def test_remove_absent_attribute_is_a_no_op() -> None:
    result = patch_user(
        {"op": "remove", "path": "title"},
        {"op": "remove", "path": "name.middleName"},
        {"op": "remove", "path": f"{ENTERPRISE}:manager"},
    )
    assert result.resource == user()
    assert result.changed is False


def test_remove_sub_attribute_keeps_siblings() -> None:
    result = patch_user({"op": "remove", "path": "name.familyName"})
    assert result.resource["name"] == {"givenName": "Ada"}


def test_remove_without_path_is_no_target() -> None:
    with pytest.raises(NoTarget) as error:
        patch_user({"op": "remove", "value": {"title": "CTO"}})
    assert error.value.body()["scimType"] == "noTarget"


def test_setting_primary_clears_it_on_the_other_values() -> None:
    result = patch_user(
        {
            "op": "add",
            "path": "emails",
            "value": [{"value": "ada@home.example", "type": "home", "primary": True}],
        }
    )
    assert result.resource["emails"] == [
        {"value": "ada@example.com", "type": "work", "primary": False},
        {"value": "ada@home.example", "type": "home", "primary": True},
    ]


def test_setting_primary_through_a_filter_clears_it_on_the_other_values() -> None:
    resource = {
        **user(),
        "emails": [
            {"value": "ada@example.com", "type": "work", "primary": True},
            {"value": "ada@home.example", "type": "home"},
        ],
    }
    result = patch_user(
        {"op": "replace", "path": 'emails[type eq "home"].primary', "value": True},
        resource=resource,
    )
    assert result.resource["emails"] == [
        {"value": "ada@example.com", "type": "work", "primary": False},
        {"value": "ada@home.example", "type": "home", "primary": True},
    ]


def test_value_filter_treats_string_true_as_boolean_true() -> None:
    resource = {
        **user(),
        "emails": [
            {"value": "ada@example.com", "type": "work", "primary": "True"},
            {"value": "ada@home.example", "type": "home"},
        ],
    }
    result = patch_user(
        {"op": "replace", "path": "emails[primary eq true].value", "value": "ada@example.org"},
        resource=resource,
    )
    assert result.resource["emails"] == [
        {"value": "ada@example.org", "type": "work", "primary": "True"},
        {"value": "ada@home.example", "type": "home"},
    ]


def test_replace_with_same_value_reports_unchanged() -> None:
    result = patch_user({"op": "replace", "path": "name.givenName", "value": "Ada"})
    assert result.changed is False


# --- mutability (RFC 7644 §3.5.2, RFC 7643 §2.2) --------------------------------------------------


@pytest.mark.parametrize(
    "path", ["id", "meta", "meta.created", "groups", f"{ENTERPRISE}:manager.displayName"]
)
def test_read_only_attributes_are_a_mutability_error(path: str) -> None:
    with pytest.raises(Mutability) as error:
        patch_user({"op": "replace", "path": path, "value": "x"})
    assert error.value.body()["scimType"] == "mutability"


def test_pathless_meta_is_a_mutability_error() -> None:
    with pytest.raises(Mutability):
        patch_user({"op": "replace", "value": {"meta": {"version": "W/1"}}})


def test_writes_to_schemas_are_ignored() -> None:
    result = patch_user(
        {"op": "replace", "path": "schemas", "value": ["urn:example"]},
        {"op": "replace", "value": {"schemas": ["urn:example"]}},
    )
    assert result.resource == user()
    assert result.changed is False


def test_password_is_accepted() -> None:
    result = patch_user({"op": "replace", "path": "password", "value": "s3cret!"})
    assert result.resource["password"] == "s3cret!"


def test_external_id_is_read_write() -> None:
    result = patch_user({"op": "replace", "path": "externalId", "value": "E-42"})
    assert result.resource["externalId"] == "E-42"


def test_read_only_sub_attribute_in_a_value_is_ignored() -> None:
    result = patch_user(
        {"op": "add", "path": "manager", "value": {"value": "m-1", "displayName": "Babbage"}}
    )
    assert result.resource[ENTERPRISE] == {"manager": {"value": "m-1"}}


# --- Entra ID dialect -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("value", "stored"),
    [
        ([{"$ref": None, "value": "m-1"}], {"value": "m-1"}),
        ("m-1", {"value": "m-1"}),
        ({"value": "m-1"}, {"value": "m-1"}),
        ([{"$ref": "../Users/m-1", "value": "m-1"}], {"value": "m-1", "$ref": "../Users/m-1"}),
    ],
)
def test_entra_manager_forms_are_stored_as_value_object(value: object, stored: dict) -> None:
    result = patch_user({"op": "Add", "path": "manager", "value": value})
    assert result.resource == {
        **user(),
        "schemas": [USER_SCHEMA, ENTERPRISE],
        ENTERPRISE: {"manager": stored},
    }


def test_entra_new_manager_replaces_old_ref() -> None:
    resource = {
        **user(),
        "schemas": [USER_SCHEMA, ENTERPRISE],
        ENTERPRISE: {"manager": {"value": "m-1", "$ref": "../Users/m-1"}},
    }
    result = patch_user({"op": "Replace", "path": "manager", "value": "m-2"}, resource=resource)
    assert result.resource[ENTERPRISE] == {"manager": {"value": "m-2"}}


@pytest.mark.parametrize(
    "operation",
    [
        {"op": "Remove", "path": "manager", "value": ""},
        {"op": "Remove", "path": "manager"},
        {"op": "Replace", "path": "manager", "value": ""},
        {"op": "Add", "path": "manager", "value": ""},
        {"op": "Replace", "path": "manager", "value": {"value": ""}},
        {"op": "Replace", "path": "manager", "value": None},
        {"op": "Replace", "path": f"{ENTERPRISE}:manager.value", "value": ""},
        {"op": "Remove", "path": f"{ENTERPRISE}:manager.value"},
        {"op": "Replace", "value": {f"{ENTERPRISE}:manager": ""}},
    ],
)
def test_entra_manager_removal_forms_remove_the_manager(operation: dict) -> None:
    resource = {
        **user(),
        "schemas": [USER_SCHEMA, ENTERPRISE],
        ENTERPRISE: {"manager": {"value": "m-1"}, "department": "Research"},
    }
    result = patch_user(operation, resource=resource)
    assert result.resource[ENTERPRISE] == {"department": "Research"}


def test_entra_removing_the_only_manager_drops_the_extension() -> None:
    resource = {
        **user(),
        "schemas": [USER_SCHEMA, ENTERPRISE],
        ENTERPRISE: {"manager": {"value": "m-1"}},
    }
    result = patch_user({"op": "Remove", "path": "manager", "value": ""}, resource=resource)
    assert result.resource == user()


def test_entra_string_booleans_pass_through_unchanged() -> None:
    result = patch_user({"op": "Replace", "path": "active", "value": "False"})
    assert result.resource["active"] == "False"


def test_entra_pathless_value_with_value_path_keys() -> None:
    result = patch_user(
        {
            "op": "Add",
            "value": {
                'emails[type eq "work"].value': "ada@example.org",
                "name.familyName": "King",
            },
        }
    )
    assert result.resource["emails"] == [
        {"value": "ada@example.org", "type": "work", "primary": True}
    ]
    assert result.resource["name"] == {"givenName": "Ada", "familyName": "King"}


# --- Okta ---------------------------------------------------------------------------------------


def test_okta_deactivation_by_pathless_replace() -> None:
    result = patch_user({"op": "replace", "value": {"active": False}})
    assert result.resource == {**user(), "active": False}
    assert result.changed is True


# --- explicit nulls and empty strings (OneLogin, JumpCloud) ---------------------------------------


@pytest.mark.parametrize(
    ("operation", "gone"),
    [
        ({"op": "add", "path": "userName", "value": None}, "userName"),
        ({"op": "replace", "path": "name", "value": None}, "name"),
        ({"op": "replace", "path": "emails", "value": None}, "emails"),
        ({"op": "replace", "value": {"active": None}}, "active"),
    ],
)
def test_explicit_null_removes_the_attribute(operation: dict, gone: str) -> None:
    result = patch_user(operation)
    assert gone not in result.resource


def test_explicit_null_sub_attribute_removes_only_it() -> None:
    result = patch_user({"op": "replace", "path": "name", "value": {"familyName": None}})
    assert result.resource["name"] == {"givenName": "Ada"}


def test_empty_string_is_kept_as_given() -> None:
    result = patch_user({"op": "replace", "path": "title", "value": ""})
    assert result.resource["title"] == ""


def test_object_for_a_simple_attribute_is_invalid_value() -> None:
    with pytest.raises(InvalidValue):
        patch_user({"op": "replace", "path": "title", "value": {"value": "CTO"}})


# --- group members: a delta, never a list in the resource -----------------------------------------


def test_add_members_gives_a_delta_and_leaves_the_resource() -> None:
    result = patch_group(
        {
            "op": "Add",
            "path": "members",
            "value": [{"$ref": None, "value": "u-1"}, {"value": "g-2", "type": "Group"}],
        }
    )
    assert result.resource == group()
    assert result.members == MembersChange(
        add=[{"value": "u-1", "type": None}, {"value": "g-2", "type": "Group"}]
    )
    assert result.changed is True


def test_okta_add_member_with_display_keeps_only_value_and_type() -> None:
    result = patch_group(
        {"op": "add", "path": "members", "value": [{"value": "u-1", "display": "ada@okta"}]}
    )
    assert result.members == MembersChange(add=[{"value": "u-1", "type": None}])


def test_okta_remove_member_by_value_filter() -> None:
    result = patch_group({"op": "remove", "path": 'members[value eq "u-1"]'})
    assert result.members == MembersChange(remove={"u-1"})
    assert result.resource == group()


def test_remove_members_by_or_combined_value_filter() -> None:
    result = patch_group({"op": "remove", "path": 'members[value eq "u-1" or value eq "u-2"]'})
    assert result.members == MembersChange(remove={"u-1", "u-2"})


def test_entra_remove_member_by_value_list_keeps_others() -> None:
    result = patch_group(
        {
            "op": "Remove",
            "path": "members",
            "value": [{"$ref": None, "value": "u-1"}, {"value": "u-2"}],
        }
    )
    assert result.members == MembersChange(remove={"u-1", "u-2"}, remove_all=False)


def test_remove_members_without_value_removes_all() -> None:
    result = patch_group({"op": "remove", "path": "members"})
    assert result.members == MembersChange(remove_all=True)


def test_replace_members_gives_the_whole_new_list() -> None:
    result = patch_group(
        {"op": "replace", "path": "members", "value": [{"value": "u-1"}, {"value": "u-1"}]}
    )
    assert result.members == MembersChange(replace=[{"value": "u-1", "type": None}])


def test_replace_with_empty_members_list_empties_the_group() -> None:
    result = patch_group({"op": "replace", "path": "members", "value": []})
    assert result.members == MembersChange(replace=[])
    assert result.changed is True


def test_replace_then_add_grows_the_replace_list() -> None:
    result = patch_group(
        {"op": "replace", "path": "members", "value": [{"value": "u-1"}]},
        {"op": "add", "path": "members", "value": [{"value": "u-2"}]},
        {"op": "remove", "path": 'members[value eq "u-1"]'},
    )
    assert result.members == MembersChange(replace=[{"value": "u-2", "type": None}])


def test_add_then_remove_of_the_same_member_cancels_the_add() -> None:
    result = patch_group(
        {"op": "add", "path": "members", "value": [{"value": "u-1"}, {"value": "u-2"}]},
        {"op": "remove", "path": 'members[value eq "u-1"]'},
    )
    assert result.members == MembersChange(add=[{"value": "u-2", "type": None}], remove={"u-1"})


def test_remove_then_add_of_the_same_member_keeps_it() -> None:
    result = patch_group(
        {"op": "remove", "path": 'members[value eq "u-1"]'},
        {"op": "add", "path": "members", "value": [{"value": "u-1"}]},
    )
    assert result.members == MembersChange(add=[{"value": "u-1", "type": None}])


def test_remove_all_then_add_keeps_the_added() -> None:
    result = patch_group(
        {"op": "remove", "path": "members"},
        {"op": "add", "path": "members", "value": [{"value": "u-3"}]},
    )
    assert result.members == MembersChange(add=[{"value": "u-3", "type": None}], remove_all=True)


def test_pathless_add_with_members_key_adds_members() -> None:
    result = patch_group({"op": "add", "value": {"members": [{"value": "u-1"}]}})
    assert result.members == MembersChange(add=[{"value": "u-1", "type": None}])
    assert result.resource == group()


def test_pathless_replace_with_members_key_replaces_members() -> None:
    result = patch_group({"op": "replace", "value": {"members": [{"value": "u-1"}]}})
    assert result.members == MembersChange(replace=[{"value": "u-1", "type": None}])


def test_okta_group_rename_ignores_the_groups_own_id() -> None:
    result = patch_group(
        {"op": "replace", "value": {"id": "abf4dd94-a4c0", "displayName": "Platform"}}
    )
    assert result.resource == {"schemas": [GROUP_SCHEMA], "displayName": "Platform"}
    assert result.members == MembersChange()


def test_member_as_bare_string_id_is_tolerated() -> None:
    result = patch_group({"op": "add", "path": "members", "value": ["u-1"]})
    assert result.members == MembersChange(add=[{"value": "u-1", "type": None}])


def test_member_type_is_canonicalised() -> None:
    result = patch_group(
        {"op": "add", "path": "members", "value": [{"value": "u-1", "type": "user"}]}
    )
    assert result.members == MembersChange(add=[{"value": "u-1", "type": "User"}])


@pytest.mark.parametrize(
    "member", [{"display": "no id"}, {"value": ""}, {"value": 42}, {"value": "u", "type": "Robot"}]
)
def test_member_without_a_usable_id_or_type_is_invalid_value(member: dict) -> None:
    with pytest.raises(InvalidValue):
        patch_group({"op": "add", "path": "members", "value": [member]})


def test_members_filter_other_than_value_eq_is_invalid_filter() -> None:
    with pytest.raises(InvalidFilter):
        patch_group({"op": "remove", "path": 'members[type eq "User"]'})


def test_add_on_filtered_members_path_is_invalid_path() -> None:
    with pytest.raises(InvalidPath):
        patch_group({"op": "add", "path": 'members[value eq "u-1"]', "value": {"value": "u-1"}})


def test_members_is_unknown_on_users() -> None:
    with pytest.raises(InvalidPath):
        patch_user({"op": "add", "path": "members", "value": [{"value": "u-1"}]})


def test_group_rename_without_members_reports_no_membership_change() -> None:
    result = patch_group({"op": "replace", "path": "displayName", "value": "Engineering"})
    assert result.changed is False
    assert not result.members

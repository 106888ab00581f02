"""The mapping file and the pure rule engine, without a database."""

from __future__ import annotations

import pytest

from mappings import DirGroup, DirUser, MappingError, desired_state, load_mapping


def user(
    uid: str, user_name: str, *, source: str = "scim", active: bool = True, **resource
) -> DirUser:
    return DirUser(
        id=uid,
        source=source,
        user_name=user_name,
        external_id=resource.get("externalId"),
        active=active,
        resource={"userName": user_name, **resource},
    )


def group(gid: str, name: str, *parents: str, external_id: str | None = None) -> DirGroup:
    return DirGroup(
        id=gid, source="scim", name=name, external_id=external_id, parent_ids=frozenset(parents)
    )


def problems_of(text: str) -> list[str]:
    with pytest.raises(MappingError) as caught:
        load_mapping(text)
    return caught.value.problems


# --- the file ---------------------------------------------------------------------------------


def test_empty_file_means_the_defaults():
    mapping = load_mapping("")
    assert mapping.scope.groups == () and mapping.scope.filter is None
    assert mapping.attributes.email == ("primary", "userName", "work", "first")
    assert not mapping.manages_roles


def test_every_error_names_key_line_and_what_is_expected():
    assert problems_of("""\
scope:
  groupz: [Staff]
collections:
  - group: Marketing
    collections: Social Media
    permission: write
roles:
  - {groups: [Admins], role: boss}
""") == [
        "line 2: scope.groupz: is not a known key",
        "line 5: collections[0].collections: must be a list",
        "line 6: collections[0].permission: must be one of view, view-except-passwords, edit, "
        "edit-except-passwords, manage, not 'write'",
        "line 8: roles[0].role: must be one of owner, admin, custom, user, not 'boss'",
    ]


def test_group_rule_needs_one_selector_and_one_action():
    assert problems_of("groups:\n  - {match: 'Sales*'}\n") == [
        "line 2: groups[0].rename: give exactly one of rename: NAME or ignore: true"
    ]
    assert problems_of("groups:\n  - {match: a, external_id: b, ignore: true}\n") == [
        "line 2: groups[0].match: give exactly one of match (a name glob) or external_id"
    ]


def test_yaml_syntax_errors_name_the_line():
    problems = problems_of("scope:\n  groups: [Staff\n")
    assert problems[0].startswith("line 3: not valid YAML")


def test_scope_filter_is_checked_by_the_callers_compiler():
    with pytest.raises(MappingError) as caught:
        load_mapping("scope:\n  filter: 'userName zz 1'\n", check_filter=lambda f: "bad operator")
    assert caught.value.problems == ["line 2: scope.filter: bad operator"]


def test_scim_filter_compiler_rejects_a_bad_scope_filter():
    from gateway.provisioning.settings import parse_mapping

    with pytest.raises(MappingError) as caught:
        parse_mapping("scope:\n  filter: 'userName zz \"x\"'\n")
    assert caught.value.problems[0].startswith("line 2: scope.filter: ")


# --- the rules --------------------------------------------------------------------------------


def test_email_default_order_trims_and_lowercases():
    mapping = load_mapping("")
    members, _ = desired_state(
        mapping,
        [
            user("1", "x", emails=[{"value": "a@b.c"}, {"value": " P@Acme.COM ", "primary": True}]),
            user("2", "Ann@Acme.com", emails=[{"value": "w@acme.com", "type": "work"}]),
            user(
                "3",
                "bob",
                emails=[{"value": "other@acme.com"}, {"value": "w@acme.com", "type": "work"}],
            ),
            user("4", "carol", emails=[{"value": "not an e-mail"}]),
        ],
        [],
        {},
    )
    assert [m.email for m in members] == ["p@acme.com", "ann@acme.com", "w@acme.com", None]
    assert members[3].problem == "carol: no usable e-mail address (not provisioned)"
    assert not members[3].provision


def test_nested_groups_flatten_through_cycles():
    mapping = load_mapping("")
    groups = [group("a", "A", "b"), group("b", "B", "c"), group("c", "C", "a")]
    members, desired_groups = desired_state(mapping, [user("1", "u@x.io")], groups, {"1": ["a"]})
    assert members[0].groups == {"A", "B", "C"}
    assert sorted(desired_groups) == ["a", "b", "c"]


def test_renamed_groups_merge_and_ignored_groups_vanish():
    mapping = load_mapping(
        "groups:\n  - {match: 'sales *', rename: Sales}\n  - {external_id: x1, ignore: true}\n"
    )
    groups = [
        group("g1", "Sales EU"),
        group("g2", "Sales US"),
        group("g3", "All", external_id="x1"),
    ]
    members, desired_groups = desired_state(
        mapping, [user("1", "u@x.io")], groups, {"1": ["g1", "g2", "g3"]}
    )
    assert members[0].groups == {"Sales"}
    assert list(desired_groups) == ["sales"]
    assert desired_groups["sales"].origin == "g1"


def test_highest_role_and_permission_win():
    mapping = load_mapping("""
roles:
  - {groups: [Staff], role: custom}
  - {groups: [Admins], role: admin}
collections:
  - {group: Staff, collections: [Docs], permission: view}
  - {group: Staff, collections: [docs], permission: manage}
""")
    groups = [group("s", "Staff"), group("a", "Admins", "s")]
    members, desired_groups = desired_state(
        mapping, [user("1", "a@x.io"), user("2", "b@x.io")], groups, {"1": ["a"], "2": ["s"]}
    )
    assert [m.role for m in members] == ["admin", "custom"]
    assert desired_groups["staff"].access == {"Docs": "manage"}


def test_scope_groups_and_deactivation_give_reasons():
    mapping = load_mapping("scope: {groups: [Staff]}\n")
    members, _ = desired_state(
        mapping,
        [user("1", "a@x.io"), user("2", "b@x.io"), user("3", "c@x.io", active=False)],
        [group("s", "Staff")],
        {"1": ["s"], "3": ["s"]},
    )
    assert [(m.provision, m.reason) for m in members] == [
        (True, None),
        (False, "not in a scope group"),
        (False, "deactivated in the directory"),
    ]

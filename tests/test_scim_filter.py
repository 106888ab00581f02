"""SCIM filters compiled to SQL (gateway.scim.filter), run on real rows in SQLite and PostgreSQL."""

from __future__ import annotations

import contextlib
import string
from dataclasses import dataclass
from datetime import UTC, datetime

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy import select
from sqlalchemy.dialects import postgresql, sqlite

from gateway.scim.errors import InvalidFilter, InvalidValue
from gateway.scim.filter import compile_filter, matches_element, sort_column
from gateway.scim.limits import MAX_FILTER_COMPARISONS
from gateway.scim.schema import ENTERPRISE_SCHEMA, GROUP_SCHEMA, GROUP_TYPE, USER_SCHEMA, USER_TYPE
from gateway.store.models import (
    DirectoryGroup,
    DirectoryGroupMember,
    DirectoryUser,
    Organization,
)

ENTERPRISE = ENTERPRISE_SCHEMA


@dataclass
class Directory:
    org_id: str
    users: dict[str, str]  # userName -> id
    groups: dict[str, str]  # displayName -> id


def _user(org_id: str, user_name: str, modified: str, **fields: object) -> DirectoryUser:
    resource = {"schemas": [USER_SCHEMA], "userName": user_name, **fields.pop("resource", {})}
    when = datetime.fromisoformat(modified).replace(tzinfo=UTC)
    return DirectoryUser(
        org_id=org_id,
        source="scim",
        user_name=user_name,
        user_name_lower=user_name.lower(),
        resource=resource,
        created_at=when,
        last_modified=when,
        **fields,
    )


@pytest.fixture
def directory(database) -> Directory:
    """Three users and three groups:

    - alice: work + home e-mails, department R&D, manager bob-id, title Engineer, member of Eng
    - bob: inactive, one work e-mail stored with primary "True", department Sales, no title
    - carol_100%: no e-mails (empty array), empty title, a mobile phone, no externalId
    - Eng (members alice and group Ops), Ops (member bob), Empty
    """
    with database.transaction() as session:
        org = Organization(name="Acme", name_lower="acme")
        session.add(org)
        session.flush()
        alice = _user(
            org.id,
            "Alice@Example.com",
            "2024-01-10T09:00:00",
            external_id="EXT-A",
            display_name="Alice Smith",
            active=True,
            resource={
                "schemas": [USER_SCHEMA, ENTERPRISE],
                "name": {"givenName": "Alice", "familyName": "Smith"},
                "displayName": "Alice Smith",
                "title": "Engineer",
                "emails": [
                    {"value": "alice@home.org", "type": "home"},
                    {"value": "alice@acme.com", "type": "work", "primary": True},
                ],
                ENTERPRISE: {"department": "R&D", "manager": {"value": "bob-id"}},
            },
        )
        bob = _user(
            org.id,
            "bob",
            "2024-03-01T09:00:00",
            external_id="ext-b",
            display_name="Bob Jones",
            active=False,
            resource={
                "schemas": [USER_SCHEMA, ENTERPRISE],
                "name": {"givenName": "Bob", "familyName": "Jones"},
                "emails": [{"value": "BOB@ACME.COM", "type": "work", "primary": "True"}],
                ENTERPRISE: {"department": "Sales"},
            },
        )
        carol = _user(
            org.id,
            "carol_100%",
            "2024-06-01T09:00:00",
            active=True,
            resource={
                "name": {"givenName": "Carol", "familyName": "Adams"},
                "title": "",
                "emails": [],
                "phoneNumbers": [{"value": "+1 555", "type": "mobile"}],
            },
        )
        session.add_all([alice, bob, carol])
        groups = {}
        for name in ("Eng", "Ops", "Empty"):
            group = DirectoryGroup(
                org_id=org.id,
                source="scim",
                display_name=name,
                display_name_lower=name.lower(),
                resource={"schemas": [GROUP_SCHEMA], "displayName": name},
            )
            session.add(group)
            groups[name] = group
        session.flush()
        session.add_all(
            [
                DirectoryGroupMember(group_id=groups["Eng"].id, user_id=alice.id),
                DirectoryGroupMember(group_id=groups["Eng"].id, child_group_id=groups["Ops"].id),
                DirectoryGroupMember(group_id=groups["Ops"].id, user_id=bob.id),
            ]
        )
        return Directory(
            org.id,
            {u.user_name: u.id for u in (alice, bob, carol)},
            {name: g.id for name, g in groups.items()},
        )


def users(database, expression: str) -> set[str]:
    with database.transaction() as session:
        query = select(DirectoryUser.user_name).where(compile_filter(expression, USER_TYPE))
        return set(session.scalars(query))


def groups(database, expression: str) -> set[str]:
    with database.transaction() as session:
        query = select(DirectoryGroup.display_name).where(compile_filter(expression, GROUP_TYPE))
        return set(session.scalars(query))


ALICE, BOB, CAROL = "Alice@Example.com", "bob", "carol_100%"
EVERYONE = {ALICE, BOB, CAROL}


@pytest.mark.parametrize(
    ("expression", "expected"),
    [
        ('userName eq "alice@example.com"', {ALICE}),
        ('userName eq "ALICE@EXAMPLE.COM"', {ALICE}),
        ('USERNAME EQ "Bob"', {BOB}),
        ('userName co "EXAMPLE"', {ALICE}),
        ('userName sw "CAR"', {CAROL}),
        ('userName ew "@example.COM"', {ALICE}),
        ('displayName eq "alice smith"', {ALICE}),
        ('displayName co "JONES"', {BOB}),
        ('emails.value eq "bob@acme.com"', {BOB}),
        ('emails.value eq "ALICE@ACME.COM"', {ALICE}),
        ('name.givenName eq "ALICE"', {ALICE}),
    ],
)
def test_case_insensitive_attributes_match_any_case(database, directory, expression, expected):
    assert users(database, expression) == expected


@pytest.mark.parametrize(
    ("expression", "expected"),
    [
        ('externalId eq "EXT-A"', {ALICE}),
        ('externalId eq "ext-a"', set()),
        ('externalId sw "EXT"', {ALICE}),
        ('externalId sw "ext"', {BOB}),
        ('externalId ew "-B"', set()),
        ('externalId ew "-b"', {BOB}),
        ('externalId co "XT"', {ALICE}),
        ('externalId co "xt"', {BOB}),
        ('externalId eq "EXT-B"', set()),
    ],
)
def test_external_id_is_case_exact(database, directory, expression, expected):
    assert users(database, expression) == expected


@pytest.mark.parametrize(
    ("expression", "expected"),
    [
        ('userName eq "bob"', {BOB}),
        ('userName ne "bob"', {ALICE, CAROL}),
        ('userName co "ob"', {BOB}),
        ('userName sw "b"', {BOB}),
        ('userName ew "%"', {CAROL}),
        ('userName gt "b"', {BOB, CAROL}),
        ('userName ge "bob"', {BOB, CAROL}),
        ('userName lt "bob"', {ALICE}),
        ('userName le "bob"', {ALICE, BOB}),
        ("userName pr", EVERYONE),
        ("title pr", {ALICE}),
        ("externalId pr", {ALICE, BOB}),
        ("emails pr", {ALICE, BOB}),
        ("name pr", EVERYONE),
        ("phoneNumbers pr", {CAROL}),
        ("active eq true", {ALICE, CAROL}),
        ("active eq false", {BOB}),
        ("active ne true", {BOB}),
    ],
)
def test_every_attribute_operator(database, directory, expression, expected):
    assert users(database, expression) == expected


@pytest.mark.parametrize(
    ("expression", "expected"),
    [
        ('userName co "_"', {CAROL}),
        ('userName co "%"', {CAROL}),
        ('userName co "l_1"', {CAROL}),
        ('userName co "l%"', set()),
        ('userName sw "c%"', set()),
        ('displayName co "/"', set()),
        ('externalId co "_"', set()),
        ('userName co ""', EVERYONE),
    ],
)
def test_like_wildcards_in_values_match_literally(database, directory, expression, expected):
    assert users(database, expression) == expected


@pytest.mark.parametrize(
    ("expression", "expected"),
    [
        # RFC 7644 §3.4.2.2: "and" binds tighter than "or".
        ('userName eq "bob" or userName sw "a" and active eq true', {ALICE, BOB}),
        ('userName sw "a" and active eq false or userName eq "bob"', {BOB}),
        ('userName sw "c" or userName sw "a" and active eq false', {CAROL}),
        ('(userName eq "bob" or userName sw "a") and active eq true', {ALICE}),
        ('active eq true and (userName eq "bob" or title pr)', {ALICE}),
        ('not (userName eq "bob")', {ALICE, CAROL}),
        ('not (userName eq "bob" or active eq false) and title pr', {ALICE}),
        ('not (not (userName eq "bob"))', {BOB}),
        ('userName eq "a" or userName eq "bob" or userName eq "carol_100%"', {BOB, CAROL}),
    ],
)
def test_logical_precedence_and_grouping(database, directory, expression, expected):
    assert users(database, expression) == expected


@pytest.mark.parametrize(
    ("expression", "expected"),
    [
        # ne / not on an absent attribute match it: ne is "not eq" (see the module docstring).
        ('title ne "Engineer"', {BOB, CAROL}),
        ("not (title pr)", {BOB, CAROL}),
        ("title eq null", {BOB, CAROL}),
        ("title ne null", {ALICE}),
        ('externalId ne "EXT-A"', {BOB, CAROL}),
        ('emails.value ne "bob@acme.com"', {ALICE, CAROL}),
        ('emails[type ne "home"]', {ALICE, BOB}),
    ],
)
def test_negation_matches_resources_without_the_attribute(
    database, directory, expression, expected
):
    assert users(database, expression) == expected


@pytest.mark.parametrize(
    ("expression", "expected"),
    [
        ('emails[type eq "work" and value co "@acme.com"]', {ALICE, BOB}),
        # Both conditions must hold for the same e-mail: alice's home address is not @acme.com.
        ('emails[type eq "home" and value co "@acme.com"]', set()),
        ('emails[type eq "work"].value ew "ACME.COM"', {ALICE, BOB}),
        ('emails[type eq "home"].value ew "acme.com"', set()),
        ('emails[type eq "home"] pr', {ALICE}),
        ('emails[type eq "work"].value pr', {ALICE, BOB}),
        ('emails[not (type eq "work")]', {ALICE}),
        ('emails[type eq "work" and (value sw "alice" or value sw "nobody")]', {ALICE}),
        # A stored "True" string counts as true.
        ("emails[primary eq true]", {ALICE, BOB}),
        ('emails[primary eq true and value co "home"]', set()),
        ("emails.primary eq false", set()),
        ('emails co "home.org"', {ALICE}),
        ('emails eq "BOB@acme.com"', {BOB}),
        ('emails.type eq "home"', {ALICE}),
        ('phoneNumbers[type eq "mobile"].value sw "+1"', {CAROL}),
        ('name[givenName eq "bob" and familyName eq "jones"]', {BOB}),
        ('name[givenName eq "bob" and familyName eq "smith"]', set()),
        ('name.familyName sw "s"', {ALICE}),
        ('schemas eq "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User"', {ALICE, BOB}),
    ],
)
def test_multi_valued_and_complex_attributes(database, directory, expression, expected):
    assert users(database, expression) == expected


@pytest.mark.parametrize(
    ("expression", "expected"),
    [
        ('department eq "r&d"', {ALICE}),
        (f'{ENTERPRISE}:department eq "Sales"', {BOB}),
        (f"{ENTERPRISE}:department pr", {ALICE, BOB}),
        ('manager.value eq "bob-id"', {ALICE}),
        (f'{ENTERPRISE}:manager.value eq "bob-id"', {ALICE}),
        ("manager pr", {ALICE}),
        (f'{USER_SCHEMA}:name.givenName eq "carol"', {CAROL}),
        (f'{USER_SCHEMA}:userName eq "BOB"', {BOB}),
    ],
)
def test_extension_and_urn_qualified_attributes(database, directory, expression, expected):
    assert users(database, expression) == expected


@pytest.mark.parametrize(
    ("expression", "expected"),
    [
        ('meta.lastModified gt "2024-02-01T00:00:00Z"', {BOB, CAROL}),
        ('meta.lastModified ge "2024-03-01T09:00:00Z"', {BOB, CAROL}),
        ('meta.lastModified gt "2024-03-01T10:00:00+02:00"', {BOB, CAROL}),
        ('meta.lastModified lt "2024-03-01T09:00:00Z"', {ALICE}),
        ('meta.lastModified eq "2024-06-01T09:00:00Z"', {CAROL}),
        ('meta.created le "2024-01-10T09:00:00"', {ALICE}),
        ("meta.created pr", EVERYONE),
        ('meta.resourceType eq "User"', EVERYONE),
        ('meta.resourceType eq "Group"', set()),
    ],
)
def test_meta_attributes(database, directory, expression, expected):
    assert users(database, expression) == expected


def test_id_and_group_membership_of_users(database, directory):
    alice_id = directory.users[ALICE]
    assert users(database, f'id eq "{alice_id}"') == {ALICE}
    assert users(database, f'groups.value eq "{directory.groups["Eng"]}"') == {ALICE}
    assert users(database, f'groups eq "{directory.groups["Ops"].upper()}"') == {BOB}
    assert users(database, f'groups[value eq "{directory.groups["Ops"]}"]') == {BOB}
    assert users(database, "groups pr") == {ALICE, BOB}
    assert users(database, "not (groups pr)") == {CAROL}


def test_group_display_name_and_members(database, directory):
    alice_id, bob_id = directory.users[ALICE], directory.users[BOB]
    assert groups(database, 'displayName eq "ENG"') == {"Eng"}
    assert groups(database, 'displayName sw "e"') == {"Eng", "Empty"}
    assert groups(database, f'members.value eq "{alice_id}"') == {"Eng"}
    assert groups(database, f'members eq "{bob_id}"') == {"Ops"}
    assert groups(database, f'members.value eq "{directory.groups["Ops"]}"') == {"Eng"}
    assert groups(database, 'members[type eq "group"]') == {"Eng"}
    assert groups(database, f'members[value eq "{bob_id}" and type eq "User"]') == {"Ops"}
    assert groups(database, "members pr") == {"Eng", "Ops"}
    assert groups(database, "not (members pr)") == {"Empty"}
    assert groups(database, 'meta.resourceType eq "Group" and externalId eq null') == {
        "Eng",
        "Ops",
        "Empty",
    }


@pytest.mark.parametrize(
    "expression",
    [
        "",
        "   ",
        "userName",
        "userName eq",
        'userName xx "a"',
        'userName eq "a" and',
        '(userName eq "a"',
        'userName eq "a")',
        'emails[type eq "work"',
        'emails[type eq "work"] and',
        'userName eq "unterminated',
        'userName eq "bad \\q escape"',
        'userName eq "\\ud800"',
        'userName eq "nul \\u0000"',
        "userName eq 'single'",
        'userName eq "a" # comment',
        'not userName eq "a"',
        'foo eq "a"',
        'name.foo eq "a"',
        'urn:example:unknown:User:userName eq "a"',
        'members eq "x"',
        'userName.sub eq "a"',
        'active eq "true"',
        "active gt true",
        'active co "t"',
        "userName eq 5",
        "userName eq true",
        "userName gt null",
        "emails.value lt null",
        'name eq "x"',
        'meta.lastModified gt "yesterday"',
        "meta.lastModified gt 2024",
        'meta.lastModified co "2024"',
        'meta.location eq "x"',
        'meta.version eq "x"',
        'password eq "secret"',
        'x509Certificates.value gt "a"',
        'emails[type[value eq "x"] pr]',
        'emails[type eq "work"][value eq "x"]',
        'emails[urn:x:y:type eq "work"]',
        'emails[type.x eq "work"]',
        'emails[display eq "x" and foo eq "y"]',
        'emails.value[type eq "work"]',
        'userName[value eq "x"]',
        'schemas[value eq "x"]',
        "meta[created pr]",
        'members[value eq "x"]',
        'groups[display eq "x"]',
        "(" * 40 + 'userName eq "a"' + ")" * 40,
        "not (" * 40 + 'userName eq "a"' + ")" * 40,
    ],
)
def test_bad_filters_are_invalid_filter_400(expression):
    with pytest.raises(InvalidFilter) as caught:
        compile_filter(expression, USER_TYPE)
    assert caught.value.status == 400
    assert caught.value.scim_type == "invalidFilter"
    assert caught.value.detail


def test_invalid_filter_detail_names_the_problem():
    with pytest.raises(InvalidFilter, match='unknown attribute "foo" for User'):
        compile_filter('foo eq "a"', USER_TYPE)
    with pytest.raises(InvalidFilter, match="cannot be used with active, a boolean"):
        compile_filter("active gt true", USER_TYPE)
    with pytest.raises(InvalidFilter, match="RFC 3339"):
        compile_filter('meta.lastModified gt "yesterday"', USER_TYPE)
    with pytest.raises(InvalidFilter, match="position 17"):
        compile_filter('userName eq "a" xx', USER_TYPE)


def test_group_filters_reject_user_attributes():
    with pytest.raises(InvalidFilter):
        compile_filter('userName eq "a"', GROUP_TYPE)
    with pytest.raises(InvalidFilter):
        compile_filter('groups.value eq "a"', GROUP_TYPE)


def test_cached_statements_take_the_new_values(database, directory):
    # Same SQL shape, different values (and JSON paths): the statement cache must not mix them.
    assert users(database, 'department eq "Sales"') == {BOB}
    assert users(database, 'manager.value eq "bob-id"') == {ALICE}
    assert users(database, 'emails[type eq "home"].value co "home"') == {ALICE}
    assert users(database, 'emails[type eq "work"].value co "bob"') == {BOB}


def test_long_or_chains_compile(database, directory):
    # As long as the limit allows (gateway.scim.limits): flattened, not nested.
    chain = " or ".join(f'userName eq "user{i}"' for i in range(MAX_FILTER_COMPARISONS - 1))
    assert users(database, chain + ' or userName eq "bob"') == {BOB}


def test_same_filter_object_runs_on_both_dialects():
    condition = compile_filter('emails[type eq "work"].value co "x" and userName eq "a"', USER_TYPE)
    statement = select(DirectoryUser.id).where(condition)
    assert "json_each" in str(statement.compile(dialect=sqlite.dialect()))
    assert "jsonb_array_elements" in str(statement.compile(dialect=postgresql.psycopg.dialect()))


def test_username_eq_uses_the_unique_index_on_sqlite(database, directory):
    if database.dialect != "sqlite":
        pytest.skip("EXPLAIN QUERY PLAN is SQLite's")
    query = select(DirectoryUser.id).where(
        DirectoryUser.org_id == directory.org_id,
        DirectoryUser.source == "scim",
        compile_filter('userName eq "BOB"', USER_TYPE),
    )
    with database.engine.connect() as conn:
        compiled = query.compile(conn, compile_kwargs={"literal_binds": True})
        plan = conn.exec_driver_sql(f"EXPLAIN QUERY PLAN {compiled}").fetchall()
    assert "uq_directory_users_user_name" in " ".join(str(row[-1]) for row in plan)


# --- fuzzing ------------------------------------------------------------------------------------

_TOKENS = [
    "userName", "emails", "emails.value", "name.givenName", "meta.lastModified", "active",
    "members", "groups", "department", f"{ENTERPRISE}:manager.value", "title", "schemas",
    "eq", "ne", "co", "sw", "ew", "gt", "ge", "lt", "le", "pr", "and", "or", "not",
    "(", ")", "[", "]", ".value", "type", "primary",
    '"a"', '"work"', '"2024-01-01T00:00:00Z"', '"%_/"', '""', "true", "false", "null", "5", "-1.5",
]  # fmt: skip


@settings(max_examples=300, deadline=None)
@given(st.text(max_size=60))
def test_random_text_raises_only_invalid_filter(expression):
    for resource_type in (USER_TYPE, GROUP_TYPE):
        try:
            condition = compile_filter(expression, resource_type)
        except InvalidFilter:
            continue
        condition.compile(dialect=sqlite.dialect())
        condition.compile(dialect=postgresql.psycopg.dialect())


@settings(
    max_examples=150,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(st.lists(st.sampled_from(_TOKENS), min_size=1, max_size=12))
def test_token_soup_either_runs_or_is_invalid_filter(database, tokens):
    expression = " ".join(tokens)
    for resource_type, model in ((USER_TYPE, DirectoryUser), (GROUP_TYPE, DirectoryGroup)):
        try:
            condition = compile_filter(expression, resource_type)
        except InvalidFilter:
            continue
        with database.transaction() as session:
            session.execute(select(model.id).where(condition)).all()


@settings(max_examples=100, deadline=None)
@given(st.text(alphabet=string.printable, max_size=40))
def test_matches_element_raises_only_invalid_filter(expression):
    emails = USER_TYPE.schema.attribute("emails")
    with contextlib.suppress(InvalidFilter):
        matches_element(expression, {"value": "a@b.c", "type": "work"}, emails)


# --- matches_element ----------------------------------------------------------------------------

EMAILS = USER_TYPE.schema.attribute("emails")
MEMBERS = GROUP_TYPE.schema.attribute("members")


@pytest.mark.parametrize(
    ("expression", "element", "expected"),
    [
        ('type eq "work"', {"value": "a@x.com", "type": "work"}, True),
        ('type eq "WORK"', {"value": "a@x.com", "type": "work"}, True),
        ('type eq "work" and primary eq true', {"type": "work", "primary": True}, True),
        ('type eq "work" and primary eq true', {"type": "work", "primary": "True"}, True),
        ('type eq "work" and primary eq true', {"type": "work"}, False),
        ("primary eq false", {"type": "work"}, False),
        ('type eq "home" or value co "@X.COM"', {"value": "a@x.com", "type": "work"}, True),
        ('not (type eq "work")', {"value": "a@x.com"}, True),
        ('type ne "work"', {"value": "a@x.com"}, True),
        ("type pr", {"type": ""}, False),
        ("type eq null", {"value": "a"}, True),
        ('value sw "a@" and value ew ".com"', {"value": "a@x.com"}, True),
        ('value gt "b"', {"value": "a@x.com"}, False),
        ('Type eq "work"', {"Type": "work"}, True),
    ],
)
def test_matches_element_evaluates_value_filters(expression, element, expected):
    assert matches_element(expression, element, EMAILS) is expected


def test_matches_element_members_value_and_type():
    element = {"value": "2819c223", "type": "User"}
    assert matches_element('value eq "2819c223"', element, MEMBERS)
    assert not matches_element('value eq "other"', element, MEMBERS)
    assert matches_element('value eq "2819C223" and type eq "user"', element, MEMBERS)


@pytest.mark.parametrize(
    "expression",
    ['foo eq "x"', 'emails.value eq "x"', 'primary eq "yes"', "primary gt true", "value eq", ""],
)
def test_matches_element_rejects_bad_filters(expression):
    with pytest.raises(InvalidFilter):
        matches_element(expression, {"value": "x"}, EMAILS)


# --- sort_column --------------------------------------------------------------------------------


def sorted_users(database, sort_by: str) -> list[str]:
    with database.transaction() as session:
        key = sort_column(sort_by, USER_TYPE)
        query = select(DirectoryUser.user_name).order_by(key.is_(None), key, DirectoryUser.id)
        return list(session.scalars(query))


@pytest.mark.parametrize(
    ("sort_by", "expected"),
    [
        ("userName", [ALICE, BOB, CAROL]),
        ("meta.lastModified", [ALICE, BOB, CAROL]),
        ("meta.created", [ALICE, BOB, CAROL]),
        ("name.familyName", [CAROL, BOB, ALICE]),
        (f"{USER_SCHEMA}:name.givenName", [ALICE, BOB, CAROL]),
        # The primary e-mail (alice@acme.com), not alice's first one (alice@home.org).
        ("emails", [ALICE, BOB, CAROL]),
        ("externalId", [ALICE, BOB, CAROL]),
        ("displayName", [ALICE, BOB, CAROL]),
        ("department", [ALICE, BOB, CAROL]),
    ],
)
def test_sort_column_orders_users(database, directory, sort_by, expected):
    assert sorted_users(database, sort_by) == expected


def test_sort_by_emails_uses_the_primary_value(database, directory):
    with database.transaction() as session:
        key = sort_column("emails.value", USER_TYPE)
        rows = dict(session.execute(select(DirectoryUser.user_name, key)).all())
    assert rows == {ALICE: "alice@acme.com", BOB: "bob@acme.com", CAROL: None}


def test_sort_column_for_groups(database, directory):
    with database.transaction() as session:
        query = select(DirectoryGroup.display_name).order_by(sort_column("displayName", GROUP_TYPE))
        assert list(session.scalars(query)) == ["Empty", "Eng", "Ops"]


@pytest.mark.parametrize(
    "sort_by",
    ["", "nope", "name", "members", "groups", "password", "meta.location", "userName eq", "a[b]"],
)
def test_unknown_sort_by_is_invalid_value(sort_by):
    with pytest.raises(InvalidValue) as caught:
        sort_column(sort_by, USER_TYPE if sort_by != "members" else GROUP_TYPE)
    assert caught.value.status == 400
    assert caught.value.scim_type == "invalidValue"

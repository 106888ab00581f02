"""`attribute eq "value"` on a unique attribute (userName, externalId, id; a group's displayName)
is answered by a prebuilt statement; every other filter by the full grammar. The two must agree:
each lookup is compared with the same filter in parentheses, which takes the general path."""

from __future__ import annotations

import json
from urllib.parse import quote

import pytest
from test_provisioning_rules import another_org, create_group, create_user

USERS = [
    "Ann@Acme.example",
    "ÄRNE@acme.example",
    'quote"d@acme.example',
    "back\\slash@acme.example",
]


def found(scim, endpoint: str, expression: str, **params) -> tuple[int, int, list[str]]:
    query = "&".join(f"{k}={v}" for k, v in params.items())
    response = scim.get(f"/{endpoint}?filter={quote(expression)}&{query}")
    body = response.json
    if response.status_code != 200:
        return response.status_code, body.get("scimType"), []
    return 200, body["totalResults"], [r["id"] for r in body["Resources"]]


def literal(value: str) -> str:
    return json.dumps(value, ensure_ascii=False)


@pytest.fixture
def directory(scim, database):
    users = {
        name: create_user(scim, name, externalId=f"ext-{i}", active=True)
        for i, name in enumerate(USERS)
    }
    groups = {name: create_group(scim, name, externalId=f"g-{name}") for name in ("Sales", "Ops")}
    # The same names in another organization must never be found.
    other = another_org(scim, database, "Globex")
    create_user(other, USERS[0], externalId="ext-0")
    create_group(other, "Sales", externalId="g-Sales")
    return users, groups


CASES = [
    ("Users", 'userName eq "ann@acme.example"', ["Ann@Acme.example"]),
    ("Users", 'USERNAME EQ "ANN@ACME.EXAMPLE"', ["Ann@Acme.example"]),
    ("Users", "userName eq " + literal("ärne@ACME.example"), ["ÄRNE@acme.example"]),
    ("Users", "userName eq " + literal('quote"d@acme.example'), ['quote"d@acme.example']),
    ("Users", "userName eq " + literal("back\\slash@acme.example"), ["back\\slash@acme.example"]),
    ("Users", 'userName eq "nobody@acme.example"', []),
    ("Users", 'externalId eq "ext-1"', ["ÄRNE@acme.example"]),
    ("Users", 'externalId eq "EXT-1"', []),  # externalId is case-exact
    ("Groups", 'displayName eq "sales"', ["Sales"]),
    ("Groups", 'externalId eq "g-Ops"', ["Ops"]),
    ("Groups", 'externalId eq "G-OPS"', []),
]


@pytest.mark.parametrize(("endpoint", "expression", "expected"), CASES)
def test_a_lookup_and_the_general_filter_agree(scim, directory, endpoint, expression, expected):
    users, groups = directory
    ids = users if endpoint == "Users" else groups
    fast = found(scim, endpoint, expression)
    general = found(scim, endpoint, f"({expression})")
    assert fast == general
    assert fast == (200, len(expected), [ids[name] for name in expected])


def test_lookup_by_id_and_paging_parameters(scim, directory):
    users, _ = directory
    ann = users["Ann@Acme.example"]
    assert found(scim, "Users", f'id eq "{ann}"') == (200, 1, [ann])
    assert found(scim, "Users", f'id eq "{ann}"', count=0) == (200, 1, [])
    assert found(scim, "Users", f'id eq "{ann}"', startIndex=2) == (200, 1, [])
    assert found(scim, "Users", f'id eq "{ann}"', sortBy="userName") == (200, 1, [ann])
    # A broken literal or an unknown sort key still gets the full grammar's error.
    assert found(scim, "Users", 'userName eq "open')[:2] == (400, "invalidFilter")
    assert found(scim, "Users", 'userName eq "x"', sortBy="nope")[:2] == (400, "invalidValue")


def test_a_lookup_honours_attributes(scim, directory):
    response = scim.get(
        "/Users?filter=" + quote('userName eq "ann@acme.example"') + "&attributes=userName"
    )
    [resource] = response.json["Resources"]
    assert set(resource) == {"id", "userName", "schemas"}

"""Nested directory groups after incremental changes (issue #16, item 3): a SCIM write reads only
the groups it reaches, and what it makes of them is what a reconcile of the whole organization
makes: a group moved under another parent, a cycle made and broken, a deleted parent, a renamed
group at the top of a tree; inline and queued, on SQLite and PostgreSQL.

And the cost: a write in an organization of 300 nested groups reads as many rows as the same write
in an organization of 10 (counted, not timed; bench/bench_hostile_groups.py has the timings).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Iterator
from contextlib import contextmanager

import pytest
from hypothesis import given
from hypothesis import strategies as st
from sqlalchemy import event
from sqlalchemy.orm import ORMExecuteState, Session
from test_provisioning_properties import MAPPINGS, PROPERTY_SETTINGS, World
from test_provisioning_rules import (
    USER,
    add_members,
    another_org,
    apply_mapping,
    create_group,
    create_user,
    full_plan,
    members,
    org_groups,
    patch,
    remove_member,
)

from gateway.provisioning import queue

MAPPING = """
roles:
  - {groups: [Admins], role: admin}
collections:
  - {group: Admins, collections: [Ops], permission: manage}
  - {group: Staff, collections: [Handbook], permission: view}
"""


@pytest.fixture(params=["inline", "queued"])
def org(request, scim, config, database) -> Iterator[tuple[object, Callable[[], None]]]:
    """A SCIM client for a fresh organization, and what makes its writes reach the org layer
    (nothing inline; queued, the batch the drainer would apply)."""
    if request.param == "inline":
        yield scim, lambda: None
        return
    from gateway.app import create_app

    application = create_app(dataclasses.replace(config, scim_apply="queued"), database=database)
    application.extensions["scimgate"].drainer.stop()  # the test drains, nothing races it
    client = another_org(type(scim)(application.test_client(), "", ""), database, "Queued")
    yield client, lambda: queue.drain(database)


def assert_settled(database, org_id: str) -> None:
    """A reconcile of the whole organization finds nothing to do, and what the engine stored
    about each directory group (what the next write compares with) is what it would store now."""
    plan = full_plan(database, org_id)
    assert not plan, plan.rows()
    assert not plan.group_digests and not plan.gone_group_ids, (
        plan.group_digests,
        plan.gone_group_ids,
    )


def groups_of(database, org_id: str) -> dict[str, tuple[set[str], str]]:
    return {e: (m["groups"], m["role"]) for e, m in members(database, org_id).items()}


def test_a_group_moved_under_another_parent_moves_the_users_below_it(org, database):
    scim, settle = org
    apply_mapping(database, scim.org_id, MAPPING)
    ann, bob = create_user(scim, "ann@acme.com"), create_user(scim, "bob@acme.com")
    sub = create_group(scim, "Sub", bob)
    team = create_group(scim, "Team", ann, sub)
    staff = create_group(scim, "Staff", team)
    admins = create_group(scim, "Admins")
    settle()
    assert groups_of(database, scim.org_id) == {
        "ann@acme.com": ({"Staff", "Team"}, "user"),
        "bob@acme.com": ({"Staff", "Team", "Sub"}, "user"),
    }
    remove_member(scim, staff, team)
    add_members(scim, admins, team)
    settle()
    assert groups_of(database, scim.org_id) == {
        "ann@acme.com": ({"Admins", "Team"}, "admin"),
        "bob@acme.com": ({"Admins", "Team", "Sub"}, "admin"),
    }
    assert org_groups(database, scim.org_id) == {"Admins", "Staff", "Team", "Sub"}
    assert_settled(database, scim.org_id)


def test_a_cycle_gives_every_group_in_it_and_breaking_it_takes_them_back(org, database):
    scim, settle = org
    apply_mapping(database, scim.org_id, MAPPING)
    ann, bob = create_user(scim, "ann@acme.com"), create_user(scim, "bob@acme.com")
    admins = create_group(scim, "Admins", ann)
    staff = create_group(scim, "Staff", bob, admins)
    add_members(scim, admins, staff)  # Staff in Admins in Staff
    settle()
    assert groups_of(database, scim.org_id) == {
        "ann@acme.com": ({"Admins", "Staff"}, "admin"),
        "bob@acme.com": ({"Admins", "Staff"}, "admin"),
    }
    assert_settled(database, scim.org_id)
    remove_member(scim, staff, admins)  # Admins no longer in Staff
    settle()
    assert groups_of(database, scim.org_id) == {
        "ann@acme.com": ({"Admins"}, "admin"),
        "bob@acme.com": ({"Admins", "Staff"}, "admin"),
    }
    assert_settled(database, scim.org_id)


def test_deleting_a_parent_group_takes_it_from_every_user_below(org, database):
    scim, settle = org
    apply_mapping(database, scim.org_id, MAPPING)
    ann, bob = create_user(scim, "ann@acme.com"), create_user(scim, "bob@acme.com")
    leaf = create_group(scim, "Leaf", ann)
    mid = create_group(scim, "Mid", bob, leaf)
    top = create_group(scim, "Admins", mid)
    settle()
    assert groups_of(database, scim.org_id)["ann@acme.com"] == ({"Admins", "Mid", "Leaf"}, "admin")
    assert scim.delete(f"/Groups/{top}").status_code == 204
    settle()
    assert groups_of(database, scim.org_id) == {
        "ann@acme.com": ({"Mid", "Leaf"}, "user"),
        "bob@acme.com": ({"Mid"}, "user"),
    }
    assert org_groups(database, scim.org_id) == {"Mid", "Leaf"}
    assert_settled(database, scim.org_id)
    # Deleting the middle of what is left: Leaf stands alone.
    assert scim.delete(f"/Groups/{mid}").status_code == 204
    settle()
    assert groups_of(database, scim.org_id)["ann@acme.com"] == ({"Leaf"}, "user")
    assert_settled(database, scim.org_id)


def test_renaming_the_top_of_a_tree_renames_the_group_for_every_user_below(org, database):
    scim, settle = org
    apply_mapping(database, scim.org_id, MAPPING)
    ann = create_user(scim, "ann@acme.com")
    leaf = create_group(scim, "Leaf", ann)
    top = create_group(scim, "Staff", create_group(scim, "Mid", leaf))
    settle()
    response = scim.patch(
        f"/Groups/{top}",
        json={
            "schemas": ["urn:ietf:params:scim:api:messages:2.0:PatchOp"],
            "Operations": [{"op": "replace", "path": "displayName", "value": "Admins"}],
        },
    )
    assert response.status_code in (200, 204)
    settle()
    assert groups_of(database, scim.org_id)["ann@acme.com"] == ({"Admins", "Mid", "Leaf"}, "admin")
    assert_settled(database, scim.org_id)


def test_groups_merged_into_one_keep_it_when_the_group_it_is_named_after_goes(org, database):
    scim, settle = org
    apply_mapping(
        database,
        scim.org_id,
        "groups:\n  - {match: 'dept-*', rename: Everyone}\n"
        "collections:\n  - {group: Everyone, collections: [Handbook], permission: view}\n",
    )
    users = {n: create_user(scim, f"{n}@acme.com") for n in ("ann", "bob", "cy")}
    feeds = {create_group(scim, f"dept-{n}", users[n]): n for n in users}
    settle()
    assert {e: g for e, (g, _) in groups_of(database, scim.org_id).items()} == {
        "ann@acme.com": {"Everyone"},
        "bob@acme.com": {"Everyone"},
        "cy@acme.com": {"Everyone"},
    }
    # The org group's origin is the smallest of its directory groups: that one goes first.
    first, second, third = sorted(feeds)
    assert scim.delete(f"/Groups/{first}").status_code == 204
    settle()
    assert_settled(database, scim.org_id)
    patch(
        scim,
        f"/Groups/{second}",
        {"op": "replace", "path": "displayName", "value": "Sales"},
    )
    settle()
    assert {e: g for e, (g, _) in groups_of(database, scim.org_id).items()} == {
        f"{feeds[first]}@acme.com": set(),
        f"{feeds[second]}@acme.com": {"Sales"},
        f"{feeds[third]}@acme.com": {"Everyone"},
    }
    assert org_groups(database, scim.org_id) == {"Everyone", "Sales"}
    assert_settled(database, scim.org_id)


@PROPERTY_SETTINGS
@given(data=st.data())
def test_after_every_scim_request_the_stored_group_digests_are_current(scim, database, data):
    world = World(scim, database)
    mapping = data.draw(st.sampled_from(MAPPINGS))
    if mapping:
        apply_mapping(database, world.scim.org_id, mapping)
    world.seed(data)
    for _ in range(data.draw(st.integers(min_value=3, max_value=10))):
        world.step(data)
        assert_settled(database, world.scim.org_id)


# --- the cost -----------------------------------------------------------------------------------


@contextmanager
def rows_read() -> Iterator[list[int]]:
    """How many rows the statements run through a session return while the block runs."""
    count = [0]

    def count_rows(state: ORMExecuteState):  # type: ignore[no-untyped-def]
        if not state.is_select:
            return None
        frozen = state.invoke_statement().freeze()
        count[0] += len(frozen.data)
        return frozen()

    event.listen(Session, "do_orm_execute", count_rows)
    try:
        yield count
    finally:
        event.remove(Session, "do_orm_execute", count_rows)


def tree_org(scim, database, name: str, n_groups: int) -> tuple[object, list[str], list[str]]:
    """An organization with n nested groups (five children each, the org's size) and, beside
    them, a department of three teams with three of its four users in each (what the writes
    touch: the same shape in every organization)."""
    client = another_org(scim, database, name)
    users = [create_user(client, f"user{i}@{name.lower()}.example") for i in range(4)]
    ids: dict[int, str] = {}
    for i in reversed(range(n_groups)):
        children = [ids[c] for c in range(5 * i + 1, 5 * i + 6) if c in ids]
        ids[i] = create_group(client, f"g{i:04d}", *children)
    teams = [create_group(client, f"Team {t}", *users[:3]) for t in "ABC"]
    create_group(client, "Department", *teams)
    return client, users, teams


def write_rows(client, users: list[str], teams: list[str]) -> dict[str, int]:
    """Rows read by a POST /Users, a PUT of a user in three groups and a PATCH adding a user to
    one of them."""
    found = {}
    with rows_read() as count:
        assert client.post("/Users", json={"schemas": [USER], "userName": "new@x.example"})
    found["POST /Users"] = count[0]
    body = {"schemas": [USER], "userName": "user0@renamed.example", "displayName": "Renamed"}
    with rows_read() as count:
        assert client.put(f"/Users/{users[0]}", json=body).status_code == 200
    found["PUT /Users/{id}"] = count[0]
    with rows_read() as count:
        add_members(client, teams[0], users[3])
    found["PATCH /Groups/{id}"] = count[0]
    return found


def test_a_write_reads_as_many_rows_with_300_nested_groups_as_with_10(scim, database):
    small = write_rows(*tree_org(scim, database, "Small", 10))
    large = write_rows(*tree_org(scim, database, "Large", 300))
    for operation, rows in small.items():
        # The same few rows: the user, its groups and the groups above them, the member and its
        # org groups; never a row per group of the organization.
        assert large[operation] == rows, (operation, small, large)

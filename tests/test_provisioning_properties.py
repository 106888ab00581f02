"""Properties of the engine over random directory histories (hypothesis):

- after every SCIM request (each applied by the incremental reconcile) a full reconcile of the
  whole organization finds nothing to do: the incremental and the full reconcile agree;
- applying a full Plan (a new mapping) and reconciling again yields an empty Plan.
"""

from __future__ import annotations

import uuid

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from test_provisioning_rules import (
    GROUP,
    USER,
    another_org,
    apply_mapping,
    configure,
    full_plan,
    patch,
)

MAPPINGS = [
    "",
    "scope: {groups: [g0, g1]}\n",
    "roles:\n  - {groups: [g1], role: admin}\n  - {groups: [g2], role: owner}\n",
    "groups:\n  - {match: 'g[12]', rename: merged}\n  - {match: g3, ignore: true}\n"
    "collections:\n  - {group: merged, collections: [Docs], permission: edit}\n"
    "  - {group: g0, collections: [Docs], permission: view}\n",
    "scope:\n  filter: 'userName ew \"@acme.com\"'\nattributes: {email: [work, userName]}\n",
]

USERS = [f"u{i}" for i in range(5)]
GROUPS = [f"g{i}" for i in range(4)]


def user_names(key: str) -> list[str]:
    return [f"{key}@acme.com", f"{key}@acme.com", f"{key}.new@acme.com", f"{key}@other.org", key]


EMAILS = [
    [],
    [{"value": "shared@acme.com", "type": "work"}],
    [{"value": "u0@acme.com", "type": "work"}],
]

PROPERTY_SETTINGS = settings(
    max_examples=int(__import__("os").environ.get("PROP_EXAMPLES", "12")),
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)


class World:
    """One organization driven through SCIM; remembers the SCIM ids it created."""

    def __init__(self, scim, database) -> None:
        self.scim = another_org(scim, database, f"Org {uuid.uuid4().hex[:8]}")
        configure(database, self.scim.org_id, guard_count=10_000)
        self.users: dict[str, str] = {}
        self.groups: dict[str, str] = {}

    def seed(self, data: st.DataObject) -> None:
        """A few users and groups with members, so every history starts from something."""
        for key in USERS[: data.draw(st.integers(min_value=2, max_value=4))]:
            body = {
                "schemas": [USER],
                "userName": data.draw(st.sampled_from(user_names(key))),
                "active": data.draw(st.booleans()),
                "emails": data.draw(st.sampled_from(EMAILS)),
            }
            response = self.scim.post("/Users", json=body)
            if response.status_code == 201:
                self.users[key] = response.json["id"]
        for name in GROUPS[: data.draw(st.integers(min_value=1, max_value=3))]:
            members = data.draw(st.lists(st.sampled_from(sorted(self.users)), unique=True))
            response = self.scim.post(
                "/Groups",
                json={
                    "schemas": [GROUP],
                    "displayName": name,
                    "members": [{"value": self.users[k]} for k in members],
                },
            )
            self.groups[name] = response.json["id"]

    def step(self, data: st.DataObject) -> None:
        op = data.draw(
            st.sampled_from(
                [
                    "user",
                    "user",
                    "user",
                    "active",
                    "rename",
                    "delete_user",
                    "group",
                    "add",
                    "add",
                    "remove",
                    "nest",
                    "rename_group",
                    "delete_group",
                ]
            )
        )
        scim = self.scim
        if op == "user" or (not self.users and op in ("active", "rename", "delete_user", "add")):
            key = data.draw(st.sampled_from(USERS))
            if key in self.users:
                return
            body = {
                "schemas": [USER],
                "userName": data.draw(st.sampled_from(user_names(key))),
                "active": data.draw(st.booleans()),
                "emails": data.draw(st.sampled_from(EMAILS)),
            }
            response = scim.post("/Users", json=body)
            assert response.status_code in (201, 409)
            if response.status_code == 201:
                self.users[key] = response.json["id"]
            return
        if op in ("group", "nest", "rename_group", "delete_group", "remove") and not self.groups:
            name = data.draw(st.sampled_from(GROUPS))
            response = scim.post("/Groups", json={"schemas": [GROUP], "displayName": name})
            assert response.status_code in (201, 409)
            if response.status_code == 201:
                self.groups[name] = response.json["id"]
            return
        if op == "group":
            name = data.draw(st.sampled_from(GROUPS))
            if name not in self.groups:
                response = scim.post("/Groups", json={"schemas": [GROUP], "displayName": name})
                self.groups[name] = response.json["id"]
            return
        if op == "active":
            user_id = self.users[data.draw(st.sampled_from(sorted(self.users)))]
            patch(
                scim,
                f"/Users/{user_id}",
                {"op": "replace", "path": "active", "value": data.draw(st.booleans())},
            )
        elif op == "rename":
            key = data.draw(st.sampled_from(sorted(self.users)))
            new = data.draw(st.sampled_from([*user_names(key), "shared@acme.com"]))
            scim.patch(
                f"/Users/{self.users[key]}",
                json={
                    "schemas": ["urn:ietf:params:scim:api:messages:2.0:PatchOp"],
                    "Operations": [{"op": "replace", "path": "userName", "value": new}],
                },
            )
        elif op == "delete_user":
            key = data.draw(st.sampled_from(sorted(self.users)))
            assert scim.delete(f"/Users/{self.users.pop(key)}").status_code == 204
        elif op == "add" and self.groups:
            group_id = self.groups[data.draw(st.sampled_from(sorted(self.groups)))]
            user_id = self.users[data.draw(st.sampled_from(sorted(self.users)))]
            patch(
                scim,
                f"/Groups/{group_id}",
                {"op": "add", "path": "members", "value": [{"value": user_id}]},
            )
        elif op == "nest":
            parent = self.groups[data.draw(st.sampled_from(sorted(self.groups)))]
            child = self.groups[data.draw(st.sampled_from(sorted(self.groups)))]
            if parent != child:
                patch(
                    scim,
                    f"/Groups/{parent}",
                    {"op": "add", "path": "members", "value": [{"value": child}]},
                )
        elif op == "remove":
            group_id = self.groups[data.draw(st.sampled_from(sorted(self.groups)))]
            patch(scim, f"/Groups/{group_id}", {"op": "remove", "path": "members"})
        elif op == "rename_group":
            old = data.draw(st.sampled_from(sorted(self.groups)))
            new = data.draw(st.sampled_from(GROUPS))
            if new not in self.groups:
                patch(
                    scim,
                    f"/Groups/{self.groups[old]}",
                    {"op": "replace", "path": "displayName", "value": new},
                )
                self.groups[new] = self.groups.pop(old)
        elif op == "delete_group":
            name = data.draw(st.sampled_from(sorted(self.groups)))
            assert self.scim.delete(f"/Groups/{self.groups.pop(name)}").status_code == 204


@PROPERTY_SETTINGS
@given(data=st.data())
def test_incremental_reconcile_after_each_scim_request_agrees_with_full(scim, database, data):
    world = World(scim, database)
    mapping = data.draw(st.sampled_from(MAPPINGS))
    if mapping:
        apply_mapping(database, world.scim.org_id, mapping)
    world.seed(data)
    assert not full_plan(database, world.scim.org_id)
    for _ in range(data.draw(st.integers(min_value=3, max_value=10))):
        world.step(data)
        plan = full_plan(database, world.scim.org_id)
        assert not plan, plan.rows()


@PROPERTY_SETTINGS
@given(data=st.data())
def test_applying_a_plan_then_reconciling_again_yields_an_empty_plan(scim, database, data):
    world = World(scim, database)
    world.seed(data)
    for _ in range(data.draw(st.integers(min_value=1, max_value=6))):
        world.step(data)
    outcome = apply_mapping(database, world.scim.org_id, data.draw(st.sampled_from(MAPPINGS)))
    assert not outcome.applied.held
    plan = full_plan(database, world.scim.org_id)
    assert not plan, plan.rows()

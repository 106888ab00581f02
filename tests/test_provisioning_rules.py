"""Each kind of mapping rule end to end: SCIM requests in, members, groups and collection access
out, on SQLite and PostgreSQL; and after every step a full reconcile finds nothing left to do."""

from __future__ import annotations

import pytest
from sqlalchemy import select

from gateway.provisioning.engine import set_mapping
from gateway.provisioning.reconcile import reconcile_full
from gateway.provisioning.settings import update_settings
from gateway.store.models import (
    Collection,
    Event,
    Group,
    GroupCollectionAccess,
    Member,
    MemberGroup,
    Organization,
    OutboxMessage,
)

USER = "urn:ietf:params:scim:schemas:core:2.0:User"
GROUP = "urn:ietf:params:scim:schemas:core:2.0:Group"
PATCH = "urn:ietf:params:scim:api:messages:2.0:PatchOp"
ENTERPRISE = "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User"


def create_user(scim, user_name: str, **attrs) -> str:
    response = scim.post("/Users", json={"schemas": [USER], "userName": user_name, **attrs})
    assert response.status_code == 201, response.json
    return response.json["id"]


def create_group(scim, name: str, *member_ids: str, **attrs) -> str:
    body = {"schemas": [GROUP], "displayName": name, "members": [{"value": m} for m in member_ids]}
    response = scim.post("/Groups", json={**body, **attrs})
    assert response.status_code == 201, response.json
    return response.json["id"]


def patch(scim, path: str, *operations: dict) -> None:
    response = scim.patch(path, json={"schemas": [PATCH], "Operations": list(operations)})
    assert response.status_code in (200, 204), response.json


def add_members(scim, group_id: str, *ids: str) -> None:
    patch(
        scim,
        f"/Groups/{group_id}",
        {"op": "add", "path": "members", "value": [{"value": i} for i in ids]},
    )


def remove_member(scim, group_id: str, member_id: str) -> None:
    patch(scim, f"/Groups/{group_id}", {"op": "remove", "path": f'members[value eq "{member_id}"]'})


def set_active(scim, user_id: str, active: bool) -> None:
    patch(scim, f"/Users/{user_id}", {"op": "replace", "path": "active", "value": active})


def apply_mapping(database, org_id: str, text: str):
    with database.transaction() as session:
        org = session.get(Organization, org_id)
        return set_mapping(session, org, text, "admin:test", apply_now=True)


def configure(database, org_id: str, **settings) -> None:
    with database.transaction() as session:
        update_settings(session.get(Organization, org_id), **settings)


def members(database, org_id: str) -> dict[str, dict]:
    with database.read() as session:
        rows = session.scalars(select(Member).where(Member.org_id == org_id)).all()
        groups = {}
        for member_id, name in session.execute(
            select(MemberGroup.member_id, Group.name).join(Group, Group.id == MemberGroup.group_id)
        ):
            groups.setdefault(member_id, set()).add(name)
        return {
            m.email_lower: {
                "status": m.status,
                "role": m.role,
                "name": m.name,
                "external_id": m.external_id,
                "groups": groups.get(m.id, set()),
                "waiting_for_seat": m.waiting_for_seat,
                "id": m.id,
            }
            for m in rows
        }


def org_groups(database, org_id: str) -> set[str]:
    with database.read() as session:
        return set(session.scalars(select(Group.name).where(Group.org_id == org_id)))


def access(database, org_id: str) -> dict[tuple[str, str], str]:
    with database.read() as session:
        rows = session.execute(
            select(Group.name, Collection.name, GroupCollectionAccess.permission)
            .join(Group, Group.id == GroupCollectionAccess.group_id)
            .join(Collection, Collection.id == GroupCollectionAccess.collection_id)
            .where(Group.org_id == org_id)
        )
        return {(g, c): p for g, c, p in rows}


def another_org(scim, database, name: str, **kw):
    """A second organization with its own SCIM client (seats, names, ... as given)."""
    from gateway.orgs import create_org
    from gateway.tokens import issue_token

    with database.transaction() as session:
        org = create_org(session, name, **kw)
        token = issue_token(session, org=org).secret
        org_id = org.id
    return type(scim)(scim.client, org_id, token)


def full_plan(database, org_id: str):
    with database.read() as session:
        return reconcile_full(session, session.get(Organization, org_id))


def assert_settled(database, org_id: str) -> None:
    plan = full_plan(database, org_id)
    assert not plan, plan.rows()


# --- defaults -------------------------------------------------------------------------------------


def test_defaults_invite_every_active_user_and_mirror_groups(scim, database):
    ann = create_user(scim, "ann@acme.com", name={"givenName": "Ann", "familyName": "Lee"})
    bob = create_user(scim, "bob", emails=[{"value": " Bob@Acme.COM ", "type": "work"}])
    create_group(scim, "Engineering", ann, bob)
    found = members(database, scim.org_id)
    assert set(found) == {"ann@acme.com", "bob@acme.com"}
    assert found["ann@acme.com"]["status"] == "invited"
    assert found["ann@acme.com"]["role"] == "user"
    assert found["ann@acme.com"]["name"] == "Ann Lee"
    assert found["bob@acme.com"]["groups"] == {"Engineering"}
    with database.read() as session:
        invitations = session.scalars(
            select(OutboxMessage).where(OutboxMessage.kind == "invitation")
        )
        assert {m.payload["email"] for m in invitations} == {"ann@acme.com", "bob@acme.com"}
    assert_settled(database, scim.org_id)


def test_user_without_usable_email_is_reported_not_invented(scim, database):
    create_user(scim, "carol")
    assert members(database, scim.org_id) == {}
    plan = full_plan(database, scim.org_id)
    assert not plan
    assert plan.problems == ["carol: no usable e-mail address (not provisioned)"]


def test_nested_groups_are_flattened_and_cycles_are_safe(scim, database):
    ann = create_user(scim, "ann@acme.com")
    inner = create_group(scim, "Backend", ann)
    outer = create_group(scim, "Engineering", inner)
    add_members(scim, inner, outer)  # a cycle: Engineering in Backend in Engineering
    assert members(database, scim.org_id)["ann@acme.com"]["groups"] == {"Backend", "Engineering"}
    assert_settled(database, scim.org_id)


def test_directory_group_rename_renames_the_org_group_and_keeps_access(scim, database):
    ann = create_user(scim, "ann@acme.com")
    gid = create_group(scim, "Mktg", ann)
    apply_mapping(
        database,
        scim.org_id,
        """
collections:
  - {group: Mktg, collections: [Brand], permission: view}
  - {group: Marketing, collections: [Brand], permission: view}
""",
    )
    with database.read() as session:
        before = session.scalar(select(Group.id).where(Group.name == "Mktg"))
    patch(scim, f"/Groups/{gid}", {"op": "replace", "path": "displayName", "value": "Marketing"})
    with database.read() as session:
        assert session.scalar(select(Group.id).where(Group.name == "Marketing")) == before
    assert members(database, scim.org_id)["ann@acme.com"]["groups"] == {"Marketing"}
    assert access(database, scim.org_id) == {("Marketing", "Brand"): "view"}
    assert_settled(database, scim.org_id)


# --- scope --------------------------------------------------------------------------------------


def test_scope_groups_provision_only_their_members(scim, database):
    apply_mapping(database, scim.org_id, "scope: {groups: [Staff]}\n")
    ann = create_user(scim, "ann@acme.com")
    create_user(scim, "bob@acme.com")
    staff = create_group(scim, "Staff")
    assert members(database, scim.org_id) == {}
    add_members(scim, staff, ann)
    assert set(members(database, scim.org_id)) == {"ann@acme.com"}
    remove_member(scim, staff, ann)
    assert members(database, scim.org_id)["ann@acme.com"]["status"] == "revoked"
    assert_settled(database, scim.org_id)


def test_scope_filter_is_evaluated_by_the_scim_filter_code(scim, database):
    apply_mapping(
        database, scim.org_id, 'scope:\n  filter: \'emails[type eq "work"].value ew "@acme.com"\'\n'
    )
    create_user(scim, "ann", emails=[{"value": "ann@acme.com", "type": "work"}])
    create_user(scim, "bob", emails=[{"value": "bob@gmail.com", "type": "work"}])
    create_user(scim, "eve", emails=[{"value": "eve@acme.com", "type": "home"}])
    assert set(members(database, scim.org_id)) == {"ann@acme.com"}
    assert_settled(database, scim.org_id)


# --- attributes -----------------------------------------------------------------------------------


def test_email_order_name_and_external_id_follow_the_mapping(scim, database):
    apply_mapping(
        database,
        scim.org_id,
        """
attributes:
  email: [work, primary]
  name: [givenFamily]
  external_id: employeeNumber
""",
    )
    create_user(
        scim,
        "ann.lee",
        displayName="Annie",
        name={"givenName": "Ann", "familyName": "Lee"},
        emails=[
            {"value": "ann@home.example", "primary": True},
            {"value": "Ann.Lee@Acme.com", "type": "work"},
        ],
        **{"schemas": [USER, ENTERPRISE], ENTERPRISE: {"employeeNumber": "E-7"}},
    )
    found = members(database, scim.org_id)["ann.lee@acme.com"]
    assert (found["name"], found["external_id"]) == ("Ann Lee", "E-7")
    assert_settled(database, scim.org_id)


def test_user_rename_updates_the_member_instead_of_inviting_again(scim, database):
    uid = create_user(scim, "ann@acme.com", externalId="okta-1")
    patch(scim, f"/Users/{uid}", {"op": "replace", "path": "userName", "value": "ann.lee@acme.com"})
    found = members(database, scim.org_id)
    assert set(found) == {"ann.lee@acme.com"}
    assert found["ann.lee@acme.com"]["status"] == "invited"
    with database.read() as session:
        assert session.scalar(select(Event.detail).where(Event.type == "member.updated"))[
            "changes"
        ]["email"] == {"old": "ann@acme.com", "new": "ann.lee@acme.com"}
        # one member, not a second invitation of a new one; the link itself follows the new
        # address (whoever holds the old one must not accept for Ann)
        sent_to = [m.payload["email"] for m in session.scalars(select(OutboxMessage))]
        assert sent_to == ["ann@acme.com", "ann.lee@acme.com"]
    assert_settled(database, scim.org_id)


def test_a_member_takes_the_email_another_gives_up_in_the_same_plan(scim, database):
    """A new mapping moves Ann to her work address and gives Bob the one Ann leaves, in one
    Plan, whichever of the two the engine looks at first (the order follows random ids, so
    several organizations try both orders)."""
    for n in range(8):
        org = another_org(scim, database, f"Swap {n}")
        create_user(org, "ann@acme.com", emails=[{"value": "ann.work@acme.com", "type": "work"}])
        create_user(org, "bob@acme.com", emails=[{"value": "ann@acme.com", "type": "work"}])
        assert set(members(database, org.org_id)) == {"ann@acme.com", "bob@acme.com"}
        outcome = apply_mapping(database, org.org_id, "attributes: {email: [work, userName]}\n")
        assert not outcome.plan.problems
        assert set(members(database, org.org_id)) == {"ann.work@acme.com", "ann@acme.com"}
        assert_settled(database, org.org_id)


def test_manual_member_with_the_same_email_is_taken_over_not_duplicated(scim, database):
    with database.transaction() as session:
        session.add(
            Member(
                org_id=scim.org_id,
                email="Ann@Acme.com",
                email_lower="ann@acme.com",
                status="confirmed",
                role="admin",
            )
        )
        session.add(
            Member(
                org_id=scim.org_id,
                email="solo@acme.com",
                email_lower="solo@acme.com",
                status="confirmed",
            )
        )
    create_user(scim, "ann@acme.com")
    found = members(database, scim.org_id)
    assert found["ann@acme.com"]["status"] == "confirmed"
    assert found["ann@acme.com"]["role"] == "admin"  # no role rules: roles are left to admins
    assert found["solo@acme.com"]["status"] == "confirmed"  # not linked: left alone
    assert_settled(database, scim.org_id)


# --- groups ---------------------------------------------------------------------------------------


def test_group_rules_rename_merge_and_ignore(scim, database):
    apply_mapping(
        database,
        scim.org_id,
        """
groups:
  - {match: "Sales *", rename: Sales}
  - {match: "Domain Users", ignore: true}
  - {external_id: "eng-1", rename: "R&D {name}"}
""",
    )
    ann = create_user(scim, "ann@acme.com")
    bob = create_user(scim, "bob@acme.com")
    create_group(scim, "Sales EMEA", ann)
    create_group(scim, "Sales US", bob)
    create_group(scim, "Domain Users", ann, bob)
    create_group(scim, "Engineering", bob, externalId="eng-1")
    assert org_groups(database, scim.org_id) == {"Sales", "R&D Engineering"}
    found = members(database, scim.org_id)
    assert found["ann@acme.com"]["groups"] == {"Sales"}
    assert found["bob@acme.com"]["groups"] == {"Sales", "R&D Engineering"}
    assert_settled(database, scim.org_id)


def test_hand_made_groups_and_their_members_are_left_alone(scim, database):
    ann = create_user(scim, "ann@acme.com")
    with database.transaction() as session:
        group = Group(org_id=scim.org_id, name="Helpdesk", name_lower="helpdesk")
        session.add(group)
        session.flush()
        member_id = session.scalar(select(Member.id))
        session.add(MemberGroup(member_id=member_id, group_id=group.id))
    create_group(scim, "Engineering", ann)
    assert members(database, scim.org_id)["ann@acme.com"]["groups"] == {"Helpdesk", "Engineering"}
    assert_settled(database, scim.org_id)


def test_deleting_a_directory_group_deletes_its_org_group(scim, database):
    ann = create_user(scim, "ann@acme.com")
    gid = create_group(scim, "Engineering", ann)
    assert scim.delete(f"/Groups/{gid}").status_code == 204
    assert org_groups(database, scim.org_id) == set()
    assert members(database, scim.org_id)["ann@acme.com"]["status"] == "invited"
    assert_settled(database, scim.org_id)


# --- collections ---------------------------------------------------------------------------


MARKETING = """
collections:
  - {group: Marketing, collections: [Social Media], permission: edit}
  - {group: Marketing, collections: [Social Media, Brand], permission: view}
  - {group: Design, collections: [Brand], permission: manage}
"""


def test_joining_marketing_gives_the_marketing_group_and_edit_on_social_media(scim, database):
    apply_mapping(database, scim.org_id, MARKETING)
    marketing = create_group(scim, "Marketing")
    ann = create_user(scim, "ann@acme.com")
    assert members(database, scim.org_id)["ann@acme.com"]["groups"] == set()
    add_members(scim, marketing, ann)
    assert members(database, scim.org_id)["ann@acme.com"]["groups"] == {"Marketing"}
    # Missing collections are created; the highest permission of several rules wins.
    assert access(database, scim.org_id) == {
        ("Marketing", "Social Media"): "edit",
        ("Marketing", "Brand"): "view",
    }
    create_group(scim, "Design")
    assert access(database, scim.org_id)[("Design", "Brand")] == "manage"
    with database.read() as session:
        assert sorted(session.scalars(select(Collection.name))) == ["Brand", "Social Media"]
    assert_settled(database, scim.org_id)


def test_changing_the_mapping_changes_and_revokes_access(scim, database):
    apply_mapping(database, scim.org_id, MARKETING)
    create_group(scim, "Marketing")
    outcome = apply_mapping(
        database,
        scim.org_id,
        """
collections:
  - {group: Marketing, collections: [Social Media], permission: manage}
""",
    )
    assert {c.kind for c in outcome.plan.changes} == {"access.change", "access.revoke"}
    assert access(database, scim.org_id) == {("Marketing", "Social Media"): "manage"}
    assert_settled(database, scim.org_id)


# --- roles ----------------------------------------------------------------------------------------


ROLES = """
roles:
  - {groups: [IT Admins], role: admin}
  - {groups: [Owners], role: owner}
  - {groups: [Helpdesk], role: custom}
"""


def test_role_rules_give_the_highest_role(scim, database):
    apply_mapping(database, scim.org_id, ROLES)
    ann = create_user(scim, "ann@acme.com")
    bob = create_user(scim, "bob@acme.com")
    create_group(scim, "Helpdesk", ann, bob)
    admins = create_group(scim, "IT Admins", ann)
    found = members(database, scim.org_id)
    assert (found["ann@acme.com"]["role"], found["bob@acme.com"]["role"]) == ("admin", "custom")
    remove_member(scim, admins, ann)
    assert members(database, scim.org_id)["ann@acme.com"]["role"] == "custom"
    assert_settled(database, scim.org_id)


def test_the_last_confirmed_owner_is_never_demoted_or_revoked(scim, database):
    apply_mapping(database, scim.org_id, ROLES)
    ann = create_user(scim, "ann@acme.com")
    owners = create_group(scim, "Owners", ann)
    with database.transaction() as session:
        session.scalar(select(Member)).status = "confirmed"
    remove_member(scim, owners, ann)
    found = members(database, scim.org_id)["ann@acme.com"]
    assert (found["role"], found["status"]) == ("owner", "confirmed")
    set_active(scim, ann, False)
    found = members(database, scim.org_id)["ann@acme.com"]
    assert (found["role"], found["status"]) == ("owner", "confirmed")
    with database.read() as session:
        assert session.scalars(select(Event).where(Event.type == "member.owner_protected")).all()
    plan = full_plan(database, scim.org_id)
    assert not plan and len(plan.skipped) == 1


# --- lifecycle: deprovisioning, restore, seats, staged mode ---------------------------------


def test_deactivated_user_is_revoked_and_restored_with_groups_kept(scim, database):
    ann = create_user(scim, "ann@acme.com")
    create_group(scim, "Engineering", ann)
    with database.transaction() as session:
        session.scalar(select(Member)).status = "accepted"
    set_active(scim, ann, False)
    found = members(database, scim.org_id)["ann@acme.com"]
    assert (found["status"], found["groups"]) == ("revoked", {"Engineering"})
    set_active(scim, ann, True)
    assert members(database, scim.org_id)["ann@acme.com"]["status"] == "accepted"
    assert_settled(database, scim.org_id)


def test_deleted_user_is_revoked_by_default_and_removed_when_configured(scim, database):
    ann = create_user(scim, "ann@acme.com")
    bob = create_user(scim, "bob@acme.com")
    assert scim.delete(f"/Users/{ann}").status_code == 204
    assert members(database, scim.org_id)["ann@acme.com"]["status"] == "revoked"
    configure(database, scim.org_id, deprovision="remove")
    assert scim.delete(f"/Users/{bob}").status_code == 204
    assert "bob@acme.com" not in members(database, scim.org_id)
    # The setting reaches members revoked earlier at the next full reconcile.
    assert full_plan(database, scim.org_id).rows() == [
        ("member.remove", "member ann@acme.com", "deleted from the directory")
    ]


def test_recreated_user_takes_back_the_revoked_member(scim, database):
    ann = create_user(scim, "ann@acme.com")
    assert scim.delete(f"/Users/{ann}").status_code == 204
    create_user(scim, "ann@acme.com")
    found = members(database, scim.org_id)
    assert list(found) == ["ann@acme.com"]
    assert found["ann@acme.com"]["status"] == "invited"
    assert_settled(database, scim.org_id)


def test_seats_grow_to_the_limit_then_members_wait_staged(scim, database):
    scim = another_org(scim, database, "Small", seats=1, seat_limit=2)
    org_id = scim.org_id
    for name in ("a", "b", "c"):
        create_user(scim, f"{name}@acme.com")
    found = members(database, org_id)
    assert [found[e]["status"] for e in ("a@acme.com", "b@acme.com", "c@acme.com")] == [
        "invited",
        "invited",
        "staged",
    ]
    assert found["c@acme.com"]["waiting_for_seat"] is True
    with database.read() as session:
        assert session.get(Organization, org_id).seats == 2
        assert session.scalar(select(Event.type).where(Event.type == "member.waiting_for_seat"))
    assert_settled(database, org_id)


def test_staged_mode_stages_new_members_without_invitations(scim, database):
    configure(database, scim.org_id, staged_mode=True)
    create_user(scim, "ann@acme.com")
    assert members(database, scim.org_id)["ann@acme.com"]["status"] == "staged"
    with database.read() as session:
        assert session.scalars(select(OutboxMessage)).all() == []


def test_every_applied_change_is_an_event_by_its_actor(scim, database):
    ann = create_user(scim, "ann@acme.com")
    create_group(scim, "Engineering", ann)
    with database.read() as session:
        events = session.execute(select(Event.type, Event.actor).where(Event.actor == "scim")).all()
    assert {t for t, _ in events} >= {"member.invited", "group.created", "group.member_added"}


@pytest.mark.parametrize("source", ["ldap:corp"])
def test_move_from_ldap_to_scim_updates_the_member(scim, database, source):
    from gateway.provisioning import DirectoryChange, directory_changed
    from gateway.store.models import DirectoryUser

    with database.transaction() as session:
        row = DirectoryUser(
            org_id=scim.org_id,
            source=source,
            user_name="alee",
            user_name_lower="alee",
            # As the LDAP reader writes it: the e-mail rules (the connector's and the
            # mapping's attributes.ldap) were applied when the entry was read.
            resource={
                "userName": "alee",
                "emails": [{"value": "A.Lee@acme.com", "type": "work", "primary": True}],
            },
        )
        session.add(row)
        session.flush()
        directory_changed(session, DirectoryChange(scim.org_id, source, source, user_ids={row.id}))
    assert members(database, scim.org_id)["a.lee@acme.com"]["status"] == "invited"
    with database.transaction() as session:
        row = session.scalar(select(DirectoryUser))
        session.delete(row)
        session.flush()
        directory_changed(
            session, DirectoryChange(scim.org_id, source, source, deleted_user_ids={row.id})
        )
    assert members(database, scim.org_id)["a.lee@acme.com"]["status"] == "revoked"
    create_user(scim, "a.lee@acme.com")
    found = members(database, scim.org_id)
    assert list(found) == ["a.lee@acme.com"]
    assert found["a.lee@acme.com"]["status"] == "invited"
    with database.read() as session:
        assert session.scalar(select(Member.source)) == "scim"
    assert_settled(database, scim.org_id)


def test_every_kind_of_change_has_a_line_in_the_plan_summary():
    """A Plan with a change the summary does not know would fail to print (sync run, plan)."""
    from gateway.provisioning import plan as plan_module
    from gateway.provisioning.summary import CATEGORIES

    def concrete(cls):  # type: ignore[no-untyped-def]
        for sub in cls.__subclasses__():
            if not sub.__name__.startswith("_"):
                yield sub
            yield from concrete(sub)

    counted = {t for _, _, types in CATEGORIES for t in types}
    assert set(concrete(plan_module.Change)) - counted == set()

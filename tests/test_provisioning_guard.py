"""The mass-deprovisioning guard, through SCIM (a sliding hour of requests) and through one full
Plan; and the held changes' approve / drop from the command line."""

from __future__ import annotations

import json

import click
from click.testing import CliRunner
from sqlalchemy import select
from test_provisioning_rules import (
    add_members,
    apply_mapping,
    configure,
    create_group,
    create_user,
    full_plan,
    members,
    patch,
    remove_member,
    set_active,
)

from gateway.provisioning.cli import register
from gateway.store.models import Event, HeldChange


def cli_runner(database, tmp_path):
    group = click.Group("scimgate")
    register(group)
    env = {"GATEWAY_DATABASE_URL": database.url, "GATEWAY_DATA_DIR": str(tmp_path / "data")}

    def run(*args: str, input: str | None = None) -> click.testing.Result:
        return CliRunner().invoke(group, list(args), env=env, input=input, catch_exceptions=False)

    return run


def statuses(database, org_id):
    return {email: m["status"] for email, m in members(database, org_id).items()}


def test_scim_deactivations_beyond_the_guard_within_an_hour_are_held(scim, database, tmp_path):
    ids = [create_user(scim, f"user{i:02}@acme.com") for i in range(20)]
    for user_id in ids[:7]:
        set_active(scim, user_id, False)  # every request succeeds
    found = statuses(database, scim.org_id)
    revoked = sorted(e for e, s in found.items() if s == "revoked")
    assert revoked == [f"user{i:02}@acme.com" for i in range(5)]
    assert found["user05@acme.com"] == found["user06@acme.com"] == "invited"
    with database.read() as session:
        held = session.scalars(select(HeldChange).order_by(HeldChange.id)).all()
        assert [(h.kind, h.change["email"], h.status) for h in held] == [
            ("member.revoke", "user05@acme.com", "pending"),
            ("member.revoke", "user06@acme.com", "pending"),
        ]
        reason = session.scalar(select(Event.detail).where(Event.type == "guard.held"))["reason"]
        assert "within an hour exceed both 5 and 10% of 20 members" in reason
    # Held changes are not planned again, nor held twice.
    plan = full_plan(database, scim.org_id)
    assert not plan and len(plan.skipped) == 2

    run = cli_runner(database, tmp_path)
    listing = json.loads(run("held", "--org", scim.org_id, "--json").output)
    assert [h["email"] for h in listing] == ["user05@acme.com", "user06@acme.com"]
    assert "user05@acme.com" in run("held", "--org", "Acme").output
    result = run("held", "approve", str(listing[0]["id"]))
    assert result.exit_code == 0, result.output
    assert "Approved" in result.output
    result = run("held", "drop", str(listing[1]["id"]))
    assert result.exit_code == 0, result.output
    found = statuses(database, scim.org_id)
    assert (found["user05@acme.com"], found["user06@acme.com"]) == ("revoked", "invited")
    assert "was dropped already" in run("held", "drop", str(listing[1]["id"])).output
    assert run("held", "--org", scim.org_id).output.strip() == "Nothing held."


def test_reactivating_a_user_drops_their_held_revoke(scim, database):
    configure(database, scim.org_id, guard_count=0, guard_share=0.0)
    user_id = create_user(scim, "ann@acme.com")
    set_active(scim, user_id, False)
    assert statuses(database, scim.org_id) == {"ann@acme.com": "invited"}
    set_active(scim, user_id, True)
    with database.read() as session:
        assert session.scalar(select(HeldChange.status)) == "dropped"
    assert not full_plan(database, scim.org_id).skipped


def test_one_full_plan_beyond_the_guard_holds_all_its_deprovisionings(scim, database, tmp_path):
    staff = create_group(scim, "Staff")
    for i in range(30):
        create_user(scim, f"user{i:02}@acme.com")
    outcome = apply_mapping(database, scim.org_id, "scope: {groups: [Staff]}\n")
    assert len(outcome.plan.deprovisionings) == 30
    # Over max(5, 10% of 30): every one is held, none goes now (a bad read must cost nobody).
    assert len(outcome.applied.held) == 30
    assert "all 30 of this plan held" in outcome.applied.hold_reason
    assert "revoked" not in statuses(database, scim.org_id).values()
    assert staff
    # Changing the guard setting does not release anything held: an admin decides.
    configure(database, scim.org_id, guard_count=100)
    assert not full_plan(database, scim.org_id)


def test_guard_allows_a_share_of_a_large_organization(scim, database):
    configure(database, scim.org_id, guard_count=2, guard_share=0.25)
    ids = [create_user(scim, f"user{i:02}@acme.com") for i in range(12)]
    for user_id in ids[:4]:
        set_active(scim, user_id, False)
    # 3 of 12 (25%) may go within the hour; the fourth is held.
    assert list(statuses(database, scim.org_id).values()).count("revoked") == 3


def test_scim_push_emptying_a_group_with_collection_access_is_held(scim, database, tmp_path):
    ids = [create_user(scim, f"user{i:02}@acme.com") for i in range(10)]
    finance = create_group(scim, "Finance", *ids[:8])
    chat = create_group(scim, "Chat", *ids[:8])
    apply_mapping(
        database,
        scim.org_id,
        "collections:\n  - {group: Finance, collections: [Ledger], permission: edit}\n",
    )
    # One leaver is an ordinary change: applied.
    remove_member(scim, finance, ids[7])
    assert "Finance" not in members(database, scim.org_id)["user07@acme.com"]["groups"]
    # A push that empties the group (7 of 7, over max(3, 50%)) takes nobody's access...
    patch(scim, f"/Groups/{finance}", {"op": "replace", "path": "members", "value": []})
    found = members(database, scim.org_id)
    assert all("Finance" in found[f"user{i:02}@acme.com"]["groups"] for i in range(7))
    with database.read() as session:
        held = session.scalars(select(HeldChange).order_by(HeldChange.id)).all()
        assert {(h.kind, h.change["group"]) for h in held} == {("group.remove_member", "Finance")}
        assert len(held) == 7
        event = session.scalars(select(Event).where(Event.type == "guard.held")).one()
        assert "Finance loses 7 of 7 members" in event.detail["reason"]
    # ... while emptying a group that grants no collection is not guarded.
    patch(scim, f"/Groups/{chat}", {"op": "replace", "path": "members", "value": []})
    assert not any("Chat" in m["groups"] for m in members(database, scim.org_id).values())

    run = cli_runner(database, tmp_path)
    listing = json.loads(run("held", "--org", scim.org_id, "--json").output)
    assert len(listing) == 7 and {h["group"] for h in listing} == {"Finance"}
    assert "group.remove_member Finance" in run("held", "--org", scim.org_id).output
    assert run("held", "approve", str(listing[0]["id"])).exit_code == 0
    found = members(database, scim.org_id)
    assert sum("Finance" in m["groups"] for m in found.values()) == 6
    # The IdP puts the members back: the remaining holds are no longer wanted.
    add_members(scim, finance, *ids[:7])
    assert sum("Finance" in m["groups"] for m in members(database, scim.org_id).values()) == 7
    assert run("held", "--org", scim.org_id).output.strip() == "Nothing held."


def test_membership_guard_settings_are_set_from_the_command_line(scim, database, tmp_path):
    run = cli_runner(database, tmp_path)
    result = run(
        "mapping", "settings", "--org", scim.org_id, "--guard-group-count", "0",
        "--guard-group-share", "0", "--json",
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    shown = json.loads(result.output)
    assert (shown["guard_group_count"], shown["guard_group_share"]) == (0, 0.0)
    assert (shown["guard_membership_count"], shown["guard_membership_share"]) == (10, 0.1)
    ids = [create_user(scim, f"user{i}@acme.com") for i in range(2)]
    finance = create_group(scim, "Finance", *ids)
    apply_mapping(
        database,
        scim.org_id,
        "collections:\n  - {group: Finance, collections: [Ledger], permission: edit}\n",
    )
    # With no floor, even one removal from a group that grants access is held.
    remove_member(scim, finance, ids[0])
    assert "Finance" in members(database, scim.org_id)["user0@acme.com"]["groups"]


def test_plan_apply_that_is_held_exits_3_and_says_how_to_review(scim, database, tmp_path):
    create_group(scim, "Staff")
    for i in range(12):
        create_user(scim, f"user{i:02}@acme.com")
    run = cli_runner(database, tmp_path)
    mapping = tmp_path / "mapping.yaml"
    mapping.write_text("scope: {groups: [Staff]}\n")
    result = run("mapping", "set", "--org", "Acme", str(mapping), "--apply")
    assert result.exit_code == 3, result.output
    assert "HELD 12 change(s) for approval; none of them was applied" in result.output
    assert "scimgate held --org Acme" in result.output
    assert "revoked" not in statuses(database, scim.org_id).values()
    # Nothing new to hold: plan --apply succeeds; with a hold it exits 3 as well.
    assert run("plan", "--org", "Acme", "--apply").exit_code == 0
    assert "3 when the guard held changes" in " ".join(run("plan", "--help").output.split())

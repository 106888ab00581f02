"""Held changes decided in bulk (all, or by kind, group, date and e-mail prefix) from the command
line; drops that stick until the directory says something new about the member; group deletions
and SCIM's sliding hour of access removals under the guard; held counts that match what arrived."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

from sqlalchemy import select
from test_provisioning_guard import cli_runner, statuses
from test_provisioning_rules import (
    add_members,
    apply_mapping,
    configure,
    create_group,
    create_user,
    full_plan,
    members,
    org_groups,
    patch,
    remove_member,
    set_active,
)

from gateway.store.models import HeldChange

FINANCE = "collections:\n  - {group: Finance, collections: [Ledger], permission: edit}\n"


def pending(database) -> list[tuple[str, str]]:
    with database.read() as session:
        rows = session.scalars(
            select(HeldChange).where(HeldChange.status == "pending").order_by(HeldChange.id)
        ).all()
        return [(h.kind, h.change.get("email") or h.change.get("name")) for h in rows]


def held_mixture(scim, database):
    """Everything held: 4 revokes (ann*, bob*) and 3 removals from Finance (cy*)."""
    configure(database, scim.org_id, guard_count=0, guard_share=0.0, guard_group_count=0,
              guard_group_share=0.0)  # fmt: skip
    people = {e: create_user(scim, e) for e in (
        "ann1@acme.com", "ann2@acme.com", "bob1@acme.com", "bob2@acme.com",
        "cy1@acme.com", "cy2@acme.com", "cy3@acme.com",
    )}  # fmt: skip
    finance = create_group(scim, "Finance", *(people[f"cy{i}@acme.com"] for i in (1, 2, 3)))
    apply_mapping(database, scim.org_id, FINANCE)
    for email in ("ann1@acme.com", "ann2@acme.com", "bob1@acme.com", "bob2@acme.com"):
        set_active(scim, people[email], False)
    for i in (1, 2, 3):
        remove_member(scim, finance, people[f"cy{i}@acme.com"])
    assert len(pending(database)) == 7
    return people, finance


def test_bulk_approve_by_kind_and_prefix_asks_first_and_says_how_many(scim, database, tmp_path):
    held_mixture(scim, database)
    run = cli_runner(database, tmp_path)
    # A bulk decision says how many it takes and asks; "no" changes nothing.
    result = run("held", "approve", "--org", "Acme", "--kind", "revoke", "--email-prefix", "ANN",
                 input="n\n")  # fmt: skip
    assert result.exit_code == 1
    assert "2 pending held change(s) of Acme match (kind revoke, member e-mail starting 'ANN')" in (
        result.output
    )
    assert "Approve all 2: apply them" in result.output
    assert len(pending(database)) == 7
    result = run("held", "approve", "--org", "Acme", "--kind", "revoke", "--email-prefix", "ann",
                 input="y\n")  # fmt: skip
    assert result.exit_code == 0, result.output
    assert "Approved and applied 2 held change(s); dropped 0" in result.output
    found = statuses(database, scim.org_id)
    assert (found["ann1@acme.com"], found["ann2@acme.com"]) == ("revoked", "revoked")
    assert found["bob1@acme.com"] == "invited"
    # By group, without asking.
    result = run("held", "approve", "--org", "Acme", "--group", "finance", "--yes")
    assert "Approved and applied 3 held change(s)" in result.output, result.output
    assert not any("Finance" in m["groups"] for m in members(database, scim.org_id).values())
    assert pending(database) == [
        ("member.revoke", "bob1@acme.com"),
        ("member.revoke", "bob2@acme.com"),
    ]


def test_bulk_drop_of_all_and_by_date(scim, database, tmp_path):
    held_mixture(scim, database)
    run = cli_runner(database, tmp_path)
    tomorrow = (datetime.now(UTC) + timedelta(days=1)).strftime("%Y-%m-%d")
    result = run("held", "drop", "--org", "Acme", "--after", tomorrow, "--yes")
    assert "No pending held change of Acme matches (held after" in result.output
    result = run("held", "drop", "--org", "Acme", "--before", tomorrow, "--kind",
                 "group-removal", "--yes")  # fmt: skip
    assert "Dropped 3 held change(s)" in result.output, result.output
    result = run("held", "drop", "--org", "Acme", "--all", "--yes")
    assert "Dropped 4 held change(s)" in result.output
    assert pending(database) == []
    assert "revoked" not in statuses(database, scim.org_id).values()


def test_bulk_decisions_refuse_unclear_requests(scim, database, tmp_path):
    held_mixture(scim, database)
    run = cli_runner(database, tmp_path)
    result = run("held", "approve", "--org", "Acme")
    assert result.exit_code == 1
    assert "scimgate held approve --org ORG --all" in result.output
    result = run("held", "drop", "--org", "Acme", "--before", "last week")
    assert "before: 'last week' is not a date (YYYY-MM-DD" in result.output
    result = run("held", "approve", "1", "--all")
    assert "give a held change id or a filter" in result.output
    assert len(pending(database)) == 7


def test_held_reasons_count_every_deactivation_that_arrived(scim, database):
    ids = [create_user(scim, f"user{i:02}@acme.com") for i in range(20)]
    for user_id in ids[:7]:
        set_active(scim, user_id, False)
    with database.read() as session:
        reasons = list(session.scalars(select(HeldChange.reason).order_by(HeldChange.id)))
    # 7 arrived: 5 applied, the 6th and the 7th held; each row says so.
    assert reasons[0].startswith("6 deprovisionings within an hour exceed both 5 and 10% of 20")
    assert "5 applied, 1 held for approval (1 of them now)" in reasons[0]
    assert reasons[1].startswith("7 deprovisionings within an hour")
    assert "5 applied, 2 held for approval (1 of them now)" in reasons[1]


def test_a_dropped_revoke_stays_dropped_until_the_directory_changes_the_member(
    scim, database, tmp_path
):
    configure(database, scim.org_id, guard_count=0, guard_share=0.0)
    ann = create_user(scim, "ann@acme.com")
    create_user(scim, "bob@acme.com")
    set_active(scim, ann, False)
    run = cli_runner(database, tmp_path)
    [held] = json.loads(run("held", "--org", "Acme", "--json").output)
    assert run("held", "drop", str(held["id"])).exit_code == 0
    configure(database, scim.org_id, guard_count=100)  # nothing would hold it now
    # An unrelated mapping applied: ann is kept, and the Plan says why.
    mapping = tmp_path / "mapping.yaml"
    mapping.write_text(FINANCE)
    result = run("mapping", "set", "--org", "Acme", str(mapping), "--apply")
    assert result.exit_code == 0, result.output
    today = datetime.now(UTC).strftime("%Y-%m-%d")
    [kept] = [line for line in result.output.splitlines() if "ann@acme.com" in line]
    assert "member.revoke" in kept
    assert kept.endswith(f"kept: dropped by admin:cli on {today}"), result.output
    assert statuses(database, scim.org_id)["ann@acme.com"] == "invited"
    assert run("plan", "--org", "Acme", "--apply").exit_code == 0
    assert statuses(database, scim.org_id)["ann@acme.com"] == "invited"
    # The directory says something new about ann: the revoke is planned (and applied) again.
    patch(scim, f"/Users/{ann}", {"op": "replace", "path": "displayName", "value": "Ann Leaver"})
    assert statuses(database, scim.org_id)["ann@acme.com"] == "revoked"


def test_scim_group_deletion_that_takes_access_is_held_and_approved_in_bulk(
    scim, database, tmp_path
):
    ids = [create_user(scim, f"user{i}@acme.com") for i in range(8)]
    finance = create_group(scim, "Finance", *ids)
    create_group(scim, "Chat", *ids)
    apply_mapping(database, scim.org_id, FINANCE)
    assert scim.delete(f"/Groups/{finance}").status_code == 204
    # Deleting the group would take Ledger from all 8: held, the group and its members stay.
    assert "Finance" in org_groups(database, scim.org_id)
    assert all("Finance" in m["groups"] for m in members(database, scim.org_id).values())
    assert pending(database) == [("group.delete", "Finance")]
    with database.read() as session:
        reason = session.scalar(select(HeldChange.reason))
    assert "Finance (deleted) loses 8 of 8 members" in reason
    assert not full_plan(database, scim.org_id)  # held, not planned again
    run = cli_runner(database, tmp_path)
    result = run("held", "approve", "--org", "Acme", "--kind", "group-deletion", "--yes")
    assert "Approved and applied 1 held change(s)" in result.output, result.output
    assert org_groups(database, scim.org_id) == {"Chat"}


def test_scim_removals_one_request_at_a_time_count_over_the_hour(scim, database):
    ids = [create_user(scim, f"user{i}@acme.com") for i in range(8)]
    finance = create_group(scim, "Finance", *ids)
    apply_mapping(database, scim.org_id, FINANCE)
    for user_id in ids[:6]:
        remove_member(scim, finance, user_id)  # one request each
    # 4 of 8 (50%) may go within the hour; the fifth and sixth are held.
    in_finance = sorted(
        e for e, m in members(database, scim.org_id).items() if "Finance" in m["groups"]
    )
    assert in_finance == [f"user{i}@acme.com" for i in (4, 5, 6, 7)]
    assert [e for _, e in pending(database)] == ["user4@acme.com", "user5@acme.com"]
    with database.read() as session:
        reasons = list(session.scalars(select(HeldChange.reason).order_by(HeldChange.id)))
    assert "Finance loses 1 of 4 members, 5 of 8 within an hour" in reasons[0]
    assert "Finance loses 1 of 4 members, 6 of 8 within an hour" in reasons[1]


def test_a_dropped_group_deletion_leaves_the_group_to_the_admins(scim, database, tmp_path):
    ids = [create_user(scim, f"user{i}@acme.com") for i in range(5)]
    finance = create_group(scim, "Finance", *ids)
    apply_mapping(database, scim.org_id, FINANCE)
    assert scim.delete(f"/Groups/{finance}").status_code == 204
    run = cli_runner(database, tmp_path)
    assert "group.delete Finance" in run("held", "--org", "Acme").output
    result = run("held", "drop", "--org", "Acme", "--kind", "group-deletion", "--yes")
    assert "Dropped 1 held change(s)" in result.output, result.output
    # The group stays with its members and access, and is not planned for deletion again.
    assert "Finance" in org_groups(database, scim.org_id)
    assert sum("Finance" in m["groups"] for m in members(database, scim.org_id).values()) == 5
    assert not full_plan(database, scim.org_id)
    assert run("plan", "--org", "Acme", "--apply").exit_code == 0
    assert pending(database) == []


def test_a_dropped_group_removal_is_held_again_when_the_directory_removes_the_member_again(
    scim, database, tmp_path
):
    configure(database, scim.org_id, guard_group_count=0, guard_group_share=0.0)
    ids = [create_user(scim, f"user{i}@acme.com") for i in range(3)]
    finance = create_group(scim, "Finance", *ids)
    apply_mapping(database, scim.org_id, FINANCE)
    remove_member(scim, finance, ids[0])
    run = cli_runner(database, tmp_path)
    assert "Dropped 1" in run("held", "drop", "--org", "Acme", "--all", "--yes").output
    [(change, reason)] = full_plan(database, scim.org_id).skipped
    assert change.kind == "group.remove_member" and reason.startswith("kept: dropped by admin:cli")
    # The IdP puts the member back, then removes them again: a new removal, held again.
    add_members(scim, finance, ids[0])
    remove_member(scim, finance, ids[0])
    assert pending(database) == [("group.remove_member", "user0@acme.com")]
    assert "Finance" in members(database, scim.org_id)["user0@acme.com"]["groups"]

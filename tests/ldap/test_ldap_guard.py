"""The deprovisioning guard against a real slapd: a read that silently returns half the
directory (users moved out of the search base, as a broken read ACL does) revokes nobody; the
whole Plan's deprovisionings are held, `sync run` says so and exits 3, a `guard.held` event and
its webhook are written; fixing the read releases the holds, and an approved hold is restored."""

from __future__ import annotations

import json

import pytest
from click.testing import CliRunner
from conftest import configure, openldap_connector
from sqlalchemy import select

from connectors.ldap.cli import sync
from gateway.admin.cli import doctor
from gateway.provisioning.cli import held, plan
from gateway.store.models import Event, HeldChange, Member, OutboxMessage, WebhookEndpoint

MAPPING = """
collections:
  - {group: engineering, collections: [Source code], permission: edit}
  - {group: sales, collections: [Customers], permission: view}
"""


@pytest.fixture
def cli_env(database, tmp_path, monkeypatch):
    """Both databases: the guard's counting and holding are SQL."""
    monkeypatch.setenv("GATEWAY_DATABASE_URL", database.url)
    monkeypatch.setenv("GATEWAY_DATA_DIR", str(tmp_path / "data"))
    monkeypatch.setenv("GATEWAY_SECRET_KEY", "test-secret-key-0123456789")
    return database


def invoke(group, *args: str):
    return CliRunner().invoke(group, list(args), catch_exceptions=False)


def statuses(db, org_id: str) -> dict[str, str]:
    with db.read() as session:
        return {
            m.email_lower: m.status
            for m in session.scalars(select(Member).where(Member.org_id == org_id))
        }


def story(db, slapd, openldap, n: int = 40):
    """`n` users in two groups mapped to collections, synced once; returns (org id, user DNs)."""
    from gateway.provisioning.engine import set_mapping
    from gateway.store.models import Organization

    people, groups = f"ou=people,{openldap.base}", f"ou=groups,{openldap.base}"
    openldap.ou("elsewhere")
    dns = [openldap.user(f"user{i:02}", people) for i in range(n)]
    openldap.group("engineering", groups, dns[: n // 2])
    openldap.group("sales", groups, dns[n // 2 :])
    org_id = configure(db, {"main": openldap_connector(slapd, openldap.base)})
    with db.transaction() as session:
        org = session.get(Organization, org_id)
        set_mapping(session, org, MAPPING, "admin:test", apply_now=True)
        session.add(
            WebhookEndpoint(
                org_id=org_id,
                url="https://hooks.example.org/scimgate",
                secret_encrypted="not read by this test",
                events=["guard.*"],
                created_by="admin:test",
            )
        )
    first = invoke(sync, "run", "--org", "Acme", "--full")
    assert first.exit_code == 0, first.output
    assert list(statuses(db, org_id).values()).count("invited") == n
    return org_id, dns


def hide(openldap, dns: list[str]) -> list[str]:
    """Move entries out of the user search base: the read returns fewer entries, no error."""
    return [openldap.rename(dn, dn.split(",", 1)[0], f"ou=elsewhere,{openldap.base}") for dn in dns]


def unhide(openldap, dns: list[str]) -> None:
    for dn in dns:
        openldap.rename(dn, dn.split(",", 1)[0], f"ou=people,{openldap.base}")


def test_a_read_that_loses_half_the_directory_revokes_nobody(cli_env, slapd, openldap):
    db = cli_env
    org_id, dns = story(db, slapd, openldap)
    moved = hide(openldap, dns[::2])  # 20 of 40, half of each group

    result = invoke(sync, "run", "--org", "Acme", "--full")
    assert result.exit_code == 3, result.output
    assert "HELD 20 change(s)" in result.output
    assert "scimgate held --org Acme" in result.output
    assert "revoked" not in statuses(db, org_id).values()
    with db.read() as session:
        rows = session.scalars(select(HeldChange).where(HeldChange.org_id == org_id)).all()
        assert len(rows) == 20 and {r.status for r in rows} == {"pending"}
        event = session.scalars(select(Event).where(Event.type == "guard.held")).one()
        assert event.detail["held_count"] == 20
        assert event.detail["counts"] == {"member.revoke": 20}
        assert "in one plan exceed both 5 and 10% of 40 members" in event.detail["reason"]
        hooks = session.scalars(select(OutboxMessage).where(OutboxMessage.kind == "webhook")).all()
        assert [h.payload["event"]["type"] for h in hooks] == ["guard.held"]
    assert (
        "warn  held changes (Acme): 20 change(s) held by the guard: review them with "
        "`scimgate held --org Acme`" in invoke(doctor).output
    )
    # The history and a second run say the same; the second run holds nothing new.
    history = json.loads(invoke(sync, "history", "--org", "Acme", "--json").output)
    assert history[0]["counts"]["held"] == 20
    again = invoke(sync, "run", "--org", "Acme", "--full")
    assert again.exit_code == 3, again.output
    assert "20 change(s) held by the guard earlier still wait for a decision" in again.output
    assert "revoked" not in statuses(db, org_id).values()

    # An admin approves one hold: that member is revoked, the others stay held.
    listing = json.loads(invoke(held, "--org", "Acme", "--json").output)
    assert len(listing) == 20
    approved = invoke(held, "approve", str(listing[0]["id"]))
    assert approved.exit_code == 0, approved.output
    assert list(statuses(db, org_id).values()).count("revoked") == 1

    # The read is fixed: the holds are released, nobody else is revoked, the approved one is
    # restored.
    unhide(openldap, moved)
    fixed = invoke(sync, "run", "--org", "Acme", "--full")
    assert fixed.exit_code == 0, fixed.output
    assert set(statuses(db, org_id).values()) == {"invited"}
    with db.read() as session:
        left = session.scalars(
            select(HeldChange).where(HeldChange.org_id == org_id, HeldChange.status == "pending")
        ).all()
        assert left == []
    assert invoke(held, "--org", "Acme").output.strip() == "Nothing held."
    assert "ok    held changes: no held change is waiting" in invoke(doctor).output
    assert invoke(plan, "--org", "Acme").exit_code == 0


def test_sync_run_help_documents_the_held_exit_status():
    result = invoke(sync, "run", "--help")
    assert "3 the guard held" in result.output


def test_a_confirmed_member_restored_after_the_read_is_fixed_comes_back_confirmed(
    cli_env, slapd, openldap
):
    from sqlalchemy import update

    db = cli_env
    org_id, dns = story(db, slapd, openldap, n=20)
    with db.transaction() as session:
        # They accepted their invitations and an admin confirmed them.
        session.execute(update(Member).where(Member.org_id == org_id).values(status="confirmed"))
    moved = hide(openldap, dns[:10])
    assert invoke(sync, "run", "--org", "Acme", "--full").exit_code == 3
    for row in json.loads(invoke(held, "--org", "Acme", "--json").output)[:4]:
        assert invoke(held, "approve", str(row["id"])).exit_code == 0
    assert list(statuses(db, org_id).values()).count("revoked") == 4

    unhide(openldap, moved)
    # The default run (a delta: the moved entries changed) sees them again.
    fixed = invoke(sync, "run", "--org", "Acme")
    assert fixed.exit_code == 0, fixed.output
    assert "delta sync" in fixed.output
    assert set(statuses(db, org_id).values()) == {"confirmed"}
    with db.read() as session:
        restored = session.scalars(select(Event).where(Event.type == "member.restored")).all()
        assert len(restored) == 4
        for event in restored:
            assert event.detail["status"] == "confirmed"
            assert event.detail["reason"] == "the directory lists this user again"


def reconfigure(db, org_id: str, slapd, base: str, **overrides: object) -> None:
    from connectors.ldap.config import SETTINGS_KEY
    from gateway.store.models import Organization

    with db.transaction() as session:
        org = session.get(Organization, org_id)
        doc = {"connectors": {"main": openldap_connector(slapd, base, **overrides)}}
        org.settings = {**org.settings, SETTINGS_KEY: doc}


def memberships(db, org_id: str) -> dict[str, int]:
    from sqlalchemy import func

    from gateway.store.models import Group, MemberGroup

    with db.read() as session:
        return dict(
            session.execute(
                select(Group.name, func.count(MemberGroup.member_id))
                .join(MemberGroup, MemberGroup.group_id == Group.id)
                .where(Group.org_id == org_id)
                .group_by(Group.name)
            ).all()
        )


def test_a_read_that_empties_groups_removes_no_access(cli_env, slapd, openldap):
    db = cli_env
    org_id, _ = story(db, slapd, openldap)
    assert memberships(db, org_id) == {"engineering": 20, "sales": 20}
    # The group entries come back without their members and without an error, as when an
    # ACL hides the member attribute.
    reconfigure(db, org_id, slapd, openldap.base, attributes={"member": "uniqueMember"})

    result = invoke(sync, "run", "--org", "Acme", "--full")
    assert result.exit_code == 3, result.output
    assert "HELD 40 change(s)" in result.output
    assert "engineering loses 20 of 20 members" in result.output
    assert memberships(db, org_id) == {"engineering": 20, "sales": 20}
    assert set(statuses(db, org_id).values()) == {"invited"}
    with db.read() as session:
        event = session.scalars(select(Event).where(Event.type == "guard.held")).one()
        assert event.detail["counts"] == {"group.remove_member": 40}
    # Held once: the next run skips them rather than holding them again, and still exits 3.
    again = invoke(sync, "run", "--org", "Acme", "--full")
    assert again.exit_code == 3 and "HELD" not in again.output, again.output
    listing = json.loads(invoke(held, "--org", "Acme", "--json").output)
    assert len(listing) == 40
    approved = invoke(held, "approve", str(listing[0]["id"]))
    assert approved.exit_code == 0, approved.output
    assert sum(memberships(db, org_id).values()) == 39

    # The read is fixed: every hold is released and nobody lost a group.
    reconfigure(db, org_id, slapd, openldap.base)
    fixed = invoke(sync, "run", "--org", "Acme", "--full")
    assert fixed.exit_code == 0, fixed.output
    assert memberships(db, org_id) == {"engineering": 20, "sales": 20}
    assert invoke(held, "--org", "Acme").output.strip() == "Nothing held."


def test_a_read_that_loses_a_group_granting_access_deletes_nothing(cli_env, slapd, openldap):
    db = cli_env
    story(db, slapd, openldap, n=20)
    # The sales group moves out of the group search base, as a broken read ACL hides it.
    openldap.rename(
        f"cn=sales,ou=groups,{openldap.base}", "cn=sales", f"ou=elsewhere,{openldap.base}"
    )
    result = invoke(sync, "run", "--org", "Acme", "--full")
    assert result.exit_code == 3, result.output
    assert "sales (deleted) loses 10 of 10 members" in result.output
    with db.read() as session:
        [held_change] = session.scalars(select(HeldChange)).all()
        assert (held_change.kind, held_change.change["name"]) == ("group.delete", "sales")
    assert "group.delete sales" in invoke(held, "--org", "Acme").output
    # The directory is read right again: the hold is no longer wanted, nobody lost access.
    openldap.rename(
        f"cn=sales,ou=elsewhere,{openldap.base}", "cn=sales", f"ou=groups,{openldap.base}"
    )
    assert invoke(sync, "run", "--org", "Acme", "--full").exit_code == 0
    assert invoke(held, "--org", "Acme").output.strip() == "Nothing held."
    with db.read() as session:
        assert session.scalar(select(HeldChange.status)) == "dropped"

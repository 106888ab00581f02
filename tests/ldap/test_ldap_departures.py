"""Departures seen by the default (delta) run against real slapd and Samba AD: a user moved out of
the search base or deleted is deprovisioned by the next delta, with a reason saying which; a
deleted group leaves the organization; a mail change's fresh invitation says why, in the Plan
and in the event; and an identity enumeration that fails deprovisions nobody."""

from __future__ import annotations

import time
import uuid

import pytest
from conftest import ROOT_ENTRY, DirectoryAdmin, ad_connector, configure, connector
from conftest import openldap_connector as slapd_connector
from ldap3 import Connection, Server
from ldap_servers import Slapd, slapd_missing
from sqlalchemy import select

from connectors.ldap.sync import SyncFailed, sync_connector
from gateway.store.models import Event, Group, Member


def statuses(db, org_id: str) -> dict[str, str]:
    with db.read() as session:
        return {
            m.email_lower: m.status
            for m in session.scalars(select(Member).where(Member.org_id == org_id))
        }


def events(db, org_id: str, type_: str) -> dict[str, dict]:
    """email -> detail of the organization's `type_` events (the last one per member)."""
    with db.read() as session:
        emails = {
            m.id: m.email_lower
            for m in session.scalars(select(Member).where(Member.org_id == org_id))
        }
        rows = session.scalars(
            select(Event).where(Event.org_id == org_id, Event.type == type_).order_by(Event.id)
        )
        return {emails.get(e.target_id, e.target_id): e.detail for e in rows}


def org_groups(db, org_id: str) -> set[str]:
    with db.read() as session:
        return set(session.scalars(select(Group.name).where(Group.org_id == org_id)))


def assert_bob_left_and_carol_was_deleted(db, org_id: str) -> None:
    assert statuses(db, org_id) == {
        "alice@example.org": "invited",
        "bob@example.org": "revoked",
        "carol@example.org": "revoked",
    }
    revoked = events(db, org_id, "member.revoked")
    assert revoked["bob@example.org"]["reason"] == "left the sync scope"
    assert revoked["carol@example.org"]["reason"] == "deleted from the directory"


# --- OpenLDAP ---------------------------------------------------------------------------------


def test_openldap_delta_deprovisions_a_user_moved_out_of_scope_and_one_deleted_saying_which(
    database, slapd, openldap
):
    db = database
    people, groups = f"ou=people,{openldap.base}", f"ou=groups,{openldap.base}"
    elsewhere = openldap.ou("elsewhere")
    alice = openldap.user("alice", people)
    bob = openldap.user("bob", people)
    carol = openldap.user("carol", people)
    openldap.group("devs", groups, [alice, bob, carol])
    org_id = configure(db, {"main": slapd_connector(slapd, openldap.base)})
    cfg = connector(db, org_id)
    sync_connector(db, org_id, cfg)
    assert set(statuses(db, org_id).values()) == {"invited"}

    openldap.rename(bob, "uid=bob", elsewhere)  # modrdn to an OU outside the user base
    openldap.delete(carol)
    run = sync_connector(db, org_id, cfg)

    assert run.kind == "delta"
    assert_bob_left_and_carol_was_deleted(db, org_id)


def test_openldap_dry_run_plan_names_why_a_user_left(sqlite_database, slapd, openldap):
    db = sqlite_database
    people = f"ou=people,{openldap.base}"
    elsewhere = openldap.ou("elsewhere")
    openldap.user("alice", people)
    bob = openldap.user("bob", people)
    org_id = configure(db, {"main": slapd_connector(slapd, openldap.base)})
    cfg = connector(db, org_id)
    sync_connector(db, org_id, cfg)

    openldap.rename(bob, "uid=bob", elsewhere)
    preview = sync_connector(db, org_id, cfg, dry_run=True)

    assert preview.kind == "delta"
    assert [(kind, target, detail) for kind, target, detail in preview.plan.rows()] == [
        ("member.revoke", "member bob@example.org", "left the sync scope")
    ]
    assert statuses(db, org_id)["bob@example.org"] == "invited"  # a dry run changes nothing


def test_openldap_delta_deletes_a_deleted_group_from_the_org(database, slapd, openldap):
    db = database
    people, groups = f"ou=people,{openldap.base}", f"ou=groups,{openldap.base}"
    alice = openldap.user("alice", people)
    openldap.group("devs", groups, [alice])
    ops = openldap.group("ops", groups, [alice])
    org_id = configure(db, {"main": slapd_connector(slapd, openldap.base)})
    cfg = connector(db, org_id)
    sync_connector(db, org_id, cfg)
    assert org_groups(db, org_id) == {"devs", "ops"}

    openldap.delete(ops)
    run = sync_connector(db, org_id, cfg)

    assert run.kind == "delta"
    assert run.summary.groups_removed == ["ops"]
    assert org_groups(db, org_id) == {"devs"}
    assert statuses(db, org_id) == {"alice@example.org": "invited"}


def test_openldap_mail_change_resend_says_why_in_the_plan_and_the_event(database, slapd, openldap):
    db = database
    people = f"ou=people,{openldap.base}"
    alice = openldap.user("alice", people)
    org_id = configure(db, {"main": slapd_connector(slapd, openldap.base)})
    cfg = connector(db, org_id)
    sync_connector(db, org_id, cfg)

    openldap.replace(alice, mail="alice.new@example.org")
    preview = sync_connector(db, org_id, cfg, dry_run=True)
    assert (
        "member.resend_invitation",
        "member alice.new@example.org",
        "the e-mail address changed in the directory",
    ) in preview.plan.rows()

    sync_connector(db, org_id, cfg)
    resent = events(db, org_id, "member.invitation_resent")
    assert resent["alice.new@example.org"]["reason"] == (
        "the e-mail address changed in the directory"
    )


def test_openldap_full_run_says_a_user_without_e_mail_was_not_deleted(database, slapd, openldap):
    db = database
    people = f"ou=people,{openldap.base}"
    openldap.user("alice", people)
    bob = openldap.user("bob", people)
    org_id = configure(db, {"main": slapd_connector(slapd, openldap.base)})
    cfg = connector(db, org_id)
    sync_connector(db, org_id, cfg)

    openldap.replace(bob, mail=[])
    sync_connector(db, org_id, cfg, kind="full")

    assert statuses(db, org_id)["bob@example.org"] == "revoked"
    revoked = events(db, org_id, "member.revoked")
    assert revoked["bob@example.org"]["reason"] == "no e-mail address in the directory"


@pytest.fixture
def limited_slapd(tmp_path):
    """A slapd of one's own that returns at most 6 entries per search to anyone but its root,
    and a reader account bound by that limit."""
    reason = slapd_missing()
    if reason:
        pytest.skip(reason)
    server = Slapd(tmp_path / "limited", size_limit=6)
    server.start()
    server.ldap("ldapadd", ROOT_ENTRY.format(suffix=server.suffix))
    reader = f"cn=reader,{server.suffix}"
    server.ldap(
        "ldapadd",
        f"dn: {reader}\nobjectClass: organizationalRole\nobjectClass: simpleSecurityObject\n"
        f"cn: reader\nuserPassword: {server.root_pw}\n",
    )
    yield server, reader
    server.stop()


def test_openldap_delta_whose_identity_enumeration_hits_the_size_limit_deprovisions_nobody(
    sqlite_database, limited_slapd
):
    from connectors.ldap.config import parse_document

    server, reader = limited_slapd
    db = sqlite_database
    conn = Connection(Server(server.url), server.root_dn, server.root_pw, auto_bind=True)
    admin = DirectoryAdmin(conn, server.suffix, ad=False)
    admin.base = admin.ou("corp")
    people = admin.ou("people", admin.base)
    admin.ou("groups", admin.base)
    users = [admin.user(f"u{i}", people) for i in range(8)]
    settings = slapd_connector(server, admin.base, page_size=2, clock_skew=1)
    org_id = configure(db, {"main": settings})
    time.sleep(2.1)  # the users' modifyTimestamps fall before the next delta's cursor
    sync_connector(db, org_id, connector(db, org_id))  # as the root: no limit
    assert list(statuses(db, org_id).values()) == ["invited"] * 8

    # The same connector bound as an account the server answers 6 entries at most: what changed
    # since the last run fits, the whole scope does not.
    settings["bind"] = {"user": reader, "password_env": "SCIMGATE_TEST_SLAPD_PW"}
    limited = parse_document({"connectors": {"main": settings}})["main"]
    admin.delete(users[0])
    with pytest.raises(SyncFailed) as failure:
        sync_connector(db, org_id, limited)

    assert "size limit" in str(failure.value)
    assert statuses(db, org_id) == {f"u{i}@example.org": "invited" for i in range(8)}
    conn.unbind()


# --- Active Directory (Samba) -------------------------------------------------------------------


def test_ad_delta_tells_deleted_users_from_moved_ones_and_deletes_a_deleted_group(
    database, samba_dc, ad, samba_admin
):
    from connectors.ldap.connection import connect
    from connectors.ldap.reader import Reader

    db = database
    outside = f"OU=out-{ad.tag},{samba_dc.base_dn}"  # beside the test OU: out of scope
    samba_admin.add(outside, ["organizationalUnit"])
    alice = ad.user("alice", ad.base)
    bob = ad.user("bob", ad.base)
    carol = ad.user("carol", ad.base)
    ad.group("devs", ad.base, [alice, bob, carol])
    ops = ad.group("ops", ad.base, [alice])
    org_id = configure(db, {"main": ad_connector(samba_dc, ad.base)})
    cfg = connector(db, org_id)
    sync_connector(db, org_id, cfg)
    assert org_groups(db, org_id) == {"devs", "ops"}
    with db.read() as session:
        carol_id = session.scalar(
            select(Member.external_id).where(Member.email_lower == "carol@example.org")
        )

    ad.rename(bob, "CN=bob", outside)
    ad.delete(carol)
    ad.delete(ops)
    run = sync_connector(db, org_id, cfg)

    assert run.kind == "delta"
    assert_bob_left_and_carol_was_deleted(db, org_id)
    assert org_groups(db, org_id) == {"devs"}
    # Carol was found where AD keeps deleted objects, read with the Show Deleted control.
    bound = connect(cfg)
    try:
        reader = Reader(bound.connection, cfg)
        tombstones = reader.tombstones({carol_id}, samba_dc.base_dn)
    finally:
        bound.close()
    assert tombstones == {carol_id} and uuid.UUID(carol_id)


def test_ad_delta_bound_as_a_plain_user_still_deprovisions_the_deleted(
    database, samba_dc, ad, samba_admin, monkeypatch
):
    """A service account that is no administrator (Deleted Objects may be hidden from it) still
    sees a deletion: an entry found nowhere in the naming context was deleted."""
    from ldap3 import MODIFY_REPLACE

    db = database
    service = ad.user("svc", ad.base, mail=None)
    password = "Svc-Passw0rd-" + ad.tag
    samba_admin.modify(
        service,
        {
            "unicodePwd": [(MODIFY_REPLACE, [f'"{password}"'.encode("utf-16-le")])],
            "userAccountControl": [(MODIFY_REPLACE, ["512"])],
        },
    )
    assert samba_admin.result["result"] == 0, samba_admin.result
    monkeypatch.setenv("SCIMGATE_TEST_AD_SVC_PW", password)
    alice = ad.user("alice", ad.base)
    carol = ad.user("carol", ad.base)
    ad.group("devs", ad.base, [alice, carol])
    bind = {
        "user": f"svc-{ad.tag}@{samba_dc.realm.lower()}",
        "password_env": "SCIMGATE_TEST_AD_SVC_PW",
    }
    org_id = configure(db, {"main": ad_connector(samba_dc, ad.base, bind=bind)})
    cfg = connector(db, org_id)
    sync_connector(db, org_id, cfg)

    ad.delete(carol)
    run = sync_connector(db, org_id, cfg)

    assert run.kind == "delta"
    assert statuses(db, org_id)["carol@example.org"] == "revoked"
    revoked = events(db, org_id, "member.revoked")
    assert revoked["carol@example.org"]["reason"] == "deleted from the directory"

"""The LDAP connector against a real Samba AD DC: objectGUID identity, userAccountControl,
in-chain nesting, primaryGroupID, ranged retrieval and uSNChanged deltas."""

from __future__ import annotations

import ssl
import time

from conftest import DirectoryState, ad_connector, configure, connector
from ldap3 import SIMPLE, Connection, Server, Tls

from connectors.ldap.sync import sync_connector


def test_ad_initial_sync_disabled_user_revoked_and_restored(sqlite_database, samba_dc, ad):
    db = sqlite_database
    alice = ad.user("alice", ad.base, given="Alice", sn="Admin")
    bob = ad.user("bob", ad.base, disabled=True)
    ad.user("svc", ad.base, mail=None)  # no mail: the prefix + suffix fallback
    devs = ad.group("devs", ad.base, [alice, bob])
    org_id = configure(db, {"main": ad_connector(samba_dc, ad.base, email_suffix="corp.example")})
    cfg = connector(db, org_id)

    sync_connector(db, org_id, cfg)
    state = DirectoryState(db, org_id)
    assert set(state.users) == {
        "alice@example.org",
        "bob@example.org",
        f"svc-{ad.tag}@corp.example",
    }
    assert state.users["alice@example.org"].active is True
    assert state.users["bob@example.org"].active is False
    assert state.members["devs"] == {"alice@example.org", "bob@example.org"}
    guid = state.users["alice@example.org"].external_id
    assert len(guid) == 36 and guid.count("-") == 4  # objectGUID as a UUID

    ad.set_disabled(bob, False)
    ad.set_disabled(alice, True)
    delta = sync_connector(db, org_id, cfg)
    state = DirectoryState(db, org_id)
    assert delta.kind == "delta"
    assert state.users["alice@example.org"].active is False
    assert state.users["bob@example.org"].active is True
    assert state.users["alice@example.org"].external_id == guid
    del devs


def test_ad_nested_groups_and_primary_group(sqlite_database, samba_dc, ad, samba_admin):
    db = sqlite_database
    alice = ad.user("alice", ad.base)
    bob = ad.user("bob", ad.base)
    carol = ad.user("carol", ad.base)
    inner = ad.group("inner", ad.base, [alice])
    middle = ad.group("middle", ad.base, [inner])
    ad.group("outer", ad.base, [middle, bob])
    primary = ad.group("primary", ad.base, [carol])
    # carol's primary group becomes "primary": AD then drops her from its member attribute.
    samba_admin.search(primary, "(objectClass=*)", search_scope="BASE", attributes=["objectSid"])
    sid = samba_admin.response[0]["raw_attributes"]["objectSid"][0]
    ad.replace(carol, primaryGroupID=str(int.from_bytes(sid[-4:], "little")))
    samba_admin.search(primary, "(objectClass=*)", search_scope="BASE", attributes=["member"])
    assert not samba_admin.response[0]["raw_attributes"].get("member")
    org_id = configure(db, {"main": ad_connector(samba_dc, ad.base)})

    sync_connector(db, org_id, connector(db, org_id))

    state = DirectoryState(db, org_id)
    assert state.members["outer"] == {"alice@example.org", "bob@example.org"}
    assert state.members["middle"] == {"alice@example.org"}
    assert state.child_groups["outer"] == {"middle"} and state.child_groups["middle"] == {"inner"}
    assert state.members["primary"] == {"carol@example.org"}


def test_ad_group_with_more_than_1500_members(sqlite_database, samba_dc, ad):
    db = sqlite_database
    people = f"OU=people,{ad.base}"
    ad.conn.add(people, ["organizationalUnit"])
    members = [ad.user(f"m{i:04d}", people) for i in range(1600)]
    big = ad.group("big", ad.base)
    for start in range(0, len(members), 400):
        ad.add_members(big, members[start : start + 400])
    org_id = configure(db, {"main": ad_connector(samba_dc, ad.base, page_size=500)})

    sync_connector(db, org_id, connector(db, org_id))

    state = DirectoryState(db, org_id)
    assert len(state.members["big"]) == 1600

    # Windows AD hands out `member` 1,500 values at a time; Samba answers ranged requests the
    # same way but does not force them, so ask for a first range to walk the rest as with AD.
    from connectors.ldap.connection import connect
    from connectors.ldap.reader import Reader

    bound = connect(connector(db, org_id))
    try:
        reader = Reader(bound.connection, connector(db, org_id))
        (entry,) = reader.search(
            "big", big, "(objectClass=*)", ["member;range=0-699"], scope="BASE"
        )
        assert len(entry.values("member")) == 1600
    finally:
        bound.close()


def test_ad_delta_after_a_login_changes_nothing_then_applies_only_changes(
    sqlite_database, samba_dc, ad
):
    db = sqlite_database
    alice = ad.user("alice", ad.base, extra={"unicodePwd": '"Passw0rd-Alice!"'.encode("utf-16-le")})
    ad.replace(alice, userAccountControl="512")
    bob = ad.user("bob", ad.base)
    ad.group("devs", ad.base, [alice])
    org_id = configure(db, {"main": ad_connector(samba_dc, ad.base)})
    cfg = connector(db, org_id)
    sync_connector(db, org_id, cfg)
    before = DirectoryState(db, org_id)

    # alice logs in: her uSNChanged moves, nothing the engine uses does.
    tls = Tls(validate=ssl.CERT_REQUIRED, ca_certs_file=str(samba_dc.ca_file), valid_names=["*"])
    login = Connection(
        Server(samba_dc.address, port=636, use_ssl=True, tls=tls),
        f"alice-{ad.tag}@test.lan",
        "Passw0rd-Alice!",
        authentication=SIMPLE,
        auto_bind=True,
    )
    login.unbind()
    time.sleep(0.2)
    quiet = sync_connector(db, org_id, cfg)
    assert quiet.kind == "delta" and not quiet.change and not quiet.summary

    ad.replace(bob, givenName="Robert")
    delta = sync_connector(db, org_id, cfg)
    after = DirectoryState(db, org_id)
    assert delta.kind == "delta"
    assert [name for name, _ in delta.summary.users_updated] == ["bob@example.org"]
    assert after.users["alice@example.org"].version == before.users["alice@example.org"].version
    assert delta.change.user_ids == {after.users["bob@example.org"].id}


def test_ad_delta_is_a_full_sync_when_the_dc_invocation_id_changed(sqlite_database, samba_dc, ad):
    from connectors.ldap.sync import last_success
    from gateway.store.models import SyncRun

    db = sqlite_database
    ad.user("alice", ad.base)
    org_id = configure(db, {"main": ad_connector(samba_dc, ad.base)})
    cfg = connector(db, org_id)
    first = sync_connector(db, org_id, cfg)
    assert first.cursor["invocation_id"] and first.cursor["usn"] > 0
    with db.transaction() as session:
        run = session.get(SyncRun, first.run_id)
        run.cursor = {**run.cursor, "invocation_id": "00000000-0000-0000-0000-000000000000"}
    again = sync_connector(db, org_id, cfg)
    assert again.kind == "full"
    with db.read() as session:
        assert last_success(session, org_id, "main").kind == "full"


def test_ad_user_base_list_reads_two_ous_of_three(sqlite_database, samba_dc, ad):
    db = sqlite_database
    sales, it, hr = (f"OU={name},{ad.base}" for name in ("Sales", "IT", "HR"))
    for ou in (sales, it, hr):
        ad.conn.add(ou, ["organizationalUnit"])
        ad._ok(f"add {ou}")
    ann, ivan, hank = ad.user("ann", sales), ad.user("ivan", it), ad.user("hank", hr)
    ad.group("staff", ad.base, [ann, ivan, hank])
    org_id = configure(
        db, {"main": ad_connector(samba_dc, ad.base, user_base=["OU=Sales", "OU=IT"])}
    )

    sync_connector(db, org_id, connector(db, org_id))

    state = DirectoryState(db, org_id)
    assert set(state.users) == {"ann@example.org", "ivan@example.org"}
    assert state.members == {"staff": {"ann@example.org", "ivan@example.org"}}

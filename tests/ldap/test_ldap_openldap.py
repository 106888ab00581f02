"""The LDAP connector against a real OpenLDAP slapd: what a sync writes into the directory layer."""

from __future__ import annotations

import pytest
from conftest import DirectoryState, configure, connector, openldap_connector

from connectors.ldap.sync import sync_connector


def test_openldap_initial_sync_writes_users_groups_and_members(sqlite_database, slapd, openldap):
    db = sqlite_database
    people, groups = f"ou=people,{openldap.base}", f"ou=groups,{openldap.base}"
    alice = openldap.user("alice", people, given="Alice", sn="Liddell")
    bob = openldap.user("bob", people, given="Bob", sn="Builder")
    openldap.user("carol", people, disabled=True)
    openldap.user("nomail", people, mail=None)
    openldap.group("engineering", groups, [alice, bob])
    openldap.posix_group("ops", groups, 5000, ["bob", "ghost"])
    org_id = configure(db, {"main": openldap_connector(slapd, openldap.base)})

    result = sync_connector(db, org_id, connector(db, org_id))

    state = DirectoryState(db, org_id)
    assert set(state.users) == {"alice@example.org", "bob@example.org", "carol@example.org"}
    alice_row = state.users["alice@example.org"]
    assert alice_row.resource["name"] == {
        "givenName": "Alice",
        "familyName": "Liddell",
        "formatted": "Alice Liddell",
    }
    assert alice_row.resource["emails"] == [
        {"value": "alice@example.org", "type": "work", "primary": True}
    ]
    assert alice_row.active is True and state.users["carol@example.org"].active is False
    assert alice_row.external_id and alice_row.external_id == alice_row.resource["externalId"]
    assert state.members == {
        "engineering": {"alice@example.org", "bob@example.org"},
        "ops": {"bob@example.org"},
    }
    assert result.kind == "full"
    assert any("nomail" in w for w in result.summary.warnings)


def test_openldap_nested_groups_count_members_of_children_and_survive_cycles(
    sqlite_database, slapd, openldap
):
    db = sqlite_database
    people, groups = f"ou=people,{openldap.base}", f"ou=groups,{openldap.base}"
    outside = openldap.ou("elsewhere")
    alice = openldap.user("alice", people)
    bob = openldap.user("bob", people)
    carol = openldap.user("carol", people)
    # all -> staff -> devs (alice); all -> hidden (outside the group base) -> bob; devs -> all
    devs = openldap.group("devs", groups, [alice])
    staff = openldap.group("staff", groups, [devs])
    hidden = openldap.group("hidden", outside, [bob])
    everyone = openldap.group("all", groups, [staff, hidden, carol])
    openldap.add_members(devs, [everyone])  # a cycle
    org_id = configure(db, {"main": openldap_connector(slapd, openldap.base)})

    sync_connector(db, org_id, connector(db, org_id))

    state = DirectoryState(db, org_id)
    everybody = {"alice@example.org", "bob@example.org", "carol@example.org"}
    assert state.members["all"] == everybody
    assert state.members["staff"] == everybody  # staff -> devs -> all -> everyone
    assert state.members["devs"] == everybody
    assert state.child_groups == {"all": {"staff"}, "staff": {"devs"}, "devs": {"all"}}
    assert "hidden" not in state.groups


def test_openldap_rename_and_move_keep_identity_and_membership(sqlite_database, slapd, openldap):
    db = sqlite_database
    people, groups = f"ou=people,{openldap.base}", f"ou=groups,{openldap.base}"
    alice = openldap.user("alice", people)
    openldap.group("devs", groups, [alice])
    org_id = configure(db, {"main": openldap_connector(slapd, openldap.base)})
    cfg = connector(db, org_id)
    sync_connector(db, org_id, cfg)
    before = DirectoryState(db, org_id).users["alice@example.org"]

    sub = openldap.ou("moved", people)
    renamed = openldap.rename(alice, "uid=alice2", sub)
    openldap.replace(renamed, mail="alice.new@example.org")
    result = sync_connector(db, org_id, cfg, kind="full")

    after = DirectoryState(db, org_id)
    row = after.users["alice.new@example.org"]
    assert (row.id, row.external_id) == (before.id, before.external_id)
    assert row.version == before.version + 1
    assert after.members["devs"] == {"alice.new@example.org"}
    assert result.summary.users_added == [] and result.summary.users_removed == []
    assert result.change.deleted_user_ids == set()


def test_openldap_deleted_user_is_removed_by_the_next_delta(sqlite_database, slapd, openldap):
    db = sqlite_database
    people, groups = f"ou=people,{openldap.base}", f"ou=groups,{openldap.base}"
    alice = openldap.user("alice", people)
    bob = openldap.user("bob", people)
    openldap.group("devs", groups, [alice, bob])
    org_id = configure(db, {"main": openldap_connector(slapd, openldap.base)})
    cfg = connector(db, org_id)
    sync_connector(db, org_id, cfg)
    bob_id = DirectoryState(db, org_id).users["bob@example.org"].id

    openldap.delete(bob)
    delta = sync_connector(db, org_id, cfg)

    assert delta.kind == "delta"
    assert delta.change.deleted_user_ids == {bob_id}
    assert delta.change.departure_reasons == {bob_id: "deleted from the directory"}
    state = DirectoryState(db, org_id)
    assert set(state.users) == {"alice@example.org"}
    assert state.members["devs"] == {"alice@example.org"}


def test_openldap_delta_applies_only_changes(sqlite_database, slapd, openldap):
    db = sqlite_database
    people, groups = f"ou=people,{openldap.base}", f"ou=groups,{openldap.base}"
    users = [openldap.user(f"u{i}", people) for i in range(5)]
    devs = openldap.group("devs", groups, users[:2])
    org_id = configure(db, {"main": openldap_connector(slapd, openldap.base, clock_skew=1)})
    cfg = connector(db, org_id)
    sync_connector(db, org_id, cfg)
    import time

    time.sleep(2.1)  # modifyTimestamp has one-second resolution
    quiet = sync_connector(db, org_id, cfg)
    assert quiet.kind == "delta" and not quiet.change and not quiet.summary
    before = DirectoryState(db, org_id)

    time.sleep(2.1)
    openldap.replace(users[3], givenName="Renamed")
    openldap.add_members(devs, [users[4]])
    delta = sync_connector(db, org_id, cfg)

    after = DirectoryState(db, org_id)
    assert delta.kind == "delta"
    assert delta.counts["users_read"] == 1  # u3: nobody else (the group change is read as a group)
    assert [name for name, _ in delta.summary.users_updated] == ["u3@example.org"]
    assert after.members["devs"] == {"u0@example.org", "u1@example.org", "u4@example.org"}
    unchanged = {"u0@example.org", "u1@example.org", "u2@example.org", "u4@example.org"}
    for name in unchanged:
        assert after.users[name].version == before.users[name].version
    assert after.users["u3@example.org"].resource["name"]["givenName"] == "Renamed"
    assert delta.change.user_ids == {
        after.users["u3@example.org"].id,
        after.users["u4@example.org"].id,
    }
    assert delta.change.group_ids == {after.groups["devs"].id}


def test_openldap_server_stopped_mid_sync_leaves_every_row_as_it_was(
    sqlite_database, fresh_slapd, monkeypatch
):
    from conftest import DirectoryAdmin
    from ldap3 import Connection, Server

    from connectors.ldap.reader import Reader
    from connectors.ldap.sync import SyncFailed
    from gateway.store.models import SyncRun

    db = sqlite_database
    conn = Connection(
        Server(fresh_slapd.url), fresh_slapd.root_dn, fresh_slapd.root_pw, auto_bind=True
    )
    admin = DirectoryAdmin(conn, fresh_slapd.suffix, ad=False)
    admin.base = admin.ou("corp")
    people, groups = admin.ou("people", admin.base), admin.ou("groups", admin.base)
    users = [admin.user(f"u{i}", people) for i in range(30)]
    admin.group("devs", groups, users[:20])
    org_id = configure(db, {"main": openldap_connector(fresh_slapd, admin.base, page_size=5)})
    cfg = connector(db, org_id)
    sync_connector(db, org_id, cfg)
    before = DirectoryState(db, org_id).snapshot()

    for dn in users[20:]:
        admin.delete(dn)
    admin.replace(users[0], mail="changed@example.org")
    conn.unbind()
    record = Reader.user_record
    seen = []

    def stop_after_some(self, entry):
        seen.append(entry.dn)
        if len(seen) == 7:
            fresh_slapd.stop()
        return record(self, entry)

    monkeypatch.setattr(Reader, "user_record", stop_after_some)
    with pytest.raises(SyncFailed) as failure:
        sync_connector(db, org_id, cfg, kind="full")

    assert DirectoryState(db, org_id).snapshot() == before
    with db.read() as session:
        run = session.get(SyncRun, failure.value.run_id)
        assert run.status == "failed" and run.finished_at is not None
        assert "search" in run.error or "connect" in run.error.lower()


def test_openldap_tls_with_a_wrong_ca_fails_with_a_clear_message(
    sqlite_database, slapd, openldap, tmp_path
):
    from ldap_servers import make_cert

    from connectors.ldap.diagnose import diagnose
    from connectors.ldap.sync import SyncFailed

    db = sqlite_database
    other_ca, _ = make_cert(tmp_path)
    org_id = configure(
        db,
        {
            "main": openldap_connector(
                slapd, openldap.base, servers=[slapd.ldaps_url], tls={"ca_file": str(other_ca)}
            ),
            "good": openldap_connector(
                slapd, openldap.base, servers=[slapd.ldaps_url], tls={"ca_file": str(slapd.cert)}
            ),
            "starttls": openldap_connector(
                slapd, openldap.base, start_tls=True, tls={"ca_file": str(other_ca)}
            ),
        },
    )
    with pytest.raises(SyncFailed) as failure:
        sync_connector(db, org_id, connector(db, org_id))
    message = str(failure.value)
    assert message.startswith("TLS: the certificate of ldaps://127.0.0.1:")
    assert "is not trusted" in message and str(other_ca) in message

    starttls = diagnose(connector(db, org_id, "starttls"))
    assert not starttls.ok and "TLS: the certificate" in starttls.failure()
    good = diagnose(connector(db, org_id, "good"))
    assert good.ok, good.steps


def test_openldap_dry_run_changes_nothing_and_records_no_run(sqlite_database, slapd, openldap):
    from sqlalchemy import func, select

    from gateway.store.models import SyncRun

    db = sqlite_database
    openldap.user("alice", f"ou=people,{openldap.base}")
    org_id = configure(db, {"main": openldap_connector(slapd, openldap.base)})
    plan = sync_connector(db, org_id, connector(db, org_id), dry_run=True)
    assert plan.summary.users_added == ["alice@example.org"]
    assert DirectoryState(db, org_id).users == {}
    with db.read() as session:
        assert session.scalar(select(func.count()).select_from(SyncRun)) == 0


def test_openldap_sync_on_postgresql(postgresql_database, slapd, openldap):
    """Smoke test: the same writes on PostgreSQL (bulk insert, update, delete, members)."""
    db = postgresql_database
    people, groups = f"ou=people,{openldap.base}", f"ou=groups,{openldap.base}"
    alice = openldap.user("alice", people)
    bob = openldap.user("bob", people)
    openldap.group("devs", groups, [alice, bob])
    org_id = configure(db, {"main": openldap_connector(slapd, openldap.base)})
    cfg = connector(db, org_id)
    sync_connector(db, org_id, cfg)
    openldap.delete(bob)
    openldap.replace(alice, mail="bob@example.org")  # takes bob's old name in the same run
    sync_connector(db, org_id, cfg, kind="full")
    state = DirectoryState(db, org_id)
    assert set(state.users) == {"bob@example.org"}
    assert state.members == {"devs": {"bob@example.org"}}


def test_openldap_user_base_list_reads_two_ous_of_three_each_entry_once(
    sqlite_database, slapd, openldap
):
    db = sqlite_database
    sales, it, hr = (
        openldap.ou(name, f"ou=people,{openldap.base}") for name in ("sales", "it", "hr")
    )
    eng = openldap.ou("eng", it)  # under ou=it and listed too: read once
    ann = openldap.user("ann", sales)
    ivan = openldap.user("ivan", it)
    eve = openldap.user("eve", eng)
    openldap.user("hank", hr)
    team_groups = openldap.ou("team-groups")
    openldap.group("everyone", f"ou=groups,{openldap.base}", [ann, ivan, eve])
    openldap.group("team", team_groups, [ann, eve])
    openldap.group("elsewhere", openldap.ou("other-groups"), [ann])
    org_id = configure(
        db,
        {
            "main": openldap_connector(
                slapd,
                openldap.base,
                user_base=["ou=sales,ou=people", "ou=it,ou=people", "ou=eng,ou=it,ou=people"],
                group_base=["ou=groups", team_groups],
            )
        },
    )

    result = sync_connector(db, org_id, connector(db, org_id))

    state = DirectoryState(db, org_id)
    assert set(state.users) == {"ann@example.org", "ivan@example.org", "eve@example.org"}
    assert state.members == {
        "everyone": {"ann@example.org", "ivan@example.org", "eve@example.org"},
        "team": {"ann@example.org", "eve@example.org"},
    }
    assert result.summary.warnings == []  # no "its id is also ..." for eve


def test_openldap_a_new_search_base_makes_the_next_run_a_full_sync(
    sqlite_database, slapd, openldap
):
    db = sqlite_database
    sales, it = (openldap.ou(name, f"ou=people,{openldap.base}") for name in ("sales", "it"))
    openldap.user("ann", sales)
    openldap.user("ivan", it)  # unchanged from here on: a delta would not read him
    doc = openldap_connector(slapd, openldap.base, user_base=["ou=sales,ou=people"])
    org_id = configure(db, {"main": doc})
    assert sync_connector(db, org_id, connector(db, org_id)).kind == "full"
    assert sync_connector(db, org_id, connector(db, org_id)).kind == "delta"

    with db.transaction() as session:
        from gateway.store.models import Organization

        org = session.get(Organization, org_id)
        wider = {**doc, "user_base": ["ou=sales,ou=people", "ou=it,ou=people"]}
        org.settings = {"ldap_connectors": {"connectors": {"main": wider}}}
    widened = sync_connector(db, org_id, connector(db, org_id))

    assert widened.kind == "full"
    assert set(DirectoryState(db, org_id).users) == {"ann@example.org", "ivan@example.org"}
    assert sync_connector(db, org_id, connector(db, org_id)).kind == "delta"

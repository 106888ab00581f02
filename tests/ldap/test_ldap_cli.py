"""`scimgate ldap ...` / `scimgate sync ...`, the configuration file, and the scheduler."""

from __future__ import annotations

import copy
from datetime import timedelta

import pytest
import yaml
from click.testing import CliRunner
from conftest import DirectoryState, configure, connector, openldap_connector
from sqlalchemy import select

from connectors.ldap.cli import ldap, sync
from connectors.ldap.config import load_yaml
from connectors.ldap.schedule import ConnectorBusy, connector_lock, run_due_connectors
from gateway.errors import InvalidInput
from gateway.store.models import utcnow


def _point_the_cli_at(database, tmp_path, monkeypatch):
    monkeypatch.setenv("GATEWAY_DATABASE_URL", database.url)
    monkeypatch.setenv("GATEWAY_DATA_DIR", str(tmp_path / "data"))
    monkeypatch.setenv("GATEWAY_SECRET_KEY", "test-secret-key-0123456789")
    return database


@pytest.fixture
def cli_env(sqlite_database, tmp_path, monkeypatch):
    return _point_the_cli_at(sqlite_database, tmp_path, monkeypatch)


@pytest.fixture
def cli_env_both(database, tmp_path, monkeypatch):
    """Both databases: the mapping is read beside the connectors, in SQL."""
    return _point_the_cli_at(database, tmp_path, monkeypatch)


def invoke(group, *args: str):
    result = CliRunner().invoke(group, list(args), catch_exceptions=False)
    return result


def test_config_errors_name_the_key_and_what_to_fix():
    with pytest.raises(InvalidInput) as bad:
        load_yaml(
            "connectors:\n  corp:\n    preset: ad\n    servers: [http://dc1]\n    base_dn: DC=x\n"
            "    bind: {user: svc, password: hunter2}\n    page_size: 0\n"
        )
    message = str(bad.value)
    assert "connectors.corp.servers[0]: 'http://dc1' is not an LDAP server URL" in message
    assert "connectors.corp.page_size:" in message
    # An inline password: refused, and told how to give it.
    assert (
        "connectors.corp.bind.password: is not a known key: passwords never go in the "
        "configuration: give password_env: VARIABLE" in message
    )
    assert "password_file: PATH" in message and "hunter2" not in message
    with pytest.raises(InvalidInput, match="exactly one of password_env"):
        load_yaml(
            "connectors:\n  c:\n    preset: openldap\n    servers: [ldap://x]\n    base_dn: dc=x\n"
            "    bind: {user: cn=admin}\n"
        )
    _, parsed = load_yaml(
        "connectors:\n  c:\n    preset: ad\n    servers: [ldaps://dc1, ldaps://dc2]\n"
        "    base_dn: DC=corp\n    user_base: OU=Staff\n"
        "    bind: {user: 'CORP\\svc', password_file: /run/pw}\n    interval: 10m\n"
    )
    cfg = parsed["c"]
    assert (
        cfg.user_base == ("OU=Staff,DC=corp",)
        and cfg.interval == 600
        and cfg.full_sync_interval == 86400
    )
    assert cfg.attributes.unique_id == "objectGUID" and cfg.tls_verify is True
    assert "objectGUID" in cfg.user_attributes() and "*" not in cfg.user_attributes()


def test_config_unknown_key_names_its_path_and_lists_the_valid_keys():
    with pytest.raises(InvalidInput) as bad:
        load_yaml(
            "connectors:\n  corp:\n    preset: openldap\n    servers: [ldap://x]\n"
            "    base_dn: dc=x\n    bind: {user: cn=admin, password_env: PW}\n"
            "    page_sise: 100\n    tls: {verfy: false}\n"
        )
    message = str(bad.value)
    assert "Unknown field." not in message
    assert (
        "connectors.corp.page_sise: is not a known key (did you mean page_size?); the keys of "
        "connectors.corp are: attributes, base_dn, bind, clock_skew,"
    ) in message
    assert (
        "connectors.corp.tls.verfy: is not a known key (did you mean verify?); the keys of "
        "connectors.corp.tls are: ca_file, client_cert, client_key, server_name, verify"
    ) in message
    with pytest.raises(InvalidInput, match=r"conectors: is not a known key \(did you mean "):
        load_yaml("conectors: {}\n")


def test_config_search_bases_are_a_string_or_a_list():
    base = (
        "connectors:\n  c:\n    preset: openldap\n    servers: [ldap://x]\n    base_dn: dc=x\n"
        "    bind: {user: cn=admin, password_env: PW}\n"
    )
    _, parsed = load_yaml(
        base + "    user_base: [ou=sales, 'ou=it,dc=x', ou=sales]\n    group_base: ou=groups\n"
    )
    assert parsed["c"].user_base == ("ou=sales,dc=x", "ou=it,dc=x")
    assert parsed["c"].group_base == ("ou=groups,dc=x",)
    with pytest.raises(InvalidInput, match=r"connectors.c.user_base: expected a DN, or a list"):
        load_yaml(base + "    user_base: []\n")


def test_mapping_email_rules_beat_preset_defaults_not_the_connectors_own_keys():
    from connectors.ldap.config import with_mapping_email
    from mappings import load_mapping

    rules = load_mapping(
        "attributes:\n  ldap: {email_attribute: userPrincipalName,"
        " email_prefix_attribute: employeeID, email_suffix: corp.example}\n"
    )
    base = (
        "connectors:\n  c:\n    preset: ad\n    servers: [ldaps://dc1]\n    base_dn: DC=corp\n"
        "    bind: {user: svc, password_env: PW}\n"
    )
    preset_only = with_mapping_email(load_yaml(base)[1]["c"], rules)
    assert preset_only.attributes.email == "userPrincipalName"
    assert preset_only.attributes.email_prefix == "employeeID"
    assert preset_only.email_suffix == "@corp.example"
    assert "userPrincipalName" in preset_only.user_attributes()
    own = load_yaml(base + "    attributes: {email: mail}\n    email_suffix: own.example\n")
    kept = with_mapping_email(own[1]["c"], rules)
    assert kept.attributes.email == "mail" and kept.email_suffix == "@own.example"
    assert kept.attributes.email_prefix == "sAMAccountName"  # the preset's, with its own suffix
    # New rules read users differently: the next run is a full sync, not a delta.
    assert preset_only.read_fingerprint() != load_yaml(base)[1]["c"].read_fingerprint()
    assert load_yaml(base)[1]["c"].read_fingerprint() == load_yaml(base)[1]["c"].read_fingerprint()


def test_cli_set_show_test_plan_run_history(cli_env, slapd, openldap, tmp_path):
    db = cli_env
    people, groups = f"ou=people,{openldap.base}", f"ou=groups,{openldap.base}"
    alice = openldap.user("alice", people)
    openldap.group("devs", groups, [alice])
    from gateway.orgs import create_org

    with db.transaction() as session:
        create_org(session, "Acme")
    config_file = tmp_path / "ldap.yaml"
    config_file.write_text(
        yaml.safe_dump({"connectors": {"main": openldap_connector(slapd, openldap.base)}})
    )

    result = invoke(ldap, "set", "--org", "Acme", str(config_file))
    assert result.exit_code == 0, result.output
    assert "Stored 1 LDAP connector(s) for Acme: main" in result.output
    assert "warning: connector main: " in result.output and "in clear text" in result.output
    shown = invoke(ldap, "show", "--org", "Acme").output
    assert "password_env: SCIMGATE_TEST_SLAPD_PW" in shown and "secret" not in shown

    tested = invoke(ldap, "test", "--org", "Acme")
    assert tested.exit_code == 0, tested.output
    assert (
        "users: 1  groups: 1" in tested.output
        and "user alice@example.org (active)" in tested.output
    )

    plan = invoke(sync, "plan", "--org", "Acme")
    assert plan.exit_code == 0, plan.output
    assert "full sync (dry run)" in plan.output and "alice@example.org" in plan.output
    assert DirectoryState(db, _org_id(db)).users == {}

    run = invoke(sync, "run", "--org", "Acme")
    assert run.exit_code == 0, run.output
    assert "users added (1)" in run.output
    assert set(DirectoryState(db, _org_id(db)).users) == {"alice@example.org"}

    history = invoke(sync, "history", "--org", "Acme")
    assert "succeeded" in history.output and "read 1u +u1 +g1 +m1" in history.output


def _org_id(db):
    from gateway.orgs import find_org

    with db.read() as session:
        return find_org(session, "Acme").id


def test_ldap_test_says_which_step_failed(cli_env, slapd, openldap, monkeypatch):
    db = cli_env
    configure(
        db,
        {
            "dns": openldap_connector(
                slapd, openldap.base, servers=["ldap://no-such-host.invalid"]
            ),
            "tcp": openldap_connector(slapd, openldap.base, servers=["ldap://127.0.0.1:1"]),
            "bind": openldap_connector(
                slapd, openldap.base, bind={"user": slapd.root_dn, "password_env": "WRONG_PW"}
            ),
            "base": openldap_connector(slapd, "ou=nowhere,dc=example,dc=org"),
            "filter": openldap_connector(
                slapd, openldap.base, user_filter="(&(objectClass=inetOrgPerson)(bogus))"
            ),
        },
    )
    monkeypatch.setenv("WRONG_PW", "not-the-password")

    def failure(name: str) -> str:
        result = invoke(ldap, "test", "--org", "Acme", "--connector", name)
        assert result.exit_code == 1
        return result.output

    assert "DNS: cannot resolve 'no-such-host.invalid'" in failure("dns")
    assert "TCP: cannot connect to 127.0.0.1:1" in failure("tcp")
    assert (
        "refused the credentials of 'cn=admin,dc=example,dc=org' (invalid credentials"
        in failure("bind")
    )
    assert "base DN: 'ou=nowhere,dc=example,dc=org' does not exist" in failure("base")
    assert "filter" in failure("filter").lower()


def test_failed_run_is_recorded_and_deprovisions_nothing(cli_env, slapd, openldap):
    db = cli_env
    openldap.user("alice", f"ou=people,{openldap.base}")
    org_id = configure(db, {"main": openldap_connector(slapd, openldap.base)})
    invoke(sync, "run", "--org", "Acme")
    with db.transaction() as session:  # the connector now points at a base that is gone
        from gateway.store.models import Organization

        org = session.get(Organization, org_id)
        doc = copy.deepcopy(org.settings)
        doc["ldap_connectors"]["connectors"]["main"]["user_base"] = "ou=gone"
        org.settings = {**doc}
    result = invoke(sync, "run", "--org", "Acme", "--full")
    assert result.exit_code == 1
    assert "the sync failed and changed nothing: base DN" in result.output
    assert set(DirectoryState(db, org_id).users) == {"alice@example.org"}
    history = invoke(sync, "history", "--org", "Acme", "--json").output
    assert '"status": "failed"' in history and "does not exist" in history


def test_run_due_connectors_respects_interval_and_lock(sqlite_database, slapd, openldap):
    db = sqlite_database
    openldap.user("alice", f"ou=people,{openldap.base}")
    org_id = configure(db, {"main": openldap_connector(slapd, openldap.base, interval="5m")})

    first = run_due_connectors(db, None)
    assert [(o.connector, o.result.kind, o.error) for o in first] == [("main", "full", None)]
    assert run_due_connectors(db, None) == []  # not due for five minutes
    later = utcnow() + timedelta(minutes=6)
    with connector_lock(db, org_id, "main"):  # another worker is running it
        (busy,) = run_due_connectors(db, None, now=later)
        assert busy.skipped and busy.result is None
        with pytest.raises(ConnectorBusy), connector_lock(db, org_id, "main"):
            pass
    (due,) = run_due_connectors(db, None, now=later)
    assert due.result.kind == "delta"
    assert connector(db, org_id).interval == 300


def test_ldap_test_with_one_failover_server_down_is_degraded_not_failed(cli_env, slapd, openldap):
    db = cli_env
    openldap.user("alice", f"ou=people,{openldap.base}")
    down = "ldap://127.0.0.1:1"
    configure(db, {"main": openldap_connector(slapd, openldap.base, servers=[down, slapd.url])})

    result = invoke(ldap, "test", "--org", "Acme")

    assert result.exit_code == 0, result.output
    assert f"DOWN {down}: TCP: cannot connect to 127.0.0.1:1" in result.output
    assert f"ok   {slapd.url}: DNS, TCP, no TLS" in result.output
    assert f"warning: degraded: {down} is down (TCP: cannot connect" in result.output
    assert f"syncs use {slapd.url} meanwhile" in result.output
    assert f"result: degraded: 1 of 2 servers down ({down})" in result.output
    assert "users: 1  groups: 0" in result.output


def test_ldap_test_warns_of_clear_text_bind_no_disabled_rule_and_counts_the_rest(
    cli_env, slapd, openldap
):
    db = cli_env
    people = f"ou=people,{openldap.base}"
    for n in range(12):
        openldap.user(f"nomail{n:02}", people, mail=None)
    configure(db, {"main": openldap_connector(slapd, openldap.base, disabled=None)})

    result = invoke(ldap, "test", "--org", "Acme")

    assert result.exit_code == 0, result.output
    warnings = [line for line in result.output.splitlines() if "warning: " in line]
    assert warnings[0] == (
        f"  warning: {slapd.url}: the bind password crosses the network in clear text (plain "
        "ldap:// without start_tls); use ldaps:// or set start_tls: true"
    )
    assert warnings[1].startswith(
        "  warning: no `disabled:` rule: accounts disabled in the directory are provisioned as "
        "active; set disabled: {attribute: ATTRIBUTE, values: [VALUE, ...]}"
    )
    assert len(warnings) == 10  # 2 above and 12 skipped users: 10 shown, then a count
    assert "  ... 4 more warning(s)" in result.output

    # With StartTLS and a disabled rule, neither warning.
    with cli_env.transaction() as session:
        from gateway.store.models import Organization

        org = session.get(Organization, _org_id(db))
        doc = copy.deepcopy(org.settings)
        main = doc["ldap_connectors"]["connectors"]["main"]
        main.update(
            start_tls=True,
            disabled={"attribute": "employeeType", "values": ["disabled"]},
            tls={"ca_file": str(slapd.cert)},
        )
        org.settings = doc
    quiet = invoke(ldap, "test", "--org", "Acme")
    assert quiet.exit_code == 0, quiet.output
    assert "clear text" not in quiet.output and "disabled:" not in quiet.output


def test_ldap_test_size_limit_says_to_lower_page_size(cli_env, tmp_path, monkeypatch):
    from ldap_servers import Slapd, slapd_missing

    if slapd_missing():
        pytest.skip(slapd_missing())
    server = Slapd(tmp_path / "limited", size_limit=2)
    server.start()
    try:
        entries = [
            f"dn: {server.suffix}\nobjectClass: dcObject\nobjectClass: organization\n"
            "o: Example\ndc: example\n"
        ]
        entries += [
            f"dn: uid=u{n},{server.suffix}\nobjectClass: inetOrgPerson\nuid: u{n}\ncn: U\nsn: U\n"
            f"mail: u{n}@example.org\nuserPassword: reader-pw\n"
            for n in range(5)
        ]
        server.ldap("ldapadd", "\n".join(entries))
        doc = openldap_connector(
            server,
            server.suffix,
            user_base=server.suffix,
            group_base=server.suffix,
            bind={"user": f"uid=u0,{server.suffix}", "password_env": "READER_PW"},
            page_size=10,
        )
        configure(cli_env, {"main": doc})
        monkeypatch.setenv("READER_PW", "reader-pw")
        result = invoke(ldap, "test", "--org", "Acme")
    finally:
        server.stop()
    assert result.exit_code == 1
    assert "FAIL user filter: search of users under" in result.output
    assert "the size limit was exceeded" in result.output
    assert "set the connector's page_size below the server's size limit" in result.output


MAPPING_EMAIL = (
    'attributes:\n  ldap: {email_prefix_attribute: uid, email_suffix: "@corp.example"}\n'
)


def test_mapping_ldap_email_prefix_and_suffix_give_mailless_users_an_email(
    cli_env_both, slapd, openldap, tmp_path
):
    from gateway.provisioning.cli import mapping
    from gateway.provisioning.settings import store_mapping
    from gateway.store.models import Member

    db = cli_env_both
    people = f"ou=people,{openldap.base}"
    openldap.user("alice", people)
    openldap.user("svc", people, mail=None)
    acme = configure(db, {"main": openldap_connector(slapd, openldap.base)})
    mapping_file = tmp_path / "mapping.yaml"
    mapping_file.write_text(MAPPING_EMAIL)
    stored = invoke(mapping, "set", "--org", "Acme", str(mapping_file), "--apply")
    assert stored.exit_code == 0, stored.output

    tested = invoke(ldap, "test", "--org", "Acme")
    assert "users: 2  groups: 0" in tested.output and "user svc@corp.example" in tested.output
    run = invoke(sync, "run", "--org", "Acme")
    assert run.exit_code == 0, run.output
    assert "users added (2)" in run.output and "svc@corp.example" in run.output
    with db.read() as session:
        members = {
            m.email_lower: m.status
            for m in session.scalars(select(Member).where(Member.org_id == acme))
        }
    assert members == {"alice@example.org": "invited", "svc@corp.example": "invited"}

    # The scheduler reads the mapping too; a connector's own email_suffix wins over it.
    globex = configure(
        db,
        {"main": openldap_connector(slapd, openldap.base, email_suffix="own.example")},
        org_name="Globex",
    )
    with db.transaction() as session:
        store_mapping(session, globex, MAPPING_EMAIL, "admin:test")
    (outcome,) = [o for o in run_due_connectors(db, None) if o.org_id == globex]
    assert outcome.error is None
    assert set(DirectoryState(db, globex).users) == {"alice@example.org", "svc@own.example"}

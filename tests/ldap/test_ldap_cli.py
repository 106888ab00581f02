"""`scimgate ldap ...` / `scimgate sync ...`, the configuration file, and the scheduler."""

from __future__ import annotations

import copy
from datetime import timedelta

import pytest
import yaml
from click.testing import CliRunner
from conftest import DirectoryState, configure, connector, openldap_connector

from connectors.ldap.cli import ldap, sync
from connectors.ldap.config import load_yaml
from connectors.ldap.schedule import ConnectorBusy, connector_lock, run_due_connectors
from gateway.errors import InvalidInput
from gateway.store.models import utcnow


@pytest.fixture
def cli_env(sqlite_database, tmp_path, monkeypatch):
    monkeypatch.setenv("GATEWAY_DATABASE_URL", sqlite_database.url)
    monkeypatch.setenv("GATEWAY_DATA_DIR", str(tmp_path / "data"))
    monkeypatch.setenv("GATEWAY_SECRET_KEY", "test-secret-key-0123456789")
    return sqlite_database


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
    assert "connectors.corp.bind.password: Unknown field." in message
    assert "connectors.corp.page_size:" in message
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
        cfg.user_base == "OU=Staff,DC=corp"
        and cfg.interval == 600
        and cfg.full_sync_interval == 86400
    )
    assert cfg.attributes.unique_id == "objectGUID" and cfg.tls_verify is True
    assert "objectGUID" in cfg.user_attributes() and "*" not in cfg.user_attributes()


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

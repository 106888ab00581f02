"""`sync plan` / `sync run` read as a summary against a real slapd: a table of counts by kind
(what the Plan invites, updates, revokes, restores, adds to and removes from groups, grants and
revokes, and what the guard holds) first, then the changes by kind, capped with --limit / --all,
everything with --json; a run prints the same after applying, with what was held and why, and
exits 3. A failing run prints its error once. Each run is an event of its own and a sample of the
sync-duration histogram in /metrics; `sync history` shows a run's warnings."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys

import pytest
from click.testing import CliRunner
from conftest import configure, openldap_connector
from sqlalchemy import select

from connectors.ldap.cli import sync
from gateway.provisioning.cli import mapping, plan
from gateway.store.models import Event, Member

MAPPING = "collections:\n  - {group: engineering, collections: [Source code], permission: edit}\n"


@pytest.fixture
def cli_env(database, tmp_path, monkeypatch):
    monkeypatch.setenv("GATEWAY_DATABASE_URL", database.url)
    monkeypatch.setenv("GATEWAY_DATA_DIR", str(tmp_path / "data"))
    monkeypatch.setenv("GATEWAY_SECRET_KEY", "test-secret-key-0123456789")
    return database


def invoke(group, *args: str):
    return CliRunner().invoke(group, list(args), catch_exceptions=False)


def squashed(output: str) -> str:
    """The output with every run of white space (alignment, line breaks) as one space."""
    return re.sub(r"\s+", " ", output)


def table(output: str) -> dict[str, int]:
    """The summary table's rows: label -> count (the one organization's column)."""
    rows = {}
    lines = output.splitlines()
    start = next(i for i, line in enumerate(lines) if line.strip().startswith("Changes  "))
    for line in lines[start + 1 :]:
        match = re.fullmatch(r"\s*([a-z ]+?)\s+(\d+)", line)
        if not match:
            break
        rows[match.group(1)] = int(match.group(2))
    return rows


def acme(db, slapd, openldap, n: int) -> tuple[str, list[str]]:
    """`n` users in `engineering` (mapped to a collection) and a user without e-mail."""
    from gateway.provisioning.engine import set_mapping
    from gateway.store.models import Organization

    people, groups = f"ou=people,{openldap.base}", f"ou=groups,{openldap.base}"
    openldap.ou("elsewhere")
    dns = [openldap.user(f"user{i:02}", people) for i in range(n)]
    openldap.user("nomail", people, mail=None)
    openldap.group("engineering", groups, dns)
    org_id = configure(db, {"main": openldap_connector(slapd, openldap.base)})
    with db.transaction() as session:
        set_mapping(
            session, session.get(Organization, org_id), MAPPING, "admin:test", apply_now=True
        )
    return org_id, dns


def statuses(db, org_id: str) -> dict[str, str]:
    with db.read() as session:
        return {
            m.email_lower: m.status
            for m in session.scalars(select(Member).where(Member.org_id == org_id))
        }


EMPTY = {
    "invites": 0,
    "updates": 0,
    "revokes": 0,
    "restores": 0,
    "group adds": 0,
    "group removes": 0,
    "collection grants": 0,
    "collection revocations": 0,
    "groups and collections": 0,
    "held": 0,
}


def test_sync_plan_and_run_start_with_a_summary_then_the_changes_by_kind(cli_env, slapd, openldap):
    db = cli_env
    org_id, _ = acme(db, slapd, openldap, 25)

    planned = invoke(sync, "plan", "--org", "Acme")
    assert planned.exit_code == 0, planned.output
    first = {
        **EMPTY,
        "invites": 25,
        "group adds": 25,
        "collection grants": 1,
        "groups and collections": 2,  # the group engineering and the collection Source code
    }
    assert table(planned.output) == first
    shown = squashed(planned.output)
    assert shown.index("Changes Acme") < shown.index("Invites (25):")
    invites = shown.split("Invites (25):")[1].split("Group adds")[0]
    assert invites.count("member.invite") == 20 and "... 5 more (use --all)" in invites
    assert "member.invite member user00@example.org role user" in invites
    assert "group.add_member group engineering + user24@example.org" not in shown
    assert "Collection grants (1): access.grant group engineering Source code: edit" in shown
    assert planned.output.count("skipped uid=nomail") == 1  # the directory's warning
    assert statuses(db, org_id) == {}

    limited = invoke(sync, "plan", "--org", "Acme", "--limit", "3").output
    assert limited.count("member.invite") == 3 and "... 22 more (use --all)" in limited
    everything = invoke(sync, "plan", "--org", "Acme", "--all").output
    assert everything.count("member.invite") == 25 and "more (use --all)" not in everything

    data = json.loads(invoke(sync, "plan", "--org", "Acme", "--json", "--limit", "1").output)
    summary = data["summary"]
    assert summary["org"] == "Acme" and summary["counts"]["invites"] == 25
    assert len(summary["changes"]["invites"]) == 25  # JSON is never cut
    assert {c["email"] for c in summary["changes"]["group_adds"]} == {
        f"user{i:02}@example.org" for i in range(25)
    }
    assert summary["held"] == {"count": 0, "reason": None, "changes": []}

    run = invoke(sync, "run", "--org", "Acme")
    assert run.exit_code == 0, run.output
    assert table(run.output) == first  # what was applied
    assert list(statuses(db, org_id).values()) == ["invited"] * 25

    again = invoke(sync, "run", "--org", "Acme")
    assert again.exit_code == 0, again.output
    assert "No changes: the organization matches its directory and mapping." in again.output


def test_run_summary_says_what_was_held_and_why_and_exits_3(cli_env, slapd, openldap):
    db = cli_env
    org_id, dns = acme(db, slapd, openldap, 40)
    assert invoke(sync, "run", "--org", "Acme").exit_code == 0
    for dn in dns[:20]:  # as a broken read ACL would: half the users vanish from the read
        openldap.rename(dn, dn.split(",", 1)[0], f"ou=elsewhere,{openldap.base}")

    planned = invoke(sync, "plan", "--org", "Acme", "--full")
    assert planned.exit_code == 0, planned.output
    assert table(planned.output) == {**EMPTY, "held": 20}
    assert (
        "Held if applied (the guard) (20): 20 deprovisionings in one plan exceed both 5 and 10% "
        "of 40 members; all 20 of this plan held for approval" in planned.output
    )

    run = invoke(sync, "run", "--org", "Acme", "--full")
    assert run.exit_code == 3, run.output
    summary = table(run.output)
    assert summary["revokes"] == 0 and summary["group removes"] == 0
    assert summary["held"] == 20
    assert "Held, not applied (20): 20 deprovisionings in one plan exceed" in run.output
    assert "member.revoke member user00@example.org" in squashed(run.output)
    assert "revoked" not in statuses(db, org_id).values()

    again = invoke(sync, "run", "--org", "Acme", "--json")
    assert again.exit_code == 3  # the holds still wait: a scheduler is told every time
    data = json.loads(again.output)
    assert data["status"] == "succeeded" and data["pending_holds"] == 20
    assert data["summary"]["pending_holds"] == 20 and data["summary"]["counts"]["held"] == 0


def test_plan_and_mapping_set_show_the_same_summary(cli_env, slapd, openldap, tmp_path):
    db = cli_env
    acme(db, slapd, openldap, 3)
    assert invoke(sync, "run", "--org", "Acme").exit_code == 0
    assert invoke(plan, "--org", "Acme").output.startswith("No changes")
    more = tmp_path / "more.yaml"
    more.write_text(MAPPING + "  - {group: engineering, collections: [Wiki], permission: view}\n")
    dry = invoke(mapping, "set", "--org", "Acme", str(more))
    assert dry.exit_code == 0, dry.output
    assert table(dry.output) == {**EMPTY, "collection grants": 1, "groups and collections": 1}
    assert "access.grant group engineering Wiki: view" in squashed(dry.output)


def scimgate(*args: str, env: dict) -> subprocess.CompletedProcess:
    """The real command, in its own process: what a cron job's mail would show."""
    return subprocess.run(
        [sys.executable, "-m", "gateway.cli", *args],
        env={**os.environ, **env},
        capture_output=True,
        text=True,
        timeout=120,
    )


def test_a_failing_run_prints_its_error_once(cli_env, slapd, openldap, tmp_path):
    db = cli_env
    base = openldap.base
    configure(
        db,
        {
            "badpw": openldap_connector(
                slapd, base, bind={"user": slapd.root_dn, "password_env": "WRONG_PW"}
            ),
            "down": openldap_connector(slapd, base, servers=["ldap://127.0.0.1:1"]),
        },
    )
    env = {
        "GATEWAY_DATABASE_URL": db.url,
        "GATEWAY_DATA_DIR": str(tmp_path / "data"),
        "GATEWAY_SECRET_KEY": "test-secret-key-0123456789",
        "WRONG_PW": "not-the-password",
    }
    for name, error in (
        ("badpw", "refused the credentials of 'cn=admin,dc=example,dc=org'"),
        ("down", "cannot connect to 127.0.0.1:1"),
    ):
        for command in ("run", "plan"):
            done = scimgate("sync", command, "--org", "Acme", "--connector", name, env=env)
            assert done.returncode == 1, done.stderr
            shown = done.stdout + done.stderr
            assert shown.count(error) == 1, shown
            assert f"Connector {name}: the sync failed and changed nothing" in done.stderr


def metric(client, name: str, **labels: str) -> float:
    """A sample's value in the app's /metrics (0 when the series does not exist yet)."""
    text = client.get("/metrics").get_data(as_text=True)
    for line in text.splitlines():
        if line.startswith(f"{name}{{") and all(f'{k}="{v}"' in line for k, v in labels.items()):
            return float(line.rsplit(" ", 1)[1])
    return 0.0


def test_each_run_is_an_event_and_a_sample_in_metrics(
    cli_env, slapd, openldap, client, monkeypatch
):
    db = cli_env
    acme(db, slapd, openldap, 4)
    count = "scimgate_sync_run_duration_seconds_count"
    succeeded = metric(client, count, kind="full", status="succeeded")
    failed = metric(client, count, kind="delta", status="failed")

    assert invoke(sync, "plan", "--org", "Acme").exit_code == 0  # a dry run: no event, no sample
    assert invoke(sync, "run", "--org", "Acme").exit_code == 0
    assert metric(client, count, kind="full", status="succeeded") == succeeded + 1
    with db.read() as session:
        (done,) = session.scalars(select(Event).where(Event.type.like("sync.%"))).all()
    assert (done.type, done.actor, done.target_id) == ("sync.completed", "ldap:main", "main")
    detail = done.detail
    assert detail["kind"] == "full" and detail["counts"]["invites"] == 4
    assert detail["counts"]["group_adds"] == 4 and detail["held"] == 0
    assert detail["duration_seconds"] >= 0 and detail["started_at"] < detail["finished_at"]
    assert detail["warning_count"] == 1 and "no e-mail" in detail["warnings"][0]

    monkeypatch.setenv("SCIMGATE_TEST_SLAPD_PW", "wrong")
    assert invoke(sync, "run", "--org", "Acme").exit_code == 1
    assert metric(client, count, kind="delta", status="failed") == failed + 1
    with db.read() as session:
        (bad,) = session.scalars(select(Event).where(Event.type == "sync.failed")).all()
    assert "refused the credentials" in bad.detail["error"] and bad.detail["kind"] == "delta"


def test_sync_history_shows_warnings_without_json(cli_env, slapd, openldap):
    db = cli_env
    acme(db, slapd, openldap, 2)
    assert invoke(sync, "run", "--org", "Acme").exit_code == 0
    history = invoke(sync, "history", "--org", "Acme").output
    assert "Warnings" in history.splitlines()[0]
    assert "skipped uid=nomail" in history and "no e-mail (mail) and no e-mail fallback" in history


def test_a_scheduled_run_that_fails_is_logged_once(cli_env, slapd, openldap, caplog):
    """The worker has no terminal: its log says it, once, naming the organization."""
    from connectors.ldap.schedule import run_due_connectors

    db = cli_env
    configure(
        db, {"down": openldap_connector(slapd, openldap.base, servers=["ldap://127.0.0.1:1"])}
    )
    (outcome,) = run_due_connectors(db)
    assert "cannot connect to 127.0.0.1:1" in outcome.error
    failures = [r.getMessage() for r in caplog.records if "cannot connect" in r.getMessage()]
    assert len(failures) == 1 and failures[0].startswith("LDAP connector down of Acme: the run")

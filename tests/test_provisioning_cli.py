"""`scimgate mapping check|show|set|settings` and `scimgate plan`, as an admin uses them."""

from __future__ import annotations

import json

from test_provisioning_guard import cli_runner
from test_provisioning_rules import create_group, create_user, members

GOOD = """\
collections:
  - {group: Marketing, collections: [Social Media], permission: edit}
"""


def test_mapping_check_reports_each_problem_with_its_line(tmp_path, database):
    run = cli_runner(database, tmp_path)
    bad = tmp_path / "bad.yaml"
    bad.write_text("collections:\n  - {group: Marketing, permission: write}\n")
    result = run("mapping", "check", str(bad))
    assert result.exit_code == 1
    assert "line 2: collections[0].collections: is required" in result.output
    assert "line 2: collections[0].permission: must be one of view" in result.output
    good = tmp_path / "good.yaml"
    good.write_text(GOOD)
    assert run("mapping", "check", str(good)).output.strip() == f"{good}: the mapping is valid."


def test_mapping_set_prints_the_plan_and_applies_only_with_apply(scim, database, tmp_path):
    run = cli_runner(database, tmp_path)
    ann = create_user(scim, "ann@acme.com")
    create_group(scim, "Marketing", ann)
    path = tmp_path / "acme.yaml"
    path.write_text(GOOD)

    dry = run("mapping", "set", "--org", "Acme", str(path))
    assert dry.exit_code == 0, dry.output
    assert "collection.create  collection Social Media" in dry.output
    assert "access.grant       group Marketing" in dry.output
    assert "Dry run: nothing changed" in dry.output
    assert "# No mapping set" in run("mapping", "show", "--org", "Acme").output

    applied = json.loads(
        run("mapping", "set", "--org", "Acme", str(path), "--apply", "--json").output
    )
    assert applied["applied"] is True
    assert applied["counts"] == {"access.grant": 1, "collection.create": 1}
    assert run("mapping", "show", "--org", "Acme").output.startswith(GOOD)
    shown = json.loads(run("mapping", "show", "--org", "Acme", "--json").output)
    assert shown["mapping"]["collections"][0]["permission"] == "edit"

    assert run("plan", "--org", "Acme").output.startswith("No changes")
    assert json.loads(run("plan", "--org", "Acme", "--json").output)["changes"] == []


def test_plan_apply_and_settings_from_the_command_line(scim, database, tmp_path):
    run = cli_runner(database, tmp_path)
    create_user(scim, "ann@acme.com")
    result = run(
        "mapping",
        "settings",
        "--org",
        "Acme",
        "--deprovision",
        "remove",
        "--guard-count",
        "10",
        "--json",
    )
    assert json.loads(result.output)["deprovision"] == "remove"
    scope = tmp_path / "scope.yaml"
    scope.write_text("scope: {groups: [Staff]}\n")
    result = run("mapping", "set", "--org", "Acme", str(scope), "--apply")
    assert "member.remove  member ann@acme.com  not in a scope group" in result.output
    assert members(database, scim.org_id) == {}
    assert "No changes" in run("plan", "--org", "Acme", "--apply").output

"""`scimgate admin create|list|confirm|key` and `scimgate doctor`."""

from __future__ import annotations

import json

import click
from click.testing import CliRunner

from gateway.admin.cli import register


def cli(database, tmp_path):
    group = click.Group("scimgate")
    register(group)
    env = {
        "GATEWAY_DATABASE_URL": database.url,
        "GATEWAY_DATA_DIR": str(tmp_path / "data"),
        "GATEWAY_PUBLIC_URL": "https://scim.example.test",
    }

    def run(*args: str, stdin: str | None = None):
        return CliRunner().invoke(group, list(args), env=env, input=stdin)

    return run


def test_admin_create_makes_a_provider_admin_who_can_get_an_api_key(database, tmp_path):
    run = cli(database, tmp_path)
    result = run(
        "admin", "create", "ops@msp.example", "--password-stdin", stdin="long password 123\n"
    )
    assert result.exit_code == 0, result.output
    assert "Sign in at https://scim.example.test/console/" in result.output
    listing = json.loads(run("admin", "list", "--json").output)
    assert [(a["email"], a["role"], a["status"]) for a in listing] == [
        ("ops@msp.example", "provider_admin", "confirmed")
    ]
    key = run("admin", "key", "ops@msp.example").output.strip()
    assert key.startswith("sga_")
    again = run(
        "admin", "create", "OPS@msp.example", "--password-stdin", stdin="long password 123\n"
    )
    assert again.exit_code == 1 and "exists already" in again.output
    short = run("admin", "create", "b@msp.example", "--password-stdin", stdin="short\n")
    assert short.exit_code == 1 and "at least 12 characters" in short.output


def test_doctor_reports_each_check_and_fails_without_a_provider_admin(database, tmp_path):
    run = cli(database, tmp_path)
    result = run("doctor")
    assert result.exit_code == 1
    assert "ok    database: " in result.output
    assert "FAIL  provider admins: no provider admin" in result.output
    assert "warn  smtp: GATEWAY_SMTP_HOST is not set" in result.output
    for email in ("a@msp.example", "b@msp.example"):
        run("admin", "create", email, "--password-stdin", stdin="long password 123\n")
    checks = {c["name"]: c["status"] for c in json.loads(run("doctor", "--json").output)}
    assert checks["provider admins"] == "ok"
    assert run("doctor").exit_code == 0

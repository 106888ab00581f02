"""The confirmation queue: accepted members wait with their fingerprint phrase; an admin confirms
them through the CLI or the admin API (one service function); auto-confirm rules confirm at once
and record the rule; invalid transitions are clear errors."""

from __future__ import annotations

import json

import pytest
from sqlalchemy import select
from test_lifecycle_servers import SECRET_KEY, cli
from test_provisioning_rules import add_members, create_group, create_user

from gateway import lifecycle
from gateway.errors import InvalidTransition
from gateway.lifecycle.fingerprint import fingerprint_phrase
from gateway.lifecycle.invitations import accept_invitation, invitation_token
from gateway.lifecycle.settings import add_rule
from gateway.store.models import Event, Member, Organization, utcnow

KEY = "MIIBIjANBgkqhkiG9w0BAQEFAAOCAQ8AMIIBCgKCAQEAw7Zx"


def accept(database, email: str, public_key: str | None = KEY) -> Member:
    """The member follows the link in their mail (the token as the mailer signs it)."""
    from datetime import timedelta

    with database.transaction() as session:
        m = session.scalar(select(Member).where(Member.email_lower == email))
        token = invitation_token(SECRET_KEY, m.id, m.invitation_nonce, utcnow() + timedelta(days=1))
        return accept_invitation(session, SECRET_KEY, token, public_key=public_key).member


def status(database, email: str) -> tuple[str, str | None]:
    with database.read() as session:
        m = session.scalar(select(Member).where(Member.email_lower == email))
        return m.status, m.confirmed_by


def test_fingerprint_phrase_is_words_from_the_keys_sha256():
    phrase = fingerprint_phrase(KEY)
    assert len(phrase.split("-")) == 6
    assert fingerprint_phrase(KEY) == phrase  # stable
    pem = "-----BEGIN PUBLIC KEY-----\n" + KEY[:20] + "\n" + KEY[20:] + "\n-----END PUBLIC KEY-----"
    assert fingerprint_phrase(pem) == phrase  # same key, other wrapping
    assert fingerprint_phrase(KEY[:-1] + "y") != phrase
    assert fingerprint_phrase(None) is None


def test_cli_lists_the_queue_with_fingerprints_and_confirms(scim, database, tmp_path):
    create_user(scim, "ann@acme.example")
    create_user(scim, "bob@acme.example")
    create_user(scim, "cy@acme.example")
    accept(database, "ann@acme.example")
    accept(database, "bob@acme.example", public_key=None)

    queue = cli(database, tmp_path, "members", "list", "--org", "Acme", "--status", "accepted")
    assert queue.exit_code == 0, queue.output
    lines = queue.output.splitlines()
    assert lines[0].split() == ["E-mail", "Name", "Accepted", "Fingerprint", "phrase"]
    assert "ann@acme.example" in lines[1] and fingerprint_phrase(KEY) in lines[1]
    assert "bob@acme.example" in lines[2] and lines[2].rstrip().endswith("-")
    as_json = json.loads(
        cli(database, tmp_path, "members", "list", "--org", "Acme", "--status", "accepted",
            "--json").output
    )  # fmt: skip
    assert [r["fingerprint_phrase"] for r in as_json] == [fingerprint_phrase(KEY), None]

    one = cli(database, tmp_path, "members", "confirm", "--org", "Acme", "ann@acme.example")
    assert one.output.strip() == "confirm: 1 done"
    assert status(database, "ann@acme.example") == ("confirmed", "admin:cli")

    invited = cli(database, tmp_path, "members", "confirm", "--org", "Acme", "cy@acme.example")
    assert invited.exit_code == 1
    assert "cy@acme.example: cy@acme.example is invited; only members who accepted" in (
        invited.output
    )
    assert status(database, "cy@acme.example")[0] == "invited"

    rest = cli(database, tmp_path, "members", "confirm", "--org", "Acme", "--all")
    assert rest.output.strip() == "confirm: 1 done"
    assert status(database, "bob@acme.example")[0] == "confirmed"
    nobody = cli(database, tmp_path, "members", "confirm", "--org", "Acme", "--all")
    assert nobody.output.strip() == "No accepted members in Acme."
    unknown = cli(database, tmp_path, "members", "confirm", "--org", "Acme", "zed@acme.example")
    assert unknown.exit_code == 1 and "Acme has no member zed@acme.example" in unknown.output


def test_admin_api_shows_fingerprints_and_confirms_with_the_same_action(
    app, scim, database, tmp_path
):
    from gateway.accounts import create_admin, issue_api_key

    with database.transaction() as session:
        admin = create_admin(
            session, "ops@msp.example", role="provider_admin", password="correct horse battery"
        )
        key = issue_api_key(session, admin.id, description="t").secret
    headers = {"Authorization": f"Bearer {key}"}
    client = app.test_client()
    create_user(scim, "ann@acme.example")
    create_user(scim, "bob@acme.example")
    ann = accept(database, "ann@acme.example")

    (queued,) = client.get(f"/api/v1/orgs/{scim.org_id}/confirmations", headers=headers).json
    assert queued["member"]["email"] == "ann@acme.example"
    assert queued["fingerprint_phrase"] == fingerprint_phrase(KEY)

    with database.read() as session:
        bob = session.scalar(select(Member.id).where(Member.email_lower == "bob@acme.example"))
    response = client.post(
        f"/api/v1/orgs/{scim.org_id}/members/actions",
        headers=headers,
        json={"action": "confirm", "member_ids": [ann.id, bob]},
    )
    assert response.status_code == 200, response.json
    assert response.json["done"] == ["ann@acme.example"]
    (skipped,) = response.json["skipped"]
    assert skipped["member"] == "bob@acme.example" and "is invited" in skipped["reason"]
    assert status(database, "ann@acme.example") == ("confirmed", f"admin:{admin.id}")
    listed = client.get(
        f"/api/v1/orgs/{scim.org_id}/members?status=confirmed", headers=headers
    ).json
    assert listed["members"][0]["confirmed_by"] == f"admin:{admin.id}"


def test_invalid_transitions_are_clear_errors(scim, database):
    create_user(scim, "ann@acme.example")
    with database.transaction() as session:
        org = session.get(Organization, scim.org_id)
        m = session.scalar(select(Member))
        with pytest.raises(InvalidTransition, match="is invited; only members who accepted"):
            lifecycle.confirm(session, m, "admin:x")
        with pytest.raises(InvalidTransition, match=r"ann@acme\.example is invited, not revoked"):
            lifecycle.restore(session, org, m, "admin:x")
        lifecycle.revoke(session, m, "admin:x")
        with pytest.raises(InvalidTransition, match="only invited members get an invitation"):
            lifecycle.resend_invitation(session, org, m, "admin:x")


def test_auto_confirm_rules_confirm_at_once_and_record_the_rule(scim, database, tmp_path):
    added = cli(database, tmp_path, "members", "rules", "add", "--org", "Acme", "staff",
                "--domain", "acme.example", "--source", "scim", "--group", "Staff")  # fmt: skip
    assert added.exit_code == 0, added.output
    listed = cli(database, tmp_path, "members", "rules", "--org", "Acme")
    assert "staff" in listed.output and "acme.example" in listed.output
    staff = create_group(scim, "Staff")
    ann = create_user(scim, "ann@acme.example")
    create_user(scim, "bob@acme.example")  # right domain, not in the group
    create_user(scim, "eve@other.example")
    add_members(scim, staff, ann)
    for email in ("ann@acme.example", "bob@acme.example", "eve@other.example"):
        accept(database, email)
    assert status(database, "ann@acme.example") == ("confirmed", "rule:staff")
    assert status(database, "bob@acme.example")[0] == "accepted"
    assert status(database, "eve@other.example")[0] == "accepted"
    with database.read() as session:
        event = session.scalar(select(Event).where(Event.type == "member.confirmed"))
    assert (event.actor, event.detail["rule"]) == ("system", "staff")

    with database.transaction() as session:
        add_rule(
            session, session.get(Organization, scim.org_id), "ldap", actor="t", source="ldap:*"
        )
    removed = cli(database, tmp_path, "members", "rules", "remove", "--org", "Acme", "staff")
    assert removed.exit_code == 0
    create_user(scim, "dan@acme.example")
    accept(database, "dan@acme.example")
    assert status(database, "dan@acme.example")[0] == "accepted"  # a scim member: no rule holds
    empty = cli(database, tmp_path, "members", "rules", "add", "--org", "Acme", "x")
    assert empty.exit_code == 1 and "needs a source, an e-mail domain or a group" in empty.output

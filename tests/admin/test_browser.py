"""The console in a real browser (Playwright driving Debian's Chromium, one browser per session):
sign in, approve a held deprovision, read a mapping's Plan and apply it, rotate a SCIM token,
export the event log, accept an invitation and confirm the member; screenshots of the main pages
are saved under tests/admin/screenshots/."""

from __future__ import annotations

import csv
import email
import email.policy
import io
import re
from pathlib import Path

from browser import organization, shot, sign_in
from scenario import (
    accepted,
    deactivate,
    hold_everything,
    make_admin,
    scim_user,
)
from sqlalchemy import select

from gateway.store.models import Member

SALES_DEALS = "collections:\n  - {group: Sales, collections: [Deals], permission: edit}\n"


def show_mapping_plan(page, tmp_path, text: str) -> None:
    """Upload a mapping on the organization's Mapping tab and open its Plan."""
    mapping_file = tmp_path / "mapping.yaml"
    mapping_file.write_text(text)
    page.click("nav.tabs >> text=Mapping")
    page.set_input_files("input[name=file]", str(mapping_file))
    page.click("button:has-text('Show the Plan')")


def test_console_journey_in_a_browser(page, database, live_console, tmp_path):
    make_admin(database, "ops@msp.example")
    make_admin(database, "backup@msp.example")
    scim = organization(database, live_console)
    hold_everything(database, scim.org_id)
    ann = scim_user(scim, "ann@acme.example")
    scim_user(scim, "bob@acme.example")
    group = {
        "schemas": ["urn:ietf:params:scim:schemas:core:2.0:Group"],
        "displayName": "Sales",
        "members": [{"value": ann}],
    }
    assert scim.post("/Groups", json=group).status_code == 201
    accepted(database, scim.org_id, "bob@acme.example")
    deactivate(scim, ann)

    sign_in(page, "ops@msp.example")
    assert page.locator("#clients tbody tr").count() == 1
    shot(page, "clients")

    page.click("text=Acme")
    page.wait_for_selector("#members")
    shot(page, "members")
    page.click("nav.tabs >> text=Confirmations")
    page.wait_for_selector("#confirmations")
    shot(page, "confirmations")

    # Approve the held deprovision of ann.
    page.click("nav.tabs >> text=Held deprovisions")
    assert "ann@acme.example" in page.inner_text("#held")
    shot(page, "held")
    page.click("#held >> button:has-text('Approve')")
    assert "is applied" in page.inner_text(".flash")
    with database.read() as session:
        status = session.scalar(select(Member.status).where(Member.email == "ann@acme.example"))
    assert status == "revoked"

    # Upload a mapping, read its Plan, apply it.
    show_mapping_plan(page, tmp_path, SALES_DEALS)
    assert "Deals" in page.inner_text("#plan")
    shot(page, "mapping-plan")
    page.click("button:has-text('Apply this mapping')")
    assert "Mapping applied" in page.inner_text(".flash")

    # Rotate the SCIM token: the new one is shown once and works, the old one does not.
    page.click("nav.tabs >> text=SCIM")
    page.click("#tokens >> button:has-text('Rotate')")
    page.click("#confirm-step >> button:has-text('Rotate')")
    secret = page.inner_text("#issued-token code").strip()
    shot(page, "scim")
    assert scim.get("/Users").status_code == 401
    scim.token = secret
    assert scim.get("/Users").status_code == 200

    page.click("nav.tabs >> text=LDAP")
    shot(page, "ldap")

    # Export the event log.
    page.click("nav.tabs >> text=Event log")
    shot(page, "events")
    with page.expect_download() as download:
        page.click("#export-csv")
    rows = list(csv.DictReader(io.StringIO(Path(download.value.path()).read_text())))
    types = {r["type"] for r in rows}
    assert {"provisioning.held_approved", "mapping.set", "token.revoked"} <= types

    page.click("header >> text=Readiness")
    assert "provider admins" in page.inner_text("#readiness")
    shot(page, "readiness")
    page.click("header >> text=Accounts")
    shot(page, "accounts")
    page.click("button:has-text('Sign out')")
    page.wait_for_url("**/console/login")


def test_an_invited_member_accepts_and_an_admin_confirms_in_a_browser(page, database, live_console):
    """The whole invitation: the worker writes the mail, the member opens its link and accepts
    with a public key, the admin compares the fingerprint phrase in the queue and confirms."""
    from gateway.outbox.worker import load_handlers, run_round

    app, url = live_console
    config = app.extensions["scimgate"].config
    make_admin(database, "ops@msp.example")
    scim = organization(database, live_console)
    scim_user(scim, "bob@acme.example")
    load_handlers()
    run_round(database, config)  # no SMTP configured: the mail is an .eml file
    (eml,) = (config.data_dir / "mail").glob("*.eml")
    mail = email.message_from_bytes(eml.read_bytes(), policy=email.policy.default)
    text = mail.get_body(preferencelist=("plain",)).get_content()
    link = re.search(r"http://\S+/invite/[A-Za-z0-9._-]+", text).group(0)
    assert link.startswith(url)

    page.goto(link)
    assert "Join Acme" in page.inner_text("h1")
    assert page.inner_text("#invite-email") == "bob@acme.example"
    shot(page, "invitation")
    page.fill("#public_key", "MIIBIjANBgkqhkiG9w0BAQEFAAOCAQ8AMIIBCgKCAQEAbrowser")
    page.click("button:has-text('Accept the invitation')")
    assert "You joined Acme" in page.inner_text("#accepted")
    phrase = page.inner_text("#fingerprint")
    page.goto(link)  # the link worked once
    assert "used already" in page.inner_text("#invalid")

    sign_in(page, "ops@msp.example")
    page.goto(f"/console/orgs/{scim.org_id}/confirmations")
    assert phrase in page.inner_text("#confirmations")
    shot(page, "confirmations-queue")
    page.check("#confirmations input[type=checkbox]")
    page.click("button:has-text('Confirm selected')")
    assert "confirm: 1 done" in page.inner_text(".flash")
    with database.read() as session:
        status = session.scalar(select(Member.status).where(Member.email == "bob@acme.example"))
    assert status == "confirmed"


def test_bulk_approve_and_drop_of_held_changes_with_a_confirmation(page, database, live_console):
    make_admin(database, "ops@msp.example")
    scim = organization(database, live_console)
    hold_everything(database, scim.org_id)
    for address in ("ann@acme.example", "amy@acme.example", "bob@acme.example"):
        deactivate(scim, scim_user(scim, address))
    sign_in(page, "ops@msp.example")
    page.goto(f"/console/orgs/{scim.org_id}/held")
    page.select_option("#held-bulk select[name=kind]", "revoke")
    page.fill("#held-bulk input[name=email_prefix]", "a")
    page.click("#held-bulk button:has-text('Approve all matching')")
    # The confirmation step says what will happen and to how many; nothing happened yet.
    confirm = page.inner_text("#held-confirm")
    assert "Approve 2 held change(s)?" in confirm
    assert "kind revoke, member e-mail starting 'a'" in confirm
    assert "ann@acme.example" in confirm and "bob@acme.example" not in confirm
    shot(page, "held-bulk-confirm")
    with database.read() as session:
        assert "revoked" not in set(session.scalars(select(Member.status)))
    page.click("#held-confirm button:has-text('Approve 2 held change(s)')")
    assert "Approved 2 held change(s): applied." in page.inner_text(".flash")
    # Drop is the destructive-looking choice, confirmed the same way.
    page.click("#held-bulk button:has-text('Drop all matching')")
    button = page.locator("#held-confirm button:has-text('Drop 1 held change(s)')")
    assert "danger" in button.get_attribute("class")
    assert "the members stay as they are" in page.inner_text("#held-confirm")
    button.click()
    assert "Dropped 1 held change(s)" in page.inner_text(".flash")
    assert "Nothing is held." in page.inner_text("#held")
    with database.read() as session:
        found = dict(session.execute(select(Member.email, Member.status)).all())
    assert found == {
        "ann@acme.example": "revoked",
        "amy@acme.example": "revoked",
        "bob@acme.example": "invited",
    }


def test_a_dropped_revoke_stays_dropped_when_an_unrelated_mapping_is_applied(
    page, database, live_console, tmp_path
):
    make_admin(database, "ops@msp.example")
    scim = organization(database, live_console)
    hold_everything(database, scim.org_id)
    deactivate(scim, scim_user(scim, "ann@acme.example"))
    sign_in(page, "ops@msp.example")
    page.goto(f"/console/orgs/{scim.org_id}/held")
    page.click("#held >> button:has-text('Drop')")
    assert "the member stays as they are" in page.inner_text(".flash")
    show_mapping_plan(page, tmp_path, SALES_DEALS)
    # The Plan says why ann is left as she is, and applying it keeps her.
    body = page.inner_text("main")
    assert "member.revoke member ann@acme.example: kept: dropped by admin:" in body
    assert "member.revoke" not in page.inner_text("#plan-summary")
    page.click("button:has-text('Apply this mapping')")
    assert "Mapping applied" in page.inner_text(".flash")
    with database.read() as session:
        assert session.scalar(select(Member.status)) == "invited"

"""The console's safety in a real browser (issue #19): every form that changes something answers
with a redirect, so a reload never posts it again, and a new secret is shown once from the
server; destructive actions ask first, in red, saying what happens and to how many; a mapping
Plan that revokes says what the guard will do with it; an invalid mapping keeps the admin's
edits; confirming a member without a key warns. And what a form says to return to never sends
the browser elsewhere."""

from __future__ import annotations

import logging

import pytest
from browser import organization, shot, sign_in
from scenario import (
    PASSWORD,
    accepted,
    hold_everything,
    make_admin,
    make_org_named,
    scim_user,
)
from sqlalchemy import func, select

from gateway.store.models import (
    ApiToken,
    ConsoleSession,
    Member,
    Organization,
    WebhookEndpoint,
)

RED = "rgb(192, 57, 43)"
BLUE = "rgb(23, 93, 220)"


def live_scim_tokens(database, org_id: str) -> int:
    with database.read() as session:
        return int(
            session.scalar(
                select(func.count())
                .select_from(ApiToken)
                .where(ApiToken.org_id == org_id, ApiToken.kind == "scim")
                .where(ApiToken.revoked_at.is_(None))
            )
        )


def statuses(database, org_id: str) -> dict[str, str]:
    with database.read() as session:
        return dict(session.execute(select(Member.email, Member.status)).all())


def signed_in_at_acme(page, database, live_console, *people: str, hold: bool = False):
    """Acme with SCIM members `people` (every deprovisioning held with `hold`), and the page
    signed in as a provider admin: Acme's SCIM client."""
    make_admin(database, "ops@msp.example")
    scim = organization(database, live_console)
    if hold:
        hold_everything(database, scim.org_id)
    for name in people:
        scim_user(scim, f"{name}@acme.example")
    sign_in(page, "ops@msp.example")
    return scim


def background(page, selector: str) -> str:
    return page.eval_on_selector(selector, "e => getComputedStyle(e).backgroundColor")


def test_reloading_after_creating_a_token_posts_nothing_and_shows_the_secret_no_more(
    page, database, live_console, caplog
):
    caplog.set_level(logging.DEBUG)
    scim = signed_in_at_acme(page, database, live_console)
    page.goto(f"/console/orgs/{scim.org_id}/scim")
    page.fill("input[name=description]", "Entra")
    page.click("button:has-text('Create a token')")
    secret = page.inner_text("#issued-token code").strip()
    assert secret.startswith("sgt_")
    assert page.url.endswith(f"/console/orgs/{scim.org_id}/scim")  # a GET page: redirected
    assert live_scim_tokens(database, scim.org_id) == 2
    with database.read() as session:  # nothing of it is left on the server once shown
        assert session.scalars(select(ConsoleSession.shown_once)).all() == [None]

    page.reload()
    assert live_scim_tokens(database, scim.org_id) == 2  # the reload did not post again
    assert page.locator("#issued-token").count() == 0
    assert secret not in page.content()
    assert secret not in caplog.text


def test_rotate_add_webhook_and_create_api_key_answer_with_a_redirect(
    page, database, live_console, caplog
):
    caplog.set_level(logging.DEBUG)
    scim = signed_in_at_acme(page, database, live_console)
    shown = []

    page.goto(f"/console/orgs/{scim.org_id}/scim")
    page.click("#tokens >> button:has-text('Rotate')")
    page.click("#confirm-step >> button:has-text('Rotate')")
    shown.append(("#issued-token", page.inner_text("#issued-token code").strip()))
    assert page.url.endswith(f"/console/orgs/{scim.org_id}/scim")
    page.reload()
    assert page.locator("#issued-token").count() == 0
    assert live_scim_tokens(database, scim.org_id) == 1  # one rotation, not two

    page.goto(f"/console/orgs/{scim.org_id}/deliveries")
    page.fill("#webhook-add input[name=url]", "https://hooks.example.com/scimgate")
    page.click("button:has-text('Add endpoint')")
    shown.append(("#webhook-secret", page.inner_text("#webhook-secret > code").strip()))
    assert page.url.endswith(f"/console/orgs/{scim.org_id}/deliveries")
    page.reload()
    assert page.locator("#webhook-secret").count() == 0
    with database.read() as session:
        assert session.scalar(select(func.count()).select_from(WebhookEndpoint)) == 1

    page.goto("/console/me")
    page.click("button:has-text('Create an API key')")
    shown.append(("#issued-key", page.inner_text("#issued-key code").strip()))
    assert page.url.endswith("/console/me")
    page.reload()
    assert page.locator("#issued-key").count() == 0
    assert page.locator("#api-keys tbody tr").count() == 1

    for _, secret in shown:
        assert secret and secret not in page.content() and secret not in caplog.text


def test_revoking_members_asks_first_in_red_and_says_to_whom(page, database, live_console):
    scim = signed_in_at_acme(page, database, live_console, "ann", "bob", "cyd")
    page.goto(f"/console/orgs/{scim.org_id}/members")
    assert background(page, "button[value=confirm]") == BLUE
    assert background(page, "button[value=revoke]") == RED
    page.check("input[aria-label='select ann@acme.example']")
    page.check("input[aria-label='select bob@acme.example']")
    page.click("button[value=revoke]")

    assert page.inner_text("h1") == "Revoke 2 member(s) of Acme?"
    shot(page, "confirm-revoke")
    assert page.inner_text("#confirm-items").split() == ["ann@acme.example", "bob@acme.example"]
    assert "Restore gives it back" in page.inner_text("#confirm-step")
    assert background(page, "#confirm-step button") == RED
    assert set(statuses(database, scim.org_id).values()) == {"invited"}  # asking changed nothing
    page.click("#confirm-step >> text=Cancel")
    assert page.url.endswith(f"/console/orgs/{scim.org_id}/members")
    assert set(statuses(database, scim.org_id).values()) == {"invited"}

    page.check("input[aria-label='select ann@acme.example']")
    page.check("input[aria-label='select bob@acme.example']")
    page.click("button[value=revoke]")
    page.click("#confirm-step >> button:has-text('Revoke 2 member(s)')")
    assert "revoke: 2 done" in page.inner_text(".flash")
    assert statuses(database, scim.org_id) == {
        "ann@acme.example": "revoked",
        "bob@acme.example": "revoked",
        "cyd@acme.example": "invited",
    }

    page.check("input[aria-label='select cyd@acme.example']")
    page.click("button[value=remove]")
    assert page.inner_text("h1") == "Remove 1 member(s) from Acme?"
    assert "cannot be undone" in page.inner_text("#confirm-step")
    page.click("#confirm-step >> button:has-text('Remove 1 member(s)')")
    assert "cyd@acme.example" not in statuses(database, scim.org_id)


def test_revoking_a_token_a_webhook_and_an_api_key_asks_first(page, database, live_console):
    scim = signed_in_at_acme(page, database, live_console)

    page.goto(f"/console/orgs/{scim.org_id}/scim")
    assert background(page, "#tokens button:has-text('Revoke')") == RED
    assert background(page, "#tokens button:has-text('Rotate')") == RED
    page.click("#tokens >> button:has-text('Revoke')")
    assert page.inner_text("h1").startswith("Revoke the SCIM token sgt_")
    assert "stops provisioning Acme" in page.inner_text("#confirm-step")
    assert "0 other live token(s) of Acme keep working" in page.inner_text("#confirm-step")
    assert scim.get("/Users").status_code == 200  # asking changed nothing
    page.click("#confirm-step >> button:has-text('Revoke the token')")
    assert scim.get("/Users").status_code == 401

    page.goto(f"/console/orgs/{scim.org_id}/deliveries")
    page.fill("#webhook-add input[name=url]", "https://hooks.example.com/scimgate")
    page.click("button:has-text('Add endpoint')")
    page.click("#webhooks >> button:has-text('Remove')")
    assert "Remove the webhook endpoint https://hooks.example.com" in page.inner_text("h1")
    page.click("#confirm-step >> button:has-text('Remove the endpoint')")
    with database.read() as session:
        assert session.scalar(select(func.count()).select_from(WebhookEndpoint)) == 0

    page.goto("/console/me")
    page.click("button:has-text('Create an API key')")
    page.click("#api-keys >> button:has-text('Revoke')")
    assert page.inner_text("h1").startswith("Revoke the API key sga_")
    page.click("#confirm-step >> button:has-text('Revoke the key')")
    assert page.inner_text("#api-keys tbody tr td:nth-child(5)") == "revoked"


def _revoke_everyone_plan(page, org_id: str) -> None:
    page.goto(f"/console/orgs/{org_id}/mapping")
    page.fill("textarea[name=text]", "scope: {groups: [Staff]}\n")  # nobody is in Staff
    page.click("button:has-text('Show the Plan')")


def test_a_plan_that_revokes_says_the_guard_holds_none(page, database, live_console):
    scim = signed_in_at_acme(page, database, live_console, "ann", "bob", "cyd")
    _revoke_everyone_plan(page, scim.org_id)
    verdict = page.inner_text("#guard-verdict")
    assert "revokes or removes 3 member(s) at once" in verdict
    assert "will hold none of them" in verdict and "may hold" not in verdict
    assert "only when they are more than both 5 and 10% of the members" in verdict
    shot(page, "mapping-plan-revokes")
    apply = "button:has-text('Apply this mapping and revoke or remove 3 member(s)')"
    assert background(page, apply) == RED
    page.click(apply)
    assert "3 change(s) made" in page.inner_text(".flash")
    assert set(statuses(database, scim.org_id).values()) == {"revoked"}  # as the page said


def test_a_plan_that_revokes_says_the_guard_holds_all(page, database, live_console):
    scim = signed_in_at_acme(page, database, live_console, "ann", "bob", "cyd", hold=True)
    _revoke_everyone_plan(page, scim.org_id)
    verdict = page.inner_text("#guard-verdict")
    assert "will hold all 3 revocation(s) and removal(s) of this Plan" in verdict
    assert "revokes nobody now" in verdict
    assert background(page, "button:has-text('Apply this mapping')") == BLUE
    page.click("button:has-text('Apply this mapping')")
    assert "3 deprovision(s) held for approval" in page.inner_text(".flash")
    assert set(statuses(database, scim.org_id).values()) == {"invited"}  # as the page said


def test_an_invalid_mapping_keeps_the_edits_and_lists_each_problem(page, database, live_console):
    scim = signed_in_at_acme(page, database, live_console)
    page.goto(f"/console/orgs/{scim.org_id}/mapping")
    edited = (
        "scope: {groups: [Staff]}\n"
        "collections:\n"
        "  - {group: Sales, collections: [Deals], permission: write}\n"
        "roles: 12\n"
    )
    page.fill("textarea[name=text]", edited)
    page.click("button:has-text('Show the Plan')")

    assert page.input_value("textarea[name=text]") == edited
    shot(page, "mapping-invalid")
    problems = page.locator("#mapping-problems li").all_inner_texts()
    assert len(problems) == 2, problems
    assert problems[0].startswith("line 3: collections[0].permission: must be one of")
    assert problems[1].startswith("line 4: roles:")
    assert page.inner_text("main").lower().count("not valid") == 1
    with database.read() as session:
        assert session.scalar(select(func.count()).select_from(Member)) == 0


def test_confirming_a_member_without_a_key_warns_first(page, database, live_console):
    scim = signed_in_at_acme(page, database, live_console, "bob")
    member_id = accepted(database, scim.org_id, "bob@acme.example")
    with database.transaction() as session:
        session.get(Member, member_id).public_key = None
    page.goto(f"/console/orgs/{scim.org_id}/confirmations")
    assert "no key recorded" in page.inner_text("#confirmations")
    page.check("#confirmations input[type=checkbox]")
    page.click("button:has-text('Confirm selected')")

    assert page.inner_text("h1") == "Confirm 1 member(s) with no key recorded?"
    assert page.inner_text("#confirm-items") == "bob@acme.example"
    assert "no fingerprint phrase to compare" in page.inner_text("#confirm-step")
    assert statuses(database, scim.org_id) == {"bob@acme.example": "accepted"}
    page.click("#confirm-step >> button:has-text('Confirm 1 member(s) anyway')")
    assert "confirm: 1 done" in page.inner_text(".flash")
    assert statuses(database, scim.org_id) == {"bob@acme.example": "confirmed"}


# --- the access checks around it (test client: no browser needed) ---------------------------


@pytest.mark.parametrize(
    "back",
    [
        "https://evil.example/console/",
        "//evil.example/console/",
        "/console//evil.example/",
        "/console/\\evil.example",
        "/\\evil.example/console/",
        "/console/\r\nSet-Cookie: stolen=1",
        "/console/\x7f",
        "javascript:alert(1)",
    ],
)
def test_a_form_cannot_send_the_browser_to_another_site(console, database, back):
    make_admin(database, "ops@msp.example")
    console.login("ops@msp.example")
    failed = console.post("/console/clients", {"name": "", "back": back})
    assert failed.status_code == 302 and failed.headers["Location"] == "/console/"
    asked = console.post("/console/me/keys/nokey/revoke", {"back": back})
    assert asked.status_code == 404  # not this account's key: no confirmation step either
    console.client.post("/console/logout", data={"csrf_token": console.csrf})
    console.get("/console/login")
    signed = console.post(
        "/console/login", {"email": "ops@msp.example", "password": PASSWORD, "next": back}
    )
    assert signed.status_code == 302 and signed.headers["Location"] == "/console/"


def test_the_confirmation_step_keeps_csrf_and_org_scoping(console, database, scim):
    beta = make_org_named(database, "Beta")
    make_admin(database, "other@msp.example", role="org_admin", org_ids=[beta])
    console.login("other@msp.example")
    token_id = scim.token.split("_")[1]
    base = f"/console/orgs/{scim.org_id}/scim/tokens/{token_id}"
    for step in ("revoke", "rotate"):
        for form in ({}, {"confirmed": "yes"}):
            response = console.post(f"{base}/{step}", form)
            assert response.status_code in (403, 404)
            assert "SCIM token" not in response.get_data(as_text=True)
    stranger = console.client.post(f"{base}/revoke", data={"confirmed": "yes"})
    assert stranger.status_code == 400  # no CSRF token
    assert scim.get("/Users").status_code == 200


def test_cancel_on_the_confirmation_step_returns_only_to_the_console(console, database, scim):
    make_admin(database, "ops@msp.example")
    console.login("ops@msp.example")
    token_id = scim.token.split("_")[1]
    asked = console.post(
        f"/console/orgs/{scim.org_id}/scim/tokens/{token_id}/revoke",
        {"back": "//evil.example/"},
    ).get_data(as_text=True)
    assert "Revoke the SCIM token" in asked
    assert 'href="/console/">Cancel' in asked


def test_running_an_ldap_sync_answers_with_a_redirect(console, database, monkeypatch):
    from connectors.ldap.config import SETTINGS_KEY, parse_document

    monkeypatch.setenv("SCIMGATE_TEST_LDAP_PW", "unused")
    document = {
        "connectors": {
            "main": {
                "preset": "openldap",
                "servers": ["ldap://127.0.0.1:9"],  # nothing listens: the run fails at once
                "bind": {"user": "cn=admin,dc=acme", "password_env": "SCIMGATE_TEST_LDAP_PW"},
                "base_dn": "dc=acme",
            }
        }
    }
    parse_document(document)
    org_id = make_org_named(database, "Acme")
    with database.transaction() as session:
        session.get(Organization, org_id).settings = {SETTINGS_KEY: document}
    make_admin(database, "ops@msp.example")
    console.login("ops@msp.example")
    ran = console.post(f"/console/orgs/{org_id}/ldap/main/run")
    assert ran.status_code == 302 and ran.headers["Location"] == f"/console/orgs/{org_id}/ldap"
    page = console.get(ran.headers["Location"]).get_data(as_text=True)
    assert "main: the sync failed and changed nothing" in page
    assert "failed" in page.split('id="sync-history"')[1]  # the history lists the run

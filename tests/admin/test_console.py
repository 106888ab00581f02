"""The console's pages and forms, driven like a browser without JavaScript: signing in, CSRF,
the clients table, members, held deprovisions, mapping Plan and apply, SCIM tokens, the event log,
readiness, and what an org admin may see."""

from __future__ import annotations

import csv
import io
import re

from scenario import (
    accepted,
    deactivate,
    hold_everything,
    make_admin,
    make_org_named,
    scim_user,
)
from sqlalchemy import select

from gateway.store.models import ApiToken, HeldChange, Member


def statuses(database, org_id: str) -> dict[str, str]:
    with database.read() as session:
        rows = session.scalars(select(Member).where(Member.org_id == org_id)).all()
        return {m.email: m.status for m in rows}


def text(response) -> str:
    return response.get_data(as_text=True)


def test_console_sends_strangers_to_sign_in_and_signs_out(console, database):
    make_admin(database, "ops@msp.example")
    response = console.get("/console/")
    assert response.status_code == 302 and "/console/login" in response.location
    assert console.login("ops@msp.example").status_code == 302
    page = console.get("/console/")
    assert page.status_code == 200 and "Clients" in text(page)
    assert page.headers["X-Frame-Options"] == "DENY"
    assert page.headers["Cache-Control"] == "no-store"
    console.post("/console/logout")
    assert console.get("/console/").status_code == 302


def test_session_cookie_is_http_only_secure_and_same_site(console, database):
    make_admin(database, "ops@msp.example")
    response = console.login("ops@msp.example")
    cookie = response.headers["Set-Cookie"]
    assert "HttpOnly" in cookie and "Secure" in cookie and "SameSite=Lax" in cookie


def test_a_form_without_the_csrf_token_is_refused(console, admin_client, database):
    make_admin(database, "ops@msp.example")
    console.login("ops@msp.example")
    response = admin_client.post("/console/clients", data={"name": "Forged"})
    assert response.status_code == 400
    assert "did not come from this site" in text(response)
    response = console.post("/console/clients", {"name": "Real"}, follow_redirects=True)
    assert "Created Real" in text(response)


def test_clients_table_shows_seats_confirmations_held_and_sync(console, database, scim):
    make_admin(database, "ops@msp.example")
    hold_everything(database, scim.org_id)
    ann = scim_user(scim, "ann@acme.example")
    scim_user(scim, "bob@acme.example")
    accepted(database, scim.org_id, "bob@acme.example")
    deactivate(scim, ann)
    console.login("ops@msp.example")
    page = text(console.get("/console/"))
    row = page.split('href="/console/orgs/' + scim.org_id, 1)[1].split("</tr>")[0]
    cells = [re.sub(r"<[^>]+>", "", c).strip() for c in re.findall(r"<td[^>]*>(.*?)</td>", row)]
    # plan, assigned, used (ann: invited, her revoke held; bob: accepted), remaining, confirmations,
    # held, last sync
    assert cells == ["Teams", "2", "2", "0", "1", "1", "never"]
    assert f"/console/orgs/{scim.org_id}/confirmations" in row
    assert f"/console/orgs/{scim.org_id}/held" in row


def test_members_filter_search_and_bulk_revoke_then_restore(console, database, scim):
    make_admin(database, "ops@msp.example")
    for name in ("ann", "bob", "cyd"):
        scim_user(scim, f"{name}@acme.example")
    console.login("ops@msp.example")
    base = f"/console/orgs/{scim.org_id}/members"
    page = text(console.get(base + "?q=BOB"))
    assert "bob@acme.example" in page and "ann@acme.example" not in page
    with database.read() as session:
        ids = dict(
            session.execute(
                select(Member.email, Member.id).where(Member.org_id == scim.org_id)
            ).all()
        )
    form = {"action": "revoke", "member_id": [ids["ann@acme.example"], ids["bob@acme.example"]]}
    form |= {"back": base, "confirmed": "yes"}
    response = console.post(base + "/action", form, follow_redirects=True)
    assert "revoke: 2 done" in text(response)
    assert statuses(database, scim.org_id)["ann@acme.example"] == "revoked"
    page = text(console.get(base + "?status=revoked"))
    assert "ann@acme.example" in page and "cyd@acme.example" not in page
    form = {"action": "restore", "member_id": [ids["ann@acme.example"], ids["cyd@acme.example"]]}
    response = console.post(base + "/action", form, follow_redirects=True)
    assert "restore: 1 done, 1 skipped (cyd@acme.example: cyd@acme.example is invited" in text(
        response
    )
    assert statuses(database, scim.org_id)["ann@acme.example"] == "invited"


def test_held_deprovision_is_approved_in_the_console(console, database, scim):
    make_admin(database, "ops@msp.example")
    hold_everything(database, scim.org_id)
    ann = scim_user(scim, "ann@acme.example")
    bob = scim_user(scim, "bob@acme.example")
    deactivate(scim, ann)
    deactivate(scim, bob)
    console.login("ops@msp.example")
    page = text(console.get(f"/console/orgs/{scim.org_id}/held"))
    assert "ann@acme.example" in page and "bob@acme.example" in page
    with database.read() as session:
        held = {h.change["email"]: h.id for h in session.scalars(select(HeldChange))}
    response = console.post(
        f"/console/orgs/{scim.org_id}/held/{held['ann@acme.example']}/approve",
        follow_redirects=True,
    )
    assert "is applied" in text(response)
    console.post(f"/console/orgs/{scim.org_id}/held/{held['bob@acme.example']}/drop")
    assert statuses(database, scim.org_id) == {
        "ann@acme.example": "revoked",
        "bob@acme.example": "invited",
    }


MAPPING = "collections:\n  - {group: Sales, collections: [Deals], permission: edit}\n"


def test_mapping_plan_is_shown_then_applied_as_read(console, database, scim):
    make_admin(database, "ops@msp.example")
    group = {
        "schemas": ["urn:ietf:params:scim:schemas:core:2.0:Group"],
        "displayName": "Sales",
        "members": [{"value": scim_user(scim, "ann@acme.example")}],
    }
    assert scim.post("/Groups", json=group).status_code == 201
    console.login("ops@msp.example")
    base = f"/console/orgs/{scim.org_id}/mapping"
    assert "(the defaults)" in text(console.get(base))
    plan = text(console.post(base + "/plan", {"text": MAPPING}))
    assert "Deals" in plan and "Apply this mapping" in plan
    digest = plan.split('name="plan_digest" value="')[1].split('"')[0]
    stale = console.post(base + "/apply", {"text": MAPPING, "plan_digest": "0" * 64})
    assert stale.status_code == 302
    assert "the Plan changed since it was shown" in text(console.get(base))
    done = console.post(
        base + "/apply", {"text": MAPPING, "plan_digest": digest}, follow_redirects=True
    )
    assert "Mapping applied" in text(done)
    page = text(console.get(f"/console/orgs/{scim.org_id}/collections"))
    assert "Deals" in page and "Sales · edit" in page


def test_an_invalid_mapping_says_what_is_wrong(console, database, scim):
    make_admin(database, "ops@msp.example")
    console.login("ops@msp.example")
    base = f"/console/orgs/{scim.org_id}/mapping"
    response = console.post(base + "/plan", {"text": "scope: 12\n", "back": base})
    assert response.status_code == 422
    assert "The mapping is not valid" in text(response) and "line 1: scope" in text(response)


def test_rotating_a_scim_token_shows_the_new_one_once_and_revokes_the_old(console, database, scim):
    make_admin(database, "ops@msp.example")
    console.login("ops@msp.example")
    old_id = scim.token.split("_")[1]
    rotate = f"/console/orgs/{scim.org_id}/scim/tokens/{old_id}/rotate"
    assert "Rotate the SCIM token" in text(console.post(rotate))
    assert scim.get("/Users").status_code == 200  # asking changed nothing
    page = text(console.post(rotate, {"confirmed": "yes"}, follow_redirects=True))
    secret = page.split('id="issued-token"')[1].split("<code>")[1].split("</code>")[0]
    assert secret.startswith("sgt_") and "shown only this once" in page
    assert scim.get("/Users").status_code == 401
    scim.token = secret
    assert scim.get("/Users").status_code == 200
    assert secret not in text(console.get(f"/console/orgs/{scim.org_id}/scim"))
    with database.read() as session:
        assert session.get(ApiToken, old_id).revoked_at is not None


def test_event_log_filters_and_exports_csv(console, database, scim):
    make_admin(database, "ops@msp.example")
    scim_user(scim, "ann@acme.example")
    console.login("ops@msp.example")
    base = f"/console/orgs/{scim.org_id}/events"
    table = text(console.get(base + "?type=member.")).split('id="events"')[1]
    assert "member.invited" in table and "organization.created" not in table
    response = console.get(base.replace("/events", "/events.csv") + "?type=member.")
    assert response.mimetype == "text/csv"
    assert "attachment" in response.headers["Content-Disposition"]
    rows = list(csv.DictReader(io.StringIO(text(response))))
    assert [r["type"] for r in rows] == ["member.invited"]
    assert "ann@acme.example" in rows[0]["detail"]


def test_readiness_page_runs_the_doctor_checks(console, database):
    make_admin(database, "ops@msp.example")
    console.login("ops@msp.example")
    page = text(console.get("/console/readiness"))
    assert "database" in page and "schema current" in page
    assert "only one provider admin" in page


def test_org_admin_sees_only_their_organizations(console, database, scim):
    other = make_org_named(database, "Globex")
    make_admin(database, "it@acme.example", role="org_admin", org_ids=[scim.org_id])
    console.login("it@acme.example")
    page = text(console.get("/console/"))
    assert "Acme" in page and "Globex" not in page
    assert "Create a client organization" not in page
    for path in ("members", "held", "mapping", "scim", "events", "events.csv", "ldap"):
        assert console.get(f"/console/orgs/{other}/{path}").status_code == 404, path
    assert console.get(f"/console/orgs/{scim.org_id}/members").status_code == 200
    assert console.post(f"/console/orgs/{other}/scim/tokens").status_code == 404
    assert console.get("/console/accounts").status_code == 403
    assert console.post("/console/clients", {"name": "Mine"}).status_code == 403

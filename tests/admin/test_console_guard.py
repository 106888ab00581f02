"""The console's count of held changes after the guard held a whole Plan: every deprovisioning
of the Plan is counted and listed (none went through), and the readiness page warns."""

from __future__ import annotations

import re

from scenario import make_admin, scim_user
from sqlalchemy import select

from gateway.provisioning.engine import set_mapping
from gateway.store.models import Member, Organization


def test_clients_table_counts_every_change_of_a_held_plan(console, database, scim):
    make_admin(database, "ops@msp.example")
    emails = [f"user{i:02}@acme.example" for i in range(12)]
    for email in emails:
        scim_user(scim, email)
    with database.transaction() as session:
        org = session.get(Organization, scim.org_id)
        # Nobody is in the scope group: the Plan revokes all 12, over max(5, 10%).
        set_mapping(session, org, "scope: {groups: [Staff]}\n", "admin:test", apply_now=True)
    with database.read() as session:
        assert {m.status for m in session.scalars(select(Member))} == {"invited"}
    console.login("ops@msp.example")
    page = console.get("/console/").get_data(as_text=True)
    row = page.split('href="/console/orgs/' + scim.org_id, 1)[1].split("</tr>")[0]
    cells = [re.sub(r"<[^>]+>", "", c).strip() for c in re.findall(r"<td[^>]*>(.*?)</td>", row)]
    # plan, assigned, used, remaining, confirmations, held, last sync
    assert cells[5] == "12"
    held = console.get(f"/console/orgs/{scim.org_id}/held").get_data(as_text=True)
    assert all(email in held for email in emails)
    ready = console.get("/console/readiness").get_data(as_text=True)
    assert "held changes (Acme)" in ready and "12 change(s) held by the guard" in ready

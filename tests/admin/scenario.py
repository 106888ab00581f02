"""Building blocks of the console and admin API tests: accounts of each role, a console client
that signs in and keeps its CSRF token, an organization fed through SCIM."""

from __future__ import annotations

import re

from gateway.accounts import create_admin, issue_api_key
from gateway.provisioning.settings import update_settings
from gateway.store.models import Member, Organization, utcnow

USER = "urn:ietf:params:scim:schemas:core:2.0:User"
PATCH = "urn:ietf:params:scim:api:messages:2.0:PatchOp"
PASSWORD = "correct horse battery staple"
_CSRF = re.compile(r'name="csrf_token" value="([^"]+)"')


def mount(app) -> None:
    """gateway.admin on the app, unless create_app does it already."""
    from gateway.admin import register

    if "console" not in app.blueprints:
        register(app)


def make_admin(database, email: str, role: str = "provider_admin", org_ids=()) -> str:
    with database.transaction() as session:
        return create_admin(session, email, role=role, password=PASSWORD, org_ids=org_ids).id


def api_key(database, admin_id: str) -> str:
    with database.transaction() as session:
        return issue_api_key(session, admin_id, description="tests").secret


class Console:
    """A browser-like test client: signs in, keeps the CSRF token, posts forms."""

    def __init__(self, client) -> None:
        self.client = client
        self.csrf = ""

    def get(self, path: str, **kw):
        response = self.client.get(path, **kw)
        found = _CSRF.search(response.get_data(as_text=True))
        if found:
            self.csrf = found.group(1)
        return response

    def post(self, path: str, data: dict | None = None, **kw):
        if not self.csrf:
            self.get("/console/login")
        form = {"csrf_token": self.csrf, **(data or {})}
        return self.client.post(path, data=form, **kw)

    def login(self, email: str, password: str = PASSWORD):
        self.get("/console/login")
        response = self.post("/console/login", {"email": email, "password": password})
        self.get("/console/")
        return response


# --- an organization with members, through SCIM -------------------------------------------


def scim_user(scim, email: str) -> str:
    response = scim.post("/Users", json={"schemas": [USER], "userName": email})
    assert response.status_code == 201, response.json
    return response.json["id"]


def deactivate(scim, user_id: str) -> None:
    body = {"schemas": [PATCH], "Operations": [{"op": "replace", "path": "active", "value": False}]}
    response = scim.patch(f"/Users/{user_id}", json=body)
    assert response.status_code in (200, 204), response.json


def hold_everything(database, org_id: str) -> None:
    """Every deprovisioning of this organization waits for an admin."""
    with database.transaction() as session:
        update_settings(session.get(Organization, org_id), guard_count=0, guard_share=0.0)


def accepted(database, org_id: str, email: str) -> str:
    """The member accepted the invitation in their app (that is not the console's doing)."""
    from sqlalchemy import select

    with database.transaction() as session:
        member = session.scalar(
            select(Member).where(Member.org_id == org_id, Member.email_lower == email.lower())
        )
        member.status = "accepted"
        member.accepted_at = utcnow()
        member.public_key = "MIIBIjANBgkqhkiG9w0BAQEFAAOCAQ8AMIIBCgKCAQEAtest"
        return member.id


def make_org_named(database, name: str) -> str:
    from gateway.orgs import create_org

    with database.transaction() as session:
        return create_org(session, name).id

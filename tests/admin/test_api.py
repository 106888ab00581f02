"""The admin API: API keys, the same actions as the console, org scoping, and the OpenAPI
document (checked by schemathesis for server errors)."""

from __future__ import annotations

import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings
from scenario import (
    accepted,
    api_key,
    deactivate,
    hold_everything,
    make_admin,
    make_org_named,
    scim_user,
)
from sqlalchemy import select

from gateway.store.models import Member


def bearer(key: str) -> dict:
    return {"Authorization": f"Bearer {key}"}


def test_api_refuses_requests_without_a_valid_admin_key(admin_client, database, scim):
    assert admin_client.get("/api/v1/orgs").status_code == 401
    response = admin_client.get("/api/v1/orgs", headers=bearer(scim.token))  # a SCIM token
    assert response.status_code == 401
    assert response.json["error"]["type"] == "unauthorized"
    assert response.headers["WWW-Authenticate"].startswith("Bearer")


def test_api_lists_clients_members_and_runs_member_actions(admin_client, database, scim):
    key = api_key(database, make_admin(database, "ops@msp.example"))
    scim_user(scim, "ann@acme.example")
    scim_user(scim, "bob@acme.example")
    accepted(database, scim.org_id, "bob@acme.example")
    (client,) = admin_client.get("/api/v1/orgs", headers=bearer(key)).json
    assert client["seats"] == {"assigned": 2, "used": 2, "remaining": 0, "limit": None}
    assert client["pending_confirmations"] == 1
    assert client["scim_base_url"].endswith(f"/scim/v2/{scim.org_id}")
    page = admin_client.get(f"/api/v1/orgs/{scim.org_id}/members?q=ann", headers=bearer(key)).json
    assert [m["email"] for m in page["members"]] == ["ann@acme.example"]
    ann = page["members"][0]["id"]
    report = admin_client.post(
        f"/api/v1/orgs/{scim.org_id}/members/actions",
        json={"action": "revoke", "member_ids": [ann, "nobody"]},
        headers=bearer(key),
    ).json
    assert report["done"] == ["ann@acme.example"]
    assert report["skipped"] == [
        {"member": "nobody", "reason": "no such member in this organization"}
    ]
    queue = admin_client.get(f"/api/v1/orgs/{scim.org_id}/confirmations", headers=bearer(key))
    assert [c["member"]["email"] for c in queue.json] == ["bob@acme.example"]


def test_api_mapping_plan_then_apply(admin_client, database, scim):
    key = api_key(database, make_admin(database, "ops@msp.example"))
    text = "collections:\n  - {group: Sales, collections: [Deals], permission: view}\n"
    base = f"/api/v1/orgs/{scim.org_id}/mapping"
    plan = admin_client.post(base + "/plan", json={"text": text}, headers=bearer(key)).json
    response = admin_client.put(
        base, json={"text": text, "plan_digest": plan["digest"]}, headers=bearer(key)
    )
    assert response.status_code == 200, response.json
    assert admin_client.get(base, headers=bearer(key)).json == {"text": text, "custom": True}
    stale = admin_client.put(
        base, json={"text": text, "plan_digest": "0" * 64}, headers=bearer(key)
    )
    assert stale.status_code == 409


def test_api_rotates_a_scim_token(admin_client, database, scim):
    key = api_key(database, make_admin(database, "ops@msp.example"))
    old = scim.token.split("_")[1]
    response = admin_client.post(
        f"/api/v1/orgs/{scim.org_id}/scim/tokens/{old}/rotate", headers=bearer(key)
    )
    assert response.status_code == 201
    scim.token = response.json["secret"]
    assert scim.get("/Users").status_code == 200


def test_org_admin_key_cannot_see_or_change_another_organization(admin_client, database, scim):
    other = make_org_named(database, "Globex")
    key = api_key(
        database, make_admin(database, "it@acme.example", role="org_admin", org_ids=[scim.org_id])
    )
    assert [c["name"] for c in admin_client.get("/api/v1/orgs", headers=bearer(key)).json] == [
        "Acme"
    ]
    for path in ("", "/members", "/held", "/mapping", "/scim", "/events", "/ldap", "/groups"):
        response = admin_client.get(f"/api/v1/orgs/{other}{path}", headers=bearer(key))
        assert response.status_code == 404, path
        assert "Globex" not in response.get_data(as_text=True)
    response = admin_client.post(f"/api/v1/orgs/{other}/scim/tokens", json={}, headers=bearer(key))
    assert response.status_code == 404
    assert admin_client.get("/api/v1/admins", headers=bearer(key)).status_code == 403
    assert (
        admin_client.post("/api/v1/orgs", json={"name": "X"}, headers=bearer(key)).status_code
        == 403
    )


def test_invalid_bodies_get_422_with_the_fields_named(admin_client, database):
    key = api_key(database, make_admin(database, "ops@msp.example"))
    response = admin_client.post("/api/v1/orgs", json={"seats": -1}, headers=bearer(key))
    assert response.status_code == 422
    assert set(response.json["error"]["fields"]) == {"name", "seats"}


def test_openapi_document_describes_every_api_route(admin_app, admin_client):
    document = admin_client.get("/api/v1/openapi.json").json
    assert document["openapi"].startswith("3.")
    rules = {
        r.rule.removeprefix("/api/v1").replace("<int:", "{").replace("<", "{").replace(">", "}")
        for r in admin_app.url_map.iter_rules()
        if r.rule.startswith("/api/v1") and r.endpoint != "admin_api.openapi_json"
    }
    assert rules == set(document["paths"])
    assert "MemberAction" in document["components"]["schemas"]


@pytest.fixture
def api_headers(database, scim) -> dict:
    """A provider admin's key and one organization with a member, for schemathesis to roam."""
    scim_user(scim, "ann@acme.example")
    return bearer(api_key(database, make_admin(database, "ops@msp.example")))


def test_schemathesis_finds_no_server_errors(admin_app, api_headers, scim):
    schema = schemathesis.openapi.from_wsgi("/api/v1/openapi.json", admin_app)
    errors: list[str] = []
    succeeded: set[str] = set()
    for result in schema.get_all_operations():
        operation = result.ok()

        @given(case=operation.as_strategy())
        @settings(
            max_examples=10,
            deadline=None,
            database=None,
            suppress_health_check=list(HealthCheck),
        )
        def exercise(case) -> None:
            if "org_id" in (case.path_parameters or {}):
                case.path_parameters["org_id"] = scim.org_id  # a random id only finds 404
            response = case.call(headers=api_headers)
            if response.status_code < 300:
                succeeded.add(f"{case.method} {case.path}")
            if response.status_code >= 500:
                errors.append(f"{case.method} {case.formatted_path}: {response.status_code}")

        exercise()
    assert not errors, errors
    # The key works: schemathesis got past authentication into the operations themselves.
    assert {"GET /orgs", "GET /orgs/{org_id}/members", "POST /orgs"} <= succeeded, succeeded


def test_api_cannot_revoke_or_remove_the_last_confirmed_owner(admin_client, database, scim):
    from sqlalchemy import select

    from gateway.store.models import Member

    key = api_key(database, make_admin(database, "ops@msp.example"))
    scim_user(scim, "own@acme.example")
    with database.transaction() as session:
        owner = session.scalar(select(Member).where(Member.email_lower == "own@acme.example"))
        owner.role, owner.status = "owner", "confirmed"
        owner_id = owner.id
    for action in ("revoke", "remove"):
        report = admin_client.post(
            f"/api/v1/orgs/{scim.org_id}/members/actions",
            json={"action": action, "member_ids": [owner_id]},
            headers=bearer(key),
        ).json
        assert report["done"] == []
        assert "last confirmed owner" in report["skipped"][0]["reason"]
    with database.read() as session:
        assert session.get(Member, owner_id).status == "confirmed"


def test_api_approves_and_drops_held_changes_in_bulk(admin_client, database, scim):
    key = api_key(database, make_admin(database, "ops@msp.example"))
    hold_everything(database, scim.org_id)
    for email in ("ann@acme.example", "amy@acme.example", "bob@acme.example"):
        deactivate(scim, scim_user(scim, email))
    base = f"/api/v1/orgs/{scim.org_id}/held"
    assert len(admin_client.get(base, headers=bearer(key)).json) == 3
    vague = admin_client.post(base + "/approve", json={}, headers=bearer(key))
    assert vague.status_code == 422
    assert "all: true, or a filter" in str(vague.json)
    wrong = admin_client.post(base + "/drop", json={"kind": "everyone"}, headers=bearer(key))
    assert wrong.status_code == 422
    # One call, counts back.
    done = admin_client.post(
        base + "/approve", json={"kind": "revoke", "email_prefix": "a"}, headers=bearer(key)
    )
    assert done.status_code == 200, done.json
    assert done.json == {"matched": 2, "approved": 2, "gone": 0, "dropped": 0}
    done = admin_client.post(base + "/drop", json={"all": True}, headers=bearer(key))
    assert done.json == {"matched": 1, "approved": 0, "gone": 0, "dropped": 1}
    assert admin_client.get(base, headers=bearer(key)).json == []
    with database.read() as session:
        found = dict(session.execute(select(Member.email, Member.status)).all())
    assert found == {
        "ann@acme.example": "revoked",
        "amy@acme.example": "revoked",
        "bob@acme.example": "invited",
    }

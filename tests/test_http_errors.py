"""Errors at the HTTP edge: every family of the gateway's own errors answers with its status in
the language of the part that was asked (a SCIM error body, the admin API's JSON error), never a
bare 500; hostile inputs that broke a parser or a comparison (a non-ASCII CSRF token, a deeply
nested API body) answer 400."""

from __future__ import annotations

import json

import pytest
from sqlalchemy import select

from gateway.accounts import create_admin, issue_api_key
from gateway.admin import clients
from gateway.http_errors import FAMILIES, status_of
from gateway.store.models import OrgMapping, utcnow

USER = "urn:ietf:params:scim:schemas:core:2.0:User"
SCIM_ERROR = "urn:ietf:params:scim:api:messages:2.0:Error"


def _error_instance(kind: type[Exception]) -> Exception:
    for args in (("it went wrong",), ("stage", "it went wrong")):
        try:
            return kind(*args)
        except TypeError:
            continue
    raise AssertionError(f"cannot make a {kind.__name__}")


def _api_key(database) -> str:
    with database.transaction() as session:
        admin = create_admin(
            session, "ops@msp.example", role="provider_admin", password="correct horse battery"
        )
        return issue_api_key(session, admin.id, description="tests").secret


def test_a_stored_mapping_that_no_longer_loads_answers_a_server_scim_error(scim, database):
    """The operator's stored mapping is at fault, not the IdP's request: a SCIM 500 naming what
    to fix (so the IdP retries once the mapping is fixed), and the user is not half-written."""
    with database.transaction() as session:
        # A key an older release accepted and this one refuses.
        session.add(
            OrgMapping(
                org_id=scim.org_id,
                text="scope:\n  retired_option: true\n",
                updated_by="admin:old",
                updated_at=utcnow(),
            )
        )
    response = scim.post("/Users", json={"schemas": [USER], "userName": "ann@acme.example"})
    assert response.status_code == 500
    assert response.content_type == "application/scim+json"
    body = response.json
    assert body["schemas"] == [SCIM_ERROR]
    assert "scimType" not in body
    assert "stored mapping no longer loads" in body["detail"]
    assert "scimgate mapping check" in body["detail"]
    assert "retired_option" in body["detail"]
    with database.read() as session:  # nothing half-written
        assert session.scalar(select(OrgMapping.org_id)) == scim.org_id


@pytest.mark.parametrize("kind", [kind for kind, _ in FAMILIES], ids=lambda k: k.__name__)
def test_every_gateway_error_family_answers_its_status_in_scim(scim, monkeypatch, kind):
    from gateway.scim.service import ScimService

    error = _error_instance(kind)

    def failing(*_args, **_kwargs):
        raise error

    monkeypatch.setattr(ScimService, "create", failing)
    response = scim.post("/Users", json={"schemas": [USER], "userName": "ann@acme.example"})
    family = status_of(error)
    assert response.status_code == family.status
    assert response.content_type == "application/scim+json"
    assert response.json["schemas"] == [SCIM_ERROR]
    assert response.json["status"] == str(family.status)
    assert response.json["detail"] == "it went wrong"
    assert response.json.get("scimType") == family.scim_type


def test_an_unexpected_error_in_scim_is_a_500_with_a_scim_body(scim, monkeypatch, caplog):
    from gateway.scim.service import ScimService

    def failing(*_args, **_kwargs):
        raise KeyError("a bug")

    monkeypatch.setattr(ScimService, "create", failing)
    response = scim.post("/Users", json={"schemas": [USER], "userName": "ann@acme.example"})
    assert response.status_code == 500
    assert response.json == {"schemas": [SCIM_ERROR], "status": "500", "detail": "internal error"}
    assert "KeyError: 'a bug'" in caplog.text


@pytest.mark.parametrize("kind", [kind for kind, _ in FAMILIES], ids=lambda k: k.__name__)
def test_every_gateway_error_family_answers_its_status_in_the_admin_api(
    client, database, monkeypatch, kind
):
    key = _api_key(database)
    error = _error_instance(kind)

    def failing(*_args, **_kwargs):
        raise error

    monkeypatch.setattr(clients, "client_rows", failing)
    response = client.get("/api/v1/orgs", headers={"Authorization": f"Bearer {key}"})
    family = status_of(error)
    assert response.status_code == family.status
    assert response.json == {"error": {"type": family.kind, "message": "it went wrong"}}


def test_a_non_ascii_csrf_token_on_the_console_login_is_a_form_expired_400(client):
    client.get("/console/login")
    response = client.post(
        "/console/login",
        data={"csrf_token": "jalapeño", "email": "ops@msp.example", "password": "x"},
    )
    assert response.status_code == 400
    assert "the form expired" in response.get_data(as_text=True)


def test_a_deeply_nested_admin_api_body_is_a_400(client, database):
    key = _api_key(database)
    deep = '{"name": "Acme", "extra": ' + "[" * 100_000 + "]" * 100_000 + "}"
    for body in (deep, json.dumps({"name": "Acme", "x": json.loads("[" * 200 + "]" * 200)})):
        response = client.post(
            "/api/v1/orgs",
            data=body,
            headers={"Authorization": f"Bearer {key}", "Content-Type": "application/json"},
        )
        assert response.status_code == 400, response.get_data(as_text=True)[:300]
        assert response.json["error"]["type"] == "invalid_input"
        assert "nested deeper than" in response.json["error"]["message"]

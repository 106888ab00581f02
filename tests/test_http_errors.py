"""Errors at the SCIM edge: every family of the gateway's own errors answers with its status as a
SCIM error body, never a bare 500 (the admin API's and the console's side: tests/admin)."""

from __future__ import annotations

import pytest
from sqlalchemy import select

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


def test_a_stored_mapping_that_no_longer_loads_answers_a_scim_error_not_500(scim, database):
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
    assert response.status_code == 400
    assert response.content_type == "application/scim+json"
    body = response.json
    assert body["schemas"] == [SCIM_ERROR]
    assert body["scimType"] == "invalidValue"
    assert "stored mapping no longer loads" in body["detail"]
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

"""Errors at the admin API's and the console's edge: every family of the gateway's own errors
answers with its status as the API's JSON error, and hostile inputs that broke a parser or a
comparison answer 400 instead of 500."""

from __future__ import annotations

import json

import pytest
from scenario import api_key, make_admin

from gateway.admin import clients
from gateway.http_errors import FAMILIES, status_of


def _error_instance(kind: type[Exception]) -> Exception:
    for args in (("it went wrong",), ("stage", "it went wrong")):
        try:
            return kind(*args)
        except TypeError:
            continue
    raise AssertionError(f"cannot make a {kind.__name__}")


@pytest.mark.parametrize("kind", [kind for kind, _ in FAMILIES], ids=lambda k: k.__name__)
def test_every_gateway_error_family_answers_its_status_in_the_admin_api(
    client, database, monkeypatch, kind
):
    key = api_key(database, make_admin(database, "ops@msp.example"))
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
    key = api_key(database, make_admin(database, "ops@msp.example"))
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

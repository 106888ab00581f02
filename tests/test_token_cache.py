"""A web process trusts a SCIM token it checked for GATEWAY_TOKEN_CACHE_SECONDS: a revocation
made in the same process applies at once, one made elsewhere (another node, the CLI on another
machine) within that time; 0 checks the database on every request."""

from __future__ import annotations

import dataclasses
import time

import pytest
from sqlalchemy import update

from gateway.app import create_app
from gateway.store.models import ApiToken, utcnow
from gateway.tokens import revoke_token


def scim_app(config, database, seconds: int):
    app = create_app(dataclasses.replace(config, token_cache_seconds=seconds), database=database)
    return app.test_client()


def revoke_elsewhere(database, token_id: str) -> None:
    """What another process's revocation looks like from here: only the row changes."""
    with database.transaction() as session:
        session.execute(update(ApiToken).where(ApiToken.id == token_id).values(revoked_at=utcnow()))


def status(client, org_id: str, token: str) -> int:
    headers = {"Authorization": f"Bearer {token}"}
    return client.get(f"/scim/v2/{org_id}/Users", headers=headers).status_code


def test_a_revocation_elsewhere_applies_within_the_cache_time(config, database, new_org):
    org_id, token = new_org("Acme")
    client = scim_app(config, database, 1)
    assert status(client, org_id, token) == 200
    revoke_elsewhere(database, token.split("_")[1])
    assert status(client, org_id, token) == 200  # still trusted from the check a moment ago
    time.sleep(1.2)
    assert status(client, org_id, token) == 401


def test_with_the_cache_off_every_request_checks(config, database, new_org):
    org_id, token = new_org("Acme")
    client = scim_app(config, database, 0)
    assert status(client, org_id, token) == 200
    revoke_elsewhere(database, token.split("_")[1])
    assert status(client, org_id, token) == 401


@pytest.mark.parametrize("outcome", ["commit", "rollback"])
def test_a_revocation_in_this_process_applies_once_committed(config, database, new_org, outcome):
    org_id, token = new_org("Acme")
    client = scim_app(config, database, 300)
    assert status(client, org_id, token) == 200
    try:
        with database.transaction() as session:
            revoke_token(session, token.split("_")[1])
            if outcome == "rollback":
                raise RuntimeError
    except RuntimeError:
        pass
    assert status(client, org_id, token) == (401 if outcome == "commit" else 200)


def test_a_cached_token_still_answers_only_for_its_own_organization(config, database, new_org):
    acme, token = new_org("Acme")
    globex, _ = new_org("Globex")
    client = scim_app(config, database, 300)
    assert status(client, acme, token) == 200
    assert status(client, globex, token) == 401

"""The two comparison servers of bench_load.py, as WSGI apps for the same gunicorn as scimgate.

Does: build the python-scim reference server (scim2-server, in-memory storage, one bearer token),
optionally pre-seeded from a JSON-lines file of User documents, and a bare Flask app that answers
the two SCIM read routes with one stored JSON document (the framework's ceiling). Does not: start
gunicorn (load_servers.py does) nor generate load (load_client.py does).

Settings come from the environment, since gunicorn builds the app from a module path:
BENCH_TOKEN (bearer token), BENCH_SEED_FILE (reference only, optional; the ids it got are
written beside it, to BENCH_SEED_FILE.ids).
"""

from __future__ import annotations

import json
import os
from typing import Any

USER_URN = "urn:ietf:params:scim:schemas:core:2.0:User"
LIST_URN = "urn:ietf:params:scim:api:messages:2.0:ListResponse"


def user_document(i: int, prefix: str = "user") -> dict[str, Any]:
    """The User body every server gets for user `i` (the Entra cycle POSTs exactly this)."""
    user_name = f"{prefix}{i:06d}@bench.example"
    return {
        "schemas": [USER_URN],
        "userName": user_name,
        "externalId": f"ext-{prefix}-{i}",
        "name": {"givenName": "User", "familyName": str(i)},
        "displayName": f"User {i}",
        "emails": [{"value": user_name, "type": "work", "primary": True}],
        "active": True,
    }


def reference_app():  # type: ignore[no-untyped-def]
    """scim2-server as the `scim2-server` command builds it, with a bearer token."""
    from scim2_models import ScimProvider
    from scim2_server.memory import InMemoryStorage
    from scim2_server.service import ScimService
    from scim2_server.testserver.application import BEARER_TOKEN_SCHEME, BearerTokenApplication
    from scim2_server.utils import (
        load_default_resource_types,
        load_default_schemas,
        load_default_service_provider_config,
    )

    config = load_default_service_provider_config()
    config.authentication_schemes = [*(config.authentication_schemes or []), BEARER_TOKEN_SCHEME]
    provider = ScimProvider.from_discovery(
        load_default_schemas().values(), load_default_resource_types().values(), config=config
    )
    service = ScimService(provider, secret=os.environ.get("BENCH_TOKEN", "bench"))
    storage = InMemoryStorage()
    seed_file = os.environ.get("BENCH_SEED_FILE")
    if seed_file:
        # The same validation and storage call as POST /Users, without the HTTP round trip.
        with service.provider:
            user_type = service.resource_type_at("/Users")
            ids = []
            with open(seed_file, "rb") as lines:
                for line in lines:
                    resource = service.read_creation(user_type, line, "application/scim+json")
                    ids.append(storage.create(user_type, resource).id)
        # The load generator needs the ids the storage gave, in the order of the seed file.
        with open(seed_file + ".ids", "w") as out:
            json.dump(ids, out)
    return BearerTokenApplication(
        storage, provider, service=service, bearer_tokens=[os.environ["BENCH_TOKEN"]]
    )


def bare_app():  # type: ignore[no-untyped-def]
    """Flask, one stored document, the same JSON serialization per request as a SCIM read."""
    from flask import Flask, Response, request

    app = Flask("bare")
    token = f"Bearer {os.environ['BENCH_TOKEN']}"
    document = user_document(0)
    document["id"] = "00000000-0000-0000-0000-000000000000"
    document["meta"] = {"resourceType": "User", "version": 'W/"1"'}

    def answer(body: dict) -> Response:
        if request.headers.get("Authorization") != token:
            return Response('{"status": "401"}', status=401, content_type="application/scim+json")
        return Response(json.dumps(body), content_type="application/scim+json")

    @app.get("/scim/v2/<org_id>/Users/<user_id>")
    def get_user(org_id: str, user_id: str) -> Response:
        return answer(document)

    @app.get("/scim/v2/<org_id>/Users")
    def list_users(org_id: str) -> Response:
        _ = request.args.get("filter")
        return answer(
            {
                "schemas": [LIST_URN],
                "totalResults": 1,
                "startIndex": 1,
                "itemsPerPage": 1,
                "Resources": [document],
            }
        )

    return app

"""Discovery endpoints' documents (RFC 7644 §4): what this service provider supports, said
honestly, so IdPs and testers can rely on it."""

from __future__ import annotations

from gateway.config import Config
from gateway.scim.schema import RESOURCE_TYPES, SCHEMAS


def service_provider_config(config: Config, base_url: str) -> dict:
    return {
        "schemas": ["urn:ietf:params:scim:schemas:core:2.0:ServiceProviderConfig"],
        "documentationUri": "https://github.com/scimgate/scimgate#readme",
        "patch": {"supported": True},
        "bulk": {
            "supported": True,
            "maxOperations": config.scim_bulk_max_operations,
            "maxPayloadSize": config.scim_max_payload,
        },
        "filter": {"supported": True, "maxResults": config.scim_max_results},
        "changePassword": {"supported": False},
        "sort": {"supported": True},
        "etag": {"supported": True},
        "authenticationSchemes": [
            {
                "type": "oauthbearertoken",
                "name": "OAuth Bearer Token",
                "description": "A per-organization bearer token from `scimgate token create`, "
                "sent as `Authorization: Bearer <token>`.",
                "primary": True,
            }
        ],
        "meta": {
            "resourceType": "ServiceProviderConfig",
            "location": f"{base_url}/ServiceProviderConfig",
        },
    }


def resource_types(base_url: str) -> list[dict]:
    return [rt.to_scim(f"{base_url}/ResourceTypes/{rt.name}") for rt in RESOURCE_TYPES.values()]


def schemas(base_url: str) -> list[dict]:
    return [s.to_scim(f"{base_url}/Schemas/{s.id}") for s in SCHEMAS.values()]

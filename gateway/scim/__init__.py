"""SCIM 2.0 service provider (RFC 7643 / RFC 7644) for the directory layer, one base URL and
bearer token per organization: `/scim/v2/<org id>/`.

Modules: schema (the schemas as data), resources (normalize what IdPs send, render and project
what we return), filter (filters -> SQL, value filters in memory), patch (PATCH on a copy; group
membership as a delta), service (the operations, in the caller's transaction, handing every write
to the provisioning engine), bulk, discovery, errors, routes (HTTP and bearer auth).

Does: store exactly what each IdP wrote, so it reads back the same. Does not: know about members,
invitations, seats or collections; the engine derives those from what is stored here.
"""

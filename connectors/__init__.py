"""Sources that the gateway polls, as opposed to SCIM, which pushes: `connectors.ldap` reads Active
Directory and OpenLDAP.

Does: read a source and write what it said into the directory layer (DirectoryUser, DirectoryGroup,
DirectoryGroupMember) under `source = "<kind>:<connector name>"`, then hand the change to the
provisioning engine in the same transaction. Does not: know about members, invitations, seats or
collections (the engine derives those), nor speak SCIM.
"""

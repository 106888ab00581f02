"""The LDAP / Active Directory connector (ldap3): users and groups read from a directory and
written into the directory layer for the provisioning engine, as a SCIM push would.

Modules: config (the YAML, presets), connection (failover, TLS, bind, precise errors), reader
(paged reads, identity, disabled users, memberships, nesting), directory (the diff written into
DirectoryUser / DirectoryGroup / DirectoryGroupMember), sync (one full or delta run, recorded in
sync_runs), schedule (locks and `run_due_connectors`), diagnose (`ldap test`), cli.

Does not: decide anything about members, invitations or seats (the engine does, behind
`directory_changed`), nor ever turn a failed or partial read into deletions: a run writes only
after every search completed, and only a full read deletes.
"""

from connectors.ldap.config import ConnectorConfig, load_yaml, org_connectors
from connectors.ldap.schedule import connector_lock, run_due_connectors
from connectors.ldap.sync import SyncFailed, SyncResult, sync_connector

__all__ = [
    "ConnectorConfig",
    "SyncFailed",
    "SyncResult",
    "connector_lock",
    "load_yaml",
    "org_connectors",
    "run_due_connectors",
    "sync_connector",
]

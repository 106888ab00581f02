"""The provisioning engine: directory layer in, Plan out, Plan applied to the org layer.

Does: reconcile (desired org state vs. current -> Plan), apply a Plan with its events and outbox
messages in the caller's transaction, hold mass deprovisioning. Does not: speak SCIM or LDAP (the
sources call `directory_changed`) nor send anything (the outbox worker does).
"""

from gateway.provisioning.entry import DirectoryChange, directory_changed

__all__ = ["DirectoryChange", "directory_changed"]

"""The provisioning engine: directory layer in, Plan out, Plan applied to the org layer.

Does: reconcile (desired org state from `mappings` vs. the current org layer -> a Plan of typed
changes), for the whole organization or incrementally after each directory change; apply a Plan
with its events and outbox messages in the caller's transaction; hold mass deprovisioning until an
admin decides; store each organization's mapping file and provisioning settings. Does not: speak
SCIM or LDAP (the sources call `directory_changed`), evaluate mapping rules itself (mappings/
does), move members through their lifecycle beyond calling `gateway.lifecycle`, nor send
anything (the outbox worker does).
"""

from gateway.provisioning import engine as _engine  # registers the deletion hooks
from gateway.provisioning.entry import (
    DELETED,
    GONE,
    LEFT_SCOPE,
    NO_EMAIL,
    DirectoryChange,
    directory_changed,
)

__all__ = [
    "DELETED",
    "GONE",
    "LEFT_SCOPE",
    "NO_EMAIL",
    "DirectoryChange",
    "directory_changed",
]
del _engine

"""The mapping file and the pure rule engine: directory data in, desired organization out.

Does: define the per-organization mapping file (YAML, validated with marshmallow; every error names
its key, line and what is expected) and turn plain directory data (`DirUser`, `DirGroup`) into the
desired org state (`DesiredMember`, `DesiredGroup`) under its rules: scope, attributes, groups,
collections and roles. Does not: touch the database, the network or the SCIM filter compiler (the
provisioning engine evaluates the scope filter in SQL and passes the answer in), nor diff against
the current organization (that is `gateway.provisioning`).
"""

from mappings.model import (
    PERMISSION_ORDER,
    ROLE_ORDER,
    DesiredGroup,
    DesiredMember,
    DirGroup,
    DirUser,
    Mapping,
)
from mappings.rules import (
    GroupIndex,
    desire_groups,
    desire_user,
    desired_groups_named,
    desired_state,
)
from mappings.schema import MappingError, default_mapping, dump_mapping, load_mapping

__all__ = [
    "PERMISSION_ORDER",
    "ROLE_ORDER",
    "DesiredGroup",
    "DesiredMember",
    "DirGroup",
    "DirUser",
    "GroupIndex",
    "Mapping",
    "MappingError",
    "default_mapping",
    "desire_groups",
    "desire_user",
    "desired_groups_named",
    "desired_state",
    "dump_mapping",
    "load_mapping",
]

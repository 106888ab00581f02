"""The SCIM schemas we serve (RFC 7643 §4 and §8.7), as data.

Does: describe every attribute of User, the enterprise extension and Group (type, plurality,
case-exactness, mutability, returned, uniqueness), resolve attribute paths against them, and render
the `/Schemas` representation. Does not: validate requests or touch storage.
"""

from __future__ import annotations

from dataclasses import dataclass, field

USER_SCHEMA = "urn:ietf:params:scim:schemas:core:2.0:User"
ENTERPRISE_SCHEMA = "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User"
GROUP_SCHEMA = "urn:ietf:params:scim:schemas:core:2.0:Group"


@dataclass(frozen=True)
class Attribute:
    name: str
    type: str = "string"  # string, boolean, decimal, integer, dateTime, reference, binary, complex
    multi_valued: bool = False
    required: bool = False
    case_exact: bool = False
    mutability: str = "readWrite"  # readOnly, readWrite, immutable, writeOnly
    returned: str = "default"  # always, never, default, request
    uniqueness: str = "none"  # none, server, global
    description: str = ""
    canonical_values: tuple[str, ...] = ()
    reference_types: tuple[str, ...] = ()
    sub_attributes: tuple[Attribute, ...] = ()

    def sub(self, name: str) -> Attribute | None:
        lname = name.lower()
        for attr in self.sub_attributes:
            if attr.name.lower() == lname:
                return attr
        return None

    def to_scim(self) -> dict:
        doc: dict = {
            "name": self.name,
            "type": self.type,
            "multiValued": self.multi_valued,
            "description": self.description or self.name,
            "required": self.required,
            "mutability": self.mutability,
            "returned": self.returned,
        }
        if self.type in {"string", "reference", "binary"}:
            doc["caseExact"] = self.case_exact
        if self.type != "complex" and self.type != "boolean":
            doc["uniqueness"] = self.uniqueness
        if self.canonical_values:
            doc["canonicalValues"] = list(self.canonical_values)
        if self.reference_types:
            doc["referenceTypes"] = list(self.reference_types)
        if self.sub_attributes:
            doc["subAttributes"] = [a.to_scim() for a in self.sub_attributes]
        return doc


def _s(name: str, **kw: object) -> Attribute:
    return Attribute(name, **kw)  # type: ignore[arg-type]


def _multi(
    name: str, value_type: str = "string", *, types: tuple[str, ...] = (), **kw: object
) -> Attribute:
    """The usual multi-valued complex shape: value, display, type, primary."""
    subs = (
        _s("value", type=value_type),
        _s("display"),
        _s("type", canonical_values=types),
        _s("primary", type="boolean"),
    )
    return Attribute(name, type="complex", multi_valued=True, sub_attributes=subs, **kw)  # type: ignore[arg-type]


@dataclass(frozen=True)
class Schema:
    id: str
    name: str
    description: str
    attributes: tuple[Attribute, ...]

    def attribute(self, name: str) -> Attribute | None:
        lname = name.lower()
        for attr in self.attributes:
            if attr.name.lower() == lname:
                return attr
        return None

    def to_scim(self, location: str) -> dict:
        return {
            "schemas": ["urn:ietf:params:scim:schemas:core:2.0:Schema"],
            "id": self.id,
            "name": self.name,
            "description": self.description,
            "attributes": [a.to_scim() for a in self.attributes],
            "meta": {"resourceType": "Schema", "location": location},
        }


# RFC 7643 §3.1 common attributes: present on every resource, described once.
COMMON = (
    _s("id", case_exact=True, mutability="readOnly", returned="always", uniqueness="server"),
    _s("externalId", case_exact=True),
    Attribute(
        "meta",
        type="complex",
        mutability="readOnly",
        sub_attributes=(
            _s("resourceType", case_exact=True, mutability="readOnly"),
            _s("created", type="dateTime", mutability="readOnly"),
            _s("lastModified", type="dateTime", mutability="readOnly"),
            _s(
                "location",
                type="reference",
                case_exact=True,
                mutability="readOnly",
                reference_types=("uri",),
            ),
            _s("version", case_exact=True, mutability="readOnly"),
        ),
    ),
)

USER = Schema(
    USER_SCHEMA,
    "User",
    "User Account",
    (
        _s(
            "userName",
            required=True,
            uniqueness="server",
            description="Unique identifier for the User",
        ),
        Attribute(
            "name",
            type="complex",
            sub_attributes=tuple(
                _s(n)
                for n in (
                    "formatted",
                    "familyName",
                    "givenName",
                    "middleName",
                    "honorificPrefix",
                    "honorificSuffix",
                )
            ),
        ),
        _s("displayName"),
        _s("nickName"),
        _s("profileUrl", type="reference", reference_types=("external",)),
        _s("title"),
        _s("userType"),
        _s("preferredLanguage"),
        _s("locale"),
        _s("timezone"),
        _s("active", type="boolean"),
        _s("password", mutability="writeOnly", returned="never"),
        _multi("emails", types=("work", "home", "other")),
        _multi("phoneNumbers", types=("work", "home", "mobile", "fax", "pager", "other")),
        _multi("ims", types=("aim", "gtalk", "icq", "xmpp", "msn", "skype", "qq", "yahoo")),
        _multi("photos", "reference", types=("photo", "thumbnail")),
        Attribute(
            "addresses",
            type="complex",
            multi_valued=True,
            sub_attributes=(
                *(
                    _s(n)
                    for n in (
                        "formatted",
                        "streetAddress",
                        "locality",
                        "region",
                        "postalCode",
                        "country",
                    )
                ),
                _s("type", canonical_values=("work", "home", "other")),
                _s("primary", type="boolean"),
            ),
        ),
        Attribute(
            "groups",
            type="complex",
            multi_valued=True,
            mutability="readOnly",
            sub_attributes=(
                _s("value", mutability="readOnly"),
                _s(
                    "$ref",
                    type="reference",
                    mutability="readOnly",
                    reference_types=("User", "Group"),
                ),
                _s("display", mutability="readOnly"),
                _s("type", mutability="readOnly", canonical_values=("direct", "indirect")),
            ),
        ),
        _multi("entitlements"),
        _multi("roles"),
        Attribute(
            "x509Certificates",
            type="complex",
            multi_valued=True,
            sub_attributes=(
                _s("value", type="binary"),
                _s("display"),
                _s("type"),
                _s("primary", type="boolean"),
            ),
        ),
    ),
)

ENTERPRISE_USER = Schema(
    ENTERPRISE_SCHEMA,
    "EnterpriseUser",
    "Enterprise User",
    (
        _s("employeeNumber"),
        _s("costCenter"),
        _s("organization"),
        _s("division"),
        _s("department"),
        Attribute(
            "manager",
            type="complex",
            sub_attributes=(
                _s("value"),
                _s("$ref", type="reference", reference_types=("User",)),
                _s("displayName", mutability="readOnly"),
            ),
        ),
    ),
)

GROUP = Schema(
    GROUP_SCHEMA,
    "Group",
    "Group",
    (
        _s("displayName", required=True, uniqueness="server"),
        Attribute(
            "members",
            type="complex",
            multi_valued=True,
            sub_attributes=(
                _s("value", mutability="immutable"),
                _s(
                    "$ref",
                    type="reference",
                    mutability="immutable",
                    reference_types=("User", "Group"),
                ),
                _s("display", mutability="readOnly"),
                _s("type", mutability="immutable", canonical_values=("User", "Group")),
            ),
        ),
    ),
)

SCHEMAS: dict[str, Schema] = {s.id: s for s in (USER, ENTERPRISE_USER, GROUP)}


@dataclass(frozen=True)
class ResourceType:
    name: str  # "User" / "Group"
    endpoint: str  # "/Users"
    schema: Schema
    extensions: tuple[Schema, ...] = field(default=())

    @property
    def schema_ids(self) -> tuple[str, ...]:
        return (self.schema.id, *(e.id for e in self.extensions))

    def extension(self, urn: str) -> Schema | None:
        lurn = urn.lower()
        for ext in self.extensions:
            if ext.id.lower() == lurn:
                return ext
        return None

    def to_scim(self, location: str) -> dict:
        return {
            "schemas": ["urn:ietf:params:scim:schemas:core:2.0:ResourceType"],
            "id": self.name,
            "name": self.name,
            "endpoint": self.endpoint,
            "description": self.schema.description,
            "schema": self.schema.id,
            "schemaExtensions": [{"schema": e.id, "required": False} for e in self.extensions],
            "meta": {"resourceType": "ResourceType", "location": location},
        }


USER_TYPE = ResourceType("User", "/Users", USER, (ENTERPRISE_USER,))
GROUP_TYPE = ResourceType("Group", "/Groups", GROUP)
RESOURCE_TYPES = {"User": USER_TYPE, "Group": GROUP_TYPE}


@dataclass(frozen=True)
class ResolvedPath:
    """An attribute path resolved against a resource type: `schema` is the URN the attribute
    lives in (core or extension), `attribute` its top-level definition, `sub` the sub-attribute
    if the path names one."""

    schema: Schema
    attribute: Attribute
    sub: Attribute | None = None

    @property
    def is_extension(self) -> bool:
        return self.schema.id != USER_SCHEMA and self.schema.id != GROUP_SCHEMA

    @property
    def leaf(self) -> Attribute:
        return self.sub or self.attribute


def split_urn(path: str, resource_type: ResourceType) -> tuple[Schema, str]:
    """Split `urn:...:User:name.givenName` into the schema and `name.givenName`. A path with no
    URN belongs to the core schema, or to an extension if only the extension has it (Entra sends
    `manager` unqualified)."""
    lpath = path.lower()
    for schema in (resource_type.schema, *resource_type.extensions):
        lid = schema.id.lower()
        if lpath == lid:
            return schema, ""
        if lpath.startswith(lid + ":"):
            return schema, path[len(schema.id) + 1 :]
    return resource_type.schema, path


COMMON_BY_NAME = {a.name.lower(): a for a in COMMON}


def resolve(path: str, resource_type: ResourceType) -> ResolvedPath | None:
    """Resolve `attr`, `attr.sub` or a URN-qualified form; None if the schema has no such
    attribute."""
    schema, rest = split_urn(path, resource_type)
    if not rest:
        return None
    top, _, sub_name = rest.partition(".")
    attribute = schema.attribute(top)
    if attribute is None and schema is resource_type.schema:
        attribute = COMMON_BY_NAME.get(top.lower())
        if attribute is None:
            for ext in resource_type.extensions:
                attribute = ext.attribute(top)
                if attribute is not None:
                    schema = ext
                    break
    if attribute is None:
        return None
    if not sub_name:
        return ResolvedPath(schema, attribute)
    sub = attribute.sub(sub_name)
    if sub is None:
        return None
    return ResolvedPath(schema, attribute, sub)

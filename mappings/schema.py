"""The mapping file: YAML in, a `Mapping` out, or a `MappingError` listing every problem with its
key path, line and what is expected.

```yaml
scope:                       # who is provisioned at all (both conditions when both are given)
  groups: [Staff, {external_id: "S-1-5-21-42"}]   # members of these directory groups (globs)
  filter: 'emails[type eq "work"].value ew "@acme.com"'   # SCIM filter over user attributes
attributes:
  email: [primary, userName, work, first]        # the order to look for the member's e-mail
  ldap: {email_attribute: mail, email_prefix_attribute: sAMAccountName, email_suffix: "@acme.com"}
  name: [displayName, formatted, givenFamily]
  external_id: externalId                        # externalId | userName | employeeNumber | none
groups:                      # first matching rule wins; unmatched groups keep their name
  - {match: "Sales *", rename: Sales}            # several groups renamed alike are merged
  - {match: "Domain Users", ignore: true}
  - {external_id: "a1b2", rename: "Engineering"}
collections:
  - {group: Marketing, collections: [Social Media], permission: edit}
roles:
  - {groups: [IT Admins], role: admin}
```
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import yaml
from marshmallow import (
    RAISE,
    Schema,
    ValidationError,
    fields,
    post_load,
    validate,
    validates_schema,
)

from mappings.model import (
    EMAIL_SOURCES,
    EXTERNAL_ID_SOURCES,
    NAME_SOURCES,
    PERMISSIONS,
    ROLES,
    Attributes,
    CollectionRule,
    GroupRule,
    GroupSelector,
    Mapping,
    RoleRule,
    Scope,
)


class MappingError(ValueError):
    """The mapping file is not valid; `problems` holds one line per problem."""

    def __init__(self, problems: list[str]) -> None:
        super().__init__("the mapping is not valid:\n" + "\n".join(f"  {p}" for p in problems))
        self.problems = problems


def _one_of(choices: tuple[str, ...]) -> validate.OneOf:
    return validate.OneOf(choices, error="must be one of " + ", ".join(choices) + ", not {input!r}")


_TEXT = {"invalid": "must be a text value", "required": "is required"}
_LIST = {"invalid": "must be a list"}


def _text(**kw: Any) -> fields.String:
    return fields.String(
        error_messages=_TEXT, validate=validate.Length(min=1, error="must not be empty"), **kw
    )


class _Selector(fields.Field):
    """A directory group: a name glob (`Sales*`) or `{external_id: ...}` / `{name: ...}`."""

    def _deserialize(self, value: Any, attr: Any, data: Any, **kw: Any) -> GroupSelector:
        if isinstance(value, str) and value.strip():
            return GroupSelector(name=value.strip())
        if isinstance(value, dict) and len(value) == 1:
            ((key, inner),) = value.items()
            if key in ("external_id", "name") and isinstance(inner, str | int) and str(inner):
                return GroupSelector(**{key: str(inner)})
        raise ValidationError(
            "must be a group name (globs like 'Sales*' allowed) or {external_id: ...}"
        )


class _Base(Schema):
    class Meta:
        unknown = RAISE


def _unknown_message() -> dict:
    return {"unknown": "is not a known key"}


class ScopeSchema(_Base):
    groups = fields.List(_Selector(), error_messages=_LIST)
    filter = _text()

    @post_load
    def make(self, data: dict, **kw: Any) -> Scope:
        return Scope(groups=tuple(data.get("groups", ())), filter=data.get("filter"))


class LdapEmailSchema(_Base):
    email_attribute = _text()
    email_prefix_attribute = _text()
    email_suffix = _text()

    @validates_schema
    def check(self, data: dict, **kw: Any) -> None:
        if ("email_prefix_attribute" in data) != ("email_suffix" in data):
            raise ValidationError(
                "email_prefix_attribute and email_suffix go together", "email_suffix"
            )


class AttributesSchema(_Base):
    email = fields.List(
        fields.String(validate=_one_of(EMAIL_SOURCES), error_messages=_TEXT),
        validate=validate.Length(min=1, error="must list at least one source"),
        error_messages=_LIST,
    )
    ldap = fields.Nested(LdapEmailSchema)
    name = fields.List(
        fields.String(validate=_one_of(NAME_SOURCES), error_messages=_TEXT),
        validate=validate.Length(min=1, error="must list at least one source"),
        error_messages=_LIST,
    )
    external_id = fields.String(validate=_one_of(EXTERNAL_ID_SOURCES), error_messages=_TEXT)

    @post_load
    def make(self, data: dict, **kw: Any) -> Attributes:
        defaults = Attributes()
        ldap = data.get("ldap", {})
        return Attributes(
            email=tuple(data.get("email", defaults.email)),
            ldap_email_attribute=ldap.get("email_attribute"),
            ldap_email_prefix_attribute=ldap.get("email_prefix_attribute"),
            ldap_email_suffix=ldap.get("email_suffix"),
            name=tuple(data.get("name", defaults.name)),
            external_id=data.get("external_id", defaults.external_id),
        )


class GroupRuleSchema(_Base):
    match = _text()
    external_id = _text()
    rename = _text()
    ignore = fields.Boolean(error_messages={"invalid": "must be true or false"})

    @validates_schema
    def check(self, data: dict, **kw: Any) -> None:
        if ("match" in data) == ("external_id" in data):
            raise ValidationError("give exactly one of match (a name glob) or external_id", "match")
        if bool(data.get("ignore")) == ("rename" in data):
            raise ValidationError("give exactly one of rename: NAME or ignore: true", "rename")

    @post_load
    def make(self, data: dict, **kw: Any) -> GroupRule:
        selector = GroupSelector(name=data.get("match"), external_id=data.get("external_id"))
        return GroupRule(
            select=selector, rename=data.get("rename"), ignore=bool(data.get("ignore"))
        )


class CollectionRuleSchema(_Base):
    group = _text(required=True)
    collections = fields.List(
        _text(),
        required=True,
        validate=validate.Length(min=1, error="must list at least one collection"),
        error_messages={**_LIST, "required": "is required"},
    )
    permission = fields.String(required=True, validate=_one_of(PERMISSIONS), error_messages=_TEXT)

    @post_load
    def make(self, data: dict, **kw: Any) -> CollectionRule:
        return CollectionRule(
            group=data["group"].strip(),
            collections=tuple(c.strip() for c in data["collections"]),
            permission=data["permission"],
        )


class RoleRuleSchema(_Base):
    groups = fields.List(
        _Selector(),
        required=True,
        validate=validate.Length(min=1, error="must list at least one group"),
        error_messages={**_LIST, "required": "is required"},
    )
    role = fields.String(required=True, validate=_one_of(ROLES), error_messages=_TEXT)

    @post_load
    def make(self, data: dict, **kw: Any) -> RoleRule:
        return RoleRule(groups=tuple(data["groups"]), role=data["role"])


class MappingSchema(_Base):
    version = fields.Integer(
        validate=validate.Equal(1, error="must be 1"), error_messages={"invalid": "must be 1"}
    )
    scope = fields.Nested(ScopeSchema)
    attributes = fields.Nested(AttributesSchema)
    groups = fields.List(fields.Nested(GroupRuleSchema), error_messages=_LIST)
    collections = fields.List(fields.Nested(CollectionRuleSchema), error_messages=_LIST)
    roles = fields.List(fields.Nested(RoleRuleSchema), error_messages=_LIST)

    @post_load
    def make(self, data: dict, **kw: Any) -> Mapping:
        return Mapping(
            scope=data.get("scope", Scope()),
            attributes=data.get("attributes", Attributes()),
            groups=tuple(data.get("groups", ())),
            collections=tuple(data.get("collections", ())),
            roles=tuple(data.get("roles", ())),
        )


# --- loading, with line numbers -----------------------------------------------------------------


def _flatten(errors: Any, path: tuple = ()) -> list[tuple[tuple, str]]:
    if isinstance(errors, dict):
        out = []
        for key, value in errors.items():
            # marshmallow reports a dict's bad value under "value"; the key path is enough.
            out += _flatten(value, path if key in ("_schema", "value") else (*path, key))
        return out
    if isinstance(errors, list) and all(isinstance(e, str) for e in errors):
        return [(path, e) for e in errors]
    if isinstance(errors, list):
        return [item for e in errors for item in _flatten(e, path)]
    return [(path, str(errors))]


def _line(node: yaml.Node | None, path: tuple) -> int | None:
    line = node.start_mark.line + 1 if node is not None else None
    for key in path:
        if isinstance(node, yaml.MappingNode):
            found = next(((k, v) for k, v in node.value if getattr(k, "value", None) == key), None)
            if found is None:
                break
            line = found[0].start_mark.line + 1
            node = found[1]
        elif isinstance(node, yaml.SequenceNode) and isinstance(key, int) and key < len(node.value):
            node = node.value[key]
            line = node.start_mark.line + 1
        else:
            break
    return line


def _path_text(path: tuple) -> str:
    text = ""
    for key in path:
        text += f"[{key}]" if isinstance(key, int) else (f".{key}" if text else str(key))
    return text or "(top level)"


def load_mapping(text: str, *, check_filter: Callable[[str], str | None] | None = None) -> Mapping:
    """Parse and validate a mapping file. `check_filter` (given by the caller, which owns the
    SCIM filter compiler) returns an error message for a bad scope filter, or None."""
    try:
        node = yaml.compose(text)
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f"line {mark.line + 1}: " if mark else ""
        problem = getattr(exc, "problem", None) or str(exc)
        raise MappingError([f"{where}not valid YAML: {problem}"]) from None
    if data is None:
        return Mapping()
    if not isinstance(data, dict):
        raise MappingError(["line 1: the mapping must be a YAML mapping of keys (scope, ...)"])
    problems: list[tuple[int, str]] = []
    mapping: Mapping | None = None
    try:
        mapping = MappingSchema().load(data)
    except ValidationError as exc:
        for path, message in _flatten(exc.messages):
            if message == "Unknown field.":
                message = "is not a known key"
            line = _line(node, path)
            problems.append((line or 0, f"line {line}: {_path_text(path)}: {message}"))
    if mapping is not None and mapping.scope.filter and check_filter:
        message = check_filter(mapping.scope.filter)
        if message:
            line = _line(node, ("scope", "filter"))
            problems.append((line or 0, f"line {line}: scope.filter: {message}"))
    if problems:
        raise MappingError([p for _, p in sorted(problems)])
    assert mapping is not None
    return mapping


DEFAULT_TEXT = """\
# No mapping set: the defaults apply.
# Every active directory user becomes a member with role user; every directory group becomes an
# org group of the same name; memberships mirror the directory, nested groups flattened.
scope: {}
attributes:
  email: [primary, userName, work, first]
  name: [displayName, formatted, givenFamily]
  external_id: externalId
"""


def default_mapping() -> Mapping:
    return Mapping()


def dump_mapping(mapping: Mapping) -> dict:
    """A JSON-able summary of a loaded mapping (for `--json` and tests)."""

    def selector(s: GroupSelector) -> Any:
        return s.name if s.name is not None else {"external_id": s.external_id}

    a = mapping.attributes
    return {
        "scope": {
            "groups": [selector(s) for s in mapping.scope.groups],
            "filter": mapping.scope.filter,
        },
        "attributes": {
            "email": list(a.email),
            "ldap": {
                "email_attribute": a.ldap_email_attribute,
                "email_prefix_attribute": a.ldap_email_prefix_attribute,
                "email_suffix": a.ldap_email_suffix,
            },
            "name": list(a.name),
            "external_id": a.external_id,
        },
        "groups": [
            {"select": selector(r.select), "rename": r.rename, "ignore": r.ignore}
            for r in mapping.groups
        ],
        "collections": [
            {"group": r.group, "collections": list(r.collections), "permission": r.permission}
            for r in mapping.collections
        ],
        "roles": [
            {"groups": [selector(s) for s in r.groups], "role": r.role} for r in mapping.roles
        ],
    }

"""SCIM PATCH (RFC 7644 §3.5.2) as a pure function: stored resource + PatchOp body -> new resource.

Does: validate the PatchOp body, resolve each operation's path against schema.py, apply add /
remove / replace to a deep copy of the resource (all or nothing), speak the dialects identity
providers really send (Entra ID's `manager` forms and capitalised ops, Okta's path-less replace
with the group's own `id`, explicit nulls from OneLogin / JumpCloud), and return group membership
as a delta (`MembersChange`) because members live as rows, not in the resource dict.
Does not: touch storage, coerce or validate attribute values (strings such as "False" pass through
for the resource validator), evaluate filters itself (gateway.scim.filter does that), or know
about ids, meta or versions.
"""

from __future__ import annotations

import copy
import json
import re
from dataclasses import dataclass, field

from gateway.scim.errors import (
    InvalidFilter,
    InvalidPath,
    InvalidSyntax,
    InvalidValue,
    Mutability,
    NoTarget,
    ScimError,
)
from gateway.scim.filter import matches_element
from gateway.scim.limits import shorten
from gateway.scim.schema import (
    ENTERPRISE_SCHEMA,
    GROUP_SCHEMA,
    Attribute,
    ResourceType,
    Schema,
    resolve,
    split_urn,
)

PATCH_OP_SCHEMA = "urn:ietf:params:scim:api:messages:2.0:PatchOp"
OPS = ("add", "remove", "replace")


@dataclass
class MembersChange:
    """Group membership delta. Apply in this order: `remove_all`, then `replace` (the whole new
    list), then `remove`, then `add`; operations are folded so that `add` and `remove` never
    share an id, which makes the last two order-free."""

    add: list[dict] = field(default_factory=list)  # [{"value": id, "type": "User"|"Group"|None}]
    remove: set[str] = field(default_factory=set)
    replace: list[dict] | None = None
    remove_all: bool = False

    def __bool__(self) -> bool:
        return bool(self.add or self.remove or self.replace is not None or self.remove_all)


@dataclass
class PatchResult:
    resource: dict
    members: MembersChange
    changed: bool  # resource differs, or a membership change was requested


def apply_patch(resource: dict, body: dict, resource_type: ResourceType) -> PatchResult:
    """Apply a PatchOp body to `resource` (left untouched) and return the result. Raises a
    ScimError subclass naming the failing operation; nothing is applied in that case."""
    operations = _operations(body)
    patcher = _Patcher(copy.deepcopy(resource), resource_type)
    for index, (op, path, value, has_value) in enumerate(operations):
        try:
            patcher.apply(op, path, value, has_value)
        except ScimError as exc:
            where = f"Operations[{index}] ({op} {path or '<no path>'})"
            raise type(exc)(
                f"{where}: {exc.detail}", status=exc.status, scim_type=exc.scim_type
            ) from exc
    patcher.finish()
    changed = patcher.resource != resource or bool(patcher.members)
    return PatchResult(patcher.resource, patcher.members, changed)


# --- the request body (RFC 7644 §3.5.2) -------------------------------------------------------


def _operations(body: object) -> list[tuple[str, str | None, object, bool]]:
    if not isinstance(body, dict):
        raise InvalidSyntax("a PATCH body must be a JSON object with 'schemas' and 'Operations'")
    fields = {str(k).lower(): v for k, v in body.items()}
    # A missing `schemas` is tolerated: Entra ID and Okta always send it, but hand-written
    # clients and some smaller IdPs omit it, and the Operations list is unambiguous on its own.
    # A `schemas` that is present must name PatchOp (RFC 7644 §3.5.2).
    if "schemas" in fields:
        schemas = fields["schemas"]
        if not isinstance(schemas, list) or PATCH_OP_SCHEMA.lower() not in {
            s.lower() for s in schemas if isinstance(s, str)
        }:
            raise InvalidSyntax(f"'schemas' must contain {PATCH_OP_SCHEMA!r}")
    operations = fields.get("operations")
    if not isinstance(operations, list) or not operations:
        raise InvalidSyntax(
            "a PATCH body needs 'Operations': a non-empty list of {op, path, value} objects"
        )
    parsed = []
    for index, raw in enumerate(operations):
        if not isinstance(raw, dict):
            raise InvalidSyntax(f"Operations[{index}] must be an object with 'op'")
        entry = {str(k).lower(): v for k, v in raw.items()}
        op = entry.get("op")
        if not isinstance(op, str) or op.lower() not in OPS:
            raise InvalidSyntax(
                f"Operations[{index}]: 'op' must be one of add, remove, replace, not {op!r}"
            )
        op = op.lower()  # Entra ID sends "Add", "Replace", "Remove"
        path = entry.get("path")
        if path is not None and not isinstance(path, str):
            raise InvalidPath(f"Operations[{index}]: 'path' must be a string")
        path = path.strip() if path else None
        has_value = "value" in entry
        if op != "remove" and not has_value:
            raise InvalidSyntax(f"Operations[{index}]: '{op}' needs a 'value'")
        parsed.append((op, path, entry.get("value"), has_value))
    return parsed


# --- paths (RFC 7644 §3.5.2 PATH ABNF, §3.10 attribute notation) ------------------------------

_NAME = r"[A-Za-z$][A-Za-z0-9_$-]*"
_ATTR_PATH = re.compile(rf"{_NAME}(?:\.{_NAME})?\Z")
_SUB_NAME = re.compile(rf"{_NAME}\Z")


@dataclass(frozen=True)
class _Path:
    schema: Schema
    attribute: Attribute
    value_filter: str | None = None  # the text between [ and ]
    sub: Attribute | None = None

    @property
    def is_manager(self) -> bool:
        return self.schema.id == ENTERPRISE_SCHEMA and self.attribute.name == "manager"

    @property
    def is_members(self) -> bool:
        return self.schema.id == GROUP_SCHEMA and self.attribute.name == "members"


def _parse_path(text: str, resource_type: ResourceType) -> _Path:
    bracket = text.find("[")
    value_filter: str | None = None
    sub_name = ""
    attr_text = text
    if bracket != -1:
        close = _closing_bracket(text, bracket)
        attr_text = text[:bracket]
        value_filter = text[bracket + 1 : close].strip()
        rest = text[close + 1 :]
        if not value_filter:
            raise InvalidPath(f"empty value filter in path {text!r}")
        if rest:
            sub_name = rest[1:]
            if not rest.startswith(".") or not _SUB_NAME.match(sub_name):
                raise InvalidPath(
                    f"malformed path {text!r}: expected attr[filter] or attr[filter].sub"
                )
    _, bare = split_urn(attr_text, resource_type)
    if not _ATTR_PATH.match(bare):
        raise InvalidPath(f"malformed or unknown attribute path {text!r}")
    if value_filter is not None and "." in bare:
        raise InvalidPath(f"malformed path {text!r}: a value filter follows a top-level attribute")
    resolved = resolve(attr_text, resource_type)
    if resolved is None:
        raise InvalidPath(f"unknown attribute {attr_text!r} for {resource_type.name}")
    sub = resolved.sub
    if value_filter is not None:
        attribute = resolved.attribute
        if not (attribute.multi_valued and attribute.type == "complex"):
            raise InvalidPath(f"{attribute.name!r} is not multi-valued: no [filter] on it")
        if sub_name:
            sub = attribute.sub(sub_name)
            if sub is None:
                raise InvalidPath(f"unknown attribute {attribute.name}.{sub_name}")
    return _Path(resolved.schema, resolved.attribute, value_filter, sub)


def _closing_bracket(text: str, start: int) -> int:
    in_string = False
    index = start + 1
    while index < len(text):
        char = text[index]
        if in_string:
            if char == "\\":
                index += 1
            elif char == '"':
                in_string = False
        elif char == '"':
            in_string = True
        elif char == "[":
            break
        elif char == "]":
            return index
        index += 1
    raise InvalidPath(f"malformed path {text!r}: unbalanced '['")


def _check_mutability(path: _Path) -> None:
    # RFC 7644 §3.5.2: a path naming a readOnly attribute is a mutability error, whatever the op.
    name = path.attribute.name
    if name in ("id", "meta") or path.attribute.mutability == "readOnly":
        raise Mutability(f"{name!r} is read-only")
    if path.sub is not None and path.sub.mutability == "readOnly" and not path.is_members:
        raise Mutability(f"{name}.{path.sub.name} is read-only")


# --- value filters: the eq-only shapes we can turn into data ----------------------------------

_CLAUSE = re.compile(
    r'\s*([A-Za-z$][A-Za-z0-9_$]*)\s+eq\s+("(?:[^"\\]|\\.)*"|[^\s()"\[\]]+)\s*', re.IGNORECASE
)
_JOIN = re.compile(r"(and|or)\s", re.IGNORECASE)


def _eq_clauses(text: str) -> tuple[list[tuple[str, object]], set[str]] | None:
    """`a eq "x" and b eq true` -> ([("a", "x"), ("b", True)], {"and"}); None for anything
    else (other operators, parentheses, not). Used to build an element from a filter and to read
    member ids, never to evaluate a filter: matches_element does that."""
    clauses: list[tuple[str, object]] = []
    joins: set[str] = set()
    position = 0
    while True:
        match = _CLAUSE.match(text, position)
        if match is None:
            return None
        literal = match.group(2)
        if not literal.startswith('"'):
            literal = literal.lower()
        try:
            value = json.loads(literal)
        except ValueError:
            return None
        clauses.append((match.group(1), value))
        position = match.end()
        if position == len(text):
            return clauses, joins
        join = _JOIN.match(text, position)
        if join is None:
            return None
        joins.add(join.group(1).lower())
        position = join.end()


def _member_filter_ids(text: str) -> set[str]:
    parsed = _eq_clauses(text)
    if (
        parsed is None
        or parsed[1] - {"or"}
        or any(name.lower() != "value" or not isinstance(v, str) for name, v in parsed[0])
    ):
        raise InvalidFilter(
            f'members can be selected by id only: members[value eq "id"], or several joined '
            f"with 'or'; got [{text}]"
        )
    return {str(v) for _, v in parsed[0]}


# --- small dict helpers: stored keys are canonical, incoming keys are case-insensitive ---------


def _key(obj: dict, name: str) -> str | None:
    if name in obj:
        return name
    lname = name.lower()
    return next((k for k in obj if isinstance(k, str) and k.lower() == lname), None)


def _get(obj: dict, name: str) -> object:
    key = _key(obj, name)
    return None if key is None else obj[key]


def _pop(obj: dict, name: str) -> None:
    key = _key(obj, name)
    if key is not None:
        del obj[key]


def _put(obj: dict, name: str, value: object) -> None:
    key = _key(obj, name)
    if key is not None and key != name:
        del obj[key]  # a stray spelling gives way to the canonical name
    obj[name] = value


def _is_true(value: object) -> bool:
    return value is True or (isinstance(value, str) and value.lower() == "true")


def _scalar(value: object, what: str) -> object:
    if isinstance(value, dict | list):
        raise InvalidValue(f"{what} takes a single value, not {type(value).__name__}")
    return value


# --- the engine ---------------------------------------------------------------------------------


class _Patcher:
    def __init__(self, resource: dict, resource_type: ResourceType) -> None:
        self.resource = resource
        self.resource_type = resource_type
        self.members = MembersChange()
        self.touched_extensions: set[str] = set()

    def apply(self, op: str, path_text: str | None, value: object, has_value: bool) -> None:
        if path_text is None:
            if op == "remove":
                # RFC 7644 §3.5.2.2: remove needs a path.
                raise NoTarget("remove needs a 'path' naming what to remove")
            self._apply_pathless(op, value)
            return
        if path_text.lower() == "schemas":
            return  # the server keeps `schemas` in step with the extensions (see finish)
        extension = self.resource_type.extension(path_text)
        if extension is not None:
            self._apply_extension_object(op, extension, value)
            return
        path = _parse_path(path_text, self.resource_type)
        _check_mutability(path)
        if path.is_members:
            self._members(op, path, value, has_value)
        elif op == "remove":
            self._remove(path, value, has_value)
        else:
            self._set(op, path, value)

    # RFC 7644 §3.5.2.1 / §3.5.2.3: with no path, the value is a set of attributes to add or
    # replace. Keys may be names, dotted names, URN-qualified names or an extension URN.
    def _apply_pathless(self, op: str, value: object) -> None:
        if not isinstance(value, dict):
            raise InvalidValue(f"{op} without a path needs an object of attributes as its value")
        for key, item in value.items():
            if not isinstance(key, str):
                raise InvalidPath(f"attribute names are strings, not {key!r}")
            lkey = key.lower()
            if lkey == "schemas":
                continue
            if lkey == "id":
                continue  # Okta sends the resource's own id in a path-less replace; ignore it.
            if lkey == self.resource_type.schema.id.lower():
                if not isinstance(item, dict):
                    raise InvalidValue(f"{key} needs an object of attributes")
                for name, sub_value in item.items():
                    self.apply(op, f"{self.resource_type.schema.id}:{name}", sub_value, True)
                continue
            self.apply(op, key, item, True)

    def _apply_extension_object(self, op: str, extension: Schema, value: object) -> None:
        if op == "remove" or value is None:
            _pop(self.resource, extension.id)
            self.touched_extensions.add(extension.id)
            return
        if not isinstance(value, dict):
            raise InvalidValue(f"{extension.id} needs an object of attributes")
        for name, item in value.items():
            if name.lower() == "schemas":  # scim2-models clients repeat it inside the object
                continue
            self.apply(op, f"{extension.id}:{name}", item, True)

    def _container(self, schema: Schema, *, create: bool) -> dict | None:
        if schema.id == self.resource_type.schema.id:
            return self.resource
        self.touched_extensions.add(schema.id)
        found = _get(self.resource, schema.id)
        if isinstance(found, dict):
            return found
        if not create:
            return None
        container: dict = {}
        _put(self.resource, schema.id, container)
        return container

    def _complex(self, attribute: Attribute, value: dict) -> dict:
        """Canonical sub-attribute names; readOnly sub-attributes dropped (the server owns them,
        RFC 7643 §2.2); unknown ones refused."""
        out: dict = {}
        for key, item in value.items():
            sub = attribute.sub(key) if isinstance(key, str) else None
            if sub is None:
                raise InvalidPath(f"unknown attribute {attribute.name}.{key}")
            if sub.mutability == "readOnly":
                continue
            out[sub.name] = _scalar(item, f"{attribute.name}.{sub.name}")
        return out

    def _element(self, attribute: Attribute, item: object) -> dict | object:
        if attribute.type != "complex":
            return _scalar(item, attribute.name)
        if not isinstance(item, dict):
            raise InvalidValue(f"each value of {attribute.name!r} is an object, not {item!r}")
        return {k: v for k, v in self._complex(attribute, item).items() if v is not None}

    # add / replace -------------------------------------------------------------------------

    def _set(self, op: str, path: _Path, value: object) -> None:
        container = self._container(path.schema, create=True)
        assert container is not None
        attribute = path.attribute
        if path.is_manager:
            self._set_manager(container, path, value)
        elif attribute.multi_valued and path.value_filter is None and path.sub is None:
            self._set_multi(op, container, attribute, value)
        elif attribute.multi_valued:
            self._set_elements(op, container, path, value)
        elif path.sub is not None:
            self._set_sub(container, attribute, path.sub, value)
        elif attribute.type == "complex":
            # RFC 7644 §3.5.2.1 and §3.5.2.3: for a complex attribute both add and replace set
            # the given sub-attributes and leave the others as they are.
            if value is None:
                _pop(container, attribute.name)
                return
            if not isinstance(value, dict):
                raise InvalidValue(f"{attribute.name!r} takes an object of sub-attributes")
            current = _get(container, attribute.name)
            merged = dict(current) if isinstance(current, dict) else {}
            for name, item in self._complex(attribute, value).items():
                if item is None:
                    merged.pop(name, None)
                else:
                    merged[name] = item
            self._put_or_pop(container, attribute.name, merged)
        elif value is None:
            _pop(container, attribute.name)  # explicit null means "no value" (OneLogin, JumpCloud)
        else:
            _put(container, attribute.name, _scalar(value, attribute.name))

    def _set_sub(
        self, container: dict, attribute: Attribute, sub: Attribute, value: object
    ) -> None:
        current = _get(container, attribute.name)
        merged = dict(current) if isinstance(current, dict) else {}
        if value is None:
            merged.pop(sub.name, None)
        else:
            merged[sub.name] = _scalar(value, f"{attribute.name}.{sub.name}")
        self._put_or_pop(container, attribute.name, merged)

    def _set_multi(self, op: str, container: dict, attribute: Attribute, value: object) -> None:
        if value is None:
            _pop(container, attribute.name)
            return
        items = value if isinstance(value, list) else [value]  # a lone element is tolerated
        elements = [self._element(attribute, item) for item in items]
        elements = [e for e in elements if e != {}]
        current = _get(container, attribute.name)
        # RFC 7644 §3.5.2.3: replace swaps the whole list; §3.5.2.1: add appends new values.
        result: list = [] if op == "replace" or not isinstance(current, list) else list(current)
        # Equal values found by their JSON text, not by comparing each with all (quadratic in a
        # body of 20,000 values).
        index = {json.dumps(e, sort_keys=True): e for e in reversed(result)}
        touched = []
        for element in elements:
            key = json.dumps(element, sort_keys=True)
            existing = index.get(key)
            if existing is None:
                result.append(element)
                touched.append(element)
                index[key] = element
            else:
                touched.append(existing)
        self._put_multi(container, attribute, result, touched)

    def _set_elements(self, op: str, container: dict, path: _Path, value: object) -> None:
        """add / replace on `attr[filter]`, `attr[filter].sub` or `attr.sub`."""
        attribute = path.attribute
        if value is None:
            self._remove_elements(container, path)
            return
        current = _get(container, attribute.name)
        elements = list(current) if isinstance(current, list) else []
        matched = [e for e in elements if self._matches(path, e)]
        if path.sub is None:
            if not isinstance(value, dict):
                raise InvalidValue(f"a value of {attribute.name!r} is an object")
            new = self._element(attribute, value)
            assert isinstance(new, dict)
            for element in matched:
                if op == "replace":
                    # RFC 7644 §3.5.2.3: all matching values are replaced.
                    element.clear()
                    element.update(new)
                else:
                    element.update(new)
        else:
            new = {path.sub.name: _scalar(value, f"{attribute.name}.{path.sub.name}")}
            for element in matched:
                element.update(new)
        if not matched:
            if op == "replace" and path.value_filter is not None:
                # RFC 7644 §3.5.2.3: "If the target location is a multi-valued attribute for
                # which a value selection filter ("valuePath") has been supplied and no record
                # match was made, the service provider SHALL indicate failure by returning HTTP
                # status code 400 and a "scimType" error code of "noTarget"."
                raise NoTarget(
                    f"no value of {path.attribute.name!r} matches [{shorten(path.value_filter)}]:"
                    " use add to create one"
                )
            # add creates an element from the filter's eq conditions plus the value: Entra ID
            # sends `add emails[type eq "work"].value` for a user with no work e-mail yet.
            created = {**self._seed(path), **new}
            elements.append(created)
            matched = [created]
        self._put_multi(container, attribute, elements, matched)

    def _seed(self, path: _Path) -> dict:
        if path.value_filter is None:
            return {}
        parsed = _eq_clauses(path.value_filter)
        if parsed is None or parsed[1] - {"and"}:
            raise NoTarget(
                f"no value of {path.attribute.name!r} matches [{path.value_filter}], and only a "
                f"filter of 'eq' conditions joined by 'and' can describe a new one"
            )
        seed = {}
        for name, value in parsed[0]:
            sub = path.attribute.sub(name)
            if sub is None:
                raise InvalidFilter(f"unknown attribute {path.attribute.name}.{name}")
            seed[sub.name] = value
        return seed

    def _set_manager(self, container: dict, path: _Path, value: object) -> None:
        """Entra ID writes the manager as "ID", {"value": "ID"} or [{"$ref": ..., "value": "ID"}],
        and clears it with "" or {"value": ""}; all are stored as {"value": "ID"[, "$ref"]}."""
        current = _get(container, "manager")
        if path.sub is not None and path.sub.name != "value":
            self._set_sub(container, path.attribute, path.sub, value)
            return
        if path.sub is not None:
            value = {"value": value}
        manager = self._manager(path.attribute, value)
        if manager is None:
            _pop(container, "manager")
            return
        unchanged = isinstance(current, dict) and current.get("value") == manager["value"]
        if not unchanged or "$ref" in manager:
            # A new manager replaces the whole object: an old $ref would point at the old one.
            _put(container, "manager", manager)

    def _manager(self, attribute: Attribute, value: object) -> dict | None:
        if isinstance(value, list):
            if len(value) > 1:
                raise InvalidValue("a user has one manager, the value lists several")
            value = value[0] if value else None
        if value is None or value == "":
            return None
        if isinstance(value, str):
            return {"value": value}
        if not isinstance(value, dict):
            raise InvalidValue(f'manager is an id or {{"value": id}}, not {value!r}')
        fields = self._complex(attribute, value)
        manager_id = fields.get("value")
        if manager_id is None or manager_id == "":
            return None
        manager = {"value": manager_id}
        if fields.get("$ref") is not None:
            manager["$ref"] = fields["$ref"]
        return manager

    # remove ----------------------------------------------------------------------------------

    def _remove(self, path: _Path, value: object, has_value: bool) -> None:
        container = self._container(path.schema, create=False)
        if container is None:
            return  # removing what is not there is a no-op
        attribute = path.attribute
        if attribute.multi_valued and (path.value_filter is not None or path.sub is not None):
            self._remove_elements(container, path)
        elif attribute.multi_valued and has_value and value not in (None, ""):
            self._remove_listed(container, attribute, value)
        elif path.sub is not None and not (path.is_manager and path.sub.name == "value"):
            current = _get(container, attribute.name)
            if isinstance(current, dict):
                merged = {k: v for k, v in current.items() if k != path.sub.name}
                self._put_or_pop(container, attribute.name, merged)
        else:
            # RFC 7644 §3.5.2.2; Entra's {"op":"Remove","path":"manager","value":""} lands here.
            _pop(container, attribute.name)

    def _remove_elements(self, container: dict, path: _Path) -> None:
        # RFC 7644 §3.5.2.2 answers noTarget when a filter matches nothing; we treat it as a
        # no-op like removing an absent attribute, so that IdP retries stay harmless.
        current = _get(container, path.attribute.name)
        if not isinstance(current, list):
            return
        kept = []
        for element in current:
            if not self._matches(path, element):
                kept.append(element)
            elif path.sub is not None:
                rest = {k: v for k, v in element.items() if k != path.sub.name}
                # An element without its "value" (or with nothing left) means nothing; drop it.
                if rest and not (path.sub.name == "value" and path.attribute.sub("value")):
                    kept.append(rest)
        self._put_or_pop(container, path.attribute.name, kept)

    def _remove_listed(self, container: dict, attribute: Attribute, value: object) -> None:
        """remove with path `attr` and a value: remove only the listed values (Entra ID does
        this for members and roles; RFC 7644 does not define a value for remove)."""
        current = _get(container, attribute.name)
        if not isinstance(current, list):
            return
        items = value if isinstance(value, list) else [value]
        listed = [self._element(attribute, item) for item in items]
        kept = [e for e in current if not any(self._same(attribute, e, x) for x in listed)]
        self._put_or_pop(container, attribute.name, kept)

    @staticmethod
    def _same(attribute: Attribute, element: object, listed: object) -> bool:
        value_sub = attribute.sub("value")
        if value_sub is None or not isinstance(element, dict) or not isinstance(listed, dict):
            return element == listed
        if "value" not in listed:
            return element == listed
        a, b = element.get("value"), listed["value"]
        if isinstance(a, str) and isinstance(b, str) and not value_sub.case_exact:
            return a.lower() == b.lower()
        return a == b

    # members: a delta, never a list in the resource -------------------------------------------

    def _members(self, op: str, path: _Path, value: object, has_value: bool) -> None:
        if path.sub is not None:
            raise InvalidPath("a member's sub-attributes cannot be patched: remove and add it")
        if path.value_filter is not None:
            if op != "remove":
                raise InvalidPath(f"{op} on members[filter] is not supported: use path 'members'")
            self._fold_remove(_member_filter_ids(path.value_filter))
        elif op == "remove" and has_value and value not in (None, ""):
            self._fold_remove({m["value"] for m in _member_entries(value)})
        elif op == "remove" or value is None:
            # RFC 7644 §3.5.2.2: remove "members" with no value removes them all; an explicit
            # null on add/replace means "no value" like for any attribute.
            self.members = MembersChange(remove_all=True)
        elif op == "add":
            self._fold_add(_member_entries(value))
        else:
            self.members = MembersChange(replace=_unique(_member_entries(value)))

    def _fold_add(self, entries: list[dict]) -> None:
        change = self.members
        target = change.replace if change.replace is not None else change.add
        known = {m["value"] for m in target}
        for entry in entries:
            change.remove.discard(entry["value"])
            if entry["value"] not in known:
                target.append(entry)
                known.add(entry["value"])

    def _fold_remove(self, ids: set[str]) -> None:
        change = self.members
        if change.replace is not None:
            change.replace = [m for m in change.replace if m["value"] not in ids]
            return
        change.add = [m for m in change.add if m["value"] not in ids]
        if not change.remove_all:
            change.remove |= ids

    # shared ----------------------------------------------------------------------------------

    def _matches(self, path: _Path, element: object) -> bool:
        if path.value_filter is None:
            return True
        if not isinstance(element, dict):
            return False
        # Entra ID stores booleans as "True"/"False"; compare them as the booleans they mean.
        probe = {
            k: (v.lower() == "true")
            if isinstance(v, str)
            and v.lower() in ("true", "false")
            and (sub := path.attribute.sub(k)) is not None
            and sub.type == "boolean"
            else v
            for k, v in element.items()
        }
        return matches_element(path.value_filter, probe, path.attribute)

    def _put_multi(
        self, container: dict, attribute: Attribute, elements: list, touched: list
    ) -> None:
        # RFC 7643 §2.4: "primary" is true on at most one value; the one just written wins.
        if attribute.sub("primary") is not None and any(
            isinstance(e, dict) and _is_true(e.get("primary")) for e in touched
        ):
            touched_ids = {id(e) for e in touched}
            for element in elements:
                if id(element) not in touched_ids and _is_true(element.get("primary")):
                    element["primary"] = False
        self._put_or_pop(container, attribute.name, elements)

    @staticmethod
    def _put_or_pop(container: dict, name: str, value: dict | list) -> None:
        # RFC 7643 §2.4 / §2.3.8: an empty list or object is an unassigned attribute.
        if value:
            _put(container, name, value)
        else:
            _pop(container, name)

    def finish(self) -> None:
        """Keep `schemas` in step with the extension objects that operations touched."""
        for urn in self.touched_extensions:
            extension = _get(self.resource, urn)
            schemas = self.resource.get("schemas")
            listed = isinstance(schemas, list) and any(
                isinstance(s, str) and s.lower() == urn.lower() for s in schemas
            )
            if isinstance(extension, dict) and extension:
                if not isinstance(schemas, list):
                    self.resource["schemas"] = [self.resource_type.schema.id, urn]
                elif not listed:
                    schemas.append(urn)
            else:
                _pop(self.resource, urn)
                if listed:
                    self.resource["schemas"] = [
                        s for s in schemas if not (isinstance(s, str) and s.lower() == urn.lower())
                    ]


def _member_entries(value: object) -> list[dict]:
    """Members as {"value": id, "type": "User"|"Group"|None}; a bare id string is tolerated,
    display and $ref are dropped (the server knows them)."""
    items = value if isinstance(value, list) else [value]
    entries = []
    for item in items:
        if isinstance(item, str):
            item = {"value": item}
        if not isinstance(item, dict):
            raise InvalidValue(f'a member is {{"value": id}}, not {item!r}')
        fields = {str(k).lower(): v for k, v in item.items()}
        unknown = set(fields) - {"value", "type", "display", "$ref"}
        if unknown:
            raise InvalidPath(f"unknown attribute members.{sorted(unknown)[0]}")
        member_id = fields.get("value")
        if not isinstance(member_id, str) or not member_id:
            raise InvalidValue(f"a member needs a non-empty string 'value' (its id), got {item!r}")
        member_type = fields.get("type")
        if member_type is not None:
            if not isinstance(member_type, str) or member_type.lower() not in ("user", "group"):
                raise InvalidValue(f"a member's type is User or Group, not {member_type!r}")
            member_type = member_type.capitalize()
        entries.append({"value": member_id, "type": member_type})
    return entries


def _unique(entries: list[dict]) -> list[dict]:
    seen: set[str] = set()
    unique = []
    for entry in entries:
        if entry["value"] not in seen:
            seen.add(entry["value"])
            unique.append(entry)
    return unique

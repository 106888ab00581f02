"""SCIM resources in and out: check and normalize what clients send (RFC 7643), render what we
return, and apply `attributes` / `excludedAttributes` (RFC 7644 §3.4.2.5).

Normalizing means: attribute names take the schema's spelling whatever case the client used;
string booleans ("True"), explicit nulls and empty strings from IdPs that send them are read the
way they were meant; read-only and unknown attributes are dropped; wrong types are a 400
`invalidValue` naming the attribute. Does not: touch the database or decide uniqueness.
"""

from __future__ import annotations

import json
from typing import Any

from marshmallow import Schema as MSchema
from marshmallow import ValidationError, fields

from gateway.scim.errors import InvalidSyntax, InvalidValue, Mutability
from gateway.scim.schema import (
    COMMON_BY_NAME,
    ENTERPRISE_SCHEMA,
    Attribute,
    ResourceType,
    Schema,
)

MAX_STRING = 4000
# Attributes that come back with every representation, whatever `attributes` asks for.
ALWAYS_RETURNED = {"id", "schemas"}


class _Envelope(MSchema):
    """The part of every resource body that has a fixed shape; the rest is schema-driven."""

    schemas = fields.List(fields.String(), required=True)

    class Meta:
        unknown = "include"


# One instance for every request: a marshmallow Schema keeps no state between loads, and
# building one costs more than loading a body with it.
_ENVELOPE = _Envelope()


def storable(text: str) -> bool:
    """Whether both databases can hold (and so compare with) `text`: PostgreSQL refuses NUL in
    text, and UTF-8 has no unpaired surrogates (a JSON "\\ud800" escape makes one)."""
    return "\x00" not in text and not any("\ud800" <= ch <= "\udfff" for ch in text)


def _coerce_boolean(value: Any, where: str) -> bool:
    if isinstance(value, bool):
        return value
    if isinstance(value, str) and value.strip().lower() in {"true", "false"}:
        return value.strip().lower() == "true"  # Entra ID, OneLogin and JumpCloud send "True"
    raise InvalidValue(f"{where} must be a boolean (true or false), got {value!r}")


def _coerce_scalar(attr: Attribute, value: Any, where: str) -> Any:
    if attr.type == "boolean":
        return _coerce_boolean(value, where)
    if attr.type in {"integer"}:
        if isinstance(value, bool) or not isinstance(value, int | str):
            raise InvalidValue(f"{where} must be an integer, got {value!r}")
        try:
            return int(value)
        except ValueError:
            raise InvalidValue(f"{where} must be an integer, got {value!r}") from None
    if attr.type == "decimal":
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise InvalidValue(f"{where} must be a number, got {value!r}")
        return value
    # string, reference, dateTime, binary: JSON strings. Numbers are taken as their text
    # (employeeNumber arrives as 1234 from some IdPs); anything else is a client error.
    if isinstance(value, bool | dict | list):
        raise InvalidValue(f"{where} must be a string, got {type(value).__name__}")
    if isinstance(value, int | float):
        value = str(value)
    if not isinstance(value, str):
        raise InvalidValue(f"{where} must be a string")
    if not storable(value):
        raise InvalidValue(f"{where} contains a NUL character or an unpaired surrogate")
    if len(value) > MAX_STRING:
        raise InvalidValue(f"{where} is longer than {MAX_STRING} characters")
    return value


def _is_empty(value: Any) -> bool:
    return value is None or value == "" or value == [] or value == {}


def normalize_value(attr: Attribute, value: Any, where: str) -> Any:
    """One attribute's value, checked against its definition; None means 'absent'."""
    if _is_empty(value):
        return None
    if attr.multi_valued:
        items = value if isinstance(value, list) else [value]
        out = []
        # Duplicates found by their JSON text: `norm not in out` made a group of 40,000
        # members cost 800 million comparisons.
        seen: set[str] = set()
        for i, item in enumerate(items):
            norm = _normalize_single(attr, item, f"{where}[{i}]")
            key = json.dumps(norm, sort_keys=True)
            if norm is not None and key not in seen:
                seen.add(key)
                out.append(norm)
        if attr.type == "complex":
            _one_primary(out)
        return out or None
    if isinstance(value, list) and attr.type == "complex" and len(value) == 1:
        value = value[0]  # Entra ID sends manager as a one-element list
    return _normalize_single(attr, value, where)


def _normalize_single(attr: Attribute, value: Any, where: str) -> Any:
    if _is_empty(value):
        return None
    if attr.type != "complex":
        return _coerce_scalar(attr, value, where)
    if not isinstance(value, dict):
        if attr.sub("value") is not None and isinstance(value, str | int | float):
            value = {"value": value}  # a bare value for {"value": ...}, e.g. manager: "id"
        else:
            raise InvalidValue(f"{where} must be an object")
    out: dict[str, Any] = {}
    for key, sub_value in value.items():
        sub = attr.sub(key)
        if sub is None:
            continue  # unknown sub-attribute: dropped, not stored
        norm = _normalize_single(sub, sub_value, f"{where}.{sub.name}")
        if norm is not None:
            out[sub.name] = norm
    return out or None


def _one_primary(items: list[dict]) -> None:
    """RFC 7643 §2.4: at most one element has primary true; the first one keeps it."""
    seen = False
    for item in items:
        if item.get("primary") is True:
            if seen:
                item["primary"] = False
            seen = True


def _attributes_of(schema: Schema, doc: dict, out: dict, *, where: str) -> None:
    for key, value in doc.items():
        attr = schema.attribute(key)
        if attr is None or attr.mutability == "readOnly" or attr.name == "password":
            continue
        norm = normalize_value(attr, value, f"{where}{attr.name}")
        if norm is not None:
            out[attr.name] = norm


def normalize(
    body: Any, resource_type: ResourceType, *, resource_id: str | None = None
) -> dict[str, Any]:
    """The stored form of a User or Group body from POST or PUT: canonical names, coerced
    values, without id, meta, read-only attributes, password and unknown attributes.
    `resource_id` is the id in the URL of a PUT; an `id` in the body must match it."""
    if not isinstance(body, dict):
        raise InvalidSyntax("the request body must be a JSON object")
    try:
        envelope = _ENVELOPE.load(body)
    except ValidationError as exc:
        if "schemas" in exc.messages:
            raise InvalidSyntax(
                f'"schemas" must be a list of schema URIs including "{resource_type.schema.id}"'
            ) from None
        raise InvalidSyntax(str(exc.messages)) from None
    lower_schemas = {s.lower() for s in envelope["schemas"]}
    if resource_type.schema.id.lower() not in lower_schemas:
        raise InvalidValue(f'"schemas" must include "{resource_type.schema.id}"')

    out: dict[str, Any] = {}
    extensions: dict[str, Any] = {}
    for key, value in body.items():
        lkey = key.lower()
        if lkey == "schemas":
            continue
        if lkey == "id":
            if value is not None and resource_id is None:
                raise Mutability("id is assigned by the service provider; leave it out of a POST")
            if value is not None and str(value) != resource_id:
                raise Mutability(f"id {value!r} in the body does not match the URL ({resource_id})")
            continue
        if lkey in {"meta"}:
            continue  # readOnly: ignored (RFC 7644 §3.5.1)
        if lkey == "externalid":
            norm = normalize_value(COMMON_BY_NAME["externalid"], value, "externalId")
            if norm is not None:
                out["externalId"] = norm
            continue
        ext = resource_type.extension(key)
        if ext is not None:
            if value is None:
                continue
            if not isinstance(value, dict):
                raise InvalidValue(f"{ext.id} must be an object")
            ext_out: dict[str, Any] = {}
            _attributes_of(ext, value, ext_out, where=f"{ext.id}:")
            if ext_out:
                extensions[ext.id] = ext_out
            continue
        if lkey.startswith("urn:"):
            # An attribute of a known extension written URN-qualified at the top level, e.g.
            # "urn:...:enterprise:2.0:User:department"; unknown extension schemas are dropped.
            for ext_schema in resource_type.extensions:
                prefix = ext_schema.id.lower() + ":"
                if lkey.startswith(prefix):
                    attr = ext_schema.attribute(key[len(prefix) :])
                    if attr is not None and attr.mutability != "readOnly":
                        norm = normalize_value(attr, value, f"{ext_schema.id}:{attr.name}")
                        if norm is not None:
                            extensions.setdefault(ext_schema.id, {})[attr.name] = norm
            continue
        attr = resource_type.schema.attribute(key)
        if attr is None or attr.mutability == "readOnly" or attr.name == "password":
            continue
        norm = normalize_value(attr, value, attr.name)
        if norm is not None:
            out[attr.name] = norm

    for attr in resource_type.schema.attributes:
        if attr.required and attr.name not in out:
            raise InvalidValue(f"{attr.name} is required")
        if attr.required and isinstance(out[attr.name], str) and not out[attr.name].strip():
            # userName, a Group's displayName: an identifier of only spaces names nobody.
            raise InvalidValue(f"{attr.name} cannot be blank")
    out["schemas"] = [resource_type.schema.id, *sorted(extensions)]
    out.update(extensions)
    return out


def canonical_key_order(resource: dict, resource_type: ResourceType) -> dict:
    """Attributes in schema order, which makes responses easy to read and compare."""
    order = ["schemas", "id", "externalId"]
    order += [a.name for a in resource_type.schema.attributes]
    order += [e.id for e in resource_type.extensions]
    order.append("meta")
    rank = {name: i for i, name in enumerate(order)}
    return dict(sorted(resource.items(), key=lambda kv: rank.get(kv[0], len(rank))))


# --- attributes / excludedAttributes ---------------------------------------------------------


def parse_attribute_list(raw: str | list[str] | None) -> list[str]:
    if raw is None:
        return []
    items = raw if isinstance(raw, list) else raw.split(",")
    return [item.strip() for item in items if isinstance(item, str) and item.strip()]


def _path_parts(path: str, resource_type: ResourceType) -> tuple[str | None, str, str | None]:
    """(extension URN or None, top-level attribute, sub-attribute) in canonical spelling; names
    the schema does not know are kept as given (they then match nothing)."""
    lpath = path.lower()
    for ext in resource_type.extensions:
        lid = ext.id.lower()
        if lpath == lid:
            return ext.id, "", None
        if lpath.startswith(lid + ":"):
            rest = path[len(ext.id) + 1 :]
            top, _, sub = rest.partition(".")
            attr = ext.attribute(top)
            return ext.id, attr.name if attr else top, sub or None
    core = resource_type.schema.id.lower()
    if lpath.startswith(core + ":"):
        path = path[len(core) + 1 :]
    top, _, sub = path.partition(".")
    attr = resource_type.schema.attribute(top) or COMMON_BY_NAME.get(top.lower())
    if attr is None:
        for ext in resource_type.extensions:
            ext_attr = ext.attribute(top)
            if ext_attr is not None:
                return ext.id, ext_attr.name, sub or None
    if attr is not None and sub:
        sub_attr = attr.sub(sub)
        sub = sub_attr.name if sub_attr else sub
    return None, attr.name if attr else top, sub or None


def _pick(container: dict, top: str, sub: str | None) -> Any:
    for key, value in container.items():
        if key.lower() != top.lower():
            continue
        if sub is None:
            return key, value
        if isinstance(value, dict):
            picked = {k: v for k, v in value.items() if k.lower() == sub.lower()}
            return (key, picked) if picked else None
        if isinstance(value, list):
            items = [
                {k: v for k, v in item.items() if k.lower() == sub.lower()}
                for item in value
                if isinstance(item, dict)
            ]
            items = [i for i in items if i]
            return (key, items) if items else None
    return None


def project(
    resource: dict,
    resource_type: ResourceType,
    *,
    attributes: list[str],
    excluded: list[str],
) -> dict:
    """RFC 7644 §3.4.2.5 on a full representation."""
    if attributes:
        out: dict[str, Any] = {k: v for k, v in resource.items() if k in ALWAYS_RETURNED}
        for path in attributes:
            urn, top, sub = _path_parts(path, resource_type)
            container = resource.get(urn, {}) if urn else resource
            if not top:  # the whole extension
                if urn in resource:
                    out[urn] = resource[urn]
                continue
            picked = _pick(container, top, sub)
            if picked is None:
                continue
            key, value = picked
            target = out.setdefault(urn, {}) if urn else out
            if isinstance(value, dict) and isinstance(target.get(key), dict):
                target[key].update(value)
            else:
                target[key] = value
        return canonical_key_order(out, resource_type)
    if excluded:
        out = {k: (dict(v) if isinstance(v, dict) else v) for k, v in resource.items()}
        for path in excluded:
            urn, top, sub = _path_parts(path, resource_type)
            container = out.get(urn) if urn else out
            if not isinstance(container, dict) or not top:
                continue
            key = next((k for k in container if k.lower() == top.lower()), None)
            if key is None or key in ALWAYS_RETURNED:
                continue
            if sub is None:
                del container[key]
            elif isinstance(container[key], dict):
                container[key] = {
                    k: v for k, v in container[key].items() if k.lower() != sub.lower()
                }
        if ENTERPRISE_SCHEMA in out and not out[ENTERPRISE_SCHEMA]:
            del out[ENTERPRISE_SCHEMA]
        return out
    return resource


def wants(attribute: str, *, attributes: list[str], excluded: list[str]) -> bool:
    """Whether a representation needs `attribute` (e.g. members: skip loading them if not)."""
    name = attribute.lower()
    if attributes:
        return any(a.lower().split(":")[-1].split(".")[0] == name for a in attributes)
    return not any(e.lower().split(":")[-1].split(".")[0] == name for e in excluded)

"""The LDAP connector configuration: an organization's YAML, validated, with presets.

Does: parse and validate the YAML (marshmallow) into `ConnectorConfig` objects with clear errors
("connectors.corp.page_size: ...", an unknown key with the keys allowed there), fill in the
`ad` / `openldap` presets, apply the mapping's LDAP e-mail rules, say what a configuration allows
but risks (`configuration_warnings`), and read the bind password from its environment variable
or file when a connection needs it. Does not: connect to
anything or store anything (the CLI keeps the validated JSON in Organization.settings).

Passwords never appear in the configuration: only `password_env: NAME` or `password_file: PATH`.
"""

from __future__ import annotations

import difflib
import hashlib
import json
import os
import re
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any

import yaml
from marshmallow import (
    RAISE,
    Schema,
    ValidationError,
    fields,
    validate,
    validates_schema,
)

from gateway.errors import InvalidInput
from mappings import Mapping

SETTINGS_KEY = "ldap_connectors"

# What each preset fills in; anything the YAML says wins.
PRESETS: dict[str, dict[str, Any]] = {
    "ad": {
        "user_object_class": "user",
        "user_filter": "(&(objectCategory=person)(objectClass=user))",
        "group_object_class": "group",
        "group_filter": "(objectClass=group)",
        "attributes": {
            "unique_id": "objectGUID",
            "email": "mail",
            "given_name": "givenName",
            "family_name": "sn",
            "display_name": "displayName",
            "group_name": "cn",
            "member": "member",
            "member_uid": None,
            "uid": "sAMAccountName",
            "email_prefix": "sAMAccountName",
        },
        "disabled": {"attribute": "userAccountControl", "values": []},
        "nested_groups": "in_chain",
        "primary_group": True,
        "delta": "usn",
    },
    "openldap": {
        "user_object_class": "inetOrgPerson",
        "user_filter": "(objectClass=inetOrgPerson)",
        "group_object_class": "groupOfNames",
        "group_filter": "(|(objectClass=groupOfNames)(objectClass=groupOfUniqueNames)"
        "(objectClass=posixGroup))",
        "attributes": {
            "unique_id": "entryUUID",
            "email": "mail",
            "given_name": "givenName",
            "family_name": "sn",
            "display_name": "cn",
            "group_name": "cn",
            "member": "member",
            "member_uid": "memberUid",
            "uid": "uid",
            "email_prefix": "uid",
        },
        "disabled": None,
        "nested_groups": "client",
        "primary_group": False,
        "delta": "modify_timestamp",
    },
}

_DURATION = re.compile(r"^\s*(\d+)\s*([smhd]?)\s*$")
_UNITS = {"": 1, "s": 1, "m": 60, "h": 3600, "d": 86400}


class Duration(fields.Field):
    """Seconds as a number, or "30s", "5m", "2h", "1d"."""

    def _deserialize(self, value: Any, attr: str | None, data: Any, **kwargs: Any) -> int:
        if isinstance(value, bool):
            raise ValidationError("expected a duration such as 300, 5m, 2h or 1d")
        if isinstance(value, int):
            seconds = value
        else:
            match = _DURATION.match(str(value))
            if not match:
                raise ValidationError("expected a duration such as 300, 5m, 2h or 1d")
            seconds = int(match.group(1)) * _UNITS[match.group(2)]
        if seconds < 1:
            raise ValidationError("must be at least 1 second")
        return seconds


def _ldap_url(value: str) -> None:
    if not re.match(r"^ldaps?://[^/\s]+/?$", value):
        raise ValidationError(
            f"{value!r} is not an LDAP server URL: expected ldap://HOST[:PORT] or ldaps://HOST[:PORT]"
        )


def _filter(value: str) -> None:
    if not (value.startswith("(") and value.endswith(")")) or value.count("(") != value.count(")"):
        raise ValidationError(f"{value!r} is not an LDAP filter: it must be in parentheses")


class SearchBases(fields.Field):
    """One search base or a list of them (several OUs): "ou=Staff" or [ou=Sales, ou=IT]."""

    def _deserialize(self, value: Any, attr: str | None, data: Any, **kwargs: Any) -> list[str]:
        values = value if isinstance(value, list) else [value]
        if not values or not all(isinstance(v, str) and v.strip() for v in values):
            raise ValidationError("expected a DN, or a list of DNs (one search base per OU)")
        return [v.strip() for v in values]


class _Strict(Schema):
    class Meta:
        unknown = RAISE


class TlsSchema(_Strict):
    ca_file = fields.String()
    client_cert = fields.String()
    client_key = fields.String()
    verify = fields.Boolean(load_default=True)
    server_name = fields.String()


class BindSchema(_Strict):
    user = fields.String(required=True)
    password_env = fields.String()
    password_file = fields.String()

    @validates_schema
    def _one_password(self, data: dict, **kwargs: Any) -> None:
        if bool(data.get("password_env")) == bool(data.get("password_file")):
            raise ValidationError(
                "give exactly one of password_env (an environment variable name) or "
                "password_file (a file path); the password itself never goes in this file",
                "password_env",
            )


class AttributesSchema(_Strict):
    unique_id = fields.String(allow_none=True)
    email = fields.String()
    given_name = fields.String(allow_none=True)
    family_name = fields.String(allow_none=True)
    display_name = fields.String(allow_none=True)
    group_name = fields.String()
    member = fields.String(allow_none=True)
    member_uid = fields.String(allow_none=True)
    uid = fields.String(allow_none=True)
    email_prefix = fields.String(allow_none=True)


class DisabledSchema(_Strict):
    attribute = fields.String(required=True)
    # Values that mean "disabled" (case-insensitive); empty: the attribute being present does.
    values = fields.List(fields.String(), load_default=list)


class ConnectorSchema(_Strict):
    preset = fields.String(validate=validate.OneOf(sorted(PRESETS)))
    servers = fields.List(
        fields.String(validate=_ldap_url), required=True, validate=validate.Length(min=1)
    )
    start_tls = fields.Boolean(load_default=False)
    tls = fields.Nested(TlsSchema, load_default=dict)
    bind = fields.Nested(BindSchema, required=True)
    base_dn = fields.String(required=True, validate=validate.Length(min=1))
    user_base = SearchBases()
    user_filter = fields.String(validate=_filter)
    user_object_class = fields.String()
    group_base = SearchBases()
    group_filter = fields.String(validate=_filter)
    group_object_class = fields.String()
    attributes = fields.Nested(AttributesSchema, load_default=dict)
    email_suffix = fields.String(validate=validate.Regexp(r"^@?[^@\s]+$"))
    disabled = fields.Nested(DisabledSchema, allow_none=True)
    nested_groups = fields.String(validate=validate.OneOf(["in_chain", "client", "none"]))
    primary_group = fields.Boolean()
    delta = fields.String(validate=validate.OneOf(["usn", "modify_timestamp", "none"]))
    page_size = fields.Integer(load_default=500, validate=validate.Range(min=1, max=10000))
    time_limit = Duration(load_default=120)
    interval = Duration(load_default=300)
    full_sync_interval = Duration(load_default=86400)
    # Entries modified this close to the start of a read are read again by the next delta
    # (modifyTimestamp has one-second resolution and the two clocks may differ).
    clock_skew = Duration(load_default=60)

    @validates_schema
    def _needs_preset_or_attributes(self, data: dict, **kwargs: Any) -> None:
        if "preset" not in data:
            attrs = data.get("attributes") or {}
            missing = [k for k in ("email", "group_name") if not attrs.get(k)]
            if missing:
                raise ValidationError(
                    "without a preset (ad or openldap) set attributes."
                    + ", attributes.".join(missing),
                    "preset",
                )
        tls = data.get("tls") or {}
        if bool(tls.get("client_cert")) != bool(tls.get("client_key")):
            raise ValidationError("client_cert and client_key go together", "tls")


class FileSchema(Schema):
    class Meta:
        unknown = RAISE

    connectors = fields.Dict(
        keys=fields.String(validate=validate.Regexp(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,62}$")),
        values=fields.Dict(),
        required=True,
        validate=validate.Length(min=1),
    )


@dataclass(frozen=True)
class Attributes:
    unique_id: str | None
    email: str
    given_name: str | None
    family_name: str | None
    display_name: str | None
    group_name: str
    member: str | None
    member_uid: str | None
    uid: str | None
    email_prefix: str | None


@dataclass(frozen=True)
class Disabled:
    attribute: str
    values: tuple[str, ...] = ()


@dataclass(frozen=True)
class ConnectorConfig:
    name: str
    preset: str | None
    servers: tuple[str, ...]
    start_tls: bool
    tls_verify: bool
    ca_file: str | None
    client_cert: str | None
    client_key: str | None
    tls_server_name: str | None
    bind_user: str
    password_env: str | None
    password_file: str | None
    base_dn: str
    # Each search base is read and an entry under two of them counts once.
    user_base: tuple[str, ...]
    user_filter: str
    user_object_class: str | None
    group_base: tuple[str, ...]
    group_filter: str
    group_object_class: str | None
    attributes: Attributes
    email_suffix: str | None
    disabled: Disabled | None
    nested_groups: str
    primary_group: bool
    delta: str
    page_size: int
    time_limit: int
    interval: int
    full_sync_interval: int
    clock_skew: int
    raw: dict = field(default_factory=dict, compare=False, repr=False)

    @property
    def source(self) -> str:
        return f"ldap:{self.name}"

    def password(self) -> str:
        """The bind password, read now from its environment variable or file."""
        if self.password_env:
            value = os.environ.get(self.password_env)
            if value is None:
                raise InvalidInput(
                    f"connector {self.name}: the environment variable {self.password_env} "
                    "(password_env) is not set"
                )
            return value
        assert self.password_file
        try:
            return Path(self.password_file).read_text().rstrip("\r\n")
        except OSError as exc:
            raise InvalidInput(
                f"connector {self.name}: cannot read password_file {self.password_file}: "
                f"{exc.strerror}"
            ) from None

    def read_fingerprint(self) -> str:
        """What decides which entries a read returns and how they become users and groups. A
        delta continues only from a run with the same fingerprint: after a new search base,
        filter or e-mail rule, unchanged entries must be read again (a full sync)."""
        what = [
            self.base_dn,
            self.user_base,
            self.user_filter,
            self.group_base,
            self.group_filter,
            asdict(self.attributes),
            self.email_suffix,
            asdict(self.disabled) if self.disabled else None,
            self.nested_groups,
            self.primary_group,
        ]
        return hashlib.sha256(json.dumps(what, sort_keys=True).encode()).hexdigest()[:16]

    def user_attributes(self) -> list[str]:
        """Only what the sync needs, never `*`."""
        a = self.attributes
        wanted = [
            a.unique_id,
            a.email,
            a.given_name,
            a.family_name,
            a.display_name,
            a.uid,
            a.email_prefix,
            self.disabled.attribute if self.disabled else None,
        ]
        if self.primary_group:
            wanted.append("primaryGroupID")
        return _unique(wanted)

    def group_attributes(self) -> list[str]:
        a = self.attributes
        wanted = [a.unique_id, a.group_name, a.member, a.member_uid]
        if self.primary_group:
            wanted.append("objectSid")
        return _unique(wanted)


def _unique(names: list[str | None]) -> list[str]:
    seen: dict[str, str] = {}
    for name in names:
        if name and name.lower() not in seen:
            seen[name.lower()] = name
    return list(seen.values())


_BIND_HINT = (
    "passwords never go in the configuration: give password_env: VARIABLE (the name of an "
    "environment variable that holds the password) or password_file: PATH (a file that holds it)"
)


def _flatten(errors: Any, path: tuple = ()) -> list[tuple[tuple, str]]:
    """marshmallow's nested error dict as (key path, message) pairs."""
    if isinstance(errors, dict):
        out: list[tuple[tuple, str]] = []
        for key, value in errors.items():
            out += _flatten(value, path if key == "_schema" else (*path, key))
        return out
    if isinstance(errors, list):
        if all(isinstance(e, str) for e in errors):
            return [(path, " ".join(errors))]
        return [item for e in errors for item in _flatten(e, path)]
    return [(path, str(errors))]


def _label(prefix: str, path: tuple) -> str:
    text = prefix
    for key in path:
        text += f"[{key}]" if isinstance(key, int) else (f".{key}" if text else str(key))
    return text or "(top level)"


def _schema_at(schema: Schema, path: tuple) -> Schema | None:
    for key in path:
        if isinstance(key, int):
            continue
        nested = schema.fields.get(key)
        if not isinstance(nested, fields.Nested):
            return None
        schema = nested.schema
    return schema


def _unknown_key(schema: Schema, prefix: str, path: tuple) -> str:
    key, parent = str(path[-1]), _schema_at(schema, path[:-1])
    if parent is None:
        return "is not a known key"
    if key == "password" and isinstance(parent, BindSchema):
        return f"is not a known key: {_BIND_HINT}"
    valid = sorted(parent.fields)
    close = difflib.get_close_matches(key, valid, n=1)
    return (
        "is not a known key"
        + (f" (did you mean {close[0]}?)" if close else "")
        + f"; the keys of {_label(prefix, path[:-1]) if len(path) > 1 or prefix else 'the file'}"
        + f" are: {', '.join(valid)}"
    )


def invalid_configuration(exc: ValidationError, schema: Schema, prefix: str) -> InvalidInput:
    """The one place marshmallow's errors become a message: one line per problem, each naming
    the key's full path; an unknown key also lists the keys allowed where it stands."""
    lines = []
    for path, message in _flatten(exc.messages):
        if message == "Unknown field." and path:
            message = _unknown_key(schema, prefix, path)
        lines.append(f"{_label(prefix, path)}: {message}")
    return InvalidInput("invalid LDAP connector configuration:\n  " + "\n  ".join(lines))


def _merge(preset: dict, given: dict) -> dict:
    merged = dict(preset)
    for key, value in given.items():
        if isinstance(value, dict) and isinstance(merged.get(key), dict):
            merged[key] = {**merged[key], **value}
        else:
            merged[key] = value
    return merged


def _rdn_join(bases: list[str] | None, base_dn: str) -> tuple[str, ...]:
    """user_base / group_base may be absolute, or relative to base_dn (e.g. "OU=Staff")."""
    joined = [
        base if base.lower().endswith(base_dn.lower()) else f"{base},{base_dn}"
        for base in bases or ()
    ]
    return tuple(dict.fromkeys(joined)) or (base_dn,)


def parse_connector(name: str, raw: dict, where: str = "connectors") -> ConnectorConfig:
    schema = ConnectorSchema()
    try:
        data = schema.load(raw)
    except ValidationError as exc:
        raise invalid_configuration(exc, schema, f"{where}.{name}") from None
    preset = dict(PRESETS.get(data.get("preset") or "", {}))
    merged = _merge(preset, {k: v for k, v in data.items() if v is not None or k == "disabled"})
    if "disabled" not in data:
        merged["disabled"] = preset.get("disabled")
    attrs = merged.get("attributes") or {}
    tls = merged.get("tls") or {}
    disabled = merged.get("disabled")
    default_filter = f"(objectClass={merged.get('user_object_class') or 'inetOrgPerson'})"
    default_group_filter = f"(objectClass={merged.get('group_object_class') or 'groupOfNames'})"
    return ConnectorConfig(
        name=name,
        preset=data.get("preset"),
        servers=tuple(merged["servers"]),
        start_tls=merged["start_tls"],
        tls_verify=tls.get("verify", True),
        ca_file=tls.get("ca_file"),
        client_cert=tls.get("client_cert"),
        client_key=tls.get("client_key"),
        tls_server_name=tls.get("server_name"),
        bind_user=merged["bind"]["user"],
        password_env=merged["bind"].get("password_env"),
        password_file=merged["bind"].get("password_file"),
        base_dn=merged["base_dn"],
        user_base=_rdn_join(merged.get("user_base"), merged["base_dn"]),
        user_filter=merged.get("user_filter") or default_filter,
        user_object_class=merged.get("user_object_class"),
        group_base=_rdn_join(merged.get("group_base"), merged["base_dn"]),
        group_filter=merged.get("group_filter") or default_group_filter,
        group_object_class=merged.get("group_object_class"),
        attributes=Attributes(
            unique_id=attrs.get("unique_id"),
            email=attrs.get("email") or "mail",
            given_name=attrs.get("given_name"),
            family_name=attrs.get("family_name"),
            display_name=attrs.get("display_name"),
            group_name=attrs.get("group_name") or "cn",
            member=attrs.get("member"),
            member_uid=attrs.get("member_uid"),
            uid=attrs.get("uid"),
            email_prefix=attrs.get("email_prefix"),
        ),
        email_suffix=("@" + merged["email_suffix"].lstrip("@"))
        if merged.get("email_suffix")
        else None,
        disabled=Disabled(disabled["attribute"], tuple(disabled.get("values") or ()))
        if disabled
        else None,
        nested_groups=merged.get("nested_groups") or "client",
        primary_group=bool(merged.get("primary_group")),
        delta=merged.get("delta") or "modify_timestamp",
        page_size=merged["page_size"],
        time_limit=merged["time_limit"],
        interval=merged["interval"],
        full_sync_interval=merged["full_sync_interval"],
        clock_skew=merged["clock_skew"],
        raw=raw,
    )


def parse_document(document: Any) -> dict[str, ConnectorConfig]:
    """A whole file's worth: {"connectors": {name: {...}, ...}}."""
    if not isinstance(document, dict):
        raise InvalidInput("the LDAP configuration must be a mapping with a `connectors:` key")
    schema = FileSchema()
    try:
        schema.load(document)
    except ValidationError as exc:
        raise invalid_configuration(exc, schema, "") from None
    return {name: parse_connector(name, raw) for name, raw in document["connectors"].items()}


def load_yaml(text: str) -> tuple[dict, dict[str, ConnectorConfig]]:
    """(the document as JSON-able data, its connectors) from YAML text."""
    try:
        document = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise InvalidInput(f"the LDAP configuration is not valid YAML: {exc}") from None
    return document, parse_document(document)


def org_connectors(
    settings: dict | None, mapping: Mapping | None = None
) -> dict[str, ConnectorConfig]:
    """The connectors stored in an organization's settings (empty if none), with the e-mail
    rules of the organization's mapping (`with_mapping_email`) when it is given."""
    document = (settings or {}).get(SETTINGS_KEY)
    if not document:
        return {}
    connectors = parse_document(document)
    if mapping is None:
        return connectors
    return {name: with_mapping_email(cfg, mapping) for name, cfg in connectors.items()}


def with_mapping_email(cfg: ConnectorConfig, mapping: Mapping) -> ConnectorConfig:
    """The mapping's `attributes.ldap` e-mail rules applied to this connector's users: the
    e-mail from `email_attribute`, else `email_prefix_attribute` + `email_suffix`. They are read
    with the entry, as the connector's own keys are, so the e-mail is the directory user's
    userName everywhere. The connector's own YAML wins where it sets the same thing
    (`attributes.email`, `attributes.email_prefix`, `email_suffix`); the mapping's rules beat
    the preset's defaults."""
    rules = mapping.attributes
    own = cfg.raw.get("attributes") or {}
    attributes, suffix = cfg.attributes, cfg.email_suffix
    if rules.ldap_email_attribute and "email" not in own:
        attributes = replace(attributes, email=rules.ldap_email_attribute)
    if rules.ldap_email_prefix_attribute and rules.ldap_email_suffix and suffix is None:
        suffix = "@" + rules.ldap_email_suffix.lstrip("@")
        if "email_prefix" not in own:
            attributes = replace(attributes, email_prefix=rules.ldap_email_prefix_attribute)
    if attributes == cfg.attributes and suffix == cfg.email_suffix:
        return cfg
    return replace(cfg, attributes=attributes, email_suffix=suffix)


def pick(
    connectors: dict[str, ConnectorConfig], name: str | None, org_name: str
) -> list[ConnectorConfig]:
    if not connectors:
        raise InvalidInput(
            f"organization {org_name} has no LDAP connector: add one with `scimgate ldap set`"
        )
    if name is None:
        return list(connectors.values())
    if name not in connectors:
        raise InvalidInput(
            f"organization {org_name} has no LDAP connector named {name!r} "
            f"(it has: {', '.join(sorted(connectors))})"
        )
    return [connectors[name]]


def configuration_warnings(cfg: ConnectorConfig) -> list[str]:
    """What the configuration allows but an admin should know before trusting it."""
    warnings = []
    if not cfg.tls_verify:
        warnings.append(
            "TLS certificate verification is OFF (tls.verify: false): the directory server's "
            "identity is not checked"
        )
    warnings += [
        f"{url}: the bind password crosses the network in clear text (plain ldap:// without "
        "start_tls); use ldaps:// or set start_tls: true"
        for url in cfg.servers
        if url.startswith("ldap://") and not cfg.start_tls
    ]
    if cfg.disabled is None:
        warnings.append(
            "no `disabled:` rule: accounts disabled in the directory are provisioned as active; "
            "set disabled: {attribute: ATTRIBUTE, values: [VALUE, ...]} (for example "
            "{attribute: pwdAccountLockedTime} with the ppolicy overlay: present means disabled)"
        )
    return warnings


__all__ = [
    "PRESETS",
    "SETTINGS_KEY",
    "ConnectorConfig",
    "configuration_warnings",
    "load_yaml",
    "org_connectors",
    "parse_connector",
    "parse_document",
    "pick",
    "with_mapping_email",
]

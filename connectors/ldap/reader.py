"""Reading users and groups from a bound LDAP connection into compact records.

Does: paged, streaming searches that ask only for the attributes the sync needs; ranged
retrieval of large multi-valued attributes (AD's `member;range=0-1499`); stable identity
(objectGUID / entryUUID, DN only as fallback); disabled users; memberships from member DNs,
memberUid and primaryGroupID, nested groups through AD's in-chain rule or client-side with cycle
protection; the rootDSE facts a delta sync needs; the identity-only enumeration of the scope a
delta uses to see departures, and where a departed entry went (still in the directory, or deleted:
AD's Deleted Objects with the Show Deleted control). Every search must complete: an error, a time
or size limit, or a result cut short raises `LdapError`, never a shorter list.

Does not: write to the database (directory.py) or decide between full and delta (sync.py).
"""

from __future__ import annotations

import logging
import re
import uuid
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime

from ldap3 import BASE, LEVEL, SUBTREE, Connection
from ldap3.core.exceptions import LDAPException
from ldap3.utils.conv import escape_filter_chars

from connectors.ldap.config import ConnectorConfig
from connectors.ldap.connection import LdapError
from gateway.scim.schema import USER_SCHEMA

PAGED_RESULTS = "1.2.840.113556.1.4.319"
IN_CHAIN = "1.2.840.113556.1.4.1941"
AD_CAPABILITY = "1.2.840.113556.1.4.800"
SHOW_DELETED = "1.2.840.113556.1.4.417"
LOOKUP_CHUNK = 50  # ids per OR filter when looking up where departed entries went
UF_ACCOUNTDISABLE = 2

Progress = Callable[[str, int], None]
log = logging.getLogger(__name__)

_DN_SPACES = re.compile(r"\s*([,=+])\s*")
_RANGE = re.compile(r"^(?P<attr>[^;]+);range=(?P<low>\d+)-(?P<high>\d+|\*)$", re.I)

# Result codes that mean "you did not get everything" (RFC 4511 §4.1.9).
_RESULT_MEANING = {
    3: "the time limit was exceeded",
    4: "the size limit was exceeded (the server returned only part of the entries); set the "
    "connector's page_size below the server's size limit and make sure the server allows paged "
    "results to the bind user (OpenLDAP: olcSizeLimit / olcLimits size.pr, AD: MaxPageSize)",
    9: "the server returned partial results",
    10: "the server sent a referral instead of results",
    11: "an administrative limit was exceeded",
    51: "the server is busy",
    52: "the server is unavailable",
}


def normalize_dn(dn: str) -> str:
    dn = dn.strip()
    if len(dn.split(maxsplit=1)) > 1:  # only a DN with whitespace needs the expression
        dn = _DN_SPACES.sub(r"\1", dn)
    return dn.lower()


@dataclass(slots=True)
class UserRecord:
    external_id: str
    dn: str
    user_name: str
    active: bool
    resource: dict
    uid: str | None = None
    primary_group: int | None = None


@dataclass(slots=True)
class GroupRecord:
    external_id: str
    dn: str
    name: str
    member_dns: list[str] = field(default_factory=list)
    member_uids: list[str] = field(default_factory=list)
    rid: int | None = None


@dataclass
class UserIndex:
    """Just enough of every in-scope user to resolve group members."""

    by_dn: dict[str, str] = field(default_factory=dict)
    by_uid: dict[str, str] = field(default_factory=dict)
    by_primary_group: dict[int, list[str]] = field(default_factory=dict)

    def add(self, external_id: str, dn: str, uid: str | None, primary_group: int | None) -> None:
        self.by_dn[dn] = external_id
        if uid:
            self.by_uid.setdefault(uid, external_id)
        if primary_group is not None:
            self.by_primary_group.setdefault(primary_group, []).append(external_id)


@dataclass
class RootInfo:
    is_ad: bool
    highest_usn: int | None
    invocation_id: str | None
    server_time: datetime | None
    naming_context: str | None = None  # the naming context holding base_dn


@dataclass
class Whereabouts:
    """Where entries that left the sync scope went, by external id."""

    deleted: set[str] = field(default_factory=set)  # deleted from the directory
    elsewhere: set[str] = field(default_factory=set)  # still in the directory, out of scope
    # Neither could be told (the lookups failed): why, for the run's warnings.
    unknown_because: str | None = None


class _Entry:
    """One searchResEntry's raw attributes, looked up case-insensitively."""

    __slots__ = ("attrs", "dn")

    def __init__(self, dn: str, raw: dict[str, list[bytes]]) -> None:
        self.dn = dn
        self.attrs = {k.lower(): v for k, v in raw.items()}

    def values(self, name: str | None) -> list[bytes]:
        return self.attrs.get(name.lower(), []) if name else []

    def text(self, name: str | None) -> str | None:
        values = self.values(name)
        if not values:
            return None
        value = values[0]
        text = value.decode("utf-8", "replace") if isinstance(value, bytes) else str(value)
        return text.strip() or None

    def texts(self, name: str | None) -> list[str]:
        return [
            v.decode("utf-8", "replace") if isinstance(v, bytes) else str(v)
            for v in self.values(name)
        ]


def _identifier(entry: _Entry, attribute: str | None) -> str:
    """The stable id: objectGUID as a UUID string, entryUUID or any text attribute; the DN when
    the entry lacks it (a rename then looks like delete + add)."""
    values = entry.values(attribute)
    if values:
        value = values[0]
        if (
            attribute
            and attribute.lower() in ("objectguid", "msds-consistencyguid")
            and len(value) == 16
        ):
            return str(uuid.UUID(bytes_le=bytes(value)))
        text = value.decode("utf-8", "replace") if isinstance(value, bytes) else str(value)
        if text.strip():
            return text.strip().lower()
    return "dn:" + normalize_dn(entry.dn)


def _id_value(attribute: str, external_id: str) -> str:
    """An external id as the filter value that finds its entry (the inverse of `_identifier`)."""
    if attribute.lower() in ("objectguid", "msds-consistencyguid"):
        try:
            return "".join(f"\\{b:02x}" for b in uuid.UUID(external_id).bytes_le)
        except ValueError:
            pass
    return escape_filter_chars(external_id)


def _id_filters(attribute: str, ids: list[str]) -> Iterator[str]:
    """Filters that find the entries of `ids`, LOOKUP_CHUNK at a time."""
    for start in range(0, len(ids), LOOKUP_CHUNK):
        chunk = ids[start : start + LOOKUP_CHUNK]
        yield "(|" + "".join(f"({attribute}={_id_value(attribute, i)})" for i in chunk) + ")"


def _rid(sid: bytes | None) -> int | None:
    """The relative id: the last sub-authority of a binary SID."""
    if not sid or len(sid) < 12:
        return None
    return int.from_bytes(bytes(sid[-4:]), "little")


class Reader:
    def __init__(
        self, bound_connection: Connection, cfg: ConnectorConfig, progress: Progress | None = None
    ) -> None:
        self.conn = bound_connection
        self.cfg = cfg
        self.progress = progress or (lambda stage, n: None)
        self.warnings: list[str] = []
        self.without_email: set[str] = set()  # in scope, but skipped: no e-mail to provision

    # --- searching ----------------------------------------------------------------------------

    def _fail(self, what: str, base: str, result: dict) -> LdapError:
        code = result.get("result")
        message = (result.get("message") or "").strip()
        if code == 32:
            return LdapError("base_dn", f"base DN: {base!r} does not exist on the server ({what})")
        if code == 87:
            return LdapError(
                "filter", f"filter: the server refused the filter of {what}: {message}"
            )
        meaning = _RESULT_MEANING.get(code, f"{result.get('description')} (code {code})")
        return LdapError(
            "search",
            f"search of {what} under {base!r} did not complete: {meaning}"
            + (f": {message}" if message else ""),
        )

    def search(
        self,
        what: str,
        base: str | tuple[str, ...],
        search_filter: str,
        attributes: list[str],
        *,
        scope: str = SUBTREE,
    ) -> Iterator[_Entry]:
        """Every entry, page by page; raises unless the server says the search completed.
        Several bases (user_base / group_base lists) are read in turn, an entry under two of
        them (nested OUs) once."""
        bases = (base,) if isinstance(base, str) else base
        if len(bases) == 1:
            yield from self._search_base(what, bases[0], search_filter, attributes, scope)
            return
        seen: set[str] = set()
        for one in bases:
            for entry in self._search_base(what, one, search_filter, attributes, scope):
                dn = normalize_dn(entry.dn)
                if dn not in seen:
                    seen.add(dn)
                    yield entry

    def _search_base(
        self, what: str, base: str, search_filter: str, attributes: list[str], scope: str
    ) -> Iterator[_Entry]:
        cookie: bytes | None = None
        while True:
            try:
                self.conn.search(
                    base,
                    search_filter,
                    search_scope=scope,
                    attributes=attributes or ["1.1"],
                    paged_size=self.cfg.page_size if scope == SUBTREE else None,
                    paged_cookie=cookie,
                    time_limit=self.cfg.time_limit,
                )
            except LDAPException as exc:
                stage = "filter" if "filter" in type(exc).__name__.lower() else "search"
                raise LdapError(stage, f"{stage}: reading {what} failed: {exc}") from None
            result = self.conn.result
            if result.get("result") != 0:
                raise self._fail(what, base, result)
            response = self.conn.response or []
            for item in response:
                if item.get("type") != "searchResEntry":
                    continue  # continuation references point outside this naming context
                entry = _Entry(item["dn"], item["raw_attributes"])
                self._complete_ranges(entry)
                yield entry
            controls = result.get("controls") or {}
            cookie = (controls.get(PAGED_RESULTS) or {}).get("value", {}).get("cookie")
            if not cookie:
                return

    def _complete_ranges(self, entry: _Entry) -> None:
        """AD returns at most 1,500 values of `member` at a time (`member;range=0-1499`); fetch the
        rest, one range at a time, and fail rather than keep part of them."""
        ranged = [key for key in entry.attrs if ";range=" in key]
        for key in ranged:
            match = _RANGE.match(key)
            if not match:
                raise LdapError(
                    "search", f"search: unexpected ranged attribute {key!r} on {entry.dn}"
                )
            attr = match.group("attr")
            values = list(entry.attrs.pop(key))
            high = match.group("high")
            while high != "*":
                wanted = f"{attr};range={int(high) + 1}-*"
                try:
                    self.conn.search(
                        entry.dn,
                        "(objectClass=*)",
                        search_scope=BASE,
                        attributes=[wanted],
                        time_limit=self.cfg.time_limit,
                    )
                except LDAPException as exc:
                    raise LdapError(
                        "search", f"search: ranged retrieval of {attr} of {entry.dn} failed: {exc}"
                    ) from None
                result = self.conn.result
                if result.get("result") != 0 or not self.conn.response:
                    raise self._fail(f"{attr} of {entry.dn}", entry.dn, result)
                raw = {k.lower(): v for k, v in self.conn.response[0]["raw_attributes"].items()}
                keys = [k for k in raw if k.startswith(f"{attr.lower()};range=")]
                if not keys:
                    raise LdapError(
                        "search", f"search: ranged retrieval of {attr} of {entry.dn} stopped early"
                    )
                next_match = _RANGE.match(keys[0])
                assert next_match
                values.extend(raw[keys[0]])
                high = next_match.group("high")
            entry.attrs[attr.lower()] = entry.attrs.get(attr.lower(), []) + values

    # --- rootDSE ------------------------------------------------------------------------------

    def root_info(self) -> RootInfo:
        entries = list(
            self.search(
                "the rootDSE",
                "",
                "(objectClass=*)",
                [
                    "highestCommittedUSN",
                    "dsServiceName",
                    "currentTime",
                    "supportedCapabilities",
                    "defaultNamingContext",
                    "namingContexts",
                ],
                scope=BASE,
            )
        )
        root = entries[0] if entries else _Entry("", {})
        is_ad = AD_CAPABILITY in root.texts("supportedCapabilities")
        usn = root.text("highestCommittedUSN")
        invocation_id = None
        service = root.text("dsServiceName")
        if service:
            for entry in self.search(
                "the DC's NTDS settings", service, "(objectClass=*)", ["invocationId"], scope=BASE
            ):
                raw = entry.values("invocationId")
                if raw and len(raw[0]) == 16:
                    invocation_id = str(uuid.UUID(bytes_le=bytes(raw[0])))
        server_time = None
        current = root.text("currentTime")
        if current:
            server_time = parse_generalized_time(current)
        return RootInfo(
            is_ad,
            int(usn) if usn else None,
            invocation_id,
            server_time,
            self._naming_context(root),
        )

    def _naming_context(self, root: _Entry) -> str | None:
        base = normalize_dn(self.cfg.base_dn)
        contexts = [c for c in root.texts("namingContexts") if c.strip()]
        default = root.text("defaultNamingContext")
        for context in ([default] if default else []) + contexts:
            if base == normalize_dn(context) or base.endswith("," + normalize_dn(context)):
                return context
        return None

    # --- departures ---------------------------------------------------------------------------

    def identities(self, kind: str) -> set[str]:
        """The external id of every entry in the users' or groups' scope, and nothing else: the
        stable id and the DN (which every entry carries), no other attribute."""
        cfg = self.cfg
        base, flt = (
            (cfg.user_base, cfg.user_filter)
            if kind == "users"
            else (cfg.group_base, cfg.group_filter)
        )
        unique_id = cfg.attributes.unique_id
        return {
            _identifier(entry, unique_id)
            for entry in self.search(
                f"{kind} (identities)", base, flt, [unique_id] if unique_id else []
            )
        }

    def whereabouts(self, departed: set[str], root: RootInfo) -> Whereabouts:
        """Where entries that left the scope went: on AD, first the Deleted Objects container
        (Show Deleted control; a server without it is asked the second question only); then
        the whole naming context: an entry still there left the sync scope, one found nowhere
        was deleted. Lookups that fail leave the answer unknown; they never fail the run."""
        found = Whereabouts()
        todo = set(departed)
        if not todo:
            return found
        stable = {i for i in todo if not i.startswith("dn:")}  # a tombstone has another DN
        if root.is_ad and root.naming_context and stable:
            try:
                found.deleted = self.tombstones(stable, root.naming_context)
            except LdapError as exc:
                log.info("Deleted Objects not readable (%s); telling by the live directory", exc)
            todo -= found.deleted
        if not todo:
            return found
        try:
            if root.naming_context is None:
                raise LdapError("search", "the server names no naming context holding base_dn")
            live = self._look_up(todo, root.naming_context)
        except LdapError as exc:
            found.unknown_because = str(exc)
            return found
        found.elsewhere = live
        found.deleted |= todo - live
        return found

    def tombstones(self, ids: set[str], naming_context: str) -> set[str]:
        """AD: which of `ids` (stable ids) are in the Deleted Objects container, read with the
        Show Deleted control; raises LdapError when it cannot be read (no control, no right)."""
        unique_id = self.cfg.attributes.unique_id or "objectGUID"
        container = f"CN=Deleted Objects,{naming_context}"
        found: set[str] = set()
        for flt in _id_filters(unique_id, sorted(ids)):
            try:  # at most LOOKUP_CHUNK answers: one page, no paging
                self.conn.search(
                    container,
                    flt,
                    search_scope=LEVEL,
                    attributes=[unique_id],
                    controls=[(SHOW_DELETED, True, None)],
                    time_limit=self.cfg.time_limit,
                )
            except LDAPException as exc:
                raise LdapError("search", f"search: reading {container} failed: {exc}") from None
            if self.conn.result.get("result") != 0:
                raise self._fail("deleted objects", container, self.conn.result)
            found |= {
                _identifier(_Entry(item["dn"], item["raw_attributes"]), unique_id)
                for item in self.conn.response or []
                if item.get("type") == "searchResEntry"
            }
        return found & ids

    def _look_up(self, ids: set[str], base: str) -> set[str]:
        """Which of `ids` exist anywhere under `base`."""
        unique_id = self.cfg.attributes.unique_id
        found: set[str] = set()
        by_dn = sorted(i for i in ids if i.startswith("dn:"))
        for ext in by_dn:  # no stable id: the entry is known by its DN only
            try:
                if any(
                    True
                    for _ in self.search(
                        "a departed entry", ext[3:], "(objectClass=*)", [], scope=BASE
                    )
                ):
                    found.add(ext)
            except LdapError as exc:
                if exc.stage != "base_dn":  # not "no such object": the lookup failed
                    raise
        rest = sorted(set(ids) - set(by_dn))
        if not rest or not unique_id:
            return found
        for flt in _id_filters(unique_id, rest):
            for entry in self.search("departed entries", base, flt, [unique_id]):
                found.add(_identifier(entry, unique_id))
        return found & set(ids)

    # --- users --------------------------------------------------------------------------------

    def users(
        self, extra_filter: str = "", *, attributes: list[str] | None = None
    ) -> Iterator[UserRecord]:
        cfg = self.cfg
        attrs = attributes or cfg.user_attributes()
        flt = f"(&{cfg.user_filter}{extra_filter})" if extra_filter else cfg.user_filter
        n = 0
        for entry in self.search("users", cfg.user_base, flt, attrs):
            n += 1
            if n % 1000 == 0:
                self.progress("users", n)
            record = self.user_record(entry)
            if record is not None:
                yield record
        self.progress("users", n)

    def user_index(self) -> UserIndex:
        """DN, uid and primary group of every in-scope user (for members, during a delta)."""
        cfg = self.cfg
        attrs = [a for a in (cfg.attributes.unique_id, cfg.attributes.uid) if a]
        if cfg.primary_group:
            attrs.append("primaryGroupID")
        index = UserIndex()
        for entry in self.search("users", cfg.user_base, cfg.user_filter, attrs):
            uid = entry.text(cfg.attributes.uid)
            pgid = entry.text("primaryGroupID") if cfg.primary_group else None
            index.add(
                _identifier(entry, cfg.attributes.unique_id),
                normalize_dn(entry.dn),
                uid.lower() if uid else None,
                int(pgid) if pgid and pgid.isdigit() else None,
            )
        return index

    def user_record(self, entry: _Entry) -> UserRecord | None:
        cfg = self.cfg
        a = cfg.attributes
        external_id = _identifier(entry, a.unique_id)
        email = entry.text(a.email)
        if not email and a.email_prefix and cfg.email_suffix:
            prefix = entry.text(a.email_prefix)
            email = f"{prefix}{cfg.email_suffix}" if prefix else None
        if not email:
            self.warnings.append(
                f"skipped {entry.dn}: no e-mail ({a.email}) and no e-mail fallback"
            )
            self.without_email.add(external_id)
            return None
        given, family = entry.text(a.given_name), entry.text(a.family_name)
        display = entry.text(a.display_name)
        formatted = display or " ".join(p for p in (given, family) if p) or None
        active = not self._disabled(entry)
        name = {
            k: v
            for k, v in (("givenName", given), ("familyName", family), ("formatted", formatted))
            if v
        }
        resource: dict = {"schemas": [USER_SCHEMA], "userName": email}
        if name:
            resource["name"] = name
        if formatted:
            resource["displayName"] = formatted
        resource["emails"] = [{"value": email, "type": "work", "primary": True}]
        resource["active"] = active
        resource["externalId"] = external_id
        uid = entry.text(a.uid)
        pgid = entry.text("primaryGroupID") if cfg.primary_group else None
        return UserRecord(
            external_id=external_id,
            dn=normalize_dn(entry.dn),
            user_name=email,
            active=active,
            resource=resource,
            uid=uid.lower() if uid else None,
            primary_group=int(pgid) if pgid and pgid.isdigit() else None,
        )

    def _disabled(self, entry: _Entry) -> bool:
        rule = self.cfg.disabled
        if rule is None:
            return False
        values = entry.texts(rule.attribute)
        if rule.attribute.lower() == "useraccountcontrol":
            return any(v.strip().isdigit() and int(v) & UF_ACCOUNTDISABLE for v in values)
        if not rule.values:
            return bool(values)
        wanted = {v.lower() for v in rule.values}
        return any(v.strip().lower() in wanted for v in values)

    # --- groups -------------------------------------------------------------------------------

    def groups(self, extra_filter: str = "") -> Iterator[GroupRecord]:
        cfg = self.cfg
        attrs = cfg.group_attributes()
        flt = f"(&{cfg.group_filter}{extra_filter})" if extra_filter else cfg.group_filter
        n = 0
        for entry in self.search("groups", cfg.group_base, flt, attrs):
            n += 1
            if n % 100 == 0:
                self.progress("groups", n)
            yield self.group_record(entry)
        self.progress("groups", n)

    def group_record(self, entry: _Entry) -> GroupRecord:
        a = self.cfg.attributes
        name = entry.text(a.group_name) or entry.dn.split(",", 1)[0].split("=", 1)[-1]
        sid = entry.values("objectSid") if self.cfg.primary_group else []
        return GroupRecord(
            external_id=_identifier(entry, a.unique_id),
            dn=normalize_dn(entry.dn),
            name=name,
            member_dns=[normalize_dn(m) for m in entry.texts(a.member)],
            member_uids=[u.strip().lower() for u in entry.texts(a.member_uid)],
            rid=_rid(bytes(sid[0])) if sid else None,
        )

    def outside_group(self, dn: str) -> GroupRecord | None:
        """A member DN that is neither an in-scope user nor an in-scope group: if it is a group
        (outside the group base or filter), read it so its members count (client-side nesting)."""
        cfg = self.cfg
        classes = {
            c
            for c in (
                cfg.group_object_class,
                "group",
                "groupOfNames",
                "groupOfUniqueNames",
                "posixGroup",
            )
            if c
        }
        flt = "(|" + "".join(f"(objectClass={c})" for c in sorted(classes)) + ")"
        try:
            self.conn.search(
                dn,
                flt,
                search_scope=BASE,
                attributes=cfg.group_attributes(),
                time_limit=cfg.time_limit,
            )
        except LDAPException as exc:
            raise LdapError("search", f"search: reading member {dn} failed: {exc}") from None
        result = self.conn.result
        if result.get("result") == 32:  # a dangling member: nothing to add
            return None
        if result.get("result") != 0:
            raise self._fail(f"member {dn}", dn, result)
        for item in self.conn.response or []:
            if item.get("type") == "searchResEntry":
                entry = _Entry(item["dn"], item["raw_attributes"])
                self._complete_ranges(entry)
                return self.group_record(entry)
        return None

    def in_chain_users(self, group_dn: str) -> set[str]:
        """AD: every in-scope user in the group, through any depth of nesting, resolved by the
        server (LDAP_MATCHING_RULE_IN_CHAIN)."""
        cfg = self.cfg
        flt = f"(&{cfg.user_filter}(memberOf:{IN_CHAIN}:={escape_filter_chars(group_dn)}))"
        attrs = [cfg.attributes.unique_id] if cfg.attributes.unique_id else []
        return {
            _identifier(entry, cfg.attributes.unique_id)
            for entry in self.search(f"members of {group_dn}", cfg.user_base, flt, attrs)
        }


def parse_generalized_time(value: str) -> datetime | None:
    match = re.match(r"^(\d{14})(?:[.,]\d+)?Z$", value.strip())
    if not match:
        return None
    return datetime.strptime(match.group(1), "%Y%m%d%H%M%S").replace(tzinfo=UTC)


def generalized_time(value: datetime) -> str:
    return value.astimezone(UTC).strftime("%Y%m%d%H%M%SZ")


@dataclass
class Memberships:
    """Per group external id: the users in it (nesting resolved) and its in-scope child groups."""

    users: dict[str, set[str]]
    children: dict[str, set[str]]


def direct_users(group: GroupRecord, index: UserIndex) -> set[str]:
    """Users named in the group: member DNs, memberUid values and (AD) primaryGroupID."""
    users = {index.by_dn[m] for m in group.member_dns if m in index.by_dn}
    users |= {index.by_uid[u] for u in group.member_uids if u in index.by_uid}
    if group.rid is not None:
        users |= set(index.by_primary_group.get(group.rid, ()))
    return users


def resolve_memberships(
    groups: Iterable[GroupRecord],
    index: UserIndex,
    *,
    outside: dict[str, GroupRecord] | None = None,
    in_chain: dict[str, set[str]] | None = None,
) -> Memberships:
    """Pure: who is in each group. A user in a nested group counts in every group above it; a
    cycle (A in B in A) is walked once."""
    groups = list(groups)
    outside = outside or {}
    by_dn = {g.dn: g for g in groups}
    all_by_dn = {**outside, **by_dn}

    users: dict[str, set[str]] = {}
    children: dict[str, set[str]] = {}
    for group in groups:
        children[group.external_id] = {
            by_dn[m].external_id for m in group.member_dns if m in by_dn and m != group.dn
        }
        effective: set[str] = set()
        seen = {group.dn}
        stack = [group]
        while stack:
            current = stack.pop()
            effective |= direct_users(current, index)
            for member in current.member_dns:
                child = all_by_dn.get(member)
                if child is not None and child.dn not in seen:
                    seen.add(child.dn)
                    stack.append(child)
        if in_chain is not None and group.external_id in in_chain:
            effective |= in_chain[group.external_id]
        users[group.external_id] = effective
    return Memberships(users, children)


def unknown_member_dns(groups: Iterable[GroupRecord], index: UserIndex) -> set[str]:
    known = set(index.by_dn)
    group_dns = set()
    members: set[str] = set()
    for group in groups:
        group_dns.add(group.dn)
        members.update(group.member_dns)
    return members - known - group_dns

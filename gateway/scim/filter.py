"""SCIM filters (RFC 7644 §3.4.2.2) compiled into SQL that runs in the database.

Does: parse a filter with scim2-filter-parser (with two corrections, see `_Lexer` and `_Parser`),
resolve every attribute path against `schema`, check operators against attribute types, and turn
the parse tree into one SQLAlchemy boolean expression over `DirectoryUser` or `DirectoryGroup`:
indexed columns where the model has them (userName, externalId, displayName, active, meta.*),
EXISTS over `directory_group_members` for members/groups, and JSON access into `resource` (json_each
on SQLite, jsonb_array_elements on PostgreSQL) for everything else. The same expression object runs
on both databases: `_PerDialect` holds one tree per dialect and the compiler picks one. Also the
`sortBy` expression (RFC 7644 §3.4.2.3) and the in-memory match of one element of a multi-valued
attribute against a value filter, for PATCH paths such as `emails[type eq "work"].value`.

Does not: add org_id/source conditions (the caller scopes the query), paginate, execute anything,
or scan rows in Python. Every failure to understand a filter is `errors.InvalidFilter` (400,
invalidFilter); an unknown sortBy is `errors.InvalidValue`.

Semantics choices (RFC 7644 §3.4.2.2 leaves them open):
- `ne` is the negation of `eq`, and `not (...)` the complement of its filter: a resource without
  the attribute matches `title ne "x"`; `emails.value ne "x"` matches when no e-mail equals "x".
- `eq null` means "not present" and `ne null` means "present" (RFC 7643 §2.5: null, unassigned
  and empty are equivalent); `pr` is false for null, "", [] and {}.
- A boolean sub-attribute that is absent matches neither `eq true` nor `eq false`.
- caseExact=false compares lower() of both sides. SQLite's lower() folds ASCII only, so
  non-ASCII capitals match case-insensitively on PostgreSQL but only exactly on SQLite.
- String ordering (gt/ge/lt/le) follows the database's collation (bytewise on SQLite).
"""

from __future__ import annotations

import json
import operator
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, ClassVar

from scim2_filter_parser import ast
from scim2_filter_parser.lexer import SCIMLexer
from scim2_filter_parser.parser import SCIMParser, SCIMParserError
from sqlalchemy import (
    Boolean,
    String,
    Text,
    and_,
    case,
    cast,
    false,
    func,
    literal,
    literal_column,
    not_,
    or_,
    select,
    true,
)
from sqlalchemy.dialects.postgresql import ARRAY, JSONB
from sqlalchemy.ext.compiler import compiles
from sqlalchemy.sql import column
from sqlalchemy.sql.compiler import SQLCompiler
from sqlalchemy.sql.elements import ColumnElement
from sqlalchemy.sql.type_api import TypeEngine
from sqlalchemy.sql.visitors import InternalTraversal

from gateway.scim import errors
from gateway.scim.limits import (
    MAX_FILTER_COMPARISONS,
    MAX_FILTER_COST,
    MAX_FILTER_DEPTH,
    MAX_FILTER_LENGTH,
    MAX_FILTER_OPERATORS,
    shorten,
)
from gateway.scim.resources import storable
from gateway.scim.schema import (
    GROUP_TYPE,
    Attribute,
    ResolvedPath,
    ResourceType,
    resolve,
)
from gateway.store.models import DirectoryGroup, DirectoryGroupMember, DirectoryUser

__all__ = ["compile_filter", "matches_element", "sort_column"]

# Deeper nesting of parentheses / not() is refused rather than risking the recursion limit.
MAX_DEPTH = MAX_FILTER_DEPTH

# What one comparison on a value inside the JSON document, and one walk over the elements of a
# multi-valued attribute (json_each / jsonb_array_elements / EXISTS), add to a filter's cost.
_JSON_COST = 4
_WALK_COST = 8

_ORDERING = {"gt": operator.gt, "ge": operator.ge, "lt": operator.lt, "le": operator.le}
_SUBSTRING = ("co", "sw", "ew")
_STRING_TYPES = ("string", "reference", "binary")
_LIKE_ESCAPE = "/"
# RFC 7644 §3.4.2.2: "Clients MAY query by schema or schema extensions" with `schemas`.
_SCHEMAS = Attribute("schemas", type="reference", multi_valued=True)

# --- parsing ------------------------------------------------------------------------------------

_NAME_END = r"(?![a-zA-Z0-9_$-])"


class _Lexer(SCIMLexer):
    """SCIMLexer with compValue read by JSON rules (RFC 7644 §3.4.2.2 cites RFC 7159): strings
    with escapes, whole numbers with sign/fraction/exponent (upstream reads one digit), and
    true/false/null as typed values so `"true"` (a string) and `true` (a boolean) differ."""

    tokens = SCIMLexer.tokens

    @_(r"false" + _NAME_END)  # noqa: F821
    def FALSE(self, t: Any) -> Any:
        t.value = False
        return t

    @_(r"true" + _NAME_END)  # noqa: F821
    def TRUE(self, t: Any) -> Any:
        t.value = True
        return t

    @_(r"null" + _NAME_END)  # noqa: F821
    def NULL(self, t: Any) -> Any:
        t.value = None
        return t

    @_(r"-?(?:0|[1-9][0-9]*)(?:\.[0-9]+)?(?:[eE][+-]?[0-9]+)?")  # noqa: F821
    def NUMBER(self, t: Any) -> Any:
        try:
            t.value = json.loads(t.value)
        except ValueError:  # more digits than Python converts (sys.get_int_max_str_digits)
            raise errors.InvalidFilter(
                f"the number at position {t.index + 1} of the filter has too many digits"
            ) from None
        return t

    @_(r'"(?:[^"\\]|\\.)*"')  # noqa: F821
    def COMP_VALUE(self, t: Any) -> Any:
        try:
            value = json.loads(t.value, strict=False)
        except ValueError:
            raise errors.InvalidFilter(
                f"invalid string {shorten(t.value, 60)} at position {t.index + 1}:"
                " use JSON string escapes"
            ) from None
        if not storable(value):
            raise errors.InvalidFilter(
                "filter strings cannot contain the NUL character or an unpaired surrogate"
            )
        t.value = value
        return t

    def error(self, t: Any) -> None:
        raise errors.InvalidFilter(
            f"unexpected character {t.value[0]!r} at position {t.index + 1} of the filter"
        )


class _Parser(SCIMParser):
    """SCIMParser with RFC 7644 §3.4.2.2 precedence: upstream gives "and" and "or" the same
    level, so `a or b and c` would read `(a or b) and c`; here "and" binds tighter than "or".
    The grammar rules are upstream's, listed again because sly builds tables per class body."""

    precedence = (("left", "OR"), ("left", "AND"), ("right", "NOT"))
    filter = SCIMParser.filter
    value_path = SCIMParser.value_path
    attr_exp = SCIMParser.attr_exp
    log_exp = SCIMParser.log_exp
    comp_value = SCIMParser.comp_value
    attr_path = SCIMParser.attr_path
    sub_attr = SCIMParser.sub_attr

    def error(self, p: Any) -> None:
        if p is None:
            raise errors.InvalidFilter("the filter ends too early: an operand or ')' is missing")
        shown = p.value if isinstance(p.value, str) else json.dumps(p.value)
        raise errors.InvalidFilter(
            f'unexpected "{shorten(shown, 60)}" at position {p.index + 1} of the filter'
        )


_COMPARISONS = frozenset({"EQ", "NE", "CO", "SW", "EW", "GT", "GE", "LT", "LE", "PR"})
_OPERATORS = frozenset({"AND", "OR", "NOT"})


def _limited(expression: str) -> Iterator[Any]:
    """The filter's tokens, refusing one past the size limits (gateway.scim.limits) as soon as
    the token stream shows it: the LALR parser and the SQL built from its tree cost far more per
    token than the lexer, so neither sees an oversized filter. The length is checked before the
    lexer runs."""
    if len(expression) > MAX_FILTER_LENGTH:
        raise errors.InvalidFilter(
            f"the filter is {len(expression)} characters long; at most {MAX_FILTER_LENGTH}"
            " are allowed"
        )
    comparisons = operators = depth = 0
    for token in _Lexer().tokenize(expression):
        kind = token.type
        if kind in _COMPARISONS:
            comparisons += 1
            if comparisons > MAX_FILTER_COMPARISONS:
                raise errors.InvalidFilter(
                    f"the filter has more than {MAX_FILTER_COMPARISONS} comparisons:"
                    " split it into several requests"
                )
        elif kind in _OPERATORS:
            operators += 1
            if operators > MAX_FILTER_OPERATORS:
                raise errors.InvalidFilter(
                    f"the filter has more than {MAX_FILTER_OPERATORS} and/or/not operators:"
                    " split it into several requests"
                )
        elif kind in ("LPAREN", "LBRACKET"):
            depth += 1
            if depth > MAX_FILTER_DEPTH:
                raise errors.InvalidFilter(
                    f"the filter nests deeper than {MAX_FILTER_DEPTH} levels"
                )
        elif kind in ("RPAREN", "RBRACKET"):
            depth -= 1
        yield token


def _parse(expression: str) -> ast.Filter:
    if not isinstance(expression, str) or not expression.strip():
        raise errors.InvalidFilter("the filter is empty")
    try:
        tree = _Parser().parse(_limited(expression))
    except SCIMParserError:
        # Raised by upstream's attr_path rule for `a[...].b.c`: one sub-attribute only.
        raise errors.InvalidFilter("an attribute path takes at most one sub-attribute") from None
    if tree is None:
        raise errors.InvalidFilter("the filter is empty")
    return tree


def _operands(node: ast.LogExpr) -> list[Any]:
    """The operands of a chain of one logical operator, flattened without recursion so a long
    `id eq "a" or id eq "b" or ...` does not nest; and/or are associative, so grouping
    parentheses around the same operator can go."""
    op = node.op.lower()
    found: list[Any] = []
    stack: list[Any] = [node]
    while stack:
        item = stack.pop()
        while isinstance(item, ast.Filter) and not item.negated and item.namespace is None:
            item = item.expr
        if isinstance(item, ast.LogExpr) and item.op.lower() == op:
            stack.extend((item.expr2, item.expr1))
        else:
            found.append(item)
    return found


def _path_text(path: ast.AttrPath) -> str:
    name = path.attr_name if isinstance(path.attr_name, str) else "[...]"
    text = f"{path.uri}:{name}" if path.uri else name
    return f"{text}.{path.sub_attr.value}" if path.sub_attr is not None else text


def _element_name(path: ast.AttrPath, parent: Attribute) -> str:
    """The sub-attribute named inside `parent[...]` (RFC 7644 §3.4.2.2 valFilter)."""
    if not isinstance(path.attr_name, str):
        raise errors.InvalidFilter(f"a [filter] cannot be nested inside {parent.name}[...]")
    if path.uri or path.sub_attr is not None:
        raise errors.InvalidFilter(
            f"inside {parent.name}[...] name a sub-attribute of {parent.name} alone,"
            f' not "{_path_text(path)}"'
        )
    return path.attr_name


# --- values: checks and in-memory comparison ----------------------------------------------------


def _normalize(op: str, value: Any) -> tuple[str, Any, bool]:
    """Rewrite to (op, value, negate) so only eq/co/sw/ew/gt/ge/lt/le/pr remain: `ne` is
    `not eq`; `eq null` is `not pr` and `ne null` is `pr` (RFC 7643 §2.5)."""
    if op == "pr":
        return "pr", None, False
    if value is None and op in ("eq", "ne"):
        return "pr", None, op == "eq"
    if op == "ne":
        return "eq", value, True
    return op, value, False


def _describe(value: Any) -> str:
    return json.dumps(value)


def _operand(op: str, value: Any, attribute: Attribute) -> Any:
    """Check that `attribute op value` makes sense and return the value to compare with."""
    name = attribute.name
    if attribute.type == "complex":
        first = attribute.sub_attributes[0].name if attribute.sub_attributes else "value"
        raise errors.InvalidFilter(
            f"{name} is a complex attribute: compare one of its sub-attributes,"
            f' e.g. "{name}.{first}"'
        )
    if value is None:
        raise errors.InvalidFilter(
            f'null can only be compared with "eq" or "ne" ({name} {op} null)'
        )
    if op in _ORDERING and attribute.type in ("boolean", "binary"):
        # RFC 7644 §3.4.2.2 Table 3: gt/ge/lt/le on Boolean and Binary SHALL fail invalidFilter.
        raise errors.InvalidFilter(
            f'"{op}" cannot be used with {name}, a {attribute.type} attribute'
        )
    if op in _SUBSTRING and attribute.type in ("boolean", "dateTime"):
        raise errors.InvalidFilter(
            f'"{op}" cannot be used with {name}, a {attribute.type} attribute'
        )
    if attribute.type == "boolean":
        if not isinstance(value, bool):
            raise errors.InvalidFilter(
                f"{name} is boolean: compare it with true or false, not {_describe(value)}"
            )
        return value
    if attribute.type == "dateTime":
        if not isinstance(value, str):
            raise errors.InvalidFilter(
                f'{name} is a dateTime: compare it with a string such as "2024-05-01T00:00:00Z"'
            )
        return _parse_datetime(value, name)
    if attribute.type in _STRING_TYPES:
        if not isinstance(value, str):
            raise errors.InvalidFilter(
                f'{name} is a string: quote the value ("{value}"), not {_describe(value)}'
            )
        return value
    raise errors.InvalidFilter(
        f"filtering on {name}, a {attribute.type} attribute, is not supported"
    )


def _parse_datetime(value: str, name: str) -> datetime:
    """RFC 7643 §2.3.5 dateTime (xsd:dateTime); a value without an offset is taken as UTC."""
    try:
        parsed = datetime.fromisoformat(value)
        if parsed.tzinfo is None:
            return parsed.replace(tzinfo=UTC)
        # In UTC, as the database compares it: 0001-01-01T00:00:00+14:00 is before year 1.
        return parsed.astimezone(UTC)
    except (ValueError, OverflowError):
        raise errors.InvalidFilter(
            f"{name} needs an RFC 3339 date-time between years 1 and 9999 such as"
            f' "2024-05-01T12:00:00Z", not "{shorten(value, 60)}"'
        ) from None


def _present(stored: Any) -> bool:
    return stored is not None and stored != "" and stored != [] and stored != {}


def _as_bool(stored: Any) -> bool | None:
    if isinstance(stored, bool):
        return stored
    if isinstance(stored, str) and stored.lower() in ("true", "false"):
        return stored.lower() == "true"  # stored by a lenient client as "True"
    return None


def _as_text(stored: Any) -> str | None:
    """A stored scalar as the database sees it as text (JSON true -> 'true', 5 -> '5')."""
    if isinstance(stored, bool):
        return "true" if stored else "false"
    if isinstance(stored, str | int | float):
        return str(stored)
    return None


def _evaluate(op: str, stored: Any, value: Any, attribute: Attribute) -> bool:
    """One attribute expression against one stored value, in memory, with the SQL semantics."""
    op, value, negate = _normalize(op, value)
    if op == "pr":
        return _present(stored) != negate
    operand = _operand(op, value, attribute)
    return _compare_value(op, stored, operand, attribute) != negate


def _compare_value(op: str, stored: Any, operand: Any, attribute: Attribute) -> bool:
    if attribute.type == "boolean":
        flag = _as_bool(stored)
        return flag is not None and flag == operand
    if attribute.type == "dateTime":
        when = stored if isinstance(stored, datetime) else None
        if when is not None and when.tzinfo is None:
            when = when.replace(tzinfo=UTC)
        if isinstance(stored, str):
            try:
                when = _parse_datetime(stored, attribute.name)
            except errors.InvalidFilter:
                return False
        if when is None:
            return False
        return when == operand if op == "eq" else _ORDERING[op](when, operand)
    text = _as_text(stored)
    if text is None:
        return False
    if not attribute.case_exact:
        text, operand = text.lower(), operand.lower()
    if op == "eq":
        return text == operand
    if op == "co":
        return operand in text
    if op == "sw":
        return text.startswith(operand)
    if op == "ew":
        return text.endswith(operand)
    return _ORDERING[op](text, operand)


def _lookup(element: dict, name: str) -> Any:
    if name in element:
        return element[name]
    lname = name.lower()
    for key, value in element.items():
        if isinstance(key, str) and key.lower() == lname:
            return value
    return None


def _match(node: Any, element: dict, parent: Attribute, depth: int) -> bool:
    if depth > MAX_DEPTH:
        raise errors.InvalidFilter(f"the filter nests deeper than {MAX_DEPTH} levels")
    if isinstance(node, ast.Filter):
        if node.namespace is not None:
            raise errors.InvalidFilter(f"a [filter] cannot be nested inside {parent.name}[...]")
        return _match(node.expr, element, parent, depth + 1) != node.negated
    if isinstance(node, ast.LogExpr):
        # Every operand is evaluated, so a bad operand fails whatever the data says.
        results = [_match(item, element, parent, depth + 1) for item in _operands(node)]
        return all(results) if node.op.lower() == "and" else any(results)
    path = node.attr_path
    name = _element_name(path, parent)
    sub = parent.sub(name)
    if sub is None:
        raise errors.InvalidFilter(f'"{name}" is not a sub-attribute of {parent.name}')
    value = node.comp_value.value if node.comp_value is not None else None
    return _evaluate(node.value.lower(), _lookup(element, sub.name), value, sub)


# --- SQL: one expression per dialect ------------------------------------------------------------


class _PerDialect(ColumnElement[Any]):
    """The same expression built for SQLite and for PostgreSQL; the statement compiler renders
    the one for the connection's dialect, so callers hold one dialect-neutral object."""

    __visit_name__ = "scimgate_per_dialect"
    inherit_cache = True
    _traverse_internals: ClassVar = [
        ("sqlite", InternalTraversal.dp_clauseelement),
        ("postgresql", InternalTraversal.dp_clauseelement),
        ("type", InternalTraversal.dp_type),
    ]

    def __init__(
        self, sqlite: ColumnElement[Any], postgresql: ColumnElement[Any], type_: TypeEngine[Any]
    ):
        self.sqlite = sqlite
        self.postgresql = postgresql
        self.type = type_

    @property
    def _from_objects(self) -> list[Any]:
        return self.sqlite._from_objects

    def self_group(self, against: Any = None) -> ColumnElement[Any]:
        # Rendered in parentheses already; the default would wrap booleans as `(...) = 1` on
        # SQLite, which hides `user_name_lower = ?` from the index.
        return self

    def _negate(self) -> ColumnElement[Any]:
        return _PerDialect(not_(self.sqlite), not_(self.postgresql), self.type)


@compiles(_PerDialect)
def _compile_per_dialect(element: _PerDialect, compiler: SQLCompiler, **kw: Any) -> str:
    name = compiler.dialect.name
    if name not in ("sqlite", "postgresql", "default"):
        raise NotImplementedError(f"SCIM filters support SQLite and PostgreSQL, not {name}")
    chosen = element.postgresql if name == "postgresql" else element.sqlite
    return "(" + compiler.process(chosen, **kw) + ")"


# Keys (str) and array indexes (int); on SQLite the first item may be the SQL path of an array
# element (json_each.fullkey), so an element is addressed inside the row's own document.
JsonPath = tuple[Any, ...]


class _SqliteJson:
    """JSON access with SQLite's JSON1 functions; documents are JSON text."""

    name = "sqlite"

    @staticmethod
    def _path(path: JsonPath) -> ColumnElement[str]:
        root: ColumnElement[str] | None = None
        if path and isinstance(path[0], ColumnElement):
            root, path = path[0], path[1:]
        rest = "".join(f"[{key}]" if isinstance(key, int) else f'."{key}"' for key in path)
        if root is None:
            return literal("$" + rest, String)
        return root.concat(literal(rest, String)) if rest else root

    def text(self, doc: ColumnElement[Any], path: JsonPath) -> ColumnElement[Any]:
        kind = func.json_type(doc, self._path(path))
        return case(
            {"true": "true", "false": "false"},
            value=kind,
            else_=cast(func.json_extract(doc, self._path(path)), Text),
        )

    def present(self, doc: ColumnElement[Any], path: JsonPath) -> ColumnElement[bool]:
        kind = func.json_type(doc, self._path(path))
        extracted = func.json_extract(doc, self._path(path))
        return case(
            {
                "null": false(),
                "text": extracted != "",
                "array": func.json_array_length(doc, self._path(path)) > 0,
                "object": extracted != "{}",
            },
            value=kind,
            else_=kind.is_not(None),
        )

    def elements(
        self, doc: ColumnElement[Any], path: JsonPath
    ) -> tuple[Any, ColumnElement[Any], JsonPath, ColumnElement[bool]]:
        """(FROM item, element document, element path, condition) for the array at `path`."""
        each = func.json_each(doc, self._path(path)).table_valued("fullkey")
        # json_each walks an object's members too: only arrays hold multiple values.
        return each, doc, (each.c.fullkey,), func.json_type(doc, self._path(path)) == "array"

    def contains(self, haystack: ColumnElement[Any], needle: str) -> ColumnElement[bool]:
        return func.instr(haystack, literal(needle, String)) > 0


class _PostgresJson:
    """JSON access with PostgreSQL's jsonb operators; documents are jsonb."""

    name = "postgresql"

    @staticmethod
    def _path(path: JsonPath) -> ColumnElement[Any]:
        return literal([str(key) for key in path], ARRAY(Text))

    def text(self, doc: ColumnElement[Any], path: JsonPath) -> ColumnElement[Any]:
        return doc.op("#>>", return_type=Text)(self._path(path))

    def node(self, doc: ColumnElement[Any], path: JsonPath) -> ColumnElement[Any]:
        return doc.op("#>", return_type=JSONB)(self._path(path))

    def present(self, doc: ColumnElement[Any], path: JsonPath) -> ColumnElement[bool]:
        empty = [literal_column(f"'{v}'::jsonb") for v in ("null", '""', "[]", "{}")]
        return func.coalesce(self.node(doc, path).not_in(empty), false())

    def elements(
        self, doc: ColumnElement[Any], path: JsonPath
    ) -> tuple[Any, ColumnElement[Any], JsonPath, ColumnElement[bool]]:
        """(FROM item, element document, element path, condition) for the array at `path`."""
        array = self.node(doc, path)
        # jsonb_array_elements fails on a non-array; NULL instead yields no rows.
        source = case((func.jsonb_typeof(array) == "array", array))
        each = func.jsonb_array_elements(source).table_valued(column("value", JSONB))
        return each, each.c.value, (), true()

    def contains(self, haystack: ColumnElement[Any], needle: str) -> ColumnElement[bool]:
        return func.strpos(haystack, literal(needle, String)) > 0


_Json = _SqliteJson | _PostgresJson
_DIALECTS: tuple[_SqliteJson, _PostgresJson] = (_SqliteJson(), _PostgresJson())


# --- SQL: targets of attribute paths ------------------------------------------------------------


@dataclass(frozen=True)
class _Leaf:
    """One scalar value of a resource (or of one element) as SQL."""

    attribute: Attribute
    expr: ColumnElement[Any] | None = None
    present: ColumnElement[bool] | None = None  # presence test if not `expr is not null`
    nullable: bool = True
    lowered: bool = False  # expr holds str.lower() of the value (the indexed *_lower columns)
    json: bool = False  # expr is JSON text: booleans read 'true' / 'false'
    constant: str | None = None  # a value known without the database (meta.resourceType)


class _Scope:
    """The sub-attributes of one value of a complex attribute: what `name` means in `[...]`."""

    attribute: Attribute

    def leaf(self, name: str) -> _Leaf:
        raise NotImplementedError


class _Collection:
    """A complex attribute whose values a filter ranges over (RFC 7644 §3.4.2.2: a multi-valued
    attribute matches if any of its values matches)."""

    attribute: Attribute
    present: ColumnElement[bool]

    def any(self, build: Callable[[_Scope], ColumnElement[bool]]) -> ColumnElement[bool]:
        raise NotImplementedError

    @property
    def default_sub(self) -> str | None:
        # RFC 7643 §2.4: `value` is the significant value of a multi-valued attribute.
        if self.attribute.multi_valued and (
            self.attribute.sub("value") or not self.attribute.sub_attributes
        ):
            return "value"
        return None


class _JsonScope(_Scope):
    def __init__(self, json_: _Json, attribute: Attribute, doc: ColumnElement[Any], base: JsonPath):
        self.json, self.attribute, self.doc, self.base = json_, attribute, doc, base

    def leaf(self, name: str) -> _Leaf:
        if not self.attribute.sub_attributes and name.lower() == "value":
            # A simple multi-valued attribute (schemas): `value` names the element itself.
            sub, path = (
                Attribute(
                    self.attribute.name,
                    type=self.attribute.type,
                    case_exact=self.attribute.case_exact,
                ),
                self.base,
            )
        else:
            found = self.attribute.sub(name)
            if found is None:
                raise errors.InvalidFilter(
                    f'"{name}" is not a sub-attribute of {self.attribute.name}'
                )
            sub, path = found, (*self.base, found.name)
        return _Leaf(
            sub,
            self.json.text(self.doc, path),
            present=self.json.present(self.doc, path),
            json=True,
        )


class _JsonObject(_Collection):
    """A single-valued complex attribute in `resource` (name, manager)."""

    def __init__(self, json_: _Json, attribute: Attribute, doc: ColumnElement[Any], path: JsonPath):
        self.json, self.attribute, self.doc, self.path = json_, attribute, doc, path
        self.present = json_.present(doc, path)

    def any(self, build: Callable[[_Scope], ColumnElement[bool]]) -> ColumnElement[bool]:
        return build(_JsonScope(self.json, self.attribute, self.doc, self.path))


class _JsonArray(_Collection):
    """A multi-valued attribute in `resource` (emails, phoneNumbers, schemas, ...)."""

    def __init__(self, json_: _Json, attribute: Attribute, doc: ColumnElement[Any], path: JsonPath):
        self.json, self.attribute, self.doc, self.path = json_, attribute, doc, path
        self.present = json_.present(doc, path)

    def any(self, build: Callable[[_Scope], ColumnElement[bool]]) -> ColumnElement[bool]:
        source, element, base, guard = self.json.elements(self.doc, self.path)
        condition = build(_JsonScope(self.json, self.attribute, element, base))
        return select(literal_column("1")).select_from(source).where(guard, condition).exists()

    def sort_key(self, sub: str) -> _Leaf:
        """RFC 7644 §3.4.2.3: sort a multi-valued attribute by its primary value, else the first."""
        source, element, base, guard = self.json.elements(self.doc, self.path)
        scope = _JsonScope(self.json, self.attribute, element, base)
        leaf = scope.leaf(sub)
        first = self.json.text(self.doc, (*self.path, 0, leaf.attribute.name))
        if self.attribute.sub("primary") is None:
            return _Leaf(leaf.attribute, first, json=True)
        primary = scope.leaf("primary").expr
        chosen = (
            select(leaf.expr)
            .select_from(source)
            .where(guard, func.lower(primary) == "true")
            .limit(1)
            .scalar_subquery()
        )
        return _Leaf(leaf.attribute, func.coalesce(chosen, first), json=True)


class _MembershipScope(_Scope):
    def __init__(self, attribute: Attribute, resource_type: ResourceType, member: Any):
        self.attribute, self.resource_type, self.member = attribute, resource_type, member

    def leaf(self, name: str) -> _Leaf:
        sub = self.attribute.sub(name)
        if sub is None:
            raise errors.InvalidFilter(f'"{name}" is not a sub-attribute of {self.attribute.name}')
        m = self.member.c
        if self.resource_type is GROUP_TYPE and sub.name == "value":
            return _Leaf(sub, func.coalesce(m.user_id, m.child_group_id), nullable=False)
        if self.resource_type is GROUP_TYPE and sub.name == "type":
            kind = case((m.user_id.is_not(None), "User"), else_="Group")
            return _Leaf(sub, kind, nullable=False)
        if self.resource_type is not GROUP_TYPE and sub.name == "value":
            return _Leaf(sub, m.group_id, nullable=False)
        raise errors.InvalidFilter(
            f"filtering on {self.attribute.name}.{sub.name} is not supported"
        )


class _Memberships(_Collection):
    """Group `members` / User `groups`: rows of directory_group_members, not JSON."""

    def __init__(self, attribute: Attribute, resource_type: ResourceType):
        self.attribute, self.resource_type = attribute, resource_type
        self.present = self.any(lambda _scope: true())

    def any(self, build: Callable[[_Scope], ColumnElement[bool]]) -> ColumnElement[bool]:
        member = DirectoryGroupMember.__table__.alias()
        if self.resource_type is GROUP_TYPE:
            owner = member.c.group_id == DirectoryGroup.id
        else:
            owner = member.c.user_id == DirectoryUser.id
        condition = build(_MembershipScope(self.attribute, self.resource_type, member))
        return select(literal_column("1")).select_from(member).where(owner, condition).exists()


# --- SQL: the compiler --------------------------------------------------------------------------


def _like_pattern(op: str, value: str) -> str:
    escaped = (
        value.replace(_LIKE_ESCAPE, _LIKE_ESCAPE * 2)
        .replace("%", _LIKE_ESCAPE + "%")
        .replace("_", _LIKE_ESCAPE + "_")
    )
    return {"co": f"%{escaped}%", "sw": f"{escaped}%", "ew": f"%{escaped}"}[op]


class _SqlBuilder:
    """Walks one parse tree into SQL for one dialect."""

    def __init__(self, resource_type: ResourceType, json_: _Json):
        self.resource_type = resource_type
        self.model: Any = DirectoryGroup if resource_type is GROUP_TYPE else DirectoryUser
        self.json = json_
        self.cost = 0

    def spend(self, cost: int) -> None:
        """Add to the filter's cost (gateway.scim.limits.MAX_FILTER_COST): what the database
        pays per row for it, so a filter within the term limit still cannot ask for too much."""
        self.cost += cost
        if self.cost > MAX_FILTER_COST:
            raise errors.InvalidFilter(
                f"the filter asks too much of the database (cost over {MAX_FILTER_COST}:"
                " 1 per comparison on userName, externalId, displayName, id, active or meta.*,"
                " 4 on other attributes, 8 per multi-valued attribute searched)"
            )

    # attribute paths at the top level of the resource

    def resolve(self, path: ast.AttrPath) -> ResolvedPath:
        text = _path_text(path)
        resolved = resolve(text, self.resource_type)
        if resolved is None:
            raise errors.InvalidFilter(f'unknown attribute "{text}" for {self.resource_type.name}')
        return resolved

    def columns(self) -> dict[tuple[str, str | None], _Leaf]:
        model, rt = self.model, self.resource_type
        core = resolve("meta", rt)
        assert core is not None
        meta = core.attribute

        def sub(name: str) -> Attribute:
            found = meta.sub(name)
            assert found is not None
            return found

        leaves = {
            ("id", None): _Leaf(_attr(rt, "id"), model.id, nullable=False),
            ("externalId", None): _Leaf(_attr(rt, "externalId"), model.external_id),
            ("meta", "created"): _Leaf(sub("created"), model.created_at, nullable=False),
            ("meta", "lastModified"): _Leaf(
                sub("lastModified"), model.last_modified, nullable=False
            ),
            ("meta", "resourceType"): _Leaf(sub("resourceType"), constant=rt.name),
        }
        if rt is GROUP_TYPE:
            leaves[("displayName", None)] = _Leaf(
                _attr(rt, "displayName"), model.display_name_lower, nullable=False, lowered=True
            )
        else:
            leaves[("userName", None)] = _Leaf(
                _attr(rt, "userName"), model.user_name_lower, nullable=False, lowered=True
            )
            leaves[("displayName", None)] = _Leaf(_attr(rt, "displayName"), model.display_name)
            leaves[("active", None)] = _Leaf(_attr(rt, "active"), model.active)
        return leaves

    def target(self, path: ast.AttrPath) -> _Leaf | tuple[_Collection, str | None]:
        """What a top-level attribute path refers to: one value, or a collection of values and
        the sub-attribute named (if any)."""
        if (
            path.uri is None
            and isinstance(path.attr_name, str)
            and path.attr_name.lower() == "schemas"
        ):
            if path.sub_attr is not None:
                raise errors.InvalidFilter("schemas has no sub-attributes")
            return _JsonArray(self.json, _SCHEMAS, self.model.resource, ("schemas",)), None
        resolved = self.resolve(path)
        attribute, sub = resolved.attribute, resolved.sub
        if not resolved.is_extension:
            leaf = self.columns().get((attribute.name, sub.name if sub else None))
            if leaf is not None:
                return leaf
            if attribute.name == "meta":
                shown = f"meta.{sub.name}" if sub else "meta"
                raise errors.InvalidFilter(
                    f"filtering on {shown} is not supported: use meta.created, meta.lastModified"
                    " or meta.resourceType"
                )
            if attribute.name in ("members", "groups"):
                return _Memberships(attribute, self.resource_type), sub.name if sub else None
        if attribute.returned == "never":
            raise errors.InvalidFilter(
                f"{attribute.name} is never returned and cannot be filtered on"
            )
        doc = self.model.resource
        json_path: JsonPath = (
            (resolved.schema.id, attribute.name) if resolved.is_extension else (attribute.name,)
        )
        if attribute.multi_valued:
            return _JsonArray(self.json, attribute, doc, json_path), sub.name if sub else None
        if attribute.type == "complex":
            if sub is None:
                return _JsonObject(self.json, attribute, doc, json_path), None
            json_path = (*json_path, sub.name)
            attribute = sub
        return _Leaf(
            attribute,
            self.json.text(doc, json_path),
            present=self.json.present(doc, json_path),
            json=True,
        )

    # the walk

    def filter(self, node: Any, scope: _Scope | None, depth: int) -> ColumnElement[bool]:
        if depth > MAX_DEPTH:
            raise errors.InvalidFilter(f"the filter nests deeper than {MAX_DEPTH} levels")
        if isinstance(node, ast.Filter):
            if node.namespace is not None:
                expr = self.value_path(node.namespace, node.expr, scope, depth)
            else:
                expr = self.filter(node.expr, scope, depth + 1)
            return not_(expr) if node.negated else expr
        if isinstance(node, ast.LogExpr):
            parts = [self.filter(item, scope, depth + 1) for item in _operands(node)]
            return and_(*parts) if node.op.lower() == "and" else or_(*parts)
        op = node.value.lower()
        value = node.comp_value.value if node.comp_value is not None else None
        path = node.attr_path
        if scope is not None:
            return self.predicate(scope.leaf(_element_name(path, scope.attribute)), op, value)
        if isinstance(path.attr_name, ast.Filter):
            # emails[type eq "work"].value eq "x": the comparison joins the bracket filter on
            # the same element (RFC 7644 §3.4.2.2 Table 5, "[ ]").
            inner = path.attr_name
            return self.value_path(inner.namespace, inner.expr, None, depth, op, value)
        target = self.target(path)
        if isinstance(target, _Leaf):
            return self.predicate(target, op, value)
        collection, sub = target
        return self.in_collection(collection, None, sub, op, value, depth)

    def value_path(
        self,
        namespace: ast.AttrPath,
        inner: Any,
        scope: _Scope | None,
        depth: int,
        op: str | None = None,
        value: Any = None,
    ) -> ColumnElement[bool]:
        if scope is not None or not isinstance(namespace.attr_name, str):
            raise errors.InvalidFilter("a [filter] cannot be nested inside another [filter]")
        sub = namespace.sub_attr.value if namespace.sub_attr is not None else None
        if op is None and sub is not None:
            raise errors.InvalidFilter(
                f'"{_path_text(namespace)}[...]": write the sub-attribute after the brackets and'
                f" compare it, e.g. {namespace.attr_name}[...].{sub} pr"
            )
        target = self.target(ast.AttrPath(namespace.attr_name, None, namespace.uri))
        if isinstance(target, _Leaf) or target[0].attribute.sub_attributes == ():
            shown = _path_text(ast.AttrPath(namespace.attr_name, None, namespace.uri))
            raise errors.InvalidFilter(
                f"{shown} has no sub-attributes: a [filter] needs a complex attribute"
            )
        collection = target[0]
        self.spend(_WALK_COST)
        if op is None:
            return collection.any(lambda element: self.filter(inner, element, depth + 1))
        return self.in_collection(collection, inner, sub, op, value, depth)

    def in_collection(
        self,
        collection: _Collection,
        inner: Any,
        sub: str | None,
        op: str,
        value: Any,
        depth: int,
    ) -> ColumnElement[bool]:
        if inner is None:  # value_path has paid for a walk with a [filter]
            self.spend(_WALK_COST)
        op, value, negate = _normalize(op, value)
        if sub is None and op == "pr":
            if inner is None:
                expr = collection.present
            else:
                expr = collection.any(lambda element: self.filter(inner, element, depth + 1))
            return not_(expr) if negate else expr
        sub = sub or collection.default_sub
        if sub is None:
            _operand(op, value, collection.attribute)  # raises: complex attribute compared

        def build(element: _Scope) -> ColumnElement[bool]:
            assert sub is not None
            condition = self.positive(element.leaf(sub), op, value)
            if inner is None:
                return condition
            return and_(self.filter(inner, element, depth + 1), condition)

        expr = collection.any(build)
        return not_(expr) if negate else expr

    # comparisons

    def predicate(self, leaf: _Leaf, op: str, value: Any) -> ColumnElement[bool]:
        op, value, negate = _normalize(op, value)
        expr = self.positive(leaf, op, value)
        return not_(expr) if negate else expr

    def positive(self, leaf: _Leaf, op: str, value: Any) -> ColumnElement[bool]:
        """`leaf op value` for op in eq/co/sw/ew/gt/ge/lt/le/pr, false (never NULL) when the
        value is absent, so not() and ne give the complement (SQL's NULL would drop rows)."""
        attribute = leaf.attribute
        self.spend(_JSON_COST if leaf.json else 1)
        if leaf.constant is not None:
            return true() if _evaluate(op, leaf.constant, value, attribute) else false()
        x = leaf.expr
        assert x is not None
        if op == "pr":
            if leaf.present is not None:
                return leaf.present
            present = x.is_not(None)
            return and_(present, x != "") if attribute.type in _STRING_TYPES else present
        operand = _operand(op, value, attribute)
        condition: ColumnElement[bool]
        if attribute.type == "boolean":
            if leaf.json:
                condition = func.lower(x) == ("true" if operand else "false")
            else:
                condition = x == operand
        elif attribute.type == "dateTime":
            if leaf.json:
                raise errors.InvalidFilter(f"filtering on {attribute.name} is not supported")
            condition = x == operand if op == "eq" else _ORDERING[op](x, operand)
        else:
            condition = self.compare_text(leaf, op, operand)
        return and_(x.is_not(None), condition) if leaf.nullable else condition

    def compare_text(self, leaf: _Leaf, op: str, operand: str) -> ColumnElement[bool]:
        x = leaf.expr
        assert x is not None
        if leaf.attribute.case_exact:
            if op == "eq":
                return x == literal(operand, String)
            if op in _ORDERING:
                return _ORDERING[op](x, literal(operand, String))
            # LIKE is case-insensitive on SQLite, so exact substring tests use substr/instr.
            size = len(operand)
            if op == "sw":
                return func.substr(x, 1, size) == literal(operand, String)
            if op == "ew":
                return and_(
                    func.length(x) >= size,
                    func.substr(x, func.length(x) - size + 1) == literal(operand, String),
                )
            return self.json.contains(x, operand)
        # caseExact false (RFC 7643 §2.2): the *_lower columns hold str.lower() of the value;
        # anything else is lower()ed on both sides in the database.
        if leaf.lowered:
            left: ColumnElement[Any] = x
            right: ColumnElement[Any] = literal(operand.lower(), String)
            pattern = (
                literal(_like_pattern(op, operand.lower()), String) if op in _SUBSTRING else None
            )
        else:
            left = func.lower(x)
            right = func.lower(literal(operand, String))
            pattern = (
                func.lower(literal(_like_pattern(op, operand), String))
                if op in _SUBSTRING
                else None
            )
        if op == "eq":
            return left == right
        if op in _ORDERING:
            return _ORDERING[op](left, right)
        assert pattern is not None
        return left.like(pattern, escape=_LIKE_ESCAPE)

    # sorting

    def sort_key(self, path: ast.AttrPath) -> ColumnElement[Any]:
        target = self.target(path)
        if isinstance(target, _Leaf):
            if target.constant is not None:
                return literal(target.constant, String)
            leaf = target
        else:
            collection, sub = target
            sub = sub or collection.default_sub
            if not isinstance(collection, _JsonArray) or sub is None:
                raise errors.InvalidFilter(
                    f"{collection.attribute.name} has no single value to sort by"
                )
            leaf = collection.sort_key(sub)
        assert leaf.expr is not None
        if leaf.attribute.type == "complex":
            raise errors.InvalidFilter(
                f"{leaf.attribute.name} is complex: sort by one of its sub-attributes"
            )
        if (
            leaf.attribute.type in _STRING_TYPES
            and not leaf.attribute.case_exact
            and not leaf.lowered
        ):
            return func.lower(leaf.expr)
        return leaf.expr


def _attr(resource_type: ResourceType, name: str) -> Attribute:
    found = resolve(name, resource_type)
    assert found is not None
    return found.attribute


def _per_dialect(
    build: Callable[[_SqlBuilder], ColumnElement[Any]],
    resource_type: ResourceType,
    type_: TypeEngine[Any] | None = None,
) -> ColumnElement[Any]:
    sqlite, postgresql = (build(_SqlBuilder(resource_type, json_)) for json_ in _DIALECTS)
    return _PerDialect(sqlite, postgresql, type_ if type_ is not None else sqlite.type)


# --- public API ---------------------------------------------------------------------------------


def compile_filter(expression: str, resource_type: ResourceType) -> ColumnElement[bool]:
    """The SQL condition for a SCIM filter on `resource_type`'s model (DirectoryUser or
    DirectoryGroup). The caller adds its org_id/source conditions. Raises InvalidFilter."""
    tree = _parse(expression)
    return _per_dialect(lambda builder: builder.filter(tree, None, 0), resource_type, Boolean())


def sort_column(sort_by: str, resource_type: ResourceType) -> ColumnElement[Any]:
    """The ORDER BY expression for `sortBy` (RFC 7644 §3.4.2.3): case-insensitive attributes sort
    by their lower-cased value, multi-valued ones by the primary (else first) value. Raises
    InvalidValue for an attribute that cannot be sorted by."""
    path = (sort_by or "").strip()
    try:
        tree = _parse(f"{path} pr")
        node = tree.expr
        if not isinstance(node, ast.AttrExpr) or not isinstance(node.attr_path.attr_name, str):
            raise errors.InvalidFilter("not an attribute path")
        return _per_dialect(lambda builder: builder.sort_key(node.attr_path), resource_type)
    except errors.InvalidFilter as exc:
        raise errors.InvalidValue(f'cannot sort by "{sort_by}": {exc.detail}') from None


def matches_element(filter_text: str, element: dict, attribute: Attribute) -> bool:
    """Whether one value of the multi-valued complex `attribute` (a dict) matches a value filter,
    the text inside the brackets of `emails[type eq "work" and primary eq true]`. Sub-attribute
    names and their case-exactness come from `attribute.sub_attributes`. Raises InvalidFilter."""
    tree = _parse(filter_text)
    if not attribute.sub_attributes:
        raise errors.InvalidFilter(f"{attribute.name} has no sub-attributes to filter on")
    return _match(tree, element if isinstance(element, dict) else {}, attribute, 0)

"""Splitting a set of ids into lists short enough for one `IN (...)` each.

PostgreSQL binds at most 65,535 parameters in one statement and SQLite 32,766; a long list of ids
goes in several statements. Sorted, so that every writer touches rows in the same order.
Does not: run statements.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator

CHUNK = 900  # ids per IN (...) list: well under every database's bind-parameter limit


def chunks(values: Iterable[str], size: int = CHUNK) -> Iterator[list[str]]:
    items = sorted(values)
    for i in range(0, len(items), size):
        yield items[i : i + size]

"""Plain-text tables for people: each column padded to its widest cell, numbers right-aligned
where asked. Does: lay out lines. Does not: print (commands echo the lines) or shorten cells."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any


def table_lines(
    headers: Sequence[str], rows: Iterable[Sequence[Any]], *, right: Sequence[int] = ()
) -> list[str]:
    """The header line and one line per row; columns whose index is in `right` align right."""
    cells = [["" if v is None else str(v) for v in row] for row in rows]
    widths = [max([len(h)] + [len(r[i]) for r in cells]) for i, h in enumerate(headers)]

    def line(values: Sequence[str]) -> str:
        padded = (
            v.rjust(w) if i in right else v.ljust(w)
            for i, (v, w) in enumerate(zip(values, widths, strict=True))
        )
        return "  ".join(padded).rstrip()

    return [line(list(headers)), *(line(r) for r in cells)]

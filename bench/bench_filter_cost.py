"""Where a SCIM filter's time goes before the database sees it (issue 17): scim2-filter-parser's
lexer, its LALR parser, and the SQL built from the tree (both dialects), per number of `or`
terms; and how long a filter past the limits (gateway.scim.limits) takes to be refused.

Not a test: prints a Markdown table. Run: .venv/bin/python bench/bench_filter_cost.py
"""

from __future__ import annotations

import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager

from gateway.scim import filter as filter_module
from gateway.scim import limits
from gateway.scim.errors import InvalidFilter
from gateway.scim.filter import _Lexer, _Parser, compile_filter
from gateway.scim.schema import USER_TYPE


def best_of(repeat: int, run: Callable[[], object]) -> float:
    """The fastest of `repeat` runs, in seconds (the machine is shared: the least disturbed)."""
    times = []
    for _ in range(repeat):
        started = time.perf_counter()
        run()
        times.append(time.perf_counter() - started)
    return min(times)


_LIMITS = ("MAX_FILTER_LENGTH", "MAX_FILTER_COMPARISONS", "MAX_FILTER_OPERATORS", "MAX_FILTER_COST")


@contextmanager
def limits_lifted() -> Iterator[None]:
    """filter.py without its limits, to measure what an unlimited filter would cost."""
    saved = {name: getattr(filter_module, name) for name in _LIMITS}
    for name in _LIMITS:
        setattr(filter_module, name, 10**9)
    try:
        yield
    finally:
        for name, value in saved.items():
            setattr(filter_module, name, value)


def chain(terms: int) -> str:
    return " or ".join(f'userName eq "user{i}@example.com"' for i in range(terms))


def refused(expression: str) -> None:
    try:
        compile_filter(expression, USER_TYPE)
    except InvalidFilter:
        return
    raise AssertionError("the filter was accepted")


def main() -> None:
    print("| or-terms | characters | lex ms | parse ms | SQL build ms (2 dialects) |")
    print("| ---: | ---: | ---: | ---: | ---: |")
    for terms in (10, 200, 1_000, 5_000):
        text = chain(terms)
        lex = best_of(3, lambda text=text: list(_Lexer().tokenize(text)))
        tokens = list(_Lexer().tokenize(text))
        parse = best_of(3, lambda tokens=tokens: _Parser().parse(iter(tokens)))
        with limits_lifted():
            total = best_of(3, lambda text=text: compile_filter(text, USER_TYPE))
        build = max(total - lex - parse, 0.0)
        print(
            f"| {terms:,} | {len(text):,} | {lex * 1000:.1f} | {parse * 1000:.1f} |"
            f" {build * 1000:.1f} |"
        )
    print()
    print("| refused filter | ms to answer invalidFilter |")
    print("| --- | ---: |")
    inner = " or ".join(f'title eq "t{i}"' for i in range(30))
    cases = {
        "30,000 or-terms (708,886 characters)": chain(30_000),
        f"{limits.MAX_FILTER_COMPARISONS + 1} short or-terms": " or ".join(
            f'id eq "{i}"' for i in range(limits.MAX_FILTER_COMPARISONS + 1)
        ),
        "100 x not(30 terms)": " and ".join(f"not ({inner})" for _ in range(100)),
    }
    for name, text in cases.items():
        print(f"| {name} | {best_of(3, lambda text=text: refused(text)) * 1000:.2f} |")
    print(f"\npython {sys.version.split()[0]}", file=sys.stderr)


if __name__ == "__main__":
    main()

"""The limits the SCIM edge puts on what a client sends, in one place.

Does: name each limit and say why it is what it is; the README's "Limits" section (where
ServiceProviderConfig's documentationUri leads) lists them, and every refusal's detail names the
limit it met. Does not: enforce them; filter.py (filters), routes.py (bodies, query parameters,
Content-Type) and service.py (paging) do.

Why these numbers. Real IdPs send one comparison (`userName eq "x"`) or a handful joined by
`or`; the largest found in the IdP tests is well under 20 terms. A filter costs the gateway time
before the database sees it: scim2-filter-parser's lexer and LALR parser take about 10 us and
40 us per comparison, the SQL built from the tree 90 to 130 us (both dialects; figures from
bench/bench_filter_cost.py); 30,000 terms took 10 s of CPU. The database then pays per row
for every term, and SQLite refuses an expression tree more than 1,000 deep. So: 200
comparisons, checked on the token stream before the parser runs, and a character limit checked
before the lexer does.
"""

from __future__ import annotations

# --- filters (RFC 7644 §3.4.2.2) -----------------------------------------------------------------

# Characters in one filter; longer is refused before the lexer runs. The engine's own lookups
# (gateway.provisioning.reconcile) send up to 50 `emails.value eq "<254 characters>"`: 14,000.
MAX_FILTER_LENGTH = 20_000
# Attribute comparisons (`attr op value`, `attr pr`) in one filter, value filters' included.
MAX_FILTER_COMPARISONS = 200
# Logical operators (`and`, `or`, `not`) in one filter.
MAX_FILTER_OPERATORS = 200
# Nesting of parentheses, `not (...)` and `attr[...]`.
MAX_FILTER_DEPTH = 32
# Cost of the SQL a filter becomes: 1 per comparison on a column (id, externalId, userName,
# displayName, active, meta.*), 4 per comparison on a value inside the JSON document, plus 8 per
# walk over a multi-valued attribute (`emails.value eq ...`, `emails[...]`, members, groups).
# 200 column comparisons cost 200; 200 on JSON values 800; 66 on e-mails 792.
MAX_FILTER_COST = 800
# How much of a refused filter a log line shows.
LOGGED_FILTER_CHARS = 200

# --- bodies ------------------------------------------------------------------------------------

# Nesting of JSON arrays and objects in a SCIM body (create, replace, PATCH, .search, Bulk).
# The deepest body an IdP sends (a Bulk operation carrying an extension's manager) is 7 deep.
MAX_JSON_DEPTH = 32
# Media types a body may be sent as (RFC 7644 §3.1: application/scim+json; Okta and Entra ID
# send one of the two), with any parameters (charset=utf-8).
ACCEPTED_CONTENT_TYPES = ("application/scim+json", "application/json")

# --- paging (RFC 7644 §3.4.2.4) ------------------------------------------------------------------

# A startIndex past this is past the end of any organization: the page is empty without asking
# the database for it (an OFFSET beyond 2^63 - 1 is an error in both databases).
MAX_START_INDEX = 2**31


def shorten(text: str, limit: int = LOGGED_FILTER_CHARS) -> str:
    """`text` cut to `limit` characters for a log line, saying how much was left out."""
    if len(text) <= limit:
        return text
    return f"{text[:limit]}... ({len(text) - limit} more characters)"

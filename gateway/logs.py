"""Logging: text or JSON lines, a request id on every line of a request, secrets never written.

Does: configure the root logger and the per-request access line; keep each record on its own
line (control characters escaped, tracebacks indented under their record). Does not: log headers
or bodies; bearer tokens and passwords have no way into a log line from here (and `redact` scrubs
the token format from any message as a second line of defence).
"""

from __future__ import annotations

import json
import logging
import re
import sys
from datetime import UTC, datetime

from flask import g, has_request_context

_TOKEN = re.compile(r"\b(sg[ta])_[0-9a-f]{16}_[A-Za-z0-9_-]+")
_BEARER = re.compile(r"(?i)(bearer\s+)\S+")


# C0 and C1 controls and the Unicode line separators: anything a log reader may take for the
# end of a line (or a terminal for a command).
_CONTROL = re.compile("[\x00-\x1f\x7f-\x9f\u2028\u2029]")
_NAMED = {"\n": "\\n", "\r": "\\r", "\t": "\\t"}


def _escaped(match: re.Match[str]) -> str:
    char = match.group()
    return _NAMED.get(char) or (
        f"\\x{ord(char):02x}" if ord(char) < 0x100 else f"\\u{ord(char):04x}"
    )


def escape_control(text: str) -> str:
    """`text` on one line: control characters written as escapes (a newline as \\n), so no
    logged value (a path, a header, an error message) can start a forged log line."""
    return _CONTROL.sub(_escaped, text)


def redact(message: str) -> str:
    message = _TOKEN.sub(r"\1_[redacted]", message)
    return _BEARER.sub(r"\1[redacted]", message)


class _RequestIdFilter(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        if "request_id" not in record.__dict__:  # the access line brings its own
            record.request_id = getattr(g, "request_id", "-") if has_request_context() else "-"
        return True


class TextFormatter(logging.Formatter):
    """One line per record; a traceback follows it indented, so every line that starts at the
    margin is a record's first line."""

    def __init__(self) -> None:
        super().__init__("%(asctime)s %(levelname)s %(name)s [%(request_id)s] %(message)s")

    def format(self, record: logging.LogRecord) -> str:
        return redact(super().format(record))

    def formatMessage(self, record: logging.LogRecord) -> str:
        return escape_control(super().formatMessage(record))

    def formatException(self, ei) -> str:  # type: ignore[no-untyped-def]
        return _indented(super().formatException(ei))

    def formatStack(self, stack_info: str) -> str:
        return _indented(super().formatStack(stack_info))


def _indented(text: str) -> str:
    return "\n".join("  " + escape_control(line) for line in text.split("\n"))


class JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        doc = {
            "time": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname.lower(),
            "logger": record.name,
            "request_id": getattr(record, "request_id", "-"),
            "message": redact(record.getMessage()),
        }
        for key in ("method", "path", "status", "duration_ms", "org_id", "remote_addr"):
            if hasattr(record, key):
                doc[key] = getattr(record, key)
        if record.exc_info:
            doc["exception"] = redact(self.formatException(record.exc_info))
        return json.dumps(doc)


def configure_logging(log_format: str, level: str) -> None:
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(JsonFormatter() if log_format == "json" else TextFormatter())
    handler.addFilter(_RequestIdFilter())
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level.upper())
    # Our access line replaces werkzeug's, which would print query strings.
    logging.getLogger("werkzeug").setLevel(logging.WARNING)
    logging.getLogger("alembic").setLevel(logging.WARNING)

"""Log lines cannot be forged: a control character in any logged value (a path, an error
message) is written as an escape, and a traceback stays indented under its record, so every line
at the margin of the text log is one the gateway wrote."""

from __future__ import annotations

import logging
import sys
from pathlib import Path

import requests
from gateway_processes import Served

from gateway.logs import TextFormatter

FORGED = "2026-12-04 00:00:00,000 INFO gateway.access [forged] GET /console/ 200 1.0ms"


def test_a_path_with_cr_lf_cannot_forge_an_access_log_line(tmp_path: Path) -> None:
    node = Served(tmp_path / "node", "--no-worker", "--no-demo", env={"GATEWAY_WEB_WORKERS": "1"})
    try:
        node.wait_ready()
        path = "/console/login%0aFAKE%0d%0a" + requests.utils.quote(FORGED) + "%1b[2J"
        assert requests.get(node.url + path, timeout=10).status_code == 404
    finally:
        output = node.stop()
    lines = output.splitlines()
    assert not any(line.startswith(("FAKE", FORGED)) for line in lines)
    (access,) = [line for line in lines if "/console/login" in line and " 404 " in line]
    assert "/console/login\\nFAKE\\r\\n2026-12-04 00:00:00,000 INFO" in access
    assert "\\x1b[2J" in access and "\x1b" not in output


def test_a_traceback_stays_indented_under_its_record() -> None:
    try:
        raise ValueError("bad value\n" + FORGED)
    except ValueError:
        record = logging.LogRecord(
            "gateway.x", logging.ERROR, __file__, 1, "failed: %s", ("a\nb",), exc_info=True
        )
        record.exc_info = sys.exc_info()
    record.request_id = "-"
    text = TextFormatter().format(record)
    first, *rest = text.split("\n")
    assert first.endswith("failed: a\\nb")
    assert rest and all(line.startswith("  ") for line in rest)
    assert any(FORGED in line for line in rest)

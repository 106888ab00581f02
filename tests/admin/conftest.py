"""Fixtures of the console and admin API tests (building blocks in scenario.py)."""

from __future__ import annotations

import pytest
from browser import browser, live_console, page  # noqa: F401  (the browser tests' fixtures)
from scenario import Console, mount


@pytest.fixture(autouse=True)
def admin_app(app):
    """Mounted before any other fixture sends a request (Flask refuses blueprints after that)."""
    mount(app)
    return app


@pytest.fixture
def admin_client(admin_app):
    return admin_app.test_client()


@pytest.fixture
def console(admin_client) -> Console:
    return Console(admin_client)

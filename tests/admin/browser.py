"""The browser tests' building blocks: Debian's Chromium driven by Playwright (one browser per
test session, shared by every module), the gateway served on a free local port, a page of it,
and SCIM requests against that gateway. conftest.py registers the fixtures."""

from __future__ import annotations

import threading
from pathlib import Path

import pytest
from scenario import PASSWORD, mount

CHROMIUM = Path("/usr/bin/chromium")
SHOTS = Path(__file__).parent / "screenshots"
ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]


@pytest.fixture(scope="session")
def browser():
    if not CHROMIUM.exists():
        pytest.skip(
            "Debian's Chromium is not installed at /usr/bin/chromium (apt-get install chromium)"
        )
    sync_api = pytest.importorskip(
        "playwright.sync_api", reason="the playwright package is missing"
    )
    with sync_api.sync_playwright() as playwright:
        launched = playwright.chromium.launch(executable_path=str(CHROMIUM), args=ARGS)
        yield launched
        launched.close()


@pytest.fixture
def live_console(database, tmp_path):
    """The gateway on a free local port, its public URL that port (so cookies work over http)."""
    from werkzeug.serving import make_server

    from gateway.app import create_app
    from gateway.config import Config

    server = make_server("127.0.0.1", 0, None, threaded=True)
    url = f"http://127.0.0.1:{server.server_port}"
    config = Config.from_env(
        {
            "GATEWAY_DATA_DIR": str(tmp_path / "data"),
            "GATEWAY_DATABASE_URL": database.url,
            "GATEWAY_PUBLIC_URL": url,
            "GATEWAY_SECRET_KEY": "browser-test-secret-0123456789",
        }
    )
    app = create_app(config, database=database)
    mount(app)
    server.app = app
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield app, url
    server.shutdown()
    thread.join(5)


class Scim:
    """SCIM requests of one organization through the live app's test client."""

    def __init__(self, app, org_id: str, token: str) -> None:
        self.client, self.org_id, self.token = app.test_client(), org_id, token

    def _send(self, method: str, path: str, json=None):
        import json as jsonlib

        return self.client.open(
            f"/scim/v2/{self.org_id}{path}",
            method=method,
            headers={"Authorization": f"Bearer {self.token}"},
            data=jsonlib.dumps(json) if json is not None else None,
            content_type="application/scim+json",
        )

    def get(self, path):
        return self._send("GET", path)

    def post(self, path, json):
        return self._send("POST", path, json)

    def patch(self, path, json):
        return self._send("PATCH", path, json)


@pytest.fixture
def page(browser, live_console):
    context = browser.new_context(base_url=live_console[1], accept_downloads=True)
    context.set_default_timeout(10_000)
    yield context.new_page()
    context.close()


def shot(page, name: str) -> None:
    SHOTS.mkdir(exist_ok=True)
    page.screenshot(path=str(SHOTS / f"{name}.png"), full_page=True)


def sign_in(page, email: str) -> None:
    page.goto("/console/login")
    page.fill("input[name=email]", email)
    page.fill("input[name=password]", PASSWORD)
    page.click("button:has-text('Sign in')")
    page.wait_for_url("**/console/")


def organization(database, live_console):
    from gateway.orgs import create_org
    from gateway.tokens import issue_token

    app, _ = live_console
    with database.transaction() as session:
        org = create_org(session, "Acme", plan="enterprise", seats=5)
        token = issue_token(session, org=org, description="Okta").secret
        org_id = org.id
    return Scim(app, org_id, token)

"""The console login under a flood: the throttle counts per client address and account, holds
exactly under parallel attempts, and Argon2 runs with no database connection (so no transaction
and no SQLite write lock) held, so a login flood does not hold up SCIM writes."""

from __future__ import annotations

import threading
from concurrent.futures import ThreadPoolExecutor

from scenario import PASSWORD, USER, Console, make_admin
from sqlalchemy import func, select

import gateway.accounts as accounts
from gateway.accounts import THROTTLE_LIMIT
from gateway.store.models import Event


def _console_from(app, address: str) -> Console:
    client = app.test_client()
    client.environ_base["REMOTE_ADDR"] = address
    return Console(client)


def test_parallel_wrong_logins_check_at_most_the_limit(admin_app, database):
    make_admin(database, "ops@msp.example")
    attempts = 40
    consoles = [_console_from(admin_app, "203.0.113.9") for _ in range(attempts)]
    for console in consoles:
        console.get("/console/login")  # each its own CSRF token
    start = threading.Barrier(attempts)

    def attempt(console: Console) -> int:
        start.wait()
        form = {"email": "ops@msp.example", "password": "not the password"}
        return console.post("/console/login", form).status_code

    with ThreadPoolExecutor(attempts) as pool:
        statuses = list(pool.map(attempt, consoles))
    # 401: the password was checked (and wrong); 429: refused before any check (over the
    # limit, or every password-checking slot of the process taken).
    checked = statuses.count(401)
    assert 1 <= checked <= THROTTLE_LIMIT, statuses
    assert statuses.count(429) == attempts - checked
    with database.read() as session:
        recorded = session.scalar(
            select(func.count()).select_from(Event).where(Event.type == "admin.login_failed")
        )
    assert recorded == checked


def test_a_strangers_wrong_passwords_do_not_lock_the_admin_out(admin_app, database):
    make_admin(database, "ops@msp.example")
    stranger = _console_from(admin_app, "203.0.113.9")
    for _ in range(THROTTLE_LIMIT):
        assert stranger.login("ops@msp.example", "guessing away").status_code == 401
    refused = stranger.login("ops@msp.example", PASSWORD)
    assert refused.status_code == 429
    assert "too many failed sign-ins" in refused.get_data(as_text=True)

    admin = _console_from(admin_app, "198.51.100.7")
    assert admin.login("ops@msp.example").status_code == 302
    assert "Clients" in admin.get("/console/").get_data(as_text=True)
    assert refused.headers["Retry-After"] == "900"


def test_one_address_trying_many_accounts_is_throttled(admin_app, database, config):
    make_admin(database, "ops@msp.example")
    sprayer = _console_from(admin_app, "203.0.113.50")
    for i in range(config.login_attempts_per_address):
        assert sprayer.login(f"user{i}@msp.example", "guessing away").status_code == 401
    assert sprayer.login("ops@msp.example").status_code == 429
    assert _console_from(admin_app, "198.51.100.7").login("ops@msp.example").status_code == 302


def test_the_password_is_checked_with_no_database_connection_held(
    admin_app, database, scim, monkeypatch
):
    """While Argon2 runs, this process holds no connection of the pool (so no transaction and,
    on SQLite, no write lock), and a SCIM POST from another thread goes through meanwhile."""
    make_admin(database, "ops@msp.example")
    seen: list[tuple[int, int | None]] = []
    checked = accounts._password_matches

    def checking(stored: str | None, password: str) -> bool:
        held = database.engine.pool.checkedout()
        other = ThreadPoolExecutor(1)
        write = other.submit(
            scim.post, "/Users", json={"schemas": [USER], "userName": "new@acme.example"}
        )
        try:
            status = write.result(timeout=60).status_code
        except TimeoutError:
            status = None  # the write waits on the login (not for it to finish: it would never)
        other.shutdown(wait=False)
        seen.append((held, status))
        return checked(stored, password)

    monkeypatch.setattr(accounts, "_password_matches", checking)
    console = _console_from(admin_app, "198.51.100.7")
    assert console.login("ops@msp.example").status_code == 302
    assert seen == [(0, 201)]


def test_a_login_while_every_password_check_slot_is_taken_is_told_to_retry_soon(
    admin_app, database
):
    """A flood from many addresses gets at most one Argon2 run per process at a time; a login
    that finds the slot taken is answered 429 "retry in a second", not counted as a failure."""
    make_admin(database, "ops@msp.example")
    console = _console_from(admin_app, "198.51.100.7")
    accounts._ARGON2_SLOTS.acquire()  # another login's password is being checked
    try:
        busy = console.login("ops@msp.example")
    finally:
        accounts._ARGON2_SLOTS.release()
    assert busy.status_code == 429
    assert busy.headers["Retry-After"] == "1"
    assert "sign-ins are busy" in busy.get_data(as_text=True)
    with database.read() as session:
        assert not session.scalar(
            select(func.count()).select_from(Event).where(Event.type == "admin.login_failed")
        )
    assert console.login("ops@msp.example").status_code == 302

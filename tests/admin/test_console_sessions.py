"""Console sessions kept on the server: signing out ends a session for every copy of its cookie,
each sign-in is a session of its own, a password change or removing the account ends them, and
the database keeps only a hash of each session id."""

from __future__ import annotations

import hashlib
from datetime import timedelta

from scenario import PASSWORD, Console, make_admin
from sqlalchemy import select

from gateway.store.models import Base, ConsoleSession, Organization, utcnow

COOKIE = "scimgate_session"
NEW_PASSWORD = "another long password"


def signed_in(console: Console) -> bool:
    response = console.get("/console/")
    if response.status_code == 200:
        return True
    assert response.status_code == 302 and "/console/login" in response.location
    return False


def copy_cookie(source: Console, target: Console) -> None:
    """What a stolen cookie, or one copied to another device, amounts to."""
    cookie = source.client.get_cookie(COOKIE)
    assert cookie is not None
    target.client.set_cookie(COOKIE, cookie.value)


def session_id(app, console: Console) -> str:
    """The raw session id inside the (signed, not encrypted) session cookie."""
    serializer = app.session_interface.get_signing_serializer(app)
    return serializer.loads(console.client.get_cookie(COOKIE).value)["session_id"]


def record(database, raw: str) -> ConsoleSession | None:
    with database.read() as session:
        return session.get(ConsoleSession, hashlib.sha256(raw.encode()).hexdigest())


def test_a_copied_cookie_stops_working_when_its_session_signs_out(app, database):
    make_admin(database, "ops@msp.example")
    browser, thief = Console(app.test_client()), Console(app.test_client())
    browser.login("ops@msp.example")
    copy_cookie(browser, thief)
    assert signed_in(thief)  # the copy is as good as the original while the session lasts

    browser.post("/console/logout")

    response = thief.post("/console/clients", {"name": "Stolen"})  # with the copy's CSRF token
    assert response.status_code == 302 and "/console/login" in response.location
    assert not signed_in(thief)
    assert not signed_in(browser)
    with database.read() as session:
        assert session.scalar(select(Organization).where(Organization.name == "Stolen")) is None


def test_signing_out_in_one_browser_leaves_the_other_signed_in(app, database):
    make_admin(database, "ops@msp.example")
    laptop, phone = Console(app.test_client()), Console(app.test_client())
    laptop.login("ops@msp.example")
    phone.login("ops@msp.example")
    assert session_id(app, laptop) != session_id(app, phone)

    laptop.post("/console/logout")

    assert not signed_in(laptop)
    assert signed_in(phone)
    assert record(database, session_id(app, phone)).ended_at is None


def test_changing_the_password_ends_the_other_sessions_on_the_server(app, database):
    make_admin(database, "ops@msp.example")
    here, elsewhere = Console(app.test_client()), Console(app.test_client())
    elsewhere.login("ops@msp.example")
    here.login("ops@msp.example")
    elsewhere_id = session_id(app, elsewhere)

    response = here.post(
        "/console/me/password",
        {
            "current_password": PASSWORD,
            "new_password": NEW_PASSWORD,
            "new_password_again": NEW_PASSWORD,
        },
        follow_redirects=True,
    )

    assert "Password changed" in response.get_data(as_text=True)
    assert signed_in(here)
    assert not signed_in(elsewhere)
    assert record(database, elsewhere_id).ended_at is not None
    assert record(database, session_id(app, here)).ended_at is None


def test_removing_an_account_ends_its_sessions(app, database):
    make_admin(database, "boss@msp.example")
    gone = make_admin(database, "leaver@msp.example")
    boss, leaver = Console(app.test_client()), Console(app.test_client())
    boss.login("boss@msp.example")
    leaver.login("leaver@msp.example")
    assert signed_in(leaver)

    asked = boss.post(f"/console/accounts/{gone}/remove").get_data(as_text=True)
    assert "Remove the console account leaver@msp.example?" in asked
    assert signed_in(leaver)  # asking changed nothing
    boss.post(f"/console/accounts/{gone}/remove", {"confirmed": "yes"})

    assert not signed_in(leaver)
    with database.read() as session:
        assert (
            session.scalars(select(ConsoleSession).where(ConsoleSession.admin_id == gone)).all()
            == []
        )


def test_the_database_keeps_only_a_hash_of_the_session_id(app, database):
    make_admin(database, "ops@msp.example")
    browser = Console(app.test_client())
    browser.login("ops@msp.example")
    raw = session_id(app, browser)

    assert record(database, raw) is not None  # found by the SHA-256 of the id
    with database.engine.connect() as conn:
        for table in Base.metadata.sorted_tables:
            for row in conn.execute(select(table)):
                assert raw not in repr(tuple(row)), f"the raw session id is stored in {table.name}"


def test_a_session_notes_its_last_use_at_most_once_a_minute(app, database):
    make_admin(database, "ops@msp.example")
    browser = Console(app.test_client())
    browser.login("ops@msp.example")
    key = hashlib.sha256(session_id(app, browser).encode()).hexdigest()
    long_ago = utcnow() - timedelta(minutes=5)
    with database.transaction() as session:
        session.get(ConsoleSession, key).last_seen_at = long_ago

    assert signed_in(browser)
    seen = record(database, session_id(app, browser)).last_seen_at
    assert seen > long_ago + timedelta(minutes=4)

    assert signed_in(browser)
    assert record(database, session_id(app, browser)).last_seen_at == seen


def test_signing_in_deletes_the_accounts_sessions_whose_cookies_expired(app, database):
    make_admin(database, "ops@msp.example")
    yesterday, today = Console(app.test_client()), Console(app.test_client())
    yesterday.login("ops@msp.example")
    old = session_id(app, yesterday)
    with database.transaction() as session:
        session.get(ConsoleSession, hashlib.sha256(old.encode()).hexdigest()).last_seen_at = (
            utcnow() - app.permanent_session_lifetime - timedelta(minutes=2)
        )

    today.login("ops@msp.example")

    assert record(database, old) is None
    assert record(database, session_id(app, today)) is not None

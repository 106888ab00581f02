"""Console accounts: password hashing, login throttling, the invite -> accept -> confirm flow
with its e-mail, the last provider admin, and sessions that end."""

from __future__ import annotations

import re
from email import message_from_bytes

import pytest
from scenario import PASSWORD, Console, make_admin
from sqlalchemy import select

from gateway.accounts import THROTTLE_LIMIT, LoginThrottled, create_admin, login, remove_admin
from gateway.errors import InvalidInput
from gateway.outbox.worker import deliver_due
from gateway.store.models import ConsoleAdmin, Event


def test_passwords_are_stored_as_argon2id_hashes(database):
    admin_id = make_admin(database, "ops@msp.example")
    with database.read() as session:
        stored = session.get(ConsoleAdmin, admin_id).password_hash
    assert stored.startswith("$argon2id$") and PASSWORD not in stored


def test_short_passwords_are_refused(database):
    refused = pytest.raises(InvalidInput, match="at least 12 characters")
    with refused, database.transaction() as session:
        create_admin(session, "a@msp.example", role="provider_admin", password="short")


def test_login_locks_an_address_after_five_wrong_passwords(database):
    make_admin(database, "ops@msp.example")
    for _ in range(THROTTLE_LIMIT):
        assert login(database, "OPS@msp.example", "wrong password!", address="192.0.2.1") is None
    locked = pytest.raises(LoginThrottled, match="try again in 15 minutes")
    with locked:
        login(database, "ops@msp.example", PASSWORD, address="192.0.2.1")
    with database.read() as session:
        failures = session.scalars(select(Event).where(Event.type == "admin.login_failed")).all()
    assert len(failures) == THROTTLE_LIMIT
    assert all("ops@msp.example" not in str(e.detail) for e in failures)


def test_console_login_is_throttled_with_429(console, database):
    make_admin(database, "ops@msp.example")
    for _ in range(THROTTLE_LIMIT):
        assert console.login("ops@msp.example", "not the password").status_code == 401
    response = console.login("ops@msp.example")
    assert response.status_code == 429
    assert "too many failed sign-ins" in response.get_data(as_text=True)


def test_invited_admin_accepts_by_mail_and_signs_in_only_once_confirmed(
    console, admin_client, database, config
):
    make_admin(database, "boss@msp.example")
    console.login("boss@msp.example")
    response = console.post(
        "/console/accounts/invite",
        {"email": "new@msp.example", "role": "service_user", "name": "New"},
        follow_redirects=True,
    )
    assert "Invited new@msp.example" in response.get_data(as_text=True)

    import gateway.admin.invitations  # noqa: F401  (the worker imports it the same way)

    assert deliver_due(database, config) == 1
    (eml,) = (config.data_dir / "mail").glob("*.eml")
    mail = message_from_bytes(eml.read_bytes())
    assert mail["To"] == "new@msp.example"
    link = re.search(r"https://\S+/console/accept/\S+", mail.get_payload(decode=True).decode())
    path = link.group(0).removeprefix(config.public_url)

    newcomer = Console(admin_client.application.test_client())
    page = newcomer.get(path)
    assert "Welcome, new@msp.example" in page.get_data(as_text=True)
    done = newcomer.post(
        path,
        {"password": "a new long password", "password_again": "a new long password"},
        follow_redirects=True,
    )
    assert "A provider admin confirms your account next" in done.get_data(as_text=True)
    assert newcomer.get(path).status_code == 400  # the link is used up
    assert newcomer.login("new@msp.example", "a new long password").status_code == 401

    with database.read() as session:
        new_id = session.scalar(
            select(ConsoleAdmin.id).where(ConsoleAdmin.email == "new@msp.example")
        )
    confirmed = console.post(f"/console/accounts/{new_id}/confirm", follow_redirects=True)
    assert "Confirmed new@msp.example" in confirmed.get_data(as_text=True)
    assert newcomer.login("new@msp.example", "a new long password").status_code == 302
    assert "new@msp.example (Service user)" in newcomer.get("/console/").get_data(as_text=True)


def test_a_forged_invitation_link_is_refused(console):
    response = console.get("/console/accept/eyJhZG1pbiI6IngifQ.forged")
    assert response.status_code == 400
    assert "not valid" in response.get_data(as_text=True)


def test_the_last_provider_admin_cannot_be_removed(database):
    first = make_admin(database, "a@msp.example")
    second = make_admin(database, "b@msp.example")
    with database.transaction() as session:
        remove_admin(session, second, actor=f"admin:{first}")
    with pytest.raises(InvalidInput, match="your own account"), database.transaction() as session:
        remove_admin(session, first, actor=f"admin:{first}")
    third = make_admin(database, "c@msp.example", role="service_user")
    refused = pytest.raises(InvalidInput, match="last provider admin")
    with refused, database.transaction() as session:
        remove_admin(session, first, actor=f"admin:{third}")


def test_changing_the_password_signs_out_other_sessions(console, admin_client, database):
    make_admin(database, "ops@msp.example")
    other = Console(admin_client.application.test_client())
    other.login("ops@msp.example")
    console.login("ops@msp.example")
    response = console.post(
        "/console/me/password",
        {
            "current_password": PASSWORD,
            "new_password": "another long password",
            "new_password_again": "another long password",
        },
        follow_redirects=True,
    )
    assert "Password changed" in response.get_data(as_text=True)
    assert console.get("/console/").status_code == 200
    assert other.get("/console/").status_code == 302

"""Invitations end to end with a real SMTP server (aiosmtpd): a SCIM POST queues the mail in its
transaction, the worker delivers it, its link accepts; expired links are re-sent; SMTP down then
up delivers every message exactly once per Message-ID; a killed worker loses nothing."""

from __future__ import annotations

import logging
from collections import Counter
from datetime import timedelta

import pytest
from sqlalchemy import select, update
from test_lifecycle_servers import body, cli, make_config, make_due, work
from test_provisioning_rules import create_user

from gateway.lifecycle.invitations import invitation_token, resend_expired
from gateway.outbox.queue import claim
from gateway.provisioning.settings import update_settings
from gateway.store.models import Event, Member, Organization, OutboxMessage, utcnow


@pytest.fixture
def worker_config(database, tmp_path, smtp):
    return make_config(database, tmp_path, **smtp.env())


def member(database, email: str) -> Member:
    with database.read() as session:
        return session.scalar(select(Member).where(Member.email_lower == email.lower()))


def event_types(database, member_id: str) -> list[str]:
    with database.read() as session:
        return list(
            session.scalars(
                select(Event.type).where(Event.target_id == member_id).order_by(Event.id)
            )
        )


def path_of(link: str) -> str:
    return link.removeprefix("https://scim.example.test")


def test_scim_post_sends_a_mail_whose_link_accepts_the_invitation(
    scim, client, database, smtp, worker_config
):
    create_user(scim, "ann@acme.example", name={"formatted": "Ann Lee"})
    with database.read() as session:  # queued in the SCIM request's own transaction
        (queued,) = session.scalars(select(OutboxMessage)).all()
    assert queued.kind == "invitation" and queued.status == "pending"

    assert work(database, worker_config) == 1
    (mail,) = smtp.messages
    assert mail["To"].addresses[0].addr_spec == "ann@acme.example"
    assert mail["Message-ID"] == queued.message_id
    assert "Acme" in mail["Subject"]
    text, html = body(mail), body(mail, "html")
    assert "Acme invites you" in text and "works for 5 days" in text
    (link,) = smtp.links()
    assert link.startswith("https://scim.example.test/invite/")
    assert link in html and "<strong>Acme</strong>" in html

    page = client.get(path_of(link))
    assert page.status_code == 200
    assert "Join Acme" in page.text and "ann@acme.example" in page.text
    assert page.headers["Cache-Control"] == "no-store"

    key = "MIIBIjANBgkqhkiG9w0BAQEFAAOCAQ8AMIIBCgKCAQEAq1w2e3r4"
    done = client.post(path_of(link), data={"public_key": key})
    assert done.status_code == 200
    assert "You joined Acme" in done.text and "administrator of Acme confirms" in done.text
    ann = member(database, "ann@acme.example")
    assert (ann.status, ann.public_key) == ("accepted", key)
    assert ann.accepted_at is not None and ann.invitation_nonce is None
    assert event_types(database, ann.id)[-1] == "member.accepted"

    again = client.post(path_of(link), data={"public_key": "AAAA"})
    assert again.status_code == 410
    assert "used already" in again.text and "Nothing was changed" in again.text
    assert member(database, "ann@acme.example").public_key == key


def test_without_smtp_the_mail_is_an_eml_file_and_the_log_says_where(
    scim, database, tmp_path, caplog
):
    config = make_config(database, tmp_path)
    create_user(scim, "ann@acme.example")
    with caplog.at_level(logging.INFO):
        work(database, config)
    (eml,) = (tmp_path / "data" / "mail").glob("*.eml")
    assert "/invite/" in eml.read_text()
    assert any(str(eml) in r.getMessage() for r in caplog.records)
    with database.read() as session:
        assert session.scalar(select(OutboxMessage.status)) == "sent"


def test_forged_expired_and_replaced_links_get_a_clear_page_and_change_nothing(
    scim, client, database, smtp, worker_config
):
    create_user(scim, "ann@acme.example")
    work(database, worker_config)
    (link,) = smtp.links()
    ann = member(database, "ann@acme.example")

    forged = client.post(path_of(link)[:-3] + "xyz", data={"public_key": ""})
    assert forged.status_code == 404 and "not valid" in forged.text

    expired = invitation_token(
        worker_config.secret_key, ann.id, ann.invitation_nonce, utcnow() - timedelta(minutes=1)
    )
    page = client.get(f"/invite/{expired}")
    assert page.status_code == 410 and "has expired" in page.text
    assert client.post(f"/invite/{expired}").status_code == 410

    bad_key = client.post(path_of(link), data={"public_key": "not a key!"})
    assert bad_key.status_code == 400 and "base64 or PEM" in bad_key.text
    assert member(database, "ann@acme.example").status == "invited"

    result = cli(database, worker_config.data_dir.parent, "members", "resend", "--org", "Acme",
                 "ann@acme.example")  # fmt: skip
    assert result.exit_code == 0, result.output
    replaced = client.get(path_of(link))
    assert replaced.status_code == 410 and "newer invitation" in replaced.text
    assert member(database, "ann@acme.example").status == "invited"


def test_expired_invitations_are_resent_then_shown_expired_until_an_admin_resends(
    scim, client, database, smtp, worker_config, tmp_path
):
    create_user(scim, "ann@acme.example")
    work(database, worker_config)

    def expire() -> None:
        with database.transaction() as session:
            session.execute(
                update(Member).values(invitation_expires_at=utcnow() - timedelta(seconds=1))
            )

    for _ in range(2):  # the default allowance: two automatic re-sends
        expire()
        assert resend_expired(database, worker_config) == 1
        work(database, worker_config)
    assert len(smtp.messages) == 3
    assert len({m["Message-ID"] for m in smtp.messages}) == 3
    first, _, latest = smtp.links()
    assert client.get(path_of(first)).status_code == 410
    assert client.get(path_of(latest)).status_code == 200

    expire()
    resend_expired(database, worker_config)
    work(database, worker_config)
    ann = member(database, "ann@acme.example")
    assert ann.invitation_expired and ann.invitation_resends == 2
    assert len(smtp.messages) == 3  # no third re-send
    assert client.get(path_of(latest)).status_code == 410
    listing = cli(database, tmp_path, "members", "list", "--org", "Acme")
    assert "invited (invitation expired)" in listing.output
    types = event_types(database, ann.id)
    assert types.count("member.invitation_resent") == 2 and types[-1] == "member.invitation_expired"

    resend = cli(database, tmp_path, "members", "resend", "--org", "Acme", "ann@acme.example")
    assert resend.output.strip() == "resend: 1 done"
    work(database, worker_config)
    assert len(smtp.messages) == 4
    assert not member(database, "ann@acme.example").invitation_expired
    assert client.post(path_of(smtp.links()[-1])).status_code == 200
    assert member(database, "ann@acme.example").status == "accepted"


def test_smtp_down_then_up_delivers_every_message_exactly_once_per_message_id(
    scim, database, smtp, worker_config
):
    for name in ("ann", "bob", "cy"):
        create_user(scim, f"{name}@acme.example")
    smtp.refuse = True
    for _ in range(3):
        work(database, worker_config)
        make_due(database)
    assert smtp.messages == [] and smtp.refused == 9
    with database.read() as session:
        rows = session.scalars(select(OutboxMessage)).all()
    assert {(m.status, m.attempts) for m in rows} == {("pending", 3)}
    assert all("451" in m.last_error for m in rows)

    smtp.refuse = False
    work(database, worker_config)
    make_due(database)
    work(database, worker_config)  # nothing left to send twice
    counts = Counter(m["Message-ID"] for m in smtp.messages)
    assert counts == Counter({m.message_id: 1 for m in rows})
    with database.read() as session:
        sent = session.scalars(select(OutboxMessage)).all()
    assert {(m.status, m.attempts, m.last_error) for m in sent} == {("sent", 4, None)}


def test_a_worker_killed_mid_delivery_loses_nothing(scim, database, smtp, worker_config):
    create_user(scim, "ann@acme.example")
    (claimed,) = claim(database)  # this worker dies before it settles the message
    assert work(database, worker_config) == 0  # its lease still holds
    with database.transaction() as session:
        session.execute(update(OutboxMessage).values(claimed_until=utcnow() - timedelta(seconds=1)))
    assert work(database, worker_config) == 1
    (mail,) = smtp.messages
    assert mail["Message-ID"] == claimed.message_id


def test_failed_delivery_after_the_last_attempt_is_marked_failed_and_visible(
    scim, database, smtp, tmp_path
):
    config = make_config(database, tmp_path, **smtp.env(), GATEWAY_OUTBOX_MAX_ATTEMPTS="2")
    create_user(scim, "ann@acme.example")
    smtp.refuse = True
    work(database, config)
    make_due(database)
    work(database, config)
    with database.read() as session:
        message = session.scalar(select(OutboxMessage))
    assert (message.status, message.attempts) == ("failed", 2)
    assert "SMTP 127.0.0.1" in message.last_error and "451" in message.last_error


def test_staged_mode_provisions_without_inviting_until_an_admin_invites(
    scim, database, smtp, worker_config, tmp_path
):
    with database.transaction() as session:
        update_settings(session.get(Organization, scim.org_id), staged_mode=True)
    create_user(scim, "ann@acme.example")
    create_user(scim, "bob@acme.example")
    work(database, worker_config)
    assert smtp.messages == []
    assert member(database, "ann@acme.example").status == "staged"

    result = cli(database, tmp_path, "members", "invite", "--org", "Acme", "ann@acme.example")
    assert result.output.strip() == "invite: 1 done"
    work(database, worker_config)
    assert [m["To"] for m in smtp.messages] == ["ann@acme.example"]
    assert member(database, "bob@acme.example").status == "staged"
    every = cli(database, tmp_path, "members", "invite", "--org", "Acme", "--all")
    assert every.output.strip() == "invite: 1 done"
    assert member(database, "bob@acme.example").status == "invited"


def test_changing_an_invited_members_email_sends_a_new_link_and_voids_the_old(scim, database):
    from sqlalchemy import select

    from gateway.store.models import Member, OutboxMessage

    created = scim.post(
        "/Users",
        json={
            "schemas": ["urn:ietf:params:scim:schemas:core:2.0:User"],
            "userName": "jon@other.example",
            "emails": [{"value": "jon@other.example", "primary": True}],
        },
    ).get_json()
    with database.read() as session:
        before = session.scalar(select(Member)).invitation_nonce
    response = scim.patch(
        f"/Users/{created['id']}",
        json={
            "schemas": ["urn:ietf:params:scim:api:messages:2.0:PatchOp"],
            "Operations": [
                {"op": "replace", "path": "userName", "value": "john@acme.example"},
                {
                    "op": "replace",
                    "path": "emails",
                    "value": [{"value": "john@acme.example", "primary": True}],
                },
            ],
        },
    )
    assert response.status_code == 200
    with database.read() as session:
        member = session.scalar(select(Member))
        sent_to = [
            m.payload["email"]
            for m in session.scalars(
                select(OutboxMessage).where(OutboxMessage.kind == "invitation")
            )
        ]
    assert member.email == "john@acme.example" and member.status == "invited"
    assert member.invitation_nonce != before
    assert sent_to == ["jon@other.example", "john@acme.example"]


def test_a_name_with_line_breaks_arrives_in_one_clean_header(scim, database, smtp, worker_config):
    create_user(
        scim,
        "ann@acme.example",
        displayName="Ann\r\nBcc: eve@evil.example\nLee",
        name={"formatted": "Ann Lee"},
    )
    assert work(database, worker_config) == 1
    (mail,) = smtp.messages  # delivered at the first attempt, not retried until failed
    assert mail["To"].addresses[0].display_name == "Ann Bcc: eve@evil.example Lee"
    assert [a.addr_spec for a in mail["To"].addresses] == ["ann@acme.example"]
    assert mail["Bcc"] is None
    with database.read() as session:
        assert session.scalar(select(OutboxMessage.status)) == "sent"


def test_an_organization_name_with_line_breaks_gives_a_clean_subject(
    scim, database, smtp, worker_config
):
    with database.transaction() as session:
        session.get(Organization, scim.org_id).name = "Acme\r\nX-Injected: 1"
    create_user(scim, "ann@acme.example")
    work(database, worker_config)
    (mail,) = smtp.messages
    assert mail["Subject"] == "Acme X-Injected: 1 invites you to its password manager organization"
    assert mail["X-Injected"] is None

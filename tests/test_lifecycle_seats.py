"""Seats: invited, accepted and confirmed members use one; seats grow up to the limit; beyond it
new members wait (the SCIM request still succeeds, an event says why) and are invited oldest first
when a seat frees up or the limit rises. Revoke and restore through SCIM keep group and
collection access."""

from __future__ import annotations

from sqlalchemy import select
from test_lifecycle_servers import make_config, work
from test_provisioning_rules import (
    access,
    another_org,
    apply_mapping,
    create_group,
    create_user,
    members,
    set_active,
)

from gateway.store.models import Event, Member, Organization, OutboxMessage


def waiting(database, org_id: str) -> list[str]:
    with database.read() as session:
        return list(
            session.scalars(
                select(Member.email)
                .where(Member.org_id == org_id, Member.waiting_for_seat.is_(True))
                .order_by(Member.created_at)
            )
        )


def seats(database, org_id: str) -> int:
    with database.read() as session:
        return session.get(Organization, org_id).seats


def invitations(database, org_id: str) -> list[str]:
    with database.read() as session:
        return [
            p["email"]
            for p in session.scalars(
                select(OutboxMessage.payload)
                .where(OutboxMessage.org_id == org_id, OutboxMessage.kind == "invitation")
                .order_by(OutboxMessage.id)
            )
        ]


def test_at_the_seat_limit_members_wait_and_get_a_seat_oldest_first(scim, database, tmp_path):
    acme = another_org(scim, database, "Globex", seats=1, seat_limit=2)
    config = make_config(database, tmp_path)
    ids = {n: create_user(acme, f"{n}@globex.example") for n in ("ann", "bob", "cy", "dan")}
    assert seats(database, acme.org_id) == 2  # grew from 1 to the limit
    assert waiting(database, acme.org_id) == ["cy@globex.example", "dan@globex.example"]
    with database.read() as session:
        why = session.scalars(
            select(Event.detail).where(Event.type == "member.waiting_for_seat")
        ).all()
    assert [(d["email"], d["seats"], d["seat_limit"]) for d in why] == [
        ("cy@globex.example", 2, 2),
        ("dan@globex.example", 2, 2),
    ]
    assert invitations(database, acme.org_id) == ["ann@globex.example", "bob@globex.example"]

    work(database, config)  # nothing freed yet: they keep waiting
    assert waiting(database, acme.org_id) == ["cy@globex.example", "dan@globex.example"]

    set_active(acme, ids["ann"], False)  # revoked: her seat frees up
    work(database, config)
    status = {e: m["status"] for e, m in members(database, acme.org_id).items()}
    assert status["cy@globex.example"] == "invited"
    assert status["dan@globex.example"] == "staged"
    assert invitations(database, acme.org_id)[-1] == "cy@globex.example"

    with database.transaction() as session:
        session.get(Organization, acme.org_id).seat_limit = 3
    work(database, config)
    assert waiting(database, acme.org_id) == []
    assert members(database, acme.org_id)["dan@globex.example"]["status"] == "invited"
    assert seats(database, acme.org_id) == 3

    set_active(acme, ids["ann"], True)  # restored, but no seat is left: she waits
    assert waiting(database, acme.org_id) == ["ann@globex.example"]
    assert members(database, acme.org_id)["ann@globex.example"]["status"] == "staged"
    set_active(acme, ids["bob"], False)
    work(database, config)
    assert members(database, acme.org_id)["ann@globex.example"]["status"] == "invited"


def test_revoke_and_restore_through_scim_keep_group_and_collection_access(scim, database):
    ann = create_user(scim, "ann@acme.example")
    create_group(scim, "Sales", ann)
    apply_mapping(
        database,
        scim.org_id,
        "collections:\n  - {group: Sales, collections: [Deals], permission: edit}\n",
    )
    with database.transaction() as session:
        member = session.scalar(select(Member))
        member.status = "confirmed"  # accepted and confirmed earlier
    before = access(database, scim.org_id)
    assert before == {("Sales", "Deals"): "edit"}

    set_active(scim, ann, False)
    found = members(database, scim.org_id)["ann@acme.example"]
    assert found["status"] == "revoked" and found["groups"] == {"Sales"}
    assert access(database, scim.org_id) == before

    set_active(scim, ann, True)
    found = members(database, scim.org_id)["ann@acme.example"]
    assert found["status"] == "confirmed" and found["groups"] == {"Sales"}
    assert access(database, scim.org_id) == before

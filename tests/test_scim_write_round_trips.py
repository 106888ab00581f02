"""What one inline SCIM write asks of the database. Every statement is a round trip that each
POST of an IdP's push pays while it holds the organization's reconcile lock, so the pushes of
one organization are only as fast as this list is short."""

from __future__ import annotations

from sqlalchemy import select
from test_scim_protocol import statements

from gateway.store.models import Event, Member

USER = "urn:ietf:params:scim:schemas:core:2.0:User"


def post_user(scim, user_name: str) -> str:
    response = scim.post("/Users", json={"schemas": [USER], "userName": user_name})
    assert response.status_code == 201, response.get_data(as_text=True)
    return response.get_json()["id"]


def test_a_new_user_becomes_an_invited_member_in_one_insert_with_its_events_in_one_more(
    scim, database
) -> None:
    post_user(scim, "first@example.test")  # the token check and first-use work are behind us
    created: list[str] = []
    with statements(database.engine) as raw:
        created.append(post_user(scim, "ada@example.test"))
    seen = [" ".join(statement.split()) for statement in raw]

    org_reads = [
        s for s in seen if s.startswith("SELECT organizations.id, ") and "FROM organizations" in s
    ]
    assert len(org_reads) == 1, "the organization is read once (under its lock on PostgreSQL)"
    member_writes = [s for s in seen if s.startswith(("INSERT INTO members", "UPDATE members"))]
    assert len(member_writes) == 1 and member_writes[0].startswith("INSERT INTO members"), (
        "the member is written once, already invited, not inserted and then updated"
    )
    if database.dialect == "postgresql":  # SQLite's driver inserts RETURNING rows one by one
        assert len([s for s in seen if s.startswith("INSERT INTO events")]) == 1

    # ... and what the admin sees is what it was before: an invited member and its events.
    with database.read() as session:
        member = session.scalars(select(Member).where(Member.directory_user_id == created[0])).one()
        assert member.status == "invited"
        types = set(session.scalars(select(Event.type).where(Event.target_id == member.id)))
    assert "member.invited" in types, types

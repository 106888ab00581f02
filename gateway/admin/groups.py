"""Groups with their members and collection access, and collections with the groups that reach
them: the "groups by department, collections by function" picture of one organization.

Does: read. Does not: change groups or access (the provisioning engine owns them).
"""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import select
from sqlalchemy.orm import Session

from gateway.store.models import (
    Collection,
    Group,
    GroupCollectionAccess,
    Member,
    MemberGroup,
    Organization,
    ProvisionedGroup,
)


@dataclass(frozen=True)
class GroupView:
    group: Group
    provisioned: bool
    members: list[Member]
    access: list[tuple[Collection, str]]


@dataclass(frozen=True)
class CollectionView:
    collection: Collection
    access: list[tuple[Group, str]]


def groups_overview(session: Session, org: Organization) -> list[GroupView]:
    groups = list(
        session.scalars(select(Group).where(Group.org_id == org.id).order_by(Group.name_lower))
    )
    provisioned = set(
        session.scalars(select(ProvisionedGroup.group_id).where(ProvisionedGroup.org_id == org.id))
    )
    members: dict[str, list[Member]] = {}
    for group_id, member in session.execute(
        select(MemberGroup.group_id, Member)
        .join(Member, Member.id == MemberGroup.member_id)
        .where(Member.org_id == org.id)
        .order_by(Member.email_lower)
    ):
        members.setdefault(group_id, []).append(member)
    access: dict[str, list[tuple[Collection, str]]] = {}
    for group_id, collection, permission in session.execute(
        select(GroupCollectionAccess.group_id, Collection, GroupCollectionAccess.permission)
        .join(Collection, Collection.id == GroupCollectionAccess.collection_id)
        .where(Collection.org_id == org.id)
        .order_by(Collection.name_lower)
    ):
        access.setdefault(group_id, []).append((collection, permission))
    return [
        GroupView(g, g.id in provisioned, members.get(g.id, []), access.get(g.id, []))
        for g in groups
    ]


def collections_overview(session: Session, org: Organization) -> list[CollectionView]:
    collections = list(
        session.scalars(
            select(Collection).where(Collection.org_id == org.id).order_by(Collection.name_lower)
        )
    )
    access: dict[str, list[tuple[Group, str]]] = {}
    for collection_id, group, permission in session.execute(
        select(GroupCollectionAccess.collection_id, Group, GroupCollectionAccess.permission)
        .join(Group, Group.id == GroupCollectionAccess.group_id)
        .where(Group.org_id == org.id)
        .order_by(Group.name_lower)
    ):
        access.setdefault(collection_id, []).append((group, permission))
    return [CollectionView(c, access.get(c.id, [])) for c in collections]

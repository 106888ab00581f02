"""SCIM settings of one organization: its base URL and its bearer tokens (create, rotate, revoke).

Does: scope tokens to the organization and rotate (a new token with the old one's description,
the old one revoked in the same transaction). Does not: hash or verify tokens (gateway.tokens).
"""

from __future__ import annotations

from sqlalchemy.orm import Session

from gateway.errors import InvalidInput, NotFound
from gateway.store.models import ApiToken, Organization
from gateway.tokens import IssuedToken, issue_token, list_tokens, revoke_token


def scim_tokens(session: Session, org: Organization) -> list[ApiToken]:
    return list_tokens(session, org=org, kind="scim")


def scim_token(session: Session, org: Organization, token_id: str) -> ApiToken:
    token = session.get(ApiToken, token_id)
    if token is None or token.kind != "scim" or token.org_id != org.id:
        raise NotFound(f"{org.name} has no SCIM token {token_id!r}")
    return token


def create_scim_token(
    session: Session, org: Organization, description: str | None, actor: str
) -> IssuedToken:
    description = (description or "").strip() or None
    if description and len(description) > 200:
        raise InvalidInput("the description is longer than 200 characters")
    return issue_token(session, org=org, description=description, actor=actor)


def rotate_scim_token(
    session: Session, org: Organization, token_id: str, actor: str
) -> IssuedToken:
    old = scim_token(session, org, token_id)
    if old.revoked_at is not None:
        raise InvalidInput("this token is revoked already; create a new one instead")
    issued = issue_token(session, org=org, description=old.description, actor=actor)
    revoke_token(session, old.id, actor=actor)
    return issued


def revoke_scim_token(session: Session, org: Organization, token_id: str, actor: str) -> ApiToken:
    return revoke_token(session, scim_token(session, org, token_id).id, actor=actor)

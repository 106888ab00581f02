"""`/invite/<token>`: the page an invited member opens from the e-mail.

GET shows the organization and the e-mail address with a form; POST accepts, recording the
optional public key. Server-rendered, no JavaScript. The form needs no CSRF token of its own: the
token in the URL is the secret, it works once, and a forged cross-site post would need it.
Unusable links (forged, expired, used, replaced) get a page saying which, with status 410 or 404,
and change nothing. Does not: any rule of its own (gateway.lifecycle.invitations decides).
"""

from __future__ import annotations

from typing import Any

from flask import Blueprint, render_template, request

from gateway.app import gateway
from gateway.errors import InvalidInput
from gateway.lifecycle.fingerprint import fingerprint_phrase
from gateway.lifecycle.invitations import (
    MAX_PUBLIC_KEY,
    InvitationUnusable,
    accept_invitation,
    read_invitation,
)

invite = Blueprint("invite", __name__, url_prefix="/invite", template_folder="templates")

_HEADINGS = {
    "invalid": "This invitation link is not valid",
    "withdrawn": "This invitation was withdrawn",
    "used": "This invitation was used already",
    "replaced": "This invitation was replaced",
    "expired": "This invitation has expired",
}


@invite.after_request
def _headers(response):  # type: ignore[no-untyped-def]
    # The token is in the URL: keep it out of caches and Referer headers.
    response.headers["Cache-Control"] = "no-store"
    response.headers["Referrer-Policy"] = "no-referrer"
    response.headers["X-Frame-Options"] = "DENY"
    response.headers["Content-Security-Policy"] = (
        "default-src 'none'; style-src 'unsafe-inline'; form-action 'self'; frame-ancestors 'none'"
    )
    return response


def _unusable(exc: InvitationUnusable) -> Any:
    status = 404 if exc.reason in ("invalid", "withdrawn") else 410
    page = render_template(
        "invite_invalid.html", heading=_HEADINGS.get(exc.reason, "Not usable"), message=str(exc)
    )
    return page, status


@invite.route("/<token>", methods=["GET", "POST"])
def accept(token: str) -> Any:
    config = gateway().config
    db = gateway().db
    if request.method == "GET":
        with db.read() as session:
            try:
                member, org = read_invitation(session, config.secret_key, token)
            except InvitationUnusable as exc:
                return _unusable(exc)
            return render_template(
                "invite_accept.html", member=member, org=org, token=token, max_key=MAX_PUBLIC_KEY
            )
    public_key = request.form.get("public_key", "")
    try:
        with db.transaction() as session:
            accepted = accept_invitation(session, config.secret_key, token, public_key=public_key)
            org_name, confirmed = accepted.org.name, accepted.member.status == "confirmed"
            phrase = fingerprint_phrase(accepted.member.public_key)
    except InvitationUnusable as exc:
        return _unusable(exc)
    except InvalidInput as exc:
        with db.read() as session:
            try:
                member, org = read_invitation(session, config.secret_key, token)
            except InvitationUnusable as gone:
                return _unusable(gone)
            page = render_template(
                "invite_accept.html",
                member=member,
                org=org,
                token=token,
                max_key=MAX_PUBLIC_KEY,
                error=str(exc),
                public_key=public_key[:MAX_PUBLIC_KEY],
            )
        return page, 400
    return render_template(
        "invite_done.html", org_name=org_name, confirmed=confirmed, phrase=phrase
    )

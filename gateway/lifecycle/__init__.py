"""Member lifecycle: what happens to a person after the engine decides they belong.

Does: the status transitions `staged -> invited -> accepted -> confirmed`, `revoked` from any of
them and restore (members), seats (grow up to the limit; members beyond it wait, and get a seat
oldest first when one frees up), invitations (signed single-use links, the mail, the `/invite`
page, automatic re-sends of expired links: invitations, routes), auto-confirm rules and other
per-organization settings (settings), fingerprint phrases (fingerprint), events with their webhook
messages (events) and webhook endpoints (webhooks). Every change, its Event and its outbox
messages go in the caller's transaction.
Does not: decide who should be a member (gateway.provisioning), deliver mail or webhooks
(gateway.outbox), nor speak HTTP beyond the invitation page (gateway.admin has the console).
"""

from gateway.lifecycle.members import (
    Seats,
    accept,
    confirm,
    expire_invitation,
    invite,
    new_member,
    release_seats,
    remove,
    resend_invitation,
    restore,
    revoke,
    stage,
)

__all__ = [
    "Seats",
    "accept",
    "confirm",
    "expire_invitation",
    "invite",
    "new_member",
    "release_seats",
    "remove",
    "resend_invitation",
    "restore",
    "revoke",
    "stage",
]

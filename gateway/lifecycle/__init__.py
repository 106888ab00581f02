"""Member lifecycle: the status transitions of one member and what each one records.

Does: create members as invited (with an `invitation` outbox message) or staged (org staged mode,
or no seat left: `waiting_for_seat`), grow the organization's seats up to its limit, revoke
(keeping group and collection assignments), restore to the status before the revoke, remove; each
with its Event, in the caller's transaction. Does not: decide who should be a member (the
provisioning engine does), deliver invitations (the outbox worker does), nor yet accept, confirm
or release seats when one frees up.
"""

from gateway.lifecycle.members import (
    Seats,
    invite,
    new_member,
    remove,
    restore,
    revoke,
    stage,
)

__all__ = ["Seats", "invite", "new_member", "remove", "restore", "revoke", "stage"]

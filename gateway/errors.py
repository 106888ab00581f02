"""Domain errors, one type per kind. The HTTP boundary (gateway.http_errors) turns them into SCIM
or JSON errors and the CLI into messages; nothing below those edges formats an error for a
transport."""


class GatewayError(Exception):
    """Base of every error the gateway raises on purpose; its message says what to fix."""


class NotFound(GatewayError):
    pass


class Conflict(GatewayError):
    pass


class InvalidInput(GatewayError):
    pass


class Unauthorized(GatewayError):
    pass


class InvalidTransition(GatewayError):
    """A member (or admin) cannot move from its current status to the one asked for."""


class SeatLimitReached(GatewayError):
    pass


class Misconfigured(GatewayError):
    """What the operator stored cannot be used (a mapping a newer release refuses): the server's
    to fix, not the request's, so the HTTP edge answers 500 and an IdP retries later."""


def database_unavailable(exc: BaseException) -> bool:
    """The database could not be reached or stopped answering (refused or dropped connection,
    restart, failover, too many connections, statement timeout, SQLite still locked): the
    request may succeed when retried, so the HTTP edge answers 503 rather than 500. An error
    in a statement itself (constraint, syntax, too many parameters) is not this."""
    from sqlalchemy import exc as sa

    if isinstance(exc, sa.DBAPIError):
        # No statement: it failed while connecting. Invalidated: the connection broke under it.
        if exc.statement is None or exc.connection_invalidated:
            return True
        # PostgreSQL classes 08 connection exception, 53 insufficient resources, 57 operator
        # intervention (shutdown, statement timeout).
        if (getattr(exc.orig, "sqlstate", None) or "")[:2] in {"08", "53", "57"}:
            return True
        return isinstance(exc, sa.OperationalError) and "database is locked" in str(exc.orig)
    return isinstance(exc, sa.DisconnectionError | sa.TimeoutError)

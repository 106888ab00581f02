"""Domain errors, one type per kind. The HTTP boundary turns them into SCIM or JSON errors and
the CLI into messages; nothing below those edges formats an error for a transport."""


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

"""SCIM errors as data (RFC 7644 §3.12): one exception carrying status, scimType and detail.

Does: define the error type and its JSON body. Does not: decide when a request is wrong.
"""

from __future__ import annotations

from gateway.scim.limits import shorten

ERROR_SCHEMA = "urn:ietf:params:scim:api:messages:2.0:Error"
MAX_DETAIL = 500


class ScimError(Exception):
    status = 400
    scim_type: str | None = None

    def __init__(self, detail: str, *, status: int | None = None, scim_type: str | None = None):
        # A detail quotes what the client sent; it is cut short so a 20,000-character attribute
        # name makes neither a huge answer nor a huge log line.
        detail = shorten(detail, MAX_DETAIL)
        super().__init__(detail)
        self.detail = detail
        if status is not None:
            self.status = status
        if scim_type is not None:
            self.scim_type = scim_type

    def body(self) -> dict:
        body: dict = {"schemas": [ERROR_SCHEMA], "status": str(self.status), "detail": self.detail}
        if self.scim_type:
            body["scimType"] = self.scim_type
        return body


class InvalidSyntax(ScimError):
    scim_type = "invalidSyntax"


class InvalidValue(ScimError):
    scim_type = "invalidValue"


class InvalidFilter(ScimError):
    scim_type = "invalidFilter"


class InvalidPath(ScimError):
    scim_type = "invalidPath"


class NoTarget(ScimError):
    scim_type = "noTarget"


class Mutability(ScimError):
    scim_type = "mutability"


class Uniqueness(ScimError):
    status = 409
    scim_type = "uniqueness"


class TooMany(ScimError):
    scim_type = "tooMany"


class InvalidVersion(ScimError):
    scim_type = "invalidVers"


class NotFound(ScimError):
    status = 404


class Unauthorized(ScimError):
    status = 401


class PreconditionFailed(ScimError):
    status = 412


class PayloadTooLarge(ScimError):
    status = 413


class MethodNotAllowed(ScimError):
    status = 405


class UnsupportedMediaType(ScimError):
    status = 415

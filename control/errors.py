"""Errors the logic raises; each transport maps them to a gRPC code or an HTTP status.

Every error carries ``reason``: what was wrong and what the caller can do about it.
"""

from __future__ import annotations


class ControlError(Exception):
    """Base of every error a caller may see. ``http_status`` is the REST mapping."""

    grpc_code = "INTERNAL"
    http_status = 500

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


class InvalidArgument(ControlError):
    grpc_code = "INVALID_ARGUMENT"
    http_status = 400


class Unauthenticated(ControlError):
    grpc_code = "UNAUTHENTICATED"
    http_status = 401


class PermissionDenied(ControlError):
    grpc_code = "PERMISSION_DENIED"
    http_status = 403


class NotFound(ControlError):
    grpc_code = "NOT_FOUND"
    http_status = 404


class IllegalTransition(ControlError):
    """The video's state does not allow the operation (409 over REST)."""

    grpc_code = "FAILED_PRECONDITION"
    http_status = 409


class PreconditionFailed(ControlError):
    """Something the operation needs is not there yet, e.g. an unfinished upload (412)."""

    grpc_code = "FAILED_PRECONDITION"
    http_status = 412


class Conflict(ControlError):
    """The request contradicts stored data, e.g. an upload bound to another video (409)."""

    grpc_code = "FAILED_PRECONDITION"
    http_status = 409


class Unavailable(ControlError):
    """A dependency (PostgreSQL) is down; the caller should retry later (503)."""

    grpc_code = "UNAVAILABLE"
    http_status = 503

"""The one error type every part raises; rendered as an RFC 9457 problem document by kit.http."""

from __future__ import annotations

from typing import Any


class TanhuiError(Exception):
    """A business outcome the caller can act on: a stable `code`, an HTTP status and optionally a field."""

    status_code: int = 400
    code: str = "bad_request"

    def __init__(
        self,
        message: str,
        *,
        code: str | None = None,
        status_code: int | None = None,
        field: str | None = None,
        extra: dict[str, Any] | None = None,
    ) -> None:
        super().__init__(message)
        self.message = message
        if code is not None:
            self.code = code
        if status_code is not None:
            self.status_code = status_code
        self.field = field
        self.extra = extra or {}


class NotFound(TanhuiError):
    status_code = 404
    code = "not_found"


class Conflict(TanhuiError):
    status_code = 409
    code = "conflict"


class IdempotencyConflict(Conflict):
    code = "idempotency_conflict"

    def __init__(self, key: str) -> None:
        super().__init__(
            f"Idempotency key {key!r} was already used with a different request",
            field="idempotency_key",
        )


class Unauthorized(TanhuiError):
    status_code = 401
    code = "unauthorized"


class Forbidden(TanhuiError):
    status_code = 403
    code = "forbidden"


class InvalidInput(TanhuiError):
    status_code = 422
    code = "invalid_input"

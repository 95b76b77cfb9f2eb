"""HTTP edge plumbing: the request-scoped transaction and one problem-document format for every error.

Problem documents follow RFC 9457 (type, title, status, detail) plus `code` (stable, snake_case) and
`field` (the offending input, dotted), so clients branch on `code`, never on prose.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from http import HTTPStatus
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from sqlalchemy.exc import DataError, IntegrityError, OperationalError
from sqlalchemy.orm import Session
from starlette.exceptions import HTTPException as StarletteHTTPException

from tanhui.kit.errors import TanhuiError

log = logging.getLogger("tanhui.http")

PROBLEM_TYPE_BASE = "https://tanhui.dev/problems/"


def get_session(request: Request) -> Iterator[Session]:
    """The request's unit of work: committed when the endpoint returns, rolled back on any error."""
    session: Session = request.app.state.session_factory()
    try:
        yield session
        session.commit()
    except BaseException:
        session.rollback()
        raise
    finally:
        session.close()


def problem(
    status: int,
    code: str,
    detail: str,
    *,
    field: str | None = None,
    headers: dict[str, str] | None = None,
    **extra: Any,
) -> JSONResponse:
    body: dict[str, Any] = {
        "type": PROBLEM_TYPE_BASE + code,
        "title": HTTPStatus(status).phrase,
        "status": status,
        "detail": detail,
        "code": code,
        "field": field,
    }
    body.update(extra)
    return JSONResponse(
        body, status_code=status, media_type="application/problem+json", headers=headers
    )


def _field_of(loc: tuple[Any, ...] | list[Any]) -> str | None:
    parts = [str(p) for p in loc if p not in ("body", "query", "path", "header")]
    return ".".join(parts) or None


def _clean(error: dict[str, Any]) -> dict[str, Any]:
    # Pydantic's ctx may hold exception objects; keep what serialises.
    return {
        "field": _field_of(error.get("loc", ())),
        "message": error.get("msg", ""),
        "type": error.get("type", ""),
    }


def install_error_handlers(app: FastAPI) -> None:
    @app.exception_handler(TanhuiError)
    async def _tanhui(_: Request, exc: TanhuiError) -> JSONResponse:
        return problem(exc.status_code, exc.code, exc.message, field=exc.field, **exc.extra)

    @app.exception_handler(RequestValidationError)
    async def _validation(_: Request, exc: RequestValidationError) -> JSONResponse:
        errors = [_clean(e) for e in exc.errors()]
        first = errors[0] if errors else {"field": None, "message": "invalid request"}
        return problem(
            422,
            "invalid_input",
            f"{first['field'] or 'request'}: {first['message']}",
            field=first["field"],
            errors=errors,
        )

    @app.exception_handler(StarletteHTTPException)
    async def _http(_: Request, exc: StarletteHTTPException) -> JSONResponse:
        code = {404: "not_found", 405: "method_not_allowed", 401: "unauthorized"}.get(
            exc.status_code, "http_error"
        )
        return problem(exc.status_code, code, str(exc.detail), headers=dict(exc.headers or {}))

    @app.exception_handler(IntegrityError)
    async def _integrity(_: Request, exc: IntegrityError) -> JSONResponse:
        # A race that lost to a concurrent writer (unique key, foreign key): the request can be retried.
        log.info("integrity conflict: %s", exc.orig)
        return problem(409, "conflict", "The request conflicts with the current state; retry it")

    @app.exception_handler(DataError)
    async def _data(_: Request, exc: DataError) -> JSONResponse:
        # A value the database itself refuses (a NUL character in text on PostgreSQL, a number out
        # of the column's range): the input was bad, and nothing was written.
        log.info("data refused by the database: %s", exc.orig)
        return problem(
            422, "invalid_input", "A value is not acceptable (out of range or bad characters)"
        )

    @app.exception_handler(OverflowError)
    async def _overflow(_: Request, exc: OverflowError) -> JSONResponse:
        # SQLite's driver raises this (not a DataError) for an integer beyond 64 bits.
        log.info("number out of range: %s", exc)
        return problem(422, "invalid_input", "A number is out of range")

    @app.exception_handler(OperationalError)
    async def _operational(_: Request, exc: OperationalError) -> JSONResponse:
        text = str(exc.orig).lower()
        if "locked" in text or "busy" in text or "deadlock" in text or "serializ" in text:
            return problem(
                503,
                "busy",
                "The database is busy; retry shortly",
                headers={"Retry-After": "1"},
            )
        log.exception("database error")
        return problem(503, "database_unavailable", "The database is unavailable; retry shortly")

    @app.exception_handler(Exception)
    async def _unexpected(_: Request, exc: Exception) -> JSONResponse:
        log.exception("unhandled error", exc_info=exc)
        return problem(500, "internal_error", "An unexpected error occurred; it has been logged")

"""FastAPI dependencies that say who is calling: citizens and staff by token, partners by signature.

Tokens come from `Authorization: Bearer <token>` or, for the web pages, the `tanhui_session` cookie.
"""

from __future__ import annotations

from collections.abc import Callable

from fastapi import Depends, Request, Response
from sqlalchemy.orm import Session
from starlette.concurrency import run_in_threadpool

from tanhui.identity import service as identity_service
from tanhui.identity.principal import PartnerPrincipal, Principal
from tanhui.kit.errors import Forbidden, Unauthorized
from tanhui.kit.http import get_session

SESSION_COOKIE = "tanhui_session"

__all__ = [
    "SESSION_COOKIE",
    "PartnerPrincipal",
    "Principal",
    "bearer_token",
    "current_citizen",
    "current_principal",
    "current_staff",
    "optional_principal",
    "partner_request",
    "require_role",
    "set_session_cookie",
]


class NotAuthenticated(Unauthorized):
    code = "not_authenticated"


class InvalidToken(Unauthorized):
    code = "invalid_token"


class MissingRole(Forbidden):
    code = "missing_role"


def bearer_token(request: Request) -> str | None:
    """The presented token: the Authorization header wins over the cookie."""
    header = request.headers.get("authorization", "")
    scheme, _, value = header.partition(" ")
    if scheme.lower() == "bearer" and value.strip():
        return value.strip()
    return request.cookies.get(SESSION_COOKIE) or None


def optional_principal(
    request: Request, session: Session = Depends(get_session)
) -> Principal | None:
    """The caller, or None when no token was presented (public pages). A bad token is still a 401."""
    token = bearer_token(request)
    if token is None:
        return None
    principal = identity_service.principal_for_token(session, token)
    if principal is None:
        raise InvalidToken("the session token is unknown, expired or revoked; log in again")
    return principal


def current_principal(principal: Principal | None = Depends(optional_principal)) -> Principal:
    if principal is None:
        raise NotAuthenticated("log in first (Authorization: Bearer <token>)")
    return principal


def current_citizen(principal: Principal = Depends(current_principal)) -> Principal:
    if principal.kind != "citizen":
        raise Forbidden("only citizens may do this", code="citizen_only")
    return principal


def current_staff(principal: Principal = Depends(current_principal)) -> Principal:
    if principal.kind != "staff":
        raise Forbidden("only staff may do this", code="staff_only")
    return principal


def require_role(*roles: str) -> Callable[..., Principal]:
    """A dependency returning the principal if it holds ANY of `roles` (401 anonymous, 403 otherwise)."""
    wanted = frozenset(roles)

    def dependency(principal: Principal = Depends(current_principal)) -> Principal:
        if not principal.roles & wanted:
            raise MissingRole(f"requires one of the roles: {', '.join(sorted(wanted))}")
        return principal

    return dependency


def set_session_cookie(response: Response, token: str, *, secure: bool = False) -> None:
    """For the web pages after a login form: HttpOnly, SameSite=Lax (no cross-site form posts)."""
    response.set_cookie(
        SESSION_COOKIE,
        token,
        httponly=True,
        samesite="lax",
        secure=secure,
        max_age=int(identity_service.CITIZEN_TOKEN_TTL.total_seconds()),
    )


def signed_path(request: Request) -> str:
    """The path as the client sent it (percent-encoding included): what the partner signed."""
    raw = request.scope.get("raw_path")
    return raw.decode("latin-1").split("?", 1)[0] if raw else request.url.path


async def partner_request(
    request: Request, session: Session = Depends(get_session)
) -> PartnerPrincipal:
    """Verify the partner's signature (tanhui.identity.signing); `await request.body()` still works."""
    body = await request.body()
    return await run_in_threadpool(
        identity_service.verify_partner_request,
        session,
        method=request.method,
        path=signed_path(request),
        headers=dict(request.headers),
        body=body,
    )

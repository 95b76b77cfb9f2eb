"""Who is looking at a page: identity's web session cookie, resolved without raising.

A page never answers 401 JSON: an anonymous or expired visitor is sent to the right login page with
`next`, and a logged-in person without the role sees a plain "not allowed" page.
"""

from __future__ import annotations

from urllib.parse import quote

from fastapi import Depends, Request
from sqlalchemy.orm import Session

from tanhui.identity import service as identity_service
from tanhui.identity.auth import SESSION_COOKIE
from tanhui.identity.principal import Principal
from tanhui.kit.http import get_session

CONSOLE_ROLES = frozenset({"operator_admin", "reviewer", "merchant", "verifier", "project_owner"})


class LoginRequired(Exception):
    def __init__(self, login_path: str, next_url: str) -> None:
        super().__init__(login_path)
        self.location = f"{login_path}?next={quote(next_url, safe='')}"


def _next(request: Request) -> str:
    query = request.url.query
    return request.url.path + (f"?{query}" if query else "")


def web_principal(request: Request, session: Session = Depends(get_session)) -> Principal | None:
    token = request.cookies.get(SESSION_COOKIE)
    if not token:
        return None
    return identity_service.principal_for_token(session, token)


def citizen_page(
    request: Request, principal: Principal | None = Depends(web_principal)
) -> Principal:
    if principal is None or principal.kind != "citizen":
        raise LoginRequired("/login", _next(request))
    return principal


def staff_page(request: Request, principal: Principal | None = Depends(web_principal)) -> Principal:
    if principal is None or principal.kind != "staff":
        raise LoginRequired("/console/login", _next(request))
    return principal


def safe_next(value: str | None, default: str) -> str:
    """Only same-site paths: `next=https://evil.example` must not turn login into an open redirect."""
    if value and value.startswith("/") and not value.startswith("//") and "\\" not in value:
        return value
    return default

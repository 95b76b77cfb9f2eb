"""Citizen pages (phone first): login by one-time code, home, history with calculations, linked apps,
the partner authorisation page, mall and orders, data export and account deletion."""

from __future__ import annotations

from fastapi import APIRouter, Depends, Request
from fastapi.responses import HTMLResponse, Response
from sqlalchemy.orm import Session

from tanhui.identity import service as identity_service
from tanhui.identity.auth import SESSION_COOKIE, set_session_cookie
from tanhui.identity.principal import Principal
from tanhui.identity.service import accounts as identity_accounts
from tanhui.kit.errors import TanhuiError
from tanhui.kit.http import get_session
from tanhui.web import render
from tanhui.web.auth import citizen_page, safe_next, web_principal
from tanhui.web.views.common import error_map, flash, form_data

router = APIRouter(include_in_schema=False)


def _dev_sender() -> bool:
    """The console sender writes codes to the server log: say so on the page (development only)."""
    return isinstance(identity_accounts.otp_sender, identity_service.ConsoleOtpSender)


@router.get("/login", response_class=HTMLResponse)
def login_page(request: Request, principal: Principal | None = Depends(web_principal)) -> Response:
    nxt = safe_next(request.query_params.get("next"), "/me")
    if principal is not None and principal.kind == "citizen":
        return render.redirect(nxt)
    return render.render(
        request,
        "citizen/login.html",
        {"step": "phone", "next": nxt, "dev": _dev_sender(), "flash": flash(request)},
    )


@router.post("/login/code", response_class=HTMLResponse)
async def login_send_code(request: Request, session: Session = Depends(get_session)) -> Response:
    data = await form_data(request)
    nxt = safe_next(data.get("next"), "/me")
    phone = data.get("phone", "").strip()
    context = {"next": nxt, "dev": _dev_sender(), "form": {"phone": phone}}
    try:
        identity_service.request_otp(session, phone=phone)
    except TanhuiError as exc:
        errors = error_map(request, exc)
        if "" not in errors and "phone" not in errors:
            errors = {"phone": next(iter(errors.values()))}
        return render.render(
            request,
            "citizen/login.html",
            {**context, "step": "phone", "errors": errors},
            status_code=exc.status_code,
        )
    return render.render(request, "citizen/login.html", {**context, "step": "code"})


@router.post("/login", response_class=HTMLResponse)
async def login_submit(request: Request, session: Session = Depends(get_session)) -> Response:
    data = await form_data(request)
    nxt = safe_next(data.get("next"), "/me")
    phone = data.get("phone", "").strip()
    code = data.get("code", "").strip()
    try:
        _, token = identity_service.login_citizen(session, phone=phone, code=code)
    except TanhuiError as exc:
        # No exception escapes, so the request's transaction commits the counted attempt: the
        # attempt limit is what stops guessing six digits.
        errors = error_map(request, exc)
        if "" in errors or "phone" not in errors:
            errors = {"code": next(iter(errors.values()))}
        return render.render(
            request,
            "citizen/login.html",
            {
                "step": "code",
                "next": nxt,
                "dev": _dev_sender(),
                "form": {"phone": phone},
                "errors": errors,
            },
            status_code=exc.status_code,
        )
    response = render.redirect(nxt)
    set_session_cookie(response, token, secure=request.url.scheme == "https")
    return response


@router.post("/logout")
async def logout(request: Request, session: Session = Depends(get_session)) -> Response:
    await form_data(request)
    token = request.cookies.get(SESSION_COOKIE)
    if token:
        identity_service.revoke_token(session, token)
    target = "/console/login" if request.query_params.get("to") == "console" else "/login"
    response = render.redirect(target + "?done=logged_out")
    response.delete_cookie(SESSION_COOKIE)
    return response


@router.get("/me", response_class=HTMLResponse)
def home(request: Request, principal: Principal = Depends(citizen_page)) -> HTMLResponse:
    return render.render(request, "citizen/home.html", {"summary": None}, principal=principal)

"""Operator console (desk first): staff login, dashboard, partners, methodologies and factors, review
queue, mall management, ledger check, projects."""

from __future__ import annotations

from fastapi import APIRouter, Depends, Request
from fastapi.responses import HTMLResponse, Response
from sqlalchemy.orm import Session

from tanhui.identity import service as identity_service
from tanhui.identity.auth import set_session_cookie
from tanhui.identity.principal import Principal
from tanhui.kit.errors import TanhuiError
from tanhui.kit.http import get_session
from tanhui.web import render
from tanhui.web.auth import safe_next, staff_page, web_principal
from tanhui.web.views.common import error_map, flash, form_data

router = APIRouter(prefix="/console", include_in_schema=False)


@router.get("/login", response_class=HTMLResponse)
def login_page(request: Request, principal: Principal | None = Depends(web_principal)) -> Response:
    nxt = safe_next(request.query_params.get("next"), "/console")
    if principal is not None and principal.kind == "staff":
        return render.redirect(nxt)
    return render.render(request, "console/login.html", {"next": nxt, "flash": flash(request)})


@router.post("/login", response_class=HTMLResponse)
async def login_submit(request: Request, session: Session = Depends(get_session)) -> Response:
    data = await form_data(request)
    nxt = safe_next(data.get("next"), "/console")
    username = data.get("username", "").strip()
    try:
        _, token = identity_service.login_staff(
            session, username=username, password=data.get("password", "")
        )
    except TanhuiError as exc:
        errors = error_map(request, exc)
        if "username" not in errors and "password" not in errors:
            errors = {"password": next(iter(errors.values()))}
        return render.render(
            request,
            "console/login.html",
            {"next": nxt, "form": {"username": username}, "errors": errors},
            status_code=exc.status_code,
        )
    response = render.redirect(nxt)
    set_session_cookie(response, token, secure=request.url.scheme == "https")
    return response


@router.get("", response_class=HTMLResponse)
def dashboard(request: Request, principal: Principal = Depends(staff_page)) -> HTMLResponse:
    return render.render(request, "console/dashboard.html", {}, principal=principal)

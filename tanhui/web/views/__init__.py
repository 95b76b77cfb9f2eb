"""HTML routes by audience; `tanhui.app` includes `routers` and calls `mount(app)` for the rest."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, FastAPI, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from fastapi.staticfiles import StaticFiles

from tanhui.kit.errors import TanhuiError
from tanhui.kit.http import problem
from tanhui.web import render, security
from tanhui.web.auth import LoginRequired
from tanhui.web.views import (
    account,
    applications,
    citizen,
    common,
    console,
    docs,
    mall,
    partner_activity,
    projects,
    public,
    registry,
    rules,
    staff,
    support,
)

routers: list[APIRouter] = [
    public.router,
    docs.router,
    citizen.router,
    mall.router,
    account.router,
    console.router,
    partner_activity.router,
    applications.router,
    projects.router,
    registry.router,
    rules.router,
    staff.router,
    staff.own_router,
    support.router,
]


def too_large(scope: Any, exc: TanhuiError) -> Response:
    """The answer to a body over the ceiling (`kit.body_limit`): a page for the pages, in the
    reader's language, and a problem document for the API."""
    request = Request(scope)
    if request.url.path.startswith("/v1/"):
        return problem(exc.status_code, exc.code, exc.message, field=exc.field)
    return common.error_page(request, exc, back=request.url.path)


def mount(app: FastAPI) -> None:
    """Static files (local only: no CDN) and the login redirect for pages that need a session."""
    app.mount("/static", StaticFiles(directory=render.STATIC), name="static")

    @app.exception_handler(LoginRequired)
    async def _login(_: Request, exc: LoginRequired) -> RedirectResponse:
        return RedirectResponse(exc.location, status_code=303)

    @app.exception_handler(security.CsrfFailed)
    async def _csrf(request: Request, exc: security.CsrfFailed) -> HTMLResponse:
        return common.error_page(request, exc, back=request.url.path)

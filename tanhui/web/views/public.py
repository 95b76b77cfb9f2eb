"""Public pages: the landing page with live platform totals, and what carbon inclusion is."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Depends, Request
from fastapi.responses import HTMLResponse
from sqlalchemy.orm import Session

from tanhui.identity.principal import Principal
from tanhui.kit.http import get_session
from tanhui.web import render, services
from tanhui.web.auth import web_principal

router = APIRouter(include_in_schema=False)


def platform_totals(session: Session) -> dict[str, Any]:
    """Live figures from the parts that own them; None where the owning part is not there yet."""
    totals: dict[str, Any] = {
        "participants": None,
        "total_mg": None,
        "records": None,
        "credits_retired": None,
    }
    summary = services.function("activity", "platform_summary")
    if summary is not None:
        figures = summary(session)
        totals["participants"] = figures.get("participants")
        totals["total_mg"] = figures.get("total_mg")
        totals["records"] = figures.get("records")
    retired = services.function("registry", "retired_total")
    if retired is not None:
        totals["credits_retired"] = retired(session)
    return totals


@router.get("/", response_class=HTMLResponse)
def landing(
    request: Request,
    session: Session = Depends(get_session),
    principal: Principal | None = Depends(web_principal),
) -> HTMLResponse:
    return render.render(
        request,
        "public/landing.html",
        {"totals": platform_totals(session)},
        principal=principal,
    )


@router.get("/about", response_class=HTMLResponse)
def about(request: Request, principal: Principal | None = Depends(web_principal)) -> HTMLResponse:
    return render.render(request, "public/about.html", principal=principal)

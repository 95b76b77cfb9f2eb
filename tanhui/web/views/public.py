"""Public pages: the landing page with live platform totals, and what carbon inclusion is."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Depends, Request
from fastapi.responses import HTMLResponse
from sqlalchemy.orm import Session

from tanhui.activity import service as activity_service
from tanhui.identity.principal import Principal
from tanhui.kit.http import get_session
from tanhui.ledger import service as ledger_service
from tanhui.registry import service as registry_service
from tanhui.web import render
from tanhui.web.auth import web_principal

router = APIRouter(include_in_schema=False)


def platform_totals(session: Session) -> dict[str, Any]:
    """Live figures from the parts that own them."""
    figures = activity_service.platform_summary(session, days=1)
    return {
        "participants": figures["participants"],
        "total_mg": total_reduction_mg(session),
        "records": figures["records"],
        "credits_retired": registry_service.totals(session).get("retired"),
    }


def total_reduction_mg(session: Session) -> int:
    """Net CO2e credited to citizens: what the platform's CO2E_MG system accounts issued."""
    return -sum(
        b.balance
        for b in ledger_service.balances(
            session, owner_type=ledger_service.PLATFORM, owner_id=ledger_service.PLATFORM
        )
        if b.asset == ledger_service.CO2E_MG
    )


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

"""Citizen pages (phone first): login by one-time code, home, history with calculations, linked apps,
the partner authorisation page, mall and orders, data export and account deletion."""

from __future__ import annotations

from datetime import date, timedelta
from functools import partial
from typing import Any

from fastapi import APIRouter, Depends, Request
from fastapi.responses import HTMLResponse, Response
from sqlalchemy.orm import Session

from tanhui.activity import service as activity_service
from tanhui.identity import service as identity_service
from tanhui.identity.auth import SESSION_COOKIE, set_session_cookie
from tanhui.identity.principal import Principal
from tanhui.identity.service import accounts as identity_accounts
from tanhui.incentives import service as incentives_service
from tanhui.kit.db import utcnow
from tanhui.kit.errors import NotFound, TanhuiError
from tanhui.kit.http import get_session
from tanhui.kit.settings import get_settings
from tanhui.web import charts, equivalents, formatting, i18n, render
from tanhui.web.auth import citizen_page, safe_next, web_principal
from tanhui.web.views.common import error_map, error_page, flash, form_data, to_int

router = APIRouter(include_in_schema=False)

PAGE = 20


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
def login_send_code(
    request: Request,
    session: Session = Depends(get_session),
    data: dict[str, str] = Depends(form_data),
) -> Response:
    nxt = safe_next(data.get("next"), "/me")
    phone = data.get("phone", "").strip()
    context = {"next": nxt, "dev": _dev_sender(), "form": {"phone": phone}}
    try:
        pending = identity_service.request_otp(session, phone=phone)
        session.commit()
        pending.send()
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
def login_submit(
    request: Request,
    session: Session = Depends(get_session),
    data: dict[str, str] = Depends(form_data),
) -> Response:
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
def logout(
    request: Request,
    session: Session = Depends(get_session),
    _form: dict[str, str] = Depends(form_data),
) -> Response:
    token = request.cookies.get(SESSION_COOKIE)
    if token:
        identity_service.revoke_token(session, token)
    target = "/console/login" if request.query_params.get("to") == "console" else "/login"
    response = render.redirect(target + "?done=logged_out")
    response.delete_cookie(SESSION_COOKIE)
    return response


def _last_months(monthly: list[dict[str, Any]], until: date, n: int = 12) -> list[tuple[str, int]]:
    """The `n` months up to `until`'s, oldest first, a month without reductions at zero (the
    summary lists only months that have some)."""
    by_month = {m["month"]: int(m["reduction_mg"]) for m in monthly}
    year, month = until.year, until.month
    keys = []
    for _ in range(n):
        keys.append(f"{year:04d}-{month:02d}")
        year, month = (year, month - 1) if month > 1 else (year - 1, 12)
    return [(k, by_month.get(k, 0)) for k in reversed(keys)]


@router.get("/me", response_class=HTMLResponse)
def home(
    request: Request,
    session: Session = Depends(get_session),
    principal: Principal = Depends(citizen_page),
) -> HTMLResponse:
    _ = i18n.translator(render.lang_of(request))
    summary = activity_service.citizen_summary(session, principal.id)
    to_date = summary["month_to_date"]
    months = _last_months(summary["monthly"], date.fromisoformat(to_date["until"]))
    mass = partial(formatting.mass, lang=render.lang_of(request))
    tree = equivalents.TREE_YEAR
    daily = summary["daily"]
    points = incentives_service.points_summary(session, principal.id)
    # Warn ahead of an expiry (Guangzhou saw most points lapse unredeemed): within the next 60 days.
    horizon = utcnow().astimezone(get_settings().zone).date() + timedelta(days=60)
    expiring = next(((d, n) for d, n in points.expiring if n > 0 and d <= horizon), None)
    context: dict[str, Any] = {
        "flash": flash(request),
        "points": points,
        "expiring": expiring,
        "summary": summary,
        "to_date": to_date,
        "change": formatting.change(to_date["reduction_mg"], to_date["previous_reduction_mg"]),
        "tree": tree,
        "trees": tree.units(summary["total_mg"]),
        "chart": charts.bar(
            _("Last 30 days"),
            [d["date"][5:] for d in daily],
            [int(d["reduction_mg"]) for d in daily],
            mass,
        ),
        "months_chart": charts.bar(
            _("Last 12 months"), [m for m, _mg in months], [mg for _m, mg in months], mass
        ),
    }
    return render.render(request, "citizen/home.html", context, principal=principal)


@router.get("/me/records", response_class=HTMLResponse)
def records(
    request: Request,
    session: Session = Depends(get_session),
    principal: Principal = Depends(citizen_page),
) -> HTMLResponse:
    before = to_int(request.query_params.get("before"))
    scenarios = activity_service.citizen_scenarios(session, principal.id)
    # Unknown filter values show everything rather than an error: they come from hand-edited links.
    scenario = request.query_params.get("scenario")
    scenario = scenario if scenario in scenarios else None
    status = request.query_params.get("status")
    status = status if status in activity_service.CITIZEN_STATUSES else None
    fetched: list[dict[str, Any]] = activity_service.citizen_records(
        session, principal.id, limit=PAGE + 1, before_id=before, scenario=scenario, status=status
    )
    more = len(fetched) > PAGE
    rows = fetched[:PAGE]
    return render.render(
        request,
        "citizen/records.html",
        {
            "records": rows,
            "more": more,
            "next_before": rows[-1]["id"] if rows else None,
            "scenarios": scenarios,
            "statuses": activity_service.CITIZEN_STATUSES,
            "scenario": scenario,
            "status": status,
        },
        principal=principal,
    )


@router.get("/me/records/{record_id}", response_class=HTMLResponse)
def record(
    request: Request,
    record_id: str,
    session: Session = Depends(get_session),
    principal: Principal = Depends(citizen_page),
) -> HTMLResponse:
    rid = to_int(record_id)
    if rid is None:
        return error_page(
            request,
            NotFound("this record does not exist", field="record_id"),
            principal,
            back="/me/records",
        )
    try:
        detail = activity_service.record_detail(session, principal.id, rid)
    except TanhuiError as exc:
        return error_page(request, exc, principal, back="/me/records")
    return render.render(request, "citizen/record.html", {"r": detail}, principal=principal)

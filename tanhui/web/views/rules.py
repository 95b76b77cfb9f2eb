"""Console: the anti-fraud checks in force per scenario (rules are data), and an operator's change
of one parameter from a day on. Reviewers see them; operator admins change them."""

from __future__ import annotations

from contextlib import suppress
from datetime import date, datetime, time
from decimal import Decimal, InvalidOperation
from typing import Any

from fastapi import APIRouter, Depends, Request
from fastapi.responses import HTMLResponse, Response
from sqlalchemy.orm import Session

from tanhui.activity import rules as rules_mod
from tanhui.activity import service as activity_service
from tanhui.identity import service as identity_service
from tanhui.identity.principal import Principal
from tanhui.kit.db import utcnow
from tanhui.kit.errors import InvalidInput, TanhuiError
from tanhui.kit.http import get_session
from tanhui.kit.settings import get_settings
from tanhui.methodology.loader import SCENARIOS
from tanhui.web import render
from tanhui.web.auth import staff_page
from tanhui.web.views import common
from tanhui.web.views.common import N_, error_map, error_page, form_data, require_role

router = APIRouter(prefix="/console/rules", include_in_schema=False)

VIEWERS = ("reviewer", "operator_admin")
FIELDS = ("scenario", "param", "value", "effective_on")
# The parameters in the order a reviewer reads them: the trip's bounds first, then the rest.
SHOWN = [
    "max_speed_kmh",
    "review_speed_fraction",
    "review_distance_km",
    "review_kwh",
    "review_records_per_day",
    "dedupe_overlaps",
    "max_age_days",
    "future_allowance_s",
]
FLASH = {"saved": ("ok", N_("The change is saved; it applies to records from its day on."))}


def _page(
    request: Request,
    session: Session,
    principal: Principal,
    *,
    errors: dict[str, str] | None = None,
    form: dict[str, str] | None = None,
    status_code: int = 200,
) -> HTMLResponse:
    return render.render(
        request,
        "console/rules.html",
        {
            "overview": activity_service.rules_overview(session),
            "defaults": rules_mod.DEFAULTS[rules_mod.ALL],
            "changes": _with_names(session, activity_service.rule_changes(session)),
            "params": SHOWN,
            "scenarios": [rules_mod.ALL, *SCENARIOS],
            "can_change": principal.has_role("operator_admin"),
            "errors": errors or {},
            "form": form or {},
            "flash": common.flash(request, FLASH),
        },
        principal=principal,
        status_code=status_code,
    )


def _with_names(session: Session, changes: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Each change's author as the staff user's display name ("staff:<id>" in the row)."""
    names: dict[str, str] = {}
    for change in changes:
        who = change["created_by"] or ""
        if who not in names:
            names[who] = who
            staff_id = (
                common.to_int(who.removeprefix("staff:")) if who.startswith("staff:") else None
            )
            # A staff id with no user (the CLI acts as staff 0) keeps the stored form.
            if staff_id is not None:
                with suppress(TanhuiError):
                    names[who] = identity_service.get_staff(session, staff_id).display_name
        change["by"] = names[who]
    return changes


@router.get("", response_class=HTMLResponse)
def rules_page(
    request: Request,
    session: Session = Depends(get_session),
    principal: Principal = Depends(staff_page),
) -> HTMLResponse:
    try:
        require_role(principal, *VIEWERS)
    except TanhuiError as exc:
        return error_page(request, exc, principal, back="/console")
    return _page(request, session, principal)


def parse_value(param: str, text: str) -> Any:
    """A typed value for `param` from what the operator typed; `rules.clean_params` checks it."""
    kind = rules_mod.PARAMS.get(param)
    if kind is None:
        raise InvalidInput(N_("choose a parameter"), field="param")
    text = text.strip()
    if kind is bool:
        if text not in ("1", "0"):
            raise InvalidInput(N_("choose yes or no"), field="value")
        return text == "1"
    try:
        number = Decimal(text)
    except InvalidOperation:
        raise InvalidInput(N_("a positive number"), field="value") from None
    if kind is int:
        if number != number.to_integral_value() or number < 0 or number > 10**9:
            raise InvalidInput(N_("a whole number, 0 or more"), field="value")
        return int(number)
    return text


def _effective_from(text: str) -> datetime:
    """The start (platform time zone) of the day typed, or now if none; never in the past."""
    if not text.strip():
        return utcnow()
    try:
        day = date.fromisoformat(text.strip())
    except ValueError:
        raise InvalidInput(N_("a date like 2026-01-31"), field="effective_on") from None
    start = datetime.combine(day, time(), tzinfo=get_settings().zone)
    return max(start, utcnow())


@router.post("", response_class=HTMLResponse)
def rules_change(
    request: Request,
    session: Session = Depends(get_session),
    principal: Principal = Depends(staff_page),
    data: dict[str, str] = Depends(form_data),
) -> Response:
    form = {k: data.get(k, "") for k in FIELDS}
    try:
        require_role(principal, "operator_admin")
        scenario = form["scenario"].strip()
        if scenario != rules_mod.ALL and scenario not in SCENARIOS:
            raise InvalidInput(N_("choose a scenario"), field="scenario")
        value = parse_value(form["param"], form["value"])
        activity_service.set_rule(
            session,
            principal,
            scenario=scenario,
            params={form["param"]: value},
            effective_from=_effective_from(form["effective_on"]),
        )
    except TanhuiError as exc:
        session.rollback()
        if exc.status_code == 403:
            return error_page(request, exc, principal, back="/console/rules")
        errors = error_map(request, exc)
        if exc.code == "invalid_rule":  # the service names the field params.<name>
            errors = {"value": next(iter(errors.values()))}
        return _page(
            request, session, principal, errors=errors, form=form, status_code=exc.status_code
        )
    return render.redirect("/console/rules?done=saved#changes")

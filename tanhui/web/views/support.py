"""Console: look a citizen up by phone number (客服查询), for support and fraud investigation.

Every lookup states why. The reason goes into the citizen's access log with the staff member's
name, and the citizen reads it on their privacy page. The phone number travels only in the
posted form, never in a URL, which would keep it in logs and browser history.
"""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Depends, Request
from fastapi.responses import HTMLResponse, Response
from sqlalchemy.orm import Session

from tanhui.activity import service as activity_service
from tanhui.identity import service as identity_service
from tanhui.identity.principal import Principal
from tanhui.kit.errors import InvalidInput, TanhuiError
from tanhui.kit.http import get_session
from tanhui.web import render
from tanhui.web.auth import staff_page
from tanhui.web.views.common import N_, error_map, error_page, form_data, require_role

router = APIRouter(prefix="/console/citizens", include_in_schema=False)

VIEWERS = ("reviewer", "operator_admin")
RECORDS_SHOWN = 20


def _page(
    request: Request,
    principal: Principal,
    *,
    form: dict[str, str] | None = None,
    errors: dict[str, str] | None = None,
    found: dict[str, Any] | None = None,
    status_code: int = 200,
) -> HTMLResponse:
    return render.render(
        request,
        "console/citizens.html",
        {"form": form or {}, "errors": errors or {}, "found": found},
        principal=principal,
        status_code=status_code,
    )


@router.get("", response_class=HTMLResponse)
def lookup_page(request: Request, principal: Principal = Depends(staff_page)) -> HTMLResponse:
    try:
        require_role(principal, *VIEWERS)
    except TanhuiError as exc:
        return error_page(request, exc, principal, back="/console")
    return _page(request, principal)


@router.post("", response_class=HTMLResponse)
def lookup(
    request: Request,
    session: Session = Depends(get_session),
    principal: Principal = Depends(staff_page),
    data: dict[str, str] = Depends(form_data),
) -> Response:
    form = {"phone": data.get("phone", "").strip(), "why": data.get("why", "").strip()}
    try:
        require_role(principal, *VIEWERS)
        if not 3 <= len(form["why"]) <= 500:
            raise InvalidInput(
                N_("say why, e.g. the support ticket (3 to 500 characters)"), field="why"
            )
        citizen = identity_service.citizen_for_phone(session, form["phone"], create=False)
        profile = identity_service.read_citizen_as_staff(
            session, principal, citizen.id, why=form["why"]
        )
        records = activity_service.staff_records(
            session, principal, citizen.id, limit=RECORDS_SHOWN, why=form["why"]
        )
    except TanhuiError as exc:
        session.rollback()
        if exc.status_code == 403:
            return error_page(request, exc, principal, back="/console")
        return _page(
            request,
            principal,
            form=form,
            errors=error_map(request, exc),
            status_code=exc.status_code,
        )
    found = {
        **profile,
        "phone": identity_service.mask_phone(form["phone"]),
        "records": records,
    }
    # The number is not sent back into the form: the masked one above says whose data this is.
    return _page(request, principal, form={"why": form["why"]}, found=found)

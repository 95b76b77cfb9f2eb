"""Citizen consent and privacy pages: linked apps with revoke, the partner authorisation page
(`/authorize`, OAuth2 authorisation-code style, served by identity), data export and deletion."""

from __future__ import annotations

import json
from datetime import date, datetime
from typing import Any

from fastapi import APIRouter, Depends, Request
from fastapi.responses import HTMLResponse, Response
from sqlalchemy.orm import Session

from tanhui.identity import service as identity_service
from tanhui.identity.auth import SESSION_COOKIE
from tanhui.identity.principal import Principal
from tanhui.kit.errors import InvalidInput, TanhuiError
from tanhui.kit.http import get_session
from tanhui.web import i18n, render
from tanhui.web.auth import citizen_page
from tanhui.web.views.common import N_, error_map, error_page, flash, form_data, to_int

router = APIRouter(include_in_schema=False)

CONFIRM_WORDS = {"zh": "删除", "en": "DELETE"}


@router.get("/me/apps", response_class=HTMLResponse)
def apps(
    request: Request,
    session: Session = Depends(get_session),
    principal: Principal = Depends(citizen_page),
) -> HTMLResponse:
    bindings = identity_service.citizen_bindings(session, principal.id)
    return render.render(
        request,
        "citizen/apps.html",
        {"bindings": bindings, "flash": flash(request)},
        principal=principal,
    )


@router.post("/me/apps/{binding_id}/revoke", response_class=HTMLResponse)
def revoke(
    request: Request,
    binding_id: str,
    session: Session = Depends(get_session),
    principal: Principal = Depends(citizen_page),
    _form: dict[str, str] = Depends(form_data),
) -> Response:
    bid = to_int(binding_id)
    try:
        if bid is None:
            raise InvalidInput(N_("this link does not exist"), field="binding_id")
        identity_service.revoke_binding(session, principal.id, bid)
    except TanhuiError as exc:
        session.rollback()
        return error_page(request, exc, principal, back="/me/apps")
    return render.redirect("/me/apps?done=revoked")


def _authorize_request(params: Any) -> dict[str, str]:
    return {
        key: str(params.get(key, ""))[:2000]
        for key in ("partner_id", "partner_user_id", "scenarios", "redirect_uri", "state")
    }


@router.get("/authorize", response_class=HTMLResponse)
def authorize_page(
    request: Request,
    session: Session = Depends(get_session),
    principal: Principal = Depends(citizen_page),
) -> HTMLResponse:
    ask = _authorize_request(request.query_params)
    try:
        partner_id = to_int(ask["partner_id"])
        if partner_id is None:
            raise InvalidInput(N_("the link has no valid partner"), field="partner_id")
        partner, scenarios = identity_service.authorize_preview(
            session,
            partner_id=partner_id,
            scenarios=[s for s in ask["scenarios"].split(",") if s],
            redirect_uri=ask["redirect_uri"],
        )
    except TanhuiError as exc:
        return error_page(request, exc, principal, back="/me/apps")
    return render.render(
        request,
        "citizen/authorize.html",
        {"ask": ask, "partner_name": partner.name, "scenarios": scenarios},
        principal=principal,
    )


@router.post("/authorize", response_class=HTMLResponse)
def authorize_submit(
    request: Request,
    session: Session = Depends(get_session),
    principal: Principal = Depends(citizen_page),
    data: dict[str, str] = Depends(form_data),
) -> Response:
    ask = _authorize_request(data)
    if data.get("decision") != "allow":
        return render.redirect("/me/apps")
    try:
        partner_id = to_int(ask["partner_id"])
        if partner_id is None:
            raise InvalidInput(N_("the link has no valid partner"), field="partner_id")
        grant = identity_service.authorize(
            session,
            principal,
            partner_id=partner_id,
            partner_user_id=ask["partner_user_id"],
            scenarios=[s for s in ask["scenarios"].split(",") if s],
            redirect_uri=ask["redirect_uri"],
            state=ask["state"] or None,
        )
    except TanhuiError as exc:
        session.rollback()
        return error_page(request, exc, principal, back="/me/apps")
    # The redirect URI was checked against the partner's registered list by identity.
    return render.redirect(grant.redirect_url)


ACCESS_SHOWN = 50  # the latest reads of the citizen's data on the page; the export holds all


@router.get("/me/privacy", response_class=HTMLResponse)
def privacy(
    request: Request,
    session: Session = Depends(get_session),
    principal: Principal = Depends(citizen_page),
) -> HTMLResponse:
    return render.render(
        request,
        "citizen/privacy.html",
        {
            "step": "start",
            "flash": flash(request),
            "reads": identity_service.access_log(session, principal.id, limit=ACCESS_SHOWN),
        },
        principal=principal,
    )


def _json_default(value: Any) -> Any:
    if isinstance(value, datetime | date):
        return value.isoformat()
    if isinstance(value, bytes):
        return value.hex()
    return str(value)


@router.get("/me/privacy/export")
def export(
    session: Session = Depends(get_session), principal: Principal = Depends(citizen_page)
) -> Response:
    data = identity_service.export_citizen(session, principal.id)
    body = json.dumps(data, ensure_ascii=False, indent=2, default=_json_default)
    return Response(
        body,
        media_type="application/json",
        headers={
            "Content-Disposition": f'attachment; filename="tanhui-my-data-{principal.id}.json"',
            "Cache-Control": "no-store",
        },
    )


@router.post("/me/privacy/delete", response_class=HTMLResponse)
def delete_confirm(
    request: Request,
    principal: Principal = Depends(citizen_page),
    _form: dict[str, str] = Depends(form_data),
) -> HTMLResponse:
    """First step: explain what deletion does and ask for the confirmation word."""
    lang = render.lang_of(request)
    return render.render(
        request,
        "citizen/privacy.html",
        {"step": "confirm", "word": CONFIRM_WORDS[lang]},
        principal=principal,
    )


@router.post("/me/privacy/delete/confirm", response_class=HTMLResponse)
def delete_account(
    request: Request,
    session: Session = Depends(get_session),
    principal: Principal = Depends(citizen_page),
    data: dict[str, str] = Depends(form_data),
) -> Response:
    lang = render.lang_of(request)
    typed = data.get("confirm", "").strip()
    if typed not in CONFIRM_WORDS.values():
        _ = i18n.translator(lang)
        return render.render(
            request,
            "citizen/privacy.html",
            {
                "step": "confirm",
                "word": CONFIRM_WORDS[lang],
                "errors": {"confirm": _("Type %(w)s to confirm.", w=CONFIRM_WORDS[lang])},
            },
            principal=principal,
            status_code=422,
        )
    try:
        identity_service.erase_citizen(session, principal.id)
    except TanhuiError as exc:
        session.rollback()
        return render.render(
            request,
            "citizen/privacy.html",
            {"step": "confirm", "word": CONFIRM_WORDS[lang], "errors": error_map(request, exc)},
            principal=principal,
            status_code=exc.status_code,
        )
    response = render.redirect("/?done=deleted")
    response.delete_cookie(SESSION_COOKIE)
    return response

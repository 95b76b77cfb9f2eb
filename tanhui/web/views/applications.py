"""Partner onboarding on the web: an organisation applies on a public page; a reviewer approves named
scenarios until a day, or rejects with a reason, from the console's partners page (as Shanghai
onboards its scenario partners). A first approval creates the partner and shows its key once."""

from __future__ import annotations

from datetime import date

from fastapi import APIRouter, Depends, Request
from fastapi.responses import HTMLResponse, Response
from sqlalchemy.orm import Session

from tanhui.identity import service as identity_service
from tanhui.identity.principal import Principal
from tanhui.kit.errors import InvalidInput, TanhuiError
from tanhui.kit.http import get_session
from tanhui.methodology.loader import SCENARIOS
from tanhui.web import i18n, render
from tanhui.web.auth import staff_page, web_principal
from tanhui.web.views import common
from tanhui.web.views.common import N_, error_map, error_page, form_data, require_role, to_int
from tanhui.web.views.console import REVIEWERS, partners_page

router = APIRouter(include_in_schema=False)

FIELDS = ("name", "licence_no", "data_collection", "redirect_uris", "contact", "idempotency_key")
FLASH = {"applied": ("ok", N_("Your application is received. A reviewer will contact you."))}


def _apply_page(
    request: Request,
    principal: Principal | None,
    *,
    form: dict[str, str] | None = None,
    chosen: list[str] | None = None,
    errors: dict[str, str] | None = None,
    status_code: int = 200,
) -> HTMLResponse:
    form = dict(form or {})
    # Kept while the form is corrected: a key is spent only by an application that is stored.
    form["idempotency_key"] = form.get("idempotency_key") or render.form_key()
    return render.render(
        request,
        "public/apply.html",
        {
            "form": form,
            "chosen": chosen or [],
            "scenarios": SCENARIOS,
            "errors": errors or {},
            "flash": common.flash(request, FLASH),
            "number": to_int(request.query_params.get("no")),
        },
        principal=principal,
        status_code=status_code,
    )


@router.get("/partners/apply", response_class=HTMLResponse)
def apply_page(
    request: Request, principal: Principal | None = Depends(web_principal)
) -> HTMLResponse:
    return _apply_page(request, principal)


@router.post("/partners/apply", response_class=HTMLResponse)
def apply_submit(
    request: Request,
    session: Session = Depends(get_session),
    principal: Principal | None = Depends(web_principal),
    data: dict[str, str] = Depends(form_data),
) -> Response:
    form = {k: data.get(k, "").strip() for k in FIELDS}
    chosen = [s for s in SCENARIOS if data.get(f"scenario_{s}") == "1"]
    try:
        if not chosen:
            raise InvalidInput(N_("choose at least one scenario"), field="scenarios")
        application = identity_service.apply_as_partner(
            session,
            principal,
            name=form["name"],
            licence_no=form["licence_no"],
            scenarios=chosen,
            data_collection=form["data_collection"],
            redirect_uris=form["redirect_uris"].split(),
            contact=form["contact"] or None,
            idempotency_key=form["idempotency_key"][:200] or None,
        )
    except TanhuiError as exc:
        session.rollback()
        errors = error_map(request, exc)
        if "" in errors and exc.code == "incomplete_application":
            required = i18n.translator(render.lang_of(request))(N_("this field is required"))
            errors = {
                k: required for k in ("name", "licence_no", "data_collection") if not form[k]
            } or errors
        return _apply_page(
            request,
            principal,
            form=form,
            chosen=chosen,
            errors=errors,
            status_code=exc.status_code,
        )
    return render.redirect(f"/partners/apply?done=applied&no={application.id}")


# --- the reviewer's decision (on the console's partners page) -----------------------------------


@router.post("/console/partners/applications/{application_id}", response_class=HTMLResponse)
def application_decide(
    request: Request,
    application_id: str,
    session: Session = Depends(get_session),
    principal: Principal = Depends(staff_page),
    data: dict[str, str] = Depends(form_data),
) -> Response:
    aid = to_int(application_id)
    decision = data.get("decision")
    # The form's own key: a double click answers twice with the one decision (and its new key).
    decision_key = data.get("decision_key", "")[:200] or None
    try:
        require_role(principal, *REVIEWERS)
        if aid is None:
            raise InvalidInput(N_("no such application"), field="application_id")
        if decision == "approve":
            scenarios = [s for s in SCENARIOS if data.get(f"scenario_{s}") == "1"]
            if not scenarios:
                raise InvalidInput(N_("choose at least one scenario"), field="scenarios")
            try:
                until = date.fromisoformat(data.get("valid_until", "").strip())
            except ValueError:
                raise InvalidInput(N_("a date like 2026-01-31"), field="valid_until") from None
            _, created = identity_service.approve_application(
                session,
                principal,
                aid,
                scenarios=scenarios,
                valid_until=until,
                note=data.get("note", "").strip() or None,
                idempotency_key=decision_key,
            )
        elif decision == "reject":
            note = data.get("note", "").strip()
            if not note:
                raise InvalidInput(N_("give the reason"), field="note")
            identity_service.reject_application(
                session, principal, aid, note=note, idempotency_key=decision_key
            )
            created = None
        else:
            raise InvalidInput(N_("choose approve or reject"), field="decision")
    except TanhuiError as exc:
        session.rollback()
        if aid is None or exc.status_code in (403, 404):
            return error_page(request, exc, principal, back="/console/partners")
        return partners_page(
            request,
            session,
            principal,
            application_errors={aid: error_map(request, exc)},
            status_code=exc.status_code,
        )
    if created is not None:
        # A new partner: its first key is shown once, on this response only.
        return partners_page(request, session, principal, created=created)
    done = "approved" if decision == "approve" else "rejected"
    return render.redirect(f"/console/partners?done={done}#applications")

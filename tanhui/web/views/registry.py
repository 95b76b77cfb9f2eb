"""Registry pages. Public (no login): totals and a chart, registered projects, batches with their serial
blocks and events, retirements with their trust-log proof, CSV exports from the API. Console: an
organisation's registry account (holdings by batch with serial ranges), transfer, retire, and the
operator's cancellation. Figures come from the registry part's service, never its tables."""

from __future__ import annotations

from collections import defaultdict
from typing import Any

from fastapi import APIRouter, Depends, Request
from fastapi.responses import HTMLResponse, Response
from sqlalchemy.orm import Session

from tanhui.identity import service as identity_service
from tanhui.identity.principal import Principal
from tanhui.kit.errors import InvalidInput, NotFound, TanhuiError
from tanhui.kit.http import get_session
from tanhui.projects import service as projects_service
from tanhui.registry import service as registry_service
from tanhui.registry.models import RegistryAccount
from tanhui.web import charts, formatting, i18n, render
from tanhui.web.auth import staff_page, web_principal
from tanhui.web.views.common import N_, error_map, error_page, form_data, to_int
from tanhui.web.views.projects import clean, flash, kw_text, org_name, query

router = APIRouter(include_in_schema=False)

PAGE = 100
REGISTRY_ROLES = ("operator_admin", "project_owner", "buyer", "verifier", "enterprise_admin")


# --- public ---------------------------------------------------------------------------------------


def vintage_chart(session: Session, lang: str) -> Any:
    """Credits by vintage year, stacked by what became of them (active, retired, cancelled)."""
    _ = i18n.translator(lang)
    by_year: dict[int, dict[str, int]] = defaultdict(lambda: dict.fromkeys(("a", "r", "c"), 0))
    for b in registry_service.list_batches(session, limit=10_000):
        row = by_year[b.vintage]
        row["a"] += b.active
        row["r"] += b.retired
        row["c"] += b.cancelled
    years = sorted(by_year)
    return charts.stacked(
        _("Credits by vintage"),
        [str(y) for y in years],
        {
            _("Active"): [by_year[y]["a"] for y in years],
            _("Retired"): [by_year[y]["r"] for y in years],
            _("Cancelled"): [by_year[y]["c"] for y in years],
        },
        lambda v: formatting.integer(v, lang) + " t",
    )


@router.get("/registry", response_class=HTMLResponse)
def registry_home(
    request: Request,
    session: Session = Depends(get_session),
    principal: Principal | None = Depends(web_principal),
) -> HTMLResponse:
    return render.render(
        request,
        "registry/home.html",
        {
            "totals": dict(registry_service.totals(session)),
            "chart": vintage_chart(session, render.lang_of(request)),
            "batches": registry_service.list_batches(session, limit=5),
            "retirements": registry_service.list_retirements(session, limit=5),
        },
        principal=principal,
    )


@router.get("/registry/projects", response_class=HTMLResponse)
def public_projects(
    request: Request,
    session: Session = Depends(get_session),
    principal: Principal | None = Depends(web_principal),
) -> HTMLResponse:
    q = query(request, "q", 100) or None
    projects = projects_service.list_projects(session, status="registered", q=q, limit=PAGE)
    return render.render(
        request,
        "registry/projects.html",
        {"projects": projects, "q": q or ""},
        principal=principal,
    )


@router.get("/registry/projects/{project_id}", response_class=HTMLResponse)
def public_project(
    request: Request,
    project_id: str,
    session: Session = Depends(get_session),
    principal: Principal | None = Depends(web_principal),
) -> HTMLResponse:
    pid = to_int(project_id)
    try:
        if pid is None:
            raise projects_service.ProjectNotFound(
                N_("this project does not exist"), field="project_id"
            )
        project = projects_service.get_project(session, pid)
        if project.status != "registered":  # only registered projects are public
            raise projects_service.ProjectNotFound(
                N_("this project does not exist"), field="project_id"
            )
    except TanhuiError as exc:
        return error_page(request, exc, principal, back="/registry/projects")
    cache: dict[int, str] = {}
    return render.render(
        request,
        "registry/project.html",
        {
            "p": project,
            "owner": org_name(session, project.owner_org_id, cache),
            "verifier": org_name(session, project.verifier_org_id, cache)
            if project.verifier_org_id
            else None,
            "capacity_kw": kw_text(project.capacity_w),
            "batches": registry_service.list_batches(session, project_number=project.id),
            "documents": projects_service.documents(session, project.id),
        },
        principal=principal,
    )


@router.get("/registry/batches", response_class=HTMLResponse)
def public_batches(
    request: Request,
    session: Session = Depends(get_session),
    principal: Principal | None = Depends(web_principal),
) -> HTMLResponse:
    q = query(request, "q", 64)
    batches = registry_service.list_batches(session, q=q or None, limit=PAGE)
    return render.render(
        request,
        "registry/batches.html",
        {"batches": batches, "q": q},
        principal=principal,
    )


def _events(session: Session, batch_id: int) -> list[dict[str, Any]]:
    batch = registry_service.batch_view(session, batch_id)
    return [
        {
            "kind": e.kind,
            "quantity": e.quantity,
            "serials": [
                registry_service.render_serial(batch.serial_prefix, a, b) for a, b in e.ranges
            ],
            "retirement_no": e.retirement_no,
            "purpose": e.purpose,
            "at": e.created_at,
        }
        for e in registry_service.events_of_batch(session, batch_id)
    ]


@router.get("/registry/batches/{batch_id}", response_class=HTMLResponse)
def public_batch(
    request: Request,
    batch_id: str,
    session: Session = Depends(get_session),
    principal: Principal | None = Depends(web_principal),
) -> HTMLResponse:
    bid = to_int(batch_id)
    try:
        if bid is None:
            raise registry_service.BatchNotFound(N_("this batch does not exist"), field="batch_id")
        batch = registry_service.batch_view(session, bid)
    except TanhuiError as exc:
        return error_page(request, exc, principal, back="/registry/batches")
    project = None
    if batch.project_number != registry_service.PERSONAL_PROJECT_NUMBER:
        try:
            found = projects_service.get_project(session, batch.project_number)
            project = found if found.status == "registered" else None
        except NotFound:
            project = None
    return render.render(
        request,
        "registry/batch.html",
        {
            "b": batch,
            "project": project,
            "blocks": registry_service.list_blocks(session, batch_id=bid),
            "events": _events(session, bid),
        },
        principal=principal,
    )


@router.get("/registry/retirements", response_class=HTMLResponse)
def public_retirements(
    request: Request,
    session: Session = Depends(get_session),
    principal: Principal | None = Depends(web_principal),
) -> HTMLResponse:
    q = query(request, "q", 200)
    purpose = request.query_params.get("purpose") or None
    if purpose not in registry_service.PURPOSES:
        purpose = None
    rows = registry_service.list_retirements(session, q=q or None, purpose=purpose, limit=PAGE)
    return render.render(
        request,
        "registry/retirements.html",
        {
            "retirements": rows,
            "q": q,
            "purpose": purpose,
            "purposes": registry_service.PURPOSES,
        },
        principal=principal,
    )


@router.get("/registry/retirements/{retirement_no}", response_class=HTMLResponse)
def public_retirement(
    request: Request,
    retirement_no: str,
    session: Session = Depends(get_session),
    principal: Principal | None = Depends(web_principal),
) -> HTMLResponse:
    try:
        if len(retirement_no) > 32 or "\x00" in retirement_no:
            raise registry_service.RetirementNotFound(
                N_("no such retirement"), field="retirement_no"
            )
        r = registry_service.get_retirement(session, retirement_no)
    except TanhuiError as exc:
        return error_page(request, exc, principal, back="/registry/retirements")
    return render.render(
        request, "registry/retirement.html", {"r": r, "flash": flash(request)}, principal=principal
    )


# --- console: an organisation's registry account --------------------------------------------------


def _accounts_for(session: Session, principal: Principal) -> list[RegistryAccount]:
    """The accounts the page may show: the operator sees every holder and the platform's account;
    other staff their organisation's account only."""
    if principal.has_role("operator_admin"):
        ids = sorted({h.account_id for h in registry_service.holdings(session)})
        accounts = [registry_service.get_account(session, i) for i in ids]
        platform = registry_service.platform_account(session)
        if platform.id not in ids:
            accounts.insert(0, platform)
        return accounts
    if principal.organisation_id is None:
        return []
    return [registry_service.account_for_organisation(session, principal.organisation_id)]


def _account_page(
    request: Request,
    session: Session,
    principal: Principal,
    *,
    account_id: int | None = None,
    errors: dict[str, dict[str, str]] | None = None,
    forms: dict[str, dict[str, str]] | None = None,
    status_code: int = 200,
) -> HTMLResponse:
    accounts = _accounts_for(session, principal)
    if not accounts:
        exc = InvalidInput(N_("you belong to no organisation with a registry account"), field=None)
        return error_page(request, exc, principal, back="/console")
    chosen = next((a for a in accounts if a.id == account_id), accounts[0])
    holdings = registry_service.holdings(session, account_id=chosen.id)
    blocks = registry_service.list_blocks(session, account_id=chosen.id, status="active")
    cache: dict[int, str] = {}
    others = [a for a in accounts if a.id != chosen.id]
    key = render.form_key()
    blank = {"idempotency_key": key}
    forms = forms or {}
    return render.render(
        request,
        "registry/account.html",
        {
            "account": chosen,
            "accounts": accounts,
            "holdings": holdings,
            "blocks": blocks,
            "may_act": registry_service.may_act_for(principal, chosen),
            "is_operator": principal.has_role("operator_admin"),
            "others": others,
            # Organisations that can receive credits, whether or not they hold any yet.
            "organisations": [
                o
                for kind in ("buyer", "enterprise", "project_owner")
                for o in identity_service.list_organisations(session, kind=kind)
            ],
            "purposes": registry_service.PURPOSES,
            "retirements": [
                r
                for r in registry_service.list_retirements(session, limit=200)
                if r.account_id == chosen.id
            ][:20],
            "org_name": org_name(session, principal.organisation_id, cache),
            "errors": errors or {},
            "forms": {k: forms.get(k) or dict(blank) for k in ("transfer", "retire", "cancel")},
            "flash": flash(request),
        },
        principal=principal,
        status_code=status_code,
    )


@router.get("/console/registry", response_class=HTMLResponse)
def account(
    request: Request,
    session: Session = Depends(get_session),
    principal: Principal = Depends(staff_page),
) -> HTMLResponse:
    return _account_page(
        request, session, principal, account_id=to_int(request.query_params.get("account"))
    )


def _receiver(session: Session, form: dict[str, str]) -> int:
    org = form.get("to_org", "").strip()
    if org:
        org_id = to_int(org)
        if org_id is None:
            raise InvalidInput(N_("an organisation number"), field="to_org")
        try:
            return registry_service.account_for_organisation(session, org_id).id
        except NotFound:
            raise InvalidInput(N_("no such organisation"), field="to_org") from None
    account_id = to_int(form.get("to_account_id"))
    if account_id is None:
        raise InvalidInput(N_("choose the receiving account"), field="to_org")
    return account_id


@router.post("/console/registry/{operation}", response_class=HTMLResponse)
def account_operation(
    request: Request,
    operation: str,
    session: Session = Depends(get_session),
    principal: Principal = Depends(staff_page),
    posted: dict[str, str] = Depends(form_data),
) -> Response:
    data = clean(posted)
    names = (
        "account_id",
        "batch_id",
        "quantity",
        "to_org",
        "to_account_id",
        "purpose",
        "beneficiary",
        "note",
        "reason",
        "idempotency_key",
    )
    form = {k: data.get(k, "") for k in names}
    account_id = to_int(form["account_id"])
    try:
        if operation not in ("transfer", "retire", "cancel"):
            raise NotFound(N_("no such operation"), field="operation")
        if account_id is None:
            raise InvalidInput(N_("choose an account"), field="account_id")
        batch_id = to_int(form["batch_id"])
        if batch_id is None:
            raise InvalidInput(N_("choose a batch"), field="batch_id")
        quantity = to_int(form["quantity"])
        if quantity is None:
            raise InvalidInput(N_("a whole number of credits"), field="quantity")
        key = form["idempotency_key"].strip()[:200]
        if not key:
            raise InvalidInput(N_("reload the page and retry"), field="idempotency_key")
        if operation == "transfer":
            registry_service.transfer(
                session,
                principal,
                from_account_id=account_id,
                to_account_id=_receiver(session, form),
                batch_id=batch_id,
                quantity=quantity,
                idempotency_key=key,
            )
        elif operation == "retire":
            event = registry_service.retire(
                session,
                principal,
                account_id=account_id,
                batch_id=batch_id,
                quantity=quantity,
                purpose=form["purpose"],
                beneficiary=form["beneficiary"],
                note=form["note"].strip() or None,
                idempotency_key=key,
            )
        else:
            registry_service.cancel(
                session,
                principal,
                account_id=account_id,
                batch_id=batch_id,
                quantity=quantity,
                reason=form["reason"],
                idempotency_key=key,
            )
    except TanhuiError as exc:
        session.rollback()
        if exc.status_code == 404 and exc.field == "operation":
            return error_page(request, exc, principal, back="/console/registry")
        if exc.status_code == 403:
            return error_page(request, exc, principal, back="/console/registry")
        errors = error_map(request, exc)
        if exc.field in ("from_account_id", "to_account_id"):
            errors = {"to_org": errors.pop(exc.field)}
        form["idempotency_key"] = render.form_key()
        return _account_page(
            request,
            session,
            principal,
            account_id=account_id,
            errors={operation: errors},
            forms={operation: form},
            status_code=exc.status_code,
        )
    if operation == "retire":
        return render.redirect(f"/registry/retirements/{event.retirement_no}?done=retired_ok")
    done = {"transfer": "transferred", "cancel": "cancelled_ok"}[operation]
    return render.redirect(f"/console/registry?account={account_id}&done={done}")

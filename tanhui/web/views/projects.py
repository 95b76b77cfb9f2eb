"""Console pages of the project path: projects (register, submit, assign a verifier, validate,
register, reject), documents, monitoring reports (file by kWh or meter CSV, verify with a correction,
approve and issue). Who sees which button comes from the projects part's own rules
(`capacities`, `PROJECT_TRANSITIONS`), so a page never offers what the service would refuse."""

from __future__ import annotations

from datetime import date
from decimal import Decimal, InvalidOperation
from typing import Any

from fastapi import APIRouter, Depends, Request
from fastapi.responses import HTMLResponse, Response
from sqlalchemy.orm import Session

from tanhui.identity import service as identity_service
from tanhui.identity.principal import Principal
from tanhui.kit.errors import InvalidInput, NotFound, TanhuiError
from tanhui.kit.http import get_session
from tanhui.methodology import service as methodology_service
from tanhui.projects import service as projects_service
from tanhui.projects.models import Project, Report
from tanhui.registry import service as registry_service
from tanhui.web import render
from tanhui.web.auth import staff_page
from tanhui.web.views import common
from tanhui.web.views.common import (
    N_,
    Posted,
    Upload,
    error_map,
    error_page,
    form_data,
    form_with_files,
    to_int,
)

router = APIRouter(prefix="/console/projects", include_in_schema=False)

PROJECT_ROLES = ("project_owner", "verifier", "operator_admin")
TEXT_LIMITS = {"name": 200, "location": 300, "district": 100, "description": 5000}
MAX_REASON = 500
MAX_COMMENT = 1000  # Report.verification_comment

FLASH: dict[str, tuple[str, str]] = {
    # the project path's own ?done= keys, beside the shared ones in views.common
    "submitted": ("ok", N_("Submitted for validation.")),
    "validated": ("ok", N_("The project is validated.")),
    "registered": ("ok", N_("The project is registered.")),
    "uploaded": ("ok", N_("The document is stored.")),
    "filed": ("ok", N_("The monitoring report is filed.")),
    "verified": ("ok", N_("The report is verified.")),
    "issued": ("ok", N_("Approved: the credits are issued.")),
    "transferred": ("ok", N_("The credits are transferred.")),
    "retired_ok": ("ok", N_("The credits are retired.")),
    "cancelled_ok": ("ok", N_("The credits are cancelled.")),
}


def flash(request: Request) -> dict[str, str] | None:
    return common.flash(request, FLASH)


def clean(values: dict[str, str]) -> dict[str, str]:
    """Form and query text without NUL characters, which PostgreSQL text cannot hold."""
    return {k: v.replace("\x00", "") for k, v in values.items()}


def query(request: Request, name: str, limit: int) -> str:
    return (request.query_params.get(name) or "").replace("\x00", "").strip()[:limit]


def kw_text(capacity_w: int | None) -> str | None:
    """Watts as kW for people: 800000 -> "800", 12500 -> "12.5" (exact, no float)."""
    if capacity_w is None:
        return None
    text = format(Decimal(capacity_w) / 1000, "f")
    return text.rstrip("0").rstrip(".") if "." in text else text


def _visible_project(session: Session, principal: Principal, project_id: int | None) -> Project:
    """The project if the actor is its owner, verifier or the operator; else "not found"."""
    if project_id is None:
        raise projects_service.ProjectNotFound(
            N_("this project does not exist"), field="project_id"
        )
    project = projects_service.get_project(session, project_id)
    if not projects_service.capacities(principal, project):
        # Unregistered projects are private; do not confirm they exist.
        raise projects_service.ProjectNotFound(
            N_("this project does not exist"), field="project_id"
        )
    return project


def org_name(session: Session, organisation_id: int | None, cache: dict[int, str]) -> str:
    if organisation_id is None:
        return "—"
    if organisation_id not in cache:
        try:
            cache[organisation_id] = identity_service.get_organisation(
                session, organisation_id
            ).name
        except NotFound:
            cache[organisation_id] = f"#{organisation_id}"
    return cache[organisation_id]


def project_methodologies(session: Session) -> list[dict[str, Any]]:
    """The catalogue's project methodologies (kind "project"), one entry per version."""
    cat = methodology_service.catalogue(session)
    return [m.summary() for m in cat.all() if m.kind == "project"]


def _verifier_choices(session: Session) -> list[tuple[int, str]]:
    """The verifier organisations an operator can assign to a project."""
    return [(o.id, o.name) for o in identity_service.list_organisations(session, kind="verifier")]


def allowed_actions(principal: Principal, project: Project) -> list[str]:
    """The transitions this actor may take now (the service re-checks every one)."""
    mine = projects_service.capacities(principal, project)
    out = []
    for action, (sources, _, allowed) in projects_service.PROJECT_TRANSITIONS.items():
        if project.status not in sources or not (mine & allowed):
            continue
        if (
            action == "reject"
            and projects_service.OPERATOR not in mine
            and project.status != "submitted"
        ):
            continue  # a verifier rejects only what it is reviewing
        out.append(action)
    return out


# --- list and create ------------------------------------------------------------------------------


@router.get("", response_class=HTMLResponse)
def project_list(
    request: Request,
    session: Session = Depends(get_session),
    principal: Principal = Depends(staff_page),
) -> HTMLResponse:
    try:
        common.require_role(principal, *PROJECT_ROLES)
    except TanhuiError as exc:
        return error_page(request, exc, principal, back="/console")
    status = request.query_params.get("status") or None
    if status not in projects_service.PROJECT_STATUSES:
        status = None
    projects = projects_service.visible_projects(session, principal, status=status)
    cache: dict[int, str] = {}
    return render.render(
        request,
        "projects/list.html",
        {
            "projects": projects,
            "owners": {p.id: org_name(session, p.owner_org_id, cache) for p in projects},
            "current_status": status,
            "statuses": projects_service.PROJECT_STATUSES,
            "can_create": principal.has_role("project_owner")
            and principal.organisation_id is not None,
            "flash": flash(request),
        },
        principal=principal,
    )


def _new_page(
    request: Request,
    session: Session,
    principal: Principal,
    *,
    form: dict[str, str] | None = None,
    errors: dict[str, str] | None = None,
    status_code: int = 200,
) -> HTMLResponse:
    methodologies = project_methodologies(session)
    default = next(iter(methodologies), None)
    return render.render(
        request,
        "projects/new.html",
        {
            "methodologies": methodologies,
            "types": projects_service.PROJECT_TYPES,
            "form": form
            or {
                "project_type": "rooftop_pv",
                "methodology": f"{default['id']}@{default['version']}" if default else "",
            },
            "errors": errors or {},
        },
        principal=principal,
        status_code=status_code,
    )


@router.get("/new", response_class=HTMLResponse)
def new_project(
    request: Request,
    session: Session = Depends(get_session),
    principal: Principal = Depends(staff_page),
) -> HTMLResponse:
    if not principal.has_role("project_owner"):
        exc = projects_service.NotAllowed(N_("only project owners register projects"), field=None)
        return error_page(request, exc, principal, back="/console/projects")
    return _new_page(request, session, principal)


def parse_date(value: str | None, field: str) -> date:
    try:
        return date.fromisoformat((value or "").strip())
    except ValueError:
        raise InvalidInput(N_("a date like 2026-01-31"), field=field) from None


def parse_kw(value: str | None, field: str) -> int | None:
    """kW as typed (up to three decimals) -> whole watts; empty is None."""
    text = (value or "").strip().replace(",", "")
    if not text:
        return None
    try:
        kw = Decimal(text)
    except InvalidOperation:
        raise InvalidInput(N_("a number of kW, e.g. 800 or 12.5"), field=field) from None
    if not kw.is_finite() or kw <= 0 or kw > Decimal("10000000"):
        raise InvalidInput(N_("a positive number of kW"), field=field)
    watts = kw * 1000
    if watts != watts.to_integral_value():
        raise InvalidInput(N_("at most three decimals (1 W)"), field=field)
    return int(watts)


def _text(data: dict[str, str], name: str, *, required: bool = True) -> str:
    value = data.get(name, "").strip()
    if required and not value:
        raise InvalidInput(N_("this field is required"), field=name)
    if len(value) > TEXT_LIMITS[name]:
        raise common.too_long(name, TEXT_LIMITS[name])
    return value


@router.post("/new", response_class=HTMLResponse)
def create_project(
    request: Request,
    session: Session = Depends(get_session),
    principal: Principal = Depends(staff_page),
    posted: dict[str, str] = Depends(form_data),
) -> Response:
    data = clean(posted)
    keys = (
        "name",
        "project_type",
        "methodology",
        "location",
        "district",
        "capacity_kw",
        "crediting_start",
        "crediting_end",
        "description",
    )
    form = {k: data.get(k, "") for k in keys}
    try:
        methodology_id, _, version = form["methodology"].partition("@")
        if not methodology_id or not version:
            raise InvalidInput(N_("choose a methodology"), field="methodology")
        project = projects_service.create_project(
            session,
            principal,
            name=_text(data, "name"),
            project_type=form["project_type"],
            methodology_id=methodology_id,
            methodology_version=version,
            location=_text(data, "location"),
            district=_text(data, "district"),
            capacity_w=parse_kw(form["capacity_kw"], "capacity_kw"),
            crediting_start=parse_date(form["crediting_start"], "crediting_start"),
            crediting_end=parse_date(form["crediting_end"], "crediting_end"),
            description=_text(data, "description", required=False),
        )
    except TanhuiError as exc:
        session.rollback()
        if exc.status_code == 403:
            return error_page(request, exc, principal, back="/console/projects")
        errors = error_map(request, exc)
        renames = {"methodology_id": "methodology", "capacity_w": "capacity_kw"}
        errors = {renames.get(k, k): v for k, v in errors.items()}
        return _new_page(
            request, session, principal, form=form, errors=errors, status_code=exc.status_code
        )
    return render.redirect(f"/console/projects/{project.id}?done=created")


# --- one project ----------------------------------------------------------------------------------


def _history(session: Session, project_id: int, cache: dict[int, str]) -> list[dict[str, Any]]:
    return [
        {
            "at": t.at,
            "subject": t.subject,
            "subject_id": t.subject_id,
            "action": t.action,
            "from_status": t.from_status,
            "to_status": t.to_status,
            "role": t.actor_role,
            "organisation": org_name(session, t.actor_org_id, cache),
            "reason": t.reason,
        }
        for t in projects_service.history(session, project_id)
    ]


def _project_page(
    request: Request,
    session: Session,
    principal: Principal,
    project: Project,
    *,
    errors: dict[str, str] | None = None,
    form: dict[str, Any] | None = None,
    report_errors: list[dict[str, Any]] | None = None,
    status_code: int = 200,
) -> HTMLResponse:
    cache: dict[int, str] = {}
    mine = projects_service.capacities(principal, project)
    try:
        methodology = methodology_service.get(
            session, project.methodology_id, version=project.methodology_version
        ).summary()
    except TanhuiError:
        methodology = {"id": project.methodology_id, "version": project.methodology_version}
    return render.render(
        request,
        "projects/project.html",
        {
            "p": project,
            "owner": org_name(session, project.owner_org_id, cache),
            "verifier": org_name(session, project.verifier_org_id, cache)
            if project.verifier_org_id
            else None,
            "methodology": methodology,
            "capacity_kw": kw_text(project.capacity_w),
            "actions": allowed_actions(principal, project),
            "verifiers": _verifier_choices(session) if projects_service.OPERATOR in mine else [],
            "history": _history(session, project.id, cache),
            "documents": projects_service.documents(session, project.id),
            "reports": projects_service.reports(session, project.id),
            "is_owner": projects_service.OWNER in mine,
            "can_file": projects_service.OWNER in mine and project.status == "registered",
            "errors": errors or {},
            "form": form or {"idempotency_key": render.form_key()},
            "report_errors": report_errors or [],
            "flash": flash(request),
        },
        principal=principal,
        status_code=status_code,
    )


@router.get("/{project_id}", response_class=HTMLResponse)
def project_detail(
    request: Request,
    project_id: str,
    session: Session = Depends(get_session),
    principal: Principal = Depends(staff_page),
) -> HTMLResponse:
    try:
        project = _visible_project(session, principal, to_int(project_id))
    except TanhuiError as exc:
        return error_page(request, exc, principal, back="/console/projects")
    return _project_page(request, session, principal, project)


DONE = {
    "submit": "submitted",
    "assign_verifier": "saved",
    "validate": "validated",
    "register": "registered",
    "reject": "rejected",
}


@router.post("/{project_id}/action", response_class=HTMLResponse)
def project_action(
    request: Request,
    project_id: str,
    session: Session = Depends(get_session),
    principal: Principal = Depends(staff_page),
    posted: dict[str, str] = Depends(form_data),
) -> Response:
    data = clean(posted)
    action = data.get("action", "")
    form = {"reason": data.get("reason", ""), "verifier_org_id": data.get("verifier_org_id", "")}
    try:
        project = _visible_project(session, principal, to_int(project_id))
    except TanhuiError as exc:
        return error_page(request, exc, principal, back="/console/projects")
    pid = project.id
    try:
        if action not in projects_service.PROJECT_TRANSITIONS:
            raise InvalidInput(N_("choose an action"), field="action")
        verifier_org = None
        if action == "assign_verifier":
            verifier_org = to_int(form["verifier_org_id"])
            if verifier_org is None:
                raise InvalidInput(N_("choose a verifier organisation"), field="verifier_org_id")
        if len(form["reason"]) > MAX_REASON:
            raise common.too_long("reason", MAX_REASON)
        projects_service.transition(
            session,
            principal,
            pid,
            action,
            reason=form["reason"] if action == "reject" else None,
            verifier_org_id=verifier_org,
        )
    except TanhuiError as exc:
        session.rollback()
        if exc.status_code == 403:
            return error_page(request, exc, principal, back=f"/console/projects/{pid}")
        return _project_page(
            request,
            session,
            principal,
            projects_service.get_project(session, pid),
            errors=error_map(request, exc),
            form={**form, "idempotency_key": render.form_key()},
            status_code=exc.status_code,
        )
    return render.redirect(f"/console/projects/{pid}?done={DONE[action]}")


@router.post("/{project_id}/documents", response_class=HTMLResponse)
def upload_document(
    request: Request,
    project_id: str,
    session: Session = Depends(get_session),
    principal: Principal = Depends(staff_page),
    posted: Posted = Depends(form_with_files(projects_service.MAX_DOCUMENT_BYTES + 1)),
) -> Response:
    upload = posted.files.get("document") or Upload("", "", b"")
    raw, filename, content_type = upload.data, upload.filename, upload.content_type
    try:
        project = _visible_project(session, principal, to_int(project_id))
    except TanhuiError as exc:
        return error_page(request, exc, principal, back="/console/projects")
    pid = project.id
    try:
        if not raw and not filename:
            raise InvalidInput(N_("choose a file"), field="file")
        projects_service.add_document(
            session, principal, pid, filename=filename, content_type=content_type, data=raw
        )
    except TanhuiError as exc:
        session.rollback()
        if exc.status_code == 403:
            return error_page(request, exc, principal, back=f"/console/projects/{pid}")
        message = next(iter(error_map(request, exc).values()))
        return _project_page(
            request,
            session,
            principal,
            projects_service.get_project(session, pid),
            errors={"document": message},
            status_code=exc.status_code,
        )
    return render.redirect(f"/console/projects/{pid}?done=uploaded#documents")


# --- monitoring reports ---------------------------------------------------------------------------


def parse_kwh(value: str | None, field: str) -> str:
    """kWh as the methodology takes it: a plain decimal string, checked here for a clear message."""
    text = (value or "").strip().replace(",", "")
    try:
        kwh = Decimal(text)
    except InvalidOperation:
        raise InvalidInput(N_("a number of kWh, e.g. 98500 or 1234.5"), field=field) from None
    if not kwh.is_finite() or kwh <= 0 or kwh > Decimal("1000000000"):
        raise InvalidInput(N_("a positive number of kWh"), field=field)
    return format(kwh, "f")


def energy_input(session: Session, project: Project) -> str:
    """The methodology input measured in kWh (what the owner types), as the service finds it."""
    summary = methodology_service.get(
        session, project.methodology_id, version=project.methodology_version
    ).summary()
    for name, spec in summary["inputs"].items():
        if str(spec.get("unit", "")).lower() == "kwh":
            return str(name)
    return projects_service.DEFAULT_ENERGY_INPUT


@router.post("/{project_id}/reports", response_class=HTMLResponse)
def file_report(
    request: Request,
    project_id: str,
    session: Session = Depends(get_session),
    principal: Principal = Depends(staff_page),
    posted: Posted = Depends(form_with_files(projects_service.MAX_DOCUMENT_BYTES + 1)),
) -> Response:
    values = clean(posted.values)
    upload = posted.files.get("readings")
    raw = upload.data if upload is not None and upload.filename else None
    form = {k: values.get(k, "") for k in ("period_start", "period_end", "kwh", "idempotency_key")}
    form["idempotency_key"] = form["idempotency_key"].strip()[:100] or render.form_key()
    try:
        project = _visible_project(session, principal, to_int(project_id))
    except TanhuiError as exc:
        return error_page(request, exc, principal, back="/console/projects")
    pid = project.id
    try:
        start = parse_date(form["period_start"], "period_start")
        end = parse_date(form["period_end"], "period_end")
        inputs: dict[str, Any] = {}
        if raw is not None:
            if len(raw) > projects_service.MAX_DOCUMENT_BYTES:
                raise InvalidInput(N_("the CSV is larger than 10 MB"), field="readings")
        else:
            inputs[energy_input(session, project)] = parse_kwh(form["kwh"], "kwh")
        report = projects_service.file_report(
            session,
            principal,
            pid,
            period_start=start,
            period_end=end,
            inputs=inputs,
            readings_csv=raw,
            idempotency_key=form["idempotency_key"],
        )
    except TanhuiError as exc:
        session.rollback()
        if exc.status_code == 403:
            return error_page(request, exc, principal, back=f"/console/projects/{pid}")
        message = next(iter(error_map(request, exc).values()))
        line_errors: list[dict[str, Any]] = []
        field = exc.field or ""
        if field == "file":  # the CSV: its message and each bad line beside the upload field
            errors = {"readings": message}
            line_errors = list(exc.extra.get("errors") or [])
        elif field.startswith("inputs.") or field in ("kwh", "generation_kwh"):
            errors = {"kwh": message}
        elif field in ("period_start", "period_end", "readings"):
            errors = {field: message}
        else:
            errors = {"report": message}
        form["idempotency_key"] = render.form_key()
        return _project_page(
            request,
            session,
            principal,
            projects_service.get_project(session, pid),
            errors=errors,
            form=form,
            report_errors=line_errors,
            status_code=exc.status_code,
        )
    return render.redirect(f"/console/projects/{pid}/reports/{report.id}?done=filed")


def _factors(trace: list[dict[str, Any]] | None) -> list[dict[str, Any]]:
    """Factors and parameters the calculation used, once each, with their source and status."""
    seen: dict[str, dict[str, Any]] = {}
    for step in trace or []:
        for name, value in (step.get("values") or {}).items():
            if value.get("kind") in ("factor", "parameter") and name not in seen:
                seen[name] = {"name": name, **value}
    return list(seen.values())


def _report_of(session: Session, project: Project, report_id: int | None) -> Report:
    if report_id is None:
        raise projects_service.ReportNotFound(N_("this report does not exist"), field="report_id")
    report = projects_service.get_report(session, report_id)
    if report.project_id != project.id:
        raise projects_service.ReportNotFound(N_("this report does not exist"), field="report_id")
    return report


def _report_page(
    request: Request,
    session: Session,
    principal: Principal,
    project: Project,
    report: Report,
    *,
    errors: dict[str, str] | None = None,
    form: dict[str, Any] | None = None,
    status_code: int = 200,
) -> HTMLResponse:
    mine = projects_service.capacities(principal, project)
    batch = None
    blocks: list[Any] = []
    if report.batch_id is not None:
        batch = registry_service.batch_view(session, report.batch_id)
        blocks = registry_service.list_blocks(session, batch_id=report.batch_id)
    readings = projects_service.readings(session, report.id)
    can_verify = projects_service.VERIFIER in mine and report.status == "submitted"
    can_approve = projects_service.OPERATOR in mine and report.status == "verified"
    can_reject = (
        projects_service.OPERATOR in mine and report.status in ("submitted", "verified")
    ) or can_verify
    trace = report.trace or {}
    return render.render(
        request,
        "projects/report.html",
        {
            "p": project,
            "r": report,
            "trace": trace.get("trace") or [],
            "factors": _factors(trace.get("trace")),
            "corrected_trace": (report.corrected_trace or {}).get("trace") or [],
            "reasons": trace.get("reasons") or [],
            "eligible": trace.get("eligible", True),
            "final_mg": projects_service.final_reduction_mg(report),
            "batch": batch,
            "blocks": blocks,
            "reading_count": len(readings),
            "meters": sorted({r.meter_id for r in readings}),
            "energy": energy_input(session, project),
            "can_verify": can_verify,
            "can_approve": can_approve,
            "can_reject": can_reject,
            "errors": errors or {},
            "form": form or {"idempotency_key": render.form_key()},
            "flash": flash(request),
        },
        principal=principal,
        status_code=status_code,
    )


@router.get("/{project_id}/reports/{report_id}", response_class=HTMLResponse)
def report_detail(
    request: Request,
    project_id: str,
    report_id: str,
    session: Session = Depends(get_session),
    principal: Principal = Depends(staff_page),
) -> HTMLResponse:
    try:
        project = _visible_project(session, principal, to_int(project_id))
        report = _report_of(session, project, to_int(report_id))
    except TanhuiError as exc:
        return error_page(request, exc, principal, back="/console/projects")
    return _report_page(request, session, principal, project, report)


@router.post("/{project_id}/reports/{report_id}/{decision}", response_class=HTMLResponse)
def report_decide(
    request: Request,
    project_id: str,
    report_id: str,
    decision: str,
    session: Session = Depends(get_session),
    principal: Principal = Depends(staff_page),
    posted: dict[str, str] = Depends(form_data),
) -> Response:
    data = clean(posted)
    form = {k: data.get(k, "") for k in ("corrected_kwh", "comment", "reason", "idempotency_key")}
    try:
        project = _visible_project(session, principal, to_int(project_id))
        report = _report_of(session, project, to_int(report_id))
        if decision not in ("verify", "approve", "reject"):
            raise projects_service.ReportNotFound(N_("no such action"), field="decision")
    except TanhuiError as exc:
        return error_page(request, exc, principal, back="/console/projects")
    pid, rid = project.id, report.id
    try:
        if decision == "verify":
            corrected = None
            if form["corrected_kwh"].strip():
                energy = energy_input(session, project)
                corrected = {energy: parse_kwh(form["corrected_kwh"], "corrected_kwh")}
            if len(form["comment"]) > MAX_COMMENT:
                raise common.too_long("comment", MAX_COMMENT)
            projects_service.verify_report(
                session, principal, rid, corrected_inputs=corrected, comment=form["comment"]
            )
        elif decision == "approve":
            # The report id keys the issuance (a second approval answers with the same batch);
            # the form's key only makes a double submit visibly the same request.
            if not form["idempotency_key"].strip():
                raise InvalidInput(N_("reload the page and retry"), field="idempotency_key")
            projects_service.approve_report(session, principal, rid)
        else:
            if len(form["reason"]) > MAX_REASON:
                raise common.too_long("reason", MAX_REASON)
            projects_service.reject_report(session, principal, rid, reason=form["reason"])
    except TanhuiError as exc:
        session.rollback()
        back = f"/console/projects/{pid}/reports/{rid}"
        if exc.status_code in (403, 404):
            return error_page(request, exc, principal, back=back)
        message = next(iter(error_map(request, exc).values()))
        field = exc.field or ""
        if field.startswith("inputs.") or field == "corrected_kwh":
            errors = {"corrected_kwh": message}
        elif field in ("comment", "reason"):
            errors = {field: message}
        else:
            errors = {decision: message}
        form["idempotency_key"] = render.form_key()
        return _report_page(
            request,
            session,
            principal,
            projects_service.get_project(session, pid),
            projects_service.get_report(session, rid),
            errors=errors,
            form=form,
            status_code=exc.status_code,
        )
    done = {"verify": "verified", "approve": "issued", "reject": "rejected"}[decision]
    return render.redirect(f"/console/projects/{pid}/reports/{rid}?done={done}")

"""Project routes: registration and its transitions, documents, monitoring reports and approval."""

from __future__ import annotations

import json
from datetime import date
from typing import Any

from fastapi import APIRouter, Depends, File, Form, Header, Query, UploadFile, status
from fastapi.responses import FileResponse
from sqlalchemy.orm import Session

from tanhui.identity.auth import Principal, current_staff, optional_principal
from tanhui.kit.errors import InvalidInput
from tanhui.kit.http import get_session
from tanhui.projects import service as projects_service
from tanhui.projects.models import Project, Report
from tanhui.projects.schemas import (
    AssignVerifier,
    DocumentOut,
    ProjectCreate,
    ProjectDetail,
    ProjectOut,
    ProjectUpdate,
    Rejection,
    ReportCreate,
    ReportOut,
    TransitionOut,
    Verification,
)

router = APIRouter(prefix="/v1/projects", tags=["projects"])

_UPLOAD_READ = projects_service.MAX_DOCUMENT_BYTES + 1


def project_out(project: Project) -> ProjectOut:
    return ProjectOut.model_validate(project, from_attributes=True)


def report_out(report: Report) -> ReportOut:
    return ReportOut.model_validate(report, from_attributes=True)


def _visible(session: Session, principal: Principal | None, project_id: int) -> Project:
    project = projects_service.get_project(session, project_id)
    if not projects_service.may_see(principal, project):
        # Unregistered projects are private; say "not found" rather than confirm they exist.
        raise projects_service.ProjectNotFound(
            f"project {project_id} does not exist", field="project_id"
        )
    return project


@router.post(
    "",
    response_model=ProjectOut,
    status_code=status.HTTP_201_CREATED,
    summary="Register a project (draft)",
)
def create(
    body: ProjectCreate,
    session: Session = Depends(get_session),
    principal: Principal = Depends(current_staff),
) -> ProjectOut:
    return project_out(projects_service.create_project(session, principal, **body.model_dump()))


@router.get("", response_model=list[ProjectOut], summary="Projects the caller may see in full")
def list_mine(
    status_: str | None = Query(None, alias="status", description="Only this status"),
    session: Session = Depends(get_session),
    principal: Principal = Depends(current_staff),
) -> list[ProjectOut]:
    return [
        project_out(p)
        for p in projects_service.visible_projects(session, principal, status=status_)
    ]


@router.get("/{project_id}", response_model=ProjectDetail, summary="A project with its history")
def detail(
    project_id: int,
    session: Session = Depends(get_session),
    principal: Principal | None = Depends(optional_principal),
) -> ProjectDetail:
    project = _visible(session, principal, project_id)
    return ProjectDetail(
        **project_out(project).model_dump(),
        transitions=[
            TransitionOut.model_validate(t, from_attributes=True)
            for t in projects_service.history(session, project.id)
        ],
        documents=[
            DocumentOut.model_validate(d, from_attributes=True)
            for d in projects_service.documents(session, project.id)
        ],
        reports=[report_out(r) for r in projects_service.reports(session, project.id)],
    )


@router.patch("/{project_id}", response_model=ProjectOut, summary="Edit a draft")
def edit(
    project_id: int,
    body: ProjectUpdate,
    session: Session = Depends(get_session),
    principal: Principal = Depends(current_staff),
) -> ProjectOut:
    changes = body.model_dump(exclude_unset=True)
    return project_out(projects_service.update_project(session, principal, project_id, **changes))


@router.post(
    "/{project_id}/submit", response_model=ProjectOut, summary="Owner: submit for validation"
)
def submit(
    project_id: int,
    session: Session = Depends(get_session),
    principal: Principal = Depends(current_staff),
) -> ProjectOut:
    return project_out(projects_service.submit(session, principal, project_id))


@router.post(
    "/{project_id}/assign-verifier",
    response_model=ProjectOut,
    summary="Operator: assign the verifier",
)
def assign_verifier(
    project_id: int,
    body: AssignVerifier,
    session: Session = Depends(get_session),
    principal: Principal = Depends(current_staff),
) -> ProjectOut:
    return project_out(
        projects_service.assign_verifier(
            session, principal, project_id, verifier_org_id=body.verifier_org_id
        )
    )


@router.post("/{project_id}/validate", response_model=ProjectOut, summary="Verifier: validate")
def validate(
    project_id: int,
    session: Session = Depends(get_session),
    principal: Principal = Depends(current_staff),
) -> ProjectOut:
    return project_out(projects_service.validate(session, principal, project_id))


@router.post("/{project_id}/register", response_model=ProjectOut, summary="Operator: register")
def register(
    project_id: int,
    session: Session = Depends(get_session),
    principal: Principal = Depends(current_staff),
) -> ProjectOut:
    return project_out(projects_service.register(session, principal, project_id))


@router.post(
    "/{project_id}/reject", response_model=ProjectOut, summary="Operator or verifier: reject"
)
def reject(
    project_id: int,
    body: Rejection,
    session: Session = Depends(get_session),
    principal: Principal = Depends(current_staff),
) -> ProjectOut:
    return project_out(projects_service.reject(session, principal, project_id, reason=body.reason))


@router.post(
    "/{project_id}/documents",
    response_model=DocumentOut,
    status_code=status.HTTP_201_CREATED,
    summary="Owner: upload a document (PDF, PNG, JPEG, CSV, text; at most 10 MB)",
)
def upload_document(
    project_id: int,
    file: UploadFile = File(description="The document"),
    session: Session = Depends(get_session),
    principal: Principal = Depends(current_staff),
) -> DocumentOut:
    data = file.file.read(_UPLOAD_READ)  # the spooled upload, read in the thread pool
    document = projects_service.add_document(
        session,
        principal,
        project_id,
        filename=file.filename or "document",
        content_type=file.content_type or "",
        data=data,
    )
    return DocumentOut.model_validate(document, from_attributes=True)


@router.get("/{project_id}/documents/{document_id}", summary="Download a document")
def download_document(
    project_id: int,
    document_id: int,
    session: Session = Depends(get_session),
    principal: Principal | None = Depends(optional_principal),
) -> FileResponse:
    project = _visible(session, principal, project_id)
    for document in projects_service.documents(session, project.id):
        if document.id == document_id:
            return FileResponse(
                projects_service.document_path(document),
                media_type=document.content_type,
                filename=document.filename,
            )
    raise projects_service.ProjectNotFound(
        f"document {document_id} does not exist", field="document_id"
    )


@router.post(
    "/{project_id}/reports",
    response_model=ReportOut,
    status_code=status.HTTP_201_CREATED,
    summary="Owner: file a monitoring report",
)
def file_report(
    project_id: int,
    body: ReportCreate,
    idempotency_key: str | None = Header(None, alias="Idempotency-Key", max_length=200),
    session: Session = Depends(get_session),
    principal: Principal = Depends(current_staff),
) -> ReportOut:
    report = projects_service.file_report(
        session,
        principal,
        project_id,
        period_start=body.period_start,
        period_end=body.period_end,
        inputs=body.inputs,
        idempotency_key=idempotency_key,
    )
    return report_out(report)


@router.post(
    "/{project_id}/reports/csv",
    response_model=ReportOut,
    status_code=status.HTTP_201_CREATED,
    summary="Owner: file a monitoring report from meter readings (CSV date,meter_id,kwh)",
)
def file_report_csv(
    project_id: int,
    period_start: date = Form(description="First monitored day"),
    period_end: date = Form(description="Last monitored day"),
    file: UploadFile = File(description="CSV with header date,meter_id,kwh"),
    inputs: str = Form("{}", description="Other inputs as a JSON object"),
    idempotency_key: str | None = Header(None, alias="Idempotency-Key", max_length=200),
    session: Session = Depends(get_session),
    principal: Principal = Depends(current_staff),
) -> ReportOut:
    try:
        extra: Any = json.loads(inputs)
    except json.JSONDecodeError as exc:
        raise InvalidInput("inputs is not a JSON object", field="inputs") from exc
    if not isinstance(extra, dict):
        raise InvalidInput("inputs is not a JSON object", field="inputs")
    data = file.file.read(_UPLOAD_READ)
    if len(data) > projects_service.MAX_DOCUMENT_BYTES:
        raise InvalidInput("the CSV is larger than 10 MB", code="file_too_large", field="file")
    report = projects_service.file_report(
        session,
        principal,
        project_id,
        period_start=period_start,
        period_end=period_end,
        inputs=extra,
        readings_csv=data,
        idempotency_key=idempotency_key,
    )
    return report_out(report)


@router.get("/{project_id}/reports", response_model=list[ReportOut], summary="A project's reports")
def list_reports(
    project_id: int,
    session: Session = Depends(get_session),
    principal: Principal | None = Depends(optional_principal),
) -> list[ReportOut]:
    project = _visible(session, principal, project_id)
    return [report_out(r) for r in projects_service.reports(session, project.id)]


def _report_of(session: Session, project_id: int, report_id: int) -> Report:
    report = projects_service.get_report(session, report_id)
    if report.project_id != project_id:
        raise projects_service.ReportNotFound(
            f"report {report_id} is not a report of project {project_id}", field="report_id"
        )
    return report


@router.post(
    "/{project_id}/reports/{report_id}/verify",
    response_model=ReportOut,
    summary="Verifier: verify (optionally correct)",
)
def verify(
    project_id: int,
    report_id: int,
    body: Verification,
    session: Session = Depends(get_session),
    principal: Principal = Depends(current_staff),
) -> ReportOut:
    _report_of(session, project_id, report_id)
    return report_out(
        projects_service.verify_report(
            session,
            principal,
            report_id,
            corrected_inputs=body.corrected_inputs,
            comment=body.comment,
        )
    )


@router.post(
    "/{project_id}/reports/{report_id}/approve",
    response_model=ReportOut,
    summary="Operator: approve and issue credits",
)
def approve(
    project_id: int,
    report_id: int,
    idempotency_key: str = Header(alias="Idempotency-Key", max_length=200),
    session: Session = Depends(get_session),
    principal: Principal = Depends(current_staff),
) -> ReportOut:
    # The report can be issued once; its id keys the issuance, so a retry with any key is safe.
    _report_of(session, project_id, report_id)
    return report_out(projects_service.approve_report(session, principal, report_id))


@router.post(
    "/{project_id}/reports/{report_id}/reject",
    response_model=ReportOut,
    summary="Verifier or operator: reject a report",
)
def reject_report(
    project_id: int,
    report_id: int,
    body: Rejection,
    session: Session = Depends(get_session),
    principal: Principal = Depends(current_staff),
) -> ReportOut:
    _report_of(session, project_id, report_id)
    return report_out(
        projects_service.reject_report(session, principal, report_id, reason=body.reason)
    )

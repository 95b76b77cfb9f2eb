"""Methodology routes: read the catalogue, dry-run a calculation, and (operators) upload and assign."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Depends, Query
from fastapi.responses import PlainTextResponse
from sqlalchemy.orm import Session

from tanhui.identity.auth import require_role
from tanhui.identity.principal import Principal
from tanhui.kit.db import utcnow
from tanhui.kit.http import get_session
from tanhui.methodology import service as methodology_service
from tanhui.methodology.schemas import (
    AssignmentCreate,
    AssignmentOut,
    CalculateRequest,
    CalculationOut,
    DiffOut,
    MethodologyDetail,
    MethodologySummary,
    MethodologyVersions,
    UploadRequest,
)

router = APIRouter(prefix="/v1/methodologies", tags=["methodology"])
operator = require_role("operator_admin")


@router.get("", response_model=list[MethodologySummary], summary="Every methodology version")
def list_methodologies(
    scenario: str | None = Query(None, description="Only this scenario"),
    region: str | None = Query(None, description="Only this region"),
    session: Session = Depends(get_session),
) -> list[dict[str, Any]]:
    out = []
    for m in methodology_service.catalogue(session).all():
        if (scenario is None or m.scenario == scenario) and (region is None or m.region == region):
            out.append(m.summary())
    return out


@router.get(
    "/assignments",
    response_model=list[AssignmentOut],
    summary="Scenario -> methodology assignments",
)
def list_assignments(session: Session = Depends(get_session)) -> list[Any]:
    return list(methodology_service.assignments(session))


@router.post(
    "/assignments",
    response_model=AssignmentOut,
    status_code=201,
    summary="Apply a methodology to a scenario from a date on (operators)",
)
def create_assignment(
    body: AssignmentCreate,
    session: Session = Depends(get_session),
    actor: Principal = Depends(operator),
) -> Any:
    return methodology_service.assign(
        session,
        actor,
        scenario=body.scenario,
        methodology_id=body.methodology_id,
        effective_from=body.effective_from,
    )


@router.post(
    "",
    response_model=MethodologyDetail,
    status_code=201,
    summary="Upload a methodology version (operators); 422 lists every error by line and field",
)
def upload_methodology(
    body: UploadRequest,
    session: Session = Depends(get_session),
    actor: Principal = Depends(operator),
) -> dict[str, Any]:
    row = methodology_service.upload(session, actor, toml_text=body.toml)
    return methodology_service.get(session, row.methodology_id, row.version).describe()


@router.get("/{methodology_id}", response_model=MethodologyVersions, summary="All versions")
def get_methodology(methodology_id: str, session: Session = Depends(get_session)) -> dict[str, Any]:
    versions = methodology_service.versions(session, methodology_id)
    return {"id": methodology_id, "versions": [m.describe() for m in versions]}


@router.get(
    "/{methodology_id}/versions/{version}.toml",
    response_class=PlainTextResponse,
    summary="A version's defining TOML text, exactly as stored: its SHA-256 is the version's sha256",
)
def methodology_toml(
    methodology_id: str, version: str, session: Session = Depends(get_session)
) -> PlainTextResponse:
    m = methodology_service.get(session, methodology_id, version)
    return PlainTextResponse(
        m.source_text,
        media_type="application/toml; charset=utf-8",
        headers={
            "Content-Disposition": f'attachment; filename="{m.id}@{m.version}.toml"',
            "X-Content-SHA256": m.sha256,
        },
    )


@router.get(
    "/{methodology_id}/diff", response_model=DiffOut, summary="What changed between versions"
)
def diff_versions(
    methodology_id: str,
    a: str = Query(description="From version"),
    b: str = Query(description="To version"),
    session: Session = Depends(get_session),
) -> dict[str, Any]:
    left = methodology_service.get(session, methodology_id, a)
    right = methodology_service.get(session, methodology_id, b)
    return {"id": methodology_id, "a": a, "b": b, "changes": methodology_service.diff(left, right)}


@router.post(
    "/{methodology_id}/calculate",
    response_model=CalculationOut,
    summary="Dry run: compute a reduction with its trace (nothing is recorded)",
)
def calculate(
    methodology_id: str, body: CalculateRequest, session: Session = Depends(get_session)
) -> dict[str, Any]:
    calc = methodology_service.calculate(
        session,
        methodology_id,
        inputs=body.inputs,
        at=body.at or utcnow(),
        version=body.version,
        region=body.region,
        trace=body.trace,
    )
    return calc.to_dict()

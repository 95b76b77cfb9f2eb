"""Registry routes: the public registry (no login, searchable, CSV export) and the credit-moving writes."""

from __future__ import annotations

import csv
import io
from collections.abc import Sequence
from dataclasses import asdict, is_dataclass
from typing import Any

from fastapi import APIRouter, Depends, Header, Query, Response, status
from sqlalchemy.orm import Session

from tanhui.identity.auth import Principal, current_staff
from tanhui.kit.errors import InvalidInput
from tanhui.kit.http import get_session
from tanhui.projects import service as projects_service
from tanhui.projects.schemas import ProjectOut
from tanhui.registry import service as registry_service
from tanhui.registry.models import Event
from tanhui.registry.schemas import (
    AccountOut,
    BatchOut,
    BlockOut,
    CancellationCreate,
    EventOut,
    HoldingOut,
    PersonalBatchCreate,
    RetirementCreate,
    RetirementOut,
    TransferCreate,
)

router = APIRouter(prefix="/v1/registry", tags=["registry"])

IdempotencyKey = Header(alias="Idempotency-Key", min_length=1, max_length=200)


def _csv(rows: Sequence[Any], columns: Sequence[str], name: str) -> Response:
    out = io.StringIO()
    out.write("\ufeff")  # lets spreadsheet programs read the Chinese names as UTF-8
    writer = csv.writer(out)
    writer.writerow(columns)
    for row in rows:
        data = asdict(row) if is_dataclass(row) and not isinstance(row, type) else dict(row)
        writer.writerow(
            [
                ";".join(map(str, v)) if isinstance(v, list) else v
                for v in (data.get(c) for c in columns)
            ]
        )
    return Response(
        out.getvalue(),
        media_type="text/csv; charset=utf-8",
        headers={"Content-Disposition": f'attachment; filename="{name}.csv"'},
    )


def _fmt(format_: str | None) -> bool:
    if format_ not in (None, "json", "csv"):
        raise InvalidInput("format is json or csv", field="format")
    return format_ == "csv"


def event_out(session: Session, event: Event) -> EventOut:
    batch = registry_service.get_batch(session, event.batch_id)
    prefix = registry_service.batch_prefix(batch)
    return EventOut(
        event_id=event.id,
        kind=event.kind,
        batch_id=batch.id,
        serial_prefix=prefix,
        quantity=event.quantity,
        serials=[registry_service.render_serial(prefix, a, b) for a, b in event.ranges],
        ranges=[[int(a), int(b)] for a, b in event.ranges],
        from_account_id=event.from_account_id,
        to_account_id=event.to_account_id,
        retirement_no=event.retirement_no,
        purpose=event.purpose,
        beneficiary=event.beneficiary,
        note=event.note,
        ledger_transfer_id=event.ledger_transfer_id,
        created_at=event.created_at,
    )


# --- public ----------------------------------------------------------------------------------------

_PROJECT_COLUMNS = list(ProjectOut.model_fields)


@router.get("/projects", response_model=list[ProjectOut], summary="Registered projects (public)")
def public_projects(
    q: str | None = Query(None, max_length=100, description="Name contains"),
    district: str | None = Query(None, max_length=100, description="District contains"),
    project_type: str | None = Query(None, description="Project type"),
    format_: str | None = Query(None, alias="format", description="json (default) or csv"),
    limit: int = Query(100, ge=1, le=1000),
    offset: int = Query(0, ge=0),
    session: Session = Depends(get_session),
) -> Any:
    projects = projects_service.list_projects(
        session,
        status="registered",
        q=q,
        district=district,
        project_type=project_type,
        limit=limit,
        offset=offset,
    )
    out = [ProjectOut.model_validate(p, from_attributes=True) for p in projects]
    if _fmt(format_):
        return _csv([o.model_dump() for o in out], _PROJECT_COLUMNS, "projects")
    return out


_BATCH_COLUMNS = list(BatchOut.model_fields)


@router.get("/batches", response_model=list[BatchOut], summary="Issued batches (public)")
def batches(
    q: str | None = Query(None, max_length=64, description="Serial or serial prefix"),
    vintage: int | None = Query(None, description="Vintage year"),
    project_number: int | None = Query(None, ge=0, description="Project number"),
    source_kind: str | None = Query(None, description="project_report or personal"),
    format_: str | None = Query(None, alias="format", description="json (default) or csv"),
    limit: int = Query(100, ge=1, le=1000),
    offset: int = Query(0, ge=0),
    session: Session = Depends(get_session),
) -> Any:
    rows = registry_service.list_batches(
        session,
        q=q,
        vintage=vintage,
        project_number=project_number,
        source_kind=source_kind,
        limit=limit,
        offset=offset,
    )
    if _fmt(format_):
        return _csv(rows, _BATCH_COLUMNS, "batches")
    return [BatchOut(**asdict(r)) for r in rows]


@router.get("/batches/export.csv", summary="All batches as CSV (public)")
def batches_csv(session: Session = Depends(get_session)) -> Response:
    return _csv(registry_service.list_batches(session, limit=1_000_000), _BATCH_COLUMNS, "batches")


@router.get(
    "/batches/{batch_id}/events", response_model=list[EventOut], summary="A batch's history"
)
def batch_events(batch_id: int, session: Session = Depends(get_session)) -> list[EventOut]:
    registry_service.get_batch(session, batch_id)
    return [event_out(session, e) for e in registry_service.events_of_batch(session, batch_id)]


_BLOCK_COLUMNS = list(BlockOut.model_fields)


@router.get("/blocks", response_model=list[BlockOut], summary="Serial blocks (public)")
def blocks(
    batch_id: int | None = Query(None, description="Batch"),
    account_id: int | None = Query(None, description="Holder account"),
    account_type: str | None = Query(None, description="Holder type"),
    status_: str | None = Query(
        None, alias="status", description="active, retired, cancelled or closed"
    ),
    include_closed: bool = Query(False, description="Also the closed (split) history blocks"),
    format_: str | None = Query(None, alias="format", description="json (default) or csv"),
    limit: int = Query(500, ge=1, le=10000),
    offset: int = Query(0, ge=0),
    session: Session = Depends(get_session),
) -> Any:
    if status_ is not None and status_ not in (*registry_service.LIVE_STATUSES, "closed"):
        raise InvalidInput("status is active, retired, cancelled or closed", field="status")
    rows = registry_service.list_blocks(
        session,
        batch_id=batch_id,
        account_id=account_id,
        account_type=account_type,
        status=status_,
        include_closed=include_closed,
        limit=limit,
        offset=offset,
    )
    if _fmt(format_):
        return _csv(rows, _BLOCK_COLUMNS, "blocks")
    return [BlockOut(**asdict(r)) for r in rows]


@router.get("/blocks/export.csv", summary="All live blocks as CSV (public)")
def blocks_csv(session: Session = Depends(get_session)) -> Response:
    return _csv(registry_service.list_blocks(session, limit=1_000_000), _BLOCK_COLUMNS, "blocks")


_HOLDING_COLUMNS = list(HoldingOut.model_fields)


@router.get(
    "/holdings", response_model=list[HoldingOut], summary="Active holdings by account (public)"
)
def holdings(
    account_type: str | None = Query(None, description="project_owner, buyer, platform, ..."),
    account_id: int | None = Query(None, description="One account"),
    format_: str | None = Query(None, alias="format", description="json (default) or csv"),
    session: Session = Depends(get_session),
) -> Any:
    rows = registry_service.holdings(session, account_type=account_type, account_id=account_id)
    if _fmt(format_):
        return _csv(rows, _HOLDING_COLUMNS, "holdings")
    return [HoldingOut(**asdict(r)) for r in rows]


@router.get("/holdings/export.csv", summary="Holdings as CSV (public)")
def holdings_csv(session: Session = Depends(get_session)) -> Response:
    return _csv(registry_service.holdings(session), _HOLDING_COLUMNS, "holdings")


_RETIREMENT_COLUMNS = [c for c in RetirementOut.model_fields if c != "proof"]


@router.get("/retirements", response_model=list[RetirementOut], summary="Retirements (public)")
def retirements(
    purpose: str | None = Query(None, description="Purpose"),
    beneficiary: str | None = Query(None, max_length=200, description="Beneficiary contains"),
    year: int | None = Query(None, ge=2000, le=9999, description="Retirement year"),
    batch_id: int | None = Query(None, description="Batch"),
    q: str | None = Query(None, max_length=200, description="Retirement id or beneficiary"),
    format_: str | None = Query(None, alias="format", description="json (default) or csv"),
    limit: int = Query(100, ge=1, le=1000),
    offset: int = Query(0, ge=0),
    session: Session = Depends(get_session),
) -> Any:
    if purpose is not None and purpose not in registry_service.PURPOSES:
        raise InvalidInput(
            f"purpose is one of {', '.join(registry_service.PURPOSES)}", field="purpose"
        )
    rows = registry_service.list_retirements(
        session,
        purpose=purpose,
        beneficiary=beneficiary,
        year=year,
        batch_id=batch_id,
        q=q,
        limit=limit,
        offset=offset,
    )
    if _fmt(format_):
        return _csv(rows, _RETIREMENT_COLUMNS, "retirements")
    return [RetirementOut(**asdict(r)) for r in rows]


@router.get("/retirements/export.csv", summary="Retirements as CSV (public)")
def retirements_csv(session: Session = Depends(get_session)) -> Response:
    rows = registry_service.list_retirements(session, limit=1_000_000)
    return _csv(rows, _RETIREMENT_COLUMNS, "retirements")


@router.get(
    "/retirements/{retirement_no}",
    response_model=RetirementOut,
    summary="One retirement with its proof",
)
def retirement(retirement_no: str, session: Session = Depends(get_session)) -> RetirementOut:
    return RetirementOut(**asdict(registry_service.get_retirement(session, retirement_no)))


# --- staff -----------------------------------------------------------------------------------------


def _own_account(session: Session, principal: Principal) -> int:
    if principal.organisation_id is None:
        raise InvalidInput("name the account (you belong to no organisation)", field="account_id")
    return registry_service.account_for_organisation(session, principal.organisation_id).id


@router.get(
    "/accounts/mine", response_model=AccountOut, summary="The caller's organisation's account"
)
def my_account(
    session: Session = Depends(get_session), principal: Principal = Depends(current_staff)
) -> AccountOut:
    account = registry_service.get_account(session, _own_account(session, principal))
    return AccountOut.model_validate(account, from_attributes=True)


@router.post(
    "/transfers",
    response_model=EventOut,
    status_code=status.HTTP_201_CREATED,
    summary="Transfer credits",
)
def transfer(
    body: TransferCreate,
    idempotency_key: str = IdempotencyKey,
    session: Session = Depends(get_session),
    principal: Principal = Depends(current_staff),
) -> EventOut:
    source = body.from_account_id or _own_account(session, principal)
    target = body.to_account_id
    if target is None:
        assert body.to_organisation_id is not None
        target = registry_service.account_for_organisation(session, body.to_organisation_id).id
    event = registry_service.transfer(
        session,
        principal,
        from_account_id=source,
        to_account_id=target,
        batch_id=body.batch_id,
        quantity=body.quantity,
        block_id=body.block_id,
        idempotency_key=idempotency_key,
    )
    return event_out(session, event)


@router.post(
    "/retirements",
    response_model=EventOut,
    status_code=status.HTTP_201_CREATED,
    summary="Retire credits (注销)",
)
def retire(
    body: RetirementCreate,
    idempotency_key: str = IdempotencyKey,
    session: Session = Depends(get_session),
    principal: Principal = Depends(current_staff),
) -> EventOut:
    event = registry_service.retire(
        session,
        principal,
        account_id=body.account_id or _own_account(session, principal),
        batch_id=body.batch_id,
        quantity=body.quantity,
        purpose=body.purpose,
        beneficiary=body.beneficiary,
        note=body.note,
        block_id=body.block_id,
        idempotency_key=idempotency_key,
    )
    return event_out(session, event)


@router.post(
    "/cancellations",
    response_model=EventOut,
    status_code=status.HTTP_201_CREATED,
    summary="Operator: cancel credits",
)
def cancel(
    body: CancellationCreate,
    idempotency_key: str = IdempotencyKey,
    session: Session = Depends(get_session),
    principal: Principal = Depends(current_staff),
) -> EventOut:
    event = registry_service.cancel(
        session,
        principal,
        account_id=body.account_id,
        batch_id=body.batch_id,
        quantity=body.quantity,
        reason=body.reason,
        block_id=body.block_id,
        idempotency_key=idempotency_key,
    )
    return event_out(session, event)


@router.post(
    "/personal-batches",
    response_model=BatchOut,
    status_code=status.HTTP_201_CREATED,
    summary="Operator: issue a batch from personal reductions",
)
def personal_batch(
    body: PersonalBatchCreate,
    idempotency_key: str = IdempotencyKey,
    session: Session = Depends(get_session),
    principal: Principal = Depends(current_staff),
) -> BatchOut:
    batch = registry_service.issue_personal_batch(
        session,
        principal,
        scenario=body.scenario,
        start=body.start,
        end=body.end,
        idempotency_key=idempotency_key,
    )
    return BatchOut(**asdict(registry_service.batch_view(session, batch.id)))

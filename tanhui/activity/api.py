"""Activity routes: the signed partner API, the review queue, operator rules and the citizen's account."""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Mapping
from datetime import date
from decimal import Decimal
from typing import Any

from fastapi import APIRouter, Depends, Query, Request
from fastapi.encoders import jsonable_encoder
from fastapi.responses import JSONResponse
from sqlalchemy.orm import Session
from starlette.concurrency import run_in_threadpool

from tanhui.activity import reports, schemas
from tanhui.activity import service as activity_service
from tanhui.identity import service as identity_service
from tanhui.identity import signing
from tanhui.identity.auth import current_citizen, partner_request, require_role, signed_path
from tanhui.identity.principal import PartnerPrincipal, Principal
from tanhui.kit.db import session_scope
from tanhui.kit.errors import InvalidInput, TanhuiError
from tanhui.kit.http import get_session

router = APIRouter(prefix="/v1")

_reviewer = require_role("reviewer", "operator_admin")
_operator = require_role("operator_admin")


def _identity_encoding(headers: Mapping[str, str]) -> None:
    """A compressed body is refused by name: parsed as it is, it would be answered "not UTF-8"."""
    encoding = headers.get("content-encoding", "").strip().lower()
    if encoding not in ("", "identity"):
        raise TanhuiError(
            f"Content-Encoding {encoding!r} is not supported: send the body uncompressed",
            code="unsupported_content_encoding",
            status_code=415,
            field="Content-Encoding",
        )


def _batch(body: bytes) -> list[Any]:
    """The body as {"records": [...]}; only the envelope is validated here, each record later."""
    try:
        # Numbers become Decimal, never float: "3.2" and 3.2 must give the same exact quantity.
        data = json.loads(body, parse_float=Decimal)
    except UnicodeDecodeError:
        # A legacy system's GBK export, say: JSON is UTF-8 (RFC 8259), and saying so saves a
        # partner from hunting for a syntax error that is not there.
        raise InvalidInput(
            "the body is not UTF-8: send JSON encoded in UTF-8 (RFC 8259)", code="invalid_json"
        ) from None
    except (ValueError, RecursionError):
        raise InvalidInput("the body is not JSON", code="invalid_json") from None
    if not isinstance(data, dict) or not isinstance(data.get("records"), list):
        raise InvalidInput(
            'the body must be {"records": [...]}', code="invalid_batch", field="records"
        )
    if set(data) - {"records"}:
        name = sorted(set(data) - {"records"})[0]
        raise InvalidInput(f"unknown field {name!r}", code="invalid_batch", field=name)
    records: list[Any] = data["records"]
    if not 1 <= len(records) <= activity_service.MAX_BATCH:
        raise InvalidInput(
            f"a batch holds 1 to {activity_service.MAX_BATCH} records, got {len(records)}",
            code="invalid_batch",
            field="records",
        )
    return records


async def _body(request: Request) -> bytes:
    return await request.body()


@router.post(
    "/partner/activities",
    tags=["partner"],
    summary="Push a batch of behaviour records (signed)",
    response_model=schemas.BatchResult,
    openapi_extra={
        "requestBody": {
            "required": True,
            "content": {
                "application/json": {
                    "schema": schemas.BatchIn.model_json_schema(
                        ref_template="#/components/schemas/{model}"
                    )
                }
            },
        }
    },
)
async def push_activities(request: Request) -> JSONResponse:
    body = await request.body()
    results = await run_in_threadpool(
        _push,
        request.app.state,
        request.method,
        signed_path(request),
        dict(request.headers),
        body,
    )
    counts = Counter(r["status"] for r in results)
    # Built by hand: validating 1000 result models would cost more than judging the records.
    return JSONResponse({"results": results, "counts": dict(counts)})


def _push(
    state: Any, method: str, path: str, headers: dict[str, str], body: bytes
) -> list[dict[str, Any]]:
    """Two transactions: the signature, the body and each record's calculation in a read-only one
    (on SQLite it waits for no writer, so batches are prepared in parallel), then the nonce and
    the crediting in the write transaction, which on SQLite queues for the single writer."""
    with session_scope(state.read_session_factory) as reading:
        partner = identity_service.verify_partner_request(
            reading, method=method, path=path, headers=headers, body=body, remember=False
        )
        _identity_encoding(headers)
        prepared = activity_service.prepare(reading, partner, _batch(body))
    with session_scope(state.session_factory) as session:
        nonce = {k.lower(): v for k, v in headers.items()}[signing.NONCE_HEADER.lower()].strip()
        identity_service.remember_nonce(session, partner.key_id, nonce)
        return activity_service.commit(session, prepared)


@router.get(
    # `:path`: an external id may hold "/" (any printable ASCII is accepted at ingestion).
    "/partner/activities/{external_id:path}",
    tags=["partner"],
    summary="A record's status (signed)",
    response_model=schemas.PartnerRecord,
)
def activity_status(
    external_id: str,
    partner: PartnerPrincipal = Depends(partner_request),
    session: Session = Depends(get_session),
) -> dict[str, Any]:
    return activity_service.record_status(session, partner, external_id)


@router.post(
    "/partner/activities/{external_id:path}/reversal",
    tags=["partner"],
    summary="Cancel a record: its reduction and points are reversed (signed, idempotent)",
    response_model=schemas.PartnerRecord,
)
def reverse_activity(
    external_id: str,
    partner: PartnerPrincipal = Depends(partner_request),
    session: Session = Depends(get_session),
    body: bytes = Depends(_body),
) -> dict[str, Any]:
    reason = None
    if body.strip():
        try:
            parsed = schemas.ReversalIn.model_validate_json(body)
        except ValueError:
            raise InvalidInput('the body must be {"reason": "..."}', field="reason") from None
        reason = parsed.reason
    return activity_service.reverse_record(session, partner, external_id, reason=reason)


@router.get(
    "/partner/reconciliation",
    tags=["partner"],
    summary="Counts and sums per scenario and status for a day (platform time zone; signed)",
    response_model=schemas.Reconciliation,
)
def reconciliation(
    date_: date = Query(alias="date", description="YYYY-MM-DD, platform time zone."),
    partner: PartnerPrincipal = Depends(partner_request),
    session: Session = Depends(get_session),
) -> dict[str, Any]:
    return activity_service.reconciliation(session, partner, date_)


@router.get(
    "/partners/{partner_id}/activity",
    tags=["review"],
    summary="A partner's records per day and status, and why records were refused (staff)",
    response_model=schemas.PartnerActivity,
)
def partner_activity(
    partner_id: int,
    days: int = Query(14, ge=1, le=reports.MAX_DAYS, description="Days up to today."),
    _actor: Principal = Depends(_reviewer),
    session: Session = Depends(get_session),
) -> dict[str, Any]:
    identity_service.get_partner(session, partner_id)  # 404 for an unknown partner
    return reports.partner_activity(session, partner_id, days=days)


# --- review ---------------------------------------------------------------------------------------


@router.get("/review/records", tags=["review"], summary="Records held for review, oldest first")
def review_records(
    limit: int = Query(50, ge=1, le=200),
    after_id: int | None = Query(None, description="Continue after this record id."),
    reason: str | None = Query(
        None,
        description="Only records held for this reason: "
        + ", ".join(activity_service.REVIEW_REASONS),
        max_length=64,
    ),
    actor: Principal = Depends(_reviewer),
    session: Session = Depends(get_session),
) -> list[dict[str, Any]]:
    return jsonable_encoder(
        activity_service.review_queue(
            session, actor, limit=limit, before_id=after_id, reason=reason
        )
    )


@router.get("/review/counts", tags=["review"], summary="Records waiting, in all and by reason")
def review_counts(
    _: Principal = Depends(_reviewer),
    session: Session = Depends(get_session),
) -> dict[str, int]:
    return activity_service.review_counts(session)


@router.post(
    "/review/decisions",
    tags=["review"],
    summary="Approve or reject many held records; an outcome per record (each commits on its own)",
)
def decide_records(
    body: schemas.ReviewDecisions,
    actor: Principal = Depends(_reviewer),
    session: Session = Depends(get_session),
) -> dict[str, Any]:
    outcomes = activity_service.decide_many(
        session, actor, body.record_ids, decision=body.decision, reason=body.reason
    )
    return {"results": outcomes, "decided": sum(1 for o in outcomes if o["decided"])}


@router.post("/review/records/{record_id}/approve", tags=["review"], summary="Approve and credit")
def approve_record(
    record_id: int,
    actor: Principal = Depends(_reviewer),
    session: Session = Depends(get_session),
) -> dict[str, Any]:
    return jsonable_encoder(activity_service.approve(session, actor, record_id))


@router.post("/review/records/{record_id}/reject", tags=["review"], summary="Reject with a reason")
def reject_record(
    record_id: int,
    body: schemas.RejectIn,
    actor: Principal = Depends(_reviewer),
    session: Session = Depends(get_session),
) -> dict[str, Any]:
    return jsonable_encoder(activity_service.reject(session, actor, record_id, reason=body.reason))


@router.get(
    "/activity/citizens/{citizen_id}/records",
    tags=["review"],
    summary="A citizen's records (staff; the read is logged for the citizen)",
)
def staff_citizen_records(
    citizen_id: int,
    limit: int = Query(50, ge=1, le=200),
    before_id: int | None = Query(None),
    actor: Principal = Depends(_reviewer),
    session: Session = Depends(get_session),
) -> list[dict[str, Any]]:
    return jsonable_encoder(
        activity_service.staff_records(session, actor, citizen_id, limit=limit, before_id=before_id)
    )


@router.get("/activity/rules", tags=["review"], summary="Check parameters in force per scenario")
def get_rules(
    _: Principal = Depends(_reviewer), session: Session = Depends(get_session)
) -> dict[str, Any]:
    return jsonable_encoder(activity_service.rules_in_force(session))


@router.post("/activity/rules", tags=["review"], summary="Change check parameters (operator)")
def set_rules(
    body: schemas.RuleIn,
    actor: Principal = Depends(_operator),
    session: Session = Depends(get_session),
) -> dict[str, Any]:
    return jsonable_encoder(
        activity_service.set_rule(
            session,
            actor,
            scenario=body.scenario,
            params=body.params,
            effective_from=body.effective_from,
        )
    )


# --- the citizen's carbon account ---------------------------------------------------------------


@router.get(
    "/me/summary", tags=["me"], summary="My reductions and points", response_model=schemas.Summary
)
def my_summary(
    citizen: Principal = Depends(current_citizen), session: Session = Depends(get_session)
) -> dict[str, Any]:
    return activity_service.citizen_summary(session, citizen.id)


@router.get(
    "/me/records",
    tags=["me"],
    summary="My records, newest first",
    response_model=schemas.RecordPage,
)
def my_records(
    limit: int = Query(50, ge=1, le=200),
    before_id: int | None = Query(None, description="next_before_id of the previous page."),
    scenario: str | None = Query(None, description="Only this scenario.", max_length=64),
    status: str | None = Query(
        None,
        description="Only this status: " + ", ".join(activity_service.CITIZEN_STATUSES),
        max_length=16,
    ),
    citizen: Principal = Depends(current_citizen),
    session: Session = Depends(get_session),
) -> dict[str, Any]:
    items = activity_service.citizen_records(
        session,
        citizen.id,
        limit=limit + 1,
        before_id=before_id,
        scenario=scenario,
        status=status,
    )
    more = len(items) > limit
    items = items[:limit]
    return {"items": items, "next_before_id": items[-1]["id"] if more else None}


@router.get(
    "/me/records/{record_id}",
    tags=["me"],
    summary="How one record's reduction was computed",
    response_model=schemas.RecordDetail,
)
def my_record(
    record_id: int,
    citizen: Principal = Depends(current_citizen),
    session: Session = Depends(get_session),
) -> dict[str, Any]:
    return activity_service.record_detail(session, citizen.id, record_id)

"""Activity use cases: partner status, reversal, reconciliation, review, rules, the citizen's account.

The ingestion pipeline itself lives in `tanhui.activity.pipeline` (`ingest`, or `prepare` then
`commit`); it is re-exported here. Every function flushes and never commits: the HTTP request (or
CLI command) that calls it owns the transaction.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Mapping, Sequence
from datetime import date, datetime, timedelta
from decimal import Decimal
from typing import Any

from sqlalchemy import String, Table, case, cast, func, select, update
from sqlalchemy.orm import Session

from tanhui.activity import checks
from tanhui.activity import rules as rules_mod
from tanhui.activity.checks import Record
from tanhui.activity.models import ActivityDaily, ActivityRecord, ActivityRule
from tanhui.activity.pipeline import (  # the pipeline's names, re-exported for its callers
    CHUNK,
    CITIZEN,
    ISSUANCE,
    bump_daily,
    credit_records,
    lock_daily,
    methodology_inputs,
)
from tanhui.activity.pipeline import CITIZEN_STATUSES as CITIZEN_STATUSES
from tanhui.activity.pipeline import CREDITED as CREDITED
from tanhui.activity.pipeline import DUPLICATE as DUPLICATE
from tanhui.activity.pipeline import MAX_BATCH as MAX_BATCH
from tanhui.activity.pipeline import REJECTED as REJECTED
from tanhui.activity.pipeline import REVERSED as REVERSED
from tanhui.activity.pipeline import REVIEW as REVIEW
from tanhui.activity.pipeline import Prepared as Prepared
from tanhui.activity.pipeline import commit as commit
from tanhui.activity.pipeline import ingest as ingest
from tanhui.activity.pipeline import prepare as prepare
from tanhui.activity.reports import platform_summary as platform_summary
from tanhui.identity import service as identity_service
from tanhui.identity.principal import PartnerPrincipal, Principal
from tanhui.incentives import service as incentives_service
from tanhui.kit.db import utcnow
from tanhui.kit.dialect import for_update
from tanhui.kit.errors import Conflict, InvalidInput, NotFound, TanhuiError
from tanhui.kit.settings import get_settings
from tanhui.ledger import service as ledger_service
from tanhui.methodology import service as methodology_service

_T: Table = ActivityRecord.__table__  # type: ignore[assignment]
_D: Table = ActivityDaily.__table__  # type: ignore[assignment]


class RecordNotFound(NotFound):
    code = "record_not_found"


class NotInReview(Conflict):
    code = "not_in_review"


class AlreadyIssued(Conflict):
    code = "already_issued"


# --- partner reads and reversals ---------------------------------------------------------------------


def _record_of_partner(session: Session, partner_id: int, external_id: str) -> ActivityRecord:
    record = session.scalars(
        select(ActivityRecord).where(
            ActivityRecord.partner_id == partner_id, ActivityRecord.external_id == external_id
        )
    ).one_or_none()
    if record is None:
        raise RecordNotFound(f"no record {external_id!r} from this partner", field="external_id")
    return record


def partner_view(record: ActivityRecord) -> dict[str, Any]:
    """What a partner sees of its own record: the outcome, never the citizen's identity."""
    return {
        "external_id": record.external_id,
        "record_id": record.id,
        "status": record.status,
        "code": record.code,
        "detail": record.detail,
        "reduction_mg": record.reduction_mg,
        "points": record.points,
        "scenario": record.scenario,
        "started_at": record.started_at,
        "ended_at": record.ended_at,
        "received_at": record.received_at,
        "decided_at": record.decided_at,
        "methodology": record.methodology_id,
        "methodology_version": record.methodology_version,
        "reversal_transfer_id": record.reversal_transfer_id,
    }


def record_status(session: Session, partner: PartnerPrincipal, external_id: str) -> dict[str, Any]:
    return partner_view(_record_of_partner(session, partner.partner_id, external_id))


def reverse_record(
    session: Session, partner: PartnerPrincipal, external_id: str, *, reason: str | None = None
) -> dict[str, Any]:
    """The partner cancels a record: its reduction and points are taken back by ledger entries.

    Idempotent: reversing a reversed record returns it as it is. A record under review or rejected is
    simply marked reversed (nothing was credited). A record whose reduction was issued as credits
    cannot be reversed any more (409 already_issued).
    """
    stmt = select(ActivityRecord).where(
        ActivityRecord.partner_id == partner.partner_id, ActivityRecord.external_id == external_id
    )
    record = session.scalars(for_update(session, stmt)).one_or_none()
    if record is None:
        raise RecordNotFound(f"no record {external_id!r} from this partner", field="external_id")
    if record.status == REVERSED:
        return partner_view(record)
    if record.issued_ref is not None:
        raise AlreadyIssued(
            "this record's reduction was already issued as credits", field="external_id"
        )
    now = utcnow()
    key = f"activity:reversal:{record.id}"
    was = record.status
    if was == CREDITED and record.citizen_id is not None:
        if record.reduction_mg:
            account = ledger_service.open_account(
                session,
                owner_type=CITIZEN,
                owner_id=record.citizen_id,
                asset=ledger_service.CO2E_MG,
            )
            issuance = ledger_service.platform_account(session, ledger_service.CO2E_MG, ISSUANCE)
            transfer = ledger_service.transfer(
                session,
                idempotency_key=key,
                kind="activity.reversal",
                postings=[(account.id, -record.reduction_mg), (issuance.id, record.reduction_mg)],
                metadata={"record_id": record.id, "partner_id": partner.partner_id},
            )
            record.reversal_transfer_id = transfer.id
            incentives_service.revoke_points(
                session, source=f"activity:{record.id}", idempotency_key=key
            )
        _add_daily(session, record.citizen_id, record.scenario, record.day, -record.reduction_mg)
    record.status = REVERSED
    record.code = "reversed_by_partner"
    record.detail = (reason or f"reversed by the partner (was {was})")[:300]
    record.decided_at = now
    record.decided_by = f"partner:{partner.partner_id}"
    session.flush()
    return partner_view(record)


def _add_daily(session: Session, citizen_id: int, scenario: str, day: date, mg: int) -> None:
    bump_daily(session, {(citizen_id, scenario, day): (mg, 0)})


def reconciliation(session: Session, partner: PartnerPrincipal, day: date) -> dict[str, Any]:
    """Counts and sums per scenario and status of the partner's records that started on `day`
    (platform time zone), for the partner to compare with what it sent."""
    rows = session.execute(
        select(
            _T.c.scenario,
            _T.c.status,
            func.count(),
            func.coalesce(func.sum(_T.c.reduction_mg), 0),
            func.coalesce(func.sum(_T.c.points), 0),
        )
        .where(_T.c.partner_id == partner.partner_id, _T.c.day == day)
        .group_by(_T.c.scenario, _T.c.status)
        .order_by(_T.c.scenario, _T.c.status)
    ).all()
    return {
        "date": day.isoformat(),
        "timezone": get_settings().timezone,
        "groups": [
            {
                "scenario": s,
                "status": st,
                "records": int(n),
                "reduction_mg": int(mg),
                "points": int(p),
            }
            for s, st, n, mg, p in rows
        ],
        "totals": {
            "records": sum(int(r[2]) for r in rows),
            "reduction_mg": sum(int(r[3]) for r in rows if r[1] == CREDITED),
            "points": sum(int(r[4]) for r in rows if r[1] == CREDITED),
        },
    }


# --- review -------------------------------------------------------------------------------------------


def staff_view(record: ActivityRecord) -> dict[str, Any]:
    out = partner_view(record)
    out.update(
        {
            "partner_id": record.partner_id,
            "citizen_id": record.citizen_id,
            "quantities": record.quantities,
            "evidence": record.evidence,
            "computed_mg": record.computed_mg,
            "review_reasons": record.review_reasons or [],
            "decided_by": record.decided_by,
        }
    )
    return out


# Why the checks hold a record (checks.check_plausible and the pipeline's per-day count).
REVIEW_REASONS = ("speed_near_bound", "long_trip", "large_quantity", "many_records_today")
MAX_DECISIONS = 200  # records decided by one bulk request


def _held_for(reason: str) -> Any:
    # review_reasons is a JSON list of codes: its text holds the quoted code on both databases.
    return cast(ActivityRecord.review_reasons, String).like(f'%"{reason}"%')


def review_counts(session: Session) -> dict[str, int]:
    """How many records wait for review, in all (`total`) and by the reason that held them."""
    row = session.execute(
        select(
            func.count(),
            *(func.coalesce(func.sum(case((_held_for(r), 1), else_=0)), 0) for r in REVIEW_REASONS),
        ).where(ActivityRecord.status == REVIEW)
    ).one()
    return {
        "total": int(row[0]),
        **{r: int(n) for r, n in zip(REVIEW_REASONS, row[1:], strict=True)},
    }


def review_queue(
    session: Session,
    actor: Principal,
    *,
    limit: int = 50,
    before_id: int | None = None,
    reason: str | None = None,
) -> list[dict[str, Any]]:
    """Records held for review, oldest first (only those held for `reason`, if given). Reading
    them is a staff read of personal data."""
    stmt = select(ActivityRecord).where(ActivityRecord.status == REVIEW)
    if reason is not None:
        if reason not in REVIEW_REASONS:
            raise InvalidInput(
                f"reason is one of {', '.join(REVIEW_REASONS)}",
                code="unknown_reason",
                field="reason",
            )
        stmt = stmt.where(_held_for(reason))
    if before_id is not None:
        stmt = stmt.where(ActivityRecord.id > before_id)
    records = session.scalars(stmt.order_by(ActivityRecord.id).limit(limit)).all()
    for citizen_id in sorted({r.citizen_id for r in records if r.citizen_id is not None}):
        identity_service.log_access(
            session, citizen_id=citizen_id, actor=actor, what="activity records", why="review queue"
        )
    return [staff_view(r) for r in records]


def _locked_review(session: Session, record_id: int) -> ActivityRecord:
    stmt = select(ActivityRecord).where(ActivityRecord.id == record_id)
    record = session.scalars(for_update(session, stmt)).one_or_none()
    if record is None:
        raise RecordNotFound(f"record {record_id} does not exist", field="record_id")
    if record.status != REVIEW:
        raise NotInReview(
            f"record {record_id} is {record.status}", extra={"record_status": record.status}
        )
    return record


def approve(session: Session, actor: Principal, record_id: int) -> dict[str, Any]:
    """Credit a held record, within what is left of the citizen's daily cap when it is approved."""
    record = _locked_review(session, record_id)
    assert record.citizen_id is not None
    daily = lock_daily(session, [(record.citizen_id, record.scenario, record.day)])
    total = daily.get((record.citizen_id, record.scenario, record.day), (0, 0))[0]
    cap = _cap_of(session, record)
    credited, reached = checks.allocate_cap(total, record.computed_mg, cap)
    now = utcnow()
    record.decided_at = now
    record.decided_by = f"staff:{actor.id}"
    if reached:
        record.status, record.code = REJECTED, "daily_cap_reached"
        record.detail = f"approved, but the daily cap of {cap} mg was reached meanwhile"
    else:
        record.status, record.code, record.reduction_mg = CREDITED, None, credited
        if credited < record.computed_mg:
            record.detail = f"credited up to the daily cap of {cap} mg"
        transfer_id, points = credit_records(
            session,
            [(record.id, record.citizen_id, credited, record.started_at)],
            key=f"activity:approve:{record.id}",
            meta={"record_id": record.id, "approved_by": actor.id},
        )
        record.transfer_id, record.points = transfer_id, points[0]
        _add_daily(session, record.citizen_id, record.scenario, record.day, credited)
    session.flush()
    identity_service.log_access(
        session, citizen_id=record.citizen_id, actor=actor, what="activity record", why="review"
    )
    return staff_view(record)


def _cap_of(session: Session, record: ActivityRecord) -> int | None:
    if record.methodology_id is None:
        return None
    compiled = methodology_service.get(session, record.methodology_id, record.methodology_version)
    cap: int | None = compiled.per_day_cap_mg
    return cap


def reject(session: Session, actor: Principal, record_id: int, *, reason: str) -> dict[str, Any]:
    if not reason.strip():
        raise InvalidInput("a rejection needs a reason", field="reason")
    record = _locked_review(session, record_id)
    record.status, record.code = REJECTED, "rejected_by_reviewer"
    record.detail = reason.strip()[:300]
    record.decided_at = utcnow()
    record.decided_by = f"staff:{actor.id}"
    session.flush()
    if record.citizen_id is not None:
        identity_service.log_access(
            session, citizen_id=record.citizen_id, actor=actor, what="activity record", why="review"
        )
    return staff_view(record)


def decide_many(
    session: Session,
    actor: Principal,
    record_ids: Sequence[int],
    *,
    decision: str,
    reason: str | None = None,
) -> list[dict[str, Any]]:
    """Approve or reject many held records; one outcome per distinct id, in id order.

    Each record is decided and COMMITTED on its own, as one reviewer clicking through the queue
    would: a record another reviewer decided meanwhile (or that does not exist) is reported in its
    place and the others still go through, and no transaction holds locks across many citizens'
    rows, so two reviewers deciding overlapping sets queue rather than deadlock.
    """
    if decision not in ("approve", "reject"):
        raise InvalidInput("decision is approve or reject", field="decision")
    ids = sorted(set(record_ids))
    if not 1 <= len(ids) <= MAX_DECISIONS:
        raise InvalidInput(f"give 1 to {MAX_DECISIONS} record ids", field="record_ids")
    if decision == "reject" and not (reason or "").strip():
        raise InvalidInput("a rejection needs a reason", field="reason")
    outcomes: list[dict[str, Any]] = []
    for record_id in ids:
        try:
            if decision == "approve":
                view = approve(session, actor, record_id)
            else:
                view = reject(session, actor, record_id, reason=reason or "")
            session.commit()
        except TanhuiError as exc:
            session.rollback()
            outcomes.append(
                {"record_id": record_id, "decided": False, "code": exc.code, "detail": exc.message}
            )
            continue
        outcomes.append(
            {
                "record_id": record_id,
                "decided": True,
                "status": view["status"],
                "code": view["code"],
                "reduction_mg": view["reduction_mg"],
            }
        )
    return outcomes


def staff_records(
    session: Session,
    actor: Principal,
    citizen_id: int,
    *,
    limit: int = 50,
    before_id: int | None = None,
    why: str = "staff lookup",
) -> list[dict[str, Any]]:
    """A citizen's records as staff see them (support, fraud investigation); the read is logged
    with `why`, which the citizen sees."""
    identity_service.log_access(
        session, citizen_id=citizen_id, actor=actor, what="activity records", why=why
    )
    stmt = select(ActivityRecord).where(ActivityRecord.citizen_id == citizen_id)
    if before_id is not None:
        stmt = stmt.where(ActivityRecord.id < before_id)
    records = session.scalars(stmt.order_by(ActivityRecord.id.desc()).limit(limit)).all()
    return [staff_view(r) for r in records]


# --- operator rules -------------------------------------------------------------------------------------


def set_rule(
    session: Session,
    actor: Principal,
    *,
    scenario: str,
    params: Mapping[str, Any],
    effective_from: datetime | None = None,
) -> dict[str, Any]:
    """Change some check parameters for a scenario (`*` = all) from `effective_from` (default now)."""
    if scenario != rules_mod.ALL and not checks._SCENARIO.match(scenario):
        raise InvalidInput("scenario must be snake_case or '*'", field="scenario")
    if not params:
        raise InvalidInput("params must name at least one parameter", field="params")
    try:
        cleaned = rules_mod.clean_params(params)
    except ValueError as exc:
        raise InvalidInput(
            f"unknown parameter or bad value: {exc}", code="invalid_rule", field=f"params.{exc}"
        ) from None
    row = ActivityRule(
        scenario=scenario,
        params=cleaned,
        effective_from=effective_from or utcnow(),
        created_at=utcnow(),
        created_by=f"staff:{actor.id}",
    )
    session.add(row)
    session.flush()
    return rules_in_force(session)


def rules_in_force(session: Session, *, at: datetime | None = None) -> dict[str, Any]:
    book = rules_mod.load(session, at=at or utcnow())
    return {s: book.for_scenario(s).params for s in [rules_mod.ALL, *book.scenarios()]}


def rules_overview(session: Session) -> list[dict[str, Any]]:
    """Per scenario, the parameters in force now and which of them an operator set (the console)."""
    book = rules_mod.load(session, at=utcnow())
    return [
        {
            "scenario": s,
            "params": book.for_scenario(s).params,
            "set_by_operator": sorted(book.set_by_operator(s)),
        }
        for s in book.scenarios()
    ]


def rule_changes(session: Session, *, limit: int = 50) -> list[dict[str, Any]]:
    """The operators' changes, newest first: what, for which scenario, from when, by whom."""
    rows = session.scalars(select(ActivityRule).order_by(ActivityRule.id.desc()).limit(limit)).all()
    return [
        {
            "scenario": r.scenario,
            "params": r.params,
            "effective_from": r.effective_from,
            "created_at": r.created_at,
            "created_by": r.created_by,
        }
        for r in rows
    ]


# --- the citizen's carbon account ---------------------------------------------------------------------


def citizen_view(record: ActivityRecord) -> dict[str, Any]:
    return {
        "id": record.id,
        "scenario": record.scenario,
        "status": record.status,
        "code": record.code,
        "detail": record.detail,
        "started_at": record.started_at,
        "ended_at": record.ended_at,
        "day": record.day,
        "quantities": record.quantities,
        "computed_mg": record.computed_mg,
        "reduction_mg": record.reduction_mg,
        "points": record.points,
        "methodology": record.methodology_id,
        "methodology_version": record.methodology_version,
        "partner_id": record.partner_id,
    }


def citizen_summary(
    session: Session, citizen_id: int, *, today: date | None = None
) -> dict[str, Any]:
    """Totals, per-scenario breakdown, the last 30 days and every month, in the platform time zone."""
    today = today or utcnow().astimezone(get_settings().zone).date()
    credited = (_T.c.citizen_id == citizen_id, _T.c.status == CREDITED)
    by_scenario = [
        {"scenario": s, "records": int(n), "reduction_mg": int(mg), "points": int(p)}
        for s, n, mg, p in session.execute(
            select(_T.c.scenario, func.count(), func.sum(_T.c.reduction_mg), func.sum(_T.c.points))
            .where(*credited)
            .group_by(_T.c.scenario)
            .order_by(_T.c.scenario)
        )
    ]
    per_day = {
        d: int(mg)
        for d, mg in session.execute(
            select(_T.c.day, func.sum(_T.c.reduction_mg)).where(*credited).group_by(_T.c.day)
        )
    }
    daily = [
        {
            "date": (today - timedelta(days=n)).isoformat(),
            "reduction_mg": per_day.get(today - timedelta(days=n), 0),
        }
        for n in range(29, -1, -1)
    ]
    months: dict[str, int] = defaultdict(int)
    for d, mg in per_day.items():
        months[f"{d.year:04d}-{d.month:02d}"] += mg
    return {
        "citizen_id": citizen_id,
        "total_mg": sum(s["reduction_mg"] for s in by_scenario),
        "records": sum(s["records"] for s in by_scenario),
        "points": incentives_service.points_balance(session, citizen_id),
        "by_scenario": by_scenario,
        "daily": daily,
        "monthly": [{"month": m, "reduction_mg": months[m]} for m in sorted(months)],
        "month_to_date": month_to_date(per_day, today),
        "timezone": get_settings().timezone,
    }


def month_to_date(per_day: Mapping[date, int], today: date) -> dict[str, Any]:
    """This month so far beside the same days of last month (up to its last day, when it is
    shorter): on the 3rd, a whole last month against three days would always read as a fall."""
    first = today.replace(day=1)
    last_day = first - timedelta(days=1)
    previous_first = last_day.replace(day=1)
    previous_until = min(previous_first + timedelta(days=today.day - 1), last_day)
    return {
        "since": first.isoformat(),
        "until": today.isoformat(),
        "reduction_mg": sum(mg for d, mg in per_day.items() if first <= d <= today),
        "previous_since": previous_first.isoformat(),
        "previous_until": previous_until.isoformat(),
        "previous_reduction_mg": sum(
            mg for d, mg in per_day.items() if previous_first <= d <= previous_until
        ),
    }


def citizen_scenarios(session: Session, citizen_id: int) -> list[str]:
    """The scenarios the citizen has records of, whatever their status."""
    return list(
        session.scalars(
            select(_T.c.scenario)
            .where(_T.c.citizen_id == citizen_id)
            .group_by(_T.c.scenario)
            .order_by(_T.c.scenario)
        )
    )


def citizen_records(
    session: Session,
    citizen_id: int,
    *,
    limit: int = 50,
    before_id: int | None = None,
    scenario: str | None = None,
    status: str | None = None,
) -> list[dict[str, Any]]:
    """The citizen's records, newest first (keyset pagination by id), of one scenario or status
    if given."""
    if status is not None and status not in CITIZEN_STATUSES:
        raise InvalidInput(
            f"status is one of {', '.join(CITIZEN_STATUSES)}", code="unknown_status", field="status"
        )
    stmt = select(ActivityRecord).where(ActivityRecord.citizen_id == citizen_id)
    if scenario is not None:
        stmt = stmt.where(ActivityRecord.scenario == scenario)
    if status is not None:
        stmt = stmt.where(ActivityRecord.status == status)
    if before_id is not None:
        stmt = stmt.where(ActivityRecord.id < before_id)
    records = session.scalars(
        stmt.order_by(ActivityRecord.id.desc()).limit(max(1, min(limit, 200)))
    )
    return [citizen_view(r) for r in records]


def record_detail(session: Session, citizen_id: int, record_id: int) -> dict[str, Any]:
    """How a record's reduction was computed: methodology, version, inputs, factors with sources and
    status, every step (recomputed from the immutable version), the ledger transfer and its log leaf."""
    record = session.get(ActivityRecord, record_id)
    if record is None or record.citizen_id != citizen_id:
        raise RecordNotFound(f"record {record_id} does not exist", field="record_id")
    out = citizen_view(record)
    out.update(
        {"transfer_id": record.transfer_id, "reversal_transfer_id": record.reversal_transfer_id}
    )
    out["calculation"] = None
    out["factors"] = []
    if record.methodology_id is not None and record.methodology_version is not None:
        compiled = methodology_service.get(
            session, record.methodology_id, record.methodology_version
        )
        inputs = methodology_inputs(
            Record(
                record.external_id,
                record.partner_user_id,
                record.scenario,
                record.started_at,
                record.ended_at,
                {k: Decimal(v) for k, v in record.quantities.items()},
            ),
            compiled,
        )
        try:
            calc = compiled.calculate(inputs, at=record.started_at, trace=True)
        except TanhuiError as exc:  # a record rejected for its inputs has no calculation to show
            out["calculation_error"] = {"code": exc.code, "detail": exc.message, "field": exc.field}
        else:
            out["calculation"] = calc.to_dict()
            out["factors"] = _factors_of(out["calculation"]["trace"] or [])
        out["methodology_name"] = {"zh": compiled.name_zh, "en": compiled.name_en}
    out["trust_leaf"] = None
    if record.transfer_id is not None:
        from tanhui.trust import service as trust_service

        leaf = trust_service.leaf_for(session, "ledger.transfer", str(record.transfer_id))
        if leaf is not None:
            out["trust_leaf"] = {"leaf_index": leaf.leaf_index, "leaf_hash": _hex(leaf.leaf_hash)}
    return out


def _hex(value: Any) -> Any:
    return value.hex() if isinstance(value, (bytes, bytearray, memoryview)) else value


def _factors_of(trace: Iterable[Mapping[str, Any]]) -> list[dict[str, Any]]:
    seen: dict[str, dict[str, Any]] = {}
    for step in trace:
        for name, value in (step.get("values") or {}).items():
            if value.get("kind") in ("factor", "parameter") and name not in seen:
                seen[name] = {"name": name, **value}
    return list(seen.values())


def export_section(session: Session, citizen_id: int) -> list[dict[str, Any]]:
    """Every record of the citizen, for the PIPL data export (`GET /v1/me/export`)."""
    records = session.scalars(
        select(ActivityRecord)
        .where(ActivityRecord.citizen_id == citizen_id)
        .order_by(ActivityRecord.id)
    )
    out = []
    for r in records:
        view = citizen_view(r)
        view.update(
            {
                "started_at": r.started_at.isoformat(),
                "ended_at": r.ended_at.isoformat(),
                "day": r.day.isoformat(),
                "evidence": r.evidence,
                "partner_user_id": r.partner_user_id,
            }
        )
        out.append(view)
    return out


# --- the registry's personal aggregation ---------------------------------------------------------------


def unissued_reductions(
    session: Session, *, scenario: str, start: date, end: date
) -> tuple[int, list[int]]:
    """Credited reductions of a scenario on days start..end (inclusive, platform time zone) that have
    not been issued as credits yet: (total mg, record ids)."""
    rows = session.execute(
        select(_T.c.id, _T.c.reduction_mg)
        .where(
            _T.c.scenario == scenario,
            _T.c.status == CREDITED,
            _T.c.issued_ref.is_(None),
            _T.c.day >= start,
            _T.c.day <= end,
            _T.c.reduction_mg > 0,
        )
        .order_by(_T.c.id)
    ).all()
    return sum(int(mg) for _, mg in rows), [int(i) for i, _ in rows]


def mark_issued(session: Session, record_ids: Sequence[int], *, batch_ref: str) -> int:
    """Mark records as issued under `batch_ref`; a record is issued at most once (Conflict otherwise).

    The conditional update is the once-only guard: of two concurrent issuances, one updates every row
    and the other finds fewer rows than it asked for and raises, rolling its transaction back.
    """
    ids = sorted(set(record_ids))
    changed = 0
    for start in range(0, len(ids), CHUNK):
        result = session.execute(
            update(_T)
            .where(
                _T.c.id.in_(ids[start : start + CHUNK]),
                _T.c.issued_ref.is_(None),
                _T.c.status == CREDITED,
            )
            .values(issued_ref=batch_ref)
        )
        changed += result.rowcount  # type: ignore[attr-defined]
    if changed != len(ids):
        raise Conflict(
            f"{len(ids) - changed} of the records are already issued or not credited",
            code="already_issued",
            field="record_ids",
        )
    return changed

"""Activity use cases: partner ingestion, status, reversal, reconciliation, review, the citizen's account.

The ingestion pipeline (`ingest`) judges a whole batch with a fixed number of queries, whatever its
size: existing external ids, bindings, rules, daily totals (locked), stored overlapping spans in the
batch's window; then the record insert, one CO2E ledger transfer, one points award call (itself one
POINT transfer), one upsert of the daily totals. Every function flushes and never commits: the HTTP
request (or CLI command) that calls it owns the transaction, so a batch is credited entirely or not
at all.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from decimal import Decimal
from typing import Any

from sqlalchemy import Row, Table, bindparam, func, insert, select, text, tuple_, update
from sqlalchemy.orm import Session

from tanhui.activity import checks
from tanhui.activity import rules as rules_mod
from tanhui.activity.checks import Allocator, Record, RecordError, SpanIndex
from tanhui.activity.models import ActivityDaily, ActivityRecord, ActivityRule
from tanhui.activity.reports import platform_summary as platform_summary
from tanhui.identity import service as identity_service
from tanhui.identity.principal import PartnerPrincipal, Principal
from tanhui.incentives import service as incentives_service
from tanhui.kit.bulk import execute_many
from tanhui.kit.db import utcnow
from tanhui.kit.dialect import for_update, insert_ignore, serialised_writers, upsert_add
from tanhui.kit.errors import Conflict, InvalidInput, NotFound, TanhuiError
from tanhui.kit.settings import get_settings
from tanhui.ledger import service as ledger_service
from tanhui.methodology import service as methodology_service

MAX_BATCH = 1000
_CHUNK = 500
CREDITED, REJECTED, REVIEW, REVERSED, DUPLICATE = (
    "credited",
    "rejected",
    "review",
    "reversed",
    "duplicate",
)
ISSUANCE = "issuance"
CITIZEN = "citizen"

_T: Table = ActivityRecord.__table__  # type: ignore[assignment]
_D: Table = ActivityDaily.__table__  # type: ignore[assignment]
_INSERT = insert(_T)
_SET_CREDIT = (
    update(_T)
    .where(_T.c.id == bindparam("rid"))
    .values(transfer_id=bindparam("tid"), points=bindparam("pts"))
)


class RecordNotFound(NotFound):
    code = "record_not_found"


class NotInReview(Conflict):
    code = "not_in_review"


class AlreadyIssued(Conflict):
    code = "already_issued"


# --- results ----------------------------------------------------------------------------------------


def _result(
    external_id: str,
    status: str,
    *,
    code: str | None = None,
    reduction_mg: int = 0,
    points: int = 0,
    record_id: int | None = None,
    detail: str | None = None,
    field: str | None = None,
) -> dict[str, Any]:
    return {
        "external_id": external_id,
        "status": status,
        "code": code,
        "reduction_mg": reduction_mg,
        "points": points,
        "record_id": record_id,
        "detail": detail,
        "field": field,
    }


_OUTCOME_COLUMNS = (
    _T.c.id,
    _T.c.external_id,
    _T.c.status,
    _T.c.code,
    _T.c.reduction_mg,
    _T.c.points,
    _T.c.detail,
)


def _stored_result(row: Row[Any], *, duplicate: bool = False) -> dict[str, Any]:
    out = _result(
        row.external_id,
        DUPLICATE if duplicate else row.status,
        code=row.code,
        reduction_mg=row.reduction_mg,
        points=row.points,
        record_id=row.id,
        detail=row.detail,
    )
    if duplicate:
        out["original_status"] = row.status
    return out


# --- the pipeline -------------------------------------------------------------------------------------


@dataclass(slots=True)
class _Pending:
    """A record that passed the per-record checks and awaits overlaps and caps."""

    index: int
    record: Record
    citizen_id: int
    day: date
    methodology_id: str
    version: str
    computed_mg: int
    cap_mg: int | None
    dedupe: bool
    review_reasons: list[str]


def _local_day(at: datetime, zone: Any) -> date:
    return at.astimezone(zone).date()


def _row(
    partner_id: int,
    record: Record,
    *,
    citizen_id: int | None,
    day: date,
    status: str,
    code: str | None,
    now: datetime,
    methodology: tuple[str, str] | None = None,
    computed_mg: int = 0,
    reduction_mg: int = 0,
    detail: str | None = None,
    review_reasons: list[str] | None = None,
) -> dict[str, Any]:
    return {
        "partner_id": partner_id,
        "external_id": record.external_id,
        "partner_user_id": record.partner_user_id,
        "citizen_id": citizen_id,
        "scenario": record.scenario,
        "started_at": record.started_at,
        "ended_at": record.ended_at,
        "day": day,
        "quantities": {k: str(v) for k, v in record.quantities.items()},
        "evidence": record.evidence,
        "methodology_id": methodology[0] if methodology else None,
        "methodology_version": methodology[1] if methodology else None,
        "computed_mg": computed_mg,
        "reduction_mg": reduction_mg,
        "points": 0,
        "status": status,
        "code": code,
        "detail": detail[:300] if detail else None,
        "review_reasons": review_reasons,
        "transfer_id": None,
        "reversal_transfer_id": None,
        "received_at": now,
        "decided_at": now if status != REVIEW else None,
        "decided_by": None,
        "issued_ref": None,
    }


def _methodology_inputs(record: Record, compiled: Any) -> dict[str, object]:
    inputs: dict[str, object] = dict(record.quantities)
    # A trip record is one ride unless it says otherwise: per-ride methodologies (Wuhan bus) declare
    # a `count` input that distance-reporting partners do not send.
    if "count" in compiled.inputs and "count" not in inputs:
        inputs["count"] = 1
    return inputs


def ingest(
    session: Session,
    partner: PartnerPrincipal,
    raw_records: Sequence[Any],
    *,
    now: datetime | None = None,
) -> list[dict[str, Any]]:
    """Judge and credit a batch of partner records; one result per record, in order.

    Idempotent per (partner, external_id): a record seen before (in an earlier batch, earlier in this
    batch, or inserted by a concurrent batch) is answered `duplicate` with its stored outcome.
    """
    if not 1 <= len(raw_records) <= MAX_BATCH:
        raise InvalidInput(f"a batch holds 1 to {MAX_BATCH} records", field="records")
    now = now or utcnow()
    zone = get_settings().zone
    partner_id = partner.partner_id
    results: list[dict[str, Any] | None] = [None] * len(raw_records)

    parsed: list[tuple[int, Record]] = []
    first_of: dict[str, int] = {}  # external id -> index of its first occurrence in the batch
    repeats: list[tuple[int, int]] = []  # (index, index of the first occurrence)
    for i, raw in enumerate(raw_records):
        try:
            record = checks.parse_record(raw)
        except RecordError as exc:
            ext = raw.get("external_id") if isinstance(raw, dict) else None
            results[i] = _result(
                ext if isinstance(ext, str) else "",
                REJECTED,
                code="invalid_record",
                detail=exc.message,
                field=exc.field,
            )
            continue
        if record.external_id in first_of:
            repeats.append((i, first_of[record.external_id]))
            continue
        first_of[record.external_id] = i
        parsed.append((i, record))

    existing = _existing(session, partner_id, [r.external_id for _, r in parsed])
    fresh = []
    for i, record in parsed:
        stored = existing.get(record.external_id)
        if stored is not None:
            results[i] = _stored_result(stored, duplicate=True)
        else:
            fresh.append((i, record))

    bindings = (
        identity_service.bindings_for(session, partner_id, {r.partner_user_id for _, r in fresh})
        if fresh
        else {}
    )
    rulebook = rules_mod.load(session, at=now)
    resolved: dict[tuple[str, date], Any] = {}

    rows: list[dict[str, Any]] = []  # rows to insert, in batch order
    row_index: list[int] = []
    pending: list[_Pending] = []
    for i, record in fresh:
        day = _local_day(record.started_at, zone)
        binding = bindings.get(record.partner_user_id)
        citizen_id = binding.citizen_id if binding is not None else None

        def refuse(
            code: str,
            detail: str,
            *,
            record: Record = record,
            day: date = day,
            citizen_id: int | None = citizen_id,
            methodology: tuple[str, str] | None = None,
            computed_mg: int = 0,
        ) -> None:
            rows.append(
                _row(
                    partner_id,
                    record,
                    citizen_id=citizen_id,
                    day=day,
                    status=REJECTED,
                    code=code,
                    now=now,
                    detail=detail,
                    methodology=methodology,
                    computed_mg=computed_mg,
                )
            )

        if record.scenario not in partner.scenarios or (
            partner.approved_until is not None and day > partner.approved_until
        ):
            refuse("scenario_not_allowed", f"partner is not approved for {record.scenario}")
            row_index.append(i)
            continue
        if binding is None:
            refuse("unbound_user", "partner_user_id is not bound to a citizen")
            row_index.append(i)
            continue
        if record.scenario not in binding.scenarios:
            refuse("scenario_not_consented", f"the citizen has not consented to {record.scenario}")
            row_index.append(i)
            continue
        rules = rulebook.for_scenario(record.scenario)
        refusal = checks.check_window(record, rules, now=now)
        review_reasons: list[str] = []
        if refusal is None:
            refusal, review_reasons = checks.check_plausible(record, rules)
        if refusal is not None:
            refuse(refusal.code, refusal.detail)
            row_index.append(i)
            continue
        compiled = resolved.get((record.scenario, day))
        if compiled is None:
            try:
                compiled = methodology_service.resolve(
                    session, record.scenario, at=record.started_at
                )
            except TanhuiError as exc:
                compiled = exc
            resolved[(record.scenario, day)] = compiled
        if isinstance(compiled, TanhuiError):
            refuse("no_methodology", compiled.message)
            row_index.append(i)
            continue
        methodology = (compiled.id, compiled.version)
        try:
            calc = compiled.calculate(_methodology_inputs(record, compiled), at=record.started_at)
        except TanhuiError as exc:
            code = "invalid_quantity" if exc.code == "invalid_quantity" else "not_eligible"
            refuse(code, exc.message, methodology=methodology)
            row_index.append(i)
            continue
        if not calc.eligible:
            refuse("not_eligible", ", ".join(calc.reasons), methodology=methodology)
            row_index.append(i)
            continue
        pending.append(
            _Pending(
                i,
                record,
                citizen_id,  # type: ignore[arg-type]
                day,
                compiled.id,
                compiled.version,
                calc.reduction_mg,
                compiled.per_day_cap_mg,
                rules.dedupe_overlaps,
                review_reasons,
            )
        )

    # Counts for review scoring include every record of the citizen that day, whatever its outcome.
    arriving: dict[tuple[int, str, date], int] = defaultdict(int)
    for refused in rows:
        if refused["citizen_id"] is not None:
            arriving[(refused["citizen_id"], refused["scenario"], refused["day"])] += 1
    for p in pending:
        arriving[(p.citizen_id, p.record.scenario, p.day)] += 1
    daily = _lock_daily(session, sorted(arriving))
    allocator = Allocator(
        _stored_spans(session, [p for p in pending if p.dedupe]),
        {k: v[0] for k, v in daily.items()},
    )
    seen_today = {k: v[1] for k, v in daily.items()}
    for p in pending:
        rules = rulebook.for_scenario(p.record.scenario)
        today_key = (p.citizen_id, p.record.scenario, p.day)
        seen_today[today_key] = seen_today.get(today_key, 0) + 1
        reasons = list(p.review_reasons)
        if seen_today[today_key] > rules.review_records_per_day:
            reasons.append("many_records_today")
        outcome, credited = allocator.decide(
            citizen_id=p.citizen_id,
            scenario=p.record.scenario,
            day=p.day,
            start=p.record.started_at,
            end=p.record.ended_at,
            amount_mg=p.computed_mg,
            cap_mg=p.cap_mg,
            dedupe=p.dedupe,
            hold_for_review=bool(reasons),
        )
        status = {CREDITED: CREDITED, REVIEW: REVIEW}.get(outcome, REJECTED)
        detail = None
        if outcome == "daily_cap_reached":
            detail = f"daily cap of {p.cap_mg} mg reached for {p.record.scenario}"
        elif outcome == "overlaps_other_record":
            detail = "another record of this citizen covers the same time"
        elif outcome == CREDITED and credited < p.computed_mg:
            detail = f"credited up to the daily cap of {p.cap_mg} mg"
        rows.append(
            _row(
                partner_id,
                p.record,
                citizen_id=p.citizen_id,
                day=p.day,
                status=status,
                code=None if status != REJECTED else outcome,
                now=now,
                methodology=(p.methodology_id, p.version),
                computed_mg=p.computed_mg,
                reduction_mg=credited,
                detail=detail,
                review_reasons=reasons or None,
            )
        )
        row_index.append(p.index)

    # SQLite: ids allocated, the batch credited, then the rows inserted complete (with their transfer
    # id and points). PostgreSQL: the rows inserted first (a concurrent batch may take some external
    # ids), the credit for those this transaction stored, then one bulk update.
    serialised = serialised_writers(session)
    allocated = _allocate_ids(session, rows)
    inserted = allocated if serialised else _insert_new(session, rows, allocated)
    credited_rows: list[tuple[int, dict[str, Any]]] = []
    daily_delta: dict[tuple[int, str, date], list[int]] = defaultdict(lambda: [0, 0])
    for index, row in zip(row_index, rows, strict=True):
        record_id = inserted.get(row["external_id"])
        if record_id is None:
            continue  # a concurrent batch stored it first: answered as a duplicate below
        if row["citizen_id"] is not None:
            delta = daily_delta[(row["citizen_id"], row["scenario"], row["day"])]
            delta[0] += row["reduction_mg"]
            delta[1] += 1
        if row["status"] == CREDITED:
            credited_rows.append((record_id, row))
        results[index] = _result(
            row["external_id"],
            row["status"],
            code=row["code"],
            reduction_mg=row["reduction_mg"],
            record_id=record_id,
            detail=row["detail"],
        )
    if credited_rows:
        transfer_id, points = _credit(
            session,
            [
                (rid, r["citizen_id"], r["reduction_mg"], r["started_at"])
                for rid, r in credited_rows
            ],
            key=f"activity:credit:{partner_id}:{credited_rows[0][0]}",
            meta={"partner_id": partner_id, "records": len(credited_rows)},
        )
        if not serialised:
            execute_many(
                session,
                _SET_CREDIT,
                [
                    {"rid": rid, "tid": transfer_id, "pts": pts}
                    for (rid, _), pts in zip(credited_rows, points, strict=True)
                ],
            )
        else:
            for (_, row), pts in zip(credited_rows, points, strict=True):
                row["transfer_id"], row["points"] = transfer_id, pts
        by_id = {rid: pts for (rid, _), pts in zip(credited_rows, points, strict=True)}
        for result in results:
            if result is not None and result["record_id"] in by_id:
                result["points"] = by_id[result["record_id"]]
    if serialised and rows:
        execute_many(
            session, _INSERT, [{**row, "id": allocated[row["external_id"]]} for row in rows]
        )
    _bump_daily(session, {k: (v[0], v[1]) for k, v in daily_delta.items()})

    repeated = {i for i, _ in repeats}
    missing = [i for i, r in enumerate(results) if r is None and i not in repeated]
    if (
        missing
    ):  # lost the insert race: the concurrent winner's outcome, now committed, is the answer
        ids = [raw_records[i]["external_id"] for i in missing]
        winners = _existing(session, partner_id, ids)
        for i in missing:
            results[i] = _stored_result(winners[raw_records[i]["external_id"]], duplicate=True)
    for i, first in repeats:
        original = results[first]
        assert original is not None
        again = {**original, "status": DUPLICATE, "original_status": original["status"]}
        if original["status"] == DUPLICATE:
            again["original_status"] = original["original_status"]
        results[i] = again
    return [r for r in results if r is not None]


def _existing(
    session: Session, partner_id: int, external_ids: Sequence[str]
) -> dict[str, Row[Any]]:
    found: dict[str, Row[Any]] = {}
    for start in range(0, len(external_ids), _CHUNK):
        chunk = external_ids[start : start + _CHUNK]
        rows = session.execute(
            select(*_OUTCOME_COLUMNS).where(
                _T.c.partner_id == partner_id, _T.c.external_id.in_(chunk)
            )
        ).all()
        found.update({row.external_id: row for row in rows})
    return found


def _lock_daily(
    session: Session, keys: Sequence[tuple[int, str, date]]
) -> dict[tuple[int, str, date], tuple[int, int]]:
    """Running totals of the keys that have a row (absent = 0 so far), locked in key order.

    On PostgreSQL the missing rows are created at zero first so that they too are locked: two
    concurrent batches for one citizen then queue rather than both use the same cap room. SQLite's
    writers are serialised, so there it is one SELECT; `_bump_daily` creates rows as it adds.
    """
    if not keys:
        return {}
    if not serialised_writers(session):
        execute_many(
            session,
            insert_ignore(session, _D, ["citizen_id", "scenario", "day"]),
            [
                {"citizen_id": c, "scenario": s, "day": d, "credited_mg": 0, "records": 0}
                for c, s, d in keys
            ],
        )
    out: dict[tuple[int, str, date], tuple[int, int]] = {}
    for start in range(0, len(keys), _CHUNK):
        chunk = keys[start : start + _CHUNK]
        stmt = (
            select(_D.c.citizen_id, _D.c.scenario, _D.c.day, _D.c.credited_mg, _D.c.records)
            .where(tuple_(_D.c.citizen_id, _D.c.scenario, _D.c.day).in_(chunk))
            .order_by(_D.c.citizen_id, _D.c.scenario, _D.c.day)
        )
        for c, s, d, mg, n in session.execute(for_update(session, stmt)):
            out[(c, s, d)] = (mg, n)
    return out


def _bump_daily(session: Session, deltas: Mapping[tuple[int, str, date], tuple[int, int]]) -> None:
    """Add (mg, records) to the running totals: one INSERT ... ON CONFLICT DO UPDATE for the batch."""
    if not deltas:
        return
    execute_many(
        session,
        upsert_add(session, _D, ["citizen_id", "scenario", "day"], ["credited_mg", "records"]),
        [
            {"citizen_id": c, "scenario": s, "day": d, "credited_mg": mg, "records": n}
            for (c, s, d), (mg, n) in sorted(deltas.items())
        ],
    )


def _stored_spans(session: Session, pending: Sequence[_Pending]) -> SpanIndex:
    """Spans of stored trips (credited or in review) that could overlap the batch's trips."""
    index = SpanIndex()
    if not pending:
        return index
    citizens = sorted({p.citizen_id for p in pending})
    scenarios = sorted({p.record.scenario for p in pending})
    earliest = min(p.record.started_at for p in pending)
    latest = max(p.record.ended_at for p in pending)
    for start in range(0, len(citizens), _CHUNK):
        rows = session.execute(
            select(_T.c.citizen_id, _T.c.scenario, _T.c.started_at, _T.c.ended_at).where(
                _T.c.citizen_id.in_(citizens[start : start + _CHUNK]),
                _T.c.scenario.in_(scenarios),
                _T.c.status.in_((CREDITED, REVIEW)),
                # Bounded on both sides on the (citizen_id, started_at) index: the rows read are the
                # batch's window, not the citizen's whole history (no record spans more than MAX_SPAN).
                _T.c.started_at >= earliest - checks.MAX_SPAN,
                _T.c.started_at <= latest,
                _T.c.ended_at >= earliest,
            )
        )
        for c, s, a, b in rows:
            index.add(c, s, a, b)
    return index


def _allocate_ids(session: Session, rows: Sequence[dict[str, Any]]) -> dict[str, int]:
    """Record ids for the rows, allocated before the insert: external id -> id.

    The one place the two databases differ for records. SQLite serialises writers (BEGIN IMMEDIATE),
    so the batch's earlier `_existing` SELECT is still true at insert time: every row is new and its
    id can follow max(id); the rows are then written complete by a plain executemany (no conflict
    clause, no RETURNING, no later update). On PostgreSQL the ids come from the table's sequence
    (one statement), so `_insert_new` needs no RETURNING either: psycopg re-parses a multi-row
    INSERT ... RETURNING of 13,000 parameters on every batch, which cost more than the insert itself.
    """
    if not rows:
        return {}
    if serialised_writers(session):
        first = int(session.scalar(select(func.coalesce(func.max(_T.c.id), 0))) or 0) + 1
        return {row["external_id"]: first + n for n, row in enumerate(rows)}
    ids = session.scalars(
        text(
            "SELECT nextval(pg_get_serial_sequence('activity_record', 'id')) "
            "FROM generate_series(1, :n)"
        ),
        {"n": len(rows)},
    ).all()
    return {row["external_id"]: int(i) for row, i in zip(rows, ids, strict=True)}


def _insert_new(
    session: Session, rows: Sequence[dict[str, Any]], ids: Mapping[str, int]
) -> dict[str, int]:
    """PostgreSQL: insert what is new (ON CONFLICT DO NOTHING, a concurrent batch may have stored some
    of these external ids); external id -> record id of the rows THIS transaction inserted, known by
    the sequence values it allocated (no other transaction can hold them)."""
    if not rows:
        return {}
    execute_many(
        session,
        insert_ignore(session, _T, ["partner_id", "external_id"]),
        [{**row, "id": ids[row["external_id"]]} for row in rows],
    )
    partner_id = rows[0]["partner_id"]
    externals = [row["external_id"] for row in rows]
    mine: dict[str, int] = {}
    for start in range(0, len(externals), _CHUNK):
        for rid, ext in session.execute(
            select(_T.c.id, _T.c.external_id).where(
                _T.c.partner_id == partner_id,
                _T.c.external_id.in_(externals[start : start + _CHUNK]),
            )
        ):
            if ids.get(ext) == rid:
                mine[ext] = rid
    return mine


def _credit(
    session: Session,
    credits: Sequence[tuple[int, int, int, datetime]],
    *,
    key: str,
    meta: Mapping[str, Any],
) -> tuple[int | None, list[int]]:
    """One CO2E transfer for the records (issuance -> each citizen), then their points.

    credits: (record id, citizen id, reduction mg, earned at). Returns (transfer id, points per record).
    """
    per_citizen: dict[int, int] = defaultdict(int)
    for _, citizen_id, mg, _ in credits:
        per_citizen[citizen_id] += mg
    per_citizen = {c: mg for c, mg in per_citizen.items() if mg}
    transfer_id = None
    if per_citizen:
        accounts = ledger_service.open_accounts(
            session, owner_type=CITIZEN, owner_ids=per_citizen, asset=ledger_service.CO2E_MG
        )
        issuance = ledger_service.platform_account(session, ledger_service.CO2E_MG, ISSUANCE)
        postings = [(issuance.id, -sum(per_citizen.values()))]
        postings += [(accounts[str(c)], mg) for c, mg in sorted(per_citizen.items())]
        record = ledger_service.transfer(
            session, idempotency_key=key, kind="activity.credit", postings=postings, metadata=meta
        )
        transfer_id = record.id
    awards = [
        (
            n,
            incentives_service.Award(
                citizen_id=c,
                reduction_mg=mg,
                earned_at=at,
                source=f"activity:{rid}",
                idempotency_key=f"activity:{rid}",
            ),
        )
        for n, (rid, c, mg, at) in enumerate(credits)
        if mg > 0
    ]
    points = [0] * len(credits)
    if awards:
        awarded = incentives_service.award_points(session, [a for _, a in awards])
        for (n, _), pts in zip(awards, awarded, strict=True):
            points[n] = pts
    return transfer_id, points


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
    _bump_daily(session, {(citizen_id, scenario, day): (mg, 0)})


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


def review_queue(
    session: Session, actor: Principal, *, limit: int = 50, before_id: int | None = None
) -> list[dict[str, Any]]:
    """Records held for review, oldest first. Reading them is a staff read of personal data."""
    stmt = select(ActivityRecord).where(ActivityRecord.status == REVIEW)
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
    daily = _lock_daily(session, [(record.citizen_id, record.scenario, record.day)])
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
        transfer_id, points = _credit(
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


def staff_records(
    session: Session,
    actor: Principal,
    citizen_id: int,
    *,
    limit: int = 50,
    before_id: int | None = None,
) -> list[dict[str, Any]]:
    """A citizen's records as staff see them (support, fraud investigation); the read is logged."""
    identity_service.log_access(
        session, citizen_id=citizen_id, actor=actor, what="activity records", why="staff lookup"
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
    scenarios = sorted(set(rules_mod.DEFAULTS) | set(book._overrides))
    return {s: book.for_scenario(s).params for s in scenarios}


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
        "timezone": get_settings().timezone,
    }


def citizen_records(
    session: Session, citizen_id: int, *, limit: int = 50, before_id: int | None = None
) -> list[dict[str, Any]]:
    """The citizen's records, newest first (keyset pagination by id)."""
    stmt = select(ActivityRecord).where(ActivityRecord.citizen_id == citizen_id)
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
        inputs = _methodology_inputs(
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
    for start in range(0, len(ids), _CHUNK):
        result = session.execute(
            update(_T)
            .where(
                _T.c.id.in_(ids[start : start + _CHUNK]),
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

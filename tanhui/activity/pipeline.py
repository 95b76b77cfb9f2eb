"""The ingestion pipeline: a partner's batch judged and credited, in two phases.

`prepare` does what needs no write lock: each record parsed, checked against the rules in force
(time window, plausibility) and computed under its methodology. `commit` does the rest inside the
writer's transaction with a fixed number of queries, whatever the batch's size: existing external
ids, bindings and consent, daily totals and span bounds (locked), stored overlapping spans for the
trips those bounds cannot clear;
then the record insert, one CO2E ledger transfer, one points award call (itself one POINT
transfer), one upsert of the daily totals. `ingest` runs both in one session.

The split is what lets SQLite serve partners from several processes: the signed batch endpoint
prepares in a read transaction, which any number of processes run at once, and only `commit`
queues for SQLite's single writer. The rules and methodology read by `prepare` are effective-dated
configuration; bindings and consent, which a citizen may revoke at any moment, are read in `commit`.

Every function flushes and never commits: the HTTP request (or CLI command) that calls it owns the
transaction, so a batch is credited entirely or not at all.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from functools import lru_cache
from typing import Any, NamedTuple

from sqlalchemy import (
    BigInteger,
    Select,
    Table,
    Text,
    bindparam,
    func,
    insert,
    select,
    text,
    update,
)
from sqlalchemy.orm import Session

from tanhui.activity import checks
from tanhui.activity import rules as rules_mod
from tanhui.activity.checks import Allocator, Record, RecordError, SpanIndex
from tanhui.activity.models import ActivityDaily, ActivityRecord
from tanhui.identity import service as identity_service
from tanhui.identity.principal import PartnerPrincipal
from tanhui.incentives import service as incentives_service
from tanhui.kit.bulk import execute_many, fetch_all
from tanhui.kit.db import generic_plans_for_writes, utcnow, yield_to_writer
from tanhui.kit.dialect import (
    in_list,
    in_values,
    insert_ignore,
    postgres,
    rows_from,
    rows_params,
    rows_table,
    serialised_writers,
    upsert_add,
)
from tanhui.kit.errors import InvalidInput, TanhuiError
from tanhui.kit.settings import get_settings
from tanhui.ledger import service as ledger_service
from tanhui.methodology import service as methodology_service

MAX_BATCH = 1000
CHUNK = 500
CREDITED, REJECTED, REVIEW, REVERSED, DUPLICATE = (
    "credited",
    "rejected",
    "review",
    "reversed",
    "duplicate",
)
CITIZEN_STATUSES = (CREDITED, REVIEW, REJECTED, REVERSED)  # what a stored record can be
_HOLDS_SPAN = frozenset({CREDITED, REVIEW})  # statuses whose trips block overlapping ones
ISSUANCE = "issuance"
CITIZEN = "citizen"
_NOT_ALLOWED = "scenario_not_allowed"

_T: Table = ActivityRecord.__table__  # type: ignore[assignment]
_D: Table = ActivityDaily.__table__  # type: ignore[assignment]
_MAX_ID = select(func.max(_T.c.id))
_ENCODED = ("quantities", "evidence", "review_reasons")  # JSON columns, see `_Encoders`
_INSERT_ENCODED = insert(_T).values({name: bindparam(name, type_=Text()) for name in _ENCODED})


# --- results ----------------------------------------------------------------------------------------


def result(
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


class Outcome(NamedTuple):
    """A stored record's outcome (`_OUTCOME_COLUMNS`, in order)."""

    id: int
    external_id: str
    status: str
    code: str | None
    reduction_mg: int
    points: int
    detail: str | None


def stored_result(row: Outcome, *, duplicate: bool = False) -> dict[str, Any]:
    out = result(
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
    days: tuple[date, ...]  # the platform-zone days the trip touches, its start day first
    arrived: dict[str, Any]  # the insert row's fields the record gives (`_arrived`)


def _local_day(at: datetime, zone: Any) -> date:
    return at.astimezone(zone).date()


def _touched_days(record: Record, zone: Any) -> tuple[date, ...]:
    first, last = _local_day(record.started_at, zone), _local_day(record.ended_at, zone)
    if first == last:
        return (first,)
    return tuple(first + timedelta(days=n) for n in range((last - first).days + 1))


def _arrived(
    partner_id: int, record: Record, day: date, now: datetime, encode: _Encoders
) -> dict[str, Any]:
    """The insert row's fields that the record itself gives: built by `prepare`, outside the
    writer's hold, JSON columns already in their stored form on SQLite (see `_encoders`)."""
    return {
        "partner_id": partner_id,
        "external_id": record.external_id,
        "partner_user_id": record.partner_user_id,
        "scenario": record.scenario,
        "started_at": record.started_at,
        "ended_at": record.ended_at,
        "day": day,
        "quantities": encode.quantities({k: str(v) for k, v in record.quantities.items()}),
        "evidence": encode.evidence(record.evidence),
        "points": 0,
        "transfer_id": None,
        "reversal_transfer_id": None,
        "received_at": now,
        "decided_by": None,
        "issued_ref": None,
    }


def _decided(
    arrived: dict[str, Any],
    encode: _Encoders,
    *,
    citizen_id: int | None,
    status: str,
    code: str | None,
    now: datetime,
    methodology: tuple[str, str] | None = None,
    computed_mg: int = 0,
    reduction_mg: int = 0,
    detail: str | None = None,
    review_reasons: list[str] | None = None,
) -> dict[str, Any]:
    """The complete insert row: `_arrived`'s fields and what `commit` decided."""
    return {
        **arrived,
        "citizen_id": citizen_id,
        "methodology_id": methodology[0] if methodology else None,
        "methodology_version": methodology[1] if methodology else None,
        "computed_mg": computed_mg,
        "reduction_mg": reduction_mg,
        "status": status,
        "code": code,
        "detail": detail[:300] if detail else None,
        "review_reasons": encode.review_reasons(review_reasons) if review_reasons else None,
        "decided_at": now if status != REVIEW else None,
    }


class _Encoders(NamedTuple):
    """How the record row's JSON columns go into the insert: their stored text on SQLite, where
    `commit` inserts with `_INSERT_ENCODED` (whose JSON columns take text as it is), or the
    values themselves on PostgreSQL, whose insert converts them."""

    quantities: Callable[[Any], Any]
    evidence: Callable[[Any], Any]
    review_reasons: Callable[[Any], Any]


def _encoders(session: Session) -> _Encoders:
    if not serialised_writers(session):
        return _Encoders(_same, _same, _same)
    dialect = session.get_bind().dialect
    processors = []
    for name in _ENCODED:
        process = _T.c[name].type.dialect_impl(dialect).bind_processor(dialect)
        processors.append(process or _same)
    return _Encoders(*processors)


def _same(value: Any) -> Any:
    return value


def methodology_inputs(record: Record, compiled: Any) -> dict[str, object]:
    inputs: dict[str, object] = dict(record.quantities)
    # A trip record is one ride unless it says otherwise: per-ride methodologies (Wuhan bus) declare
    # a `count` input that distance-reporting partners do not send.
    if "count" in compiled.inputs and "count" not in inputs:
        inputs["count"] = 1
    return inputs


@dataclass(slots=True)
class _Judged:
    """A parsed record after the checks that need no write lock: a refusal, or its calculation."""

    index: int
    record: Record
    day: date
    days: tuple[date, ...]  # every platform-zone day the trip touches (`day` first)
    arrived: dict[str, Any]  # the insert row's fields the record gives (`_arrived`)
    refusal: tuple[str, str] | None = None  # (code, detail)
    methodology: tuple[str, str] | None = None  # (id, version)
    computed_mg: int = 0
    cap_mg: int | None = None
    dedupe: bool = True
    review_reasons: list[str] = field(default_factory=list)


@dataclass(slots=True)
class Prepared:
    """A batch after `prepare`: what `commit` needs, nothing read that a citizen can change."""

    partner: PartnerPrincipal
    raw_records: Sequence[Any]
    now: datetime
    rulebook: rules_mod.RuleBook
    results: list[dict[str, Any] | None]
    judged: list[_Judged]
    encode: _Encoders
    repeats: list[tuple[int, int]]  # (index, index of the external id's first occurrence)


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
    return commit(session, prepare(session, partner, raw_records, now=now))


def prepare(
    session: Session,
    partner: PartnerPrincipal,
    raw_records: Sequence[Any],
    *,
    now: datetime | None = None,
) -> Prepared:
    """Parse, check and compute every record; reads rules and methodologies only (no writes)."""
    if not 1 <= len(raw_records) <= MAX_BATCH:
        raise InvalidInput(f"a batch holds 1 to {MAX_BATCH} records", field="records")
    now = now or utcnow()
    zone = get_settings().zone
    results: list[dict[str, Any] | None] = [None] * len(raw_records)
    rulebook = rules_mod.load(session, at=now)
    resolve = methodology_service.resolver(session)
    resolved: dict[tuple[str, date], Any] = {}
    judged: list[_Judged] = []
    first_of: dict[str, int] = {}  # external id -> index of its first occurrence in the batch
    repeats: list[tuple[int, int]] = []
    encode = _encoders(session)
    for i, raw in enumerate(raw_records):
        if i % 25 == 0:  # about half a millisecond of work
            yield_to_writer()
        try:
            record = checks.parse_record(raw)
        except RecordError as exc:
            ext = raw.get("external_id") if isinstance(raw, dict) else None
            results[i] = result(
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
        days = _touched_days(record, zone)
        day = days[0]
        judgement = _Judged(
            i, record, day, days, _arrived(partner.partner_id, record, day, now, encode)
        )
        judged.append(judgement)
        if record.scenario not in partner.scenarios or (
            partner.approved_until is not None and day > partner.approved_until
        ):
            # `commit` puts this refusal first, before the binding checks it alone can make.
            judgement.refusal = (_NOT_ALLOWED, f"partner is not approved for {record.scenario}")
            continue
        rules = rulebook.for_scenario(record.scenario)
        refusal = checks.check_window(record, rules, now=now)
        if refusal is None:
            refusal, judgement.review_reasons = checks.check_plausible(record, rules)
        if refusal is not None:
            judgement.refusal = (refusal.code, refusal.detail)
            continue
        compiled = resolved.get((record.scenario, day))
        if compiled is None:
            try:
                compiled = resolve(record.scenario, record.started_at)
            except TanhuiError as exc:
                compiled = exc
            resolved[(record.scenario, day)] = compiled
        if isinstance(compiled, TanhuiError):
            judgement.refusal = ("no_methodology", compiled.message)
            continue
        judgement.methodology = (compiled.id, compiled.version)
        try:
            calc = compiled.calculate(methodology_inputs(record, compiled), at=record.started_at)
        except TanhuiError as exc:
            code = "invalid_quantity" if exc.code == "invalid_quantity" else "not_eligible"
            judgement.refusal = (code, exc.message)
            continue
        if not calc.eligible:
            judgement.refusal = ("not_eligible", ", ".join(calc.reasons))
            continue
        judgement.computed_mg = calc.reduction_mg
        judgement.cap_mg = compiled.per_day_cap_mg
        judgement.dedupe = rules.dedupe_overlaps
    return Prepared(partner, raw_records, now, rulebook, results, judged, encode, repeats)


def commit(session: Session, prepared: Prepared) -> list[dict[str, Any]]:
    """Decide and credit a prepared batch in the writer's transaction; one result per record."""
    partner, now, rulebook, encode = (
        prepared.partner,
        prepared.now,
        prepared.rulebook,
        prepared.encode,
    )
    partner_id = partner.partner_id
    results = list(prepared.results)
    existing = existing_outcomes(
        session, partner_id, [j.record.external_id for j in prepared.judged]
    )
    fresh = []
    for judgement in prepared.judged:
        stored = existing.get(judgement.record.external_id)
        if stored is not None:
            results[judgement.index] = stored_result(stored, duplicate=True)
        else:
            fresh.append(judgement)

    bindings = (
        identity_service.bindings_for(
            session, partner_id, {j.record.partner_user_id for j in fresh}
        )
        if fresh
        else {}
    )
    rows: list[dict[str, Any]] = []  # rows to insert, in batch order
    row_index: list[int] = []
    pending: list[_Pending] = []
    for j in fresh:
        record = j.record
        binding = bindings.get(record.partner_user_id)
        citizen_id = binding.citizen_id if binding is not None else None
        refusal = j.refusal  # the partner's approval, the window, plausibility, methodology
        if refusal is None or refusal[0] != _NOT_ALLOWED:
            if binding is None:
                refusal = ("unbound_user", "partner_user_id is not bound to a citizen")
            elif record.scenario not in binding.scenarios:
                refusal = (
                    "scenario_not_consented",
                    f"the citizen has not consented to {record.scenario}",
                )
        if refusal is not None:
            code, why = refusal
            rows.append(
                _decided(
                    j.arrived,
                    encode,
                    citizen_id=citizen_id,
                    status=REJECTED,
                    code=code,
                    now=now,
                    detail=why,
                    # Only a refusal made under the methodology names it (as before the split).
                    methodology=j.methodology if refusal is j.refusal else None,
                )
            )
            row_index.append(j.index)
            continue
        # No refusal: the record is bound, and `prepare` computed it under a methodology.
        assert citizen_id is not None and j.methodology is not None
        pending.append(
            _Pending(
                j.index,
                record,
                citizen_id,
                j.day,
                j.methodology[0],
                j.methodology[1],
                j.computed_mg,
                j.cap_mg,
                j.dedupe,
                j.review_reasons,
                j.days,
                j.arrived,
            )
        )

    # Counts for review scoring include every record of the citizen that day, whatever its outcome.
    arriving: dict[tuple[int, str, date], int] = defaultdict(int)
    for refused in rows:
        if refused["citizen_id"] is not None:
            arriving[(refused["citizen_id"], refused["scenario"], refused["day"])] += 1
    for p in pending:
        arriving[(p.citizen_id, p.record.scenario, p.day)] += 1
    # A trip crossing midnight also reads (and on PostgreSQL locks) its later days' rows, for
    # their span bounds: two overlapping trips then always share a locked row.
    crossing = {(p.citizen_id, p.record.scenario, d) for p in pending for d in p.days[1:]}
    daily = lock_daily(session, sorted(arriving.keys() | crossing))
    allocator = Allocator(
        _stored_spans(session, [p for p in pending if p.dedupe and _may_overlap(p, daily)]),
        {k: v.credited_mg for k, v in daily.items()},
    )
    seen_today = {k: v.records for k, v in daily.items()}
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
            _decided(
                p.arrived,
                encode,
                citizen_id=p.citizen_id,
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
    spans: dict[tuple[int, str, date], tuple[datetime, datetime]] = {}
    days_of = {p.index: p.days for p in pending}
    for index, row in zip(row_index, rows, strict=True):
        record_id = inserted.get(row["external_id"])
        if record_id is None:
            continue  # a concurrent batch stored it first: answered as a duplicate below
        if row["citizen_id"] is not None:
            delta = daily_delta[(row["citizen_id"], row["scenario"], row["day"])]
            delta[0] += row["reduction_mg"]
            delta[1] += 1
        if row["status"] in _HOLDS_SPAN:
            for day in days_of[index]:
                _widen(spans, (row["citizen_id"], row["scenario"], day), row)
        if row["status"] == CREDITED:
            credited_rows.append((record_id, row))
        results[index] = result(
            row["external_id"],
            row["status"],
            code=row["code"],
            reduction_mg=row["reduction_mg"],
            record_id=record_id,
            detail=row["detail"],
        )
    if credited_rows:
        transfer_id, points = credit_records(
            session,
            [
                (rid, r["citizen_id"], r["reduction_mg"], r["started_at"])
                for rid, r in credited_rows
            ],
            key=f"activity:credit:{partner_id}:{credited_rows[0][0]}",
            meta={"partner_id": partner_id, "records": len(credited_rows)},
        )
        if not serialised:
            # Stored already (to win or lose the insert race): one UPDATE joined to the points,
            # not one per record (PostgreSQL runs an executemany statement by statement).
            awarded = rows_table(
                session,
                [("rid", BigInteger()), ("pts", BigInteger())],
                [(rid, pts) for (rid, _), pts in zip(credited_rows, points, strict=True)],
            )
            # Each row's transfer id is checked against its table.
            with generic_plans_for_writes(session, rows=len(credited_rows)):
                session.execute(
                    update(_T)
                    .where(_T.c.id == awarded.c.rid)
                    .values(transfer_id=transfer_id, points=awarded.c.pts)
                )
        else:
            for (_, row), pts in zip(credited_rows, points, strict=True):
                row["transfer_id"], row["points"] = transfer_id, pts
        by_id = {rid: pts for (rid, _), pts in zip(credited_rows, points, strict=True)}
        for answer in results:
            if answer is not None and answer["record_id"] in by_id:
                answer["points"] = by_id[answer["record_id"]]
    if serialised and rows:
        for row in rows:
            row["id"] = allocated[row["external_id"]]
        execute_many(session, _INSERT_ENCODED, rows)
    bump_daily(session, {k: (v[0], v[1]) for k, v in daily_delta.items()}, spans)

    raw_records, repeats = prepared.raw_records, prepared.repeats
    repeated = {i for i, _ in repeats}
    missing = [i for i, r in enumerate(results) if r is None and i not in repeated]
    if (
        missing
    ):  # lost the insert race: the concurrent winner's outcome, now committed, is the answer
        ids = [raw_records[i]["external_id"] for i in missing]
        winners = existing_outcomes(session, partner_id, ids)
        for i in missing:
            results[i] = stored_result(winners[raw_records[i]["external_id"]], duplicate=True)
    for i, first in repeats:
        original = results[first]
        assert original is not None
        again = {**original, "status": DUPLICATE, "original_status": original["status"]}
        if original["status"] == DUPLICATE:
            again["original_status"] = original["original_status"]
        results[i] = again
    return [r for r in results if r is not None]


def existing_outcomes(
    session: Session, partner_id: int, external_ids: Sequence[str]
) -> dict[str, Outcome]:
    found: dict[str, Outcome] = {}
    stmt = _outcomes_stmt(postgres(session))
    for start in range(0, len(external_ids), CHUNK):
        chunk = external_ids[start : start + CHUNK]
        for row in fetch_all(session, stmt, {"partner_id": partner_id, "external_ids": chunk}):
            outcome = Outcome(*row)
            found[outcome.external_id] = outcome
    return found


@lru_cache(maxsize=2)
def _outcomes_stmt(on_postgres: bool) -> Select[Any]:
    return select(*_OUTCOME_COLUMNS).where(
        _T.c.partner_id == bindparam("partner_id"),
        in_list(on_postgres, _T.c.external_id, "external_ids"),
    )


class Daily(NamedTuple):
    """A citizen's day in one scenario so far (an `activity_daily` row)."""

    credited_mg: int
    records: int
    first_started_at: datetime | None
    last_ended_at: datetime | None


def lock_daily(
    session: Session, keys: Sequence[tuple[int, str, date]]
) -> dict[tuple[int, str, date], Daily]:
    """Running totals and span bounds of the keys that have a row (absent = none so far), locked
    in key order.

    On PostgreSQL the missing rows are created at zero first so that they too are locked: two
    concurrent batches for one citizen then queue rather than both use the same cap room. SQLite's
    writers are serialised, so there it is a plain read; `bump_daily` creates rows as it adds.
    Either way the keys are one joined parameter, each probing the (citizen, scenario, day) key.
    """
    if not keys:
        return {}
    serialised = serialised_writers(session)
    if not serialised:
        execute_many(
            session,
            insert_ignore(session, _D, ["citizen_id", "scenario", "day"]),
            [
                {"citizen_id": c, "scenario": s, "day": d, "credited_mg": 0, "records": 0}
                for c, s, d in keys
            ],
        )
    out: dict[tuple[int, str, date], Daily] = {}
    stmt = _daily_stmt(not serialised)
    for start in range(0, len(keys), CHUNK):
        keyed = rows_params(session, _DAILY_PROBE, keys[start : start + CHUNK], "keys")
        for c, s, d, mg, n, first, last in fetch_all(session, stmt, keyed):
            out[(c, s, d)] = Daily(mg, n, first, last)
    return out


@lru_cache(maxsize=2)
def _daily_stmt(on_postgres: bool) -> Select[Any]:
    probe = rows_from(on_postgres, _DAILY_PROBE, "keys")
    stmt = (
        select(
            _D.c.citizen_id,
            _D.c.scenario,
            _D.c.day,
            _D.c.credited_mg,
            _D.c.records,
            _D.c.first_started_at,
            _D.c.last_ended_at,
        )
        .select_from(probe)
        .join(
            _D,
            (_D.c.citizen_id == probe.c.citizen_id)
            & (_D.c.scenario == probe.c.scenario)
            & (_D.c.day == probe.c.day),
        )
    )
    if on_postgres:
        stmt = stmt.order_by(_D.c.citizen_id, _D.c.scenario, _D.c.day).with_for_update(of=_D)
    return stmt


_DAILY_PROBE = (
    ("citizen_id", _D.c.citizen_id.type),
    ("scenario", _D.c.scenario.type),
    ("day", _D.c.day.type),
)


def bump_daily(
    session: Session,
    deltas: Mapping[tuple[int, str, date], tuple[int, int]],
    spans: Mapping[tuple[int, str, date], tuple[datetime, datetime]] | None = None,
) -> None:
    """Add (mg, records) to the running totals and widen the days' span bounds to take in `spans`
    ((first start, last end) per key): one INSERT ... ON CONFLICT DO UPDATE for the batch."""
    spans = spans or {}
    rows = []
    for key in sorted(deltas.keys() | spans.keys()):
        mg, n = deltas.get(key, (0, 0))
        first, last = spans.get(key, (None, None))
        rows.append(
            {
                "citizen_id": key[0],
                "scenario": key[1],
                "day": key[2],
                "credited_mg": mg,
                "records": n,
                "first_started_at": first,
                "last_ended_at": last,
            }
        )
    if not rows:
        return
    execute_many(
        session,
        upsert_add(
            session,
            _D,
            ["citizen_id", "scenario", "day"],
            ["credited_mg", "records"],
            lowest=["first_started_at"],
            highest=["last_ended_at"],
        ),
        rows,
    )


def _widen(
    spans: dict[tuple[int, str, date], tuple[datetime, datetime]],
    key: tuple[int, str, date],
    row: Mapping[str, Any],
) -> None:
    start, end = row["started_at"], row["ended_at"]
    known = spans.get(key)
    spans[key] = (start, end) if known is None else (min(known[0], start), max(known[1], end))


def _may_overlap(pending: _Pending, daily: Mapping[tuple[int, str, date], Daily]) -> bool:
    """Whether a stored trip may overlap this one: some day it touches has bounds its span meets.

    Two overlapping trips share an instant, on a day both touch, and that day's bounds take in
    the stored one: so a trip that meets no touched day's bounds overlaps nothing stored."""
    start, end = pending.record.started_at, pending.record.ended_at
    for day in pending.days:
        known = daily.get((pending.citizen_id, pending.record.scenario, day))
        if (
            known is not None
            and known.first_started_at is not None
            and known.last_ended_at is not None
            and known.first_started_at <= end
            and known.last_ended_at >= start
        ):
            return True
    return False


def _stored_spans(session: Session, pending: Sequence[_Pending]) -> SpanIndex:
    """Stored trips (credited or in review) whose span touches one of the given trips.

    `commit` passes only the trips `_may_overlap` cannot clear by their days' span bounds. One
    probe per trip, joined on the (citizen_id, started_at) index: a stored trip starts at
    most MAX_SPAN before the probe's start and no later than its end, and ends no earlier than its
    start. That is a superset of the stored trips that overlap (`checks.overlaps` decides exactly),
    and it reads the few rows that matter instead of every trip of the batch's citizens that day.
    """
    index = SpanIndex()
    if not pending:
        return index
    for start in range(0, len(pending), CHUNK):
        probe = rows_table(
            session,
            _SPAN_PROBE,
            [
                (
                    p.citizen_id,
                    p.record.scenario,
                    p.record.started_at - checks.MAX_SPAN,
                    p.record.started_at,
                    p.record.ended_at,
                )
                for p in pending[start : start + CHUNK]
            ],
        )
        rows = session.execute(
            select(_T.c.citizen_id, _T.c.scenario, _T.c.started_at, _T.c.ended_at)
            .distinct()
            .select_from(probe)
            .join(
                _T,
                (_T.c.citizen_id == probe.c.citizen_id)
                & (_T.c.started_at >= probe.c.earliest)
                & (_T.c.started_at <= probe.c.ended_at)
                & (_T.c.ended_at >= probe.c.started_at)
                & (_T.c.scenario == probe.c.scenario),
            )
            .where(_T.c.status.in_((CREDITED, REVIEW)))
        ).all()
        for c, s, a, b in rows:
            index.add(c, s, a, b)
    return index


_SPAN_PROBE = (
    ("citizen_id", _T.c.citizen_id.type),
    ("scenario", _T.c.scenario.type),
    ("earliest", _T.c.started_at.type),
    ("started_at", _T.c.started_at.type),
    ("ended_at", _T.c.ended_at.type),
)


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
        first = int(fetch_all(session, _MAX_ID, {})[0][0] or 0) + 1
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
    for start in range(0, len(externals), CHUNK):
        for rid, ext in session.execute(
            select(_T.c.id, _T.c.external_id).where(
                _T.c.partner_id == partner_id,
                in_values(session, _T.c.external_id, externals[start : start + CHUNK]),
            )
        ):
            if ids.get(ext) == rid:
                mine[ext] = rid
    return mine


def credit_records(
    session: Session,
    credits: Sequence[tuple[int, int, int, datetime]],
    *,
    key: str,
    meta: Mapping[str, Any],
) -> tuple[int | None, list[int]]:
    """ONE ledger transfer for the records: their CO2E (issuance -> each citizen) and the points
    they earn (incentives adds its POINT postings to the same transfer).

    credits: (record id, citizen id, reduction mg, earned at). Returns (transfer id, points per record).
    """
    per_citizen: dict[int, int] = defaultdict(int)
    for _, citizen_id, mg, _ in credits:
        per_citizen[citizen_id] += mg
    per_citizen = {c: mg for c, mg in per_citizen.items() if mg}
    postings: list[tuple[int, int]] = []
    if per_citizen:
        accounts = ledger_service.open_accounts(
            session, owner_type=CITIZEN, owner_ids=per_citizen, asset=ledger_service.CO2E_MG
        )
        issuance = ledger_service.platform_account_id(session, ledger_service.CO2E_MG, ISSUANCE)
        postings = [(issuance, -sum(per_citizen.values()))]
        postings += [(accounts[str(c)], mg) for c, mg in sorted(per_citizen.items())]
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
    transfer_id, awarded = incentives_service.award_points_with(
        session,
        [a for _, a in awards],
        incentives_service.Companion(key, "activity.credit", postings, meta),
        # A record is credited once, by the transaction that inserts it or takes it out of review.
        new_keys=True,
    )
    points = [0] * len(credits)
    for (n, _), pts in zip(awards, awarded, strict=True):
        points[n] = pts
    return transfer_id, points

"""Activity tables: partner behaviour records, their outcome, daily running totals and operator rules.

Design
- One row per record a partner pushed (`activity_record`), whatever its outcome: credited, rejected,
  held for review, reversed. `(partner_id, external_id)` is unique, so the same batch sent twice, or
  by two processes at once, stores and credits each record once; the records found stored already are
  duplicates and the caller gets their stored outcome. How the insert guarantees it differs by
  database, in one place (`pipeline._allocate_ids`): SQLite serialises writers (BEGIN IMMEDIATE), so
  the batch's one `SELECT ... IN` of its external ids stays true until commit, ids follow max(id), and
  the rows are written complete (transfer id and points included) by a plain executemany after the
  batch is credited. PostgreSQL takes the ids from the sequence (one statement), inserts with
  `ON CONFLICT DO NOTHING` and learns which rows it stored by those ids (a concurrent batch cannot
  hold them); the rest are duplicates, and the credited rows get their transfer id and points by one
  bulk update. Records refused as malformed (`invalid_record`) are not stored: nothing in them can be
  trusted, and the partner may fix and resend them under the same external id.
- The record keeps the methodology id, version and inputs, not the calculation trace: methodology
  versions are immutable, so `record_detail` recomputes the trace on demand from (id, version, inputs,
  started_at). `computed_mg` is what the methodology gave; `reduction_mg` what was credited after the
  daily cap (equal unless the cap cut it).
- Crediting: each ingested batch is credited by ONE balanced ledger transfer (kind `activity.credit`):
  from the platform's CO2E_MG issuance account, one posting per citizen (the sum of that citizen's
  credited records in the batch), and in the same transfer the points those records earn, from the
  POINT issuance account, again one posting per citizen. Every credited record keeps that transfer's
  id (and so its trust-log leaf); a record approved by a reviewer gets its own transfer. One transfer
  per batch rather than per record keeps ingestion at thousands of records a second (the journal,
  the balance updates and the trust log grow per batch, not per record). A partner reversal is its
  own transfer for the record's amount, citizen -> issuance, with the idempotency key
  `activity:reversal:<record id>`.
- Points: one `incentives_service.award_points_with` Award per credited record (source
  `activity:<id>`), all in one call per batch, with the batch's CO2E postings as its companion:
  incentives adds its POINT postings to that one transfer and keeps each award's points in its award
  row, so a reversal can revoke exactly what that record earned (as a new transfer). A batch
  therefore writes one ledger transfer, and one trust-log leaf, whatever its size.
- Overlaps: stored trips are read only for the batch's trips that the daily span bounds (below)
  cannot clear, and only in each one's window, `started_at` between (its start - MAX_SPAN) and its
  end, on the (citizen_id, started_at) index, so the read does not grow with a citizen's history.
  That bound is why a record may span at most 24 hours (`checks.MAX_SPAN`; longer ones are refused
  `invalid_duration`).
- `activity_daily` holds running totals per (citizen, scenario, platform-time-zone day): the daily cap
  reads them (one query per batch) and, on PostgreSQL, the batch creates and locks the rows it will
  change in key order before deciding, so two concurrent batches for one citizen cannot both use the
  same cap room; the batch's totals are then added by one `INSERT ... ON CONFLICT DO UPDATE SET
  credited_mg = credited_mg + excluded.credited_mg` (`kit.dialect.upsert_add`).
- The same rows keep the bounds (`first_started_at`, `last_ended_at`) of the span-holding trips
  (credited or in review) that touch their day, a trip crossing midnight widening both days' rows.
  Trips arrive mostly in time order, so a new trip usually starts after the day's last one ended:
  it then needs no overlap probe at all, and `_stored_spans` reads only for the trips whose touched
  days' bounds reach them. The rows the batch reads for its caps are the rows that hold the bounds
  (a crossing trip adds its second day, which on PostgreSQL it also locks: two overlapping trips
  then always share a locked row), so this costs no extra query. Days are platform-zone days
  and the zone is a deployment constant: changing it under stored data would shift caps and bounds
  alike.
- `activity_rule` holds operator-changeable checks per scenario (`*` = all scenarios) as JSON params with
  an `effective_from`; the newest row in force is merged over the defaults shipped in `rules.py`.
- `issued_ref` marks records whose reduction the registry aggregated into issued credits (set once by a
  conditional update); an issued record can no longer be reversed.
"""

from __future__ import annotations

from datetime import date, datetime
from typing import Any

from sqlalchemy import (
    JSON,
    BigInteger,
    Date,
    Index,
    Integer,
    String,
    UniqueConstraint,
)
from sqlalchemy.orm import Mapped, mapped_column

from tanhui.kit.db import Base, BigIntPK, UTCDateTime, utcnow

STATUSES = ("credited", "rejected", "review", "reversed")


class ActivityRecord(Base):
    __tablename__ = "activity_record"
    __table_args__ = (
        UniqueConstraint("partner_id", "external_id"),
        Index("ix_activity_record_citizen_started", "citizen_id", "started_at"),
        Index("ix_activity_record_partner_day", "partner_id", "day"),
        Index("ix_activity_record_status", "status"),
    )

    id: Mapped[int] = mapped_column(BigIntPK, primary_key=True)
    partner_id: Mapped[int] = mapped_column(BigInteger)
    external_id: Mapped[str] = mapped_column(String(128))
    partner_user_id: Mapped[str] = mapped_column(String(128))
    citizen_id: Mapped[int | None] = mapped_column(BigInteger)
    scenario: Mapped[str] = mapped_column(String(64))
    started_at: Mapped[datetime] = mapped_column(UTCDateTime)
    ended_at: Mapped[datetime] = mapped_column(UTCDateTime)
    day: Mapped[date] = mapped_column(Date)  # started_at's day in the platform time zone
    quantities: Mapped[dict[str, Any]] = mapped_column(JSON)  # values as decimal strings
    # none_as_null: a record without evidence or review reasons stores SQL NULL, not the JSON text
    # 'null' (rows written before read back the same: None).
    evidence: Mapped[dict[str, Any] | None] = mapped_column(JSON(none_as_null=True))
    methodology_id: Mapped[str | None] = mapped_column(String(64))
    methodology_version: Mapped[str | None] = mapped_column(String(32))
    computed_mg: Mapped[int] = mapped_column(BigInteger, default=0)
    reduction_mg: Mapped[int] = mapped_column(BigInteger, default=0)
    points: Mapped[int] = mapped_column(BigInteger, default=0)
    status: Mapped[str] = mapped_column(String(16))
    code: Mapped[str | None] = mapped_column(String(64))
    detail: Mapped[str | None] = mapped_column(String(300))
    review_reasons: Mapped[list[str] | None] = mapped_column(JSON(none_as_null=True))
    transfer_id: Mapped[int | None] = mapped_column(BigInteger)
    reversal_transfer_id: Mapped[int | None] = mapped_column(BigInteger)
    received_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    decided_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    decided_by: Mapped[str | None] = mapped_column(String(64))  # "staff:<id>" / "partner:<id>"
    issued_ref: Mapped[str | None] = mapped_column(String(128))


class ActivityDaily(Base):
    __tablename__ = "activity_daily"

    citizen_id: Mapped[int] = mapped_column(BigInteger, primary_key=True)
    scenario: Mapped[str] = mapped_column(String(64), primary_key=True)
    day: Mapped[date] = mapped_column(Date, primary_key=True)
    credited_mg: Mapped[int] = mapped_column(BigInteger, default=0)
    records: Mapped[int] = mapped_column(Integer, default=0)  # records received (any outcome)
    # The earliest start and latest end of the trips that hold their span (credited or held for
    # review) and touch this day, whichever day they started on; NULL while there is none. Widened
    # only, never narrowed (a reversal leaves them): a new trip that meets no touched day's bounds
    # overlaps no stored trip, and the overlap check skips its probe.
    first_started_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    last_ended_at: Mapped[datetime | None] = mapped_column(UTCDateTime)


class ActivityRule(Base):
    __tablename__ = "activity_rule"
    __table_args__ = (Index("ix_activity_rule_scenario_from", "scenario", "effective_from"),)

    id: Mapped[int] = mapped_column(BigIntPK, primary_key=True)
    scenario: Mapped[str] = mapped_column(String(64))  # "*" applies to every scenario
    params: Mapped[dict[str, Any]] = mapped_column(JSON)
    effective_from: Mapped[datetime] = mapped_column(UTCDateTime)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    created_by: Mapped[str | None] = mapped_column(String(64))  # "staff:<id>"; None = shipped

"""Incentives tables: reductions become points, points live in dated lots, lots expire.

Design
- The *ledger* is the truth for how many points a citizen has: awards are POINT transfers from the
  platform's unbounded `issuance` account to the citizens' bounded POINT accounts (owner_type
  "citizen"), every expiry a transfer to the platform's `expiry` account. The tables here explain the
  balance: which award produced which points, in which dated lot they sit, and when they expire.
- One POINT transfer per `award_points` call (a batch), not per award: one posting per citizen (the sum
  of that citizen's awards in the batch) plus the issuance posting. A caller that moves another asset
  for the same batch (the activity pipeline's CO2E) passes its postings as a `Companion`, and the
  points ride in that one transfer. The per-award detail lives in
  `incentives_award` (source, citizen, reduction, points, the batch transfer's id), bulk-inserted, so
  the journal and the trust log grow per batch while `revoke_points(source=...)` still takes back
  exactly what one source earned: as a NEW compensating transfer (citizen -> issuance, metadata naming
  the source and award), never by editing the batch transfer.
- Conversion rule (`incentives_rule`): rows with `effective_from`; an award converts at the rule in force
  at its `earned_at` (default when no row exists: 1 point per 10 g = 10_000 mg, lots expire at the end
  of the year after they were earned, a point is shown as worth 1 fen).
- Remainder (`incentives_carry`): the sub-point remainder is carried per citizen, never lost. Each citizen
  has one carry row holding `carry_mg`; an award computes `points = (carry_mg + reduction_mg) // rate`
  and keeps the rest. The row is read `FOR UPDATE` (PostgreSQL; SQLite's BEGIN IMMEDIATE serialises
  writers) in citizen-id order and rewritten in the same transaction, so two concurrent batches for one
  citizen queue rather than both spending the same remainder. We chose a carry over "floor(total mg /
  rate) - points so far" because the rate may change over time and a campaign cap may deny points; the
  carry keeps `total_points * rate + carry_mg == total_mg` for a constant rate and no cap (the
  Hypothesis test checks it). A revocation subtracts its reduction from the carry, which may go negative:
  the citizen then keeps points they already spent and the next reductions fill the hole first.
- Campaigns (`incentives_campaign`): every award belongs to a campaign (default "base"). An operator may
  cap a campaign's points budget; once the awards' points reach it, further awards give 0 points (the
  reduction is still credited by the activity part) and the carry keeps only the sub-point remainder, so
  lifting the cap does not pay a windfall. Uncapped campaigns are never locked (a hot row would serialise
  every writer); capped ones are locked for the batch and their issued total is summed from awards.
- Lots (`incentives_lot`): one lot per citizen, day earned (platform zone) and expiry date, grown by
  one bulk `INSERT ... ON CONFLICT DO UPDATE SET points = points + excluded.points` per batch
  (`kit.dialect.upsert_add`). `remaining` is what is still spendable; the mall consumes lots
  oldest-expiring first and records each consumption in `incentives_lot_use` (keyed by the order's
  ref) so a cancellation restores exactly those lots. Invariant: a citizen's lots' `remaining` sum
  to the POINT account's available balance.
- Expiry: lots whose `expires_on` is before the run's date have their `remaining` moved to `expired`
  by a conditional update and the points transferred to the platform expiry account, with an
  idempotency key naming the lot and its expired total, so re-running is a no-op.
"""

from __future__ import annotations

from datetime import date, datetime

from sqlalchemy import (
    BigInteger,
    Boolean,
    CheckConstraint,
    Date,
    Index,
    Integer,
    String,
    UniqueConstraint,
)
from sqlalchemy.orm import Mapped, mapped_column

from tanhui.kit.db import Base, BigIntPK, UTCDateTime, utcnow


class Rule(Base):
    __tablename__ = "incentives_rule"
    __table_args__ = (
        CheckConstraint("mg_per_point > 0", name="rate_positive"),
        CheckConstraint("expiry_years >= 0", name="expiry_non_negative"),
        CheckConstraint("fen_per_100_points >= 0", name="value_non_negative"),
    )

    id: Mapped[int] = mapped_column(BigIntPK, primary_key=True)
    effective_from: Mapped[datetime] = mapped_column(UTCDateTime, index=True)
    mg_per_point: Mapped[int] = mapped_column(BigInteger)
    # Lots expire at the end of the year `expiry_years` after the year they were earned (1 = next year).
    expiry_years: Mapped[int] = mapped_column(Integer)
    # What a point is worth, shown to citizens: fen per 100 points (integer, so 0.5 fen/point is 50).
    fen_per_100_points: Mapped[int] = mapped_column(BigInteger)
    note: Mapped[str] = mapped_column(String(200), default="")
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


class Campaign(Base):
    __tablename__ = "incentives_campaign"
    __table_args__ = (
        CheckConstraint("budget_points IS NULL OR budget_points >= 0", name="budget_non_negative"),
    )

    code: Mapped[str] = mapped_column(String(64), primary_key=True)
    name: Mapped[str] = mapped_column(String(200), default="")
    budget_points: Mapped[int | None] = mapped_column(BigInteger)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


class Carry(Base):
    __tablename__ = "incentives_carry"

    citizen_id: Mapped[int] = mapped_column(BigInteger, primary_key=True, autoincrement=False)
    carry_mg: Mapped[int] = mapped_column(BigInteger, default=0)
    total_mg: Mapped[int] = mapped_column(BigInteger, default=0)
    total_points: Mapped[int] = mapped_column(BigInteger, default=0)


class Award(Base):
    __tablename__ = "incentives_award"
    __table_args__ = (
        CheckConstraint("points >= 0", name="points_non_negative"),
        CheckConstraint("reduction_mg >= 0", name="reduction_non_negative"),
        Index("ix_incentives_award_campaign", "campaign"),
    )

    id: Mapped[int] = mapped_column(BigIntPK, primary_key=True)
    idempotency_key: Mapped[str] = mapped_column(String(200), unique=True)
    request_hash: Mapped[str] = mapped_column(String(64))
    # Not indexed: nothing reads awards by citizen (a citizen's points are read from the lots and
    # the ledger), and ingestion writes an award per credited record.
    citizen_id: Mapped[int] = mapped_column(BigInteger)
    source: Mapped[str] = mapped_column(String(200), index=True)
    campaign: Mapped[str] = mapped_column(String(64))
    reduction_mg: Mapped[int] = mapped_column(BigInteger)
    mg_per_point: Mapped[int] = mapped_column(BigInteger)
    points: Mapped[int] = mapped_column(BigInteger)
    capped_points: Mapped[int] = mapped_column(BigInteger, default=0)
    earned_at: Mapped[datetime] = mapped_column(UTCDateTime)
    lot_id: Mapped[int | None] = mapped_column(BigInteger)
    transfer_id: Mapped[int | None] = mapped_column(BigInteger)
    revoked: Mapped[bool] = mapped_column(Boolean, default=False)
    revoked_points: Mapped[int] = mapped_column(BigInteger, default=0)
    revoke_transfer_id: Mapped[int | None] = mapped_column(BigInteger)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


class Lot(Base):
    __tablename__ = "incentives_lot"
    __table_args__ = (
        UniqueConstraint("citizen_id", "earned_on", "expires_on"),
        CheckConstraint("remaining >= 0", name="remaining_non_negative"),
        CheckConstraint("expired >= 0", name="expired_non_negative"),
        Index("ix_incentives_lot_expiry", "expires_on", "remaining"),
    )

    id: Mapped[int] = mapped_column(BigIntPK, primary_key=True)
    # Looked up by citizen through the unique (citizen_id, earned_on, expires_on) index's prefix.
    citizen_id: Mapped[int] = mapped_column(BigInteger)
    earned_on: Mapped[date] = mapped_column(Date)
    expires_on: Mapped[date] = mapped_column(Date)  # last day the points can be spent
    points: Mapped[int] = mapped_column(BigInteger, default=0)  # awarded, net of revocations
    remaining: Mapped[int] = mapped_column(BigInteger, default=0)
    expired: Mapped[int] = mapped_column(BigInteger, default=0)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


class LotUse(Base):
    __tablename__ = "incentives_lot_use"
    __table_args__ = (CheckConstraint("points > 0", name="points_positive"),)

    id: Mapped[int] = mapped_column(BigIntPK, primary_key=True)
    lot_id: Mapped[int] = mapped_column(BigInteger, index=True)
    citizen_id: Mapped[int] = mapped_column(BigInteger)
    ref: Mapped[str] = mapped_column(String(200), index=True)
    points: Mapped[int] = mapped_column(BigInteger)
    restored: Mapped[bool] = mapped_column(Boolean, default=False)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)

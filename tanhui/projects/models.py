"""Project tables: registration, validation, monitoring reports, verification and what they issued.

Design
- A *project* (rooftop PV, a bus fleet, a forest) belongs to an owner organisation and follows
  draft → submitted → validated (by the verifier organisation the operator assigned) → registered (by the
  operator); any step before registration may end in rejected, with a reason. The allowed moves and who
  may make them are one table in service.py (`PROJECT_TRANSITIONS`); each move is a row in
  `projects_transition` (who, when, from, to, reason), so the history is never overwritten.
- A project's number in credit serials is its id.
- Capacity and area are integers in named units (watts peak, square metres); dates are calendar days
  in the platform's zone.
- *Documents* are uploaded files stored under data_dir/uploads/projects/<project id>/<sha256>; the table
  keeps the name, type, size and SHA-256 so a file can be checked against what was filed.
- A *monitoring report* covers a period inside the crediting period and never overlaps another live
  report of the project (the same kWh cannot be credited twice). It follows submitted → verified →
  issued, or rejected. The owner's inputs and the methodology's result (with its trace) are kept as filed;
  a verifier's correction is stored beside them (`corrected_inputs`, `corrected_reduction_mg`, a
  comment), never over them. Meter readings uploaded as CSV are kept line by line (`projects_reading`,
  energy in Wh so kWh with up to three decimals stay exact integers).
- Issuance: the approved reduction plus the project's carried fraction (`carry_mg`) is issued as whole
  tonnes; the remainder below one tonne stays in `carry_mg` for the next report. Each report records
  `carried_in_mg`, `issued_credits`, `carried_out_mg`, so carried_in + reduction = credits·10^9 + carried_out.
"""

from __future__ import annotations

from datetime import date, datetime
from typing import Any

from sqlalchemy import (
    JSON,
    BigInteger,
    CheckConstraint,
    Date,
    ForeignKey,
    Index,
    Integer,
    String,
    Text,
    UniqueConstraint,
)
from sqlalchemy.orm import Mapped, mapped_column

from tanhui.kit.db import Base, BigIntPK, UTCDateTime, utcnow


class Project(Base):
    __tablename__ = "projects_project"
    __table_args__ = (
        CheckConstraint(
            "status IN ('draft', 'submitted', 'validated', 'registered', 'rejected')",
            name="status_known",
        ),
        CheckConstraint("carry_mg >= 0 AND carry_mg < 1000000000", name="carry_below_tonne"),
        CheckConstraint("crediting_end >= crediting_start", name="crediting_ordered"),
        Index("ix_projects_project_owner", "owner_org_id"),
        Index("ix_projects_project_status", "status"),
    )

    id: Mapped[int] = mapped_column(BigIntPK, primary_key=True)
    owner_org_id: Mapped[int] = mapped_column(BigInteger)
    name: Mapped[str] = mapped_column(String(200))
    project_type: Mapped[str] = mapped_column(String(32))
    methodology_id: Mapped[str] = mapped_column(String(64))
    methodology_version: Mapped[str] = mapped_column(String(32))
    location: Mapped[str] = mapped_column(String(300))
    district: Mapped[str] = mapped_column(String(100))
    capacity_w: Mapped[int | None] = mapped_column(BigInteger)
    area_m2: Mapped[int | None] = mapped_column(BigInteger)
    crediting_start: Mapped[date] = mapped_column(Date)
    crediting_end: Mapped[date] = mapped_column(Date)
    description: Mapped[str] = mapped_column(Text, default="")
    status: Mapped[str] = mapped_column(String(16), default="draft")
    verifier_org_id: Mapped[int | None] = mapped_column(BigInteger)
    rejection_reason: Mapped[str | None] = mapped_column(String(500))
    carry_mg: Mapped[int] = mapped_column(BigInteger, default=0)
    created_by: Mapped[int] = mapped_column(BigInteger)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


class Transition(Base):
    """One move of a project or report through its lifecycle (append-only)."""

    __tablename__ = "projects_transition"
    __table_args__ = (Index("ix_projects_transition_subject", "subject", "subject_id"),)

    id: Mapped[int] = mapped_column(BigIntPK, primary_key=True)
    subject: Mapped[str] = mapped_column(String(16))
    """"project" or "report"."""
    subject_id: Mapped[int] = mapped_column(BigInteger)
    project_id: Mapped[int] = mapped_column(
        ForeignKey("projects_project.id", ondelete="RESTRICT"), index=True
    )
    action: Mapped[str] = mapped_column(String(32))
    from_status: Mapped[str] = mapped_column(String(16))
    to_status: Mapped[str] = mapped_column(String(16))
    actor_kind: Mapped[str] = mapped_column(String(16))
    actor_id: Mapped[int] = mapped_column(BigInteger)
    actor_org_id: Mapped[int | None] = mapped_column(BigInteger)
    actor_role: Mapped[str] = mapped_column(String(32))
    reason: Mapped[str | None] = mapped_column(String(500))
    at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


class Document(Base):
    __tablename__ = "projects_document"

    id: Mapped[int] = mapped_column(BigIntPK, primary_key=True)
    project_id: Mapped[int] = mapped_column(
        ForeignKey("projects_project.id", ondelete="RESTRICT"), index=True
    )
    filename: Mapped[str] = mapped_column(String(200))
    content_type: Mapped[str] = mapped_column(String(100))
    size: Mapped[int] = mapped_column(BigInteger)
    sha256: Mapped[str] = mapped_column(String(64))
    path: Mapped[str] = mapped_column(String(300))
    """Relative to data_dir/uploads."""
    uploaded_by: Mapped[int] = mapped_column(BigInteger)
    uploaded_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


class Report(Base):
    __tablename__ = "projects_report"
    __table_args__ = (
        CheckConstraint(
            "status IN ('submitted', 'verified', 'issued', 'rejected')", name="status_known"
        ),
        CheckConstraint("period_end >= period_start", name="period_ordered"),
        UniqueConstraint("idempotency_key"),
    )

    id: Mapped[int] = mapped_column(BigIntPK, primary_key=True)
    project_id: Mapped[int] = mapped_column(
        ForeignKey("projects_project.id", ondelete="RESTRICT"), index=True
    )
    period_start: Mapped[date] = mapped_column(Date)
    period_end: Mapped[date] = mapped_column(Date)
    status: Mapped[str] = mapped_column(String(16), default="submitted")
    methodology_id: Mapped[str] = mapped_column(String(64))
    methodology_version: Mapped[str] = mapped_column(String(32))
    inputs: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    reduction_mg: Mapped[int] = mapped_column(BigInteger)
    trace: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    corrected_inputs: Mapped[dict[str, Any] | None] = mapped_column(JSON)
    corrected_reduction_mg: Mapped[int | None] = mapped_column(BigInteger)
    corrected_trace: Mapped[dict[str, Any] | None] = mapped_column(JSON)
    verification_comment: Mapped[str | None] = mapped_column(String(1000))
    rejection_reason: Mapped[str | None] = mapped_column(String(500))
    carried_in_mg: Mapped[int | None] = mapped_column(BigInteger)
    issued_credits: Mapped[int | None] = mapped_column(BigInteger)
    carried_out_mg: Mapped[int | None] = mapped_column(BigInteger)
    batch_id: Mapped[int | None] = mapped_column(BigInteger)
    """The registry batch it issued (None when the period yielded less than one tonne)."""
    idempotency_key: Mapped[str | None] = mapped_column(String(250))
    request_hash: Mapped[str | None] = mapped_column(String(64))
    created_by: Mapped[int] = mapped_column(BigInteger)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


class Reading(Base):
    """One meter reading line from an uploaded CSV (date,meter_id,kwh)."""

    __tablename__ = "projects_reading"
    __table_args__ = (
        UniqueConstraint("report_id", "meter_id", "day"),
        CheckConstraint("wh >= 0", name="wh_non_negative"),
    )

    id: Mapped[int] = mapped_column(BigIntPK, primary_key=True)
    report_id: Mapped[int] = mapped_column(
        ForeignKey("projects_report.id", ondelete="RESTRICT"), index=True
    )
    line: Mapped[int] = mapped_column(Integer)
    day: Mapped[date] = mapped_column(Date)
    meter_id: Mapped[str] = mapped_column(String(64))
    wh: Mapped[int] = mapped_column(BigInteger)

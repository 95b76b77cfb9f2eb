"""Methodology tables: operator uploads and scenario assignments.

Design
- Shipped methodologies live in the package (`catalogue/*.toml`, `factors/*.toml`) and are not copied
  into the database: the package version is their provenance. The database only holds what operators
  add: uploaded methodology versions (the TOML text verbatim, with its SHA-256) and assignments.
- Both tables are append-only. A methodology is revised by uploading a new version with a later
  effective_from; old versions stay, so a record can always be recalculated with the version that
  computed it. (id, version) is unique across shipped and uploaded versions (checked by the service,
  and by a unique constraint among uploads).
- An assignment says which methodology (city variant) the platform applies to a scenario from a date
  on; the newest assignment whose effective_from is not after the record's date wins, so changing the
  variant never rewrites history.
"""

from __future__ import annotations

from datetime import date, datetime

from sqlalchemy import BigInteger, Date, Index, String, Text, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from tanhui.kit.db import Base, BigIntPK, UTCDateTime, utcnow


class MethodologyVersion(Base):
    __tablename__ = "methodology_version"
    __table_args__ = (UniqueConstraint("methodology_id", "version"),)

    id: Mapped[int] = mapped_column(BigIntPK, primary_key=True, autoincrement=True)
    methodology_id: Mapped[str] = mapped_column(String(64))
    version: Mapped[str] = mapped_column(String(32))
    scenario: Mapped[str] = mapped_column(String(32), index=True)
    region: Mapped[str] = mapped_column(String(32))
    toml_text: Mapped[str] = mapped_column(Text)
    sha256: Mapped[str] = mapped_column(String(64))
    uploaded_by: Mapped[int | None] = mapped_column(BigInteger, nullable=True)
    uploaded_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    effective_from: Mapped[date] = mapped_column(Date)


class MethodologyAssignment(Base):
    __tablename__ = "methodology_assignment"
    __table_args__ = (
        Index("ix_methodology_assignment_scenario_from", "scenario", "effective_from"),
    )

    id: Mapped[int] = mapped_column(BigIntPK, primary_key=True, autoincrement=True)
    scenario: Mapped[str] = mapped_column(String(32))
    methodology_id: Mapped[str] = mapped_column(String(64))
    effective_from: Mapped[date] = mapped_column(Date)
    assigned_by: Mapped[int | None] = mapped_column(BigInteger, nullable=True)
    assigned_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)

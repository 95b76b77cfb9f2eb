"""Registry tables: serial-numbered credit batches held as blocks of consecutive serials.

Design (reference/lessons.md §4.1, §4.7)
- A *batch* is one issuance: `quantity` whole-tonne credits (1 credit = 1 tCO2e) of one vintage from one
  project (or from aggregated personal reductions, project number 0). Its serial components are stored as
  integers and the display string is rendered (docs/registry.md):
  `TH-<vintage>-<project number:06>-<batch sequence:03>-<first unit:06>-<last unit:06>`.
  Units are numbered 1..quantity within the batch.
- A *block* is a run of consecutive units of one batch in one registry account:
  `quantity = serial_end - serial_start + 1`. Blocks are never edited in their serials: an event *closes*
  the blocks it consumes (status `closed`, `closed_by_event_id`) and creates children that tile each
  parent exactly (the moved part and, for a partial move, the remainder that stays). So the live blocks
  (active, retired, cancelled) of a batch always tile 1..quantity with no gap and no overlap, and the
  closed ones are the history. `tanhui ledger check` verifies both.
- An *event* is one lifecycle step: issuance, transfer, retirement (注销, with purpose, beneficiary and a
  retirement number `RT-<year>-<event id:06>`), cancellation (by the operator, with a reason). Each event
  is one balanced ledger transfer of the batch's credit asset and one trust-log leaf
  (`registry.<kind>`, ref = event id), written in the same transaction.
- A *registry account* is who can hold credits: an organisation (ledger owner "org") or the platform
  (ledger owner "platform", account name "registry"). Retired and cancelled credits sit in the platform's
  unbounded "retired" / "cancelled" ledger accounts, so the ledger alone says how many are out of
  circulation.
- Concurrency: a moving event selects the holder's active blocks `FOR UPDATE` (PostgreSQL) and closes
  each with a conditional `UPDATE ... WHERE status = 'active'`; two transfers of the same block queue on the
  row lock and the second finds nothing left to move. The bounded ledger account is a second guard.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import (
    JSON,
    BigInteger,
    CheckConstraint,
    ForeignKey,
    Index,
    Integer,
    String,
    UniqueConstraint,
)
from sqlalchemy.orm import Mapped, mapped_column

from tanhui.kit.db import Base, BigIntPK, UTCDateTime, utcnow


class RegistryAccount(Base):
    __tablename__ = "registry_account"
    __table_args__ = (UniqueConstraint("owner_type", "owner_id"),)

    id: Mapped[int] = mapped_column(BigIntPK, primary_key=True)
    owner_type: Mapped[str] = mapped_column(String(32))
    """Ledger owner type: "org" or "platform"."""
    owner_id: Mapped[str] = mapped_column(String(64))
    account_type: Mapped[str] = mapped_column(String(32))
    """For the public view: the organisation kind (project_owner, buyer, ...) or "platform"."""
    label: Mapped[str] = mapped_column(String(200), default="")
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


class Batch(Base):
    __tablename__ = "registry_batch"
    __table_args__ = (
        UniqueConstraint("project_number", "batch_seq"),
        CheckConstraint("quantity > 0", name="quantity_positive"),
        CheckConstraint("batch_seq > 0", name="seq_positive"),
    )

    id: Mapped[int] = mapped_column(BigIntPK, primary_key=True)
    vintage: Mapped[int] = mapped_column(Integer)
    project_number: Mapped[int] = mapped_column(BigInteger)
    """The project's number (its id in projects), 0 for aggregated personal reductions."""
    batch_seq: Mapped[int] = mapped_column(Integer)
    quantity: Mapped[int] = mapped_column(BigInteger)
    asset_code: Mapped[str] = mapped_column(String(64), unique=True)
    source_kind: Mapped[str] = mapped_column(String(32))
    """"project_report" or "personal"."""
    source_ref: Mapped[str] = mapped_column(String(128))
    methodology_id: Mapped[str] = mapped_column(String(64), default="")
    methodology_version: Mapped[str] = mapped_column(String(32), default="")
    reduction_mg: Mapped[int] = mapped_column(BigInteger, default=0)
    """The reduction (plus carried fraction) this batch stands for; quantity = reduction_mg // 1 t."""
    issued_to_id: Mapped[int] = mapped_column(
        ForeignKey("registry_account.id", ondelete="RESTRICT")
    )
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


class Event(Base):
    __tablename__ = "registry_event"
    __table_args__ = (
        CheckConstraint(
            "kind IN ('issuance', 'transfer', 'retirement', 'cancellation')", name="kind_known"
        ),
        CheckConstraint("quantity > 0", name="quantity_positive"),
        Index("ix_registry_event_kind_batch", "kind", "batch_id"),
    )

    id: Mapped[int] = mapped_column(BigIntPK, primary_key=True)
    kind: Mapped[str] = mapped_column(String(16))
    batch_id: Mapped[int] = mapped_column(ForeignKey("registry_batch.id", ondelete="RESTRICT"))
    quantity: Mapped[int] = mapped_column(BigInteger)
    from_account_id: Mapped[int | None] = mapped_column(
        ForeignKey("registry_account.id", ondelete="RESTRICT")
    )
    to_account_id: Mapped[int | None] = mapped_column(
        ForeignKey("registry_account.id", ondelete="RESTRICT")
    )
    ranges: Mapped[list[list[int]]] = mapped_column(JSON, default=list)
    """The [first, last] unit ranges the event moved, in serial order."""
    idempotency_key: Mapped[str] = mapped_column(String(250), unique=True)
    request_hash: Mapped[str] = mapped_column(String(64))
    actor_kind: Mapped[str] = mapped_column(String(16), default="")
    actor_id: Mapped[int | None] = mapped_column(BigInteger)
    ledger_transfer_id: Mapped[int | None] = mapped_column(BigInteger)
    retirement_no: Mapped[str | None] = mapped_column(String(32), unique=True)
    purpose: Mapped[str | None] = mapped_column(String(32))
    beneficiary: Mapped[str | None] = mapped_column(String(200))
    note: Mapped[str | None] = mapped_column(String(500))
    """Retirement claim text or the cancellation reason."""
    meta: Mapped[dict[str, Any]] = mapped_column("metadata", JSON, default=dict)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


class Block(Base):
    __tablename__ = "registry_block"
    __table_args__ = (
        CheckConstraint("serial_start >= 1", name="start_positive"),
        CheckConstraint("serial_end >= serial_start", name="ordered"),
        CheckConstraint("quantity = serial_end - serial_start + 1", name="quantity_matches"),
        CheckConstraint(
            "status IN ('active', 'retired', 'cancelled', 'closed')", name="status_known"
        ),
        Index("ix_registry_block_batch_status", "batch_id", "status"),
        Index("ix_registry_block_account_status", "account_id", "status"),
    )

    id: Mapped[int] = mapped_column(BigIntPK, primary_key=True)
    batch_id: Mapped[int] = mapped_column(ForeignKey("registry_batch.id", ondelete="RESTRICT"))
    serial_start: Mapped[int] = mapped_column(BigInteger)
    serial_end: Mapped[int] = mapped_column(BigInteger)
    quantity: Mapped[int] = mapped_column(BigInteger)
    account_id: Mapped[int] = mapped_column(ForeignKey("registry_account.id", ondelete="RESTRICT"))
    status: Mapped[str] = mapped_column(String(16), default="active")
    parent_id: Mapped[int | None] = mapped_column(
        ForeignKey("registry_block.id", ondelete="RESTRICT")
    )
    created_by_event_id: Mapped[int] = mapped_column(
        ForeignKey("registry_event.id", ondelete="RESTRICT")
    )
    closed_by_event_id: Mapped[int | None] = mapped_column(
        ForeignKey("registry_event.id", ondelete="RESTRICT")
    )
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


class PersonalCarry(Base):
    """The fraction below one tonne left by the last personal-aggregation batch of a scenario."""

    __tablename__ = "registry_personal_carry"

    scenario: Mapped[str] = mapped_column(String(64), primary_key=True)
    carry_mg: Mapped[int] = mapped_column(BigInteger, default=0)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)

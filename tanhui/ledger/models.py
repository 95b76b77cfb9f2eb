"""Ledger tables: a double-entry journal with append-only transfers and exact balances.

Design
- An *asset* is what is counted, in an integer unit: CO2E_MG (milligrams CO2e), POINT, CNY_FEN, and one
  credit asset per registry batch (whole tonnes).
- An *account* belongs to an owner (a citizen, an organisation, the platform) and holds one asset. It is
  either *bounded* (may never go below zero: every citizen and organisation account) or *unbounded*
  (system accounts such as the platform's issuance source, whose balance is negative by design).
- A *transfer* is a set of *postings* whose amounts sum to zero per asset (a posting's amount is signed:
  negative leaves an account, positive enters it). Transfers are never updated or deleted; a correction is
  a new transfer that names the one it reverses (at most one reversal per transfer).
- A *hold* reserves part of a bounded account's balance for a later transfer (two-phase: reserve, then post
  or void), so the reserved amount cannot be spent twice.

Balances
- Bounded accounts cache `balance` and `held`, changed only by a conditional UPDATE in the same
  transaction as the postings (`... WHERE balance - held + delta >= 0`). On PostgreSQL the row lock makes
  concurrent writers to one account queue instead of losing an update, and the condition makes an
  overdraft impossible whatever the interleaving.
- Unbounded accounts keep no cached balance and are never locked: nearly every transfer touches the
  issuance account, and a row lock there would serialise every writer of the platform. Their balance is
  the sum of their postings.
- `tanhui ledger check` recomputes every cached balance and hold total from the journal.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    CheckConstraint,
    ForeignKey,
    Index,
    String,
    UniqueConstraint,
)
from sqlalchemy.orm import Mapped, mapped_column

from tanhui.kit.db import Base, BigIntPK, UTCDateTime, utcnow


class Asset(Base):
    __tablename__ = "ledger_asset"

    code: Mapped[str] = mapped_column(String(64), primary_key=True)
    unit: Mapped[str] = mapped_column(String(32))
    description: Mapped[str] = mapped_column(String(200), default="")
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


class Account(Base):
    __tablename__ = "ledger_account"
    __table_args__ = (
        UniqueConstraint("owner_type", "owner_id", "asset_code", "name"),
        CheckConstraint("bounded = false OR balance - held >= 0", name="available_non_negative"),
        CheckConstraint("held >= 0", name="held_non_negative"),
    )

    id: Mapped[int] = mapped_column(BigIntPK, primary_key=True)
    owner_type: Mapped[str] = mapped_column(String(32))
    owner_id: Mapped[str] = mapped_column(String(64))
    asset_code: Mapped[str] = mapped_column(ForeignKey("ledger_asset.code", ondelete="RESTRICT"))
    name: Mapped[str] = mapped_column(String(64), default="main")
    bounded: Mapped[bool] = mapped_column(Boolean, default=True)
    balance: Mapped[int] = mapped_column(BigInteger, default=0)
    held: Mapped[int] = mapped_column(BigInteger, default=0)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


class Transfer(Base):
    __tablename__ = "ledger_transfer"

    id: Mapped[int] = mapped_column(BigIntPK, primary_key=True)
    idempotency_key: Mapped[str] = mapped_column(String(200), unique=True)
    request_hash: Mapped[str] = mapped_column(String(64))
    kind: Mapped[str] = mapped_column(String(64))
    meta: Mapped[dict[str, Any]] = mapped_column("metadata", JSON, default=dict)
    reverses_id: Mapped[int | None] = mapped_column(
        ForeignKey("ledger_transfer.id", ondelete="RESTRICT"), unique=True
    )
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


class Posting(Base):
    __tablename__ = "ledger_posting"
    __table_args__ = (
        CheckConstraint("amount <> 0", name="amount_non_zero"),
        Index("ix_ledger_posting_account_transfer", "account_id", "transfer_id"),
    )

    id: Mapped[int] = mapped_column(BigIntPK, primary_key=True)
    transfer_id: Mapped[int] = mapped_column(
        ForeignKey("ledger_transfer.id", ondelete="RESTRICT"), index=True
    )
    account_id: Mapped[int] = mapped_column(ForeignKey("ledger_account.id", ondelete="RESTRICT"))
    asset_code: Mapped[str] = mapped_column(ForeignKey("ledger_asset.code", ondelete="RESTRICT"))
    amount: Mapped[int] = mapped_column(BigInteger)


class Hold(Base):
    __tablename__ = "ledger_hold"
    __table_args__ = (
        CheckConstraint("amount > 0", name="amount_positive"),
        CheckConstraint("status IN ('pending', 'posted', 'voided')", name="status_known"),
        Index("ix_ledger_hold_account_status", "account_id", "status"),
    )

    id: Mapped[int] = mapped_column(BigIntPK, primary_key=True)
    idempotency_key: Mapped[str] = mapped_column(String(200), unique=True)
    request_hash: Mapped[str] = mapped_column(String(64))
    account_id: Mapped[int] = mapped_column(ForeignKey("ledger_account.id", ondelete="RESTRICT"))
    destination_id: Mapped[int] = mapped_column(
        ForeignKey("ledger_account.id", ondelete="RESTRICT")
    )
    amount: Mapped[int] = mapped_column(BigInteger)
    kind: Mapped[str] = mapped_column(String(64))
    meta: Mapped[dict[str, Any]] = mapped_column("metadata", JSON, default=dict)
    status: Mapped[str] = mapped_column(String(16), default="pending")
    transfer_id: Mapped[int | None] = mapped_column(
        ForeignKey("ledger_transfer.id", ondelete="RESTRICT")
    )
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    expires_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    resolved_at: Mapped[datetime | None] = mapped_column(UTCDateTime)

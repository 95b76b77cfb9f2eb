"""Mall tables: rewards from merchants, coupon-code pools, redemption orders.

Design
- A reward belongs to a merchant (an identity organisation of kind "merchant"); staff with role
  "merchant" of that organisation manage it and see its orders only.
- Kinds (`kind`): "coupon" (a code from the reward's pool, imported as CSV or generated), "physical"
  (shipped to an address stored Fernet-encrypted), "charity" (a donation: no stock, a receipt number).
- Stock: `stock` NULL means unlimited; otherwise it is decremented by a conditional UPDATE
  (`stock >= qty`), so concurrent buyers cannot take it below zero (a CHECK backs it up).
- Codes: assigned to an order by `SELECT ... FOR UPDATE SKIP LOCKED` on PostgreSQL (concurrent orders
  take different codes without queueing) and a conditional status change; a code is written off at the
  till once (`status = 'assigned'` → `used`).
- Orders: placed → fulfilled (code issued, goods shipped, receipt issued) → completed; or cancelled /
  failed, which reverses the points transfer, restores the point lots and returns the stock. Points move
  in the ledger as a hold on the citizen's POINT account posted to the platform's `redeemed` account in
  the same transaction as the stock reservation. An order's (citizen, idempotency key) is unique.
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
    Integer,
    String,
    Text,
    UniqueConstraint,
)
from sqlalchemy.orm import Mapped, mapped_column

from tanhui.kit.db import Base, BigIntPK, UTCDateTime, utcnow


class Reward(Base):
    __tablename__ = "mall_reward"
    __table_args__ = (
        CheckConstraint("stock IS NULL OR stock >= 0", name="stock_non_negative"),
        CheckConstraint("price_points > 0", name="price_positive"),
        CheckConstraint("kind IN ('coupon', 'physical', 'charity')", name="kind_known"),
        Index("ix_mall_reward_merchant", "merchant_org_id"),
    )

    id: Mapped[int] = mapped_column(BigIntPK, primary_key=True)
    merchant_org_id: Mapped[int] = mapped_column(BigInteger)
    category: Mapped[str] = mapped_column(String(32))
    kind: Mapped[str] = mapped_column(String(16))
    title_zh: Mapped[str] = mapped_column(String(200))
    title_en: Mapped[str] = mapped_column(String(200), default="")
    description_zh: Mapped[str] = mapped_column(Text, default="")
    description_en: Mapped[str] = mapped_column(Text, default="")
    image: Mapped[str] = mapped_column(String(300), default="")
    price_points: Mapped[int] = mapped_column(BigInteger)
    face_value_fen: Mapped[int | None] = mapped_column(BigInteger)
    stock: Mapped[int | None] = mapped_column(BigInteger)
    limit_per_day: Mapped[int | None] = mapped_column(Integer)
    limit_total: Mapped[int | None] = mapped_column(Integer)
    available_from: Mapped[datetime | None] = mapped_column(UTCDateTime)
    available_until: Mapped[datetime | None] = mapped_column(UTCDateTime)
    districts: Mapped[list[str]] = mapped_column(JSON, default=list)  # empty: everyone
    min_level: Mapped[int] = mapped_column(Integer, default=0)
    active: Mapped[bool] = mapped_column(Boolean, default=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


class Code(Base):
    __tablename__ = "mall_code"
    __table_args__ = (
        UniqueConstraint("reward_id", "code"),
        CheckConstraint("status IN ('available', 'assigned', 'used', 'void')", name="status_known"),
        Index("ix_mall_code_reward_status", "reward_id", "status"),
    )

    id: Mapped[int] = mapped_column(BigIntPK, primary_key=True)
    reward_id: Mapped[int] = mapped_column(ForeignKey("mall_reward.id", ondelete="RESTRICT"))
    code: Mapped[str] = mapped_column(String(100))
    status: Mapped[str] = mapped_column(String(16), default="available")
    order_id: Mapped[int | None] = mapped_column(BigInteger, index=True)
    assigned_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    used_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    used_by: Mapped[int | None] = mapped_column(BigInteger)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


class Order(Base):
    __tablename__ = "mall_order"
    __table_args__ = (
        UniqueConstraint("citizen_id", "idempotency_key"),
        CheckConstraint("quantity > 0", name="quantity_positive"),
        CheckConstraint(
            "status IN ('placed', 'fulfilled', 'completed', 'cancelled', 'failed')",
            name="status_known",
        ),
        Index("ix_mall_order_citizen_created", "citizen_id", "created_at"),
        Index("ix_mall_order_merchant_created", "merchant_org_id", "created_at"),
        Index("ix_mall_order_reward", "reward_id"),
    )

    id: Mapped[int] = mapped_column(BigIntPK, primary_key=True)
    citizen_id: Mapped[int] = mapped_column(BigInteger)
    reward_id: Mapped[int] = mapped_column(ForeignKey("mall_reward.id", ondelete="RESTRICT"))
    merchant_org_id: Mapped[int] = mapped_column(BigInteger)
    category: Mapped[str] = mapped_column(String(32))
    kind: Mapped[str] = mapped_column(String(16))
    quantity: Mapped[int] = mapped_column(Integer)
    points: Mapped[int] = mapped_column(BigInteger)
    status: Mapped[str] = mapped_column(String(16))
    idempotency_key: Mapped[str] = mapped_column(String(200))
    request_hash: Mapped[str] = mapped_column(String(64))
    hold_id: Mapped[int | None] = mapped_column(BigInteger)
    transfer_id: Mapped[int | None] = mapped_column(BigInteger)
    reversal_id: Mapped[int | None] = mapped_column(BigInteger)
    shipping_encrypted: Mapped[str | None] = mapped_column(Text)
    tracking_no: Mapped[str | None] = mapped_column(String(100))
    receipt_no: Mapped[str | None] = mapped_column(String(64))
    note: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    fulfilled_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    completed_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    cancelled_at: Mapped[datetime | None] = mapped_column(UTCDateTime)

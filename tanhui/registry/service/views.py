"""Public views of the registry: batches, blocks, holdings and retirements."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from sqlalchemy import func, or_, select
from sqlalchemy.orm import Session

from tanhui.registry.models import Batch, Block, Event, RegistryAccount
from tanhui.registry.service.common import (
    LEAF_KINDS,
    LIVE_STATUSES,
    BatchNotFound,
    RetirementNotFound,
    batch_prefix,
    render_serial,
)
from tanhui.trust import service as trust_service


@dataclass(frozen=True)
class BatchView:
    batch_id: int
    serial_prefix: str
    first_serial: str
    last_serial: str
    vintage: int
    project_number: int
    batch_seq: int
    issued: int
    active: int
    retired: int
    cancelled: int
    source_kind: str
    methodology: str
    issued_to_account_id: int
    created_at: datetime


@dataclass(frozen=True)
class BlockView:
    block_id: int
    batch_id: int
    serial_prefix: str
    serial_start: int
    serial_end: int
    serial_first: str
    serial_last: str
    quantity: int
    status: str
    account_id: int
    account_type: str
    holder: str
    created_at: datetime


@dataclass(frozen=True)
class RetirementView:
    retirement_no: str
    event_id: int
    batch_id: int
    serial_prefix: str
    serials: list[str]
    quantity: int
    purpose: str
    beneficiary: str
    note: str | None
    account_id: int
    holder: str
    vintage: int
    project_number: int
    created_at: datetime
    proof: dict[str, Any] | None = field(default=None)


def _status_totals(session: Session, batch_ids: Sequence[int]) -> dict[int, dict[str, int]]:
    totals: dict[int, dict[str, int]] = defaultdict(lambda: dict.fromkeys(LIVE_STATUSES, 0))
    if batch_ids:
        for batch_id, status, qty in session.execute(
            select(Block.batch_id, Block.status, func.sum(Block.quantity))
            .where(Block.batch_id.in_(batch_ids), Block.status.in_(LIVE_STATUSES))
            .group_by(Block.batch_id, Block.status)
        ):
            totals[batch_id][status] = int(qty)
    return totals


def list_batches(
    session: Session,
    *,
    batch_id: int | None = None,
    q: str | None = None,
    vintage: int | None = None,
    project_number: int | None = None,
    source_kind: str | None = None,
    limit: int = 100,
    offset: int = 0,
) -> list[BatchView]:
    """Batches newest first; `q` matches a serial prefix (or any serial inside the batch)."""
    stmt = select(Batch)
    if batch_id is not None:
        stmt = stmt.where(Batch.id == batch_id)
    if vintage is not None:
        stmt = stmt.where(Batch.vintage == vintage)
    if project_number is not None:
        stmt = stmt.where(Batch.project_number == project_number)
    if source_kind is not None:
        stmt = stmt.where(Batch.source_kind == source_kind)
    if q:
        parts = q.strip().upper().split("-")
        try:
            if len(parts) >= 2:
                stmt = stmt.where(Batch.vintage == int(parts[1]))
            if len(parts) >= 3:
                stmt = stmt.where(Batch.project_number == int(parts[2]))
            if len(parts) >= 4:
                stmt = stmt.where(Batch.batch_seq == int(parts[3]))
        except ValueError:
            return []
    batches = session.scalars(stmt.order_by(Batch.id.desc()).limit(limit).offset(offset)).all()
    totals = _status_totals(session, [b.id for b in batches])
    out = []
    for b in batches:
        prefix = batch_prefix(b)
        t = totals[b.id]
        out.append(
            BatchView(
                batch_id=b.id,
                serial_prefix=prefix,
                first_serial=render_serial(prefix, 1, 1),
                last_serial=render_serial(prefix, b.quantity, b.quantity),
                vintage=b.vintage,
                project_number=b.project_number,
                batch_seq=b.batch_seq,
                issued=b.quantity,
                active=t["active"],
                retired=t["retired"],
                cancelled=t["cancelled"],
                source_kind=b.source_kind,
                methodology=f"{b.methodology_id}@{b.methodology_version}"
                if b.methodology_id
                else "",
                issued_to_account_id=b.issued_to_id,
                created_at=b.created_at,
            )
        )
    return out


def batch_view(session: Session, batch_id: int) -> BatchView:
    found = list_batches(session, batch_id=batch_id, limit=1)
    if not found:
        raise BatchNotFound(f"batch {batch_id} does not exist", field="batch_id")
    return found[0]


def list_blocks(
    session: Session,
    *,
    batch_id: int | None = None,
    account_id: int | None = None,
    account_type: str | None = None,
    status: str | None = None,
    include_closed: bool = False,
    limit: int = 500,
    offset: int = 0,
) -> list[BlockView]:
    """Blocks in serial order. Closed blocks (history) only with include_closed or status="closed"."""
    stmt = (
        select(Block, Batch, RegistryAccount)
        .join(Batch, Batch.id == Block.batch_id)
        .join(RegistryAccount, RegistryAccount.id == Block.account_id)
    )
    if batch_id is not None:
        stmt = stmt.where(Block.batch_id == batch_id)
    if account_id is not None:
        stmt = stmt.where(Block.account_id == account_id)
    if account_type is not None:
        stmt = stmt.where(RegistryAccount.account_type == account_type)
    if status is not None:
        stmt = stmt.where(Block.status == status)
    elif not include_closed:
        stmt = stmt.where(Block.status.in_(LIVE_STATUSES))
    rows = session.execute(
        stmt.order_by(Block.batch_id, Block.serial_start, Block.id).limit(limit).offset(offset)
    ).all()
    out = []
    for block, batch, account in rows:
        prefix = batch_prefix(batch)
        out.append(
            BlockView(
                block_id=block.id,
                batch_id=batch.id,
                serial_prefix=prefix,
                serial_start=block.serial_start,
                serial_end=block.serial_end,
                serial_first=render_serial(prefix, block.serial_start, block.serial_start),
                serial_last=render_serial(prefix, block.serial_end, block.serial_end),
                quantity=block.quantity,
                status=block.status,
                account_id=account.id,
                account_type=account.account_type,
                holder=account.label,
                created_at=block.created_at,
            )
        )
    return out


@dataclass(frozen=True)
class HoldingView:
    account_id: int
    account_type: str
    holder: str
    batch_id: int
    serial_prefix: str
    quantity: int


def holdings(
    session: Session, *, account_type: str | None = None, account_id: int | None = None
) -> list[HoldingView]:
    """Active credits per account and batch (the public "holdings by account type" table)."""
    stmt = (
        select(RegistryAccount, Batch, func.sum(Block.quantity))
        .join(Block, Block.account_id == RegistryAccount.id)
        .join(Batch, Batch.id == Block.batch_id)
        .where(Block.status == "active")
        .group_by(RegistryAccount.id, Batch.id)
        .order_by(RegistryAccount.account_type, RegistryAccount.id, Batch.id)
    )
    if account_type is not None:
        stmt = stmt.where(RegistryAccount.account_type == account_type)
    if account_id is not None:
        stmt = stmt.where(RegistryAccount.id == account_id)
    return [
        HoldingView(a.id, a.account_type, a.label, b.id, batch_prefix(b), int(qty))
        for a, b, qty in session.execute(stmt)
    ]


def _proof(info: trust_service.LeafInfo | None) -> dict[str, Any] | None:
    if info is None:
        return None
    return {
        "kind": info.kind,
        "ref": info.ref,
        "status": info.status,
        "leaf_index": info.leaf_index,
        "leaf_hash": info.leaf_hash.hex(),
        "url": f"/v1/trust/leaves/{info.leaf_index}/proof" if info.leaf_index is not None else None,
    }


def list_retirements(
    session: Session,
    *,
    purpose: str | None = None,
    beneficiary: str | None = None,
    year: int | None = None,
    batch_id: int | None = None,
    q: str | None = None,
    limit: int = 100,
    offset: int = 0,
) -> list[RetirementView]:
    """Retirements newest first, each with its trust-log leaf (pending until integrated)."""
    stmt = (
        select(Event, Batch, RegistryAccount)
        .join(Batch, Batch.id == Event.batch_id)
        .join(RegistryAccount, RegistryAccount.id == Event.from_account_id)
        .where(Event.kind == "retirement")
    )
    if purpose is not None:
        stmt = stmt.where(Event.purpose == purpose)
    if beneficiary:
        stmt = stmt.where(Event.beneficiary.contains(beneficiary, autoescape=True))
    if year is not None:
        stmt = stmt.where(Event.retirement_no.startswith(f"RT-{year:04d}-"))
    if batch_id is not None:
        stmt = stmt.where(Event.batch_id == batch_id)
    if q:
        stmt = stmt.where(
            or_(
                Event.retirement_no == q.strip().upper(),
                Event.beneficiary.contains(q.strip(), autoescape=True),
            )
        )
    rows = list(session.execute(stmt.order_by(Event.id.desc()).limit(limit).offset(offset)))
    leaves = trust_service.leaves_for(
        session, LEAF_KINDS["retirement"], [str(e.id) for e, _, _ in rows]
    )
    out = []
    for event, batch, account in rows:
        prefix = batch_prefix(batch)
        out.append(
            RetirementView(
                retirement_no=event.retirement_no or "",
                event_id=event.id,
                batch_id=batch.id,
                serial_prefix=prefix,
                serials=[render_serial(prefix, a, b) for a, b in event.ranges],
                quantity=event.quantity,
                purpose=event.purpose or "",
                beneficiary=event.beneficiary or "",
                note=event.note,
                account_id=account.id,
                holder=account.label,
                vintage=batch.vintage,
                project_number=batch.project_number,
                created_at=event.created_at,
                proof=_proof(leaves.get(str(event.id))),
            )
        )
    return out


def get_retirement(session: Session, retirement_no: str) -> RetirementView:
    event_id = session.scalar(
        select(Event.id).where(Event.retirement_no == retirement_no.strip().upper())
    )
    if event_id is None:
        raise RetirementNotFound(f"no retirement {retirement_no}", field="retirement_no")
    found = list_retirements(session, q=retirement_no, limit=1)
    return found[0]


def events_of_batch(session: Session, batch_id: int) -> list[Event]:
    return list(
        session.scalars(select(Event).where(Event.batch_id == batch_id).order_by(Event.id)).all()
    )


def batches_for_source(session: Session, source_kind: str, source_ref: str) -> list[Batch]:
    return list(
        session.scalars(
            select(Batch).where(Batch.source_kind == source_kind, Batch.source_ref == source_ref)
        ).all()
    )

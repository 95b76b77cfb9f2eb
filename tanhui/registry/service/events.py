"""Issue, transfer, retire and cancel: each one event row, its blocks, one ledger transfer of the
batch's credit asset and one trust-log leaf, in the caller's transaction (flush, never commit)."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from typing import Any

from sqlalchemy import func, select, update
from sqlalchemy.orm import Session

from tanhui.identity.principal import Principal as Actor
from tanhui.kit.db import utcnow
from tanhui.kit.dialect import for_update
from tanhui.kit.errors import Forbidden, IdempotencyConflict, InvalidInput
from tanhui.kit.fingerprint import fingerprint
from tanhui.kit.settings import get_settings
from tanhui.ledger import service as ledger_service
from tanhui.registry.models import Batch, Block, Event, RegistryAccount
from tanhui.registry.service.common import (
    CREDIT_UNIT,
    LEAF_KINDS,
    PURPOSES,
    BatchNotFound,
    InsufficientCredits,
    _ledger_account_id,
    _require_operator,
    asset_code,
    batch_prefix,
    get_account,
    may_act_for,
    retirement_number,
    serial_prefix,
)
from tanhui.trust import leaf as trust_leaf
from tanhui.trust import service as trust_service


def _replay(session: Session, key: str, digest: str) -> Event | None:
    existing = session.scalars(select(Event).where(Event.idempotency_key == key)).one_or_none()
    if existing is None:
        return None
    if existing.request_hash != digest:
        raise IdempotencyConflict(key.split(":", 2)[-1])
    return existing


def _new_event(session: Session, actor: Actor, **values: Any) -> Event:
    event = Event(actor_kind=actor.kind, actor_id=actor.id, created_at=utcnow(), **values)
    session.add(event)
    session.flush()
    return event


def get_batch(session: Session, batch_id: int) -> Batch:
    batch = session.get(Batch, batch_id)
    if batch is None:
        raise BatchNotFound(f"batch {batch_id} does not exist", field="batch_id")
    return batch


def _post(session: Session, event: Event, batch: Batch, source: int, destination: int) -> None:
    record = ledger_service.transfer(
        session,
        idempotency_key=f"registry:event:{event.id}",
        kind=f"registry.{event.kind}",
        postings=[(source, -event.quantity), (destination, event.quantity)],
        metadata={"registry_event": event.id, "batch": batch_prefix(batch)},
    )
    event.ledger_transfer_id = record.id


def event_payload(event: Event, batch: Batch) -> dict[str, Any]:
    """The canonical trust-log payload of an event: integers and strings, no personal data.

    The beneficiary and free text enter as SHA-256 digests (a beneficiary may be a person's name).
    """
    payload: dict[str, Any] = {
        "event_id": event.id,
        "kind": event.kind,
        "batch_id": batch.id,
        "serial_prefix": batch_prefix(batch),
        "quantity": event.quantity,
        "ranges": [[int(a), int(b)] for a, b in event.ranges],
        "created_at": trust_leaf.rfc3339(event.created_at),
    }
    if event.from_account_id is not None:
        payload["from_account"] = event.from_account_id
    if event.to_account_id is not None:
        payload["to_account"] = event.to_account_id
    if event.ledger_transfer_id is not None:
        payload["ledger_transfer"] = event.ledger_transfer_id
    if event.kind == "issuance":
        payload["vintage"] = batch.vintage
        payload["methodology"] = f"{batch.methodology_id}@{batch.methodology_version}"
        payload["reduction_mg"] = batch.reduction_mg
    if event.retirement_no is not None:
        payload["retirement_no"] = event.retirement_no
        payload["purpose"] = event.purpose or ""
        payload["beneficiary_sha256"] = trust_leaf.digest(event.beneficiary or "")
    if event.note:
        payload["note_sha256"] = trust_leaf.digest(event.note)
    return payload


def _log(session: Session, event: Event, batch: Batch) -> None:
    session.flush()
    trust_service.enqueue(
        session, kind=LEAF_KINDS[event.kind], ref=str(event.id), payload=event_payload(event, batch)
    )


def reencode(session: Session, refs: Sequence[str]) -> dict[str, dict[str, Any]]:
    """Trust audit: what each registry event encodes to now (any registry leaf kind)."""
    ids = [int(r) for r in refs if r.isdigit()]
    out: dict[str, dict[str, Any]] = {}
    for event, batch in session.execute(
        select(Event, Batch).join(Batch, Batch.id == Event.batch_id).where(Event.id.in_(ids))
    ):
        out[str(event.id)] = event_payload(event, batch)
    return out


def event_refs(session: Session, kind: str) -> Iterator[list[str]]:
    """Every event id of one leaf kind, a page at a time (the trust audit checks each has a leaf)."""
    event_kind = kind.removeprefix("registry.")
    after = 0
    while ids := list(
        session.scalars(
            select(Event.id)
            .where(Event.kind == event_kind, Event.id > after)
            .order_by(Event.id)
            .limit(10_000)
        )
    ):
        yield [str(i) for i in ids]
        after = ids[-1]


def issue(
    session: Session,
    actor: Actor,
    *,
    account_id: int,
    quantity: int,
    vintage: int,
    project_number: int,
    source_kind: str,
    source_ref: str,
    idempotency_key: str,
    methodology_id: str = "",
    methodology_version: str = "",
    reduction_mg: int = 0,
) -> Batch:
    """Create a batch of `quantity` credits (units 1..quantity) in one block held by `account_id`.

    Callers (project report approval, personal aggregation) serialise issuance per project, so the
    batch sequence `count + 1` is safe; the unique (project_number, batch_seq) key backs it up.
    """
    _require_operator(actor, "issue credits")
    if type(quantity) is not int or quantity <= 0:
        raise InvalidInput("an issuance is a positive whole number of credits", field="quantity")
    key = f"issuance:{idempotency_key}"
    request = {
        "account": account_id,
        "quantity": quantity,
        "vintage": vintage,
        "project": project_number,
        "source": [source_kind, source_ref],
    }
    digest = fingerprint(request)
    existing = _replay(session, key, digest)
    if existing is not None:
        return get_batch(session, existing.batch_id)
    account = get_account(session, account_id)
    seq = 1 + (
        session.scalar(
            select(func.coalesce(func.max(Batch.batch_seq), 0)).where(
                Batch.project_number == project_number
            )
        )
        or 0
    )
    prefix = serial_prefix(vintage, project_number, seq)
    code = asset_code(prefix)
    ledger_service.ensure_asset(
        session, code, unit=CREDIT_UNIT, description=f"Credits of batch {prefix} (1 = 1 tCO2e)"
    )
    batch = Batch(
        vintage=vintage,
        project_number=project_number,
        batch_seq=seq,
        quantity=quantity,
        asset_code=code,
        source_kind=source_kind,
        source_ref=source_ref,
        methodology_id=methodology_id,
        methodology_version=methodology_version,
        reduction_mg=reduction_mg,
        issued_to_id=account.id,
        created_at=utcnow(),
    )
    session.add(batch)
    session.flush()
    event = _new_event(
        session,
        actor,
        kind="issuance",
        batch_id=batch.id,
        quantity=quantity,
        to_account_id=account.id,
        ranges=[[1, quantity]],
        idempotency_key=key,
        request_hash=digest,
    )
    session.add(
        Block(
            batch_id=batch.id,
            serial_start=1,
            serial_end=quantity,
            quantity=quantity,
            account_id=account.id,
            status="active",
            created_by_event_id=event.id,
            created_at=event.created_at,
        )
    )
    source = ledger_service.platform_account(session, code, "issuance")
    _post(session, event, batch, source.id, _ledger_account_id(session, account, code))
    _log(session, event, batch)
    return batch


def _move(
    session: Session,
    event: Event,
    *,
    account: RegistryAccount,
    block_id: int | None,
    to_account_id: int,
    to_status: str,
) -> None:
    """Close the holder's lowest-numbered active blocks and create children tiling each exactly."""
    stmt = select(Block).where(
        Block.batch_id == event.batch_id, Block.account_id == account.id, Block.status == "active"
    )
    if block_id is not None:
        stmt = stmt.where(Block.id == block_id)
    # Lock in id order (deadlock-free between two movers), consume in serial order.
    blocks = list(session.scalars(for_update(session, stmt.order_by(Block.id))).all())
    blocks.sort(key=lambda b: b.serial_start)
    available = sum(b.quantity for b in blocks)
    if available < event.quantity:
        where = f"block {block_id}" if block_id is not None else "this batch"
        raise InsufficientCredits(
            f"account {account.id} holds {available} active credits of {where}, "
            f"{event.quantity} requested",
            field="quantity",
            extra={"available": available},
        )
    remaining = event.quantity
    ranges: list[list[int]] = []
    now = event.created_at
    for block in blocks:
        if remaining == 0:
            break
        take = min(remaining, block.quantity)
        closed = session.execute(
            update(Block)
            .where(Block.id == block.id, Block.status == "active")
            .values(status="closed", closed_by_event_id=event.id)
            .execution_options(synchronize_session=False)
        )
        if closed.rowcount != 1:  # type: ignore[attr-defined]
            # Only reachable without the row lock (a concurrent writer closed it first).
            raise InsufficientCredits(
                f"block {block.id} was moved concurrently; retry", field="block_id"
            )
        session.expire(block)
        first, last = block.serial_start, block.serial_start + take - 1
        session.add(
            Block(
                batch_id=event.batch_id,
                serial_start=first,
                serial_end=last,
                quantity=take,
                account_id=to_account_id,
                status=to_status,
                parent_id=block.id,
                created_by_event_id=event.id,
                created_at=now,
            )
        )
        if last < block.serial_end:
            session.add(
                Block(
                    batch_id=event.batch_id,
                    serial_start=last + 1,
                    serial_end=block.serial_end,
                    quantity=block.serial_end - last,
                    account_id=account.id,
                    status="active",
                    parent_id=block.id,
                    created_by_event_id=event.id,
                    created_at=now,
                )
            )
        ranges.append([first, last])
        remaining -= take
    event.ranges = ranges
    session.flush()


def _check_quantity(quantity: int) -> None:
    if type(quantity) is not int or quantity <= 0:
        raise InvalidInput("quantity is a positive whole number of credits", field="quantity")


def _scoped_key(kind: str, actor: Actor, key: str) -> str:
    # Scoped by the caller so that two organisations choosing the same key never collide.
    return f"{kind}:{actor.kind}:{actor.id}:{key}"


def transfer(
    session: Session,
    actor: Actor,
    *,
    from_account_id: int,
    to_account_id: int,
    batch_id: int,
    quantity: int,
    idempotency_key: str,
    block_id: int | None = None,
) -> Event:
    """Move `quantity` credits of a batch (lowest serials first, or from one block) to another account."""
    _check_quantity(quantity)
    request = {
        "from": from_account_id,
        "to": to_account_id,
        "batch": batch_id,
        "quantity": quantity,
        "block": block_id,
    }
    key, digest = _scoped_key("transfer", actor, idempotency_key), fingerprint(request)
    existing = _replay(session, key, digest)
    if existing is not None:
        return existing
    source, target = get_account(session, from_account_id), get_account(session, to_account_id)
    if source.id == target.id:
        raise InvalidInput("a transfer goes to another account", field="to_account_id")
    if not may_act_for(actor, source):
        raise Forbidden("you may not move credits out of this account", code="not_account_holder")
    batch = get_batch(session, batch_id)
    event = _new_event(
        session,
        actor,
        kind="transfer",
        batch_id=batch.id,
        quantity=quantity,
        from_account_id=source.id,
        to_account_id=target.id,
        idempotency_key=key,
        request_hash=digest,
    )
    _move(
        session,
        event,
        account=source,
        block_id=block_id,
        to_account_id=target.id,
        to_status="active",
    )
    _post(
        session,
        event,
        batch,
        _ledger_account_id(session, source, batch.asset_code),
        _ledger_account_id(session, target, batch.asset_code),
    )
    _log(session, event, batch)
    return event


def retire(
    session: Session,
    actor: Actor,
    *,
    account_id: int,
    batch_id: int,
    quantity: int,
    purpose: str,
    beneficiary: str,
    idempotency_key: str,
    note: str | None = None,
    block_id: int | None = None,
) -> Event:
    """Take credits out of circulation for a named purpose and beneficiary (注销); returns the event
    whose `retirement_no` (RT-<year>-<event id>) is the public retirement id."""
    _check_quantity(quantity)
    if purpose not in PURPOSES:
        raise InvalidInput(f"purpose must be one of {', '.join(PURPOSES)}", field="purpose")
    beneficiary = (beneficiary or "").strip()
    if not beneficiary or len(beneficiary) > 200:
        raise InvalidInput(
            "a retirement names its beneficiary (1-200 characters)", field="beneficiary"
        )
    if note is not None and len(note) > 500:
        raise InvalidInput("note is at most 500 characters", field="note")
    request = {
        "account": account_id,
        "batch": batch_id,
        "quantity": quantity,
        "purpose": purpose,
        "beneficiary": beneficiary,
        "note": note,
        "block": block_id,
    }
    key, digest = _scoped_key("retirement", actor, idempotency_key), fingerprint(request)
    existing = _replay(session, key, digest)
    if existing is not None:
        return existing
    holder = get_account(session, account_id)
    if not may_act_for(actor, holder):
        raise Forbidden("you may not retire credits of this account", code="not_account_holder")
    batch = get_batch(session, batch_id)
    event = _new_event(
        session,
        actor,
        kind="retirement",
        batch_id=batch.id,
        quantity=quantity,
        from_account_id=holder.id,
        purpose=purpose,
        beneficiary=beneficiary,
        note=note,
        idempotency_key=key,
        request_hash=digest,
    )
    year = event.created_at.astimezone(get_settings().zone).year
    event.retirement_no = retirement_number(year, event.id)
    _take_out_of_circulation(session, event, batch, holder, block_id=block_id, status="retired")
    return event


def cancel(
    session: Session,
    actor: Actor,
    *,
    account_id: int,
    batch_id: int,
    quantity: int,
    reason: str,
    idempotency_key: str,
    block_id: int | None = None,
) -> Event:
    """The operator takes credits out of circulation without a claim (e.g. over-issuance found later)."""
    _require_operator(actor, "cancel credits")
    _check_quantity(quantity)
    reason = (reason or "").strip()
    if not reason or len(reason) > 500:
        raise InvalidInput("a cancellation records why (1-500 characters)", field="reason")
    request = {
        "account": account_id,
        "batch": batch_id,
        "quantity": quantity,
        "reason": reason,
        "block": block_id,
    }
    key, digest = _scoped_key("cancellation", actor, idempotency_key), fingerprint(request)
    existing = _replay(session, key, digest)
    if existing is not None:
        return existing
    holder = get_account(session, account_id)
    batch = get_batch(session, batch_id)
    event = _new_event(
        session,
        actor,
        kind="cancellation",
        batch_id=batch.id,
        quantity=quantity,
        from_account_id=holder.id,
        note=reason,
        idempotency_key=key,
        request_hash=digest,
    )
    _take_out_of_circulation(session, event, batch, holder, block_id=block_id, status="cancelled")
    return event


def _take_out_of_circulation(
    session: Session,
    event: Event,
    batch: Batch,
    holder: RegistryAccount,
    *,
    block_id: int | None,
    status: str,
) -> None:
    """Retirement and cancellation alike: the holder's blocks take the status, the credits move to
    the platform's ledger account of the same name, and the event becomes a trust-log leaf."""
    _move(
        session, event, account=holder, block_id=block_id, to_account_id=holder.id, to_status=status
    )
    sink = ledger_service.platform_account(session, batch.asset_code, status)
    _post(session, event, batch, _ledger_account_id(session, holder, batch.asset_code), sink.id)
    _log(session, event, batch)

"""Registry use cases: issue, transfer, retire, cancel serial-numbered credits; public views; the check.

Every moving use case is one event row, the blocks it closes and creates, one ledger transfer of the
batch's credit asset and one trust-log leaf, all in the caller's transaction (flush, never commit).
Serial format and the block rules: docs/registry.md.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import date, datetime
from typing import Any

from sqlalchemy import func, or_, select, update
from sqlalchemy.orm import Session

from tanhui.identity.principal import Principal as Actor
from tanhui.kit.db import utcnow
from tanhui.kit.dialect import for_update, insert_ignore
from tanhui.kit.errors import Conflict, Forbidden, IdempotencyConflict, InvalidInput, NotFound
from tanhui.kit.fingerprint import fingerprint
from tanhui.kit.settings import get_settings
from tanhui.ledger import service as ledger_service
from tanhui.ledger.service import CheckProblem
from tanhui.registry.models import Batch, Block, Event, PersonalCarry, RegistryAccount
from tanhui.trust import leaf as trust_leaf
from tanhui.trust import service as trust_service

TONNE_MG = 1_000_000_000
"""1 credit = 1 tCO2e = 10^9 mg CO2e."""
CREDIT_UNIT = "tCO2e"
SERIAL_PREFIX = "TH"
PERSONAL_PROJECT_NUMBER = 0
"""Project number of batches issued from aggregated personal reductions (分布式碳账户)."""

PURPOSES = ("event_neutrality", "corporate_neutrality", "eco_compensation", "voluntary")
"""Why credits are retired: a carbon-neutral event (大型活动碳中和), a company's own neutrality claim,
eco-compensation (以碳代偿, e.g. court-ordered for illegal logging) or a voluntary offset."""
EVENT_KINDS = ("issuance", "transfer", "retirement", "cancellation")
LEAF_KINDS = {k: f"registry.{k}" for k in EVENT_KINDS}
LIVE_STATUSES = ("active", "retired", "cancelled")

PLATFORM_OWNER = ledger_service.PLATFORM
_REGISTRY_LEDGER_NAME = "registry"  # the platform's own (bounded) holding account


class InsufficientCredits(Conflict):
    code = "insufficient_credits"


class BatchNotFound(NotFound):
    code = "batch_not_found"


class RegistryAccountNotFound(NotFound):
    code = "registry_account_not_found"


class RetirementNotFound(NotFound):
    code = "retirement_not_found"


class NothingToIssue(Conflict):
    code = "nothing_to_issue"


# --- serials ---------------------------------------------------------------------------------------


def serial_prefix(vintage: int, project_number: int, batch_seq: int) -> str:
    return f"{SERIAL_PREFIX}-{vintage:04d}-{project_number:06d}-{batch_seq:03d}"


def render_serial(prefix: str, first: int, last: int) -> str:
    """`TH-2026-000123-001-000001-000500`: units first..last (inclusive) of the batch `prefix`."""
    return f"{prefix}-{first:06d}-{last:06d}"


def batch_prefix(batch: Batch) -> str:
    return serial_prefix(batch.vintage, batch.project_number, batch.batch_seq)


def asset_code(prefix: str) -> str:
    return f"CREDIT:{prefix}"


def retirement_number(year: int, event_id: int) -> str:
    return f"RT-{year:04d}-{event_id:06d}"


# --- accounts --------------------------------------------------------------------------------------


def _account(
    session: Session, owner_type: str, owner_id: str, account_type: str, label: str
) -> RegistryAccount:
    found = session.scalars(
        select(RegistryAccount).where(
            RegistryAccount.owner_type == owner_type, RegistryAccount.owner_id == owner_id
        )
    ).one_or_none()
    if found is not None:
        return found
    session.execute(
        insert_ignore(session, RegistryAccount.__table__, ["owner_type", "owner_id"]),  # type: ignore[arg-type]
        {
            "owner_type": owner_type,
            "owner_id": owner_id,
            "account_type": account_type,
            "label": label,
            "created_at": utcnow(),
        },
    )
    return session.scalars(
        select(RegistryAccount).where(
            RegistryAccount.owner_type == owner_type, RegistryAccount.owner_id == owner_id
        )
    ).one()


def account_for_organisation(session: Session, organisation_id: int) -> RegistryAccount:
    """The organisation's registry account, opened on first use (ledger owner "org").

    Its account type (for the public holdings view) is the organisation's kind; 404 if there is no
    such organisation.
    """
    from tanhui.identity import service as identity_service

    found = session.scalars(
        select(RegistryAccount).where(
            RegistryAccount.owner_type == "org", RegistryAccount.owner_id == str(organisation_id)
        )
    ).one_or_none()
    if found is not None:
        return found
    org = identity_service.get_organisation(session, organisation_id)
    return _account(session, "org", str(organisation_id), org.kind, org.name)


def platform_account(session: Session) -> RegistryAccount:
    """The platform's own registry account (aggregated personal reductions are issued into it)."""
    return _account(session, PLATFORM_OWNER, PLATFORM_OWNER, "platform", "碳惠平台 Tanhui platform")


def get_account(session: Session, account_id: int) -> RegistryAccount:
    account = session.get(RegistryAccount, account_id)
    if account is None:
        raise RegistryAccountNotFound(
            f"registry account {account_id} does not exist", field="account_id"
        )
    return account


def _ledger_account_id(session: Session, account: RegistryAccount, asset: str) -> int:
    if account.owner_type == PLATFORM_OWNER:
        return ledger_service.open_account(
            session,
            owner_type=PLATFORM_OWNER,
            owner_id=PLATFORM_OWNER,
            asset=asset,
            name=_REGISTRY_LEDGER_NAME,
            bounded=True,
        ).id
    return ledger_service.open_account(
        session, owner_type=account.owner_type, owner_id=account.owner_id, asset=asset
    ).id


def _is_operator(actor: Actor) -> bool:
    return "operator_admin" in actor.roles


def _require_operator(actor: Actor, what: str) -> None:
    if not _is_operator(actor):
        raise Forbidden(f"only the platform operator may {what}", code="operator_only")


def may_act_for(actor: Actor, account: RegistryAccount) -> bool:
    """Staff of the holding organisation move its credits; the operator moves the platform's."""
    if account.owner_type == PLATFORM_OWNER:
        return _is_operator(actor)
    return (
        actor.kind == "staff"
        and actor.organisation_id is not None
        and str(actor.organisation_id) == account.owner_id
    )


# --- events ----------------------------------------------------------------------------------------


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


# --- personal aggregation --------------------------------------------------------------------------


def issue_personal_batch(
    session: Session,
    actor: Actor,
    *,
    scenario: str,
    start: date,
    end: date,
    idempotency_key: str,
) -> Batch:
    """Issue whole-tonne credits from citizens' unissued reductions of a scenario and period into the
    platform's registry account (as Wuhan does for its distributed carbon accounts).

    Which records: every unissued record of the scenario in [start, end] joins the batch and is marked
    issued (at most once, by the activity part's conditional update). The pool is those records plus the
    fraction carried from the scenario's previous batch; whole tonnes are issued and the fraction below
    one tonne is carried to the next batch of the scenario (registry_personal_carry), never lost or
    rounded up. When the pool is below one tonne nothing is issued and the records stay unissued.
    """
    from tanhui.activity import service as activity_service

    _require_operator(actor, "issue credits")
    if end < start:
        raise InvalidInput("end is before start", field="end")
    key = f"issuance:personal:{idempotency_key}"
    request = {"scenario": scenario, "start": start.isoformat(), "end": end.isoformat()}
    existing = _replay(session, key, fingerprint(request))
    if existing is not None:
        return get_batch(session, existing.batch_id)
    session.execute(
        insert_ignore(session, PersonalCarry.__table__, ["scenario"]),  # type: ignore[arg-type]
        {"scenario": scenario, "carry_mg": 0, "updated_at": utcnow()},
    )
    carry = session.scalars(
        for_update(session, select(PersonalCarry).where(PersonalCarry.scenario == scenario))
    ).one()
    total_mg, record_ids = activity_service.unissued_reductions(
        session, scenario=scenario, start=start, end=end
    )
    pool = carry.carry_mg + int(total_mg)
    credits, remainder = divmod(pool, TONNE_MG)
    if not record_ids or credits == 0:
        raise NothingToIssue(
            f"{scenario} {start}..{end}: {pool} mg unissued, less than one tonne",
            extra={"pool_mg": pool},
        )
    account = platform_account(session)
    batch = _issue_with_key(
        session,
        actor,
        key=key,
        digest=fingerprint(request),
        account=account,
        quantity=credits,
        vintage=end.year,
        project_number=PERSONAL_PROJECT_NUMBER,
        source_kind="personal",
        source_ref=f"{scenario}:{start.isoformat()}:{end.isoformat()}",
        reduction_mg=pool - remainder,
    )
    activity_service.mark_issued(session, list(record_ids), batch_ref=batch_prefix(batch))
    carry.carry_mg = remainder
    carry.updated_at = utcnow()
    session.flush()
    return batch


def _issue_with_key(
    session: Session,
    actor: Actor,
    *,
    key: str,
    digest: str,
    account: RegistryAccount,
    quantity: int,
    vintage: int,
    project_number: int,
    source_kind: str,
    source_ref: str,
    reduction_mg: int,
) -> Batch:
    # `issue` scopes its own key; personal batches keep the request hash of the period instead.
    batch = issue(
        session,
        actor,
        account_id=account.id,
        quantity=quantity,
        vintage=vintage,
        project_number=project_number,
        source_kind=source_kind,
        source_ref=source_ref,
        idempotency_key=key.removeprefix("issuance:"),
        reduction_mg=reduction_mg,
    )
    event = session.scalars(
        select(Event).where(Event.batch_id == batch.id, Event.kind == "issuance")
    ).one()
    event.request_hash = digest
    session.flush()
    return batch


def personal_carry_mg(session: Session, scenario: str) -> int:
    row = session.get(PersonalCarry, scenario)
    return row.carry_mg if row is not None else 0


# --- public views ----------------------------------------------------------------------------------


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


# --- the registry/ledger check ---------------------------------------------------------------------


def check(session: Session) -> list[CheckProblem]:
    """Blocks tile each batch's 1..issued exactly, and per batch and holder the active block total
    equals the holder's ledger balance; retired/cancelled totals equal the platform sinks."""
    problems: list[CheckProblem] = []
    batches = {b.id: b for b in session.scalars(select(Batch)).all()}
    live: dict[int, list[tuple[int, int, int]]] = defaultdict(list)
    for block_id, batch_id, start, end in session.execute(
        select(Block.id, Block.batch_id, Block.serial_start, Block.serial_end).where(
            Block.status.in_(LIVE_STATUSES)
        )
    ):
        live[batch_id].append((start, end, block_id))
    for batch_id, batch in batches.items():
        subject = f"batch {batch_prefix(batch)}"
        expected = 1
        for start, end, block_id in sorted(live.get(batch_id, [])):
            if start < expected:
                problems.append(
                    CheckProblem("serial_overlap", subject, f"block {block_id} starts at {start}")
                )
            elif start > expected:
                problems.append(
                    CheckProblem(
                        "serial_gap", subject, f"units {expected}..{start - 1} in no block"
                    )
                )
            expected = max(expected, end + 1)
        if expected != batch.quantity + 1:
            problems.append(
                CheckProblem(
                    "serial_tiling",
                    subject,
                    f"live blocks end at {expected - 1}, issued {batch.quantity}",
                )
            )
    sums: dict[tuple[int, int, str], int] = defaultdict(int)
    for batch_id, account_id, status, qty in session.execute(
        select(Block.batch_id, Block.account_id, Block.status, func.sum(Block.quantity)).group_by(
            Block.batch_id, Block.account_id, Block.status
        )
    ):
        sums[(batch_id, account_id, status)] = int(qty)
    accounts = {a.id: a for a in session.scalars(select(RegistryAccount)).all()}
    holders = {(b, a) for b, a, _ in sums}
    for batch_id, account_id in sorted(holders):
        batch, account = batches[batch_id], accounts[account_id]
        blocks_total = sums.get((batch_id, account_id, "active"), 0)
        ledger_id = _ledger_account_id(session, account, batch.asset_code)
        held = ledger_service.balance(session, ledger_id).balance
        if held != blocks_total:
            problems.append(
                CheckProblem(
                    "registry_ledger_mismatch",
                    f"batch {batch_prefix(batch)} account {account_id}",
                    f"active blocks {blocks_total}, ledger {held}",
                )
            )
    sinks: tuple[tuple[str | None, str], ...] = (
        ("retired", "retired"),
        ("cancelled", "cancelled"),
        (None, "issuance"),
    )
    for batch_id, batch in batches.items():
        for wanted, sink in sinks:
            if wanted is None:
                expected_total = -batch.quantity
            else:
                expected_total = sum(
                    v for (b, _, s), v in sums.items() if b == batch_id and s == wanted
                )
                if expected_total == 0:
                    continue  # no sink account was ever needed; do not open one from a check
            account_ = ledger_service.platform_account(session, batch.asset_code, sink)
            got = ledger_service.balance(session, account_.id).balance
            if got != expected_total:
                problems.append(
                    CheckProblem(
                        "registry_ledger_mismatch",
                        f"batch {batch_prefix(batch)} {sink}",
                        f"registry {expected_total}, ledger {got}",
                    )
                )
    return problems


def totals(session: Session) -> Mapping[str, int]:
    """Issued, active, retired and cancelled credits over all batches (for reports)."""
    issued = int(session.scalar(select(func.coalesce(func.sum(Batch.quantity), 0))) or 0)
    out = {"issued": issued, "active": 0, "retired": 0, "cancelled": 0}
    for status, qty in session.execute(
        select(Block.status, func.sum(Block.quantity))
        .where(Block.status.in_(LIVE_STATUSES))
        .group_by(Block.status)
    ):
        out[status] = int(qty)
    return out

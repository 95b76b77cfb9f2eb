"""Personal aggregation: credited personal reductions issued as whole-tonne batches."""

from __future__ import annotations

from datetime import date

from sqlalchemy import select
from sqlalchemy.orm import Session

from tanhui.identity.principal import Principal as Actor
from tanhui.kit.db import utcnow
from tanhui.kit.dialect import for_update, insert_ignore
from tanhui.kit.errors import InvalidInput
from tanhui.kit.fingerprint import fingerprint
from tanhui.registry.models import Batch, Event, PersonalCarry, RegistryAccount
from tanhui.registry.service.common import (
    PERSONAL_PROJECT_NUMBER,
    TONNE_MG,
    NothingToIssue,
    _require_operator,
    batch_prefix,
    platform_account,
)
from tanhui.registry.service.events import _replay, get_batch, issue


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

"""The registry's vocabulary: constants, errors, serial numbers and accounts."""

from __future__ import annotations

from sqlalchemy import select
from sqlalchemy.orm import Session

from tanhui.identity.principal import Principal as Actor
from tanhui.kit.db import utcnow
from tanhui.kit.dialect import insert_ignore
from tanhui.kit.errors import Conflict, Forbidden, NotFound
from tanhui.ledger import service as ledger_service
from tanhui.registry.models import Batch, RegistryAccount

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

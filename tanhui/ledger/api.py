"""Ledger routes: the asset list is public; balances and the journal check are for operators.

Value moves only through the parts' own use cases, never through a generic transfer endpoint.
"""

from __future__ import annotations

from fastapi import APIRouter, Depends
from sqlalchemy import select
from sqlalchemy.orm import Session

from tanhui import wiring
from tanhui.identity.auth import Principal, require_role
from tanhui.kit.http import get_session
from tanhui.ledger import service as ledger_service
from tanhui.ledger.models import Asset
from tanhui.ledger.schemas import AssetOut, BalanceOut, CheckOut, CheckProblemOut

router = APIRouter(prefix="/v1/ledger", tags=["ledger"])


@router.get("/assets", response_model=list[AssetOut], summary="Assets counted by the ledger")
def list_assets(session: Session = Depends(get_session)) -> list[AssetOut]:
    assets = session.scalars(select(Asset).order_by(Asset.code))
    return [AssetOut(code=a.code, unit=a.unit, description=a.description) for a in assets]


@router.get(
    "/accounts/{account_id}",
    response_model=BalanceOut,
    summary="An account's balance (operators)",
)
def account_balance(
    account_id: int,
    session: Session = Depends(get_session),
    _: Principal = Depends(require_role("operator_admin")),
) -> BalanceOut:
    b = ledger_service.balance(session, account_id)
    return BalanceOut(
        account_id=b.account_id,
        asset=b.asset,
        balance=b.balance,
        held=b.held,
        available=b.available,
    )


@router.get("/check", response_model=CheckOut, summary="Recompute every balance from the journal")
def run_check(
    session: Session = Depends(get_session),
    _: Principal = Depends(require_role("operator_admin")),
) -> CheckOut:
    problems = ledger_service.check(session) + wiring.extra_checks(session)
    return CheckOut(
        ok=not problems,
        problems=[
            CheckProblemOut(kind=p.kind, subject=p.subject, detail=p.detail) for p in problems
        ],
    )

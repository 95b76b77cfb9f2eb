"""Read-only ledger routes. Value moves only through the parts' own use cases."""

from __future__ import annotations

from fastapi import APIRouter, Depends
from sqlalchemy import select
from sqlalchemy.orm import Session

from tanhui.kit.http import get_session
from tanhui.ledger import service as ledger_service
from tanhui.ledger.models import Asset
from tanhui.ledger.schemas import AssetOut

router = APIRouter(prefix="/v1/ledger", tags=["ledger"])


@router.get("/assets", response_model=list[AssetOut], summary="Assets counted by the ledger")
def list_assets(session: Session = Depends(get_session)) -> list[AssetOut]:
    assets = session.scalars(select(Asset).order_by(Asset.code))
    return [AssetOut(code=a.code, unit=a.unit, description=a.description) for a in assets]


__all__ = ["ledger_service", "router"]

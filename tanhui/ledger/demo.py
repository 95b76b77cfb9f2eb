"""Ledger demo data: the base assets and the platform's system accounts."""

from __future__ import annotations

from typing import TYPE_CHECKING

from sqlalchemy.orm import Session

from tanhui.ledger import service as ledger_service

if TYPE_CHECKING:
    from tanhui.demo import DemoContext


def seed(session: Session, ctx: DemoContext) -> None:
    for code, (unit, description) in ledger_service.BASE_ASSETS.items():
        ledger_service.ensure_asset(session, code, unit=unit, description=description)
    for asset in ledger_service.BASE_ASSETS:
        ledger_service.platform_account(session, asset, "issuance")
    ctx.summary.append(
        "ledger: assets CO2E_MG, POINT, CNY_FEN and the platform's issuance accounts"
    )

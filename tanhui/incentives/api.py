"""Citizen points routes: balance, lots and what expires when, with the value of a point shown."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Depends
from sqlalchemy.orm import Session

from tanhui.identity.auth import Principal, current_citizen
from tanhui.incentives import service as incentives_service
from tanhui.kit.http import get_session

router = APIRouter(prefix="/v1/me", tags=["incentives"])


@router.get("/points", summary="My points: balance, value, lots and what expires when")
def my_points(
    principal: Principal = Depends(current_citizen), session: Session = Depends(get_session)
) -> dict[str, Any]:
    s = incentives_service.points_summary(session, principal.id)
    return {
        "balance": s.balance,
        "held": s.held,
        "available": s.available,
        "level": incentives_service.level(session, principal.id),
        "carry_mg": s.carry_mg,
        "mg_per_point": s.mg_per_point,
        "fen_per_100_points": s.fen_per_100_points,
        "value_fen": s.value_fen,
        "lots": [
            {
                "earned_on": lot.earned_on.isoformat(),
                "expires_on": lot.expires_on.isoformat(),
                "points": lot.points,
                "remaining": lot.remaining,
                "expired": lot.expired,
            }
            for lot in s.lots
        ],
        "expiring": [{"expires_on": d.isoformat(), "points": n} for d, n in s.expiring],
        "next_expiry": (
            {"expires_on": s.expiring[0][0].isoformat(), "points": s.expiring[0][1]}
            if s.expiring
            else None
        ),
    }

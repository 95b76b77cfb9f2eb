"""Mall routes: catalogue (public), orders (citizens), merchant console, operator economics and reports."""

from __future__ import annotations

from datetime import date
from typing import Any

from fastapi import APIRouter, Depends, Header, Query, Response
from sqlalchemy.orm import Session

from tanhui.identity.auth import Principal, current_citizen, current_principal, require_role
from tanhui.incentives import service as incentives_service
from tanhui.kit.db import utcnow
from tanhui.kit.http import get_session
from tanhui.mall import schemas
from tanhui.mall import service as mall_service
from tanhui.mall.models import Reward

router = APIRouter(prefix="/v1/mall", tags=["mall"])

merchant = require_role("merchant", "operator_admin")
operator = require_role("operator_admin")


def _reward_out(reward: Reward, fen_per_100: int) -> schemas.RewardOut:
    zh, en = mall_service.CATEGORIES[reward.category]
    return schemas.RewardOut(
        id=reward.id,
        merchant_org_id=reward.merchant_org_id,
        active=reward.active,
        category_zh=zh,
        category_en=en,
        value_fen=reward.price_points * fen_per_100 // 100,
        **{f: getattr(reward, f) for f in mall_service.REWARD_FIELDS if f != "active"},
    )


def _order_out(view: mall_service.OrderView) -> schemas.OrderOut:
    o, r = view.order, view.reward
    return schemas.OrderOut(
        id=o.id,
        reward_id=o.reward_id,
        reward_title_zh=r.title_zh,
        reward_title_en=r.title_en,
        category=o.category,
        kind=o.kind,
        merchant_org_id=o.merchant_org_id,
        citizen_id=o.citizen_id,
        quantity=o.quantity,
        points=o.points,
        status=o.status,
        codes=view.codes,
        shipping_address=view.shipping_address,
        tracking_no=o.tracking_no,
        receipt_no=o.receipt_no,
        created_at=o.created_at,
        fulfilled_at=o.fulfilled_at,
        completed_at=o.completed_at,
        cancelled_at=o.cancelled_at,
    )


@router.get("/categories", summary="The six reward categories (zh/en)")
def categories() -> list[dict[str, str]]:
    return [
        {"code": c, "name_zh": zh, "name_en": en} for c, (zh, en) in mall_service.CATEGORIES.items()
    ]


@router.get("/rewards", response_model=list[schemas.RewardOut], summary="Rewards on sale")
def list_rewards(
    category: str | None = Query(None, description="Filter by category code."),
    session: Session = Depends(get_session),
) -> list[schemas.RewardOut]:
    value = incentives_service.rule_at(session).fen_per_100_points
    return [_reward_out(r, value) for r in mall_service.list_rewards(session, category=category)]


@router.get("/rewards/{reward_id}", response_model=schemas.RewardOut, summary="One reward")
def get_reward(reward_id: int, session: Session = Depends(get_session)) -> schemas.RewardOut:
    value = incentives_service.rule_at(session).fen_per_100_points
    return _reward_out(mall_service.get_reward(session, reward_id), value)


@router.post("/orders", response_model=schemas.OrderOut, status_code=201, summary="Redeem points")
def place_order(
    body: schemas.OrderCreate,
    response: Response,
    idempotency_key: str = Header(..., alias="Idempotency-Key", min_length=1, max_length=200),
    principal: Principal = Depends(current_citizen),
    session: Session = Depends(get_session),
) -> schemas.OrderOut:
    view = mall_service.place_order(
        session,
        principal,
        reward_id=body.reward_id,
        quantity=body.quantity,
        shipping_address=body.shipping_address,
        idempotency_key=idempotency_key,
    )
    if view.replayed:
        response.status_code = 200
    return _order_out(view)


@router.get("/orders", response_model=list[schemas.OrderOut], summary="My orders")
def my_orders(
    before_id: int | None = Query(
        None, description="Keyset pagination: orders older than this id."
    ),
    limit: int = Query(50, ge=1, le=200),
    principal: Principal = Depends(current_citizen),
    session: Session = Depends(get_session),
) -> list[schemas.OrderOut]:
    return [
        _order_out(v)
        for v in mall_service.my_orders(session, principal, limit=limit, before_id=before_id)
    ]


@router.get(
    "/orders/{order_id}", response_model=schemas.OrderOut, summary="One order (owner or merchant)"
)
def get_order(
    order_id: int,
    principal: Principal = Depends(current_principal),
    session: Session = Depends(get_session),
) -> schemas.OrderOut:
    return _order_out(mall_service.get_order(session, principal, order_id))


@router.post(
    "/orders/{order_id}/cancel",
    response_model=schemas.OrderOut,
    summary="Cancel; points and stock return",
)
def cancel_order(
    order_id: int,
    body: schemas.CancelBody | None = None,
    principal: Principal = Depends(current_principal),
    session: Session = Depends(get_session),
) -> schemas.OrderOut:
    body = body or schemas.CancelBody()
    failed = body.failed and principal.kind == "staff"
    return _order_out(
        mall_service.cancel_order(session, principal, order_id, reason=body.reason, failed=failed)
    )


@router.post(
    "/orders/{order_id}/complete",
    response_model=schemas.OrderOut,
    summary="Mark received / delivered",
)
def complete_order(
    order_id: int,
    principal: Principal = Depends(current_principal),
    session: Session = Depends(get_session),
) -> schemas.OrderOut:
    return _order_out(mall_service.complete_order(session, principal, order_id))


# --- merchant console ------------------------------------------------------------------------------


@router.get(
    "/merchant/rewards", response_model=list[schemas.RewardOut], summary="My organisation's rewards"
)
def merchant_rewards(
    principal: Principal = Depends(merchant), session: Session = Depends(get_session)
) -> list[schemas.RewardOut]:
    org = None if mall_service.is_operator(principal) else mall_service.merchant_org(principal)
    value = incentives_service.rule_at(session).fen_per_100_points
    rewards = mall_service.list_rewards(session, merchant_org_id=org, include_inactive=True)
    return [_reward_out(r, value) for r in rewards]


@router.post(
    "/merchant/rewards", response_model=schemas.RewardOut, status_code=201, summary="List a reward"
)
def create_reward(
    body: schemas.RewardCreate,
    principal: Principal = Depends(merchant),
    session: Session = Depends(get_session),
) -> schemas.RewardOut:
    values = body.model_dump(exclude={"merchant_org_id"})
    reward = mall_service.create_reward(
        session, principal, merchant_org_id=body.merchant_org_id, **values
    )
    return _reward_out(reward, incentives_service.rule_at(session).fen_per_100_points)


@router.patch(
    "/merchant/rewards/{reward_id}", response_model=schemas.RewardOut, summary="Change a reward"
)
def update_reward(
    reward_id: int,
    body: schemas.RewardUpdate,
    principal: Principal = Depends(merchant),
    session: Session = Depends(get_session),
) -> schemas.RewardOut:
    reward = mall_service.update_reward(
        session, principal, reward_id, **body.model_dump(exclude_unset=True)
    )
    return _reward_out(reward, incentives_service.rule_at(session).fen_per_100_points)


@router.post(
    "/merchant/rewards/{reward_id}/codes",
    response_model=schemas.CodesImported,
    summary="Import or generate codes",
)
def import_codes(
    reward_id: int,
    body: schemas.CodesImport,
    principal: Principal = Depends(merchant),
    session: Session = Depends(get_session),
) -> schemas.CodesImported:
    if (body.csv is None) == (body.generate is None):
        from tanhui.kit.errors import InvalidInput

        raise InvalidInput("send exactly one of csv or generate", field="csv")
    if body.csv is not None:
        added = mall_service.import_codes(session, principal, reward_id, body.csv)
    else:
        added = mall_service.generate_codes(session, principal, reward_id, body.generate or 0)
    return schemas.CodesImported(
        added=added, available=mall_service.available_codes(session, reward_id)
    )


@router.get(
    "/merchant/redemptions", response_model=list[schemas.OrderOut], summary="Orders of my rewards"
)
def merchant_redemptions(
    before_id: int | None = Query(None),
    limit: int = Query(50, ge=1, le=200),
    principal: Principal = Depends(merchant),
    session: Session = Depends(get_session),
) -> list[schemas.OrderOut]:
    return [
        _order_out(v)
        for v in mall_service.merchant_orders(session, principal, limit=limit, before_id=before_id)
    ]


@router.post(
    "/merchant/redemptions/verify",
    response_model=schemas.VerifyOut,
    summary="Write a code off at the till (核销)",
)
def verify(
    body: schemas.VerifyBody,
    principal: Principal = Depends(merchant),
    session: Session = Depends(get_session),
) -> schemas.VerifyOut:
    w = mall_service.verify_code(session, principal, code=body.code)
    return schemas.VerifyOut(
        code=w.code,
        order_id=w.order_id,
        reward_id=w.reward_id,
        title_zh=w.title_zh,
        title_en=w.title_en,
        used_at=w.used_at,
    )


@router.post(
    "/merchant/orders/{order_id}/ship",
    response_model=schemas.OrderOut,
    summary="Ship a physical reward",
)
def ship(
    order_id: int,
    body: schemas.ShipBody,
    principal: Principal = Depends(merchant),
    session: Session = Depends(get_session),
) -> schemas.OrderOut:
    return _order_out(
        mall_service.ship_order(session, principal, order_id, tracking_no=body.tracking_no)
    )


# --- operators: economics and reports ---------------------------------------------------------------


@router.get(
    "/economics", summary="Points liability, expiry schedule, redemption forecast, campaigns"
)
def economics(
    _: Principal = Depends(operator), session: Session = Depends(get_session)
) -> dict[str, Any]:
    return mall_service.economics(session)


@router.get("/point-value", summary="What a point is worth (public)")
def point_value(session: Session = Depends(get_session)) -> dict[str, Any]:
    rule = incentives_service.rule_at(session)
    return {
        "fen_per_100_points": rule.fen_per_100_points,
        "mg_per_point": rule.mg_per_point,
        "expiry_years": rule.expiry_years,
    }


@router.put("/point-value", summary="Set what a point is worth")
def set_point_value(
    body: schemas.PointValue,
    _: Principal = Depends(operator),
    session: Session = Depends(get_session),
) -> dict[str, Any]:
    rule = incentives_service.set_rule(
        session,
        effective_from=body.effective_from or utcnow(),
        fen_per_100_points=body.fen_per_100_points,
    )
    return {"fen_per_100_points": rule.fen_per_100_points, "effective_from": rule.effective_from}


@router.put("/campaigns/{code}", summary="Cap (or uncap) a campaign's points budget")
def set_campaign(
    code: str,
    body: schemas.CampaignBudget,
    _: Principal = Depends(operator),
    session: Session = Depends(get_session),
) -> dict[str, Any]:
    incentives_service.set_campaign_budget(
        session, code, budget_points=body.budget_points, name=body.name
    )
    view = {c.code: c for c in incentives_service.campaigns(session)}[code]
    return {
        "code": view.code,
        "name": view.name,
        "budget_points": view.budget_points,
        "issued_points": view.issued_points,
        "remaining_points": view.remaining_points,
    }


@router.get("/reports/redemptions", summary="Redemptions by category or reward over time")
def report_redemptions(
    by: str = Query("category", description="category or reward"),
    period: str = Query("month", description="day or month (platform time zone)"),
    start: date | None = Query(None),
    end: date | None = Query(None),
    _: Principal = Depends(operator),
    session: Session = Depends(get_session),
) -> list[dict[str, Any]]:
    return mall_service.redemptions_report(session, by=by, period=period, start=start, end=end)


@router.get("/reports/points", summary="Points issued vs spent vs expired")
def report_points(
    _: Principal = Depends(operator), session: Session = Depends(get_session)
) -> dict[str, Any]:
    return mall_service.points_report(session)


@router.get("/reports/top-merchants", summary="Merchants by points redeemed")
def report_top_merchants(
    limit: int = Query(10, ge=1, le=100),
    _: Principal = Depends(operator),
    session: Session = Depends(get_session),
) -> list[dict[str, Any]]:
    return mall_service.top_merchants(session, limit=limit)

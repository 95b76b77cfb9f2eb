"""Citizen mall pages: rewards by shelf, one reward with its redeem form, my orders and codes.

The redeem form carries an idempotency key minted when the form is rendered, so a double tap or a
resubmitted form gives the same order instead of spending points twice.
"""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Depends, Request
from fastapi.responses import HTMLResponse, Response
from sqlalchemy.orm import Session

from tanhui.identity.principal import Principal
from tanhui.incentives import service as incentives_service
from tanhui.kit.errors import InvalidInput, TanhuiError
from tanhui.kit.http import get_session
from tanhui.mall import service as mall_service
from tanhui.web import render
from tanhui.web.auth import citizen_page
from tanhui.web.views.common import N_, error_map, error_page, flash, form_data, to_int

router = APIRouter(include_in_schema=False)


def _shelves(lang: str) -> list[tuple[str, str]]:
    return [(key, zh if lang == "zh" else en) for key, (zh, en) in mall_service.CATEGORIES.items()]


@router.get("/mall", response_class=HTMLResponse)
def mall(
    request: Request,
    session: Session = Depends(get_session),
    principal: Principal = Depends(citizen_page),
) -> HTMLResponse:
    lang = render.lang_of(request)
    category = request.query_params.get("category") or None
    if category not in mall_service.CATEGORIES:
        category = None
    rewards = mall_service.list_rewards(session, category=category)
    return render.render(
        request,
        "citizen/mall.html",
        {
            "rewards": rewards,
            "shelves": _shelves(lang),
            "category": category,
            "points": incentives_service.points_summary(session, principal.id),
            "flash": flash(request),
        },
        principal=principal,
    )


def _reward_page(
    request: Request,
    session: Session,
    principal: Principal,
    reward_id: int,
    *,
    errors: dict[str, str] | None = None,
    form: dict[str, Any] | None = None,
    status_code: int = 200,
) -> HTMLResponse:
    reward = mall_service.get_reward(session, reward_id)
    return render.render(
        request,
        "citizen/reward.html",
        {
            "reward": reward,
            "points": incentives_service.points_summary(session, principal.id),
            "stock_codes": mall_service.available_codes(session, reward_id)
            if reward.kind == "coupon"
            else None,
            "errors": errors or {},
            "form": form or {"quantity": "1", "idempotency_key": render.form_key()},
            "max_quantity": mall_service.MAX_QUANTITY,
        },
        principal=principal,
        status_code=status_code,
    )


@router.get("/mall/rewards/{reward_id}", response_class=HTMLResponse)
def reward(
    request: Request,
    reward_id: str,
    session: Session = Depends(get_session),
    principal: Principal = Depends(citizen_page),
) -> HTMLResponse:
    rid = to_int(reward_id)
    try:
        if rid is None:
            raise mall_service.RewardNotFound("this reward does not exist", field="reward_id")
        return _reward_page(request, session, principal, rid)
    except TanhuiError as exc:
        return error_page(request, exc, principal, back="/mall")


@router.post("/mall/rewards/{reward_id}", response_class=HTMLResponse)
def redeem(
    request: Request,
    reward_id: str,
    session: Session = Depends(get_session),
    principal: Principal = Depends(citizen_page),
    data: dict[str, str] = Depends(form_data),
) -> Response:
    rid = to_int(reward_id)
    if rid is None:
        return error_page(
            request,
            mall_service.RewardNotFound("this reward does not exist", field="reward_id"),
            principal,
            back="/mall",
        )
    quantity = to_int(data.get("quantity"))
    form = {
        "quantity": data.get("quantity", ""),
        "shipping_address": data.get("shipping_address", ""),
        "idempotency_key": data.get("idempotency_key") or render.form_key(),
    }
    try:
        if quantity is None:
            raise InvalidInput(N_("enter a whole number"), field="quantity")
        mall_service.place_order(
            session,
            principal,
            reward_id=rid,
            quantity=quantity,
            shipping_address=form["shipping_address"].strip() or None,
            idempotency_key=form["idempotency_key"],
        )
    except TanhuiError as exc:
        session.rollback()  # a refused order leaves nothing behind; the page is read afresh
        try:
            return _reward_page(
                request,
                session,
                principal,
                rid,
                errors=error_map(request, exc),
                form=form,
                status_code=exc.status_code,
            )
        except TanhuiError as missing:
            return error_page(request, missing, principal, back="/mall")
    return render.redirect("/mall/orders?done=redeemed")


@router.get("/mall/orders", response_class=HTMLResponse)
def orders(
    request: Request,
    session: Session = Depends(get_session),
    principal: Principal = Depends(citizen_page),
) -> HTMLResponse:
    views = mall_service.my_orders(session, principal, limit=50)
    return render.render(
        request,
        "citizen/orders.html",
        {"orders": views, "flash": flash(request)},
        principal=principal,
    )


@router.post("/mall/orders/{order_id}/cancel", response_class=HTMLResponse)
def cancel(
    request: Request,
    order_id: str,
    session: Session = Depends(get_session),
    principal: Principal = Depends(citizen_page),
    _form: dict[str, str] = Depends(form_data),
) -> Response:
    oid = to_int(order_id)
    try:
        if oid is None:
            raise mall_service.OrderNotFound("this order does not exist", field="order_id")
        mall_service.cancel_order(session, principal, oid, reason="cancelled by the citizen")
    except TanhuiError as exc:
        session.rollback()
        return error_page(request, exc, principal, back="/mall/orders")
    return render.redirect("/mall/orders?done=cancelled")

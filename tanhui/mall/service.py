"""Mall use cases: rewards, code pools, redemption, fulfilment, cancellation, write-off, reports.

Every function flushes and never commits. Per-kind behaviour sits in `FULFIL` (kind -> handler).
"""

from __future__ import annotations

import base64
import csv
import hashlib
import io
import secrets
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from decimal import ROUND_HALF_EVEN, Decimal
from typing import Any

from cryptography.fernet import Fernet, InvalidToken
from sqlalchemy import func, insert, select, update
from sqlalchemy.orm import Session

from tanhui.identity import service as identity_service
from tanhui.identity.principal import Principal as Actor
from tanhui.incentives import service as incentives_service
from tanhui.kit.db import utcnow
from tanhui.kit.dialect import for_update, insert_ignore
from tanhui.kit.errors import Conflict, Forbidden, IdempotencyConflict, InvalidInput, NotFound
from tanhui.kit.fingerprint import fingerprint
from tanhui.kit.settings import get_settings
from tanhui.ledger import service as ledger_service
from tanhui.mall.models import Code, Order, Reward

# Chengdu 碳惠天府's mall groups rewards in six shelves; we keep the same six (zh, en).
CATEGORIES: dict[str, tuple[str, str]] = {
    "green_travel": ("绿色出行", "Green travel"),
    "daily_services": ("生活服务", "Daily services"),
    "cultural_goods": ("文创好物", "Cultural goods"),
    "lucky_bags": ("福袋", "Lucky bags"),
    "other_goods": ("其他商品", "Other goods"),
    "props": ("道具", "In-app props"),
}
KINDS = ("coupon", "physical", "charity")
REDEEMED = "redeemed"  # the platform POINT account redeemed points go to
OPEN = ("placed", "fulfilled", "completed")
MAX_QUANTITY = 10


class RewardNotFound(NotFound):
    code = "reward_not_found"


class OrderNotFound(NotFound):
    code = "order_not_found"


class OutOfStock(Conflict):
    code = "out_of_stock"


class NotAvailable(Conflict):
    code = "reward_not_available"


class LimitReached(Conflict):
    code = "limit_reached"


class NotEligible(Forbidden):
    code = "not_eligible"


class BadTransition(Conflict):
    code = "order_state"


class CodeNotValid(Conflict):
    code = "code_not_valid"


class CodeAlreadyUsed(Conflict):
    code = "code_already_used"


# --- who may do what ------------------------------------------------------------------------------


def is_operator(actor: Actor) -> bool:
    return actor.kind == "staff" and "operator_admin" in actor.roles


def merchant_org(actor: Actor) -> int:
    """The organisation a merchant staff member acts for (operators may act for any)."""
    if actor.kind != "staff" or "merchant" not in actor.roles or actor.organisation_id is None:
        raise Forbidden("only a merchant's staff may do this", code="merchant_only")
    return actor.organisation_id


def _may_manage(actor: Actor, merchant_org_id: int) -> bool:
    return is_operator(actor) or (
        actor.kind == "staff"
        and "merchant" in actor.roles
        and actor.organisation_id == merchant_org_id
    )


def _citizen(actor: Actor) -> int:
    if actor.kind != "citizen":
        raise Forbidden("only citizens redeem rewards", code="citizen_only")
    return actor.id


# --- shipping address encryption -------------------------------------------------------------------


def _fernet() -> Fernet:
    # A key of its own, derived from the platform secret, so rotating one use never exposes another.
    digest = hashlib.sha256(b"tanhui.mall.shipping\x00" + get_settings().secret()).digest()
    return Fernet(base64.urlsafe_b64encode(digest))


def encrypt_address(address: str) -> str:
    return _fernet().encrypt(address.encode()).decode()


def decrypt_address(token: str | None) -> str | None:
    if token is None:
        return None
    try:
        return _fernet().decrypt(token.encode()).decode()
    except InvalidToken:
        return None  # the platform secret changed; the address cannot be read any more


# --- rewards ---------------------------------------------------------------------------------------

REWARD_FIELDS = (
    "category",
    "kind",
    "title_zh",
    "title_en",
    "description_zh",
    "description_en",
    "image",
    "price_points",
    "face_value_fen",
    "stock",
    "limit_per_day",
    "limit_total",
    "available_from",
    "available_until",
    "districts",
    "min_level",
    "active",
)


def _check_reward(values: Mapping[str, Any]) -> None:
    if values.get("category") not in CATEGORIES:
        raise InvalidInput(f"category must be one of {sorted(CATEGORIES)}", field="category")
    if values.get("kind") not in KINDS:
        raise InvalidInput(f"kind must be one of {list(KINDS)}", field="kind")
    if values["kind"] == "charity" and values.get("stock") is not None:
        raise InvalidInput("a charity donation has no stock", field="stock")
    start, end = values.get("available_from"), values.get("available_until")
    if start is not None and end is not None and end <= start:
        raise InvalidInput("available_until must follow available_from", field="available_until")


def create_reward(
    session: Session, actor: Actor, *, merchant_org_id: int | None = None, **values: Any
) -> Reward:
    """A merchant lists a reward for its own organisation (an operator may list for any merchant)."""
    operator_choice = is_operator(actor) and merchant_org_id is not None
    org = merchant_org_id if operator_choice and merchant_org_id else merchant_org(actor)
    unknown = set(values) - set(REWARD_FIELDS)
    if unknown:
        raise InvalidInput(f"unknown reward fields {sorted(unknown)}", field=sorted(unknown)[0])
    _check_reward(values)
    reward = Reward(merchant_org_id=org, created_at=utcnow(), **values)
    reward.districts = list(values.get("districts") or [])
    session.add(reward)
    session.flush()
    return reward


def update_reward(session: Session, actor: Actor, reward_id: int, **changes: Any) -> Reward:
    reward = _manageable_reward(session, actor, reward_id)
    unknown = set(changes) - set(REWARD_FIELDS)
    if unknown:
        raise InvalidInput(f"unknown reward fields {sorted(unknown)}", field=sorted(unknown)[0])
    merged = {f: getattr(reward, f) for f in REWARD_FIELDS} | changes
    _check_reward(merged)
    for key, value in changes.items():
        setattr(reward, key, value)
    session.flush()
    return reward


def _manageable_reward(session: Session, actor: Actor, reward_id: int) -> Reward:
    reward = session.get(Reward, reward_id)
    # Another merchant's reward is "not found" to a merchant: no probing of who sells what.
    if reward is None or not _may_manage(actor, reward.merchant_org_id):
        raise RewardNotFound(f"reward {reward_id} does not exist", field="reward_id")
    return reward


def get_reward(session: Session, reward_id: int) -> Reward:
    reward = session.get(Reward, reward_id)
    if reward is None:
        raise RewardNotFound(f"reward {reward_id} does not exist", field="reward_id")
    return reward


def list_rewards(
    session: Session,
    *,
    category: str | None = None,
    merchant_org_id: int | None = None,
    include_inactive: bool = False,
) -> list[Reward]:
    stmt = select(Reward)
    if category is not None:
        if category not in CATEGORIES:
            raise InvalidInput(f"category must be one of {sorted(CATEGORIES)}", field="category")
        stmt = stmt.where(Reward.category == category)
    if merchant_org_id is not None:
        stmt = stmt.where(Reward.merchant_org_id == merchant_org_id)
    if not include_inactive:
        stmt = stmt.where(Reward.active.is_(True))
    return list(session.scalars(stmt.order_by(Reward.category, Reward.price_points, Reward.id)))


def available_codes(session: Session, reward_id: int) -> int:
    return int(
        session.scalar(
            select(func.count()).where(Code.reward_id == reward_id, Code.status == "available")
        )
        or 0
    )


# --- code pools ------------------------------------------------------------------------------------


def import_codes(session: Session, actor: Actor | None, reward_id: int, csv_text: str) -> int:
    """Add codes from CSV (first column, or a column named `code`); duplicates are skipped.

    `actor=None` is the CLI (an operator at the console). Returns the number of new codes.
    """
    reward = (
        get_reward(session, reward_id)
        if actor is None
        else _manageable_reward(session, actor, reward_id)
    )
    if reward.kind != "coupon":
        raise InvalidInput("only coupon rewards have code pools", field="reward_id")
    rows = list(csv.reader(io.StringIO(csv_text)))
    column = 0
    if rows and "code" in [c.strip().lower() for c in rows[0]]:
        column = [c.strip().lower() for c in rows[0]].index("code")
        rows = rows[1:]
    codes = sorted({r[column].strip() for r in rows if len(r) > column and r[column].strip()})
    for code in codes:
        if len(code) > 100:
            raise InvalidInput("a code is at most 100 characters", field="codes")
    return _add_codes(session, reward, codes)


def generate_codes(session: Session, actor: Actor | None, reward_id: int, count: int) -> int:
    reward = (
        get_reward(session, reward_id)
        if actor is None
        else _manageable_reward(session, actor, reward_id)
    )
    if reward.kind != "coupon":
        raise InvalidInput("only coupon rewards have code pools", field="reward_id")
    if not 0 < count <= 100_000:
        raise InvalidInput("count must be 1-100000", field="count")
    # 12 characters of base32 without look-alikes: 60 bits, unguessable at the till.
    alphabet = "23456789ABCDEFGHJKLMNPQRSTUVWXYZ"
    codes = ["".join(secrets.choice(alphabet) for _ in range(12)) for _ in range(count)]
    return _add_codes(session, reward, codes)


def _add_codes(session: Session, reward: Reward, codes: Sequence[str]) -> int:
    before = session.scalar(select(func.count()).where(Code.reward_id == reward.id)) or 0
    now = utcnow()
    for start in range(0, len(codes), 1000):
        session.execute(
            insert_ignore(session, Code.__table__, ["reward_id", "code"]),  # type: ignore[arg-type]
            [
                {"reward_id": reward.id, "code": c, "status": "available", "created_at": now}
                for c in codes[start : start + 1000]
            ],
        )
    after = session.scalar(select(func.count()).where(Code.reward_id == reward.id)) or 0
    return int(after) - int(before)


# --- redemption ------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class OrderView:
    order: Order
    reward: Reward
    codes: list[str]  # only filled for the order's owner (and the merchant at write-off)
    shipping_address: str | None
    replayed: bool = False


def _day_start(now: datetime) -> datetime:
    zone = get_settings().zone
    local = now.astimezone(zone)
    return local.replace(hour=0, minute=0, second=0, microsecond=0).astimezone(UTC)


def _check_eligibility(
    session: Session, citizen_id: int, reward: Reward, quantity: int, now: datetime
) -> None:
    if not reward.active:
        raise NotAvailable("this reward is not on sale", field="reward_id")
    if reward.available_from is not None and now < reward.available_from:
        raise NotAvailable("this reward is not on sale yet", field="reward_id")
    if reward.available_until is not None and now >= reward.available_until:
        raise NotAvailable("this reward is no longer on sale", field="reward_id")
    if reward.districts:
        district = _district_of(session, citizen_id)
        if district not in reward.districts:
            raise NotEligible("this reward is for residents of other districts", field="reward_id")
    if reward.min_level and incentives_service.level(session, citizen_id) < reward.min_level:
        raise NotEligible(f"this reward needs level {reward.min_level}", field="reward_id")
    counted = select(func.coalesce(func.sum(Order.quantity), 0)).where(
        Order.citizen_id == citizen_id, Order.reward_id == reward.id, Order.status.in_(OPEN)
    )
    if reward.limit_total is not None:
        had = int(session.scalar(counted) or 0)
        if had + quantity > reward.limit_total:
            raise LimitReached(f"at most {reward.limit_total} per citizen", field="quantity")
    if reward.limit_per_day is not None:
        had = int(session.scalar(counted.where(Order.created_at >= _day_start(now))) or 0)
        if had + quantity > reward.limit_per_day:
            raise LimitReached(
                f"at most {reward.limit_per_day} per citizen per day", field="quantity"
            )


def _district_of(session: Session, citizen_id: int) -> str | None:
    from tanhui.identity import service as identity_service

    return identity_service.get_citizen(session, citizen_id).district  # type: ignore[no-any-return]


def place_order(
    session: Session,
    actor: Actor,
    *,
    reward_id: int,
    quantity: int = 1,
    shipping_address: str | None = None,
    idempotency_key: str,
    now: datetime | None = None,
) -> OrderView:
    """Redeem points for a reward: points held and stock reserved, then both committed, or nothing.

    Order of locks: the citizen's point lots, the citizen's POINT account (the hold), the reward's
    stock row, then codes. Every path takes them in that order, so concurrent orders cannot deadlock.
    """
    citizen_id = _citizen(actor)
    if not idempotency_key or len(idempotency_key) > 200:
        raise InvalidInput(
            "an Idempotency-Key of 1-200 characters is required", field="idempotency_key"
        )
    if type(quantity) is not int or not 0 < quantity <= MAX_QUANTITY:
        raise InvalidInput(f"quantity must be 1-{MAX_QUANTITY}", field="quantity")
    digest = fingerprint({"r": reward_id, "q": quantity, "a": shipping_address})
    earlier = _order_by_key(session, citizen_id, idempotency_key)
    if earlier is not None:
        return _replay(session, earlier, digest)
    reward = get_reward(session, reward_id)
    if reward.kind == "physical" and not (shipping_address and shipping_address.strip()):
        raise InvalidInput("a physical reward needs a shipping address", field="shipping_address")
    if shipping_address is not None and len(shipping_address) > 500:
        raise InvalidInput(
            "the shipping address is at most 500 characters", field="shipping_address"
        )
    now = now or utcnow()
    # Checked once before taking any lock for a clear answer, and again under the lock for the race.
    _check_eligibility(session, citizen_id, reward, quantity, now)
    if reward.stock is not None and reward.stock < quantity:
        raise OutOfStock("this reward is out of stock", field="reward_id")
    points = reward.price_points * quantity
    account_id = incentives_service.point_account_id(session, citizen_id)
    sink = ledger_service.platform_account(session, ledger_service.POINT, REDEEMED)
    try:
        with session.begin_nested():
            # Lots first (row locks in id order), then the account: the same order as expiry and
            # revocation, so they cannot deadlock. Locking the lots makes this citizen's orders queue,
            # so the per-citizen limits below cannot be passed twice from two devices.
            incentives_service.consume_points(
                session, citizen_id, points, ref=_lots_ref(citizen_id, idempotency_key)
            )
            again = _order_by_key(session, citizen_id, idempotency_key)
            if again is not None:
                raise _Replayed(again)
            _check_eligibility(session, citizen_id, reward, quantity, now)
            hold = ledger_service.hold(
                session,
                idempotency_key=f"mall.order:{citizen_id}:{idempotency_key}",
                account_id=account_id,
                destination_id=sink.id,
                amount=points,
                kind="mall.redeem",
                metadata={"reward_id": reward.id, "quantity": quantity},
            )
            view = _commit_order(
                session,
                citizen_id,
                reward,
                quantity,
                points,
                hold.id,
                digest,
                idempotency_key,
                shipping_address,
                now,
            )
    except ledger_service.InsufficientFunds:
        raise incentives_service.InsufficientPoints(
            f"this needs {points} points", field="quantity", extra={"needed": points}
        ) from None
    except _Replayed as replay:
        return _replay(session, replay.order, digest)
    return view


def _lots_ref(citizen_id: int, idempotency_key: str) -> str:
    return f"mall.order:{citizen_id}:{idempotency_key}"


class _Replayed(Exception):
    def __init__(self, order: Order) -> None:
        self.order = order


def _order_by_key(session: Session, citizen_id: int, key: str) -> Order | None:
    return session.scalars(
        select(Order).where(Order.citizen_id == citizen_id, Order.idempotency_key == key)
    ).one_or_none()


def _replay(session: Session, order: Order, digest: str) -> OrderView:
    if order.request_hash != digest:
        raise IdempotencyConflict(order.idempotency_key)
    view = order_view(session, order, owner=True)
    return OrderView(view.order, view.reward, view.codes, view.shipping_address, replayed=True)


def _commit_order(
    session: Session,
    citizen_id: int,
    reward: Reward,
    quantity: int,
    points: int,
    hold_id: int,
    digest: str,
    idempotency_key: str,
    shipping_address: str | None,
    now: datetime,
) -> OrderView:
    if reward.stock is not None:
        taken = session.execute(
            update(Reward)
            .where(Reward.id == reward.id, Reward.stock >= quantity)
            .values(stock=Reward.stock - quantity)
            .execution_options(synchronize_session=False)
        )
        if taken.rowcount != 1:  # type: ignore[attr-defined]
            raise OutOfStock("this reward is out of stock", field="reward_id")
    order = Order(
        citizen_id=citizen_id,
        reward_id=reward.id,
        merchant_org_id=reward.merchant_org_id,
        category=reward.category,
        kind=reward.kind,
        quantity=quantity,
        points=points,
        status="placed",
        idempotency_key=idempotency_key,
        request_hash=digest,
        hold_id=hold_id,
        shipping_encrypted=encrypt_address(shipping_address.strip()) if shipping_address else None,
        note={},
        created_at=now,
    )
    session.add(order)
    session.flush()
    codes = FULFIL[reward.kind](session, order, reward, now)
    order.transfer_id = ledger_service.post_hold(session, hold_id).id
    session.flush()
    return OrderView(order, reward, codes, shipping_address)


def _fulfil_coupon(session: Session, order: Order, reward: Reward, now: datetime) -> list[str]:
    # SKIP LOCKED: concurrent orders each take free codes instead of queueing on the same rows.
    stmt = (
        select(Code.id, Code.code)
        .where(Code.reward_id == reward.id, Code.status == "available")
        .order_by(Code.id)
        .limit(order.quantity)
    )
    rows = session.execute(for_update(session, stmt, skip_locked=True)).all()
    if len(rows) < order.quantity:
        raise OutOfStock("no coupon codes are left for this reward", field="reward_id")
    changed = session.execute(
        update(Code)
        .where(Code.id.in_([r.id for r in rows]), Code.status == "available")
        .values(status="assigned", order_id=order.id, assigned_at=now)
        .execution_options(synchronize_session=False)
    )
    if changed.rowcount != len(rows):  # type: ignore[attr-defined]
        raise OutOfStock("coupon codes were taken concurrently; retry", field="reward_id")
    order.status, order.fulfilled_at = "fulfilled", now
    return [r.code for r in rows]


def _fulfil_physical(session: Session, order: Order, reward: Reward, now: datetime) -> list[str]:
    return []  # stays "placed" until the merchant ships it


def _fulfil_charity(session: Session, order: Order, reward: Reward, now: datetime) -> list[str]:
    local = now.astimezone(get_settings().zone)
    order.receipt_no = f"DON-{local:%Y%m%d}-{order.id:08d}"
    order.status, order.fulfilled_at, order.completed_at = "completed", now, now
    return []


FULFIL: dict[str, Callable[[Session, Order, Reward, datetime], list[str]]] = {
    "coupon": _fulfil_coupon,
    "physical": _fulfil_physical,
    "charity": _fulfil_charity,
}


# --- reading orders --------------------------------------------------------------------------------


def order_view(
    session: Session, order: Order, *, owner: bool, reader: Actor | None = None
) -> OrderView:
    """The order as its owner, or (`owner` False) as the merchant or an operator sees it; a
    shipping address shown to `reader`, who is not the owner, is logged for the citizen."""
    reward = session.get(Reward, order.reward_id)
    assert reward is not None
    codes: list[str] = []
    if owner:
        codes = list(
            session.scalars(select(Code.code).where(Code.order_id == order.id).order_by(Code.id))
        )
    address = decrypt_address(order.shipping_encrypted) if order.kind == "physical" else None
    if not owner:
        _log_address_reads(session, reader, [order])
    return OrderView(order, reward, codes, address)


def get_order(session: Session, actor: Actor, order_id: int) -> OrderView:
    order = session.get(Order, order_id)
    if order is None:
        raise OrderNotFound(f"order {order_id} does not exist", field="order_id")
    if actor.kind == "citizen" and order.citizen_id == actor.id:
        return order_view(session, order, owner=True)
    if actor.kind == "staff" and _may_manage(actor, order.merchant_org_id):
        return order_view(session, order, owner=False, reader=actor)  # codes: the citizen's alone
    raise OrderNotFound(f"order {order_id} does not exist", field="order_id")


def my_orders(
    session: Session, actor: Actor, *, limit: int = 50, before_id: int | None = None
) -> list[OrderView]:
    citizen_id = _citizen(actor)
    stmt = select(Order).where(Order.citizen_id == citizen_id)
    if before_id is not None:
        stmt = stmt.where(Order.id < before_id)
    orders = session.scalars(stmt.order_by(Order.id.desc()).limit(min(limit, 200))).all()
    return _views(session, orders, owner=True)


def merchant_orders(
    session: Session, actor: Actor, *, limit: int = 50, before_id: int | None = None
) -> list[OrderView]:
    stmt = select(Order)
    if not is_operator(actor):
        stmt = stmt.where(Order.merchant_org_id == merchant_org(actor))
    if before_id is not None:
        stmt = stmt.where(Order.id < before_id)
    orders = session.scalars(stmt.order_by(Order.id.desc()).limit(min(limit, 200))).all()
    return _views(session, orders, owner=False, reader=actor)


def _log_address_reads(session: Session, actor: Actor | None, orders: Sequence[Order]) -> None:
    """Staff reading orders see the shipping addresses in them: a read of personal data, which goes
    into each citizen's access log."""
    if actor is None or actor.kind != "staff":
        return
    citizens = {o.citizen_id for o in orders if o.kind == "physical" and o.shipping_encrypted}
    for citizen_id in sorted(c for c in citizens if c is not None):
        identity_service.log_access(
            session,
            citizen_id=citizen_id,
            actor=actor,
            what="shipping address",
            why="order fulfilment",
        )


def _views(
    session: Session, orders: Sequence[Order], *, owner: bool, reader: Actor | None = None
) -> list[OrderView]:
    if not owner:
        _log_address_reads(session, reader, orders)
    reward_ids = {o.reward_id for o in orders}
    rewards = {r.id: r for r in session.scalars(select(Reward).where(Reward.id.in_(reward_ids)))}
    codes: dict[int, list[str]] = {}
    if owner and orders:
        for order_id, code in session.execute(
            select(Code.order_id, Code.code)
            .where(Code.order_id.in_([o.id for o in orders]))
            .order_by(Code.id)
        ):
            if order_id is not None:
                codes.setdefault(order_id, []).append(code)
    return [
        OrderView(
            o,
            rewards[o.reward_id],
            codes.get(o.id, []),
            decrypt_address(o.shipping_encrypted) if o.kind == "physical" else None,
        )
        for o in orders
    ]


# --- fulfilment, cancellation, write-off -----------------------------------------------------------


def _transition(session: Session, order: Order, allowed: Sequence[str], **values: Any) -> None:
    # Conditional on the current status: of two racing transitions exactly one applies.
    changed = session.execute(
        update(Order)
        .where(Order.id == order.id, Order.status.in_(allowed))
        .values(**values)
        .execution_options(synchronize_session=False)
    )
    if changed.rowcount != 1:  # type: ignore[attr-defined]
        session.refresh(order)
        raise BadTransition(
            f"order {order.id} is {order.status}", field="status", extra={"status": order.status}
        )
    session.refresh(order)


def ship_order(session: Session, actor: Actor, order_id: int, *, tracking_no: str) -> OrderView:
    order = _managed_order(session, actor, order_id)
    if order.kind != "physical":
        raise BadTransition("only physical goods are shipped", field="order_id")
    if not tracking_no.strip() or len(tracking_no) > 100:
        raise InvalidInput("a tracking number of 1-100 characters is required", field="tracking_no")
    _transition(
        session,
        order,
        ["placed"],
        status="fulfilled",
        tracking_no=tracking_no.strip(),
        fulfilled_at=utcnow(),
    )
    return order_view(session, order, owner=False, reader=actor)


def complete_order(session: Session, actor: Actor, order_id: int) -> OrderView:
    """The merchant (delivered) or the owner (received) closes a fulfilled order."""
    order = session.get(Order, order_id)
    if order is None:
        raise OrderNotFound(f"order {order_id} does not exist", field="order_id")
    owner = actor.kind == "citizen" and order.citizen_id == actor.id
    if not owner and not (actor.kind == "staff" and _may_manage(actor, order.merchant_org_id)):
        raise OrderNotFound(f"order {order_id} does not exist", field="order_id")
    _transition(session, order, ["fulfilled"], status="completed", completed_at=utcnow())
    return order_view(session, order, owner=owner, reader=actor)


def _managed_order(session: Session, actor: Actor, order_id: int) -> Order:
    order = session.get(Order, order_id)
    if order is None or not (actor.kind == "staff" and _may_manage(actor, order.merchant_org_id)):
        raise OrderNotFound(f"order {order_id} does not exist", field="order_id")
    return order


def cancel_order(
    session: Session, actor: Actor, order_id: int, *, reason: str = "", failed: bool = False
) -> OrderView:
    """Return the points (reverse the transfer, restore the lots) and the stock; codes become void.

    A citizen may cancel their own order while it is placed, or a coupon order whose codes are unused;
    the merchant or an operator may cancel (or mark failed) any open order of theirs that is not
    completed.
    """
    order = session.get(Order, order_id)
    if order is None:
        raise OrderNotFound(f"order {order_id} does not exist", field="order_id")
    owner = actor.kind == "citizen" and order.citizen_id == actor.id
    staff = actor.kind == "staff" and _may_manage(actor, order.merchant_org_id)
    if not owner and not staff:
        raise OrderNotFound(f"order {order_id} does not exist", field="order_id")
    if order.status in ("cancelled", "failed"):
        return order_view(session, order, owner=owner, reader=actor)  # a retry answers the same
    allowed = ["placed"] if order.kind == "physical" or not owner else ["placed", "fulfilled"]
    if staff:
        allowed = ["placed", "fulfilled"]
    if order.kind == "coupon":
        used = session.scalar(
            select(func.count()).where(Code.order_id == order.id, Code.status == "used")
        )
        if used:
            raise BadTransition(
                "a code of this order was already used at the till", field="order_id"
            )
    now = utcnow()
    _transition(
        session,
        order,
        allowed,
        status="failed" if failed else "cancelled",
        cancelled_at=now,
        note={**(order.note or {}), "reason": reason[:200]},
    )
    # Codes first: a concurrent write-off of one of them makes this cancellation fail as a whole.
    if order.kind == "coupon":
        voided = session.execute(
            update(Code)
            .where(Code.order_id == order.id, Code.status == "assigned")
            .values(status="void")
            .execution_options(synchronize_session=False)
        )
        if voided.rowcount != order.quantity:  # type: ignore[attr-defined]
            raise BadTransition(
                "a code of this order was already used at the till", field="order_id"
            )
    if order.transfer_id is not None:
        reversal = ledger_service.reverse(
            session,
            order.transfer_id,
            idempotency_key=f"mall.cancel:{order.id}",
            kind="mall.refund",
        )
        order.reversal_id = reversal.id
    elif order.hold_id is not None:
        ledger_service.void_hold(session, order.hold_id)
    incentives_service.restore_points(
        session, ref=_lots_ref(order.citizen_id, order.idempotency_key)
    )
    reward = session.get(Reward, order.reward_id)
    assert reward is not None
    if reward.stock is not None:
        session.execute(
            update(Reward)
            .where(Reward.id == reward.id)
            .values(stock=Reward.stock + order.quantity)
            .execution_options(synchronize_session=False)
        )
        session.refresh(reward)
    session.flush()
    return order_view(session, order, owner=owner, reader=actor)


@dataclass(frozen=True, slots=True)
class WriteOff:
    code: str
    order_id: int
    reward_id: int
    title_zh: str
    title_en: str
    used_at: datetime


def verify_code(session: Session, actor: Actor, *, code: str) -> WriteOff:
    """Write a code off at the merchant's till: valid once, for the merchant's own rewards only."""
    org = None if is_operator(actor) else merchant_org(actor)
    code = code.strip()
    if not code or len(code) > 100:
        raise InvalidInput("a code of 1-100 characters is required", field="code")
    stmt = select(Code, Reward).join(Reward, Reward.id == Code.reward_id).where(Code.code == code)
    if org is not None:
        stmt = stmt.where(Reward.merchant_org_id == org)
    found = session.execute(stmt.order_by(Code.id)).all()
    candidates = [(c, r) for c, r in found if c.status in ("assigned", "used")]
    if not candidates:
        raise CodeNotValid("this code is not valid here", field="code")
    row, reward = next(((c, r) for c, r in candidates if c.status == "assigned"), candidates[0])
    if row.status == "used":
        raise CodeAlreadyUsed(
            "this code was already used",
            field="code",
            extra={"used_at": row.used_at.isoformat() if row.used_at else None},
        )
    now = utcnow()
    changed = session.execute(
        update(Code)
        .where(Code.id == row.id, Code.status == "assigned")
        .values(status="used", used_at=now, used_by=actor.id)
        .execution_options(synchronize_session=False)
    )
    if changed.rowcount != 1:  # type: ignore[attr-defined]
        raise CodeAlreadyUsed("this code was already used", field="code")
    assert row.order_id is not None
    remaining = session.scalar(
        select(func.count()).where(Code.order_id == row.order_id, Code.status == "assigned")
    )
    if not remaining:
        session.execute(
            update(Order)
            .where(Order.id == row.order_id, Order.status == "fulfilled")
            .values(status="completed", completed_at=now)
            .execution_options(synchronize_session=False)
        )
    session.flush()
    return WriteOff(code, row.order_id, reward.id, reward.title_zh, reward.title_en, now)


# --- economics and reports -------------------------------------------------------------------------


def _month_start(day: date) -> date:
    return day.replace(day=1)


def _add_months(day: date, months: int) -> date:
    index = day.year * 12 + day.month - 1 + months
    return date(index // 12, index % 12 + 1, 1)


def _utc(day: date) -> datetime:
    return incentives_service.day_bounds(day)[0]


def spent_points(
    session: Session, *, start: datetime | None = None, end: datetime | None = None
) -> int:
    stmt = select(func.coalesce(func.sum(Order.points), 0)).where(Order.status.in_(OPEN))
    if start is not None:
        stmt = stmt.where(Order.created_at >= start)
    if end is not None:
        stmt = stmt.where(Order.created_at < end)
    return int(session.scalar(stmt) or 0)


def spent_by_day(session: Session, *, first: date, last: date) -> dict[date, int]:
    """Points spent on orders that stand, per platform-time-zone day the order was placed."""
    start, _ = incentives_service.day_bounds(first)
    _, end = incentives_service.day_bounds(last)
    spent: dict[date, int] = {}
    # Orders are few next to records; grouping by the local day in Python keeps the SQL portable.
    for created_at, points in session.execute(
        select(Order.created_at, Order.points).where(
            Order.status.in_(OPEN), Order.created_at >= start, Order.created_at < end
        )
    ):
        day = incentives_service.local_day(created_at)
        spent[day] = spent.get(day, 0) + int(points)
    return spent


def economics(session: Session, *, today: date | None = None) -> dict[str, Any]:
    """The operator's view of what points cost: liability, expiry schedule, a redemption forecast."""
    today = today or incentives_service.local_day(utcnow())
    rule = incentives_service.rule_at(session)
    outstanding = incentives_service.outstanding_points(session)
    this_month = _month_start(today)
    history: list[dict[str, Any]] = []
    for back in (3, 2, 1):
        start = _add_months(this_month, -back)
        end = _add_months(start, 1)
        history.append(
            {
                "month": start.isoformat()[:7],
                "points": spent_points(session, start=_utc(start), end=_utc(end)),
            }
        )
    # Forecast: the mean of the last three complete months' redeemed points, rounded half-even.
    # Deliberately simple and stated, so an operator can check it by hand.
    total = sum(int(h["points"]) for h in history)
    forecast = int((Decimal(total) / 3).quantize(Decimal(1), ROUND_HALF_EVEN))
    flows = incentives_service.flows(session)
    issued = flows["issued"]
    spent = spent_points(session)
    return {
        "fen_per_100_points": rule.fen_per_100_points,
        "mg_per_point": rule.mg_per_point,
        "outstanding_points": outstanding,
        "outstanding_liability_fen": outstanding * rule.fen_per_100_points // 100,
        "issued_points": issued,
        "spent_points": spent,
        "expired_points": flows["expired"],
        "redemption_rate_permille": (spent * 1000 // issued) if issued else 0,
        "expiry_schedule": [
            {
                "expires_on": d.isoformat(),
                "points": n,
                "value_fen": n * rule.fen_per_100_points // 100,
            }
            for d, n in incentives_service.expiry_schedule(session, after=today)
        ],
        "redemptions_last_3_months": history,
        "forecast_next_month_points": forecast,
        "forecast_method": (
            "mean of the last 3 complete calendar months' redeemed points "
            "(platform time zone), rounded half-even"
        ),
        "campaigns": [
            {
                "code": c.code,
                "name": c.name,
                "budget_points": c.budget_points,
                "issued_points": c.issued_points,
                "remaining_points": c.remaining_points,
            }
            for c in incentives_service.campaigns(session)
        ],
    }


def redemptions_report(
    session: Session,
    *,
    by: str,
    period: str = "month",
    start: date | None = None,
    end: date | None = None,
) -> list[dict[str, Any]]:
    """Orders and points by category or by reward, per day / month (platform time zone)."""
    if by not in ("category", "reward"):
        raise InvalidInput("by must be category or reward", field="by")
    if period not in ("day", "month"):
        raise InvalidInput("period must be day or month", field="period")
    stmt = select(
        Order.created_at, Order.category, Order.reward_id, Order.quantity, Order.points
    ).where(Order.status.in_(OPEN))
    if start is not None:
        stmt = stmt.where(Order.created_at >= _utc(start))
    if end is not None:
        stmt = stmt.where(Order.created_at < _utc(end + timedelta(days=1)))
    zone = get_settings().zone
    buckets: dict[tuple[str, Any], list[int]] = {}
    for created_at, category, reward_id, quantity, points in session.execute(stmt):
        local = created_at.astimezone(zone)
        label = local.strftime("%Y-%m-%d") if period == "day" else local.strftime("%Y-%m")
        key = (label, category if by == "category" else reward_id)
        acc = buckets.setdefault(key, [0, 0, 0])
        acc[0] += 1
        acc[1] += quantity
        acc[2] += points
    titles: dict[int, tuple[str, str]] = {}
    if by == "reward" and buckets:
        ids = {k[1] for k in buckets}
        titles = {
            r.id: (r.title_zh, r.title_en)
            for r in session.scalars(select(Reward).where(Reward.id.in_(ids)))
        }
    out = []
    for (label, key), (orders, units, points) in sorted(
        buckets.items(), key=lambda kv: (kv[0][0], str(kv[0][1]))
    ):
        row: dict[str, Any] = {"period": label, "orders": orders, "units": units, "points": points}
        if by == "category":
            row |= {"category": key, "name_zh": CATEGORIES[key][0], "name_en": CATEGORIES[key][1]}
        else:
            row |= {"reward_id": key, "title_zh": titles[key][0], "title_en": titles[key][1]}
        out.append(row)
    return out


def points_report(session: Session) -> dict[str, Any]:
    flows = incentives_service.flows(session)
    return {
        "issued": flows["issued"],
        "spent": spent_points(session),
        "expired": flows["expired"],
        "revoked": flows["revoked"],
        "outstanding": flows["outstanding"],
    }


def top_merchants(session: Session, *, limit: int = 10) -> list[dict[str, Any]]:
    rows = session.execute(
        select(Order.merchant_org_id, func.count(Order.id), func.sum(Order.points))
        .where(Order.status.in_(OPEN))
        .group_by(Order.merchant_org_id)
        .order_by(func.sum(Order.points).desc(), Order.merchant_org_id)
        .limit(limit)
    ).all()
    return [{"merchant_org_id": m, "orders": int(n), "points": int(p or 0)} for m, n, p in rows]


def citizen_export(session: Session, citizen_id: int) -> list[dict[str, Any]]:
    """The citizen's orders for a PIPL data export (their codes and their address included)."""
    orders = session.scalars(
        select(Order).where(Order.citizen_id == citizen_id).order_by(Order.id)
    ).all()
    return [
        {
            "order_id": v.order.id,
            "reward": v.reward.title_zh,
            "reward_en": v.reward.title_en,
            "quantity": v.order.quantity,
            "points": v.order.points,
            "status": v.order.status,
            "codes": v.codes,
            "shipping_address": v.shipping_address,
            "tracking_no": v.order.tracking_no,
            "receipt_no": v.order.receipt_no,
            "created_at": v.order.created_at.isoformat(),
        }
        for v in _views(session, orders, owner=True)
    ]


def insert_codes_raw(session: Session, reward_id: int, codes: Sequence[str]) -> None:
    """(Benchmarks and demo) add codes without an actor."""
    session.execute(
        insert(Code.__table__),  # type: ignore[arg-type]
        [
            {"reward_id": reward_id, "code": c, "status": "available", "created_at": utcnow()}
            for c in codes
        ],
    )


def erase_citizen(session: Session, citizen_id: int) -> None:
    """PIPL erasure: drop the shipping addresses (orders and their points history stay)."""
    session.execute(
        update(Order)
        .where(Order.citizen_id == citizen_id, Order.shipping_encrypted.is_not(None))
        .values(shipping_encrypted=None)
        .execution_options(synchronize_session=False)
    )

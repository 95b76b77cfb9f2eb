"""Mall demo: four merchants, rewards in every category and kind, code pools and some past orders."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any

from sqlalchemy.orm import Session

from tanhui.identity import service as identity_service
from tanhui.identity.principal import Principal
from tanhui.incentives import service as incentives_service
from tanhui.kit.errors import TanhuiError
from tanhui.mall import service as mall_service

if TYPE_CHECKING:
    from tanhui.demo import DemoContext

# (merchant, category, kind, zh, en, price, stock, face value fen, image)
REWARDS: list[tuple[str, str, str, str, str, int, int | None, int | None, str]] = [
    (
        "成都轨道交通",
        "green_travel",
        "coupon",
        "地铁单程券",
        "Metro single ride",
        300,
        500,
        300,
        "metro.svg",
    ),
    (
        "成都轨道交通",
        "green_travel",
        "coupon",
        "地铁日票",
        "Metro day pass",
        1200,
        100,
        1200,
        "metro.svg",
    ),
    (
        "青桔单车",
        "green_travel",
        "coupon",
        "单车 7 日骑行卡",
        "Bike 7-day pass",
        800,
        300,
        800,
        "bike.svg",
    ),
    (
        "绿叶咖啡",
        "daily_services",
        "coupon",
        "咖啡兑换券",
        "Coffee voucher",
        1500,
        200,
        1800,
        "coffee.svg",
    ),
    (
        "绿叶咖啡",
        "daily_services",
        "coupon",
        "话费充值 5 元",
        "Phone top-up ¥5",
        500,
        1000,
        500,
        "phone.svg",
    ),
    (
        "熊猫文创",
        "cultural_goods",
        "physical",
        "熊猫帆布袋",
        "Panda tote bag",
        2000,
        80,
        2500,
        "tote.svg",
    ),
    (
        "熊猫文创",
        "lucky_bags",
        "physical",
        "低碳福袋",
        "Low-carbon lucky bag",
        3000,
        30,
        None,
        "bag.svg",
    ),
    (
        "熊猫文创",
        "other_goods",
        "charity",
        "种下一棵树",
        "Plant a tree",
        1000,
        None,
        1000,
        "tree.svg",
    ),
    ("青桔单车", "props", "coupon", "能量加速卡", "Energy booster", 50, None, None, "prop.svg"),
]


def _actor(org_id: int) -> Principal:
    return Principal(kind="staff", id=0, roles=frozenset({"merchant"}), organisation_id=org_id)


def seed(session: Session, ctx: DemoContext) -> None:
    orgs: dict[str, int] = {}
    for name in dict.fromkeys(r[0] for r in REWARDS):
        orgs[name] = identity_service.create_organisation(
            session, None, name=name, kind="merchant"
        ).id
    rewards = []
    for merchant, category, kind, zh, en, price, stock, face, image in REWARDS:
        reward = mall_service.create_reward(
            session,
            _actor(orgs[merchant]),
            category=category,
            kind=kind,
            title_zh=zh,
            title_en=en,
            description_zh=f"{zh}，由{merchant}提供",
            description_en=f"{en}, offered by {merchant}",
            image=image,
            price_points=price,
            stock=stock,
            face_value_fen=face,
            limit_per_day=2 if kind == "coupon" else None,
        )
        if kind == "coupon":
            mall_service.generate_codes(session, None, reward.id, (stock or 200) + 20)
        rewards.append(reward)

    citizens: list[Any] = list(ctx.data.get("citizens", []))[:20]
    ids = [c if isinstance(c, int) else c.id for c in citizens]
    if not ids:
        ids = [
            identity_service.citizen_for_phone(session, f"1390000{i:04d}", nickname=f"demo{i}").id
            for i in range(1, 11)
        ]
    # Points for the demo orders when the activity seeder has not given enough.
    now = datetime.now(UTC)
    incentives_service.award_points(
        session,
        [
            incentives_service.Award(
                c, 50_000_000, now - timedelta(days=40), f"demo:mall:{c}", f"demo:mall:{c}"
            )
            for c in ids
            if incentives_service.points_balance(session, c) < 5_000
        ],
    )
    placed = 0
    for n, citizen_id in enumerate(ids):
        for k in range(ctx.rng.randint(1, 3)):
            reward = ctx.rng.choice(rewards)
            try:
                mall_service.place_order(
                    session,
                    Principal(kind="citizen", id=citizen_id),
                    reward_id=reward.id,
                    shipping_address="四川省成都市武侯区天府大道 1 号"
                    if reward.kind == "physical"
                    else None,
                    idempotency_key=f"demo-{n}-{k}",
                    now=now - timedelta(days=ctx.rng.randint(0, 80)),
                )
                placed += 1
            except TanhuiError:
                pass  # a limit or the points ran out: a real mall says no too
    ctx.data["mall_rewards"] = [r.id for r in rewards]
    ctx.data["merchants"] = orgs
    ctx.summary.append(
        f"mall: {len(orgs)} merchants, {len(rewards)} rewards in 6 categories, {placed} past orders"
    )

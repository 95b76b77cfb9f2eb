"""Concurrency: many clients, one session each, against a database that really commits."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor

import pytest
from sqlalchemy import func, select

from tanhui.identity.principal import Principal
from tanhui.incentives import service as incentives_service
from tanhui.kit.db import session_scope
from tanhui.kit.errors import TanhuiError
from tanhui.ledger import service as ledger_service
from tanhui.mall import service as mall_service
from tanhui.mall.models import Code, Order, Reward
from tests.fixtures.incentives import award

MERCHANT = Principal(kind="staff", id=1, roles=frozenset({"merchant"}), organisation_id=1)


def _attempt(citizen_id: int, reward_id: int, key: str) -> str:
    try:
        with session_scope() as session:
            actor = Principal(kind="citizen", id=citizen_id)
            mall_service.place_order(session, actor, reward_id=reward_id, idempotency_key=key)
        return "ok"
    except TanhuiError as exc:
        return exc.code


@pytest.mark.postgresql_only
def test_two_hundred_clients_race_for_the_last_fifty(database_url: str) -> None:
    citizens = list(range(5_000_001, 5_000_201))
    with session_scope() as session:
        reward = mall_service.create_reward(
            session,
            MERCHANT,
            category="green_travel",
            kind="coupon",
            title_zh="地铁券",
            price_points=100,
            stock=50,
        )
        mall_service.generate_codes(session, MERCHANT, reward.id, 80)
        incentives_service.award_points(session, [award(c, 1_000_000) for c in citizens])  # 100 pts
        greedy = 5_000_999
        incentives_service.award_points(session, [award(greedy, 3_000_000)])  # 300 points
        reward_id = reward.id
    jobs = [(c, reward_id, f"race-{c}") for c in citizens]
    # The greedy citizen orders from 10 devices at once with 300 points: exactly 3 can succeed.
    jobs += [(greedy, reward_id, f"device-{i}") for i in range(10)]
    with ThreadPoolExecutor(max_workers=32) as pool:
        outcomes = list(pool.map(lambda job: _attempt(*job), jobs))
    assert outcomes.count("ok") == 50
    assert set(outcomes) <= {"ok", "out_of_stock", "insufficient_points"}
    with session_scope() as session:
        assert session.scalar(select(Reward.stock).where(Reward.id == reward_id)) == 0
        assert session.scalar(select(func.count()).select_from(Order)) == 50
        codes = session.scalars(select(Code.order_id).where(Code.status == "assigned")).all()
        assert len(codes) == len(set(codes)) == 50
        assert incentives_service.points_balance(session, greedy) >= 0
        assert ledger_service.check(session) == []


@pytest.mark.postgresql_only
def test_one_citizen_races_for_their_own_last_points(database_url: str) -> None:
    with session_scope() as session:
        reward = mall_service.create_reward(
            session,
            MERCHANT,
            category="other_goods",
            kind="charity",
            title_zh="种树",
            price_points=100,
        )
        incentives_service.award_points(session, [award(6_000_001, 3_500_000)])  # 350 points
        reward_id = reward.id
    with ThreadPoolExecutor(max_workers=12) as pool:
        outcomes = list(pool.map(lambda i: _attempt(6_000_001, reward_id, f"dev-{i}"), range(12)))
    assert outcomes.count("ok") == 3
    with session_scope() as session:
        assert incentives_service.points_balance(session, 6_000_001) == 50
        assert ledger_service.check(session) == []

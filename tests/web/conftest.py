"""A small platform for page tests, built through the parts' services (never their tables)."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from sqlalchemy.orm import Session

from tanhui.activity import service as activity_service
from tanhui.identity import service as identity_service
from tanhui.identity.auth import SESSION_COOKIE
from tanhui.identity.principal import Principal
from tanhui.mall import service as mall_service
from tanhui.mall.models import Reward
from tanhui.web import security
from tests.fixtures import activity as activity_fx
from tests.fixtures import identity as identity_fx


@dataclass
class Staff:
    token: str
    username: str


def staff(session: Session, *roles: str) -> Staff:
    """A staff member with a session token, hashing the password once (Argon2 is slow on purpose)."""
    username = f"web_{uuid.uuid4().hex[:10]}"
    row = identity_service.create_staff(
        session, None, username=username, password=identity_fx.PASSWORD, roles=roles
    )
    token = identity_service.issue_token(session, identity_service.staff_principal(session, row))
    return Staff(token, username)


@dataclass
class World:
    citizen: identity_fx.CitizenUser
    partner: activity_fx.Partner
    puid: str
    credited_id: int
    review_id: int
    reward: Reward


@pytest.fixture
def world(session: Session) -> World:
    partner = activity_fx.partner(session)
    citizen = identity_fx.citizen(session)
    puid, _ = activity_fx.bind(session, partner, citizen)
    start = datetime.now(UTC) - timedelta(hours=5)
    results = activity_service.ingest(
        session,
        partner.principal,
        [
            activity_fx.record(puid, start=start, quantities={"distance_km": "12.5"}),
            # 118 km/h on the metro: plausible but near the bound, so it is held for review
            activity_fx.record(
                puid,
                start=start + timedelta(hours=2),
                minutes=30,
                quantities={"distance_km": "59"},
            ),
        ],
    )
    assert [r["status"] for r in results] == ["credited", "review"], results
    merchant = identity_service.create_organisation(session, None, name="绿色商户", kind="merchant")
    reward = mall_service.create_reward(
        session,
        _PLATFORM_OPERATOR,
        merchant_org_id=merchant.id,
        category="green_travel",
        kind="coupon",
        title_zh="地铁单程券",
        title_en="Metro single ride",
        price_points=10,
    )
    mall_service.generate_codes(session, None, reward.id, 5)
    session.flush()
    return World(
        citizen=citizen,
        partner=partner,
        puid=puid,
        credited_id=results[0]["record_id"],
        review_id=results[1]["record_id"],
        reward=reward,
    )


# The mall asks only for an actor's kind and roles; an operator principal without a login suffices.
_PLATFORM_OPERATOR = Principal(kind="staff", id=0, roles=frozenset({"operator_admin"}))


@pytest.fixture
def operator(session: Session) -> Staff:
    return staff(session, "operator_admin")


@pytest.fixture
def reviewer(session: Session) -> Staff:
    return staff(session, "reviewer")


def login_as(client: Any, token: str) -> None:
    client.cookies.set(SESSION_COOKIE, token)


def csrf(client: Any) -> str:
    """The token of the client's CSRF cookie (set by any page)."""
    token = client.cookies.get(security.CSRF_COOKIE)
    if token is None:
        client.get("/")
        token = client.cookies.get(security.CSRF_COOKIE)
    assert token
    return str(token)

from __future__ import annotations

import httpx
from sqlalchemy import select
from sqlalchemy.orm import Session

from tanhui.identity import service as identity_service
from tanhui.incentives import service as incentives_service
from tanhui.ledger import service as ledger_service
from tanhui.mall.models import Order, Reward
from tests.fixtures.identity import auth, citizen, staff
from tests.fixtures.incentives import give_points
from tests.fixtures.mall import merchant, reward


def _order(client: httpx.Client, who, reward_id: int, key: str, **body):  # type: ignore[no-untyped-def]
    return client.post(
        "/v1/mall/orders",
        json={"reward_id": reward_id, **body},
        headers={**who.headers, "Idempotency-Key": key},
    )


class TestRedeemCoupon:
    def test_order_issues_a_code_only_its_owner_sees(self, session: Session, client: httpx.Client):
        m, other_m = merchant(session), merchant(session)
        r = reward(session, m)
        alice, bob = citizen(session), citizen(session)
        give_points(session, alice.id, 250)
        session.flush()

        first = _order(client, alice, r.id, "k1")
        assert first.status_code == 201, first.text
        order = first.json()
        assert order["status"] == "fulfilled" and len(order["codes"]) == 1
        assert incentives_service.points_balance(session, alice.id) == 150
        session.expire_all()
        assert session.get(Reward, r.id).stock == 9  # type: ignore[union-attr]

        again = _order(client, alice, r.id, "k1")
        assert again.status_code == 200 and again.json()["id"] == order["id"]
        assert again.json()["codes"] == order["codes"]
        assert (
            _order(client, alice, r.id, "k1", quantity=2).json()["code"] == "idempotency_conflict"
        )
        assert incentives_service.points_balance(session, alice.id) == 150

        # Other citizens and other merchants do not even learn the order exists.
        assert client.get(f"/v1/mall/orders/{order['id']}", headers=bob.headers).status_code == 404
        assert (
            client.get(f"/v1/mall/orders/{order['id']}", headers=other_m.headers).status_code == 404
        )
        seen = client.get(f"/v1/mall/orders/{order['id']}", headers=m.headers).json()
        assert seen["codes"] == []  # the merchant sees the redemption, never the code
        mine = client.get("/v1/mall/merchant/redemptions", headers=m.headers).json()
        assert [o["id"] for o in mine] == [order["id"]]
        assert client.get("/v1/mall/merchant/redemptions", headers=other_m.headers).json() == []
        assert client.get("/v1/mall/orders", headers=bob.headers).json() == []
        assert client.get("/v1/mall/merchant/redemptions", headers=bob.headers).status_code == 403
        assert ledger_service.check(session) == []

    def test_write_off_happens_once_and_only_at_its_merchant(
        self, session: Session, client: httpx.Client
    ):
        m, other_m = merchant(session), merchant(session)
        r = reward(session, m)
        alice = citizen(session)
        give_points(session, alice.id, 100)
        session.flush()
        code = _order(client, alice, r.id, "k").json()["codes"][0]
        verify = "/v1/mall/merchant/redemptions/verify"
        assert client.post(verify, json={"code": code}, headers=other_m.headers).json()["code"] == (
            "code_not_valid"
        )
        ok = client.post(verify, json={"code": code}, headers=m.headers)
        assert ok.status_code == 200, ok.text
        twice = client.post(verify, json={"code": code}, headers=m.headers)
        assert (twice.status_code, twice.json()["code"]) == (409, "code_already_used")
        assert client.post(verify, json={"code": "NOPE"}, headers=m.headers).status_code == 409
        order = client.get("/v1/mall/orders", headers=alice.headers).json()[0]
        assert order["status"] == "completed"
        # A used code cannot be cancelled back into points.
        cancel = client.post(f"/v1/mall/orders/{order['id']}/cancel", headers=alice.headers)
        assert cancel.status_code == 409

    def test_cancellation_returns_points_lots_and_stock(
        self, session: Session, client: httpx.Client
    ):
        m = merchant(session)
        r = reward(session, m, stock=3)
        alice = citizen(session)
        give_points(session, alice.id, 300)
        session.flush()
        order = _order(client, alice, r.id, "k", quantity=2).json()
        assert incentives_service.points_balance(session, alice.id) == 100
        cancelled = client.post(f"/v1/mall/orders/{order['id']}/cancel", headers=alice.headers)
        assert cancelled.status_code == 200 and cancelled.json()["status"] == "cancelled"
        again = client.post(f"/v1/mall/orders/{order['id']}/cancel", headers=alice.headers)
        assert again.status_code == 200
        assert incentives_service.points_balance(session, alice.id) == 300
        session.expire_all()
        assert session.get(Reward, r.id).stock == 3  # type: ignore[union-attr]
        summary = incentives_service.points_summary(session, alice.id)
        assert sum(lot.remaining for lot in summary.lots) == 300
        assert ledger_service.check(session) == []

    def test_bad_requests_change_nothing(self, session: Session, client: httpx.Client):
        m = merchant(session)
        r = reward(session, m, stock=1, limit_total=1)
        alice = citizen(session)
        give_points(session, alice.id, 150)
        session.flush()
        assert (
            client.post(
                "/v1/mall/orders", json={"reward_id": r.id}, headers=alice.headers
            ).status_code
            == 422
        )  # no Idempotency-Key
        assert _order(client, alice, r.id, "a", quantity=0).status_code == 422
        assert _order(client, alice, r.id, "b", extra=1).status_code == 422
        assert _order(client, alice, 999_999, "c").json()["code"] == "reward_not_found"
        roomy = reward(session, m, title_zh="公交券")
        session.flush()
        assert _order(client, alice, roomy.id, "d", quantity=2).json()["code"] == (
            "insufficient_points"
        )
        assert _order(client, alice, r.id, "e").status_code == 201
        assert _order(client, alice, r.id, "f").json()["code"] in ("limit_reached", "out_of_stock")
        assert incentives_service.points_balance(session, alice.id) == 50
        anon = client.post(
            "/v1/mall/orders", json={"reward_id": r.id}, headers={"Idempotency-Key": "x"}
        )
        assert anon.status_code == 401
        assert ledger_service.check(session) == []


class TestOtherKinds:
    def test_physical_goods_ship_with_an_encrypted_address(
        self, session: Session, client: httpx.Client
    ):
        m = merchant(session)
        r = reward(session, m, kind="physical", category="cultural_goods", title_zh="帆布袋")
        alice = citizen(session)
        give_points(session, alice.id, 100)
        session.flush()
        assert _order(client, alice, r.id, "a").json()["field"] == "shipping_address"
        address = "四川省成都市锦江区红星路一段 1 号"
        order = _order(client, alice, r.id, "b", shipping_address=address).json()
        assert order["status"] == "placed" and order["shipping_address"] == address
        stored = session.scalar(select(Order.shipping_encrypted).where(Order.id == order["id"]))
        assert stored and address not in stored
        shipped = client.post(
            f"/v1/mall/merchant/orders/{order['id']}/ship",
            json={"tracking_no": "SF123"},
            headers=m.headers,
        )
        assert shipped.json()["status"] == "fulfilled", shipped.text
        # The merchant shipping it read the address: the citizen sees that in their log.
        assert shipped.json()["shipping_address"] == address
        reads = identity_service.access_log(session, alice.id)
        assert [(e.what, e.why, e.actor_kind) for e in reads] == [
            ("shipping address", "order fulfilment", "staff")
        ]
        done = client.post(f"/v1/mall/orders/{order['id']}/complete", headers=alice.headers)
        assert done.json()["status"] == "completed"
        assert ledger_service.check(session) == []

    def test_charity_donation_gets_a_receipt(self, session: Session, client: httpx.Client):
        m = merchant(session)
        r = reward(
            session, m, kind="charity", category="other_goods", stock=None, title_zh="种一棵树"
        )
        alice = citizen(session)
        give_points(session, alice.id, 100)
        session.flush()
        order = _order(client, alice, r.id, "a").json()
        assert order["status"] == "completed" and order["receipt_no"].startswith("DON-")


class TestMerchantConsole:
    def test_merchant_manages_own_rewards_only(self, session: Session, client: httpx.Client):
        m, other_m = merchant(session), merchant(session)
        body = {
            "category": "daily_services",
            "kind": "coupon",
            "title_zh": "咖啡券",
            "title_en": "Coffee voucher",
            "price_points": 300,
            "stock": 5,
        }
        created = client.post("/v1/mall/merchant/rewards", json=body, headers=m.headers)
        assert created.status_code == 201, created.text
        rid = created.json()["id"]
        assert (
            client.patch(
                f"/v1/mall/merchant/rewards/{rid}",
                json={"price_points": 1},
                headers=other_m.headers,
            ).status_code
            == 404
        )
        codes = client.post(
            f"/v1/mall/merchant/rewards/{rid}/codes",
            json={"csv": "code\nC1\nC2\nC2\n"},
            headers=m.headers,
        )
        assert codes.json() == {"added": 2, "available": 2}
        assert (
            client.post(
                f"/v1/mall/merchant/rewards/{rid}/codes",
                json={"csv": "C1"},
                headers=other_m.headers,
            ).status_code
            == 404
        )
        assert [
            r["id"] for r in client.get("/v1/mall/merchant/rewards", headers=other_m.headers).json()
        ] == []
        bad = client.post(
            "/v1/mall/merchant/rewards", json={**body, "category": "x"}, headers=m.headers
        )
        assert bad.status_code == 422
        alice = citizen(session)
        assert (
            client.post("/v1/mall/merchant/rewards", json=body, headers=alice.headers).status_code
            == 403
        )


class TestOperators:
    def test_economics_and_reports(self, session: Session, client: httpx.Client):
        op = staff(session, "operator_admin")
        m = merchant(session)
        r = reward(session, m)
        alice = citizen(session)
        give_points(session, alice.id, 500)
        session.flush()
        _order(client, alice, r.id, "a")
        eco = client.get("/v1/mall/economics", headers=auth(op.token))
        assert eco.status_code == 200, eco.text
        assert eco.json()["outstanding_points"] >= 400
        assert client.get("/v1/mall/economics", headers=m.headers).status_code == 403
        by_cat = client.get("/v1/mall/reports/redemptions?by=category", headers=auth(op.token))
        assert any(row["category"] == "green_travel" for row in by_cat.json())
        by_reward = client.get(
            "/v1/mall/reports/redemptions?by=reward&period=day", headers=auth(op.token)
        )
        assert any(row["reward_id"] == r.id for row in by_reward.json())
        assert (
            client.get("/v1/mall/reports/redemptions?by=x", headers=auth(op.token)).status_code
            == 422
        )
        assert client.get("/v1/mall/reports/points", headers=auth(op.token)).json()["spent"] >= 100
        top = client.get("/v1/mall/reports/top-merchants", headers=auth(op.token)).json()
        assert any(row["merchant_org_id"] == m.org_id for row in top)
        capped = client.put(
            "/v1/mall/campaigns/spring", json={"budget_points": 10}, headers=auth(op.token)
        )
        assert capped.json()["remaining_points"] == 10
        value = client.put(
            "/v1/mall/point-value", json={"fen_per_100_points": 50}, headers=auth(op.token)
        )
        assert value.status_code == 200
        assert client.get("/v1/mall/point-value").json()["fen_per_100_points"] == 50

    def test_my_points_shows_lots_and_expiry(self, session: Session, client: httpx.Client):
        alice = citizen(session)
        give_points(session, alice.id, 42)
        session.flush()
        me = client.get("/v1/me/points", headers=alice.headers).json()
        assert me["available"] == 42 and me["next_expiry"]["points"] == 42
        assert me["lots"][0]["expires_on"] == "2027-12-31"
        assert client.get("/v1/me/points").status_code == 401

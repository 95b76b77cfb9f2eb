"""Partner onboarding: application, review, time-limited approval, renewal."""

from __future__ import annotations

from datetime import date, timedelta

import pytest

from tanhui.identity import service as identity_service
from tanhui.identity import signing
from tanhui.kit.db import create_db_engine, make_session_factory, session_scope
from tanhui.kit.errors import TanhuiError
from tests.fixtures import identity as f
from tests.fixtures.locks import commit_once_the_other_waits

APPLICATION = {
    "name": "深圳巴士集团",
    "licence_no": "91440300192241158P",
    "scenarios": ["bus", "ferry"],
    "data_collection": "IC card and QR validator records, pushed daily",
    "redirect_uris": ["https://bus.example/cb"],
    "contact": "张工",
}


def _apply(client, **headers):
    r = client.post("/v1/partners/applications", json=APPLICATION, headers=headers)
    assert r.status_code == 201, r.text
    return r.json()


class TestApplicationRetried:
    def test_the_same_application_again_is_the_same_one(self, client):
        first = _apply(client, **{"Idempotency-Key": "apply-1"})
        again = _apply(client, **{"Idempotency-Key": "apply-1"})
        assert again == first
        other = _apply(client, **{"Idempotency-Key": "apply-2"})
        assert other["id"] != first["id"]

    def test_another_application_under_the_key_is_refused(self, session, client):
        _apply(client, **{"Idempotency-Key": "apply-3"})
        changed = {**APPLICATION, "scenarios": ["bus"]}
        r = client.post(
            "/v1/partners/applications", json=changed, headers={"Idempotency-Key": "apply-3"}
        )
        assert (r.status_code, r.json()["code"]) == (409, "idempotency_conflict")
        assert len(identity_service.list_applications(session, status="pending")) == 1


class TestApplications:
    def test_apply_approve_and_sign(self, session, client):
        application = _apply(client)
        assert application["status"] == "pending"
        reviewer = f.staff(session, "reviewer")
        listed = client.get(
            "/v1/partners/applications?status=pending", headers=f.auth(reviewer.token)
        )
        assert application["id"] in [a["id"] for a in listed.json()]
        until = date.today() + timedelta(days=365)
        r = client.post(
            f"/v1/partners/applications/{application['id']}/approve",
            json={"scenarios": ["bus"], "valid_until": until.isoformat()},
            headers=f.auth(reviewer.token),
        )
        assert r.status_code == 200, r.text
        body = r.json()
        assert body["application"]["status"] == "approved"
        creds = body["credentials"]
        headers = signing.signed_headers(creds["key_id"], creds["secret"], "GET", "/v1/partner/me")
        me = client.get("/v1/partner/me", headers=headers)
        assert me.status_code == 200
        assert me.json()["scenarios"] == ["bus"]
        assert me.json()["approved_until"] == until.isoformat()
        # Approving twice is a conflict.
        again = client.post(
            f"/v1/partners/applications/{application['id']}/approve",
            json={"scenarios": ["bus"], "valid_until": until.isoformat()},
            headers=f.auth(reviewer.token),
        )
        assert (again.status_code, again.json()["code"]) == (409, "application_not_pending")

    def test_cannot_approve_unrequested_scenario(self, session, client):
        application = _apply(client)
        admin = f.staff(session, "operator_admin")
        r = client.post(
            f"/v1/partners/applications/{application['id']}/approve",
            json={"scenarios": ["metro"], "valid_until": "2099-12-31"},
            headers=f.auth(admin.token),
        )
        assert (r.status_code, r.json()["code"]) == (422, "scenario_not_applied")

    def test_reject(self, session, client):
        application = _apply(client)
        admin = f.staff(session, "operator_admin")
        r = client.post(
            f"/v1/partners/applications/{application['id']}/reject",
            json={"note": "licence does not match the name"},
            headers=f.auth(admin.token),
        )
        assert r.status_code == 200 and r.json()["status"] == "rejected"

    def test_only_reviewers(self, session, client):
        application = _apply(client)
        merchant = f.staff(session, "merchant")
        r = client.post(
            f"/v1/partners/applications/{application['id']}/approve",
            json={"scenarios": ["bus"], "valid_until": "2099-12-31"},
            headers=f.auth(merchant.token),
        )
        assert (r.status_code, r.json()["code"]) == (403, "missing_role")
        r = client.post(
            f"/v1/partners/applications/{application['id']}/approve",
            json={"scenarios": ["bus"], "valid_until": "2099-12-31"},
        )
        assert r.status_code == 401

    def test_renewal_by_partner_staff(self, session, client):
        created = f.partner(
            session, scenarios=("bus",), valid_until=date.today() - timedelta(days=1)
        )
        headers = signing.signed_headers(created.key_id, created.secret, "GET", "/v1/partner/me")
        assert client.get("/v1/partner/me", headers=headers).json()["code"] == (
            "partner_approval_lapsed"
        )
        partner_staff = f.staff(session, "merchant", organisation_id=created.organisation_id)
        application = _apply(client, Authorization=f"Bearer {partner_staff.token}")
        admin = f.staff(session, "operator_admin")
        r = client.post(
            f"/v1/partners/applications/{application['id']}/approve",
            json={"scenarios": ["bus", "ferry"], "valid_until": "2099-12-31"},
            headers=f.auth(admin.token),
        )
        assert r.status_code == 200, r.text
        assert r.json()["credentials"] is None  # a renewal keeps the existing keys
        assert r.json()["application"]["partner_id"] == created.partner_id
        headers = signing.signed_headers(created.key_id, created.secret, "GET", "/v1/partner/me")
        assert client.get("/v1/partner/me", headers=headers).json()["scenarios"] == ["bus", "ferry"]

    def test_bad_application(self, client):
        r = client.post(
            "/v1/partners/applications", json=APPLICATION | {"scenarios": ["Bus Rides"]}
        )
        assert (r.status_code, r.json()["code"]) == (422, "invalid_scenarios")
        r = client.post(
            "/v1/partners/applications", json=APPLICATION | {"redirect_uris": ["http://x.example"]}
        )
        assert r.json()["code"] == "invalid_redirect_uri"


class TestLapse:
    def test_lapse_is_inclusive_of_last_day(self, session):
        created = f.partner(session, valid_until=date(2030, 1, 1))
        partner = identity_service.get_partner(session, created.partner_id)
        from datetime import UTC, datetime

        # 2030-01-01 23:00 Shanghai = 15:00 UTC: still approved; the next Shanghai day: lapsed.
        assert not identity_service.approval_lapsed(
            partner, at=datetime(2030, 1, 1, 15, tzinfo=UTC)
        )
        assert identity_service.approval_lapsed(partner, at=datetime(2030, 1, 1, 16, tzinfo=UTC))


@pytest.mark.postgresql_only
@pytest.mark.parametrize("second", ["approve", "reject"])
def test_two_reviewers_deciding_one_application_at_once(database_url, second):
    """A approves and holds its transaction open; B decides the same application meanwhile. B waits
    for A's row lock and then finds the application decided: one partner, one decision. (Without
    the lock both saw it pending: two partners, or an approval overwritten by a rejection.)"""
    factory = make_session_factory(create_db_engine(database_url))
    until = date.today() + timedelta(days=30)
    try:
        with session_scope(factory) as session:
            reviewer = f.staff(session, "reviewer").principal
            application = identity_service.apply_as_partner(
                session,
                None,
                name="并发审核",
                licence_no="91440300192241158P",
                scenarios=["bus"],
                data_collection="IC card records",
            ).id
        a = factory()
        identity_service.approve_application(
            a, reviewer, application, scenarios=["bus"], valid_until=until
        )
        outcome: list[str] = []

        def decide() -> None:
            try:
                with session_scope(factory) as b:
                    if second == "approve":
                        identity_service.approve_application(
                            b, reviewer, application, scenarios=["bus"], valid_until=until
                        )
                    else:
                        identity_service.reject_application(b, reviewer, application, note="no")
                outcome.append("ok")
            except TanhuiError as exc:
                outcome.append(exc.code)

        commit_once_the_other_waits(a, factory, decide)
        assert outcome == ["application_not_pending"]
        with session_scope(factory) as session:
            decided = identity_service.get_application(session, application)
            assert decided.status == "approved"
            named = [p for p in identity_service.list_partners(session) if p.name == "并发审核"]
            assert len(named) == 1
    finally:
        factory.kw["bind"].dispose()


class TestDecisionRetried:
    """A reviewer's decision sent again under its Idempotency-Key answers as it first did."""

    def _approve(self, client, token, application_id, key, scenarios=("bus",)):  # type: ignore[no-untyped-def]
        return client.post(
            f"/v1/partners/applications/{application_id}/approve",
            json={"scenarios": list(scenarios), "valid_until": "2099-12-31"},
            headers={**f.auth(token), "Idempotency-Key": key},
        )

    def test_an_approval_retried_shows_the_same_key_again(self, session, client):  # type: ignore[no-untyped-def]
        application = _apply(client)
        reviewer = f.staff(session, "reviewer")
        first = self._approve(client, reviewer.token, application["id"], "decide-1")
        again = self._approve(client, reviewer.token, application["id"], "decide-1")
        assert first.status_code == again.status_code == 200, again.text
        assert again.json() == first.json() and first.json()["credentials"]["secret"]
        assert len(identity_service.list_partners(session)) == 1
        creds = again.json()["credentials"]
        headers = signing.signed_headers(creds["key_id"], creds["secret"], "GET", "/v1/partner/me")
        assert client.get("/v1/partner/me", headers=headers).status_code == 200
        other = self._approve(client, reviewer.token, application["id"], "decide-1", ("ferry",))
        assert (other.status_code, other.json()["code"]) == (409, "idempotency_conflict")
        fresh = self._approve(client, reviewer.token, application["id"], "decide-2")
        assert (fresh.status_code, fresh.json()["code"]) == (409, "application_not_pending")

    def test_a_rejection_retried_is_the_same_rejection(self, session, client):  # type: ignore[no-untyped-def]
        application = _apply(client)
        admin = f.staff(session, "operator_admin")
        url = f"/v1/partners/applications/{application['id']}/reject"
        headers = {**f.auth(admin.token), "Idempotency-Key": "reject-1"}
        first = client.post(url, json={"note": "licence unreadable"}, headers=headers)
        again = client.post(url, json={"note": "licence unreadable"}, headers=headers)
        assert first.status_code == again.status_code == 200
        assert again.json() == first.json()
        approve = self._approve(client, admin.token, application["id"], "reject-1")
        assert (approve.status_code, approve.json()["code"]) == (409, "idempotency_conflict")

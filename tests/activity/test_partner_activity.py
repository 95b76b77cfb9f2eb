"""An operator's view of one partner's feed: records per day and status, and why records were
refused, through the API (the console page shows the same figures)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from urllib.parse import quote

from tests.fixtures import activity as fx
from tests.fixtures import identity as identity_fixtures


def _feed(client, session):  # type: ignore[no-untyped-def]
    partner = fx.partner(session, scenarios=("metro", "walking"))
    other = fx.partner(session, scenarios=("metro",))
    puid, _ = fx.bind(session, partner)
    other_puid, _ = fx.bind(session, other)
    session.flush()
    now = datetime.now(UTC)
    sent = [
        fx.record(puid, start=now - timedelta(hours=3)),
        fx.record(puid, start=now - timedelta(hours=2)),
        fx.record("nobody-1"),
        fx.record("nobody-2"),
        fx.record(
            puid,
            scenario="walking",
            start=now - timedelta(hours=5),
            minutes=10,
            quantities={"steps": 100, "distance_km": "5"},
        ),
    ]
    out = fx.push(client, partner, sent).json()["results"]
    assert [r["status"] for r in out] == ["credited", "credited", *["rejected"] * 3]
    path = f"/v1/partner/activities/{quote(sent[1]['external_id'], safe='')}/reversal"
    assert fx.signed_post(client, partner, path).status_code == 200
    assert fx.push(client, other, [fx.record(other_puid)]).status_code == 200
    return partner, out


def test_a_partners_feed_by_status_and_refusal(client, session):
    partner, out = _feed(client, session)
    reviewer = identity_fixtures.staff(session, "reviewer")
    response = client.get(f"/v1/partners/{partner.partner_id}/activity", headers=reviewer.headers)
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["totals"] == {
        "records": 5,
        "credited": 1,
        "review": 0,
        "rejected": 3,
        "reversed": 1,
    }
    assert body["credited_mg"] == out[0]["reduction_mg"]
    assert body["rejections"] == [
        {"code": "unbound_user", "records": 2},
        {"code": "implausible_speed", "records": 1},
    ]
    assert len(body["daily"]) == 14 and body["daily"][-1]["date"] == body["until"]
    assert sum(d["rejected"] for d in body["daily"]) == 3
    week = client.get(
        f"/v1/partners/{partner.partner_id}/activity",
        params={"days": 7},
        headers=reviewer.headers,
    ).json()
    assert len(week["daily"]) == 7 and week["totals"] == body["totals"]


def test_only_reviewers_and_operators_read_it_and_bad_input_is_refused(client, session):
    partner, _ = _feed(client, session)
    path = f"/v1/partners/{partner.partner_id}/activity"
    merchant = identity_fixtures.staff(session, "merchant")
    citizen = identity_fixtures.citizen(session)
    assert client.get(path, headers=merchant.headers).status_code == 403
    assert client.get(path, headers=citizen.headers).status_code == 403
    assert client.get(path).status_code == 401
    admin = identity_fixtures.staff(session, "operator_admin")
    unknown = client.get("/v1/partners/999999/activity", headers=admin.headers)
    assert unknown.status_code == 404 and unknown.json()["code"] == "partner_not_found"
    for days in ("0", "91", "x"):
        refused = client.get(path, params={"days": days}, headers=admin.headers)
        assert refused.status_code == 422 and refused.json()["field"] == "days", refused.text

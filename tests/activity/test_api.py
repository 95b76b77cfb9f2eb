"""The partner API end to end, with signed requests, on SQLite and PostgreSQL; the review queue; the
citizen's account. `ledger_service.check(session) == []` closes every scenario that moves value."""

from __future__ import annotations

import gzip
import json
from datetime import UTC, datetime, timedelta
from urllib.parse import quote

import pytest
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from tanhui.activity import service as activity_service
from tanhui.activity.models import ActivityRecord
from tanhui.identity import signing
from tanhui.incentives.models import Award
from tanhui.ledger import service as ledger_service
from tanhui.trust.models import Leaf, QueuedLeaf
from tests.fixtures import activity as fx
from tests.fixtures import identity as identity_fixtures


@pytest.fixture
def partner(session: Session) -> fx.Partner:
    return fx.partner(session)


def results(response):
    assert response.status_code == 200, response.text
    return response.json()["results"]


def test_signed_batch_credits_each_record(client, session, partner):
    puid, citizen_id = fx.bind(session, partner)
    records = [
        fx.record(puid, scenario="metro", quantities={"distance_km": "12.4"}),
        fx.record(
            puid,
            scenario="bus",
            start=datetime.now(UTC) - timedelta(hours=5),
            quantities={"distance_km": 5},
        ),
    ]
    session.flush()
    out = results(fx.push(client, partner, records))
    assert [r["status"] for r in out] == ["credited", "credited"]
    assert out[0]["reduction_mg"] == 579_080  # 46.7 g/km x 12.4 km (Shenzhen metro)
    assert out[0]["record_id"] and out[0]["code"] is None
    assert all(r["points"] >= 0 for r in out)
    account = ledger_service.open_account(
        session, owner_type="citizen", owner_id=citizen_id, asset=ledger_service.CO2E_MG
    )
    assert ledger_service.balance(session, account.id).balance == sum(
        r["reduction_mg"] for r in out
    )
    assert ledger_service.check(session) == []
    # No evidence and no review reasons are SQL NULL, not the JSON text 'null'.
    stored = session.execute(
        select(
            func.count(),
            func.count(ActivityRecord.evidence),
            func.count(ActivityRecord.review_reasons),
        ).where(ActivityRecord.id.in_([r["record_id"] for r in out]))
    ).one()
    assert tuple(stored) == (2, 0, 0)


def test_unsigned_request_is_refused(client, partner):
    body = json.dumps({"records": []}).encode()
    response = client.post("/v1/partner/activities", content=body)
    assert response.status_code == 401


def test_same_batch_twice_credits_once(client, session, partner):
    puid, citizen_id = fx.bind(session, partner)
    records = [
        fx.record(
            puid, start=datetime.now(UTC) - timedelta(hours=h), quantities={"distance_km": "3"}
        )
        for h in (2, 3, 4)
    ]
    session.flush()
    first = results(fx.push(client, partner, records))
    again = results(fx.push(client, partner, records))
    assert [r["status"] for r in first] == ["credited"] * 3
    assert [r["status"] for r in again] == ["duplicate"] * 3
    assert [r["record_id"] for r in again] == [r["record_id"] for r in first]
    assert [r["reduction_mg"] for r in again] == [r["reduction_mg"] for r in first]
    assert all(r["original_status"] == "credited" for r in again)
    summary = activity_service.citizen_summary(session, citizen_id)
    assert summary["total_mg"] == sum(r["reduction_mg"] for r in first)
    assert ledger_service.check(session) == []


def test_repeat_inside_one_batch_is_a_duplicate(client, session, partner):
    puid, _ = fx.bind(session, partner)
    one = fx.record(puid)
    session.flush()
    out = results(fx.push(client, partner, [one, one]))
    assert [r["status"] for r in out] == ["credited", "duplicate"]


def test_every_rejection_code(client, session):
    partner = fx.partner(session, scenarios=("metro", "bus", "walking", "bike_share"))
    puid, _ = fx.bind(session, partner, scenarios=("metro", "walking", "bike_share"))
    now = datetime.now(UTC)
    cases = {
        "unbound_user": fx.record("nobody"),
        "scenario_not_consented": fx.record(puid, scenario="bus"),
        "scenario_not_allowed": fx.record(puid, scenario="ev_trip"),
        "invalid_quantity": fx.record(puid, quantities={"distance_km": "0"}),
        "implausible_speed": fx.record(
            puid, scenario="walking", minutes=10, quantities={"steps": 100, "distance_km": "5"}
        ),
        "future_time": fx.record(puid, start=now + timedelta(hours=1)),
        "too_old": fx.record(puid, start=now - timedelta(days=40)),
        "invalid_duration": fx.record(puid, minutes=-5),
    }
    bad = fx.record(puid)
    bad["quantities"] = {"distance_km": "three"}
    session.flush()
    out = results(fx.push(client, partner, [*cases.values(), bad]))
    assert [r["code"] for r in out[:-1]] == list(cases)
    assert all(r["status"] == "rejected" for r in out)
    assert out[-1]["code"] == "invalid_record"
    assert out[-1]["field"] == "quantities.distance_km"
    assert out[-1]["record_id"] is None


def test_methodology_range_is_invalid_quantity(client, session, partner):
    puid, _ = fx.bind(session, partner)
    session.flush()
    # Shenzhen metro accepts at most 200 km per trip; 4 hours keeps the speed plausible.
    out = results(
        fx.push(
            client,
            partner,
            [
                fx.record(
                    puid,
                    start=datetime.now(UTC) - timedelta(hours=6),
                    minutes=240,
                    quantities={"distance_km": "250"},
                )
            ],
        )
    )
    assert (out[0]["status"], out[0]["code"]) == ("rejected", "invalid_quantity")


def test_overlapping_trips_from_two_partners_credit_once(client, session):
    first, second = fx.partner(session), fx.partner(session)
    citizen = identity_fixtures.citizen(session)
    puid_a, _ = fx.bind(session, first, citizen)
    puid_b, _ = fx.bind(session, second, citizen)
    start = datetime.now(UTC) - timedelta(hours=3)
    session.flush()
    a = results(fx.push(client, first, [fx.record(puid_a, start=start)]))
    b = results(fx.push(client, second, [fx.record(puid_b, start=start + timedelta(minutes=10))]))
    later = results(
        fx.push(client, second, [fx.record(puid_b, start=start + timedelta(minutes=30))])
    )
    assert a[0]["status"] == "credited"
    assert (b[0]["status"], b[0]["code"]) == ("rejected", "overlaps_other_record")
    assert later[0]["status"] == "credited"  # back to back is not an overlap


def test_daily_cap_credits_up_to_the_cap(client, session, partner):
    fx.capped_metro(session, per_day="1000 g CO2e")
    puid, citizen_id = fx.bind(session, partner)
    base = datetime.now(UTC).replace(minute=0, second=0, microsecond=0) - timedelta(hours=6)
    # 46.7 g/km x 10 km = 467 g each: 467 + 467 + 66 (cut) then nothing.
    records = [fx.record(puid, start=base + timedelta(minutes=40 * n)) for n in range(4)]
    session.flush()
    out = results(fx.push(client, partner, records))
    statuses = [(r["status"], r["code"], r["reduction_mg"]) for r in out]
    day = lambda r: datetime.fromisoformat(r["started_at"]).astimezone(UTC)  # noqa: E731
    if len({(day(r) + timedelta(hours=8)).date() for r in records}) == 1:
        assert statuses == [
            ("credited", None, 467_000),
            ("credited", None, 467_000),
            ("credited", None, 66_000),
            ("rejected", "daily_cap_reached", 0),
        ]
    summary = activity_service.citizen_summary(session, citizen_id)
    assert summary["total_mg"] <= 2 * 1_000_000
    assert ledger_service.check(session) == []


def test_review_then_approve_and_reject(client, session, partner):
    puid, citizen_id = fx.bind(session, partner)
    reviewer = identity_fixtures.staff(session, "reviewer")
    start = datetime.now(UTC) - timedelta(hours=4)
    fast = [  # 118 km/h on the metro: plausible, but near the bound
        fx.record(puid, start=start, minutes=30, quantities={"distance_km": "59"}),
        fx.record(
            puid, start=start + timedelta(hours=1), minutes=30, quantities={"distance_km": "59"}
        ),
    ]
    session.flush()
    out = results(fx.push(client, partner, fast))
    assert [r["status"] for r in out] == ["review", "review"]
    headers = identity_fixtures.auth(reviewer.token)
    queue = client.get("/v1/review/records", headers=headers)
    assert queue.status_code == 200
    ids = [r["record_id"] for r in queue.json()]
    assert out[0]["record_id"] in ids and "speed_near_bound" in queue.json()[0]["review_reasons"]
    assert all(r["detail"] is None or "cap" not in r["detail"] for r in queue.json())
    approved = client.post(f"/v1/review/records/{out[0]['record_id']}/approve", headers=headers)
    assert approved.status_code == 200, approved.text
    assert approved.json()["status"] == "credited"
    assert approved.json()["reduction_mg"] == 2_755_300
    rejected = client.post(
        f"/v1/review/records/{out[1]['record_id']}/reject",
        headers=headers,
        json={"reason": "speed inconsistent with the line"},
    )
    assert rejected.json()["status"] == "rejected"
    again = client.post(f"/v1/review/records/{out[1]['record_id']}/approve", headers=headers)
    assert (again.status_code, again.json()["code"]) == (409, "not_in_review")
    citizen = identity_fixtures.citizen(session)
    refused = client.get("/v1/review/records", headers=citizen.headers)
    assert refused.status_code == 403
    assert activity_service.citizen_summary(session, citizen_id)["total_mg"] == 2_755_300
    assert ledger_service.check(session) == []


def test_status_reversal_and_reconciliation(client, session, partner):
    puid, citizen_id = fx.bind(session, partner)
    rec = fx.record(puid, quantities={"distance_km": "20"})
    session.flush()
    out = results(fx.push(client, partner, [rec]))
    ext = rec["external_id"]
    status = fx.signed_get(client, partner, f"/v1/partner/activities/{ext}")
    assert status.status_code == 200 and status.json()["status"] == "credited"
    path = f"/v1/partner/activities/{ext}/reversal"
    body = json.dumps({"reason": "ticket refunded"}).encode()
    first = fx.signed_post(client, partner, path, body)
    second = fx.signed_post(client, partner, path, body)
    assert first.status_code == 200, first.text
    assert first.json()["status"] == "reversed"
    assert second.json() == first.json()
    assert first.json()["reversal_transfer_id"]
    account = ledger_service.open_account(
        session, owner_type="citizen", owner_id=citizen_id, asset=ledger_service.CO2E_MG
    )
    assert ledger_service.balance(session, account.id).balance == 0
    assert out[0]["reduction_mg"] == 934_000
    day = datetime.fromisoformat(rec["started_at"]).astimezone(UTC) + timedelta(hours=8)
    recon = fx.signed_get(
        client, partner, "/v1/partner/reconciliation", {"date": day.date().isoformat()}
    )
    assert recon.status_code == 200
    groups = recon.json()["groups"]
    assert {
        "scenario": "metro",
        "status": "reversed",
        "records": 1,
        "reduction_mg": 934_000,
        "points": out[0]["points"],
    } in groups
    missing = fx.signed_get(client, partner, "/v1/partner/activities/nope")
    assert (missing.status_code, missing.json()["code"]) == (404, "record_not_found")
    assert ledger_service.check(session) == []


@pytest.mark.parametrize(
    "ext", ["order/2026/11/30-7", "a?b#c%d&e", "trip/reversal", "..", "x/reversal/reversal"]
)
def test_any_accepted_external_id_can_be_looked_up_and_reversed(client, session, partner, ext):
    # Ingestion takes any printable ASCII id: the status and reversal paths must reach each one,
    # percent-encoded in the path (signed as sent) or, where that means the same, as it is.
    puid, _ = fx.bind(session, partner)
    rec = fx.record(puid, external_id=ext)
    session.flush()
    assert results(fx.push(client, partner, [rec]))[0]["status"] == "credited"
    # Dots too: clients drop "." and ".." segments of a path before sending it.
    path = f"/v1/partner/activities/{quote(ext, safe='').replace('.', '%2E')}"
    status = fx.signed_get(client, partner, path)
    assert status.status_code == 200, status.text
    assert (status.json()["external_id"], status.json()["status"]) == (ext, "credited")
    reversal = fx.signed_post(client, partner, path + "/reversal")
    assert reversal.status_code == 200, reversal.text
    assert (reversal.json()["external_id"], reversal.json()["status"]) == (ext, "reversed")
    if "?" not in ext and "#" not in ext and "%" not in ext and ".." not in ext:
        plain = fx.signed_get(client, partner, f"/v1/partner/activities/{ext}")
        assert plain.status_code == 200 and plain.json()["external_id"] == ext, plain.text
    assert ledger_service.check(session) == []


@pytest.mark.parametrize(
    "body",
    [b"not json", b"[]", b'{"records": {}}', b'{"records": []}', b'{"records": [], "x": 1}'],
)
def test_malformed_body_is_a_422_problem(client, partner, body):
    response = fx.push(client, partner, body)
    assert response.status_code == 422
    assert response.headers["content-type"].startswith("application/problem+json")


def test_a_body_not_in_utf8_is_refused_saying_so(client, partner):
    record = {**fx.record("u"), "evidence": {"station": "天府广场"}}
    body = json.dumps({"records": [record]}, ensure_ascii=False)
    response = fx.push(client, partner, body.encode("gbk"))
    assert (response.status_code, response.json()["code"]) == (422, "invalid_json")
    assert "UTF-8" in response.json()["detail"]
    # UTF-8 with a byte-order mark (what some Windows tools write) is read.
    response = fx.push(client, partner, b"\xef\xbb\xbf" + body.encode())
    assert response.status_code == 200, response.text


def test_a_compressed_body_is_refused_by_name(client, partner):
    path = "/v1/partner/activities"
    body = gzip.compress(json.dumps({"records": [fx.record("u")]}).encode())
    headers = {"Content-Encoding": "gzip", **partner.signed("POST", path, body)}
    response = client.post(path, content=body, headers=headers)
    assert response.status_code == 415, response.text
    assert response.json()["code"] == "unsupported_content_encoding"


def test_more_than_1000_records_is_a_422(client, partner):
    records = [fx.record("u", external_id=f"e{n}") for n in range(1001)]
    response = fx.push(client, partner, json.dumps({"records": records}).encode())
    assert response.status_code == 422 and response.json()["field"] == "records"


def test_citizen_account(client, session, partner):
    citizen = identity_fixtures.citizen(session)
    puid, _ = fx.bind(session, partner, citizen)
    start = datetime.now(UTC) - timedelta(hours=3)
    records = [
        fx.record(puid, start=start, quantities={"distance_km": "10"}),
        fx.record(
            puid, scenario="bus", start=start + timedelta(hours=1), quantities={"distance_km": "8"}
        ),
    ]
    session.flush()
    out = results(fx.push(client, partner, records))
    summary = client.get("/v1/me/summary", headers=citizen.headers)
    assert summary.status_code == 200, summary.text
    body = summary.json()
    assert body["total_mg"] == sum(r["reduction_mg"] for r in out)
    assert {s["scenario"] for s in body["by_scenario"]} == {"metro", "bus"}
    assert (
        len(body["daily"]) == 30
        and sum(d["reduction_mg"] for d in body["daily"]) == body["total_mg"]
    )
    to_date = body["month_to_date"]
    this_month = sum(d["reduction_mg"] for d in body["daily"] if d["date"] >= to_date["since"])
    assert to_date["until"] == body["daily"][-1]["date"]
    assert to_date["reduction_mg"] == this_month
    page = client.get("/v1/me/records", params={"limit": 1}, headers=citizen.headers).json()
    assert len(page["items"]) == 1 and page["next_before_id"] is not None
    rest = client.get(
        "/v1/me/records", params={"before_id": page["next_before_id"]}, headers=citizen.headers
    ).json()
    assert len(rest["items"]) == 1 and rest["next_before_id"] is None
    detail = client.get(f"/v1/me/records/{out[0]['record_id']}", headers=citizen.headers)
    assert detail.status_code == 200, detail.text
    d = detail.json()
    assert d["methodology"] == "shenzhen-metro" and d["methodology_version"] == "1"
    assert d["transfer_id"] is not None
    assert d["calculation"]["reduction_mg"] == out[0]["reduction_mg"]
    assert any(
        f["name"] == "metro_reduction_factor" and f["status"] == "verified" for f in d["factors"]
    )
    assert d["trust_leaf"] is not None
    other = identity_fixtures.citizen(session)
    assert (
        client.get(f"/v1/me/records/{out[0]['record_id']}", headers=other.headers).status_code
        == 404
    )
    export = client.get("/v1/me/export", headers=citizen.headers)
    if export.status_code == 200:
        assert len(export.json()["activity_records"]) == 2


def test_a_batch_is_one_transfer_of_co2e_and_points(client, session, partner):
    """A batch's CO2E credit and the points it earns are one balanced transfer, logged once."""
    users = [fx.bind(session, partner) for _ in range(3)]
    session.flush()
    records = [
        fx.record(puid, scenario="metro", quantities={"distance_km": "15"}) for puid, _ in users
    ]
    out = results(fx.push(client, partner, records))
    assert [r["status"] for r in out] == ["credited"] * 3 and all(r["points"] > 0 for r in out)
    stored = session.scalars(
        select(ActivityRecord).where(ActivityRecord.id.in_([r["record_id"] for r in out]))
    ).all()
    assert len({r.transfer_id for r in stored}) == 1
    (transfer,) = ledger_service.get_transfer_records(session, [stored[0].transfer_id])
    assert transfer.kind == "activity.credit"
    by_asset: dict[str, list[int]] = {}
    for posting in transfer.postings:
        by_asset.setdefault(posting.asset, []).append(posting.amount)
    assert set(by_asset) == {ledger_service.CO2E_MG, ledger_service.POINT}
    assert all(sum(amounts) == 0 for amounts in by_asset.values())
    assert sorted(a for a in by_asset[ledger_service.CO2E_MG] if a > 0) == sorted(
        r["reduction_mg"] for r in out
    )
    assert sorted(a for a in by_asset[ledger_service.POINT] if a > 0) == sorted(
        r["points"] for r in out
    )
    awards = session.scalars(
        select(Award).where(Award.source.in_([f"activity:{r['record_id']}" for r in out]))
    ).all()
    assert {a.transfer_id for a in awards} == {transfer.id}
    logged = session.scalar(
        select(func.count()).select_from(QueuedLeaf).where(QueuedLeaf.ref == str(transfer.id))
    ) + session.scalar(select(func.count()).select_from(Leaf).where(Leaf.ref == str(transfer.id)))
    assert logged == 1
    # Reversing one record takes back exactly its CO2E and points, as transfers of their own.
    reversed_ = fx.signed_post(
        client, partner, f"/v1/partner/activities/{records[0]['external_id']}/reversal"
    )
    assert reversed_.status_code == 200, reversed_.text
    assert ledger_service.check(session) == []


def test_operator_rule_change_applies(client, session, partner):
    admin = identity_fixtures.staff(session, "operator_admin")
    puid, _ = fx.bind(session, partner)
    session.flush()
    response = client.post(
        "/v1/activity/rules",
        headers=identity_fixtures.auth(admin.token),
        json={"scenario": "metro", "params": {"max_speed_kmh": "30"}},
    )
    assert response.status_code == 200, response.text
    assert response.json()["metro"]["max_speed_kmh"] == "30"
    out = results(fx.push(client, partner, [fx.record(puid, quantities={"distance_km": "20"})]))
    assert out[0]["code"] == "implausible_speed"  # 40 km/h > 30
    bad = client.post(
        "/v1/activity/rules",
        headers=identity_fixtures.auth(admin.token),
        json={"scenario": "metro", "params": {"warp": 9}},
    )
    assert bad.status_code == 422


def test_issuance_marks_records_once(client, session, partner):
    puid, _ = fx.bind(session, partner)
    rec = fx.record(puid)
    session.flush()
    out = results(fx.push(client, partner, [rec]))
    day = (datetime.fromisoformat(rec["started_at"]) + timedelta(hours=8)).date()
    total, ids = activity_service.unissued_reductions(
        session, scenario="metro", start=day - timedelta(days=1), end=day + timedelta(days=1)
    )
    assert out[0]["record_id"] in ids and total >= out[0]["reduction_mg"]
    activity_service.mark_issued(session, ids, batch_ref="batch-1")
    from tanhui.kit.errors import Conflict

    with pytest.raises(Conflict):
        activity_service.mark_issued(session, ids, batch_ref="batch-2")
    response = fx.signed_post(
        client, partner, f"/v1/partner/activities/{rec['external_id']}/reversal"
    )
    session.expire_all()
    assert (response.status_code, response.json()["code"]) == (409, "already_issued")


def test_a_refused_batch_does_not_burn_its_nonce_and_a_credited_one_does(client, session, partner):
    """The batch endpoint verifies in a read transaction and remembers the nonce only in the one
    that credits: a body refused whole (422) changes nothing, the nonce included."""
    puid, _ = fx.bind(session, partner)
    path = "/v1/partner/activities"
    nonce = "batch-nonce-0123456789"
    bad = b'{"records": "not a list"}'
    headers = signing.signed_headers(partner.key_id, partner.secret, "POST", path, bad, nonce=nonce)
    refused = client.post(path, content=bad, headers=headers)
    assert (refused.status_code, refused.json()["code"]) == (422, "invalid_batch")

    good = json.dumps({"records": [fx.record(puid)]}).encode()
    headers = signing.signed_headers(
        partner.key_id, partner.secret, "POST", path, good, nonce=nonce
    )
    assert [r["status"] for r in results(client.post(path, content=good, headers=headers))] == [
        "credited"
    ]
    replayed = client.post(path, content=good, headers=headers)
    assert (replayed.status_code, replayed.json()["code"]) == (401, "nonce_reused")
    assert ledger_service.check(session) == []

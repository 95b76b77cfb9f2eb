"""The review queue at scale: counts and a filter by the reason a record was held, and decisions on
many records at once (each committed on its own), on SQLite and PostgreSQL."""

from __future__ import annotations

import threading
from typing import Any

import pytest
from sqlalchemy import select
from sqlalchemy.orm import Session

from tanhui.activity import service as activity_service
from tanhui.activity.models import ActivityRecord
from tanhui.kit.db import create_db_engine, make_session_factory, session_scope
from tanhui.ledger import service as ledger_service
from tests.fixtures import activity as fx
from tests.fixtures import identity as identity_fixtures


@pytest.fixture
def partner(session: Session) -> fx.Partner:
    return fx.partner(session)


@pytest.fixture
def reviewer(session: Session) -> dict[str, str]:
    return identity_fixtures.auth(identity_fixtures.staff(session, "reviewer").token)


def test_counts_and_filter_by_reason(client, session, partner, reviewer):
    fast = fx.held(session, partner, 3)
    counts = client.get("/v1/review/counts", headers=reviewer).json()
    assert counts["total"] == 3 and counts["speed_near_bound"] == 3
    assert counts["long_trip"] == 0 and counts["many_records_today"] == 0
    near = client.get("/v1/review/records?reason=speed_near_bound", headers=reviewer).json()
    assert [r["record_id"] for r in near] == fast
    assert client.get("/v1/review/records?reason=long_trip", headers=reviewer).json() == []
    unknown = client.get("/v1/review/records?reason=nonsense", headers=reviewer)
    assert (unknown.status_code, unknown.json()["code"]) == (422, "unknown_reason")


def test_many_approved_at_once_each_credited(client, session, partner, reviewer):
    ids = fx.held(session, partner, 3)
    # One decided already by another reviewer, and an id that does not exist.
    assert client.post(f"/v1/review/records/{ids[0]}/approve", headers=reviewer).status_code == 200
    body = {"record_ids": [ids[2], ids[0], ids[1], 10**12, ids[1]], "decision": "approve"}
    r = client.post("/v1/review/decisions", json=body, headers=reviewer)
    assert r.status_code == 200, r.text
    outcomes = {o["record_id"]: o for o in r.json()["results"]}
    assert [o["record_id"] for o in r.json()["results"]] == sorted(outcomes)
    assert r.json()["decided"] == 2
    assert (outcomes[ids[0]]["decided"], outcomes[ids[0]]["code"]) == (False, "not_in_review")
    assert (outcomes[10**12]["decided"], outcomes[10**12]["code"]) == (False, "record_not_found")
    for rid in ids[1:]:
        assert (outcomes[rid]["status"], outcomes[rid]["reduction_mg"]) == ("credited", 2_755_300)
    assert client.get("/v1/review/counts", headers=reviewer).json()["total"] == 0
    assert ledger_service.check(session) == []


def test_many_rejected_with_one_reason(client, session, partner, reviewer):
    ids = fx.held(session, partner, 2)
    no_reason = client.post(
        "/v1/review/decisions", json={"record_ids": ids, "decision": "reject"}, headers=reviewer
    )
    assert (no_reason.status_code, no_reason.json()["field"]) == (422, "reason")
    assert client.get("/v1/review/counts", headers=reviewer).json()["total"] == 2
    body = {"record_ids": ids, "decision": "reject", "reason": "speeds no metro line reaches"}
    r = client.post("/v1/review/decisions", json=body, headers=reviewer)
    assert [(o["decided"], o["code"]) for o in r.json()["results"]] == [
        (True, "rejected_by_reviewer")
    ] * 2
    record = session.get(ActivityRecord, ids[0])
    assert record is not None and record.detail == "speeds no metro line reaches"


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"record_ids": [], "decision": "approve"}, "record_ids"),
        ({"record_ids": list(range(1, 202)), "decision": "approve"}, "record_ids"),
        ({"record_ids": [1], "decision": "maybe"}, "decision"),
        ({"record_ids": ["x"], "decision": "approve"}, "record_ids.0"),
        ({"record_ids": [1], "decision": "approve", "extra": 1}, "extra"),
    ],
)
def test_a_bad_request_changes_nothing(client, session, partner, reviewer, body, field):
    fx.held(session, partner, 1)
    r = client.post("/v1/review/decisions", json=body, headers=reviewer)
    assert (r.status_code, r.json()["field"]) == (422, field)
    assert client.get("/v1/review/counts", headers=reviewer).json()["total"] == 1


def test_only_reviewers_decide(client, session, partner):
    ids = fx.held(session, partner, 1)
    buyer = identity_fixtures.auth(identity_fixtures.staff(session, "buyer").token)
    r = client.post(
        "/v1/review/decisions", json={"record_ids": ids, "decision": "approve"}, headers=buyer
    )
    assert r.status_code == 403
    assert client.get("/v1/review/counts", headers=buyer).status_code == 403


@pytest.mark.postgresql_only
def test_two_reviewers_deciding_overlapping_sets_credit_each_once(database_url):
    """Two reviewers approve overlapping sets at the same moment: every record is credited exactly
    once (the second to reach a record finds it decided), and neither request deadlocks."""
    factory = make_session_factory(create_db_engine(database_url))
    try:
        with session_scope(factory) as session:
            ids = fx.held(session, fx.partner(session), 12)
            actors = [identity_fixtures.staff(session, "reviewer").principal for _ in range(2)]
        outcomes: list[list[dict[str, Any]]] = []
        start = threading.Barrier(2)

        def decide(actor: Any, mine: list[int]) -> None:
            with factory() as session:
                start.wait()
                outcomes.append(
                    activity_service.decide_many(session, actor, mine, decision="approve")
                )
                session.commit()

        threads = [
            threading.Thread(target=decide, args=(actors[0], ids[:8])),
            threading.Thread(target=decide, args=(actors[1], ids[4:])),
        ]
        for t in threads:
            t.start()
        for t in threads:
            t.join(60)
        assert len(outcomes) == 2
        decided = [o["record_id"] for out in outcomes for o in out if o["decided"]]
        assert sorted(decided) == ids
        missed = [o["code"] for out in outcomes for o in out if not o["decided"]]
        assert missed == ["not_in_review"] * 4
        with session_scope(factory) as session:
            records = session.scalars(select(ActivityRecord).where(ActivityRecord.id.in_(ids)))
            assert {r.status for r in records} == {"credited"}
            assert ledger_service.check(session) == []
    finally:
        factory.kw["bind"].dispose()

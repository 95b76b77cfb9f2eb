from __future__ import annotations

from datetime import UTC, date, datetime, timedelta, timezone

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy import select
from sqlalchemy.orm import Session

from tanhui.incentives import service as incentives_service
from tanhui.incentives.models import Award as AwardRow
from tanhui.kit.errors import IdempotencyConflict
from tanhui.kit.fingerprint import fingerprint
from tanhui.ledger import service as ledger_service
from tests.fixtures.incentives import award, citizen_id, give_points

RATE = incentives_service.DEFAULT_MG_PER_POINT


class TestAwardPoints:
    def test_converts_at_one_point_per_ten_grams_and_carries_the_rest(self, session: Session):
        c = citizen_id()
        got = incentives_service.award_points(
            session, [award(c, 25_000), award(c, 4_999), award(c, 1)]
        )
        assert got == [2, 0, 1]
        assert incentives_service.points_balance(session, c) == 3
        assert incentives_service.points_summary(session, c).carry_mg == 0
        assert ledger_service.check(session) == []

    def test_replay_returns_the_same_points_and_moves_nothing(self, session: Session):
        c = citizen_id()
        a = award(c, 35_000)
        assert incentives_service.award_points(session, [a]) == [3]
        assert incentives_service.award_points(session, [a, a]) == [3, 3]
        assert incentives_service.points_balance(session, c) == 3

    def test_same_key_other_body_is_a_conflict(self, session: Session):
        c = citizen_id()
        a = award(c, 35_000)
        incentives_service.award_points(session, [a])
        other = incentives_service.Award(c, 99_000, a.earned_at, a.source, a.idempotency_key)
        with pytest.raises(IdempotencyConflict):
            incentives_service.award_points(session, [other])

    def test_a_batch_of_a_thousand_is_one_call(self, session: Session):
        citizens = [citizen_id() for _ in range(50)]
        batch = [award(citizens[i % 50], 12_345) for i in range(1000)]
        got = incentives_service.award_points(session, batch)
        assert sum(got) == 50 * (20 * 12_345 // RATE)
        assert ledger_service.check(session) == []

    def test_lots_are_dated_and_expire_at_the_end_of_next_year(self, session: Session):
        c = citizen_id()
        give_points(session, c, 7, at=datetime(2026, 3, 1, 20, tzinfo=UTC))  # 3 Mar 04:00 Shanghai
        lots = incentives_service.points_summary(session, c).lots
        assert [(lot.earned_on, lot.expires_on, lot.remaining) for lot in lots] == [
            (date(2026, 3, 2), date(2027, 12, 31), 7)
        ]

    def test_a_rule_row_changes_the_rate_from_its_date(self, session: Session):
        c = citizen_id()
        incentives_service.set_rule(
            session, effective_from=datetime(2026, 6, 1, tzinfo=UTC), mg_per_point=1_000
        )
        before = award(c, 10_000, at=datetime(2026, 5, 31, tzinfo=UTC))
        after = award(c, 10_000, at=datetime(2026, 6, 2, tzinfo=UTC))
        assert incentives_service.award_points(session, [before, after]) == [1, 10]

    def test_a_batch_is_one_point_transfer_with_a_posting_per_citizen(self, session: Session):
        c1, c2 = citizen_id(), citizen_id()
        batch = [award(c1, 30_000), award(c2, 20_000), award(c1, 10_000), award(c2, 0)]
        assert incentives_service.award_points(session, batch) == [3, 2, 1, 0]
        rows = session.scalars(
            select(AwardRow).where(AwardRow.idempotency_key.in_([a.idempotency_key for a in batch]))
        ).all()
        assert {r.transfer_id for r in rows if r.points} == {rows[0].transfer_id}
        assert [r.transfer_id for r in rows if not r.points] == [None]
        transfer_id = rows[0].transfer_id
        assert transfer_id is not None
        (record,) = ledger_service.get_transfer_records(session, [transfer_id])
        assert sorted(p.amount for p in record.postings) == [-6, 2, 4]
        assert ledger_service.check(session) == []


class TestCampaignCap:
    def test_issuance_stops_at_the_cap(self, session: Session):
        incentives_service.set_campaign_budget(session, "spring", budget_points=5)
        c = citizen_id()
        got = incentives_service.award_points(
            session,
            [award(c, 30_000, campaign="spring") for _ in range(3)],
        )
        assert got == [3, 2, 0]
        assert incentives_service.points_balance(session, c) == 5
        view = {v.code: v for v in incentives_service.campaigns(session)}["spring"]
        assert (view.issued_points, view.remaining_points) == (5, 0)

    def test_lifting_the_cap_pays_no_windfall(self, session: Session):
        incentives_service.set_campaign_budget(session, "summer", budget_points=0)
        c = citizen_id()
        assert incentives_service.award_points(session, [award(c, 95_000, campaign="summer")]) == [
            0
        ]
        incentives_service.set_campaign_budget(session, "summer", budget_points=None)
        assert incentives_service.award_points(session, [award(c, 5_000, campaign="summer")]) == [1]


class TestRevoke:
    def test_revoke_takes_back_and_restores_the_carry(self, session: Session):
        c = citizen_id()
        incentives_service.award_points(session, [award(c, 8_000)])
        a = award(c, 5_000, source="activity:77")
        assert incentives_service.award_points(session, [a]) == [1]
        assert (
            incentives_service.revoke_points(session, source="activity:77", idempotency_key="r1")
            == 1
        )
        assert incentives_service.points_balance(session, c) == 0
        assert incentives_service.points_summary(session, c).carry_mg == 8_000
        assert (
            incentives_service.revoke_points(session, source="activity:77", idempotency_key="r1")
            == 0
        )
        assert ledger_service.check(session) == []

    def test_revoking_one_source_of_a_batch_is_a_new_transfer(self, session: Session):
        c = citizen_id()
        a, b = award(c, 30_000, source="activity:81"), award(c, 20_000, source="activity:82")
        incentives_service.award_points(session, [a, b])
        batch_transfer = session.scalars(
            select(AwardRow.transfer_id).where(AwardRow.source == "activity:81")
        ).one()
        assert batch_transfer is not None
        before = ledger_service.get_transfer_records(session, [batch_transfer])[0]
        assert (
            incentives_service.revoke_points(session, source="activity:82", idempotency_key="r")
            == 2
        )
        assert incentives_service.points_balance(session, c) == 3
        row = session.scalars(select(AwardRow).where(AwardRow.source == "activity:82")).one()
        assert row.revoke_transfer_id is not None
        revoke = ledger_service.get_transfer_records(session, [row.revoke_transfer_id])[0]
        assert revoke.id != batch_transfer and revoke.metadata["source"] == "activity:82"
        assert sorted(p.amount for p in revoke.postings) == [-2, 2]
        assert ledger_service.get_transfer_records(session, [batch_transfer])[0] == before
        assert ledger_service.check(session) == []

    def test_spent_points_are_not_taken_twice(self, session: Session):
        c = citizen_id()
        incentives_service.award_points(session, [award(c, 50_000, source="activity:78")])
        account = incentives_service.point_account_id(session, c)
        sink = ledger_service.platform_account(session, "POINT", "redeemed")
        incentives_service.consume_points(session, c, 4, ref="order:x")
        ledger_service.transfer(
            session, idempotency_key="spend-x", kind="test", postings=[(account, -4), (sink.id, 4)]
        )
        assert (
            incentives_service.revoke_points(session, source="activity:78", idempotency_key="r")
            == 1
        )
        assert incentives_service.points_balance(session, c) == 0
        # 5 points were awarded, 1 taken back: the carry owes 4 points' worth.
        assert incentives_service.points_summary(session, c).carry_mg == -40_000
        assert ledger_service.check(session) == []


class TestLots:
    def test_consumption_is_oldest_first_and_restorable(self, session: Session):
        c = citizen_id()
        give_points(session, c, 3, at=datetime(2025, 5, 1, tzinfo=UTC))
        give_points(session, c, 4, at=datetime(2026, 5, 1, tzinfo=UTC))
        used = incentives_service.consume_points(
            session, c, 5, ref="order:1", today=date(2026, 6, 1)
        )
        assert [n for _, n in used] == [3, 2]
        assert incentives_service.restore_points(session, ref="order:1") == 5
        assert incentives_service.restore_points(session, ref="order:1") == 0
        assert [lot.remaining for lot in incentives_service.points_summary(session, c).lots] == [
            3,
            4,
        ]

    def test_expiry_moves_what_is_left_and_is_idempotent(self, session: Session):
        c = citizen_id()
        give_points(session, c, 3, at=datetime(2025, 5, 1, tzinfo=UTC))
        give_points(session, c, 4, at=datetime(2026, 5, 1, tzinfo=UTC))
        first = incentives_service.expire_points(session, as_of=date(2027, 1, 1))
        assert (first.lots, first.points) >= (1, 3)
        again = incentives_service.expire_points(session, as_of=date(2027, 1, 1))
        assert again.points == 0
        assert incentives_service.points_balance(session, c) == 4
        assert ledger_service.check(session) == []


@settings(
    max_examples=30,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture],
)
@given(st.lists(st.tuples(st.integers(0, 2), st.integers(0, 60_000)), min_size=1, max_size=40))
def test_remainder_is_never_lost(session: Session, steps: list[tuple[int, int]]) -> None:
    citizens = [citizen_id() for _ in range(3)]
    batches = [steps[i : i + 7] for i in range(0, len(steps), 7)]
    total_mg = dict.fromkeys(citizens, 0)
    total_points = dict.fromkeys(citizens, 0)
    for batch in batches:
        awards = [award(citizens[who], mg) for who, mg in batch]
        for a, got in zip(awards, incentives_service.award_points(session, awards), strict=True):
            total_mg[a.citizen_id] += a.reduction_mg
            total_points[a.citizen_id] += got
    for c in citizens:
        assert total_points[c] == total_mg[c] // RATE
        assert incentives_service.points_balance(session, c) == total_points[c]


def test_issued_by_day_follows_the_earning_day(session) -> None:
    from datetime import UTC, datetime, timedelta

    from tanhui.incentives import service as incentives_service
    from tests.fixtures.identity import citizen

    person = citizen(session)
    earned = datetime.now(UTC) - timedelta(days=3)
    incentives_service.award_points(
        session,
        [
            incentives_service.Award(person.id, 250_000, earned, "test:by-day", "by-day-1"),
            incentives_service.Award(
                person.id, 100_000, datetime.now(UTC), "test:by-day-2", "by-day-2"
            ),
        ],
    )
    day = incentives_service.local_day(earned)
    today = incentives_service.local_day(datetime.now(UTC))
    issued = incentives_service.issued_by_day(session, first=day, last=today)
    assert issued.get(day, 0) >= 25
    assert issued.get(today, 0) >= 10


@given(
    citizen=st.integers(min_value=1, max_value=2**63 - 1),
    mg=st.integers(min_value=0, max_value=2**63 - 1),
    at=st.datetimes(
        min_value=datetime(2000, 1, 2),
        max_value=datetime(2999, 12, 30),
        timezones=st.sampled_from(
            [UTC, timezone(timedelta(hours=8)), timezone(-timedelta(hours=5))]
        ),
    ),
    # Any text, and printable ASCII (quotes and backslashes included), which the hash only quotes.
    source=st.text(min_size=1, max_size=40) | st.from_regex(r"[ -~]{1,40}", fullmatch=True),
    campaign=st.text(min_size=1, max_size=20) | st.from_regex(r"[ -~]{1,20}", fullmatch=True),
)
def test_the_award_hash_is_the_fingerprint_of_the_award(citizen, mg, at, source, campaign) -> None:  # type: ignore[no-untyped-def]
    """Hashes stored by earlier versions must still match on replay."""
    award = incentives_service.Award(
        citizen_id=citizen,
        reduction_mg=mg,
        earned_at=at,
        source=source,
        idempotency_key="k",
        campaign=campaign,
    )
    expected = fingerprint(
        {"c": citizen, "mg": mg, "at": at.astimezone(UTC), "s": source, "k": campaign}
    )
    assert incentives_service._award_hash(award) == expected

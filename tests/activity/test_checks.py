"""Pure checks: parsing, time window, plausibility, and (Hypothesis) caps and overlap de-duplication."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from decimal import Decimal

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tanhui.activity import checks
from tanhui.activity.checks import Allocator, RecordError, SpanIndex
from tanhui.activity.rules import DEFAULTS, RuleBook, clean_params

NOW = datetime(2025, 3, 1, 12, 0, tzinfo=UTC)
BOOK = RuleBook({})


def raw(**overrides):
    record = {
        "external_id": "t-1",
        "partner_user_id": "u-1",
        "scenario": "metro",
        "started_at": "2025-03-01T08:00:00+08:00",
        "ended_at": "2025-03-01T08:30:00+08:00",
        "quantities": {"distance_km": "12.4"},
    }
    record.update(overrides)
    return record


class TestParse:
    def test_reads_exact_decimals_and_offsets(self):
        record = checks.parse_record(raw(quantities={"distance_km": Decimal("3.2"), "count": 2}))
        assert record.quantities == {"distance_km": Decimal("3.2"), "count": Decimal(2)}
        assert record.started_at == datetime(2025, 3, 1, 0, 0, tzinfo=UTC)

    @pytest.mark.parametrize(
        "written",
        [
            "2025-03-01T00:00:00Z",
            "2025-03-01t00:00:00z",  # RFC 3339 5.6: T and Z may be lower case
            "2025-03-01T08:00:00.000000000+08:00",  # Go's RFC3339Nano, Java's nanoseconds
            "2025-03-01T00:00:00.000Z",  # JavaScript's toISOString
        ],
    )
    def test_reads_the_rfc3339_forms_clients_write(self, written):
        record = checks.parse_record(raw(started_at=written, ended_at="2025-03-01T00:30:00Z"))
        assert record.started_at == datetime(2025, 3, 1, 0, 0, tzinfo=UTC)

    @pytest.mark.parametrize(
        ("change", "field"),
        [
            ({"external_id": ""}, "external_id"),
            ({"external_id": 7}, "external_id"),
            ({"started_at": "2025-03-01T08:00:00"}, "started_at"),
            ({"ended_at": "yesterday"}, "ended_at"),
            ({"quantities": {}}, "quantities"),
            ({"quantities": {"distance_km": 3.2}}, "quantities.distance_km"),
            ({"quantities": {"distance_km": "abc"}}, "quantities.distance_km"),
            ({"quantities": {"distance_km": "NaN"}}, "quantities.distance_km"),
            ({"quantities": {"distance_km": True}}, "quantities.distance_km"),
            ({"evidence": [1]}, "evidence"),
            ({"colour": "red"}, "colour"),
            ({"scenario": "Metro!"}, "scenario"),
        ],
    )
    def test_names_the_bad_field(self, change, field):
        with pytest.raises(RecordError) as caught:
            checks.parse_record(raw(**change))
        assert caught.value.field == field

    def test_missing_field(self):
        record = raw()
        del record["partner_user_id"]
        with pytest.raises(RecordError) as caught:
            checks.parse_record(record)
        assert caught.value.field == "partner_user_id"

    def test_not_an_object(self):
        with pytest.raises(RecordError):
            checks.parse_record(["x"])


class TestWindowAndPlausibility:
    def window(self, **overrides):
        record = checks.parse_record(raw(**overrides))
        return checks.check_window(record, BOOK.for_scenario(record.scenario), now=NOW)

    def test_in_window(self):
        assert self.window() is None

    def test_future_beyond_allowance(self):
        refusal = self.window(started_at="2025-03-01T12:00:00Z", ended_at="2025-03-01T12:06:00Z")
        assert refusal is not None and refusal.code == "future_time"
        assert (
            self.window(started_at="2025-03-01T12:00:00Z", ended_at="2025-03-01T12:04:00Z") is None
        )

    def test_too_old(self):
        refusal = self.window(started_at="2025-01-01T00:00:00Z", ended_at="2025-01-01T00:10:00Z")
        assert refusal is not None and refusal.code == "too_old"

    def test_negative_duration(self):
        refusal = self.window(started_at="2025-03-01T01:00:00Z", ended_at="2025-03-01T00:10:00Z")
        assert refusal is not None and refusal.code == "invalid_duration"

    def test_a_record_spans_at_most_a_day(self):
        # The overlap check relies on it to read only the batch's window of stored trips.
        day = self.window(started_at="2025-02-27T00:00:00Z", ended_at="2025-02-28T00:00:00Z")
        assert day is None
        refusal = self.window(started_at="2025-02-27T00:00:00Z", ended_at="2025-02-28T00:00:01Z")
        assert refusal is not None and refusal.code == "invalid_duration"

    @pytest.mark.parametrize(
        ("scenario", "km", "minutes", "code", "reasons"),
        [
            ("walking", "2", 30, None, []),  # 4 km/h
            ("walking", "5", 30, "implausible_speed", []),  # 10 km/h
            ("walking", "3.7", 30, None, ["speed_near_bound"]),  # 7.4 km/h >= 0.9 * 8
            ("bike_share", "16", 30, "implausible_speed", []),  # 32 km/h
            ("bus", "30", 30, None, []),  # 60 km/h
            ("metro", "59", 30, None, ["speed_near_bound"]),  # 118 km/h
            ("metro", "61", 30, "implausible_speed", []),
            ("ev_trip", "70", 30, None, ["speed_near_bound"]),  # 140 km/h
            ("ev_trip", "350", 180, None, ["long_trip"]),
            ("metro", "0", 30, "invalid_quantity", []),
            ("metro", "5", 0, "implausible_speed", []),
        ],
    )
    def test_speed_bounds(self, scenario, km, minutes, code, reasons):
        start = datetime(2025, 3, 1, 1, 0, tzinfo=UTC)
        record = checks.parse_record(
            raw(
                scenario=scenario,
                started_at=start.isoformat(),
                ended_at=(start + timedelta(minutes=minutes)).isoformat(),
                quantities={"distance_km": km},
            )
        )
        refusal, found = checks.check_plausible(record, BOOK.for_scenario(scenario))
        assert (refusal.code if refusal else None) == code
        assert found == reasons

    def test_operator_rule_overrides_default(self):
        book = RuleBook({"bike_share": {"max_speed_kmh": "25"}, "*": {"max_age_days": 7}})
        rules = book.for_scenario("bike_share")
        assert rules.max_speed_kmh == Decimal(25)
        assert rules.max_age_days == 7
        assert book.for_scenario("walking").max_speed_kmh == Decimal(
            DEFAULTS["walking"]["max_speed_kmh"]
        )

    def test_clean_params_refuses_unknown_and_bad(self):
        assert clean_params({"max_speed_kmh": 25}) == {"max_speed_kmh": "25"}
        for bad in (
            {"speed": 1},
            {"max_speed_kmh": "-1"},
            {"max_age_days": "7"},
            {"dedupe_overlaps": 1},
        ):
            with pytest.raises(ValueError):
                clean_params(bad)


# --- Hypothesis: the daily cap and the overlap de-duplication -----------------------------------------

BASE = datetime(2025, 3, 1, tzinfo=UTC)

trips = st.lists(
    st.tuples(
        st.integers(1, 3),  # citizen
        st.sampled_from(["bus", "metro"]),
        st.integers(0, 48 * 60),  # start minute
        st.integers(0, 90),  # duration minutes
        st.integers(0, 400_000),  # mg
        st.booleans(),  # held for review
    ),
    max_size=60,
)


def _day(at: datetime) -> date:
    return (at + timedelta(hours=8)).date()


@settings(max_examples=200, deadline=None)
@given(trips, st.one_of(st.none(), st.integers(1, 1_500_000)))
def test_caps_and_overlaps(items, cap):
    allocator = Allocator(SpanIndex(), {})
    accepted: list[tuple[int, str, datetime, datetime]] = []
    per_day: dict[tuple[int, str, date], int] = {}
    for citizen, scenario, start_min, minutes, mg, review in items:
        start = BASE + timedelta(minutes=start_min)
        end = start + timedelta(minutes=minutes)
        day = _day(start)
        before = per_day.get((citizen, scenario, day), 0)
        outcome, credited = allocator.decide(
            citizen_id=citizen,
            scenario=scenario,
            day=day,
            start=start,
            end=end,
            amount_mg=mg,
            cap_mg=cap,
            dedupe=True,
            hold_for_review=review,
        )
        clash = any(
            c == citizen and s == scenario and checks.overlaps(start, end, a, b)
            for c, s, a, b in accepted
        )
        if clash:
            assert outcome == "overlaps_other_record"
            continue
        assert outcome != "overlaps_other_record"
        if review:
            assert (outcome, credited) == ("review", 0)
            accepted.append((citizen, scenario, start, end))
            continue
        if cap is not None and before >= cap:
            assert (outcome, credited) == ("daily_cap_reached", 0)
            continue
        assert outcome == "credited"
        expected = mg if cap is None else min(mg, cap - before)
        assert credited == expected
        per_day[(citizen, scenario, day)] = before + credited
        accepted.append((citizen, scenario, start, end))
    # Invariants: the cap is never exceeded; no two accepted trips of a citizen overlap.
    if cap is not None:
        assert all(total <= cap for total in per_day.values())
    for n, (c, s, a, b) in enumerate(accepted):
        for c2, s2, a2, b2 in accepted[n + 1 :]:
            assert not (c == c2 and s == s2 and checks.overlaps(a, b, a2, b2))


@given(st.integers(0, 10**9), st.integers(0, 10**9), st.one_of(st.none(), st.integers(0, 10**9)))
def test_allocate_cap(total, amount, cap):
    credited, reached = checks.allocate_cap(total, amount, cap)
    assert 0 <= credited <= amount
    if cap is None:
        assert (credited, reached) == (amount, False)
    else:
        assert reached == (total >= cap)
        assert total + credited <= max(cap, total)

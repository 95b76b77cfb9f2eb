"""The citizen's month so far is compared with the same days of the month before."""

from __future__ import annotations

from datetime import date, timedelta

from hypothesis import given
from hypothesis import strategies as st

from tanhui.activity.service import month_to_date


def test_the_same_days_of_last_month_are_compared() -> None:
    per_day = {
        date(2026, 10, 2): 100,
        date(2026, 10, 3): 20,  # after the 2nd: not in the same days of October
        date(2026, 11, 1): 5,
        date(2026, 11, 2): 7,
        date(2026, 11, 3): 1_000,  # after today
    }
    out = month_to_date(per_day, date(2026, 11, 2))
    assert out == {
        "since": "2026-11-01",
        "until": "2026-11-02",
        "reduction_mg": 12,
        "previous_since": "2026-10-01",
        "previous_until": "2026-10-02",
        "previous_reduction_mg": 100,
    }


def test_a_shorter_last_month_is_taken_whole() -> None:
    per_day = {date(2026, 2, 28): 3, date(2026, 3, 1): 1}
    out = month_to_date(per_day, date(2026, 3, 31))
    assert (out["previous_since"], out["previous_until"]) == ("2026-02-01", "2026-02-28")
    assert (out["reduction_mg"], out["previous_reduction_mg"]) == (1, 3)


def test_january_looks_back_to_december() -> None:
    out = month_to_date({date(2025, 12, 1): 9}, date(2026, 1, 1))
    assert (out["previous_since"], out["previous_until"]) == ("2025-12-01", "2025-12-01")
    assert out["previous_reduction_mg"] == 9


@given(
    today=st.dates(min_value=date(2000, 1, 1), max_value=date(2100, 12, 31)),
    offsets=st.dictionaries(st.integers(-70, 10), st.integers(0, 10**9), max_size=30),
)
def test_each_day_counts_once_in_the_window_it_falls_in(
    today: date, offsets: dict[int, int]
) -> None:
    per_day = {today + timedelta(days=k): mg for k, mg in offsets.items()}
    out = month_to_date(per_day, today)
    since, previous = date.fromisoformat(out["since"]), date.fromisoformat(out["previous_since"])
    previous_until = date.fromisoformat(out["previous_until"])
    assert since.day == 1 and previous.day == 1 and previous < since
    assert previous_until < since and previous_until.day <= today.day
    assert out["reduction_mg"] == sum(mg for d, mg in per_day.items() if since <= d <= today)
    assert out["previous_reduction_mg"] == sum(
        mg for d, mg in per_day.items() if previous <= d <= previous_until
    )
    # Last month's window runs as many days as this month's, unless last month is shorter.
    span, previous_span = (today - since).days, (previous_until - previous).days
    assert previous_span == span or previous_until + timedelta(days=1) == since

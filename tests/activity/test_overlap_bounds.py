"""The overlap pre-filter: `activity_daily` keeps the span bounds (`first_started_at`,
`last_ended_at`) of the credited and held trips touching each platform-zone day, and a new trip is
only probed against stored trips when some day it touches has bounds its span meets.

What must hold, end to end through the signed partner API on SQLite and PostgreSQL:
- a trip crossing local midnight widens both days' rows, so it still blocks an overlapping trip
  that starts on the later day (and the other way round);
- bounds only decide whether to probe, never the outcome: a trip inside the bounds but
  overlapping nothing is credited, an overlapping one is refused, other scenarios are independent;
- refused trips leave the bounds as they were, held (review) trips widen them;
- a partner reversal leaves the bounds, and the reversed trip no longer blocks;
- the migration backfills the bounds from the stored trips, crossing trips' later days included.

Times are fixed local clock times a few days back (the platform zone, Asia/Shanghai by default),
so records stay inside the accepted window whatever hour the suite runs.
"""

from __future__ import annotations

import json
from datetime import UTC, date, datetime, time, timedelta
from typing import Any

import pytest
import sqlalchemy as sa
from alembic import command
from sqlalchemy import select
from sqlalchemy.orm import Session

from tanhui.activity import service as activity_service
from tanhui.activity.models import ActivityDaily
from tanhui.kit import migrate
from tanhui.kit.db import UTCDateTime, create_db_engine, make_session_factory, session_scope
from tanhui.kit.settings import get_settings
from tanhui.ledger import service as ledger_service
from tests.fixtures import activity as fx
from tests.fixtures.locks import commit_once_the_other_waits

Bounds = tuple[datetime | None, datetime | None]


@pytest.fixture
def partner(session: Session) -> fx.Partner:
    return fx.partner(session)


# --- times ------------------------------------------------------------------------------------------


def day_of(days_ago: int) -> date:
    """The platform-zone date `days_ago` days before today."""
    return datetime.now(get_settings().zone).date() - timedelta(days=days_ago)


def at(day: date, hour: int, minute: int = 0) -> datetime:
    """The UTC instant of a local wall-clock time on a platform-zone day."""
    return datetime.combine(day, time(hour, minute), tzinfo=get_settings().zone).astimezone(UTC)


def local(days_ago: int, hour: int, minute: int = 0) -> datetime:
    return at(day_of(days_ago), hour, minute)


# --- the API and the stored rows ---------------------------------------------------------------------


def trip(
    puid: str,
    start: datetime,
    end: datetime,
    *,
    scenario: str = "metro",
    km: str = "5",
) -> dict[str, Any]:
    """A partner record from `start` to `end` (whole minutes); 5 km keeps any trip of 10 minutes
    or more well under the speed bounds, so nothing is held for review by accident."""
    minutes = int((end - start).total_seconds() // 60)
    return fx.record(
        puid, scenario=scenario, start=start, minutes=minutes, quantities={"distance_km": km}
    )


def outcomes(response: Any) -> list[tuple[str, str | None]]:
    assert response.status_code == 200, response.text
    return [(r["status"], r["code"]) for r in response.json()["results"]]


def daily(session: Session, citizen_id: int, day: date, scenario: str = "metro") -> Any:
    """The citizen's `activity_daily` row (None if there is none), read afresh from the database."""
    return session.execute(
        select(
            ActivityDaily.credited_mg,
            ActivityDaily.records,
            ActivityDaily.first_started_at,
            ActivityDaily.last_ended_at,
        ).where(
            ActivityDaily.citizen_id == citizen_id,
            ActivityDaily.scenario == scenario,
            ActivityDaily.day == day,
        )
    ).one_or_none()


def bounds(session: Session, citizen_id: int, day: date, scenario: str = "metro") -> Bounds:
    row = daily(session, citizen_id, day, scenario)
    assert row is not None, f"no activity_daily row for {scenario} on {day}"
    return row.first_started_at, row.last_ended_at


# --- trips crossing midnight -------------------------------------------------------------------------


def test_a_trip_crossing_midnight_blocks_an_overlapping_trip_starting_the_next_day(
    client, session, partner
):
    puid, citizen_id = fx.bind(session, partner)
    session.flush()
    evening, morning = day_of(3), day_of(2)
    crossing = (local(3, 23, 50), local(2, 0, 20))
    assert outcomes(fx.push(client, partner, [trip(puid, *crossing)])) == [("credited", None)]
    # Its start day and its end day both take it in.
    assert bounds(session, citizen_id, evening) == crossing
    assert bounds(session, citizen_id, morning) == crossing

    # Starts on the later day, so its own start day is not the stored trip's: only the later
    # day's bounds send it to the probe.
    late = trip(puid, local(2, 0, 5), local(2, 0, 35))
    assert outcomes(fx.push(client, partner, [late])) == [("rejected", "overlaps_other_record")]
    # Back to back with the crossing trip (spans are half-open): credited.
    after = trip(puid, local(2, 0, 20), local(2, 0, 50))
    assert outcomes(fx.push(client, partner, [after])) == [("credited", None)]
    # The refused trip widened nothing; the credited one widened its own day only.
    assert bounds(session, citizen_id, evening) == crossing
    assert bounds(session, citizen_id, morning) == (crossing[0], local(2, 0, 50))


def test_a_trip_crossing_midnight_is_probed_against_trips_of_its_end_day(client, session, partner):
    puid, citizen_id = fx.bind(session, partner)
    session.flush()
    stored = (local(4, 0, 5), local(4, 0, 35))
    assert outcomes(fx.push(client, partner, [trip(puid, *stored)])) == [("credited", None)]
    assert daily(session, citizen_id, day_of(5)) is None  # nothing on the crossing trip's start day

    # Its start day has no bounds at all; its end day's bounds hold the stored trip.
    crossing = trip(puid, local(5, 23, 50), local(4, 0, 20))
    assert outcomes(fx.push(client, partner, [crossing])) == [("rejected", "overlaps_other_record")]
    before = trip(puid, local(5, 23, 35), local(4, 0, 5))
    assert outcomes(fx.push(client, partner, [before])) == [("credited", None)]
    assert bounds(session, citizen_id, day_of(5)) == (local(5, 23, 35), local(4, 0, 5))
    assert bounds(session, citizen_id, day_of(4)) == (local(5, 23, 35), stored[1])


# --- bounds decide the probe, not the outcome ---------------------------------------------------------


def test_bounds_only_decide_whether_to_probe(client, session, partner):
    puid, citizen_id = fx.bind(session, partner)
    session.flush()
    day = day_of(2)
    stored = [trip(puid, local(2, 8), local(2, 8, 30)), trip(puid, local(2, 18), local(2, 18, 30))]
    assert outcomes(fx.push(client, partner, stored)) == [("credited", None)] * 2
    assert bounds(session, citizen_id, day) == (local(2, 8), local(2, 18, 30))

    # Between the stored trips: inside the bounds, so probed, and it overlaps nothing.
    noon = trip(puid, local(2, 12), local(2, 12, 30))
    assert outcomes(fx.push(client, partner, [noon])) == [("credited", None)]
    # Inside the first stored trip.
    inside = trip(puid, local(2, 8, 10), local(2, 8, 20), km="3")
    assert outcomes(fx.push(client, partner, [inside])) == [("rejected", "overlaps_other_record")]
    assert bounds(session, citizen_id, day) == (local(2, 8), local(2, 18, 30))

    # Touching the bounds' edges meets them (probed) but overlaps nothing (half-open spans).
    edges = [trip(puid, local(2, 7), local(2, 8)), trip(puid, local(2, 18, 30), local(2, 19))]
    assert outcomes(fx.push(client, partner, edges)) == [("credited", None)] * 2
    assert bounds(session, citizen_id, day) == (local(2, 7), local(2, 19))


def test_overlap_is_per_scenario(client, session, partner):
    """`_stored_spans` joins on the scenario and the bounds are kept per scenario: a bus ride at
    the time of a stored metro ride is another journey, and credited."""
    puid, citizen_id = fx.bind(session, partner)
    session.flush()
    day = day_of(2)
    metro = (local(2, 8), local(2, 8, 30))
    assert outcomes(fx.push(client, partner, [trip(puid, *metro)])) == [("credited", None)]
    bus = trip(puid, *metro, scenario="bus")
    assert outcomes(fx.push(client, partner, [bus])) == [("credited", None)]
    assert bounds(session, citizen_id, day, "bus") == metro
    assert bounds(session, citizen_id, day, "metro") == metro
    # The bus ride blocks bus rides only.
    again = trip(puid, local(2, 8, 10), local(2, 8, 40), scenario="bus")
    assert outcomes(fx.push(client, partner, [again])) == [("rejected", "overlaps_other_record")]


# --- which outcomes widen ----------------------------------------------------------------------------


def test_refused_trips_do_not_widen_the_bounds(client, session, partner):
    puid, citizen_id = fx.bind(session, partner)
    session.flush()
    # 100 km in 30 minutes is 200 km/h on the metro: refused, but counted on its day.
    fast = trip(puid, local(3, 8), local(3, 8, 30), km="100")
    assert outcomes(fx.push(client, partner, [fast])) == [("rejected", "implausible_speed")]
    row = daily(session, citizen_id, day_of(3))
    assert row is not None and row.records == 1
    assert (row.first_started_at, row.last_ended_at) == (None, None)

    # Refused for overlapping a stored trip while reaching past it: the bounds stay the stored one's.
    stored = (local(2, 10), local(2, 10, 30))
    assert outcomes(fx.push(client, partner, [trip(puid, *stored)])) == [("credited", None)]
    wider = trip(puid, local(2, 9, 30), local(2, 11))
    assert outcomes(fx.push(client, partner, [wider])) == [("rejected", "overlaps_other_record")]
    assert bounds(session, citizen_id, day_of(2)) == stored


def test_a_trip_refused_by_the_daily_cap_does_not_widen_the_bounds(client, session, partner):
    fx.capped_metro(session, per_day="1000 g CO2e")
    puid, citizen_id = fx.bind(session, partner)
    session.flush()
    # 46.7 g/km x 10 km = 467 g each: 467 + 467 + 66 (cut), then the cap is reached.
    records = [trip(puid, local(4, h), local(4, h, 30), km="10") for h in (8, 9, 10, 11)]
    assert outcomes(fx.push(client, partner, records)) == [
        ("credited", None),
        ("credited", None),
        ("credited", None),
        ("rejected", "daily_cap_reached"),
    ]
    assert bounds(session, citizen_id, day_of(4)) == (local(4, 8), local(4, 10, 30))


def test_a_trip_held_for_review_widens_the_bounds_and_blocks(client, session, partner):
    puid, citizen_id = fx.bind(session, partner)
    session.flush()
    # 59 km in 30 minutes is 118 km/h on the metro: plausible, but near the bound.
    held = (local(2, 9), local(2, 9, 30))
    response = fx.push(client, partner, [trip(puid, *held, km="59")])
    assert outcomes(response) == [("review", None)]
    row = daily(session, citizen_id, day_of(2))
    assert row is not None and (row.credited_mg, row.records) == (0, 1)
    assert (row.first_started_at, row.last_ended_at) == held
    overlapping = trip(puid, local(2, 9, 20), local(2, 9, 50))
    assert outcomes(fx.push(client, partner, [overlapping])) == [
        ("rejected", "overlaps_other_record")
    ]


# --- reversals --------------------------------------------------------------------------------------


def test_a_reversal_leaves_the_bounds_and_the_reversed_trip_no_longer_blocks(
    client, session, partner
):
    puid, citizen_id = fx.bind(session, partner)
    session.flush()
    day = day_of(2)
    first = trip(puid, local(2, 8), local(2, 8, 30))
    assert outcomes(fx.push(client, partner, [first])) == [("credited", None)]
    path = f"/v1/partner/activities/{first['external_id']}/reversal"
    body = json.dumps({"reason": "ticket refunded"}).encode()
    reversed_ = fx.signed_post(client, partner, path, body)
    assert reversed_.status_code == 200, reversed_.text
    assert reversed_.json()["status"] == "reversed"
    # Widened only: the reversal takes back the credit, not the bounds.
    row = daily(session, citizen_id, day)
    assert row is not None and (row.credited_mg, row.records) == (0, 1)
    assert (row.first_started_at, row.last_ended_at) == (local(2, 8), local(2, 8, 30))

    # The bounds still cover the reversed trip, so this one is probed; the probe reads credited
    # and held trips only, so the reversed one does not block it.
    second = trip(puid, local(2, 8, 10), local(2, 8, 40))
    assert outcomes(fx.push(client, partner, [second])) == [("credited", None)]
    assert bounds(session, citizen_id, day) == (local(2, 8), local(2, 8, 40))
    # ... and the new trip blocks as any credited one does.
    third = trip(puid, local(2, 8, 15), local(2, 8, 25), km="3")
    assert outcomes(fx.push(client, partner, [third])) == [("rejected", "overlaps_other_record")]
    assert ledger_service.check(session) == []


# --- the migration's backfill ------------------------------------------------------------------------

_BEFORE = "834e7ebda2d1"  # the revision before the bounds

_RECORDS = sa.table(
    "activity_record",
    sa.column("id", sa.BigInteger()),
    sa.column("partner_id", sa.BigInteger()),
    sa.column("external_id", sa.String()),
    sa.column("partner_user_id", sa.String()),
    sa.column("citizen_id", sa.BigInteger()),
    sa.column("scenario", sa.String()),
    sa.column("started_at", UTCDateTime()),
    sa.column("ended_at", UTCDateTime()),
    sa.column("day", sa.Date()),
    sa.column("quantities", sa.JSON()),
    sa.column("computed_mg", sa.BigInteger()),
    sa.column("reduction_mg", sa.BigInteger()),
    sa.column("points", sa.BigInteger()),
    sa.column("status", sa.String()),
    sa.column("received_at", UTCDateTime()),
)
_TOTALS = (
    sa.column("citizen_id", sa.BigInteger()),
    sa.column("scenario", sa.String()),
    sa.column("day", sa.Date()),
    sa.column("credited_mg", sa.BigInteger()),
    sa.column("records", sa.Integer()),
)
_DAILY_BEFORE = sa.table("activity_daily", *_TOTALS)  # without the bounds, as downgraded
_DAILY_AFTER = sa.table(
    "activity_daily",
    *(sa.column(c.name, c.type) for c in _TOTALS),
    sa.column("first_started_at", UTCDateTime()),
    sa.column("last_ended_at", UTCDateTime()),
)


def test_the_migration_backfills_the_bounds(database_url):
    command.downgrade(migrate.alembic_config(database_url), _BEFORE)
    d = date(2026, 11, 20)  # the migration has no time window: any fixed local day will do
    d1, d2 = d + timedelta(days=1), d + timedelta(days=2)
    rider, idle = 42, 43
    received = datetime(2026, 11, 23, tzinfo=UTC)
    # (citizen, scenario, start, end, status); the day is the start's local day.
    trips = [
        (rider, "metro", at(d, 8), at(d, 8, 30), "credited"),
        (rider, "metro", at(d, 18), at(d, 18, 40), "review"),
        (rider, "metro", at(d, 6), at(d, 6, 30), "rejected"),  # earlier than any held trip
        (rider, "metro", at(d, 21), at(d, 21, 30), "reversed"),  # later than any held trip
        (rider, "metro", at(d1, 23, 50), at(d2, 0, 20), "credited"),  # its end day has no row
        (rider, "bus", at(d, 23, 40), at(d1, 0, 10), "credited"),  # its end day has a row
        (rider, "bus", at(d1, 7), at(d1, 7, 30), "credited"),
        (rider, "bus", at(d1, 23, 50), at(d2, 0, 20), "rejected"),  # creates no row
        (idle, "metro", at(d, 8), at(d, 8, 30), "rejected"),
    ]
    totals = [  # (citizen, scenario, day, credited mg, records), as the pipeline kept them
        (rider, "metro", d, 233_500, 4),
        (rider, "metro", d1, 233_500, 1),
        (rider, "bus", d, 100_000, 1),
        (rider, "bus", d1, 100_000, 2),
        (idle, "metro", d, 0, 1),
    ]
    engine = create_db_engine(database_url)
    with engine.begin() as connection:
        connection.execute(
            _RECORDS.insert(),
            [
                {
                    "id": n,
                    "partner_id": 1,
                    "external_id": f"ext-{n}",
                    "partner_user_id": f"u{citizen}",
                    "citizen_id": citizen,
                    "scenario": scenario,
                    "started_at": start,
                    "ended_at": end,
                    "day": start.astimezone(get_settings().zone).date(),
                    "quantities": {"distance_km": "5"},
                    "computed_mg": 233_500,
                    "reduction_mg": 233_500 if status == "credited" else 0,
                    "points": 0,
                    "status": status,
                    "received_at": received,
                }
                for n, (citizen, scenario, start, end, status) in enumerate(trips, 1)
            ],
        )
        connection.execute(
            _DAILY_BEFORE.insert(),
            [
                dict(
                    zip(("citizen_id", "scenario", "day", "credited_mg", "records"), t, strict=True)
                )
                for t in totals
            ],
        )
    engine.dispose()

    migrate.upgrade(database_url)

    engine = create_db_engine(database_url)
    with engine.connect() as connection:
        rows = connection.execute(select(_DAILY_AFTER)).all()
    engine.dispose()
    found = {(r.citizen_id, r.scenario, r.day): tuple(r)[3:] for r in rows}
    assert found == {
        # Start day: the credited and review trips only (not the rejected 06:00, the reversed 21:00).
        (rider, "metro", d): (233_500, 4, at(d, 8), at(d, 18, 40)),
        # The crossing trip's start day, and its end day created at zero with its bounds.
        (rider, "metro", d1): (233_500, 1, at(d1, 23, 50), at(d2, 0, 20)),
        (rider, "metro", d2): (0, 0, at(d1, 23, 50), at(d2, 0, 20)),
        # A crossing trip widens its end day's existing row past that day's own trips.
        (rider, "bus", d): (100_000, 1, at(d, 23, 40), at(d1, 0, 10)),
        (rider, "bus", d1): (100_000, 2, at(d, 23, 40), at(d1, 7, 30)),
        # Only refused trips: no bounds.
        (idle, "metro", d): (0, 1, None, None),
    }


# --- concurrency (PostgreSQL) -------------------------------------------------------------------------


@pytest.mark.postgresql_only
def test_concurrent_overlapping_trips_on_different_start_days_credit_once(database_url):
    """Batch A holds a trip crossing midnight, uncommitted; batch B sends a trip starting after
    midnight that overlaps it. B's own day is A's later day, whose row A has locked and widened,
    so B waits for A and then sees A's trip: one credit, not two. (When a batch locked only its
    trips' start days, the two shared no row: B read past A's uncommitted trip and both were
    credited.)"""
    factory = make_session_factory(create_db_engine(database_url))
    with session_scope(factory) as session:
        p = fx.partner(session)
        puid, _ = fx.bind(session, p)
    d = day_of(3)
    crossing = trip(puid, at(d, 23, 50), at(d + timedelta(days=1), 0, 20))
    after_midnight = trip(puid, at(d + timedelta(days=1), 0, 5), at(d + timedelta(days=1), 0, 15))

    a = factory()
    first = activity_service.ingest(a, p.principal, [crossing])
    assert first[0]["status"] == "credited"
    second: list[dict[str, Any]] = []

    def send_b() -> None:
        with session_scope(factory) as b:
            second.extend(activity_service.ingest(b, p.principal, [after_midnight]))

    commit_once_the_other_waits(a, factory, send_b)
    assert [(r["status"], r["code"]) for r in second] == [("rejected", "overlaps_other_record")]
    factory.kw["bind"].dispose()

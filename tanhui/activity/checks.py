"""Pure checks on partner records: parsing, plausibility, time window, review scoring, caps, overlaps.

No database here: the pipeline in service.py loads what a batch needs in a few queries and calls these,
so each rule is testable on its own (and with Hypothesis for the caps and the de-duplication).
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from decimal import Decimal, InvalidOperation
from functools import lru_cache
from typing import Any

from tanhui.activity.rules import ScenarioRules
from tanhui.identity.service.bindings import PARTNER_USER_ID

RECORD_FIELDS = frozenset(
    {
        "external_id",
        "partner_user_id",
        "scenario",
        "started_at",
        "ended_at",
        "quantities",
        "evidence",
    }
)
REQUIRED = ("external_id", "partner_user_id", "scenario", "started_at", "ended_at", "quantities")
_ID = PARTNER_USER_ID  # printable ASCII, no spaces: ids partners log and grep
_SCENARIO = re.compile(r"^[a-z][a-z0-9_]{0,63}$")
_QUANTITY = re.compile(r"^[a-z][a-z0-9_]{0,63}$")
MAX_QUANTITIES = 16
MAX_EVIDENCE_BYTES = 4096
# The longest span one record may cover (a whole day's steps is the longest any partner reports). Fixed,
# not an operator rule: the overlap check finds stored trips by `started_at >= batch start - MAX_SPAN`
# on the (citizen_id, started_at) index, so a longer stored record could escape it.
MAX_SPAN = timedelta(hours=24)


class RecordError(Exception):
    """A record that cannot be read at all: rejected as `invalid_record` and not stored."""

    def __init__(self, field: str, message: str) -> None:
        super().__init__(message)
        self.field = field
        self.message = message


@dataclass(slots=True)
class Record:
    """A well-formed record, as parsed from the partner's JSON (quantities as exact Decimals)."""

    external_id: str
    partner_user_id: str
    scenario: str
    started_at: datetime
    ended_at: datetime
    quantities: dict[str, Decimal]
    evidence: dict[str, Any] | None = None

    @property
    def duration_s(self) -> float:
        return (self.ended_at - self.started_at).total_seconds()


def _text(raw: Mapping[str, Any], name: str, pattern: re.Pattern[str]) -> str:
    value = raw.get(name)
    if not isinstance(value, str) or not pattern.match(value):
        raise RecordError(name, f"{name} must be a string matching {pattern.pattern}")
    return value


def parse_time(value: Any, name: str) -> datetime:
    """RFC 3339 with an offset (`Z` or `+08:00`); a time without one is ambiguous and refused."""
    if not isinstance(value, str) or not 10 <= len(value) <= 40 or "T" not in value.upper():
        raise RecordError(name, f"{name} must be an RFC 3339 date-time with an offset")
    try:
        # Upper case first: RFC 3339 allows "t" and "z", which fromisoformat does not read.
        parsed = datetime.fromisoformat(value.upper())
    except ValueError:
        raise RecordError(name, f"{name} is not an RFC 3339 date-time: {value!r}") from None
    if parsed.tzinfo is None:
        raise RecordError(name, f"{name} must carry a UTC offset (e.g. Z or +08:00)")
    return parsed.astimezone(UTC)


def parse_quantity(value: Any, name: str) -> Decimal:
    # JSON numbers arrive as Decimal (the body is parsed with parse_float=Decimal) or int; a Python
    # float can only come from an in-process caller and is refused: 0.1 must be "0.1", never 0.1000000001.
    if isinstance(value, bool) or not isinstance(value, (str, int, Decimal)):
        raise RecordError(f"quantities.{name}", f"{name} must be a decimal string or a number")
    try:
        number = Decimal(value.strip()) if isinstance(value, str) else Decimal(value)
    except InvalidOperation:
        raise RecordError(f"quantities.{name}", f"{name} is not a number: {value!r}") from None
    if not number.is_finite() or abs(number.adjusted()) > 12:
        raise RecordError(f"quantities.{name}", f"{name} is not a finite number of sane size")
    return number


def parse_record(raw: Any) -> Record:
    """Read one record or raise RecordError naming the first bad field."""
    if not isinstance(raw, dict):
        raise RecordError("record", "each record must be a JSON object")
    unknown = raw.keys() - RECORD_FIELDS
    if unknown:
        name = sorted(unknown)[0]
        raise RecordError(name, f"unknown field {name!r}")
    for name in REQUIRED:
        if name not in raw:
            raise RecordError(name, f"{name} is required")
    external_id = _text(raw, "external_id", _ID)
    partner_user_id = _text(raw, "partner_user_id", _ID)
    scenario = _text(raw, "scenario", _SCENARIO)
    started_at = parse_time(raw["started_at"], "started_at")
    ended_at = parse_time(raw["ended_at"], "ended_at")
    given = raw["quantities"]
    if not isinstance(given, dict) or not 1 <= len(given) <= MAX_QUANTITIES:
        raise RecordError("quantities", f"quantities must be an object of 1 to {MAX_QUANTITIES}")
    quantities = {}
    for name, value in given.items():
        if not _QUANTITY.match(name):
            raise RecordError(f"quantities.{name}", f"quantity name {name!r} is not snake_case")
        quantities[name] = parse_quantity(value, name)
    evidence = raw.get("evidence")
    if evidence is not None:
        if not isinstance(evidence, dict):
            raise RecordError("evidence", "evidence must be an object")
        if len(repr(evidence)) > MAX_EVIDENCE_BYTES:
            raise RecordError("evidence", f"evidence is larger than {MAX_EVIDENCE_BYTES} bytes")
        evidence = _plain(evidence)
    return Record(
        external_id, partner_user_id, scenario, started_at, ended_at, quantities, evidence
    )


def _plain(value: Any) -> Any:
    """Evidence is stored as JSON: JSON numbers parsed as Decimal go back to exact strings."""
    if isinstance(value, Decimal):
        return str(value)
    if isinstance(value, dict):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_plain(v) for v in value]
    return value


@dataclass(frozen=True, slots=True)
class Refusal:
    code: str
    detail: str
    field: str | None = None


@lru_cache(maxsize=64)
def _window(now: datetime, future_allowance_s: int, max_age_days: int) -> tuple[datetime, datetime]:
    """(latest end, earliest start) accepted at `now`: the same for every record of a batch."""
    return now + timedelta(seconds=future_allowance_s), now - timedelta(days=max_age_days)


def check_window(record: Record, rules: ScenarioRules, *, now: datetime) -> Refusal | None:
    """Time window and duration: not in the future beyond the allowance, not older than N days."""
    if record.ended_at < record.started_at:
        return Refusal("invalid_duration", "ended_at is before started_at", "ended_at")
    if record.ended_at - record.started_at > MAX_SPAN:
        return Refusal("invalid_duration", "a record covers at most 24 hours", "ended_at")
    latest, oldest = _window(now, rules.future_allowance_s, rules.max_age_days)
    if record.ended_at > latest:
        return Refusal("future_time", "the record ends in the future", "ended_at")
    if record.started_at < oldest:
        return Refusal(
            "too_old",
            f"records older than {rules.max_age_days} days are not accepted",
            "started_at",
        )
    return None


_SECONDS_PER_HOUR = Decimal(3600)


def speed_kmh(record: Record) -> Decimal | None:
    distance = record.quantities.get("distance_km")
    if distance is None:
        return None
    seconds = Decimal(int((record.ended_at - record.started_at).total_seconds()))
    if seconds <= 0:
        return None if distance == 0 else Decimal("Infinity")
    return distance * _SECONDS_PER_HOUR / seconds


def check_plausible(record: Record, rules: ScenarioRules) -> tuple[Refusal | None, list[str]]:
    """Positive quantities and a speed under the mode's bound; returns (refusal, review reasons)."""
    for name, value in record.quantities.items():
        if value <= 0:
            return Refusal("invalid_quantity", f"{name} must be positive", f"quantities.{name}"), []
    reasons: list[str] = []
    if rules.max_speed_kmh is not None:
        speed = speed_kmh(record)
        if speed is not None:
            if speed > rules.max_speed_kmh:
                shown = "instant" if not speed.is_finite() else f"{speed:.1f} km/h"
                return (
                    Refusal(
                        "implausible_speed",
                        f"{shown} is above the {rules.scenario} bound of {rules.max_speed_kmh} km/h",
                        "quantities.distance_km",
                    ),
                    [],
                )
            if speed >= rules.max_speed_kmh * rules.review_speed_fraction:
                reasons.append("speed_near_bound")
    distance = record.quantities.get("distance_km")
    long_trip = rules.review_distance_km
    if long_trip is not None and distance is not None and distance > long_trip:
        reasons.append("long_trip")
    kwh = record.quantities.get("kwh")
    if rules.review_kwh is not None and kwh is not None and kwh > rules.review_kwh:
        reasons.append("large_quantity")
    return None, reasons


def allocate_cap(total_mg: int, amount_mg: int, cap_mg: int | None) -> tuple[int, bool]:
    """What a record may credit given the day's total so far: (credited mg, cap reached)."""
    if cap_mg is None:
        return amount_mg, False
    room = cap_mg - total_mg
    if room <= 0:
        return 0, True
    return min(amount_mg, room), False


def overlaps(start: datetime, end: datetime, other_start: datetime, other_end: datetime) -> bool:
    """Half-open spans [start, end); two zero-length records at the same instant also collide."""
    if start == other_start:
        return True
    return start < other_end and other_start < end


@dataclass(slots=True)
class SpanIndex:
    """Spans already taken per (citizen, scenario): those stored plus those accepted in this batch."""

    spans: dict[tuple[int, str], list[tuple[datetime, datetime]]] = field(default_factory=dict)

    def add(self, citizen_id: int, scenario: str, start: datetime, end: datetime) -> None:
        self.spans.setdefault((citizen_id, scenario), []).append((start, end))

    def collides(self, citizen_id: int, scenario: str, start: datetime, end: datetime) -> bool:
        # A citizen has a handful of trips a day, so a linear scan beats any interval tree here.
        return any(
            overlaps(start, end, s, e) for s, e in self.spans.get((citizen_id, scenario), ())
        )


@dataclass(slots=True)
class Allocator:
    """The batch's last two checks, in record order: cross-partner overlaps, then the daily cap.

    `taken` starts with the spans stored for the batch's citizens (credited or under review) and
    `totals` with the day's credited totals; both grow as records of the batch are accepted, so a
    batch is judged exactly as if its records had arrived one by one.
    """

    taken: SpanIndex
    totals: dict[tuple[int, str, Any], int]

    def decide(
        self,
        *,
        citizen_id: int,
        scenario: str,
        day: Any,
        start: datetime,
        end: datetime,
        amount_mg: int,
        cap_mg: int | None,
        dedupe: bool,
        hold_for_review: bool,
    ) -> tuple[str, int]:
        """(outcome, credited mg); outcome in credited / review / overlaps_other_record /
        daily_cap_reached. A record held for review takes its span but no cap room until approved."""
        if dedupe and self.taken.collides(citizen_id, scenario, start, end):
            return "overlaps_other_record", 0
        if hold_for_review:
            if dedupe:
                self.taken.add(citizen_id, scenario, start, end)
            return "review", 0
        key = (citizen_id, scenario, day)
        credited, reached = allocate_cap(self.totals.get(key, 0), amount_mg, cap_mg)
        if reached:
            return "daily_cap_reached", 0
        self.totals[key] = self.totals.get(key, 0) + credited
        if dedupe:
            self.taken.add(citizen_id, scenario, start, end)
        return "credited", credited

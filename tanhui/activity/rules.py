"""Checks as data: the defaults shipped with Tanhui, merged with what operators set in `activity_rule`.

Speed bounds are upper limits of honest travel, not averages: walking 8 km/h is a brisk pace, a shared
bike rarely exceeds 30 km/h (China's e-bike standard GB 17761-2018 caps assisted speed at 25 km/h),
buses 80 km/h on urban expressways, metro 120 km/h (fastest Chinese urban metro lines run 100-120 km/h),
cars 150 km/h (expressway limit 120 km/h plus meter error). A record faster than the bound is refused;
one within `review_speed_fraction` of it goes to a reviewer.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from decimal import Decimal
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from tanhui.activity.models import ActivityRule

ALL = "*"

# Trips: records that describe one journey, so two overlapping ones of the same citizen and scenario
# are the same journey reported twice (typically by two partners: a transit card and a payment app).
TRIP_SCENARIOS = frozenset({"bus", "metro", "bike_share", "walking", "carpool", "ev_trip"})

DEFAULTS: dict[str, dict[str, Any]] = {
    ALL: {
        "future_allowance_s": 300,  # partner clocks may run ahead by a few minutes
        "max_age_days": 30,
        "review_records_per_day": 20,  # more records a day for one citizen and scenario: a person looks
        "review_speed_fraction": "0.9",
        "dedupe_overlaps": False,
    },
    "walking": {"max_speed_kmh": "8", "review_distance_km": "30", "dedupe_overlaps": True},
    "bike_share": {"max_speed_kmh": "30", "review_distance_km": "40", "dedupe_overlaps": True},
    "bus": {"max_speed_kmh": "80", "review_distance_km": "100", "dedupe_overlaps": True},
    "metro": {"max_speed_kmh": "120", "review_distance_km": "100", "dedupe_overlaps": True},
    "carpool": {"max_speed_kmh": "150", "review_distance_km": "300", "dedupe_overlaps": True},
    "ev_trip": {"max_speed_kmh": "150", "review_distance_km": "300", "dedupe_overlaps": True},
    "ev_charging": {"review_kwh": "150"},
}

# The parameters an operator may set, with their type; anything else is refused.
PARAMS: dict[str, type] = {
    "future_allowance_s": int,
    "max_age_days": int,
    "review_records_per_day": int,
    "review_speed_fraction": Decimal,
    "dedupe_overlaps": bool,
    "max_speed_kmh": Decimal,
    "review_distance_km": Decimal,
    "review_kwh": Decimal,
}


class ScenarioRules:
    """The rules in force for one scenario, with typed accessors (Decimal from strings, never floats)."""

    __slots__ = (
        "dedupe_overlaps",
        "future_allowance_s",
        "max_age_days",
        "max_speed_kmh",
        "params",
        "review_distance_km",
        "review_kwh",
        "review_records_per_day",
        "review_speed_fraction",
        "scenario",
    )

    def __init__(self, scenario: str, params: Mapping[str, Any]) -> None:
        self.scenario = scenario
        self.params = dict(params)
        self.future_allowance_s = int(params["future_allowance_s"])
        self.max_age_days = int(params["max_age_days"])
        self.review_records_per_day = int(params["review_records_per_day"])
        self.review_speed_fraction = Decimal(str(params["review_speed_fraction"]))
        self.dedupe_overlaps = bool(params["dedupe_overlaps"])
        self.max_speed_kmh = _dec(params.get("max_speed_kmh"))
        self.review_distance_km = _dec(params.get("review_distance_km"))
        self.review_kwh = _dec(params.get("review_kwh"))


def _dec(value: Any) -> Decimal | None:
    return None if value is None else Decimal(str(value))


def clean_params(params: Mapping[str, Any]) -> dict[str, Any]:
    """Validate operator-supplied params; decimals are stored as strings. Raises ValueError(name)."""
    out: dict[str, Any] = {}
    for name, value in params.items():
        kind = PARAMS.get(name)
        if kind is None:
            raise ValueError(name)
        if kind is bool:
            if not isinstance(value, bool):
                raise ValueError(name)
            out[name] = value
        elif kind is int:
            if isinstance(value, bool) or not isinstance(value, int) or value < 0:
                raise ValueError(name)
            out[name] = value
        else:
            if isinstance(value, bool) or not isinstance(value, (str, int, Decimal)):
                raise ValueError(name)
            try:
                number = Decimal(str(value))
            except ArithmeticError:
                raise ValueError(name) from None
            if not number.is_finite() or number <= 0:
                raise ValueError(name)
            out[name] = str(number)
    return out


class RuleBook:
    """Rules for every scenario as of one instant: defaults, then operator rows in force."""

    def __init__(self, overrides: Mapping[str, Mapping[str, Any]]) -> None:
        self._overrides = overrides
        self._cache: dict[str, ScenarioRules] = {}

    def set_by_operator(self, scenario: str) -> frozenset[str]:
        """The parameters of `scenario` an operator row decides (for it, or for all scenarios)."""
        return frozenset(self._overrides.get(ALL, {})) | frozenset(
            self._overrides.get(scenario, {})
        )

    def scenarios(self) -> list[str]:
        """Every scenario with shipped defaults or an operator row of its own."""
        return sorted((set(DEFAULTS) | set(self._overrides)) - {ALL})

    def for_scenario(self, scenario: str) -> ScenarioRules:
        rules = self._cache.get(scenario)
        if rules is None:
            params: dict[str, Any] = {}
            for layer in (
                DEFAULTS[ALL],
                DEFAULTS.get(scenario, {}),
                self._overrides.get(ALL, {}),
                self._overrides.get(scenario, {}),
            ):
                params.update(layer)
            rules = self._cache[scenario] = ScenarioRules(scenario, params)
        return rules


def load(session: Session, *, at: datetime) -> RuleBook:
    """One query: the newest operator row in force per scenario, over the shipped defaults."""
    overrides: dict[str, dict[str, Any]] = {}
    rows = session.execute(
        select(ActivityRule.scenario, ActivityRule.params)
        .where(ActivityRule.effective_from <= at)
        .order_by(ActivityRule.scenario, ActivityRule.effective_from, ActivityRule.id)
    )
    for scenario, params in rows:
        # Each row changes some params from its effective time on; later rows win where they overlap.
        overrides.setdefault(scenario, {}).update(params)
    return RuleBook(overrides)

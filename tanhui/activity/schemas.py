"""The activity API contract: partner records and their outcomes, review actions, the citizen's account.

The batch endpoint does not validate the body through these models: a batch is parsed as
`{"records": [...]}` and each record is checked on its own (checks.parse_record), so one bad record is
rejected as `invalid_record` without failing its neighbours. The models below document that contract
in OpenAPI and validate the small bodies (reviews, rules).
"""

from __future__ import annotations

import datetime as dt
from datetime import datetime
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

Status = Literal["credited", "duplicate", "rejected", "review", "reversed"]


class RecordIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    external_id: str = Field(
        description="The partner's id of this record, unique per partner (idempotency key).",
        examples=["trip-20250301-000123"],
        min_length=1,
        max_length=128,
    )
    partner_user_id: str = Field(
        description="The partner's id of the user, bound to a citizen by the citizen's consent.",
        examples=["u-889123"],
    )
    scenario: str = Field(
        description="Scenario: bus, metro, bike_share, walking, carpool, ev_trip, ev_charging...",
        examples=["metro"],
    )
    started_at: datetime = Field(
        description="RFC 3339 with an offset.", examples=["2025-03-01T08:01:00+08:00"]
    )
    ended_at: datetime = Field(
        description="RFC 3339 with an offset.", examples=["2025-03-01T08:31:00+08:00"]
    )
    quantities: dict[str, str] = Field(
        description="Measured quantities as decimal strings (numbers are accepted and read exactly, "
        "never as binary floats).",
        examples=[{"distance_km": "12.4"}],
    )
    evidence: dict[str, Any] | None = Field(
        None,
        description="Optional partner evidence (station ids, device ids), kept for reviewers.",
        examples=[{"entry_station": "A12", "exit_station": "B07"}],
    )


class BatchIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    records: list[RecordIn] = Field(
        description="1 to 1000 records; each is judged on its own.", min_length=1, max_length=1000
    )


class RecordResult(BaseModel):
    external_id: str = Field(description="As sent.", examples=["trip-20250301-000123"])
    status: Status = Field(
        description="credited, duplicate (the original outcome follows), rejected or review.",
        examples=["credited"],
    )
    code: str | None = Field(
        None,
        description="Why rejected: invalid_record, unbound_user, scenario_not_consented, "
        "scenario_not_allowed, invalid_quantity, invalid_duration, implausible_speed, future_time, "
        "too_old, no_methodology, not_eligible, daily_cap_reached or overlaps_other_record "
        "(the partner guide, /docs/partners, says what each means and what to do).",
        examples=[None],
    )
    reduction_mg: int = Field(description="Credited reduction, mg CO2e.", examples=[86800])
    points: int = Field(description="Points awarded for it.", examples=[8])
    record_id: int | None = Field(description="Tanhui's record id.", examples=[1201])
    detail: str | None = Field(None, description="Human-readable reason.", examples=[None])
    field: str | None = Field(None, description="The offending field.", examples=[None])
    original_status: str | None = Field(
        None, description="For duplicates: the stored record's status.", examples=[None]
    )


class BatchResult(BaseModel):
    results: list[RecordResult] = Field(description="One result per record, in request order.")
    counts: dict[str, int] = Field(
        description="How many results per status.", examples=[{"credited": 498, "rejected": 2}]
    )


class PartnerRecord(BaseModel):
    external_id: str = Field(description="As sent.", examples=["trip-1"])
    record_id: int = Field(description="Tanhui's record id.", examples=[1201])
    status: Status = Field(description="Current status.", examples=["credited"])
    code: str | None = Field(description="Reason code.", examples=[None])
    detail: str | None = Field(description="Human-readable reason.", examples=[None])
    reduction_mg: int = Field(description="Credited mg CO2e.", examples=[86800])
    points: int = Field(description="Points awarded.", examples=[8])
    scenario: str = Field(description="Scenario.", examples=["metro"])
    started_at: datetime = Field(description="UTC.", examples=["2025-03-01T00:01:00Z"])
    ended_at: datetime = Field(description="UTC.", examples=["2025-03-01T00:31:00Z"])
    received_at: datetime = Field(description="UTC.", examples=["2025-03-01T00:32:00Z"])
    decided_at: datetime | None = Field(description="When the outcome was final.", examples=[None])
    methodology: str | None = Field(description="Methodology id.", examples=["shenzhen-metro"])
    methodology_version: str | None = Field(description="Its version.", examples=["1"])
    reversal_transfer_id: int | None = Field(
        description="Ledger transfer that reversed it.", examples=[None]
    )


class ReversalIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    reason: str | None = Field(
        None,
        description="Why the partner cancels the record.",
        examples=["refunded ticket"],
        max_length=300,
    )


class ReconciliationGroup(BaseModel):
    scenario: str = Field(description="Scenario.", examples=["metro"])
    status: str = Field(description="Status.", examples=["credited"])
    records: int = Field(description="Count.", examples=[1200])
    reduction_mg: int = Field(description="Sum of credited mg.", examples=[104160000])
    points: int = Field(description="Sum of points.", examples=[10400])


class Reconciliation(BaseModel):
    date: dt.date = Field(description="The day, platform time zone.", examples=["2025-03-01"])
    timezone: str = Field(description="Platform time zone.", examples=["Asia/Shanghai"])
    groups: list[ReconciliationGroup] = Field(description="Per scenario and status.")
    totals: dict[str, int] = Field(
        description="Records of any status; credited mg and points.",
        examples=[{"records": 1201, "reduction_mg": 104160000, "points": 10400}],
    )


class PartnerDay(BaseModel):
    date: str = Field(
        description="Day the trips started, platform time zone.", examples=["2025-03-01"]
    )
    credited: int = Field(description="Records credited.", examples=[1180])
    review: int = Field(description="Records held for review.", examples=[6])
    rejected: int = Field(description="Records refused.", examples=[14])
    reversed: int = Field(description="Records the partner cancelled.", examples=[1])


class RejectionCount(BaseModel):
    code: str = Field(description="Why the records were refused.", examples=["unbound_user"])
    records: int = Field(description="How many.", examples=[9])


class PartnerActivity(BaseModel):
    partner_id: int = Field(description="The partner.", examples=[3])
    since: str = Field(description="First day counted.", examples=["2025-02-16"])
    until: str = Field(description="Last day counted (today).", examples=["2025-03-01"])
    timezone: str = Field(description="Time zone of the days.", examples=["Asia/Shanghai"])
    totals: dict[str, int] = Field(
        description="Records in all, and per status.",
        examples=[{"records": 1201, "credited": 1180, "review": 6, "rejected": 14, "reversed": 1}],
    )
    credited_mg: int = Field(description="Reduction of the credited records, mg CO2e.")
    daily: list[PartnerDay] = Field(description="Per day, oldest first.")
    rejections: list[RejectionCount] = Field(description="Refusals by code, most frequent first.")


class RejectIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    reason: str = Field(
        description="Why the reviewer rejects the record.",
        examples=["same trip reported twice with shifted times"],
        min_length=1,
        max_length=300,
    )


class RuleIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    scenario: str = Field(description="Scenario, or * for all.", examples=["bike_share"])
    params: dict[str, Any] = Field(
        description="Parameters to change: future_allowance_s, max_age_days, "
        "review_records_per_day, review_speed_fraction, dedupe_overlaps, max_speed_kmh, "
        "review_distance_km, review_kwh.",
        examples=[{"max_speed_kmh": "25"}],
    )
    effective_from: datetime | None = Field(
        None, description="When the change applies (default now).", examples=[None]
    )


class ScenarioTotal(BaseModel):
    scenario: str = Field(description="Scenario.", examples=["metro"])
    records: int = Field(description="Credited records.", examples=[42])
    reduction_mg: int = Field(description="mg CO2e.", examples=[3645600])
    points: int = Field(description="Points.", examples=[364])


class DayTotal(BaseModel):
    date: str = Field(description="Day in the platform time zone.", examples=["2025-03-01"])
    reduction_mg: int = Field(description="mg CO2e.", examples=[173600])


class MonthTotal(BaseModel):
    month: str = Field(description="YYYY-MM.", examples=["2025-03"])
    reduction_mg: int = Field(description="mg CO2e.", examples=[3645600])


class MonthToDate(BaseModel):
    since: str = Field(description="First day of this month.", examples=["2025-03-01"])
    until: str = Field(description="Today.", examples=["2025-03-10"])
    reduction_mg: int = Field(description="mg CO2e from `since` to `until`.", examples=[524000])
    previous_since: str = Field(description="First day of last month.", examples=["2025-02-01"])
    previous_until: str = Field(
        description="The same day of last month (its last day if it is shorter).",
        examples=["2025-02-10"],
    )
    previous_reduction_mg: int = Field(
        description="mg CO2e over the same days of last month.", examples=[611000]
    )


class Summary(BaseModel):
    citizen_id: int = Field(description="The citizen.", examples=[7])
    total_mg: int = Field(description="All credited reductions, mg CO2e.", examples=[3645600])
    records: int = Field(description="Credited records.", examples=[42])
    points: int = Field(description="Current points balance.", examples=[364])
    by_scenario: list[ScenarioTotal] = Field(description="Per scenario.")
    daily: list[DayTotal] = Field(description="The last 30 days, oldest first.")
    monthly: list[MonthTotal] = Field(description="Every month with reductions.")
    month_to_date: MonthToDate = Field(
        description="This month so far, beside the same days of last month."
    )
    timezone: str = Field(description="Time zone of days and months.", examples=["Asia/Shanghai"])


class CitizenRecord(BaseModel):
    id: int = Field(description="Record id.", examples=[1201])
    scenario: str = Field(description="Scenario.", examples=["metro"])
    status: str = Field(
        description="credited, rejected, review or reversed.", examples=["credited"]
    )
    code: str | None = Field(description="Reason code.", examples=[None])
    detail: str | None = Field(description="Reason.", examples=[None])
    started_at: datetime = Field(description="UTC.", examples=["2025-03-01T00:01:00Z"])
    ended_at: datetime = Field(description="UTC.", examples=["2025-03-01T00:31:00Z"])
    day: dt.date = Field(description="Day, platform time zone.", examples=["2025-03-01"])
    quantities: dict[str, str] = Field(
        description="As reported.", examples=[{"distance_km": "12.4"}]
    )
    computed_mg: int = Field(description="What the methodology gave.", examples=[86800])
    reduction_mg: int = Field(description="What was credited.", examples=[86800])
    points: int = Field(description="Points awarded.", examples=[8])
    methodology: str | None = Field(description="Methodology id.", examples=["shenzhen-metro"])
    methodology_version: str | None = Field(description="Version.", examples=["1"])
    partner_id: int = Field(description="The partner that reported it.", examples=[3])


class RecordPage(BaseModel):
    items: list[CitizenRecord] = Field(description="Newest first.")
    next_before_id: int | None = Field(
        description="Pass as before_id for the next page; null at the end.", examples=[1150]
    )


class RecordDetail(CitizenRecord):
    transfer_id: int | None = Field(description="Ledger transfer that credited it.", examples=[88])
    reversal_transfer_id: int | None = Field(description="Reversal transfer.", examples=[None])
    methodology_name: dict[str, str] | None = Field(None, description="zh/en name.")
    calculation: dict[str, Any] | None = Field(
        description="The calculation with its trace (every step, with values, units, sources)."
    )
    calculation_error: dict[str, Any] | None = Field(None, description="Why it has none.")
    factors: list[dict[str, Any]] = Field(
        description="Factors and parameters used, with value, unit, status and source."
    )
    trust_leaf: dict[str, Any] | None = Field(
        description="The credit transfer's trust-log leaf (index null while pending)."
    )


class ReviewDecisions(BaseModel):
    model_config = ConfigDict(extra="forbid")

    record_ids: list[int] = Field(
        description="Held records to decide (1 to 200; each is decided and committed on its own).",
        min_length=1,
        max_length=200,
        examples=[[1205, 1795]],
    )
    decision: Literal["approve", "reject"] = Field(description="The same decision for every one.")
    reason: str | None = Field(
        None,
        description="Why they are rejected (required to reject).",
        max_length=300,
        examples=["the same trip reported twice with shifted times"],
    )

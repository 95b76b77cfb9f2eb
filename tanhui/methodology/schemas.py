"""The methodology API contract (Pydantic at the edge)."""

from __future__ import annotations

from datetime import date
from typing import Any

from pydantic import AwareDatetime, BaseModel, ConfigDict, Field


class MethodologySummary(BaseModel):
    id: str = Field(description="Methodology id (a city variant)", examples=["shenzhen-metro"])
    version: str = Field(description="Version of this methodology", examples=["1"])
    scenario: str = Field(description="Scenario from the shared vocabulary", examples=["metro"])
    region: str = Field(description="Region, lowercase pinyin or national", examples=["shenzhen"])
    kind: str = Field(description="scenario (personal behaviour) or project", examples=["scenario"])
    name: dict[str, str] = Field(description="Names in zh and en")
    status: str = Field(
        description="verified, derived or unverified: the weakest status of any value it uses; "
        "an unverified methodology is not an official value",
        examples=["verified"],
    )
    inputs: dict[str, dict[str, Any]] = Field(description="Declared inputs with unit and range")
    effective_from: date = Field(description="First day (platform time zone) it applies")
    effective_to: date | None = Field(None, description="Day it stops applying, if declared")
    origin: str = Field(
        description="catalogue (shipped) or upload (operator)", examples=["catalogue"]
    )


class MethodologyDetail(MethodologySummary):
    issuer: dict[str, str] = Field(description="Issuing body in zh and en")
    document: dict[str, str | None] = Field(description="Source document title and address")
    parameters: dict[str, dict[str, Any]] = Field(
        description="Named parameters with value, unit, status and source"
    )
    factors: dict[str, dict[str, Any]] = Field(description="Shared factor tables it looks up")
    eligibility: list[dict[str, Any]] = Field(description="Eligibility rules")
    steps: list[dict[str, Any]] = Field(description="The formula as named steps")
    output: str = Field(description="The step whose value is the reduction")
    rounding: str = Field(description="Rounding to whole mg CO2e", examples=["half_even"])
    allow_negative: bool = Field(description="Whether a negative reduction is credited as such")
    caps: dict[str, int | None] = Field(description="Per-record and per-day caps in mg CO2e")
    notes: str | None = Field(None, description="Caveats about the sources")
    sha256: str = Field(description="SHA-256 of the TOML text that defines this version")


class MethodologyVersions(BaseModel):
    id: str = Field(description="Methodology id", examples=["wuhan-bike-share"])
    versions: list[MethodologyDetail] = Field(description="Every version, oldest first")


class CalculateRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    inputs: dict[str, str | int] = Field(
        description="Input values by name; decimals as strings so they stay exact",
        examples=[{"distance_km": "10"}],
    )
    at: AwareDatetime | date | None = Field(
        None, description="When the behaviour happened (default: now)", examples=["2025-06-01"]
    )
    version: str | None = Field(None, description="A specific version (default: in force at `at`)")
    region: str | None = Field(
        None,
        description="The record's region, for factor tables looked up by region",
        examples=["wuhan"],
    )
    trace: bool = Field(True, description="Include the step-by-step trace")


class CalculationOut(BaseModel):
    methodology: str = Field(description="Methodology id", examples=["shenzhen-metro"])
    version: str = Field(description="Version that computed it", examples=["1"])
    reduction_mg: int = Field(description="Reduction in milligrams CO2e", examples=[467000])
    eligible: bool = Field(description="Whether every eligibility rule passed")
    reasons: list[str] = Field(description="Codes of the failed eligibility rules")
    trace: list[dict[str, Any]] | None = Field(
        None, description="Every step with its expression, values, units and factor sources"
    )


class UploadRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    toml: str = Field(description="The methodology version as TOML text", max_length=262144)


class AssignmentCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    scenario: str = Field(description="Scenario from the shared vocabulary", examples=["metro"])
    methodology_id: str = Field(description="Methodology to apply", examples=["wuhan-metro"])
    effective_from: date = Field(description="First day it applies", examples=["2025-01-01"])


class AssignmentOut(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: int = Field(description="Assignment id")
    scenario: str = Field(description="Scenario", examples=["metro"])
    methodology_id: str = Field(description="Methodology applied", examples=["wuhan-metro"])
    effective_from: date = Field(description="First day it applies")
    assigned_by: int | None = Field(None, description="Staff id of the operator who assigned it")


class DiffOut(BaseModel):
    id: str = Field(description="Methodology id")
    a: str = Field(description="From version")
    b: str = Field(description="To version")
    changes: list[dict[str, Any]] = Field(description="Changed fields with old and new values")

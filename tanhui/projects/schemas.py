"""The projects API contract."""

from __future__ import annotations

from datetime import date, datetime
from typing import Any

from pydantic import BaseModel, ConfigDict, Field


class ProjectCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: str = Field(
        min_length=1,
        max_length=200,
        description="Project name",
        examples=["浦东张江园区屋顶分布式光伏 Zhangjiang rooftop PV"],
    )
    project_type: str = Field(
        description="rooftop_pv, bus_fleet, forestry, ev_charging or other",
        examples=["rooftop_pv"],
    )
    methodology_id: str = Field(
        max_length=64, description="Methodology id", examples=["shanghai-distributed-pv"]
    )
    methodology_version: str = Field(max_length=32, description="Its version", examples=["1"])
    location: str = Field(
        min_length=1, max_length=300, description="Address or site", examples=["张江路 88 号"]
    )
    district: str = Field(
        min_length=1, max_length=100, description="City district", examples=["上海市浦东新区"]
    )
    capacity_w: int | None = Field(
        None, gt=0, description="Installed capacity in watts peak (PV)", examples=[800_000]
    )
    area_m2: int | None = Field(
        None, gt=0, description="Area in square metres (forestry, roofs)", examples=[12_000]
    )
    crediting_start: date = Field(
        description="First day of the crediting period", examples=["2025-01-01"]
    )
    crediting_end: date = Field(
        description="Last day of the crediting period", examples=["2034-12-31"]
    )
    description: str = Field("", max_length=5000, description="Free description")


class ProjectUpdate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: str | None = Field(None, min_length=1, max_length=200, description="Project name")
    project_type: str | None = Field(None, description="Project type", examples=["rooftop_pv"])
    methodology_id: str | None = Field(None, max_length=64, description="Methodology id")
    methodology_version: str | None = Field(None, max_length=32, description="Its version")
    location: str | None = Field(None, min_length=1, max_length=300, description="Site")
    district: str | None = Field(None, min_length=1, max_length=100, description="District")
    capacity_w: int | None = Field(None, gt=0, description="Capacity in watts peak")
    area_m2: int | None = Field(None, gt=0, description="Area in square metres")
    crediting_start: date | None = Field(None, description="Crediting period start")
    crediting_end: date | None = Field(None, description="Crediting period end")
    description: str | None = Field(None, max_length=5000, description="Free description")


class AssignVerifier(BaseModel):
    model_config = ConfigDict(extra="forbid")

    verifier_org_id: int = Field(
        description="The verifier organisation (kind verifier)", examples=[7]
    )


class Rejection(BaseModel):
    model_config = ConfigDict(extra="forbid")

    reason: str = Field(
        min_length=1,
        max_length=500,
        description="Why (shown to the owner)",
        examples=["项目位于深圳, 所选方法学适用于上海 / methodology is for Shanghai"],
    )


class ProjectOut(BaseModel):
    id: int = Field(description="Project id, also its number in credit serials", examples=[123])
    owner_org_id: int = Field(description="Owner organisation", examples=[4])
    name: str = Field(description="Project name")
    project_type: str = Field(description="Project type", examples=["rooftop_pv"])
    methodology_id: str = Field(description="Methodology id")
    methodology_version: str = Field(description="Methodology version")
    location: str = Field(description="Site")
    district: str = Field(description="District")
    capacity_w: int | None = Field(description="Capacity in watts peak")
    area_m2: int | None = Field(description="Area in square metres")
    crediting_start: date = Field(description="Crediting period start")
    crediting_end: date = Field(description="Crediting period end")
    description: str = Field(description="Description")
    status: str = Field(description="draft, submitted, validated, registered, rejected")
    verifier_org_id: int | None = Field(description="Assigned verifier organisation")
    rejection_reason: str | None = Field(description="Why it was rejected")
    carry_mg: int = Field(description="Reduction below one tonne carried to the next report (mg)")
    created_at: datetime = Field(description="Created (UTC)")
    updated_at: datetime = Field(description="Last change (UTC)")


class TransitionOut(BaseModel):
    id: int = Field(description="Transition id")
    subject: str = Field(description="project or report")
    subject_id: int = Field(description="Project or report id")
    action: str = Field(description="What was done", examples=["validate"])
    from_status: str = Field(description="Status before")
    to_status: str = Field(description="Status after")
    actor_kind: str = Field(description="staff")
    actor_id: int = Field(description="Staff id")
    actor_org_id: int | None = Field(description="The actor's organisation")
    actor_role: str = Field(description="owner, verifier or operator")
    reason: str | None = Field(description="Reason or comment")
    at: datetime = Field(description="When (UTC)")


class DocumentOut(BaseModel):
    id: int = Field(description="Document id")
    project_id: int = Field(description="Project")
    filename: str = Field(description="Name as uploaded (sanitised)")
    content_type: str = Field(description="MIME type", examples=["application/pdf"])
    size: int = Field(description="Bytes")
    sha256: str = Field(description="SHA-256 of the bytes, hex")
    uploaded_at: datetime = Field(description="When (UTC)")


class ReportCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    period_start: date = Field(description="First monitored day", examples=["2025-01-01"])
    period_end: date = Field(description="Last monitored day", examples=["2025-06-30"])
    inputs: dict[str, str | int] = Field(
        default_factory=dict,
        description="Monitored data by methodology input name, decimals as strings",
        examples=[{"kwh": "550000.5"}],
    )


class Verification(BaseModel):
    model_config = ConfigDict(extra="forbid")

    corrected_inputs: dict[str, str | int] | None = Field(
        None,
        description="Figures the verifier corrects (others stay as filed)",
        examples=[{"kwh": "540000"}],
    )
    comment: str | None = Field(
        None,
        max_length=1000,
        description="Required with a correction",
        examples=["Meter M2 double-counted on 2025-03-02"],
    )


class ReportOut(BaseModel):
    id: int = Field(description="Report id")
    project_id: int = Field(description="Project")
    period_start: date = Field(description="First monitored day")
    period_end: date = Field(description="Last monitored day")
    status: str = Field(description="submitted, verified, issued, rejected")
    methodology_id: str = Field(description="Methodology id")
    methodology_version: str = Field(description="Methodology version")
    inputs: dict[str, Any] = Field(description="Inputs as filed")
    reduction_mg: int = Field(description="Reduction as filed (mg CO2e)")
    trace: dict[str, Any] = Field(description="The methodology's calculation with its trace")
    corrected_inputs: dict[str, Any] | None = Field(
        description="Inputs after the verifier's correction"
    )
    corrected_reduction_mg: int | None = Field(description="Reduction after correction (mg)")
    corrected_trace: dict[str, Any] | None = Field(description="Trace of the corrected calculation")
    verification_comment: str | None = Field(description="Verifier's comment")
    rejection_reason: str | None = Field(description="Why it was rejected")
    carried_in_mg: int | None = Field(description="Fraction carried in from earlier reports (mg)")
    issued_credits: int | None = Field(description="Whole credits issued (tCO2e)")
    carried_out_mg: int | None = Field(description="Fraction below one tonne carried on (mg)")
    batch_id: int | None = Field(description="The registry batch issued")
    created_at: datetime = Field(description="Filed (UTC)")


class ProjectDetail(ProjectOut):
    transitions: list[TransitionOut] = Field(description="History, oldest first")
    documents: list[DocumentOut] = Field(description="Uploaded documents")
    reports: list[ReportOut] = Field(description="Monitoring reports by period")

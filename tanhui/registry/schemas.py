"""The registry API contract."""

from __future__ import annotations

from datetime import date, datetime
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, model_validator


class TransferCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    batch_id: int = Field(description="Batch whose credits move", examples=[12])
    quantity: int = Field(gt=0, description="Whole credits (tCO2e)", examples=[300])
    to_account_id: int | None = Field(None, description="Receiving registry account", examples=[5])
    to_organisation_id: int | None = Field(
        None,
        description="Or: the receiving organisation (its account opens on first use)",
        examples=[9],
    )
    from_account_id: int | None = Field(
        None, description="Sending account; default: the caller's organisation's account"
    )
    block_id: int | None = Field(
        None, description="Take the credits from this block only (default: lowest serials first)"
    )

    @model_validator(mode="after")
    def _one_target(self) -> TransferCreate:
        if (self.to_account_id is None) == (self.to_organisation_id is None):
            raise ValueError("give exactly one of to_account_id and to_organisation_id")
        return self


class RetirementCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    batch_id: int = Field(description="Batch", examples=[12])
    quantity: int = Field(gt=0, description="Whole credits (tCO2e)", examples=[120])
    purpose: str = Field(
        description="event_neutrality, corporate_neutrality, eco_compensation or voluntary",
        examples=["event_neutrality"],
    )
    beneficiary: str = Field(
        min_length=1,
        max_length=200,
        description="On whose behalf (shown publicly)",
        examples=["2026 上海马拉松 Shanghai Marathon"],
    )
    note: str | None = Field(
        None,
        max_length=500,
        description="Claim text",
        examples=["赛事碳中和 / event carbon neutrality"],
    )
    account_id: int | None = Field(None, description="Holding account; default: the caller's")
    block_id: int | None = Field(None, description="Retire from this block only")


class CancellationCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    account_id: int = Field(description="Holding account", examples=[5])
    batch_id: int = Field(description="Batch", examples=[12])
    quantity: int = Field(gt=0, description="Whole credits", examples=[3])
    reason: str = Field(
        min_length=1,
        max_length=500,
        description="Why (recorded and public)",
        examples=["Meter M3 found faulty after issuance: over-issued 3 t"],
    )
    block_id: int | None = Field(None, description="Cancel from this block only")


class PersonalBatchCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    scenario: str = Field(description="Behaviour scenario", examples=["metro"])
    start: date = Field(description="First day (platform zone)", examples=["2026-01-01"])
    end: date = Field(description="Last day (platform zone)", examples=["2026-03-31"])


class EventOut(BaseModel):
    event_id: int = Field(description="Registry event id (the trust-log ref)", examples=[42])
    kind: str = Field(description="issuance, transfer, retirement, cancellation")
    batch_id: int = Field(description="Batch")
    serial_prefix: str = Field(description="Batch serial prefix", examples=["TH-2026-000123-001"])
    quantity: int = Field(description="Credits moved")
    serials: list[str] = Field(
        description="Moved ranges as serial strings",
        examples=[["TH-2026-000123-001-000001-000120"]],
    )
    ranges: list[list[int]] = Field(description="Moved [first, last] unit ranges")
    from_account_id: int | None = Field(description="Sending account")
    to_account_id: int | None = Field(description="Receiving account")
    retirement_no: str | None = Field(description="Retirement id", examples=["RT-2026-000042"])
    purpose: str | None = Field(description="Retirement purpose")
    beneficiary: str | None = Field(description="Retirement beneficiary")
    note: str | None = Field(description="Claim text or cancellation reason")
    ledger_transfer_id: int | None = Field(description="The ledger transfer")
    created_at: datetime = Field(description="When (UTC)")


class BatchOut(BaseModel):
    batch_id: int = Field(description="Batch id", examples=[12])
    serial_prefix: str = Field(
        description="TH-vintage-project-batch", examples=["TH-2026-000123-001"]
    )
    first_serial: str = Field(description="First unit's serial")
    last_serial: str = Field(description="Last unit's serial")
    vintage: int = Field(description="Vintage year", examples=[2026])
    project_number: int = Field(description="Project number (0 = aggregated personal reductions)")
    batch_seq: int = Field(description="Batch sequence within the project")
    issued: int = Field(description="Credits issued (tCO2e)", examples=[500])
    active: int = Field(description="Still in circulation")
    retired: int = Field(description="Retired")
    cancelled: int = Field(description="Cancelled")
    source_kind: str = Field(description="project_report or personal")
    methodology: str = Field(description="methodology@version")
    issued_to_account_id: int = Field(description="First holder")
    created_at: datetime = Field(description="Issued at (UTC)")


class BlockOut(BaseModel):
    block_id: int = Field(description="Block id")
    batch_id: int = Field(description="Batch")
    serial_prefix: str = Field(description="Batch serial prefix")
    serial_start: int = Field(description="First unit number within the batch", examples=[1])
    serial_end: int = Field(description="Last unit number within the batch", examples=[500])
    serial_first: str = Field(description="First unit's serial")
    serial_last: str = Field(description="Last unit's serial")
    quantity: int = Field(description="serial_end - serial_start + 1")
    status: str = Field(description="active, retired, cancelled (closed = history)")
    account_id: int = Field(description="Holder account")
    account_type: str = Field(description="Holder type", examples=["buyer"])
    holder: str = Field(description="Holder name")
    created_at: datetime = Field(description="Created (UTC)")


class HoldingOut(BaseModel):
    account_id: int = Field(description="Registry account")
    account_type: str = Field(description="project_owner, buyer, platform, ...")
    holder: str = Field(description="Holder name")
    batch_id: int = Field(description="Batch")
    serial_prefix: str = Field(description="Batch serial prefix")
    quantity: int = Field(description="Active credits held")


class RetirementOut(BaseModel):
    retirement_no: str = Field(description="Retirement id", examples=["RT-2026-000042"])
    event_id: int = Field(description="Registry event id")
    batch_id: int = Field(description="Batch")
    serial_prefix: str = Field(description="Batch serial prefix")
    serials: list[str] = Field(description="Retired serial ranges")
    quantity: int = Field(description="Credits retired")
    purpose: str = Field(description="Purpose")
    beneficiary: str = Field(description="Beneficiary")
    note: str | None = Field(description="Claim")
    account_id: int = Field(description="Account that retired")
    holder: str = Field(description="Its holder")
    vintage: int = Field(description="Vintage")
    project_number: int = Field(description="Project number")
    created_at: datetime = Field(description="When (UTC)")
    proof: dict[str, Any] | None = Field(
        description="Trust-log leaf: status pending/integrated, leaf_index, leaf_hash, proof url"
    )


class AccountOut(BaseModel):
    id: int = Field(description="Registry account id")
    owner_type: str = Field(description="org or platform")
    owner_id: str = Field(description="Organisation id or 'platform'")
    account_type: str = Field(description="Organisation kind or platform")
    label: str = Field(description="Holder name")

from __future__ import annotations

from pydantic import BaseModel, Field


class AssetOut(BaseModel):
    code: str = Field(description="Asset code", examples=["CO2E_MG"])
    unit: str = Field(description="The integer unit amounts are counted in", examples=["mg CO2e"])
    description: str = Field(description="What the asset is")


class BalanceOut(BaseModel):
    account_id: int = Field(description="Ledger account id", examples=[42])
    asset: str = Field(description="Asset code", examples=["POINT"])
    balance: int = Field(description="Balance in the asset's unit", examples=[1250])
    held: int = Field(description="Reserved by pending holds", examples=[200])
    available: int = Field(description="balance - held", examples=[1050])


class CheckProblemOut(BaseModel):
    kind: str = Field(examples=["balance_mismatch"])
    subject: str = Field(examples=["account 7 (citizen:12 POINT)"])
    detail: str = Field(examples=["cached 100, journal 90"])


class CheckOut(BaseModel):
    ok: bool = Field(description="True when the journal and every balance agree")
    problems: list[CheckProblemOut]

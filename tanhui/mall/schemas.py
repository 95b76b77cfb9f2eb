"""The mall's API contract (request bodies forbid unknown fields)."""

from __future__ import annotations

from datetime import date, datetime
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

Category = Literal[
    "green_travel", "daily_services", "cultural_goods", "lucky_bags", "other_goods", "props"
]
Kind = Literal["coupon", "physical", "charity"]


class RewardBase(BaseModel):
    category: Category = Field(
        description="Shelf (绿色出行 green_travel, ...).", examples=["green_travel"]
    )
    kind: Kind = Field(
        description="coupon (a code), physical (shipped) or charity (a donation).",
        examples=["coupon"],
    )
    title_zh: str = Field(
        min_length=1, max_length=200, description="Title in Chinese.", examples=["地铁单程券"]
    )
    title_en: str = Field(
        "", max_length=200, description="Title in English.", examples=["Metro single ride"]
    )
    description_zh: str = Field(
        "",
        max_length=5000,
        description="Description in Chinese.",
        examples=["成都地铁任意单程一次"],
    )
    description_en: str = Field(
        "", max_length=5000, description="Description in English.", examples=["One metro ride"]
    )
    image: str = Field(
        "",
        max_length=300,
        description="Bundled SVG name or uploaded file path.",
        examples=["metro.svg"],
    )
    price_points: int = Field(gt=0, le=10_000_000, description="Price in points.", examples=[200])
    face_value_fen: int | None = Field(
        None, ge=0, description="What the reward is worth, fen.", examples=[300]
    )
    stock: int | None = Field(
        None, ge=0, le=10_000_000, description="Units left; null = unlimited.", examples=[500]
    )
    limit_per_day: int | None = Field(
        None, gt=0, description="Per-citizen units per day.", examples=[1]
    )
    limit_total: int | None = Field(
        None, gt=0, description="Per-citizen units in total.", examples=[5]
    )
    available_from: datetime | None = Field(
        None, description="On sale from (aware).", examples=["2026-01-01T00:00:00+08:00"]
    )
    available_until: datetime | None = Field(
        None, description="On sale until (aware).", examples=[None]
    )
    districts: list[str] = Field(
        default_factory=list,
        max_length=50,
        description="Eligible districts; empty = all.",
        examples=[["锦江区"]],
    )
    min_level: int = Field(0, ge=0, le=5, description="Minimum citizen level.", examples=[0])


class RewardCreate(RewardBase):
    model_config = ConfigDict(extra="forbid")
    merchant_org_id: int | None = Field(
        None, description="(Operators only) the merchant organisation.", examples=[None]
    )


class RewardUpdate(BaseModel):
    model_config = ConfigDict(extra="forbid")
    title_zh: str | None = Field(
        None, min_length=1, max_length=200, description="Title in Chinese.", examples=["地铁单程券"]
    )
    title_en: str | None = Field(
        None, max_length=200, description="Title in English.", examples=["Metro ride"]
    )
    description_zh: str | None = Field(
        None, max_length=5000, description="Description (zh).", examples=["…"]
    )
    description_en: str | None = Field(
        None, max_length=5000, description="Description (en).", examples=["…"]
    )
    image: str | None = Field(None, max_length=300, description="Image.", examples=["metro.svg"])
    price_points: int | None = Field(
        None, gt=0, le=10_000_000, description="Price in points.", examples=[200]
    )
    stock: int | None = Field(None, ge=0, le=10_000_000, description="Units left.", examples=[100])
    limit_per_day: int | None = Field(
        None, gt=0, description="Per-citizen units per day.", examples=[1]
    )
    limit_total: int | None = Field(
        None, gt=0, description="Per-citizen units in total.", examples=[5]
    )
    available_until: datetime | None = Field(None, description="On sale until.", examples=[None])
    active: bool | None = Field(None, description="On sale.", examples=[False])


class RewardOut(RewardBase):
    id: int = Field(description="Reward id.", examples=[1])
    merchant_org_id: int = Field(description="Merchant organisation.", examples=[3])
    active: bool = Field(description="On sale.", examples=[True])
    category_zh: str = Field(description="Category name (zh).", examples=["绿色出行"])
    category_en: str = Field(description="Category name (en).", examples=["Green travel"])
    value_fen: int = Field(
        description="What the price is worth at the platform's point value, fen.", examples=[200]
    )


class OrderCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")
    reward_id: int = Field(gt=0, description="The reward.", examples=[1])
    quantity: int = Field(1, gt=0, le=10, description="Units.", examples=[1])
    shipping_address: str | None = Field(
        None,
        max_length=500,
        description="For physical goods; stored encrypted.",
        examples=["四川省成都市锦江区…"],
    )


class OrderOut(BaseModel):
    id: int = Field(description="Order id.", examples=[10])
    reward_id: int = Field(description="Reward.", examples=[1])
    reward_title_zh: str = Field(description="Reward title (zh).", examples=["地铁单程券"])
    reward_title_en: str = Field(description="Reward title (en).", examples=["Metro ride"])
    category: str = Field(description="Category.", examples=["green_travel"])
    kind: str = Field(description="Reward kind.", examples=["coupon"])
    merchant_org_id: int = Field(description="Merchant.", examples=[3])
    citizen_id: int = Field(description="Citizen.", examples=[7])
    quantity: int = Field(description="Units.", examples=[1])
    points: int = Field(description="Points paid.", examples=[200])
    status: str = Field(
        description="placed, fulfilled, completed, cancelled or failed.", examples=["fulfilled"]
    )
    codes: list[str] = Field(
        description="Coupon codes (only shown to the order's citizen).", examples=[["AB12CD34EF56"]]
    )
    shipping_address: str | None = Field(
        description="Shipping address (physical goods).", examples=[None]
    )
    tracking_no: str | None = Field(description="Tracking number once shipped.", examples=[None])
    receipt_no: str | None = Field(
        description="Donation receipt number (charity).", examples=[None]
    )
    created_at: datetime = Field(description="Placed at (UTC).", examples=["2026-03-01T08:00:00Z"])
    fulfilled_at: datetime | None = Field(description="Fulfilled at.", examples=[None])
    completed_at: datetime | None = Field(description="Completed at.", examples=[None])
    cancelled_at: datetime | None = Field(description="Cancelled at.", examples=[None])


class CancelBody(BaseModel):
    model_config = ConfigDict(extra="forbid")
    reason: str = Field("", max_length=200, description="Why.", examples=["changed my mind"])
    failed: bool = Field(
        False, description="(Merchant) mark as failed rather than cancelled.", examples=[False]
    )


class ShipBody(BaseModel):
    model_config = ConfigDict(extra="forbid")
    tracking_no: str = Field(
        min_length=1,
        max_length=100,
        description="Carrier tracking number.",
        examples=["SF1234567890"],
    )


class VerifyBody(BaseModel):
    model_config = ConfigDict(extra="forbid")
    code: str = Field(
        min_length=1,
        max_length=100,
        description="The code shown by the citizen.",
        examples=["AB12CD34EF56"],
    )


class VerifyOut(BaseModel):
    code: str = Field(description="The code.", examples=["AB12CD34EF56"])
    order_id: int = Field(description="Its order.", examples=[10])
    reward_id: int = Field(description="Its reward.", examples=[1])
    title_zh: str = Field(description="Reward title (zh).", examples=["咖啡券"])
    title_en: str = Field(description="Reward title (en).", examples=["Coffee voucher"])
    used_at: datetime = Field(description="Written off at.", examples=["2026-03-01T08:00:00Z"])


class CodesImport(BaseModel):
    model_config = ConfigDict(extra="forbid")
    csv: str | None = Field(
        None,
        max_length=5_000_000,
        description="CSV text, codes in the first column or a `code` column.",
        examples=["code\nA1\nA2"],
    )
    generate: int | None = Field(
        None, gt=0, le=100_000, description="Or: generate this many random codes.", examples=[100]
    )


class CodesImported(BaseModel):
    added: int = Field(description="New codes.", examples=[2])
    available: int = Field(description="Codes available now.", examples=[120])


class CampaignBudget(BaseModel):
    model_config = ConfigDict(extra="forbid")
    budget_points: int | None = Field(
        description="Cap on points issued; null lifts it.", ge=0, examples=[1_000_000]
    )
    name: str | None = Field(
        None, max_length=200, description="Display name.", examples=["春季绿色出行"]
    )


class PointValue(BaseModel):
    model_config = ConfigDict(extra="forbid")
    fen_per_100_points: int = Field(
        ge=0, le=1_000_000, description="What 100 points are worth, fen.", examples=[100]
    )
    effective_from: datetime | None = Field(
        None, description="From when (default now).", examples=[None]
    )


class ReportQuery(BaseModel):
    start: date | None = None
    end: date | None = None

"""Everyday equivalents of a reduction, each with its factor, its source and its status.

Honesty rule (issue 8): a factor without a verified source in /work/shared/reference is shown as an
approximation. The project reference (methodologies.md, platforms.md, lessons.md) lists tree
equivalents as a platform feature but gives no uptake factor, so the tree factor below is flagged.
"""

from __future__ import annotations

from dataclasses import dataclass
from decimal import ROUND_HALF_EVEN, Decimal


@dataclass(frozen=True)
class Equivalent:
    key: str
    factor_mg: int
    """CO2e per unit, in mg."""
    unit_en: str
    source: str
    verified: bool

    def units(self, reduction_mg: int) -> Decimal:
        return (Decimal(reduction_mg) / Decimal(self.factor_mg)).quantize(
            Decimal("0.1"), rounding=ROUND_HALF_EVEN
        )


TREE_YEAR = Equivalent(
    key="tree_year",
    # ~18 kg CO2 per tree per year is a widely repeated rule of thumb for a growing tree; it varies
    # several-fold with species, age and climate. Not backed by a source in the project reference.
    factor_mg=18_000_000,
    unit_en="tree-years",
    source="rule of thumb (≈18 kg CO₂ per tree per year); no verified source in the project reference",
    verified=False,
)

"""The one Pint registry used to check methodology units at load time (never at evaluation time)."""

from __future__ import annotations

from decimal import Decimal
from functools import lru_cache
from typing import cast

import pint

# Decimal magnitudes keep conversion factors exact (1 t = 10**9 mg), so no float reaches a result.
ureg: pint.UnitRegistry = pint.UnitRegistry(non_int_type=Decimal)
# CO2e is its own base dimension: a "g CO2e" is not a plain gram, so a formula that forgets the
# emission factor fails the dimension check. Sources that say "CO2" mean the same quantity (GWP 1).
ureg.define("CO2e = [carbon_dioxide_equivalent] = CO2e = CO2eq = CO2")

Unit = pint.Unit
DIMENSIONLESS: Unit = ureg.Unit("dimensionless")
MG_CO2E: Unit = ureg.Unit("mg CO2e")


@lru_cache(maxsize=512)
def parse_unit(text: str) -> Unit:
    """Parse a unit string such as "g CO2e / km"; raises ValueError with a readable message."""
    try:
        unit = ureg.Unit(text.strip() or "dimensionless")
    except Exception as exc:  # noqa: BLE001 - Pint raises many unrelated types for a bad string
        raise ValueError(f"unknown unit {text!r}: {exc}") from None
    return unit


def compatible(a: Unit, b: Unit) -> bool:
    return bool(a.dimensionality == b.dimensionality)


def factor(from_unit: Unit, to_unit: Unit) -> Decimal:
    """The exact Decimal factor that converts a magnitude in from_unit to to_unit."""
    magnitude = Decimal(cast(Decimal, ureg.Quantity(Decimal(1), from_unit).to(to_unit).magnitude))
    if magnitude == magnitude.to_integral_value():
        return magnitude.quantize(Decimal(1))  # 1000, not 1E+3, so traces read naturally
    return magnitude.normalize()


def show(unit: Unit) -> str:
    """A stable rendering for traces and errors in the way sources write it: "g CO2e / km"."""
    if unit == DIMENSIONLESS:
        return "1"
    num: list[str] = []
    den: list[str] = []
    # CO2e last among the numerator so the reader sees "kg CO2e", as the sources print it.
    items = sorted(unit._units.items(), key=lambda item: item[0] == "CO2e")
    for name, raw_power in items:
        power = int(cast(int, raw_power))
        symbol = ureg.get_symbol(name)
        text = symbol if abs(power) == 1 else f"{symbol}^{abs(power)}"
        (num if power > 0 else den).append(text)
    out = " ".join(num) or "1"
    if den:
        out += " / " + " ".join(den)
    return out

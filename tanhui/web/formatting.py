"""Numbers with units for people: CO2e from integer milligrams, points, money from fen.

Integers in, strings out; Decimal in between and half-even rounding, never a float.
"""

from __future__ import annotations

from datetime import date, datetime
from decimal import ROUND_HALF_EVEN, Decimal

from babel.dates import format_date, format_datetime
from babel.numbers import format_decimal

from tanhui.kit.settings import get_settings

_LOCALES = {"zh": "zh_CN", "en": "en"}

MG_PER_G = 1_000
MG_PER_KG = 1_000_000
MG_PER_T = 1_000_000_000


def _num(value: Decimal, lang: str, places: int) -> str:
    quantum = Decimal(1).scaleb(-places)
    rounded = value.quantize(quantum, rounding=ROUND_HALF_EVEN)
    pattern = "#,##0" + ("." + "0" * places if places else "")
    return format_decimal(rounded, format=pattern, locale=_LOCALES.get(lang, "zh_CN"))


def mass(mg: int | None, lang: str = "zh") -> str:
    """`1234567` -> "1.23 kg": the largest unit (g, kg, t) that keeps the number readable."""
    if mg is None:
        return "—"
    value = Decimal(mg)
    sign = "-" if value < 0 else ""
    magnitude = abs(value)
    if magnitude >= MG_PER_T:
        return sign + _num(magnitude / MG_PER_T, lang, 3) + " t"
    if magnitude >= MG_PER_KG:
        return sign + _num(magnitude / MG_PER_KG, lang, 2) + " kg"
    if magnitude >= MG_PER_G or magnitude == 0:
        return (
            sign + _num(magnitude / MG_PER_G, lang, 0 if magnitude >= 100 * MG_PER_G else 1) + " g"
        )
    return sign + _num(magnitude, lang, 0) + " mg"


def mass_in(mg: int, unit: str) -> Decimal:
    divisor = {"mg": 1, "g": MG_PER_G, "kg": MG_PER_KG, "t": MG_PER_T}[unit]
    return Decimal(mg) / divisor


def integer(value: int | None, lang: str = "zh") -> str:
    if value is None:
        return "—"
    return format_decimal(value, format="#,##0", locale=_LOCALES.get(lang, "zh_CN"))


def money(fen: int | None, lang: str = "zh") -> str:
    if fen is None:
        return "—"
    return "¥" + _num(Decimal(fen) / 100, lang, 2)


def when(value: datetime | date | None, lang: str = "zh") -> str:
    if value is None:
        return "—"
    locale = _LOCALES.get(lang, "zh_CN")
    if isinstance(value, datetime):
        local = value.astimezone(get_settings().zone) if value.tzinfo else value
        return format_datetime(local, format="yyyy-MM-dd HH:mm", locale=locale)
    return format_date(value, format="yyyy-MM-dd", locale=locale)


def change(current: int, previous: int) -> int | None:
    """Whole-percent change (half-even) or None when there is nothing to compare with."""
    if previous == 0:
        return None
    ratio = (Decimal(current - previous) * 100 / Decimal(previous)).quantize(
        Decimal(1), rounding=ROUND_HALF_EVEN
    )
    return int(ratio)

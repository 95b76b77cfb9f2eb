"""The formula language: parsing, unit checking, totality and evaluation."""

from __future__ import annotations

import re
from decimal import Decimal

import pytest

from tanhui.methodology import expr
from tanhui.methodology.units import parse_unit

SYMBOLS = {
    "distance_km": expr.Symbol(parse_unit("km"), expr.POS),
    "offset_km": expr.Symbol(parse_unit("km"), expr.ANY),
    "factor": expr.Symbol(parse_unit("g CO2e / km"), expr.POS),
    "factor_kg": expr.Symbol(parse_unit("kg CO2e / km"), expr.POS),
    "count": expr.Symbol(parse_unit("dimensionless"), frozenset({0, 1})),
}
ENV = {
    "distance_km": Decimal("10"),
    "offset_km": Decimal("-2"),
    "factor": Decimal("46.7"),
    "factor_kg": Decimal("0.5"),
    "count": Decimal("3"),
}


def run(text: str) -> object:
    return expr.compile_expr(expr.parse(text), SYMBOLS).fn(ENV)


class TestEvaluation:
    def test_precedence(self) -> None:
        assert run("1 + 2 * 3") == 7
        assert run("(1 + 2) * 3") == 9
        assert run("-2 * -3") == 6
        assert run("10 / 4") == Decimal("2.5")

    def test_product_keeps_decimal_exactness(self) -> None:
        assert run("factor * distance_km") == Decimal("467.0")

    def test_min_max_abs_if(self) -> None:
        assert run("min(distance_km, offset_km)") == Decimal("-2")
        assert run("max(offset_km, 0)") == 0
        assert run("abs(offset_km)") == 2
        assert run("if(count > 2, factor * distance_km, 0)") == Decimal("467.0")
        assert run("max(1, 2, 3, count)") == 3

    def test_compatible_units_are_converted_exactly(self) -> None:
        # kg CO2e/km + g CO2e/km: the right operand is brought into the left's unit
        assert run("factor_kg + factor") == Decimal("0.5") + Decimal("0.0467")
        assert run("factor > factor_kg") is False

    def test_conditions(self) -> None:
        assert run("distance_km > offset_km and not count == 0") is True
        assert run("count < 1 or count >= 3") is True

    def test_units_of_a_product(self) -> None:
        compiled = expr.compile_expr(expr.parse("factor * distance_km"), SYMBOLS)
        assert compiled.unit == parse_unit("g CO2e")


class TestRejection:
    @pytest.mark.parametrize(
        ("text", "message"),
        [
            ("distance_km + factor", "units do not agree"),
            ("distance_km + 1", "units do not agree"),
            ("unknown * 2", "unknown name 'unknown'"),
            ("eval(distance_km)", "unknown function 'eval'"),
            ("__import__(1)", "unknown function"),
            ("distance_km.real", "unexpected character"),
            ("distance_km[0]", "unexpected character"),
            ("factor * distance_km)", "unexpected ')'"),
            ("(factor", "expected ')'"),
            ("1 < 2 < 3", "chained comparisons"),
            ("factor / offset_km", "may be zero"),
            ("factor / count", "may be zero"),
            ("if(distance_km, 1, 2)", "needs a condition"),
            ("if(count > 1, 1)", "exactly 3 arguments"),
            ("min(distance_km)", "at least 2 arguments"),
            ("not distance_km", "needs a condition"),
            ("distance_km > 1 + 1", "units do not agree"),
            ("", "expected a number"),
        ],
    )
    def test_error(self, text: str, message: str) -> None:
        with pytest.raises(expr.ExprError, match=re.escape(message)):
            expr.compile_expr(expr.parse(text), SYMBOLS)

    def test_error_reports_the_column(self) -> None:
        with pytest.raises(expr.ExprError) as info:
            expr.compile_expr(expr.parse("factor * distance_km + nope"), SYMBOLS)
        assert info.value.column == 24

    def test_division_by_a_strictly_positive_input_is_total(self) -> None:
        compiled = expr.compile_expr(expr.parse("factor * distance_km / distance_km"), SYMBOLS)
        assert compiled.fn(ENV) == Decimal("46.7")

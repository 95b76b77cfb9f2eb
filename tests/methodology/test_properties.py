"""Invariants of every shipped methodology, checked with Hypothesis."""

from __future__ import annotations

from datetime import date
from decimal import Decimal

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tanhui.methodology.engine import CompiledMethodology, InputSpec
from tanhui.methodology.errors import InvalidMethodologyInput

from .helpers import catalogue, compile_text, methodology, shipped

AT = date(2025, 6, 1)
REGIONS = ["shenzhen", "wuhan", "shanghai", "hubei", "beijing", "chengdu", "national", "yunnan"]
KEYS = sorted(catalogue())


def admissible(spec: InputSpec) -> st.SearchStrategy[Decimal]:
    low = spec.gt if spec.gt is not None else spec.ge if spec.ge is not None else Decimal(0)
    high = spec.lt if spec.lt is not None else spec.le if spec.le is not None else Decimal(10**7)
    places = 0 if spec.integer else 3
    step = Decimal(1).scaleb(-places)
    low_ok = low + step if spec.gt is not None else low
    high_ok = high - step if spec.lt is not None else high
    return st.decimals(min_value=low_ok, max_value=high_ok, places=places, allow_nan=False)


@st.composite
def record(draw: st.DrawFn, m: CompiledMethodology) -> dict[str, Decimal]:
    return {name: draw(admissible(spec)) for name, spec in m.inputs.items()}


@pytest.mark.parametrize("key", KEYS, ids=lambda k: f"{k[0]}@{k[1]}")
@settings(max_examples=60, deadline=None)
@given(data=st.data(), region=st.sampled_from(REGIONS))
def test_no_negative_reduction_and_trace_agrees(
    key: tuple[str, str], data: st.DataObject, region: str
) -> None:
    m = catalogue()[key]
    inputs = data.draw(record(m))
    plain = m.calculate(inputs, at=AT, region=region)
    traced = m.calculate(inputs, at=AT, region=region, trace=True)
    assert plain.reduction_mg >= 0
    assert isinstance(plain.reduction_mg, int)
    assert plain.reduction_mg == traced.reduction_mg
    assert plain.eligible == traced.eligible
    if not plain.eligible:
        assert plain.reduction_mg == 0 and plain.reasons


# Every shipped formula is a positive factor times its amount input, so it is monotonic in it.
MONOTONIC = [(k, name) for k in KEYS for name in catalogue()[k].inputs if name != "capacity_kw"]


@pytest.mark.parametrize(("key", "name"), MONOTONIC, ids=lambda v: str(v))
@settings(max_examples=40, deadline=None)
@given(data=st.data())
def test_monotonic_in_the_amount(key: tuple[str, str], name: str, data: st.DataObject) -> None:
    m = catalogue()[key]
    inputs = data.draw(record(m))
    other = data.draw(admissible(m.inputs[name]))
    low, high = sorted([inputs[name], other])
    a = m.calculate({**inputs, name: low}, at=AT, region=m.region).reduction_mg
    b = m.calculate({**inputs, name: high}, at=AT, region=m.region).reduction_mg
    assert a <= b


@settings(max_examples=100, deadline=None)
@given(kwh=st.decimals(min_value=1, max_value=10**6, places=2), capacity=st.integers(1, 20_000))
def test_pv_eligibility_is_enforced(kwh: Decimal, capacity: int) -> None:
    # Shanghai PV: single project <= 1 MW (methodologies.md §11)
    calc = shipped("shanghai-distributed-pv").calculate(
        {"kwh": kwh, "capacity_kw": capacity}, at=AT, trace=True
    )
    assert calc.eligible == (capacity <= 1000)
    if capacity > 1000:
        assert calc.reduction_mg == 0
        assert calc.reasons == ["capacity_over_1mw"]
    else:
        assert calc.reduction_mg == int(
            (kwh * Decimal("420000")).to_integral_value()
        )  # 0.42 kg/kWh


CAPPED = methodology(
    """
[inputs.distance_km]
unit = "km"
gt = "0"
le = "200"

[parameters.factor]
value = "46.7"
unit = "g CO2e / km"
status = "verified"
source = { document = "Doc" }

[caps]
per_record = "2 kg CO2e"
per_day = "5 kg CO2e"

[[steps]]
name = "reduction"
expr = "factor * distance_km"
unit = "g CO2e"
"""
)


@settings(max_examples=100, deadline=None)
@given(distance=st.decimals(min_value="0.001", max_value=200, places=3))
def test_per_record_cap_is_respected(distance: Decimal) -> None:
    m = compile_text(CAPPED)
    assert m.per_record_cap_mg == 2_000_000 and m.per_day_cap_mg == 5_000_000
    calc = m.calculate({"distance_km": distance}, at=m.effective_from, trace=True)
    uncapped = int((distance * Decimal("46700")).to_integral_value())
    assert calc.reduction_mg == min(uncapped, 2_000_000)
    assert calc.per_day_cap_mg == 5_000_000
    assert calc.trace is not None
    if uncapped > 2_000_000:
        assert "per-record cap" in (calc.trace[-1].note or "")
        assert "已按单条记录上限 2000000 mg 封顶" in (calc.trace[-1].note_zh or "")


NEGATIVE = methodology(
    """
[inputs.distance_km]
unit = "km"
gt = "0"
le = "200"

[parameters.base]
value = "10"
unit = "g CO2e / km"
status = "verified"
source = { document = "Doc" }

[parameters.project]
value = "3"
unit = "g CO2e"
status = "verified"
source = { document = "Doc" }

[[steps]]
name = "reduction"
expr = "base * distance_km - project"
unit = "g CO2e"
"""
)


@settings(max_examples=100, deadline=None)
@given(distance=st.decimals(min_value="0.001", max_value=200, places=3), allow=st.booleans())
def test_negative_results_are_floored_unless_allowed(distance: Decimal, allow: bool) -> None:
    text = NEGATIVE + ("\n[result]\nallow_negative = true\n" if allow else "")
    m = compile_text(text)
    exact = int(((distance * 10 - 3) * 1000).to_integral_value())
    calc = m.calculate({"distance_km": distance}, at=m.effective_from)
    assert calc.reduction_mg == (exact if allow else max(exact, 0))


@settings(max_examples=100, deadline=None)
@given(
    raw=st.one_of(
        st.text(max_size=8),
        st.decimals(allow_nan=True, allow_infinity=True),
        st.floats(),
        st.integers(-(10**20), 10**20),
        st.none(),
    )
)
def test_bad_or_out_of_range_inputs_raise_invalid_quantity(raw: object) -> None:
    m = shipped("shenzhen-metro")
    try:
        calc = m.calculate({"distance_km": raw}, at=AT)  # type: ignore[dict-item]
    except InvalidMethodologyInput as exc:
        assert exc.field == "distance_km" and exc.code == "invalid_quantity"
        assert exc.status_code == 422
    else:
        value = Decimal(str(raw).strip())
        assert 0 < value <= 200
        assert calc.reduction_mg >= 0


def test_half_even_rounding_is_applied_once() -> None:
    m = compile_text(
        NEGATIVE.replace('value = "3"', 'value = "0"').replace('value = "10"', 'value = "1"')
    )
    # 1 g/km x 0.0005 km = 0.5 mg -> 0 (half-even), 0.0015 km = 1.5 mg -> 2
    assert m.calculate({"distance_km": "0.0005"}, at=m.effective_from).reduction_mg == 0
    assert m.calculate({"distance_km": "0.0015"}, at=m.effective_from).reduction_mg == 2
    assert m.calculate({"distance_km": "0.0025"}, at=m.effective_from).reduction_mg == 2

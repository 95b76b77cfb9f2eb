"""Every shipped methodology reproduces its source's worked figures; sources are cited beside each case.

The reference for every value is /work/shared/reference/methodologies.md (section numbers below).
"""

from __future__ import annotations

from datetime import UTC, date, datetime
from decimal import Decimal

import pytest

from tanhui.methodology.errors import FactorNotInForce
from tanhui.methodology.loader import SCENARIOS

from .helpers import catalogue, shipped, tables

AT = date(2025, 6, 1)

# (methodology, version, inputs, expected mg, source)
WORKED = [
    # §4: 深圳商报 2022-09-23 "乘坐地铁出行,每人每公里可减少46.7克" -> a 10 km trip = 467 g
    ("shenzhen-metro", "1", {"distance_km": "10"}, 467_000, "citysz.net 2022-09-23"),
    # §3: same article, "纯电动公共汽车 ... 每人每公里可减少26.9克" -> 10 km = 269 g
    ("shenzhen-bus", "1", {"distance_km": "10"}, 269_000, "citysz.net 2022-09-23"),
    # §2b: 43u.com.cn 2025-08-10, metro 40 min -> 829 g, i.e. about 10.57 km at 78.4 g/km
    ("wuhan-metro", "1", {"distance_km": "10.57"}, 828_688, "43u.com.cn 2025-08-10"),
    # §2b: cycling 5 min -> 84 g, about 0.90 km at 93.3 g/km
    ("wuhan-bike-share", "2", {"distance_km": "0.9"}, 83_970, "43u.com.cn 2025-08-10"),
    # §2b: 长江日报 2023-06-05 "每骑行1公里,可获得40克减排量"
    ("wuhan-bike-share", "1", {"distance_km": "1"}, 40_000, "cnhan.com 2023-06-05"),
    # §2b: "乘坐公交车,获得150克的减排量"
    ("wuhan-bus", "1", {"count": "1"}, 150_000, "cnhan.com 2023-06-05"),
    # §2b: "搭乘一辆新能源车行驶了24公里,他随即获得168克"
    ("wuhan-ev-trip", "1", {"distance_km": "24"}, 168_000, "cnhan.com 2023-06-05"),
    # §2b: "使用自带的购物袋…增加5克减排量"
    ("wuhan-shopping-bag", "1", {"count": "1"}, 5_000, "cnhan.com 2023-06-05"),
    # §2b: "少用1度电,就能获得525克碳减排量"
    ("wuhan-electricity-saving", "1", {"kwh": "1"}, 525_000, "43u.com.cn 2025-08-10"),
    # §2b: 湖北日报 2022-02-17, 0.02 g per step, 7,250 steps -> 145
    ("hubei-walking", "1", {"steps": "7250"}, 145_000, "湖北日报 2022-02-17"),
    # §2b: bus ride with the ride record 105 g; metro 274 g
    ("hubei-bus", "1", {"count": "1"}, 105_000, "湖北日报 2022-02-17"),
    ("hubei-metro", "1", {"count": "1"}, 274_000, "湖北日报 2022-02-17"),
    # §10: 人民日报海外版 2022-06-16, household 8 kWh/day <-> 2.5 kg CO2
    ("shenzhen-electricity-saving", "1", {"kwh": "8"}, 2_500_000, "人民日报海外版 2022-06-16"),
    # §11: 1 MW x 1,100 h = 1.1 million kWh -> 462 t CO2 (the article's "462万吨" is a typo)
    (
        "shanghai-distributed-pv",
        "1",
        {"kwh": "1100000", "capacity_kw": "1000"},
        462 * 10**9,
        "yimengplus.com.cn 2024-03-21",
    ),
    # §13: "每一单闲置手机的交易,至少可以实现约25公斤的碳减排量"
    ("cn-second-hand-phone", "1", {"count": "1"}, 25 * 10**6, "china360online.com"),
    # §14: 青山计划 about 1.27万 t of boxes -> about 1.9万 t CO2 (1.50 t/t, DERIVED)
    ("cn-recycling-takeaway-boxes", "1", {"weight_kg": "1000"}, 1_500_000_000, "443400.cn"),
    # §14: OOLA "每回收利用1kg旧纺织物,就可以降低3.6kg" (UNVERIFIED commercial claim)
    ("cn-recycling-textiles", "1", {"weight_kg": "1"}, 3_600_000, "oola.cn"),
    # §12: 津云, a pair of chopsticks ~ 20 g (UNVERIFIED)
    ("cn-no-disposable-tableware", "1", {"count": "1"}, 20_000, "hg-news.cn"),
    # §14: white paper "about 7.6 g per refuel" (UNVERIFIED)
    ("cn-digital-refuelling", "1", {"count": "1"}, 7_600, "2024 white paper"),
]


@pytest.mark.parametrize(
    ("mid", "version", "inputs", "expected", "source"),
    WORKED,
    ids=[f"{w[0]}@{w[1]}" for w in WORKED],
)
def test_worked_figure(
    mid: str, version: str, inputs: dict[str, str], expected: int, source: str
) -> None:
    calc = shipped(mid, version).calculate(inputs, at=AT, trace=True)
    assert calc.reduction_mg == expected, source
    assert calc.eligible
    assert calc.trace is not None


def test_wuhan_metro_worked_example_rounds_to_the_published_grams() -> None:
    # 43u.com.cn: "地铁40分钟 829克"; 10.57 km is DERIVED, so compare at gram resolution.
    calc = shipped("wuhan-metro").calculate({"distance_km": "10.57"}, at=AT)
    assert round(Decimal(calc.reduction_mg) / 1000) == 829


class TestCarpool:
    def test_structure_of_t_ccaa_38(self) -> None:
        # 1 passenger, 10 km: BE = 10 x 0.2718 kg; PE = 10 x 0.1 x 0.2718 kg -> 2.4462 kg
        calc = shipped("cn-carpool").calculate({"distance_km": "10", "passengers": "1"}, at=AT)
        assert calc.reduction_mg == 2_446_200


class TestGridLookup:
    def test_ev_charging_uses_the_regional_grid_for_a_city(self) -> None:
        # shenzhen -> guangdong -> nanfang (南方 0.3869, MEE/NBS 2022, published 2024-12-26, §2)
        m = shipped("cn-ev-charging")
        calc = m.calculate({"kwh": "30"}, at=AT, region="shenzhen", trace=True)
        assert calc.trace is not None
        project = next(s for s in calc.trace if s.step == "project")
        assert project.values["grid"]["value"] == "0.3869"
        assert project.values["grid"]["region"] == "nanfang"
        # 30 kWh / 0.15 kWh/km = 200 km; 200 x 0.07 L x 2.3 kg = 32.2 kg; minus 30 x 0.3869 kg
        assert calc.reduction_mg == 32_200_000 - 11_607_000

    def test_province_with_its_own_row_uses_it(self) -> None:
        calc = shipped("cn-ev-charging").calculate({"kwh": "10"}, at=AT, region="yunnan")
        # 10 kWh -> 66.67 km -> 10.7333 kg baseline; project 10 x 0.1073 kg
        expected = (
            Decimal(10) / Decimal("0.15") * Decimal("0.07") * Decimal("2.3") * 1000 - 1073
        ) * 1000
        assert calc.reduction_mg == int(expected.to_integral_value())

    def test_year_picks_the_factor_public_on_the_record_date(self) -> None:
        m = shipped("cn-ev-charging")
        before = m.calculate({"kwh": "1"}, at=date(2024, 12, 25), region="shenzhen", trace=True)
        after = m.calculate({"kwh": "1"}, at=date(2024, 12, 26), region="shenzhen", trace=True)
        assert before.trace is not None and after.trace is not None
        grid_before = next(s for s in before.trace if s.step == "project").values["grid"]
        grid_after = next(s for s in after.trace if s.step == "project").values["grid"]
        assert (grid_before["year"], grid_before["value"]) == (2021, "0.5568")
        assert (grid_after["year"], grid_after["value"]) == (2022, "0.3869")

    def test_record_time_is_read_in_the_platform_time_zone(self) -> None:
        # 2024-12-25 16:30 UTC is already 2024-12-26 in Asia/Shanghai, when the 2022 factors apply.
        m = shipped("cn-ev-charging")
        calc = m.calculate(
            {"kwh": "1"},
            at=datetime(2024, 12, 25, 16, 30, tzinfo=UTC),
            region="shenzhen",
            trace=True,
        )
        assert calc.trace is not None
        assert next(s for s in calc.trace if s.step == "project").values["grid"]["year"] == 2022

    def test_a_date_before_any_published_factor_is_refused(self) -> None:
        with pytest.raises(FactorNotInForce):
            shipped("cn-ev-charging").calculate({"kwh": "1"}, at=date(2023, 1, 1))


class TestCatalogue:
    def test_every_scenario_has_a_methodology(self) -> None:
        covered = {m.scenario for m in catalogue().values()}
        assert covered == set(SCENARIOS)

    def test_city_variants_are_separate_methodologies(self) -> None:
        metro = {m.id: m.region for m in catalogue().values() if m.scenario == "metro"}
        assert metro == {
            "shenzhen-metro": "shenzhen",
            "wuhan-metro": "wuhan",
            "hubei-metro": "hubei",
        }

    @pytest.mark.parametrize("key", sorted(catalogue()), ids=lambda k: f"{k[0]}@{k[1]}")
    def test_every_methodology_calculates_and_explains_itself(self, key: tuple[str, str]) -> None:
        m = catalogue()[key]
        inputs = {
            name: str(spec.le or spec.lt or 1) if spec.integer else "1"
            for name, spec in m.inputs.items()
        }
        if "capacity_kw" in inputs:
            inputs["capacity_kw"] = "100"
        calc = m.calculate(inputs, at=AT, region=m.region, trace=True)
        assert calc.reduction_mg >= 0
        assert calc.trace is not None
        assert calc.trace[-1].step == "reduction_mg"
        assert "half-even" in (calc.trace[-1].note or "")
        described = m.describe()
        assert described["document"]["title"]
        for parameter in described["parameters"].values():
            assert parameter["status"] in {"verified", "derived", "unverified"}
            assert parameter["source"]["document"]

    def test_unverified_values_make_the_methodology_unverified(self) -> None:
        for m in catalogue().values():
            if any(p.status == "unverified" for p in m.parameters.values()):
                assert m.status == "unverified", m.id

    def test_grid_factor_values_match_the_reference(self) -> None:
        # §2 VERIFIED values, one by one
        rows = {(r.year, r.region): r.value for r in tables()["cn_power_co2_average"].rows}
        assert rows[(2021, "national")] == Decimal("0.5568")
        assert rows[(2022, "national")] == Decimal("0.5366")
        expected_2022 = {
            "huabei": "0.6776", "xibei": "0.5857", "huadong": "0.5617", "dongbei": "0.5564",
            "huazhong": "0.5395", "nanfang": "0.3869", "xinan": "0.2268", "hebei": "0.7252",
            "shanxi": "0.7096", "tianjin": "0.7041", "neimenggu": "0.6849", "anhui": "0.6782",
            "fujian": "0.4092", "guangxi": "0.4044", "qinghai": "0.1567", "sichuan": "0.1404",
            "yunnan": "0.1073",
        }  # fmt: skip
        for region, value in expected_2022.items():
            assert rows[(2022, region)] == Decimal(value), region
        assert tables()["cn_grid_average_reporting"].rows[0].value == Decimal("0.5703")
        assert tables()["shanghai_power"].rows[0].value == Decimal("0.42")
        for table in tables().values():
            for row in table.rows:
                assert row.status == "verified" and row.source.address

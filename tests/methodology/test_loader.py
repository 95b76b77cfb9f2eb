"""Loading reports every kind of error with file, line and field."""

from __future__ import annotations

from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tanhui.methodology.errors import LoadError, MethodologyInvalid
from tanhui.methodology.loader import CATALOGUE_DIR, load_catalogue, load_factor_table

from .helpers import compile_text, methodology, tables

GOOD_BODY = """
[inputs.distance_km]
unit = "km"
gt = "0"
le = "200"

[parameters.factor]
value = "46.7"
unit = "g CO2e / km"
status = "verified"
source = { document = "Doc", address = "https://example.org" }

[[steps]]
name = "reduction"
expr = "factor * distance_km"
unit = "g CO2e"
"""


def errors_of(text: str) -> list[LoadError]:
    with pytest.raises(MethodologyInvalid) as info:
        compile_text(text)
    return info.value.errors


def line_of(text: str, needle: str) -> int:
    return next(i for i, line in enumerate(text.splitlines(), 1) if needle in line)


def only(text: str, field: str) -> LoadError:
    errs = [e for e in errors_of(text) if e.field == field]
    assert errs, f"no error for {field}: {errors_of(text)}"
    return errs[0]


class TestGood:
    def test_good_file_compiles(self) -> None:
        m = compile_text(methodology(GOOD_BODY))
        assert (m.id, m.version, m.scenario) == ("test-trip", "1", "metro")

    def test_step_declared_in_another_mass_unit_is_converted(self) -> None:
        text = methodology(GOOD_BODY.replace('unit = "g CO2e"\n', 'unit = "kg CO2e"\n'))
        m = compile_text(text)
        assert m.calculate({"distance_km": "10"}, at=m.effective_from).reduction_mg == 467_000


class TestDescriptions:
    """A description is one text for every language, or a table of Chinese and English."""

    def _with(self, description: str) -> str:
        body = GOOD_BODY.replace('le = "200"\n', f'le = "200"\ndescription = {description}\n')
        body = body.replace('unit = "g CO2e"\n', f'unit = "g CO2e"\ndescription = {description}\n')
        return methodology(body)

    def test_a_table_gives_both_languages(self) -> None:
        m = compile_text(self._with('{ zh = "出行距离", en = "Trip distance" }'))
        assert (m.inputs["distance_km"].description, m.inputs["distance_km"].description_zh) == (
            "Trip distance",
            "出行距离",
        )
        trace = m.calculate({"distance_km": "10"}, at=m.effective_from, trace=True).trace or []
        step = next(t for t in trace if t.step == "reduction")
        assert (step.note, step.note_zh) == ("Trip distance", "出行距离")

    def test_a_string_serves_every_language(self) -> None:
        m = compile_text(self._with('"距离"'))
        assert (m.inputs["distance_km"].description, m.inputs["distance_km"].description_zh) == (
            "距离",
            None,
        )
        trace = m.calculate({"distance_km": "10"}, at=m.effective_from, trace=True).trace or []
        assert next(t for t in trace if t.step == "reduction").note_zh == "距离"

    def test_only_chinese_is_the_text_for_both(self) -> None:
        m = compile_text(self._with('{ zh = "出行距离" }'))
        assert m.steps[0].description == m.steps[0].description_zh == "出行距离"

    def test_the_engines_own_steps_are_explained_in_both_languages(self) -> None:
        m = compile_text(methodology(GOOD_BODY.replace('unit = "g CO2e"\n', 'unit = "kg CO2e"\n')))
        trace = m.calculate({"distance_km": "10"}, at=m.effective_from, trace=True).trace or []
        notes = {t.step: (t.note, t.note_zh) for t in trace}
        assert notes["reduction"] == (
            "computed in g CO2e, converted x 0.001 to kg CO2e",
            "按 g CO2e 计算，乘以 0.001 换算为 kg CO2e",
        )
        assert notes["to_mg"] == (
            "converted from kg CO2e to mg CO2e",
            "由 kg CO2e 换算为 mg CO2e",
        )
        assert notes["reduction_mg"] == (
            "rounded once to whole mg, half-even",
            "只取整一次，舍入到整毫克（四舍六入五成双）",
        )

    def test_every_shipped_text_has_chinese(self) -> None:
        for m in load_catalogue(tables()):
            described: list[tuple[str | None, str | None]] = [
                (d.description, d.description_zh)
                for group in (m.inputs.values(), m.parameters.values(), m.factors.values(), m.steps)
                for d in group
            ]
            described.append((m.notes, m.notes_zh))
            described += [(p.source.note, p.source.note_zh) for p in m.parameters.values()]
            missing = [en for en, zh in described if en and not zh]
            assert missing == [], m.key
        for table in tables().values():
            notes = [(row.source.note, row.source.note_zh) for row in table.rows]
            assert [en for en, zh in notes if en and not zh] == [], table.id

    @pytest.mark.parametrize(
        ("description", "message"),
        [
            ("{}", "give the text in zh, en or both"),
            ('{ zh = "a", fr = "b" }', "fr"),
            ('{ zh = "" }', "must be a non-empty string"),
            ("3", "must be a non-empty string"),
        ],
    )
    def test_a_bad_description_is_reported(self, description: str, message: str) -> None:
        errors = errors_of(self._with(description))
        assert any(e.field.startswith("inputs.distance_km.description") for e in errors), errors
        assert any(message in e.message for e in errors), errors


def test_the_documented_example_loads_and_computes() -> None:
    """docs/methodologies.md's complete example is a valid file (the doc stays true)."""
    doc = (Path(__file__).parents[2] / "docs" / "methodologies.md").read_text()
    text = doc.split("```toml\n", 1)[1].split("```", 1)[0]
    m = compile_text(text)
    assert (m.id, m.kind, m.per_day_cap_mg, m.notes_zh) == (
        "shanghai-distributed-pv",
        "project",
        5_000_000,
        "……",
    )
    calc = m.calculate({"kwh": "1", "capacity_kw": "800"}, at=m.effective_from)
    assert calc.eligible and calc.reduction_mg == 420_000  # 1 kWh x 0.42 kg CO2e/kWh


class TestErrors:
    def test_toml_syntax_error_has_a_line(self) -> None:
        text = methodology(GOOD_BODY + "\nbroken = = 1\n")
        err = errors_of(text)[0]
        assert err.line == line_of(text, "broken")
        assert "not valid TOML" in err.message

    def test_missing_required_field(self) -> None:
        text = methodology(GOOD_BODY).replace('scenario = "metro"\n', "")
        assert only(text, "scenario").message == "is required"

    def test_unknown_field_is_a_typo_caught(self) -> None:
        text = methodology(GOOD_BODY.replace('gt = "0"', 'gt = "0"\nmaximum = "3"'))
        err = only(text, "inputs.distance_km.maximum")
        assert err.line == line_of(text, "maximum")

    def test_unknown_scenario_and_bad_region(self) -> None:
        text = (
            methodology(GOOD_BODY)
            .replace('"metro"', '"teleport"')
            .replace('"shenzhen"', '"ShenZhen"')
        )
        assert "unknown scenario" in only(text, "scenario").message
        assert "pinyin" in only(text, "region").message

    def test_unknown_unit(self) -> None:
        text = methodology(GOOD_BODY.replace('"g CO2e / km"', '"g CO2e / parsec_furlong"'))
        err = only(text, "parameters.factor.unit")
        assert "unknown unit" in err.message
        assert err.line == line_of(text, "parsec_furlong")

    def test_step_units_disagree(self) -> None:
        text = methodology(
            GOOD_BODY.replace('expr = "factor * distance_km"', 'expr = "factor + distance_km"')
        )
        err = only(text, "steps[0].expr")
        assert "units do not agree" in err.message
        assert err.line == line_of(text, "factor + distance_km")

    def test_result_unit_differs_from_declared(self) -> None:
        text = methodology(GOOD_BODY.replace('unit = "g CO2e"\n', 'unit = "km"\n'))
        assert "cannot be expressed" in only(text, "steps[0].expr").message

    def test_unknown_name(self) -> None:
        text = methodology(GOOD_BODY.replace("factor * distance_km", "fctor * distance_km"))
        assert "unknown name 'fctor'" in only(text, "steps[0].expr").message

    def test_formula_not_total(self) -> None:
        body = GOOD_BODY.replace('gt = "0"', 'ge = "0"').replace(
            "factor * distance_km", "factor * distance_km * distance_km / distance_km"
        )
        assert "may be zero" in only(methodology(body), "steps[0].expr").message

    def test_input_outside_the_vocabulary_or_in_the_wrong_unit(self) -> None:
        body = (
            GOOD_BODY.replace('unit = "km"\n', 'unit = "m"\n') + '\n[inputs.speed]\nunit = "km/h"\n'
        )
        errs = {e.field: e.message for e in errors_of(methodology(body))}
        assert "always in km" in errs["inputs.distance_km.unit"]
        assert "unknown input 'speed'" in errs["inputs.speed"]

    def test_empty_input_range(self) -> None:
        body = GOOD_BODY.replace('le = "200"', 'le = "0"')
        assert only(methodology(body), "inputs.distance_km.le").message == "the range is empty"

    def test_unknown_factor_table(self) -> None:
        body = GOOD_BODY + '\n[factors.grid]\ntable = "no_such_table"\n'
        assert "unknown factor table" in only(methodology(body), "factors.grid.table").message

    def test_factor_table_without_a_row_at_effective_from(self) -> None:
        body = GOOD_BODY + '\n[factors.grid]\ntable = "cn_power_co2_average"\nregion = "national"\n'
        assert "no row in force" in only(methodology(body), "factors.grid.table").message

    def test_duplicate_names(self) -> None:
        body = GOOD_BODY.replace('name = "reduction"', 'name = "factor"')
        assert "already used" in only(methodology(body), "steps[0].name").message

    def test_rule_must_be_a_condition(self) -> None:
        body = GOOD_BODY + '\n[[eligibility]]\ncode = "short"\nrule = "distance_km * 2"\n'
        assert "must be a condition" in only(methodology(body), "eligibility[0].rule").message

    def test_result_must_be_a_mass_of_co2e(self) -> None:
        body = GOOD_BODY.replace(
            'expr = "factor * distance_km"\nunit = "g CO2e"', 'expr = "distance_km"\nunit = "km"'
        )
        assert "mass of CO2e" in only(methodology(body), "steps[0].unit").message

    def test_bad_caps_and_rounding(self) -> None:
        body = (
            GOOD_BODY
            + '\n[caps]\nper_record = "5 km"\nper_day = "lots"\n[result]\nrounding = "banker"\n'
        )
        errs = {e.field: e.message for e in errors_of(methodology(body))}
        assert "mass of CO2e" in errs["caps.per_record"]
        assert "quantity with a unit" in errs["caps.per_day"]
        assert "must be one of" in errs["result.rounding"]

    def test_bad_status_and_source_address(self) -> None:
        body = GOOD_BODY.replace('status = "verified"', 'status = "official"').replace(
            "https://example.org", "example.org"
        )
        errs = {e.field: e.message for e in errors_of(methodology(body))}
        assert "must be one of" in errs["parameters.factor.status"]
        assert "URL" in errs["parameters.factor.source.address"]

    def test_every_error_is_reported_at_once(self) -> None:
        body = GOOD_BODY.replace('"g CO2e / km"', '"bogus"').replace("factor * distance_km", "nope")
        text = methodology(body).replace('kind = "scenario"', 'kind = "other"')
        assert len(errors_of(text)) >= 3

    def test_error_renders_file_line_field(self) -> None:
        text = methodology(GOOD_BODY.replace("factor * distance_km", "nope"))
        with pytest.raises(MethodologyInvalid) as info:
            compile_text(text, file="upload.toml")
        line = line_of(text, 'expr = "nope"')
        assert (
            str(info.value.errors[0])
            == f"upload.toml:{line}: steps[0].expr: unknown name 'nope' (column 1)"
        )
        assert info.value.extra["errors"][0]["line"] == line


class TestFactorTables:
    def test_overlapping_rows(self) -> None:
        text = """
id = "t"
unit = "kg CO2e / kWh"
[name]
zh = "t"
en = "t"
[[rows]]
region = "national"
value = "0.5"
valid_from = 2024-01-01
status = "verified"
source = { document = "d" }
[[rows]]
region = "national"
value = "0.4"
valid_from = 2024-06-01
status = "verified"
source = { document = "d" }
"""
        with pytest.raises(MethodologyInvalid) as info:
            load_factor_table(text, file="t.toml")
        err = info.value.errors[0]
        assert err.field == "rows[1].valid_from" and "overlaps" in err.message
        assert err.line == 16

    def test_duplicate_version_in_the_catalogue(self, tmp_path: Path) -> None:
        text = methodology(GOOD_BODY)
        (tmp_path / "a.toml").write_text(text, encoding="utf-8")
        (tmp_path / "b.toml").write_text(text, encoding="utf-8")
        with pytest.raises(MethodologyInvalid, match="also defined"):
            load_catalogue(tables(), tmp_path)


class TestNeverCrashes:
    """Whatever an operator uploads, the loader answers with MethodologyInvalid, never another error."""

    VALUES = ("1", '"x"', "[1]", "{a = 1}", "true", "2024-01-01", "-5", '"1e999999"', '"NaN"', "[]")
    LINES = ("[[steps]]", "[inputs.kwh]", 'expr = "1/0"', "[[eligibility]]", "[caps]", "[result]")

    @settings(max_examples=300, deadline=None)
    @given(data=st.data())
    def test_mutated_catalogue_files(self, data: st.DataObject) -> None:
        path = data.draw(st.sampled_from(sorted(CATALOGUE_DIR.glob("*.toml"))))
        lines = path.read_text(encoding="utf-8").splitlines()
        k = data.draw(st.integers(0, len(lines) - 1))
        action = data.draw(st.sampled_from(["delete", "replace", "insert"]))
        if action == "delete":
            del lines[k]
        elif action == "replace" and "=" in lines[k]:
            lines[k] = lines[k].split("=")[0] + "= " + data.draw(st.sampled_from(self.VALUES))
        else:
            lines.insert(k, data.draw(st.sampled_from(self.LINES)))
        try:
            compile_text("\n".join(lines))
        except MethodologyInvalid as exc:
            assert exc.errors

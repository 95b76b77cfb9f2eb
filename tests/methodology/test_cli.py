"""The `tanhui methodology` commands through Typer's runner."""

from __future__ import annotations

import json
from pathlib import Path

from typer.testing import CliRunner

from tanhui.cli import app
from tanhui.methodology.loader import CATALOGUE_DIR

runner = CliRunner()
METRO_V1 = CATALOGUE_DIR / "shenzhen-metro@1.toml"


def run(*args: str) -> tuple[int, str]:
    result = runner.invoke(app, ["methodology", *args])
    return result.exit_code, result.stdout


class TestOffline:
    def test_list_json(self) -> None:
        code, out = run("list", "--json")
        assert code == 0
        items = json.loads(out)
        assert all(
            {"id", "version", "scenario", "region", "kind", "inputs", "effective_from"} <= set(i)
            for i in items
        )
        assert {i["scenario"] for i in items} >= {"bus", "metro", "digital_refuelling"}

    def test_calc_json_shape(self) -> None:
        code, out = run(
            "calc", "shenzhen-metro", "--at", "2025-06-01", "--input", "distance_km=10", "--json"
        )
        assert code == 0, out
        body = json.loads(out)
        assert set(body) == {
            "methodology",
            "version",
            "reduction_mg",
            "eligible",
            "reasons",
            "trace",
        }
        assert body["reduction_mg"] == 467000

    def test_calc_picks_the_version_by_date(self) -> None:
        _, old = run(
            "calc", "wuhan-bike-share", "--at", "2024-01-01", "-i", "distance_km=1", "--json"
        )
        _, new = run(
            "calc", "wuhan-bike-share", "--at", "2025-01-01", "-i", "distance_km=1", "--json"
        )
        assert json.loads(old)["reduction_mg"] == 40000
        assert json.loads(new)["reduction_mg"] == 93300

    def test_calc_bad_input_exits_1(self) -> None:
        result = runner.invoke(
            app, ["methodology", "calc", "shenzhen-metro", "-i", "distance_km=-3"]
        )
        assert result.exit_code == 1
        assert "invalid_quantity" in result.stderr

    def test_show_and_diff(self) -> None:
        code, out = run("show", "wuhan-bike-share@1")
        assert code == 0 and json.loads(out)["parameters"]["bike_reduction_factor"]["value"] == "40"
        code, out = run("diff", "wuhan-bike-share@1", "wuhan-bike-share@2")
        changes = {c["field"]: c for c in json.loads(out)["changes"]}
        assert changes["parameters.bike_reduction_factor.value"]["to"] == "93.3"

    def test_check(self, tmp_path: Path) -> None:
        code, out = run("check", str(METRO_V1))
        assert code == 0 and "ok: shenzhen-metro@1" in out
        bad = tmp_path / "bad.toml"
        bad.write_text(
            METRO_V1.read_text(encoding="utf-8").replace('unit = "g CO2e"', 'unit = "km"')
        )
        result = runner.invoke(app, ["methodology", "check", str(bad), "--json"])
        assert result.exit_code == 1
        errors = json.loads(result.stdout)["errors"]
        assert errors[0]["file"] == str(bad) and errors[0]["field"] == "steps[0].expr"


class TestWithDatabase:
    def test_upload_assign_and_calc(self, database_url: str, tmp_path: Path) -> None:
        v2 = tmp_path / "metro2.toml"
        v2.write_text(
            METRO_V1.read_text(encoding="utf-8")
            .replace('version = "1"', 'version = "2"')
            .replace("effective_from = 2021-12-16", "effective_from = 2026-01-01")
            .replace('value = "46.7"', 'value = "50"'),
            encoding="utf-8",
        )
        code, out = run("upload", str(v2))
        assert code == 0, out
        again = runner.invoke(app, ["methodology", "upload", str(v2)])
        assert again.exit_code == 1
        _, out = run(
            "calc", "shenzhen-metro", "--at", "2026-02-01", "-i", "distance_km=10", "--json"
        )
        assert json.loads(out)["version"] == "2"
        code, _ = run("assign", "metro", "wuhan-metro", "--from", "2025-01-01")
        assert code == 0
        _, out = run("assignments", "--json")
        assert json.loads(out) == [
            {"scenario": "metro", "methodology_id": "wuhan-metro", "effective_from": "2025-01-01"}
        ]

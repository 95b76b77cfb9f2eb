"""Catalogue, versions, upload and assignment through the service, on SQLite and PostgreSQL."""

from __future__ import annotations

from datetime import UTC, date, datetime

import pytest
from sqlalchemy.orm import Session

from tanhui.kit.errors import InvalidInput
from tanhui.methodology import service as methodology_service
from tanhui.methodology.errors import (
    InvalidMethodologyInput,
    MethodologyInvalid,
    MethodologyNotFound,
    MethodologyVersionExists,
)
from tanhui.methodology.loader import CATALOGUE_DIR

METRO_V1 = (CATALOGUE_DIR / "shenzhen-metro@1.toml").read_text(encoding="utf-8")


def metro_v2(factor: str = "50.0", effective: str = "2026-01-01", version: str = "2") -> str:
    return (
        METRO_V1.replace('version = "1"', f'version = "{version}"')
        .replace("effective_from = 2021-12-16", f"effective_from = {effective}")
        .replace('value = "46.7"', f'value = "{factor}"')
    )


class TestCatalogue:
    def test_lists_every_shipped_version(self, session: Session) -> None:
        cat = methodology_service.catalogue(session)
        keys = {m.key for m in cat.all()}
        assert ("shenzhen-metro", "1") in keys
        assert ("wuhan-bike-share", "2") in keys

    def test_get_by_date_picks_the_version_in_force(self, session: Session) -> None:
        at_2024 = methodology_service.get(session, "wuhan-bike-share", at=date(2024, 1, 1))
        at_2025 = methodology_service.get(session, "wuhan-bike-share", at=date(2025, 1, 1))
        assert (at_2024.version, at_2025.version) == ("1", "2")

    def test_unknown_methodology_and_version(self, session: Session) -> None:
        with pytest.raises(MethodologyNotFound):
            methodology_service.get(session, "atlantis-metro")
        with pytest.raises(MethodologyNotFound):
            methodology_service.get(session, "shenzhen-metro", "9")
        with pytest.raises(MethodologyNotFound):
            methodology_service.get(session, "shenzhen-metro", at=date(2020, 1, 1))


class TestUpload:
    def test_new_version_applies_from_its_date_and_old_records_keep_theirs(
        self, session: Session
    ) -> None:
        row = methodology_service.upload(session, None, toml_text=metro_v2())
        assert (row.methodology_id, row.version, row.effective_from) == (
            "shenzhen-metro",
            "2",
            date(2026, 1, 1),
        )
        old = methodology_service.calculate(
            session, "shenzhen-metro", inputs={"distance_km": "10"}, at=date(2025, 12, 31)
        )
        new = methodology_service.calculate(
            session,
            "shenzhen-metro",
            inputs={"distance_km": "10"},
            at=datetime(2026, 1, 2, tzinfo=UTC),
        )
        assert (old.version, old.reduction_mg) == ("1", 467_000)
        assert (new.version, new.reduction_mg) == ("2", 500_000)
        # a record computed with v1 is recalculated with v1, whatever the date
        again = methodology_service.calculate(
            session,
            "shenzhen-metro",
            inputs={"distance_km": "10"},
            at=date(2026, 6, 1),
            version="1",
        )
        assert again.reduction_mg == 467_000
        assert [m.version for m in methodology_service.versions(session, "shenzhen-metro")] == [
            "1",
            "2",
        ]

    def test_same_id_and_version_is_a_conflict(self, session: Session) -> None:
        with pytest.raises(MethodologyVersionExists):
            methodology_service.upload(session, None, toml_text=METRO_V1)
        methodology_service.upload(session, None, toml_text=metro_v2())
        with pytest.raises(MethodologyVersionExists) as info:
            methodology_service.upload(session, None, toml_text=metro_v2(factor="51"))
        assert info.value.status_code == 409

    def test_invalid_file_lists_errors_by_line_and_field(self, session: Session) -> None:
        bad = metro_v2().replace('unit = "g CO2e / km"', 'unit = "g CO2e / lightyear_x"')
        with pytest.raises(MethodologyInvalid) as info:
            methodology_service.upload(session, None, toml_text=bad)
        err = info.value.errors[0]
        assert err.field == "parameters.metro_reduction_factor.unit"
        assert err.line == next(i for i, x in enumerate(bad.splitlines(), 1) if "lightyear_x" in x)
        assert info.value.status_code == 422

    def test_a_new_version_cannot_change_the_scenario(self, session: Session) -> None:
        with pytest.raises(MethodologyInvalid, match="cannot change"):
            methodology_service.upload(
                session,
                None,
                toml_text=metro_v2().replace('scenario = "metro"', 'scenario = "bus"'),
            )


class TestResolve:
    def test_default_is_the_platform_region_variant(self, session: Session) -> None:
        at = datetime(2025, 3, 1, tzinfo=UTC)
        assert methodology_service.resolve(session, "metro", at=at).id == "shenzhen-metro"
        # no Shenzhen or national bike-share methodology ships: the Wuhan one is used
        assert methodology_service.resolve(session, "bike_share", at=at).key == (
            "wuhan-bike-share",
            "2",
        )
        # national when the platform's region has none
        assert methodology_service.resolve(session, "ev_charging", at=at).id == "cn-ev-charging"

    def test_assignment_applies_from_its_date(self, session: Session) -> None:
        methodology_service.assign(
            session,
            None,
            scenario="metro",
            methodology_id="wuhan-metro",
            effective_from=date(2025, 1, 1),
        )
        before = methodology_service.resolve(session, "metro", at=date(2024, 12, 31))
        after = methodology_service.resolve(session, "metro", at=date(2025, 1, 1))
        assert (before.id, after.id) == ("shenzhen-metro", "wuhan-metro")
        assert [a.methodology_id for a in methodology_service.assignments(session, "metro")] == [
            "wuhan-metro"
        ]

    def test_one_resolver_answers_a_batch_as_resolve_does(self, session: Session) -> None:
        """A batch resolves through one reader of the assignments: the latest effective date not
        after a record's day wins, then the latest assigned for that date."""
        for methodology_id, start in (
            ("wuhan-metro", date(2025, 1, 1)),
            ("shenzhen-metro", date(2025, 6, 1)),
            ("wuhan-metro", date(2025, 6, 1)),  # re-assigned the same day: this one holds
        ):
            methodology_service.assign(
                session, None, scenario="metro", methodology_id=methodology_id, effective_from=start
            )
        resolve = methodology_service.resolver(session)
        days = [date(2024, 12, 31), date(2025, 1, 1), date(2025, 5, 31), date(2025, 6, 1)]
        got = [resolve("metro", day).id for day in days]
        assert got == ["shenzhen-metro", "wuhan-metro", "wuhan-metro", "wuhan-metro"]
        assert got == [methodology_service.resolve(session, "metro", at=day).id for day in days]
        assert resolve("bike_share", date(2025, 3, 1)).id == "wuhan-bike-share"  # untouched
        with pytest.raises(InvalidInput):
            resolve("teleport", date(2025, 1, 1))

    def test_assignment_must_match_the_scenario(self, session: Session) -> None:
        with pytest.raises(InvalidInput):
            methodology_service.assign(
                session,
                None,
                scenario="bus",
                methodology_id="wuhan-metro",
                effective_from=date(2025, 1, 1),
            )
        with pytest.raises(InvalidInput):
            methodology_service.resolve(session, "teleport", at=date(2025, 1, 1))

    def test_invalid_input_is_a_422_with_the_field(self, session: Session) -> None:
        with pytest.raises(InvalidMethodologyInput) as info:
            methodology_service.calculate(
                session, "shenzhen-metro", inputs={"distance_km": "-1"}, at=date(2025, 1, 1)
            )
        assert (info.value.field, info.value.code, info.value.status_code) == (
            "distance_km",
            "invalid_quantity",
            422,
        )


class TestDiff:
    def test_diff_names_the_changed_factor(self, session: Session) -> None:
        methodology_service.upload(session, None, toml_text=metro_v2())
        a = methodology_service.get(session, "shenzhen-metro", "1")
        b = methodology_service.get(session, "shenzhen-metro", "2")
        changes = {c["field"]: (c["from"], c["to"]) for c in methodology_service.diff(a, b)}
        assert changes["parameters.metro_reduction_factor.value"] == ("46.7", "50.0")
        assert changes["version"] == ("1", "2")
        assert changes["effective_from"] == ("2021-12-16", "2026-01-01")

"""The platform time zone is stored on a database's first start; a start with another is refused,
by `tanhui serve` and by the app factory uvicorn calls."""

from __future__ import annotations

import pytest
from typer.testing import CliRunner

from tanhui.app import create_app
from tanhui.cli import app as cli
from tanhui.kit import platform_settings
from tanhui.kit.db import create_db_engine, make_session_factory, session_scope
from tanhui.kit.settings import get_settings
from tests.fixtures.locks import commit_once_the_other_waits


def test_the_first_start_stores_the_zone_and_a_later_one_must_match(database_url) -> None:  # type: ignore[no-untyped-def]
    with session_scope() as session:
        platform_settings.check_timezone(session, "Asia/Shanghai")
    with session_scope() as session:
        platform_settings.check_timezone(session, "Asia/Shanghai")  # the same: nothing to say
        with pytest.raises(platform_settings.TimezoneChanged) as refused:
            platform_settings.check_timezone(session, "Asia/Urumqi")
    assert refused.value.code == "timezone_changed"
    assert "TANHUI_TIMEZONE=Asia/Shanghai" in refused.value.message


def test_serve_and_the_app_factory_refuse_another_zone(database_url, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    create_app()  # the production path stores the configured zone, Asia/Shanghai
    monkeypatch.setenv("TANHUI_TIMEZONE", "Europe/Berlin")
    get_settings.cache_clear()
    served = CliRunner().invoke(cli, ["serve", "--port", "1"])
    assert served.exit_code == 1
    assert "TANHUI_TIMEZONE=Asia/Shanghai" in served.output
    with pytest.raises(platform_settings.TimezoneChanged):
        create_app()


@pytest.mark.postgresql_only
def test_two_processes_starting_at_once_on_a_new_database_both_start(database_url) -> None:  # type: ignore[no-untyped-def]
    """The first start's transaction is still open when the second reads no zone and inserts: the
    second waits on the key, then finds the same zone stored, and starts."""
    factory = make_session_factory(create_db_engine(database_url))
    try:
        first = factory()
        platform_settings.check_timezone(first, "Asia/Shanghai")
        outcome: list[str] = []

        def second() -> None:
            try:
                with session_scope(factory) as session:
                    platform_settings.check_timezone(session, "Asia/Shanghai")
                outcome.append("started")
            except Exception as exc:  # noqa: BLE001 - the test reports what the second start met
                outcome.append(type(exc).__name__)

        commit_once_the_other_waits(first, factory, second)
        assert outcome == ["started"]
    finally:
        factory.kw["bind"].dispose()


def test_the_app_factory_refuses_a_database_without_the_schema(tmp_path, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    """uvicorn started by hand on a new or older database: a message saying what to run, not a
    missing table on the first request."""
    from tanhui.kit import db as kit_db
    from tanhui.kit import migrate

    monkeypatch.setenv("TANHUI_DATABASE_URL", f"sqlite:///{tmp_path / 'new.db'}")
    monkeypatch.setenv("TANHUI_DATA_DIR", str(tmp_path / "var"))
    get_settings.cache_clear()
    kit_db.reset_default_session_factory()
    try:
        with pytest.raises(migrate.SchemaNotCurrent, match="tanhui db upgrade"):
            create_app()
    finally:
        kit_db.reset_default_session_factory()
        get_settings.cache_clear()

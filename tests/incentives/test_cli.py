from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

from typer.testing import CliRunner

from tanhui.cli import app
from tanhui.identity.principal import Principal
from tanhui.incentives import service as incentives_service
from tanhui.kit.db import session_scope
from tanhui.ledger import service as ledger_service
from tanhui.mall import service as mall_service
from tests.fixtures.incentives import award


def test_expire_is_idempotent(database_url: str) -> None:
    with session_scope() as session:
        incentives_service.award_points(
            session,
            [
                award(7_000_001, 50_000, at=datetime(2025, 4, 1, tzinfo=UTC)),
                award(7_000_001, 70_000, at=datetime(2026, 4, 1, tzinfo=UTC)),
            ],
        )
    runner = CliRunner()
    first = runner.invoke(app, ["points", "expire", "--as-of", "2027-01-01"])
    assert first.exit_code == 0, first.output
    assert "expired 5 points from 1 lots" in first.output
    again = runner.invoke(app, ["points", "expire", "--as-of", "2027-01-01"])
    assert "expired 0 points" in again.output
    with session_scope() as session:
        assert incentives_service.points_balance(session, 7_000_001) == 7
        assert ledger_service.check(session) == []
    bad = runner.invoke(app, ["points", "expire", "--as-of", "someday"])
    assert bad.exit_code != 0


def test_import_codes(database_url: str, tmp_path: Path) -> None:
    merchant = Principal(kind="staff", id=1, roles=frozenset({"merchant"}), organisation_id=1)
    with session_scope() as session:
        reward = mall_service.create_reward(
            session, merchant, category="props", kind="coupon", title_zh="道具", price_points=5
        )
        reward_id = reward.id
    file = tmp_path / "codes.csv"
    file.write_text("code\nX1\nX2\nX3\n")
    result = CliRunner().invoke(app, ["mall", "import-codes", str(reward_id), str(file)])
    assert result.exit_code == 0, result.output
    assert "added 3 codes" in result.output
    missing = CliRunner().invoke(app, ["mall", "import-codes", "999999", str(file)])
    assert missing.exit_code == 1

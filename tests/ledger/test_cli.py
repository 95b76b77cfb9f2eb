from __future__ import annotations

import json

from sqlalchemy import update
from typer.testing import CliRunner

from tanhui.cli import app
from tanhui.kit.db import session_scope
from tanhui.ledger.models import Account
from tests.fixtures.ledger import citizen_account

runner = CliRunner()


def test_check_is_clean_then_names_a_tampered_account(database_url: str) -> None:
    with session_scope() as session:
        account = citizen_account(session, funded=500)
    result = runner.invoke(app, ["ledger", "check", "--json"])
    assert result.exit_code == 0, result.output
    assert json.loads(result.output)["ok"] is True

    with session_scope() as session:
        session.execute(update(Account).where(Account.id == account).values(balance=499))
    result = runner.invoke(app, ["ledger", "check"])
    assert result.exit_code == 1
    assert f"account {account}" in result.output


def test_demo_then_check_is_clean(database_url: str) -> None:
    result = runner.invoke(app, ["demo"])
    assert result.exit_code == 0, result.output
    assert runner.invoke(app, ["ledger", "check"]).exit_code == 0
    again = runner.invoke(app, ["demo"])
    assert again.exit_code == 1
    assert "error:" in again.output

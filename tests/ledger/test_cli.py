from __future__ import annotations

import json

from sqlalchemy import func, select, update
from typer.testing import CliRunner

from tanhui.activity.models import ActivityRecord
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
    with session_scope() as session:
        by_outcome = dict(
            session.execute(
                select(ActivityRecord.status, func.count()).group_by(ActivityRecord.status)
            ).all()
        )
        codes = set(session.scalars(select(ActivityRecord.code).distinct()))
        scenarios = set(session.scalars(select(ActivityRecord.scenario).distinct()))
    # A few thousand records across the scenarios, with the noise partners really send.
    assert by_outcome["credited"] > 2000 and by_outcome["review"] > 0
    assert {"unbound_user", "implausible_speed"} <= codes
    assert len(scenarios) >= 4
    again = runner.invoke(app, ["demo"])
    assert again.exit_code == 1
    assert "error:" in again.output

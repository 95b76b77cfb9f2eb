"""`tanhui trust audit` names every ledger transfer and registry event that never reached the log."""

from __future__ import annotations

from sqlalchemy import insert
from typer.testing import CliRunner

from tanhui import wiring
from tanhui.cli import app
from tanhui.kit.db import session_scope, utcnow
from tanhui.ledger import service as ledger_service
from tanhui.ledger.models import Posting, Transfer
from tests.fixtures.ledger import citizen_account

runner = CliRunner()


def test_audit_names_a_transfer_written_behind_the_log(database_url: str) -> None:
    wiring.install()
    with session_scope() as session:
        account = citizen_account(session, funded=10)
        issuance = ledger_service.platform_account(session, ledger_service.POINT, "issuance").id
    assert runner.invoke(app, ["trust", "publish"]).exit_code == 0
    result = runner.invoke(app, ["trust", "audit"])
    assert result.exit_code == 0, result.output

    # A transfer inserted straight into the journal never passes the ledger's journal listener.
    with session_scope() as session:
        sneaky = session.execute(
            insert(Transfer).returning(Transfer.id),
            {
                "idempotency_key": "behind-the-log",
                "request_hash": "0" * 64,
                "kind": "x",
                "metadata": {},
                "created_at": utcnow(),
            },
        ).scalar_one()
        session.execute(
            insert(Posting),
            [
                {
                    "transfer_id": sneaky,
                    "account_id": issuance,
                    "asset_code": "POINT",
                    "amount": -1,
                },
                {"transfer_id": sneaky, "account_id": account, "asset_code": "POINT", "amount": 1},
            ],
        )
    result = runner.invoke(app, ["trust", "audit"])
    assert result.exit_code == 1
    assert f"ledger.transfer {sneaky}): record has no leaf" in result.output

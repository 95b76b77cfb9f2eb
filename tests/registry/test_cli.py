"""The registry from the command line, on a database that really commits."""

from __future__ import annotations

from typer.testing import CliRunner

from tanhui.cli import app
from tanhui.identity import service as identity_service
from tanhui.identity.principal import Principal
from tanhui.kit.db import session_scope
from tanhui.registry import service as registry_service

OPERATOR = Principal(kind="staff", id=1, roles=frozenset({"operator_admin"}))


def test_batches_and_ledger_check(database_url: str) -> None:
    with session_scope() as session:
        org = identity_service.create_organisation(session, None, name="业主", kind="project_owner")
        account = registry_service.account_for_organisation(session, org.id)
        registry_service.issue(
            session,
            OPERATOR,
            account_id=account.id,
            quantity=7,
            vintage=2026,
            project_number=42,
            source_kind="test",
            source_ref="cli",
            idempotency_key="cli",
        )
    runner = CliRunner()
    result = runner.invoke(app, ["registry", "batches"], env={"COLUMNS": "200"})
    assert result.exit_code == 0, result.output
    assert "TH-2026-000042-001-000001" in result.output
    result = runner.invoke(app, ["ledger", "check"])
    assert result.exit_code == 0, result.output
    assert runner.invoke(app, ["projects", "list"]).exit_code == 0

"""`tanhui staff ...`, `tanhui partner ...`, `tanhui binding ...` against a real, committed database."""

from __future__ import annotations

import json

from typer.testing import CliRunner

from tanhui.cli import app
from tanhui.identity import service as identity_service
from tanhui.kit.db import session_scope

runner = CliRunner()


class TestStaffCreate:
    def test_password_stdin(self, database_url):
        r = runner.invoke(
            app,
            [
                "staff",
                "create",
                "alice",
                "--role",
                "operator_admin",
                "--role",
                "reviewer",
                "--password-stdin",
                "--json",
            ],
            input="s3cret-pass\n",
        )
        assert r.exit_code == 0, r.output
        out = json.loads(r.stdout)
        assert out["roles"] == ["operator_admin", "reviewer"]
        with session_scope() as session:
            principal, _ = identity_service.login_staff(
                session, username="alice", password="s3cret-pass"
            )
        assert principal.roles == {"operator_admin", "reviewer"}

    def test_unknown_role_is_one_line(self, database_url):
        r = runner.invoke(app, ["staff", "create", "bob", "--role", "god", "--password", "x" * 10])
        assert r.exit_code == 1
        assert "unknown_role" in r.output

    def test_needs_one_password_source(self, database_url):
        r = runner.invoke(app, ["staff", "create", "carol", "--role", "reviewer"])
        assert r.exit_code == 1
        assert "password" in r.output

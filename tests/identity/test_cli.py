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


def _staff(*args: str, stdin: str | None = None):  # type: ignore[no-untyped-def]
    return runner.invoke(app, ["staff", *args], input=stdin)


def _can_log_in(username: str, password: str) -> bool:
    with session_scope() as session:
        try:
            identity_service.login_staff(session, username=username, password=password)
        except identity_service.InvalidCredentials:
            return False
    return True


class TestStaffManage:
    def _two(self) -> None:
        for name, role in (("alice", "operator_admin"), ("bob", "reviewer")):
            r = _staff("create", name, "--role", role, "--password", "first-pass")
            assert r.exit_code == 0, r.output

    def test_list(self, database_url):
        self._two()
        with session_scope() as session:
            identity_service.login_staff(session, username="bob", password="first-pass")
        r = _staff("list", "--json")
        assert r.exit_code == 0, r.output
        rows = {row["username"]: row for row in json.loads(r.stdout)}
        assert rows["bob"]["roles"] == ["reviewer"] and rows["bob"]["active"] is True
        assert rows["bob"]["last_login_at"] and rows["alice"]["last_login_at"] is None
        assert "password_hash" not in rows["bob"]
        table = _staff("list")
        assert table.exit_code == 0 and "bob" in table.stdout and "reviewer" in table.stdout

    def test_deactivate_ends_sessions_and_activate_allows_login(self, database_url):
        self._two()
        with session_scope() as session:
            _, token = identity_service.login_staff(session, username="bob", password="first-pass")
        r = _staff("deactivate", "bob", "--json")
        assert r.exit_code == 0, r.output
        assert json.loads(r.stdout)["active"] is False
        with session_scope() as session:
            assert identity_service.principal_for_token(session, token) is None
        assert not _can_log_in("bob", "first-pass")
        r = _staff("activate", "bob")
        assert r.exit_code == 0 and "activated" in r.stdout
        assert _can_log_in("bob", "first-pass")
        with session_scope() as session:
            assert identity_service.principal_for_token(session, token) is None

    def test_roles(self, database_url):
        self._two()
        r = _staff("roles", "bob", "--role", "buyer", "--role", "reviewer", "--json")
        assert r.exit_code == 0, r.output
        assert json.loads(r.stdout)["roles"] == ["buyer", "reviewer"]
        r = _staff("roles", "bob", "--role", "god")
        assert r.exit_code == 1 and "unknown_role" in r.output

    def test_password(self, database_url):
        self._two()
        r = _staff("password", "bob", "--password-stdin", stdin="second-pass\n")
        assert r.exit_code == 0, r.output
        assert _can_log_in("bob", "second-pass") and not _can_log_in("bob", "first-pass")
        r = _staff("password", "bob", "--password", "short")
        assert r.exit_code == 1 and "weak_password" in r.output
        r = _staff("password", "bob")
        assert r.exit_code == 1 and "password" in r.output

    def test_errors_are_one_line(self, database_url):
        self._two()
        r = _staff("deactivate", "alice")
        assert r.exit_code == 1 and "last_operator_admin" in r.output
        r = _staff("roles", "alice", "--role", "reviewer")
        assert r.exit_code == 1 and "last_operator_admin" in r.output
        r = _staff("deactivate", "ghost")
        assert r.exit_code == 1 and "staff_not_found" in r.output
        assert "Traceback" not in r.output
        assert _can_log_in("alice", "first-pass")


def _partner(*args: str) -> dict:
    r = runner.invoke(
        app, ["partner", "create", "深圳地铁", "--scenarios", "metro,bus", "--json", *args]
    )
    assert r.exit_code == 0, r.output
    return json.loads(r.stdout)


class TestPartnerCommands:
    def test_create_rotate_revoke(self, database_url):
        created = _partner("--valid-until", "2099-12-31", "--redirect-uri", "https://m.example/cb")
        assert created["key_id"].startswith("pk_") and len(created["secret"]) >= 40
        with session_scope() as session:
            partner = identity_service.get_partner(session, created["partner_id"])
            assert str(partner.approved_until) == "2099-12-31"
            assert partner.scenarios == ["bus", "metro"]
        r = runner.invoke(app, ["partner", "rotate-key", str(created["partner_id"]), "--json"])
        assert r.exit_code == 0, r.output
        rotated = json.loads(r.stdout)
        assert rotated["key_id"] != created["key_id"] and rotated["old_keys_valid_until"]
        r = runner.invoke(app, ["partner", "revoke-key", created["key_id"]])
        assert r.exit_code == 0, r.output
        with session_scope() as session:
            keys = identity_service.partner_keys(session, created["partner_id"])
            assert [k.revoked_at is not None for k in keys] == [True, False]
        r = runner.invoke(app, ["partner", "revoke-key", "pk_nope"])
        assert r.exit_code == 1 and "unknown_key" in r.output
        r = runner.invoke(app, ["partner", "list", "--json"])
        assert json.loads(r.stdout)[0]["name"] == "深圳地铁"

    def test_bad_scenarios(self, database_url):
        r = runner.invoke(app, ["partner", "create", "X", "--scenarios", "Metro Rides"])
        assert r.exit_code == 1 and "invalid_scenarios" in r.output


class TestBindingImport:
    def _write(self, tmp_path, lines):
        path = tmp_path / "bindings.csv"
        path.write_text("\n".join(["partner_id,partner_user_id,phone,scenarios", *lines]) + "\n")
        return path

    def test_import_is_idempotent(self, database_url, tmp_path):
        pid = _partner()["partner_id"]
        path = self._write(
            tmp_path,
            [
                f"{pid},u-1,13800138000,metro;bus",
                f"{pid},u-2,+86 139 0000 0001,metro",
                f"{pid},u-3,13800138000,bus",
            ],
        )
        r = runner.invoke(app, ["binding", "import", str(path), "--json"])
        assert r.exit_code == 0, r.output
        assert json.loads(r.stdout) == {
            "rows": 3,
            "created": 3,
            "updated": 0,
            "unchanged": 0,
            "citizens_created": 2,
        }
        r = runner.invoke(app, ["binding", "import", str(path), "--json"])
        assert json.loads(r.stdout)["unchanged"] == 3
        with session_scope() as session:
            info = identity_service.bindings_for(session, pid, ["u-1", "u-2", "u-3"])
            assert info["u-1"].citizen_id == info["u-3"].citizen_id != info["u-2"].citizen_id
            assert info["u-1"].scenarios == {"metro", "bus"}

    def test_bad_lines_import_nothing(self, database_url, tmp_path):
        pid = _partner()["partner_id"]
        path = self._write(
            tmp_path,
            [
                f"{pid},u-1,13800138000,metro",
                f"{pid},u-2,12345,metro",
                "999,u-3,13800138001,metro",
                f"{pid},u-4,13800138002,ev",
                f"{pid},,13800138003,metro",
            ],
        )
        r = runner.invoke(app, ["binding", "import", str(path)])
        assert r.exit_code == 1
        assert "line 3: phone" in r.output
        assert "line 4: partner_id" in r.output
        assert "line 5: scenarios" in r.output
        assert "line 6: partner_user_id" in r.output
        assert "nothing was imported" in r.output
        with session_scope() as session:
            assert identity_service.bindings_for(session, pid, ["u-1"]) == {}

    def test_ids_the_api_could_never_use_are_bad_lines(self, database_url, tmp_path):
        # A partner_user_id must be one a partner can send records for (printable ASCII, no
        # spaces); a partner id is a plain decimal that fits the database.
        pid = _partner()["partner_id"]
        path = self._write(
            tmp_path,
            [
                f"{pid},u 1,13800138000,metro",
                f"{pid},用户1,13800138000,metro",
                f"{pid},u\x00x,13800138000,metro",
                "99999999999999999999999,u-4,13800138000,metro",
                "١٢,u-5,13800138000,metro",
            ],
        )
        r = runner.invoke(app, ["binding", "import", str(path)])
        assert r.exit_code == 1, r.output
        for line, field in [(2, "partner_user_id"), (3, "partner_user_id"), (4, "partner_user_id")]:
            assert f"line {line}: {field}" in r.output
        assert "line 5: partner_id" in r.output and "line 6: partner_id" in r.output
        assert "Traceback" not in r.output

    def test_a_file_that_is_not_utf8_is_one_clear_error(self, database_url, tmp_path):
        path = tmp_path / "b.csv"
        path.write_bytes(
            "partner_id,partner_user_id,phone,scenarios\n1,u,13800138000,地铁\n".encode("gb18030")
        )
        r = runner.invoke(app, ["binding", "import", str(path)])
        assert r.exit_code == 1
        assert "UTF-8" in r.output and "Traceback" not in r.output

    def test_missing_column(self, database_url, tmp_path):
        path = tmp_path / "b.csv"
        path.write_text("partner_id,phone\n1,13800138000\n")
        r = runner.invoke(app, ["binding", "import", str(path)])
        assert r.exit_code == 1 and "partner_user_id" in r.output

    def test_help_says_all_or_nothing(self):
        r = runner.invoke(app, ["binding", "import", "--help"])
        assert "nothing" in r.output.lower()

"""`tanhui staff ...`, `tanhui partner ...`, `tanhui binding ...`"""

from __future__ import annotations

import csv
import dataclasses
import json
import sys
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import typer
from rich.console import Console
from rich.progress import Progress
from rich.table import Table

from tanhui.identity import service as identity_service
from tanhui.kit.db import session_scope
from tanhui.kit.errors import InvalidInput

staff_app = typer.Typer(help="Staff accounts (工作人员).", no_args_is_help=True)


def _password(password: str | None, password_stdin: bool) -> str:
    """The password from exactly one of --password and --password-stdin (its first line)."""
    if password_stdin == (password is not None):
        raise InvalidInput("give exactly one of --password and --password-stdin", field="password")
    if password_stdin:
        return sys.stdin.readline().rstrip("\r\n")
    assert password is not None
    return password


_PASSWORD_HELP = "Password (visible in the shell history; prefer --password-stdin)."
_STDIN_HELP = "Read the password from the first line of stdin."


def _staff_json(view: identity_service.StaffView) -> dict[str, object]:
    row = dataclasses.asdict(view)
    for key, value in row.items():
        if isinstance(value, datetime):
            row[key] = value.isoformat()
    return row


@staff_app.command("create")
def staff_create(
    username: str = typer.Argument(..., help="Login name."),
    role: list[str] = typer.Option(
        ..., "--role", help=f"Role (repeatable): {', '.join(sorted(identity_service.ROLES))}."
    ),
    org: int | None = typer.Option(None, "--org", help="Organisation id."),
    display_name: str | None = typer.Option(None, "--display-name", help="Name to show."),
    password: str | None = typer.Option(None, "--password", help=_PASSWORD_HELP),
    password_stdin: bool = typer.Option(False, "--password-stdin", help=_STDIN_HELP),
    as_json: bool = typer.Option(False, "--json", help="Print the result as JSON."),
) -> None:
    """Create a staff user, e.g. `echo pw | tanhui staff create alice --role reviewer --password-stdin`."""
    secret = _password(password, password_stdin)
    with session_scope() as session:
        staff = identity_service.create_staff(
            session,
            None,
            username=username,
            password=secret,
            roles=role,
            organisation_id=org,
            display_name=display_name,
        )
        result: dict[str, object] = {
            "id": staff.id,
            "username": staff.username,
            "roles": sorted(set(role)),
            "organisation_id": staff.organisation_id,
        }
    if as_json:
        typer.echo(json.dumps(result, ensure_ascii=False))
    else:
        roles = ", ".join(sorted(set(role)))
        typer.echo(f"staff {result['id']} {username} created with roles {roles}")


@staff_app.command("list")
def staff_list(as_json: bool = typer.Option(False, "--json", help="Print JSON.")) -> None:
    """Staff users, their roles, organisation, status and last login."""
    with session_scope() as session:
        rows = identity_service.list_staff(session, None)
    if as_json:
        typer.echo(json.dumps([_staff_json(r) for r in rows], ensure_ascii=False))
        return
    table = Table("id", "username", "name", "roles", "organisation", "status", "last login")
    for r in rows:
        table.add_row(
            str(r.id),
            r.username,
            r.display_name,
            ", ".join(r.roles) or "-",
            r.organisation_name or "-",
            "active" if r.active else "deactivated",
            r.last_login_at.isoformat(timespec="seconds") if r.last_login_at else "-",
        )
    Console().print(table)


def _update(username: str, as_json: bool, done: str, **changes: Any) -> None:
    with session_scope() as session:
        staff = identity_service.get_staff_by_username(session, username)
        view = identity_service.update_staff(session, None, staff.id, **changes)
    if as_json:
        typer.echo(json.dumps(_staff_json(view), ensure_ascii=False))
    else:
        typer.echo(f"staff {view.id} {view.username} {done}")


@staff_app.command("deactivate")
def staff_deactivate(
    username: str = typer.Argument(..., help="Login name."),
    as_json: bool = typer.Option(False, "--json", help="Print the result as JSON."),
) -> None:
    """Stop a staff user at once: no more logins, and their sessions and tokens end now."""
    _update(username, as_json, "deactivated; their sessions are ended", active=False)


@staff_app.command("activate")
def staff_activate(
    username: str = typer.Argument(..., help="Login name."),
    as_json: bool = typer.Option(False, "--json", help="Print the result as JSON."),
) -> None:
    """Let a deactivated staff user log in again (with their old password)."""
    _update(username, as_json, "activated", active=True)


@staff_app.command("roles")
def staff_roles(
    username: str = typer.Argument(..., help="Login name."),
    role: list[str] = typer.Option(
        ...,
        "--role",
        help="The new roles, replacing the old ones (repeatable): "
        f"{', '.join(sorted(identity_service.ROLES))}.",
    ),
    as_json: bool = typer.Option(False, "--json", help="Print the result as JSON."),
) -> None:
    """Replace a staff user's roles, e.g. `tanhui staff roles alice --role reviewer --role buyer`."""
    _update(username, as_json, f"now has roles {', '.join(sorted(set(role)))}", roles=role)


@staff_app.command("password")
def staff_password(
    username: str = typer.Argument(..., help="Login name."),
    password: str | None = typer.Option(None, "--password", help=_PASSWORD_HELP),
    password_stdin: bool = typer.Option(False, "--password-stdin", help=_STDIN_HELP),
) -> None:
    """Set a staff user's password (and lift a login lock); their sessions end.
    E.g. `echo new-pass | tanhui staff password alice --password-stdin`."""
    secret = _password(password, password_stdin)
    with session_scope() as session:
        staff = identity_service.get_staff_by_username(session, username)
        identity_service.reset_staff_password(session, None, staff.id, password=secret)
        staff_id = staff.id
    typer.echo(f"staff {staff_id} {username.strip()} has a new password; their sessions are ended")


partner_app = typer.Typer(help="Scenario partners (场景方) and their keys.", no_args_is_help=True)


def _scenarios(text: str) -> list[str]:
    return [s for s in (p.strip() for p in text.split(",")) if s]


@partner_app.command("create")
def partner_create(
    name: str = typer.Argument(..., help="Partner (organisation) name."),
    scenarios: str = typer.Option(..., "--scenarios", help="Comma-separated, e.g. metro,bus."),
    valid_until: datetime | None = typer.Option(
        None, "--valid-until", formats=["%Y-%m-%d"], help="Last day of the approval (YYYY-MM-DD)."
    ),
    redirect_uri: list[str] = typer.Option(
        [], "--redirect-uri", help="Redirect URI for user authorisation (repeatable)."
    ),
    licence_no: str | None = typer.Option(None, "--licence-no", help="Business licence number."),
    as_json: bool = typer.Option(False, "--json", help="Print the result as JSON."),
) -> None:
    """Create an approved partner and its first key; the secret is printed once, keep it."""
    with session_scope() as session:
        created = identity_service.create_partner(
            session,
            None,
            name=name,
            scenarios=_scenarios(scenarios),
            valid_until=valid_until.date() if valid_until else None,
            redirect_uris=redirect_uri,
            licence_no=licence_no,
        )
    result = {
        "partner_id": created.partner_id,
        "organisation_id": created.organisation_id,
        "key_id": created.key_id,
        "secret": created.secret,
    }
    if as_json:
        typer.echo(json.dumps(result))
    else:
        for k, v in result.items():
            typer.echo(f"{k}: {v}")
        typer.echo("The secret is shown only once.")


@partner_app.command("rotate-key")
def partner_rotate_key(
    partner_id: int = typer.Argument(..., help="Partner id."),
    grace_hours: float = typer.Option(
        24, "--grace-hours", min=0, help="Old keys stay valid this long."
    ),
    as_json: bool = typer.Option(False, "--json", help="Print the result as JSON."),
) -> None:
    """Issue a new key; the partner's older keys keep working for the grace period."""
    with session_scope() as session:
        key = identity_service.rotate_key(
            session, None, partner_id, grace=timedelta(hours=grace_hours)
        )
    result = {
        "key_id": key.key_id,
        "secret": key.secret,
        "old_keys_valid_until": key.old_keys_valid_until.isoformat()
        if key.old_keys_valid_until
        else None,
    }
    if as_json:
        typer.echo(json.dumps(result))
    else:
        for k, v in result.items():
            typer.echo(f"{k}: {v}")


@partner_app.command("revoke-key")
def partner_revoke_key(key_id: str = typer.Argument(..., help="Key id (pk_...).")) -> None:
    """Revoke a key at once: requests signed with it get 401 key_revoked."""
    with session_scope() as session:
        identity_service.revoke_key(session, None, key_id)
    typer.echo(f"key {key_id} revoked")


@partner_app.command("list")
def partner_list(as_json: bool = typer.Option(False, "--json", help="Print JSON.")) -> None:
    """Partners, their scenarios and approval periods."""
    with session_scope() as session:
        rows = [
            identity_service.partner_summary(p) for p in identity_service.list_partners(session)
        ]
    if as_json:
        typer.echo(json.dumps(rows, ensure_ascii=False))
        return
    table = Table("id", "name", "scenarios", "approved until", "status")
    for r in rows:
        table.add_row(
            str(r["partner_id"]),
            r["name"],
            ",".join(r["scenarios"]),
            r["approved_until"] or "-",
            r["status"],
        )
    Console().print(table)


binding_app = typer.Typer(help="Partner bindings (用户授权).", no_args_is_help=True)


@binding_app.command("import")
def binding_import(
    file: Path = typer.Argument(..., exists=True, dir_okay=False, help="CSV file."),
    as_json: bool = typer.Option(False, "--json", help="Print the result as JSON."),
) -> None:
    """Import bindings from a CSV with a header row: partner_id,partner_user_id,phone,scenarios
    (scenarios separated by ';'). A citizen is created for an unknown phone.

    All or nothing: every line is checked first; if any line is bad, each bad line is reported with
    its line number and field and NOTHING is imported. Importing the same file again changes nothing.
    """
    try:
        with file.open(newline="", encoding="utf-8-sig") as handle:
            reader = csv.DictReader(handle)
            header = [h.strip() for h in (reader.fieldnames or [])]
            missing = [c for c in identity_service.IMPORT_COLUMNS if c not in header]
            if missing:
                raise InvalidInput(
                    f"line 1: missing column(s) {', '.join(missing)}; expected "
                    + ",".join(identity_service.IMPORT_COLUMNS),
                    code="import_rejected",
                    field="header",
                )
            reader.fieldnames = header
            rows = [(reader.line_num, dict(r)) for r in reader]
    except UnicodeDecodeError:
        raise InvalidInput(
            f"{file} is not UTF-8 text: save it as CSV UTF-8; nothing was imported",
            code="import_rejected",
            field="file",
        ) from None
    console = Console(stderr=True)
    try:
        with session_scope() as session, Progress(console=console, transient=True) as progress:
            task = progress.add_task("importing bindings", total=len(rows))
            result = identity_service.import_bindings(
                session, None, rows, on_progress=lambda n: progress.advance(task, n)
            )
    except identity_service.ImportRejected as exc:
        for e in exc.extra["errors"]:
            typer.secho(f"line {e['line']}: {e['field']}: {e['message']}", err=True, fg="red")
        typer.secho(
            f"error: {len(exc.extra['errors'])} bad row(s) in {file}; nothing was imported",
            err=True,
            fg="red",
        )
        raise typer.Exit(1) from None
    summary = {
        "rows": result.rows,
        "created": result.created,
        "updated": result.updated,
        "unchanged": result.unchanged,
        "citizens_created": result.citizens_created,
    }
    if as_json:
        typer.echo(json.dumps(summary))
    else:
        typer.echo(
            f"{result.rows} rows: {result.created} bindings created, {result.updated} updated, "
            f"{result.unchanged} unchanged; {result.citizens_created} new citizens"
        )

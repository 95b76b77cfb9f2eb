"""`tanhui staff ...`, `tanhui partner ...`, `tanhui binding ...`"""

from __future__ import annotations

import json
import sys

import typer

from tanhui.identity import service as identity_service
from tanhui.kit.db import session_scope
from tanhui.kit.errors import InvalidInput

staff_app = typer.Typer(help="Staff accounts (工作人员).", no_args_is_help=True)


@staff_app.command("create")
def staff_create(
    username: str = typer.Argument(..., help="Login name."),
    role: list[str] = typer.Option(
        ..., "--role", help=f"Role (repeatable): {', '.join(sorted(identity_service.ROLES))}."
    ),
    org: int | None = typer.Option(None, "--org", help="Organisation id."),
    display_name: str | None = typer.Option(None, "--display-name", help="Name to show."),
    password: str | None = typer.Option(
        None, "--password", help="Password (visible in the shell history; prefer --password-stdin)."
    ),
    password_stdin: bool = typer.Option(
        False, "--password-stdin", help="Read the password from the first line of stdin."
    ),
    as_json: bool = typer.Option(False, "--json", help="Print the result as JSON."),
) -> None:
    """Create a staff user, e.g. `echo pw | tanhui staff create alice --role reviewer --password-stdin`."""
    if password_stdin == (password is not None):
        raise InvalidInput("give exactly one of --password and --password-stdin", field="password")
    if password_stdin:
        password = sys.stdin.readline().rstrip("\r\n")
    assert password is not None
    with session_scope() as session:
        staff = identity_service.create_staff(
            session,
            None,
            username=username,
            password=password,
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

"""`tanhui projects ...`"""

from __future__ import annotations

import typer
from rich.console import Console
from rich.table import Table

from tanhui.kit.db import session_scope
from tanhui.projects import service as projects_service

app = typer.Typer(help="Emission-reduction projects (减排项目).", no_args_is_help=True)


@app.command("list")
def list_projects(
    status: str | None = typer.Option(None, help=", ".join(projects_service.PROJECT_STATUSES)),
    district: str | None = typer.Option(None, help="District contains"),
) -> None:
    """Projects with their status, methodology and carried fraction."""
    with session_scope() as session:
        rows = projects_service.list_projects(
            session, status=status, district=district, limit=10_000
        )
    table = Table("id", "name", "type", "district", "methodology", "status", "carry (g)")
    for p in rows:
        table.add_row(
            str(p.id),
            p.name,
            p.project_type,
            p.district,
            f"{p.methodology_id}@{p.methodology_version}",
            p.status,
            str(p.carry_mg // 1000),
        )
    Console().print(table)

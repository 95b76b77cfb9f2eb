"""`tanhui ledger ...`"""

from __future__ import annotations

import json

import typer
from rich.console import Console
from rich.table import Table

from tanhui.kit.db import session_scope
from tanhui.ledger import service as ledger_service

app = typer.Typer(help="The double-entry ledger (账本).", no_args_is_help=True)


@app.command("check")
def check(as_json: bool = typer.Option(False, "--json", help="Print the result as JSON.")) -> None:
    """Recompute every balance from the journal; exit 1 naming each account that disagrees."""
    from tanhui import wiring

    with session_scope() as session:
        problems = ledger_service.check(session)
        problems += wiring.extra_checks(session)
    if as_json:
        typer.echo(
            json.dumps(
                {"ok": not problems, "problems": [p.__dict__ for p in problems]},
                ensure_ascii=False,
            )
        )
    else:
        console = Console()
        if problems:
            table = Table("kind", "subject", "detail", title="Ledger check: problems")
            for p in problems:
                table.add_row(p.kind, p.subject, p.detail)
            console.print(table)
        else:
            console.print(
                "[green]ledger check: clean[/green] (every transfer balances, every balance matches the journal)"
            )
    if problems:
        raise typer.Exit(1)


@app.command("balance")
def show_balance(owner_type: str, owner_id: str) -> None:
    """Balances of one owner's accounts, e.g. `tanhui ledger balance citizen 12`."""
    with session_scope() as session:
        rows = ledger_service.balances(session, owner_type=owner_type, owner_id=owner_id)
    table = Table("account", "asset", "balance", "held", "available")
    for b in rows:
        table.add_row(str(b.account_id), b.asset, str(b.balance), str(b.held), str(b.available))
    Console().print(table)

"""`tanhui points ...`: point expiry and the points rules."""

from __future__ import annotations

from datetime import date

import typer
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn

from tanhui.incentives import service as incentives_service
from tanhui.kit.db import session_scope

app = typer.Typer(help="Carbon points (碳积分): expiry, balances.", no_args_is_help=True)


@app.command("expire")
def expire(
    as_of: str = typer.Option(
        ..., "--as-of", help="Expire lots whose last day is before DATE (YYYY-MM-DD)."
    ),
    batch: int = typer.Option(500, min=1, help="Lots per transaction."),
) -> None:
    """Expire what is left in lots past their date (idempotent: a rerun expires nothing more)."""
    try:
        day = date.fromisoformat(as_of)
    except ValueError:
        raise typer.BadParameter("use YYYY-MM-DD", param_hint="--as-of") from None
    with session_scope() as session:
        ids = incentives_service.expirable_lots(session, as_of=day)
    lots = points = 0
    with Progress(
        TextColumn("expiring points"), BarColumn(), MofNCompleteColumn(), transient=True
    ) as progress:
        task = progress.add_task("expire", total=len(ids))
        for start in range(0, len(ids), batch):
            # One transaction per batch: an interrupted run keeps what it did and resumes cleanly.
            with session_scope() as session:
                result = incentives_service.expire_lots(
                    session, ids[start : start + batch], as_of=day
                )
            lots += result.lots
            points += result.points
            progress.advance(task, len(ids[start : start + batch]))
    Console().print(f"expired {points} points from {lots} lots (as of {day.isoformat()})")


@app.command("balance")
def balance(citizen_id: int) -> None:
    """A citizen's points, lots and expiry dates."""
    with session_scope() as session:
        s = incentives_service.points_summary(session, citizen_id)
    console = Console()
    console.print(f"citizen {citizen_id}: {s.available} points available ({s.held} held)")
    for d, n in s.expiring:
        console.print(f"  {n} points expire after {d.isoformat()}")

"""`tanhui mall ...`: code pools."""

from __future__ import annotations

from pathlib import Path

import typer

from tanhui.kit.db import session_scope
from tanhui.mall import service as mall_service

app = typer.Typer(help="Points mall (积分商城).", no_args_is_help=True)


@app.command("import-codes")
def import_codes(
    reward_id: int = typer.Argument(..., help="The coupon reward."),
    file: Path = typer.Argument(..., help="CSV: codes in the first column or a `code` column."),
) -> None:
    """Add coupon codes from a CSV file (codes already in the pool are skipped)."""
    text = file.read_text(encoding="utf-8-sig")
    with session_scope() as session:
        added = mall_service.import_codes(session, None, reward_id, text)
        available = mall_service.available_codes(session, reward_id)
    typer.echo(f"added {added} codes; {available} available for reward {reward_id}")

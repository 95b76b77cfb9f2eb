"""`tanhui registry ...`: the public registry from the command line."""

from __future__ import annotations

import typer
from rich.console import Console
from rich.table import Table

from tanhui.kit.db import session_scope
from tanhui.registry import service as registry_service

app = typer.Typer(
    help="The credit registry (登记簿): batches, blocks, retirements.", no_args_is_help=True
)


@app.command("batches")
def batches(
    q: str | None = typer.Option(None, help="Serial or serial prefix, e.g. TH-2026-000001"),
    limit: int = typer.Option(100, min=1, help="At most this many, newest first."),
) -> None:
    """Issued batches with their issued, active, retired and cancelled credits."""
    with session_scope() as session:
        rows = registry_service.list_batches(session, q=q, limit=limit)
    table = Table("id", "serials", "vintage", "issued", "active", "retired", "cancelled", "source")
    for b in rows:
        table.add_row(
            str(b.batch_id),
            f"{b.first_serial} … {b.last_serial}",
            str(b.vintage),
            str(b.issued),
            str(b.active),
            str(b.retired),
            str(b.cancelled),
            b.source_kind,
        )
    Console().print(table)


@app.command("blocks")
def blocks(batch_id: int = typer.Argument(..., help="Batch id")) -> None:
    """The live blocks of a batch in serial order."""
    with session_scope() as session:
        rows = registry_service.list_blocks(session, batch_id=batch_id)
    table = Table("block", "first", "last", "quantity", "status", "holder")
    for b in rows:
        table.add_row(
            str(b.block_id), b.serial_first, b.serial_last, str(b.quantity), b.status, b.holder
        )
    Console().print(table)


@app.command("retirements")
def retirements(
    purpose: str | None = typer.Option(None, help=", ".join(registry_service.PURPOSES)),
    limit: int = typer.Option(100, min=1),
) -> None:
    """Retirements with purpose, beneficiary and trust-log status."""
    with session_scope() as session:
        rows = registry_service.list_retirements(session, purpose=purpose, limit=limit)
    table = Table("retirement", "quantity", "purpose", "beneficiary", "serials", "proof")
    for r in rows:
        table.add_row(
            r.retirement_no,
            str(r.quantity),
            r.purpose,
            r.beneficiary,
            "; ".join(r.serials),
            r.proof["status"] if r.proof else "-",
        )
    Console().print(table)

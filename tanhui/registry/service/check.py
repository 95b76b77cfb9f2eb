"""The registry/ledger check and the totals."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Mapping

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from tanhui.ledger import service as ledger_service
from tanhui.ledger.service import CheckProblem
from tanhui.registry.models import Batch, Block, RegistryAccount
from tanhui.registry.service.common import (
    LIVE_STATUSES,
    _ledger_account_id,
    batch_prefix,
)


def check(session: Session) -> list[CheckProblem]:
    """Blocks tile each batch's 1..issued exactly, and per batch and holder the active block total
    equals the holder's ledger balance; retired/cancelled totals equal the platform sinks."""
    problems: list[CheckProblem] = []
    batches = {b.id: b for b in session.scalars(select(Batch)).all()}
    live: dict[int, list[tuple[int, int, int]]] = defaultdict(list)
    for block_id, batch_id, start, end in session.execute(
        select(Block.id, Block.batch_id, Block.serial_start, Block.serial_end).where(
            Block.status.in_(LIVE_STATUSES)
        )
    ):
        live[batch_id].append((start, end, block_id))
    for batch_id, batch in batches.items():
        subject = f"batch {batch_prefix(batch)}"
        expected = 1
        for start, end, block_id in sorted(live.get(batch_id, [])):
            if start < expected:
                problems.append(
                    CheckProblem("serial_overlap", subject, f"block {block_id} starts at {start}")
                )
            elif start > expected:
                problems.append(
                    CheckProblem(
                        "serial_gap", subject, f"units {expected}..{start - 1} in no block"
                    )
                )
            expected = max(expected, end + 1)
        if expected != batch.quantity + 1:
            problems.append(
                CheckProblem(
                    "serial_tiling",
                    subject,
                    f"live blocks end at {expected - 1}, issued {batch.quantity}",
                )
            )
    sums: dict[tuple[int, int, str], int] = defaultdict(int)
    for batch_id, account_id, status, qty in session.execute(
        select(Block.batch_id, Block.account_id, Block.status, func.sum(Block.quantity)).group_by(
            Block.batch_id, Block.account_id, Block.status
        )
    ):
        sums[(batch_id, account_id, status)] = int(qty)
    accounts = {a.id: a for a in session.scalars(select(RegistryAccount)).all()}
    holders = {(b, a) for b, a, _ in sums}
    for batch_id, account_id in sorted(holders):
        batch, account = batches[batch_id], accounts[account_id]
        blocks_total = sums.get((batch_id, account_id, "active"), 0)
        ledger_id = _ledger_account_id(session, account, batch.asset_code)
        held = ledger_service.balance(session, ledger_id).balance
        if held != blocks_total:
            problems.append(
                CheckProblem(
                    "registry_ledger_mismatch",
                    f"batch {batch_prefix(batch)} account {account_id}",
                    f"active blocks {blocks_total}, ledger {held}",
                )
            )
    sinks: tuple[tuple[str | None, str], ...] = (
        ("retired", "retired"),
        ("cancelled", "cancelled"),
        (None, "issuance"),
    )
    for batch_id, batch in batches.items():
        for wanted, sink in sinks:
            if wanted is None:
                expected_total = -batch.quantity
            else:
                expected_total = sum(
                    v for (b, _, s), v in sums.items() if b == batch_id and s == wanted
                )
                if expected_total == 0:
                    continue  # no sink account was ever needed; do not open one from a check
            account_ = ledger_service.platform_account(session, batch.asset_code, sink)
            got = ledger_service.balance(session, account_.id).balance
            if got != expected_total:
                problems.append(
                    CheckProblem(
                        "registry_ledger_mismatch",
                        f"batch {batch_prefix(batch)} {sink}",
                        f"registry {expected_total}, ledger {got}",
                    )
                )
    return problems


def totals(session: Session) -> Mapping[str, int]:
    """Issued, active, retired and cancelled credits over all batches (for reports)."""
    issued = int(session.scalar(select(func.coalesce(func.sum(Batch.quantity), 0))) or 0)
    out = {"issued": issued, "active": 0, "retired": 0, "cancelled": 0}
    for status, qty in session.execute(
        select(Block.status, func.sum(Block.quantity))
        .where(Block.status.in_(LIVE_STATUSES))
        .group_by(Block.status)
    ):
        out[status] = int(qty)
    return out

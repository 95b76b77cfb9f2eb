"""8 processes x 500 transfers draining the same accounts on PostgreSQL: exact, never negative, once."""

from __future__ import annotations

import multiprocessing
import random

import pytest
from sqlalchemy import func, select

from tanhui.kit.db import create_db_engine, make_session_factory, session_scope
from tanhui.kit.errors import TanhuiError
from tanhui.ledger import service as ledger_service
from tanhui.ledger.models import Transfer
from tests.fixtures.ledger import citizen_account

PROCESSES = 8
TRANSFERS = 500
ACCOUNTS = 6


def _worker(url: str, accounts: list[int], sink: int, seed: int) -> tuple[int, int]:
    rng = random.Random(seed)
    factory = make_session_factory(create_db_engine(url, pool_size=1))
    applied = refused = 0
    for _ in range(TRANSFERS):
        source, target = rng.sample([*accounts, sink], 2)
        if source == sink:
            source, target = target, sink
        amount = rng.randint(1, 40)
        # Keys are shared between processes on purpose: each must be applied exactly once overall.
        key = f"drain-{rng.randint(0, PROCESSES * TRANSFERS // 2)}"
        try:
            with session_scope(factory) as session:
                ledger_service.transfer(
                    session,
                    idempotency_key=key,
                    kind="drain",
                    postings=[(source, -amount), (target, amount)],
                )
            applied += 1
        except TanhuiError:
            refused += 1  # overdraft, or the key was taken by another body: nothing changed
    return applied, refused


@pytest.mark.postgresql_only
def test_concurrent_drain_is_exact(database_url: str) -> None:
    with session_scope() as session:
        accounts = [citizen_account(session, funded=2_000) for _ in range(ACCOUNTS)]
        sink = ledger_service.platform_account(session, ledger_service.POINT, "redemption").id
    ctx = multiprocessing.get_context("spawn")
    with ctx.Pool(PROCESSES) as pool:
        results = pool.starmap(
            _worker, [(database_url, accounts, sink, seed) for seed in range(PROCESSES)]
        )
    assert sum(applied for applied, _ in results) > 0
    with session_scope() as session:
        assert ledger_service.check(session) == []
        for account_id in accounts:
            assert ledger_service.balance(session, account_id).balance >= 0
        keys = session.scalars(
            select(Transfer.idempotency_key).where(Transfer.kind == "drain")
        ).all()
        assert len(keys) == len(set(keys))
        assert session.scalar(select(func.count()).select_from(Transfer)) == len(keys) + ACCOUNTS

"""Serial arithmetic under random transfers, retirements and cancellations (Hypothesis), and
concurrent transfers of one block on PostgreSQL that never double-spend."""

from __future__ import annotations

import threading
from collections import Counter

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy import select
from sqlalchemy.orm import Session

from tanhui.identity import service as identity_service
from tanhui.identity.principal import Principal
from tanhui.kit.db import session_scope
from tanhui.ledger import service as ledger_service
from tanhui.registry import service as registry_service
from tanhui.registry.models import Block

OPERATOR = Principal(kind="staff", id=1, roles=frozenset({"operator_admin"}))
HOLDERS = 3


def _holders(session: Session) -> list[tuple[Principal, int]]:
    out = []
    for n in range(HOLDERS):
        org = identity_service.create_organisation(session, None, name=f"holder {n}", kind="buyer")
        account = registry_service.account_for_organisation(session, org.id)
        out.append(
            (
                Principal(
                    kind="staff", id=100 + n, roles=frozenset({"buyer"}), organisation_id=org.id
                ),
                account.id,
            )
        )
    return out


ops = st.lists(
    st.tuples(
        st.sampled_from(["transfer", "retire", "cancel"]),
        st.integers(0, HOLDERS - 1),
        st.integers(0, HOLDERS - 1),
        st.integers(1, 40),
        st.booleans(),  # take from one chosen block instead of lowest serials first
        st.integers(0, 50),
    ),
    max_size=25,
)


@settings(
    max_examples=30,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(issued=st.integers(1, 80), ops=ops)
def test_blocks_tile_the_batch_whatever_happens(
    session: Session, issued: int, ops: list[tuple[str, int, int, int, bool, int]]
) -> None:
    with session.begin_nested() as example:
        holders = _holders(session)
        batch = registry_service.issue(
            session,
            OPERATOR,
            account_id=holders[0][1],
            quantity=issued,
            vintage=2026,
            project_number=1,
            source_kind="test",
            source_ref="h",
            idempotency_key="h",
        )
        model = Counter({(holders[0][1], "active"): issued})
        for n, (op, x, y, qty, pick_block, which) in enumerate(ops):
            actor, account = holders[x]
            active = session.scalars(
                select(Block)
                .where(
                    Block.batch_id == batch.id,
                    Block.account_id == account,
                    Block.status == "active",
                )
                .order_by(Block.serial_start)
            ).all()
            block_id = active[which % len(active)].id if pick_block and active else None
            available = (
                next(b.quantity for b in active if b.id == block_id)
                if block_id is not None
                else model[(account, "active")]
            )
            try:
                with session.begin_nested():
                    if op == "transfer":
                        target = holders[y][1]
                        if target == account:
                            continue
                        registry_service.transfer(
                            session,
                            actor,
                            from_account_id=account,
                            to_account_id=target,
                            batch_id=batch.id,
                            quantity=qty,
                            block_id=block_id,
                            idempotency_key=f"op{n}",
                        )
                        model[(target, "active")] += qty
                    elif op == "retire":
                        registry_service.retire(
                            session,
                            actor,
                            account_id=account,
                            batch_id=batch.id,
                            quantity=qty,
                            purpose="voluntary",
                            beneficiary="someone",
                            block_id=block_id,
                            idempotency_key=f"op{n}",
                        )
                        model[(account, "retired")] += qty
                    else:
                        registry_service.cancel(
                            session,
                            OPERATOR,
                            account_id=account,
                            batch_id=batch.id,
                            quantity=qty,
                            reason="test",
                            block_id=block_id,
                            idempotency_key=f"op{n}",
                        )
                        model[(account, "cancelled")] += qty
                    model[(account, "active")] -= qty
                assert qty <= available
            except registry_service.InsufficientCredits:
                assert qty > available
        live = session.scalars(
            select(Block)
            .where(Block.batch_id == batch.id, Block.status != "closed")
            .order_by(Block.serial_start)
        ).all()
        # no serial in two blocks, none lost: the live blocks tile 1..issued
        units = [u for b in live for u in range(b.serial_start, b.serial_end + 1)]
        assert units == list(range(1, issued + 1))
        assert all(b.quantity == b.serial_end - b.serial_start + 1 for b in live)
        got: Counter[tuple[int, str]] = Counter()
        for b in live:
            got[(b.account_id, b.status)] += b.quantity
        assert +got == +model
        assert sum(got.values()) == issued
        assert registry_service.check(session) == []
        assert ledger_service.check(session) == []
        example.rollback()


@pytest.mark.postgresql_only
def test_concurrent_transfers_of_one_block_never_double_spend(database_url: str) -> None:
    with session_scope() as session:
        holders = _holders(session)
        batch = registry_service.issue(
            session,
            OPERATOR,
            account_id=holders[0][1],
            quantity=10,
            vintage=2026,
            project_number=1,
            source_kind="test",
            source_ref="race",
            idempotency_key="race",
        )
        batch_id = batch.id
    owner, source = holders[0]
    for round_ in range(5):
        with session_scope() as session:
            block_id = session.scalars(
                select(Block.id)
                .where(Block.account_id == source, Block.status == "active")
                .order_by(Block.serial_start)
            ).first()
            if block_id is None:
                break
            held = session.get(Block, block_id)
            assert held is not None
            qty = held.quantity // 2 + 1  # two such transfers cannot both fit in the block
        barrier = threading.Barrier(2)
        outcomes: list[str] = []

        def move(
            target: int,
            key: str,
            barrier: threading.Barrier = barrier,
            qty: int = qty,
            block_id: int = block_id,
            outcomes: list[str] = outcomes,
        ) -> None:
            barrier.wait()
            try:
                with session_scope() as s:
                    registry_service.transfer(
                        s,
                        owner,
                        from_account_id=source,
                        to_account_id=target,
                        batch_id=batch_id,
                        quantity=qty,
                        block_id=block_id,
                        idempotency_key=key,
                    )
                outcomes.append("ok")
            except registry_service.InsufficientCredits:
                outcomes.append("refused")

        threads = [
            threading.Thread(target=move, args=(holders[1][1], f"a{round_}")),
            threading.Thread(target=move, args=(holders[2][1], f"b{round_}")),
        ]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        assert sorted(outcomes) == ["ok", "refused"]
        with session_scope() as session:
            assert registry_service.check(session) == []
            assert ledger_service.check(session) == []

"""Random sequences of transfers, holds, posts, voids and reversals never break the ledger's invariants."""

from __future__ import annotations

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from tanhui.kit.errors import TanhuiError
from tanhui.ledger import service as ledger_service
from tanhui.ledger.models import Account, Posting
from tests.fixtures.ledger import citizen_account

ACCOUNTS = 4
ops = st.lists(
    st.one_of(
        st.tuples(
            st.just("transfer"),
            st.integers(0, ACCOUNTS),
            st.integers(0, ACCOUNTS),
            st.integers(1, 400),
        ),
        st.tuples(
            st.just("hold"), st.integers(1, ACCOUNTS), st.integers(0, ACCOUNTS), st.integers(1, 400)
        ),
        st.tuples(st.just("post"), st.integers(0, 30), st.just(0), st.just(0)),
        st.tuples(st.just("void"), st.integers(0, 30), st.just(0), st.just(0)),
        st.tuples(st.just("reverse"), st.integers(0, 30), st.just(0), st.just(0)),
        st.tuples(st.just("replay"), st.integers(0, 30), st.just(0), st.just(0)),
    ),
    max_size=40,
)


@settings(
    max_examples=40,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(ops=ops)
def test_random_operations_keep_the_ledger_consistent(
    session: Session, ops: list[tuple[str, int, int, int]]
) -> None:
    with session.begin_nested() as example:
        issuance = ledger_service.platform_account(session, ledger_service.POINT, "issuance").id
        accounts = [issuance] + [citizen_account(session, funded=300) for _ in range(ACCOUNTS)]
        transfers: list[ledger_service.TransferRecord] = []
        holds: list[int] = []
        for n, (op, x, y, amount) in enumerate(ops):
            try:
                with session.begin_nested():
                    if op == "transfer" and x != y:
                        t = ledger_service.transfer(
                            session,
                            idempotency_key=f"op{n}",
                            kind="t",
                            postings=[(accounts[x], -amount), (accounts[y], amount)],
                        )
                        transfers.append(t)
                    elif op == "hold" and x != y:
                        h = ledger_service.hold(
                            session,
                            idempotency_key=f"op{n}",
                            account_id=accounts[x],
                            destination_id=accounts[y],
                            amount=amount,
                            kind="h",
                        )
                        holds.append(h.id)
                    elif op == "post" and holds:
                        transfers.append(ledger_service.post_hold(session, holds[x % len(holds)]))
                    elif op == "void" and holds:
                        ledger_service.void_hold(session, holds[x % len(holds)])
                    elif op == "reverse" and transfers:
                        t = transfers[x % len(transfers)]
                        ledger_service.reverse(session, t.id, idempotency_key=f"op{n}")
                    elif op == "replay" and transfers:
                        t = transfers[x % len(transfers)]
                        again = ledger_service.transfer(
                            session,
                            idempotency_key=t.idempotency_key,
                            kind=t.kind,
                            postings=[(p.account_id, p.amount) for p in t.postings],
                            metadata=t.metadata,
                            reverses_id=t.reverses_id,
                        )
                        assert again.id == t.id
            except TanhuiError:
                pass  # refused operations (overdraft, hold not pending...) must change nothing
        assert ledger_service.check(session) == []
        for account_id in accounts[1:]:
            assert ledger_service.balance(session, account_id).available >= 0
        total = session.scalar(select(func.coalesce(func.sum(Posting.amount), 0)))
        assert total == 0
        assert (
            session.scalar(
                select(func.count())
                .select_from(Account)
                .where(Account.balance < 0, Account.bounded)
            )
            == 0
        )
        example.rollback()

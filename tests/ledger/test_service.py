from __future__ import annotations

import pytest
from sqlalchemy import func, select, update
from sqlalchemy.orm import Session

from tanhui.kit.errors import IdempotencyConflict, InvalidInput
from tanhui.ledger import service as ledger_service
from tanhui.ledger.models import Account, Transfer
from tests.fixtures.ledger import citizen_account

POINT = ledger_service.POINT


def _sink(session: Session) -> int:
    return ledger_service.platform_account(session, POINT, "redemption").id


class TestTransfer:
    def test_moves_value_and_balances_stay_exact(self, session: Session) -> None:
        a = citizen_account(session, funded=1000)
        b = citizen_account(session)
        ledger_service.transfer(
            session, idempotency_key="t1", kind="gift", postings=[(a, -300), (b, 300)]
        )
        assert ledger_service.balance(session, a).balance == 700
        assert ledger_service.balance(session, b).balance == 300
        assert ledger_service.check(session) == []

    def test_metadata_and_kind_are_kept_in_the_journal(self, session: Session) -> None:
        a = citizen_account(session, funded=10)
        b = citizen_account(session)
        t = ledger_service.transfer(
            session,
            idempotency_key="md",
            kind="gift",
            postings=[(a, -1), (b, 1)],
            metadata={"record_id": 7, "note": "生日礼物"},
        )
        (stored,) = ledger_service.get_transfer_records(session, [t.id])
        assert (stored.kind, dict(stored.metadata)) == (
            "gift",
            {"record_id": 7, "note": "生日礼物"},
        )

    def test_unbounded_issuance_balance_is_derived_from_journal(self, session: Session) -> None:
        citizen_account(session, funded=250)
        citizen_account(session, funded=750)
        issuance = ledger_service.platform_account(session, POINT, "issuance")
        assert ledger_service.balance(session, issuance.id).balance == -1000

    def test_unbalanced_transfer_is_refused(self, session: Session) -> None:
        a = citizen_account(session, funded=10)
        b = citizen_account(session)
        with pytest.raises(ledger_service.UnbalancedTransfer):
            ledger_service.transfer(
                session, idempotency_key="u", kind="x", postings=[(a, -5), (b, 4)]
            )
        assert ledger_service.balance(session, a).balance == 10

    def test_mixed_assets_must_balance_per_asset(self, session: Session) -> None:
        p = citizen_account(session, funded=10)
        c = citizen_account(session, asset=ledger_service.CO2E_MG, funded=10)
        with pytest.raises(ledger_service.UnbalancedTransfer):
            ledger_service.transfer(
                session, idempotency_key="m", kind="x", postings=[(p, -5), (c, 5)]
            )

    @pytest.mark.parametrize("amount", [0, 1.5, "3"])
    def test_amounts_are_nonzero_integers(self, session: Session, amount: object) -> None:
        a = citizen_account(session, funded=10)
        b = citizen_account(session)
        with pytest.raises(InvalidInput):
            ledger_service.transfer(
                session,
                idempotency_key="i",
                kind="x",
                postings=[(a, amount), (b, amount)],  # type: ignore[list-item]
            )

    def test_overdraft_is_refused_and_changes_nothing(self, session: Session) -> None:
        a = citizen_account(session, funded=100)
        b = citizen_account(session)
        with pytest.raises(ledger_service.InsufficientFunds):
            ledger_service.transfer(
                session, idempotency_key="o", kind="x", postings=[(a, -101), (b, 101)]
            )
        assert ledger_service.balance(session, a).balance == 100
        assert ledger_service.balance(session, b).balance == 0
        assert session.scalar(select(func.count()).where(Transfer.idempotency_key == "o")) == 0

    def test_batch_is_atomic(self, session: Session) -> None:
        a = citizen_account(session, funded=100)
        b = citizen_account(session)
        batch = [
            ledger_service.TransferRequest("b1", "x", [(a, -60), (b, 60)]),
            ledger_service.TransferRequest("b2", "x", [(a, -60), (b, 60)]),
        ]
        with pytest.raises(ledger_service.InsufficientFunds):
            ledger_service.transfer_many(session, batch)
        assert ledger_service.balance(session, a).balance == 100

    def test_batch_nets_movements_within_the_batch(self, session: Session) -> None:
        a = citizen_account(session)
        b = citizen_account(session)
        issuance = ledger_service.platform_account(session, POINT, "issuance").id
        records = ledger_service.transfer_many(
            session,
            [
                ledger_service.TransferRequest("n1", "earn", [(issuance, -50), (a, 50)]),
                ledger_service.TransferRequest("n2", "gift", [(a, -50), (b, 50)]),
            ],
        )
        assert [r.idempotency_key for r in records] == ["n1", "n2"]
        assert ledger_service.balance(session, b).balance == 50


class TestIdempotency:
    def test_replaying_the_same_request_100_times_gives_one_transfer(
        self, session: Session
    ) -> None:
        a = citizen_account(session, funded=1000)
        b = citizen_account(session)
        records = [
            ledger_service.transfer(
                session, idempotency_key="same", kind="gift", postings=[(a, -7), (b, 7)]
            )
            for _ in range(100)
        ]
        assert len({r.id for r in records}) == 1
        assert records[0].replayed is False and all(r.replayed for r in records[1:])
        assert ledger_service.balance(session, a).balance == 993
        assert session.scalar(select(func.count()).where(Transfer.idempotency_key == "same")) == 1

    def test_same_key_with_another_body_is_a_conflict(self, session: Session) -> None:
        a = citizen_account(session, funded=100)
        b = citizen_account(session)
        ledger_service.transfer(
            session, idempotency_key="k", kind="gift", postings=[(a, -7), (b, 7)]
        )
        with pytest.raises(IdempotencyConflict):
            ledger_service.transfer(
                session, idempotency_key="k", kind="gift", postings=[(a, -8), (b, 8)]
            )

    def test_duplicate_keys_inside_one_batch_apply_once(self, session: Session) -> None:
        a = citizen_account(session, funded=100)
        b = citizen_account(session)
        req = ledger_service.TransferRequest("dup", "x", [(a, -10), (b, 10)])
        first, second = ledger_service.transfer_many(session, [req, req])
        assert first.id == second.id
        assert ledger_service.balance(session, a).balance == 90


class TestHolds:
    def test_held_amount_cannot_be_spent_twice(self, session: Session) -> None:
        a = citizen_account(session, funded=100)
        sink = _sink(session)
        ledger_service.hold(
            session,
            idempotency_key="h1",
            account_id=a,
            destination_id=sink,
            amount=80,
            kind="order",
        )
        assert ledger_service.balance(session, a).available == 20
        with pytest.raises(ledger_service.InsufficientFunds):
            ledger_service.hold(
                session,
                idempotency_key="h2",
                account_id=a,
                destination_id=sink,
                amount=21,
                kind="order",
            )
        with pytest.raises(ledger_service.InsufficientFunds):
            ledger_service.transfer(
                session, idempotency_key="t", kind="x", postings=[(a, -21), (sink, 21)]
            )

    def test_post_moves_the_held_amount_once(self, session: Session) -> None:
        a = citizen_account(session, funded=100)
        sink = _sink(session)
        h = ledger_service.hold(
            session, idempotency_key="h", account_id=a, destination_id=sink, amount=80, kind="order"
        )
        first = ledger_service.post_hold(session, h.id)
        again = ledger_service.post_hold(session, h.id)
        assert first.id == again.id
        bal = ledger_service.balance(session, a)
        assert (bal.balance, bal.held) == (20, 0)
        with pytest.raises(ledger_service.HoldNotPending):
            ledger_service.void_hold(session, h.id)
        assert ledger_service.check(session) == []

    def test_void_releases(self, session: Session) -> None:
        a = citizen_account(session, funded=100)
        h = ledger_service.hold(
            session,
            idempotency_key="v",
            account_id=a,
            destination_id=_sink(session),
            amount=60,
            kind="order",
        )
        ledger_service.void_hold(session, h.id)
        assert ledger_service.balance(session, a).available == 100
        with pytest.raises(ledger_service.HoldNotPending):
            ledger_service.post_hold(session, h.id)

    def test_hold_key_replay_returns_the_same_hold(self, session: Session) -> None:
        a = citizen_account(session, funded=100)
        sink = _sink(session)
        h1 = ledger_service.hold(
            session, idempotency_key="r", account_id=a, destination_id=sink, amount=5, kind="o"
        )
        h2 = ledger_service.hold(
            session, idempotency_key="r", account_id=a, destination_id=sink, amount=5, kind="o"
        )
        assert h1.id == h2.id
        assert ledger_service.balance(session, a).held == 5
        with pytest.raises(IdempotencyConflict):
            ledger_service.hold(
                session, idempotency_key="r", account_id=a, destination_id=sink, amount=6, kind="o"
            )


class TestReversal:
    def test_reversal_undoes_exactly_once(self, session: Session) -> None:
        a = citizen_account(session, funded=100)
        b = citizen_account(session)
        t = ledger_service.transfer(
            session, idempotency_key="t", kind="gift", postings=[(a, -30), (b, 30)]
        )
        r = ledger_service.reverse(session, t.id, idempotency_key="rev")
        assert r.reverses_id == t.id
        assert ledger_service.balance(session, a).balance == 100
        with pytest.raises(ledger_service.AlreadyReversed):
            ledger_service.reverse(session, t.id, idempotency_key="rev-2")
        with pytest.raises(Exception, match="cannot itself be reversed"):
            ledger_service.reverse(session, r.id, idempotency_key="rev-3")

    def test_reversal_cannot_overdraw(self, session: Session) -> None:
        a = citizen_account(session, funded=100)
        b = citizen_account(session)
        t = ledger_service.transfer(
            session, idempotency_key="t", kind="gift", postings=[(a, -30), (b, 30)]
        )
        ledger_service.transfer(
            session, idempotency_key="spend", kind="x", postings=[(b, -30), (_sink(session), 30)]
        )
        with pytest.raises(ledger_service.InsufficientFunds):
            ledger_service.reverse(session, t.id, idempotency_key="rev")


class TestCheck:
    def test_names_an_account_edited_behind_the_ledger(self, session: Session) -> None:
        a = citizen_account(session, funded=100)
        session.execute(update(Account).where(Account.id == a).values(balance=1_000_000))
        problems = ledger_service.check(session)
        assert [p.kind for p in problems] == ["balance_mismatch"]
        assert f"account {a}" in problems[0].subject


def test_accounts_opened_in_a_rolled_back_savepoint_are_not_trusted_later(session: Session) -> None:
    """`open_accounts` lets the next transfer skip re-reading the accounts; what a rolled-back
    savepoint created must not survive in that shortcut."""
    issuance = ledger_service.platform_account(session, ledger_service.POINT, "issuance")
    savepoint = session.begin_nested()
    ids = ledger_service.open_accounts(
        session, owner_type="citizen", owner_ids=[424242], asset=ledger_service.POINT
    )
    savepoint.rollback()
    with pytest.raises(ledger_service.AccountNotFound):
        ledger_service.transfer(
            session,
            idempotency_key="after-rollback",
            kind="test",
            postings=[(issuance.id, -5), (ids["424242"], 5)],
        )


def test_a_transfer_right_after_open_accounts_credits_them(session: Session) -> None:
    issuance = ledger_service.platform_account(session, ledger_service.POINT, "issuance")
    ids = ledger_service.open_accounts(
        session, owner_type="citizen", owner_ids=[7001, 7002], asset=ledger_service.POINT
    )
    ledger_service.transfer(
        session,
        idempotency_key="fresh-accounts",
        kind="test",
        postings=[(issuance.id, -7), (ids["7001"], 3), (ids["7002"], 4)],
    )
    assert ledger_service.balance(session, ids["7002"]).balance == 4
    assert ledger_service.check(session) == []

from __future__ import annotations

import base64
import itertools
import json
from collections.abc import Mapping, Sequence
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy import update
from sqlalchemy.orm import Session

from tanhui import wiring
from tanhui.ledger import service as ledger_service
from tanhui.trust import leaf as leaf_codec
from tanhui.trust import merkle, signing, verify
from tanhui.trust import service as trust_service
from tanhui.trust.models import Leaf, Node, SignedTreeHead, TreeState
from tests.fixtures.ledger import citizen_account

KIND = "test.event"


def _payload(i: int) -> dict[str, Any]:
    return {"n": i, "account_id": i % 7, "amount_mg": i * 1000}


def _reencode(_: Session, refs: Sequence[str]) -> Mapping[str, Mapping[str, Any]]:
    return {r: _payload(int(r)) for r in refs}


REENCODERS: dict[str, trust_service.Reencoder] = {KIND: _reencode}


def _fill(session: Session, start: int, stop: int) -> None:
    trust_service.enqueue_many(session, ((KIND, str(i), _payload(i)) for i in range(start, stop)))


def _memory(n: int) -> merkle.MemoryTree:
    return merkle.MemoryTree(leaf_codec.encode(KIND, str(i), _payload(i)) for i in range(n))


class TestIntegrate:
    def test_proofs_match_the_reference_at_every_size(self, session: Session) -> None:
        # Integrate in uneven batches so node writes straddle batch boundaries.
        bounds = [0, 1, 2, 5, 8, 9, 16, 17, 33]
        for a, b in itertools.pairwise(bounds):
            _fill(session, a, b)
            assert trust_service.integrate(session, limit=3) == min(3, b - a)
            trust_service.integrate_all(session)
        ref = _memory(33)
        assert trust_service.tree_size(session) == 33
        for n in range(1, 34):
            assert trust_service.root_at(session, n) == ref.root(n)
            for m in range(n):
                assert trust_service.inclusion_proof(session, m, n) == ref.inclusion_proof(m, n)
            for m in range(n + 1):
                assert trust_service.consistency_proof(session, m, n) == ref.consistency_proof(m, n)

    def test_duplicate_records_are_logged_once(self, session: Session) -> None:
        trust_service.enqueue(session, kind=KIND, ref="1", payload=_payload(1))
        trust_service.enqueue(session, kind=KIND, ref="1", payload=_payload(1))
        assert trust_service.integrate_all(session) == 1
        trust_service.enqueue(session, kind=KIND, ref="1", payload=_payload(1))
        assert trust_service.integrate_all(session) == 0
        assert trust_service.tree_size(session) == 1
        assert trust_service.queue_length(session) == 0

    def test_leaf_for_pending_then_integrated(self, session: Session) -> None:
        assert trust_service.leaf_for(session, KIND, "5") is None
        trust_service.enqueue(session, kind=KIND, ref="5", payload=_payload(5))
        pending = trust_service.leaf_for(session, KIND, "5")
        assert pending is not None and pending.status == "pending" and pending.leaf_index is None
        trust_service.integrate(session)
        done = trust_service.leaf_for(session, KIND, "5")
        assert done is not None and done.leaf_index == 0 and done.leaf_hash == pending.leaf_hash
        assert trust_service.leaves_for(session, KIND, ["5", "6"]) == {"5": done}

    @pytest.mark.parametrize(("index", "size"), [(0, 0), (3, 3), (0, 4), (-1, 2), (0, -1), (5, 2)])
    def test_bad_sizes_are_client_errors(self, session: Session, index: int, size: int) -> None:
        _fill(session, 0, 3)
        trust_service.integrate(session)
        with pytest.raises(trust_service.BadTreeSize):
            trust_service.inclusion_proof(session, index, size)

    def test_bad_consistency_sizes(self, session: Session) -> None:
        _fill(session, 0, 3)
        trust_service.integrate(session)
        for first, second in [(2, 1), (0, 4), (-1, 2)]:
            with pytest.raises(trust_service.BadTreeSize):
                trust_service.consistency_proof(session, first, second)


class TestProperties:
    @settings(
        max_examples=15,
        deadline=None,
        # Each example rolls back its savepoint, so sharing the fixture and running once per backend
        # (a different class instance each) is safe.
        suppress_health_check=[
            HealthCheck.function_scoped_fixture,
            HealthCheck.differing_executors,
        ],
    )
    @given(batches=st.lists(st.integers(1, 20), min_size=1, max_size=6), data=st.data())
    def test_any_batching_gives_the_reference_tree(
        self, session: Session, batches: list[int], data: st.DataObject
    ) -> None:
        # Each example runs in a savepoint of the test's transaction and leaves nothing behind.
        nested = session.begin_nested()
        try:
            start = trust_service.tree_size(session)
            assert start == 0
            for size in batches:
                n = trust_service.tree_size(session)
                _fill(session, n, n + size)
                trust_service.integrate(session, limit=data.draw(st.integers(1, size)))
                trust_service.integrate_all(session)
            total = sum(batches)
            ref = _memory(total)
            m = data.draw(st.integers(0, total - 1))
            first = data.draw(st.integers(0, total))
            assert trust_service.root_at(session, total) == ref.root()
            assert trust_service.inclusion_proof(session, m, total) == ref.inclusion_proof(m, total)
            assert trust_service.consistency_proof(session, first, total) == ref.consistency_proof(
                first, total
            )
        finally:
            nested.rollback()


class TestTreeHeads:
    def test_publish_signs_only_when_grown(self, session: Session) -> None:
        _fill(session, 0, 4)
        first = trust_service.publish(session)
        assert first.tree_size == 4
        key = trust_service.signer().public_key
        signing.verify_tree_head(
            key, first.tree_size, first.root_hash, first.timestamp_ms, first.signature
        )
        assert trust_service.publish(session) == first
        forced = trust_service.publish(session, force=True)
        assert forced.timestamp_ms > first.timestamp_ms and forced.root_hash == first.root_hash
        _fill(session, 4, 5)
        assert trust_service.publish(session).tree_size == 5

    def test_signature_covers_the_documented_bytes(self, session: Session) -> None:
        sth = trust_service.publish(session, force=True)
        message = (
            b"\x00\x01"
            + sth.timestamp_ms.to_bytes(8, "big")
            + sth.tree_size.to_bytes(8, "big")
            + sth.root_hash
        )
        assert len(message) == 50
        trust_service.signer().public_key.verify(sth.signature, message)

    def test_key_generated_once_at_the_configured_path(self, trust_key: Any) -> None:
        assert not trust_key.exists()
        a = trust_service.signer()
        assert trust_key.exists() and trust_key.stat().st_mode & 0o777 == 0o600
        trust_service._signer_at.cache_clear()
        b = trust_service.signer()
        assert signing.key_id(a.public_key) == signing.key_id(b.public_key)


class TestBundle:
    def test_bundle_verifies_offline_and_tampering_fails(self, session: Session) -> None:
        _fill(session, 0, 11)
        trust_service.publish(session)
        _fill(session, 11, 13)
        trust_service.integrate(session)
        # Leaf 12 is newer than the signed head: the bundle signs a new one.
        bundle = json.loads(json.dumps(trust_service.proof_bundle(session, 12)))
        key = trust_service.signer().public_key
        result = verify.verify_bundle(bundle, key)
        assert (result.leaf_index, result.tree_size) == (12, 13)
        assert result.record["data"] == _payload(12)

        def flipped(path: Sequence[str | int]) -> dict[str, Any]:
            b = json.loads(json.dumps(bundle))
            parent = b
            for p in path[:-1]:
                parent = parent[p]
            raw = bytearray(base64.b64decode(parent[path[-1]]))
            raw[-1] ^= 1
            parent[path[-1]] = base64.b64encode(bytes(raw)).decode()
            return b

        paths: list[list[str | int]] = [
            ["leaf"],
            ["inclusion", "hashes", 0],
            ["sth", "root_hash"],
            ["sth", "signature"],
        ]
        for path in paths:
            with pytest.raises(merkle.ProofError):
                verify.verify_bundle(flipped(path), key)
        other = signing.Signer(signing.Ed25519PrivateKey.generate())
        with pytest.raises(merkle.ProofError):
            verify.verify_bundle(bundle, other.public_key)
        moved = json.loads(json.dumps(bundle))
        moved["inclusion"]["leaf_index"] = 11
        moved["leaf_index"] = 11
        with pytest.raises(merkle.ProofError):
            verify.verify_bundle(moved, key)


class TestAudit:
    def test_clean_log(self, session: Session) -> None:
        _fill(session, 0, 20)
        trust_service.publish(session)
        assert trust_service.audit(session, REENCODERS) == []

    def test_changed_record_is_named(self, session: Session) -> None:
        _fill(session, 0, 10)
        trust_service.publish(session)

        def changed(s: Session, refs: Sequence[str]) -> Mapping[str, Mapping[str, Any]]:
            out = dict(_reencode(s, refs))
            if "7" in out:
                out["7"] = {**out["7"], "amount_mg": 1}
            out.pop("3", None)
            return out

        problems = trust_service.audit(session, {KIND: changed})
        assert [(p.leaf_index, p.ref, p.problem) for p in problems] == [
            (3, "3", "record no longer exists"),
            (7, "7", "record no longer matches its leaf"),
        ]

    def test_edited_log_rows_are_found(self, session: Session) -> None:
        _fill(session, 0, 9)
        trust_service.publish(session)
        session.execute(update(Leaf).where(Leaf.leaf_index == 4).values(leaf=b"\x01{}"))
        session.execute(
            update(Node).where(Node.level == 2, Node.position == 1).values(hash=bytes(32))
        )
        session.execute(update(SignedTreeHead).values(root_hash=bytes(32)))
        session.execute(update(TreeState).values(root_hash=bytes(32)))
        problems = [str(p) for p in trust_service.audit(session, REENCODERS)]
        assert any("leaf 4" in p and "stored leaf hash" in p for p in problems)
        assert any("leaf 4" in p and "no longer matches" in p for p in problems)
        assert any("level 2 position 1" in p for p in problems)
        assert any("signed root does not match" in p for p in problems)
        assert any("signature does not verify" in p for p in problems)
        assert any("stored root hash" in p for p in problems)


class TestLedgerWiring:
    def test_every_transfer_gets_a_leaf_and_an_edited_row_is_named(self, session: Session) -> None:
        wiring.install()
        account = citizen_account(session, funded=500)
        issuance = ledger_service.platform_account(session, ledger_service.POINT, "issuance")
        t = ledger_service.transfer(
            session,
            idempotency_key="trust-test-1",
            kind="test.credit",
            postings=[(issuance.id, -25), (account, 25)],
        )
        info = trust_service.leaf_for(session, leaf_codec.LEDGER_TRANSFER, str(t.id))
        assert info is not None and info.status == "pending"
        trust_service.publish(session)
        info = trust_service.leaf_for(session, leaf_codec.LEDGER_TRANSFER, str(t.id))
        assert info is not None and info.leaf_index is not None
        record = leaf_codec.decode(trust_service.get_leaf(session, info.leaf_index).leaf)
        assert record["data"]["postings"] == [
            {"account_id": issuance.id, "asset": ledger_service.POINT, "amount": -25},
            {"account_id": account, "asset": ledger_service.POINT, "amount": 25},
        ]
        assert trust_service.audit(session, wiring.TRUST_REENCODERS) == []

        # Behind the service's back: change the amount credited to the citizen.
        from tanhui.ledger.models import Posting

        session.execute(
            update(Posting)
            .where(Posting.transfer_id == t.id, Posting.account_id == account)
            .values(amount=2500)
        )
        problems = trust_service.audit(session, wiring.TRUST_REENCODERS)
        assert [(p.leaf_index, p.kind, p.ref) for p in problems] == [
            (info.leaf_index, leaf_codec.LEDGER_TRANSFER, str(t.id))
        ]

    def test_metadata_survives_the_round_trip(self, session: Session) -> None:
        wiring.install()
        account = citizen_account(session)
        issuance = ledger_service.platform_account(session, ledger_service.POINT, "issuance")
        ledger_service.transfer(
            session,
            idempotency_key="trust-test-meta",
            kind="test.credit",
            postings=[(issuance.id, -5), (account, 5)],
            metadata={"activity_id": 9},
        )
        trust_service.publish(session)
        assert trust_service.audit(session, wiring.TRUST_REENCODERS) == []

from __future__ import annotations

import itertools
import json
from pathlib import Path

from sqlalchemy import update
from typer.testing import CliRunner

from tanhui.cli import app
from tanhui.kit.db import session_scope
from tanhui.ledger import service as ledger_service
from tanhui.ledger.models import Posting
from tanhui.trust import leaf as leaf_codec
from tanhui.trust import service as trust_service
from tests.fixtures.ledger import citizen_account

runner = CliRunner()


_keys = itertools.count()


def _transfers(n: int) -> list[int]:
    ids = []
    with session_scope() as session:
        account = citizen_account(session)
        issuance = ledger_service.platform_account(session, ledger_service.POINT, "issuance")
        for i in range(n):
            t = ledger_service.transfer(
                session,
                idempotency_key=f"cli-trust-{next(_keys)}",
                kind="test.credit",
                postings=[(issuance.id, -(i + 1)), (account, i + 1)],
            )
            ids.append(t.id)
    return ids


def _ok(*args: str) -> str:
    result = runner.invoke(app, list(args))
    assert result.exit_code == 0, result.output
    return result.output


class TestCli:
    def test_publish_bundle_verify_and_tamper(self, database_url: str, tmp_path: Path) -> None:
        ids = _transfers(7)
        sth = json.loads(_ok("trust", "publish"))
        assert sth["tree_size"] == 7
        assert json.loads(_ok("trust", "sth")) == sth
        with session_scope() as session:
            info = trust_service.leaf_for(session, leaf_codec.LEDGER_TRANSFER, str(ids[3]))
        assert info is not None and info.leaf_index is not None
        bundle = tmp_path / "proof.json"
        pem = tmp_path / "key.pem"
        _ok("trust", "bundle", str(info.leaf_index), "-o", str(bundle))
        pem.write_text(_ok("trust", "public-key"))
        out = _ok("trust", "verify", str(bundle), "--public-key", str(pem))
        assert out.startswith(f"OK: leaf {info.leaf_index} (ledger.transfer {ids[3]})")

        data = json.loads(bundle.read_text())
        data["leaf"] = data["leaf"][:-4] + ("AAAA" if data["leaf"][-4:] != "AAAA" else "BBBB")
        bad = tmp_path / "bad.json"
        bad.write_text(json.dumps(data))
        result = runner.invoke(app, ["trust", "verify", str(bad), "--public-key", str(pem)])
        assert result.exit_code == 1
        assert "FAILED:" in result.output

        # Without a key the bundle's own key is used, and the command says what that means.
        assert "note: checked with the key inside the bundle" in _ok("trust", "verify", str(bundle))

    def test_audit_names_an_edited_row(self, database_url: str) -> None:
        ids = _transfers(4)
        _ok("trust", "integrate")
        assert "OK: 4 leaves" in _ok("trust", "audit")
        with session_scope() as session:
            session.execute(
                update(Posting)
                .where(Posting.transfer_id == ids[2])
                .values(amount=Posting.amount * 2)
            )
        result = runner.invoke(app, ["trust", "audit"])
        assert result.exit_code == 1
        assert f"MISMATCH leaf 2 (ledger.transfer {ids[2]}): record no longer matches" in (
            result.output
        )

    def test_consistency_file(self, database_url: str, tmp_path: Path) -> None:
        _transfers(3)
        first = json.loads(_ok("trust", "publish"))
        _transfers(2)
        second = json.loads(_ok("trust", "publish"))
        with session_scope() as session:
            proof = trust_service.consistency_proof(session, 3, 5)
        pem = tmp_path / "key.pem"
        pem.write_text(_ok("trust", "public-key"))
        f = tmp_path / "c.json"
        f.write_text(
            json.dumps(
                {"first": first, "second": second, "hashes": [trust_service.b64(h) for h in proof]}
            )
        )
        assert "OK: the signed tree of size 3" in _ok(
            "trust", "verify", str(f), "--public-key", str(pem)
        )
        f.write_text(json.dumps({"first": first, "second": second, "hashes": []}))
        assert (
            runner.invoke(app, ["trust", "verify", str(f), "--public-key", str(pem)]).exit_code == 1
        )

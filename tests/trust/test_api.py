from __future__ import annotations

import base64

import httpx
import pytest
from sqlalchemy.orm import Session

from tanhui.trust import leaf as leaf_codec
from tanhui.trust import merkle, signing, verify
from tanhui.trust import service as trust_service

KIND = "test.event"


def _fill(session: Session, n: int) -> None:
    trust_service.enqueue_many(session, ((KIND, str(i), {"n": i}) for i in range(n)))
    trust_service.publish(session)
    session.flush()


def _d(s: str) -> bytes:
    return base64.b64decode(s, validate=True)


class TestTreeHead:
    def test_sth_on_an_empty_log_is_signed(self, client: httpx.Client) -> None:
        r = client.get("/v1/trust/sth")
        assert r.status_code == 200
        body = r.json()
        assert set(body) == {"tree_size", "root_hash", "timestamp", "signature"}
        assert body["tree_size"] == 0 and _d(body["root_hash"]) == merkle.EMPTY_ROOT

    def test_sth_verifies_with_the_published_key(
        self, client: httpx.Client, session: Session
    ) -> None:
        _fill(session, 5)
        sth = client.get("/v1/trust/sth").json()
        pem = client.get("/v1/trust/public-key").json()["public_key_pem"]
        assert client.get("/v1/trust/public-key.pem").text == pem
        key = signing.load_public_key(pem)
        assert verify.verify_sth(sth, key)[0] == 5


class TestProofs:
    def test_inclusion_and_consistency_verify(self, client: httpx.Client, session: Session) -> None:
        _fill(session, 9)
        sth = client.get("/v1/trust/sth").json()
        root = _d(sth["root_hash"])
        leaf = client.get("/v1/trust/leaves/6").json()
        assert leaf["index"] == 6 and leaf["kind"] == KIND and leaf["ref"] == "6"
        assert leaf["record"]["data"] == {"n": 6}
        assert _d(leaf["leaf"]) == leaf_codec.encode(KIND, "6", {"n": 6})
        r = client.get("/v1/trust/proof/inclusion", params={"leaf_index": 6, "tree_size": 9})
        assert r.status_code == 200
        proof = r.json()
        assert (proof["leaf_index"], proof["tree_size"]) == (6, 9)
        merkle.verify_inclusion(
            6, 9, merkle.leaf_hash(_d(leaf["leaf"])), [_d(h) for h in proof["hashes"]], root
        )
        old_root = trust_service.root_at(session, 4)
        c = client.get("/v1/trust/proof/consistency", params={"first": 4, "second": 9}).json()
        assert (c["first"], c["second"]) == (4, 9)
        merkle.verify_consistency(4, 9, old_root, root, [_d(h) for h in c["hashes"]])

    @pytest.mark.parametrize(
        ("path", "params", "status"),
        [
            ("/v1/trust/proof/inclusion", {"leaf_index": 3, "tree_size": 3}, 400),
            ("/v1/trust/proof/inclusion", {"leaf_index": 0, "tree_size": 4}, 400),
            ("/v1/trust/proof/inclusion", {"leaf_index": -1, "tree_size": 2}, 422),
            ("/v1/trust/proof/inclusion", {"leaf_index": 0, "tree_size": 0}, 422),
            ("/v1/trust/proof/inclusion", {"leaf_index": 0, "tree_size": 2**64}, 422),
            ("/v1/trust/proof/inclusion", {"leaf_index": "x", "tree_size": 2}, 422),
            ("/v1/trust/proof/inclusion", {}, 422),
            ("/v1/trust/proof/consistency", {"first": 3, "second": 2}, 400),
            ("/v1/trust/proof/consistency", {"first": 1, "second": 4}, 400),
            ("/v1/trust/proof/consistency", {"first": -1, "second": 2}, 422),
            ("/v1/trust/leaves/3", {}, 404),
            ("/v1/trust/leaves/-1", {}, 422),
            ("/v1/trust/leaves/99999999999999999999", {}, 422),
            ("/v1/trust/bundle/3", {}, 404),
            ("/v1/trust/lookup", {"kind": KIND, "ref": "nope"}, 404),
        ],
    )
    def test_bad_input_is_a_problem_document(
        self,
        client: httpx.Client,
        session: Session,
        path: str,
        params: dict[str, int | str],
        status: int,
    ) -> None:
        _fill(session, 3)
        r = client.get(path, params=params)
        assert r.status_code == status, r.text
        assert r.headers["content-type"].startswith("application/problem+json")
        assert r.json()["code"]


class TestBundleDownload:
    def test_downloaded_bundle_verifies_offline(
        self, client: httpx.Client, session: Session
    ) -> None:
        _fill(session, 6)
        info = client.get("/v1/trust/lookup", params={"kind": KIND, "ref": "2"}).json()
        assert info["status"] == "integrated" and info["leaf_index"] == 2
        r = client.get("/v1/trust/bundle/2")
        assert r.status_code == 200
        assert "attachment" in r.headers["content-disposition"]
        key = signing.load_public_key(client.get("/v1/trust/public-key.pem").text)
        result = verify.verify_bundle(r.json(), key)
        assert result.leaf_index == 2 and result.tree_size == 6
        assert client.get("/v1/trust/leaves/2/proof").json() == r.json()

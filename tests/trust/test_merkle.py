"""The Merkle core against RFC 9162's own recursive definitions and published vectors.

The reference functions below transcribe RFC 9162 §2.1.1 (MTH), §2.1.3.1 (PATH) and §2.1.4.1
(PROOF/SUBPROOF) literally, recursing over lists of leaves: an independent implementation that
shares nothing with ``tanhui.trust.merkle`` except SHA-256. The published vectors are the 8-leaf
tree used by the certificate-transparency and transparency-dev/merkle test suites.
"""

from __future__ import annotations

import hashlib

import pytest
from hypothesis import given
from hypothesis import strategies as st

from tanhui.trust import merkle

MAX = 70


def ref_mth(d: list[bytes]) -> bytes:
    n = len(d)
    if n == 0:
        return hashlib.sha256(b"").digest()
    if n == 1:
        return hashlib.sha256(b"\x00" + d[0]).digest()
    k = 1
    while k * 2 < n:
        k *= 2
    return hashlib.sha256(b"\x01" + ref_mth(d[:k]) + ref_mth(d[k:])).digest()


def ref_path(m: int, d: list[bytes]) -> list[bytes]:
    n = len(d)
    if n == 1:
        return []
    k = 1
    while k * 2 < n:
        k *= 2
    if m < k:
        return [*ref_path(m, d[:k]), ref_mth(d[k:])]
    return [*ref_path(m - k, d[k:]), ref_mth(d[:k])]


def ref_subproof(m: int, d: list[bytes], b: bool) -> list[bytes]:
    n = len(d)
    if m == n:
        return [] if b else [ref_mth(d)]
    k = 1
    while k * 2 < n:
        k *= 2
    if m <= k:
        return [*ref_subproof(m, d[:k], b), ref_mth(d[k:])]
    return [*ref_subproof(m - k, d[k:], False), ref_mth(d[:k])]


def ref_proof(m: int, d: list[bytes]) -> list[bytes]:
    return ref_subproof(m, d, True)


LEAVES = [f"leaf {i}".encode() for i in range(MAX)]
TREE = merkle.MemoryTree(LEAVES)
# Reference roots for every prefix, computed once (the recursion is quadratic-ish).
REF_ROOTS = [ref_mth(LEAVES[:n]) for n in range(MAX + 1)]


def h(s: str) -> bytes:
    return bytes.fromhex(s)


# The 8-leaf tree from certificate-transparency / transparency-dev/merkle test data.
VEC_LEAVES = [h(x) for x in ["", "00", "10", "2021", "3031", "40414243", "5051525354555657",
                             "606162636465666768696a6b6c6d6e6f"]]  # fmt: skip
VEC_ROOTS = [
    h("e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"),
    h("6e340b9cffb37a989ca544e6bb780a2c78901d3fb33738768511a30617afa01d"),
    h("fac54203e7cc696cf0dfcb42c92a1d9dbaf70ad9e621f4bd8d98662f00e3c125"),
    h("aeb6bcfe274b70a14fb067a5e5578264db0fa9b51af5e0ba159158f329e06e77"),
    h("d37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7"),
    h("4e3bbb1f7b478dcfe71fb631631519a3bca12c9aefca1612bfce4c13a86264d4"),
    h("76e67dadbcdf1e10e1b74ddc608abd2f98dfb16fbce75277b5232a127f2087ef"),
    h("ddb89be403809e325750d3d263cd78929c2942b7942a34b77e122c9594a74c8c"),
    h("5dc9da79a70659a9ad559cb701ded9a2ab9d823aad2f4960cfe370eff4604328"),
]
# (leaf index, tree size, proof)
VEC_INCLUSION = [
    (0, 8, ["96a296d224f285c67bee93c30f8a309157f0daa35dc5b87e410b78630a09cfc7",
            "5f083f0a1a33ca076a95279832580db3e0ef4584bdff1f54c8a360f50de3031e",
            "6b47aaf29ee3c2af9af889bc1fb9254dabd31177f16232dd6aab035ca39bf6e4"]),
    (5, 8, ["bc1a0643b12e4d2d7c77918f44e0f4f79a838b6cf9ec5b5c283e1f4d88599e6b",
            "ca854ea128ed050b41b35ffc1b87b8eb2bde461e9e3b5596ece6b9d5975a0ae0",
            "d37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7"]),
    (2, 3, ["fac54203e7cc696cf0dfcb42c92a1d9dbaf70ad9e621f4bd8d98662f00e3c125"]),
    (1, 5, ["6e340b9cffb37a989ca544e6bb780a2c78901d3fb33738768511a30617afa01d",
            "5f083f0a1a33ca076a95279832580db3e0ef4584bdff1f54c8a360f50de3031e",
            "bc1a0643b12e4d2d7c77918f44e0f4f79a838b6cf9ec5b5c283e1f4d88599e6b"]),
]  # fmt: skip
# (first, second, proof)
VEC_CONSISTENCY = [
    (1, 1, []),
    (1, 8, ["96a296d224f285c67bee93c30f8a309157f0daa35dc5b87e410b78630a09cfc7",
            "5f083f0a1a33ca076a95279832580db3e0ef4584bdff1f54c8a360f50de3031e",
            "6b47aaf29ee3c2af9af889bc1fb9254dabd31177f16232dd6aab035ca39bf6e4"]),
    (6, 8, ["0ebc5d3437fbe2db158b9f126a1d118e308181031d0a949f8dededebc558ef6a",
            "ca854ea128ed050b41b35ffc1b87b8eb2bde461e9e3b5596ece6b9d5975a0ae0",
            "d37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7"]),
    (2, 5, ["5f083f0a1a33ca076a95279832580db3e0ef4584bdff1f54c8a360f50de3031e",
            "bc1a0643b12e4d2d7c77918f44e0f4f79a838b6cf9ec5b5c283e1f4d88599e6b"]),
    (6, 7, ["0ebc5d3437fbe2db158b9f126a1d118e308181031d0a949f8dededebc558ef6a",
            "b08693ec2e721597130641e8211e7eedccb4c26413963eee6c1e2ed16ffb1a5f",
            "d37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7"]),
]  # fmt: skip


class TestHashing:
    def test_prefixes(self) -> None:
        assert merkle.leaf_hash(b"") == hashlib.sha256(b"\x00").digest()
        assert merkle.node_hash(b"a", b"b") == hashlib.sha256(b"\x01ab").digest()

    def test_empty_root(self) -> None:
        assert merkle.MemoryTree().root() == VEC_ROOTS[0] == merkle.EMPTY_ROOT


class TestPublishedVectors:
    def test_roots(self) -> None:
        tree = merkle.MemoryTree(VEC_LEAVES)
        for n, root in enumerate(VEC_ROOTS):
            assert tree.root(n) == root, n

    @pytest.mark.parametrize(("index", "size", "proof"), VEC_INCLUSION)
    def test_inclusion(self, index: int, size: int, proof: list[str]) -> None:
        tree = merkle.MemoryTree(VEC_LEAVES)
        expected = [h(p) for p in proof]
        assert tree.inclusion_proof(index, size) == expected
        merkle.verify_inclusion(
            index, size, merkle.leaf_hash(VEC_LEAVES[index]), expected, VEC_ROOTS[size]
        )

    @pytest.mark.parametrize(("first", "second", "proof"), VEC_CONSISTENCY)
    def test_consistency(self, first: int, second: int, proof: list[str]) -> None:
        tree = merkle.MemoryTree(VEC_LEAVES)
        expected = [h(p) for p in proof]
        assert tree.consistency_proof(first, second) == expected
        merkle.verify_consistency(first, second, VEC_ROOTS[first], VEC_ROOTS[second], expected)


class TestAgainstRfcDefinitions:
    """Every size 1..70, every leaf index, every (m, n) pair."""

    def test_roots(self) -> None:
        for n in range(MAX + 1):
            assert TREE.root(n) == REF_ROOTS[n], n

    def test_inclusion_every_index(self) -> None:
        for n in range(1, MAX + 1):
            for m in range(n):
                proof = TREE.inclusion_proof(m, n)
                assert proof == ref_path(m, LEAVES[:n]), (m, n)
                merkle.verify_inclusion(m, n, merkle.leaf_hash(LEAVES[m]), proof, REF_ROOTS[n])

    def test_consistency_every_pair(self) -> None:
        for n in range(1, MAX + 1):
            for m in range(1, n + 1):
                proof = TREE.consistency_proof(m, n)
                assert proof == ref_proof(m, LEAVES[:n]), (m, n)
                merkle.verify_consistency(m, n, REF_ROOTS[m], REF_ROOTS[n], proof)

    def test_compact_range_roots(self) -> None:
        rng = merkle.CompactRange()
        for n, leaf in enumerate(LEAVES, start=1):
            rng.append(merkle.leaf_hash(leaf))
            assert rng.root() == REF_ROOTS[n]
            loaded = merkle.CompactRange.load(n, TREE.read)
            assert loaded.hashes == rng.hashes and loaded.levels == rng.levels


def _flip(proof: list[bytes], i: int, bit: int) -> list[bytes]:
    out = list(proof)
    out[i] = bytes([out[i][0] ^ bit]) + out[i][1:]
    return out


class TestInclusionRejects:
    def test_every_corruption_for_every_proof_up_to_33(self) -> None:
        for n in range(1, 34):
            root = REF_ROOTS[n]
            for m in range(n):
                lh = merkle.leaf_hash(LEAVES[m])
                proof = TREE.inclusion_proof(m, n)
                bad: list[tuple[int, int, bytes, list[bytes], bytes]] = [
                    (m, n, merkle.leaf_hash(b"other"), proof, root),
                    (m, n, lh, proof, REF_ROOTS[n - 1] if n > 1 else merkle.EMPTY_ROOT),
                    (m, n, lh, [*proof, root], root),
                    (m, n, lh, [root, *proof], root),
                    (m, n * 2, lh, proof, root),
                ]
                if m + 1 < n:
                    bad.append((m + 1, n, lh, proof, root))
                if proof:
                    bad.append((m, n, lh, proof[:-1], root))
                    bad += [(m, n, lh, _flip(proof, i, 8), root) for i in range(len(proof))]
                for args in bad:
                    with pytest.raises(merkle.ProofError):
                        merkle.verify_inclusion(*args)

    @pytest.mark.parametrize(("index", "size"), [(0, 0), (1, 1), (2, 1), (-1, 4)])
    def test_impossible_index(self, index: int, size: int) -> None:
        with pytest.raises(merkle.ProofError):
            merkle.verify_inclusion(index, size, bytes(32), [], bytes(32))

    def test_wrong_hash_length(self) -> None:
        lh = merkle.leaf_hash(b"x")
        with pytest.raises(merkle.ProofError):
            merkle.verify_inclusion(0, 1, lh, [], b"")
        with pytest.raises(merkle.ProofError):
            merkle.verify_inclusion(0, 2, lh, [b"short"], lh)


class TestConsistencyRejects:
    def test_every_corruption_for_every_pair_up_to_33(self) -> None:
        for n in range(2, 34):
            for m in range(1, n):
                r1, r2 = REF_ROOTS[m], REF_ROOTS[n]
                proof = TREE.consistency_proof(m, n)
                bad: list[tuple[int, int, bytes, bytes, list[bytes]]] = [
                    (m, n, r2, r1, proof),
                    (m, n, merkle.EMPTY_ROOT, r2, proof),
                    (m, n, r1, merkle.EMPTY_ROOT, proof),
                    (m, n, r1, r2, []),
                    (m, n, r1, r2, proof[:-1]),
                    (m, n, r1, r2, [*proof, r2]),
                    (m, n, r1, r2, [r1, *proof]),
                    (m, n * 2, r1, r2, proof),
                ]
                bad += [(m, n, r1, r2, _flip(proof, i, 16)) for i in range(len(proof))]
                for args in bad:
                    with pytest.raises(merkle.ProofError):
                        merkle.verify_consistency(*args)

    def test_edge_cases(self) -> None:
        r = REF_ROOTS[3]
        merkle.verify_consistency(0, 0, merkle.EMPTY_ROOT, merkle.EMPTY_ROOT, [])
        merkle.verify_consistency(0, 3, merkle.EMPTY_ROOT, r, [])
        merkle.verify_consistency(3, 3, r, r, [])
        with pytest.raises(merkle.ProofError):
            merkle.verify_consistency(3, 3, r, REF_ROOTS[2], [])
        with pytest.raises(merkle.ProofError):
            merkle.verify_consistency(3, 3, r, r, [r])
        with pytest.raises(merkle.ProofError):
            merkle.verify_consistency(0, 3, merkle.EMPTY_ROOT, r, [r])
        with pytest.raises(merkle.ProofError):
            merkle.verify_consistency(4, 3, r, r, [r])


class TestProperties:
    @given(st.integers(1, 5000), st.data())
    def test_inclusion_roundtrip_large(self, n: int, data: st.DataObject) -> None:
        m = data.draw(st.integers(0, n - 1))
        tree = _big_tree(n)
        proof = tree.inclusion_proof(m, n)
        assert len(proof) <= (n - 1).bit_length()
        merkle.verify_inclusion(m, n, tree.levels[0][m], proof, tree.root(n))

    @given(st.integers(1, 5000), st.data())
    def test_consistency_roundtrip_large(self, n: int, data: st.DataObject) -> None:
        m = data.draw(st.integers(1, n))
        tree = _big_tree(n)
        proof = tree.consistency_proof(m, n)
        merkle.verify_consistency(m, n, tree.root(m), tree.root(n), proof)

    @given(st.integers(1, 5000))
    def test_range_nodes_cover_exactly(self, n: int) -> None:
        keys = merkle.range_nodes(0, n)
        assert sum(1 << level for level, _ in keys) == n
        assert len(keys) == n.bit_count()


_BIG = merkle.MemoryTree(i.to_bytes(4, "big") for i in range(5000))


def _big_tree(n: int) -> merkle.MemoryTree:
    # Prefix trees share all nodes; proofs for size n only read nodes inside [0, n).
    assert n <= _BIG.size
    return _BIG

"""RFC 9162 §2.1 Merkle tree hashing, proofs and their verifiers: pure, no database.

The tree over ``n`` leaves is the RFC's: leaf hash ``SHA-256(0x00 || leaf)``, interior hash
``SHA-256(0x01 || left || right)``, and the split rule "left subtree = the largest power of two
smaller than n leaves". Every subtree that appears in that recursion is made of *perfect* (complete,
power-of-two sized, aligned) subtrees, which never change once all their leaves exist. Storage keeps
exactly those as nodes keyed by ``(level, index)`` -- the node covering leaves
``[index * 2**level, (index + 1) * 2**level)`` -- so a root or a proof of any size is computed from
O(log n) stored hashes. Proof generation here is therefore expressed as a *plan* (which leaf ranges
each proof element hashes) and a node reader that fetches the perfect nodes a plan needs in one go.

The verifiers follow RFC 9162 §2.1.3.2 and §2.1.4.2 step by step, plus the edge cases the RFC leaves
to the caller (equal sizes, an empty first tree), handled as transparency-dev/merkle does.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field

HASH_SIZE = 32
LEAF_PREFIX = b"\x00"
NODE_PREFIX = b"\x01"
# MTH({}) = SHA-256() (RFC 9162 §2.1.1).
EMPTY_ROOT = hashlib.sha256(b"").digest()

NodeKey = tuple[int, int]
"""(level, index) of a perfect subtree; level 0 is a leaf."""

NodeReader = Callable[[Iterable[NodeKey]], Mapping[NodeKey, bytes]]
"""Fetches the hashes of the given perfect subtrees (all of which must exist)."""


class ProofError(ValueError):
    """A proof does not verify, or its parameters are impossible; the message says why."""


def leaf_hash(leaf: bytes) -> bytes:
    return hashlib.sha256(LEAF_PREFIX + leaf).digest()


def node_hash(left: bytes, right: bytes) -> bytes:
    return hashlib.sha256(NODE_PREFIX + left + right).digest()


def _split(n: int) -> int:
    """The largest power of two strictly smaller than n (n >= 2): the RFC's k."""
    return 1 << ((n - 1).bit_length() - 1)


def range_nodes(start: int, end: int) -> list[NodeKey]:
    """The perfect subtrees, left to right, whose fold is MTH(D[start:end]).

    Only valid for ranges that occur in the RFC recursion, where ``start`` is a multiple of a power
    of two at least ``end - start``; then the binary digits of the size, highest first, are aligned
    perfect subtrees.
    """
    size = end - start
    if size <= 0:
        raise ValueError(f"empty range [{start}, {end})")
    keys: list[NodeKey] = []
    pos = start
    for level in range(size.bit_length() - 1, -1, -1):
        if size >> level & 1:
            if pos % (1 << level):
                raise ValueError(f"range [{start}, {end}) is not aligned to the tree")
            keys.append((level, pos >> level))
            pos += 1 << level
    return keys


def fold(hashes: Sequence[bytes]) -> bytes:
    """MTH of a range from its perfect subtrees (left to right); smaller ones hang on the right."""
    acc = hashes[-1]
    for h in reversed(hashes[:-1]):
        acc = node_hash(h, acc)
    return acc


def inclusion_ranges(index: int, size: int) -> list[tuple[int, int]]:
    """PATH(index, D[size]) (RFC 9162 §2.1.3.1) as leaf ranges, one per element, leaf first."""
    if not 0 <= index < size:
        raise ProofError(f"leaf index {index} is not in a tree of size {size}")
    out: list[tuple[int, int]] = []
    lo, hi = 0, size
    while hi - lo > 1:
        k = _split(hi - lo)
        if index - lo < k:
            out.append((lo + k, hi))
            hi = lo + k
        else:
            out.append((lo, lo + k))
            lo += k
    out.reverse()
    return out


def consistency_ranges(first: int, second: int) -> list[tuple[int, int]]:
    """PROOF(first, D[second]) (RFC 9162 §2.1.4.1) as leaf ranges, in the RFC's order."""
    if not 0 <= first <= second:
        raise ProofError(f"no consistency proof from size {first} to size {second}")
    if first == 0 or first == second:
        return []
    out: list[tuple[int, int]] = []
    lo, hi, m, complete = 0, second, first, True
    # SUBPROOF appends each sibling *after* the deeper part, so collect top-down and reverse.
    while m != hi - lo:
        k = _split(hi - lo)
        if m <= k:
            out.append((lo + k, hi))
            hi = lo + k
        else:
            out.append((lo, lo + k))
            lo, m, complete = lo + k, m - k, False
    if not complete:
        out.append((lo, hi))
    out.reverse()
    return out


def root_ranges(size: int) -> list[NodeKey]:
    return range_nodes(0, size) if size else []


def materialise(ranges: Sequence[tuple[int, int]], read: NodeReader) -> list[bytes]:
    """Hash each range from perfect nodes, fetching all of them with one call of ``read``."""
    plans = [range_nodes(a, b) for a, b in ranges]
    wanted = {key for plan in plans for key in plan}
    got = read(wanted) if wanted else {}
    missing = wanted - got.keys()
    if missing:
        raise LookupError(f"tree nodes missing from storage: {sorted(missing)[:5]}")
    return [fold([got[key] for key in plan]) for plan in plans]


def root_from_nodes(size: int, read: NodeReader) -> bytes:
    if size == 0:
        return EMPTY_ROOT
    return materialise([(0, size)], read)[0]


@dataclass
class CompactRange:
    """The perfect subtrees covering leaves [0, size): all an appender needs to keep in memory.

    ``hashes[i]`` is at ``levels[i]``, levels strictly decreasing (binary digits of ``size``).
    """

    size: int = 0
    levels: list[int] = field(default_factory=list)
    hashes: list[bytes] = field(default_factory=list)

    @classmethod
    def load(cls, size: int, read: NodeReader) -> CompactRange:
        keys = root_ranges(size)
        got = read(keys) if keys else {}
        return cls(size, [lv for lv, _ in keys], [got[k] for k in keys])

    def append(self, leaf_hash_: bytes) -> list[tuple[int, int, bytes]]:
        """Add a leaf; return the perfect nodes (level >= 1) it completed: (level, index, hash)."""
        created: list[tuple[int, int, bytes]] = []
        h, level = leaf_hash_, 0
        index = self.size
        while self.levels and self.levels[-1] == level:
            self.levels.pop()
            h = node_hash(self.hashes.pop(), h)
            level += 1
            index >>= 1
            created.append((level, index, h))
        self.levels.append(level)
        self.hashes.append(h)
        self.size += 1
        return created

    def root(self) -> bytes:
        return fold(self.hashes) if self.hashes else EMPTY_ROOT


class MemoryTree:
    """All perfect nodes in lists; for tests, the benchmark's reference and offline tools."""

    def __init__(self, leaves: Iterable[bytes] = ()) -> None:
        self.levels: list[list[bytes]] = [[]]
        self._range = CompactRange()
        for leaf in leaves:
            self.append(leaf)

    @property
    def size(self) -> int:
        return self._range.size

    def append(self, leaf: bytes) -> None:
        self.append_hash(leaf_hash(leaf))

    def append_hash(self, h: bytes) -> None:
        self.levels[0].append(h)
        for level, index, nh in self._range.append(h):
            if len(self.levels) <= level:
                self.levels.append([])
            assert len(self.levels[level]) == index
            self.levels[level].append(nh)

    def read(self, keys: Iterable[NodeKey]) -> dict[NodeKey, bytes]:
        return {(lv, ix): self.levels[lv][ix] for lv, ix in keys}

    def root(self, size: int | None = None) -> bytes:
        return root_from_nodes(self.size if size is None else size, self.read)

    def inclusion_proof(self, index: int, size: int) -> list[bytes]:
        self._check_size(size)
        return materialise(inclusion_ranges(index, size), self.read)

    def consistency_proof(self, first: int, second: int) -> list[bytes]:
        self._check_size(second)
        return materialise(consistency_ranges(first, second), self.read)

    def _check_size(self, size: int) -> None:
        if size > self.size:
            raise ProofError(f"tree size {size} is larger than the tree ({self.size})")


def _check_hash(name: str, value: bytes) -> None:
    if len(value) != HASH_SIZE:
        raise ProofError(f"{name} is {len(value)} bytes, expected {HASH_SIZE}")


def root_from_inclusion_proof(
    index: int, size: int, leaf_hash_: bytes, proof: Sequence[bytes]
) -> bytes:
    """RFC 9162 §2.1.3.2 steps 1-4: the root that ``proof`` implies for this leaf."""
    if not 0 <= index < size:
        raise ProofError(f"leaf index {index} is not in a tree of size {size}")
    _check_hash("leaf hash", leaf_hash_)
    fn, sn = index, size - 1
    r = leaf_hash_
    for i, p in enumerate(proof):
        _check_hash(f"proof[{i}]", p)
        if sn == 0:
            raise ProofError("inclusion proof is longer than the tree is deep")
        if fn & 1 or fn == sn:
            r = node_hash(p, r)
            if not fn & 1:
                while fn and not fn & 1:
                    fn >>= 1
                    sn >>= 1
        else:
            r = node_hash(r, p)
        fn >>= 1
        sn >>= 1
    if sn != 0:
        raise ProofError("inclusion proof is shorter than the tree is deep")
    return r


def verify_inclusion(
    index: int, size: int, leaf_hash_: bytes, proof: Sequence[bytes], root: bytes
) -> None:
    """Raise ProofError unless ``proof`` puts leaf ``index`` in the ``size`` tree with ``root``."""
    _check_hash("root hash", root)
    if root_from_inclusion_proof(index, size, leaf_hash_, proof) != root:
        raise ProofError("inclusion proof does not lead to the root hash")


def verify_consistency(
    first: int,
    second: int,
    first_root: bytes,
    second_root: bytes,
    proof: Sequence[bytes],
) -> None:
    """Raise ProofError unless ``proof`` shows tree ``first`` is a prefix of tree ``second``."""
    if not 0 <= first <= second:
        raise ProofError(f"size {first} is not at most size {second}")
    _check_hash("first root hash", first_root)
    _check_hash("second root hash", second_root)
    for i, p in enumerate(proof):
        _check_hash(f"proof[{i}]", p)
    # Edge cases outside the RFC's algorithm: every tree extends the empty tree, and a tree is
    # consistent with itself only if the roots match; both have an empty proof.
    if first == second:
        if proof:
            raise ProofError("consistency proof between equal sizes must be empty")
        if first_root != second_root:
            raise ProofError("equal sizes with different root hashes")
        return
    if first == 0:
        if proof:
            raise ProofError("consistency proof from the empty tree must be empty")
        return
    # RFC 9162 §2.1.4.2.
    if not proof:
        raise ProofError("consistency proof is empty")
    path = list(proof)
    if first & (first - 1) == 0:
        path.insert(0, first_root)
    fn, sn = first - 1, second - 1
    while fn & 1:
        fn >>= 1
        sn >>= 1
    fr = sr = path[0]
    for c in path[1:]:
        if sn == 0:
            raise ProofError("consistency proof is too long")
        if fn & 1 or fn == sn:
            fr = node_hash(c, fr)
            sr = node_hash(c, sr)
            if not fn & 1:
                while fn and not fn & 1:
                    fn >>= 1
                    sn >>= 1
        else:
            sr = node_hash(sr, c)
        fn >>= 1
        sn >>= 1
    if sn != 0:
        raise ProofError("consistency proof is too short")
    if fr != first_root:
        raise ProofError("consistency proof does not lead to the first root hash")
    if sr != second_root:
        raise ProofError("consistency proof does not lead to the second root hash")

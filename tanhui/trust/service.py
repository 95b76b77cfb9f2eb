"""The trust log's use cases: enqueue, integrate, sign, prove, audit.

Writers call `enqueue` inside their transaction; `integrate` (one at a time, in batches) turns the
queue into leaves and perfect-subtree nodes; `publish` integrates and signs a tree head. Proofs read
O(log n) stored hashes. See models.py for the storage design and docs/trust.md for the byte formats.
"""

from __future__ import annotations

import base64
import logging
import threading
import time
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from functools import lru_cache
from pathlib import Path
from typing import Any, cast

from sqlalchemy import Table, and_, delete, func, insert, or_, select, update
from sqlalchemy.orm import Session, sessionmaker

from tanhui.kit.db import SoleProcess, read_only_factory, session_scope, utcnow
from tanhui.kit.dialect import for_update, insert_ignore
from tanhui.kit.errors import Conflict, NotFound, TanhuiError
from tanhui.kit.settings import get_settings
from tanhui.trust import leaf as leaf_codec
from tanhui.trust import merkle, signing, verify
from tanhui.trust.models import Leaf, Node, QueuedLeaf, SignedTreeHead, TreeState

log = logging.getLogger("tanhui.trust")

_TREE_ID = 1
_QUEUE = cast(Table, QueuedLeaf.__table__)
_STATE = cast(Table, TreeState.__table__)
_CHUNK = 2000  # keeps IN lists well under SQLite's bound-parameter limit


class TrustError(TanhuiError):
    code = "trust_error"


class LeafNotFound(NotFound):
    code = "leaf_not_found"


class BadTreeSize(TanhuiError):
    """Well-formed sizes the log cannot answer for (beyond its size, index outside the tree)."""

    status_code = 400
    code = "bad_tree_size"


class NotYetSigned(Conflict):
    code = "not_yet_signed"


@dataclass(frozen=True)
class LeafInfo:
    kind: str
    ref: str
    leaf_index: int | None
    """None while the leaf waits in the queue (integration runs every second)."""
    leaf_hash: bytes

    @property
    def status(self) -> str:
        return "pending" if self.leaf_index is None else "integrated"


@dataclass(frozen=True)
class LeafRecord:
    leaf_index: int
    kind: str
    ref: str
    leaf: bytes
    leaf_hash: bytes
    queued_at: datetime
    integrated_at: datetime


@dataclass(frozen=True)
class TreeHead:
    tree_size: int
    root_hash: bytes
    timestamp_ms: int
    signature: bytes
    key_id: bytes

    def to_json(self) -> dict[str, Any]:
        return {
            "tree_size": self.tree_size,
            "root_hash": b64(self.root_hash),
            "timestamp": self.timestamp_ms,
            "signature": b64(self.signature),
        }


@dataclass(frozen=True)
class AuditProblem:
    leaf_index: int | None
    kind: str
    ref: str
    problem: str

    def __str__(self) -> str:
        where = "tree" if self.leaf_index is None else f"leaf {self.leaf_index}"
        return f"{where} ({self.kind} {self.ref}): {self.problem}"


Reencoder = Callable[[Session, Sequence[str]], Mapping[str, Mapping[str, Any]]]
"""Given refs of one leaf kind, the payload each record encodes to *now* (missing refs: deleted)."""


def b64(data: bytes) -> str:
    return base64.b64encode(data).decode()


# --- keys -------------------------------------------------------------------------------------


def key_path() -> Path:
    settings = get_settings()
    return settings.trust_key_path or settings.data_dir / "trust-ed25519.pem"


@lru_cache(maxsize=4)
def _signer_at(path: Path) -> signing.Signer:
    return signing.load_or_create_key(path)


def signer() -> signing.Signer:
    """The platform's tree-head key, generated on first use at `trust_key_path`."""
    return _signer_at(key_path())


def public_key_info() -> dict[str, str]:
    key = signer().public_key
    return {
        "algorithm": "Ed25519",
        "public_key_pem": signing.public_key_pem(key),
        "public_key": b64(signing.raw_public_key(key)),
        "key_id": b64(signing.key_id(key)),
    }


# --- writing ----------------------------------------------------------------------------------


def enqueue(session: Session, *, kind: str, ref: str, payload: Mapping[str, Any]) -> None:
    """Queue one record for the log, inside the caller's transaction (no lock is taken).

    Enqueuing the same (kind, ref) twice keeps the first; integration skips refs already logged.
    """
    enqueue_many(session, [(kind, ref, payload)])


def enqueue_many(session: Session, items: Iterable[tuple[str, str, Mapping[str, Any]]]) -> None:
    now = utcnow()
    rows = [
        {"kind": k, "ref": r, "leaf": leaf_codec.encode(k, r, p), "queued_at": now}
        for k, r, p in items
    ]
    if rows:
        session.execute(insert_ignore(session, _QUEUE, ["kind", "ref"]), rows)


def _lock_tree(session: Session) -> TreeState:
    # Create the state row on first use; racing creators are harmless with ON CONFLICT DO NOTHING.
    session.execute(
        insert_ignore(session, _STATE, ["id"]).values(
            id=_TREE_ID, size=0, root_hash=merkle.EMPTY_ROOT, updated_at=utcnow()
        )
    )
    state = session.execute(
        for_update(session, select(TreeState).where(TreeState.id == _TREE_ID))
    ).scalar_one()
    return state


def _tree_state(session: Session) -> tuple[int, bytes]:
    row = session.execute(
        select(TreeState.size, TreeState.root_hash).where(TreeState.id == _TREE_ID)
    ).first()
    return (0, merkle.EMPTY_ROOT) if row is None else (row.size, row.root_hash)


def tree_size(session: Session) -> int:
    return _tree_state(session)[0]


def node_reader(session: Session) -> merkle.NodeReader:
    """Reads perfect-subtree hashes: level 0 from trust_leaf, the rest from trust_node."""

    def read(keys: Iterable[merkle.NodeKey]) -> dict[merkle.NodeKey, bytes]:
        by_level: dict[int, list[int]] = {}
        for level, position in keys:
            by_level.setdefault(level, []).append(position)
        out: dict[merkle.NodeKey, bytes] = {}
        leaves = by_level.pop(0, [])
        if leaves:
            for index, h in session.execute(
                select(Leaf.leaf_index, Leaf.leaf_hash).where(Leaf.leaf_index.in_(leaves))
            ):
                out[(0, index)] = h
        if by_level:
            cond = or_(
                *(
                    and_(Node.level == level, Node.position.in_(positions))
                    for level, positions in by_level.items()
                )
            )
            for level, position, h in session.execute(
                select(Node.level, Node.position, Node.hash).where(cond)
            ):
                out[(level, position)] = h
        return out

    return read


def integrate(session: Session, *, limit: int = 10000) -> int:
    """Append up to `limit` queued leaves to the tree; return how many were appended.

    Holds the tree lock until the caller's transaction ends, so commit soon after.
    """
    state = _lock_tree(session)
    queued = session.execute(
        for_update(
            session,
            select(
                QueuedLeaf.id,
                QueuedLeaf.kind,
                QueuedLeaf.ref,
                QueuedLeaf.leaf,
                QueuedLeaf.queued_at,
            )
            .order_by(QueuedLeaf.id)
            .limit(limit),
            skip_locked=True,
        )
    ).all()
    if not queued:
        return 0
    already = _already_logged(session, [(q.kind, q.ref) for q in queued])
    read = node_reader(session)
    rng = merkle.CompactRange.load(state.size, read)
    now = utcnow()
    leaf_rows: list[dict[str, Any]] = []
    node_rows: list[dict[str, Any]] = []
    for q in queued:
        if (q.kind, q.ref) in already:
            continue
        already.add((q.kind, q.ref))
        h = merkle.leaf_hash(q.leaf)
        leaf_rows.append(
            {
                "leaf_index": rng.size,
                "kind": q.kind,
                "ref": q.ref,
                "leaf": q.leaf,
                "leaf_hash": h,
                "queued_at": q.queued_at,
                "integrated_at": now,
            }
        )
        node_rows.extend(
            {"level": lv, "position": pos, "hash": nh} for lv, pos, nh in rng.append(h)
        )
    if leaf_rows:
        session.execute(insert(Leaf.__table__), leaf_rows)  # type: ignore[arg-type]
    if node_rows:
        session.execute(insert(Node.__table__), node_rows)  # type: ignore[arg-type]
    ids = [q.id for q in queued]
    for start in range(0, len(ids), _CHUNK):
        session.execute(delete(QueuedLeaf).where(QueuedLeaf.id.in_(ids[start : start + _CHUNK])))
    session.execute(
        update(TreeState)
        .where(TreeState.id == _TREE_ID)
        .values(size=rng.size, root_hash=rng.root(), updated_at=now)
    )
    session.flush()
    session.expire(state)
    return len(leaf_rows)


def _already_logged(session: Session, keys: Sequence[tuple[str, str]]) -> set[tuple[str, str]]:
    found: set[tuple[str, str]] = set()
    by_kind: dict[str, list[str]] = {}
    for kind, ref in keys:
        by_kind.setdefault(kind, []).append(ref)
    for kind, refs in by_kind.items():
        for start in range(0, len(refs), _CHUNK):
            chunk = refs[start : start + _CHUNK]
            found.update(
                (kind, r)
                for r in session.execute(
                    select(Leaf.ref).where(Leaf.kind == kind, Leaf.ref.in_(chunk))
                ).scalars()
            )
    return found


def integrate_all(session: Session, *, batch: int = 10000) -> int:
    total = 0
    while n := integrate(session, limit=batch):
        total += n
    return total


def unlogged(session: Session, kind: str, refs: Sequence[str]) -> list[str]:
    """The refs of `kind` that have neither a leaf nor a queued entry: records the log never saw."""
    seen: set[str] = set()
    for start in range(0, len(refs), _CHUNK):
        chunk = list(refs[start : start + _CHUNK])
        for model in (Leaf, QueuedLeaf):
            seen.update(
                session.scalars(select(model.ref).where(model.kind == kind, model.ref.in_(chunk)))
            )
    return [r for r in refs if r not in seen]


def queue_length(session: Session) -> int:
    return session.execute(select(func.count()).select_from(QueuedLeaf)).scalar_one()


# --- tree heads -------------------------------------------------------------------------------


def _head(row: SignedTreeHead) -> TreeHead:
    return TreeHead(row.tree_size, row.root_hash, row.timestamp_ms, row.signature, row.key_id)


def latest_sth(session: Session) -> TreeHead | None:
    row = session.execute(
        select(SignedTreeHead).order_by(SignedTreeHead.id.desc()).limit(1)
    ).scalar_one_or_none()
    return None if row is None else _head(row)


def publish(session: Session, *, force: bool = False, integrate_first: bool = True) -> TreeHead:
    """Integrate the queue, then sign a tree head if the tree grew since the last (or `force`)."""
    if integrate_first:
        integrate_all(session)
    state = _lock_tree(session)
    last = latest_sth(session)
    if last is not None and last.tree_size == state.size and not force:
        return last
    key = signer()
    # Strictly increasing timestamps make "newest" unambiguous even within one millisecond.
    ts = int(utcnow().timestamp() * 1000)
    if last is not None and ts <= last.timestamp_ms:
        ts = last.timestamp_ms + 1
    sig = key.sign_tree_head(state.size, state.root_hash, ts)
    row = SignedTreeHead(
        tree_size=state.size,
        root_hash=state.root_hash,
        timestamp_ms=ts,
        signature=sig,
        key_id=signing.key_id(key.public_key),
    )
    session.add(row)
    session.flush()
    return _head(row)


def sth_for_size(session: Session, size: int) -> TreeHead | None:
    row = session.execute(
        select(SignedTreeHead)
        .where(SignedTreeHead.tree_size == size)
        .order_by(SignedTreeHead.id.desc())
        .limit(1)
    ).scalar_one_or_none()
    return None if row is None else _head(row)


# --- reading and proofs -----------------------------------------------------------------------


def _record(row: Leaf) -> LeafRecord:
    return LeafRecord(
        row.leaf_index,
        row.kind,
        row.ref,
        row.leaf,
        row.leaf_hash,
        row.queued_at,
        row.integrated_at,
    )


def get_leaf(session: Session, leaf_index: int) -> LeafRecord:
    row = session.get(Leaf, leaf_index) if leaf_index >= 0 else None
    if row is None:
        raise LeafNotFound(f"No leaf at index {leaf_index}", field="index")
    return _record(row)


def leaf_for(session: Session, kind: str, ref: str) -> LeafInfo | None:
    """Where a record is in the log: its index once integrated, pending while queued, else None."""
    row = session.execute(
        select(Leaf.leaf_index, Leaf.leaf_hash).where(Leaf.kind == kind, Leaf.ref == ref)
    ).first()
    if row is not None:
        return LeafInfo(kind, ref, row.leaf_index, row.leaf_hash)
    queued = session.execute(
        select(QueuedLeaf.leaf).where(QueuedLeaf.kind == kind, QueuedLeaf.ref == ref)
    ).scalar_one_or_none()
    if queued is not None:
        return LeafInfo(kind, ref, None, merkle.leaf_hash(queued))
    return None


def leaves_for(session: Session, kind: str, refs: Sequence[str]) -> dict[str, LeafInfo]:
    """`leaf_for` for a page of records in two queries (a citizen's history, a registry page)."""
    out: dict[str, LeafInfo] = {}
    for start in range(0, len(refs), _CHUNK):
        chunk = list(refs[start : start + _CHUNK])
        for r, index, h in session.execute(
            select(Leaf.ref, Leaf.leaf_index, Leaf.leaf_hash).where(
                Leaf.kind == kind, Leaf.ref.in_(chunk)
            )
        ):
            out[r] = LeafInfo(kind, r, index, h)
        missing = [r for r in chunk if r not in out]
        if missing:
            for r, leaf_bytes in session.execute(
                select(QueuedLeaf.ref, QueuedLeaf.leaf).where(
                    QueuedLeaf.kind == kind, QueuedLeaf.ref.in_(missing)
                )
            ):
                out[r] = LeafInfo(kind, r, None, merkle.leaf_hash(leaf_bytes))
    return out


def _check_size(session: Session, size: int, field: str) -> None:
    current = tree_size(session)
    if size < 0:
        raise BadTreeSize(f"{field} must not be negative", field=field)
    if size > current:
        raise BadTreeSize(f"{field} {size} is larger than the log ({current} leaves)", field=field)


def inclusion_proof(session: Session, leaf_index: int, tree_size_: int) -> list[bytes]:
    """The RFC 9162 inclusion proof (audit path) of a leaf in the tree of the given size."""
    _check_size(session, tree_size_, "tree_size")
    if not 0 <= leaf_index < tree_size_:
        raise BadTreeSize(
            f"leaf_index {leaf_index} is not in a tree of size {tree_size_}",
            field="leaf_index",
        )
    return merkle.materialise(merkle.inclusion_ranges(leaf_index, tree_size_), node_reader(session))


def consistency_proof(session: Session, first: int, second: int) -> list[bytes]:
    """The RFC 9162 consistency proof that the tree of size `first` is a prefix of `second`."""
    _check_size(session, second, "second")
    if not 0 <= first <= second:
        raise BadTreeSize(f"first {first} must be between 0 and second ({second})", field="first")
    return merkle.materialise(merkle.consistency_ranges(first, second), node_reader(session))


def root_at(session: Session, size: int) -> bytes:
    _check_size(session, size, "tree_size")
    return merkle.root_from_nodes(size, node_reader(session))


BUNDLE_FORMAT = verify.BUNDLE_FORMAT


def proof_bundle(
    session: Session, leaf_index: int, *, sign_if_needed: bool = True
) -> dict[str, Any]:
    """Everything `tanhui trust verify` (or any RFC 9162 verifier) needs offline for one leaf.

    The proof is against the newest signed tree head; if the leaf is newer than that head, a new
    head is signed first (unless `sign_if_needed` is false, then NotYetSigned).
    """
    record = get_leaf(session, leaf_index)
    sth = latest_sth(session)
    if sth is None or sth.tree_size <= leaf_index:
        if not sign_if_needed:
            raise NotYetSigned(f"Leaf {leaf_index} is not yet covered by a signed tree head")
        sth = publish(session, integrate_first=False)
    proof = inclusion_proof(session, leaf_index, sth.tree_size)
    return {
        "format": BUNDLE_FORMAT,
        "leaf_index": leaf_index,
        "leaf": b64(record.leaf),
        "leaf_hash": b64(record.leaf_hash),
        "record": leaf_codec.decode(record.leaf),
        "inclusion": {
            "leaf_index": leaf_index,
            "tree_size": sth.tree_size,
            "hashes": [b64(h) for h in proof],
        },
        "sth": sth.to_json(),
        "public_key_pem": signing.public_key_pem(signer().public_key),
        "key_id": b64(sth.key_id),
    }


# --- audit ------------------------------------------------------------------------------------


def iter_leaves(session: Session, *, batch: int = 5000) -> Iterator[list[LeafRecord]]:
    last = -1
    while True:
        rows = (
            session.execute(
                select(Leaf).where(Leaf.leaf_index > last).order_by(Leaf.leaf_index).limit(batch)
            )
            .scalars()
            .all()
        )
        if not rows:
            return
        yield [_record(r) for r in rows]
        last = rows[-1].leaf_index
        session.expunge_all()


def audit(
    session: Session,
    reencoders: Mapping[str, Reencoder],
    *,
    progress: Callable[[int], None] | None = None,
) -> list[AuditProblem]:
    """Recompute the whole log from the database and report every disagreement.

    Checks, per leaf: the stored leaf hash, and that the record the leaf names still encodes to the
    same bytes (via the kind's re-encoder). Over the tree: indexes are gap-free, every stored
    perfect-subtree node matches a recomputation, the tree state's root matches, and every signed
    tree head's root is the recomputed root at its size with a valid signature.
    """
    problems: list[AuditProblem] = []
    size, state_root = _tree_state(session)
    heads = session.execute(select(SignedTreeHead).order_by(SignedTreeHead.id)).scalars().all()
    heads_by_size: dict[int, list[TreeHead]] = {}
    for row in heads:
        heads_by_size.setdefault(row.tree_size, []).append(_head(row))
    public = signer().public_key
    rng = merkle.CompactRange()
    _check_heads(problems, heads_by_size.get(0, []), merkle.EMPTY_ROOT, public)
    for chunk in iter_leaves(session):
        expected_nodes: dict[merkle.NodeKey, bytes] = {}
        for rec in chunk:
            if rec.leaf_index != rng.size:
                problems.append(
                    AuditProblem(
                        rec.leaf_index,
                        rec.kind,
                        rec.ref,
                        f"index gap: expected {rng.size}",
                    )
                )
                return problems
            h = merkle.leaf_hash(rec.leaf)
            if h != rec.leaf_hash:
                problems.append(
                    AuditProblem(
                        rec.leaf_index,
                        rec.kind,
                        rec.ref,
                        "stored leaf hash does not match leaf bytes",
                    )
                )
            for lv, pos, nh in rng.append(h):
                expected_nodes[(lv, pos)] = nh
            for head in heads_by_size.get(rng.size, []):
                _check_heads(problems, [head], rng.root(), public)
        _check_nodes(session, problems, expected_nodes)
        _check_records(session, problems, chunk, reencoders)
        if progress is not None:
            progress(len(chunk))
    if rng.size != size:
        problems.append(
            AuditProblem(None, "tree", "state", f"state says {size} leaves, found {rng.size}")
        )
    elif rng.root() != state_root:
        problems.append(
            AuditProblem(None, "tree", "state", "stored root hash does not match the leaves")
        )
    for s, hs in heads_by_size.items():
        if s > rng.size:
            problems.append(
                AuditProblem(
                    None,
                    "sth",
                    str(hs[0].timestamp_ms),
                    f"signed size {s} exceeds the log",
                )
            )
    return problems


def _check_heads(
    problems: list[AuditProblem], heads: Sequence[TreeHead], root: bytes, key: Any
) -> None:
    for head in heads:
        ref = f"size {head.tree_size} at {head.timestamp_ms}"
        if head.root_hash != root:
            problems.append(AuditProblem(None, "sth", ref, "signed root does not match the leaves"))
        try:
            signing.verify_tree_head(
                key, head.tree_size, head.root_hash, head.timestamp_ms, head.signature
            )
        except merkle.ProofError:
            problems.append(AuditProblem(None, "sth", ref, "signature does not verify"))


def _check_nodes(
    session: Session,
    problems: list[AuditProblem],
    expected: Mapping[merkle.NodeKey, bytes],
) -> None:
    if not expected:
        return
    stored = node_reader(session)(expected.keys())
    for key, h in expected.items():
        if stored.get(key) != h:
            problems.append(
                AuditProblem(
                    None,
                    "node",
                    f"level {key[0]} position {key[1]}",
                    "stored node hash is wrong or missing",
                )
            )


def _check_records(
    session: Session,
    problems: list[AuditProblem],
    chunk: Sequence[LeafRecord],
    reencoders: Mapping[str, Reencoder],
) -> None:
    by_kind: dict[str, list[LeafRecord]] = {}
    for rec in chunk:
        by_kind.setdefault(rec.kind, []).append(rec)
    for kind, recs in by_kind.items():
        reencode = reencoders.get(kind)
        if reencode is None:
            problems.append(
                AuditProblem(
                    recs[0].leaf_index,
                    kind,
                    recs[0].ref,
                    f"no re-encoder for kind {kind!r}",
                )
            )
            continue
        now = reencode(session, [r.ref for r in recs])
        for rec in recs:
            payload = now.get(rec.ref)
            if payload is None:
                problems.append(
                    AuditProblem(rec.leaf_index, kind, rec.ref, "record no longer exists")
                )
                continue
            if leaf_codec.encode(kind, rec.ref, payload) != rec.leaf:
                problems.append(
                    AuditProblem(
                        rec.leaf_index,
                        kind,
                        rec.ref,
                        "record no longer matches its leaf",
                    )
                )


# --- background -------------------------------------------------------------------------------


_TICK_BATCH = 10_000  # leaves integrated per transaction by the background integrator


class BackgroundIntegrator:
    """Integrates the queue every `interval_s`; signs a new head every `sth_interval_s` if grown."""

    def __init__(
        self,
        session_factory: sessionmaker[Session],
        interval_s: float,
        sth_interval_s: float,
    ) -> None:
        self._factory = session_factory
        # Looking at the queue takes no writer lock on SQLite: an idle API process must not queue
        # for the database's one writer every second only to find nothing to do.
        self._reader = read_only_factory(session_factory)
        self._interval = interval_s
        self._sth_interval = sth_interval_s
        # Several API processes on one SQLite file: one integrates. When each did, under load one
        # often found the queue just emptied by another, yet held the one writer (up to ~20 ms) to
        # see so; and each signed its own heads.
        self._sole = SoleProcess(session_factory, "integrator")
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="trust-integrator", daemon=True)

    def start(self) -> BackgroundIntegrator:
        self._thread.start()
        return self

    def stop(self, timeout: float = 10.0) -> None:
        self._stop.set()
        self._thread.join(timeout)
        self._sole.release()

    def tick(self, *, sign: bool) -> int:
        # One short transaction per batch so the tree lock is never held across batches; a batch
        # smaller than the limit emptied the queue (what came meanwhile waits for the next tick).
        total = 0
        while self._waiting():
            with session_scope(self._factory) as session:
                n = integrate(session, limit=_TICK_BATCH)
            total += n
            if n < _TICK_BATCH:
                break
        if sign:
            with session_scope(self._factory) as session:
                publish(session, integrate_first=False)
        return total

    def _waiting(self) -> bool:
        with session_scope(self._reader) as session:
            return session.scalar(select(QueuedLeaf.id).limit(1)) is not None

    def _run(self) -> None:
        next_sign = 0.0
        while not self._stop.is_set():
            now = time.monotonic()
            sign = now >= next_sign
            try:
                if not self._sole.held():  # another process integrates; asked again next tick
                    self._stop.wait(self._interval)
                    continue
                self.tick(sign=sign)
                if sign:
                    next_sign = now + self._sth_interval
            except Exception:  # the loop must survive a busy database; it retries next tick
                log.exception("trust integration failed")
            self._stop.wait(self._interval)


def start_background_integrator(
    session_factory: sessionmaker[Session],
    interval_s: float = 1.0,
    sth_interval_s: float | None = None,
) -> BackgroundIntegrator:
    """Start the integrator thread (call from the app lifespan; `.stop()` on shutdown)."""
    if sth_interval_s is None:
        sth_interval_s = get_settings().trust_sth_interval_s
    return BackgroundIntegrator(session_factory, interval_s, sth_interval_s).start()

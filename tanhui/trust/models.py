"""Trust log tables: an RFC 9162 Merkle log kept in the database, fed without a global write lock.

Design
- Writers never touch the tree. Inside their own transaction they insert the canonical leaf bytes
  into `trust_queue` (a plain insert: no lock, no read of the tree). This is the "sequence in the
  writer's transaction, integrate in batches" split of Trillian and Tessera; Formance's advisory
  lock on every write is the mistake it avoids.
- One integrator at a time (the `trust_tree` row is its lock: `SELECT ... FOR UPDATE` on
  PostgreSQL; SQLite serialises writers anyway) pops queued rows in id order with
  `FOR UPDATE SKIP LOCKED`, gives them consecutive leaf indexes, and writes the new leaves and the
  perfect subtrees they complete. A queued row whose transaction commits late is simply taken by a
  later batch; leaf order is integration order, not queue-id order.
- `trust_node` stores the hash of every *perfect* subtree of level >= 1, keyed by (level, position):
  the node covering leaves [position * 2**level, (position + 1) * 2**level). Level 0 is
  `trust_leaf.leaf_hash`. Perfect subtrees never change once complete, so rows are insert-only; an
  append adds on average one node (at most log2 n), and the root of any size or any proof reads
  O(log n) of them -- never the whole log.
- `trust_tree` is the one-row state: integrated size and root. `trust_sth` keeps every signed tree
  head so clients can ask for consistency between any two.
- Leaves are unique per (kind, ref): the same record is never logged twice.
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import BigInteger, Index, Integer, LargeBinary, SmallInteger, String
from sqlalchemy.orm import Mapped, mapped_column

from tanhui.kit.db import Base, BigIntPK, UTCDateTime, utcnow


class TreeState(Base):
    __tablename__ = "trust_tree"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=False)
    size: Mapped[int] = mapped_column(BigInteger, default=0)
    root_hash: Mapped[bytes] = mapped_column(LargeBinary(32))
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


class QueuedLeaf(Base):
    __tablename__ = "trust_queue"
    __table_args__ = (Index("uq_trust_queue_kind_ref", "kind", "ref", unique=True),)

    id: Mapped[int] = mapped_column(BigIntPK, primary_key=True)
    kind: Mapped[str] = mapped_column(String(64))
    ref: Mapped[str] = mapped_column(String(128))
    leaf: Mapped[bytes] = mapped_column(LargeBinary)
    queued_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


class Leaf(Base):
    __tablename__ = "trust_leaf"
    __table_args__ = (Index("uq_trust_leaf_kind_ref", "kind", "ref", unique=True),)

    # Explicit, gap-free indexes given by the integrator; INTEGER on SQLite makes it the rowid.
    leaf_index: Mapped[int] = mapped_column(BigIntPK, primary_key=True, autoincrement=False)
    kind: Mapped[str] = mapped_column(String(64))
    ref: Mapped[str] = mapped_column(String(128))
    leaf: Mapped[bytes] = mapped_column(LargeBinary)
    leaf_hash: Mapped[bytes] = mapped_column(LargeBinary(32))
    queued_at: Mapped[datetime] = mapped_column(UTCDateTime)
    integrated_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


class Node(Base):
    __tablename__ = "trust_node"

    level: Mapped[int] = mapped_column(SmallInteger, primary_key=True, autoincrement=False)
    position: Mapped[int] = mapped_column(BigInteger, primary_key=True, autoincrement=False)
    hash: Mapped[bytes] = mapped_column(LargeBinary(32))


class SignedTreeHead(Base):
    __tablename__ = "trust_sth"

    id: Mapped[int] = mapped_column(BigIntPK, primary_key=True)
    tree_size: Mapped[int] = mapped_column(BigInteger, index=True)
    root_hash: Mapped[bytes] = mapped_column(LargeBinary(32))
    timestamp_ms: Mapped[int] = mapped_column(BigInteger)
    signature: Mapped[bytes] = mapped_column(LargeBinary(64))
    key_id: Mapped[bytes] = mapped_column(LargeBinary(32))

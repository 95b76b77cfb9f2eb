"""Trust log benchmark: batched appends per second and proof latency at 10^6 leaves, as JSON.

    .venv/bin/python bench/trust.py            # 1,000,000 leaves, SQLite (+ PostgreSQL if reachable)
    .venv/bin/python bench/trust.py --quick    # 50,000 leaves

For each database: enqueue (what a ledger writer pays, in its own transaction), integrate in batches
of 10,000 (leaf rows + perfect-subtree nodes + queue deletes + state update, one transaction each),
then inclusion and consistency proofs at random positions against the full tree. The baseline is a
raw INSERT of the same leaf rows into a plain table, i.e. the cost of storing the leaves at all.
Not a test: numbers vary by machine; nothing here is asserted.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import statistics
import sys
import tempfile
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from sqlalchemy import (
    BigInteger,
    Column,
    LargeBinary,
    MetaData,
    String,
    Table,
    insert,
    text,
)
from sqlalchemy.engine import make_url

PG_ADMIN = os.environ.get(
    "TANHUI_BENCH_POSTGRES_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/postgres"
)
BATCH = 10_000


def _payload(i: int) -> dict[str, Any]:
    from tanhui.trust import leaf as leaf_codec

    return leaf_codec.transfer_payload(
        transfer_id=i + 1,
        kind="activity.credit",
        created_at=datetime(2026, 1, 1, tzinfo=UTC),
        reverses_id=None,
        postings=[(1, "CO2E_MG", -(i % 5000 + 1)), (100 + i % 100_000, "CO2E_MG", i % 5000 + 1)],
        metadata={"activity_id": i},
        idempotency_key=f"activity:{i}",
    )


@contextmanager
def _database(backend: str, workdir: Path) -> Iterator[str]:
    from tanhui.kit.db import create_db_engine

    if backend == "sqlite":
        yield f"sqlite:///{workdir / 'bench.db'}"
        return
    name = f"tanhui_bench_{uuid.uuid4().hex[:8]}"
    admin = create_db_engine(PG_ADMIN, isolation_level="AUTOCOMMIT")
    with admin.connect() as c:
        c.execute(text(f'CREATE DATABASE "{name}"'))
    try:
        yield make_url(PG_ADMIN).set(database=name).render_as_string(hide_password=False)
    finally:
        with admin.connect() as c:
            c.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()


def _pg_reachable() -> bool:
    from tanhui.kit.db import create_db_engine

    try:
        engine = create_db_engine(PG_ADMIN, connect_args={"connect_timeout": 3})
        with engine.connect() as c:
            c.execute(text("SELECT 1"))
        engine.dispose()
        return True
    except Exception:  # noqa: BLE001 - any failure means "skip PostgreSQL"
        return False


def _timed(fn: Callable[[], Any]) -> float:
    start = time.perf_counter()
    fn()
    return time.perf_counter() - start


def _ms(samples: list[float]) -> dict[str, float]:
    samples = sorted(samples)
    return {
        "median_ms": round(statistics.median(samples) * 1000, 3),
        "p95_ms": round(samples[int(len(samples) * 0.95) - 1] * 1000, 3),
        "max_ms": round(samples[-1] * 1000, 3),
    }


def run_backend(backend: str, n: int, proofs: int, workdir: Path) -> dict[str, Any]:
    from tanhui.kit import migrate
    from tanhui.kit.db import create_db_engine, make_session_factory, session_scope
    from tanhui.trust import leaf as leaf_codec
    from tanhui.trust import merkle
    from tanhui.trust import service as trust_service

    kind = leaf_codec.LEDGER_TRANSFER
    with _database(backend, workdir) as url:
        migrate.upgrade(url)
        engine = create_db_engine(url)
        factory = make_session_factory(engine)
        log = lambda msg: print(f"[{backend}] {msg}", file=sys.stderr)  # noqa: E731

        log(f"encoding {n} leaves")
        items = [(kind, str(i + 1), _payload(i)) for i in range(n)]
        leaves = [leaf_codec.encode(k, r, p) for k, r, p in items]

        log("baseline: raw insert of the leaf rows")
        raw = Table(
            "bench_raw_leaf",
            MetaData(),
            Column("leaf_index", BigInteger, primary_key=True, autoincrement=False),
            Column("kind", String(64)),
            Column("ref", String(128)),
            Column("leaf", LargeBinary),
            Column("leaf_hash", LargeBinary(32)),
        )
        raw.create(engine)

        def baseline() -> None:
            for start in range(0, n, BATCH):
                rows = [
                    {
                        "leaf_index": i,
                        "kind": kind,
                        "ref": items[i][1],
                        "leaf": leaves[i],
                        "leaf_hash": merkle.leaf_hash(leaves[i]),
                    }
                    for i in range(start, min(n, start + BATCH))
                ]
                with session_scope(factory) as s:
                    s.execute(insert(raw), rows)

        t_raw = _timed(baseline)

        log("enqueue (the writers' cost)")

        def enqueue() -> None:
            for start in range(0, n, BATCH):
                with session_scope(factory) as s:
                    trust_service.enqueue_many(s, items[start : start + BATCH])

        t_enqueue = _timed(enqueue)

        log("integrate in batches")

        def integrate() -> None:
            while True:
                with session_scope(factory) as s:
                    if not trust_service.integrate(s, limit=BATCH):
                        return

        t_integrate = _timed(integrate)
        with session_scope(factory) as s:
            size = trust_service.tree_size(s)
            t_publish = _timed(lambda: trust_service.publish(s, force=True))
            sth = trust_service.latest_sth(s)
        assert size == n and sth is not None

        log("proofs")
        rnd = random.Random(2026)
        inc: list[float] = []
        con: list[float] = []
        with session_scope(factory) as s:
            for _ in range(proofs):
                m = rnd.randrange(n)
                start = time.perf_counter()
                p = trust_service.inclusion_proof(s, m, n)
                inc.append(time.perf_counter() - start)
                merkle.verify_inclusion(m, n, merkle.leaf_hash(leaves[m]), p, sth.root_hash)
            for _ in range(proofs):
                first = rnd.randrange(1, n)
                start = time.perf_counter()
                trust_service.consistency_proof(s, first, n)
                con.append(time.perf_counter() - start)
            t_root = _timed(lambda: trust_service.root_at(s, n - 1))
            nodes = s.execute(text("SELECT count(*) FROM trust_node")).scalar_one()
        engine.dispose()
    return {
        "leaves": n,
        "batch": BATCH,
        "baseline_raw_insert_rows_per_s": round(n / t_raw),
        "enqueue_rows_per_s": round(n / t_enqueue),
        "integrate_appends_per_s": round(n / t_integrate),
        "integrate_vs_raw_insert": round(t_integrate / t_raw, 2),
        "stored_nodes_above_leaves": nodes,
        "publish_ms": round(t_publish * 1000, 2),
        "root_at_any_size_ms": round(t_root * 1000, 2),
        "inclusion_proof": {**_ms(inc), "samples": proofs, "hashes": len(p)},
        "consistency_proof": {**_ms(con), "samples": proofs},
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="50,000 leaves instead of 10^6")
    parser.add_argument("--leaves", type=int, default=None)
    parser.add_argument("--proofs", type=int, default=200)
    parser.add_argument("--no-postgres", action="store_true")
    args = parser.parse_args()
    n = args.leaves or (50_000 if args.quick else 1_000_000)
    with tempfile.TemporaryDirectory() as tmp:
        os.environ["TANHUI_TRUST_KEY_PATH"] = str(Path(tmp) / "bench-key.pem")
        os.environ.setdefault("TANHUI_DATA_DIR", tmp)
        backends = ["sqlite"]
        if not args.no_postgres and _pg_reachable():
            backends.append("postgresql")
        result: dict[str, Any] = {"benchmark": "trust", "leaves": n, "results": {}}
        for backend in backends:
            result["results"][backend] = run_backend(backend, n, args.proofs, Path(tmp))
        if "postgresql" not in backends:
            result["results"]["postgresql"] = "skipped: not reachable at " + make_url(
                PG_ADMIN
            ).render_as_string(hide_password=True)
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()

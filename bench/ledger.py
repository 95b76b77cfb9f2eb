"""Ledger throughput: single-posting-pair transfers, batched and one by one, beside raw inserts.

    python -m bench.ledger [--quick]

Prints one JSON object per database, then a last line with all of them. The baseline inserts the very
same journal rows (transfer + two postings) with plain executemany, in the same run and database, so
the ratio shows what idempotency, validation, exact balances and queueing for the trust log cost.
"""

from __future__ import annotations

import argparse
import json
import time
from typing import Any

from sqlalchemy import insert
from sqlalchemy.orm import Session, sessionmaker

from bench._db import databases
from tanhui import wiring
from tanhui.kit.db import create_db_engine, make_session_factory, utcnow
from tanhui.ledger import service as ledger_service
from tanhui.ledger.models import Posting, Transfer

ACCOUNTS = 1_000


def _accounts(factory: sessionmaker[Session]) -> tuple[int, list[int], tuple[int, int]]:
    with factory.begin() as session:
        issuance = ledger_service.platform_account(session, ledger_service.POINT, "issuance").id
        ids = ledger_service.open_accounts(
            session, owner_type="citizen", owner_ids=range(ACCOUNTS), asset=ledger_service.POINT
        )
        # Raw rows bypass cached balances, so they go between two unbounded accounts (none cached).
        raw_pair = (
            ledger_service.platform_account(session, ledger_service.POINT, "bench-raw-a").id,
            ledger_service.platform_account(session, ledger_service.POINT, "bench-raw-b").id,
        )
    return issuance, list(ids.values()), raw_pair


def raw_inserts(
    factory: sessionmaker[Session], n: int, batch: int, tag: str, pair: tuple[int, int]
) -> float:
    source, target = pair
    start = time.perf_counter()
    for offset in range(0, n, batch):
        with factory.begin() as session:
            now = utcnow()
            ids = (
                session.execute(
                    insert(Transfer).returning(Transfer.id, sort_by_parameter_order=True),
                    [
                        {
                            "idempotency_key": f"{tag}-{i}",
                            "request_hash": "0" * 64,
                            "kind": "raw",
                            "metadata": {},
                            "created_at": now,
                        }
                        for i in range(offset, min(offset + batch, n))
                    ],
                )
                .scalars()
                .all()
            )
            session.execute(
                insert(Posting),
                [
                    row
                    for t in ids
                    for row in (
                        {
                            "transfer_id": t,
                            "account_id": source,
                            "asset_code": "POINT",
                            "amount": -7,
                        },
                        {
                            "transfer_id": t,
                            "account_id": target,
                            "asset_code": "POINT",
                            "amount": 7,
                        },
                    )
                ],
            )
    return n / (time.perf_counter() - start)


def batched(
    factory: sessionmaker[Session], n: int, batch: int, tag: str, issuance: int, accounts: list[int]
) -> float:
    start = time.perf_counter()
    for offset in range(0, n, batch):
        with factory.begin() as session:
            ledger_service.transfer_many(
                session,
                [
                    ledger_service.TransferRequest(
                        f"{tag}-{i}", "earn", ((issuance, -7), (accounts[i % len(accounts)], 7))
                    )
                    for i in range(offset, min(offset + batch, n))
                ],
            )
    return n / (time.perf_counter() - start)


def one_by_one(
    factory: sessionmaker[Session], n: int, tag: str, issuance: int, accounts: list[int]
) -> float:
    start = time.perf_counter()
    for i in range(n):
        with factory.begin() as session:
            ledger_service.transfer(
                session,
                idempotency_key=f"{tag}-{i}",
                kind="earn",
                postings=[(issuance, -7), (accounts[i % len(accounts)], 7)],
            )
    return n / (time.perf_counter() - start)


def measure(name: str, url: str, *, n_batch: int, n_single: int, batch: int) -> dict[str, Any]:
    engine = create_db_engine(url)
    factory = make_session_factory(engine)
    issuance, accounts, raw_pair = _accounts(factory)
    # Warm up both paths so neither pays for first-use compilation in the timed part.
    raw_inserts(factory, batch, batch, "warm-raw", raw_pair)
    batched(factory, batch, batch, "warm-batched", issuance, accounts)
    raw_batched = raw_inserts(factory, n_batch, batch, "raw", raw_pair)
    service_batched = batched(factory, n_batch, batch, "batched", issuance, accounts)
    raw_single = raw_inserts(factory, n_single, 1, "raw1", raw_pair)
    service_single = one_by_one(factory, n_single, "single", issuance, accounts)
    with factory.begin() as session:
        problems = ledger_service.check(session)
    engine.dispose()
    return {
        "database": name,
        "batch_size": batch,
        "batched": {
            "transfers_per_s": round(service_batched),
            "raw_insert_rows_per_s": round(raw_batched),
            "ratio_to_raw": round(service_batched / raw_batched, 3),
            "transfers": n_batch,
        },
        "one_by_one": {
            "transfers_per_s": round(service_single),
            "raw_insert_rows_per_s": round(raw_single),
            "ratio_to_raw": round(service_single / raw_single, 3),
            "transfers": n_single,
        },
        "ledger_check_clean": not problems,
    }


def main() -> None:
    wiring.install()  # measure the production path: every transfer is also queued for the trust log
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--quick", action="store_true", help="smaller runs (about a minute)")
    parser.add_argument("--batch", type=int, default=1000)
    args = parser.parse_args()
    n_batch, n_single = (20_000, 1_000) if args.quick else (100_000, 5_000)
    results = []
    for name, database in databases():
        with database as url:  # type: ignore[attr-defined]
            result = measure(name, url, n_batch=n_batch, n_single=n_single, batch=args.batch)
        print(json.dumps(result), flush=True)
        results.append(result)
    print(json.dumps({"benchmark": "ledger", "target_batched_ratio": 0.4, "results": results}))


if __name__ == "__main__":
    main()

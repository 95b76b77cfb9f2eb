"""Mall redemption under a race: N clients (one session each) for the last `stock` units of a reward.

    python -m bench.mall [--clients 200] [--stock 50] [--threads 32]

Prints one JSON object per database (orders/s over all attempts, successful orders, p50/p99 latency
of an attempt in ms), then a last line with all of them. Each attempt is a full order: point lots,
ledger hold and post, conditional stock decrement, a coupon code taken with SKIP LOCKED (PostgreSQL).
"""

from __future__ import annotations

import argparse
import json
import statistics
import time
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime
from typing import Any

from sqlalchemy.orm import Session, sessionmaker

from bench._db import databases
from tanhui import wiring
from tanhui.identity.principal import Principal
from tanhui.incentives import service as incentives_service
from tanhui.kit.db import create_db_engine, make_session_factory
from tanhui.kit.errors import TanhuiError
from tanhui.ledger import service as ledger_service
from tanhui.mall import service as mall_service

MERCHANT = Principal(kind="staff", id=1, roles=frozenset({"merchant"}), organisation_id=1)


def _setup(factory: sessionmaker[Session], clients: int, stock: int) -> int:
    with factory.begin() as session:
        reward = mall_service.create_reward(
            session,
            MERCHANT,
            category="green_travel",
            kind="coupon",
            title_zh="地铁券",
            price_points=100,
            stock=stock,
        )
        mall_service.generate_codes(session, MERCHANT, reward.id, stock + 10)
        at = datetime.now(UTC)
        incentives_service.award_points(
            session,
            [
                incentives_service.Award(c, 1_000_000, at, f"bench:{c}", f"bench:{c}")
                for c in range(1, clients + 1)
            ],
        )
        return reward.id


def measure(name: str, url: str, *, clients: int, stock: int, threads: int) -> dict[str, Any]:
    engine = create_db_engine(url, pool_size=threads, max_overflow=0)
    factory = make_session_factory(engine)
    reward_id = _setup(factory, clients, stock)

    def attempt(citizen: int) -> tuple[bool, float]:
        started = time.perf_counter()
        ok = True
        try:
            with factory.begin() as session:
                mall_service.place_order(
                    session,
                    Principal(kind="citizen", id=citizen),
                    reward_id=reward_id,
                    idempotency_key=f"bench-{citizen}",
                )
        except TanhuiError:
            ok = False
        return ok, (time.perf_counter() - started) * 1000

    started = time.perf_counter()
    with ThreadPoolExecutor(max_workers=threads) as pool:
        outcomes = list(pool.map(attempt, range(1, clients + 1)))
    elapsed = time.perf_counter() - started
    latencies = sorted(ms for _, ms in outcomes)
    with factory.begin() as session:
        problems = ledger_service.check(session)
    engine.dispose()
    return {
        "database": name,
        "clients": clients,
        "stock": stock,
        "threads": threads,
        "orders": sum(ok for ok, _ in outcomes),
        "attempts_per_s": round(clients / elapsed, 1),
        "orders_per_s": round(sum(ok for ok, _ in outcomes) / elapsed, 1),
        "p50_ms": round(statistics.median(latencies), 2),
        "p99_ms": round(latencies[min(len(latencies) - 1, int(len(latencies) * 0.99))], 2),
        "ledger_check_clean": not problems,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--clients", type=int, default=200)
    parser.add_argument("--stock", type=int, default=50)
    parser.add_argument("--threads", type=int, default=32)
    args = parser.parse_args()
    wiring.install()
    results = []
    for name, database in databases():
        with database as url:  # type: ignore[attr-defined]
            threads = 1 if name == "sqlite" else args.threads  # SQLite: one writer at a time anyway
            result = measure(name, url, clients=args.clients, stock=args.stock, threads=threads)
        print(json.dumps(result), flush=True)
        results.append(result)
    print(json.dumps({"benchmark": "mall", "results": results}))


if __name__ == "__main__":
    main()

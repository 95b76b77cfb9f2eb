"""Partner ingestion throughput: the pipeline in process and over signed HTTP, beside raw inserts.

    python -m bench.ingest [--quick]

For each database (SQLite; PostgreSQL when reachable) it measures, in the same run and database:
- raw: the same activity_record rows and journal rows (one CO2E transfer per batch with a posting per
  citizen, one POINT transfer per record) inserted with plain executemany — the floor;
- pipeline: `activity_service.ingest` in process, batches of 500 (records/s, peak traced memory);
- http: uvicorn in a subprocess on 127.0.0.1 (1 worker on SQLite, `--workers 2` on PostgreSQL),
  4 concurrent httpx clients posting signed batches of 500 (records/s, p50/p99 batch latency);
- stream (full run only): 2 million records through the pipeline, traced memory sampled on the way.
The last line is one JSON object with `ratio_to_raw` and `http_records_per_s` (SQLite) at its top.
Benchmarks are not tests: nothing here asserts a timing.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import socket
import statistics
import subprocess
import sys
import threading
import time
import tracemalloc
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
from sqlalchemy import insert
from sqlalchemy.orm import Session, sessionmaker

from bench._db import databases
from tanhui import wiring
from tanhui.activity import service as activity_service
from tanhui.activity.models import ActivityRecord
from tanhui.identity import service as identity_service
from tanhui.identity import signing
from tanhui.identity.principal import PartnerPrincipal, Principal
from tanhui.kit.db import create_db_engine, make_session_factory, utcnow
from tanhui.ledger import service as ledger_service
from tanhui.ledger.models import Posting, Transfer

BATCH = 500
SCENARIOS = ("metro", "bus", "bike_share", "walking", "ev_trip")
DISTANCE = {"metro": "12.4", "bus": "6.5", "bike_share": "2.8", "walking": "1.6", "ev_trip": "18"}
MINUTES = {"metro": 30, "bus": 25, "bike_share": 14, "walking": 20, "ev_trip": 22}


def setup(factory: sessionmaker[Session], citizens: int) -> tuple[dict[str, Any], list[str]]:
    """A partner, `citizens` bound citizens, and a lifted per-day review threshold (the benchmark
    sends many records per citizen per day, which would otherwise go to the review queue)."""
    with factory.begin() as session:
        created = identity_service.create_partner(
            session,
            None,
            name="bench",
            scenarios=list(SCENARIOS),
            redirect_uris=["https://bench.example/cb"],
        )
        principal = PartnerPrincipal(
            created.partner_id,
            created.organisation_id,
            created.key_id,
            "bench",
            frozenset(SCENARIOS),
            None,
        )
        activity_service.set_rule(
            session,
            Principal("staff", 0),
            scenario="*",
            params={"review_records_per_day": 1_000_000},
        )
        users = []
        for n in range(citizens):
            citizen = identity_service.citizen_for_phone(session, f"138{n:08d}")
            grant = identity_service.authorize(
                session,
                identity_service.citizen_principal(citizen),
                partner_id=created.partner_id,
                partner_user_id=f"bu{n}",
                scenarios=list(SCENARIOS),
                redirect_uri="https://bench.example/cb",
            )
            identity_service.exchange_code(session, principal, code=grant.code)
            users.append(f"bu{n}")
    info = {
        "partner_id": created.partner_id,
        "organisation_id": created.organisation_id,
        "key_id": created.key_id,
        "secret": created.secret,
    }
    return info, users


def records(users: list[str], start: int, n: int, tag: str) -> Iterator[dict[str, Any]]:
    """Realistic trips of the last day; each citizen's trips take consecutive, disjoint slots."""
    base = datetime.now(UTC) - timedelta(hours=23)
    for i in range(start, start + n):
        user = users[i % len(users)]
        slot = i // len(users)
        scenario = SCENARIOS[(i // 7) % len(SCENARIOS)]
        begin = base + timedelta(minutes=35 * (slot % 38))  # 38 slots of 35 min fit in 23 h
        yield {
            "external_id": f"{tag}-{i}",
            "partner_user_id": user,
            "scenario": scenario,
            "started_at": begin.isoformat(),
            "ended_at": (begin + timedelta(minutes=MINUTES[scenario])).isoformat(),
            "quantities": {"distance_km": DISTANCE[scenario], "steps": 2200}
            if scenario == "walking"
            else {"distance_km": DISTANCE[scenario]},
        }


def principal(info: dict[str, Any]) -> PartnerPrincipal:
    return PartnerPrincipal(
        info["partner_id"],
        info["organisation_id"],
        info["key_id"],
        "bench",
        frozenset(SCENARIOS),
        None,
    )


def pipeline(
    factory: sessionmaker[Session],
    info: dict[str, Any],
    users: list[str],
    n: int,
    tag: str,
    sample: list[int] | None = None,
) -> dict[str, Any]:
    p = principal(info)
    statuses: dict[str, int] = {}
    # tracemalloc slows Python several times over: only the memory run (sample given) traces.
    if sample is not None:
        tracemalloc.start()
    start = time.perf_counter()
    for offset in range(0, n, BATCH):
        batch = list(records(users, offset, min(BATCH, n - offset), tag))
        with factory.begin() as session:
            for r in activity_service.ingest(session, p, batch):
                statuses[r["status"]] = statuses.get(r["status"], 0) + 1
        if sample is not None and (offset // BATCH) % 200 == 0:
            sample.append(tracemalloc.get_traced_memory()[0])
    elapsed = time.perf_counter() - start
    out: dict[str, Any] = {
        "records": n,
        "seconds": round(elapsed, 2),
        "records_per_s": round(n / elapsed),
        "max_rss_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1),
        "statuses": statuses,
    }
    if sample is not None:
        out["peak_traced_mb"] = round(tracemalloc.get_traced_memory()[1] / 2**20, 1)
        tracemalloc.stop()
    return out


def raw(
    factory: sessionmaker[Session], info: dict[str, Any], users: list[str], n: int, tag: str
) -> dict[str, Any]:
    """The rows the pipeline writes, inserted directly: records, one CO2E transfer per batch with a
    posting per citizen, one POINT transfer (2 postings) per record. The records carry no citizen
    id, so they do not take cap room or trip spans from the pipeline's run that follows."""
    with factory.begin() as session:
        # Unbounded accounts: raw postings bypass cached balances, which `ledger check` would flag.
        co2 = {
            n: ledger_service.open_account(
                session,
                owner_type="bench",
                owner_id=n,
                asset=ledger_service.CO2E_MG,
                bounded=False,
            ).id
            for n in range(len(users))
        }
        issuance = ledger_service.platform_account(session, ledger_service.CO2E_MG, "bench-raw").id
        points = ledger_service.platform_account(session, ledger_service.POINT, "bench-raw").id
        points_b = ledger_service.platform_account(session, ledger_service.POINT, "bench-raw-b").id
    account_ids = list(co2.values())
    start = time.perf_counter()
    for offset in range(0, n, BATCH):
        batch = list(records(users, offset, min(BATCH, n - offset), tag))
        with factory.begin() as session:
            now = utcnow()
            rows = []
            for _k, r in enumerate(batch):
                s = datetime.fromisoformat(r["started_at"])
                rows.append(
                    {
                        "partner_id": info["partner_id"],
                        "external_id": r["external_id"],
                        "partner_user_id": r["partner_user_id"],
                        "citizen_id": None,
                        "scenario": r["scenario"],
                        "started_at": s,
                        "ended_at": datetime.fromisoformat(r["ended_at"]),
                        "day": s.date(),
                        "quantities": r["quantities"],
                        "evidence": None,
                        "methodology_id": "m",
                        "methodology_version": "1",
                        "computed_mg": 1000,
                        "reduction_mg": 1000,
                        "points": 0,
                        "status": "credited",
                        "code": None,
                        "detail": None,
                        "review_reasons": None,
                        "transfer_id": None,
                        "reversal_transfer_id": None,
                        "received_at": now,
                        "decided_at": now,
                        "decided_by": None,
                        "issued_ref": None,
                    }
                )
            session.execute(insert(ActivityRecord.__table__), rows)  # type: ignore[arg-type]
            keys = [f"{tag}-c-{offset}"] + [f"{tag}-p-{offset}-{k}" for k in range(len(batch))]
            ids = (
                session.execute(
                    insert(Transfer).returning(Transfer.id, sort_by_parameter_order=True),
                    [
                        {
                            "idempotency_key": key,
                            "request_hash": "0" * 64,
                            "kind": "raw",
                            "metadata": {},
                            "created_at": now,
                        }
                        for key in keys
                    ],
                )
                .scalars()
                .all()
            )
            citizens = account_ids[: min(len(batch), len(account_ids))]
            postings = [
                {
                    "transfer_id": ids[0],
                    "account_id": issuance,
                    "asset_code": "CO2E_MG",
                    "amount": -1000 * len(citizens),
                }
            ]
            postings += [
                {"transfer_id": ids[0], "account_id": a, "asset_code": "CO2E_MG", "amount": 1000}
                for a in citizens
            ]
            for tid in ids[1:]:
                postings.append(
                    {"transfer_id": tid, "account_id": points, "asset_code": "POINT", "amount": -1}
                )
                postings.append(
                    {"transfer_id": tid, "account_id": points_b, "asset_code": "POINT", "amount": 1}
                )
            session.execute(insert(Posting.__table__), postings)  # type: ignore[arg-type]
    elapsed = time.perf_counter() - start
    return {"records": n, "seconds": round(elapsed, 2), "records_per_s": round(n / elapsed)}


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def http(
    url: str, info: dict[str, Any], users: list[str], n: int, tag: str, workers: int
) -> dict[str, Any]:
    port = _free_port()
    env = {**os.environ, "TANHUI_DATABASE_URL": url, "TANHUI_LOG_LEVEL": "WARNING"}
    server = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "uvicorn",
            "tanhui.app:create_app",
            "--factory",
            "--host",
            "127.0.0.1",
            "--port",
            str(port),
            "--workers",
            str(workers),
            "--log-level",
            "warning",
            "--no-access-log",
        ],
        env=env,
    )
    base = f"http://127.0.0.1:{port}"
    try:
        for _ in range(300):
            try:
                if httpx.get(base + "/healthz", timeout=1).status_code == 200:
                    break
            except httpx.HTTPError:
                time.sleep(0.1)
        bodies = [
            json.dumps({"records": list(records(users, o, min(BATCH, n - o), tag))}).encode()
            for o in range(0, n, BATCH)
        ]
        latencies: list[float] = []
        errors: list[int] = []
        lock = threading.Lock()
        path = "/v1/partner/activities"

        def client(mine: list[bytes]) -> None:
            with httpx.Client(base_url=base, timeout=120) as c:
                for body in mine:
                    headers = {
                        "Content-Type": "application/json",
                        **signing.signed_headers(
                            info["key_id"], info["secret"], "POST", path, body
                        ),
                    }
                    t = time.perf_counter()
                    response = c.post(path, content=body, headers=headers)
                    took = time.perf_counter() - t
                    with lock:
                        latencies.append(took)
                        if response.status_code != 200:
                            errors.append(response.status_code)

        threads = [threading.Thread(target=client, args=(bodies[k::4],)) for k in range(4)]
        start = time.perf_counter()
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        elapsed = time.perf_counter() - start
    finally:
        server.terminate()
        server.wait(30)
    latencies.sort()
    return {
        "records": n,
        "seconds": round(elapsed, 2),
        "records_per_s": round(n / elapsed),
        "batches": len(latencies),
        "errors": len(errors),
        "api_processes": workers,
        "p50_batch_ms": round(statistics.median(latencies) * 1000, 1),
        "p99_batch_ms": round(
            latencies[min(len(latencies) - 1, int(len(latencies) * 0.99))] * 1000, 1
        ),
    }


def run(name: str, url: str, quick: bool) -> dict[str, Any]:
    factory = make_session_factory(create_db_engine(url))
    citizens = 2000 if quick else 5000
    info, users = setup(factory, citizens)
    n = 20_000 if quick else 100_000
    out: dict[str, Any] = {"database": name, "batch": BATCH, "citizens": citizens}
    out["raw"] = raw(factory, info, users, n, "raw")
    out["pipeline"] = pipeline(factory, info, users, n, "pipe")
    out["ratio_to_raw"] = round(out["pipeline"]["records_per_s"] / out["raw"]["records_per_s"], 3)
    out["http"] = http(url, info, users, n, "http", 1 if name == "sqlite" else 2)
    if not quick and name == "sqlite":
        samples: list[int] = []
        stream = pipeline(factory, info, users, 2_000_000, "stream", samples)
        stream["traced_mb_samples"] = [round(s / 2**20, 1) for s in samples]
        out["stream"] = stream
    with factory.begin() as session:
        out["ledger_check_problems"] = len(ledger_service.check(session))
    factory.kw["bind"].dispose()
    print(json.dumps(out), flush=True)
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--quick", action="store_true", help="smaller runs (within 5 minutes)")
    parser.add_argument("--sqlite-only", action="store_true")
    args = parser.parse_args()
    wiring.install()
    results = {}
    for name, database in databases(include_postgres=not args.sqlite_only):
        with database as url:  # type: ignore[attr-defined]
            results[name] = run(name, str(url), args.quick)
    sqlite = results["sqlite"]
    print(
        json.dumps(
            {
                "ratio_to_raw": sqlite["ratio_to_raw"],
                "http_records_per_s": sqlite["http"]["records_per_s"],
                "pipeline_records_per_s": sqlite["pipeline"]["records_per_s"],
                "raw_records_per_s": sqlite["raw"]["records_per_s"],
                "quick": args.quick,
                "databases": results,
            }
        )
    )


if __name__ == "__main__":
    main()

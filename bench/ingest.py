"""Partner ingestion throughput: the pipeline in process and over signed HTTP, beside raw inserts.

    python -m bench.ingest [--quick]

For each database (SQLite; PostgreSQL when reachable) it measures, in the same run and database:
- raw: rows the pipeline stores per batch (records, the batch's transfer with a CO2E and a POINT
  posting per citizen, its trust-log queue row, award rows, point lots) inserted with plain DBAPI
  executemany (`kit.bulk.execute_many`, as the pipeline writes its own hot rows) — the floor
  `ratio_to_raw` divides by; `ratio_by_baseline` (SQLite) also divides by a narrower floor
  (records and journal rows only, the issue's wording) and a wider one (adding the carries, daily
  totals and balances the pipeline also writes), each measured in a database of its own;
  `raw_core`, inserts through SQLAlchemy Core, is beside them;
- pipeline: `activity_service.ingest` in process, batches of 500 (records/s, max RSS), its batches
  taken in turn with raw ones (`paired`: the host's speed drifts within a run, and alternating
  meets both with the same moments);
- http: uvicorn in a subprocess on 127.0.0.1 with `--workers 2` (on SQLite they prepare batches in
  parallel and queue to write),
  4 concurrent clients (http.client) posting signed batches of 500 (records/s, p50/p99 batch latency),
  timed after 8 warm-up batches (a fresh process's first requests compile and load what it keeps);
- memory: a pass under tracemalloc (peak traced heap; 20k records quick, 100k full), and (full run
  only) 2 million records streamed through the pipeline with the RSS sampled every 100k records.
The last line is one JSON object with `ratio_to_raw` and `http_records_per_s` (SQLite) at its top,
and `http_to_raw` beside them: HTTP records/s ÷ raw records/s, the raw floor timed in two short
passes right before and right after the HTTP pass (`raw_around_http`).
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
from datetime import UTC, date, datetime, timedelta
from http.client import HTTPConnection
from typing import Any

import httpx
from sqlalchemy import Table, bindparam, insert, update
from sqlalchemy.orm import Session, sessionmaker

from bench._db import databases, sqlite_database
from tanhui import wiring
from tanhui.activity import service as activity_service
from tanhui.activity.models import ActivityDaily, ActivityRecord
from tanhui.identity import service as identity_service
from tanhui.identity import signing
from tanhui.identity.principal import PartnerPrincipal, Principal
from tanhui.incentives.models import Award as AwardRow
from tanhui.incentives.models import Carry, Lot
from tanhui.kit import dialect
from tanhui.kit.bulk import execute_many
from tanhui.kit.db import create_db_engine, make_session_factory, utcnow
from tanhui.kit.runtime import settle_collector
from tanhui.ledger import service as ledger_service
from tanhui.ledger.models import Account, Posting, Transfer
from tanhui.ledger.service import CO2E_MG, POINT
from tanhui.trust.models import QueuedLeaf

BATCH = 500
WARMUP_BATCHES = 8  # sent over HTTP before the timed pass (4 clients, 2 each)
SCENARIOS = ("metro", "bus", "bike_share", "walking", "ev_trip")
DISTANCE = {"metro": "12.4", "bus": "6.5", "bike_share": "2.8", "walking": "1.6", "ev_trip": "18"}
RAW_CITIZEN = 1_000_000_000  # citizen ids of the raw baseline's awards and lots: no real citizen
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


TRIPS_PER_DAY = 20  # a citizen's trips per day in the benchmark, 35 minutes apart
DAYS = 28  # spread over the last 28 days (records older than 30 days are refused)


def records(users: list[str], start: int, n: int, tag: str) -> Iterator[dict[str, Any]]:
    """Realistic trips of the last four weeks; each citizen's trips take consecutive, disjoint slots,
    so records with distinct indexes never overlap (each pass of the benchmark takes its own index
    range: a pass that re-used another's slots would measure overlap rejections, not crediting)."""
    base = datetime.now(UTC) - timedelta(hours=23)
    for i in range(start, start + n):
        user = users[i % len(users)]
        slot = (i // len(users)) % (TRIPS_PER_DAY * DAYS)
        scenario = SCENARIOS[(i // 7) % len(SCENARIOS)]
        begin = base - timedelta(days=slot // TRIPS_PER_DAY, minutes=-35 * (slot % TRIPS_PER_DAY))
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


def _rss_mb() -> float:
    """Current resident set size (Linux /proc; falls back to the peak elsewhere)."""
    try:
        with open("/proc/self/statm") as f:
            return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2**20
    except OSError:
        return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def pipeline(
    factory: sessionmaker[Session],
    info: dict[str, Any],
    users: list[str],
    n: int,
    tag: str,
    sample: list[float] | None = None,
    trace: bool = False,
    first: int = 0,
) -> dict[str, Any]:
    """`sample` collects the current RSS (MB) every 100k records; `trace` runs under tracemalloc
    (several times slower: only in a memory pass, never in a throughput one)."""
    p = principal(info)
    statuses: dict[str, int] = {}
    traced: list[float] = []
    if trace:
        tracemalloc.start()
    start = time.perf_counter()
    for offset in range(0, n, BATCH):
        batch = list(records(users, first + offset, min(BATCH, n - offset), tag))
        with factory.begin() as session:
            for r in activity_service.ingest(session, p, batch):
                statuses[r["status"]] = statuses.get(r["status"], 0) + 1
        if (offset // BATCH) % 200 == 0:
            if sample is not None:
                sample.append(round(_rss_mb(), 1))
            if trace:
                traced.append(round(tracemalloc.get_traced_memory()[0] / 2**20, 1))
    elapsed = time.perf_counter() - start
    out: dict[str, Any] = {
        "records": n,
        "seconds": round(elapsed, 2),
        "records_per_s": round(n / elapsed),
        "max_rss_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1),
        "statuses": statuses,
    }
    if trace:
        out["traced_mb_samples"] = traced
        out["peak_traced_mb"] = round(tracemalloc.get_traced_memory()[1] / 2**20, 1)
        tracemalloc.stop()
    return out


# The raw baselines, each a superset of the one before (see RawBaseline).
JOURNAL, INSERTS, STORED = "journal", "inserts", "stored"


class RawBaseline:
    """Rows the pipeline writes per batch, written directly with plain executemany — the floor.

    `driver_level`: through `kit.bulk.execute_many` (one DBAPI executemany per table, the way the
    pipeline itself writes its hot rows; the baseline `ratio_to_raw` divides by), or else through
    SQLAlchemy Core's `session.execute(insert(table), rows)` (reported beside it as `raw_core`).
    `rows` says which:
    - `journal` (the issue's words: "the same record and journal rows inserted directly"): the
      records, with their transfer id and points already known, and the batch's one transfer (CO2E
      credit and POINT award together) with a posting per citizen of the batch and asset plus the
      two issuance postings;
    - `inserts` (the default, and `ratio_to_raw`'s baseline since earlier sessions): those, plus
      the transfer's trust-log queue row (leaf bytes of a realistic size), one award row per record
      (source, citizen, reduction, points, transfer id) and the point lots, one upsert row per
      (citizen, day earned, expiry);
    - `stored`: those, plus the running totals the pipeline also writes per batch: one upsert row
      per citizen of the point carries and of the daily totals (with span bounds), and the cached
      balance of each posting's account.
    None reads or decides what the pipeline does (bindings, rules, caps, overlaps). The records
    carry no citizen id and the awards, lots, carries and daily totals name citizen ids no real
    citizen has, so they take no cap room, trip spans or carry from the pipeline's batches. Raw
    postings go to the benchmark's own accounts, whose balances `stored` keeps equal to them."""

    def __init__(
        self,
        factory: sessionmaker[Session],
        info: dict[str, Any],
        users: list[str],
        *,
        driver_level: bool = True,
        rows: str = INSERTS,
    ) -> None:
        self.factory, self.info, self.users, self.driver_level = factory, info, users, driver_level
        self.rows = rows
        with factory.begin() as session:
            self.accounts = {
                asset: [
                    ledger_service.open_account(
                        session, owner_type="bench", owner_id=k, asset=asset, bounded=False
                    ).id
                    for k in range(len(users))
                ]
                for asset in (CO2E_MG, POINT)
            }
            self.issuance = {
                asset: ledger_service.platform_account(session, asset, "bench-raw").id
                for asset in (CO2E_MG, POINT)
            }
            self.upsert_lots = dialect.upsert_add(
                session,
                Lot.__table__,  # type: ignore[arg-type]
                ["citizen_id", "earned_on", "expires_on"],
                ["points", "remaining"],
            )
            self.upsert_carries = dialect.upsert_set(
                session,
                Carry.__table__,  # type: ignore[arg-type]
                ["citizen_id"],
                ["carry_mg", "total_mg", "total_points"],
            )
            self.upsert_daily = dialect.upsert_add(
                session,
                ActivityDaily.__table__,  # type: ignore[arg-type]
                ["citizen_id", "scenario", "day"],
                ["credited_mg", "records"],
                lowest=["first_started_at"],
                highest=["last_ended_at"],
            )
        accounts: Table = Account.__table__  # type: ignore[assignment]
        self.credit_balance = (
            update(accounts)
            .where(accounts.c.id == bindparam("account_id"))
            .values(balance=accounts.c.balance + bindparam("delta"))
        )
        self.leaf = b"\x00" * 40 + json.dumps({"postings": [[1, "POINT", 10]] * 2 * BATCH}).encode()
        self.statements = {
            table: insert(table.__table__)  # type: ignore[arg-type]
            for table in (Posting, QueuedLeaf, ActivityRecord, AwardRow)
        }

    def _many(self, session: Session, stmt: Any, rows: list[dict[str, Any]]) -> None:
        if self.driver_level:
            execute_many(session, stmt, rows)
        else:
            session.execute(stmt, rows)

    def write(self, offset: int, n: int, tag: str) -> None:
        """The rows of the batch of `n` benchmark records from index `offset`, in one transaction."""
        users = self.users
        batch = list(records(users, offset, n, tag))
        with self.factory.begin() as session:
            now = utcnow()
            (tid,) = (
                session.execute(
                    insert(Transfer).returning(Transfer.id, sort_by_parameter_order=True),
                    [
                        {
                            "idempotency_key": f"{tag}-credit-{offset}",
                            "request_hash": "0" * 64,
                            "kind": "raw",
                            "metadata": {"partner_id": self.info["partner_id"], "records": n},
                            "created_at": now,
                        }
                    ],
                )
                .scalars()
                .all()
            )
            owners = sorted({(offset + k) % len(users) for k in range(len(batch))})
            postings = []
            for asset, amount in ((CO2E_MG, 27_000), (POINT, 2)):
                postings.append(
                    {
                        "transfer_id": tid,
                        "account_id": self.issuance[asset],
                        "asset_code": asset,
                        "amount": -amount * len(owners),
                    }
                )
                postings += [
                    {
                        "transfer_id": tid,
                        "account_id": self.accounts[asset][o],
                        "asset_code": asset,
                        "amount": amount,
                    }
                    for o in owners
                ]
            self._many(session, self.statements[Posting], postings)
            if self.rows != JOURNAL:
                self._many(
                    session,
                    self.statements[QueuedLeaf],
                    [
                        {
                            "kind": "ledger.transfer",
                            "ref": str(tid),
                            "leaf": self.leaf,
                            "queued_at": now,
                        }
                    ],
                )
            rows = []
            awards = []
            for k, r in enumerate(batch):
                s = datetime.fromisoformat(r["started_at"])
                rows.append(
                    {
                        "partner_id": self.info["partner_id"],
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
                        "computed_mg": 27_000,
                        "reduction_mg": 27_000,
                        "points": 2,
                        "status": "credited",
                        "code": None,
                        "detail": None,
                        "review_reasons": None,
                        "transfer_id": tid,
                        "reversal_transfer_id": None,
                        "received_at": now,
                        "decided_at": now,
                        "decided_by": None,
                        "issued_ref": None,
                    }
                )
                awards.append(
                    {
                        "idempotency_key": f"{tag}-a-{offset + k}",
                        "request_hash": "0" * 64,
                        "citizen_id": RAW_CITIZEN + (offset + k) % len(users),
                        "source": f"{tag}-a-{offset + k}",
                        "campaign": "base",
                        "reduction_mg": 27_000,
                        "mg_per_point": 10_000,
                        "points": 2,
                        "capped_points": 0,
                        "earned_at": s,
                        "lot_id": None,
                        "transfer_id": tid,
                        "revoked": False,
                        "revoked_points": 0,
                        "revoke_transfer_id": None,
                        "created_at": now,
                    }
                )
            self._many(session, self.statements[ActivityRecord], rows)
            if self.rows == JOURNAL:
                return
            self._many(session, self.statements[AwardRow], awards)
            if self.rows == STORED:
                self._write_totals(session, batch, offset, postings)
            today = now.date()
            self._many(
                session,
                self.upsert_lots,
                [
                    {
                        "citizen_id": RAW_CITIZEN + o,
                        "earned_on": today,
                        "expires_on": date(today.year + 1, 12, 31),
                        "points": 2,
                        "remaining": 2,
                        "expired": 0,
                        "created_at": now,
                    }
                    for o in owners
                ],
            )

    def _write_totals(
        self,
        session: Session,
        batch: list[dict[str, Any]],
        offset: int,
        postings: list[dict[str, Any]],
    ) -> None:
        daily: dict[tuple[int, str, date], list[Any]] = {}
        for k, r in enumerate(batch):
            start = datetime.fromisoformat(r["started_at"])
            end = datetime.fromisoformat(r["ended_at"])
            key = (RAW_CITIZEN + (offset + k) % len(self.users), r["scenario"], start.date())
            known = daily.get(key)
            if known is None:
                daily[key] = [27_000, 1, start, end]
            else:
                known[0] += 27_000
                known[1] += 1
                known[2], known[3] = min(known[2], start), max(known[3], end)
        self._many(
            session,
            self.upsert_daily,
            [
                {
                    "citizen_id": c,
                    "scenario": s,
                    "day": d,
                    "credited_mg": v[0],
                    "records": v[1],
                    "first_started_at": v[2],
                    "last_ended_at": v[3],
                }
                for (c, s, d), v in sorted(daily.items())
            ],
        )
        citizens = sorted({key[0] for key in daily})
        self._many(
            session,
            self.upsert_carries,
            [
                {"citizen_id": c, "carry_mg": 7_000, "total_mg": 27_000, "total_points": 2}
                for c in citizens
            ],
        )
        self._many(
            session,
            self.credit_balance,
            [
                {"account_id": p["account_id"], "delta": p["amount"]}
                for p in sorted(postings, key=lambda p: p["account_id"])
            ],
        )


def raw(
    factory: sessionmaker[Session],
    info: dict[str, Any],
    users: list[str],
    n: int,
    tag: str,
    *,
    driver_level: bool = True,
) -> dict[str, Any]:
    """A pass of `RawBaseline` batches alone."""
    baseline = RawBaseline(factory, info, users, driver_level=driver_level)
    start = time.perf_counter()
    for offset in range(0, n, BATCH):
        baseline.write(offset, min(BATCH, n - offset), tag)
    elapsed = time.perf_counter() - start
    return {"records": n, "seconds": round(elapsed, 2), "records_per_s": round(n / elapsed)}


def paired(
    factory: sessionmaker[Session],
    info: dict[str, Any],
    users: list[str],
    n: int,
    rows: str = INSERTS,
) -> dict[str, Any]:
    """Batches of one raw baseline and of the pipeline in turn, each timed alone; `ratio_to_raw` is
    pipeline ÷ raw.

    The host's speed drifts by 10-25% within a run (a pure-Python loop times between 455 and 636
    ms here, minutes apart); passes one after the other would each meet a different moment, while
    alternating batches gives both the same. Each figure is records over the sum of that side's own
    batch times, generating its records included. Only one baseline alternates with the pipeline:
    a third writer in the same database (more WAL to checkpoint, more pages to cache) slowed the
    pipeline's batches measurably, so `other_baselines` measures each other one in a database of
    its own."""
    baseline = RawBaseline(factory, info, users, rows=rows)
    p = principal(info)
    raw_s = pipe_s = 0.0
    statuses: dict[str, int] = {}
    for offset in range(0, n, BATCH):
        size = min(BATCH, n - offset)
        start = time.perf_counter()
        baseline.write(offset, size, f"raw-{rows}")
        raw_s += time.perf_counter() - start
        start = time.perf_counter()
        batch = list(records(users, offset, size, "pipe"))
        with factory.begin() as session:
            for r in activity_service.ingest(session, p, batch):
                statuses[r["status"]] = statuses.get(r["status"], 0) + 1
        pipe_s += time.perf_counter() - start
    return {
        "raw": {"records": n, "seconds": round(raw_s, 2), "records_per_s": round(n / raw_s)},
        "pipeline": {
            "records": n,
            "seconds": round(pipe_s, 2),
            "records_per_s": round(n / pipe_s),
            "max_rss_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1),
            "statuses": statuses,
        },
        "ratio_to_raw": round(raw_s / pipe_s, 3),
    }


def other_baselines(citizens: int, n: int) -> dict[str, Any]:
    """`paired` against the `journal` and `stored` baselines, each in a fresh SQLite database set
    up as the main one: pipeline ÷ raw for each (`ratio_by_baseline` adds the main `inserts`)."""
    out: dict[str, Any] = {}
    for rows in (JOURNAL, STORED):
        with sqlite_database() as url:
            factory = make_session_factory(create_db_engine(url))
            info, users = setup(factory, citizens)
            measured = paired(factory, info, users, n, rows)
            factory.kw["bind"].dispose()
        out[rows] = {"raw_records_per_s": measured["raw"]["records_per_s"]}
        out[rows]["ratio"] = measured["ratio_to_raw"]
    return out


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _cpu_seconds(pid: int) -> float:
    """User + system CPU seconds of one process so far (Linux /proc; 0 elsewhere)."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            fields = f.read().rsplit(")", 1)[1].split()
    except OSError:
        return 0.0
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def _children(pid: int) -> list[int]:
    try:
        return [int(p) for p in os.listdir("/proc") if p.isdigit() and _parent(int(p)) == pid]
    except OSError:
        return []


def _tree_cpu_seconds(pid: int) -> float:
    """CPU seconds of a process and its children (the API server and its workers)."""
    return _cpu_seconds(pid) + sum(_cpu_seconds(c) for c in _children(pid))


def _children_cpu_seconds(pid: int) -> dict[int, float]:
    """CPU seconds of each child of `pid` (each API worker), by pid."""
    return {c: _cpu_seconds(c) for c in _children(pid)}


def _parent(pid: int) -> int:
    try:
        with open(f"/proc/{pid}/stat") as f:
            return int(f.read().rsplit(")", 1)[1].split()[1])
    except OSError:
        return -1


def _post(port: int, path: str, body: bytes, headers: dict[str, str]) -> tuple[int, bytes]:
    """One request on a connection of its own, as a partner pushing a batch now and then makes
    one. Kept alive, the 4 clients' connections all went to ONE of the API processes: uvicorn's
    workers share one listening socket, and the first to wake accepts every pending connection, so
    the pass measured one process, not two.

    The standard library's client, not httpx: the load generator shares this machine's cores with
    the server, and httpx spent about 6 ms of CPU per batch (0.12-0.16 cores of the pass) where
    http.client spends about 1.5 (0.03)."""
    connection = HTTPConnection("127.0.0.1", port, timeout=120)
    try:
        connection.request("POST", path, body=body, headers=headers)
        response = connection.getresponse()
        return response.status, response.read()
    finally:
        connection.close()


def http(
    url: str,
    info: dict[str, Any],
    users: list[str],
    n: int,
    tag: str,
    workers: int,
    first: int,
    warmup_first: int,
) -> dict[str, Any]:
    """`first`: the timed records' first index; `warmup_first`: the warm-up's (a range no other
    pass uses, or its trips would overlap theirs)."""
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
            "--http",
            "h11",  # as `tanhui serve` runs it
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
            json.dumps(
                {"records": list(records(users, first + o, min(BATCH, n - o), tag))}
            ).encode()
            for o in range(0, n, BATCH)
        ]
        # Not timed: each client's first batch. A fresh API process compiles its SQL statements
        # and loads the methodologies on its first requests; a server in service did that long ago.
        warmup = [
            json.dumps(
                {"records": list(records(users, warmup_first + k * BATCH, BATCH, f"{tag}-warm"))}
            ).encode()
            for k in range(WARMUP_BATCHES)
        ]
        latencies: list[float] = []
        errors: list[int] = []
        statuses: dict[str, int] = {}
        lock = threading.Lock()
        path = "/v1/partner/activities"

        def client(mine: list[bytes], counted: bool = True) -> None:
            for body in mine:
                headers = {
                    "Content-Type": "application/json",
                    **signing.signed_headers(info["key_id"], info["secret"], "POST", path, body),
                }
                t = time.perf_counter()
                status, answer = _post(port, path, body, headers)
                took = time.perf_counter() - t
                if not counted:
                    continue
                with lock:
                    latencies.append(took)
                    if status != 200:
                        errors.append(status)
                    else:
                        for outcome, count in json.loads(answer)["counts"].items():
                            statuses[outcome] = statuses.get(outcome, 0) + count

        warming = [threading.Thread(target=client, args=(warmup[k::4], False)) for k in range(4)]
        for t in warming:
            t.start()
        for t in warming:
            t.join()
        threads = [threading.Thread(target=client, args=(bodies[k::4],)) for k in range(4)]
        clients_cpu_before = sum(os.times()[:2])
        server_cpu_before = _tree_cpu_seconds(server.pid)
        workers_before = _children_cpu_seconds(server.pid)
        start = time.perf_counter()
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        elapsed = time.perf_counter() - start
        clients_cpu = sum(os.times()[:2]) - clients_cpu_before
        server_cpu = _tree_cpu_seconds(server.pid) - server_cpu_before
        worker_cpu = {
            pid: cpu - workers_before.get(pid, 0.0)
            for pid, cpu in _children_cpu_seconds(server.pid).items()
        }
    finally:
        server.terminate()
        server.wait(30)
    latencies.sort()
    return {
        "records": n,
        "seconds": round(elapsed, 2),
        "records_per_s": round(n / elapsed),
        "batches": len(latencies),
        "warmup_batches": WARMUP_BATCHES,  # sent first, not timed
        "errors": len(errors),
        "statuses": statuses,
        "api_processes": workers,
        # Each worker's share: one process doing all the work means the load did not spread.
        "worker_cpu_cores": sorted(
            (round(v / elapsed, 2) for v in worker_cpu.values()), reverse=True
        ),
        # Where the machine's cores went: the API processes' CPU seconds per wall second, and the
        # benchmark's own 4 clients' (they share the machine).
        "server_cpu_cores": round(server_cpu / elapsed, 2),
        "clients_cpu_cores": round(clients_cpu / elapsed, 2),
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
    out["raw_core"] = raw(factory, info, users, n, "rawc", driver_level=False)
    out.update(paired(factory, info, users, n))
    if name == "sqlite":
        others = other_baselines(citizens, n)
        out["raw_by_baseline"] = {
            **{rows: v["raw_records_per_s"] for rows, v in others.items()},
            INSERTS: out["raw"]["records_per_s"],
        }
        out["ratio_by_baseline"] = {
            **{rows: v["ratio"] for rows, v in others.items()},
            INSERTS: out["ratio_to_raw"],
        }
    # Record ranges: pipeline [0, n), http [n, 2n), traced from 2n (20k or 100k), the http warm-up
    # from 2n + 150k (4,000), stream from 2n + 200k.
    # Raw inserts right before and right after the HTTP pass: the floor of the same minutes, for
    # `http_to_raw` (the paired raw figure above was measured minutes earlier).
    around = n // 2
    before = raw(factory, info, users, around, "raw-before-http")
    out["http"] = http(url, info, users, n, "http", 2, first=n, warmup_first=2 * n + 150_000)
    after = raw(factory, info, users, around, "raw-after-http")
    floor = 2 / (1 / before["records_per_s"] + 1 / after["records_per_s"])
    out["raw_around_http"] = {
        "records_per_s": round(floor),
        "before": before["records_per_s"],
        "after": after["records_per_s"],
    }
    out["http_to_raw"] = round(out["http"]["records_per_s"] / floor, 3)
    # Memory, in passes of their own: RSS sampled every 100k records (no slowdown), and a shorter
    # run under tracemalloc for the Python heap's peak.
    if name == "sqlite":
        out["memory_traced"] = pipeline(
            factory, info, users, 20_000 if quick else 100_000, "traced", trace=True, first=2 * n
        )
    if not quick and name == "sqlite":
        samples: list[float] = []
        stream = pipeline(factory, info, users, 2_000_000, "stream", samples, first=2 * n + 200_000)
        stream["rss_mb_samples"] = samples
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
    settle_collector()  # as `tanhui.app.create_app` does once the served app is built
    results = {}
    for name, database in databases(include_postgres=not args.sqlite_only):
        with database as url:  # type: ignore[attr-defined]
            results[name] = run(name, str(url), args.quick)
    sqlite = results["sqlite"]
    print(
        json.dumps(
            {
                "ratio_to_raw": sqlite["ratio_to_raw"],
                "ratio_by_baseline": sqlite["ratio_by_baseline"],
                "http_records_per_s": sqlite["http"]["records_per_s"],
                # HTTP beside raw inserts timed just before and after it: a shared host's speed
                # drifts (raw inserts have ranged 10,800-22,900 records/s on one machine).
                "http_to_raw": sqlite["http_to_raw"],
                "pipeline_records_per_s": sqlite["pipeline"]["records_per_s"],
                "raw_records_per_s": sqlite["raw"]["records_per_s"],
                "raw_core_records_per_s": sqlite["raw_core"]["records_per_s"],
                "peak_traced_mb": sqlite["memory_traced"]["peak_traced_mb"],
                "max_rss_mb": sqlite["pipeline"]["max_rss_mb"],
                "postgresql": {
                    "ratio_to_raw": results["postgresql"]["ratio_to_raw"],
                    "http_records_per_s": results["postgresql"]["http"]["records_per_s"],
                    "http_to_raw": results["postgresql"]["http_to_raw"],
                    "api_processes": results["postgresql"]["http"]["api_processes"],
                }
                if "postgresql" in results
                else None,
                "stream_rss_mb_samples": sqlite.get("stream", {}).get("rss_mb_samples"),
                "load_average_at_end": os.getloadavg()[0],
                "quick": args.quick,
                "databases": results,
            }
        )
    )


if __name__ == "__main__":
    main()

"""Exactly-once crediting against a database that really commits: a batch interrupted mid-way (a
rolled-back transaction, and a process killed before its commit) then re-sent, and the same batch sent
by two processes at once on PostgreSQL."""

from __future__ import annotations

import multiprocessing
import os
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from sqlalchemy import func, select

from tanhui import wiring
from tanhui.activity import service as activity_service
from tanhui.activity.models import ActivityRecord
from tanhui.identity.principal import PartnerPrincipal, Principal
from tanhui.kit.db import create_db_engine, make_session_factory, session_scope
from tanhui.ledger import service as ledger_service
from tests.fixtures import activity as fx


def _setup(url: str, n: int) -> tuple[dict[str, Any], list[dict[str, Any]], int]:
    factory = make_session_factory(create_db_engine(url))
    with session_scope(factory) as session:
        partner = fx.partner(session)
        puid, citizen_id = fx.bind(session, partner)
        # One citizen sends every record here; lift the "many records a day" review threshold.
        activity_service.set_rule(
            session, Principal("staff", 0), scenario="*", params={"review_records_per_day": 10_000}
        )
    base = datetime.now(UTC) - timedelta(hours=20)
    records = [
        fx.record(
            puid, start=base + timedelta(minutes=5 * i), minutes=4, quantities={"distance_km": "1"}
        )
        for i in range(n)
    ]
    p = partner.principal
    fields = {
        "partner_id": p.partner_id,
        "organisation_id": p.organisation_id,
        "key_id": p.key_id,
        "name": p.name,
        "scenarios": sorted(p.scenarios),
        "approved_until": None,
    }
    factory.kw["bind"].dispose()
    return fields, records, citizen_id


def _principal(fields: dict[str, Any]) -> PartnerPrincipal:
    return PartnerPrincipal(**{**fields, "scenarios": frozenset(fields["scenarios"])})


def _credited(url: str, citizen_id: int) -> tuple[int, int, int]:
    """(credited records, their mg, the citizen's CO2E balance), and the journal must check clean."""
    factory = make_session_factory(create_db_engine(url))
    with session_scope(factory) as session:
        count, mg = session.execute(
            select(func.count(), func.coalesce(func.sum(ActivityRecord.reduction_mg), 0)).where(
                ActivityRecord.citizen_id == citizen_id, ActivityRecord.status == "credited"
            )
        ).one()
        account = ledger_service.open_account(
            session, owner_type="citizen", owner_id=citizen_id, asset=ledger_service.CO2E_MG
        )
        balance = ledger_service.balance(session, account.id).balance
        assert ledger_service.check(session) == []
    factory.kw["bind"].dispose()
    return int(count), int(mg), balance


def _send(
    url: str,
    fields: dict[str, Any],
    records: list[dict[str, Any]],
    barrier: Any,
    queue: Any,
    die_before_commit: bool = False,
) -> None:
    wiring.install()
    factory = make_session_factory(create_db_engine(url))
    if barrier is not None:
        barrier.wait()
    session = factory()
    results = activity_service.ingest(session, _principal(fields), records)
    if die_before_commit:
        session.flush()
        os._exit(17)  # a server killed mid-batch: the transaction never commits
    session.commit()
    session.close()
    queue.put([r["status"] for r in results])


def test_rolled_back_batch_then_resent_credits_once(database_url):
    fields, records, citizen_id = _setup(database_url, 40)
    factory = make_session_factory(create_db_engine(database_url))
    with pytest.raises(RuntimeError):
        with session_scope(factory) as session:
            activity_service.ingest(session, _principal(fields), records)
            raise RuntimeError("connection lost before commit")
    assert _credited(database_url, citizen_id) == (0, 0, 0)
    with session_scope(factory) as session:
        first = activity_service.ingest(session, _principal(fields), records)
    with session_scope(factory) as session:
        again = activity_service.ingest(session, _principal(fields), records)
    factory.kw["bind"].dispose()
    assert {r["status"] for r in first} == {"credited"}
    assert {r["status"] for r in again} == {"duplicate"}
    count, mg, balance = _credited(database_url, citizen_id)
    assert count == 40 and mg == balance == sum(r["reduction_mg"] for r in first)


def test_killed_process_then_resent_credits_once(database_url):
    fields, records, citizen_id = _setup(database_url, 60)
    ctx = multiprocessing.get_context("spawn")
    queue = ctx.Queue()
    killed = ctx.Process(target=_send, args=(database_url, fields, records, None, queue, True))
    killed.start()
    killed.join(120)
    assert killed.exitcode == 17
    assert _credited(database_url, citizen_id) == (0, 0, 0)
    again = ctx.Process(target=_send, args=(database_url, fields, records, None, queue))
    again.start()
    again.join(120)
    assert again.exitcode == 0
    assert queue.get(timeout=10) == ["credited"] * 60
    count, mg, balance = _credited(database_url, citizen_id)
    assert count == 60 and mg == balance > 0


def test_same_batch_from_two_processes_credits_once(database_url, backend):
    fields, records, citizen_id = _setup(database_url, 200)
    ctx = multiprocessing.get_context("spawn")
    queue = ctx.Queue()
    barrier = ctx.Barrier(2)
    workers = [
        ctx.Process(target=_send, args=(database_url, fields, records, barrier, queue))
        for _ in range(2)
    ]
    for w in workers:
        w.start()
    for w in workers:
        w.join(180)
    assert [w.exitcode for w in workers] == [0, 0]
    outcomes = [queue.get(timeout=10) for _ in workers]
    for a, b in zip(*outcomes, strict=True):
        assert sorted((a, b)) == ["credited", "duplicate"]
    count, mg, balance = _credited(database_url, citizen_id)
    assert count == 200 and mg == balance

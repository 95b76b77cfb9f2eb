"""Writers and the integrator at once, on a database that really commits."""

from __future__ import annotations

import sqlite3
import subprocess
import sys
import threading
import time

import pytest
from sqlalchemy import select
from sqlalchemy.engine import make_url
from sqlalchemy.orm import Session, sessionmaker

from tanhui.kit.db import SoleProcess, default_session_factory, session_scope
from tanhui.ledger import service as ledger_service
from tanhui.trust import leaf as leaf_codec
from tanhui.trust import merkle, verify
from tanhui.trust import service as trust_service
from tanhui.trust.models import SignedTreeHead
from tests.fixtures.ledger import citizen_account

WRITERS = 4
PER_WRITER = 25


def _write(factory: sessionmaker[Session], source: int, target: int, w: int) -> None:
    for i in range(PER_WRITER):
        with session_scope(factory) as session:
            ledger_service.transfer(
                session,
                idempotency_key=f"conc-{w}-{i}",
                kind="test.credit",
                postings=[(source, -1), (target, 1)],
            )


class TestConcurrentWriters:
    def test_every_committed_transfer_gets_exactly_one_leaf(self, database_url: str) -> None:
        factory = default_session_factory()
        with session_scope(factory) as session:
            target = citizen_account(session)
            source = ledger_service.platform_account(session, ledger_service.POINT, "issuance").id
        integrator = trust_service.BackgroundIntegrator(factory, interval_s=0.0, sth_interval_s=0)
        threads = [
            threading.Thread(target=_write, args=(factory, source, target, w))
            for w in range(WRITERS)
        ]
        for t in threads:
            t.start()
        # Integrate and sign while the writers run; the writers never wait for the tree.
        while any(t.is_alive() for t in threads):
            integrator.tick(sign=True)
        for t in threads:
            t.join()
        integrator.tick(sign=True)

        with session_scope(factory) as session:
            size = trust_service.tree_size(session)
            assert size == WRITERS * PER_WRITER
            refs = [r.ref for chunk in trust_service.iter_leaves(session) for r in chunk]
            assert len(set(refs)) == size
            sth = trust_service.latest_sth(session)
            assert sth is not None and sth.tree_size == size
            # Every head signed along the way is a prefix of the final tree.
            for old in session.execute(select(SignedTreeHead)).scalars():
                proof = trust_service.consistency_proof(session, old.tree_size, size)
                merkle.verify_consistency(old.tree_size, size, old.root_hash, sth.root_hash, proof)
            bundle = trust_service.proof_bundle(session, size - 1)
            key = trust_service.signer().public_key
            assert verify.verify_bundle(bundle, key).record["kind"] == leaf_codec.LEDGER_TRANSFER


@pytest.mark.sqlite_only
def test_an_idle_tick_takes_no_writer_lock(database_url: str) -> None:
    """Every API process ticks each second: with nothing queued, a tick only reads, so it never
    waits for (or holds up) SQLite's one writer. Here another connection holds the writer."""
    factory = default_session_factory()
    integrator = trust_service.BackgroundIntegrator(factory, interval_s=0.0, sth_interval_s=3600)
    integrator.tick(sign=False)  # whatever the fresh database queued
    holder = sqlite3.connect(str(make_url(database_url).database), isolation_level=None)
    holder.execute("BEGIN IMMEDIATE")
    try:
        done = threading.Event()

        def tick() -> None:
            integrator.tick(sign=False)
            done.set()

        threading.Thread(target=tick, daemon=True).start()
        assert done.wait(5), "the idle tick queued for the writer"
    finally:
        holder.rollback()
        holder.close()


@pytest.mark.sqlite_only
def test_one_process_of_a_sqlite_file_integrates_and_another_takes_over(
    database_url: str, tmp_path
) -> None:
    """API processes on one SQLite file: the one holding `<database>.integrator` integrates; when
    it exits, the next to ask takes over. Here the first holder is another process."""
    factory = default_session_factory()
    lock_file = f"{make_url(database_url).database}.integrator"
    ready = tmp_path / "ready"
    holder = subprocess.Popen(
        [
            sys.executable,
            "-c",
            "import fcntl, os, sys, time\n"
            f"fd = os.open({lock_file!r}, os.O_RDWR | os.O_CREAT)\n"
            "fcntl.flock(fd, fcntl.LOCK_EX)\n"
            f"open({str(ready)!r}, 'w').close()\n"
            "time.sleep(60)\n",
        ]
    )
    try:
        deadline = time.monotonic() + 10
        while not ready.exists() and time.monotonic() < deadline:
            time.sleep(0.01)
        integrator = trust_service.BackgroundIntegrator(factory, interval_s=0.02, sth_interval_s=0)
        integrator.start()
        try:
            with session_scope(factory) as session:
                target = citizen_account(session)
                source = ledger_service.platform_account(session, ledger_service.POINT, "issuance")
                ledger_service.transfer(
                    session,
                    idempotency_key="sole-1",
                    kind="test.credit",
                    postings=[(source.id, -1), (target, 1)],
                )
            time.sleep(0.3)  # a dozen ticks: all of them stood by
            with session_scope(factory) as session:
                assert trust_service.tree_size(session) == 0
            holder.kill()
            holder.wait()
            deadline = time.monotonic() + 10
            size = 0
            while size == 0 and time.monotonic() < deadline:
                time.sleep(0.02)
                with session_scope(factory) as session:
                    size = trust_service.tree_size(session)
            assert size >= 1  # this process took over once the holder was gone
        finally:
            integrator.stop()
    finally:
        holder.kill()
        holder.wait()


def test_sole_process_is_one_holder_per_sqlite_file_and_everyone_elsewhere(
    database_url: str, backend
) -> None:
    factory = default_session_factory()
    first, second = SoleProcess(factory, "job"), SoleProcess(factory, "job")
    try:
        if backend.name == "sqlite":
            assert first.held() and first.held()  # asked again, still this one
            assert not second.held()
            first.release()
            assert second.held() and not first.held()
        else:  # PostgreSQL: no single writer to spare; the job must be safe to run everywhere
            assert first.held() and second.held()
    finally:
        first.release()
        second.release()

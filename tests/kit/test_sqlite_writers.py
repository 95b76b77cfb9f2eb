"""SQLite writers queue (threads on a lock, processes on `<database>.writer`) instead of starving in
the busy handler; read-only transactions wait for no writer."""

from __future__ import annotations

import fcntl
import multiprocessing
import os
import sqlite3
import threading
import time
from concurrent.futures import ProcessPoolExecutor, ThreadPoolExecutor
from pathlib import Path

import pytest
from sqlalchemy import event, text

from tanhui.kit import db
from tanhui.kit.db import (
    create_db_engine,
    make_session_factory,
    read_only_factory,
    session_scope,
)


@pytest.fixture
def engine(tmp_path: Path):  # type: ignore[no-untyped-def]
    engine = create_db_engine(f"sqlite:///{tmp_path / 'writers.db'}", pool_size=16)
    with engine.begin() as c:
        c.execute(text("CREATE TABLE counter (n INTEGER NOT NULL)"))
        c.execute(text("INSERT INTO counter VALUES (0)"))
    yield engine
    engine.dispose()


def test_the_queue_is_released_on_commit_and_on_rollback(engine) -> None:  # type: ignore[no-untyped-def]
    with engine.connect() as connection:
        transaction = connection.begin()
        assert "tanhui_writer_queue" in connection.info
        transaction.rollback()
        assert "tanhui_writer_queue" not in connection.info
        with connection.begin():
            connection.execute(text("UPDATE counter SET n = n + 1"))
        assert "tanhui_writer_queue" not in connection.info


def test_many_threads_writing_at_once_all_succeed_exactly(engine) -> None:  # type: ignore[no-untyped-def]
    factory = make_session_factory(engine)

    def work(i: int) -> None:
        for n in range(25):
            try:
                with session_scope(factory) as session:
                    session.execute(text("UPDATE counter SET n = n + 1"))
                    if (i + n) % 5 == 0:
                        raise RuntimeError("roll this one back")
            except RuntimeError:
                pass

    with ThreadPoolExecutor(12) as pool:
        list(pool.map(work, range(12)))
    with engine.connect() as connection:
        committed = sum(1 for i in range(12) for n in range(25) if (i + n) % 5 != 0)
        assert connection.execute(text("SELECT n FROM counter")).scalar_one() == committed


def _increment(url: str, times: int) -> None:
    """One process's writer: `times` read-modify-write transactions (lost updates would show)."""
    engine = create_db_engine(url)
    factory = make_session_factory(engine)
    for _ in range(times):
        with session_scope(factory) as session:
            n = session.execute(text("SELECT n FROM counter")).scalar_one()
            session.execute(text("UPDATE counter SET n = :n"), {"n": n + 1})
    engine.dispose()


def test_processes_writing_at_once_queue_and_all_succeed(engine, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    url = f"sqlite:///{tmp_path / 'writers.db'}"
    spawn = multiprocessing.get_context("spawn")
    with ProcessPoolExecutor(3, mp_context=spawn) as pool:
        list(pool.map(_increment, [url] * 3, [60] * 3))
    assert (tmp_path / "writers.db.writer").exists()  # the processes queued on it
    with engine.connect() as connection:
        assert connection.execute(text("SELECT n FROM counter")).scalar_one() == 180


def test_a_read_only_session_reads_while_a_writer_holds_the_queue(engine) -> None:  # type: ignore[no-untyped-def]
    reading = read_only_factory(make_session_factory(engine))
    with engine.connect() as writer:
        with writer.begin():
            writer.execute(text("UPDATE counter SET n = 41"))
            started = time.monotonic()
            with session_scope(reading) as session:
                # The snapshot before the writer's uncommitted change, at once.
                assert session.execute(text("SELECT n FROM counter")).scalar_one() == 0
                assert "tanhui_writer_queue" not in session.connection().info
            assert time.monotonic() - started < 2
        with session_scope(reading) as session:
            assert session.execute(text("SELECT n FROM counter")).scalar_one() == 41


def test_the_next_writer_starts_after_the_commit_has_ended(tmp_path: Path) -> None:
    """With SQLite's own busy wait turned off, a writer let in while the previous COMMIT is still
    writing would fail at once ("database is locked"); queued writers never meet that."""
    engine = create_db_engine(f"sqlite:///{tmp_path / 'commits.db'}", pool_size=8)
    event.listen(engine, "connect", lambda c, _: c.execute("PRAGMA busy_timeout=0"))
    with engine.begin() as c:
        c.execute(text("CREATE TABLE wide (k INTEGER PRIMARY KEY, v TEXT NOT NULL)"))
    factory = make_session_factory(engine)

    def work(_: int) -> None:
        for _n in range(40):
            # Enough pages that each COMMIT takes a while to write them to the WAL.
            with session_scope(factory) as session:
                session.execute(text("INSERT INTO wide (v) VALUES (:v)"), [{"v": "x" * 2000}] * 50)

    try:
        with ThreadPoolExecutor(4) as pool:
            list(pool.map(work, range(4)))
        with engine.connect() as connection:
            assert connection.execute(text("SELECT count(*) FROM wide")).scalar_one() == 4 * 40 * 50
    finally:
        engine.dispose()


def _writer_file_free(path: Path) -> bool:
    fd = os.open(path, os.O_RDWR)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        return True
    except BlockingIOError:
        return False
    finally:
        os.close(fd)


def test_a_connection_dropped_mid_transaction_lets_the_queue_go(engine, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    writer = tmp_path / "writers.db.writer"
    with engine.connect() as connection:
        connection.begin()
        connection.execute(text("UPDATE counter SET n = 7"))
        assert not _writer_file_free(writer)
        connection.invalidate()
        assert _writer_file_free(writer)
    # Nor does lock-free work of this process still wait for it.
    waiting = threading.Thread(target=db.yield_to_writer, args=(60,))
    waiting.start()
    waiting.join(10)
    assert not waiting.is_alive()
    with engine.begin() as connection:  # and the next writer in this process gets in
        assert connection.execute(text("SELECT n FROM counter")).scalar_one() == 0


def test_the_write_ahead_log_is_copied_back_as_writers_commit(tmp_path: Path) -> None:
    """SQLite's automatic checkpoint is off (it would run inside COMMIT, with the queue held); the
    queue's own keeps the log from growing with everything ever written."""
    path = tmp_path / "log.db"
    engine = create_db_engine(f"sqlite:///{path}")
    try:
        with engine.begin() as c:
            c.execute(text("CREATE TABLE wide (k INTEGER PRIMARY KEY, v TEXT NOT NULL)"))
        for _ in range(100):
            with engine.begin() as c:  # 100 x 50 rows of 2 kB: 10 MB written in all
                c.execute(text("INSERT INTO wide (v) VALUES (:v)"), [{"v": "x" * 2000}] * 50)
        assert Path(f"{path}-wal").stat().st_size < 3_000_000
        with engine.connect() as c:
            assert c.execute(text("SELECT count(*) FROM wide")).scalar_one() == 5000
    finally:
        engine.dispose()


def test_the_log_starts_over_while_readers_never_all_stop(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Two readers taking turns always hold a snapshot, so a PASSIVE checkpoint never reaches the
    log's end and SQLite never reuses the log: it grew with all that was written (5 MB here).
    Past `_RESTART_FRAMES` a checkpoint waits for the old snapshots and the log starts over."""
    monkeypatch.setattr(db, "_RESTART_FRAMES", 150)  # 1.2 MB of 8 KB pages: a short test crosses it
    path = tmp_path / "busy.db"
    engine = create_db_engine(f"sqlite:///{path}")
    reading = read_only_factory(make_session_factory(engine))
    stop = threading.Event()

    def reader() -> None:
        while not stop.is_set():
            with reading() as session:
                session.execute(text("SELECT count(*) FROM wide")).scalar_one()
                time.sleep(0.003)  # a snapshot held while the other reader starts its own

    try:
        with engine.begin() as c:
            c.execute(text("CREATE TABLE wide (k INTEGER PRIMARY KEY, v TEXT NOT NULL)"))
        readers = [threading.Thread(target=reader) for _ in range(2)]
        for t in readers:
            t.start()
        for _ in range(50):
            with engine.begin() as c:  # 50 x 500 rows of 200 bytes: 5 MB written in all
                c.execute(text("INSERT INTO wide (v) VALUES (:v)"), [{"v": "x" * 200}] * 500)
        stop.set()
        for t in readers:
            t.join()
        assert Path(f"{path}-wal").stat().st_size < 3_000_000
    finally:
        stop.set()
        engine.dispose()


def test_a_new_database_gets_8_kb_pages_and_an_existing_one_keeps_its_own(tmp_path: Path) -> None:
    def page_size(path: Path) -> int:
        engine = create_db_engine(f"sqlite:///{path}")
        with engine.connect() as connection:
            size = int(connection.exec_driver_sql("PRAGMA page_size").scalar_one())
            mode = connection.exec_driver_sql("PRAGMA journal_mode").scalar_one()
        engine.dispose()
        assert mode == "wal"
        return size

    assert page_size(tmp_path / "new.db") == 8192

    older = sqlite3.connect(tmp_path / "old.db")
    older.execute("PRAGMA page_size=4096")
    older.execute("PRAGMA journal_mode=WAL")
    older.execute("CREATE TABLE t (a INTEGER)")
    older.commit()
    older.close()
    assert page_size(tmp_path / "old.db") == 4096


def test_lock_free_work_yields_to_its_process_writer_until_it_ends(engine) -> None:  # type: ignore[no-untyped-def]
    writing, ending, ended = threading.Event(), threading.Event(), threading.Event()

    def writer(finish: str) -> None:
        with engine.connect() as connection:
            transaction = connection.begin()
            connection.execute(text("UPDATE counter SET n = n + 1"))
            db.yield_to_writer(timeout=30)  # the writer itself never waits for itself
            writing.set()
            ending.wait(30)
            ended.set()
            getattr(transaction, finish)()

    for finish in ("commit", "rollback"):
        for event_ in (writing, ending, ended):
            event_.clear()
        thread = threading.Thread(target=writer, args=(finish,))
        thread.start()
        assert writing.wait(30)
        db.yield_to_writer(timeout=0.05)  # gives up after its timeout: the writer still writes
        assert not ended.is_set()
        threading.Timer(0.1, ending.set).start()
        db.yield_to_writer(timeout=30)
        assert ended.is_set()  # returned once the transaction ended, not before
        thread.join(30)
    db.yield_to_writer(timeout=30)  # no writer: returns at once

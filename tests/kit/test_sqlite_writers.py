"""SQLite writers queue (threads on a lock, processes on `<database>.writer`) instead of starving in
the busy handler; read-only transactions wait for no writer."""

from __future__ import annotations

import multiprocessing
import time
from concurrent.futures import ProcessPoolExecutor, ThreadPoolExecutor
from pathlib import Path

import pytest
from sqlalchemy import text

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

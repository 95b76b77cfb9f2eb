"""SQLite in one process: concurrent writers queue in-process instead of starving in the busy handler."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
from sqlalchemy import text

from tanhui.kit.db import create_db_engine, make_session_factory, session_scope


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
        assert "tanhui_writer_lock" in connection.info
        transaction.rollback()
        assert "tanhui_writer_lock" not in connection.info
        with connection.begin():
            connection.execute(text("UPDATE counter SET n = n + 1"))
        assert "tanhui_writer_lock" not in connection.info


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

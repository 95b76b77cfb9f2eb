"""Throw-away migrated databases for benchmarks (SQLite file; PostgreSQL database when reachable)."""

from __future__ import annotations

import os
import tempfile
import uuid
from collections.abc import Iterator
from contextlib import contextmanager

from sqlalchemy import text
from sqlalchemy.engine import make_url

from tanhui.kit import migrate
from tanhui.kit.db import create_db_engine

POSTGRES_URL = os.environ.get(
    "TANHUI_TEST_POSTGRES_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/postgres"
)


@contextmanager
def sqlite_database() -> Iterator[str]:
    with tempfile.TemporaryDirectory() as folder:
        url = f"sqlite:///{folder}/bench.db"
        migrate.upgrade(url)
        yield url


def postgres_available() -> bool:
    try:
        engine = create_db_engine(POSTGRES_URL)
        with engine.connect() as connection:
            connection.execute(text("SELECT 1"))
        engine.dispose()
        return True
    except Exception:  # noqa: BLE001 - unreachable for any reason means "skip PostgreSQL"
        return False


@contextmanager
def postgres_database() -> Iterator[str]:
    name = f"tanhui_bench_{uuid.uuid4().hex[:8]}"
    admin = create_db_engine(POSTGRES_URL, isolation_level="AUTOCOMMIT")
    with admin.connect() as connection:
        connection.execute(text(f'CREATE DATABASE "{name}"'))
    url = make_url(POSTGRES_URL).set(database=name).render_as_string(hide_password=False)
    try:
        migrate.upgrade(url)
        yield url
    finally:
        with admin.connect() as connection:
            connection.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()


def databases(include_postgres: bool = True) -> Iterator[tuple[str, object]]:
    yield "sqlite", sqlite_database()
    if include_postgres and postgres_available():
        yield "postgresql", postgres_database()

"""Database fixtures: every test runs on SQLite and on PostgreSQL, on the real migrated schema.

PostgreSQL is expected at TANHUI_TEST_POSTGRES_URL (default postgres@127.0.0.1:5432). Where it is not
reachable the PostgreSQL half is skipped with a message — unless TANHUI_REQUIRE_POSTGRES=1 (CI), where
that is a failure.
"""

from __future__ import annotations

import atexit
import os
import shutil
import tempfile
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import Connection, Engine, text
from sqlalchemy.engine import make_url
from sqlalchemy.orm import Session, sessionmaker

from tanhui import wiring
from tanhui.kit import db as kit_db
from tanhui.kit import migrate
from tanhui.kit.settings import get_settings

POSTGRES_URL = os.environ.get(
    "TANHUI_TEST_POSTGRES_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/postgres"
)
REQUIRE_POSTGRES = os.environ.get("TANHUI_REQUIRE_POSTGRES") == "1"
REQUIRE_BROWSER = os.environ.get("TANHUI_REQUIRE_BROWSER") == "1"
CHROMIUM = Path("/usr/bin/chromium")
RUN_ID = f"{os.getpid()}_{uuid.uuid4().hex[:6]}"

# Nothing a test does lands in the checkout's var/: `scripts/run` takes an existing var/tanhui.db
# for the user's own database and would skip the demo data on an empty one the tests left there.
os.environ.setdefault("TANHUI_DATA_DIR", tempfile.mkdtemp(prefix="tanhui-tests-"))
atexit.register(shutil.rmtree, os.environ["TANHUI_DATA_DIR"], ignore_errors=True)

# Staff-password hashing at production cost takes ~0.1-0.4 s per hash; the suite creates hundreds.
os.environ.setdefault("TANHUI_ARGON2_TIME_COST", "1")
os.environ.setdefault("TANHUI_ARGON2_MEMORY_KIB", "1024")
get_settings.cache_clear()

wiring.install()


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line("markers", "sqlite_only: run on SQLite only")
    config.addinivalue_line("markers", "postgresql_only: run on PostgreSQL only")
    config.addinivalue_line("markers", "browser: drives a real browser (Playwright + chromium)")


@pytest.hookimpl(tryfirst=True)
def pytest_runtest_setup(item: pytest.Item) -> None:
    # Before any fixture starts a server or a browser for the module.
    if item.get_closest_marker("browser") and not CHROMIUM.exists():
        message = f"{CHROMIUM} not found (apt-get install chromium): browser tests skipped"
        if REQUIRE_BROWSER:
            pytest.fail(message + " — but TANHUI_REQUIRE_BROWSER=1")
        pytest.skip(message)


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    if "backend" in metafunc.fixturenames:
        backends = ["sqlite", "postgresql"]
        if metafunc.definition.get_closest_marker("sqlite_only"):
            backends = ["sqlite"]
        if metafunc.definition.get_closest_marker("postgresql_only"):
            backends = ["postgresql"]
        metafunc.parametrize("backend", backends, indirect=True, scope="session")


@dataclass
class Backend:
    name: str
    url: str  # the shared, migrated test database
    template: str  # a migrated database nobody connects to: the source of fresh copies
    engine: Engine


def _postgres_admin() -> Engine:
    return kit_db.create_db_engine(POSTGRES_URL, isolation_level="AUTOCOMMIT", pool_size=1)


def _postgres_reachable() -> str | None:
    try:
        engine = _postgres_admin()
        with engine.connect() as connection:
            connection.execute(text("SELECT 1"))
        engine.dispose()
        return None
    except Exception as exc:  # noqa: BLE001 - any failure means "not reachable"
        return str(exc).splitlines()[0]


def _pg_url(database: str) -> str:
    return make_url(POSTGRES_URL).set(database=database).render_as_string(hide_password=False)


@pytest.fixture(scope="session")
def backend(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Backend]:
    name = request.param
    if name == "sqlite":
        folder = tmp_path_factory.mktemp("sqlite")
        template_file = folder / "template.db"
        migrate.upgrade(f"sqlite:///{template_file}")
        shutil.copy(template_file, folder / "test.db")
        url = f"sqlite:///{folder / 'test.db'}"
        engine = kit_db.create_db_engine(url)
        yield Backend(name, url, str(template_file), engine)
        engine.dispose()
        return
    problem = _postgres_reachable()
    if problem is not None:
        message = f"PostgreSQL not reachable at {POSTGRES_URL} ({problem}): PostgreSQL half skipped"
        if REQUIRE_POSTGRES:
            pytest.fail(message + " — but TANHUI_REQUIRE_POSTGRES=1")
        pytest.skip(message)
    admin = _postgres_admin()
    template = f"tanhui_test_{RUN_ID}_template"
    main = f"tanhui_test_{RUN_ID}"
    with admin.connect() as connection:
        connection.execute(text(f'CREATE DATABASE "{template}"'))
    migrate.upgrade(_pg_url(template))
    with admin.connect() as connection:
        connection.execute(text(f'CREATE DATABASE "{main}" TEMPLATE "{template}"'))
    engine = kit_db.create_db_engine(_pg_url(main))
    yield Backend(name, _pg_url(main), template, engine)
    engine.dispose()
    with admin.connect() as connection:
        for database in (main, template):
            connection.execute(text(f'DROP DATABASE IF EXISTS "{database}" WITH (FORCE)'))
    admin.dispose()


@pytest.fixture
def connection(backend: Backend) -> Iterator[Connection]:
    with backend.engine.connect() as connection:
        transaction = connection.begin()
        yield connection
        transaction.rollback()


@pytest.fixture
def session_factory(connection: Connection) -> sessionmaker[Session]:
    # Commits inside the code under test become savepoints of the test's outer transaction.
    return sessionmaker(
        bind=connection, join_transaction_mode="create_savepoint", expire_on_commit=False
    )


@pytest.fixture
def session(session_factory: sessionmaker[Session]) -> Iterator[Session]:
    with session_factory() as session:
        yield session


@pytest.fixture
def app(session_factory: sessionmaker[Session]):  # type: ignore[no-untyped-def]
    from tanhui.app import create_app

    return create_app(session_factory=session_factory)


@pytest.fixture
def client(app, session: Session) -> Iterator[TestClient]:  # type: ignore[no-untyped-def]
    # The test's own session shares the transaction; flush it so the app sees what the test set up.
    session.flush()
    with TestClient(app, raise_server_exceptions=False) as test_client:
        yield test_client


@pytest.fixture
def database_url(
    backend: Backend, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> Iterator[str]:
    """A fresh, migrated, empty database that really commits; the CLI's settings point at it."""
    if backend.name == "sqlite":
        path = tmp_path / "fresh.db"
        shutil.copy(backend.template, path)
        url = f"sqlite:///{path}"
    else:
        name = f"tanhui_test_{RUN_ID}_{uuid.uuid4().hex[:8]}"
        admin = _postgres_admin()
        with admin.connect() as c:
            c.execute(text(f'CREATE DATABASE "{name}" TEMPLATE "{backend.template}"'))
        url = _pg_url(name)
    monkeypatch.setenv("TANHUI_DATABASE_URL", url)
    monkeypatch.setenv("TANHUI_DATA_DIR", str(tmp_path / "var"))
    get_settings.cache_clear()
    kit_db.reset_default_session_factory()
    yield url
    kit_db.reset_default_session_factory()
    get_settings.cache_clear()
    if backend.name == "postgresql":
        with admin.connect() as c:
            c.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()

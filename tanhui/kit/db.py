"""Database plumbing: one model set and one engine setup for SQLite (embedded) and PostgreSQL (production)."""

from __future__ import annotations

import contextlib
import os
import sqlite3
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from functools import lru_cache
from pathlib import Path
from typing import Any

from sqlalchemy import (
    BigInteger,
    Connection,
    DateTime,
    Engine,
    Integer,
    MetaData,
    create_engine,
    event,
)
from sqlalchemy.engine import Dialect, make_url
from sqlalchemy.orm import DeclarativeBase, Session, sessionmaker
from sqlalchemy.types import TypeDecorator

try:
    import fcntl
except ImportError:  # not POSIX: the writer queue covers this process's threads only
    fcntl = None  # type: ignore[assignment]

# Fixed constraint names from the first migration on, so Alembic can alter them on both databases.
NAMING_CONVENTION = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_N_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING_CONVENTION)


# SQLite only auto-increments a column declared exactly INTEGER PRIMARY KEY (the rowid alias).
BigIntPK = BigInteger().with_variant(Integer, "sqlite")


def utcnow() -> datetime:
    return datetime.now(UTC)


@lru_cache(maxsize=8192)
def _sqlite_utc_text(value: datetime | None) -> str | None:
    """The text SQLAlchemy's SQLite DATETIME stores ("2025-01-02 03:04:05.000006"), written by
    isoformat in C: twice as fast, and a batch converts thousands of timestamps.

    Memoised: a batch converts each trip's times more than once (the overlap probe, the record,
    the award), and the text depends only on the instant, which is what equal aware datetimes
    share (a naive one raises, and a raise is not remembered).
    """
    if value is None:
        return None
    if value.tzinfo is None or value.utcoffset() is None:
        raise ValueError(f"naive datetime {value!r}: pass an aware datetime")
    return value.astimezone(UTC).replace(tzinfo=None).isoformat(" ", "microseconds")


class UTCDateTime(TypeDecorator[datetime]):
    """An aware UTC timestamp. Naive datetimes are refused: a local time stored as UTC is a silent bug."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None or value.utcoffset() is None:
            raise ValueError(f"naive datetime {value!r}: pass an aware datetime")
        value = value.astimezone(UTC)
        # SQLite stores text; keep it naive-UTC there so ordering by the text column stays correct.
        return value.replace(tzinfo=None) if dialect.name == "sqlite" else value

    def bind_processor(self, dialect: Dialect) -> Callable[[Any], Any] | None:
        if dialect.name != "sqlite":
            return super().bind_processor(dialect)

        return _sqlite_utc_text

    def process_result_value(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


_BUSY_TIMEOUT_S = 10
_PAGE_SIZE = 8192
# About SQLite's default automatic checkpoint (1,000 pages): a written row dirties a page or more.
_CHECKPOINT_ROWS = 1000
# Log frames (pages) past which a checkpoint starts the log over (`_WriterQueue._restart`): 32 MB
# of 8 KB pages. Over HTTP at 200,000 records, 2,000 frames did no better (10,379 against 10,737
# records/s in three alternating runs).
_RESTART_FRAMES = 4000
_RESTART_WAIT_MS = 50


def _sqlite_on_connect(dbapi_connection: Any, _record: Any) -> None:
    # Take transaction control from pysqlite so that "begin" below really runs BEGIN IMMEDIATE.
    dbapi_connection.isolation_level = None
    cursor = dbapi_connection.cursor()
    # A new file only (an existing database keeps its size): 8 KB pages instead of 4 KB. Ingestion
    # inserts into indexes keyed by citizen, so each batch dirties a page per record in each of
    # them; with larger pages the B-trees are shallower and a commit writes fewer WAL frames.
    # Measured at 300,000 records: 12% less writer time per batch (5% at 20,000).
    cursor.execute(f"PRAGMA page_size={_PAGE_SIZE}")
    cursor.execute(
        "PRAGMA foreign_keys=ON"
    )  # off by default in SQLite; our RESTRICT rules depend on it
    cursor.execute("PRAGMA journal_mode=WAL")  # readers never block the writer
    cursor.execute("PRAGMA synchronous=NORMAL")  # durable at checkpoints; safe with WAL
    cursor.execute(
        f"PRAGMA busy_timeout={_BUSY_TIMEOUT_S * 1000}"
    )  # wait, rather than fail at once
    # The default page cache is 2 MB: once the ingestion indexes outgrow it, every batch re-reads
    # their pages through the OS. 64 MB per connection, allocated only as it fills.
    cursor.execute("PRAGMA cache_size=-65536")
    # Checkpoints run after the writer queue is let go (`_WriterQueue.wrote`), not inside COMMIT.
    cursor.execute("PRAGMA wal_autocheckpoint=0")
    cursor.close()


def _sqlite_on_begin(connection: Any) -> None:
    # IMMEDIATE takes the write lock up front: a deferred transaction that reads then writes can fail
    # with SQLITE_BUSY without waiting, which would surface as spurious 503s under concurrent requests.
    connection.exec_driver_sql("BEGIN IMMEDIATE")


READ_ONLY = "tanhui_read_only"
"""Execution option: this connection's transactions only read (see `read_only_factory`)."""


class _Writing:
    """The threads of this process inside an SQLite write transaction, for `yield_to_writer`."""

    def __init__(self) -> None:
        self._changed = threading.Condition()
        self._threads: set[int] = set()

    def enter(self, thread: int) -> None:
        with self._changed:
            self._threads.add(thread)

    def leave(self, thread: int) -> None:
        with self._changed:
            self._threads.discard(thread)
            self._changed.notify_all()

    def wait(self, timeout: float) -> None:
        if not self._threads:  # the common case, read without the lock
            return
        me = threading.get_ident()
        with self._changed:
            self._changed.wait_for(lambda: not (self._threads - {me}), timeout)


_writing = _Writing()


def yield_to_writer(timeout: float = 0.1) -> None:
    """Wait (at most `timeout` seconds) while another thread of this process writes to SQLite.

    For CPU-bound work that holds no lock, called between its steps. On SQLite every partner batch
    queues for the one writer, so the writer's time is the platform's throughput; a thread computing
    beside it in the same process takes the interpreter lock from it each time SQLite lets go of it.
    Measured over HTTP: a writer's hold that overlapped a batch being prepared in its own process
    took 52-68 ms instead of 37-47. No-op elsewhere (PostgreSQL has no writer queue)."""
    _writing.wait(timeout)


def _lock_file(database: str | None, name: str) -> str | None:
    """`<database>.<name>`: the advisory-lock file beside an SQLite file (none in memory)."""
    return f"{database}.{name}" if database and database != ":memory:" else None


class _WriterQueue:
    """Who writes next to one SQLite file: the threads of this process queue on a lock, and the
    process holding it takes an advisory lock on `<database>.writer` that the other processes
    queue on (POSIX), so the next writer starts as soon as the previous transaction ends.

    Without it, writers wait in SQLite's busy handler, which polls with sleeps growing to 100 ms:
    under concurrent requests the database sits idle between writers, and an unlucky request (or
    the trust log's integrator thread) starves until it fails as "database is locked".
    """

    def __init__(self, database: str | None) -> None:
        self._threads = threading.Lock()
        self._path = _lock_file(database, "writer")
        self._fd: int | None = None  # open while this process holds the queue
        self._unchecked = 0  # rows this process wrote since its last checkpoint

    def acquire(self, timeout: float) -> bool:
        deadline = time.monotonic() + timeout
        if not self._threads.acquire(timeout=timeout):
            return False
        if self._path is None or fcntl is None:
            return True
        try:
            fd = os.open(self._path, os.O_RDWR | os.O_CREAT, 0o600)
        except OSError:  # no lock file possible (a read-only folder): the threads still queue
            return True
        while True:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                self._fd = fd
                return True
            except BlockingIOError:
                if time.monotonic() >= deadline:
                    os.close(fd)
                    self._threads.release()
                    return False
                time.sleep(0.0005)

    def wrote(self, rows: int, dbapi_connection: Any) -> None:
        """After a commit, once the queue is let go: copy the WAL back into the database file every
        `_CHECKPOINT_ROWS` rows this process wrote. SQLite's own automatic checkpoint runs inside
        COMMIT, which the queue would then wait for; here the next writer writes meanwhile (a
        PASSIVE checkpoint takes no write lock)."""
        self._unchecked += rows
        if self._unchecked < _CHECKPOINT_ROWS:
            return
        self._unchecked = 0
        # Best effort: the next one copies what this one could not.
        with contextlib.suppress(sqlite3.Error):
            cursor = dbapi_connection.execute("PRAGMA wal_checkpoint(PASSIVE)")
            _busy, log_frames, _copied = cursor.fetchone()
            cursor.close()
            if log_frames > _RESTART_FRAMES:
                self._restart(dbapi_connection)

    def _restart(self, dbapi_connection: Any) -> None:
        """Start the log over. A PASSIVE checkpoint copies only what no reader still needs, and
        SQLite reuses the log from its start only once all of it is copied: with readers that
        never all stop at once (API processes preparing batches), the log grew without bound
        (61 MB in a 20,000-record benchmark pass), and every page look-up searched all of it.

        A RESTART checkpoint waits for the readers of older snapshots to finish; it runs holding
        the writer queue, so writers wait their turn there. It waits `_RESTART_WAIT_MS` at most
        (a long report must not stall the writers): the next one tries again."""
        if not self.acquire(_BUSY_TIMEOUT_S):
            return
        try:
            dbapi_connection.execute(f"PRAGMA busy_timeout={_RESTART_WAIT_MS}").close()
            try:
                dbapi_connection.execute("PRAGMA wal_checkpoint(RESTART)").close()
            finally:
                dbapi_connection.execute(f"PRAGMA busy_timeout={_BUSY_TIMEOUT_S * 1000}").close()
        finally:
            self.release()

    def release(self) -> None:
        fd, self._fd = self._fd, None
        if fd is not None:
            os.close(fd)  # closing the descriptor releases its lock
        self._threads.release()


_HOLDS_QUEUE = "tanhui_writer_queue"


def _install_writer_queue(engine: Engine) -> None:
    """Queue transactions on `_WriterQueue` before BEGIN IMMEDIATE; read-only ones skip both.

    The queue is let go once the DBAPI COMMIT or ROLLBACK has returned. SQLAlchemy's `commit` and
    `rollback` events fire before it, and a writer let in there met a database still locked by the
    COMMIT writing its pages: it then slept in SQLite's busy handler (1, 2, 5 ms...) while the
    database sat idle. So the dialect's own two calls are wrapped, on this engine's dialect only.

    After the busy timeout the transaction proceeds to BEGIN IMMEDIATE anyway, which then decides
    as SQLite would without the queue.
    """
    queue = _WriterQueue(engine.url.database)

    def begin(connection: Any) -> None:
        if connection.get_execution_options().get(READ_ONLY):
            # A deferred transaction: a WAL snapshot that waits for no writer and no other reader.
            connection.exec_driver_sql("BEGIN")
            return
        held = queue.acquire(timeout=_BUSY_TIMEOUT_S)
        try:
            _sqlite_on_begin(connection)
        except BaseException:
            if held:
                queue.release()
            raise
        if held:
            # (changes so far, the writing thread): what `end` needs to let go of the queue
            thread = threading.get_ident()
            connection.info[_HOLDS_QUEUE] = (connection.connection.total_changes, thread)
            _writing.enter(thread)

    def releasing(finish: Callable[[Any], None], *, committing: bool) -> Callable[[Any], None]:
        def end(dbapi_connection: Any) -> None:
            try:
                info = dbapi_connection.info  # the pool's proxy: the Connection's `info`
            except (AttributeError, NotImplementedError):  # a bare or first-connect one
                info = {}
            try:
                finish(dbapi_connection)
            finally:
                holding = info.pop(_HOLDS_QUEUE, None)
                if holding is not None:
                    _writing.leave(holding[1])
                    queue.release()
            if holding is not None and committing:
                queue.wrote(dbapi_connection.total_changes - holding[0], dbapi_connection)

        return end

    def invalidated(_dbapi_connection: Any, record: Any, _exception: Any = None) -> None:
        # A connection dropped mid-transaction gets no ROLLBACK call: its queue goes here.
        holding = record.info.pop(_HOLDS_QUEUE, None) if record is not None else None
        if holding is not None:
            _writing.leave(holding[1])
            queue.release()

    event.listen(engine, "begin", begin)
    event.listen(engine, "invalidate", invalidated)
    dialect: Any = engine.dialect  # an instance of this engine's own
    dialect.do_commit = releasing(dialect.do_commit, committing=True)
    dialect.do_rollback = releasing(dialect.do_rollback, committing=False)


def create_db_engine(url: str, **kwargs: Any) -> Engine:
    parsed = make_url(url)
    if parsed.get_backend_name() == "sqlite":
        if parsed.database and parsed.database != ":memory:":
            Path(parsed.database).parent.mkdir(parents=True, exist_ok=True)
        # Requests run in a thread pool; a pooled connection is used by one thread at a time.
        kwargs.setdefault("connect_args", {"check_same_thread": False})
        engine = create_engine(url, **kwargs)
        event.listen(engine, "connect", _sqlite_on_connect)
        _install_writer_queue(engine)
        return engine
    if parsed.get_backend_name() == "postgresql" and parsed.drivername == "postgresql":
        url = parsed.set(drivername="postgresql+psycopg").render_as_string(hide_password=False)
    kwargs.setdefault("pool_pre_ping", True)
    # psycopg prepares a statement on the server after 5 executions, and PostgreSQL may then reuse
    # one generic plan for it on that connection. A plan made while a table was nearly empty (a
    # sequential scan) then stays as the table grows: the ingestion look-ups by external id slowed
    # from 1,470 to 600 records/s over 20,000 records (until autovacuum's ANALYZE invalidates the
    # plan). Custom plans keep the parse saving and plan with the real parameters and table size
    # each time. The price, measured: large multi-row INSERTs are planned every time too, and raw
    # inserts of the ingestion rows ran at 4,300 rows/s instead of 7,100; the pipeline itself ran
    # at the same speed either way, but without the decay. Bulk writes, where re-planning costs
    # most, switch back for their own statements (`generic_plans_for_writes`).
    connect_args = dict(kwargs.get("connect_args") or {})
    options = connect_args.get("options", "")
    connect_args["options"] = f"{options} -c plan_cache_mode=force_custom_plan".strip()
    kwargs["connect_args"] = connect_args
    return create_engine(url, **kwargs)


@contextmanager
def generic_plans_for_writes(session: Session, *, rows: int) -> Iterator[None]:
    """On PostgreSQL, let the statements inside reuse cached generic plans (the server's default).

    The connections plan every statement afresh (see `create_db_engine`), and that includes the
    foreign-key check PostgreSQL runs for each written row: a batch's 1,000 postings re-planned
    3,000 checks, which doubled the insert's cost (measured: 80-135 ms against 30-55 ms). Those
    checks are primary-key look-ups, for which a generic plan is always right. Reads stay outside.

    SET LOCAL lasts to the end of the transaction, so the custom setting is restored after the
    block; if the block fails, the transaction (or savepoint) that rolls back undoes the switch.
    The two round trips cost about what re-planning the checks of 10 rows does: fewer `rows`
    than `_GENERIC_PLANS_FROM` are written as they are.
    """
    if session.get_bind().dialect.name != "postgresql" or rows < _GENERIC_PLANS_FROM:
        yield
        return
    connection = session.connection()
    connection.exec_driver_sql("SET LOCAL plan_cache_mode = auto")
    yield
    connection.exec_driver_sql("SET LOCAL plan_cache_mode = force_custom_plan")


_GENERIC_PLANS_FROM = 16


def make_session_factory(engine: Engine) -> sessionmaker[Session]:
    return sessionmaker(engine, expire_on_commit=False)


def read_only_factory(factory: sessionmaker[Session]) -> sessionmaker[Session]:
    """Sessions for work that only reads, beside `factory`'s.

    On a SQLite engine they begin deferred transactions that take no writer lock, so any number of
    requests (and processes) read while one writes. Elsewhere (PostgreSQL, whose readers never wait
    for writers, or a factory bound to one connection, as in tests) it is `factory` itself.
    """
    bind = factory.kw.get("bind")
    if isinstance(bind, Engine) and bind.dialect.name == "sqlite":
        return sessionmaker(bind.execution_options(**{READ_ONLY: True}), expire_on_commit=False)
    return factory


class SoleProcess:
    """Which process of those serving one SQLite file does a background job: the one holding an
    advisory lock on `<database>.<job>` (POSIX), from its first `held()` until `release()` or its
    exit, when the OS lets go of it and the next process to ask takes over.

    Anywhere else (PostgreSQL, an in-memory database, no `fcntl`) every process is held: the job
    must then be safe to run concurrently, as it must be anyway across PostgreSQL hosts."""

    def __init__(self, factory: sessionmaker[Session], job: str) -> None:
        bind = factory.kw.get("bind")
        url = bind.engine.url if isinstance(bind, Engine | Connection) else None
        database = url.database if url is not None and url.get_backend_name() == "sqlite" else None
        self._path = _lock_file(database, job) if fcntl else None
        self._fd: int | None = None

    def held(self) -> bool:
        """True if this process does the job now: it holds the lock, or just took it."""
        if self._path is None or self._fd is not None:
            return True
        try:
            fd = os.open(self._path, os.O_RDWR | os.O_CREAT, 0o600)
        except OSError:  # no lock file possible (a read-only folder): do the job, as without one
            return True
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            os.close(fd)
            return False
        self._fd = fd
        return True

    def release(self) -> None:
        fd, self._fd = self._fd, None
        if fd is not None:
            os.close(fd)


_default_factory: sessionmaker[Session] | None = None


def default_session_factory() -> sessionmaker[Session]:
    """The process-wide factory for the configured database (CLI commands and the served app)."""
    global _default_factory
    if _default_factory is None:
        from tanhui.kit.settings import get_settings

        _default_factory = make_session_factory(
            create_db_engine(get_settings().resolved_database_url)
        )
    return _default_factory


def reset_default_session_factory() -> None:
    """Forget the process-wide factory (after the settings changed, e.g. in tests)."""
    global _default_factory
    if _default_factory is not None:
        bind = _default_factory.kw.get("bind")
        if bind is not None:
            bind.dispose()
    _default_factory = None


@contextmanager
def session_scope(factory: sessionmaker[Session] | None = None) -> Iterator[Session]:
    """One unit of work: commit on success, roll back on any exception."""
    session = (factory or default_session_factory())()
    try:
        yield session
        session.commit()
    except BaseException:
        session.rollback()
        raise
    finally:
        session.close()


def is_postgresql(session: Session) -> bool:
    return session.get_bind().dialect.name == "postgresql"

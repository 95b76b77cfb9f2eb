"""`kit.bulk.execute_many` stores exactly what `session.execute(stmt, rows)` stores, `fetch_all` reads
exactly what it reads, and UTCDateTime's fast SQLite conversion writes exactly SQLAlchemy's DATETIME
text."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta, timezone
from pathlib import Path
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st
from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    Column,
    Date,
    DateTime,
    Integer,
    MetaData,
    String,
    Table,
    bindparam,
    insert,
    select,
    text,
)
from sqlalchemy.dialects import sqlite

from tanhui.kit.bulk import execute_many, fetch_all
from tanhui.kit.db import UTCDateTime, create_db_engine, make_session_factory
from tanhui.kit.dialect import in_list, rows_from, rows_params

_dialect = sqlite.dialect()
_zones = st.integers(min_value=-14 * 60, max_value=14 * 60).map(
    lambda m: timezone(timedelta(minutes=m))
)
_instants = st.datetimes(
    min_value=datetime(1, 1, 2), max_value=datetime(9999, 12, 30), timezones=_zones
)


@given(_instants)
def test_utc_datetime_writes_sqlalchemys_sqlite_text(value: datetime) -> None:
    fast = UTCDateTime().bind_processor(_dialect)
    plain = sqlite.DATETIME().bind_processor(_dialect)
    assert fast is not None and plain is not None
    assert fast(value) == plain(value.astimezone(UTC).replace(tzinfo=None))


def _values(texts: st.SearchStrategy[str]) -> st.SearchStrategy[list[tuple[Any, ...]]]:
    """Rows for `_tables`' columns (id aside), the text column drawn from `texts`."""
    return st.lists(
        st.tuples(
            st.integers(min_value=-(2**63), max_value=2**63 - 1),
            texts,
            st.one_of(st.none(), _instants),
            st.one_of(st.none(), st.dates()),
            st.one_of(st.none(), st.dictionaries(st.text(max_size=5), st.integers(), max_size=3)),
            st.booleans(),
        ),
        min_size=1,
        max_size=30,
    )


def _rows(values: list[tuple[Any, ...]]) -> list[dict[str, Any]]:
    return [
        {"id": i + 1, "n": n, "s": s, "at": at, "day": d, "doc": doc, "flag": flag}
        for i, (n, s, at, d, doc, flag) in enumerate(values)
    ]


def _tables() -> tuple[MetaData, Table, Table]:
    metadata = MetaData()

    def table(name: str) -> Table:
        return Table(
            name,
            metadata,
            Column("id", Integer, primary_key=True),
            Column("n", BigInteger),
            Column("s", String(50)),
            Column("at", UTCDateTime),
            Column("day", Date),
            Column("doc", JSON),
            Column("flag", Boolean),
        )

    return metadata, table("via_core"), table("via_bulk")


@settings(max_examples=25, deadline=None)
@given(_values(st.text(max_size=20).filter(lambda s: "\x00" not in s)))
def test_execute_many_stores_what_core_stores(tmp_path_factory, values) -> None:  # type: ignore[no-untyped-def]
    path: Path = tmp_path_factory.mktemp("bulk") / "bulk.db"
    engine = create_db_engine(f"sqlite:///{path}")
    metadata, core, bulk = _tables()
    metadata.create_all(engine)
    rows = _rows(values)
    with make_session_factory(engine).begin() as session:
        session.execute(insert(core), rows)
        assert execute_many(session, insert(bulk), rows) == len(rows)
    with engine.connect() as connection:
        # The stored text itself, not what SQLAlchemy reads back from it.
        raw = "SELECT id, n, s, at, day, doc, flag, typeof(doc) FROM {} ORDER BY id"
        assert (
            connection.execute(text(raw.format("via_core"))).all()
            == connection.execute(text(raw.format("via_bulk"))).all()
        )
    engine.dispose()


def test_repeated_timestamps_in_two_zones_keep_their_own_text(tmp_path: Path) -> None:
    """Equal instants in two zones are equal datetimes; the batch's per-value cache must not merge
    them where a column stores wall-clock time."""
    metadata = MetaData()
    table = Table("t", metadata, Column("id", Integer, primary_key=True), Column("at", DateTime))
    engine = create_db_engine(f"sqlite:///{tmp_path / 'zones.db'}")
    metadata.create_all(engine)
    utc = datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC)
    shanghai = utc.astimezone(timezone(timedelta(hours=8)))
    assert utc == shanghai
    with make_session_factory(engine).begin() as session:
        execute_many(session, insert(table), [{"id": 1, "at": utc}, {"id": 2, "at": shanghai}])
    with engine.connect() as connection:
        stored = connection.execute(text("SELECT at FROM t ORDER BY id")).scalars().all()
    assert stored[0] != stored[1]
    assert date(2026, 1, 2).isoformat() in stored[0]
    engine.dispose()


@settings(max_examples=25, deadline=None)
@given(
    _values(st.sampled_from(["a", "b", "碳"])),
    st.lists(st.integers(min_value=1, max_value=40), max_size=10),
)
def test_fetch_all_reads_what_core_reads(tmp_path_factory, values, wanted) -> None:  # type: ignore[no-untyped-def]
    path: Path = tmp_path_factory.mktemp("fetch") / "fetch.db"
    engine = create_db_engine(f"sqlite:///{path}")
    metadata, table, _ = _tables()
    metadata.create_all(engine)
    rows = _rows(values)
    c = table.c
    # Named parameters (a list among them), a literal of the statement's own, typed results.
    by_ids = select(c.id, c.n, c.s, c.at, c.day, c.doc, c.flag).where(
        in_list(False, c.id, "ids"), c.s != "b", c.n >= bindparam("least")
    )
    keys = rows_from(False, [("id", Integer()), ("s", String())], "keys")
    joined = (
        select(c.id, c.at).select_from(keys).join(table, (c.id == keys.c.id) & (c.s == keys.c.s))
    )
    with make_session_factory(engine).begin() as session:
        session.execute(insert(table), rows)
        params = {"ids": wanted, "least": 0}
        assert sorted(fetch_all(session, by_ids, params)) == sorted(
            tuple(row) for row in session.execute(by_ids, params)
        )
        pairs = [(i, s) for i, (_, s, *_rest) in enumerate(values, start=1)][::2]
        keyed = rows_params(session, [("id", Integer()), ("s", String())], pairs, "keys")
        assert sorted(fetch_all(session, joined, keyed)) == sorted(
            tuple(row) for row in session.execute(joined, keyed)
        )
        assert len(fetch_all(session, joined, keyed)) == len(pairs)
        # A list of dates goes in as the column stores them.
        on_days = select(c.id).where(in_list(False, c.day, "days"))
        days = {"days": [d for (*_, d, _doc, _flag) in values if d is not None][:5]}
        assert sorted(fetch_all(session, on_days, days)) == sorted(
            tuple(row) for row in session.execute(on_days, days)
        )
        assert len(fetch_all(session, on_days, days)) >= len(set(days["days"]))
    engine.dispose()

"""The little SQL that differs between SQLite and PostgreSQL, in one place."""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from functools import lru_cache
from typing import Any

from sqlalchemy import (
    String,
    Table,
    any_,
    bindparam,
    column,
    func,
    literal_column,
    select,
    text,
)
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.orm import Session
from sqlalchemy.sql import FromClause
from sqlalchemy.sql.dml import Insert
from sqlalchemy.types import TypeDecorator, TypeEngine

from tanhui.kit.bulk import convert_column


def insert_ignore(session: Session, table: Table, index_elements: list[str]) -> Insert:
    """INSERT ... ON CONFLICT (cols) DO NOTHING for the session's database.

    Built once per (database, table, columns): the same object each time, so `kit.bulk.execute_many`
    compiles it once."""
    return _insert_ignore(postgres(session), table, tuple(index_elements))


@lru_cache(maxsize=128)
def _insert_ignore(postgres: bool, table: Table, index_elements: tuple[str, ...]) -> Insert:
    stmt: Any = postgresql.insert(table) if postgres else sqlite.insert(table)
    return stmt.on_conflict_do_nothing(index_elements=list(index_elements))  # type: ignore[no-any-return]


def for_update(session: Session, stmt: Any, *, skip_locked: bool = False) -> Any:
    """Row locks on PostgreSQL; SQLite's BEGIN IMMEDIATE already serialises writers."""
    if session.get_bind().dialect.name == "postgresql":
        return stmt.with_for_update(skip_locked=skip_locked)
    return stmt


def upsert_add(
    session: Session,
    table: Table,
    index_elements: list[str],
    add_columns: list[str],
    *,
    lowest: Sequence[str] = (),
    highest: Sequence[str] = (),
) -> Insert:
    """INSERT ... ON CONFLICT (cols) DO UPDATE SET c = table.c + excluded.c for each add column.

    Both dialects spell it the same; only the constructor differs. Running totals (point lots, daily
    sums) grow by one statement per batch, whatever was there before. `lowest` and `highest` columns
    only widen: each keeps the lower (higher) of the stored and the new value, a NULL on either side
    giving way to the other. Built once per arguments, like `insert_ignore`.
    """
    return _upsert(
        postgres(session),
        table,
        tuple(index_elements),
        tuple(add_columns),
        add=True,
        lowest=tuple(lowest),
        highest=tuple(highest),
    )


def upsert_set(
    session: Session, table: Table, index_elements: list[str], set_columns: list[str]
) -> Insert:
    """INSERT ... ON CONFLICT (cols) DO UPDATE SET c = excluded.c for each set column: a row
    written whole whether or not it existed. Built once per arguments, like `insert_ignore`."""
    return _upsert(postgres(session), table, tuple(index_elements), tuple(set_columns), add=False)


@lru_cache(maxsize=128)
def _upsert(
    postgres: bool,
    table: Table,
    index_elements: tuple[str, ...],
    columns: tuple[str, ...],
    *,
    add: bool,
    lowest: tuple[str, ...] = (),
    highest: tuple[str, ...] = (),
) -> Insert:
    stmt: Any = postgresql.insert(table) if postgres else sqlite.insert(table)
    set_: dict[str, Any] = {
        c: table.c[c] + stmt.excluded[c] if add else stmt.excluded[c] for c in columns
    }
    for names, pick in ((lowest, "least"), (highest, "greatest")):
        for c in names:
            set_[c] = _extreme(postgres, pick, table.c[c], stmt.excluded[c])
    return stmt.on_conflict_do_update(  # type: ignore[no-any-return]
        index_elements=list(index_elements), set_=set_
    )


def _extreme(postgres: bool, pick: str, stored: Any, new: Any) -> Any:
    """The lower or higher of two values, ignoring a NULL: PostgreSQL's LEAST and GREATEST do;
    SQLite's two-argument min and max return NULL if either is, so each side falls back on the other."""
    if postgres:
        return getattr(func, pick)(stored, new)
    scalar = func.min if pick == "least" else func.max
    return scalar(func.coalesce(stored, new), func.coalesce(new, stored))


def serialise_on(session: Session, key: str) -> None:
    """Until this transaction ends, other transactions that serialise on the same key wait here.

    For a check-then-insert with no row to lock yet (say, "fewer than 5 codes for this phone").
    PostgreSQL: a transaction-level advisory lock on the key's 64-bit hash (two keys sharing a hash
    only wait for each other needlessly). SQLite lets one writer in at a time already.
    """
    if postgres(session):
        session.execute(_ADVISORY_LOCK, {"key": key})


_ADVISORY_LOCK = text("SELECT pg_advisory_xact_lock(hashtextextended(:key, 0))")


def postgres(session: Session) -> bool:
    """Whether the session's database is PostgreSQL (statement builders cache per database)."""
    return session.get_bind().dialect.name == "postgresql"


def serialised_writers(session: Session) -> bool:
    """True on SQLite, where BEGIN IMMEDIATE lets one writer in at a time: what a transaction read
    cannot be changed by another writer before it commits, so a SELECT then a plain INSERT is safe.
    On PostgreSQL concurrent writers need ON CONFLICT (and row locks)."""
    return session.get_bind().dialect.name != "postgresql"


def in_values(session: Session, column: Any, values: Sequence[Any]) -> Any:
    """`column IN values` for a batch-sized list of ints or strings, bound as ONE parameter.

    `column.in_(values)` makes a bound parameter per value (coerced one by one in Python) and a
    statement text per list length, which costs more than the lookup for a 500-record batch. Here
    SQLite reads the list from a JSON array (`json_each`) and PostgreSQL from an array
    (`= ANY(...)`); both still search the column's index value by value.
    """
    values = list(values)
    return _in(postgres(session), column, lambda type_: bindparam(None, values, type_=type_))


def in_list(postgres: bool, column: Any, name: str) -> Any:
    """`column IN :name` as `in_values` writes it, with the list a NAMED parameter: for statements
    built once per database and run with `kit.bulk.fetch_all`, which takes the list itself."""
    return _in(postgres, column, lambda type_: bindparam(name, type_=type_))


def _in(on_postgres: bool, column: Any, bind: Callable[[TypeEngine[Any]], Any]) -> Any:
    """`column IN` the list `bind` makes a parameter of, given the list's type."""
    if on_postgres:
        return column == any_(bind(postgresql.ARRAY(column.type)))
    return column.in_(
        select(literal_column("value")).select_from(func.json_each(bind(_List(column.type))))
    )


class _List(TypeDecorator[Any]):
    """A list bound as its JSON text, for SQLite's json_each: each item first as the column type
    stores it (a date as its ISO text)."""

    impl = String
    cache_ok = True

    def __init__(self, item: TypeEngine[Any]) -> None:
        super().__init__()
        self.item = item

    def process_bind_param(self, value: Any, dialect: Any) -> str:
        convert = self.item.dialect_impl(dialect).bind_processor(dialect)
        return json.dumps(list(value) if convert is None else [convert(v) for v in value])


def rows_table(
    session: Session, columns: Sequence[tuple[str, TypeEngine[Any]]], rows: Sequence[Sequence[Any]]
) -> FromClause:
    """A batch's rows as a table to JOIN against, bound as one parameter per column.

    For look-ups that `in_values` cannot say, because each row brings several values (a key of
    three columns, a time span): "the stored rows matching one of these 500 (citizen, scenario, day)"
    is a join whose every probe walks an index, instead of one wide read sifted in Python. SQLite
    reads the rows from a JSON array of arrays (`json_each`; values converted first by the column
    type's own bind processor, so a timestamp compares with the stored text); PostgreSQL from one
    array per column (`unnest`). Its columns are `.c.<name>`.
    """
    on_postgres = postgres(session)
    values = rows_params(session, columns, rows, "rows").values()
    types = _param_types(on_postgres, columns)
    return _rows_table(
        on_postgres,
        columns,
        [bindparam(None, v, type_=t) for v, t in zip(values, types, strict=True)],
    )


def rows_from(
    on_postgres: bool, columns: Sequence[tuple[str, TypeEngine[Any]]], name: str
) -> FromClause:
    """`rows_table` with NAMED parameters, for a statement built once per database and run with
    `kit.bulk.fetch_all`; `rows_params` gives their values."""
    names = _param_names(on_postgres, columns, name)
    types = _param_types(on_postgres, columns)
    return _rows_table(
        on_postgres, columns, [bindparam(n, type_=t) for n, t in zip(names, types, strict=True)]
    )


def rows_params(
    session: Session,
    columns: Sequence[tuple[str, TypeEngine[Any]]],
    rows: Sequence[Sequence[Any]],
    name: str,
) -> dict[str, Any]:
    """The parameters of `rows_from(..., name)` for these rows."""
    if postgres(session):
        names = _param_names(True, columns, name)
        return {n: [row[i] for row in rows] for i, n in enumerate(names)}
    dialect = session.get_bind().dialect
    converters = [type_.dialect_impl(dialect).bind_processor(dialect) for _, type_ in columns]
    if rows and any(converters):
        values: list[Any] = list(zip(*rows, strict=True))  # column by column, as kit.bulk does
        for i, convert in enumerate(converters):
            if convert is not None:
                values[i] = convert_column(values[i], convert)
        rows = list(zip(*values, strict=True))
    return {name: json.dumps(rows)}


def _param_names(
    on_postgres: bool, columns: Sequence[tuple[str, TypeEngine[Any]]], name: str
) -> list[str]:
    # PostgreSQL: an array per column; SQLite: the rows as one JSON text.
    return [f"{name}_{i}" for i in range(len(columns))] if on_postgres else [name]


def _param_types(
    on_postgres: bool, columns: Sequence[tuple[str, TypeEngine[Any]]]
) -> list[TypeEngine[Any]]:
    return [postgresql.ARRAY(t) for _, t in columns] if on_postgres else [String()]


def _rows_table(
    on_postgres: bool, columns: Sequence[tuple[str, TypeEngine[Any]]], binds: Sequence[Any]
) -> FromClause:
    if on_postgres:
        return (
            func.unnest(*binds)
            .table_valued(*(column(name, type_) for name, type_ in columns))
            .render_derived()
        )
    each = func.json_each(binds[0]).table_valued("value")
    return (
        select(
            *(
                each.c.value.op("->>", return_type=type_)(literal_column(str(i))).label(name)
                for i, (name, type_) in enumerate(columns)
            )
        )
        .select_from(each)
        # Materialised once: a subquery would be flattened into the join and re-parse the JSON
        # row for every comparison with every candidate row it meets.
        .cte()
        .prefix_with("MATERIALIZED")
    )

"""Executemany without SQLAlchemy's per-row parameter layer, and reads without its result layer,
for the ingestion hot path on SQLite.

`session.execute(stmt, rows)` builds, for every row of an executemany, a fresh parameter dict through
the compiler's `construct_params` before converting its values; for a 25-column insert of 500 rows
that costs more than SQLite's own work. `execute_many` compiles the statement once per (statement,
column keys, dialect), converts each value with the column type's own bind processor (so what is
stored is exactly what `session.execute` would have stored) and hands the DBAPI cursor one list.

`fetch_all` does the same for a SELECT built once with named parameters: the batch's look-ups
(accounts, bindings, daily totals, each keyed by hundreds of values) spent more time building,
compiling and wrapping their statements and rows than SQLite spent answering them.

Use both with statements built once (module constants, or the cached builders in `kit.dialect`):
the compiled form is cached by statement identity.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from datetime import date, datetime
from functools import lru_cache
from operator import itemgetter
from typing import Any, cast

from sqlalchemy.engine import Dialect
from sqlalchemy.orm import Session
from sqlalchemy.sql import ClauseElement, Executable, Select
from sqlalchemy.sql.compiler import SQLCompiler

from tanhui.kit.db import generic_plans_for_writes


@lru_cache(maxsize=256)
def _compiled(
    stmt: ClauseElement, dialect: Dialect, keys: tuple[str, ...]
) -> tuple[str, tuple[str, ...], tuple[tuple[int, Callable[[Any], Any]], ...], bool]:
    """(SQL text, bind names in parameter order, (position, converter) of the binds whose type
    converts values, positional?)."""
    compiled = cast(SQLCompiler, stmt.compile(dialect=dialect, column_keys=list(keys)))
    positional = bool(compiled.positional)
    names = tuple(compiled.positiontup or ()) if positional else tuple(compiled.binds)
    converters = []
    for i, name in enumerate(names):
        bind = compiled.binds[name]
        if bind.expanding:
            raise ValueError("execute_many does not take expanding (IN) parameters")
        convert = bind.type.dialect_impl(dialect).bind_processor(dialect)
        if convert is not None:
            converters.append((i, convert))
    return compiled.string, names, tuple(converters), positional


def convert_column(column: Sequence[Any], convert: Callable[[Any], Any]) -> list[Any]:
    """A column's values through its bind processor; each distinct date or time converted once."""
    if hasattr(convert, "cache_info"):  # memoised already (kit.db's UTC timestamps)
        return list(map(convert, column))
    if all(type(v) in _MEMOISED for v in column):
        # Keyed with the zone too: equal instants in two zones are equal datetimes, yet a plain
        # DateTime column stores their wall-clock times apart.
        keys = [(v, getattr(v, "tzinfo", None)) for v in column]
        converted = {key: convert(key[0]) for key in set(keys)}
        return [converted[key] for key in keys]
    return [convert(v) for v in column]


# Types whose equal values (in one zone) convert alike; not Decimal: 1.0 == 1, yet they print apart.
_MEMOISED = frozenset({datetime, date, type(None)})


def execute_many(session: Session, stmt: ClauseElement, rows: Sequence[Mapping[str, Any]]) -> int:
    """Run `stmt` once per row (one DBAPI executemany); returns the rows affected in total.

    Every row must have the keys of the first (the statement is compiled for those columns).
    """
    if not rows:
        return 0
    connection = session.connection()
    if connection.dialect.name != "sqlite":
        # psycopg sends the rows in one pipeline, as a prepared statement it binds row by row.
        with generic_plans_for_writes(session, rows=len(rows)):
            result = session.execute(cast(Executable, stmt), list(rows))
        return int(result.rowcount)  # type: ignore[attr-defined]
    session.flush()  # ORM changes pending in this session go first, as session.execute would do
    sql, names, converters, positional = _compiled(stmt, connection.dialect, tuple(rows[0]))
    values = itemgetter(*names)
    params: list[Any]
    params = [(values(row),) for row in rows] if len(names) == 1 else [values(row) for row in rows]
    if converters:
        # Column by column (a transpose is one C call each way): a batch's timestamps repeat
        # (every row's received_at is the same instant), so each distinct one is converted once.
        columns: list[Any] = list(zip(*params, strict=True))
        for i, convert in converters:
            columns[i] = convert_column(columns[i], convert)
        params = list(zip(*columns, strict=True))
    if not positional:
        params = [dict(zip(names, row_values, strict=True)) for row_values in params]
    result = connection.exec_driver_sql(sql, params)
    return int(result.rowcount)


@lru_cache(maxsize=256)
def _compiled_select(
    stmt: Select[Any], dialect: Dialect
) -> tuple[
    str,
    tuple[Any, ...],
    tuple[tuple[int, Callable[[Any], Any]], ...],
    tuple[tuple[int, Callable[[Any], Any]], ...],
]:
    """(SQL text, bind values in order, (position, converter) of binds, (position, converter) of
    result columns): SQLite's binds are positional (qmark). A bind value is its name (a str) when
    the caller gives it, or the statement's own literal in a 1-tuple."""
    compiled = cast(SQLCompiler, stmt.compile(dialect=dialect))
    names: list[Any] = []
    binds = []
    for i, name in enumerate(compiled.positiontup or ()):
        bind = compiled.binds[name]
        names.append(name if bind.required else (bind.value,))
        convert = bind.type.dialect_impl(dialect).bind_processor(dialect)
        if convert is not None:
            binds.append((i, convert))
    results = []
    for i, selected in enumerate(stmt.selected_columns):
        convert = selected.type.dialect_impl(dialect).result_processor(dialect, None)
        if convert is not None:
            results.append((i, convert))
    return compiled.string, tuple(names), tuple(binds), tuple(results)


def fetch_all(
    session: Session, stmt: Select[Any], params: Mapping[str, Any]
) -> list[tuple[Any, ...]]:
    """The rows of `stmt` as tuples, each value converted by its column type (as `session.execute`
    would give them). `params` names every bind parameter of the statement.

    On SQLite the statement runs on the DBAPI cursor of the session's connection, in its
    transaction; elsewhere through `session.execute`.
    """
    connection = session.connection()
    if connection.dialect.name != "sqlite":
        return [tuple(row) for row in session.execute(stmt, params)]
    session.flush()  # as a session's autoflush would, before reading
    sql, names, binds, results = _compiled_select(stmt, connection.dialect)
    values = [params[name] if type(name) is str else name[0] for name in names]
    for i, convert in binds:
        values[i] = convert(values[i])
    cursor = connection.connection.cursor()
    try:
        rows: list[tuple[Any, ...]] = cursor.execute(sql, values).fetchall()
    finally:
        cursor.close()
    if not results or not rows:
        return rows
    columns: list[Any] = list(zip(*rows, strict=True))
    for i, convert in results:
        columns[i] = list(map(convert, columns[i]))
    return list(zip(*columns, strict=True))

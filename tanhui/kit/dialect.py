"""The little SQL that differs between SQLite and PostgreSQL, in one place."""

from __future__ import annotations

from typing import Any

from sqlalchemy import Table
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.orm import Session
from sqlalchemy.sql.dml import Insert


def insert_ignore(session: Session, table: Table, index_elements: list[str]) -> Insert:
    """INSERT ... ON CONFLICT (cols) DO NOTHING for the session's database."""
    postgres = session.get_bind().dialect.name == "postgresql"
    stmt: Any = postgresql.insert(table) if postgres else sqlite.insert(table)
    return stmt.on_conflict_do_nothing(index_elements=index_elements)  # type: ignore[no-any-return]


def for_update(session: Session, stmt: Any, *, skip_locked: bool = False) -> Any:
    """Row locks on PostgreSQL; SQLite's BEGIN IMMEDIATE already serialises writers."""
    if session.get_bind().dialect.name == "postgresql":
        return stmt.with_for_update(skip_locked=skip_locked)
    return stmt

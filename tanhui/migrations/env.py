"""Alembic environment: one history for SQLite and PostgreSQL, batch mode on SQLite."""

from __future__ import annotations

from typing import Any

from alembic import context

import tanhui.models  # noqa: F401  (fills Base.metadata)
from tanhui.kit.db import Base, create_db_engine

config = context.config
part = config.attributes.get("part")


def include_object(
    obj: Any, name: str | None, type_: str, reflected: bool, compare_to: Any
) -> bool:
    if part and type_ == "table":
        return bool(name and name.startswith(f"{part}_"))
    if part and hasattr(obj, "table"):
        return bool(obj.table.name.startswith(f"{part}_"))
    return True


def run_migrations_online() -> None:
    connectable = config.attributes.get("connection")
    if connectable is None:
        engine = create_db_engine(config.get_main_option("sqlalchemy.url") or "")
        with engine.connect() as connection:
            _run(connection)
        engine.dispose()
    else:
        _run(connectable)


def _run(connection: Any) -> None:
    context.configure(
        connection=connection,
        target_metadata=Base.metadata,
        render_as_batch=connection.dialect.name == "sqlite",
        include_object=include_object,
        compare_type=True,
    )
    with context.begin_transaction():
        context.run_migrations()


run_migrations_online()

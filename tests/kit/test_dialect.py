"""`kit.dialect.in_values` and `rows_table`: a batch bound as one parameter, on SQLite and PostgreSQL."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta, timezone

from sqlalchemy import BigInteger, Column, Date, MetaData, String, Table, insert, select
from sqlalchemy.orm import Session

from tanhui.kit.db import UTCDateTime
from tanhui.kit.dialect import in_values, rows_table
from tanhui.ledger import service as ledger_service
from tanhui.ledger.models import Account


def test_in_values_matches_in_for_ints_and_awkward_strings(session: Session) -> None:
    owners = [f"o{n}" for n in range(30)] + ['它\'s "quoted"', "a,b", "[1]", "null"]
    ids = ledger_service.open_accounts(
        session, owner_type="test", owner_ids=owners, asset=ledger_service.POINT
    )
    table = Account.__table__
    wanted_owners = [*owners[::3], "nobody"]
    by_owner = session.scalars(
        select(table.c.owner_id).where(
            table.c.owner_type == "test", in_values(session, table.c.owner_id, wanted_owners)
        )
    ).all()
    assert sorted(by_owner) == sorted(o for o in wanted_owners if o in ids)
    wanted_ids = [ids[o] for o in owners[1::4]] + [10**12]
    by_id = session.scalars(select(table.c.id).where(in_values(session, table.c.id, wanted_ids)))
    assert sorted(by_id) == sorted(wanted_ids[:-1])
    assert session.scalars(select(table.c.id).where(in_values(session, table.c.id, []))).all() == []


def test_rows_table_joins_each_row_on_ints_strings_dates_and_instants(session: Session) -> None:
    """Every column type converts as the stored column does: a probe at +08:00 meets the same
    instant stored in UTC, a date meets a date, awkward text meets itself."""
    table = Table(
        "test_rows_table",
        MetaData(),
        Column("n", BigInteger, primary_key=True),
        Column("who", String(40)),
        Column("day", Date),
        Column("at", UTCDateTime),
    )
    table.create(session.connection())
    base = datetime(2026, 3, 1, 8, 30, 0, 250, tzinfo=UTC)
    names = ["a", '它\'s "q"', "[1,2]", "null"]
    session.execute(
        insert(table),
        [
            {
                "n": n,
                "who": names[n % 4],
                "day": date(2026, 3, 1 + n % 3),
                "at": base + timedelta(minutes=n),
            }
            for n in range(40)
        ],
    )
    shanghai = timezone(timedelta(hours=8))
    probes = [
        (7, names[3], date(2026, 3, 2), (base + timedelta(minutes=7)).astimezone(shanghai)),
        (8, names[0], date(2026, 3, 3), base + timedelta(minutes=8)),  # 8 % 3 = 2: 3 March
        (9, names[1], date(2026, 3, 2), base + timedelta(minutes=9)),  # 9 % 3 = 0: not 2 March
        (10**12, names[2], date(2026, 3, 2), base),  # no such row
    ]
    probe = rows_table(
        session,
        [("n", BigInteger()), ("who", String()), ("day", Date()), ("at", UTCDateTime())],
        probes,
    )
    found = session.scalars(
        select(table.c.n)
        .select_from(probe)
        .join(
            table,
            (table.c.n == probe.c.n)
            & (table.c.who == probe.c.who)
            & (table.c.day == probe.c.day)
            & (table.c.at == probe.c.at),
        )
        .order_by(table.c.n)
    ).all()
    assert found == [7, 8]
    # Ranges compare as the stored values do (SQLite compares the stored text).
    later = session.scalars(
        select(table.c.n)
        .select_from(probe)
        .join(table, (table.c.at > probe.c.at) & (table.c.n == probe.c.n + 1))
        .order_by(table.c.n)
    ).all()
    assert later == [8, 9, 10]
    earlier = session.scalars(
        select(table.c.n)
        .select_from(probe)
        .join(table, (table.c.at < probe.c.at) & (table.c.n == probe.c.n + 1))
    ).all()
    assert earlier == []

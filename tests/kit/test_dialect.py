"""`kit.dialect.in_values`: one bound parameter for a batch's IN list, on SQLite and PostgreSQL."""

from __future__ import annotations

from sqlalchemy import select
from sqlalchemy.orm import Session

from tanhui.kit.dialect import in_values
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

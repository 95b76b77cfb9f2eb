"""activity_daily keeps the span bounds of the trips that touch each day

Revision ID: 5b1f0c2e7a94
Revises: 834e7ebda2d1
Create Date: 2026-11-30 05:15:00

The overlap check skips its probe for a trip that meets no touched day's bounds, so every stored
trip that holds its span (credited or in review) must be inside the bounds of every day it touches.
The backfill does it in two steps: one grouped UPDATE for the day each trip started on (the row's
own key), then a pass over the trips that end on a later platform-zone day, which SQL cannot tell
without the zone's rules, to widen (or create) those later days' rows.
"""

from collections.abc import Sequence
from datetime import timedelta

import sqlalchemy as sa
from alembic import op

from tanhui.kit.db import UTCDateTime
from tanhui.kit.settings import get_settings

revision: str = '5b1f0c2e7a94'
down_revision: str | None = '834e7ebda2d1'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_HOLDS_SPAN = ('credited', 'review')
_CHUNK = 10_000


def upgrade() -> None:
    with op.batch_alter_table('activity_daily', schema=None) as batch_op:
        batch_op.add_column(sa.Column('first_started_at', UTCDateTime(), nullable=True))
        batch_op.add_column(sa.Column('last_ended_at', UTCDateTime(), nullable=True))
    bind = op.get_bind()
    bind.execute(
        sa.text(
            'UPDATE activity_daily SET first_started_at = g.first, last_ended_at = g.last '
            'FROM (SELECT citizen_id, scenario, day, MIN(started_at) AS first, '
            'MAX(ended_at) AS last FROM activity_record '
            'WHERE citizen_id IS NOT NULL AND status IN (:a, :b) '
            'GROUP BY citizen_id, scenario, day) AS g '
            'WHERE activity_daily.citizen_id = g.citizen_id '
            'AND activity_daily.scenario = g.scenario AND activity_daily.day = g.day'
        ),
        {'a': _HOLDS_SPAN[0], 'b': _HOLDS_SPAN[1]},
    )
    _widen_later_days(bind)


def _widen_later_days(bind: sa.Connection) -> None:
    records = sa.table(
        'activity_record',
        sa.column('id', sa.BigInteger()),
        sa.column('citizen_id', sa.BigInteger()),
        sa.column('scenario', sa.String()),
        sa.column('day', sa.Date()),
        sa.column('started_at', UTCDateTime()),
        sa.column('ended_at', UTCDateTime()),
        sa.column('status', sa.String()),
    )
    zone = get_settings().zone
    # Read in id order and chunks (flat memory); only the crossing trips' later days are kept.
    later: dict[tuple[int, str, object], list[object]] = {}
    last_id = 0
    while True:
        rows = bind.execute(
            sa.select(
                records.c.id,
                records.c.citizen_id,
                records.c.scenario,
                records.c.day,
                records.c.started_at,
                records.c.ended_at,
            )
            .where(
                records.c.id > last_id,
                records.c.citizen_id.is_not(None),
                records.c.status.in_(_HOLDS_SPAN),
            )
            .order_by(records.c.id)
            .limit(_CHUNK)
        ).all()
        if not rows:
            break
        last_id = rows[-1].id
        for _, citizen_id, scenario, day, started_at, ended_at in rows:
            last_day = ended_at.astimezone(zone).date()
            for n in range(1, (last_day - day).days + 1):
                key = (citizen_id, scenario, day + timedelta(days=n))
                known = later.get(key)
                later[key] = (
                    [started_at, ended_at]
                    if known is None
                    else [min(known[0], started_at), max(known[1], ended_at)]
                )
    daily = sa.table(
        'activity_daily',
        sa.column('citizen_id', sa.BigInteger()),
        sa.column('scenario', sa.String()),
        sa.column('day', sa.Date()),
        sa.column('credited_mg', sa.BigInteger()),
        sa.column('records', sa.Integer()),
        sa.column('first_started_at', UTCDateTime()),
        sa.column('last_ended_at', UTCDateTime()),
    )
    for (citizen_id, scenario, day), (first, last) in sorted(later.items()):
        key = (
            (daily.c.citizen_id == citizen_id)
            & (daily.c.scenario == scenario)
            & (daily.c.day == day)
        )
        row = bind.execute(
            sa.select(daily.c.first_started_at, daily.c.last_ended_at).where(key)
        ).one_or_none()
        if row is None:
            bind.execute(
                daily.insert().values(
                    citizen_id=citizen_id,
                    scenario=scenario,
                    day=day,
                    credited_mg=0,
                    records=0,
                    first_started_at=first,
                    last_ended_at=last,
                )
            )
            continue
        first = first if row.first_started_at is None else min(first, row.first_started_at)
        last = last if row.last_ended_at is None else max(last, row.last_ended_at)
        bind.execute(daily.update().where(key).values(first_started_at=first, last_ended_at=last))


def downgrade() -> None:
    with op.batch_alter_table('activity_daily', schema=None) as batch_op:
        batch_op.drop_column('last_ended_at')
        batch_op.drop_column('first_started_at')

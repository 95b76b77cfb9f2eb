"""lots lose the citizen index their unique key already gives

Revision ID: 834e7ebda2d1
Revises: d108c260b512
Create Date: 2026-11-25 14:39:05.559267
"""

from collections.abc import Sequence

from alembic import op

revision: str = '834e7ebda2d1'
down_revision: str | None = 'd108c260b512'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    # Citizen look-ups use the unique (citizen_id, earned_on, expires_on) index's prefix.
    with op.batch_alter_table('incentives_lot', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_incentives_lot_citizen_id'))


def downgrade() -> None:
    with op.batch_alter_table('incentives_lot', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_incentives_lot_citizen_id'), ['citizen_id'], unique=False)

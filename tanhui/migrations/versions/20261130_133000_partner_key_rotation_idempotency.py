"""idempotency key for partner key rotation

Revision ID: 3c7e41a9d2b8
Revises: ae03d055fcfe
Create Date: 2026-11-30 13:30:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "3c7e41a9d2b8"
down_revision: str | None = "ae03d055fcfe"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("identity_partner_key", schema=None) as batch_op:
        batch_op.add_column(sa.Column("idempotency_key", sa.String(length=255), nullable=True))
        batch_op.add_column(sa.Column("request_hash", sa.String(length=64), nullable=True))
        batch_op.create_index(
            "uq_identity_partner_key_idempotency_key", ["idempotency_key"], unique=True
        )


def downgrade() -> None:
    with op.batch_alter_table("identity_partner_key", schema=None) as batch_op:
        batch_op.drop_index("uq_identity_partner_key_idempotency_key")
        batch_op.drop_column("request_hash")
        batch_op.drop_column("idempotency_key")

"""decision key for partner applications

Revision ID: 8d2a5f0c6e13
Revises: 3c7e41a9d2b8
Create Date: 2026-11-30 14:00:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "8d2a5f0c6e13"
down_revision: str | None = "3c7e41a9d2b8"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("identity_partner_application", schema=None) as batch_op:
        batch_op.add_column(sa.Column("decision_key", sa.String(length=200), nullable=True))
        batch_op.create_index(
            "uq_identity_partner_application_decision_key", ["decision_key"], unique=True
        )


def downgrade() -> None:
    with op.batch_alter_table("identity_partner_application", schema=None) as batch_op:
        batch_op.drop_index("uq_identity_partner_application_decision_key")
        batch_op.drop_column("decision_key")

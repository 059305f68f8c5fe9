"""When the outcome went back to the referrer: ``referral.outcome_at`` (the outcome itself is
sealed with the referral's other clinical text). ADD COLUMN only: the referral table is never
recreated on SQLite (its events have append-only triggers).

Revision ID: 0026
Revises: 0025
Create Date: 2026-12-03 07:40:00.000000
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0026"
down_revision: str | None = "0025"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.add_column("referral", sa.Column("outcome_at", sa.DateTime(timezone=True), nullable=True))


def downgrade() -> None:
    op.drop_column("referral", "outcome_at")

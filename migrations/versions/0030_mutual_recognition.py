"""Mutual recognition of test results: per referral, how many prior results were recognised
when it was made and what repeating them would cost, and how many the target repeated anyway.
ADD COLUMN only (the referral table is never recreated on SQLite); stored referrals get 0.

Revision ID: 0030
Revises: 0029
Create Date: 2026-12-03 08:00:00.000000
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0030"
down_revision: str | None = "0029"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

COLUMNS = ("recognised_tests", "recognised_fen", "repeated_tests", "repeated_fen")  # fen: 分


def upgrade() -> None:
    for name in COLUMNS:
        op.add_column(
            "referral", sa.Column(name, sa.Integer(), nullable=False, server_default=sa.text("0"))
        )


def downgrade() -> None:
    for name in reversed(COLUMNS):
        op.drop_column("referral", name)

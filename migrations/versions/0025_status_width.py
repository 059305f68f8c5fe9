"""Room for the longer referral states (``needs_information`` has 17 characters).

``referral.status`` and ``referral_event.from_status`` / ``to_status`` go from VARCHAR(16) to
VARCHAR(24) on PostgreSQL. SQLite does not enforce VARCHAR lengths, so nothing changes there
(and the referral table is never recreated: its events have append-only triggers).

Revision ID: 0025
Revises: 0024
Create Date: 2026-12-03 07:30:00.000000
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0025"
down_revision: str | None = "0024"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

COLUMNS = (
    ("referral", "status"),
    ("referral_event", "from_status"),
    ("referral_event", "to_status"),
)


def _width(length: int, before: int) -> None:
    if op.get_bind().dialect.name != "postgresql":
        return
    for table, column in COLUMNS:
        op.alter_column(
            table,
            column,
            type_=sa.String(length=length),
            existing_type=sa.String(length=before),
        )


def upgrade() -> None:
    _width(24, 16)


def downgrade() -> None:
    _width(16, 24)
